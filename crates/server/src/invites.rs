//! Invite codes, for `--registration invite`: made by `sealroom admin invites create` or by a
//! relay admin in the web client, each good for some sign-ups until it expires.
//!
//! A code is 80 random bits written as 16 characters of Crockford's base32 in groups of four
//! (`7KQ2-M9XD-4HTR-WB6N`). People type them, so case, spaces and dashes do not matter and the
//! look-alikes I, L and O read as 1, 1 and 0. The relay stores only a SHA-256 of the normalized
//! code: whoever reads the database cannot sign up with it.

use rand_core::{OsRng, RngCore};
use sealroom_protocol::{
    CreateInviteRequest, CreatedInvite, ErrorCode, InviteInfo, InviteList, InviteState, Username,
};
use sha2::{Digest, Sha256};

use crate::error::{Result, ServerError};
use crate::store::admin::{self as stored, InviteRow, NewInvite};
use crate::store::Store;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_CHARS: usize = 16;

/// Most sign-ups one code may allow.
pub const MAX_USES: u32 = 10_000;
/// Longest lifetime of a code: a year.
pub const MAX_LIFETIME_SECS: u64 = 366 * 24 * 3600;
/// Longest note, in characters.
pub const MAX_NOTE: usize = 200;

/// A fresh code, grouped for reading.
pub fn new_code() -> String {
    let mut bytes = [0u8; 10];
    OsRng.fill_bytes(&mut bytes);
    let bits = bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let chars: Vec<char> = (0..CODE_CHARS)
        .map(|i| ALPHABET[((bits >> (5 * (CODE_CHARS - 1 - i))) & 31) as usize] as char)
        .collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The code as typed, reduced to its 16 characters; `None` when it cannot be a code.
pub fn normalize(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let mut out = String::with_capacity(CODE_CHARS);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' | '\t' => continue,
            'I' | 'L' => '1',
            'O' => '0',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == CODE_CHARS).then_some(out)
}

/// What the relay stores of a code.
pub fn hash(normalized: &str) -> [u8; 32] {
    Sha256::digest(normalized.as_bytes()).into()
}

/// The code a sign-up gave, as the hash to redeem; `invite_invalid` when it cannot be a code.
pub fn hash_typed(typed: &str) -> Result<[u8; 32]> {
    normalize(typed)
        .map(|code| hash(&code))
        .ok_or_else(|| ServerError::api(ErrorCode::InviteInvalid, invalid_message()))
}

/// What a sign-up with a wrong, used, expired or revoked code is told (the same for all: the
/// code's state is the admins' business).
pub fn invalid_message() -> &'static str {
    "this invite code is not valid: it may be mistyped, used up, expired or revoked"
}

/// An invite as admins see it, at `now`.
pub fn info(row: &InviteRow, created_by: Option<&str>, now: i64) -> InviteInfo {
    let state = if row.revoked_at.is_some() {
        InviteState::Revoked
    } else if row.uses >= row.max_uses {
        InviteState::UsedUp
    } else if row.expires_at.is_some_and(|at| at <= now) {
        InviteState::Expired
    } else {
        InviteState::Active
    };
    InviteInfo {
        id: row.id,
        note: row.note.clone(),
        max_uses: row.max_uses.clamp(0, i64::from(u32::MAX)) as u32,
        uses: row.uses.clamp(0, i64::from(u32::MAX)) as u32,
        created_at: row.created_at,
        expires_at: row.expires_at,
        created_by: created_by.and_then(|n| Username::parse(n).ok()),
        state,
    }
}

/// Makes an invite (by `created_by`, or the admin CLI when `None`).
pub async fn create(
    store: &Store,
    now: i64,
    created_by: Option<sealroom_protocol::UserId>,
    req: CreateInviteRequest,
) -> Result<CreatedInvite> {
    let bad = |m: String| ServerError::api(ErrorCode::InvalidField, m);
    if req.max_uses == 0 || req.max_uses > MAX_USES {
        return Err(bad(format!("max_uses must be 1 to {MAX_USES}")));
    }
    if req.expires_in_secs.is_some_and(|s| s == 0 || s > MAX_LIFETIME_SECS) {
        return Err(bad("expires_in_secs must be 1 second to a year".into()));
    }
    let note = req.note.trim().to_owned();
    if note.chars().count() > MAX_NOTE || note.chars().any(char::is_control) {
        return Err(bad(format!("the note must be at most {MAX_NOTE} characters, on one line")));
    }
    let code = new_code();
    let code_hash = hash(&normalize(&code).expect("a new code is a code"));
    let expires_at = req.expires_in_secs.map(|s| now + (s as i64) * 1000);
    let (row, creator) = store
        .write(move |conn| {
            let row = stored::insert_invite(
                conn,
                &NewInvite {
                    code_hash: &code_hash,
                    note: &note,
                    max_uses: i64::from(req.max_uses),
                    created_at: now,
                    expires_at,
                    created_by: created_by.map(|u| u.0),
                },
            )?;
            let creator = match created_by {
                Some(u) => crate::store::username(conn, u)?,
                None => None,
            };
            Ok((row, creator))
        })
        .await?;
    tracing::info!(invite = row.id, uses = row.max_uses, by = ?created_by.map(|u| u.0), "invite created");
    Ok(CreatedInvite { code, invite: info(&row, creator.as_deref(), now) })
}

/// Every invite, newest first.
pub async fn list(store: &Store, now: i64) -> Result<InviteList> {
    let rows = store.run(|conn| Ok(stored::invites(conn)?)).await?;
    Ok(InviteList { invites: rows.iter().map(|(row, by)| info(row, by.as_deref(), now)).collect() })
}

/// Revokes invite `id`: `not_found` when there is no such invite; revoking twice is no error.
pub async fn revoke(store: &Store, id: i64, now: i64) -> Result<InviteInfo> {
    let found = store
        .write(move |conn| {
            stored::revoke_invite(conn, id, now)?;
            Ok(stored::invite(conn, id)?)
        })
        .await?;
    let (row, by) = found.ok_or_else(|| ServerError::api(ErrorCode::NotFound, format!("no invite {id}")))?;
    tracing::info!(invite = id, "invite revoked");
    Ok(info(&row, by.as_deref(), now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_however_they_are_typed() {
        let code = new_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.matches('-').count(), 3);
        let n = normalize(&code).unwrap();
        assert_eq!(n, code.replace('-', ""));
        assert_eq!(normalize(&code.to_lowercase()).as_deref(), Some(n.as_str()));
        assert_eq!(normalize(&format!(" {} ", code.replace('-', " "))).as_deref(), Some(n.as_str()));
        assert_eq!(normalize("7kq2-m9xd-4htr-wb6n").as_deref(), Some("7KQ2M9XD4HTRWB6N"));
        // Look-alikes read as the digits they resemble.
        assert_eq!(normalize("OIL0-0000-0000-0000").as_deref(), Some("0110000000000000"));
        // Too short, too long, a letter base32 lacks, anything else.
        assert_eq!(normalize("7KQ2-M9XD-4HTR-WB6"), None);
        assert_eq!(normalize("7KQ2-M9XD-4HTR-WB6NN"), None);
        assert_eq!(normalize("7KQ2-M9XD-4HTR-WB6U"), None);
        assert_eq!(normalize("7KQ2-M9XD-4HTR-WB6é"), None);
        assert_eq!(normalize(&"A".repeat(100)), None);
        // Codes differ.
        assert_ne!(new_code(), new_code());
        assert_ne!(hash("0000000000000000"), hash("0000000000000001"));
    }

    #[test]
    fn an_invites_state_follows_revocation_uses_and_expiry_in_that_order() {
        let row = InviteRow {
            id: 1,
            note: String::new(),
            max_uses: 2,
            uses: 1,
            created_at: 0,
            expires_at: Some(100),
            created_by: None,
            revoked_at: None,
        };
        assert_eq!(info(&row, None, 99).state, InviteState::Active);
        assert_eq!(info(&row, None, 100).state, InviteState::Expired);
        assert_eq!(info(&InviteRow { uses: 2, ..row.clone() }, None, 100).state, InviteState::UsedUp);
        assert_eq!(
            info(&InviteRow { revoked_at: Some(5), uses: 2, ..row.clone() }, None, 1).state,
            InviteState::Revoked
        );
        assert_eq!(
            info(&InviteRow { expires_at: None, ..row }, Some("alice"), i64::MAX).state,
            InviteState::Active
        );
    }
}
