//! The rules of conversations, shared by the REST handlers and the WebSocket loop.
//!
//! Every authorization question is asked of [`crate::policy`]; services only apply the answer.

use std::collections::HashMap;

use sealroom_protocol::{
    BlobId, ClientMsgId, ConversationSummary, Envelope, ErrorCode, HistoryResponse, IdentityKey, MessageId,
    MessageOut, ServerFrame, Username,
};

use crate::auth::AuthUser;
use crate::db::{self, MessageRow};
use crate::error::{Result, ServerError};
use crate::hub::encode;
use crate::policy;
use crate::{now_ms, Relay};

/// Turns rows into wire messages, resolving user ids to names.
pub fn to_wire(conn: &mut db::Conn, rows: Vec<MessageRow>) -> Result<Vec<MessageOut>> {
    let mut ids: Vec<i64> = rows.iter().flat_map(|r| [r.sender_id, r.recipient_id]).collect();
    ids.sort_unstable();
    ids.dedup();
    let names: HashMap<i64, String> = db::usernames(conn, &ids)?.into_iter().collect();
    rows.into_iter()
        .map(|r| {
            let name = |id: i64| {
                names
                    .get(&id)
                    .and_then(|n| Username::parse(n).ok())
                    .ok_or_else(|| ServerError::Internal(format!("user {id} has no valid name")))
            };
            Ok(MessageOut {
                id: MessageId(r.id),
                from: name(r.sender_id)?,
                to: name(r.recipient_id)?,
                client_msg_id: ClientMsgId::from_slice(&r.client_msg_id)
                    .map_err(|_| ServerError::Internal("stored client_msg_id has a bad length".into()))?,
                envelope: Envelope::new(r.envelope)
                    .map_err(|_| ServerError::Internal("stored envelope too large".into()))?,
                ts: r.created_at,
            })
        })
        .collect()
}

/// Stores a message from `me` to `to` and relays it. Returns the stored message and whether it
/// was new (a resend of the same client_msg_id returns the first copy and relays nothing).
pub async fn send(
    state: &Relay,
    me: &AuthUser,
    to: Username,
    client_msg_id: ClientMsgId,
    envelope: Envelope,
    blobs: Vec<BlobId>,
    except_conn: Option<u64>,
) -> Result<MessageOut> {
    policy::attachments(&blobs)?;
    if envelope.as_bytes().is_empty() {
        return Err(ServerError::api(ErrorCode::InvalidLength, "envelope is empty"));
    }
    let sender = me.clone();
    let me_id = me.id;
    let (message, new, recipient) = state
        .store
        .run(move |conn| {
            let recipient = policy::recipient(conn, &sender, &to)?;
            let blob_ids: Vec<String> = blobs.iter().map(|b| b.to_string()).collect();
            let stored = db::store_message(
                conn,
                me_id,
                recipient.id,
                &client_msg_id.0,
                envelope.as_bytes(),
                &blob_ids,
                now_ms(),
            )?
            .map_err(|id| policy::unknown_blob(&id))?;
            let new = stored.new;
            let mut wire = to_wire(conn, vec![stored.row])?;
            let message =
                wire.pop().ok_or_else(|| ServerError::Internal("stored message vanished".into()))?;
            Ok((message, new, recipient.id))
        })
        .await?;
    if new {
        state.metrics.relayed();
        let frame = encode(&ServerFrame::Message { message: message.clone() });
        state.fanout.send_to_user(recipient, &frame, None);
        state.fanout.send_to_user(me.id, &frame, except_conn);
    }
    Ok(message)
}

/// One stored message `me` may read ([`policy::message`]).
pub async fn message(state: &Relay, me: &AuthUser, id: i64) -> Result<MessageOut> {
    let me = me.id;
    state
        .store
        .run(move |conn| {
            let row = policy::message(conn, me, id)?;
            to_wire(conn, vec![row])?.pop().ok_or_else(|| ServerError::Internal("message vanished".into()))
        })
        .await
}

/// Everything after `since` in all of the user's conversations, in one batch.
pub async fn sync(state: &Relay, me: &AuthUser, since: MessageId) -> Result<(Vec<MessageOut>, bool)> {
    let limit = sealroom_protocol::MAX_PAGE as i64;
    let me_id = me.id;
    state
        .store
        .run(move |conn| {
            let mut rows = db::messages_since(conn, me_id, since.0, limit + 1)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            Ok((to_wire(conn, rows)?, more))
        })
        .await
}

/// The conversation list, pinned first, then by last activity.
pub async fn conversations(state: &Relay, me: &AuthUser) -> Result<Vec<ConversationSummary>> {
    let me_id = me.id;
    let rows = state
        .store
        .run(move |conn| {
            let mut out = Vec::new();
            for m in db::members_of_user(conn, me_id)? {
                let peer = db::user_by_id(conn, m.peer_id)?
                    .ok_or_else(|| ServerError::Internal("peer missing".into()))?;
                let peer_member = db::member(conn, m.peer_id, me_id)?;
                let last = db::last_visible_message(conn, &m)?;
                let last = match last {
                    Some(row) => to_wire(conn, vec![row])?.pop(),
                    None => None,
                };
                let unread = db::unread_count(conn, &m)?;
                let activity = db::conversation_activity(conn, m.conversation_id)?;
                out.push((m, peer, peer_member, last, unread, activity));
            }
            Ok(out)
        })
        .await?;
    let mut list: Vec<ConversationSummary> = rows
        .into_iter()
        .filter_map(|(m, peer, peer_member, last, unread, activity)| {
            let online = state.fanout.is_online(peer.id);
            Some(ConversationSummary {
                peer: Username::parse(&peer.username).ok()?,
                peer_identity_key: IdentityKey::from_slice(&peer.identity_key).ok()?,
                last_message: last,
                unread: u32::try_from(unread).unwrap_or(u32::MAX),
                peer_online: online,
                peer_last_seen: if online { None } else { peer.last_seen },
                peer_delivered_up_to: MessageId(peer_member.as_ref().map_or(0, |p| p.delivered_up_to)),
                peer_read_up_to: MessageId(peer_member.as_ref().map_or(0, |p| p.read_up_to)),
                read_up_to: MessageId(m.read_up_to),
                pinned: m.pinned,
                hidden: m.hidden,
                last_activity: activity,
            })
        })
        .collect();
    list.sort_by(|a, b| b.pinned.cmp(&a.pinned).then(b.last_activity.cmp(&a.last_activity)));
    Ok(list)
}

/// A page of history with `peer`.
pub async fn history(
    state: &Relay,
    me: &AuthUser,
    peer: Username,
    query: sealroom_protocol::HistoryQuery,
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
            let (peer_row, m) = policy::conversation(conn, me_id, &peer)?;
            let mut rows =
                db::history(conn, &m, query.before.map(|b| b.0), query.after.map(|a| a.0), limit + 1)?;
            let has_more = rows.len() as i64 > limit;
            if has_more {
                if query.after.is_some() {
                    rows.truncate(limit as usize);
                } else {
                    rows.remove(0);
                }
            }
            let peer_member = db::member(conn, peer_row.id, me_id)?;
            Ok(HistoryResponse {
                messages: to_wire(conn, rows)?,
                has_more,
                peer_delivered_up_to: MessageId(peer_member.as_ref().map_or(0, |p| p.delivered_up_to)),
                peer_read_up_to: MessageId(peer_member.as_ref().map_or(0, |p| p.read_up_to)),
            })
        })
        .await
}

/// Raises this user's delivered (or read) marker in the conversation with `peer` and tells the
/// peer (and, for reads, this user's other connections).
pub async fn mark(state: &Relay, me: &AuthUser, peer: Username, up_to: MessageId, read: bool) -> Result<()> {
    let me_id = me.id;
    let peer_for_db = peer.clone();
    let peer_id = state
        .store
        .run(move |conn| {
            let (peer_row, m) = policy::conversation(conn, me_id, &peer_for_db)?;
            db::raise_marker(conn, &m, up_to.0, read)?;
            Ok(peer_row.id)
        })
        .await?;
    let frame = if read {
        ServerFrame::Read { by: me.username.clone(), peer: peer.clone(), up_to }
    } else {
        ServerFrame::Delivered { by: me.username.clone(), peer: peer.clone(), up_to }
    };
    let frame = encode(&frame);
    state.fanout.send_to_user(peer_id, &frame, None);
    if read {
        state.fanout.send_to_user(me.id, &frame, None);
    }
    Ok(())
}

/// Clears the conversation with `peer` for this user, or for both.
pub async fn clear(state: &Relay, me: &AuthUser, peer: Username, for_both: bool) -> Result<MessageId> {
    let me_id = me.id;
    let peer_for_db = peer.clone();
    let (peer_id, (up_to, freed)) = state
        .store
        .run(move |conn| {
            let (peer_row, m) = policy::conversation(conn, me_id, &peer_for_db)?;
            Ok((peer_row.id, db::clear(conn, &m, for_both)?))
        })
        .await?;
    let removed = state.blobs.remove(freed).await;
    state.metrics.blobs_deleted(removed);
    let frame = encode(&ServerFrame::ChatCleared {
        by: me.username.clone(),
        peer,
        for_both,
        up_to: MessageId(up_to),
    });
    state.fanout.send_to_user(me.id, &frame, None);
    if for_both {
        state.fanout.send_to_user(peer_id, &frame, None);
    }
    Ok(MessageId(up_to))
}

/// Pins or hides the conversation with `peer` for this user.
pub async fn set_flags(
    state: &Relay,
    me: &AuthUser,
    peer: Username,
    flags: sealroom_protocol::ConversationFlags,
) -> Result<()> {
    let me_id = me.id;
    state
        .store
        .run(move |conn| {
            let (_, m) = policy::conversation(conn, me_id, &peer)?;
            Ok(db::set_flags(conn, &m, flags.pinned, flags.hidden)?)
        })
        .await
}

/// Tells everyone who shares a conversation with `user` that they came online or went offline.
pub async fn broadcast_presence(state: &Relay, user: i64, username: &Username, online: bool) -> Result<()> {
    let now = now_ms();
    let peers = state
        .store
        .run(move |conn| {
            if !online {
                db::set_last_seen(conn, user, now)?;
            }
            policy::presence_audience(conn, user)
        })
        .await?;
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

/// Relays "typing" to `to`, if they share a conversation with this user (never stored).
pub async fn typing(state: &Relay, me: &AuthUser, to: Username) -> Result<()> {
    let me_id = me.id;
    let peer_id = state.store.run(move |conn| Ok(policy::conversation(conn, me_id, &to)?.0.id)).await?;
    state.fanout.send_to_user(peer_id, &encode(&ServerFrame::Typing { from: me.username.clone() }), None);
    Ok(())
}
