//! Password hashing and checking (argon2, deliberately slow) on a bounded set of blocking
//! threads, so that a flood of logins waits its turn instead of taking every core from dispatch.
//! Past a queue of [`MAX_WAITING`] per worker, a login is refused at once as busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Password checks that may wait per worker before new ones are refused.
const MAX_WAITING: usize = 16;

/// Every worker is busy and the queue is full: try again shortly.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("password checks are busy")]
pub struct Busy;

/// The bounded pool.
#[derive(Debug, Clone)]
pub struct PasswordWorkers {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl PasswordWorkers {
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            waiting: Arc::default(),
            max_waiting: workers * MAX_WAITING,
        }
    }

    /// Runs `work` on a blocking thread once a worker is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let permit = permit.map_err(|_| Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| Busy)
    }

    /// Whether `password` matches `hash` (a malformed hash never matches).
    ///
    /// # Errors
    /// [`Busy`] when the queue is full.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        self.run(move || super::verify_password(&password, &hash))
            .await
    }

    /// The argon2 hash of `password`.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full; hashing itself does not fail with valid parameters.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        self.run(move || super::hash_password(&password)).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_a_full_queue_a_check_is_refused_at_once() {
        let workers = PasswordWorkers::new(1);
        let hash = crate::auth::hash_password("right answer").unwrap();
        let held = workers.permits.clone().acquire_owned().await.unwrap();
        let queued: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let (w, h) = (workers.clone(), hash.clone());
                tokio::spawn(async move { w.verify("right answer".into(), h).await })
            })
            .collect();
        while workers.waiting.load(Ordering::Acquire) < MAX_WAITING {
            tokio::task::yield_now().await;
        }
        assert!(workers.verify("x".into(), hash.clone()).await.is_err());
        drop(held);
        for check in queued {
            assert!(check.await.unwrap().unwrap(), "queued checks are answered");
        }
        assert!(!workers.verify("wrong".into(), hash).await.unwrap());
    }
}
