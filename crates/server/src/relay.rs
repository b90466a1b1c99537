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
    /// Live connections: the in-process hub on one node, through NATS among several.
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
    /// Failed logins and password changes, and registrations, per client IP.
    pub auth_ip_limit: ratelimit::RateLimiter,
    /// Failed logins and password changes per client IP and username (a hard limit).
    pub auth_pair_limit: ratelimit::RateLimiter,
    /// Failed logins per username from anywhere (soft: the right password still signs in).
    pub auth_user_limit: ratelimit::RateLimiter,
    /// Every password change per user, successful or not.
    pub password_changes: ratelimit::RateLimiter,
    /// Bytes of uploads in progress, per user: counted against the quota while they stream.
    pub uploads: std::sync::Mutex<std::collections::HashMap<sealroom_protocol::UserId, u64>>,
    /// Whose forwarding headers to believe.
    pub proxies: crate::proxy::TrustedProxies,
    /// Bounds the Argon2id hashes computed at once.
    pub hashing: ratelimit::HashGate,
    /// Every login/register/password call per client IP: bounds the Argon2id work one client
    /// can make the server do.
    pub auth_ip_total: ratelimit::RateLimiter,
    /// Key-package claims per (claimer, claimed user).
    pub key_package_claims: ratelimit::RateLimiter,
    /// The WebSockets held, against `--max-connections`.
    pub slots: hub::Slots,
}

impl Relay {
    /// Opens the data dir's secret, database and blob store (sweeping stray blob files), with
    /// the in-process hub for fan-out.
    pub fn open(config: ServeArgs) -> Result<Self, StartError> {
        let several = config.nats_url.is_some();
        if several && crate::db::Backend::of(&config.database_url()) != crate::db::Backend::Postgres {
            return Err(StartError::Invalid(
                "--nats-url makes this relay one node among several, which need one shared database: \
                 give --database-url postgres://…"
                    .into(),
            ));
        }
        let secret = auth::ServerSecret::load(&config.data_dir)?;
        let store = Store::open(&config.database_url())?;
        let blob_store = blobs::BlobStore::open(&config.data_dir, several)?;
        let orphans = blob_store.sweep_orphans(&mut *store.conn()?)?;
        if orphans > 0 {
            tracing::warn!(removed = orphans, "removed blob files that had no database row");
        }
        let window = Duration::from_secs(60);
        let proxies =
            crate::proxy::TrustedProxies::parse(&config.trusted_proxies).map_err(StartError::Invalid)?;
        let fanout: Box<dyn hub::Fanout> = match &config.nats_url {
            Some(url) => {
                let db = store.clone();
                let newest: crate::nats::NewestId =
                    Box::new(move || crate::store::newest_message_id(&mut *db.conn().ok()?).ok());
                Box::new(crate::nats::NatsFanout::start(
                    url,
                    hub::Hub::new(config.max_connections_per_user),
                    newest,
                )?)
            }
            None => Box::new(hub::Hub::new(config.max_connections_per_user)),
        };
        Ok(Relay {
            uploads: std::sync::Mutex::default(),
            proxies,
            store,
            fanout,
            blobs: blob_store,
            clock: Clock,
            secret,
            metrics: metrics::Metrics::new(),
            auth_ip_limit: ratelimit::RateLimiter::new(config.auth_rate_per_ip, window),
            auth_pair_limit: ratelimit::RateLimiter::new(config.auth_rate_per_user, window),
            auth_user_limit: ratelimit::RateLimiter::new(
                config.auth_rate_per_user.saturating_mul(10),
                window,
            ),
            password_changes: ratelimit::RateLimiter::new(config.auth_rate_per_user, window),
            hashing: {
                let permits = config
                    .max_password_hashes
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
                ratelimit::HashGate::new(permits, permits * 8, Duration::from_secs(10))
            },
            auth_ip_total: ratelimit::RateLimiter::new(config.auth_rate_per_ip.saturating_mul(20), window),
            key_package_claims: ratelimit::RateLimiter::new(
                crate::policy::CLAIMS_PER_PAIR_PER_HOUR,
                Duration::from_secs(3600),
            ),
            slots: hub::Slots::new(config.max_connections.unwrap_or(hub::DEFAULT_MAX_CONNECTIONS)),
            config,
        })
    }
}

impl Relay {
    /// Runs a password hash through the [`HashGate`](ratelimit::HashGate).
    pub async fn hash<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.hashing.run(f).await {
            Ok(done) => Ok(done),
            Err(secs) => {
                self.metrics.hash_refused();
                Err(ServerError::Busy(secs))
            }
        }
    }
}

/// Runs CPU-bound or blocking work (file removal, reads) off the async threads.
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
