//! The rules of conversations, shared by the REST handlers and the WebSocket loop.
//!
//! Every authorization question is asked of [`crate::policy`]; services only apply the answer,
//! store through [`crate::store`] and tell the members' connections through the relay's
//! [`crate::hub::Fanout`].

use std::collections::HashMap;

use sealroom_protocol::{
    BlobId, ClientMsgId, ConversationFlags, ConversationId, ConversationSummary, Envelope, ErrorCode,
    GroupSummary, HistoryQuery, HistoryResponse, IdentityKey, MessageId, MessageOut, ServerFrame, UserId,
    Username,
};

use crate::auth::AuthUser;
use crate::error::{Result, ServerError};
use crate::hub::encode;
use crate::store::mls as store_mls;
use crate::store::{self, ConversationRow, MessageRow, Refused, StoreError};
use crate::{policy, Relay};

/// Turns rows into wire messages, resolving user ids to names (one query for all of them).
pub fn to_wire(conn: &mut store::DbConn, rows: Vec<MessageRow>) -> Result<Vec<MessageOut>> {
    let mut ids: Vec<UserId> = rows.iter().flat_map(|r| [r.sender_id, r.recipient_id]).collect();
    ids.sort_unstable();
    ids.dedup();
    let names: HashMap<UserId, String> = store::usernames(conn, &ids)?.into_iter().collect();
    rows.into_iter().map(|r| wire_message(r, |id| names.get(&id).cloned())).collect()
}

/// One row as a wire message, with `name` resolving its users.
fn wire_message(r: MessageRow, name: impl Fn(UserId) -> Option<String>) -> Result<MessageOut> {
    let corrupt = |what| StoreError::Corrupt { what, row: r.id.0 };
    let user = |id: UserId| {
        name(id).and_then(|n| Username::parse(&n).ok()).ok_or_else(|| corrupt("sender or recipient name"))
    };
    Ok(MessageOut {
        id: r.id,
        conversation: r.conversation_id,
        from: user(r.sender_id)?,
        to: user(r.recipient_id)?,
        client_msg_id: ClientMsgId::from_slice(&r.client_msg_id).map_err(|_| corrupt("client_msg_id"))?,
        envelope: Envelope::new(r.envelope).map_err(|_| corrupt("envelope"))?,
        ts: r.created_at,
    })
}

/// The user ids of `conversation`'s members other than `me`.
fn others(conn: &mut store::DbConn, conversation: ConversationId, me: UserId) -> Result<Vec<UserId>> {
    Ok(store::other_members(conn, conversation, me)?.into_iter().map(|m| m.user_id).collect())
}

/// Stores a message from `me` in `conversation` and relays it to every member's connections
/// (this user's other connections too). A resend of the same client_msg_id returns the first
/// copy and relays nothing.
///
/// The write is queued for the group commit when this is called, not when the future is first
/// polled, so a connection's sends are stored in the order it made them even while it goes on
/// reading frames; nothing is relayed or acknowledged before the commit. The relaying runs on
/// a task of its own: once the commit lands the message is relayed whatever becomes of the
/// caller (a sender whose connection drops mid-send still has it relayed, and its resend,
/// answered from the stored copy, relays nothing).
pub fn send(
    state: actix_web::web::Data<Relay>,
    me: AuthUser,
    conversation: ConversationId,
    client_msg_id: ClientMsgId,
    envelope: Envelope,
    blobs: Vec<BlobId>,
    except_conn: Option<u64>,
) -> impl std::future::Future<Output = Result<MessageOut>> + 'static {
    let queued = queue_send(&state, &me, conversation, client_msg_id, envelope, blobs);
    let relayed = tokio::spawn(async move {
        let (message, new, audience, introduce) = queued?.await?;
        relay_sent(&state, &me, &message, new, audience, introduce, except_conn);
        Ok(message)
    });
    async move { relayed.await.map_err(|_| ServerError::Blocking)? }
}

/// What a stored message is to be relayed to: the message, whether it is new, the other
/// members to relay it to, and the peers to introduce (name and last seen) now that the
/// conversation became mutual.
type Sent = (MessageOut, bool, Vec<UserId>, Vec<(UserId, String, Option<i64>)>);

/// Checks a send and queues its write ([`send`]).
fn queue_send(
    state: &Relay,
    me: &AuthUser,
    conversation: ConversationId,
    client_msg_id: ClientMsgId,
    envelope: Envelope,
    blobs: Vec<BlobId>,
) -> Result<impl std::future::Future<Output = Result<Sent>> + 'static> {
    policy::attachments(&blobs)?;
    let me_id = me.id;
    let me_name = me.username.clone();
    let quota = state.config.message_quota;
    Ok(state
        .store
        .write(move |conn| {
            policy::conversation(conn, me_id, conversation)?;
            let blob_ids: Vec<String> = blobs.iter().map(|b| b.to_string()).collect();
            let new_message = store::NewMessage {
                sender: me_id,
                conversation,
                client_msg_id: &client_msg_id.0,
                envelope: envelope.as_bytes(),
                blob_ids: &blob_ids,
                now: crate::now_ms(),
            };
            let stored = match store::store_message(conn, &new_message, i64::try_from(quota).unwrap_or(i64::MAX))? {
                Ok(stored) => stored,
                Err(Refused::Blob(id)) => return Err(policy::unknown_blob(&id)),
                Err(Refused::Group) => {
                    return Err(ServerError::api(
                        ErrorCode::InvalidField,
                        "this is a group conversation: send MLS messages with group_send",
                    ))
                }
                Err(Refused::NoRecipient) => {
                    return Err(ServerError::api(
                        ErrorCode::UnknownRecipient,
                        "no one else is in this conversation",
                    ))
                }
                Err(Refused::RecipientDeleted) => {
                    return Err(ServerError::api(ErrorCode::UnknownRecipient, "they deleted their account"))
                }
                Err(Refused::Quota) => {
                    return Err(ServerError::api(
                        ErrorCode::QuotaExceeded,
                        format!(
                            "you have stored the most messages allowed ({quota} bytes); clear some conversations for both to make room"
                        ),
                    ))
                }
                Err(Refused::IdReused) => {
                    return Err(ServerError::api(
                        ErrorCode::InvalidField,
                        "this client_msg_id was already used for a different message; a resend must repeat the same message",
                    ))
                }
            };
            let new = stored.new;
            // A withheld message (the recipient blocked the sender) goes to the sender's own
            // connections only; the sender gets the same ack and is not told.
            // A direct conversation's other member is the message's recipient.
            let audience = if stored.withheld { vec![] } else { vec![stored.row.recipient_id] };
            // The sender's first message where the other side has written too makes the
            // conversation mutual: from now on the two share presence (policy::presence_audience),
            // so each is told the other's at once rather than at their next reconnect.
            let mut introduce = Vec::new();
            if new && !stored.withheld && !store::wrote_before(conn, conversation, me_id, stored.row.id)? {
                let sharing = policy::presence_audience(conn, me_id)?;
                for peer in audience.iter().filter(|p| sharing.contains(p)) {
                    if let Some((name, last_seen)) = store::name_and_last_seen(conn, *peer)? {
                        introduce.push((*peer, name, last_seen));
                    }
                }
            }
            // The sender's name is known; the recipient's is one prepared lookup.
            let to = store::username(conn, stored.row.recipient_id)?;
            let recipient = stored.row.recipient_id;
            let message = wire_message(stored.row, |id| {
                if id == me_id {
                    Some(me_name.as_str().to_owned())
                } else if id == recipient {
                    to.clone()
                } else {
                    None
                }
            })?;
            Ok((message, new, audience, introduce))
        }))
}

/// Relays a stored message ([`send`]) and introduces newly mutual peers.
fn relay_sent(
    state: &Relay,
    me: &AuthUser,
    message: &MessageOut,
    new: bool,
    audience: Vec<UserId>,
    introduce: Vec<(UserId, String, Option<i64>)>,
    except_conn: Option<u64>,
) {
    if new {
        state.metrics.relayed();
        let frame = encode(&ServerFrame::Message { message: message.clone() });
        for user in audience {
            state.fanout.send_to_user(user, &frame, None);
        }
        state.fanout.send_to_user(me.id, &frame, except_conn);
    }
    introduce_peers(state, me, introduce);
}

/// Tells `me` and each newly mutual peer the other's presence (they share it from now on).
pub(crate) fn introduce_peers(state: &Relay, me: &AuthUser, peers: Vec<(UserId, String, Option<i64>)>) {
    for (peer, name, last_seen) in peers {
        let Ok(name) = Username::parse(&name) else { continue };
        let theirs = state.fanout.is_online(peer);
        let to_me = ServerFrame::Presence {
            user: name,
            online: theirs,
            last_seen: if theirs { None } else { last_seen },
        };
        state.fanout.send_to_user(me.id, &encode(&to_me), None);
        let to_them = ServerFrame::Presence { user: me.username.clone(), online: true, last_seen: None };
        state.fanout.send_to_user(peer, &encode(&to_them), None);
    }
}

/// One stored message `me` may read ([`policy::message`]).
pub async fn message(state: &Relay, me: &AuthUser, id: MessageId) -> Result<MessageOut> {
    let me = me.id;
    state
        .store
        .run(move |conn| {
            let row = policy::message(conn, me, id)?;
            Ok(to_wire(conn, vec![row])?.remove(0))
        })
        .await
}

/// Everything after `since` in all of the user's conversations, in one batch.
pub async fn sync(state: &Relay, me: &AuthUser, since: MessageId) -> Result<(Vec<MessageOut>, bool)> {
    let limit = sealroom_protocol::MAX_PAGE as usize;
    let me_id = me.id;
    state
        .store
        .run(move |conn| {
            // Read in small batches and stop at SYNC_PAGE_BYTES of envelopes, so one page never
            // holds hundreds of maximum-size envelopes in memory at once.
            let mut page = Vec::new();
            let mut bytes = 0usize;
            let mut cursor = since;
            loop {
                let rows = store::messages_since(conn, me_id, cursor, SYNC_BATCH)?;
                let last_batch = (rows.len() as i64) < SYNC_BATCH;
                for row in rows {
                    let size = row.envelope.len();
                    if page.len() == limit || (!page.is_empty() && bytes + size > SYNC_PAGE_BYTES) {
                        return Ok((to_wire(conn, page)?, true));
                    }
                    bytes += size;
                    cursor = row.id;
                    page.push(row);
                }
                if last_batch {
                    return Ok((to_wire(conn, page)?, false));
                }
            }
        })
        .await
}

/// Rows read from the store at a time while filling a sync page.
const SYNC_BATCH: i64 = 32;
/// Envelope bytes in one sync page (at least one message, whatever its size).
pub const SYNC_PAGE_BYTES: usize = 1 << 20;

/// List rows and the names of everyone their last messages mention (one more query for all
/// of them, whoever the rows' messages claim to involve).
fn rows_with_names(
    conn: &mut store::DbConn,
    me: UserId,
    only: Option<ConversationId>,
) -> Result<(Vec<ConversationRow>, Names)> {
    let rows = store::conversation_rows(conn, me, only)?;
    let presence = policy::presence_audience(conn, me)?;
    let mut ids: Vec<UserId> =
        rows.iter().filter_map(|r| r.last_message()).flat_map(|m| [m.sender_id, m.recipient_id]).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok((rows, Names { names: store::usernames(conn, &ids)?.into_iter().collect(), presence }))
}

/// What the list needs besides its rows: names its last messages mention, and whose presence
/// this user may see ([`policy::presence_audience`]).
struct Names {
    names: HashMap<UserId, String>,
    presence: Vec<UserId>,
}

/// A list row on the wire; presence is asked of the fan-out.
fn summary(state: &Relay, me: &AuthUser, row: ConversationRow, names: &Names) -> Result<ConversationSummary> {
    let corrupt = |what| StoreError::Corrupt { what, row: row.id.0 };
    let peer = Username::parse(&row.peer_name).map_err(|_| corrupt("peer name"))?;
    let shares_presence = names.presence.contains(&row.peer_id);
    let online = shares_presence && state.fanout.is_online(row.peer_id);
    let last_message = match row.last_message() {
        Some(m) => Some(wire_message(m, |id| names.names.get(&id).cloned())?),
        None => None,
    };
    let mut members = vec![me.username.clone(), peer.clone()];
    members.sort();
    Ok(ConversationSummary {
        id: row.id,
        kind: row.kind()?,
        members,
        peer,
        peer_identity_key: IdentityKey::from_slice(&row.peer_identity_key)
            .map_err(|_| corrupt("peer identity key"))?,
        last_message,
        unread: u32::try_from(row.unread).unwrap_or(u32::MAX),
        peer_online: online,
        peer_last_seen: if online || !shares_presence { None } else { row.peer_last_seen },
        peer_delivered_up_to: row.peer_delivered_up_to,
        peer_read_up_to: row.peer_read_up_to,
        read_up_to: row.read_up_to,
        log_read_up_to: u64::try_from(row.log_read_up_to).unwrap_or(0),
        peer_log_delivered_up_to: u64::try_from(row.peer_log_delivered_up_to).unwrap_or(0),
        peer_log_read_up_to: u64::try_from(row.peer_log_read_up_to).unwrap_or(0),
        peer_deleted: row.peer_deleted,
        pinned: row.pinned,
        hidden: row.hidden,
        last_activity: row.last_activity,
    })
}

/// The conversation list, pinned first, then by last activity.
pub async fn conversations(state: &Relay, me: &AuthUser) -> Result<Vec<ConversationSummary>> {
    let me_id = me.id;
    let (rows, names) = state.store.run(move |conn| rows_with_names(conn, me_id, None)).await?;
    // One row the relay cannot put on the wire must not hide the others: it is logged and left out.
    let mut list: Vec<ConversationSummary> = rows
        .into_iter()
        .filter_map(|row| {
            summary(state, me, row, &names)
                .map_err(|e| tracing::error!(error = %e, "conversation left out"))
                .ok()
        })
        .collect();
    list.sort_by(|a, b| b.pinned.cmp(&a.pinned).then(b.last_activity.cmp(&a.last_activity)));
    Ok(list)
}

/// This user's groups for the list, pinned first, then by last activity.
pub async fn group_list(state: &Relay, me: &AuthUser) -> Result<Vec<GroupSummary>> {
    let me_id = me.id;
    let (rows, names) = state
        .store
        .run(move |conn| {
            let rows = store_mls::group_list(conn, me_id)?;
            let ids: Vec<ConversationId> = rows.iter().map(|r| r.id).collect();
            Ok((rows, store_mls::member_names(conn, &ids)?))
        })
        .await?;
    let mut list: Vec<GroupSummary> = rows
        .into_iter()
        .map(|r| GroupSummary {
            id: r.id,
            members: names
                .iter()
                .filter(|(c, _)| *c == r.id)
                .filter_map(|(_, n)| Username::parse(n).ok())
                .collect(),
            unread: u32::try_from(r.unread).unwrap_or(u32::MAX),
            log_read_up_to: u64::try_from(r.log_read_up_to).unwrap_or(0),
            pinned: r.pinned,
            hidden: r.hidden,
            last_activity: r.last_activity,
        })
        .collect();
    list.sort_by(|a, b| b.pinned.cmp(&a.pinned).then(b.last_activity.cmp(&a.last_activity)));
    Ok(list)
}

/// The direct conversation with `peer`, created (for this user only, until its first message)
/// if there is none.
pub async fn open_direct(state: &Relay, me: &AuthUser, peer: Username) -> Result<ConversationSummary> {
    let caller = me.clone();
    let now = state.clock.now_ms();
    let (row, names) = state
        .store
        .write(move |conn| {
            let peer = policy::direct_peer(conn, &caller, &peer)?;
            let id = store::open_direct(conn, caller.id, peer.id, now)?;
            let (mut rows, names) = rows_with_names(conn, caller.id, Some(id))?;
            let row = rows.pop().ok_or(StoreError::Corrupt { what: "new conversation", row: id.0 })?;
            Ok((row, names))
        })
        .await?;
    summary(state, me, row, &names)
}

/// A page of `conversation`'s history.
pub async fn history(
    state: &Relay,
    me: &AuthUser,
    conversation: ConversationId,
    query: HistoryQuery,
) -> Result<HistoryResponse> {
    let limit = i64::from(
        query.limit.unwrap_or(sealroom_protocol::DEFAULT_PAGE).clamp(1, sealroom_protocol::MAX_PAGE),
    );
    if query.before.is_some() && query.after.is_some() {
        return Err(ServerError::api(ErrorCode::InvalidField, "give `before` or `after`, not both"));
    }
    let me_id = me.id;
    state
        .store
        .run(move |conn| {
            let m = policy::conversation(conn, me_id, conversation)?;
            let mut rows = store::history(conn, &m, query.before, query.after, limit + 1)?;
            let has_more = rows.len() as i64 > limit;
            if has_more {
                if query.after.is_some() {
                    rows.truncate(limit as usize);
                } else {
                    rows.remove(0);
                }
            }
            // A direct conversation's other member; their markers say what they have seen.
            let peer = store::other_members(conn, conversation, me_id)?.pop();
            Ok(HistoryResponse {
                messages: to_wire(conn, rows)?,
                has_more,
                peer_delivered_up_to: peer.as_ref().map_or(MessageId(0), |p| p.delivered_up_to),
                peer_read_up_to: peer.as_ref().map_or(MessageId(0), |p| p.read_up_to),
            })
        })
        .await
}

/// Raises this user's delivered (or read) marker in `conversation` and tells the other
/// members (and, for reads, this user's other connections).
///
/// Like [`send`], the write is queued when this is called.
pub fn mark<'a>(
    state: &'a Relay,
    me: &'a AuthUser,
    conversation: ConversationId,
    up_to: MessageId,
    read: bool,
) -> impl std::future::Future<Output = Result<()>> + 'a {
    let me_id = me.id;
    let queued = state.store.write(move |conn| {
        let m = policy::conversation(conn, me_id, conversation)?;
        store::raise_marker(conn, &m, up_to, read)?;
        others(conn, conversation, me_id)
    });
    async move {
        let audience = queued.await?;
        let by = me.username.clone();
        let frame = if read {
            ServerFrame::Read { conversation, by, up_to }
        } else {
            ServerFrame::Delivered { conversation, by, up_to }
        };
        relay_mark(state, me, &frame, read, audience);
        Ok(())
    }
}

/// Raises this user's delivered (or read) marker in `conversation`'s MLS log and tells the
/// other members (and, for reads, this user's other connections). Like [`mark`], for log
/// positions, and like it the write is queued when this is called; a conversation that has no
/// log answers `not_found`.
pub fn mark_log<'a>(
    state: &'a Relay,
    me: &'a AuthUser,
    conversation: ConversationId,
    up_to: u64,
    read: bool,
) -> impl std::future::Future<Output = Result<()>> + 'a {
    let me_id = me.id;
    let requested = i64::try_from(up_to).unwrap_or(i64::MAX);
    let queued = state.store.write(move |conn| {
        policy::conversation(conn, me_id, conversation)?;
        let marker = crate::store::mls::raise_log_marker(conn, conversation, me_id, requested, read)?
            .ok_or_else(|| ServerError::api(ErrorCode::NotFound, "this conversation is not in MLS"))?;
        Ok((marker, others(conn, conversation, me_id)?))
    });
    async move {
        let (marker, audience) = queued.await?;
        let by = me.username.clone();
        let up_to = u64::try_from(marker).unwrap_or(0);
        let frame = if read {
            ServerFrame::GroupRead { conversation, by, up_to }
        } else {
            ServerFrame::GroupDelivered { conversation, by, up_to }
        };
        relay_mark(state, me, &frame, read, audience);
        Ok(())
    }
}

/// Tells the members about a raised marker ([`mark`], [`mark_log`]), and for a read this
/// user's other connections.
fn relay_mark(state: &Relay, me: &AuthUser, frame: &ServerFrame, read: bool, audience: Vec<UserId>) {
    let frame = encode(frame);
    for user in audience {
        state.fanout.send_to_user(user, &frame, None);
    }
    if read {
        state.fanout.send_to_user(me.id, &frame, None);
    }
}

/// Clears `conversation` for this user, or for every member.
pub async fn clear(
    state: &Relay,
    me: &AuthUser,
    conversation: ConversationId,
    for_both: bool,
    requested: Option<MessageId>,
) -> Result<MessageId> {
    let me_id = me.id;
    let (audience, (up_to, freed)) = state
        .store
        .write(move |conn| {
            let m = policy::conversation(conn, me_id, conversation)?;
            policy::clear_for(conn, &m, for_both)?;
            Ok((others(conn, conversation, me_id)?, store::clear(conn, &m, for_both, requested)?))
        })
        .await?;
    let removed = state.blobs.remove(freed).await;
    state.metrics.blobs_deleted(removed);
    let frame = encode(&ServerFrame::ChatCleared { conversation, by: me.username.clone(), for_both, up_to });
    state.fanout.send_to_user(me.id, &frame, None);
    if for_both {
        for user in audience {
            state.fanout.send_to_user(user, &frame, None);
        }
    }
    Ok(up_to)
}

/// Pins or hides `conversation` for this user.
pub async fn set_flags(
    state: &Relay,
    me: &AuthUser,
    conversation: ConversationId,
    flags: ConversationFlags,
) -> Result<()> {
    let me_id = me.id;
    state
        .store
        .write(move |conn| {
            let m = policy::conversation(conn, me_id, conversation)?;
            Ok(store::set_flags(conn, &m, flags.pinned, flags.hidden)?)
        })
        .await
}

/// Tells everyone who shares a conversation with `user` that they came online or went offline.
pub async fn broadcast_presence(
    state: &Relay,
    user: UserId,
    username: &Username,
    online: bool,
) -> Result<()> {
    let now = state.clock.now_ms();
    let peers = if online {
        state.store.run(move |conn| policy::presence_audience(conn, user)).await?
    } else {
        state
            .store
            .write(move |conn| {
                store::set_last_seen(conn, user, now)?;
                policy::presence_audience(conn, user)
            })
            .await?
    };
    let frame = encode(&ServerFrame::Presence {
        user: username.clone(),
        online,
        last_seen: if online { None } else { Some(now) },
    });
    for p in peers {
        state.fanout.send_to_user(p, &frame, None);
    }
    Ok(())
}

/// Relays "typing" to the other members of `conversation` ([`policy::typing_audience`];
/// never stored).
pub async fn typing(state: &Relay, me: &AuthUser, conversation: ConversationId) -> Result<()> {
    let me_id = me.id;
    let audience = state
        .store
        .run(move |conn| {
            let m = policy::conversation(conn, me_id, conversation)?;
            policy::typing_audience(conn, &m)
        })
        .await?;
    let frame = encode(&ServerFrame::Typing { conversation, from: me.username.clone() });
    for user in audience {
        state.fanout.send_to_user(user, &frame, None);
    }
    Ok(())
}

/// The users `me` has blocked.
pub async fn blocks(state: &Relay, me: &AuthUser) -> Result<Vec<Username>> {
    let me = me.id;
    let names = state.store.run(move |conn| Ok(store::blocked_by(conn, me)?)).await?;
    Ok(names.iter().filter_map(|n| Username::parse(n).ok()).collect())
}

/// Blocks (or unblocks) `name` for `me` ([`policy::block_target`]). Blocking withholds what
/// they send from now on; unblocking does not release what was withheld.
pub async fn set_blocked(state: &Relay, me: &AuthUser, name: Username, blocked: bool) -> Result<()> {
    let caller = me.clone();
    let now = state.clock.now_ms();
    state
        .store
        .write(move |conn| {
            let other = policy::block_target(conn, &caller, &name)?;
            if blocked {
                store::block(conn, caller.id, other.id, now)?;
            } else {
                store::unblock(conn, caller.id, other.id)?;
            }
            Ok(())
        })
        .await
}
