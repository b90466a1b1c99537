//! Storage for running a relay for other people: invite codes, disabled and admin accounts,
//! the sessions `sealroom admin` ends (`kicks`, which every running relay reads), each relay's
//! connection count, and the overview, statistics and inspection the admin CLI prints.

use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use sealroom_protocol::{ConversationId, UserId};

use crate::on_backend;

use super::{DbConn, SessionRow, StoreResult, UserRow};
use crate::schema::{
    archive, blobs, blocks, deleted_users, devices, group_log, invites, key_packages, kicks, messages,
    relay_status, sessions, users,
};

// ---------------------------------------------------------------------------------------------
// Invites

/// A stored invite (its code is not stored, only a hash of it).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invites)]
pub struct InviteRow {
    pub id: i64,
    pub note: String,
    pub max_uses: i64,
    pub uses: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub created_by: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new invite.
#[derive(Debug, Insertable)]
#[diesel(table_name = invites)]
pub struct NewInvite<'a> {
    pub code_hash: &'a [u8],
    pub note: &'a str,
    pub max_uses: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub created_by: Option<i64>,
}

pub fn insert_invite(conn: &mut DbConn, new: &NewInvite<'_>) -> StoreResult<InviteRow> {
    diesel::insert_into(invites::table).values(new).execute(conn)?;
    Ok(invites::table
        .filter(invites::code_hash.eq(new.code_hash))
        .select(InviteRow::as_select())
        .get_result(conn)?)
}

/// Every invite, newest first, with the name of the admin who made it.
pub fn invites(conn: &mut DbConn) -> StoreResult<Vec<(InviteRow, Option<String>)>> {
    Ok(invites::table
        .left_join(users::table.on(users::id.nullable().eq(invites::created_by)))
        .order(invites::id.desc())
        .select((InviteRow::as_select(), users::username.nullable()))
        .load(conn)?)
}

pub fn invite(conn: &mut DbConn, id: i64) -> StoreResult<Option<(InviteRow, Option<String>)>> {
    Ok(invites::table
        .left_join(users::table.on(users::id.nullable().eq(invites::created_by)))
        .filter(invites::id.eq(id))
        .select((InviteRow::as_select(), users::username.nullable()))
        .get_result(conn)
        .optional()?)
}

/// Revokes invite `id`; `false` when there is none or it was revoked before.
pub fn revoke_invite(conn: &mut DbConn, id: i64, at: i64) -> StoreResult<bool> {
    let n = diesel::update(invites::table.find(id).filter(invites::revoked_at.is_null()))
        .set(invites::revoked_at.eq(at))
        .execute(conn)?;
    Ok(n == 1)
}

/// Takes one use of the invite whose code hashes to `code_hash`, if it is live at `now`;
/// returns its id. Inside the registering transaction, so a failed sign-up gives it back.
pub fn redeem_invite(conn: &mut DbConn, code_hash: &[u8], now: i64) -> StoreResult<Option<i64>> {
    let live = invites::table
        .filter(invites::code_hash.eq(code_hash))
        .filter(invites::revoked_at.is_null())
        .filter(invites::uses.lt(invites::max_uses))
        .filter(invites::expires_at.is_null().or(invites::expires_at.gt(now)));
    let Some(id) = live.select(invites::id).get_result::<i64>(conn).optional()? else {
        return Ok(None);
    };
    // The same conditions again in the update: two sign-ups racing for the last use on
    // PostgreSQL cannot both take it.
    let taken = diesel::update(live.filter(invites::id.eq(id)))
        .set(invites::uses.eq(invites::uses + 1))
        .execute(conn)?;
    Ok((taken == 1).then_some(id))
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// Disables (`Some(at)`) or enables (`None`) a user; `false` when nothing changed.
pub fn set_disabled(conn: &mut DbConn, user: UserId, at: Option<i64>) -> StoreResult<bool> {
    let target = users::table.find(user);
    let n = match at {
        Some(at) => diesel::update(target.filter(users::disabled_at.is_null()))
            .set(users::disabled_at.eq(Some(at)))
            .execute(conn)?,
        None => diesel::update(target.filter(users::disabled_at.is_not_null()))
            .set(users::disabled_at.eq(None::<i64>))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Whether `user` is disabled (`None`: there is no such user).
pub fn disabled(conn: &mut DbConn, user: UserId) -> StoreResult<Option<bool>> {
    Ok(users::table
        .find(user)
        .select(users::disabled_at.is_not_null())
        .get_result::<bool>(conn)
        .optional()?)
}

/// Makes `user` a relay admin or not; `false` when nothing changed.
pub fn set_admin(conn: &mut DbConn, user: UserId, admin: bool) -> StoreResult<bool> {
    let n = diesel::update(users::table.find(user).filter(users::is_admin.ne(admin)))
        .set(users::is_admin.eq(admin))
        .execute(conn)?;
    Ok(n == 1)
}

/// Whether `user` administers the relay.
pub fn is_admin(conn: &mut DbConn, user: UserId) -> StoreResult<bool> {
    Ok(users::table.find(user).select(users::is_admin).get_result::<bool>(conn).optional()?.unwrap_or(false))
}

/// Every session of `user`, newest first (revoked and expired ones too, until pruned).
pub fn sessions_of(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<SessionRow>> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user))
        .order(sessions::created_at.desc())
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// One line of `sealroom admin users`.
#[derive(Debug, Clone)]
pub struct UserOverview {
    pub user: UserRow,
    /// Devices not removed.
    pub devices: i64,
    /// Bytes of messages they sent, stored.
    pub message_bytes: i64,
    /// Bytes of attachments they uploaded, stored.
    pub blob_bytes: i64,
}

/// Every user, by name, with what they store.
pub fn overview(conn: &mut DbConn) -> StoreResult<Vec<UserOverview>> {
    let rows: Vec<(UserRow, i64)> = users::table
        .order(users::username)
        .select((UserRow::as_select(), users::message_bytes))
        .load(conn)?;
    let devices: std::collections::HashMap<i64, i64> = devices::table
        .filter(devices::revoked_at.is_null())
        .group_by(devices::user_id)
        .select((devices::user_id, count_star()))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    let blob_bytes: std::collections::HashMap<i64, i64> = blobs::table
        .group_by(blobs::owner_id)
        .select((blobs::owner_id, sql::<BigInt>("CAST(COALESCE(SUM(size), 0) AS BIGINT)")))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|(user, message_bytes)| UserOverview {
            devices: devices.get(&user.id.0).copied().unwrap_or(0),
            blob_bytes: blob_bytes.get(&user.id.0).copied().unwrap_or(0),
            message_bytes,
            user,
        })
        .collect())
}

/// `sealroom admin stats`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub users: i64,
    pub disabled_users: i64,
    pub admins: i64,
    /// Direct messages stored.
    pub messages: i64,
    /// Group (MLS) log entries stored: application messages and commits.
    pub group_entries: i64,
    /// Bytes of direct message envelopes and group log entries.
    pub message_bytes: i64,
    /// Attachments stored, and their bytes.
    pub blobs: i64,
    pub blob_bytes: i64,
    /// Bytes of users' history archives.
    pub archive_bytes: i64,
    /// Open WebSocket connections on the relays that reported in the last 15 seconds.
    pub connections: i64,
    /// Those relays.
    pub relays: i64,
}

fn total(conn: &mut DbConn, sum: &str, table: &str) -> StoreResult<i64> {
    Ok(diesel::sql_query(format!("SELECT CAST(COALESCE({sum}, 0) AS BIGINT) AS n FROM {table}"))
        .get_result::<Total>(conn)?
        .n)
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub fn stats(conn: &mut DbConn, now: i64) -> StoreResult<Stats> {
    let live = relay_status::table.filter(relay_status::updated_at.gt(now - 15_000));
    Ok(Stats {
        users: users::table.count().get_result(conn)?,
        disabled_users: users::table.filter(users::disabled_at.is_not_null()).count().get_result(conn)?,
        admins: users::table.filter(users::is_admin.eq(true)).count().get_result(conn)?,
        messages: messages::table.count().get_result(conn)?,
        group_entries: group_log::table.count().get_result(conn)?,
        message_bytes: total(conn, "SUM(LENGTH(envelope))", "messages")?
            + total(conn, "SUM(LENGTH(data))", "group_log")?,
        blobs: blobs::table.count().get_result(conn)?,
        blob_bytes: total(conn, "SUM(size)", "blobs")?,
        archive_bytes: total(conn, "SUM(LENGTH(entry))", "archive")?,
        connections: live
            .select(sql::<BigInt>("CAST(COALESCE(SUM(connections), 0) AS BIGINT)"))
            .get_result(conn)?,
        relays: live.count().get_result(conn)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Reaching running relays

/// A session `sealroom admin` ended, for the running relays to close its sockets.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = kicks)]
pub struct KickRow {
    pub id: i64,
    pub user_id: i64,
    pub session_id: String,
    pub reason: String,
    pub at: i64,
}

pub fn insert_kicks(
    conn: &mut DbConn,
    user: UserId,
    sessions: &[String],
    reason: &str,
    at: i64,
) -> StoreResult<()> {
    for session in sessions {
        diesel::insert_into(kicks::table)
            .values((
                kicks::user_id.eq(user.0),
                kicks::session_id.eq(session.as_str()),
                kicks::reason.eq(reason),
                kicks::at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Kicks written at or after `since`.
pub fn kicks_since(conn: &mut DbConn, since: i64) -> StoreResult<Vec<KickRow>> {
    Ok(kicks::table.filter(kicks::at.ge(since)).order(kicks::id).select(KickRow::as_select()).load(conn)?)
}

pub fn prune_kicks(conn: &mut DbConn, before: i64) -> StoreResult<usize> {
    Ok(diesel::delete(kicks::table.filter(kicks::at.lt(before))).execute(conn)?)
}

/// Records this relay's open connections.
pub fn report_connections(conn: &mut DbConn, node: &str, connections: i64, at: i64) -> StoreResult<()> {
    let insert = diesel::insert_into(relay_status::table)
        .values((
            relay_status::node.eq(node),
            relay_status::connections.eq(connections),
            relay_status::updated_at.eq(at),
        ))
        .on_conflict(relay_status::node)
        .do_update()
        .set((relay_status::connections.eq(connections), relay_status::updated_at.eq(at)));
    on_backend!(conn, c => insert.execute(c))?;
    // Relays that stopped long ago (killed, so they could not take their row away).
    diesel::delete(relay_status::table.filter(relay_status::updated_at.lt(at - 3_600_000))).execute(conn)?;
    Ok(())
}

pub fn forget_relay(conn: &mut DbConn, node: &str) -> StoreResult<()> {
    diesel::delete(relay_status::table.find(node)).execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inspection

/// A device: (id, certificate, created, last seen, removed at, key packages waiting).
pub type DeviceLine = (Vec<u8>, Vec<u8>, i64, i64, Option<i64>, i64);
/// A direct message: (id, conversation, sender, recipient, created, envelope).
pub type MessageLine = (i64, i64, String, String, i64, Vec<u8>);
/// A group log entry: (seq, conversation, epoch, content type, created, data).
pub type EntryLine = (i64, i64, i64, i32, i64, Vec<u8>);
/// An attachment: (id, size, created, attached).
pub type BlobLine = (String, i64, i64, bool);
/// An archived message: (conversation, seq, sender, sent, entry).
pub type ArchiveLine = (i64, i64, String, i64, Vec<u8>);

/// Everything stored for one user, as `sealroom admin inspect` prints it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub user: UserRow,
    pub sessions: Vec<SessionRow>,
    pub devices: Vec<DeviceLine>,
    /// Direct messages they sent or received.
    pub messages: Vec<MessageLine>,
    /// Group log entries they sent.
    pub group_entries: Vec<EntryLine>,
    /// Attachments they uploaded.
    pub blobs: Vec<BlobLine>,
    /// Their history archive.
    pub archive: Vec<ArchiveLine>,
}

/// What is stored for `user`; `limit` caps each list (newest first).
pub fn inspect(conn: &mut DbConn, user: UserRow, limit: i64) -> StoreResult<Inspection> {
    let id = user.id;
    let sessions = sessions_of(conn, id)?;
    let devices = devices::table
        .filter(devices::user_id.eq(id))
        .order(devices::created_at)
        .select((
            devices::id,
            devices::certificate,
            devices::created_at,
            devices::last_seen,
            devices::revoked_at,
            key_packages::table
                .filter(key_packages::device_id.eq(devices::id))
                .count()
                .single_value()
                .assume_not_null(),
        ))
        .limit(limit)
        .load(conn)?;
    let (senders, recipients) = diesel::alias!(users as senders, users as recipients);
    let messages = messages::table
        .inner_join(senders.on(senders.field(users::id).eq(messages::sender_id)))
        .inner_join(recipients.on(recipients.field(users::id).eq(messages::recipient_id)))
        .filter(messages::sender_id.eq(id).or(messages::recipient_id.eq(id)))
        .order(messages::id.desc())
        .select((
            messages::id,
            messages::conversation_id,
            senders.field(users::username),
            recipients.field(users::username),
            messages::created_at,
            messages::envelope,
        ))
        .limit(limit)
        .load(conn)?;
    let group_entries = group_log::table
        .filter(group_log::sender_id.eq(id))
        .order(group_log::seq.desc())
        .select((
            group_log::seq,
            group_log::conversation_id,
            group_log::epoch,
            group_log::content_type,
            group_log::created_at,
            group_log::data,
        ))
        .limit(limit)
        .load(conn)?;
    let blobs = blobs::table
        .filter(blobs::owner_id.eq(id))
        .order(blobs::created_at.desc())
        .select((blobs::id, blobs::size, blobs::created_at, blobs::attached))
        .limit(limit)
        .load(conn)?;
    let archive = archive::table
        .filter(archive::user_id.eq(id))
        .order((archive::conversation_id, archive::seq.desc()))
        .select((archive::conversation_id, archive::seq, archive::sender, archive::sent_ms, archive::entry))
        .limit(limit)
        .load(conn)?;
    Ok(Inspection { user, sessions, devices, messages, group_entries, blobs, archive })
}

// ---------------------------------------------------------------------------------------------
// Deleting an account

/// What deleting an account ended, for the caller to tell the running relays.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Sessions ended (their sockets are to be closed).
    pub sessions: Vec<String>,
    /// Groups left, each with the members who remain (to be told).
    pub groups: Vec<(ConversationId, Vec<UserId>)>,
    /// Unsent uploads whose rows went (their files are to be removed).
    pub blobs: Vec<String>,
}

/// Deletes `user`'s account, keeping its row as a tombstone (see the migration
/// `deleted_users`): `None` when it was deleted before.
pub fn delete_user(conn: &mut DbConn, user: UserId, now: i64) -> StoreResult<Option<Deleted>> {
    super::atomically(conn, |conn| {
        let before = deleted_users::table.find(user.0).count().get_result::<i64>(conn)?;
        if before > 0 {
            return Ok(None);
        }
        diesel::insert_into(deleted_users::table)
            .values((deleted_users::user_id.eq(user.0), deleted_users::deleted_at.eq(now)))
            .execute(conn)?;
        let sessions = super::revoke_sessions(conn, user, None, now)?;
        // The credential can never verify again; the sealed key backup goes.
        diesel::update(users::table.find(user))
            .set((
                users::auth_hash.eq(""),
                users::key_backup.eq(vec![0u8]),
                users::is_admin.eq(false),
                users::disabled_at.eq(Some(now)),
            ))
            .execute(conn)?;
        let active: Vec<Vec<u8>> = devices::table
            .filter(devices::user_id.eq(user))
            .filter(devices::revoked_at.is_null())
            .select(devices::id)
            .load(conn)?;
        for device in active {
            super::mls::revoke_device(conn, user, &device, now)?;
        }
        super::mls::archive_delete(conn, user)?;
        let blobs: Vec<String> = blobs::table
            .filter(blobs::owner_id.eq(user))
            .filter(blobs::attached.eq(false))
            .select(blobs::id)
            .load(conn)?;
        diesel::delete(blobs::table.filter(blobs::id.eq_any(&blobs))).execute(conn)?;
        diesel::delete(blocks::table.filter(blocks::user_id.eq(user))).execute(conn)?;
        let mut groups = Vec::new();
        for group in super::mls::groups_of(conn, user)? {
            if group.is_direct() {
                continue; // a direct conversation stays, as history, with the tombstone
            }
            let id = group.conversation_id;
            if super::mls::leave(conn, id, user)? {
                let remaining = super::members_of(conn, id)?.into_iter().map(|m| m.user_id).collect();
                groups.push((id, remaining));
            }
        }
        Ok(Some(Deleted { sessions, groups, blobs }))
    })
}

/// Whether `user` deleted their account.
pub fn is_deleted(conn: &mut DbConn, user: UserId) -> StoreResult<bool> {
    Ok(deleted_users::table.find(user.0).count().get_result::<i64>(conn)? > 0)
}

/// Frees the names of accounts deleted before `before`: each tombstone is renamed to
/// `deleted_<its id>_<random>` (a name registration refuses), so the name can be registered
/// again. Returns how many.
pub fn release_names(
    conn: &mut DbConn,
    before: i64,
    now: i64,
    suffix: &mut dyn FnMut() -> String,
) -> StoreResult<usize> {
    let due: Vec<i64> = deleted_users::table
        .filter(deleted_users::name_released_at.is_null())
        .filter(deleted_users::deleted_at.lt(before))
        .select(deleted_users::user_id)
        .load(conn)?;
    for id in &due {
        diesel::update(users::table.find(UserId(*id)))
            .set(users::username.eq(format!("{}{id}_{}", RELEASED_PREFIX, suffix())))
            .execute(conn)?;
        diesel::update(deleted_users::table.find(id))
            .set(deleted_users::name_released_at.eq(Some(now)))
            .execute(conn)?;
    }
    Ok(due.len())
}

/// How a deleted account's row is renamed once its name is free again; no one may register a
/// name that starts so.
pub const RELEASED_PREFIX: &str = "deleted_";

// ---------------------------------------------------------------------------------------------
// Retention

/// Deletes up to `batch` direct messages written before `before` (oldest first), with what
/// only they referenced: their senders get the bytes back under their quota, and attachments
/// no other message references go. Returns how many messages went and the freed blobs' ids.
pub fn expire_messages(conn: &mut DbConn, before: i64, batch: i64) -> StoreResult<(usize, Vec<String>)> {
    use crate::schema::message_blobs;
    super::atomically(conn, |conn| {
        let ids: Vec<i64> = messages::table
            .filter(messages::created_at.lt(before))
            .order(messages::id)
            .limit(batch)
            .select(messages::id)
            .load(conn)?;
        let Some(&last) = ids.last() else { return Ok((0, Vec::new())) };
        let touched: Vec<String> = message_blobs::table
            .filter(message_blobs::message_id.eq_any(&ids))
            .select(message_blobs::blob_id)
            .distinct()
            .load(conn)?;
        super::refund_senders(conn, "created_at <", before, last)?;
        let n = diesel::delete(
            messages::table.filter(messages::created_at.lt(before)).filter(messages::id.le(last)),
        )
        .execute(conn)?;
        let freed = super::free_unreferenced_blobs(conn, &touched)?;
        Ok((n, freed))
    })
}

/// Deletes history-archive entries of messages sent before `before`.
pub fn expire_archive(conn: &mut DbConn, before: i64) -> StoreResult<usize> {
    Ok(diesel::delete(archive::table.filter(archive::sent_ms.lt(before))).execute(conn)?)
}
