//! Storage: the relay's only door to the database. Row types carry typed ids; failures are
//! [`StoreError`]s. Functions are blocking and take a connection; services run reads through
//! [`Store::run`], on the blocking pool, and every write through [`Store::write`], on the one
//! writer thread ([`crate::writer`]: group commit).
//!
//! SQLite runs in WAL mode with foreign keys on, a busy timeout, and `synchronous = FULL`, so a
//! message is on disk before the relay acknowledges it.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Binary, Bool, Nullable, Text};
use sealroom_protocol::{ConversationId, ConversationKind, MessageId, UserId};

use crate::schema::{blobs, blocks, conversations, members, message_blobs, messages, sessions, users};

#[path = "store_mls.rs"]
pub mod mls;

#[path = "store_admin.rs"]
pub mod admin;

pub use crate::db::{Conn, DbConn, DbPool};
use crate::on_backend;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Database(#[from] DieselError),
    /// No connection could be had from the pool.
    #[error("connection pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// A group commit failed (or its write never ran): nothing of it was stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A stored value fails the check its type makes (a row written by something else).
    #[error("stored {what} of {row} is invalid")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Which row (its id).
        row: i64,
    },
}

impl StoreError {
    /// Whether the database could not be reached at all (no connection from the pool, or one
    /// that broke), as opposed to a statement it refused: the relay answers `unavailable`.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Database(DieselError::DatabaseError(kind, _)) => {
                matches!(kind, DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand)
            }
            StoreError::Commit(why) => why.contains("connection") || why.contains("server closed"),
            _ => false,
        }
    }
}

/// Result of a storage function.
pub type StoreResult<T> = Result<T, StoreError>;

/// Runs `f` in a transaction of its own (`BEGIN IMMEDIATE`, taking the write lock at once), or
/// in a savepoint when the caller already holds one (the [group commit](crate::writer)'s).
pub fn atomically<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DieselError>,
{
    use diesel::connection::TransactionManager;
    let depth = <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?;
    if depth.is_some() {
        savepoint(conn, f)
    } else {
        crate::db::write_transaction(conn, f)
    }
}

/// The statements the group commit runs for every message that diesel would not keep
/// prepared, written out so that SQLite parses and plans each once per connection.
///
/// Diesel caches no `UPDATE` (a changeset with optional fields may change its SQL text from
/// one run to the next) and no SQL handed to it as text, so the relay's hot updates and
/// savepoints were parsed anew for every message: a fifth of the writer's time in a profile.
/// Each type here has one SQL text, so diesel's statement cache keeps it by type. The store's
/// tests run every one of them, as diesel's DSL would check them at compile time.
mod hot {
    use diesel::backend::Backend;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::serialize::ToSql;
    use diesel::sql_types::{BigInt, Bool, HasSqlType};
    use diesel::{QueryResult, RunQueryDsl};

    /// Statements without parameters.
    macro_rules! fixed {
        ($($(#[$doc:meta])* $name:ident = $sql:literal;)*) => {$(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, QueryId)]
            pub struct $name;

            impl<DB: Backend> QueryFragment<DB> for $name {
                fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                    out.push_sql($sql);
                    Ok(())
                }
            }

            impl<C> RunQueryDsl<C> for $name {}
        )*};
    }

    fixed! {
        /// Opens a savepoint. Nested ones may share the name: `RELEASE` and `ROLLBACK TO`
        /// act on the innermost.
        Savepoint = "SAVEPOINT sealroom";
        /// Keeps the innermost savepoint's changes.
        Release = "RELEASE sealroom";
        /// Undoes the innermost savepoint's changes (it stays open: release it after).
        RollbackTo = "ROLLBACK TO sealroom";
    }

    /// Charges `size` bytes to `user`'s message quota, if that leaves them at most `limit`.
    #[derive(Debug, Clone, Copy, QueryId)]
    pub struct ChargeQuota {
        pub user: i64,
        pub size: i64,
        pub limit: i64,
    }

    impl<DB> QueryFragment<DB> for ChargeQuota
    where
        DB: Backend + HasSqlType<BigInt> + HasSqlType<Bool>,
        i64: ToSql<BigInt, DB>,
        bool: ToSql<Bool, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            out.push_sql("UPDATE users SET message_bytes = message_bytes + ");
            out.push_bind_param::<BigInt, _>(&self.size)?;
            out.push_sql(" WHERE id = ");
            out.push_bind_param::<BigInt, _>(&self.user)?;
            out.push_sql(" AND message_bytes <= ");
            out.push_bind_param::<BigInt, _>(&self.limit)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for ChargeQuota {}

    /// Sets a conversation's last activity.
    #[derive(Debug, Clone, Copy, QueryId)]
    pub struct Touch {
        pub conversation: i64,
        pub at: i64,
    }

    impl<DB> QueryFragment<DB> for Touch
    where
        DB: Backend + HasSqlType<BigInt> + HasSqlType<Bool>,
        i64: ToSql<BigInt, DB>,
        bool: ToSql<Bool, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            out.push_sql("UPDATE conversations SET last_activity = ");
            out.push_bind_param::<BigInt, _>(&self.at)?;
            out.push_sql(" WHERE id = ");
            out.push_bind_param::<BigInt, _>(&self.conversation)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for Touch {}

    /// Sets a member's delivery marker, and its read marker when `read` (receipts).
    #[derive(Debug, Clone, Copy, QueryId)]
    pub struct Markers {
        pub conversation: i64,
        pub user: i64,
        pub delivered: i64,
        pub read: i64,
        /// Whether the read marker is set too.
        pub set_read: bool,
    }

    impl<DB> QueryFragment<DB> for Markers
    where
        DB: Backend + HasSqlType<BigInt> + HasSqlType<Bool>,
        i64: ToSql<BigInt, DB>,
        bool: ToSql<Bool, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            // One text for both: the read marker is set to itself when not `set_read`.
            out.push_sql("UPDATE members SET delivered_up_to = ");
            out.push_bind_param::<BigInt, _>(&self.delivered)?;
            out.push_sql(", read_up_to = CASE WHEN ");
            out.push_bind_param::<Bool, _>(&self.set_read)?;
            out.push_sql(" THEN ");
            out.push_bind_param::<BigInt, _>(&self.read)?;
            out.push_sql(" ELSE read_up_to END WHERE conversation_id = ");
            out.push_bind_param::<BigInt, _>(&self.conversation)?;
            out.push_sql(" AND user_id = ");
            out.push_bind_param::<BigInt, _>(&self.user)?;
            Ok(())
        }
    }

    impl<C> RunQueryDsl<C> for Markers {}
}

/// The relay's hot path on SQLite's own connection ([`hot_path!`]).
mod on_sqlite {
    use super::*;
    type Conn = crate::db::SqliteConnection;
    include!("store_hot.rs");
}

/// The relay's hot path on PostgreSQL's own connection ([`hot_path!`]).
mod on_postgres {
    use super::*;
    type Conn = crate::db::PgConnection;
    include!("store_hot.rs");
}

/// Runs one function of the hot path (`store_hot.rs`: the statements every sent message and
/// receipt runs) on the concrete connection inside a `&mut DbConn`. Diesel's `MultiConnection`
/// writes each statement's SQL text and converts its binds anew on every execution, prepared
/// or not; on the connection itself a cached statement is found by its type and only bound.
macro_rules! hot_path {
    ($conn:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match &mut *$conn {
            DbConn::Sqlite(c) => on_sqlite::$f(c, $($arg),*),
            DbConn::Postgres(c) => on_postgres::$f(c, $($arg),*),
        }
    };
}

/// Runs `f` inside a savepoint of the transaction the connection is in: kept if `f` succeeds,
/// rolled back (and only it) if `f` fails. Its statements are prepared once ([`hot`]);
/// diesel's nested `transaction` parses them on every call, and the group commit runs a
/// savepoint for every write.
pub fn savepoint<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DieselError>,
{
    on_backend!(conn, c => hot::Savepoint.execute(c))?;
    match f(conn) {
        Ok(value) => {
            on_backend!(conn, c => hot::Release.execute(c))?;
            Ok(value)
        }
        Err(e) => {
            on_backend!(conn, c => hot::RollbackTo.execute(c).and_then(|_| hot::Release.execute(c)))?;
            Err(e)
        }
    }
}

/// The database behind a connection pool for reads and rare writes, and the
/// [group-commit writer](crate::writer) for the hot ones. Storage functions are blocking;
/// [`Store::run`] runs them on the blocking pool, [`Store::write`] on the writer's thread.
#[derive(Debug, Clone)]
pub struct Store {
    pool: DbPool,
    writer: crate::writer::Writer,
}

impl Store {
    /// Opens the database at `database_url` ([`open`]) and starts its writer.
    pub fn open(database_url: &str) -> StoreResult<Self> {
        let pool = crate::db::open(database_url, 8)?;
        let url = database_url.to_owned();
        let writer = crate::writer::Writer::start(move || crate::db::connect(&url))?;
        Ok(Store { pool, writer })
    }

    /// Queues a write for the next group commit, now; resolves once it is on disk. Writes
    /// queued one after another are stored in that order ([`crate::writer`]).
    pub fn write<T, F>(&self, f: F) -> impl std::future::Future<Output = crate::error::Result<T>> + 'static
    where
        F: FnOnce(&mut DbConn) -> crate::error::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(f)
    }

    /// Group commits so far, and the writes in them.
    pub fn writer_stats(&self) -> &crate::writer::WriterStats {
        self.writer.stats()
    }

    /// A pooled connection, for blocking callers (start-up, tests).
    pub fn conn(&self) -> StoreResult<Conn> {
        Ok(self.pool.get()?)
    }

    /// Runs storage code that only reads on the blocking pool with a pooled connection (writes
    /// go through [`Store::write`]: SQLite has one writer).
    pub async fn run<T, F>(&self, f: F) -> crate::error::Result<T>
    where
        F: FnOnce(&mut Conn) -> crate::error::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        crate::relay::blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            f(&mut conn)
        })
        .await?
    }
}

/// Whether a failed insert broke a UNIQUE constraint.
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)))
}

// ---------------------------------------------------------------------------------------------
// Users and sessions

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub auth_hash: String,
    pub kdf_salt: Vec<u8>,
    pub kdf_m_kib: i32,
    pub kdf_t: i32,
    pub kdf_p: i32,
    pub identity_key: Vec<u8>,
    pub key_backup: Vec<u8>,
    pub key_backup_version: i64,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    pub disabled_at: Option<i64>,
    pub is_admin: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub auth_hash: &'a str,
    pub kdf_salt: &'a [u8],
    pub kdf_m_kib: i32,
    pub kdf_t: i32,
    pub kdf_p: i32,
    pub identity_key: &'a [u8],
    pub key_backup: &'a [u8],
    pub created_at: i64,
}

pub fn insert_user(conn: &mut DbConn, new: &NewUser<'_>) -> StoreResult<UserRow> {
    let insert = diesel::insert_into(users::table).values(new);
    Ok(on_backend!(conn, c => insert.returning(UserRow::as_returning()).get_result(c))?)
}

pub fn user_by_name(conn: &mut DbConn, name: &str) -> StoreResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::username.eq(name))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn user_by_id(conn: &mut DbConn, id: UserId) -> StoreResult<Option<UserRow>> {
    Ok(users::table.find(id).select(UserRow::as_select()).get_result(conn).optional()?)
}

/// A directory entry: name, identity key, signing key (once published).
pub type DirectoryRow = (String, Vec<u8>, Option<Vec<u8>>);

/// The user named exactly `prefix`, and those among `among` whose name starts with it, by
/// name, never `me`.
pub fn search_users(
    conn: &mut DbConn,
    me: UserId,
    prefix: &str,
    among: &[UserId],
    limit: i64,
) -> StoreResult<Vec<DirectoryRow>> {
    // `prefix` is validated to [a-z0-9_]; escape `_`, LIKE's single-character wildcard.
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    Ok(users::table
        .filter(users::id.ne(me))
        // Deleted accounts are not in the directory (GetUser still answers for them).
        .filter(users::auth_hash.ne(""))
        .filter(
            users::username
                .eq(prefix)
                .or(users::username.like(pattern).escape('\\').and(users::id.eq_any(among))),
        )
        .order(users::username.asc())
        .limit(limit)
        .select((users::username, users::identity_key, users::signing_key))
        .load(conn)?)
}

/// Everyone who shares a conversation with `user` (written to or only opened).
pub fn contacts_of(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<UserId>> {
    let mine: Vec<ConversationId> =
        members::table.filter(members::user_id.eq(user)).select(members::conversation_id).load(conn)?;
    Ok(members::table
        .filter(members::conversation_id.eq_any(mine))
        .filter(members::user_id.ne(user))
        .select(members::user_id)
        .distinct()
        .load(conn)?)
}

/// One user's name (a statement prepared once, unlike [`usernames`]'s list of varying length).
pub fn username(conn: &mut DbConn, id: UserId) -> StoreResult<Option<String>> {
    hot_path!(conn, username(id))
}

pub fn usernames(conn: &mut DbConn, ids: &[UserId]) -> StoreResult<Vec<(UserId, String)>> {
    Ok(users::table.filter(users::id.eq_any(ids)).select((users::id, users::username)).load(conn)?)
}

/// Whether `sender` wrote in `conversation` (and it was not withheld) before message `before`.
/// An `EXISTS` that stops at the first such message: counting them all made every send slower
/// as the conversation grew (found by the soak: one count scanned thousands of rows per send).
pub fn wrote_before(
    conn: &mut DbConn,
    conversation: ConversationId,
    sender: UserId,
    before: MessageId,
) -> StoreResult<bool> {
    hot_path!(conn, wrote_before(conversation, sender, before))
}

/// Bytes of envelopes `user` has stored as a sender (what the message quota counts).
pub fn message_bytes(conn: &mut DbConn, user: UserId) -> StoreResult<i64> {
    Ok(users::table.find(user).select(users::message_bytes).get_result(conn)?)
}

/// A user's name and when they were last seen.
pub fn name_and_last_seen(conn: &mut DbConn, user: UserId) -> StoreResult<Option<(String, Option<i64>)>> {
    Ok(users::table.find(user).select((users::username, users::last_seen)).get_result(conn).optional()?)
}

pub fn set_last_seen(conn: &mut DbConn, user: UserId, at: i64) -> StoreResult<()> {
    diesel::update(users::table.find(user)).set(users::last_seen.eq(at)).execute(conn)?;
    Ok(())
}

/// Replaces the key backup if `expected_version` is current; returns the new version, or
/// `None` when the stored version differs (a stale write).
pub fn update_key_backup(
    conn: &mut DbConn,
    user: UserId,
    backup: &[u8],
    expected_version: i64,
) -> StoreResult<Option<i64>> {
    let n = diesel::update(users::table.find(user).filter(users::key_backup_version.eq(expected_version)))
        .set((users::key_backup.eq(backup), users::key_backup_version.eq(expected_version + 1)))
        .execute(conn)?;
    Ok((n == 1).then_some(expected_version + 1))
}

/// Deletes session rows that expired or were revoked before `before` (ms): they can never
/// authenticate again. Returns how many went.
pub fn prune_sessions(conn: &mut DbConn, before: i64) -> StoreResult<usize> {
    Ok(diesel::delete(
        sessions::table.filter(sessions::expires_at.lt(before).or(sessions::revoked_at.lt(before))),
    )
    .execute(conn)?)
}

/// New credential, KDF salt/params and backup for a user (caller wraps in a transaction).
pub fn change_password(
    conn: &mut DbConn,
    user: UserId,
    auth_hash: &str,
    salt: &[u8],
    kdf: (i32, i32, i32),
    backup: &[u8],
) -> StoreResult<i64> {
    Ok(diesel::update(users::table.find(user))
        .set((
            users::auth_hash.eq(auth_hash),
            users::kdf_salt.eq(salt),
            users::kdf_m_kib.eq(kdf.0),
            users::kdf_t.eq(kdf.1),
            users::kdf_p.eq(kdf.2),
            users::key_backup.eq(backup),
            users::key_backup_version.eq(users::key_backup_version + 1),
        ))
        .returning(users::key_backup_version)
        .get_result(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn insert_session(conn: &mut DbConn, s: &SessionRow) -> StoreResult<()> {
    diesel::insert_into(sessions::table).values(s).execute(conn)?;
    Ok(())
}

pub fn session(conn: &mut DbConn, id: &str) -> StoreResult<Option<SessionRow>> {
    Ok(sessions::table.find(id).select(SessionRow::as_select()).get_result(conn).optional()?)
}

/// Revokes the user's live sessions except `keep`; returns the revoked ids.
pub fn revoke_sessions(
    conn: &mut DbConn,
    user: UserId,
    keep: Option<&str>,
    at: i64,
) -> StoreResult<Vec<String>> {
    let live = sessions::table
        .filter(sessions::user_id.eq(user))
        .filter(sessions::revoked_at.is_null())
        .select(sessions::id)
        .load::<String>(conn)?;
    let revoke: Vec<String> = live.into_iter().filter(|id| Some(id.as_str()) != keep).collect();
    diesel::update(sessions::table.filter(sessions::id.eq_any(&revoke)))
        .set(sessions::revoked_at.eq(at))
        .execute(conn)?;
    Ok(revoke)
}

pub fn revoke_session(conn: &mut DbConn, id: &str, at: i64) -> StoreResult<()> {
    diesel::update(sessions::table.find(id).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(at))
        .execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Conversations and messages

/// One member's own view of a conversation.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = members)]
pub struct MemberRow {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub cleared_up_to: MessageId,
    pub read_up_to: MessageId,
    pub delivered_up_to: MessageId,
    pub pinned: bool,
    pub hidden: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub recipient_id: UserId,
    pub client_msg_id: Vec<u8>,
    pub envelope: Vec<u8>,
    pub created_at: i64,
}

fn parse_kind(kind: &str, row: ConversationId) -> StoreResult<ConversationKind> {
    match kind {
        "direct" => Ok(ConversationKind::Direct),
        "group" => Ok(ConversationKind::Group),
        _ => Err(StoreError::Corrupt { what: "kind", row: row.0 }),
    }
}

/// What kind of conversation `conversation` is (it must exist).
pub fn conversation_kind(conn: &mut DbConn, conversation: ConversationId) -> StoreResult<ConversationKind> {
    let kind: String =
        conversations::table.find(conversation).select(conversations::kind).get_result(conn)?;
    parse_kind(&kind, conversation)
}

/// This user's membership row in `conversation`, if they are a member.
pub fn member(
    conn: &mut DbConn,
    user: UserId,
    conversation: ConversationId,
) -> StoreResult<Option<MemberRow>> {
    hot_path!(conn, member(user, conversation))
}

/// Every member of `conversation`.
pub fn members_of(conn: &mut DbConn, conversation: ConversationId) -> StoreResult<Vec<MemberRow>> {
    hot_path!(conn, members_of(conversation))
}

pub fn other_members(
    conn: &mut DbConn,
    conversation: ConversationId,
    user: UserId,
) -> StoreResult<Vec<MemberRow>> {
    hot_path!(conn, other_members(conversation, user))
}

/// Ids of every user with whom `user` shares presence: a conversation in which both have
/// written and which neither has closed. Someone who once wrote to `user`, a conversation only
/// opened, or one either side closed shares nothing.
pub fn peers_of(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<UserId>> {
    #[derive(QueryableByName)]
    struct Peer {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        user_id: i64,
    }
    // Both wrote (a relayed message each: a withheld one does not count; or a message in the
    // conversation's MLS log, whose index keeps each sender's newest), and neither closed it.
    let peers: Vec<Peer> = diesel::sql_query(
        "SELECT DISTINCT other.user_id FROM members mine
           JOIN members other ON other.conversation_id = mine.conversation_id AND other.user_id != mine.user_id
          WHERE mine.user_id = $1 AND NOT mine.hidden AND NOT other.hidden
            AND (EXISTS (SELECT 1 FROM messages x WHERE x.conversation_id = mine.conversation_id
                          AND x.sender_id = mine.user_id AND NOT x.withheld)
                 OR EXISTS (SELECT 1 FROM log_messages z WHERE z.conversation_id = mine.conversation_id
                          AND z.sender_id = mine.user_id))
            AND (EXISTS (SELECT 1 FROM messages x WHERE x.conversation_id = mine.conversation_id
                          AND x.sender_id = other.user_id AND NOT x.withheld)
                 OR EXISTS (SELECT 1 FROM log_messages z WHERE z.conversation_id = mine.conversation_id
                          AND z.sender_id = other.user_id))
          ORDER BY other.user_id",
    )
    .bind::<diesel::sql_types::BigInt, _>(user.0)
    .load(conn)?;
    Ok(peers.into_iter().map(|p| UserId(p.user_id)).collect())
}

/// The newest message id (0 when there is none): where nodes tell connections to catch up
/// from ([`crate::nats`]).
pub fn newest_message_id(conn: &mut DbConn) -> StoreResult<i64> {
    let newest: Option<MessageId> =
        messages::table.select(diesel::dsl::max(messages::id)).get_result(conn)?;
    Ok(newest.map_or(0, |m| m.0))
}

/// Whether `conversation` has ever had a message.
pub fn written_to(conn: &mut DbConn, conversation: ConversationId) -> StoreResult<bool> {
    let activity: i64 =
        conversations::table.find(conversation).select(conversations::last_activity).get_result(conn)?;
    Ok(activity > 0)
}

/// The direct conversation of `me` and `peer` (two distinct users), created on first use.
/// A new one is visible to `me` at once and to `peer` from its first message; opening it
/// again shows it to `me` if they had closed it.
pub fn open_direct(conn: &mut DbConn, me: UserId, peer: UserId, now: i64) -> StoreResult<ConversationId> {
    atomically(conn, |conn| {
        let (lo, hi) = if me < peer { (me, peer) } else { (peer, me) };
        if let Some(id) = conversations::table
            .filter(conversations::user_lo.eq(lo))
            .filter(conversations::user_hi.eq(hi))
            .select(conversations::id)
            .get_result::<ConversationId>(conn)
            .optional()?
        {
            diesel::update(members::table.find((id, me))).set(members::hidden.eq(false)).execute(conn)?;
            return Ok(id);
        }
        let id: ConversationId = diesel::insert_into(conversations::table)
            .values((
                conversations::user_lo.eq(lo),
                conversations::user_hi.eq(hi),
                conversations::kind.eq("direct"),
                conversations::created_at.eq(now),
                conversations::last_activity.eq(0),
            ))
            .returning(conversations::id)
            .get_result(conn)?;
        let rows = vec![
            (members::conversation_id.eq(id), members::user_id.eq(me), members::hidden.eq(false)),
            (members::conversation_id.eq(id), members::user_id.eq(peer), members::hidden.eq(true)),
        ];
        on_backend!(conn, c => diesel::insert_into(members::table).values(&rows).execute(c))?;
        Ok(id)
    })
}

/// One row of a user's conversation list, read in one query.
#[derive(Debug, Clone, QueryableByName)]
pub struct ConversationRow {
    #[diesel(sql_type = BigInt)]
    pub id: ConversationId,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    pub last_activity: i64,
    #[diesel(sql_type = BigInt)]
    pub read_up_to: MessageId,
    #[diesel(sql_type = Bool)]
    pub pinned: bool,
    #[diesel(sql_type = Bool)]
    pub hidden: bool,
    #[diesel(sql_type = BigInt)]
    pub unread: i64,
    #[diesel(sql_type = BigInt)]
    pub peer_id: UserId,
    #[diesel(sql_type = Text)]
    pub peer_name: String,
    #[diesel(sql_type = Binary)]
    pub peer_identity_key: Vec<u8>,
    /// The peer deleted their account.
    #[diesel(sql_type = Bool)]
    pub peer_deleted: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub peer_last_seen: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub peer_delivered_up_to: MessageId,
    #[diesel(sql_type = BigInt)]
    pub peer_read_up_to: MessageId,
    #[diesel(sql_type = BigInt)]
    pub log_read_up_to: i64,
    #[diesel(sql_type = BigInt)]
    pub peer_log_delivered_up_to: i64,
    #[diesel(sql_type = BigInt)]
    pub peer_log_read_up_to: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_id: Option<MessageId>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_sender: Option<UserId>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_recipient: Option<UserId>,
    #[diesel(sql_type = Nullable<Binary>)]
    pub last_client_msg_id: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    pub last_envelope: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_created_at: Option<i64>,
}

impl ConversationRow {
    /// The conversation's kind.
    pub fn kind(&self) -> StoreResult<ConversationKind> {
        parse_kind(&self.kind, self.id)
    }

    /// The newest message the member can still see.
    pub fn last_message(&self) -> Option<MessageRow> {
        Some(MessageRow {
            id: self.last_id?,
            conversation_id: self.id,
            sender_id: self.last_sender?,
            recipient_id: self.last_recipient?,
            client_msg_id: self.last_client_msg_id.clone()?,
            envelope: self.last_envelope.clone()?,
            created_at: self.last_created_at?,
        })
    }
}

/// `user`'s conversations (or only `only`; a conversation nobody wrote in only for the member
/// who opened it), each with the other member, this member's markers
/// and flags, the unread count and the newest visible message: one query, however many
/// conversations there are.
pub fn conversation_rows(
    conn: &mut DbConn,
    user: UserId,
    only: Option<ConversationId>,
) -> StoreResult<Vec<ConversationRow>> {
    let greatest = crate::db::greatest(conn);
    Ok(diesel::sql_query(format!(
        "SELECT c.id, c.kind, c.last_activity, m.read_up_to, m.pinned, m.hidden,
                (SELECT COUNT(*) FROM messages x
                  WHERE x.conversation_id = c.id AND x.sender_id != m.user_id
                    AND x.id > {greatest}(m.read_up_to, m.cleared_up_to)
                    AND NOT (x.recipient_id = m.user_id AND x.withheld))
                + (SELECT COUNT(*) FROM log_messages z
                    WHERE z.conversation_id = c.id AND z.sender_id != m.user_id
                      AND z.seq > {greatest}(m.log_read_up_to, m.archive_cleared_up_to)
                      AND NOT EXISTS (SELECT 1 FROM log_withheld w WHERE w.user_id = m.user_id AND w.seq = z.seq)) AS unread,
                p.user_id AS peer_id, u.username AS peer_name, u.identity_key AS peer_identity_key,
                u.auth_hash = '' AS peer_deleted,
                u.last_seen AS peer_last_seen, p.delivered_up_to AS peer_delivered_up_to,
                p.read_up_to AS peer_read_up_to, m.log_read_up_to,
                p.log_delivered_up_to AS peer_log_delivered_up_to, p.log_read_up_to AS peer_log_read_up_to,
                l.id AS last_id, l.sender_id AS last_sender, l.recipient_id AS last_recipient,
                l.client_msg_id AS last_client_msg_id, l.envelope AS last_envelope,
                l.created_at AS last_created_at
           FROM members m
           JOIN conversations c ON c.id = m.conversation_id
           JOIN members p ON p.conversation_id = m.conversation_id AND p.user_id != m.user_id
                         AND c.kind = 'direct'
           JOIN users u ON u.id = p.user_id
           LEFT JOIN messages l ON l.id = (SELECT MAX(y.id) FROM messages y
                                           WHERE y.conversation_id = c.id AND y.id > m.cleared_up_to
                                             AND NOT (y.recipient_id = m.user_id AND y.withheld))
          WHERE m.user_id = $1 AND ($2 IS NULL OR c.id = $3)
            AND NOT (c.last_activity = 0 AND m.hidden)",
    ))
    .bind::<BigInt, _>(user)
    .bind::<Nullable<BigInt>, _>(only)
    .bind::<Nullable<BigInt>, _>(only)
    .load(conn)?)
}

/// What storing a `send` did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub row: MessageRow,
    /// False when the same (sender, client_msg_id) had been stored before.
    pub new: bool,
    /// The recipient has blocked the sender: stored for the sender, never shown or relayed to
    /// the recipient.
    pub withheld: bool,
}

/// Why a message was not stored though the database worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A referenced blob is not the sender's (or does not exist): its id.
    Blob(String),
    /// The conversation has no other member to address.
    NoRecipient,
    /// The other member deleted their account.
    RecipientDeleted,
    /// The conversation is a group: its messages are MLS messages in its log.
    Group,
    /// Storing it would take the sender past their message quota.
    Quota,
    /// The sender already used this client_msg_id for a different message (another
    /// conversation or another envelope): a resend must be the same message.
    IdReused,
}

/// A message to store.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Who sends it.
    pub sender: UserId,
    /// Where (the sender is a member).
    pub conversation: ConversationId,
    /// The sender's id for it (resends repeat it).
    pub client_msg_id: &'a [u8],
    /// The ciphertext.
    pub envelope: &'a [u8],
    /// The sender's blobs it references.
    pub blob_ids: &'a [String],
    /// Unix ms.
    pub now: i64,
}

/// Stores a message in `conversation` (whose member the sender is) once per (sender,
/// client_msg_id), in one transaction, links the blobs it references, and reopens the
/// conversation for every member who had closed it.
///
/// Every blob must have been uploaded by the sender; otherwise nothing is stored. The envelope
/// counts against the sender's `quota` of stored message bytes.
pub fn store_message(
    conn: &mut DbConn,
    message: &NewMessage<'_>,
    quota: i64,
) -> StoreResult<Result<Stored, Refused>> {
    atomically(conn, |conn| hot_path!(conn, store_message(message, quota)))
}

/// The messages `user` may see as a member: all but those withheld from them because they
/// blocked the sender (one rule for history, sync, single messages and downloads; the
/// conversation list's SQL states it once more).
#[diesel::dsl::auto_type]
fn shown_to(user: UserId) -> _ {
    diesel::dsl::not(messages::recipient_id.eq(user).and(messages::withheld))
}

/// Messages of every conversation of `user` after `since` that the user has not cleared,
/// oldest first.
pub fn messages_since(
    conn: &mut DbConn,
    user: UserId,
    since: MessageId,
    limit: i64,
) -> StoreResult<Vec<MessageRow>> {
    Ok(messages::table
        .inner_join(
            members::table
                .on(members::conversation_id.eq(messages::conversation_id).and(members::user_id.eq(user))),
        )
        .filter(messages::id.gt(since))
        .filter(messages::id.gt(members::cleared_up_to))
        .filter(shown_to(user))
        .order(messages::id.asc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)?)
}

/// A page of one conversation's history (as seen by the member), ascending by id.
pub fn history(
    conn: &mut DbConn,
    m: &MemberRow,
    before: Option<MessageId>,
    after: Option<MessageId>,
    limit: i64,
) -> StoreResult<Vec<MessageRow>> {
    let mut q = messages::table
        .filter(messages::conversation_id.eq(m.conversation_id))
        .filter(messages::id.gt(m.cleared_up_to))
        .filter(shown_to(m.user_id))
        .select(MessageRow::as_select())
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(messages::id.lt(b));
    }
    if let Some(a) = after {
        // Catching up forwards: oldest first from `after`.
        q = q.filter(messages::id.gt(a)).order(messages::id.asc());
        return Ok(q.limit(limit).load(conn)?);
    }
    let mut rows: Vec<MessageRow> = q.order(messages::id.desc()).limit(limit).load(conn)?;
    rows.reverse();
    Ok(rows)
}

fn max_message_id(conn: &mut DbConn, conversation: ConversationId) -> StoreResult<MessageId> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation))
        .select(diesel::dsl::max(messages::id))
        .get_result::<Option<MessageId>>(conn)?
        .unwrap_or(MessageId(0)))
}

/// Raises a member's delivered or read marker (never lowers it); read implies delivered.
pub fn raise_marker(conn: &mut DbConn, m: &MemberRow, up_to: MessageId, read: bool) -> StoreResult<()> {
    hot_path!(conn, raise_marker(m, up_to, read))
}

/// Clears the conversation up to its newest message, for this member or for every member;
/// deletes the messages no member can see any more, and the blobs no remaining message
/// references. Returns the id cleared up to and the ids of the deleted blobs (whose files the
/// caller removes after the commit).
pub fn clear(
    conn: &mut DbConn,
    m: &MemberRow,
    for_all: bool,
    requested: Option<MessageId>,
) -> StoreResult<(MessageId, Vec<String>)> {
    atomically(conn, |conn| {
        // Up to what the clearer saw (never past the newest message); markers only move up.
        let newest = max_message_id(conn, m.conversation_id)?;
        let up_to = requested.map_or(newest, |r| r.min(newest));
        let conv = members::table
            .filter(members::conversation_id.eq(m.conversation_id))
            .filter(members::cleared_up_to.lt(up_to));
        if for_all {
            diesel::update(conv).set(members::cleared_up_to.eq(up_to)).execute(conn)?;
        } else {
            diesel::update(conv.filter(members::user_id.eq(m.user_id)))
                .set(members::cleared_up_to.eq(up_to))
                .execute(conn)?;
        }
        clear_archive(conn, m, for_all)?;
        let floor: Option<MessageId> = members::table
            .filter(members::conversation_id.eq(m.conversation_id))
            .select(diesel::dsl::min(members::cleared_up_to))
            .get_result(conn)?;
        let doomed = messages::table
            .filter(messages::conversation_id.eq(m.conversation_id))
            .filter(messages::id.le(floor.unwrap_or(MessageId(0))));
        let touched: Vec<String> = message_blobs::table
            .filter(message_blobs::message_id.eq_any(doomed.select(messages::id)))
            .select(message_blobs::blob_id)
            .distinct()
            .load(conn)?;
        refund_senders(conn, "conversation_id =", m.conversation_id.0, floor.unwrap_or(MessageId(0)).0)?;
        diesel::delete(doomed).execute(conn)?;
        Ok((up_to, free_unreferenced_blobs(conn, &touched)?))
    })
}

/// Gives the senders of the messages about to be deleted — those whose `condition` (a column
/// and an operator, e.g. `"conversation_id ="`) holds for `value`, up to message `up_to` —
/// their bytes back under their message quota.
pub(crate) fn refund_senders(conn: &mut DbConn, condition: &str, value: i64, up_to: i64) -> StoreResult<()> {
    let greatest = crate::db::greatest(conn);
    diesel::sql_query(format!(
        "UPDATE users SET message_bytes = {greatest}(0, message_bytes - COALESCE((SELECT SUM(LENGTH(x.envelope))
            FROM messages x WHERE x.sender_id = users.id AND x.{condition} $1 AND x.id <= $2), 0))
          WHERE id IN (SELECT sender_id FROM messages WHERE {condition} $1 AND id <= $2)",
    ))
    .bind::<BigInt, _>(value)
    .bind::<BigInt, _>(up_to)
    .execute(conn)?;
    Ok(())
}

/// Deletes those of `touched` (blobs whose messages were just deleted; the links went with
/// them, ON DELETE CASCADE) that no message or group message references any more; returns
/// their ids, for the files to go.
pub(crate) fn free_unreferenced_blobs(conn: &mut DbConn, touched: &[String]) -> StoreResult<Vec<String>> {
    use crate::schema::group_blobs;
    let freed: Vec<String> = blobs::table
        .filter(blobs::id.eq_any(touched))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            message_blobs::table.filter(message_blobs::blob_id.eq(blobs::id)),
        )))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            group_blobs::table.filter(group_blobs::blob_id.eq(blobs::id)),
        )))
        .select(blobs::id)
        .load(conn)?;
    diesel::delete(blobs::table.filter(blobs::id.eq_any(&freed))).execute(conn)?;
    Ok(freed)
}

/// The history-archive half of [`clear`] (a conversation in MLS keeps its messages in its
/// members' archives): deletes the clearing member's archived entries of the conversation (or
/// every member's), up to the newest position any of them could still archive (the log keeps
/// every entry until the archives have it), and marks that position so a device that reads the
/// log late does not archive them again.
fn clear_archive(conn: &mut DbConn, m: &MemberRow, for_all: bool) -> StoreResult<()> {
    use crate::schema::{archive, group_log};
    let in_log: Option<i64> = group_log::table
        .filter(group_log::conversation_id.eq(m.conversation_id))
        .select(diesel::dsl::max(group_log::seq))
        .get_result(conn)?;
    let archived: Option<i64> = archive::table
        .filter(archive::conversation_id.eq(m.conversation_id))
        .select(diesel::dsl::max(archive::seq))
        .get_result(conn)?;
    let Some(head) = in_log.max(archived) else { return Ok(()) };
    let whose: Vec<UserId> = if for_all {
        members::table
            .filter(members::conversation_id.eq(m.conversation_id))
            .select(members::user_id)
            .load(conn)?
    } else {
        vec![m.user_id]
    };
    diesel::update(
        members::table
            .filter(members::conversation_id.eq(m.conversation_id))
            .filter(members::user_id.eq_any(&whose))
            .filter(members::archive_cleared_up_to.lt(head)),
    )
    .set(members::archive_cleared_up_to.eq(head))
    .execute(conn)?;
    diesel::delete(
        archive::table
            .filter(archive::conversation_id.eq(m.conversation_id))
            .filter(archive::user_id.eq_any(&whose))
            .filter(archive::seq.le(head)),
    )
    .execute(conn)?;
    Ok(())
}

pub fn set_flags(
    conn: &mut DbConn,
    m: &MemberRow,
    pinned: Option<bool>,
    hidden: Option<bool>,
) -> StoreResult<()> {
    let target = members::table.find((m.conversation_id, m.user_id));
    if let Some(p) = pinned {
        diesel::update(target).set(members::pinned.eq(p)).execute(conn)?;
    }
    if let Some(h) = hidden {
        diesel::update(target).set(members::hidden.eq(h)).execute(conn)?;
    }
    Ok(())
}

/// The message `id` if `user` is one of its conversation's members and has not cleared it.
pub fn visible_message(conn: &mut DbConn, user: UserId, id: MessageId) -> StoreResult<Option<MessageRow>> {
    Ok(messages::table
        .inner_join(
            members::table
                .on(members::conversation_id.eq(messages::conversation_id).and(members::user_id.eq(user))),
        )
        .filter(messages::id.eq(id))
        .filter(messages::id.gt(members::cleared_up_to))
        .filter(shown_to(user))
        .select(MessageRow::as_select())
        .get_result(conn)
        .optional()?)
}

// ---------------------------------------------------------------------------------------------
// Blocks

/// Whether `blocker` has blocked `blocked`.
pub fn is_blocked(conn: &mut DbConn, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
    hot_path!(conn, is_blocked(blocker, blocked))
}

/// `user` blocks `other` (again is no change).
pub fn block(conn: &mut DbConn, user: UserId, other: UserId, now: i64) -> StoreResult<()> {
    let insert = diesel::insert_into(blocks::table).values((
        blocks::user_id.eq(user),
        blocks::blocked_id.eq(other),
        blocks::created_at.eq(now),
    ));
    on_backend!(conn, c => insert.on_conflict_do_nothing().execute(c))?;
    Ok(())
}

/// `user` unblocks `other` (not blocked is no change).
pub fn unblock(conn: &mut DbConn, user: UserId, other: UserId) -> StoreResult<()> {
    diesel::delete(blocks::table.find((user, other))).execute(conn)?;
    Ok(())
}

/// The names of those `user` has blocked, by name.
pub fn blocked_by(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<String>> {
    Ok(blocks::table
        .inner_join(users::table.on(users::id.eq(blocks::blocked_id)))
        .filter(blocks::user_id.eq(user))
        .order(users::username.asc())
        .select(users::username)
        .load(conn)?)
}

/// Those who have blocked `user`.
pub fn blockers_of(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<UserId>> {
    Ok(blocks::table.filter(blocks::blocked_id.eq(user)).select(blocks::user_id).load(conn)?)
}

/// Everyone `user` blocked or who blocked `user`, in one query.
pub fn blocks_either_way(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<UserId>> {
    let blocked = blocks::table.filter(blocks::user_id.eq(user)).select(blocks::blocked_id);
    let blockers = blocks::table.filter(blocks::blocked_id.eq(user)).select(blocks::user_id);
    Ok(on_backend!(conn, c => blocked.union(blockers).load(c))?)
}

// ---------------------------------------------------------------------------------------------
// Attachment blobs

/// Bytes of blobs `owner` has stored.
pub fn blob_usage(conn: &mut DbConn, owner: UserId) -> StoreResult<i64> {
    Ok(blobs::table
        .filter(blobs::owner_id.eq(owner))
        .select(diesel::dsl::sql::<BigInt>("CAST(COALESCE(SUM(size), 0) AS BIGINT)"))
        .get_result::<i64>(conn)?)
}

/// Records an uploaded blob unless it would take `owner` over `quota` bytes (then `false`
/// and nothing is stored). One immediate transaction, so concurrent uploads cannot both
/// squeeze under the quota.
pub fn insert_blob(
    conn: &mut DbConn,
    id: &str,
    owner: UserId,
    size: i64,
    quota: i64,
    now: i64,
) -> StoreResult<bool> {
    atomically(conn, |conn| {
        if blob_usage(conn, owner)?.saturating_add(size) > quota {
            return Ok(false);
        }
        diesel::insert_into(blobs::table)
            .values((
                blobs::id.eq(id),
                blobs::owner_id.eq(owner),
                blobs::size.eq(size),
                blobs::created_at.eq(now),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// The size of blob `id` if `user` may download it: a message referencing it is visible to
/// `user` in one of their conversations.
pub fn downloadable_blob(conn: &mut DbConn, user: UserId, id: &str) -> StoreResult<Option<i64>> {
    let visible = message_blobs::table
        .inner_join(messages::table)
        .inner_join(
            members::table
                .on(members::conversation_id.eq(messages::conversation_id).and(members::user_id.eq(user))),
        )
        .filter(message_blobs::blob_id.eq(id))
        .filter(messages::id.gt(members::cleared_up_to))
        .filter(shown_to(user));
    Ok(blobs::table
        .filter(blobs::id.eq(id))
        .filter(diesel::dsl::exists(visible))
        .select(blobs::size)
        .get_result(conn)
        .optional()?)
}

/// Deletes `owner`'s blob `id` if no message references it yet; true if it did.
pub fn delete_unattached_blob(conn: &mut DbConn, owner: UserId, id: &str) -> StoreResult<bool> {
    let n = diesel::delete(
        blobs::table
            .filter(blobs::id.eq(id))
            .filter(blobs::owner_id.eq(owner))
            .filter(blobs::attached.eq(false)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// Deletes the blobs created before `before` that no message ever referenced; returns their ids.
pub fn expire_unattached_blobs(conn: &mut DbConn, before: i64) -> StoreResult<Vec<String>> {
    atomically(conn, |conn| {
        let ids: Vec<String> = blobs::table
            .filter(blobs::attached.eq(false))
            .filter(blobs::created_at.lt(before))
            .select(blobs::id)
            .load(conn)?;
        diesel::delete(blobs::table.filter(blobs::id.eq_any(&ids))).execute(conn)?;
        Ok(ids)
    })
}

/// Whether a blob row exists (used when sweeping files without one).
pub fn blob_exists(conn: &mut DbConn, id: &str) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(blobs::table.filter(blobs::id.eq(id)))).get_result(conn)?)
}
