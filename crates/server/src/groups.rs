//! Version 2 (MLS) conversations at the relay: devices, key packages, groups, their ordered
//! log and Welcomes. The relay is MLS's delivery service: it reads an entry's framing (group,
//! epoch, content type) to order it and nothing more; who may do what is asked of
//! [`crate::policy`]; storage is [`crate::store::mls`].

use std::collections::HashMap;

use sealroom_protocol::mls::{parse_framing, wire_format, ContentType, WIRE_GROUP_INFO, WIRE_WELCOME};
use sealroom_protocol::{
    AppendRequest, AppendedEntry, ArchiveBytes, ArchiveEntry, ArchivePage, ArchiveQuery, ArchiveUpload,
    ArchivedConversation, CertificateBytes, ClaimedKeyPackages, ConversationId, CreateGroupRequest, DeviceId,
    DeviceInfo, DeviceKeyPackage, DeviceList, EntryKind, ErrorCode, GroupEntry, GroupId, GroupInfoResponse,
    GroupLogQuery, GroupLogResponse, GroupMember, GroupState, KeyPackageCount, MlsBytes,
    RegisterDeviceRequest, ServerFrame, SigningKey, UploadKeyPackagesRequest, UserId, UserKeyPackages,
    Username, WelcomeList, WelcomeOut,
};

use crate::auth::AuthUser;
use crate::error::{Result, ServerError};
use crate::hub::encode;
use crate::store::mls::{self as store_mls, Appended, CommitEffects, NewEntry};
use crate::store::{self, DbConn, StoreError};
use crate::{policy, Relay};

fn invalid(why: impl Into<String>) -> ServerError {
    ServerError::api(ErrorCode::InvalidField, why)
}

/// `PUT /api/me/signing-key`.
pub async fn publish_signing_key(state: &Relay, me: &AuthUser, key: SigningKey) -> Result<()> {
    let me = me.id;
    let set = state.store.write(move |conn| Ok(store_mls::publish_signing_key(conn, me, &key.0)?)).await?;
    if set {
        Ok(())
    } else {
        Err(ServerError::api(
            ErrorCode::Conflict,
            "you already published another signing key; a new identity needs a new account",
        ))
    }
}

fn device_info(conn: &mut DbConn, d: store_mls::DeviceRow) -> Result<DeviceInfo> {
    let corrupt = |what| StoreError::Corrupt { what, row: d.user_id.0 };
    let left = store_mls::key_packages_left(conn, &d.id)?;
    Ok(DeviceInfo {
        key_packages: u32::try_from(left).unwrap_or(u32::MAX),
        device: DeviceId::from_slice(&d.id).map_err(|_| corrupt("device id"))?,
        certificate: CertificateBytes::new(d.certificate.clone()).map_err(|_| corrupt("certificate"))?,
        created_at: d.created_at,
        last_seen: d.last_seen,
        revoked_at: d.revoked_at,
    })
}

/// `POST /api/devices`.
pub async fn register_device(state: &Relay, me: &AuthUser, req: RegisterDeviceRequest) -> Result<DeviceInfo> {
    let me = me.id;
    let now = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            match store_mls::register_device(conn, me, &req.device.0, req.certificate.as_bytes(), now)? {
                store_mls::Registered::Ok => {}
                store_mls::Registered::Conflict => {
                    return Err(ServerError::api(
                        ErrorCode::Conflict,
                        "that device id is taken, was removed, or has another certificate: make a new device",
                    ))
                }
            }
            let row = store_mls::device(conn, &req.device.0)?
                .ok_or(ServerError::Store(StoreError::Corrupt { what: "new device", row: me.0 }))?;
            device_info(conn, row)
        })
        .await
}

/// `GET /api/devices`.
pub async fn devices(state: &Relay, me: &AuthUser) -> Result<DeviceList> {
    let me = me.id;
    state
        .store
        .run(move |conn| {
            let rows = store_mls::devices_of(conn, me)?;
            Ok(DeviceList { devices: rows.into_iter().map(|d| device_info(conn, d)).collect::<Result<_>>()? })
        })
        .await
}

/// `DELETE /api/devices/{device}`.
pub async fn remove_device(state: &Relay, me: &AuthUser, device: DeviceId) -> Result<()> {
    let me = me.id;
    let now = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            policy::device(conn, me, &device)?;
            store_mls::revoke_device(conn, me, &device.0, now)?;
            Ok(())
        })
        .await
}

/// How stale a device's last-seen time may get before an action writes it again: it tells
/// members about devices gone for days, so a busy device need not write it with every message.
const LAST_SEEN_STEP_MS: i64 = 60_000;

/// A device acted at `now`.
fn seen(conn: &mut DbConn, device: &store_mls::DeviceRow, now: i64) -> Result<()> {
    if now - device.last_seen >= LAST_SEEN_STEP_MS {
        store_mls::device_seen(conn, &device.id, now)?;
    }
    Ok(())
}

/// `POST /api/devices/{device}/key-packages`.
pub async fn upload_key_packages(
    state: &Relay,
    me: &AuthUser,
    device: DeviceId,
    req: UploadKeyPackagesRequest,
) -> Result<KeyPackageCount> {
    let max = sealroom_protocol::MAX_KEY_PACKAGES_PER_DEVICE;
    if req.key_packages.len() > max {
        return Err(ServerError::api(
            ErrorCode::QuotaExceeded,
            format!("a device holds at most {max} key packages"),
        ));
    }
    if req.key_packages.is_empty() && req.last_resort.is_none() {
        return Err(invalid("key_packages: give at least one, or a last_resort"));
    }
    for p in req.key_packages.iter().chain(req.last_resort.as_ref()) {
        if !sealroom_protocol::mls::is_key_package(p.as_bytes()) {
            return Err(invalid("key_packages: each must be an MLS KeyPackage"));
        }
    }
    let me = me.id;
    let now = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            let row = policy::device(conn, me, &device)?;
            let packages: Vec<Vec<u8>> = req.key_packages.into_iter().map(MlsBytes::into_bytes).collect();
            let last_resort = req.last_resort.as_ref().map(MlsBytes::as_bytes);
            if !store_mls::add_key_packages(conn, &device.0, &packages, last_resort, max as i64)? {
                return Err(ServerError::api(
                    ErrorCode::QuotaExceeded,
                    format!("a device holds at most {max} key packages; upload fewer"),
                ));
            }
            seen(conn, &row, now)?;
            let left = store_mls::key_packages_left(conn, &device.0)?;
            Ok(KeyPackageCount { left: u32::try_from(left).unwrap_or(u32::MAX) })
        })
        .await
}

/// `POST /api/key-packages/claim`.
pub async fn claim_key_packages(
    state: &Relay,
    me: &AuthUser,
    users: Vec<Username>,
) -> Result<ClaimedKeyPackages> {
    let max = sealroom_protocol::MAX_CLAIM_USERS;
    if users.is_empty() || users.len() > max {
        return Err(invalid(format!("users: between 1 and {max}")));
    }
    // One user cannot drain another's one-use key packages (which would leave them added with
    // their last-resort one): claims per (claimer, claimed user) are limited.
    for user in &users {
        policy::claim(&state.key_package_claims, me.id, user)?;
    }
    state
        .store
        .write(move |conn| {
            let mut out = Vec::with_capacity(users.len());
            for user in users {
                let row = store::user_by_name(conn, user.as_str())?.ok_or_else(|| {
                    ServerError::api(ErrorCode::UnknownRecipient, format!("no user named {user}"))
                })?;
                let key_packages = store_mls::claim_key_packages(conn, row.id)?
                    .into_iter()
                    .map(|(device, data)| {
                        let corrupt = |what| StoreError::Corrupt { what, row: row.id.0 };
                        Ok(DeviceKeyPackage {
                            device: DeviceId::from_slice(&device).map_err(|_| corrupt("device id"))?,
                            key_package: MlsBytes::new(data).map_err(|_| corrupt("key package"))?,
                        })
                    })
                    .collect::<Result<_>>()?;
                out.push(UserKeyPackages { user, key_packages });
            }
            Ok(ClaimedKeyPackages { users: out })
        })
        .await
}

/// Names for user ids (one query).
fn names_of(conn: &mut DbConn, ids: &[UserId]) -> Result<HashMap<UserId, Username>> {
    Ok(store::usernames(conn, ids)?
        .into_iter()
        .filter_map(|(id, name)| Some((id, Username::parse(&name).ok()?)))
        .collect())
}

/// Ids for user names; an unknown one is refused.
fn ids_of(conn: &mut DbConn, names: &[Username]) -> Result<Vec<UserId>> {
    names
        .iter()
        .map(|n| {
            store::user_by_name(conn, n.as_str())?
                .map(|r| r.id)
                .ok_or_else(|| ServerError::api(ErrorCode::UnknownRecipient, format!("no user named {n}")))
        })
        .collect()
}

/// A group as its members see it.
fn group_state(
    conn: &mut DbConn,
    group: &store_mls::GroupRow,
    members: &[(UserId, bool)],
    seen_since: i64,
) -> Result<GroupState> {
    let corrupt = |what| StoreError::Corrupt { what, row: group.conversation_id.0 };
    let ids: Vec<UserId> = members.iter().map(|(u, _)| *u).collect();
    let names = names_of(conn, &ids)?;
    let markers = store_mls::log_markers(conn, group.conversation_id)?;
    let members = members
        .iter()
        .map(|(u, admin)| {
            let (delivered, read) = markers.get(u).copied().unwrap_or_default();
            Ok(GroupMember {
                user: names.get(u).cloned().ok_or_else(|| corrupt("member name"))?,
                admin: *admin,
                delivered_up_to: u64::try_from(delivered).map_err(|_| corrupt("marker"))?,
                read_up_to: u64::try_from(read).map_err(|_| corrupt("marker"))?,
            })
        })
        .collect::<Result<_>>()?;
    let removed_devices = store_mls::revoked_devices_in(conn, group.conversation_id, seen_since)?
        .iter()
        .map(|d| DeviceId::from_slice(d).map_err(|_| corrupt("device id").into()))
        .collect::<Result<_>>()?;
    Ok(GroupState {
        conversation: group.conversation_id,
        kind: if group.is_direct() {
            sealroom_protocol::ConversationKind::Direct
        } else {
            sealroom_protocol::ConversationKind::Group
        },
        group_id: GroupId::from_slice(&group.group_id).map_err(|_| corrupt("group id"))?,
        epoch: u64::try_from(group.epoch).map_err(|_| corrupt("epoch"))?,
        members,
        removed_devices,
    })
}

/// `POST /api/groups`.
pub async fn create_group(state: &Relay, me: &AuthUser, req: CreateGroupRequest) -> Result<GroupState> {
    if wire_format(req.group_info.as_bytes()) != Ok(WIRE_GROUP_INFO) {
        return Err(invalid("group_info: not an MLS GroupInfo message"));
    }
    let me = me.id;
    let now = state.clock.now_ms();
    let seen_since = seen_since(state);
    state
        .store
        .write(move |conn| {
            policy::device(conn, me, &req.device)?;
            let id = store_mls::create_group(conn, me, &req.group_id.0, req.group_info.as_bytes(), now)?
                .ok_or_else(|| ServerError::api(ErrorCode::Conflict, "a group with this id exists"))?;
            let (group, members) = policy::group(conn, me, id)?;
            group_state(conn, &group, &members, seen_since)
        })
        .await
}

/// `POST /api/conversations/{id}/group`: one of the two users of direct conversation `id`
/// moves it to MLS. The second to try gets `conflict` (the conversation has its group: join it).
pub async fn move_to_mls(
    state: &Relay,
    me: &AuthUser,
    id: ConversationId,
    req: CreateGroupRequest,
) -> Result<GroupState> {
    if wire_format(req.group_info.as_bytes()) != Ok(WIRE_GROUP_INFO) {
        return Err(invalid("group_info: not an MLS GroupInfo message"));
    }
    let me = me.id;
    let seen_since = seen_since(state);
    state
        .store
        .write(move |conn| {
            policy::device(conn, me, &req.device)?;
            policy::move_to_mls(conn, me, id)?;
            match store_mls::attach_group(conn, id, &req.group_id.0, req.group_info.as_bytes())? {
                store_mls::Attached::Done => {}
                store_mls::Attached::AlreadyMoved => {
                    return Err(ServerError::api(
                        ErrorCode::Conflict,
                        "this conversation has moved to MLS already: join its group",
                    ))
                }
                store_mls::Attached::GroupIdTaken => {
                    return Err(ServerError::api(ErrorCode::Conflict, "a group with this id exists"))
                }
            }
            let (group, members) = policy::group(conn, me, id)?;
            group_state(conn, &group, &members, seen_since)
        })
        .await
}

/// Devices last seen before this are idle: their groups' members remove them.
fn seen_since(state: &Relay) -> i64 {
    let idle = i64::try_from(state.config.device_idle.as_millis()).unwrap_or(i64::MAX);
    state.clock.now_ms().saturating_sub(idle)
}

/// `GET /api/groups`.
pub async fn groups(state: &Relay, me: &AuthUser) -> Result<Vec<GroupState>> {
    let me = me.id;
    let seen_since = seen_since(state);
    state
        .store
        .run(move |conn| {
            store_mls::groups_of(conn, me)?
                .iter()
                .map(|g| {
                    let members = store_mls::group_members(conn, g.conversation_id)?;
                    group_state(conn, g, &members, seen_since)
                })
                .collect()
        })
        .await
}

/// `GET /api/groups/{id}`.
pub async fn group(state: &Relay, me: &AuthUser, id: ConversationId) -> Result<GroupState> {
    let me = me.id;
    let seen_since = seen_since(state);
    state
        .store
        .run(move |conn| {
            let (group, members) = policy::group(conn, me, id)?;
            group_state(conn, &group, &members, seen_since)
        })
        .await
}

/// `GET /api/groups/{id}/group-info`.
pub async fn group_info(state: &Relay, me: &AuthUser, id: ConversationId) -> Result<GroupInfoResponse> {
    let me = me.id;
    state
        .store
        .run(move |conn| {
            let (group, _) = policy::group(conn, me, id)?;
            let seq = store_mls::last_seq(conn, id)?;
            let corrupt = |what| StoreError::Corrupt { what, row: id.0 };
            Ok(GroupInfoResponse {
                epoch: u64::try_from(group.epoch).map_err(|_| corrupt("epoch"))?,
                seq: u64::try_from(seq).map_err(|_| corrupt("seq"))?,
                group_info: MlsBytes::new(group.group_info).map_err(|_| corrupt("group info"))?,
            })
        })
        .await
}

/// `POST /api/groups/{id}/leave`: the relay stops routing the group to `me` at once and tells
/// the remaining members, one of whom commits the removal.
pub async fn leave(state: &Relay, me: &AuthUser, id: ConversationId) -> Result<()> {
    let me_id = me.id;
    let remaining = state
        .store
        .write(move |conn| {
            let (group, members) = policy::group(conn, me_id, id)?;
            policy::leave(me_id, group.is_direct(), &members)?;
            store_mls::leave(conn, id, me_id)?;
            Ok(members.into_iter().map(|(u, _)| u).filter(|u| *u != me_id).collect::<Vec<_>>())
        })
        .await?;
    let frame = encode(&ServerFrame::Left { conversation: id, user: me.username.clone() });
    for user in remaining {
        state.fanout.send_to_user(user, &frame, None);
    }
    Ok(())
}

fn kind_of(content_type: i32) -> Option<EntryKind> {
    match content_type {
        store_mls::CONTENT_APPLICATION => Some(EntryKind::Application),
        store_mls::CONTENT_PROPOSAL => Some(EntryKind::Proposal),
        store_mls::CONTENT_COMMIT => Some(EntryKind::Commit),
        _ => None,
    }
}

/// What a stored entry is relayed to: the entry, whether it is new, the users whose
/// connections get it, and the devices (with their users) a Welcome waits for.
struct Stored {
    entry: GroupEntry,
    new: bool,
    audience: Vec<UserId>,
    welcomed: Vec<(UserId, DeviceId)>,
    /// Members who now share presence with the sender (its first message made it mutual).
    introduce: Vec<(UserId, String, Option<i64>)>,
}

/// Appends an MLS message to a group's log and relays it to the members' connections (and to
/// users the commit removes, so they learn it). A resend with the same `client_msg_id` returns
/// the first position and relays nothing.
///
/// Like [`crate::service::send`], the write is queued when this is called.
pub fn append<'a>(
    state: &'a Relay,
    me: &'a AuthUser,
    conversation: ConversationId,
    req: AppendRequest,
    except_conn: Option<u64>,
) -> impl std::future::Future<Output = Result<AppendedEntry>> + 'a {
    let queued = queue_append(state, me, conversation, req);
    async move {
        let stored = queued?.await?;
        let appended = AppendedEntry { seq: stored.entry.seq, ts: stored.entry.ts };
        if stored.new {
            state.metrics.relayed();
            let conversation = stored.entry.conversation;
            let frame = encode(&ServerFrame::GroupEntry { entry: stored.entry });
            for user in stored.audience {
                let except = if user == me.id { except_conn } else { None };
                state.fanout.send_to_user(user, &frame, except);
            }
            for (user, device) in stored.welcomed {
                state.fanout.send_to_user(
                    user,
                    &encode(&ServerFrame::Welcome { conversation, device }),
                    None,
                );
            }
            crate::service::introduce_peers(state, me, stored.introduce);
        }
        Ok(appended)
    }
}

/// Checks an append and queues its write ([`append`]).
fn queue_append(
    state: &Relay,
    me: &AuthUser,
    conversation: ConversationId,
    req: AppendRequest,
) -> Result<impl std::future::Future<Output = Result<Stored>> + 'static> {
    let framing = parse_framing(req.message.as_bytes())
        .map_err(|e| invalid(format!("message: not an MLS group message ({e})")))?;
    let (content_type, kind) = match (framing.content_type, &req.commit) {
        (ContentType::Application, None) => (store_mls::CONTENT_APPLICATION, EntryKind::Application),
        (ContentType::Commit, Some(_)) => (store_mls::CONTENT_COMMIT, EntryKind::Commit),
        (ContentType::Commit, None) => return Err(invalid("commit: a commit needs its `commit` effects")),
        (ContentType::Application, Some(_)) => {
            return Err(invalid("commit: an application message has no commit effects"))
        }
        (ContentType::Proposal, _) => {
            return Err(invalid("message: standalone proposals are not accepted; commit instead"))
        }
    };
    if let Some(c) = &req.commit {
        if wire_format(c.group_info.as_bytes()) != Ok(WIRE_GROUP_INFO) {
            return Err(invalid("commit.group_info: not an MLS GroupInfo message"));
        }
        match &c.welcome {
            Some(w) if wire_format(w.as_bytes()) != Ok(WIRE_WELCOME) => {
                return Err(invalid("commit.welcome: not an MLS Welcome message"))
            }
            Some(_) if c.welcome_devices.is_empty() => {
                return Err(invalid("commit.welcome_devices: a Welcome needs the devices it is for"))
            }
            None if !c.welcome_devices.is_empty() => {
                return Err(invalid("commit.welcome_devices: no Welcome to send them"))
            }
            _ => {}
        }
    }
    let epoch = i64::try_from(framing.epoch).map_err(|_| invalid("message: epoch out of range"))?;
    if !req.blobs.is_empty() && req.commit.is_some() {
        return Err(invalid("blobs: only an application message carries attachments"));
    }
    policy::attachments(&req.blobs)?;
    let blob_ids: Vec<String> = req.blobs.iter().map(|b| b.to_string()).collect();
    let me_id = me.id;
    let me_name = me.username.clone();
    let max = sealroom_protocol::MAX_GROUP_MEMBERS;
    let now = state.clock.now_ms();
    Ok(state.store.write(move |conn| {
        let device = policy::device(conn, me_id, &req.device)?;
        let (group, members) = policy::group(conn, me_id, conversation)?;
        if framing.group_id != group.group_id {
            return Err(invalid("message: it belongs to another group"));
        }
        let mut audience: Vec<UserId> = members.iter().map(|(u, _)| *u).collect();
        let mut welcomed = Vec::new();
        let (added, removed, admins, devices);
        let effects = match &req.commit {
            None => None,
            Some(c) => {
                added = ids_of(conn, &c.added)?;
                removed = ids_of(conn, &c.removed)?;
                admins = c.admins.as_deref().map(|a| ids_of(conn, a)).transpose()?;
                let claims = policy::CommitClaims {
                    added: &added,
                    removed: &removed,
                    admins: admins.as_deref(),
                    external: framing.external_join,
                    direct: group.is_direct(),
                };
                let after = policy::commit(me_id, &members, claims, max)?;
                devices = c.welcome_devices.iter().map(|d| d.0.to_vec()).collect::<Vec<Vec<u8>>>();
                let active = store_mls::active_devices_among(conn, &devices, &after)?;
                for d in &c.welcome_devices {
                    let Some((_, user)) = active.iter().find(|(id, _)| id[..] == d.0[..]) else {
                        return Err(invalid(format!(
                            "commit.welcome_devices: {d} is not an active device of a member"
                        )));
                    };
                    welcomed.push((*user, *d));
                }
                audience = after.into_iter().chain(removed.iter().copied()).collect();
                Some(CommitEffects {
                    group_info: c.group_info.as_bytes(),
                    welcome: c.welcome.as_ref().map(|w| (w.as_bytes(), &devices[..])),
                    // A direct conversation's users are its members already.
                    added: if group.is_direct() { &[] } else { &added },
                    removed: &removed,
                    admins: admins.as_deref(),
                })
            }
        };
        let entry = NewEntry {
            conversation,
            sender: me_id,
            sender_device: &req.device.0,
            epoch,
            content_type,
            client_msg_id: &req.client_msg_id.0,
            data: req.message.as_bytes(),
            blobs: &blob_ids,
            now,
        };
        let (seq, ts, new) = match store_mls::append(conn, &entry, effects.as_ref())? {
            Appended::At(seq) => (seq, now, true),
            Appended::Again { seq, ts } => (seq, ts, false),
            Appended::UnknownBlob(id) => return Err(policy::unknown_blob(&id)),
            Appended::StaleEpoch { current } => {
                return Err(ServerError::api(
                    ErrorCode::StaleEpoch,
                    format!(
                        "the group is at epoch {current}, not {epoch}: process its log, then encrypt again and retry"
                    ),
                ))
            }
        };
        if new {
            seen(conn, &device, now)?;
            // Not relayed to who blocked the sender (commits are never withheld).
            let withheld = store_mls::withheld_from(conn, seq)?;
            audience.retain(|u| !withheld.contains(u));
        }
        // The sender's first message where others have written too makes it mutual, as in
        // version 1 ([`crate::service::send`]): they are told each other's presence at once.
        let mut introduce = Vec::new();
        if new && content_type == store_mls::CONTENT_APPLICATION && store_mls::first_words(conn, conversation, me_id, seq)? {
            let sharing = policy::presence_audience(conn, me_id)?;
            for (peer, _) in members.iter().filter(|(u, _)| *u != me_id && sharing.contains(u)) {
                if let Some((name, last_seen)) = store::name_and_last_seen(conn, *peer)? {
                    introduce.push((*peer, name, last_seen));
                }
            }
        }
        let corrupt = |what| StoreError::Corrupt { what, row: seq };
        let entry = GroupEntry {
            seq: u64::try_from(seq).map_err(|_| corrupt("seq"))?,
            conversation,
            sender: me_name,
            device: req.device,
            epoch: framing.epoch,
            kind,
            message: req.message,
            ts,
        };
        Ok(Stored { entry, new, audience, welcomed, introduce })
    }))
}

/// `GET /api/group-log`.
pub async fn log(state: &Relay, me: &AuthUser, q: GroupLogQuery) -> Result<GroupLogResponse> {
    let max = sealroom_protocol::MAX_LOG_PAGE;
    let limit = i64::from(q.limit.unwrap_or(max).clamp(1, max));
    let since = i64::try_from(q.since).map_err(|_| invalid("since: out of range"))?;
    let me = me.id;
    if let Some(device) = q.device {
        // The device has read everything up to `since`: what all devices passed may go.
        state
            .store
            .write(move |conn| {
                policy::device(conn, me, &device)?;
                Ok(store_mls::log_read(conn, &device.0, since)?)
            })
            .await?;
    }
    state
        .store
        .run(move |conn| {
            let mut rows = store_mls::log_since(conn, me, since, limit + 1)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let mut ids: Vec<UserId> = rows.iter().map(|r| r.sender_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let names = names_of(conn, &ids)?;
            let entries = rows
                .into_iter()
                .map(|r| {
                    let corrupt = |what| StoreError::Corrupt { what, row: r.seq };
                    Ok(GroupEntry {
                        seq: u64::try_from(r.seq).map_err(|_| corrupt("seq"))?,
                        conversation: r.conversation_id,
                        sender: names.get(&r.sender_id).cloned().ok_or_else(|| corrupt("sender name"))?,
                        device: DeviceId::from_slice(&r.sender_device).map_err(|_| corrupt("device id"))?,
                        epoch: u64::try_from(r.epoch).map_err(|_| corrupt("epoch"))?,
                        kind: kind_of(r.content_type).ok_or_else(|| corrupt("content type"))?,
                        message: MlsBytes::new(r.data).map_err(|_| corrupt("message"))?,
                        ts: r.created_at,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(GroupLogResponse { entries, more })
        })
        .await
}

/// Deletes the log entries every device that needs them has read ([`store_mls::prune_log`]).
pub async fn prune_log(state: &Relay) -> Result<usize> {
    let seen_since = seen_since(state);
    state.store.write(move |conn| Ok(store_mls::prune_log(conn, seen_since)?)).await
}

/// `GET /api/devices/{device}/welcomes`.
pub async fn welcomes(state: &Relay, me: &AuthUser, device: DeviceId) -> Result<WelcomeList> {
    let me = me.id;
    state
        .store
        .run(move |conn| {
            policy::device(conn, me, &device)?;
            let welcomes = store_mls::welcomes_for(conn, &device.0)?
                .into_iter()
                .map(|w| {
                    let corrupt = |what| StoreError::Corrupt { what, row: w.id };
                    Ok(WelcomeOut {
                        id: u64::try_from(w.id).map_err(|_| corrupt("id"))?,
                        conversation: w.conversation_id,
                        seq: u64::try_from(w.log_seq).map_err(|_| corrupt("seq"))?,
                        welcome: MlsBytes::new(w.data).map_err(|_| corrupt("welcome"))?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(WelcomeList { welcomes })
        })
        .await
}

/// `POST /api/devices/{device}/welcomes/taken`.
pub async fn welcomes_taken(state: &Relay, me: &AuthUser, device: DeviceId, up_to: u64) -> Result<()> {
    let me = me.id;
    let up_to = i64::try_from(up_to).map_err(|_| invalid("up_to: out of range"))?;
    state
        .store
        .write(move |conn| {
            policy::device(conn, me, &device)?;
            store_mls::welcomes_taken(conn, &device.0, up_to)?;
            Ok(())
        })
        .await
}

/// `POST /api/archive`: every entry checked by policy, then all stored in one transaction.
pub async fn archive_messages(state: &Relay, me: &AuthUser, req: ArchiveUpload) -> Result<u32> {
    let max = sealroom_protocol::MAX_ARCHIVE_BATCH;
    if req.entries.is_empty() || req.entries.len() > max {
        return Err(invalid(format!("entries: 1 to {max} per upload")));
    }
    let mut rows = Vec::with_capacity(req.entries.len());
    for e in &req.entries {
        rows.push(store_mls::ArchiveRow {
            conversation_id: e.conversation,
            seq: i64::try_from(e.seq).map_err(|_| invalid("seq: out of range"))?,
            sender: e.sender.to_string(),
            sent_ms: i64::try_from(e.sent_ms).map_err(|_| invalid("sent_ms: out of range"))?,
            entry: e.entry.as_bytes().to_vec(),
        });
    }
    let now = state.clock.now_ms();
    let me = me.id;
    let entries = req.entries;
    state
        .store
        .write(move |conn| {
            for e in &entries {
                policy::archive(conn, me, e.conversation, e.seq)?;
            }
            let added = store_mls::archive_add(conn, me, &rows, now)?;
            Ok(u32::try_from(added).unwrap_or(u32::MAX))
        })
        .await
}

/// `GET /api/archive`.
pub async fn archive_list(state: &Relay, me: &AuthUser) -> Result<Vec<ArchivedConversation>> {
    let me = me.id;
    state
        .store
        .run(move |conn| {
            store_mls::archive_list(conn, me)?
                .into_iter()
                .map(|(conversation, n, last)| {
                    let corrupt = |what| StoreError::Corrupt { what, row: conversation.0 };
                    Ok(ArchivedConversation {
                        conversation,
                        entries: u64::try_from(n).map_err(|_| corrupt("count"))?,
                        last_seq: u64::try_from(last).map_err(|_| corrupt("seq"))?,
                    })
                })
                .collect()
        })
        .await
}

/// `GET /api/archive/{id}`: only this user's own archive, so nothing to authorize but the
/// token; a conversation with nothing archived is an empty page.
pub async fn archived_history(
    state: &Relay,
    me: &AuthUser,
    conversation: ConversationId,
    q: ArchiveQuery,
) -> Result<ArchivePage> {
    let max = sealroom_protocol::MAX_ARCHIVE_PAGE;
    let limit = i64::from(q.limit.unwrap_or(max).clamp(1, max));
    let before = match q.before {
        Some(b) => i64::try_from(b).map_err(|_| invalid("before: out of range"))?,
        None => i64::MAX,
    };
    let me = me.id;
    state
        .store
        .run(move |conn| {
            let mut rows = store_mls::archive_page(conn, me, conversation, before, limit + 1)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            rows.reverse();
            let entries = rows
                .into_iter()
                .map(|r| {
                    let corrupt = |what| StoreError::Corrupt { what, row: r.seq };
                    Ok(ArchiveEntry {
                        seq: u64::try_from(r.seq).map_err(|_| corrupt("seq"))?,
                        sender: Username::parse(&r.sender).map_err(|_| corrupt("sender"))?,
                        sent_ms: u64::try_from(r.sent_ms).map_err(|_| corrupt("sent_ms"))?,
                        entry: ArchiveBytes::new(r.entry).map_err(|_| corrupt("entry"))?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(ArchivePage { entries, more })
        })
        .await
}

/// `DELETE /api/archive`.
pub async fn delete_archive(state: &Relay, me: &AuthUser) -> Result<()> {
    let me = me.id;
    state.store.write(move |conn| Ok(store_mls::archive_delete(conn, me).map(|_| ())?)).await
}
