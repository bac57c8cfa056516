//! Password hashing and checking (argon2, deliberately slow) on a bounded set of threads of
//! their own, so that a flood of logins waits its turn instead of taking every core from
//! dispatch. The threads run at the lowest CPU priority (nice 19 on Linux), and together start
//! at most `per_second` checks a second: each check also sweeps 19 MiB of memory, which costs
//! dispatch's cores through the shared cache whatever the priority. Past a queue of
//! [`MAX_WAITING`] per worker, a login is refused at once as busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Password checks that may wait per worker before new ones are refused.
const MAX_WAITING: usize = 16;

/// Every worker is busy and the queue is full: try again shortly.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("password checks are busy")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// The start times the cap on checks per second allows.
#[derive(Debug)]
struct Pace {
    /// Time between two starts; `None`: no cap.
    interval: Option<Duration>,
    /// When the next check may start.
    next: Mutex<Instant>,
}

impl Pace {
    /// Sleeps until this thread's check may start, and books the slot after it.
    fn wait_turn(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let start = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let start = (*next).max(Instant::now());
            *next = start + interval;
            start
        };
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
    }
}

/// The bounded pool. Its threads end when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PasswordWorkers {
    jobs: mpsc::Sender<Job>,
    /// Checks admitted and not yet answered (running or queued).
    admitted: Arc<AtomicUsize>,
    max_admitted: usize,
}

impl PasswordWorkers {
    /// `workers` threads starting at most `per_second` checks a second between them (0: no cap).
    pub fn new(workers: usize, per_second: u32) -> Self {
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let pace = Arc::new(Pace {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: Mutex::new(Instant::now()),
        });
        for n in 0..workers {
            let (queue, pace) = (queue.clone(), pace.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || {
                    crate::background::lower_this_thread("password worker");
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => {
                                pace.wait_turn();
                                job();
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password worker: {e}");
            }
        }
        Self {
            jobs,
            admitted: Arc::default(),
            max_admitted: workers * (MAX_WAITING + 1),
        }
    }

    /// Runs `work` on a password thread once one is free and the pace allows.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.max_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let admitted = self.admitted.clone();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
            admitted.fetch_sub(1, Ordering::AcqRel);
        });
        if self.jobs.send(job).is_err() {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        answered.await.map_err(|_| Busy)
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
        let workers = PasswordWorkers::new(1, 0);
        let hash = crate::auth::hash_password("right answer").unwrap();
        // Occupies the one worker until released.
        let (release, hold) = mpsc::channel::<()>();
        let blocker = {
            let w = workers.clone();
            tokio::spawn(async move { w.run(move || hold.recv().is_ok()).await })
        };
        while workers.admitted.load(Ordering::Acquire) < 1 {
            tokio::task::yield_now().await;
        }
        let queued: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let (w, h) = (workers.clone(), hash.clone());
                tokio::spawn(async move { w.verify("right answer".into(), h).await })
            })
            .collect();
        while workers.admitted.load(Ordering::Acquire) < MAX_WAITING + 1 {
            tokio::task::yield_now().await;
        }
        assert!(workers.verify("x".into(), hash.clone()).await.is_err());
        release.send(()).unwrap();
        assert!(blocker.await.unwrap().unwrap());
        for check in queued {
            assert!(check.await.unwrap().unwrap(), "queued checks are answered");
        }
        assert!(!workers.verify("wrong".into(), hash).await.unwrap());
    }

    #[tokio::test]
    async fn checks_run_at_the_lowest_cpu_priority() {
        let workers = PasswordWorkers::new(1, 0);
        let nice = workers
            .run(|| rustix::process::getpriority_process(None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nice, crate::background::NICE);
    }

    /// Two threads at 20 checks a second: the k-th of 10 checks starts 50 ms × k after they
    /// were submitted at the earliest, whichever thread runs it (a lower bound only: a busy
    /// machine makes starts later, never earlier).
    #[tokio::test]
    async fn checks_start_no_faster_than_the_cap() {
        let workers = PasswordWorkers::new(2, 20);
        let submitted = Instant::now();
        let checks: Vec<_> = (0..10)
            .map(|_| {
                let w = workers.clone();
                tokio::spawn(async move { w.run(Instant::now).await.unwrap() })
            })
            .collect();
        let mut starts = Vec::new();
        for check in checks {
            starts.push(check.await.unwrap());
        }
        starts.sort();
        for (k, start) in starts.iter().enumerate() {
            let earliest = Duration::from_millis(50) * u32::try_from(k).unwrap();
            assert!(
                *start - submitted >= earliest,
                "check {k} started {:?} after submission, before {earliest:?}",
                *start - submitted
            );
        }
    }
}
