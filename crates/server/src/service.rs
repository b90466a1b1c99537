//! The rules of conversations, shared by the REST handlers and the WebSocket loop.
//!
//! Authorization is structural: every operation names the *peer*, and the conversation is
//! always the one between the authenticated user and that peer. There is no way to address
//! a conversation one is not part of, and the sender of a message is always the session's user.

use std::collections::HashMap;

use actix_web::web;
use sealroom_protocol::{
    BlobId, ClientMsgId, ConversationSummary, Envelope, ErrorCode, HistoryResponse, IdentityKey, MessageId,
    MessageOut, ServerFrame, Username,
};

use crate::auth::AuthUser;
use crate::db::{self, MemberRow, MessageRow};
use crate::error::{Result, ServerError};
use crate::hub::encode;
use crate::metrics::METRICS;
use crate::{now_ms, AppState};

/// Runs storage code on the blocking pool with a pooled connection.
pub async fn with_db<T, F>(state: &web::Data<AppState>, f: F) -> Result<T>
where
    F: FnOnce(&mut db::Conn) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}

fn not_found(peer: &Username) -> ServerError {
    ServerError::api(ErrorCode::NotFound, format!("no conversation with {peer}"))
}

/// The user's membership in the conversation with `peer` (404 if none).
fn membership(conn: &mut db::Conn, me: i64, peer: &Username) -> Result<(db::UserRow, MemberRow)> {
    let peer_row = db::user_by_name(conn, peer.as_str())?.ok_or_else(|| not_found(peer))?;
    let m = db::member(conn, me, peer_row.id)?.ok_or_else(|| not_found(peer))?;
    Ok((peer_row, m))
}

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
    state: &web::Data<AppState>,
    me: &AuthUser,
    to: Username,
    client_msg_id: ClientMsgId,
    envelope: Envelope,
    blobs: Vec<BlobId>,
    except_conn: Option<u64>,
) -> Result<MessageOut> {
    if blobs.len() > sealroom_protocol::MAX_BLOBS_PER_MESSAGE {
        return Err(ServerError::api(
            ErrorCode::InvalidField,
            format!(
                "a message may reference at most {} attachments",
                sealroom_protocol::MAX_BLOBS_PER_MESSAGE
            ),
        ));
    }
    if envelope.as_bytes().is_empty() {
        return Err(ServerError::api(ErrorCode::InvalidLength, "envelope is empty"));
    }
    if to == me.username {
        return Err(ServerError::api(ErrorCode::InvalidField, "you cannot send a message to yourself"));
    }
    let me_id = me.id;
    let (message, new, recipient) = with_db(state, move |conn| {
        let recipient = db::user_by_name(conn, to.as_str())?
            .ok_or_else(|| ServerError::api(ErrorCode::UnknownRecipient, format!("no user named {to}")))?;
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
        .map_err(|id| {
            ServerError::api(
                ErrorCode::UnknownBlob,
                format!("no attachment {id} of yours: upload it first (unsent uploads expire)"),
            )
        })?;
        let new = stored.new;
        let mut wire = to_wire(conn, vec![stored.row])?;
        let message = wire.pop().ok_or_else(|| ServerError::Internal("stored message vanished".into()))?;
        Ok((message, new, recipient.id))
    })
    .await?;
    if new {
        METRICS.relayed();
        let frame = encode(&ServerFrame::Message { message: message.clone() });
        state.hub.send_to_user(recipient, &frame, None);
        state.hub.send_to_user(me.id, &frame, except_conn);
    }
    Ok(message)
}

/// Everything after `since` in all of the user's conversations, in one batch.
pub async fn sync(
    state: &web::Data<AppState>,
    me: &AuthUser,
    since: MessageId,
) -> Result<(Vec<MessageOut>, bool)> {
    let limit = sealroom_protocol::MAX_PAGE as i64;
    let me_id = me.id;
    with_db(state, move |conn| {
        let mut rows = db::messages_since(conn, me_id, since.0, limit + 1)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        Ok((to_wire(conn, rows)?, more))
    })
    .await
}

/// The conversation list, pinned first, then by last activity.
pub async fn conversations(state: &web::Data<AppState>, me: &AuthUser) -> Result<Vec<ConversationSummary>> {
    let me_id = me.id;
    let rows = with_db(state, move |conn| {
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
            let online = state.hub.is_online(peer.id);
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
    state: &web::Data<AppState>,
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
    with_db(state, move |conn| {
        let (peer_row, m) = membership(conn, me_id, &peer)?;
        let mut rows = db::history(conn, &m, query.before.map(|b| b.0), query.after.map(|a| a.0), limit + 1)?;
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
pub async fn mark(
    state: &web::Data<AppState>,
    me: &AuthUser,
    peer: Username,
    up_to: MessageId,
    read: bool,
) -> Result<()> {
    let me_id = me.id;
    let peer_for_db = peer.clone();
    let peer_id = with_db(state, move |conn| {
        let (peer_row, m) = membership(conn, me_id, &peer_for_db)?;
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
    state.hub.send_to_user(peer_id, &frame, None);
    if read {
        state.hub.send_to_user(me.id, &frame, None);
    }
    Ok(())
}

/// Clears the conversation with `peer` for this user, or for both.
pub async fn clear(
    state: &web::Data<AppState>,
    me: &AuthUser,
    peer: Username,
    for_both: bool,
) -> Result<MessageId> {
    let me_id = me.id;
    let peer_for_db = peer.clone();
    let (peer_id, (up_to, freed)) = with_db(state, move |conn| {
        let (peer_row, m) = membership(conn, me_id, &peer_for_db)?;
        Ok((peer_row.id, db::clear(conn, &m, for_both)?))
    })
    .await?;
    state.blobs.remove(freed).await;
    let frame = encode(&ServerFrame::ChatCleared {
        by: me.username.clone(),
        peer,
        for_both,
        up_to: MessageId(up_to),
    });
    state.hub.send_to_user(me.id, &frame, None);
    if for_both {
        state.hub.send_to_user(peer_id, &frame, None);
    }
    Ok(MessageId(up_to))
}

/// Pins or hides the conversation with `peer` for this user.
pub async fn set_flags(
    state: &web::Data<AppState>,
    me: &AuthUser,
    peer: Username,
    flags: sealroom_protocol::ConversationFlags,
) -> Result<()> {
    let me_id = me.id;
    with_db(state, move |conn| {
        let (_, m) = membership(conn, me_id, &peer)?;
        Ok(db::set_flags(conn, &m, flags.pinned, flags.hidden)?)
    })
    .await
}

/// Tells everyone who shares a conversation with `user` that they came online or went offline.
pub async fn broadcast_presence(
    state: &web::Data<AppState>,
    user: i64,
    username: &Username,
    online: bool,
) -> Result<()> {
    let now = now_ms();
    let peers = with_db(state, move |conn| {
        if !online {
            db::set_last_seen(conn, user, now)?;
        }
        Ok(db::peers_of(conn, user)?)
    })
    .await?;
    let frame = encode(&ServerFrame::Presence {
        user: username.clone(),
        online,
        last_seen: if online { None } else { Some(now) },
    });
    for p in peers {
        state.hub.send_to_user(p, &frame, None);
    }
    Ok(())
}

/// Relays "typing" to `to`, if they share a conversation with this user (never stored).
pub async fn typing(state: &web::Data<AppState>, me: &AuthUser, to: Username) -> Result<()> {
    let me_id = me.id;
    let peer_id = with_db(state, move |conn| Ok(membership(conn, me_id, &to)?.0.id)).await?;
    state.hub.send_to_user(peer_id, &encode(&ServerFrame::Typing { from: me.username.clone() }), None);
    Ok(())
}
