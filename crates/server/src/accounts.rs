//! Accounts and sessions as services over the [`Relay`]: registration, login, logout, password
//! change, the key backup and the directory. The HTTP layer only turns a granted session into
//! a cookie and a body.

use sealroom_protocol::{
    ChangePasswordRequest, ErrorCode, IdentityKey, KdfParams, KeyBackupVersion, LoginRequest, Me,
    PreloginResponse, RegisterRequest, Salt, SealedBackup, SessionResponse, SigningKey,
    UpdateKeyBackupRequest, UserInfo, Username,
};

use crate::auth::{self, AuthUser};
use crate::error::{Result, ServerError};
use crate::store::StoreError;
use crate::store::{self, NewUser};
use crate::Relay;

/// A session the relay just granted: its token and the body to answer with.
#[derive(Debug)]
pub struct Granted {
    /// The JWT (also for the cookie).
    pub token: String,
    /// Seconds until it expires.
    pub ttl_secs: i64,
    /// What the client gets.
    pub body: SessionResponse,
}

/// Client-side KDF parameters the relay accepts: the same range clients enforce.
fn check_kdf(k: &KdfParams) -> Result<()> {
    let ok = (65_536..=1 << 20).contains(&k.m_kib) && (3..=16).contains(&k.t) && (1..=8).contains(&k.p);
    if ok {
        Ok(())
    } else {
        Err(ServerError::api(
            ErrorCode::KdfParamsRejected,
            "Argon2id parameters must be at least m=65536 KiB, t=3, p=1 (and at most 1 GiB, 16, 8)",
        ))
    }
}

fn limit(limiter: &crate::ratelimit::RateLimiter, key: &str) -> Result<()> {
    limiter.check(key).map_err(ServerError::RateLimited)
}

/// One password attempt against `account` from `ip`, with its place in every failure limit
/// reserved before the password is checked: the per-IP and per-IP-and-account limits refuse
/// at once; the per-account limit (attempts from anywhere) is soft — over it, the password is
/// still checked and the right one still signs in, so guessing cannot lock the owner out.
/// The places are given back when the attempt is dropped (a right password, or one never
/// checked because the store or the hash gate failed) unless it [`failed`](Self::failed).
struct Attempt<'a> {
    state: &'a Relay,
    ip: &'a str,
    pair: String,
    account: &'a str,
    /// Whether the account's soft limit had a place for this attempt.
    counted: bool,
    /// The password was wrong: the places stay taken.
    keep: bool,
}

impl<'a> Attempt<'a> {
    fn reserve(state: &'a Relay, ip: &'a str, account: &'a str) -> Result<Self> {
        limit(&state.auth_ip_limit, ip)?;
        let pair = format!("{ip} {account}");
        if let Err(secs) = state.auth_pair_limit.check(&pair) {
            state.auth_ip_limit.refund(ip);
            return Err(ServerError::RateLimited(secs));
        }
        let counted = state.auth_user_limit.check(account).is_ok();
        Ok(Attempt { state, ip, pair, account, counted, keep: false })
    }

    /// The password was wrong: the places stay taken; over the account's limit, the answer is
    /// 429 rather than 401.
    fn failed(mut self, wrong: ServerError) -> ServerError {
        self.keep = true;
        if self.counted {
            wrong
        } else {
            ServerError::RateLimited(60)
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        self.state.auth_ip_limit.refund(self.ip);
        self.state.auth_pair_limit.refund(&self.pair);
        if self.counted {
            self.state.auth_user_limit.refund(self.account);
        }
    }
}

/// A stored user as the wire's `Me`.
pub fn me_of(row: &store::UserRow) -> Result<Me> {
    let bad = |what| StoreError::Corrupt { what, row: row.id.0 };
    Ok(Me {
        id: row.id,
        username: Username::parse(&row.username).map_err(|_| bad("username"))?,
        identity_key: IdentityKey::from_slice(&row.identity_key).map_err(|_| bad("identity key"))?,
        key_backup: SealedBackup::new(row.key_backup.clone()).map_err(|_| bad("key backup"))?,
        key_backup_version: row.key_backup_version,
        created_at: row.created_at,
        admin: row.is_admin,
    })
}

async fn start_session(state: &Relay, user: store::UserRow) -> Result<Granted> {
    let ttl = state.config.token_ttl.as_secs() as i64;
    let now = state.clock.now_ms();
    let session = store::SessionRow {
        id: auth::new_session_id(),
        user_id: user.id,
        created_at: now,
        expires_at: now + ttl * 1000,
        revoked_at: None,
    };
    let single = state.config.single_session;
    let row = session.clone();
    let revoked = state
        .store
        .write(move |conn| {
            crate::policy::may_sign_in(conn, row.user_id)?;
            store::insert_session(conn, &row)?;
            if single {
                Ok(store::revoke_sessions(conn, row.user_id, Some(&row.id), now)?)
            } else {
                Ok(vec![])
            }
        })
        .await?;
    if !revoked.is_empty() {
        state.fanout.revoke_sessions(user.id, &revoked, "signed in elsewhere (single-session mode)");
    }
    let token = auth::issue_token(&state.secret, user.id, &user.username, &session.id, session.expires_at)?;
    state.metrics.login();
    Ok(Granted {
        token: token.clone(),
        ttl_secs: ttl,
        body: SessionResponse {
            token,
            session_id: session.id,
            expires_at: session.expires_at,
            user: me_of(&user)?,
        },
    })
}

/// The KDF salt and parameters for `name`; for an unknown name, a stable fake salt so the
/// answer does not reveal who exists.
pub async fn prelogin(state: &Relay, name: Username) -> Result<PreloginResponse> {
    let lookup = name.clone();
    let row = state.store.run(move |conn| Ok(store::user_by_name(conn, lookup.as_str())?)).await?;
    Ok(match row {
        Some(u) => PreloginResponse {
            salt: Salt::from_slice(&u.kdf_salt)
                .map_err(|_| StoreError::Corrupt { what: "kdf salt", row: u.id.0 })?,
            kdf: KdfParams { m_kib: u.kdf_m_kib as u32, t: u.kdf_t as u32, p: u.kdf_p as u32 },
        },
        None => PreloginResponse {
            salt: Salt(state.secret.fake_salt(name.as_str())),
            kdf: KdfParams { m_kib: 65_536, t: 3, p: 1 },
        },
    })
}

/// Creates an account and its first session. `ip` is the client's, for rate limits.
pub async fn register(state: &Relay, ip: &str, body: RegisterRequest) -> Result<Granted> {
    limit(&state.auth_ip_total, ip)?;
    limit(&state.auth_ip_limit, ip)?;
    let invite = crate::policy::registration(state.config.registration(), body.invite.as_deref())?;
    crate::policy::new_name(&body.username)?;
    check_kdf(&body.kdf)?;
    let auth_key = body.auth_key;
    let hash = state.hash(move || auth::hash_auth_key(&auth_key.0)).await??;
    let now = state.clock.now_ms();
    let user = state
        .store
        .write(move |conn| {
            let new = NewUser {
                username: body.username.as_str(),
                auth_hash: &hash,
                kdf_salt: &body.salt.0,
                kdf_m_kib: body.kdf.m_kib as i32,
                kdf_t: body.kdf.t as i32,
                kdf_p: body.kdf.p as i32,
                identity_key: &body.identity_key.0,
                key_backup: body.key_backup.as_bytes(),
                created_at: now,
            };
            // The invite's use is taken in the same transaction: a sign-up that fails after it
            // (a taken name) gives it back.
            let invite = match &invite {
                Some(hash) => Some(crate::policy::redeemed(store::admin::redeem_invite(conn, hash, now)?)?),
                None => None,
            };
            let user = store::insert_user(conn, &new).map_err(|e| {
                if store::is_unique_violation(&e) {
                    ServerError::api(ErrorCode::UsernameTaken, format!("the name {} is taken", body.username))
                } else {
                    e.into()
                }
            })?;
            Ok((user, invite))
        })
        .await?;
    let (user, invite) = user;
    tracing::info!(user = user.id.0, invite, "registered");
    start_session(state, user).await
}

/// Starts a session for the right `auth_key`. Every attempt counts against the IP and the
/// name before the password is checked ([`Attempt`]); a success gives its places back.
pub async fn login(state: &Relay, ip: &str, body: LoginRequest) -> Result<Granted> {
    limit(&state.auth_ip_total, ip)?;
    let attempt = Attempt::reserve(state, ip, body.username.as_str())?;
    let name = body.username.clone();
    let row = state.store.run(move |conn| Ok(store::user_by_name(conn, name.as_str())?)).await?;
    let stored = row.as_ref().map(|u| u.auth_hash.clone());
    let auth_key = body.auth_key;
    let ok = state.hash(move || auth::verify_auth_key(&auth_key.0, stored.as_deref())).await?;
    match row {
        Some(user) if ok => {
            drop(attempt);
            start_session(state, user).await
        }
        _ => {
            Err(attempt.failed(ServerError::api(ErrorCode::InvalidCredentials, "wrong username or password")))
        }
    }
}

/// Deletes this user's account, proven with the password ([`delete_user`] says what goes).
/// Counts against the same limits as a password change.
pub async fn delete_account(
    state: &Relay,
    ip: &str,
    user: &AuthUser,
    body: sealroom_protocol::DeleteAccountRequest,
) -> Result<()> {
    limit(&state.auth_ip_total, ip)?;
    limit(&state.password_changes, user.username.as_str())?;
    let id = user.id;
    let stored = state.store.run(move |conn| Ok(store::user_by_id(conn, id)?)).await?.map(|u| u.auth_hash);
    let attempt = Attempt::reserve(state, ip, user.username.as_str())?;
    let key = body.auth_key;
    if !state.hash(move || auth::verify_auth_key(&key.0, stored.as_deref())).await? {
        return Err(attempt.failed(ServerError::api(ErrorCode::InvalidCredentials, "the password is wrong")));
    }
    drop(attempt);
    delete_user(state, id, &user.username, "you deleted your account").await
}

/// Deletes an account and tells everyone concerned at once (the user's sockets close, the
/// members of their groups hear they left, their peers see them offline). What goes: the
/// credential, sessions, key backup, devices and their key packages, the history archive,
/// unsent uploads, their blocks and their group memberships. What stays: the user row as a
/// tombstone (name, identity key: peers' history still decrypts and names them), and every
/// message and attachment they sent, with its recipients. `sealroom admin delete` runs the
/// same storage function ([`store::admin::delete_user`]).
pub async fn delete_user(
    state: &Relay,
    id: sealroom_protocol::UserId,
    name: &Username,
    reason: &str,
) -> Result<()> {
    let now = state.clock.now_ms();
    let deleted = state.store.write(move |conn| Ok(store::admin::delete_user(conn, id, now)?)).await?;
    let Some(deleted) = deleted else { return Ok(()) };
    state.fanout.revoke_sessions(id, &deleted.sessions, reason);
    for (group, remaining) in &deleted.groups {
        let frame = crate::hub::encode(&sealroom_protocol::ServerFrame::Left {
            conversation: *group,
            user: name.clone(),
        });
        for user in remaining {
            state.fanout.send_to_user(*user, &frame, None);
        }
    }
    state.blobs.remove(deleted.blobs).await;
    tracing::info!(user = id.0, groups = deleted.groups.len(), "account deleted");
    Ok(())
}

/// Ends this session everywhere it is connected.
pub async fn logout(state: &Relay, user: &AuthUser) -> Result<()> {
    let sid = user.session_id.clone();
    let now = state.clock.now_ms();
    state.store.write(move |conn| Ok(store::revoke_session(conn, &sid, now)?)).await?;
    state.fanout.revoke_sessions(user.id, std::slice::from_ref(&user.session_id), "logged out");
    Ok(())
}

/// Ends every session of this user.
pub async fn logout_all(state: &Relay, user: &AuthUser) -> Result<()> {
    let id = user.id;
    let now = state.clock.now_ms();
    let revoked = state.store.write(move |conn| Ok(store::revoke_sessions(conn, id, None, now)?)).await?;
    state.fanout.revoke_sessions(user.id, &revoked, "logged out everywhere");
    Ok(())
}

/// This user, with the sealed key backup.
pub async fn me(state: &Relay, user: &AuthUser) -> Result<Me> {
    let id = user.id;
    let row = state.store.run(move |conn| Ok(store::user_by_id(conn, id)?)).await?;
    me_of(&row.ok_or_else(|| ServerError::api(ErrorCode::Unauthorized, "the account no longer exists"))?)
}

/// Replaces credential, KDF parameters and key backup in one transaction after checking the
/// current `auth_key`; signs out every other session.
pub async fn change_password(
    state: &Relay,
    ip: &str,
    user: &AuthUser,
    body: ChangePasswordRequest,
) -> Result<Me> {
    limit(&state.auth_ip_total, ip)?;
    limit(&state.password_changes, user.username.as_str())?;
    check_kdf(&body.new_kdf)?;
    let id = user.id;
    let row = state.store.run(move |conn| Ok(store::user_by_id(conn, id)?)).await?;
    let stored = row.map(|u| u.auth_hash);
    let current = body.auth_key;
    let new_key = body.new_auth_key;
    let attempt = Attempt::reserve(state, ip, user.username.as_str())?;
    let (ok, new_hash) = state
        .hash(move || {
            let ok = auth::verify_auth_key(&current.0, stored.as_deref());
            (ok, if ok { Some(auth::hash_auth_key(&new_key.0)) } else { None })
        })
        .await?;
    if !ok {
        return Err(
            attempt.failed(ServerError::api(ErrorCode::InvalidCredentials, "the current password is wrong"))
        );
    }
    drop(attempt);
    let Some(new_hash) = new_hash.transpose()? else {
        return Err(ServerError::api(ErrorCode::InvalidCredentials, "the current password is wrong"));
    };
    let sid = user.session_id.clone();
    let now = state.clock.now_ms();
    let (row, revoked) = state
        .store
        .write(move |conn| {
            store::atomically(conn, |conn| {
                let k = body.new_kdf;
                store::change_password(
                    conn,
                    id,
                    &new_hash,
                    &body.new_salt.0,
                    (k.m_kib as i32, k.t as i32, k.p as i32),
                    body.new_key_backup.as_bytes(),
                )?;
                let revoked = store::revoke_sessions(conn, id, Some(&sid), now)?;
                let row = store::user_by_id(conn, id)?
                    .ok_or(StoreError::Database(diesel::result::Error::NotFound))?;
                Ok::<_, StoreError>((row, revoked))
            })
            .map_err(ServerError::from)
        })
        .await?;
    state.fanout.revoke_sessions(user.id, &revoked, "password changed");
    tracing::info!(user = user.id.0, revoked = revoked.len(), "password changed");
    me_of(&row)
}

/// Stores a re-sealed key backup if `expected_version` is still current.
pub async fn update_key_backup(
    state: &Relay,
    user: &AuthUser,
    body: UpdateKeyBackupRequest,
) -> Result<KeyBackupVersion> {
    // Versions count writes from 1. A negative one, or one that cannot be followed by another
    // (it overflowed into a 500 before), is no version at all; 0 is simply never current.
    if !(0..i64::MAX).contains(&body.expected_version) {
        return Err(ServerError::api(
            ErrorCode::InvalidField,
            "expected_version must be a stored version (1 or more)",
        ));
    }
    let id = user.id;
    let version = state
        .store
        .write(move |conn| {
            Ok(store::update_key_backup(conn, id, body.key_backup.as_bytes(), body.expected_version)?)
        })
        .await?;
    match version {
        Some(v) => Ok(KeyBackupVersion { key_backup_version: v }),
        None => Err(ServerError::api(
            ErrorCode::StaleBackupVersion,
            "the key backup changed since you read it; fetch /api/me, merge, and retry",
        )),
    }
}

/// The directory: the user named exactly `prefix` (already validated), and people `me` shares
/// a conversation with whose name starts with it ([`crate::policy::directory_scope`]), at most
/// `limit`.
pub async fn search_users(state: &Relay, me: &AuthUser, prefix: String, limit: i64) -> Result<Vec<UserInfo>> {
    let me = me.id;
    let rows = state
        .store
        .run(move |conn| {
            let among = crate::policy::directory_scope(conn, me)?;
            Ok(store::search_users(conn, me, &prefix, &among, limit)?)
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, key, signing)| {
            Some(UserInfo {
                username: Username::parse(&name).ok()?,
                identity_key: IdentityKey::from_slice(&key).ok()?,
                signing_key: signing.and_then(|k| SigningKey::from_slice(&k).ok()),
                deleted: false,
            })
        })
        .collect())
}

/// One user's public identity.
pub async fn user(state: &Relay, name: Username) -> Result<UserInfo> {
    let lookup = name.clone();
    let found = state
        .store
        .run(move |conn| {
            let Some(row) = store::user_by_name(conn, lookup.as_str())? else { return Ok(None) };
            let signing = store::mls::signing_key(conn, row.id)?;
            Ok(Some((row, signing)))
        })
        .await?;
    let (row, signing) =
        found.ok_or_else(|| ServerError::api(ErrorCode::NotFound, format!("no user named {name}")))?;
    let corrupt = |what| StoreError::Corrupt { what, row: row.id.0 };
    let identity_key = IdentityKey::from_slice(&row.identity_key).map_err(|_| corrupt("identity key"))?;
    let signing_key =
        signing.map(|k| SigningKey::from_slice(&k)).transpose().map_err(|_| corrupt("signing key"))?;
    Ok(UserInfo { username: name, identity_key, signing_key, deleted: row.auth_hash.is_empty() })
}
