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
//! | open a direct conversation with a user | anyone, with an existing user other than themselves | `unknown_recipient`, `invalid_field` |
//! | send to, read, mark, clear, flag, type into a conversation | its members | `not_found` |
//! | see someone type | the other members, once the conversation has a message | (not sent) |
//! | reference blobs in a message | their uploader (rechecked inside the storing transaction), at most 8 | `unknown_blob`, `invalid_field` |
//! | read one stored message | members of its conversation who have not cleared it | `not_found` |
//! | download a blob | members who can still see a message that references it | `not_found` |
//! | withdraw a blob | its uploader, while no message references it | `not_found` |
//! | find a user in the directory | anyone, by exact name; by name prefix only among the people they share a conversation with | (not listed) |
//! | block or unblock a user | anyone, any existing user but themselves | `not_found`, `invalid_field` |
//! | receive what a user sends, see them type or come online | not those who blocked them (withheld; the sender is not told) | (not sent) |
//! | see a user's presence | the people who share a conversation with them in which both wrote and that neither closed, neither blocking the other | (not sent) |

use sealroom_protocol::{BlobId, ConversationId, ErrorCode, MessageId, UserId, Username};

use crate::auth::{AuthUser, Claims};
use crate::error::{Result, ServerError};
use crate::store::{self, MemberRow, MessageRow, SessionRow, UserRow};

/// The live session a decoded token names.
pub fn session(claims: Claims, row: Option<SessionRow>, now: i64) -> Result<AuthUser> {
    match row {
        Some(s) if s.revoked_at.is_none() && claims.sub == s.user_id.0.to_string() && s.expires_at > now => {
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

/// `me`'s membership in `conversation`, which sending, reading, markers, clearing, flags and
/// typing all need. Not a member, or no such conversation: `not_found` alike.
pub fn conversation(
    conn: &mut store::SqliteConnection,
    me: UserId,
    conversation: ConversationId,
) -> Result<MemberRow> {
    store::member(conn, me, conversation)?
        .ok_or_else(|| ServerError::api(ErrorCode::NotFound, "no such conversation"))
}

/// With whom `me` may open a direct conversation: any existing user but themselves.
pub fn direct_peer(conn: &mut store::SqliteConnection, me: &AuthUser, peer: &Username) -> Result<UserRow> {
    if *peer == me.username {
        return Err(ServerError::api(
            ErrorCode::InvalidField,
            "you cannot start a conversation with yourself",
        ));
    }
    store::user_by_name(conn, peer.as_str())?
        .ok_or_else(|| ServerError::api(ErrorCode::UnknownRecipient, format!("no user named {peer}")))
}

/// Who sees `me` typing in a conversation they are a member of: the other members, but only
/// once it has a message (a conversation only opened is not yet the peer's to see), and not
/// those who blocked `me`.
pub fn typing_audience(conn: &mut store::SqliteConnection, me: &MemberRow) -> Result<Vec<UserId>> {
    if !store::written_to(conn, me.conversation_id)? {
        return Ok(vec![]);
    }
    let blockers = store::blockers_of(conn, me.user_id)?;
    Ok(store::other_members(conn, me.conversation_id, me.user_id)?
        .into_iter()
        .map(|m| m.user_id)
        .filter(|u| !blockers.contains(u))
        .collect())
}

/// Whom `me` may block or unblock: any existing user but themselves.
pub fn block_target(conn: &mut store::SqliteConnection, me: &AuthUser, name: &Username) -> Result<UserRow> {
    if *name == me.username {
        return Err(ServerError::api(ErrorCode::InvalidField, "you cannot block yourself"));
    }
    store::user_by_name(conn, name.as_str())?
        .ok_or_else(|| ServerError::api(ErrorCode::NotFound, format!("no user named {name}")))
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
pub fn message(conn: &mut store::SqliteConnection, me: UserId, id: MessageId) -> Result<MessageRow> {
    store::visible_message(conn, me, id)?
        .ok_or_else(|| ServerError::api(ErrorCode::NotFound, "no such message"))
}

fn no_blob() -> ServerError {
    ServerError::api(ErrorCode::NotFound, "no such attachment")
}

/// Blob `id` may be downloaded by `me`: a message that references it is still visible to them.
pub fn download(conn: &mut store::SqliteConnection, me: UserId, id: &BlobId) -> Result<()> {
    store::downloadable_blob(conn, me, &id.to_string())?.map(|_| ()).ok_or_else(no_blob)
}

/// Withdraws blob `id` if `me` uploaded it and no message references it yet.
pub fn withdraw(conn: &mut store::SqliteConnection, me: UserId, id: &BlobId) -> Result<()> {
    if store::delete_unattached_blob(conn, me, &id.to_string())? {
        Ok(())
    } else {
        Err(ServerError::api(ErrorCode::NotFound, "no unsent attachment of yours with that id"))
    }
}

/// Who is told when `user` comes online or goes offline, and whose presence and last-seen
/// `user` is shown (the same people, both ways): those with whom `user` has a conversation in
/// which both have written and which neither has closed, unless either blocked the other.
pub fn presence_audience(conn: &mut store::SqliteConnection, user: UserId) -> Result<Vec<UserId>> {
    let blocks = store::blocks_either_way(conn, user)?;
    Ok(store::peers_of(conn, user)?.into_iter().filter(|p| !blocks.contains(p)).collect())
}

/// Whose names `me` may find by prefix in the directory: the people they already share a
/// conversation with. Anyone else is found only by their exact name, so the directory cannot be
/// listed a letter at a time.
pub fn directory_scope(conn: &mut store::SqliteConnection, me: UserId) -> Result<Vec<UserId>> {
    Ok(store::contacts_of(conn, me)?)
}

/// Who may read `/metrics`: with a configured token, a request bearing it (compared in
/// constant time); without one, only the relay's own machine (a loopback peer). Counters of
/// logins, connections and errors are not for the whole internet.
pub fn metrics(
    token: Option<&str>,
    authorization: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Result<()> {
    let allowed = match token {
        Some(expected) => authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|given| subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()),
        // `peer` is the client's address as `proxy::TrustedProxies::client_ip` gives it, with
        // IPv4-mapped addresses already as IPv4.
        None => peer.is_some_and(|ip| ip.is_loopback()),
    };
    if allowed {
        Ok(())
    } else {
        Err(ServerError::api(
            ErrorCode::Unauthorized,
            "metrics need the --metrics-token as a Bearer token (or a request from this machine)",
        ))
    }
}
