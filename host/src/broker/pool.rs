//! One connection per broker and credentials, shared by every publish to it, opened again
//! when it is lost — after a backoff when opening it fails, so a broker that is down is not
//! hammered by every delivery due for it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first wait after a failed connect; it doubles with each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A broker connection that can tell whether it is still usable.
pub trait Live: Send + Sync + 'static {
    fn is_live(&self) -> bool;
}

/// Connections by key (the broker's address and the credentials used).
pub struct Pool<C> {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot<C>>>>>,
}

struct Slot<C> {
    live: Option<Arc<C>>,
    failures: u32,
    /// After a failed connect: no new one before then, and why the last one failed.
    backoff: Option<(Instant, String)>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Pool { slots: Mutex::default() }
    }
}

impl<C: Live> Pool<C> {
    /// The connection for `key`, opened with `connect` when there is none that is live. Callers
    /// asking at the same time share one connect.
    pub async fn get<F>(&self, key: &str, connect: impl FnOnce() -> F) -> Result<Arc<C>, String>
    where
        F: Future<Output = Result<C, String>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let new = || Arc::new(tokio::sync::Mutex::new(Slot { live: None, failures: 0, backoff: None }));
            slots.entry(key.to_owned()).or_insert_with(new).clone()
        };
        let mut slot = slot.lock().await;
        if let Some(live) = slot.live.as_ref().filter(|c| c.is_live()) {
            return Ok(live.clone());
        }
        slot.live = None;
        if let Some((until, error)) = &slot.backoff {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Err(format!("{error} (connecting again in {:.1} s)", left.as_secs_f64()));
            }
        }
        match connect().await {
            Ok(connection) => {
                let connection = Arc::new(connection);
                slot.live = Some(connection.clone());
                slot.failures = 0;
                slot.backoff = None;
                Ok(connection)
            }
            Err(error) => {
                slot.failures += 1;
                let wait = FIRST_BACKOFF.saturating_mul(1 << (slot.failures - 1).min(16)).min(MAX_BACKOFF);
                slot.backoff = Some((Instant::now() + wait, error.clone()));
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    struct Fake(AtomicBool);

    impl Live for Fake {
        fn is_live(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[tokio::test]
    async fn one_connection_is_shared_until_it_dies_and_failures_back_off() {
        let pool = Pool::<Fake>::default();
        let connects = AtomicUsize::new(0);
        let connect = || async {
            connects.fetch_add(1, Ordering::Relaxed);
            Ok(Fake(AtomicBool::new(true)))
        };
        let first = pool.get("a", connect).await.unwrap();
        let again = pool.get("a", connect).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(connects.load(Ordering::Relaxed), 1);

        first.0.store(false, Ordering::Relaxed);
        let fresh = pool.get("a", connect).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &fresh), "a dead connection is replaced");
        assert_eq!(connects.load(Ordering::Relaxed), 2);

        let refused = || async { Err::<Fake, _>("connection refused".to_owned()) };
        assert_eq!(pool.get("b", refused).await.err().unwrap(), "connection refused");
        let error = pool.get("b", connect).await.err().unwrap();
        assert!(error.starts_with("connection refused (connecting again in"), "{error}");
        assert_eq!(connects.load(Ordering::Relaxed), 2, "no connect during the backoff");
    }
}
