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
//! | create an account | anyone while registration is `open`; with a live invite code while it is `invite`; no one while `closed` | `registration_closed`, `invite_required`, `invite_invalid` |
//! | sign in, or start any session | users the operator has not disabled (told only after the password is right, so only they learn it) | `account_disabled` |
//! | make, list or revoke invites | relay admins (the operator's `sealroom admin grant-admin`) | `not_admin` |
//! | use a token | its session exists, is the token's user's, not revoked, not expired | `unauthorized`, `session_revoked`, `token_expired` |
//! | act on a connected socket | its session has not expired since the handshake | `token_expired` (and the socket closes) |
//! | use the session cookie from a page | the relay's own origin or a configured one | `bad_origin` |
//! | open a direct conversation with a user | anyone, with an existing user other than themselves who has not deleted their account | `unknown_recipient`, `invalid_field` |
//! | send in a direct conversation | its members, while the other has not deleted their account | `unknown_recipient` |
//! | delete an account | its user, with the password | `invalid_credentials`, `rate_limited` |
//! | send to, read, mark, clear, flag, type into a conversation | its members | `not_found` |
//! | clear a group for every member | its admins (clearing for oneself: any member) | `not_admin` |
//! | see someone type | the other members, once the conversation has a message | (not sent) |
//! | reference blobs in a message | their uploader (rechecked inside the storing transaction), at most 8 | `unknown_blob`, `invalid_field` |
//! | read one stored message | members of its conversation who have not cleared it | `not_found` |
//! | download a blob | members who can still see a message that references it; in a group, members, and past members up to where they left | `not_found` |
//! | attach blobs to a group message | their uploader (checked inside the storing transaction), at most 8 | `unknown_blob`, `invalid_field` |
//! | withdraw a blob | its uploader, while no message references it | `not_found` |
//! | find a user in the directory | anyone, by exact name; by name prefix only among the people they share a conversation with | (not listed) |
//! | block or unblock a user | anyone, any existing user but themselves | `not_found`, `invalid_field` |
//! | receive what a user sends, see them type or come online | not those who blocked them (withheld; the sender is not told) | (not sent) |
//! | publish a signing key | anyone, once (the same key again is no change) | `conflict` |
//! | register a device | anyone, with an id no one else's (and not removed) | `conflict` |
//! | act as a device (key packages, Welcomes, create, append) | its user, until it is removed | `not_found`, `device_revoked` |
//! | claim key packages | anyone, for at most 100 existing users at once, each at most 30 times an hour by the same claimer | `unknown_recipient`, `invalid_field`, `rate_limited` |
//! | read a group, its GroupInfo, its log; append an application message or an external join | its members | `not_found` |
//! | append a commit that adds users or changes the admins | the group's admins | `not_admin` |
//! | append a commit that removes a member | admins; anyone for users who left | `not_admin` |
//! | grow a group | up to 1,000 members | `group_full` |
//! | address a Welcome to a device | only active devices of the group's members after the commit | `invalid_field` |
//! | leave a group | any member but its last admin while others remain | `invalid_field` |
//! | archive a group's message (their own archive only) | its members, and past members up to the position where they left; only positions already in the log | `not_found` |
//! | read, list or delete an archive | its user only (the path names no one else's) | (not possible) |
//! | see a user's presence | the people who share a conversation with them in which both wrote and that neither closed, neither blocking the other | (not sent) |

use sealroom_protocol::{
    BlobId, ConversationId, DeviceId, ErrorCode, MessageId, Registration, UserId, Username,
};

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

/// Whether a sign-up may go ahead under `mode`, and with which invite (the hash to redeem,
/// inside the registering transaction). A code given while registration is open is ignored.
pub fn registration(mode: Registration, invite: Option<&str>) -> Result<Option<[u8; 32]>> {
    match (mode, invite.map(str::trim).filter(|c| !c.is_empty())) {
        (Registration::Open, _) => Ok(None),
        (Registration::Closed, _) => Err(ServerError::api(
            ErrorCode::RegistrationClosed,
            "this relay takes no new accounts; ask its operator",
        )),
        (Registration::Invite, None) => Err(ServerError::api(
            ErrorCode::InviteRequired,
            "this relay needs an invite code to sign up; ask its operator or an admin for one",
        )),
        (Registration::Invite, Some(code)) => crate::invites::hash_typed(code).map(Some),
    }
}

/// The invite a sign-up redeemed (`None`: none was live under that code).
pub fn redeemed(invite: Option<i64>) -> Result<i64> {
    invite.ok_or_else(|| ServerError::api(ErrorCode::InviteInvalid, crate::invites::invalid_message()))
}

/// A session may start only for a user the operator has not disabled. Asked inside the
/// transaction that records the session, so a disable racing a sign-in cannot leave one.
pub fn may_sign_in(conn: &mut store::DbConn, user: UserId) -> Result<()> {
    match store::admin::disabled(conn, user)? {
        Some(false) => Ok(()),
        Some(true) => Err(ServerError::api(
            ErrorCode::AccountDisabled,
            "this account has been disabled by the relay's operator",
        )),
        None => Err(ServerError::api(ErrorCode::InvalidCredentials, "wrong username or password")),
    }
}

/// Invites are managed by relay admins.
pub fn relay_admin(conn: &mut store::DbConn, me: UserId) -> Result<()> {
    if store::admin::is_admin(conn, me)? {
        Ok(())
    } else {
        Err(ServerError::api(ErrorCode::NotAdmin, "only the relay's admins may manage invites"))
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
pub fn conversation(conn: &mut store::DbConn, me: UserId, conversation: ConversationId) -> Result<MemberRow> {
    store::member(conn, me, conversation)?
        .ok_or_else(|| ServerError::api(ErrorCode::NotFound, "no such conversation"))
}

/// Whether member `m` may clear their conversation for every member (`for_all`): in a
/// group, only its admins; in a direct conversation, either user.
pub fn clear_for(conn: &mut store::DbConn, m: &MemberRow, for_all: bool) -> Result<()> {
    if !for_all {
        return Ok(());
    }
    let Some(group) = store::mls::group(conn, m.conversation_id)? else { return Ok(()) };
    if group.is_direct() {
        return Ok(());
    }
    let admin =
        store::mls::group_members(conn, m.conversation_id)?.iter().any(|(u, a)| *u == m.user_id && *a);
    if admin {
        Ok(())
    } else {
        Err(ServerError::api(ErrorCode::NotAdmin, "only the group's admins may clear it for everyone"))
    }
}

/// With whom `me` may open a direct conversation: any existing user but themselves.
pub fn direct_peer(conn: &mut store::DbConn, me: &AuthUser, peer: &Username) -> Result<UserRow> {
    if *peer == me.username {
        return Err(ServerError::api(
            ErrorCode::InvalidField,
            "you cannot start a conversation with yourself",
        ));
    }
    match store::user_by_name(conn, peer.as_str())? {
        Some(row) if row.auth_hash.is_empty() => {
            Err(ServerError::api(ErrorCode::UnknownRecipient, format!("{peer} deleted their account")))
        }
        Some(row) => Ok(row),
        None => Err(ServerError::api(ErrorCode::UnknownRecipient, format!("no user named {peer}"))),
    }
}

/// A new account's name: not one of the names deleted accounts are renamed to once their
/// names are free again ([`store::admin::RELEASED_PREFIX`]).
pub fn new_name(name: &Username) -> Result<()> {
    if name.as_str().starts_with(store::admin::RELEASED_PREFIX) {
        return Err(ServerError::api(
            ErrorCode::InvalidUsername,
            format!("names starting with {} are kept for deleted accounts", store::admin::RELEASED_PREFIX),
        ));
    }
    Ok(())
}

/// Who sees `me` typing in a conversation they are a member of: the other members, but only
/// once it has a message (a conversation only opened is not yet the peer's to see), and not
/// those who blocked `me`.
pub fn typing_audience(conn: &mut store::DbConn, me: &MemberRow) -> Result<Vec<UserId>> {
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
pub fn block_target(conn: &mut store::DbConn, me: &AuthUser, name: &Username) -> Result<UserRow> {
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
pub fn message(conn: &mut store::DbConn, me: UserId, id: MessageId) -> Result<MessageRow> {
    store::visible_message(conn, me, id)?
        .ok_or_else(|| ServerError::api(ErrorCode::NotFound, "no such message"))
}

fn no_blob() -> ServerError {
    ServerError::api(ErrorCode::NotFound, "no such attachment")
}

/// Blob `id` may be downloaded by `me`: a direct message that references it is still visible
/// to them, or a group message carries it in a group they are (or were, then) a member of.
pub fn download(conn: &mut store::DbConn, me: UserId, id: &BlobId) -> Result<()> {
    let id = id.to_string();
    if store::downloadable_blob(conn, me, &id)?.is_some() || store::mls::group_blob_visible(conn, me, &id)? {
        Ok(())
    } else {
        Err(no_blob())
    }
}

/// Withdraws blob `id` if `me` uploaded it and no message references it yet.
pub fn withdraw(conn: &mut store::DbConn, me: UserId, id: &BlobId) -> Result<()> {
    if store::delete_unattached_blob(conn, me, &id.to_string())? {
        Ok(())
    } else {
        Err(ServerError::api(ErrorCode::NotFound, "no unsent attachment of yours with that id"))
    }
}

/// Who is told when `user` comes online or goes offline, and whose presence and last-seen
/// `user` is shown (the same people, both ways): those with whom `user` has a conversation in
/// which both have written and which neither has closed, unless either blocked the other.
pub fn presence_audience(conn: &mut store::DbConn, user: UserId) -> Result<Vec<UserId>> {
    let blocks = store::blocks_either_way(conn, user)?;
    Ok(store::peers_of(conn, user)?.into_iter().filter(|p| !blocks.contains(p)).collect())
}

/// Whose names `me` may find by prefix in the directory: the people they already share a
/// conversation with. Anyone else is found only by their exact name, so the directory cannot be
/// listed a letter at a time.
pub fn directory_scope(conn: &mut store::DbConn, me: UserId) -> Result<Vec<UserId>> {
    Ok(store::contacts_of(conn, me)?)
}

/// One of `me`'s devices that may act: registered by `me` and not removed. Someone else's
/// device answers like an unknown one.
pub fn device(conn: &mut store::DbConn, me: UserId, id: &DeviceId) -> Result<store::mls::DeviceRow> {
    match store::mls::device(conn, &id.0)? {
        Some(d) if d.user_id == me && d.revoked_at.is_none() => Ok(d),
        Some(d) if d.user_id == me => Err(ServerError::api(
            ErrorCode::DeviceRevoked,
            "this device was removed from your devices; sign in again to make a new one",
        )),
        _ => Err(ServerError::api(ErrorCode::NotFound, "no such device of yours; register it first")),
    }
}

/// Most key-package claims one user makes for one other user per hour.
pub const CLAIMS_PER_PAIR_PER_HOUR: u32 = 30;

/// Counts a claim of `user`'s key packages by `me`: `rate_limited` past
/// [`CLAIMS_PER_PAIR_PER_HOUR`].
pub fn claim(limiter: &crate::ratelimit::RateLimiter, me: UserId, user: &Username) -> Result<()> {
    limiter.check(&format!("{}:{}", me.0, user.as_str())).map_err(ServerError::RateLimited)
}

/// Whether `me` may archive the message at `seq` of group `id` (in their own archive).
pub fn archive(conn: &mut store::DbConn, me: UserId, id: ConversationId, seq: u64) -> Result<()> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    if store::mls::may_archive(conn, me, id, seq)? {
        Ok(())
    } else {
        Err(ServerError::api(
            ErrorCode::NotFound,
            format!("no message {seq} of a group of yours in conversation {id}"),
        ))
    }
}

/// `me`'s group conversation `id` with its members: not a member, not a group, or no such
/// conversation: `not_found` alike.
pub fn group(
    conn: &mut store::DbConn,
    me: UserId,
    id: ConversationId,
) -> Result<(store::mls::GroupRow, Vec<(UserId, bool)>)> {
    let not_found = || ServerError::api(ErrorCode::NotFound, "no such group");
    let group = store::mls::group(conn, id)?.ok_or_else(not_found)?;
    let members = store::mls::group_members(conn, id)?;
    if !members.iter().any(|(u, _)| *u == me) {
        return Err(not_found());
    }
    Ok((group, members))
}

/// What a commit claims to change at the relay (its members check that it agrees with the
/// commit itself).
#[derive(Debug, Clone, Copy)]
pub struct CommitClaims<'a> {
    /// Users it adds.
    pub added: &'a [UserId],
    /// Users it removes.
    pub removed: &'a [UserId],
    /// The new admins, if they change.
    pub admins: Option<&'a [UserId]>,
    /// It is an external commit (a member's new device joining by itself).
    pub external: bool,
    /// The group is a direct conversation moved to MLS.
    pub direct: bool,
}

/// Whether `me`, a member of a group with `members` (user, admin), may make a commit that
/// claims `c`, and the members after it. A direct conversation moved to MLS keeps its two
/// users: its commits change devices only. Adding users and changing the admins are for admins;
/// so is removing a member other than oneself (a user who left is no member any more and may be
/// removed by anyone); a member leaves through [`leave`] instead of removing themself. An
/// external commit changes no membership. At most `max` members.
pub fn commit(
    me: UserId,
    members: &[(UserId, bool)],
    c: CommitClaims<'_>,
    max: usize,
) -> Result<Vec<UserId>> {
    let admin = members.iter().any(|(u, a)| *u == me && *a);
    let is_member = |u: &UserId| members.iter().any(|(m, _)| m == u);
    let invalid = |why: &str| Err(ServerError::api(ErrorCode::InvalidField, why.to_owned()));
    let not_admin = |what: &str| {
        Err(ServerError::api(ErrorCode::NotAdmin, format!("only the group's admins may {what}")))
    };
    if c.external && (!c.added.is_empty() || !c.removed.is_empty() || c.admins.is_some()) {
        return invalid("an external commit only joins a device of a member");
    }
    if c.direct {
        // Its two users are members from the start: a commit may bring in a user's first
        // devices (`added` names them), never anyone else.
        if c.added.iter().any(|u| !is_member(u)) || !c.removed.is_empty() || c.admins.is_some() {
            return invalid(
                "a direct conversation keeps its two users: it adds and removes only their devices",
            );
        }
        return Ok(members.iter().map(|(u, _)| *u).collect());
    }
    if !c.added.is_empty() && !admin {
        return not_admin("add members");
    }
    if c.added.iter().any(is_member) {
        return invalid("added: already a member");
    }
    if c.removed.contains(&me) {
        return invalid("removed: you cannot remove yourself; leave the group instead");
    }
    if c.removed.iter().any(is_member) && !admin {
        return not_admin("remove others");
    }
    if c.added.iter().any(|u| c.removed.contains(u)) {
        return invalid("a user cannot be both added and removed");
    }
    let mut after: Vec<UserId> = members
        .iter()
        .map(|(u, _)| *u)
        .filter(|u| !c.removed.contains(u))
        .chain(c.added.iter().copied())
        .collect();
    after.sort_unstable();
    after.dedup();
    if let Some(admins) = c.admins {
        if !admin {
            return not_admin("change the admins");
        }
        if admins.is_empty() || admins.iter().any(|a| !after.contains(a)) {
            return invalid("admins: at least one, each a member after the commit");
        }
    }
    if after.len() > max {
        return Err(ServerError::api(ErrorCode::GroupFull, format!("a group has at most {max} members")));
    }
    Ok(after)
}

/// Whether `me` may leave a group with `members`: anyone, except its last admin while other
/// members remain (the group would have no one to add or remove members), and nobody a direct
/// conversation.
pub fn leave(me: UserId, direct: bool, members: &[(UserId, bool)]) -> Result<()> {
    if direct {
        return Err(ServerError::api(
            ErrorCode::InvalidField,
            "a direct conversation cannot be left; close it instead",
        ));
    }
    let admins: Vec<UserId> = members.iter().filter(|(_, a)| *a).map(|(u, _)| *u).collect();
    if admins == [me] && members.len() > 1 {
        return Err(ServerError::api(
            ErrorCode::InvalidField,
            "you are the group's only admin: make another member an admin first",
        ));
    }
    Ok(())
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

/// Whether `me` may move conversation `id` to MLS: one of its two users, while it has no group.
/// Another user's conversation, a group or none at all: `not_found` alike.
pub fn move_to_mls(conn: &mut store::DbConn, me: UserId, id: ConversationId) -> Result<()> {
    let not_found = || ServerError::api(ErrorCode::NotFound, "no such direct conversation");
    store::member(conn, me, id)?.ok_or_else(not_found)?;
    if store::conversation_kind(conn, id)? != sealroom_protocol::ConversationKind::Direct {
        return Err(not_found());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);
    const D: UserId = UserId(4);

    fn claims<'a>(
        added: &'a [UserId],
        removed: &'a [UserId],
        admins: Option<&'a [UserId]>,
    ) -> CommitClaims<'a> {
        CommitClaims { added, removed, admins, external: false, direct: false }
    }

    fn code(r: Result<Vec<UserId>>) -> ErrorCode {
        match r {
            Err(ServerError::Api(e)) => e.error,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Admins add, remove others and change the admins; anyone may commit the removal of a
    /// user who left, updates and external joins; nobody removes themself or grows the group
    /// past its limit.
    #[test]
    fn who_may_commit_what() {
        let members = [(A, true), (B, false), (C, false)];
        assert_eq!(commit(A, &members, claims(&[D], &[B], None), 10).unwrap(), [A, C, D]);
        assert_eq!(code(commit(B, &members, claims(&[D], &[], None), 10)), ErrorCode::NotAdmin);
        assert_eq!(code(commit(B, &members, claims(&[], &[C], None), 10)), ErrorCode::NotAdmin);
        assert_eq!(code(commit(B, &members, claims(&[], &[], Some(&[B])), 10)), ErrorCode::NotAdmin);
        // D left already (no member): anyone commits the removal.
        assert_eq!(commit(B, &members, claims(&[], &[D], None), 10).unwrap(), [A, B, C]);
        assert_eq!(commit(B, &members, claims(&[], &[], None), 10).unwrap(), [A, B, C]);
        assert_eq!(code(commit(A, &members, claims(&[], &[A], None), 10)), ErrorCode::InvalidField);
        assert_eq!(code(commit(A, &members, claims(&[B], &[], None), 10)), ErrorCode::InvalidField);
        assert_eq!(code(commit(A, &members, claims(&[D], &[D], None), 10)), ErrorCode::InvalidField);
        assert_eq!(code(commit(A, &members, claims(&[], &[], Some(&[D])), 10)), ErrorCode::InvalidField);
        assert_eq!(code(commit(A, &members, claims(&[], &[], Some(&[])), 10)), ErrorCode::InvalidField);
        assert_eq!(commit(A, &members, claims(&[], &[], Some(&[B, C])), 10).unwrap(), [A, B, C]);
        assert_eq!(code(commit(A, &members, claims(&[D], &[], None), 3)), ErrorCode::GroupFull);
        // Removing one frees a place for another.
        assert_eq!(commit(A, &members, claims(&[D], &[C], None), 3).unwrap(), [A, B, D]);
        let external = CommitClaims { external: true, ..claims(&[], &[], None) };
        assert_eq!(commit(B, &members, external, 3).unwrap(), [A, B, C]);
        let external_add = CommitClaims { external: true, ..claims(&[D], &[], None) };
        assert_eq!(code(commit(A, &members, external_add, 10)), ErrorCode::InvalidField);
    }

    #[test]
    fn the_last_admin_stays_while_others_remain() {
        assert!(leave(B, false, &[(A, true), (B, false)]).is_ok());
        assert!(leave(A, false, &[(A, true), (B, false)]).is_err());
        assert!(leave(A, false, &[(A, true), (B, true)]).is_ok());
        assert!(leave(A, false, &[(A, true)]).is_ok());
        assert!(leave(A, true, &[(A, true), (B, true)]).is_err(), "a direct conversation is not left");
    }

    /// A direct conversation moved to MLS keeps its two users: a commit may bring in their
    /// devices (naming them as added), and nothing else.
    #[test]
    fn a_direct_conversation_changes_only_devices() {
        let members = [(A, true), (B, true)];
        let direct = |added, removed, admins| CommitClaims { direct: true, ..claims(added, removed, admins) };
        assert_eq!(commit(A, &members, direct(&[B], &[], None), 10).unwrap(), [A, B]);
        assert_eq!(commit(B, &members, direct(&[], &[], None), 10).unwrap(), [A, B]);
        assert_eq!(code(commit(A, &members, direct(&[C], &[], None), 10)), ErrorCode::InvalidField);
        assert_eq!(code(commit(A, &members, direct(&[], &[B], None), 10)), ErrorCode::InvalidField);
        assert_eq!(code(commit(A, &members, direct(&[], &[], Some(&[A])), 10)), ErrorCode::InvalidField);
    }
}
