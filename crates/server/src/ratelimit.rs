//! Limits on the work authentication makes the relay do: fixed-window rate limits per client
//! IP, per IP and account, and per account; and [`HashGate`], which bounds how many Argon2id
//! computations (19 MiB each) run at once.
//!
//! Attempts are counted *before* the password is verified ([`RateLimiter::check`] reserves a
//! hit atomically; a success gives it back with [`RateLimiter::refund`]), so parallel requests
//! cannot all pass a limit that only counts finished failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One limiter: at most `limit` hits per key per window.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// A limiter of `limit` per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter { limit, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Counts a hit for `key` unless it is over the limit, in one step; `Err(seconds)` when over
    /// the limit (retry after that long), counting nothing.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut hits) = self.hits.lock() else { return Ok(()) };
        Self::prune(&mut hits, now, self.window);
        let entry = hits.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)).as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Gives back a hit [`check`](Self::check) counted (the attempt turned out fine).
    pub fn refund(&self, key: &str) {
        let Ok(mut hits) = self.hits.lock() else { return };
        if let Some(entry) = hits.get_mut(key) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    fn prune(hits: &mut HashMap<String, (Instant, u32)>, now: Instant, window: Duration) {
        if hits.len() > 100_000 {
            hits.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
    }
}

/// A job for a hashing thread: runs only if its requester is still waiting.
type Job = Box<dyn FnOnce() + Send>;

/// Password hashing on `threads` dedicated threads, at most `queue` more requests waiting;
/// beyond that, or after waiting `patience`, a request is refused with a retry delay.
///
/// Dedicated threads, not the blocking pool: Argon2id takes 19 MiB per hash, and the allocator
/// keeps freed memory per thread, so hashing on whichever of the pool's many threads is free
/// grew the relay by 19 MiB per thread used. Here memory for hashing stays at `threads` × 19 MiB
/// whatever the burst.
#[derive(Debug)]
pub struct HashGate {
    jobs: std::sync::mpsc::SyncSender<Job>,
    patience: Duration,
}

impl HashGate {
    /// Starts `threads` hashing threads (at least 1) behind a queue of `queue` requests.
    pub fn new(threads: usize, queue: usize, patience: Duration) -> Self {
        let (jobs, inbox) = std::sync::mpsc::sync_channel::<Job>(queue);
        let inbox = std::sync::Arc::new(Mutex::new(inbox));
        for n in 0..threads.max(1) {
            let inbox = inbox.clone();
            let spawned =
                std::thread::Builder::new().name(format!("sealroom-hash-{n}")).spawn(move || loop {
                    // The lock is held only while taking a job, not while running it.
                    let job = match inbox.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the relay is gone
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        HashGate { jobs, patience }
    }

    /// Runs `hash` on a hashing thread; `Err(seconds)` when the queue is full or the wait ran
    /// out (then it never runs).
    pub async fn run<T, F>(&self, hash: F) -> Result<T, u64>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A requester that gave up is not worth 19 MiB and a core.
            if !tx.is_closed() {
                let _ = tx.send(hash());
            }
        });
        self.jobs.try_send(job).map_err(|_| 1u64)?;
        match tokio::time::timeout(self.patience, rx).await {
            Ok(Ok(done)) => Ok(done),
            _ => Err(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_resets() {
        let rl = RateLimiter::new(2, Duration::from_millis(200));
        assert!(rl.check("a").is_ok());
        assert!(rl.check("a").is_ok());
        assert_eq!(rl.check("a"), Err(1));
        assert!(rl.check("b").is_ok());
        std::thread::sleep(Duration::from_millis(220));
        assert!(rl.check("a").is_ok());
    }

    #[test]
    fn check_reserves_and_refund_gives_back() {
        let rl = RateLimiter::new(2, Duration::from_secs(60));
        assert!(rl.check("a").is_ok());
        assert!(rl.check("a").is_ok());
        assert!(rl.check("a").is_err(), "the third is refused before any work");
        rl.refund("a");
        assert!(rl.check("a").is_ok(), "a refunded attempt frees its place");
        assert!(rl.check("a").is_err());
    }

    #[test]
    fn parallel_checks_never_pass_more_than_the_limit() {
        let rl = std::sync::Arc::new(RateLimiter::new(10, Duration::from_secs(60)));
        let passed: usize = (0..40)
            .map(|_| {
                let rl = rl.clone();
                std::thread::spawn(move || usize::from(rl.check("victim").is_ok()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum();
        assert_eq!(passed, 10);
    }

    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_hash_gate_bounds_concurrency_and_refuses_beyond_its_queue() {
        let gate = std::sync::Arc::new(HashGate::new(2, 3, Duration::from_secs(5)));
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    gate.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .is_ok()
                })
            })
            .collect();
        let mut done = 0;
        for t in tasks {
            done += usize::from(t.await.unwrap_or(false));
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "at most 2 at once");
        assert!((2..=5).contains(&done), "2 running + at most 3 queued were served, got {done}");
    }
}
