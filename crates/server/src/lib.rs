//! Sealroom's relay.
//!
//! Accounts with hashed credentials and expiring JWT sessions, a WebSocket relay of
//! ciphertext with offline sync and receipts, and SQLite storage of opaque blobs. It must never
//! see a key or a plaintext: it does not depend on `sealroom-crypto` at all, and handles
//! envelopes and key backups only as bytes with a length.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), sealroom_server::error::StartError> {
//! use clap::Parser;
//! let cli = sealroom_server::config::Cli::parse_from(["sealroom", "--bind", "127.0.0.1:0"]);
//! sealroom_server::serve(cli.serve).await
//! # }
//! ```
#![deny(missing_docs)]

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod backup;
pub mod blobs;
pub mod config;
pub mod db;
pub mod error;
pub mod groups;
pub mod hub;
pub mod invites;
pub mod limits;
pub mod metrics;
pub mod nats;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod relay;
mod routes;
#[allow(missing_docs)]
pub mod schema;
pub mod service;
#[allow(missing_docs)]
pub mod store;
#[cfg(test)]
mod store_tests;
pub mod webapp;
pub mod writer;
mod ws;
pub mod wsconn;

use std::time::Duration;

use actix_web::dev::Service as _;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App};

use crate::config::ServeArgs;
pub use crate::relay::Relay;

/// Content-Security-Policy of every response: the web client runs under it.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'; object-src 'none'";

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The rustls configuration for `--tls-cert` / `--tls-key`: the chain and key from PEM files,
/// rustls' safe defaults (TLS 1.2 and 1.3) on the ring provider, HTTP/1.1 by ALPN.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, error::StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        error::StartError::Invalid(format!("{what} {}: {e}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("cannot read the TLS certificate", cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("cannot parse the TLS certificate", cert, &e))?;
    if chain.is_empty() {
        return Err(error::StartError::Invalid(format!("no certificate in {}", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("cannot read the TLS key", key, &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| error::StartError::Invalid(format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| error::StartError::Invalid(format!("the TLS key does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How many WebSockets the relay may hold: `--max-connections` (an error if the descriptor
/// limit cannot be raised to fit it), else the default or what the limit allows, said at start.
fn connection_limit(asked: Option<usize>) -> Result<usize, error::StartError> {
    if asked == Some(0) {
        return Err(error::StartError::Invalid("--max-connections must be at least 1".into()));
    }
    let wanted = asked.unwrap_or(hub::DEFAULT_MAX_CONNECTIONS);
    let need = wanted as u64 + limits::RESERVED_FDS;
    let have = limits::raise_fd_limit(need);
    if have >= need {
        return Ok(wanted);
    }
    let fits = usize::try_from(have.saturating_sub(limits::RESERVED_FDS)).unwrap_or(usize::MAX);
    if asked.is_some() {
        return Err(error::StartError::Invalid(format!(
            "--max-connections {wanted} needs {need} open files, but the limit is {have} and cannot be raised \
             (raise it with `ulimit -n` or systemd's LimitNOFILE=, or lower --max-connections to {fits})"
        )));
    }
    println!(
        "holding at most {fits} connections: the open-file limit is {have} (raise it with `ulimit -n` or \
         systemd's LimitNOFILE= for the default {wanted})"
    );
    Ok(fits)
}

/// Headers on every answer: the web client runs under this policy.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

/// The relay's routes and middleware.
fn app(
    state: web::Data<Relay>,
    web_client: Option<web::Data<webapp::WebApp>>,
    hsts: bool,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json = web::JsonConfig::default()
        .limit(sealroom_protocol::MAX_JSON_BODY_BYTES)
        .error_handler(routes::json_error);
    let query = web::QueryConfig::default().error_handler(routes::query_error);
    let headers = SECURITY_HEADERS.iter().fold(DefaultHeaders::new(), |h, header| h.add(*header));
    let mut app = App::new()
        .app_data(state)
        .app_data(json)
        .app_data(query)
        .wrap(headers)
        // Over TLS, browsers are told to use nothing else for a year.
        .wrap(actix_web::middleware::Condition::new(
            hsts,
            DefaultHeaders::new().add(("Strict-Transport-Security", "max-age=31536000")),
        ))
        .wrap_fn(|req, srv| {
            // Errors are counted here, where the relay is at hand (not in a global).
            let relay = req.app_data::<web::Data<Relay>>().cloned();
            let fut = srv.call(req);
            async move {
                let res = fut.await?;
                let code = res.response().extensions().get::<sealroom_protocol::ErrorCode>().copied();
                if let (Some(relay), Some(code)) = (relay, code) {
                    relay.metrics.error(code);
                }
                Ok(res)
            }
        })
        .configure(routes::configure)
        // Upgrade requests never reach the app (see `ws::upgrader`); this answers the others.
        .route(sealroom_protocol::endpoint::WS_PATH, web::get().to(ws::not_upgraded))
        .route("/healthz", web::get().to(routes::healthz))
        .route("/metrics", web::get().to(routes::metrics));
    if let Some(client) = web_client {
        // GET and HEAD alike (HEAD answers the same headers without a body).
        let get_or_head = || {
            web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
        };
        app = app
            .app_data(client)
            .route(webapp::BOOT_PATH, get_or_head().to(webapp::boot))
            .route("/", get_or_head().to(webapp::index))
            .route("/index.html", get_or_head().to(webapp::index))
            .route("/{file:.*}", get_or_head().to(webapp::asset));
    }
    app
}

/// Opens storage and runs the relay until SIGINT or SIGTERM, then drains connections.
/// Prints `listening on http://ADDR` (or `https://` with `--tls-cert`) once bound (port 0
/// picks a free port).
pub async fn serve(mut config: ServeArgs) -> Result<(), error::StartError> {
    create_private_dir(&config.data_dir)?;
    config.max_connections = Some(connection_limit(config.max_connections)?);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let hsts = tls.is_some();
    let state = web::Data::new(Relay::open(config.clone())?);
    let web_client = match config.web_dir() {
        Some(dir) => Some(web::Data::new(webapp::WebApp::load(&dir)?)),
        None => None,
    };
    let slots = state.slots.max();
    let listener = std::net::TcpListener::bind(config.bind)
        .map_err(error::StartError::io(format!("cannot listen on {}", config.bind)))?;
    let addr = listener.local_addr().map_err(error::StartError::io("the bound address"))?;
    // actix-web's HttpServer, assembled by hand for one reason: it has no place for an upgrade
    // service, and WebSockets served through its HTTP/1 dispatcher keep that dispatcher's
    // buffers for life (see `wsconn`). Its settings are kept as they were.
    macro_rules! service {
        ($relay:ident) => {{
            let (relay, web_client) = ($relay.clone(), web_client.clone());
            actix_http::HttpService::build()
                .keep_alive(actix_http::KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // A relay sends many small frames (acks, deliveries, typing): with Nagle's
                // algorithm on, one waits for the peer's delayed ACK (40 ms on Linux) whenever
                // an earlier one is still unacknowledged; the load generator saw deliveries
                // stall by 40-60 ms.
                .tcp_nodelay(true)
                .local_addr(addr)
                .upgrade(ws::upgrader(relay.clone()))
                .finish(actix_service::map_config(app(relay, web_client, hsts), |_: ()| {
                    actix_web::dev::AppConfig::default()
                }))
        }};
    }
    let builder = actix_server::Server::build()
        .disable_signals()
        // actix's own limit is per worker and stops accepting when reached; ours is checked at
        // the handshake (with an answer), so actix's must never be the one that bites.
        .max_concurrent_connections(slots.saturating_add(1024))
        .shutdown_timeout(10);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let svc_relay = state.clone();
    let builder = match tls {
        Some(tls) => {
            builder.listen("sealroom", listener, move || service!(svc_relay).rustls_0_23(tls.clone()))
        }
        None => builder.listen("sealroom", listener, move || service!(svc_relay).tcp()),
    }
    .map_err(error::StartError::io(format!("cannot listen on {}", config.bind)))?;
    println!("listening on {scheme}://{addr}");
    tracing::info!(
        database = %crate::db::redacted(&config.database_url()),
        web = ?config.web_dir(),
        single_session = config.single_session,
        registration = config.registration().as_str(),
        "sealroom relay started"
    );
    println!("{}", registration_notice(&config));
    actix_web::rt::spawn(admin::watch_kicks(state.clone()));
    let node = format!("{}-{}", std::process::id(), auth::new_session_id().get(..8).unwrap_or("relay"));
    actix_web::rt::spawn(admin::report_connections(state.clone(), node.clone()));
    let gc_state = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(gc_state.config.gc_interval);
        loop {
            tick.tick().await;
            match groups::prune_log(&gc_state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "pruned group log entries every device has read"),
                Err(e) => tracing::warn!(error = %e, "pruning group logs failed"),
            }
            if let Some(days) = gc_state.config.retention_days {
                if let Err(e) = admin::apply_retention(&gc_state, days).await {
                    tracing::warn!(error = %e, "deleting messages past the retention period failed");
                }
            }
            if let Err(e) = blobs::expire(&gc_state).await {
                tracing::warn!(error = %e, "expiring unsent attachments failed");
            }
            // Sessions that can never authenticate again (a day of grace, for the logs).
            let before = gc_state.clock.now_ms() - 24 * 3600 * 1000;
            let now = gc_state.clock.now_ms();
            let hold = i64::try_from(gc_state.config.deleted_name_hold.as_millis()).unwrap_or(i64::MAX);
            let released = gc_state
                .store
                .write(move |conn| {
                    let mut suffix = || auth::new_session_id()[..8].to_owned();
                    Ok(store::admin::release_names(conn, now.saturating_sub(hold), now, &mut suffix)?)
                })
                .await;
            match released {
                Ok(0) => {}
                Ok(n) => tracing::info!(released = n, "names of deleted accounts are free again"),
                Err(e) => tracing::warn!(error = %e, "releasing deleted accounts' names failed"),
            }
            let kicks_before = gc_state.clock.now_ms() - 3600 * 1000;
            if let Err(e) =
                gc_state.store.write(move |conn| Ok(store::admin::prune_kicks(conn, kicks_before)?)).await
            {
                tracing::warn!(error = %e, "pruning admin kicks failed");
            }
            match gc_state.store.write(move |conn| Ok(store::prune_sessions(conn, before)?)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "pruned expired and revoked sessions"),
                Err(e) => tracing::warn!(error = %e, "pruning sessions failed"),
            }
        }
    });
    // Among several nodes: users whose node died (or shut down) with their every connection
    // are announced offline to their peers, as their last connection closing would have.
    if let Some(mut departures) = state.fanout.take_departures() {
        let relay = state.clone();
        actix_web::rt::spawn(async move {
            while let Some(user) = departures.recv().await {
                if relay.fanout.is_online(user) {
                    continue; // back already, on another node
                }
                let named = relay.store.run(move |conn| Ok(store::username(conn, user)?)).await;
                let Ok(Some(name)) = named else { continue };
                let Ok(name) = sealroom_protocol::Username::parse(&name) else { continue };
                if let Err(e) = service::broadcast_presence(&relay, user, &name, false).await {
                    tracing::warn!(error = %e, user = user.0, "announcing a departed user offline failed");
                }
            }
        });
    }
    let server = builder.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!(connections = state.fanout.connection_count(), "shutting down: draining connections");
        state.fanout.close_all();
        // Give writers a moment to flush their close frames.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = state.store.write(move |conn| Ok(store::admin::forget_relay(conn, &node)?)).await;
        handle.stop(true).await;
    });
    server.await.map_err(error::StartError::io("the HTTP server failed"))?;
    tracing::info!("stopped");
    Ok(())
}

/// What `serve` says at start about who may register.
fn registration_notice(config: &ServeArgs) -> String {
    let how = match config.registration() {
        sealroom_protocol::Registration::Open => {
            "open: anyone who can reach this relay may create an account"
        }
        sealroom_protocol::Registration::Invite => {
            "invite: sign-up needs a code from `sealroom admin invites create`"
        }
        sealroom_protocol::Registration::Closed => "closed: no one may create an account",
    };
    let why = if config.registration.is_some() {
        ""
    } else if config.bind.ip().is_loopback() {
        " (the default on loopback; --registration to change)"
    } else {
        " (the default beyond loopback; --registration open to let anyone in)"
    };
    format!("registration {how}{why}")
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), error::StartError> {
    std::fs::create_dir_all(dir)
        .map_err(error::StartError::io(format!("cannot create data dir {}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
