//! Prometheus metrics, by hand: a few counters and gauges.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use sealroom_protocol::ErrorCode;

/// Counters and gauges of one relay (a field of [`crate::Relay`], not a process global).
#[derive(Debug)]
pub struct Metrics {
    connections: AtomicI64,
    messages_relayed: AtomicU64,
    logins: AtomicU64,
    hashes_refused: AtomicU64,
    blobs_uploaded: AtomicU64,
    blob_bytes_uploaded: AtomicU64,
    blobs_downloaded: AtomicU64,
    blobs_deleted: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// All counters at zero.
    pub const fn new() -> Self {
        Metrics {
            connections: AtomicI64::new(0),
            messages_relayed: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            hashes_refused: AtomicU64::new(0),
            blobs_uploaded: AtomicU64::new(0),
            blob_bytes_uploaded: AtomicU64::new(0),
            blobs_downloaded: AtomicU64::new(0),
            blobs_deleted: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// A WebSocket connected (+1) or closed (-1).
    pub fn connections(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// A message was stored and relayed.
    pub fn relayed(&self) {
        self.messages_relayed.fetch_add(1, Ordering::Relaxed);
    }

    /// A login or registration succeeded.
    pub fn login(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
    }

    /// A password request was refused because too many hashes were running or waiting.
    pub fn hash_refused(&self) {
        self.hashes_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// An attachment blob of `size` bytes was stored.
    pub fn blob_uploaded(&self, size: u64) {
        self.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        self.blob_bytes_uploaded.fetch_add(size, Ordering::Relaxed);
    }

    /// A blob download started.
    pub fn blob_downloaded(&self) {
        self.blobs_downloaded.fetch_add(1, Ordering::Relaxed);
    }

    /// A blob file was deleted (cleared, withdrawn or expired).
    pub fn blobs_deleted(&self, n: u64) {
        self.blobs_deleted.fetch_add(n, Ordering::Relaxed);
    }

    /// An error was returned to a client.
    pub fn error(&self, code: ErrorCode) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code.as_str()).or_default() += 1;
        }
    }

    /// Prometheus text exposition format, with the group commit's counts.
    pub fn render(&self, writer: &crate::writer::WriterStats, fanout: &dyn crate::hub::Fanout) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP sealroom_connections Open WebSocket connections.");
        let _ = writeln!(out, "# TYPE sealroom_connections gauge");
        let _ = writeln!(out, "sealroom_connections {}", self.connections.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP sealroom_messages_relayed_total Messages stored and relayed.");
        let _ = writeln!(out, "# TYPE sealroom_messages_relayed_total counter");
        let _ = writeln!(
            out,
            "sealroom_messages_relayed_total {}",
            self.messages_relayed.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP sealroom_logins_total Successful logins and registrations.");
        let _ = writeln!(out, "# TYPE sealroom_logins_total counter");
        let _ = writeln!(out, "sealroom_logins_total {}", self.logins.load(Ordering::Relaxed));
        for (name, help, value) in [
            (
                "sealroom_password_hashes_refused_total",
                "Login, registration or password-change requests refused because the hash gate was full.",
                &self.hashes_refused,
            ),
            ("sealroom_blobs_uploaded_total", "Attachment blobs stored.", &self.blobs_uploaded),
            (
                "sealroom_blob_bytes_uploaded_total",
                "Bytes of attachment blobs stored.",
                &self.blob_bytes_uploaded,
            ),
            ("sealroom_blobs_downloaded_total", "Attachment downloads started.", &self.blobs_downloaded),
            ("sealroom_blobs_deleted_total", "Attachment blob files deleted.", &self.blobs_deleted),
            (
                "sealroom_store_commits_total",
                "Group commits (each one transaction and one fsync).",
                &writer.commits,
            ),
            (
                "sealroom_store_writes_total",
                "Writes (messages, receipts, clears) stored by group commits.",
                &writer.writes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        if let Some(up) = fanout.bus_connected() {
            let _ = writeln!(
                out,
                "# HELP sealroom_nats_connected Whether this node is connected to NATS (1) or not (0)."
            );
            let _ = writeln!(out, "# TYPE sealroom_nats_connected gauge");
            let _ = writeln!(out, "sealroom_nats_connected {}", u8::from(up));
            let _ = writeln!(
                out,
                "# HELP sealroom_nats_resyncs_total Times this node dropped its connections so that they catch up \
                 from the database (NATS came back, dropped messages, or another node's events had a gap)."
            );
            let _ = writeln!(out, "# TYPE sealroom_nats_resyncs_total counter");
            let _ = writeln!(out, "sealroom_nats_resyncs_total {}", fanout.resyncs());
        }
        let _ = writeln!(out, "# HELP sealroom_errors_total Errors returned to clients, by code.");
        let _ = writeln!(out, "# TYPE sealroom_errors_total counter");
        if let Ok(m) = self.errors.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "sealroom_errors_total{{code=\"{code}\"}} {n}");
            }
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
