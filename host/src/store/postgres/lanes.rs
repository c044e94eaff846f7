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
//! - Sharing: a webhook whose deliveries may go in any order and that has no `rateLimit` is
//!   worked by every host with *demand* for it (that ingests its events or holds its
//!   entries): each keeps the entries it ingests (claimed as written, below) and runs at
//!   most its share of the webhook's concurrency cap — the cap divided among the hosts with
//!   demand, the remainder to the first in id order ([`Lanes::share`]). So the cap holds for
//!   all hosts together, a host that takes all of a webhook's events runs all of its cap,
//!   and an entry ingested is never read back or announced.
//!   - Each host publishes its demand in its `hosts` row when it changes, and reads the
//!     others' at every beat.
//!   - A host keeps and runs a share only once its demand is *established*: published
//!     [`Timing::stale`] and a heartbeat ago, so every host in touch has seen it and shrunk
//!     its own share. Until then it writes its entries unclaimed, for the lane owner.
//!   - The others count a host's new demand in their split only from a heartbeat before it
//!     can be established ([`State::read_demand`]): until then their parts stay as they
//!     were, so a lane owner that ran the whole cap goes on running it for the newcomer's
//!     events it takes.
//!   - The lane owner, when no other host has demand for the webhook, runs the whole cap at
//!     once: no other host may be running any (its demand would have been published a
//!     while ago), and the owner's is seen before anyone else's is established.
//!   - Demand lasts while the engine holds entries of the webhook, then [`Timing::linger`]
//!     more — as it does after each event ingested — so that a host that sees a webhook's
//!     events now and then stays established.
//!   - A host whose share is nothing hands what it kept back (a release of a lane it does
//!     not own), drops its demand and keeps no more of that webhook until the hosts change.
//!   - `ordered` webhooks, and those with a `rateLimit`, are worked by their lane owner
//!     alone, as is every webhook on a host told not to share ([`Lanes::share_webhooks`]).
//! - Losing touch: a host whose last successful beat is [`Timing::stale`] old stops claiming
//!   and reports every lane it holds or has demand for: others may soon consider it gone
//!   (after `host_ttl`) or its leases expired (after `lease`), and take its lanes over. Back
//!   in touch, it publishes its demand again and waits for it to be established. So does a
//!   host whose beat finds its `hosts` row deleted (a beat held up past `host_ttl`: the
//!   others deemed it gone).
//! - A host that sees another leave returns the entries still claimed by hosts no longer live
//!   on its own lanes (a turn that a host finished after its lane was taken over).
//! - Closing deletes this process's lanes and its `hosts` row: others take over at once.
//! - Claimed as written: ingest marks the entries it writes for a lane this host keeps (owns
//!   or shares, is not releasing, is in touch) with this process's id at once, and hands them to its own
//!   engine without a claim (see `ingest.rs`). Such writes are counted per lane while in
//!   flight ([`Lanes::writing`]). Whatever gives a lane up in the database — a release, the
//!   beat forgetting an empty lane or releasing an idle one — first stops new ones for that
//!   lane, then waits for those in flight to be committed and kept: it never misses an entry
//!   claimed as written, and ingest never waits for it. The beat only forgets lanes with no
//!   such write since the one before (others are hardly empty).
//!
//! Claims, beats, acquisitions and releases of one process take turns (`Lanes::busy`), so
//! none sees what this process owns halfway through another's change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Shared, int, pg_error, pool_error_text, queue};
use crate::store::StoreError;

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
    /// This host's demand for shared webhooks (see the module docs, Sharing).
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

/// This host's demand for a shared webhook.
struct Demand {
    /// When a beat first published it (its statement done); `None` until then.
    published: Option<Instant>,
    /// When it last ingested the webhook's events or its engine held entries of it.
    used: Instant,
    /// Its engine holds entries of the webhook (from [`Lanes::share`] to [`Lanes::emptied`]).
    held: bool,
    /// The lane owner runs the whole cap with no other host's demand in view: established.
    alone: bool,
}

impl Demand {
    fn established(&self, timing: &Timing) -> bool {
        self.alone || self.published.is_some_and(|at| at.elapsed() >= timing.establish())
    }
}

/// Another live host with demand for a webhook, as this host read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Demanding {
    host: Uuid,
    /// From when this host counts it in the webhook's split (see the module docs, Sharing).
    counted_from: Instant,
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

    /// Off: this host keeps and runs only what its lanes hold, each with the whole cap.
    pub(super) fn share_webhooks(&self, on: bool) {
        self.sharing.store(on, Ordering::Relaxed);
        self.shares.fetch_add(1, Ordering::Relaxed);
    }

    fn sharing(&self) -> bool {
        self.sharing.load(Ordering::Relaxed)
    }

    /// How many of a webhook's deliveries (capped at `cap` for all hosts together) this host
    /// may run at once, asked when its engine holds entries of the webhook; `None` when it
    /// runs none and does not work the lane, so should hand back what it holds. Not `shared`
    /// (`ordered`, or with a `rateLimit`): the whole cap for the lane owner, none for the
    /// others. Shared: a part of the cap among the hosts with demand for the webhook, nothing
    /// before this host's demand is established (see the module docs); this host's demand
    /// lasts until [`Lanes::emptied`] and `linger` after.
    pub(super) fn share(&self, webhook: &str, cap: usize, shared: bool, me: Uuid) -> Option<usize> {
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
    pub(super) fn emptied(&self, webhook: &str) {
        if let Some(demand) = self.state().demand.get_mut(webhook) {
            demand.held = false;
            demand.used = Instant::now();
        }
    }

    /// Drops the demand that lingered out (see the module docs), and returns this host's
    /// demand if it changed since the last beat published it — all of it, to be established
    /// again, when this host is out of touch (it may have been deemed gone).
    fn demand_to_publish(&self) -> Option<Vec<String>> {
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
    fn demand_published(&self, sent: &[String], through: bool) {
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
    pub(super) fn shares_version(&self) -> u64 {
        let mut state = self.state();
        let now = Instant::now();
        if state.recount.is_some_and(|at| at <= now) {
            state.recount = next_count(&state.others, now);
            self.shares.fetch_add(1, Ordering::Relaxed);
        }
        self.shares.load(Ordering::Relaxed)
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
    fn read_demand(
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
fn demand_for<'s>(state: &'s mut State, webhook: &str) -> &'s mut Demand {
    if !state.demand.contains_key(webhook) {
        state.demand_changed = true;
        let demand = Demand { published: None, used: Instant::now(), held: false, alone: false };
        state.demand.insert(webhook.to_owned(), demand);
    }
    state.demand.get_mut(webhook).expect("recorded above")
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

/// Upserts this host with its demand (`$3`; `NULL`: unchanged), deletes the hosts unseen for
/// the time to live, and reads the others that are live, with their demand (none: one row of
/// `NULL`s), each row saying whether this host's row was inserted rather than updated. (The
/// `SELECT` sees the table as it was before the statement.)
const BEAT_HOSTS: &str = "
WITH seen AS (
    INSERT INTO hosts (id, seen_at, demand) VALUES ($1, now(), coalesce($3::text[], '{}'))
    ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, demand = coalesce($3::text[], hosts.demand)
    RETURNING xmax = 0 AS inserted
), gone AS (
    DELETE FROM hosts WHERE id <> $1 AND seen_at < now() - $2::int8 * interval '1 millisecond'
)
SELECT h.id, h.demand, seen.inserted FROM seen LEFT JOIN hosts h
    ON h.id <> $1 AND h.seen_at >= now() - $2::int8 * interval '1 millisecond'";

/// Forgets this host's lanes among `$3` of webhooks without queue entries (`true`) and
/// renews the rest (`false`).
const BEAT_LANES: &str = "
WITH forgotten AS (
    DELETE FROM lanes l WHERE owner = $1 AND webhook_id = ANY($3::text[])
        AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.webhook_id = l.webhook_id)
    RETURNING webhook_id
), renewed AS (
    UPDATE lanes SET expires_at = now() + $2::int8 * interval '1 millisecond'
    WHERE owner = $1 AND webhook_id NOT IN (SELECT webhook_id FROM forgotten)
    RETURNING webhook_id
)
SELECT webhook_id, true FROM forgotten UNION ALL SELECT webhook_id, false FROM renewed";

/// Of the lanes reported for release, those this process holds no claim of (so its engine
/// holds nothing of them): deleted if still its own, and returned.
const RELEASE_IDLE: &str = "
WITH idle AS (
    SELECT r.webhook_id FROM unnest($2::text[]) AS r(webhook_id)
    WHERE NOT EXISTS (SELECT 1 FROM queue q WHERE q.webhook_id = r.webhook_id AND q.claimed_by = $1)
), released AS (
    DELETE FROM lanes WHERE owner = $1 AND webhook_id IN (SELECT webhook_id FROM idle)
)
SELECT webhook_id FROM idle";

/// Returns the entries of this host's lanes claimed by processes no longer live.
const RETURN_ORPHANS: &str = "
UPDATE queue SET claimed_by = NULL
WHERE webhook_id IN (SELECT webhook_id FROM lanes WHERE owner = $1)
    AND claimed_by <> $1
    AND claimed_by NOT IN (SELECT id FROM hosts WHERE seen_at >= now() - $2::int8 * interval '1 millisecond')";

/// The webhooks with queue entries whose lane no live host holds: a skip scan, one index
/// probe per webhook with entries, however many entries each has.
const UNOWNED: &str = "
WITH RECURSIVE w(webhook_id) AS (
    (SELECT webhook_id FROM queue ORDER BY webhook_id LIMIT 1)
    UNION ALL
    SELECT (SELECT q.webhook_id FROM queue q WHERE q.webhook_id > w.webhook_id
            ORDER BY q.webhook_id LIMIT 1)
    FROM w WHERE w.webhook_id IS NOT NULL
)
SELECT w.webhook_id FROM w
WHERE w.webhook_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM lanes l WHERE l.webhook_id = w.webhook_id AND l.expires_at >= now()
        AND l.owner IN (SELECT id FROM hosts WHERE seen_at >= now() - $1::int8 * interval '1 millisecond'))";

/// Takes the lanes of these webhooks (those with queue entries) that are missing, expired or
/// held by a host no longer live, and returns the entries of the lanes taken that their
/// previous owner or a process no longer live claimed (not those live hosts keep as their
/// share); returns the webhooks taken. (Every part sees the lanes as they were before.)
const ACQUIRE: &str = "
WITH previous AS (
    SELECT webhook_id, owner FROM lanes WHERE webhook_id = ANY($2::text[])
), taken AS (
    INSERT INTO lanes (webhook_id, owner, expires_at)
    SELECT c.webhook_id, $1, now() + $3::int8 * interval '1 millisecond'
    FROM unnest($2::text[]) AS c(webhook_id)
    WHERE EXISTS (SELECT 1 FROM queue q WHERE q.webhook_id = c.webhook_id)
    ON CONFLICT (webhook_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
        WHERE lanes.expires_at < now() OR lanes.owner NOT IN (
            SELECT id FROM hosts WHERE seen_at >= now() - $4::int8 * interval '1 millisecond')
    RETURNING webhook_id
), returned AS (
    UPDATE queue q SET claimed_by = NULL
    FROM taken t LEFT JOIN previous p ON p.webhook_id = t.webhook_id
    WHERE q.webhook_id = t.webhook_id AND q.claimed_by <> $1
        AND (q.claimed_by = p.owner OR q.claimed_by NOT IN (
            SELECT id FROM hosts WHERE seen_at >= now() - $4::int8 * interval '1 millisecond'))
)
SELECT webhook_id FROM taken";

/// Beats every [`Timing::heartbeat`] for as long as the store is open (the first beat is
/// [`PgStore::open`](super::PgStore::open)'s).
pub(super) async fn heartbeat(shared: Arc<Shared>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(shared.lanes.timing.heartbeat).await;
        match beat(&shared).await {
            Ok(()) if failing => {
                tracing::info!("this host's heartbeat reaches the database again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) if !failing => {
                tracing::warn!(%error, "this host's heartbeat failed; its lanes go to other hosts if it goes on failing");
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "this host's heartbeat failed again"),
        }
    }
}

/// One beat (see the module docs).
pub(super) async fn beat(shared: &Shared) -> Result<(), StoreError> {
    let lanes = &shared.lanes;
    let timing = lanes.timing;
    let me = shared.me;
    let _busy = lanes.busy.lock().await;
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    let started = Instant::now();
    let demand = lanes.demand_to_publish();
    let rows = match client.prepare_cached(BEAT_HOSTS).await {
        Ok(statement) => client.query(&statement, &[&me, &ms(timing.host_ttl), &demand]).await,
        Err(error) => Err(error),
    };
    if let Some(sent) = &demand {
        lanes.demand_published(sent, rows.is_ok());
    }
    let rows = rows.map_err(pg_error)?;
    let reinserted = rows.first().is_some_and(|row| row.get::<_, bool>(2));
    if reinserted && lanes.state().beaten.is_some() {
        // Another host deleted this one's row, deeming it gone (a beat held up past
        // `host_ttl`): it may have taken this host's lanes, and saw none of its demand.
        tracing::warn!("other hosts deemed this host gone: it gives its lanes up and joins again");
        lanes.state().beaten = None;
        return Ok(());
    }
    let others_rows: Vec<(Uuid, Vec<String>)> =
        rows.iter().filter_map(|row| Some((row.get::<_, Option<Uuid>>(0)?, row.get(1)))).collect();
    let mut hosts: Vec<Uuid> = others_rows.iter().map(|(host, _)| *host).collect();
    hosts.push(me);
    hosts.sort_unstable();
    let mut others: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (host, demand) in others_rows {
        for webhook in demand {
            others.entry(webhook).or_default().push(host);
        }
    }
    for hosts in others.values_mut() {
        hosts.sort_unstable();
    }
    let statement = client.prepare_cached(BEAT_LANES).await.map_err(pg_error)?;
    // Lanes that may be empty: none written to since the last beat, nor now.
    let forgettable: Vec<String> = {
        let mut state = lanes.state();
        let written = std::mem::take(&mut state.written);
        let forgettable: HashSet<String> = state
            .owned
            .iter()
            .filter(|webhook| !written.contains(*webhook) && !state.writes.contains_key(*webhook))
            .cloned()
            .collect();
        state.forgetting.clone_from(&forgettable);
        forgettable.into_iter().collect()
    };
    let rows = match client.query(&statement, &[&me, &ms(timing.lease), &forgettable]).await {
        Ok(rows) => rows,
        Err(error) => {
            lanes.state().forgetting.clear();
            return Err(pg_error(error));
        }
    };
    let (mut renewed, mut forgotten) = (HashSet::new(), HashSet::new());
    for row in rows {
        let (webhook, gone): (String, bool) = (row.get(0), row.get(1));
        if gone {
            forgotten.insert(webhook)
        } else {
            renewed.insert(webhook)
        };
    }

    let (departed, newly_reported, reported) = {
        let mut state = lanes.state();
        let departed = state.hosts.iter().any(|host| hosts.binary_search(host).is_err());
        for webhook in &forgotten {
            state.releasing.remove(webhook);
        }
        // Owned before, not renewed now and not forgotten: another host took it over.
        let lost: Vec<String> = state
            .owned
            .iter()
            .filter(|w| !renewed.contains(*w) && !forgotten.contains(*w))
            .cloned()
            .collect();
        let draining = renewed.iter().filter(|webhook| preferred(&hosts, webhook) != Some(me)).cloned();
        let mut newly_reported = false;
        for webhook in lost.into_iter().chain(draining) {
            newly_reported |= state.releasing.insert(webhook);
        }
        state.owned = renewed;
        state.forgetting.clear();
        state.beaten = Some(started);
        let established: HashSet<String> = state
            .demand
            .iter()
            .filter(|(_, demand)| demand.established(&timing))
            .map(|(webhook, _)| webhook.clone())
            .collect();
        let hosts_before = std::mem::replace(&mut state.hosts, hosts);
        let hosts_changed = state.hosts != hosts_before;
        if hosts_changed {
            // A webhook handed back may be kept again.
            state.declined.clear();
        }
        let demand_changed = state.read_demand(others, &hosts_before, started, &timing);
        if hosts_changed || demand_changed || state.established != established {
            state.established = established;
            lanes.shares.fetch_add(1, Ordering::Relaxed);
        }
        (departed, newly_reported, state.releasing.iter().cloned().collect::<Vec<String>>())
    };
    let mut wake = newly_reported;

    if !reported.is_empty() {
        let statement = client.prepare_cached(RELEASE_IDLE).await.map_err(pg_error)?;
        // An entry claimed as written but not committed yet is a claim it would not see.
        lanes.settle(&reported).await;
        let rows = client.query(&statement, &[&me, &reported]).await.map_err(pg_error)?;
        let idle: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        if !idle.is_empty() {
            let mut state = lanes.state();
            for webhook in &idle {
                state.owned.remove(webhook);
                state.releasing.remove(webhook);
                state.tell.insert(webhook.clone());
            }
            drop(state);
            shared.announce.notify_one();
        }
    }
    if departed {
        let statement = client.prepare_cached(RETURN_ORPHANS).await.map_err(pg_error)?;
        let returned = client.execute(&statement, &[&me, &ms(timing.host_ttl)]).await.map_err(pg_error)?;
        if returned > 0 {
            tracing::info!(returned, "returned deliveries claimed by hosts that left");
            wake = true;
        }
    }
    wake |= acquire_unowned(&client, shared).await?;
    if wake {
        shared.wake_to_claim();
    }
    Ok(())
}

/// Before a claim: acquires the lanes of webhooks new entries were written for, if this host
/// should own them. Called with `Lanes::busy` held.
pub(super) async fn acquire_wanted(shared: &Shared) -> Result<(), StoreError> {
    let wanted = shared.lanes.wanted(shared.me);
    if matches!(wanted, Wanted::Nothing) {
        return Ok(());
    }
    // A lease waits for its commit to be durable: the queue's connections would not.
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    match wanted {
        Wanted::Nothing => Ok(()),
        Wanted::These(webhooks) => acquire(&client, shared, webhooks).await.map(drop),
        Wanted::Every => acquire_unowned(&client, shared).await.map(drop),
    }
}

/// Acquires every lane no live host holds that this host should own; `true` if it took any.
async fn acquire_unowned(client: &deadpool_postgres::Client, shared: &Shared) -> Result<bool, StoreError> {
    let statement = client.prepare_cached(UNOWNED).await.map_err(pg_error)?;
    let rows = client.query(&statement, &[&ms(shared.lanes.timing.host_ttl)]).await.map_err(pg_error)?;
    let mine: Vec<String> = {
        let state = shared.lanes.state();
        rows.iter()
            .map(|row| row.get::<_, String>(0))
            .filter(|webhook| preferred(&state.hosts, webhook) == Some(shared.me))
            .collect()
    };
    Ok(!acquire(client, shared, mine).await?.is_empty())
}

/// Takes these webhooks' lanes where they are free (see [`ACQUIRE`]); returns those taken.
async fn acquire(
    client: &deadpool_postgres::Client,
    shared: &Shared,
    webhooks: Vec<String>,
) -> Result<Vec<String>, StoreError> {
    if webhooks.is_empty() {
        return Ok(Vec::new());
    }
    let timing = shared.lanes.timing;
    let statement = client.prepare_cached(ACQUIRE).await.map_err(pg_error)?;
    let rows = client
        .query(&statement, &[&shared.me, &webhooks, &ms(timing.lease), &ms(timing.host_ttl)])
        .await
        .map_err(pg_error)?;
    let taken: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    if !taken.is_empty() {
        tracing::debug!(lanes = taken.len(), "acquired webhook lanes");
        shared.lanes.state().owned.extend(taken.iter().cloned());
    }
    Ok(taken)
}

/// Gives up a lane, or hands back a share of one: this process's claims of the webhook's
/// entries are returned and the lane deleted (if this host's), in one transaction; then
/// other hosts hear of it. A share handed back while in touch is declined: this host keeps
/// no more of the webhook until the hosts change.
pub(super) async fn release(shared: &Shared, webhook: &str) -> Result<(), StoreError> {
    let _busy = shared.lanes.busy.lock().await;
    let mut client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    // No entry of it claimed as written from now on, and none left uncommitted.
    shared.lanes.state().releasing.insert(webhook.to_owned());
    shared.lanes.settle(&[webhook.to_owned()]).await;
    let transaction = client.transaction().await.map_err(pg_error)?;
    let returned = transaction
        .prepare_cached("UPDATE queue SET claimed_by = NULL WHERE webhook_id = $1 AND claimed_by = $2");
    let deleted = transaction.prepare_cached("DELETE FROM lanes WHERE webhook_id = $1 AND owner = $2");
    let (returned, deleted) = tokio::try_join!(returned, deleted).map_err(pg_error)?;
    transaction.execute(&returned, &[&webhook, &shared.me]).await.map_err(pg_error)?;
    transaction.execute(&deleted, &[&webhook, &shared.me]).await.map_err(pg_error)?;
    transaction.commit().await.map_err(pg_error)?;
    // Returned in the database: no longer this engine's to take.
    shared.kept().retain(|entry| entry.webhook_id != webhook);
    let mut state = shared.lanes.state();
    if !state.owned.remove(webhook) && !shared.lanes.stale(&state) {
        state.declined.insert(webhook.to_owned());
        if state.demand.remove(webhook).is_some() {
            state.demand_changed = true;
        }
    } else if let Some(demand) = state.demand.get_mut(webhook) {
        demand.alone = false;
    }
    state.releasing.remove(webhook);
    state.tell.insert(webhook.to_owned());
    // Should it be this host's after all (it had lost touch), the next claim takes it back.
    state.fresh.insert(webhook.to_owned());
    drop(state);
    shared.announce.notify_one();
    shared.wake_to_claim();
    Ok(())
}

/// On a clean stop: deletes this process's lanes and its `hosts` row, and tells the other
/// hosts, which take the lanes over at once (and return this process's claims).
pub(super) async fn leave(shared: &Shared, channel: &str) -> Result<(), StoreError> {
    let _busy = shared.lanes.busy.lock().await;
    let client = shared.pool.get().await.map_err(|e| StoreError::Unavailable(pool_error_text(&e)))?;
    let held: Vec<String> = {
        let mut state = shared.lanes.state();
        state.beaten = None; // out of touch: nothing more is claimed as written
        state.owned.iter().chain(state.demand.keys()).cloned().collect()
    };
    shared.lanes.settle(&held).await;
    let me = shared.me;
    client.execute("DELETE FROM lanes WHERE owner = $1", &[&me]).await.map_err(pg_error)?;
    client.execute("DELETE FROM hosts WHERE id = $1", &[&me]).await.map_err(pg_error)?;
    {
        let mut state = shared.lanes.state();
        state.owned.clear();
        state.demand.clear();
        state.releasing.clear();
    }
    client.execute("SELECT pg_notify($1, $2)", &[&channel, &me.to_string()]).await.map_err(pg_error)?;
    Ok(())
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
