//! The two databases the relay runs on: SQLite (the default: one file in the data directory,
//! one relay) and PostgreSQL (`--database-url postgres://…`: the system of record that several
//! relay nodes share). The store's diesel code is written once against [`DbConn`], diesel's
//! [`MultiConnection`](diesel::MultiConnection) over both; the few statements outside their
//! common subset (`RETURNING`, `ON CONFLICT`, raw SQL) run through [`on_backend!`], which
//! compiles the same code once per database.
//!
//! **Writes are serialized database-wide on both.** SQLite has one writer by design (`BEGIN
//! IMMEDIATE`). On PostgreSQL every writing transaction first takes one transaction-scoped
//! advisory lock ([`WRITE_LOCK`]), so writes from every node run one after another, as on
//! SQLite. That is what keeps each message id (and group log position) strictly increasing in
//! *commit* order, across nodes: a client that resumes "after id N" can never miss a message
//! that committed later with a smaller id, which plain sequences allow. Each node's group
//! commit ([`crate::writer`]) holds the lock for one batch of writes, so the cost is one lock
//! and one commit per batch, not per message.

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::result::Error as DieselError;
use diesel::RunQueryDsl;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use diesel::pg::PgConnection;
pub use diesel::sqlite::SqliteConnection;

use crate::store::StoreError;

/// diesel's derive writes the backend and its glue, undocumented: kept apart.
#[allow(missing_docs, missing_debug_implementations, unreachable_pub)]
mod multi {
    use super::{PgConnection, SqliteConnection};

    /// A connection to either database.
    #[derive(diesel::MultiConnection)]
    pub enum DbConn {
        /// The embedded default.
        Sqlite(SqliteConnection),
        /// Shared by several relay nodes.
        Postgres(PgConnection),
    }
}

pub use multi::{DbConn, MultiBackend};

impl std::fmt::Debug for DbConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbConn::Sqlite(_) => "DbConn::Sqlite",
            DbConn::Postgres(_) => "DbConn::Postgres",
        })
    }
}

impl DbConn {
    /// Whether this is the embedded SQLite database.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, DbConn::Sqlite(_))
    }
}

/// SQL's maximum of two values, for the raw queries: SQLite's scalar `MAX`, PostgreSQL's
/// `GREATEST` (every argument the store passes is non-null, where the two differ).
pub fn greatest(conn: &DbConn) -> &'static str {
    match conn {
        DbConn::Sqlite(_) => "MAX",
        DbConn::Postgres(_) => "GREATEST",
    }
}

/// Runs `$body` with `$c` bound to the concrete connection inside `$conn` (a `&mut DbConn`):
/// the same code, type-checked and compiled once for each database.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {{
        let db: &mut $crate::db::DbConn = &mut *$conn;
        match db {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    }};
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file path (or `sqlite://` / `file:` URL).
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
}

impl Backend {
    /// The database `url` names: PostgreSQL for `postgres://` and `postgresql://`, else SQLite.
    pub fn of(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Its name, as `/healthz` and the start-up line say it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// `url` without its password, for logs and errors: `postgres://user:secret@host/db` →
/// `postgres://user:***@host/db`, and a `password=` parameter's value likewise.
pub fn redacted(url: &str) -> String {
    with_password(url, &mut |_| Some("***"))
}

/// `url` with its password taken out, and the password (percent-decoded): for a child process
/// (`pg_dump`), which gets the password in `PGPASSWORD` rather than in its arguments, which
/// every user of the machine can read.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let mut password = None;
    let rest = with_password(url, &mut |p| {
        password = Some(percent_decoded(p));
        None
    });
    (rest, password)
}

/// `url` with each password (in the authority or a `password=` parameter) replaced by what
/// `swap` says, or removed when it says `None`.
fn with_password(url: &str, swap: &mut dyn FnMut(&str) -> Option<&'static str>) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    // The authority ends at the first '/', '?' or '#'; its credentials at its last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, password)) => match swap(password) {
                Some(mask) => format!("{user}:{mask}@{host}"),
                None => format!("{user}@{host}"),
            },
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .filter_map(|kv| match kv.strip_prefix("password=") {
                    Some(p) => swap(p).map(|mask| format!("password={mask}")),
                    None => Some(kv.to_owned()),
                })
                .collect();
            if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", query.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// `%XX` escapes decoded (anything malformed kept as it is).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SQLite migrations, from the first release on.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
/// PostgreSQL migrations: the first creates what SQLite's reached when PostgreSQL support came.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The connection pool.
pub type DbPool = Pool<ConnectionManager<DbConn>>;
/// One pooled connection.
pub type Conn = PooledConnection<ConnectionManager<DbConn>>;

/// Every SQLite connection's settings: wait for the write lock rather than fail, enforce
/// foreign keys, fsync every commit, a page cache of at most 2 MiB (SQLite's default, stated:
/// the pool holds it per connection), and temporary files in memory. The last matters to the
/// group commit: every write runs in a savepoint, whose undo copies of pages (the
/// sub-journal) SQLite otherwise spills to a temporary file past 64 KiB, one `pwrite` per page
/// (14 % of the writer's time in a profile). It holds at most the pages one batch changes.
const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
     PRAGMA cache_size = -2048; PRAGMA temp_store = MEMORY;";

/// Every PostgreSQL session's settings: commits wait for the disk (the server's default,
/// stated: an acknowledged message must survive a crash), and a statement that waits longer
/// than 10 s for a lock fails (as SQLite's busy timeout) rather than hang a request.
const POSTGRES_SETTINGS: &str = "SET synchronous_commit = on; SET lock_timeout = '10s';";

/// The key of the advisory lock every writing transaction takes on PostgreSQL ("sealroom"
/// in ASCII, so it does not collide with another application's on a shared server).
pub const WRITE_LOCK: i64 = 0x7365_616c_726f_6f6d;

/// Applies a connection's settings (each new one, pooled or not).
pub fn prepare(conn: &mut DbConn) -> Result<(), DieselError> {
    match conn {
        DbConn::Sqlite(c) => c.batch_execute(SQLITE_PRAGMAS),
        DbConn::Postgres(c) => c.batch_execute(POSTGRES_SETTINGS),
    }
}

#[derive(Debug)]
struct Prepare;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for Prepare {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        prepare(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens one connection with its settings applied.
pub fn connect(url: &str) -> Result<DbConn, StoreError> {
    use diesel::Connection;
    let mut conn = match Backend::of(url) {
        Backend::Sqlite => SqliteConnection::establish(url).map(DbConn::Sqlite),
        Backend::Postgres => PgConnection::establish(url).map(DbConn::Postgres),
    }
    .map_err(|e| StoreError::Open(format!("{}: {e}", redacted(url))))?;
    prepare(&mut conn)?;
    Ok(conn)
}

/// Runs `f` in a writing transaction: on SQLite `BEGIN IMMEDIATE` (the write lock at once), on
/// PostgreSQL `BEGIN` and the [`WRITE_LOCK`]. Either way no other writer, on this node or
/// another, runs until it ends.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DieselError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    use diesel::Connection;
    match conn {
        DbConn::Sqlite(inner) => {
            // SQLite's `immediate_transaction`, with `DbConn` lent to `f`: the inner
            // connection's transaction state is the one `DbConn` reports.
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            type Manager = <DbConn as Connection>::TransactionManager;
            match f(conn) {
                Ok(value) => {
                    Manager::commit_transaction(conn)?;
                    Ok(value)
                }
                Err(e) => match Manager::rollback_transaction(conn) {
                    Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(e),
                    Err(rollback) => Err(rollback.into()),
                },
            }
        }
        DbConn::Postgres(_) => conn.transaction(|conn| {
            conn.batch_execute(TAKE_WRITE_LOCK)?;
            f(conn)
        }),
    }
}

/// Takes the [`WRITE_LOCK`] until the transaction ends.
const TAKE_WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(8315159405413756781)";

/// Opens (creating if needed) the database, applies its migrations, and returns a pool.
pub fn open(url: &str, max_size: u32) -> Result<DbPool, StoreError> {
    let mut first = connect(url)?;
    migrate(&mut first)?;
    drop(first);
    Pool::builder()
        .max_size(max_size)
        // A request waits this long for a connection when the database is unreachable, then
        // gets `unavailable` (r2d2's default is 30 s).
        .connection_timeout(std::time::Duration::from_secs(5))
        .connection_customizer(Box::new(Prepare))
        .build(ConnectionManager::<DbConn>::new(url))
        .map_err(|e| StoreError::Open(format!("{}: {e}", redacted(url))))
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Applies the pending migrations of `conn`'s database.
fn migrate(conn: &mut DbConn) -> Result<(), StoreError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open(format!("migrations: {e}"));
    match conn {
        DbConn::Sqlite(c) => {
            // WAL is a property of the file: switch it once, on one connection, before the pool
            // opens several at the same time (which would race for the lock the switch needs).
            // Migrations run with foreign keys off, as SQLite's way to rebuild a table requires
            // (else dropping the old table would cascade into every row that refers to it);
            // every reference is checked once they are done, and the relay refuses to start on
            // a violation.
            c.batch_execute("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = OFF;")?;
            c.run_pending_migrations(SQLITE_MIGRATIONS).map_err(failed)?;
            let violations = diesel::sql_query("SELECT COUNT(*) AS n FROM pragma_foreign_key_check")
                .get_result::<Count>(c)?
                .n;
            c.batch_execute("PRAGMA foreign_keys = ON;")?;
            if violations > 0 {
                return Err(StoreError::Open(format!("{violations} rows refer to rows that do not exist")));
            }
        }
        DbConn::Postgres(c) => {
            // Nodes that start together migrate one at a time: the first applies, the others
            // find nothing pending.
            c.batch_execute(&format!("SELECT pg_advisory_lock({WRITE_LOCK})"))?;
            let applied = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(drop).map_err(failed);
            c.batch_execute(&format!("SELECT pg_advisory_unlock({WRITE_LOCK})"))?;
            applied?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_statement_takes_the_write_lock() {
        assert_eq!(TAKE_WRITE_LOCK, format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})"));
    }

    #[test]
    fn urls_name_their_database_and_lose_their_password_in_logs() {
        assert_eq!(Backend::of("postgres://a@b/c"), Backend::Postgres);
        assert_eq!(Backend::of("postgresql://a@b/c"), Backend::Postgres);
        assert_eq!(Backend::of("./data/sealroom.db"), Backend::Sqlite);
        assert_eq!(Backend::of("file:x.db"), Backend::Sqlite);
        assert_eq!(
            redacted("postgres://sealroom:hunter2@db:5432/sealroom"),
            "postgres://sealroom:***@db:5432/sealroom"
        );
        assert_eq!(
            redacted("postgres://p:a:b@db/x?sslmode=require"),
            "postgres://p:***@db/x?sslmode=require"
        );
        assert_eq!(redacted("postgres://sealroom@db/sealroom"), "postgres://sealroom@db/sealroom");
        assert_eq!(
            redacted("postgres://db/x?user=a&password=y&x=1"),
            "postgres://db/x?user=a&password=***&x=1"
        );
        assert_eq!(redacted("./data/sealroom.db"), "./data/sealroom.db");
    }

    #[test]
    fn a_child_process_gets_the_url_without_its_password_and_the_password_apart() {
        assert_eq!(
            split_password("postgres://sealroom:p%40ss%3Aword@db:5432/sealroom?sslmode=require"),
            ("postgres://sealroom@db:5432/sealroom?sslmode=require".to_owned(), Some("p@ss:word".to_owned()))
        );
        assert_eq!(
            split_password("postgres://db/x?user=a&password=y%20z"),
            ("postgres://db/x?user=a".to_owned(), Some("y z".to_owned()))
        );
        assert_eq!(split_password("postgres://a@db/x"), ("postgres://a@db/x".to_owned(), None));
        assert_eq!(percent_decoded("100%"), "100%");
    }
}
