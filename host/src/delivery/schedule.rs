//! The engine's in-memory schedule of the queue entries it claimed: which may run now, per
//! webhook.
//!
//! The engine claims entries from storage as they are written and reschedules its own
//! retries here. Each webhook has a lane: up to `per_webhook` deliveries are at its receiver
//! at once, or — for an `ordered` webhook — only its oldest delivery, even while that one
//! waits for a retry. A delivery whose attempts are over gives its place in the lane to the
//! next while it stores its outcome: the cap is there for the receiver, and a storage write
//! (a group commit away on PostgreSQL) would otherwise hold it idle. So a webhook with a large
//! backlog costs nothing per pass, and one receiver's backlog never holds up another's. With
//! several hosts working one webhook, a lane runs this host's share of the cap ([`Share`]),
//! read again as hosts come and go.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use crate::store::QueueEntry;

#[derive(Default)]
pub(crate) struct Schedule {
    /// Every entry held, by delivery id.
    entries: HashMap<String, QueueEntry>,
    /// Not yet due (unordered lanes only): earliest first.
    timers: BinaryHeap<Reverse<(u64, String)>>,
    lanes: HashMap<String, Lane>,
}

/// How a webhook's lane runs: read when the lane opens (it closes when it empties).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LaneRules {
    /// One delivery at a time, oldest first.
    pub(crate) ordered: bool,
    /// Deliveries at the receiver at once, when tighter than the host's cap (its connector's
    /// policy).
    pub(crate) cap: Option<usize>,
    /// How much of that cap this host runs.
    pub(crate) share: Share,
}

/// How much of a webhook's cap this host runs, when several hosts work the webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Share {
    /// All of it.
    #[default]
    Whole,
    /// At most this many at once (the other hosts run the rest); none for now when 0.
    Part(usize),
    /// Nothing: another host runs the webhook; what is held here goes back to it.
    Elsewhere,
}

impl Share {
    fn limit(self, cap: usize) -> usize {
        match self {
            Share::Whole => cap,
            Share::Part(part) => part.min(cap),
            Share::Elsewhere => 0,
        }
    }
}

#[derive(Default)]
struct Lane {
    ordered: bool,
    /// Tighter than the host's per-webhook cap, when its connector says so.
    cap: Option<usize>,
    share: Share,
    /// Handed over to another host: nothing of it starts here any more, and what ran comes
    /// back to storage (still claimed until the lane is released), not to the schedule.
    closed: bool,
    /// Nothing of this lane runs before this time (its connector is backed off).
    paused_until: u64,
    /// Deliveries at the receiver (or on their way to it).
    running: usize,
    /// Deliveries past their attempts, storing their outcome: no longer counted against the
    /// cap, but the lane is still theirs (not dropped, not handed over).
    recording: HashSet<String>,
    /// Unordered: due deliveries, first come first served.
    ready: VecDeque<String>,
    /// How many at the front of `ready` were handed out by [`Schedule::upcoming`].
    announced: usize,
    /// Ordered: every delivery of the webhook, oldest (smallest UUIDv7 id) first.
    all: BTreeMap<String, ()>,
}

impl Lane {
    fn busy(&self) -> usize {
        self.running + self.recording.len()
    }
}

impl Schedule {
    /// Entries held: waiting, or running.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes an entry in (again). `rules` says how the webhook wants its deliveries, asked
    /// only when its lane opens.
    pub(crate) fn add(&mut self, entry: QueueEntry, now_ms: u64, rules: impl FnOnce() -> LaneRules) {
        let id = entry.delivery_id.clone();
        if self.entries.contains_key(&id) {
            return; // already held: queued or running (a producer and the start-up scan both saw it)
        }
        let lane = self.lanes.entry(entry.webhook_id.clone()).or_insert_with(|| {
            let LaneRules { ordered, cap, share } = rules();
            Lane { ordered, cap, share, ..Lane::default() }
        });
        if lane.closed {
            return;
        }
        if lane.ordered {
            lane.all.insert(id.clone(), ());
        } else if entry.due_ms <= now_ms {
            lane.ready.push_back(id.clone());
        } else {
            self.timers.push(Reverse((entry.due_ms, id.clone())));
        }
        self.entries.insert(id, entry);
    }

    /// Moves what came due into its lane.
    fn tick(&mut self, now_ms: u64) {
        while let Some(Reverse((due, _))) = self.timers.peek() {
            if *due > now_ms {
                break;
            }
            let Some(Reverse((_, id))) = self.timers.pop() else { break };
            if let Some(entry) = self.entries.get(&id) {
                self.lanes.entry(entry.webhook_id.clone()).or_default().ready.push_back(id);
            }
        }
    }

    /// The entries to start now, marked running.
    pub(crate) fn take_runnable(
        &mut self,
        now_ms: u64,
        per_webhook: usize,
        mut budget: usize,
    ) -> Vec<QueueEntry> {
        self.tick(now_ms);
        let mut runnable = Vec::new();
        for lane in self.lanes.values_mut() {
            if budget == 0 {
                break;
            }
            if lane.paused_until > now_ms || lane.closed {
                continue;
            }
            lane.paused_until = 0;
            if lane.ordered {
                if lane.running > 0 {
                    continue;
                }
                let Some(head) = lane.all.keys().next() else { continue };
                let Some(entry) = self.entries.get(head) else { continue };
                if entry.due_ms <= now_ms {
                    lane.running = 1;
                    runnable.push(entry.clone());
                    budget -= 1;
                }
                continue;
            }
            let cap = lane.share.limit(lane.cap.map_or(per_webhook, |cap| cap.clamp(1, per_webhook)));
            while lane.running < cap && budget > 0 {
                let Some(id) = lane.ready.pop_front() else { break };
                lane.announced = lane.announced.saturating_sub(1);
                let Some(entry) = self.entries.get(&id) else { continue };
                lane.running += 1;
                runnable.push(entry.clone());
                budget -= 1;
            }
        }
        runnable
    }

    /// Due entries of unordered lanes next in line, not handed out here before: for each lane
    /// whose announced entries ran down to half of `window`, the next ones up to `window`, and
    /// no more than about `limit` in all (the lanes left out come next time). So a lane with a
    /// backlog yields about `window / 2` at a time, and a lane that keeps up (its due entries
    /// start at once) yields nothing.
    pub(crate) fn upcoming(&mut self, window: usize, limit: usize) -> Vec<QueueEntry> {
        let mut upcoming = Vec::new();
        for lane in self.lanes.values_mut().filter(|lane| !lane.ordered && !lane.closed) {
            if lane.announced > window / 2 {
                continue;
            }
            if upcoming.len() >= limit {
                break;
            }
            let end = lane.ready.len().min(window);
            for id in lane.ready.range(lane.announced..end) {
                upcoming.extend(self.entries.get(id).cloned());
            }
            lane.announced = lane.announced.max(end);
        }
        upcoming
    }

    /// A running delivery is done with its receiver and stores its outcome: the next of an
    /// unordered lane may start. (An ordered lane's next must wait for that outcome.)
    pub(crate) fn sent(&mut self, entry: &QueueEntry) {
        if let Some(lane) = self.lanes.get_mut(&entry.webhook_id)
            && !lane.ordered
            && lane.recording.insert(entry.delivery_id.clone())
        {
            lane.running = lane.running.saturating_sub(1);
        }
    }

    /// A run ended; `next` is the entry as it now stands in the queue, if it is still there.
    /// `true` when that emptied the lane: nothing of the webhook is held any more.
    pub(crate) fn done(&mut self, finished: &QueueEntry, next: Option<QueueEntry>, now_ms: u64) -> bool {
        let id = &finished.delivery_id;
        let mut drop_lane = false;
        if let Some(lane) = self.lanes.get_mut(&finished.webhook_id) {
            if !lane.recording.remove(id) {
                lane.running = lane.running.saturating_sub(1);
            }
            if lane.closed {
                self.entries.remove(id);
                return false;
            }
            if next.is_none() {
                lane.all.remove(id);
            }
            drop_lane = lane.busy() == 0 && lane.ready.is_empty() && lane.all.is_empty() && next.is_none();
        }
        self.entries.remove(id);
        if drop_lane {
            // Emptied: a later lane re-reads whether the webhook is ordered.
            self.lanes.remove(&finished.webhook_id);
        }
        if let Some(next) = next {
            let lane = self.lanes.get(&next.webhook_id);
            let rules = LaneRules {
                ordered: lane.is_some_and(|l| l.ordered),
                cap: lane.and_then(|l| l.cap),
                share: lane.map_or(Share::Whole, |l| l.share),
            };
            self.add(next, now_ms, || rules);
        }
        drop_lane
    }

    /// Closes a webhook's lane (another host takes it over): its waiting entries leave the
    /// schedule and nothing of it starts again; returns how many of its deliveries still run.
    pub(crate) fn close(&mut self, webhook_id: &str) -> usize {
        let Some(lane) = self.lanes.get_mut(webhook_id) else { return 0 };
        lane.closed = true;
        lane.ready.clear();
        lane.announced = 0;
        lane.all.clear();
        let running = lane.busy();
        // Timers of the dropped entries find nothing when they come due.
        self.entries.retain(|_, entry| entry.webhook_id != webhook_id);
        running
    }

    /// Reads every open unordered lane's share again (hosts came or went); returns the
    /// webhooks now run elsewhere, to hand over.
    pub(crate) fn reshare(&mut self, mut share: impl FnMut(&str) -> Share) -> Vec<String> {
        let mut elsewhere = Vec::new();
        for (webhook_id, lane) in self.lanes.iter_mut().filter(|(_, lane)| !lane.ordered && !lane.closed) {
            lane.share = share(webhook_id);
            if lane.share == Share::Elsewhere {
                elsewhere.push(webhook_id.clone());
            }
        }
        elsewhere
    }

    /// Deliveries of a webhook running now (storing their outcome included).
    pub(crate) fn running(&self, webhook_id: &str) -> usize {
        self.lanes.get(webhook_id).map_or(0, Lane::busy)
    }

    /// Forgets a closed lane once its work is handed back: it may come back here later.
    /// `true` when forgotten.
    pub(crate) fn forget(&mut self, webhook_id: &str) -> bool {
        let idle = self.lanes.get(webhook_id).is_some_and(|lane| lane.closed && lane.busy() == 0);
        if idle {
            self.lanes.remove(webhook_id);
        }
        idle
    }

    /// Holds a webhook's lane until `until_ms`.
    pub(crate) fn pause(&mut self, webhook_id: &str, until_ms: u64) {
        if let Some(lane) = self.lanes.get_mut(webhook_id) {
            lane.paused_until = lane.paused_until.max(until_ms);
        }
    }

    /// When the next held entry comes due (timers, ordered heads, paused lanes), if any.
    pub(crate) fn next_due(&self) -> Option<u64> {
        let timer = self.timers.peek().map(|Reverse((due, _))| *due);
        let resumes = self.lanes.values().map(|l| l.paused_until).filter(|until| *until > 0);
        let heads = self
            .lanes
            .values()
            .filter(|l| l.ordered && l.running == 0)
            .filter_map(|l| l.all.keys().next())
            .filter_map(|id| self.entries.get(id).map(|e| e.due_ms));
        timer.into_iter().chain(heads).chain(resumes).min()
    }
}

#[cfg(test)]
mod tests {
    const ORDERED: LaneRules = LaneRules { ordered: true, cap: None, share: Share::Whole };

    use super::*;

    fn entry(id: &str, webhook: &str, due: u64) -> QueueEntry {
        QueueEntry::new(due, id, webhook)
    }

    #[test]
    fn a_connector_may_narrow_a_lane_below_the_host_cap_never_widen_it() {
        let mut s = Schedule::default();
        let narrow = || LaneRules { cap: Some(2), ..LaneRules::default() };
        let wide = || LaneRules { cap: Some(50), ..LaneRules::default() };
        for i in 0..5 {
            s.add(entry(&format!("n{i}"), "narrow", 0), 10, narrow);
            s.add(entry(&format!("w{i}"), "wide", 0), 10, wide);
        }
        let started = s.take_runnable(10, 3, 100);
        let count = |webhook: &str| started.iter().filter(|e| e.webhook_id == webhook).count();
        assert_eq!((count("narrow"), count("wide")), (2, 3));
    }

    fn ids(entries: &[QueueEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.delivery_id.as_str()).collect()
    }

    #[test]
    fn a_lane_shared_by_hosts_runs_its_part_of_the_cap_read_again_as_hosts_change() {
        let mut s = Schedule::default();
        let part =
            |part| move || LaneRules { cap: Some(6), share: Share::Part(part), ..LaneRules::default() };
        for i in 0..10 {
            s.add(entry(&format!("a{i}"), "shared", 0), 10, part(2));
            s.add(entry(&format!("b{i}"), "waiting", 0), 10, part(0));
        }
        let started = s.take_runnable(10, 8, 100);
        assert_eq!(ids(&started), ["a0", "a1"], "its part of the connector's 6, nothing of a part of 0");
        s.done(&started[0], Some(entry("a0", "shared", 10)), 10);
        let mut next = ids(&s.take_runnable(10, 8, 100)).into_iter().map(str::to_owned).collect::<Vec<_>>();
        next.sort();
        assert_eq!(next, ["a2"], "a retry keeps the lane's part, and waits behind the others");
        // A host left: the share grows; another joined: the other lane is run elsewhere now.
        let elsewhere = s.reshare(|webhook| match webhook {
            "shared" => Share::Part(3),
            _ => Share::Elsewhere,
        });
        assert_eq!(elsewhere, ["waiting"]);
        assert_eq!(ids(&s.take_runnable(10, 8, 100)), ["a3"], "one more place");
        assert!(s.reshare(|_| Share::Whole).is_empty());
        assert_eq!(s.take_runnable(10, 8, 100).len(), 3 + 6, "the whole of the connector's 6 in each");
    }

    #[test]
    fn a_paused_lane_runs_nothing_until_its_time() {
        let mut schedule = Schedule::default();
        schedule.add(entry("d1", "w1", 0), 0, LaneRules::default);
        schedule.add(entry("d2", "w2", 0), 0, LaneRules::default);
        let first = schedule.take_runnable(0, 1, 10);
        assert_eq!(first.len(), 2);
        schedule.pause("w1", 100);
        let d1 = first.iter().find(|e| e.delivery_id == "d1").unwrap().clone();
        schedule.done(&d1, Some(d1.clone()), 0);
        assert!(schedule.take_runnable(50, 1, 10).is_empty(), "w1 waits; w2's one is still running");
        assert_eq!(schedule.next_due(), Some(100));
        assert_eq!(schedule.take_runnable(100, 1, 10).len(), 1);
        assert_eq!(schedule.next_due(), None, "a pause that passed is forgotten");
    }

    #[test]
    fn a_closed_lane_starts_nothing_and_takes_nothing_back() {
        let mut s = Schedule::default();
        for i in 0..3 {
            s.add(entry(&format!("a{i}"), "moving", 0), 0, LaneRules::default);
        }
        s.add(entry("later", "moving", 50), 0, LaneRules::default);
        s.add(entry("b0", "staying", 0), 0, LaneRules::default);
        let running: Vec<_> = s.take_runnable(0, 1, 10);
        assert_eq!(running.len(), 2, "one per lane");
        assert_eq!(s.close("moving"), 1);
        let a = running.iter().find(|e| e.webhook_id == "moving").unwrap().clone();
        assert!(!s.done(&a, Some(a.clone()), 0), "closed, not emptied: forgotten once handed back");
        assert_eq!(s.running("moving"), 0);
        assert!(s.take_runnable(100, 1, 10).iter().all(|e| e.webhook_id != "moving"), "nothing of it starts");
        s.add(entry("a9", "moving", 0), 100, LaneRules::default);
        assert!(s.take_runnable(100, 1, 10).is_empty(), "nor is anything taken in while closed");
        assert!(s.forget("moving"));
        s.add(entry("a9", "moving", 0), 100, LaneRules::default);
        assert_eq!(ids(&s.take_runnable(100, 1, 10)), ["a9"], "back after it was released");
    }

    #[test]
    fn lanes_cap_each_webhook_and_keep_others_moving() {
        let mut s = Schedule::default();
        for i in 0..5 {
            s.add(entry(&format!("a{i}"), "slow", 0), 10, LaneRules::default);
        }
        s.add(entry("b0", "fast", 0), 10, LaneRules::default);
        let mut first = ids(&s.take_runnable(10, 2, 100)).into_iter().map(str::to_owned).collect::<Vec<_>>();
        first.sort();
        assert_eq!(first, ["a0", "a1", "b0"], "two of the slow webhook, and the fast one");
        assert!(s.take_runnable(10, 2, 100).is_empty(), "the slow lane is full");
        s.done(&entry("a0", "slow", 0), None, 10);
        assert_eq!(ids(&s.take_runnable(10, 2, 100)), ["a2"]);
    }

    #[test]
    fn a_delivery_storing_its_outcome_frees_its_place_but_keeps_the_lane() {
        let mut s = Schedule::default();
        for i in 0..3 {
            s.add(entry(&format!("a{i}"), "w", 0), 10, LaneRules::default);
        }
        let run = s.take_runnable(10, 2, 100);
        assert_eq!(ids(&run), ["a0", "a1"]);
        s.sent(&run[0]);
        assert_eq!(ids(&s.take_runnable(10, 2, 100)), ["a2"], "a0's place is free");
        assert_eq!(s.running("w"), 3, "a0 still counts until it is stored");
        assert!(!s.done(&run[0], None, 10));
        assert_eq!(s.running("w"), 2);
        assert!(!s.done(&run[1], None, 10));
        assert!(s.done(&entry("a2", "w", 0), None, 10), "the lane emptied");
        assert_eq!(s.running("w"), 0);

        s.add(entry("o1", "o", 0), 10, || ORDERED);
        s.add(entry("o2", "o", 0), 10, || ORDERED);
        let head = s.take_runnable(10, 8, 100);
        s.sent(&head[0]);
        assert!(s.take_runnable(10, 8, 100).is_empty(), "an ordered lane waits for its head's outcome");
        s.done(&head[0], None, 10);
        assert_eq!(ids(&s.take_runnable(10, 8, 100)), ["o2"]);
    }

    #[test]
    fn upcoming_entries_come_in_batches_ahead_of_their_turn() {
        let mut s = Schedule::default();
        for i in 0..10 {
            s.add(entry(&format!("a{i:02}"), "w", 0), 10, LaneRules::default);
        }
        assert_eq!(ids(&s.take_runnable(10, 2, 100)), ["a00", "a01"]);
        assert_eq!(ids(&s.upcoming(4, 100)), ["a02", "a03", "a04", "a05"]);
        assert!(s.upcoming(4, 100).is_empty(), "each is handed out once");
        s.done(&entry("a00", "w", 0), None, 10);
        assert_eq!(ids(&s.take_runnable(10, 2, 100)), ["a02"]);
        assert!(s.upcoming(4, 100).is_empty(), "three announced still wait: more than half the window");
        s.done(&entry("a01", "w", 0), None, 10);
        assert_eq!(ids(&s.take_runnable(10, 2, 100)), ["a03"]);
        assert_eq!(ids(&s.upcoming(4, 100)), ["a06", "a07"], "topped up to the window");
        s.add(entry("o", "ordered", 0), 10, || ORDERED);
        assert!(
            s.upcoming(4, 100).iter().all(|e| e.webhook_id != "ordered"),
            "an ordered lane runs its head alone"
        );
    }

    #[test]
    fn retries_wait_for_their_time() {
        let mut s = Schedule::default();
        s.add(entry("a", "w", 0), 10, LaneRules::default);
        let run = s.take_runnable(10, 8, 100);
        s.done(&run[0], Some(entry("a", "w", 50)), 10);
        assert!(s.take_runnable(20, 8, 100).is_empty());
        assert_eq!(s.next_due(), Some(50));
        assert_eq!(ids(&s.take_runnable(50, 8, 100)), ["a"]);
    }

    #[test]
    fn ordered_lanes_run_one_at_a_time_and_a_failing_head_blocks() {
        let mut s = Schedule::default();
        s.add(entry("d2", "o", 0), 10, || ORDERED);
        s.add(entry("d1", "o", 0), 10, || ORDERED);
        s.add(entry("d3", "o", 0), 10, || ORDERED);
        let run = s.take_runnable(10, 8, 100);
        assert_eq!(ids(&run), ["d1"], "the oldest first, alone");
        // d1 failed and waits for a retry at 100: nothing behind it may pass.
        s.done(&run[0], Some(entry("d1", "o", 100)), 10);
        assert!(s.take_runnable(50, 8, 100).is_empty());
        assert_eq!(s.next_due(), Some(100));
        let run = s.take_runnable(100, 8, 100);
        assert_eq!(ids(&run), ["d1"]);
        s.done(&run[0], None, 100);
        assert_eq!(ids(&s.take_runnable(100, 8, 100)), ["d2"]);
    }

    #[test]
    fn the_same_delivery_is_held_once() {
        let mut s = Schedule::default();
        s.add(entry("a", "w", 0), 10, LaneRules::default);
        s.add(entry("a", "w", 0), 10, LaneRules::default);
        assert_eq!(s.take_runnable(10, 8, 100).len(), 1);
        s.add(entry("a", "w", 0), 10, LaneRules::default);
        assert!(s.take_runnable(10, 8, 100).is_empty(), "already running");
    }
}
