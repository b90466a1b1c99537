//! The relay's core: everything a service needs, with no web framework in it, so the HTTP and
//! WebSocket layers, an admin command or a test can all drive the same services.

use std::time::Duration;

use crate::config::ServeArgs;
use crate::error::{Result, ServerError, StartError};
use crate::store::Store;
use crate::{auth, blobs, hub, metrics, ratelimit};

/// The relay: storage, fan-out, attachment files, the clock and the configuration.
#[derive(Debug)]
pub struct Relay {
    /// The database.
    pub store: Store,
    /// Live connections (in-process on one node).
    pub fanout: Box<dyn hub::Fanout>,
    /// Attachment files on disk.
    pub blobs: blobs::BlobStore,
    /// The time.
    pub clock: Clock,
    /// Configuration.
    pub config: ServeArgs,
    /// JWT signing key.
    pub secret: auth::ServerSecret,
    /// Counters and gauges for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Failed logins and registrations per client IP.
    pub auth_ip_limit: ratelimit::RateLimiter,
    /// Failed logins (and password changes) per username.
    pub auth_user_limit: ratelimit::RateLimiter,
    /// Every login/register/password call per client IP: bounds the Argon2id work one client
    /// can make the server do.
    pub auth_ip_total: ratelimit::RateLimiter,
}

impl Relay {
    /// Opens the data dir's secret, database and blob store (sweeping stray blob files), with
    /// the in-process hub for fan-out.
    pub fn open(config: ServeArgs) -> Result<Self, StartError> {
        let secret = auth::ServerSecret::load(&config.data_dir)?;
        let store = Store::open(&config.database_url())?;
        let blob_store = blobs::BlobStore::open(&config.data_dir)?;
        let orphans = blob_store.sweep_orphans(&mut store.conn()?)?;
        if orphans > 0 {
            tracing::warn!(removed = orphans, "removed blob files that had no database row");
        }
        let window = Duration::from_secs(60);
        Ok(Relay {
            store,
            fanout: Box::new(hub::Hub::default()),
            blobs: blob_store,
            clock: Clock,
            secret,
            metrics: metrics::Metrics::new(),
            auth_ip_limit: ratelimit::RateLimiter::new(config.auth_rate_per_ip, window),
            auth_user_limit: ratelimit::RateLimiter::new(config.auth_rate_per_user, window),
            auth_ip_total: ratelimit::RateLimiter::new(config.auth_rate_per_ip.saturating_mul(20), window),
            config,
        })
    }
}

/// Runs CPU-bound or blocking work (Argon2id, file removal) off the async threads.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|_| ServerError::Blocking)
}

/// The relay's clock (Unix milliseconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl Clock {
    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}
