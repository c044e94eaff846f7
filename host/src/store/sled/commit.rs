//! Group commit: many writers, one fsync.
//!
//! A writer that needs its writes durable takes a ticket after writing and waits until a
//! flush that started after its ticket has finished. One background task runs flushes back
//! to back, so under load each fsync covers every write made while the previous one ran:
//! durability costs a wait, not a cap on throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, watch};

pub(crate) struct GroupCommit {
    requested: AtomicU64,
    wake: Notify,
    done: watch::Sender<Flushed>,
    /// Set when the store is dropped: the task ends, and with it its handle on the database.
    stopped: AtomicBool,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Clone, Default)]
struct Flushed {
    /// Every ticket up to this one is durable.
    through: u64,
    /// The last flush failed: the tickets it was for, and why.
    failed: Option<(u64, String)>,
}

impl GroupCommit {
    /// Starts the flushing task for `db` on the current tokio runtime.
    pub(crate) fn start(db: sled::Db) -> Arc<Self> {
        let commit = Arc::new(GroupCommit {
            requested: AtomicU64::new(0),
            wake: Notify::new(),
            done: watch::channel(Flushed::default()).0,
            stopped: AtomicBool::new(false),
            task: std::sync::Mutex::new(None),
        });
        let flusher = commit.clone();
        let task = tokio::spawn(async move {
            loop {
                let notified = flusher.wake.notified();
                let target = flusher.requested.load(Ordering::Acquire);
                if flusher.done.borrow().through >= target {
                    if flusher.stopped.load(Ordering::Acquire) {
                        return;
                    }
                    notified.await;
                    continue;
                }
                let through = flusher.done.borrow().through;
                // On tokio's blocking pool (threads kept warm), not sled's own, which hands each
                // flush through a queue to one of its threads.
                let db = db.clone();
                let flushed = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(Ok(_)) => Flushed { through: target, failed: None },
                    Ok(Err(error)) => Flushed { through, failed: Some((target, error.to_string())) },
                    Err(error) => Flushed { through, failed: Some((target, error.to_string())) },
                };
                flusher.done.send_replace(flushed);
            }
        });
        *commit.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        commit
    }

    /// Ends the flushing task once nothing is waiting for a flush.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Returns once the task ended after [`GroupCommit::stop`].
    pub(crate) async fn stopped(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Returns once everything written before this call is on disk.
    pub(crate) async fn durable(&self) -> Result<(), String> {
        let ticket = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        let mut done = self.done.subscribe();
        let outcome = done
            .wait_for(|f| f.through >= ticket || f.failed.as_ref().is_some_and(|(t, _)| *t >= ticket))
            .await
            .map_err(|_| "storage is shutting down".to_string())?;
        match &outcome.failed {
            Some((_, error)) if outcome.through < ticket => Err(error.clone()),
            _ => Ok(()),
        }
    }
}
