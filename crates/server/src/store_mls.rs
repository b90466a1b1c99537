//! Storage of version 2 (MLS) conversations: devices, key packages, groups with their epoch
//! and latest GroupInfo, the Welcomes waiting for devices, and each group's ordered log.
//!
//! The ordering rule lives here, in one transaction: an entry made in an epoch other than the
//! group's current one is refused ([`Appended::StaleEpoch`]), and a commit advances the epoch.
//! So of two commits for one epoch exactly the first to commit in the database is in the log.
//! Who may do what (membership, admins) is decided by the caller's policy, not here.

use diesel::prelude::*;
use sealroom_protocol::{ConversationId, UserId};

use super::{atomically, DbConn, StoreResult};
use crate::on_backend;
use crate::schema::{
    archive, blobs, conversations, devices, group_blobs, group_log, key_packages, log_messages, log_withheld,
    members, mls_groups, past_members, users, welcomes,
};

/// MLS content types as the log stores them (RFC 9420 §6).
pub const CONTENT_APPLICATION: i32 = 1;
/// A standalone proposal.
pub const CONTENT_PROPOSAL: i32 = 2;
/// A commit.
pub const CONTENT_COMMIT: i32 = 3;

/// One of a user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct DeviceRow {
    pub id: Vec<u8>,
    pub user_id: UserId,
    pub certificate: Vec<u8>,
    pub created_at: i64,
    pub last_seen: i64,
    pub revoked_at: Option<i64>,
    /// How far it has read its groups' logs.
    pub log_cursor: i64,
}

/// What registering a device did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// New, or the same certificate again.
    Ok,
    /// That id is another user's device, or this user's with another certificate, or revoked.
    Conflict,
}

/// The user's identity signing key: set once. `false` when another one is already published
/// (a changed key is a new identity, not an update).
pub fn publish_signing_key(conn: &mut DbConn, user: UserId, key: &[u8]) -> StoreResult<bool> {
    atomically(conn, |conn| {
        let current: Option<Vec<u8>> = users::table.find(user).select(users::signing_key).get_result(conn)?;
        match current {
            Some(k) => Ok(k == key),
            None => {
                diesel::update(users::table.find(user)).set(users::signing_key.eq(key)).execute(conn)?;
                Ok(true)
            }
        }
    })
}

/// A user's published signing key.
pub fn signing_key(conn: &mut DbConn, user: UserId) -> StoreResult<Option<Vec<u8>>> {
    Ok(users::table.find(user).select(users::signing_key).get_result(conn).optional()?.flatten())
}

/// Records one of `user`'s devices with its certificate.
pub fn register_device(
    conn: &mut DbConn,
    user: UserId,
    id: &[u8],
    certificate: &[u8],
    now: i64,
) -> StoreResult<Registered> {
    atomically(conn, |conn| {
        let existing: Option<DeviceRow> = devices::table.find(id).first(conn).optional()?;
        match existing {
            Some(d) if d.user_id == user && d.certificate == certificate && d.revoked_at.is_none() => {
                diesel::update(devices::table.find(id)).set(devices::last_seen.eq(now)).execute(conn)?;
                Ok(Registered::Ok)
            }
            Some(_) => Ok(Registered::Conflict),
            None => {
                diesel::insert_into(devices::table)
                    .values((
                        devices::id.eq(id),
                        devices::user_id.eq(user),
                        devices::certificate.eq(certificate),
                        devices::created_at.eq(now),
                        devices::last_seen.eq(now),
                    ))
                    .execute(conn)?;
                Ok(Registered::Ok)
            }
        }
    })
}

/// A user's devices, revoked ones included, oldest first.
pub fn devices_of(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<DeviceRow>> {
    Ok(devices::table
        .filter(devices::user_id.eq(user))
        .order((devices::created_at, devices::id))
        .load(conn)?)
}

/// One device, whoever's it is, revoked or not.
pub fn device(conn: &mut DbConn, id: &[u8]) -> StoreResult<Option<DeviceRow>> {
    Ok(devices::table.find(id).first(conn).optional()?)
}

/// A device acted: its last-seen time moves on.
pub fn device_seen(conn: &mut DbConn, id: &[u8], now: i64) -> StoreResult<()> {
    diesel::update(devices::table.find(id)).set(devices::last_seen.eq(now)).execute(conn)?;
    Ok(())
}

/// Which of `ids` are active devices of one of `users`.
pub fn active_devices_among(
    conn: &mut DbConn,
    ids: &[Vec<u8>],
    users: &[UserId],
) -> StoreResult<Vec<(Vec<u8>, UserId)>> {
    Ok(devices::table
        .filter(devices::id.eq_any(ids))
        .filter(devices::user_id.eq_any(users))
        .filter(devices::revoked_at.is_null())
        .select((devices::id, devices::user_id))
        .load(conn)?)
}

/// The devices of a group's members that the members should take out of it: the removed
/// ones, and the idle ones (not seen since `seen_since`) of users who have a device in use. A
/// user whose every device is idle keeps them: they are away, not gone, and a device of theirs
/// that comes back reads on.
pub fn revoked_devices_in(
    conn: &mut DbConn,
    conversation: ConversationId,
    seen_since: i64,
) -> StoreResult<Vec<Vec<u8>>> {
    let users = members::table.filter(members::conversation_id.eq(conversation)).select(members::user_id);
    let rows: Vec<(Vec<u8>, UserId, i64, Option<i64>)> = devices::table
        .filter(devices::user_id.eq_any(users))
        .order(devices::id)
        .select((devices::id, devices::user_id, devices::last_seen, devices::revoked_at))
        .load(conn)?;
    let in_use: std::collections::BTreeSet<UserId> = rows
        .iter()
        .filter(|(_, _, seen, revoked)| revoked.is_none() && *seen >= seen_since)
        .map(|(_, user, _, _)| *user)
        .collect();
    Ok(rows
        .into_iter()
        .filter(|(_, user, seen, revoked)| revoked.is_some() || (*seen < seen_since && in_use.contains(user)))
        .map(|(id, ..)| id)
        .collect())
}

/// One device, if it is `user`'s and not revoked.
pub fn active_device(conn: &mut DbConn, user: UserId, id: &[u8]) -> StoreResult<Option<DeviceRow>> {
    Ok(devices::table
        .find(id)
        .filter(devices::user_id.eq(user))
        .filter(devices::revoked_at.is_null())
        .first(conn)
        .optional()?)
}

/// Revokes one of `user`'s devices: its key packages and Welcomes go; `false` if there is no
/// such active device.
pub fn revoke_device(conn: &mut DbConn, user: UserId, id: &[u8], now: i64) -> StoreResult<bool> {
    atomically(conn, |conn| {
        let n = diesel::update(
            devices::table.find(id).filter(devices::user_id.eq(user)).filter(devices::revoked_at.is_null()),
        )
        .set(devices::revoked_at.eq(now))
        .execute(conn)?;
        if n == 1 {
            diesel::delete(key_packages::table.filter(key_packages::device_id.eq(id))).execute(conn)?;
            diesel::delete(welcomes::table.filter(welcomes::device_id.eq(id))).execute(conn)?;
        }
        Ok(n == 1)
    })
}

/// Adds one-use key packages to a device (and replaces its last-resort one, if given). Refused
/// (`false`, nothing stored) when the device would hold more than `max` one-use packages.
pub fn add_key_packages(
    conn: &mut DbConn,
    device: &[u8],
    packages: &[Vec<u8>],
    last_resort: Option<&[u8]>,
    max: i64,
) -> StoreResult<bool> {
    atomically(conn, |conn| {
        let held: i64 = key_packages::table
            .filter(key_packages::device_id.eq(device))
            .filter(key_packages::last_resort.eq(false))
            .count()
            .get_result(conn)?;
        if held + i64::try_from(packages.len()).unwrap_or(i64::MAX) > max {
            return Ok(false);
        }
        let rows: Vec<_> = packages
            .iter()
            .map(|p| {
                (
                    key_packages::device_id.eq(device),
                    key_packages::data.eq(p),
                    key_packages::last_resort.eq(false),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(key_packages::table).values(&rows).execute(c))?;
        if let Some(p) = last_resort {
            diesel::delete(
                key_packages::table
                    .filter(key_packages::device_id.eq(device))
                    .filter(key_packages::last_resort.eq(true)),
            )
            .execute(conn)?;
            diesel::insert_into(key_packages::table)
                .values((
                    key_packages::device_id.eq(device),
                    key_packages::data.eq(p),
                    key_packages::last_resort.eq(true),
                ))
                .execute(conn)?;
        }
        Ok(true)
    })
}

/// How many one-use key packages a device has left.
pub fn key_packages_left(conn: &mut DbConn, device: &[u8]) -> StoreResult<i64> {
    Ok(key_packages::table
        .filter(key_packages::device_id.eq(device))
        .filter(key_packages::last_resort.eq(false))
        .count()
        .get_result(conn)?)
}

/// One key package for every active device of `user`: a one-use package (deleted as it is
/// handed out) or, when none is left, the last-resort one (kept). A device with neither is
/// left out.
pub fn claim_key_packages(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
    atomically(conn, |conn| {
        let ids: Vec<Vec<u8>> = devices::table
            .filter(devices::user_id.eq(user))
            .filter(devices::revoked_at.is_null())
            .order(devices::created_at)
            .select(devices::id)
            .load(conn)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let package: Option<(i64, Vec<u8>, bool)> = key_packages::table
                .filter(key_packages::device_id.eq(&id))
                .order((key_packages::last_resort.asc(), key_packages::id.asc()))
                .select((key_packages::id, key_packages::data, key_packages::last_resort))
                .first(conn)
                .optional()?;
            if let Some((row, data, last_resort)) = package {
                if !last_resort {
                    diesel::delete(key_packages::table.find(row)).execute(conn)?;
                }
                out.push((id, data));
            }
        }
        Ok(out)
    })
}

/// A new group conversation with `creator` as its only member and admin, at epoch 0.
pub fn create_group(
    conn: &mut DbConn,
    creator: UserId,
    group_id: &[u8],
    group_info: &[u8],
    now: i64,
) -> StoreResult<Option<ConversationId>> {
    atomically(conn, |conn| {
        if group_id_taken(conn, group_id)? {
            return Ok(None);
        }
        let id: ConversationId = diesel::insert_into(conversations::table)
            .values((
                conversations::kind.eq("group"),
                conversations::created_at.eq(now),
                conversations::last_activity.eq(now),
            ))
            .returning(conversations::id)
            .get_result(conn)?;
        diesel::insert_into(members::table)
            .values((members::conversation_id.eq(id), members::user_id.eq(creator), members::admin.eq(true)))
            .execute(conn)?;
        insert_group(conn, id, group_id, group_info)?;
        Ok(Some(id))
    })
}

fn group_id_taken(conn: &mut DbConn, group_id: &[u8]) -> StoreResult<bool> {
    Ok(mls_groups::table.filter(mls_groups::group_id.eq(group_id)).count().get_result::<i64>(conn)? > 0)
}

/// A conversation's group at epoch 0.
fn insert_group(
    conn: &mut DbConn,
    conversation: ConversationId,
    group_id: &[u8],
    group_info: &[u8],
) -> StoreResult<()> {
    diesel::insert_into(mls_groups::table)
        .values((
            mls_groups::conversation_id.eq(conversation),
            mls_groups::group_id.eq(group_id),
            mls_groups::epoch.eq(0),
            mls_groups::group_info.eq(group_info),
        ))
        .execute(conn)?;
    Ok(())
}

/// What became of moving a direct conversation to MLS ([`attach_group`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// The conversation has its group now.
    Done,
    /// It had one already (its other user moved it first).
    AlreadyMoved,
    /// Another group has this id.
    GroupIdTaken,
}

/// Moves direct conversation `conversation` to MLS: its group at epoch 0, made by one of its
/// users' devices. Both users become admins (neither may add or remove anyone: the policy
/// keeps a direct conversation to its two users), and both see it from now on.
pub fn attach_group(
    conn: &mut DbConn,
    conversation: ConversationId,
    group_id: &[u8],
    group_info: &[u8],
) -> StoreResult<Attached> {
    atomically(conn, |conn| {
        if mls_groups::table.find(conversation).count().get_result::<i64>(conn)? > 0 {
            return Ok(Attached::AlreadyMoved);
        }
        if group_id_taken(conn, group_id)? {
            return Ok(Attached::GroupIdTaken);
        }
        diesel::update(members::table.filter(members::conversation_id.eq(conversation)))
            .set((members::admin.eq(true), members::hidden.eq(false)))
            .execute(conn)?;
        insert_group(conn, conversation, group_id, group_info)?;
        Ok(Attached::Done)
    })
}

/// A group's MLS state as the relay keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct GroupRow {
    pub conversation_id: ConversationId,
    pub group_id: Vec<u8>,
    pub epoch: i64,
    pub group_info: Vec<u8>,
    /// `"group"`, or `"direct"` for a direct conversation moved to MLS.
    pub kind: String,
}

impl GroupRow {
    /// A direct conversation moved to MLS (two users, for good).
    pub fn is_direct(&self) -> bool {
        self.kind == "direct"
    }
}

/// The columns of a [`GroupRow`].
type GroupColumns = (
    mls_groups::conversation_id,
    mls_groups::group_id,
    mls_groups::epoch,
    mls_groups::group_info,
    conversations::kind,
);
const GROUP_COLUMNS: GroupColumns = (
    mls_groups::conversation_id,
    mls_groups::group_id,
    mls_groups::epoch,
    mls_groups::group_info,
    conversations::kind,
);

/// The group of a conversation (`None` for a direct one not moved to MLS, or no such
/// conversation).
pub fn group(conn: &mut DbConn, conversation: ConversationId) -> StoreResult<Option<GroupRow>> {
    Ok(mls_groups::table
        .inner_join(conversations::table)
        .filter(mls_groups::conversation_id.eq(conversation))
        .select(GROUP_COLUMNS)
        .first(conn)
        .optional()?)
}

/// The groups `user` is a member of, by conversation id.
pub fn groups_of(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<GroupRow>> {
    let mine = members::table.filter(members::user_id.eq(user)).select(members::conversation_id);
    Ok(mls_groups::table
        .inner_join(conversations::table)
        .filter(mls_groups::conversation_id.eq_any(mine))
        .order(mls_groups::conversation_id)
        .select(GROUP_COLUMNS)
        .load(conn)?)
}

/// One group of a user's conversation list.
#[derive(Debug, Clone, QueryableByName)]
pub struct GroupListRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: ConversationId,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub last_activity: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub pinned: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub hidden: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub log_read_up_to: i64,
    /// Others' application messages after the user's read (and cleared) marker, less those
    /// withheld from them.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub unread: i64,
}

/// The groups (not moved direct conversations) `user` is a member of, for the list.
pub fn group_list(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<GroupListRow>> {
    let greatest = crate::db::greatest(conn);
    Ok(diesel::sql_query(format!(
        "SELECT c.id, c.last_activity, m.pinned, m.hidden, m.log_read_up_to,
                (SELECT COUNT(*) FROM log_messages z
                  WHERE z.conversation_id = c.id AND z.sender_id != m.user_id
                    AND z.seq > {greatest}(m.log_read_up_to, m.archive_cleared_up_to)
                    AND NOT EXISTS (SELECT 1 FROM log_withheld w
                                     WHERE w.user_id = m.user_id AND w.seq = z.seq)) AS unread
           FROM members m
           JOIN conversations c ON c.id = m.conversation_id AND c.kind = 'group'
          WHERE m.user_id = $1",
    ))
    .bind::<diesel::sql_types::BigInt, _>(user)
    .load(conn)?)
}

/// The members' names of each of `groups`, by conversation (names sorted).
pub fn member_names(
    conn: &mut DbConn,
    groups: &[ConversationId],
) -> StoreResult<Vec<(ConversationId, String)>> {
    Ok(members::table
        .inner_join(users::table.on(users::id.eq(members::user_id)))
        .filter(members::conversation_id.eq_any(groups))
        .order((members::conversation_id, users::username))
        .select((members::conversation_id, users::username))
        .load(conn)?)
}

/// The position of a group's newest log entry (0 for none).
pub fn last_seq(conn: &mut DbConn, conversation: ConversationId) -> StoreResult<i64> {
    Ok(group_log::table
        .filter(group_log::conversation_id.eq(conversation))
        .select(diesel::dsl::max(group_log::seq))
        .get_result::<Option<i64>>(conn)?
        .unwrap_or(0))
}

/// Raises `user`'s delivered marker in a group's log, and the read marker too when `read`
/// (read implies delivered), to `up_to` but never past the log's newest position nor down.
/// Returns the marker as it is now (`None`: the conversation has no log).
pub fn raise_log_marker(
    conn: &mut DbConn,
    conversation: ConversationId,
    user: UserId,
    up_to: i64,
    read: bool,
) -> StoreResult<Option<i64>> {
    atomically(conn, |conn| {
        let newest = last_seq(conn, conversation)?;
        if newest == 0 {
            return Ok(None);
        }
        let up_to = up_to.clamp(0, newest);
        let me = members::table.find((conversation, user));
        diesel::update(me.filter(members::log_delivered_up_to.lt(up_to)))
            .set(members::log_delivered_up_to.eq(up_to))
            .execute(conn)?;
        if read {
            diesel::update(me.filter(members::log_read_up_to.lt(up_to)))
                .set(members::log_read_up_to.eq(up_to))
                .execute(conn)?;
        }
        let (delivered, read_up_to): (i64, i64) =
            me.select((members::log_delivered_up_to, members::log_read_up_to)).get_result(conn)?;
        Ok(Some(if read { read_up_to } else { delivered }))
    })
}

/// Each member's delivered and read markers in a group's log.
pub fn log_markers(
    conn: &mut DbConn,
    conversation: ConversationId,
) -> StoreResult<std::collections::HashMap<UserId, (i64, i64)>> {
    let rows: Vec<(UserId, i64, i64)> = members::table
        .filter(members::conversation_id.eq(conversation))
        .select((members::user_id, members::log_delivered_up_to, members::log_read_up_to))
        .load(conn)?;
    Ok(rows.into_iter().map(|(u, d, r)| (u, (d, r))).collect())
}

/// The users an entry is withheld from (they blocked its sender when it was appended).
pub fn withheld_from(conn: &mut DbConn, seq: i64) -> StoreResult<Vec<UserId>> {
    Ok(log_withheld::table.filter(log_withheld::seq.eq(seq)).select(log_withheld::user_id).load(conn)?)
}

/// Whether the application message at `seq` is the first thing `sender` wrote in
/// `conversation` (no earlier message in its log, nor a relayed version 1 message).
pub fn first_words(
    conn: &mut DbConn,
    conversation: ConversationId,
    sender: UserId,
    seq: i64,
) -> StoreResult<bool> {
    use crate::schema::messages;
    let in_log: bool = diesel::select(diesel::dsl::exists(
        log_messages::table
            .filter(log_messages::conversation_id.eq(conversation))
            .filter(log_messages::sender_id.eq(sender))
            .filter(log_messages::seq.lt(seq)),
    ))
    .get_result(conn)?;
    let in_v1: bool = diesel::select(diesel::dsl::exists(
        messages::table
            .filter(messages::conversation_id.eq(conversation))
            .filter(messages::sender_id.eq(sender))
            .filter(messages::withheld.eq(false)),
    ))
    .get_result(conn)?;
    Ok(!in_log && !in_v1)
}

/// `user` leaves a group: the relay stops routing it to them (their devices may still archive
/// what the log held until now).
pub fn leave(conn: &mut DbConn, conversation: ConversationId, user: UserId) -> StoreResult<bool> {
    atomically(conn, |conn| {
        let left = diesel::delete(members::table.find((conversation, user))).execute(conn)? == 1;
        if left {
            let until = last_seq(conn, conversation)?;
            member_until(conn, conversation, user, until)?;
        }
        Ok(left)
    })
}

/// Records that `user` stopped being a member of a group at log position `until`.
fn member_until(
    conn: &mut DbConn,
    conversation: ConversationId,
    user: UserId,
    until: i64,
) -> StoreResult<()> {
    let insert = diesel::insert_into(past_members::table).values((
        past_members::conversation_id.eq(conversation),
        past_members::user_id.eq(user),
        past_members::until_seq.eq(until),
    ));
    on_backend!(conn, c => insert
        .on_conflict((past_members::conversation_id, past_members::user_id))
        .do_update()
        .set(past_members::until_seq.eq(until))
        .execute(c))?;
    Ok(())
}

/// A group's members and whether each is an admin.
pub fn group_members(conn: &mut DbConn, conversation: ConversationId) -> StoreResult<Vec<(UserId, bool)>> {
    Ok(members::table
        .filter(members::conversation_id.eq(conversation))
        .order(members::user_id)
        .select((members::user_id, members::admin))
        .load(conn)?)
}

/// A log entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub conversation: ConversationId,
    pub sender: UserId,
    pub sender_device: &'a [u8],
    /// The epoch in the entry's framing.
    pub epoch: i64,
    pub content_type: i32,
    pub client_msg_id: &'a [u8],
    pub data: &'a [u8],
    /// Attachments the entry carries (the sender's uploads).
    pub blobs: &'a [String],
    pub now: i64,
}

/// What a commit changes beside the log.
#[derive(Debug, Clone, Default)]
pub struct CommitEffects<'a> {
    /// The new epoch's GroupInfo.
    pub group_info: &'a [u8],
    /// A Welcome and the devices it is for.
    pub welcome: Option<(&'a [u8], &'a [Vec<u8>])>,
    /// Users who become members.
    pub added: &'a [UserId],
    /// Users who stop being members.
    pub removed: &'a [UserId],
    /// The new admins, when they change (every member after the commit who is not in it stops
    /// being one).
    pub admins: Option<&'a [UserId]>,
}

/// What appending did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// In the log at this position, new.
    At(i64),
    /// Already in the log: the same device sent the same id before (a resend).
    Again {
        /// Its position.
        seq: i64,
        /// When it was stored.
        ts: i64,
    },
    /// Made in an epoch that is not the group's current one; nothing stored.
    StaleEpoch {
        /// The group's epoch.
        current: i64,
    },
    /// It names an attachment that is not the sender's upload; nothing stored.
    UnknownBlob(String),
}

/// Appends an entry to a group's log, in order: refused unless made in the group's current
/// epoch; a commit also advances the epoch, replaces the GroupInfo, files the Welcome and
/// changes membership, all in one transaction.
pub fn append(
    conn: &mut DbConn,
    e: &NewEntry<'_>,
    commit: Option<&CommitEffects<'_>>,
) -> StoreResult<Appended> {
    atomically(conn, |conn| {
        let earlier: Option<(i64, i64)> = group_log::table
            .filter(group_log::sender_device.eq(e.sender_device))
            .filter(group_log::client_msg_id.eq(e.client_msg_id))
            .select((group_log::seq, group_log::created_at))
            .first(conn)
            .optional()?;
        if let Some((seq, ts)) = earlier {
            return Ok(Appended::Again { seq, ts });
        }
        let current: i64 =
            mls_groups::table.find(e.conversation).select(mls_groups::epoch).get_result(conn)?;
        if e.epoch != current {
            return Ok(Appended::StaleEpoch { current });
        }
        if !e.blobs.is_empty() {
            let owned: Vec<String> = blobs::table
                .filter(blobs::id.eq_any(e.blobs))
                .filter(blobs::owner_id.eq(e.sender))
                .select(blobs::id)
                .load(conn)?;
            if let Some(missing) = e.blobs.iter().find(|id| !owned.contains(id)) {
                return Ok(Appended::UnknownBlob(missing.clone()));
            }
        }
        let seq: i64 = diesel::insert_into(group_log::table)
            .values((
                group_log::conversation_id.eq(e.conversation),
                group_log::sender_id.eq(e.sender),
                group_log::sender_device.eq(e.sender_device),
                group_log::epoch.eq(e.epoch),
                group_log::content_type.eq(e.content_type),
                group_log::client_msg_id.eq(e.client_msg_id),
                group_log::data.eq(e.data),
                group_log::created_at.eq(e.now),
            ))
            .returning(group_log::seq)
            .get_result(conn)?;
        if e.content_type == CONTENT_APPLICATION {
            diesel::insert_into(log_messages::table)
                .values((
                    log_messages::conversation_id.eq(e.conversation),
                    log_messages::seq.eq(seq),
                    log_messages::sender_id.eq(e.sender),
                ))
                .execute(conn)?;
            // Withheld from every member who blocked the sender (docs/PROTOCOL.md "Blocking").
            diesel::sql_query(
                "INSERT INTO log_withheld (conversation_id, seq, user_id)
                 SELECT $1, $2, b.user_id FROM blocks b
                   JOIN members m ON m.user_id = b.user_id AND m.conversation_id = $1
                  WHERE b.blocked_id = $3",
            )
            .bind::<diesel::sql_types::BigInt, _>(e.conversation.0)
            .bind::<diesel::sql_types::BigInt, _>(seq)
            .bind::<diesel::sql_types::BigInt, _>(e.sender.0)
            .execute(conn)?;
            // Reopens it for those who closed it, as a version 1 message does (but not for a
            // member from whom it is withheld).
            diesel::sql_query(
                "UPDATE members SET hidden = FALSE
                  WHERE conversation_id = $1 AND hidden
                    AND NOT EXISTS (SELECT 1 FROM log_withheld w
                                     WHERE w.user_id = members.user_id AND w.seq = $2)",
            )
            .bind::<diesel::sql_types::BigInt, _>(e.conversation.0)
            .bind::<diesel::sql_types::BigInt, _>(seq)
            .execute(conn)?;
        }
        diesel::update(conversations::table.find(e.conversation))
            .set(conversations::last_activity.eq(e.now))
            .execute(conn)?;
        if !e.blobs.is_empty() {
            let mut ids = e.blobs.to_vec();
            ids.sort_unstable();
            ids.dedup();
            let links: Vec<_> = ids
                .iter()
                .map(|b| {
                    (
                        group_blobs::conversation_id.eq(e.conversation),
                        group_blobs::seq.eq(seq),
                        group_blobs::blob_id.eq(b),
                    )
                })
                .collect();
            on_backend!(conn, c => diesel::insert_into(group_blobs::table).values(&links).execute(c))?;
            diesel::update(blobs::table.filter(blobs::id.eq_any(&ids)))
                .set(blobs::attached.eq(true))
                .execute(conn)?;
        }
        if let Some(c) = commit {
            diesel::update(mls_groups::table.find(e.conversation))
                .set((mls_groups::epoch.eq(current + 1), mls_groups::group_info.eq(c.group_info)))
                .execute(conn)?;
            for user in c.added {
                // What was said before they joined is not theirs to read: not unread either.
                let insert = diesel::insert_into(members::table).values((
                    members::conversation_id.eq(e.conversation),
                    members::user_id.eq(user),
                    members::log_delivered_up_to.eq(seq),
                    members::log_read_up_to.eq(seq),
                ));
                on_backend!(conn, c => insert.on_conflict_do_nothing().execute(c))?;
            }
            for user in c.removed {
                diesel::delete(members::table.find((e.conversation, user))).execute(conn)?;
                member_until(conn, e.conversation, *user, seq)?;
            }
            if let Some(admins) = c.admins {
                diesel::update(members::table.filter(members::conversation_id.eq(e.conversation)))
                    .set(members::admin.eq(members::user_id.eq_any(admins)))
                    .execute(conn)?;
            }
            if let Some((data, devices)) = c.welcome {
                let rows: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        (
                            welcomes::device_id.eq(d),
                            welcomes::conversation_id.eq(e.conversation),
                            welcomes::log_seq.eq(seq),
                            welcomes::data.eq(data),
                            welcomes::created_at.eq(e.now),
                        )
                    })
                    .collect();
                on_backend!(conn, c => diesel::insert_into(welcomes::table).values(&rows).execute(c))?;
            }
        }
        Ok(Appended::At(seq))
    })
}

/// One log entry as devices read it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct EntryRow {
    pub seq: i64,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub sender_device: Vec<u8>,
    pub epoch: i64,
    pub content_type: i32,
    pub data: Vec<u8>,
    pub created_at: i64,
}

/// Entries after `since` of every group `user` is a member of, and of the groups they were a
/// member of up to where they stopped (the commit that removed them included: their devices
/// read what was sent while they were in, and their removal), oldest first, at most `limit`.
pub fn log_since(conn: &mut DbConn, user: UserId, since: i64, limit: i64) -> StoreResult<Vec<EntryRow>> {
    use diesel::sql_types::Bool;
    let mine: Vec<ConversationId> =
        members::table.filter(members::user_id.eq(user)).select(members::conversation_id).load(conn)?;
    let past: Vec<(ConversationId, i64)> = past_members::table
        .filter(past_members::user_id.eq(user))
        .filter(past_members::until_seq.gt(since))
        .select((past_members::conversation_id, past_members::until_seq))
        .load(conn)?;
    let mut visible: Box<dyn BoxableExpression<group_log::table, crate::db::MultiBackend, SqlType = Bool>> =
        Box::new(group_log::conversation_id.eq_any(mine));
    for (conversation, until) in past {
        visible =
            Box::new(visible.or(group_log::conversation_id.eq(conversation).and(group_log::seq.le(until))));
    }
    let withheld = log_withheld::table.filter(log_withheld::user_id.eq(user)).select(log_withheld::seq);
    Ok(group_log::table
        .filter(group_log::seq.gt(since))
        .filter(visible)
        .filter(diesel::dsl::not(group_log::seq.eq_any(withheld)))
        .order(group_log::seq)
        .limit(limit)
        .select((
            group_log::seq,
            group_log::conversation_id,
            group_log::sender_id,
            group_log::sender_device,
            group_log::epoch,
            group_log::content_type,
            group_log::data,
            group_log::created_at,
        ))
        .load(conn)?)
}

/// A Welcome waiting for a device.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct WelcomeRow {
    pub id: i64,
    pub conversation_id: ConversationId,
    pub log_seq: i64,
    pub data: Vec<u8>,
}

/// The Welcomes waiting for `device`, oldest first.
pub fn welcomes_for(conn: &mut DbConn, device: &[u8]) -> StoreResult<Vec<WelcomeRow>> {
    Ok(welcomes::table
        .filter(welcomes::device_id.eq(device))
        .order(welcomes::id)
        .select((welcomes::id, welcomes::conversation_id, welcomes::log_seq, welcomes::data))
        .load(conn)?)
}

/// A device has taken its Welcomes up to `up_to`: they go.
pub fn welcomes_taken(conn: &mut DbConn, device: &[u8], up_to: i64) -> StoreResult<usize> {
    Ok(diesel::delete(welcomes::table.filter(welcomes::device_id.eq(device)).filter(welcomes::id.le(up_to)))
        .execute(conn)?)
}

/// Whether `user`'s devices may archive the message at `seq` of a group: it is in the log so
/// far, and the user is a member, or was one until at least that position.
pub fn may_archive(
    conn: &mut DbConn,
    user: UserId,
    conversation: ConversationId,
    seq: i64,
) -> StoreResult<bool> {
    if seq < 1 || group(conn, conversation)?.is_none() || seq > last_seq(conn, conversation)? {
        return Ok(false);
    }
    let member = members::table.find((conversation, user)).count().get_result::<i64>(conn)? == 1;
    if member {
        return Ok(true);
    }
    let until: Option<i64> = past_members::table
        .find((conversation, user))
        .select(past_members::until_seq)
        .first(conn)
        .optional()?;
    Ok(until.is_some_and(|u| seq <= u))
}

/// One archived message.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ArchiveRow {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub sender: String,
    pub sent_ms: i64,
    pub entry: Vec<u8>,
}

/// Adds entries to `user`'s archive; one already there (same conversation and position) is
/// kept as it is. Returns how many were new.
pub fn archive_add(conn: &mut DbConn, user: UserId, entries: &[ArchiveRow], now: i64) -> StoreResult<usize> {
    atomically(conn, |conn| {
        let mut added = 0;
        // Where the user cleared each conversation (an upload is mostly one conversation's).
        let mut cleared: std::collections::HashMap<ConversationId, Option<i64>> = Default::default();
        for e in entries {
            let floor = match cleared.get(&e.conversation_id) {
                Some(f) => *f,
                None => {
                    let f = members::table
                        .find((e.conversation_id, user))
                        .select(members::archive_cleared_up_to)
                        .first(conn)
                        .optional()?;
                    cleared.insert(e.conversation_id, f);
                    f
                }
            };
            // Cleared by the user (or for both) after this entry was sent: not kept again.
            if floor.is_some_and(|c| e.seq <= c) {
                continue;
            }
            let insert = diesel::insert_into(archive::table).values((
                archive::user_id.eq(user),
                archive::conversation_id.eq(e.conversation_id),
                archive::seq.eq(e.seq),
                archive::sender.eq(&e.sender),
                archive::sent_ms.eq(e.sent_ms),
                archive::entry.eq(&e.entry),
                archive::created_at.eq(now),
            ));
            added += on_backend!(conn, c => insert.on_conflict_do_nothing().execute(c))?;
        }
        Ok(added)
    })
}

/// The newest `limit` entries of one conversation in `user`'s archive below `before`, newest
/// first.
pub fn archive_page(
    conn: &mut DbConn,
    user: UserId,
    conversation: ConversationId,
    before: i64,
    limit: i64,
) -> StoreResult<Vec<ArchiveRow>> {
    Ok(archive::table
        .filter(archive::user_id.eq(user))
        .filter(archive::conversation_id.eq(conversation))
        .filter(archive::seq.lt(before))
        .order(archive::seq.desc())
        .limit(limit)
        .select((archive::conversation_id, archive::seq, archive::sender, archive::sent_ms, archive::entry))
        .load(conn)?)
}

/// The conversations in `user`'s archive: (conversation, entries, newest position), the most
/// recent first.
pub fn archive_list(conn: &mut DbConn, user: UserId) -> StoreResult<Vec<(ConversationId, i64, i64)>> {
    let mut rows: Vec<(ConversationId, i64, Option<i64>)> = archive::table
        .filter(archive::user_id.eq(user))
        .group_by(archive::conversation_id)
        .select((archive::conversation_id, diesel::dsl::count_star(), diesel::dsl::max(archive::seq)))
        .load(conn)?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    Ok(rows.into_iter().map(|(c, n, last)| (c, n, last.unwrap_or(0))).collect())
}

/// Deletes `user`'s whole archive; returns how many entries went.
pub fn archive_delete(conn: &mut DbConn, user: UserId) -> StoreResult<usize> {
    Ok(diesel::delete(archive::table.filter(archive::user_id.eq(user))).execute(conn)?)
}

/// Whether `user` may download blob `id` as a group attachment: a group message carries it, in
/// a group they are a member of, or were until at least that message.
pub fn group_blob_visible(conn: &mut DbConn, user: UserId, id: &str) -> StoreResult<bool> {
    let links: Vec<(ConversationId, i64)> = group_blobs::table
        .filter(group_blobs::blob_id.eq(id))
        .select((group_blobs::conversation_id, group_blobs::seq))
        .load(conn)?;
    for (conversation, seq) in links {
        let member = members::table.find((conversation, user)).count().get_result::<i64>(conn)? == 1;
        let until: Option<i64> = past_members::table
            .find((conversation, user))
            .select(past_members::until_seq)
            .first(conn)
            .optional()?;
        if member || until.is_some_and(|u| seq <= u) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records that `device` has read its groups' logs up to `position` (never moving back).
pub fn log_read(conn: &mut DbConn, device: &[u8], position: i64) -> StoreResult<()> {
    diesel::update(devices::table.find(device).filter(devices::log_cursor.lt(position)))
        .set(devices::log_cursor.eq(position))
        .execute(conn)?;
    Ok(())
}

/// Deletes, in every group, the log entries that no device still needs: each active device of
/// a member (seen since `seen_since`), and of a past member up to where they left, has read
/// past them. The newest entry of each group stays (it marks how far the log has come).
/// Returns how many entries went.
pub fn prune_log(conn: &mut DbConn, seen_since: i64) -> StoreResult<usize> {
    let groups: Vec<(ConversationId, Option<i64>)> = group_log::table
        .group_by(group_log::conversation_id)
        .select((group_log::conversation_id, diesel::dsl::max(group_log::seq)))
        .load(conn)?;
    let mut pruned = 0;
    for (conversation, newest) in groups {
        let Some(newest) = newest else { continue };
        pruned += atomically(conn, |conn| -> StoreResult<usize> {
            let members: Vec<UserId> = members::table
                .filter(members::conversation_id.eq(conversation))
                .select(members::user_id)
                .load(conn)?;
            let past: Vec<(UserId, i64)> = past_members::table
                .filter(past_members::conversation_id.eq(conversation))
                .select((past_members::user_id, past_members::until_seq))
                .load(conn)?;
            let users: Vec<UserId> = members.iter().copied().chain(past.iter().map(|(u, _)| *u)).collect();
            let devices: Vec<(UserId, i64)> = devices::table
                .filter(devices::user_id.eq_any(&users))
                .filter(devices::revoked_at.is_null())
                .filter(devices::last_seen.ge(seen_since))
                .select((devices::user_id, devices::log_cursor))
                .load(conn)?;
            let mut floor = newest - 1;
            for (user, cursor) in devices {
                let needed = members.contains(&user)
                    // A past member's device needs the log only up to where they left.
                    || past.iter().any(|(u, until)| *u == user && cursor < *until);
                if needed {
                    floor = floor.min(cursor);
                }
            }
            // The message index goes where every member has read or cleared past it.
            let read: Option<i64> = members::table
                .filter(members::conversation_id.eq(conversation))
                .select(diesel::dsl::min(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                    "{}(log_read_up_to, archive_cleared_up_to)",
                    crate::db::greatest(conn)
                ))))
                .get_result(conn)?;
            // Each sender's newest stays: it says they wrote here (presence is shared where
            // both did).
            diesel::sql_query(
                "DELETE FROM log_messages WHERE conversation_id = $1 AND seq <= $2
                   AND seq < (SELECT MAX(y.seq) FROM log_messages y
                               WHERE y.conversation_id = $1 AND y.sender_id = log_messages.sender_id)",
            )
            .bind::<diesel::sql_types::BigInt, _>(conversation.0)
            .bind::<diesel::sql_types::BigInt, _>(read.unwrap_or(0))
            .execute(conn)?;
            // What was withheld matters while the log or the index still has the message.
            diesel::sql_query(
                "DELETE FROM log_withheld WHERE conversation_id = $1
                   AND seq NOT IN (SELECT seq FROM group_log WHERE conversation_id = $1)
                   AND seq NOT IN (SELECT seq FROM log_messages WHERE conversation_id = $1)",
            )
            .bind::<diesel::sql_types::BigInt, _>(conversation.0)
            .execute(conn)?;
            if floor < 1 {
                return Ok(0);
            }
            Ok(diesel::delete(
                group_log::table
                    .filter(group_log::conversation_id.eq(conversation))
                    .filter(group_log::seq.le(floor)),
            )
            .execute(conn)?)
        })?;
    }
    Ok(pruned)
}
