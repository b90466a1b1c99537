//! Storage: plain functions over a SQLite connection. Callers run them through `Store::run`, on the blocking pool.
//!
//! SQLite runs in WAL mode with foreign keys on, a busy timeout, and `synchronous = FULL`, so a
//! message is on disk before the relay acknowledges it.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::schema::{blobs, conversations, members, message_blobs, messages, sessions, users};

/// Migrations compiled into the binary and applied at start.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The connection pool.
pub type DbPool = Pool<ConnectionManager<SqliteConnection>>;
/// One pooled connection.
pub type Conn = PooledConnection<ConnectionManager<SqliteConnection>>;

#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens (creating if needed) the database, applies migrations, returns the pool.
pub fn open(database_url: &str) -> anyhow::Result<DbPool> {
    // WAL is a property of the file: switch it once, on one connection, before the pool opens
    // several at the same time (which would race for the lock the switch needs).
    let mut first = SqliteConnection::establish(database_url)
        .map_err(|e| anyhow::anyhow!("cannot open database {database_url}: {e}"))?;
    first
        .batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
    first.run_pending_migrations(MIGRATIONS).map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    drop(first);
    let manager = ConnectionManager::<SqliteConnection>::new(database_url);
    let pool = Pool::builder()
        .max_size(8)
        .connection_customizer(Box::new(Pragmas))
        .build(manager)
        .map_err(|e| anyhow::anyhow!("cannot open database {database_url}: {e}"))?;
    Ok(pool)
}

pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}

// ---------------------------------------------------------------------------------------------
// Users and sessions

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
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

pub fn insert_user(conn: &mut SqliteConnection, new: &NewUser<'_>) -> QueryResult<UserRow> {
    diesel::insert_into(users::table).values(new).returning(UserRow::as_returning()).get_result(conn)
}

pub fn user_by_name(conn: &mut SqliteConnection, name: &str) -> QueryResult<Option<UserRow>> {
    users::table.filter(users::username.eq(name)).select(UserRow::as_select()).first(conn).optional()
}

pub fn user_by_id(conn: &mut SqliteConnection, id: i64) -> QueryResult<Option<UserRow>> {
    users::table.find(id).select(UserRow::as_select()).first(conn).optional()
}

/// (username, identity key) of users whose name starts with `prefix`, by name.
pub fn search_users(
    conn: &mut SqliteConnection,
    prefix: &str,
    limit: i64,
) -> QueryResult<Vec<(String, Vec<u8>)>> {
    // `prefix` is validated to [a-z0-9_]; escape `_`, LIKE's single-character wildcard.
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    users::table
        .filter(users::username.like(pattern).escape('\\'))
        .order(users::username.asc())
        .limit(limit)
        .select((users::username, users::identity_key))
        .load(conn)
}

pub fn usernames(conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    users::table.filter(users::id.eq_any(ids)).select((users::id, users::username)).load(conn)
}

pub fn set_last_seen(conn: &mut SqliteConnection, user: i64, at: i64) -> QueryResult<()> {
    diesel::update(users::table.find(user)).set(users::last_seen.eq(at)).execute(conn).map(|_| ())
}

/// Replaces the key backup if `expected_version` is current; returns the new version, or
/// `None` when the stored version differs (a stale write).
pub fn update_key_backup(
    conn: &mut SqliteConnection,
    user: i64,
    backup: &[u8],
    expected_version: i64,
) -> QueryResult<Option<i64>> {
    let n = diesel::update(users::table.find(user).filter(users::key_backup_version.eq(expected_version)))
        .set((users::key_backup.eq(backup), users::key_backup_version.eq(expected_version + 1)))
        .execute(conn)?;
    Ok((n == 1).then_some(expected_version + 1))
}

/// New credential, KDF salt/params and backup for a user (caller wraps in a transaction).
pub fn change_password(
    conn: &mut SqliteConnection,
    user: i64,
    auth_hash: &str,
    salt: &[u8],
    kdf: (i32, i32, i32),
    backup: &[u8],
) -> QueryResult<i64> {
    diesel::update(users::table.find(user))
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
        .get_result(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn insert_session(conn: &mut SqliteConnection, s: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(s).execute(conn).map(|_| ())
}

pub fn session(conn: &mut SqliteConnection, id: &str) -> QueryResult<Option<SessionRow>> {
    sessions::table.find(id).select(SessionRow::as_select()).first(conn).optional()
}

/// Revokes the user's live sessions except `keep`; returns the revoked ids.
pub fn revoke_sessions(
    conn: &mut SqliteConnection,
    user: i64,
    keep: Option<&str>,
    at: i64,
) -> QueryResult<Vec<String>> {
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

pub fn revoke_session(conn: &mut SqliteConnection, id: &str, at: i64) -> QueryResult<()> {
    diesel::update(sessions::table.find(id).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(at))
        .execute(conn)
        .map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Conversations and messages

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = members)]
pub struct MemberRow {
    pub conversation_id: i64,
    pub user_id: i64,
    pub peer_id: i64,
    pub cleared_up_to: i64,
    pub read_up_to: i64,
    pub delivered_up_to: i64,
    pub pinned: bool,
    pub hidden: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: i64,
    pub sender_id: i64,
    pub recipient_id: i64,
    pub client_msg_id: Vec<u8>,
    pub envelope: Vec<u8>,
    pub created_at: i64,
}

/// This user's membership row for the conversation with `peer`, if they have one.
pub fn member(conn: &mut SqliteConnection, user: i64, peer: i64) -> QueryResult<Option<MemberRow>> {
    members::table
        .filter(members::user_id.eq(user))
        .filter(members::peer_id.eq(peer))
        .select(MemberRow::as_select())
        .first(conn)
        .optional()
}

pub fn members_of_user(conn: &mut SqliteConnection, user: i64) -> QueryResult<Vec<MemberRow>> {
    members::table.filter(members::user_id.eq(user)).select(MemberRow::as_select()).load(conn)
}

/// Ids of every user who shares a conversation with `user`.
pub fn peers_of(conn: &mut SqliteConnection, user: i64) -> QueryResult<Vec<i64>> {
    members::table.filter(members::user_id.eq(user)).select(members::peer_id).load(conn)
}

/// The conversation between two distinct users, created on first use.
pub fn get_or_create_conversation(conn: &mut SqliteConnection, a: i64, b: i64, now: i64) -> QueryResult<i64> {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if let Some(id) = conversations::table
        .filter(conversations::user_lo.eq(lo))
        .filter(conversations::user_hi.eq(hi))
        .select(conversations::id)
        .first::<i64>(conn)
        .optional()?
    {
        return Ok(id);
    }
    let id: i64 = diesel::insert_into(conversations::table)
        .values((
            conversations::user_lo.eq(lo),
            conversations::user_hi.eq(hi),
            conversations::created_at.eq(now),
            conversations::last_activity.eq(now),
        ))
        .returning(conversations::id)
        .get_result(conn)?;
    diesel::insert_into(members::table)
        .values(&vec![
            (members::conversation_id.eq(id), members::user_id.eq(lo), members::peer_id.eq(hi)),
            (members::conversation_id.eq(id), members::user_id.eq(hi), members::peer_id.eq(lo)),
        ])
        .execute(conn)?;
    Ok(id)
}

pub fn conversation_activity(conn: &mut SqliteConnection, id: i64) -> QueryResult<i64> {
    conversations::table.find(id).select(conversations::last_activity).first(conn)
}

/// What storing a `send` did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub row: MessageRow,
    /// False when the same (sender, client_msg_id) had been stored before.
    pub new: bool,
}

/// Stores a message once per (sender, client_msg_id), in one transaction, links the blobs it
/// references, and reopens the conversation for both sides if either had closed it.
///
/// Every blob must have been uploaded by the sender; otherwise nothing is stored and the
/// first such id comes back as `Err`.
pub fn store_message(
    conn: &mut SqliteConnection,
    sender: i64,
    recipient: i64,
    client_msg_id: &[u8],
    envelope: &[u8],
    blob_ids: &[String],
    now: i64,
) -> QueryResult<Result<Stored, String>> {
    conn.immediate_transaction(|conn| {
        if let Some(row) = messages::table
            .filter(messages::sender_id.eq(sender))
            .filter(messages::client_msg_id.eq(client_msg_id))
            .select(MessageRow::as_select())
            .first(conn)
            .optional()?
        {
            return Ok(Ok(Stored { row, new: false }));
        }
        let owned: Vec<String> = blobs::table
            .filter(blobs::id.eq_any(blob_ids))
            .filter(blobs::owner_id.eq(sender))
            .select(blobs::id)
            .load(conn)?;
        if let Some(missing) = blob_ids.iter().find(|id| !owned.contains(id)) {
            return Ok(Err(missing.clone()));
        }
        let conversation = get_or_create_conversation(conn, sender, recipient, now)?;
        let row = diesel::insert_into(messages::table)
            .values((
                messages::conversation_id.eq(conversation),
                messages::sender_id.eq(sender),
                messages::recipient_id.eq(recipient),
                messages::client_msg_id.eq(client_msg_id),
                messages::envelope.eq(envelope),
                messages::created_at.eq(now),
            ))
            .returning(MessageRow::as_returning())
            .get_result(conn)?;
        diesel::update(conversations::table.find(conversation))
            .set(conversations::last_activity.eq(now))
            .execute(conn)?;
        diesel::update(members::table.filter(members::conversation_id.eq(conversation)))
            .set(members::hidden.eq(false))
            .execute(conn)?;
        if !blob_ids.is_empty() {
            let mut ids = blob_ids.to_vec();
            ids.sort_unstable();
            ids.dedup();
            let links: Vec<_> = ids
                .iter()
                .map(|b| (message_blobs::message_id.eq(row.id), message_blobs::blob_id.eq(b)))
                .collect();
            diesel::insert_into(message_blobs::table).values(&links).execute(conn)?;
            diesel::update(blobs::table.filter(blobs::id.eq_any(&ids)))
                .set(blobs::attached.eq(true))
                .execute(conn)?;
        }
        Ok(Ok(Stored { row, new: true }))
    })
}

/// Messages of every conversation of `user` after `since` that the user has not cleared,
/// oldest first.
pub fn messages_since(
    conn: &mut SqliteConnection,
    user: i64,
    since: i64,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    messages::table
        .inner_join(
            members::table
                .on(members::conversation_id.eq(messages::conversation_id).and(members::user_id.eq(user))),
        )
        .filter(messages::id.gt(since))
        .filter(messages::id.gt(members::cleared_up_to))
        .order(messages::id.asc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
}

/// A page of one conversation's history (as seen by the member), ascending by id.
pub fn history(
    conn: &mut SqliteConnection,
    m: &MemberRow,
    before: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    let mut q = messages::table
        .filter(messages::conversation_id.eq(m.conversation_id))
        .filter(messages::id.gt(m.cleared_up_to))
        .select(MessageRow::as_select())
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(messages::id.lt(b));
    }
    if let Some(a) = after {
        // Catching up forwards: oldest first from `after`.
        q = q.filter(messages::id.gt(a)).order(messages::id.asc());
        return q.limit(limit).load(conn);
    }
    let mut rows: Vec<MessageRow> = q.order(messages::id.desc()).limit(limit).load(conn)?;
    rows.reverse();
    Ok(rows)
}

pub fn last_visible_message(conn: &mut SqliteConnection, m: &MemberRow) -> QueryResult<Option<MessageRow>> {
    messages::table
        .filter(messages::conversation_id.eq(m.conversation_id))
        .filter(messages::id.gt(m.cleared_up_to))
        .order(messages::id.desc())
        .select(MessageRow::as_select())
        .first(conn)
        .optional()
}

pub fn unread_count(conn: &mut SqliteConnection, m: &MemberRow) -> QueryResult<i64> {
    messages::table
        .filter(messages::conversation_id.eq(m.conversation_id))
        .filter(messages::recipient_id.eq(m.user_id))
        .filter(messages::id.gt(m.read_up_to.max(m.cleared_up_to)))
        .count()
        .get_result(conn)
}

pub fn max_message_id(conn: &mut SqliteConnection, conversation: i64) -> QueryResult<i64> {
    messages::table
        .filter(messages::conversation_id.eq(conversation))
        .select(diesel::dsl::max(messages::id))
        .first::<Option<i64>>(conn)
        .map(|m| m.unwrap_or(0))
}

/// Raises a member's delivered or read marker (never lowers it); read implies delivered.
pub fn raise_marker(conn: &mut SqliteConnection, m: &MemberRow, up_to: i64, read: bool) -> QueryResult<()> {
    let target = members::table
        .filter(members::conversation_id.eq(m.conversation_id))
        .filter(members::user_id.eq(m.user_id));
    let delivered = m.delivered_up_to.max(up_to);
    if read {
        diesel::update(target)
            .set((members::read_up_to.eq(m.read_up_to.max(up_to)), members::delivered_up_to.eq(delivered)))
            .execute(conn)?;
    } else {
        diesel::update(target).set(members::delivered_up_to.eq(delivered)).execute(conn)?;
    }
    Ok(())
}

/// Clears the conversation up to its newest message, for this member or both; deletes the
/// messages neither side can see any more, and the blobs no remaining message references.
/// Returns the id cleared up to and the ids of the deleted blobs (whose files the caller
/// removes after the commit).
pub fn clear(conn: &mut SqliteConnection, m: &MemberRow, for_both: bool) -> QueryResult<(i64, Vec<String>)> {
    conn.immediate_transaction(|conn| {
        let up_to = max_message_id(conn, m.conversation_id)?;
        let conv = members::table.filter(members::conversation_id.eq(m.conversation_id));
        if for_both {
            diesel::update(conv.filter(members::cleared_up_to.lt(up_to)))
                .set(members::cleared_up_to.eq(up_to))
                .execute(conn)?;
        } else {
            diesel::update(conv.filter(members::user_id.eq(m.user_id)))
                .set(members::cleared_up_to.eq(up_to))
                .execute(conn)?;
        }
        let floor: Option<i64> = members::table
            .filter(members::conversation_id.eq(m.conversation_id))
            .select(diesel::dsl::min(members::cleared_up_to))
            .first(conn)?;
        let doomed = messages::table
            .filter(messages::conversation_id.eq(m.conversation_id))
            .filter(messages::id.le(floor.unwrap_or(0)));
        let touched: Vec<String> = message_blobs::table
            .filter(message_blobs::message_id.eq_any(doomed.select(messages::id)))
            .select(message_blobs::blob_id)
            .distinct()
            .load(conn)?;
        diesel::delete(doomed).execute(conn)?;
        // The links went with the messages (ON DELETE CASCADE); a blob with none left is garbage.
        let freed: Vec<String> = blobs::table
            .filter(blobs::id.eq_any(&touched))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                message_blobs::table.filter(message_blobs::blob_id.eq(blobs::id)),
            )))
            .select(blobs::id)
            .load(conn)?;
        diesel::delete(blobs::table.filter(blobs::id.eq_any(&freed))).execute(conn)?;
        Ok((up_to, freed))
    })
}

pub fn set_flags(
    conn: &mut SqliteConnection,
    m: &MemberRow,
    pinned: Option<bool>,
    hidden: Option<bool>,
) -> QueryResult<()> {
    let target = members::table
        .filter(members::conversation_id.eq(m.conversation_id))
        .filter(members::user_id.eq(m.user_id));
    if let Some(p) = pinned {
        diesel::update(target).set(members::pinned.eq(p)).execute(conn)?;
    }
    if let Some(h) = hidden {
        diesel::update(target).set(members::hidden.eq(h)).execute(conn)?;
    }
    Ok(())
}

/// The message `id` if `user` is one of its conversation's members and has not cleared it.
pub fn visible_message(conn: &mut SqliteConnection, user: i64, id: i64) -> QueryResult<Option<MessageRow>> {
    messages::table
        .inner_join(
            members::table
                .on(members::conversation_id.eq(messages::conversation_id).and(members::user_id.eq(user))),
        )
        .filter(messages::id.eq(id))
        .filter(messages::id.gt(members::cleared_up_to))
        .select(MessageRow::as_select())
        .first(conn)
        .optional()
}

// ---------------------------------------------------------------------------------------------
// Attachment blobs

/// Bytes of blobs `owner` has stored.
pub fn blob_usage(conn: &mut SqliteConnection, owner: i64) -> QueryResult<i64> {
    blobs::table
        .filter(blobs::owner_id.eq(owner))
        .select(diesel::dsl::sql::<diesel::sql_types::BigInt>("COALESCE(SUM(size), 0)"))
        .first::<i64>(conn)
}

/// Records an uploaded blob unless it would take `owner` over `quota` bytes (then `false`
/// and nothing is stored). One immediate transaction, so concurrent uploads cannot both
/// squeeze under the quota.
pub fn insert_blob(
    conn: &mut SqliteConnection,
    id: &str,
    owner: i64,
    size: i64,
    quota: i64,
    now: i64,
) -> QueryResult<bool> {
    conn.immediate_transaction(|conn| {
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
pub fn downloadable_blob(conn: &mut SqliteConnection, user: i64, id: &str) -> QueryResult<Option<i64>> {
    let visible = message_blobs::table
        .inner_join(messages::table)
        .inner_join(
            members::table
                .on(members::conversation_id.eq(messages::conversation_id).and(members::user_id.eq(user))),
        )
        .filter(message_blobs::blob_id.eq(id))
        .filter(messages::id.gt(members::cleared_up_to));
    blobs::table
        .filter(blobs::id.eq(id))
        .filter(diesel::dsl::exists(visible))
        .select(blobs::size)
        .first(conn)
        .optional()
}

/// Deletes `owner`'s blob `id` if no message references it yet; true if it did.
pub fn delete_unattached_blob(conn: &mut SqliteConnection, owner: i64, id: &str) -> QueryResult<bool> {
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
pub fn expire_unattached_blobs(conn: &mut SqliteConnection, before: i64) -> QueryResult<Vec<String>> {
    conn.immediate_transaction(|conn| {
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
pub fn blob_exists(conn: &mut SqliteConnection, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(blobs::table.filter(blobs::id.eq(id)))).get_result(conn)
}
