//! Several replicas on one PostgreSQL store: this replica's shard leases and what it follows.
//!
//! One task per replica ([`start`]):
//!
//! * every third of the lease (± 20 % jitter) it renews its heartbeat and all its leases in
//!   one statement each ([`Shards::renew`]). A lease the database did not renew is lost:
//!   its executions are let go without writing. A lease is trusted locally only until the
//!   time the renewal was *sent* plus the lease, less a tenth of it: when renewals fail (the
//!   database is down), the shards are let go before the database would let anyone else
//!   take them, and their writes are fenced anyway;
//! * it balances: each live replica holds about `shards / live replicas` (rounded up). One
//!   holding more releases the excess; one holding less acquires free or expired shards
//!   ([`Shards::acquire`], random order, `SKIP LOCKED`), and loads their active executions
//!   (by the stored `next_poll_at`: due ones are polled at once);
//! * it listens for executions any replica records (`LISTEN/NOTIFY`) and takes those of its
//!   shards it does not follow yet; after a lost connection, and every lease period as a
//!   safety net, it looks for them ([`Shards::untriggered_in`]);
//! * at shutdown it gives every shard up at once ([`Shards::leave`]).
//!
//! What this replica follows is kept by key (`Followed`): an execution is started at most
//! once per process, and a shard lost is not acquired again until every execution of it has
//! been let go here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Runner;
use crate::internal_events::{ShardChange, ShardsChanged};
use crate::model::shard::{Fence, execution_key, shard_of_key};
use crate::store::{Shards, Wake};
use crate::tracker::ExecutionReport;

/// At most this long after a dead replica's lease expired, a live one tries to take its
/// shards (a random part of it, so that the replicas do not all try at once).
pub const TAKEOVER_JITTER: Duration = Duration::from_millis(500);

/// A shard held here.
#[derive(Debug, Clone, Copy)]
struct Lease {
    epoch: i64,
    /// Not trusted from this instant on (see the module note).
    trusted_until: Instant,
}

/// What this process follows, by key, and how many of each shard.
#[derive(Debug, Default)]
struct Followed {
    keys: HashSet<u128>,
    per_shard: Vec<u32>,
}

/// This replica's leases and the executions it follows.
pub struct Replica {
    shards: u32,
    lease: Duration,
    held: Mutex<HashMap<u32, Lease>>,
    followed: Mutex<Followed>,
}

impl Replica {
    /// A replica of a database with `shards` shards, leasing for `lease`.
    pub fn new(shards: u32, lease: Duration) -> Replica {
        Replica {
            shards: shards.max(1),
            lease,
            held: Mutex::default(),
            followed: Mutex::new(Followed {
                keys: HashSet::new(),
                per_shard: vec![0; shards.max(1) as usize],
            }),
        }
    }

    fn trusted(&self, lease: &Lease) -> bool {
        Instant::now() < lease.trusted_until
    }

    /// The fence to follow `execution_id` under, when its shard is held here and trusted.
    pub fn fence(&self, execution_id: &str) -> Option<Fence> {
        let shard = shard_of_key(execution_key(execution_id), self.shards);
        let held = self.held.lock().expect("leases lock");
        held.get(&shard).filter(|l| self.trusted(l)).map(|l| Fence {
            shard,
            epoch: l.epoch,
        })
    }

    /// Whether `fence` is still held here and trusted.
    pub fn holds(&self, fence: Fence) -> bool {
        let held = self.held.lock().expect("leases lock");
        held.get(&fence.shard)
            .is_some_and(|l| l.epoch == fence.epoch && self.trusted(l))
    }

    /// Notes that this process starts following `execution_id`; false when it already does.
    pub fn begin(&self, execution_id: &str) -> bool {
        let key = execution_key(execution_id);
        let mut f = self.followed.lock().expect("followed lock");
        if !f.keys.insert(key) {
            return false;
        }
        f.per_shard[shard_of_key(key, self.shards) as usize] += 1;
        true
    }

    /// Notes that this process no longer follows `execution_id`.
    pub fn end(&self, execution_id: &str) {
        let key = execution_key(execution_id);
        let mut f = self.followed.lock().expect("followed lock");
        if f.keys.remove(&key) {
            let n = &mut f.per_shard[shard_of_key(key, self.shards) as usize];
            *n = n.saturating_sub(1);
        }
    }

    /// Whether this process follows `execution_id`.
    pub fn follows(&self, execution_id: &str) -> bool {
        let f = self.followed.lock().expect("followed lock");
        f.keys.contains(&execution_key(execution_id))
    }

    /// Shards not held here whose executions this process has not all let go yet.
    fn draining(&self) -> Vec<u32> {
        let held = self.held.lock().expect("leases lock");
        let f = self.followed.lock().expect("followed lock");
        f.per_shard
            .iter()
            .enumerate()
            .filter(|(s, n)| **n > 0 && !held.contains_key(&(*s as u32)))
            .map(|(s, _)| s as u32)
            .collect()
    }

    /// The shards held here, trusted or not.
    pub fn held(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .held
            .lock()
            .expect("leases lock")
            .keys()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    fn held_count(&self) -> usize {
        self.held.lock().expect("leases lock").len()
    }

    /// Forgets `shards` and lets their executions go (the engine drops them unwritten).
    fn let_go(&self, runner: &Runner, shards: &[u32]) {
        if shards.is_empty() {
            return;
        }
        {
            let mut held = self.held.lock().expect("leases lock");
            for s in shards {
                held.remove(s);
            }
        }
        let gone: HashSet<u32> = shards.iter().copied().collect();
        let count = self.shards;
        runner.engine.release(Arc::new(move |key| {
            gone.contains(&shard_of_key(key, count))
        }));
    }

    /// A write was refused: `fence` is no longer held (another replica took the shard).
    pub fn fenced(&self, runner: &Runner, fence: Fence) {
        let still = {
            let held = self.held.lock().expect("leases lock");
            held.get(&fence.shard)
                .is_some_and(|l| l.epoch == fence.epoch)
        };
        if still {
            self.let_go(runner, &[fence.shard]);
            ShardsChanged {
                change: ShardChange::Lost,
                shards: &[fence.shard],
                held: self.held_count(),
                why: Some(&"a write was fenced: the shard moved"),
            }
            .emit();
        }
    }
}

/// Starts this replica's lease task (when the store is shared); it gives every shard up
/// when the runner stops.
pub fn start(runner: &Arc<Runner>) {
    let Some(replica) = runner.replica.clone() else {
        return;
    };
    let runner = runner.clone();
    let tasks = runner.tasks.clone();
    tasks.spawn(async move {
        let store = runner.store.clone();
        let Some(shards) = store.shards() else {
            return;
        };
        let stop = runner.stop_token();
        let mut wakes = shards.subscribe(stop.clone());
        let mut next_renewal = Instant::now();
        let mut next_scan = Instant::now() + replica.lease;
        let far = || Instant::now() + Duration::from_secs(86_400);
        let mut next_take = far();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(next_renewal) => {
                    next_take = far();
                    if let Some(renewal) = renew(&runner, &replica, shards).await {
                        balance(&runner, &replica, shards, renewal.live_replicas).await;
                        // A lease of another replica that is not renewed by then (it died)
                        // is taken over right after it expires, with jitter (no herd).
                        if let Some(expiry) = renewal.next_expiry {
                            let jitter = TAKEOVER_JITTER.mul_f64(rand::random_range(0.0..1.0));
                            next_take = Instant::now() + expiry + jitter;
                        }
                    }
                    let jitter = rand::random_range(0.8..1.2);
                    next_renewal = Instant::now() + replica.lease.mul_f64(jitter / 3.0);
                }
                // A renewal now (the live replicas counted afresh: the dead one's heartbeat
                // expired with its leases), then the balance takes its share of them.
                () = tokio::time::sleep_until(next_take) => next_renewal = Instant::now(),
                () = tokio::time::sleep_until(next_scan) => {
                    scan(&runner, &replica, shards).await;
                    next_scan = Instant::now() + replica.lease;
                }
                wake = wakes.recv() => match wake {
                    Some(Wake::Recorded(id)) => take(&runner, &replica, &id).await,
                    Some(Wake::Rescan) => scan(&runner, &replica, shards).await,
                    Some(Wake::PollNow(id, job)) => runner.poll_now(&id, job.map(crate::platform::JobRef::instance)),
                    None => break,
                },
            }
        }
        // Everything is given up at once: the others take the shards at their next turn.
        let held = replica.held();
        match tokio::time::timeout(Duration::from_secs(5), shards.leave()).await {
            Ok(Ok(())) => ShardsChanged {
                change: ShardChange::Released,
                shards: &held,
                held: 0,
                why: None,
            }
            .emit(),
            Ok(Err(e)) => tracing::warn!(error = %e, "Cannot give the shards up; they move when their leases expire."),
            Err(_) => tracing::warn!("Giving the shards up took too long; they move when their leases expire."),
        }
    });
}

/// One renewal: renew, and let go of what was lost. `None`: the renewal failed.
async fn renew(
    runner: &Arc<Runner>,
    replica: &Replica,
    shards: &dyn Shards,
) -> Option<crate::store::Renewal> {
    let sent = Instant::now();
    let trusted_until = sent + replica.lease - replica.lease / 10;
    let renewed = tokio::time::timeout(replica.lease / 3, shards.renew(replica.lease)).await;
    let renewal = match renewed {
        Ok(Ok(r)) => r,
        failed => {
            let why: String = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "the renewal took longer than a third of the lease".into(),
            };
            tracing::warn!(error = %why, "Cannot renew the shard leases.");
            // Leases no longer trusted are let go: another replica may take them soon.
            let expired: Vec<u32> = {
                let held = replica.held.lock().expect("leases lock");
                held.iter()
                    .filter(|(_, l)| !replica.trusted(l))
                    .map(|(s, _)| *s)
                    .collect()
            };
            if !expired.is_empty() {
                replica.let_go(runner, &expired);
                ShardsChanged {
                    change: ShardChange::Lost,
                    shards: &expired,
                    held: replica.held_count(),
                    why: Some(&why),
                }
                .emit();
            }
            return None;
        }
    };
    let renewed: HashMap<u32, i64> = renewal.held.iter().map(|f| (f.shard, f.epoch)).collect();
    let lost: Vec<u32> = {
        let mut held = replica.held.lock().expect("leases lock");
        let lost = held
            .iter()
            .filter(|(s, l)| renewed.get(s) != Some(&l.epoch))
            .map(|(s, _)| *s)
            .collect::<Vec<_>>();
        for (s, l) in held.iter_mut() {
            if renewed.get(s) == Some(&l.epoch) {
                l.trusted_until = trusted_until;
            }
        }
        lost
    };
    if !lost.is_empty() {
        replica.let_go(runner, &lost);
        ShardsChanged {
            change: ShardChange::Lost,
            shards: &lost,
            held: replica.held_count(),
            why: Some(&"the lease expired or the shard moved"),
        }
        .emit();
    }
    Some(renewal)
}

/// Balances with `live` replicas: about an equal share each. Releases the excess, or
/// acquires free or expired shards and loads their executions.
async fn balance(runner: &Arc<Runner>, replica: &Replica, shards: &dyn Shards, live: u32) {
    let live = live.max(1);
    let target = replica.shards.div_ceil(live) as usize;
    let held = replica.held();
    if held.len() > target {
        let excess: Vec<u32> = held[target..].to_vec();
        replica.let_go(runner, &excess);
        match shards.release(&excess).await {
            Ok(()) => ShardsChanged {
                change: ShardChange::Released,
                shards: &excess,
                held: replica.held_count(),
                why: None,
            }
            .emit(),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot release shards; they move when their leases expire.")
            }
        }
        return;
    }
    let want = target - held.len();
    if want == 0 {
        crate::metrics::global().shards_held(held.len());
        return;
    }
    // A shard lost recently is not taken back while its executions are still being let go.
    let draining = replica.draining();
    let sent = Instant::now();
    let acquired = match shards.acquire(want as u32, replica.lease).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot acquire shards.");
            return;
        }
    };
    let (keep, give_back): (Vec<_>, Vec<_>) = acquired
        .into_iter()
        .partition(|h| !draining.contains(&h.fence.shard));
    if !give_back.is_empty() {
        let back: Vec<u32> = give_back.iter().map(|h| h.fence.shard).collect();
        let _ = shards.release(&back).await;
    }
    if keep.is_empty() {
        crate::metrics::global().shards_held(replica.held_count());
        return;
    }
    {
        let mut held = replica.held.lock().expect("leases lock");
        for h in &keep {
            held.insert(
                h.fence.shard,
                Lease {
                    epoch: h.fence.epoch,
                    trusted_until: sent + replica.lease - replica.lease / 10,
                },
            );
        }
    }
    let (taken, free): (Vec<&crate::store::Held>, Vec<&crate::store::Held>) =
        keep.iter().partition(|h| h.taken_over);
    for (change, list) in [
        (ShardChange::Acquired, free),
        (ShardChange::TakenOver, taken),
    ] {
        let list: Vec<u32> = list.iter().map(|h| h.fence.shard).collect();
        ShardsChanged {
            change,
            shards: &list,
            held: replica.held_count(),
            why: None,
        }
        .emit();
    }
    let mut loaded: Vec<u32> = keep.iter().map(|h| h.fence.shard).collect();
    loaded.sort_unstable();
    if let Err(e) = load(runner, replica, shards, &loaded).await {
        tracing::error!(error = %e, "Cannot load the executions of acquired shards; they are let go.");
        replica.let_go(runner, &loaded);
        let _ = shards.release(&loaded).await;
    }
}

/// Loads the active executions of `acquired` (in pages) and closes those that ended while
/// their logs were being fetched.
async fn load(
    runner: &Arc<Runner>,
    replica: &Replica,
    shards: &dyn Shards,
    acquired: &[u32],
) -> Result<(), crate::store::StoreError> {
    for report in shards.logs_pending_in(acquired).await? {
        if let Some(fence) = replica.fence(&report.execution_id) {
            runner.close_logs_pending(report, Some(fence)).await?;
        }
    }
    let mut after = String::new();
    let mut loaded = 0;
    loop {
        let page = shards.active_page_in(acquired, &after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.execution_id.clone();
        for report in page {
            loaded += usize::from(adopt(runner, replica, report));
        }
    }
    tracing::info!(
        shards = acquired.len(),
        executions = loaded,
        "Following the executions of acquired shards."
    );
    Ok(())
}

/// Follows `report` here when its shard is held and it is not followed yet.
fn adopt(runner: &Arc<Runner>, replica: &Replica, mut report: ExecutionReport) -> bool {
    let Some(fence) = replica.fence(&report.execution_id) else {
        return false;
    };
    if replica.follows(&report.execution_id) || report.state.is_final() {
        return false;
    }
    report.fence = Some(fence);
    runner.resume_one(report)
}

/// An execution was recorded (by any replica): follow it if it is this replica's.
async fn take(runner: &Arc<Runner>, replica: &Replica, execution_id: &str) {
    if replica.fence(execution_id).is_none() || replica.follows(execution_id) {
        return;
    }
    match runner.store.get(execution_id).await {
        Ok(Some(report)) => {
            adopt(runner, replica, report);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(execution_id, error = %e, "Cannot read a new execution; the next scan looks again.")
        }
    }
}

/// Looks for executions of the held shards not followed here (a wake-up missed).
async fn scan(runner: &Arc<Runner>, replica: &Replica, shards: &dyn Shards) {
    let held = replica.held();
    if held.is_empty() {
        return;
    }
    match shards.untriggered_in(&held).await {
        Ok(ids) => {
            for id in ids {
                take(runner, replica, &id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "Cannot look for new executions."),
    }
}
