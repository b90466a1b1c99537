//! Typed configuration from flags and `SEALROOM_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sealroom_protocol::Registration;

/// Sealroom relay: accounts, sessions and an end-to-end encrypted message relay. It stores
/// only ciphertext and public keys; it never sees a password, a private key or a plaintext.
#[derive(Debug, Parser)]
#[command(name = "sealroom", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve` (also accepted without the word `serve`).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay (the default).
    Serve(Box<ServeArgs>),
    /// Manage accounts, sessions and invites on a relay's database, also while it runs (every
    /// change reaches its live connections within a second).
    Admin(AdminArgs),
    /// Copies the relay's data (database, attachments, JWT secret) into a new directory: one
    /// consistent snapshot, taken while the relay runs and clients keep sending.
    Backup(BackupArgs),
    /// Restores a backup into a new data directory (and, for PostgreSQL, an empty database);
    /// never over an existing relay's data.
    Restore(RestoreArgs),
}

/// `sealroom backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The relay to back up.
    #[command(flatten)]
    pub store: StoreArgs,
    /// A directory that does not exist yet, or is empty.
    #[arg(long)]
    pub to: PathBuf,
}

/// `sealroom restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup directory (`sealroom backup --to`).
    #[arg(long)]
    pub from: PathBuf,
    /// Where to restore: a new data dir (and database URL, for PostgreSQL: an empty database).
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The database a command works on: the same flags (and environment) as `serve`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The relay's data directory.
    #[arg(long, env = "SEALROOM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The database: a SQLite file path, or `postgres://USER:PASSWORD@HOST/DB` [default:
    /// <data-dir>/sealroom.db].
    #[arg(long, env = "SEALROOM_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The database URL, defaulting into the data dir.
    pub fn database_url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
    }
}

fn database_url(data_dir: &std::path::Path, url: Option<&str>) -> String {
    url.map(str::to_owned).unwrap_or_else(|| data_dir.join("sealroom.db").to_string_lossy().into_owned())
}

/// `sealroom admin`.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Where the relay's data is.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON (one document) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `sealroom admin …`.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Every account: name, created, last seen, devices, storage used, admin, disabled.
    Users,
    /// Disables an account: its sessions and sockets end at once, and it may not sign in.
    Disable {
        /// The username.
        user: String,
    },
    /// Lets a disabled account sign in again.
    Enable {
        /// The username.
        user: String,
    },
    /// A user's sessions (signed-in browsers and CLIs), newest first.
    Sessions {
        /// The username.
        user: String,
    },
    /// Deletes an account, as its user can in the web client or CLI: sessions end at once; the
    /// credential, key backup, devices, archive, unsent uploads and group memberships go; what
    /// they sent stays with its recipients, who see a deleted user. Asks for --yes.
    Delete {
        /// The username.
        user: String,
        /// Yes, delete it (there is no undo).
        #[arg(long)]
        yes: bool,
    },
    /// Ends one session of a user (its id from `sessions`), or all of them.
    Revoke {
        /// The username.
        user: String,
        /// The session; without it, every session of the user.
        session: Option<String>,
    },
    /// Invite codes (for `--registration invite`).
    #[command(subcommand)]
    Invites(InviteCommand),
    /// Makes a user a relay admin: they may manage invites in the web client.
    GrantAdmin {
        /// The username.
        user: String,
    },
    /// Takes a user's relay admin role away.
    RevokeAdmin {
        /// The username.
        user: String,
    },
    /// Users, messages, stored bytes and open connections.
    Stats,
    /// Everything the relay stores for one user (names, times, sizes, and the ciphertext as
    /// base64), to show that nothing in it is readable.
    Inspect {
        /// The username.
        user: String,
        /// Most entries of each kind to print (newest first).
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// `sealroom admin invites …`.
#[derive(Debug, Clone, Subcommand)]
pub enum InviteCommand {
    /// Makes an invite code; prints it as the last line.
    Create {
        /// Sign-ups it allows.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Lifetime (e.g. 12h, 7d, 30d), or `never`.
        #[arg(long, default_value = "7d")]
        expires: String,
        /// A note for yourself: whom it is for.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Every invite, newest first (codes are not kept, so not shown).
    List,
    /// Revokes an invite by its id (from `list`).
    Revoke {
        /// The invite's id.
        id: i64,
    },
}

/// Options of `sealroom serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "SEALROOM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Directory for the database, attachment blobs and the generated JWT secret.
    #[arg(long, env = "SEALROOM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The database: a SQLite file path, or `postgres://USER:PASSWORD@HOST/DB` [default:
    /// <data-dir>/sealroom.db].
    #[arg(long, env = "SEALROOM_DATABASE_URL")]
    pub database_url: Option<String>,

    /// NATS server(s) for fan-out between relay nodes, e.g. `nats://127.0.0.1:4222` (several
    /// comma-separated). With it, this relay is one node among several on one PostgreSQL
    /// database; their data dir (or at least its `blobs/` and `jwt_secret`) must be one shared
    /// directory. README, "Several relay nodes".
    #[arg(long, env = "SEALROOM_NATS_URL")]
    pub nats_url: Option<String>,

    /// Directory of the built web client, served at `/` [default: ./web/dist if it exists].
    #[arg(long, env = "SEALROOM_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// Session lifetime: seconds, or a number with s, m, h or d (e.g. 12h, 7d).
    #[arg(long, env = "SEALROOM_TOKEN_TTL", default_value = "7d", value_parser = parse_duration)]
    pub token_ttl: Duration,

    /// A new login signs the user's other sessions out (the predecessor apps' behaviour).
    /// Off by default, so many tabs and devices work at once.
    #[arg(long, env = "SEALROOM_SINGLE_SESSION")]
    pub single_session: bool,

    /// Mark the session cookie `Secure` even on a loopback address over plain HTTP (behind a
    /// TLS proxy on the same machine). It is `Secure` anyway when the relay serves TLS or
    /// listens on any address other than loopback.
    #[arg(long, env = "SEALROOM_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Serve HTTPS (and WSS) with this PEM certificate chain; needs `--tls-key`. Browsers give
    /// WebCrypto only to secure contexts, so a relay reached by name needs TLS here or in a
    /// proxy in front. Adds `Strict-Transport-Security`.
    #[arg(long, env = "SEALROOM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) for `--tls-cert`.
    #[arg(long, env = "SEALROOM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Extra browser origins allowed to use the cookie session (e.g. http://localhost:8081 for
    /// `trunk serve`). The relay's own origin is always allowed.
    #[arg(long = "allowed-origin", env = "SEALROOM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Reverse proxies (addresses or CIDRs, e.g. 127.0.0.1,10.0.0.0/8) whose `Forwarded` /
    /// `X-Forwarded-For` and forwarded host headers the relay believes, for the client address
    /// in rate limits and the host in the Origin check. From any other peer they are ignored.
    #[arg(long = "trusted-proxy", env = "SEALROOM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Failed logins plus registrations allowed per client IP per minute (all login, register
    /// and password calls are also capped at 20 times this per IP).
    #[arg(long, env = "SEALROOM_AUTH_RATE_PER_IP", default_value_t = 30)]
    pub auth_rate_per_ip: u32,

    /// Failed logins allowed per client IP and username per minute (then 429 without checking
    /// the password). Across all IPs an account takes 10 times this per minute; beyond that a
    /// wrong password gets 429 but the right one still signs in, so nobody can lock the owner
    /// out. Password changes, successful or not, are capped at this per account per minute.
    #[arg(long, env = "SEALROOM_AUTH_RATE_PER_USER", default_value_t = 10)]
    pub auth_rate_per_user: u32,

    /// Password hashes (Argon2id, 19 MiB each) computed at once; up to 8 times as many requests
    /// wait (10 s at most), beyond that they get 429 with Retry-After. Default: the number of
    /// CPUs.
    #[arg(long, env = "SEALROOM_MAX_PASSWORD_HASHES")]
    pub max_password_hashes: Option<usize>,

    /// WebSocket connections one user may hold at once (tabs and devices); one more is closed
    /// at once with a `rate_limited` error.
    #[arg(long, env = "SEALROOM_MAX_CONNECTIONS_PER_USER", default_value_t = crate::hub::DEFAULT_MAX_CONNECTIONS_PER_USER)]
    pub max_connections_per_user: usize,

    /// WebSocket connections the relay holds at once, for all users; one more is closed at
    /// once with a `rate_limited` error. The relay raises its file-descriptor limit to fit at
    /// start and refuses to start if it cannot. Default: 50,000, or what the descriptor limit
    /// allows if that is less (said at start).
    #[arg(long, env = "SEALROOM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Token that `GET /metrics` must present as `Authorization: Bearer …`. Without one,
    /// `/metrics` answers only requests from this machine (loopback).
    #[arg(long, env = "SEALROOM_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Bytes of message envelopes one user may have stored as a sender: a number with an
    /// optional K, M or G (binary multiples). Messages deleted by clearing for both free room.
    #[arg(long, env = "SEALROOM_MESSAGE_QUOTA", default_value = "1G", value_parser = parse_size)]
    pub message_quota: u64,

    /// Seconds an attachment upload may send nothing before it is dropped.
    #[arg(long, env = "SEALROOM_UPLOAD_IDLE_TIMEOUT", default_value_t = 60)]
    pub upload_idle_timeout: u64,

    /// Seconds without any frame or pong before a WebSocket is dropped.
    #[arg(long, env = "SEALROOM_WS_IDLE_TIMEOUT", default_value_t = 60)]
    pub ws_idle_timeout: u64,

    /// Largest attachment a user may send, in bytes of file: a number with an optional K, M
    /// or G (binary multiples), e.g. 100M.
    #[arg(long, env = "SEALROOM_MAX_UPLOAD", default_value = "100M", value_parser = parse_size)]
    pub max_upload: u64,

    /// Most bytes of attachments one user may have stored at once (same syntax).
    #[arg(long, env = "SEALROOM_USER_QUOTA", default_value = "2G", value_parser = parse_size)]
    pub user_quota: u64,

    /// How long an upload may stay unreferenced by any message before it is deleted.
    #[arg(long, env = "SEALROOM_UNATTACHED_TTL", default_value = "24h", value_parser = parse_duration)]
    pub unattached_ttl: Duration,

    /// How long a device may go unseen (no sign-in, no message) before the other members of its
    /// groups take it out of them; it joins again by itself when it comes back.
    #[arg(long, env = "SEALROOM_DEVICE_IDLE", default_value = "90d", value_parser = parse_duration)]
    pub device_idle: Duration,

    /// Delete messages (and the attachments only they carry, and history-archive entries)
    /// older than this many days, every --gc-interval; clients say that history is limited.
    /// Without it, everything is kept until its users clear it.
    #[arg(long, env = "SEALROOM_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// How long the name of a deleted account stays taken, so nobody can take it and pass as
    /// its owner to their old contacts; after that it can be registered again.
    #[arg(long, env = "SEALROOM_DELETED_NAME_HOLD", default_value = "365d", value_parser = parse_duration)]
    pub deleted_name_hold: Duration,

    /// How often the relay tidies up: unsent uploads past their lifetime, dead sessions, group
    /// log entries every device has read.
    #[arg(long, env = "SEALROOM_GC_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub gc_interval: Duration,

    /// Who may create an account: `open` (anyone), `invite` (with a code from `sealroom admin
    /// invites create` or a relay admin), `closed` (no one) [default: open when listening on
    /// loopback only, invite otherwise; said at start].
    #[arg(long, env = "SEALROOM_REGISTRATION", value_parser = parse_registration)]
    pub registration: Option<Registration>,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `sealroom_server=debug`.
    #[arg(long, env = "SEALROOM_LOG", default_value = "info")]
    pub log: String,
}

impl ServeArgs {
    /// Whether the session cookie is marked `Secure`: when asked, when serving TLS, and
    /// whenever the relay listens beyond loopback (plain HTTP there would leak the session).
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies || self.tls_cert.is_some() || !self.bind.ip().is_loopback()
    }

    /// The database URL, defaulting into the data dir.
    pub fn database_url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
    }

    /// Who may register: as asked, else open on loopback only and invite-only beyond it (a
    /// relay others can reach is not open to the world unless the operator says so).
    pub fn registration(&self) -> Registration {
        self.registration.unwrap_or(if self.bind.ip().is_loopback() {
            Registration::Open
        } else {
            Registration::Invite
        })
    }

    /// The web dir, defaulting to ./web/dist when it exists.
    pub fn web_dir(&self) -> Option<PathBuf> {
        self.web_dir.clone().or_else(|| {
            let d = PathBuf::from("web/dist");
            d.join("index.html").exists().then_some(d)
        })
    }
}

fn parse_registration(text: &str) -> Result<Registration, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "open" => Ok(Registration::Open),
        "invite" => Ok(Registration::Invite),
        "closed" => Ok(Registration::Closed),
        other => Err(format!("`{other}` is not one of open, invite, closed")),
    }
}

/// `1048576`, `512K`, `100M`, `2G` (binary multiples).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (num, mult) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => {
            let (n, unit) = text.split_at(i);
            let mult: u64 = match unit.to_ascii_uppercase().as_str() {
                "K" | "KIB" => 1 << 10,
                "M" | "MIB" => 1 << 20,
                "G" | "GIB" => 1 << 30,
                _ => return Err(format!("`{text}`: unit must be K, M or G")),
            };
            (n, mult)
        }
        None => (text, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a size like 100M"))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes == 0 || bytes > 1 << 40 {
        return Err(format!("`{text}`: must be between 1 byte and 1 TiB"));
    }
    Ok(bytes)
}

/// `90`, `90s`, `15m`, `12h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (num, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 12h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{text}`: unit must be s, m, h or d")),
    };
    if secs == 0 || secs > 366 * 86_400 {
        return Err(format!("`{text}`: must be between 1 second and 366 days"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        for bad in ["", "0", "7w", "-1", "1000d", "h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M").unwrap(), 100 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        for bad in ["", "0", "1T", "-5M", "M", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_parses_with_and_without_serve() {
        let cli = Cli::try_parse_from(["sealroom", "--bind", "127.0.0.1:0", "--single-session"]).unwrap();
        assert!(cli.serve.single_session);
        let cli = Cli::try_parse_from(["sealroom", "serve", "--token-ttl", "12h"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve(a)) if a.token_ttl == Duration::from_secs(43_200)));
        assert!(Cli::try_parse_from(["sealroom", "--bind", "nonsense"]).is_err());
    }

    #[test]
    fn registration_is_open_on_loopback_and_invite_only_beyond_unless_told() {
        let serve = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["sealroom", "serve"], args].concat()).unwrap();
            match cli.command {
                Some(Command::Serve(a)) => a.registration(),
                _ => unreachable!(),
            }
        };
        assert_eq!(serve(&["--bind", "127.0.0.1:8080"]), Registration::Open);
        assert_eq!(serve(&["--bind", "[::1]:8080"]), Registration::Open);
        assert_eq!(serve(&["--bind", "0.0.0.0:8080"]), Registration::Invite);
        assert_eq!(serve(&["--bind", "192.168.1.5:443"]), Registration::Invite);
        assert_eq!(serve(&["--bind", "0.0.0.0:8080", "--registration", "open"]), Registration::Open);
        assert_eq!(serve(&["--registration", "Closed"]), Registration::Closed);
        assert!(Cli::try_parse_from(["sealroom", "--registration", "sometimes"]).is_err());
    }

    #[test]
    fn admin_commands_parse() {
        let cli = Cli::try_parse_from([
            "sealroom",
            "admin",
            "--data-dir",
            "/x",
            "invites",
            "create",
            "--uses",
            "3",
        ])
        .unwrap();
        let Some(Command::Admin(a)) = cli.command else { panic!("admin") };
        assert_eq!(a.store.database_url(), "/x/sealroom.db");
        assert!(matches!(a.command, AdminCommand::Invites(InviteCommand::Create { uses: 3, .. })));
        let cli = Cli::try_parse_from(["sealroom", "admin", "revoke", "bob", "--json"]).unwrap();
        let Some(Command::Admin(a)) = cli.command else { panic!("admin") };
        assert!(a.json);
        assert!(matches!(a.command, AdminCommand::Revoke { session: None, .. }));
        assert!(Cli::try_parse_from(["sealroom", "admin", "teleport"]).is_err());
    }
}
