//! Sharing: a webhook whose deliveries may go in any order and that has no `rateLimit` is
//! worked by every host with *demand* for it (that ingests its events or holds its
//! entries): each keeps the entries it ingests (claimed as written, see [lanes](super)) and
//! runs at most its share of the webhook's concurrency cap — the cap divided among the hosts
//! with demand, the remainder to the first in id order ([`Lanes::share`]). So the cap holds
//! for all hosts together, a host that takes all of a webhook's events runs all of its cap,
//! and an entry ingested is never read back or announced.
//!
//! - Each host publishes its demand in its `hosts` row when it changes, and reads the
//!   others' at every beat.
//! - A host keeps and runs a share only once its demand is *established*: published
//!   [`Timing::stale`] and a heartbeat ago, so every host in touch has seen it and shrunk
//!   its own share. Until then it writes its entries unclaimed, for the lane owner.
//! - The others count a host's new demand in their split only from a heartbeat before it
//!   can be established ([`State::read_demand`]): until then their parts stay as they
//!   were, so a lane owner that ran the whole cap goes on running it for the newcomer's
//!   events it takes.
//! - The lane owner, when no other host has demand for the webhook, runs the whole cap at
//!   once: no other host may be running any (its demand would have been published a
//!   while ago), and the owner's is seen before anyone else's is established.
//! - Demand lasts while the engine holds entries of the webhook, then [`Timing::linger`]
//!   more — as it does after each event ingested — so that a host that sees a webhook's
//!   events now and then stays established.
//! - A host whose share is nothing hands what it kept back (a release of a lane it does
//!   not own), drops its demand and keeps no more of that webhook until the hosts change.
//! - `ordered` webhooks, and those with a `rateLimit`, are worked by their lane owner
//!   alone, as is every webhook on a host told not to share ([`Lanes::share_webhooks`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use uuid::Uuid;

use super::{Lanes, State, Timing, preferred, works};

/// This host's demand for a shared webhook.
pub(super) struct Demand {
    /// When a beat first published it (its statement done); `None` until then.
    pub(super) published: Option<Instant>,
    /// When it last ingested the webhook's events or its engine held entries of it.
    pub(super) used: Instant,
    /// Its engine holds entries of the webhook (from [`Lanes::share`] to [`Lanes::emptied`]).
    pub(super) held: bool,
    /// The lane owner runs the whole cap with no other host's demand in view: established.
    pub(super) alone: bool,
}

impl Demand {
    pub(super) fn established(&self, timing: &Timing) -> bool {
        self.alone || self.published.is_some_and(|at| at.elapsed() >= timing.establish())
    }
}

/// Another live host with demand for a webhook, as this host read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Demanding {
    pub(super) host: Uuid,
    /// From when this host counts it in the webhook's split (see the module docs).
    pub(super) counted_from: Instant,
}

impl Lanes {
    /// Off: this host keeps and runs only what its lanes hold, each with the whole cap.
    pub(in crate::store::postgres) fn share_webhooks(&self, on: bool) {
        self.sharing.store(on, Ordering::Relaxed);
        self.shares.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn sharing(&self) -> bool {
        self.sharing.load(Ordering::Relaxed)
    }

    /// How many of a webhook's deliveries (capped at `cap` for all hosts together) this host
    /// may run at once, asked when its engine holds entries of the webhook; `None` when it
    /// runs none and does not work the lane, so should hand back what it holds. Not `shared`
    /// (`ordered`, or with a `rateLimit`): the whole cap for the lane owner, none for the
    /// others. Shared: a part of the cap among the hosts with demand for the webhook, nothing
    /// before this host's demand is established (see the module docs); this host's demand
    /// lasts until [`Lanes::emptied`] and `linger` after.
    pub(in crate::store::postgres) fn share(
        &self,
        webhook: &str,
        cap: usize,
        shared: bool,
        me: Uuid,
    ) -> Option<usize> {
        let mut guard = self.state();
        let state = &mut *guard;
        let works = works(state, webhook, me);
        if !shared || !self.sharing() {
            return works.then_some(cap);
        }
        if self.stale(state) {
            return works.then_some(0);
        }
        let now = Instant::now();
        let others: &[Demanding] = state.others.get(webhook).map_or(&[], Vec::as_slice);
        let alone = works && others.is_empty();
        let established =
            alone || state.demand.get(webhook).is_some_and(|demand| demand.established(&self.timing));
        let counted = others.iter().filter(|other| other.counted_from <= now).map(|other| other.host);
        let part = if established { part_of(cap, counted, me) } else { 0 };
        if part == 0 && !works {
            return None;
        }
        let demand = demand_for(state, webhook);
        demand.held = true;
        demand.used = now;
        demand.alone |= alone;
        Some(part)
    }

    /// This host's engine holds no entry of `webhook` any more: its demand lingers out.
    pub(in crate::store::postgres) fn emptied(&self, webhook: &str) {
        if let Some(demand) = self.state().demand.get_mut(webhook) {
            demand.held = false;
            demand.used = Instant::now();
        }
    }

    /// Drops the demand that lingered out (see the module docs), and returns this host's
    /// demand if it changed since the last beat published it — all of it, to be established
    /// again, when this host is out of touch (it may have been deemed gone).
    pub(super) fn demand_to_publish(&self) -> Option<Vec<String>> {
        let mut guard = self.state();
        let state = &mut *guard;
        let linger = self.timing.linger;
        let before = state.demand.len();
        let writes = &state.writes;
        state.demand.retain(|webhook, demand| {
            demand.held || demand.used.elapsed() < linger || writes.contains_key(webhook)
        });
        let rejoining = self.stale(state);
        if rejoining {
            for demand in state.demand.values_mut() {
                demand.published = None;
                demand.alone = false;
            }
        }
        let changed = std::mem::take(&mut state.demand_changed) || state.demand.len() != before;
        (changed || rejoining).then(|| state.demand.keys().cloned().collect())
    }

    /// The beat that published this demand is done; `through`: it was written.
    pub(super) fn demand_published(&self, sent: &[String], through: bool) {
        let mut state = self.state();
        if !through {
            state.demand_changed = true;
            return;
        }
        let now = Instant::now();
        for webhook in sent {
            if let Some(demand) = state.demand.get_mut(webhook) {
                demand.published.get_or_insert(now);
            }
        }
    }

    /// Changes whenever the shares [`Lanes::share`] answers may have changed.
    pub(in crate::store::postgres) fn shares_version(&self) -> u64 {
        let mut state = self.state();
        let now = Instant::now();
        if state.recount.is_some_and(|at| at <= now) {
            state.recount = next_count(&state.others, now);
            self.shares.fetch_add(1, Ordering::Relaxed);
        }
        self.shares.load(Ordering::Relaxed)
    }
}

impl State {
    /// Takes in the other hosts' demand (webhook → hosts, sorted) as read by the beat that
    /// started `at`, after `hosts` (`hosts_before`: as the previous read had them); `true` if
    /// it changed. A host's demand for a webhook that the previous read did not show was
    /// published after that read started, so that host runs none of its share before
    /// [`Timing::establish`] after: it counts in the split from [`Timing::stale`] after, which
    /// leaves a heartbeat for this host's engine to shrink its own part. At once with no
    /// previous read, and for a host that may hold the webhook's lane — preferred by the
    /// hosts as read now or before (views of the hosts lag by a beat): as the lane's owner it
    /// may run the whole cap before its demand is published.
    pub(super) fn read_demand(
        &mut self,
        read: HashMap<String, Vec<Uuid>>,
        hosts_before: &[Uuid],
        at: Instant,
        timing: &Timing,
    ) -> bool {
        let mut others = HashMap::with_capacity(read.len());
        for (webhook, hosts) in read {
            let before = self.others.get(&webhook).map_or(&[][..], Vec::as_slice);
            let may_own = |host: Uuid| {
                preferred(&self.hosts, &webhook) == Some(host)
                    || preferred(hosts_before, &webhook) == Some(host)
            };
            let demanding = hosts
                .into_iter()
                .map(|host| {
                    let counted_from = match before.iter().find(|known| known.host == host) {
                        Some(known) => known.counted_from,
                        None => match self.read {
                            Some(previous) if !may_own(host) => previous + timing.stale(),
                            _ => at,
                        },
                    };
                    Demanding { host, counted_from }
                })
                .collect();
            others.insert(webhook, demanding);
        }
        self.read = Some(at);
        self.recount = next_count(&others, Instant::now());
        let changed = self.others != others;
        self.others = others;
        changed
    }
}

/// When the first of `others` yet to count in a split after `now` does.
fn next_count(others: &HashMap<String, Vec<Demanding>>, now: Instant) -> Option<Instant> {
    others.values().flatten().map(|other| other.counted_from).filter(|from| *from > now).min()
}

/// `me`'s part of `cap` shared with `others`: an even split, the remainder to the first in id
/// order — so the parts add up to `cap` on hosts that see the same demand.
fn part_of(cap: usize, others: impl IntoIterator<Item = Uuid>, me: Uuid) -> usize {
    let (mut hosts, mut rank) = (1, 0);
    for host in others {
        hosts += 1;
        rank += usize::from(host < me);
    }
    cap / hosts + usize::from(rank < cap % hosts)
}

/// This host's demand for `webhook`, recorded if new.
pub(super) fn demand_for<'s>(state: &'s mut State, webhook: &str) -> &'s mut Demand {
    if !state.demand.contains_key(webhook) {
        state.demand_changed = true;
        let demand = Demand { published: None, used: Instant::now(), held: false, alone: false };
        state.demand.insert(webhook.to_owned(), demand);
    }
    state.demand.get_mut(webhook).expect("recorded above")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Two hosts, sorted, and the places in them of "w"'s preferred host and of the other.
    fn two_hosts() -> (Vec<Uuid>, usize, usize) {
        let mut hosts = vec![Uuid::now_v7(), Uuid::now_v7()];
        hosts.sort_unstable();
        let owner = preferred(&hosts, "w").expect("a host");
        if hosts[0] == owner { (hosts, 0, 1) } else { (hosts, 1, 0) }
    }

    /// Other hosts' demand, counted in the split from now.
    fn counted(hosts: &[Uuid]) -> Vec<Demanding> {
        hosts.iter().map(|host| Demanding { host: *host, counted_from: Instant::now() }).collect()
    }

    /// Hosts that see `hosts`, each beaten now, each with demand for "w" published `ago`, and
    /// each seeing the others'.
    fn hosts_with_demand(hosts: &[Uuid], ago: Duration) -> Vec<Lanes> {
        let published = Instant::now().checked_sub(ago).expect("a process older than that");
        hosts
            .iter()
            .map(|me| {
                let lanes = Lanes::new(Timing::DEFAULT);
                let mut state = lanes.state();
                state.hosts = hosts.to_vec();
                state.beaten = Some(Instant::now());
                let others: Vec<Uuid> = hosts.iter().copied().filter(|host| host != me).collect();
                if !others.is_empty() {
                    state.others.insert("w".into(), counted(&others));
                }
                let demand =
                    Demand { published: Some(published), used: Instant::now(), held: false, alone: false };
                state.demand.insert("w".into(), demand);
                drop(state);
                lanes
            })
            .collect()
    }

    #[test]
    fn shares_add_up_to_the_cap_whatever_the_hosts() {
        for n in 1..=5 {
            let mut hosts: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
            hosts.sort_unstable();
            let lanes = hosts_with_demand(&hosts, Timing::DEFAULT.establish());
            for cap in 1..=10usize {
                let shares: Vec<Option<usize>> =
                    hosts.iter().zip(&lanes).map(|(me, lanes)| lanes.share("w", cap, true, *me)).collect();
                let total: usize = shares.iter().flatten().sum();
                assert_eq!(total, cap, "{n} hosts, cap {cap}: {shares:?}");
                let owner = preferred(&hosts, "w").expect("a host");
                for (me, share) in hosts.iter().zip(&shares) {
                    assert!(share.is_some() || *me != owner, "the owner works its lane even with no share");
                    assert!(share.unwrap_or(0) <= cap.div_ceil(n), "evenly: {shares:?}");
                }
                let whole: Vec<Option<usize>> =
                    hosts.iter().zip(&lanes).map(|(me, lanes)| lanes.share("w", cap, false, *me)).collect();
                let expected: Vec<Option<usize>> =
                    hosts.iter().map(|me| (*me == owner).then_some(cap)).collect();
                assert_eq!(whole, expected, "not shared: the owner's alone");
            }
        }
    }

    #[test]
    fn a_host_keeps_and_runs_its_share_once_its_demand_is_established() {
        let (hosts, o, x) = two_hosts();
        let (owner, other) = (hosts[o], hosts[x]);

        let new = hosts_with_demand(&hosts, Duration::ZERO);
        assert!(!new[x].keeps("w"));
        assert_eq!(new[x].share("w", 8, true, other), None, "nothing: others may still run the whole cap");
        assert_eq!(new[o].share("w", 8, true, owner), Some(0), "the owner holds its lane and waits");

        let established = hosts_with_demand(&hosts, Timing::DEFAULT.establish());
        let settled = &established[x];
        assert!(settled.keeps("w"));
        assert_eq!(settled.share("w", 8, true, other), Some(4));
        assert!(settled.writing(["w"]).webhooks().contains("w"));
        assert!(settled.to_release().is_empty());
        settled.state().declined.insert("w".into());
        assert!(!settled.keeps("w"), "handed back: kept no more");
        settled.state().beaten = None;
        assert_eq!(settled.to_release(), ["w"], "out of touch: what it has demand for is reported");

        // The only host with demand runs the whole cap: a sender pinned to one host.
        let pinned = &hosts_with_demand(&hosts, Timing::DEFAULT.establish())[x];
        pinned.state().others.clear();
        assert_eq!(pinned.share("w", 8, true, other), Some(8));
    }

    #[test]
    fn the_owner_runs_the_whole_cap_at_once_while_no_other_host_has_demand() {
        let (hosts, o, x) = two_hosts();
        let (owner, other) = (hosts[o], hosts[x]);
        let lanes = &hosts_with_demand(&hosts, Duration::ZERO)[0];
        let mut state = lanes.state();
        state.demand.clear();
        state.others.clear();
        drop(state);
        assert_eq!(lanes.share("w", 8, true, owner), Some(8), "no demand elsewhere: nobody else runs any");
        lanes.state().others.insert("w".into(), counted(&[other]));
        assert_eq!(
            lanes.share("w", 8, true, owner),
            Some(part_of(8, [other], owner)),
            "then it shrinks at once"
        );
        assert_eq!(lanes.share("w", 8, true, owner), Some(4));
    }

    #[test]
    fn a_host_s_new_demand_counts_from_a_heartbeat_before_it_can_be_established() {
        let (hosts, o, x) = two_hosts();
        let (timing, owner, newcomer) = (Timing::DEFAULT, hosts[o], hosts[x]);
        let w = |hosts: &[Uuid]| HashMap::from([("w".to_owned(), hosts.to_vec())]);

        let lanes = &hosts_with_demand(&hosts, timing.establish())[o];
        lanes.state().others.clear();
        assert_eq!(lanes.share("w", 8, true, owner), Some(8));
        // The read before the newcomer's demand showed started at `previous`: the newcomer runs
        // nothing for `establish` after, and counts from `stale` after.
        let previous = Instant::now();
        assert!(!lanes.state().read_demand(HashMap::new(), &hosts, previous, &timing));
        assert!(lanes.state().read_demand(w(&[newcomer]), &hosts, Instant::now(), &timing));
        let version = lanes.shares_version();
        assert_eq!(lanes.share("w", 8, true, owner), Some(8), "the owner keeps the whole cap meanwhile");
        assert_eq!(lanes.shares_version(), version);
        assert_eq!(lanes.state().others["w"][0].counted_from, previous + timing.stale(), "from `stale` on");
        // `stale` later:
        let later = Instant::now();
        lanes.state().others.get_mut("w").expect("read")[0].counted_from = later;
        lanes.state().recount = Some(later);
        assert_ne!(lanes.shares_version(), version, "the engine is told to ask again");
        assert_eq!(lanes.share("w", 8, true, owner), Some(4), "then it counts");
        assert!(!lanes.state().read_demand(w(&[newcomer]), &hosts, Instant::now(), &timing), "and goes on");

        // With no earlier read, nothing says when the demand was published: it counts at once.
        let fresh = &hosts_with_demand(&hosts, timing.establish())[o];
        fresh.state().others.clear();
        fresh.state().read_demand(w(&[newcomer]), &hosts, Instant::now(), &timing);
        assert_eq!(fresh.share("w", 8, true, owner), Some(4));

        // Nor for a host that may hold the lane, which may run the whole cap before publishing
        // its demand: preferred by the hosts as read now, or as read before (a third host
        // joined since, and the owner may not have seen it yet).
        let third = std::iter::repeat_with(Uuid::now_v7)
            .find(|third| preferred(&[owner, newcomer, *third], "w") == Some(*third))
            .expect("one in three is preferred");
        let mut three = vec![owner, newcomer, third];
        three.sort_unstable();
        for (before, counted) in [(&hosts, true), (&three, false)] {
            let lanes = &hosts_with_demand(&hosts, timing.establish())[x];
            lanes.state().others.clear();
            lanes.state().read_demand(HashMap::new(), before, Instant::now(), &timing);
            lanes.state().hosts.clone_from(&three);
            lanes.state().read_demand(w(&[owner]), before, Instant::now(), &timing);
            let part = if counted { 4 } else { 8 };
            assert_eq!(lanes.share("w", 8, true, newcomer), Some(part), "hosts before: {before:?}");
        }
    }

    #[test]
    fn demand_is_published_when_it_changes_and_lingers_after_the_last_entry() {
        let lanes = Lanes::new(Timing { linger: Duration::from_millis(100), ..Timing::DEFAULT });
        let me = Uuid::now_v7();
        lanes.state().hosts = vec![me];
        assert_eq!(lanes.demand_to_publish(), Some(vec![]), "joining: published in full");
        lanes.state().beaten = Some(Instant::now());
        assert_eq!(lanes.demand_to_publish(), None, "then only when it changes");

        drop(lanes.writing(["w"]));
        let w = vec!["w".to_owned()];
        assert_eq!(lanes.demand_to_publish(), Some(w.clone()), "an event ingested");
        lanes.demand_published(&w, true);
        assert_eq!(lanes.share("w", 8, true, me), Some(8), "held by the engine");
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(lanes.demand_to_publish(), None, "lasts while held");
        lanes.emptied("w");
        assert_eq!(lanes.demand_to_publish(), None, "and lingers");
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(lanes.demand_to_publish(), Some(vec![]), "then ends");

        drop(lanes.writing(["v"]));
        let v = lanes.demand_to_publish().expect("changed");
        lanes.demand_published(&v, false);
        assert_eq!(lanes.demand_to_publish(), Some(v.clone()), "not written: sent again");
        lanes.demand_published(&v, true);
        lanes.state().demand.get_mut("v").expect("v").published =
            Instant::now().checked_sub(Duration::from_secs(10));
        assert!(lanes.keeps("v"));
        lanes.state().beaten = None;
        assert_eq!(lanes.demand_to_publish(), Some(v), "back in touch: all of it, again");
        lanes.state().beaten = Some(Instant::now());
        assert!(!lanes.keeps("v"), "to be established again");
    }
}
