//! Fixed-window rate limits for login and registration, per client IP and per username.

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

    /// Counts a hit for `key`; `Err(seconds)` when over the limit (retry after that long).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.limited(key)?;
        self.hit(key);
        Ok(())
    }

    /// `Err(seconds)` if `key` is over the limit now, without counting anything.
    pub fn limited(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(hits) = self.hits.lock() else { return Ok(()) };
        match hits.get(key) {
            Some((start, n)) if now.duration_since(*start) < self.window && *n >= self.limit => {
                Err(self.window.saturating_sub(now.duration_since(*start)).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a hit for `key`.
    pub fn hit(&self, key: &str) {
        let now = Instant::now();
        let Ok(mut hits) = self.hits.lock() else { return };
        if hits.len() > 100_000 {
            let window = self.window;
            hits.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = hits.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
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
    fn limited_does_not_count() {
        let rl = RateLimiter::new(1, Duration::from_secs(60));
        for _ in 0..5 {
            assert!(rl.limited("a").is_ok());
        }
        rl.hit("a");
        assert!(rl.limited("a").is_err());
    }
}
