//! Every authorization question the relay answers, in one place.
//!
//! Services ask; nothing else decides. Each function answers one question with the facts from
//! storage and returns the error the caller must give, which never says more than the caller
//! may know: whatever belongs to a conversation the caller is not in answers `not_found`, the
//! same as what does not exist. `tests/tests/relay/authz.rs` runs every endpoint and frame
//! against every kind of caller.
//!
//! | question | who may | answer otherwise |
//! |---|---|---|
//! | use a token | its session exists, is the token's user's, not revoked, not expired | `unauthorized`, `session_revoked`, `token_expired` |
//! | act on a connected socket | its session has not expired since the handshake | `token_expired` (and the socket closes) |
//! | use the session cookie from a page | the relay's own origin or a configured one | `bad_origin` |
//! | read, mark, clear, flag, type into a conversation | its members | `not_found` |
//! | send to a user | anyone, to an existing user other than themselves | `unknown_recipient`, `invalid_field` |
//! | reference blobs in a message | their uploader (rechecked inside the storing transaction), at most 8 | `unknown_blob`, `invalid_field` |
//! | read one stored message | members of its conversation who have not cleared it | `not_found` |
//! | download a blob | members who can still see a message that references it | `not_found` |
//! | withdraw a blob | its uploader, while no message references it | `not_found` |
//! | see a user's presence | the people who share a conversation with them | (not sent) |

use sealroom_protocol::{BlobId, ErrorCode, Username};

use crate::auth::{AuthUser, Claims};
use crate::db::{self, MemberRow, MessageRow, SessionRow, UserRow};
use crate::error::{Result, ServerError};

/// The live session a decoded token names.
pub fn session(claims: Claims, row: Option<SessionRow>, now: i64) -> Result<AuthUser> {
    match row {
        Some(s) if s.revoked_at.is_none() && claims.sub == s.user_id.to_string() && s.expires_at > now => {
            let username = Username::parse(&claims.usr)
                .map_err(|_| ServerError::api(ErrorCode::Unauthorized, "invalid session token"))?;
            Ok(AuthUser { id: s.user_id, username, session_id: claims.sid, expires_at: s.expires_at })
        }
        _ => Err(ServerError::api(ErrorCode::SessionRevoked, "this session was logged out")),
    }
}

/// A connected socket may act only while the session it was opened with has not expired.
pub fn still_live(user: &AuthUser, now: i64) -> Result<()> {
    if user.expires_at <= now {
        return Err(ServerError::api(ErrorCode::TokenExpired, "the session has expired; log in again"));
    }
    Ok(())
}

/// A cookie-authenticated request must come from the relay's own origin (`host`) or one the
/// operator allowed: SameSite=Strict keeps other sites' requests cookie-less; this also refuses
/// cross-origin WebSockets, which SameSite does not cover everywhere. No Origin header (a
/// same-origin GET, a native client) is allowed.
pub fn origin(origin: Option<&str>, host: &str, allowed: &[String]) -> Result<()> {
    let Some(origin) = origin else { return Ok(()) };
    let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host);
    if own || allowed.iter().any(|o| o == origin) {
        Ok(())
    } else {
        Err(ServerError::api(ErrorCode::BadOrigin, "requests from this origin are not allowed"))
    }
}

fn no_conversation(peer: &Username) -> ServerError {
    ServerError::api(ErrorCode::NotFound, format!("no conversation with {peer}"))
}

/// `me`'s membership in the conversation with `peer`, which every read, marker, clear, flag and
/// typing notice needs. Not a member, or no such user: `not_found` alike.
pub fn conversation(conn: &mut db::Conn, me: i64, peer: &Username) -> Result<(UserRow, MemberRow)> {
    let peer_row = db::user_by_name(conn, peer.as_str())?.ok_or_else(|| no_conversation(peer))?;
    let m = db::member(conn, me, peer_row.id)?.ok_or_else(|| no_conversation(peer))?;
    Ok((peer_row, m))
}

/// Whom `me` may send to: any existing user but themselves. The sender is always `me`.
pub fn recipient(conn: &mut db::Conn, me: &AuthUser, to: &Username) -> Result<UserRow> {
    if *to == me.username {
        return Err(ServerError::api(ErrorCode::InvalidField, "you cannot send a message to yourself"));
    }
    db::user_by_name(conn, to.as_str())?
        .ok_or_else(|| ServerError::api(ErrorCode::UnknownRecipient, format!("no user named {to}")))
}

/// How many blobs one message may reference. Which ones is decided inside the storing
/// transaction: only the sender's own ([`unknown_blob`]).
pub fn attachments(blobs: &[BlobId]) -> Result<()> {
    if blobs.len() > sealroom_protocol::MAX_BLOBS_PER_MESSAGE {
        return Err(ServerError::api(
            ErrorCode::InvalidField,
            format!(
                "a message may reference at most {} attachments",
                sealroom_protocol::MAX_BLOBS_PER_MESSAGE
            ),
        ));
    }
    Ok(())
}

/// The refusal when a message names a blob that is not the sender's (or does not exist).
pub fn unknown_blob(id: &str) -> ServerError {
    ServerError::api(
        ErrorCode::UnknownBlob,
        format!("no attachment {id} of yours: upload it first (unsent uploads expire)"),
    )
}

/// Stored message `id`, if `me` is a member of its conversation and has not cleared it.
pub fn message(conn: &mut db::Conn, me: i64, id: i64) -> Result<MessageRow> {
    db::visible_message(conn, me, id)?.ok_or_else(|| ServerError::api(ErrorCode::NotFound, "no such message"))
}

fn no_blob() -> ServerError {
    ServerError::api(ErrorCode::NotFound, "no such attachment")
}

/// Blob `id` may be downloaded by `me`: a message that references it is still visible to them.
pub fn download(conn: &mut db::Conn, me: i64, id: &BlobId) -> Result<()> {
    db::downloadable_blob(conn, me, &id.to_string())?.map(|_| ()).ok_or_else(no_blob)
}

/// Withdraws blob `id` if `me` uploaded it and no message references it yet.
pub fn withdraw(conn: &mut db::Conn, me: i64, id: &BlobId) -> Result<()> {
    if db::delete_unattached_blob(conn, me, &id.to_string())? {
        Ok(())
    } else {
        Err(ServerError::api(ErrorCode::NotFound, "no unsent attachment of yours with that id"))
    }
}

/// Who is told when `user` comes online or goes offline: the people who share a conversation
/// with them, and no one else.
pub fn presence_audience(conn: &mut db::Conn, user: i64) -> Result<Vec<i64>> {
    Ok(db::peers_of(conn, user)?)
}
