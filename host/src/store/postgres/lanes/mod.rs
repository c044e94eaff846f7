//! Lanes: one live host at a time works a webhook's queue entries, so that the webhook's
//! promises (`ordered` order, the per-webhook concurrency cap, `rateLimit`) hold for all
//! hosts on the database together.
//!
//! - Hosts: every open store (one per process; its id is `Shared::me`) beats every
//!   [`Timing::heartbeat`]: it upserts its `hosts` row, deletes rows unseen for
//!   [`Timing::host_ttl`], forgets its lanes whose webhook has no queue entries left, renews
//!   the rest for [`Timing::lease`] and reads the live hosts.
//! - Which host should work a webhook: rendezvous hashing over the live hosts — the highest
//!   SHA-256 of (host id, webhook id) wins — so a host joining or leaving moves only the
//!   lanes it wins or held. With one host live, it owns every lane.
//! - Acquiring: a host takes the lanes it should own, of webhooks with queue entries, whose
//!   row is missing, expired or held by a host no longer live; the same statement returns
//!   the entries claimed by the lane's previous owner or by processes no longer live (not
//!   those live hosts keep as their share, see Sharing). Each beat
//!   looks at every webhook with entries (a skip scan of `queue_by_webhook`); each claim
//!   first looks at the webhooks that new entries were written for — by this process, or by
//!   another, which names them in its `NOTIFY` — so a new webhook's first delivery waits for
//!   no beat.
//! - Claiming (see `queue.rs`) takes unclaimed entries of lanes this host owns only, and none
//!   of a lane being released.
//! - Releasing: a lane this host owns while another live host is preferred (one joined) is
//!   *draining*; a lane another host took over (this one could not renew it in time) is
//!   *lost*. Both are reported by [`PgStore::lanes_to_release`](super::PgStore) until
//!   released, and claims skip them at once; the engine calls
//!   [`PgStore::release_lane`](super::PgStore) once nothing of the webhook runs here, which
//!   returns this process's claims and deletes the lane in one transaction, then tells the
//!   other hosts. A reported lane of which this process holds no claim (so the engine holds
//!   nothing of it) is released by the beat itself.
//! - Sharing ([`demand`]): a webhook whose deliveries may go in any order and that has no
//!   `rateLimit` is worked by every host with demand for it, each running at most its share
//!   of the webhook's concurrency cap.
//! - Losing touch: a host whose last successful beat is [`Timing::stale`] old stops claiming
//!   and reports every lane it holds or has demand for: others may soon consider it gone
//!   (after `host_ttl`) or its leases expired (after `lease`), and take its lanes over. Back
//!   in touch, it publishes its demand again and waits for it to be established. So does a
//!   host whose beat finds its `hosts` row deleted (a beat held up past `host_ttl`: the
//!   others deemed it gone).
//! - A host that sees another leave returns the entries still claimed by hosts no longer live
//!   on its own lanes (a turn that a host finished after its lane was taken over).
//! - Closing deletes this process's lanes and its `hosts` row: others take over at once.
//! - Claimed as written: ingest marks the entries it writes for a lane this host keeps (owns or
//!   shares, is not releasing, is in touch) with this process's id at once, and hands them to
//!   its own engine without a claim (see `ingest.rs`). Such writes are counted per lane while
//!   in flight ([`Lanes::writing`]). Whatever gives a lane up in the database — a release, the
//!   beat forgetting an empty lane or releasing an idle one — first stops new ones for that
//!   lane, then waits for those in flight to be committed and kept: it never misses an entry
//!   claimed as written, and ingest never waits for it. The beat only forgets lanes with no
//!   such write since the one before (others are hardly empty).
//!
//! Claims, beats, acquisitions and releases of one process take turns (`Lanes::busy`), so
//! none sees what this process owns halfway through another's change.
//!
//! This file holds what a process knows of its lanes and decides from it alone; [`demand`]
//! its shares of shared webhooks; [`beat`], [`acquire`] and [`release`] what it writes to
//! and reads from the database.

mod acquire;
mod beat;
mod demand;
mod release;

pub(super) use acquire::acquire_wanted;
pub(super) use beat::{beat, heartbeat};
pub(super) use release::{leave, release};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{int, queue};
use demand::{Demand, Demanding, demand_for};

/// How often hosts beat, and how long what a beat says lasts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// How often a host beats.
    pub(super) heartbeat: Duration,
    /// A host unseen for this long is gone: its lanes may be taken over.
    pub(super) host_ttl: Duration,
    /// How long a renewed lane is this host's, unless it is gone before.
    pub(super) lease: Duration,
    /// How long before other hosts may take its lanes over a host that cannot beat stops
    /// claiming for them.
    pub(super) margin: Duration,
    /// How long a host's demand for a webhook outlasts its last event and entry here.
    pub(super) linger: Duration,
}

impl Timing {
    pub(super) const DEFAULT: Timing = Timing {
        heartbeat: Duration::from_secs(1),
        host_ttl: Duration::from_secs(5),
        lease: Duration::from_secs(10),
        margin: Duration::from_secs(2),
        linger: Duration::from_secs(5),
    };

    /// How long after its last successful beat a host treats every lane as lost: others
    /// may take them over once it is unseen for `host_ttl` (deemed gone) or once its leases
    /// expire, whichever comes first.
    fn stale(&self) -> Duration {
        self.host_ttl.min(self.lease).saturating_sub(self.margin)
    }

    /// How long after its demand for a webhook was published a host runs its share: every
    /// other host in touch has read it by then, a beat ago at least.
    fn establish(&self) -> Duration {
        self.stale() + self.heartbeat
    }
}

/// A `NOTIFY` payload at most (PostgreSQL's limit is 8,000 bytes): longer lists of webhooks
/// are sent as "every webhook".
const PAYLOAD_MAX: usize = 7900;

/// A process's lanes, as it knows them.
pub(super) struct Lanes {
    pub(super) timing: Timing,
    /// Held by claims, beats, acquisitions and releases (see the module docs).
    pub(super) busy: tokio::sync::Mutex<()>,
    /// Told when a lane's last write claiming as written is over.
    settled: tokio::sync::Notify,
    /// Bumped whenever shares may have changed (the live hosts, their demand, or this host's
    /// established).
    shares: AtomicU64,
    /// Whether this host shares webhooks at all.
    sharing: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The live hosts as last read, this one included, sorted.
    hosts: Vec<Uuid>,
    /// The lanes this process owns, as last renewed, acquired or released.
    owned: HashSet<String>,
    /// Lanes reported for release (draining, lost, or all when stale) and not released yet:
    /// claims skip them.
    releasing: HashSet<String>,
    /// When the last successful beat started.
    beaten: Option<Instant>,
    /// Webhooks new entries were written for, to consider acquiring at the next claim.
    fresh: HashSet<String>,
    /// Consider every webhook with entries at the next claim (another host wrote some and
    /// did not say for which webhooks, or notifications may have been lost).
    scan: bool,
    /// Webhooks this process wrote entries for or released a lane of, for the next
    /// `NOTIFY`.
    tell: HashSet<String>,
    /// Writes claiming entries as written in flight, per webhook.
    writes: HashMap<String, usize>,
    /// Webhooks with entries claimed as written since the last beat.
    written: HashSet<String>,
    /// Lanes the beat under way may forget: no entry is claimed as written for them.
    forgetting: HashSet<String>,
    /// This host's demand for shared webhooks (see [`demand`]).
    demand: HashMap<String, Demand>,
    /// Whether `demand` changed since the last beat published it.
    demand_changed: bool,
    /// The other live hosts with demand for each webhook, as last read.
    others: HashMap<String, Vec<Demanding>>,
    /// When the beat whose read `others` holds started.
    read: Option<Instant>,
    /// When the next of `others` starts counting in a split, if one is yet to.
    recount: Option<Instant>,
    /// The webhooks whose demand was established at the last beat.
    established: HashSet<String>,
    /// Webhooks whose share this host handed back: not kept until the hosts change.
    declined: HashSet<String>,
}

impl Lanes {
    pub(super) fn new(timing: Timing) -> Lanes {
        Lanes {
            timing,
            busy: tokio::sync::Mutex::new(()),
            settled: tokio::sync::Notify::new(),
            shares: AtomicU64::new(0),
            sharing: AtomicBool::new(true),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This process wrote entries for these webhooks: whether its own engine has work to claim
    /// for them (as in [`Lanes::heard`]: a lane it owns or should take — a claim for the others
    /// finds nothing), and whether other hosts must hear of some. A lane this process holds
    /// (and is not giving up) needs no `NOTIFY`: no other host may claim from it, and its
    /// hand-over is announced when it comes.
    pub(super) fn wrote<'a>(&self, webhooks: impl IntoIterator<Item = &'a str>, me: Uuid) -> (bool, bool) {
        let mut state = self.state();
        let keeping = !self.stale(&state);
        let (mut wake, mut tell) = (false, false);
        for webhook in webhooks {
            if !state.fresh.contains(webhook) {
                state.fresh.insert(webhook.to_owned());
            }
            wake |= works(&state, webhook, me);
            if !(keeping && state.owned.contains(webhook) && !state.releasing.contains(webhook)) {
                tell = true;
                if !state.tell.contains(webhook) {
                    state.tell.insert(webhook.to_owned());
                }
            }
        }
        (wake, tell)
    }

    /// Another host wrote entries for these webhooks (`None`: for any); `true` if this host
    /// has work to claim for them: it owns one of their lanes, or should take one. The others
    /// are left to their owners — a claim here would walk the whole backlog to find nothing.
    pub(super) fn heard(&self, webhooks: Option<Vec<String>>, me: Uuid) -> bool {
        let mut state = self.state();
        let Some(webhooks) = webhooks else {
            state.scan = true;
            return true;
        };
        let wake = webhooks.iter().any(|webhook| works(&state, webhook, me));
        state.fresh.extend(webhooks);
        wake
    }

    /// Starts a write that claims as written the entries of those of these webhooks (whose
    /// deliveries may go in any order) that this host keeps (see [`Lanes::keeps`]), and
    /// records this host's demand for them all. The kept ones count as written to until the
    /// returned [`Writing`] is dropped — once the entries are committed and kept, or the
    /// write failed.
    pub(super) fn writing<'w>(&self, webhooks: impl IntoIterator<Item = &'w str>) -> Writing<'_> {
        let mut guard = self.state();
        let state = &mut *guard;
        let mut kept = HashSet::new();
        // Once per group, not per delivery: this is ingest's path.
        let (sharing, now) = (self.sharing(), Instant::now());
        for webhook in webhooks {
            if sharing && !state.declined.contains(webhook) {
                demand_for(state, webhook).used = now;
            }
            if kept.contains(webhook) || !self.keeps_in(state, webhook) {
                continue;
            }
            kept.insert(webhook.to_owned());
            *state.writes.entry(webhook.to_owned()).or_default() += 1;
            state.written.insert(webhook.to_owned());
        }
        Writing { lanes: self, webhooks: kept }
    }

    /// Whether this host keeps the entries it writes for `webhook`, if its deliveries may go
    /// in any order: it is in touch, the lane is not being released or forgotten, and it owns
    /// the lane — or shares it (its demand is established, and it has not handed its share
    /// back).
    pub(super) fn keeps(&self, webhook: &str) -> bool {
        self.keeps_in(&self.state(), webhook)
    }

    fn keeps_in(&self, state: &State, webhook: &str) -> bool {
        !self.stale(state)
            && !state.releasing.contains(webhook)
            && !state.forgetting.contains(webhook)
            && (state.owned.contains(webhook)
                || (self.sharing()
                    && !state.declined.contains(webhook)
                    && state.demand.get(webhook).is_some_and(|demand| demand.established(&self.timing))))
    }

    /// Returns once no write claiming as written is in flight for these webhooks. Callers
    /// first make sure none can start (the lanes are releasing or being forgotten, or this
    /// host is out of touch).
    async fn settle(&self, webhooks: &[String]) {
        loop {
            let mut notified = std::pin::pin!(self.settled.notified());
            notified.as_mut().enable();
            if !webhooks.iter().any(|webhook| self.state().writes.contains_key(webhook)) {
                return;
            }
            notified.await;
        }
    }

    /// Whether this host works `webhook`'s deliveries: it owns the lane or should take it.
    pub(super) fn works(&self, webhook: &str, me: Uuid) -> bool {
        works(&self.state(), webhook, me)
    }

    /// The next `NOTIFY`s, as (channel, payload): the webhooks this process wrote entries for
    /// are told to the host that should work each, on that host's own channel — so a write
    /// wakes one listener, not every host's — as this host's id, then the webhooks, one a
    /// line. Told to every host, on the shared channel, as "any webhook" (the id alone): when
    /// this host is out of touch (its view of the live hosts may be old), for a webhook no
    /// host is preferred for, or for more webhooks than a payload holds. Nothing when there is
    /// nothing to tell, nor for webhooks this host should work itself (its engine was woken).
    pub(super) fn announcements(&self, me: Uuid) -> Vec<(String, String)> {
        let mut state = self.state();
        let tell = std::mem::take(&mut state.tell);
        let everyone = || vec![(queue::CHANNEL.to_owned(), me.to_string())];
        if tell.is_empty() {
            return Vec::new();
        }
        if self.stale(&state) {
            return everyone();
        }
        let mut by_host: BTreeMap<Uuid, String> = BTreeMap::new();
        for webhook in &tell {
            match preferred(&state.hosts, webhook) {
                Some(host) if host == me => {}
                Some(host) if !webhook.contains('\n') => {
                    let payload = by_host.entry(host).or_insert_with(|| me.to_string());
                    if payload.len() + 1 + webhook.len() > PAYLOAD_MAX {
                        return everyone();
                    }
                    payload.push('\n');
                    payload.push_str(webhook);
                }
                _ => return everyone(),
            }
        }
        by_host.into_iter().map(|(host, payload)| (queue::host_channel(host), payload)).collect()
    }

    fn stale(&self, state: &State) -> bool {
        state.beaten.is_none_or(|at| at.elapsed() > self.timing.stale())
    }

    /// The lanes to release (see the module docs); each stays reported until released.
    pub(super) fn to_release(&self) -> Vec<String> {
        let mut state = self.state();
        if self.stale(&state) {
            let held: Vec<String> = state.owned.iter().chain(state.demand.keys()).cloned().collect();
            state.releasing.extend(held);
        }
        let mut lanes: Vec<String> = state.releasing.iter().cloned().collect();
        lanes.sort_unstable();
        lanes
    }

    /// The lanes a claim must skip; `None` when it must take nothing (this host lost touch).
    pub(super) fn skipped(&self) -> Option<Vec<String>> {
        let state = self.state();
        (!self.stale(&state)).then(|| state.releasing.iter().cloned().collect())
    }

    /// What a claim should try to acquire first.
    fn wanted(&self, me: Uuid) -> Wanted {
        let mut state = self.state();
        if std::mem::take(&mut state.scan) {
            state.fresh.clear();
            return Wanted::Every;
        }
        let fresh = std::mem::take(&mut state.fresh);
        let webhooks: Vec<String> = fresh
            .into_iter()
            .filter(|webhook| !state.owned.contains(webhook) && preferred(&state.hosts, webhook) == Some(me))
            .collect();
        if webhooks.is_empty() { Wanted::Nothing } else { Wanted::These(webhooks) }
    }

    #[cfg(test)]
    pub(super) fn hosts(&self) -> Vec<Uuid> {
        self.state().hosts.clone()
    }

    #[cfg(test)]
    pub(super) fn owned(&self) -> Vec<String> {
        let mut owned: Vec<String> = self.state().owned.iter().cloned().collect();
        owned.sort_unstable();
        owned
    }
}

enum Wanted {
    Nothing,
    These(Vec<String>),
    Every,
}

/// A write claiming entries as written, in flight (see [`Lanes::writing`]).
pub(super) struct Writing<'a> {
    lanes: &'a Lanes,
    webhooks: HashSet<String>,
}

impl Writing<'_> {
    /// The webhooks whose entries it claims as written.
    pub(super) fn webhooks(&self) -> &HashSet<String> {
        &self.webhooks
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut state = self.lanes.state();
        let mut settled = false;
        for webhook in &self.webhooks {
            if let Some(writes) = state.writes.get_mut(webhook) {
                *writes -= 1;
                if *writes == 0 {
                    state.writes.remove(webhook);
                    settled = true;
                }
            }
        }
        drop(state);
        if settled {
            self.lanes.settled.notify_waiters();
        }
    }
}

/// Whether `me` works `webhook`'s lane: it owns the lane or should take it.
fn works(state: &State, webhook: &str, me: Uuid) -> bool {
    state.owned.contains(webhook) || preferred(&state.hosts, webhook) == Some(me)
}

/// The host that should work `webhook`'s lane: of `hosts`, the one with the highest hash of
/// (host, webhook) — the same answer on every host that sees the same hosts.
pub(super) fn preferred(hosts: &[Uuid], webhook: &str) -> Option<Uuid> {
    hosts.iter().copied().max_by_key(|host| {
        let digest = Sha256::new().chain_update(host.as_bytes()).chain_update(webhook.as_bytes()).finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first), *host)
    })
}

/// Milliseconds, for SQL (`$n::int8 * interval '1 millisecond'`).
fn ms(duration: Duration) -> i64 {
    int(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(lanes: &Lanes, owned: &[&str], releasing: &[&str]) {
        let mut state = lanes.state();
        state.beaten = Some(Instant::now());
        state.owned = owned.iter().map(|w| (*w).to_owned()).collect();
        state.releasing = releasing.iter().map(|w| (*w).to_owned()).collect();
    }

    #[test]
    fn writes_are_announced_to_the_host_that_works_them_only() {
        let lanes = Lanes::new(Timing::DEFAULT);
        let (me, other) = (Uuid::nil(), Uuid::max());
        // `other` is the only live host this one knows of: every lane is preferably its.
        lanes.state().hosts = vec![other];
        holding(&lanes, &["mine", "leaving"], &["leaving"]);
        assert_eq!(lanes.wrote(["mine"], me), (true, false), "no other host may claim from it");
        assert!(lanes.announcements(me).is_empty(), "nothing to tell");
        assert_eq!(lanes.wrote(["mine", "theirs", "leaving"], me), (true, true));
        let told = lanes.announcements(me);
        assert_eq!(told.len(), 1, "{told:?}");
        let (channel, payload) = &told[0];
        assert_eq!(*channel, queue::host_channel(other), "on the channel of the host that should work them");
        assert!(payload.starts_with(&me.to_string()), "{payload}");
        assert!(
            payload.contains("theirs") && payload.contains("leaving") && !payload.contains("mine"),
            "{payload}"
        );
        assert_eq!(lanes.wrote([], me), (false, false));
        assert_eq!(lanes.wrote(["theirs"], me), (false, true), "only the host that works it claims");
        lanes.announcements(me);

        let everyone = vec![(queue::CHANNEL.to_owned(), me.to_string())];
        lanes.state().hosts.clear();
        lanes.wrote(["theirs"], me);
        assert_eq!(lanes.announcements(me), everyone, "no host to tell: every host looks");
        lanes.state().hosts = vec![other];
        lanes.state().beaten = None;
        assert_eq!(lanes.wrote(["mine"], me), (true, true), "out of touch: others may hold it by now");
        assert_eq!(lanes.announcements(me), everyone, "and its view of the hosts may be old");
    }
}
