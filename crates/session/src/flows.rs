//! The client flows that take round trips to the relay, written once over a [`Transport`].
//!
//! Each one borrows the vault only between awaits (through a [`VaultCell`]), so the browser can
//! keep handling frames while a flow waits on the network.

use sealroom_crypto::{seal_backup, BackupContents, IdentitySecret, KdfParams, MessageHeader, Payload};
use sealroom_protocol::endpoint::{
    ChangePassword, DeleteAccount, GetMe, GetUser, Login, OpenDirect, Prelogin, PutKeyBackup, Register,
};
use sealroom_protocol::{
    AuthKeyBytes, ChangePasswordRequest, ClientMsgId, ConversationId, ConversationSummary,
    DeleteAccountRequest, Endpoint, Envelope, ErrorCode, IdentityKey, LoginRequest, Me, MessageOut,
    OpenDirectRequest, PreloginRequest, RegisterRequest, Salt, SealedBackup, SessionResponse, Username,
};

use crate::{check_new_password, Error, Opened, PeerKey, Transport, Vault, VaultCell};

/// How many times a stale backup write is merged and retried before giving up.
const BACKUP_RETRIES: usize = 5;

fn wire_kdf(p: KdfParams) -> sealroom_protocol::KdfParams {
    sealroom_protocol::KdfParams { m_kib: p.m_kib, t: p.t, p: p.p }
}

fn crypto_kdf(p: &sealroom_protocol::KdfParams) -> KdfParams {
    KdfParams { m_kib: p.m_kib, t: p.t, p: p.p }
}

/// Creates an account: a new identity and password keys made here, the backup sealed here; the
/// relay receives only `auth_key`, public keys and the sealed backup.
pub async fn register<T: Transport>(
    t: &T,
    username: &Username,
    password: &str,
    invite: Option<&str>,
) -> Result<(SessionResponse, Vault), T::Error> {
    check_new_password(password, username.as_str())?;
    let salt = sealroom_crypto::generate_salt().map_err(Error::from)?;
    let keys = t.derive_keys(password, &salt, KdfParams::PRODUCTION).await?;
    let identity = IdentitySecret::generate().map_err(Error::from)?;
    let public = identity.public_key();
    let contents = BackupContents::new(identity);
    let sealed = seal_backup(&keys.backup_key, username.as_str(), &contents).map_err(Error::from)?;
    let req = RegisterRequest {
        username: username.clone(),
        auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()),
        salt: Salt(salt),
        kdf: wire_kdf(KdfParams::PRODUCTION),
        identity_key: IdentityKey(*public.as_bytes()),
        key_backup: SealedBackup::new(sealed).map_err(Error::from)?,
        invite: invite.map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned),
    };
    let resp = t.call::<Register>(&Register::path(&[]), Some(&req)).await?;
    let mut vault = unlock(t, &resp.user, keys.backup_key)?;
    vault.backup_stored(resp.user.key_backup_version);
    Ok((resp, vault))
}

/// [`Vault::unlock`] against the newest backup generation this device has seen, which it then
/// remembers: every way into an account (register, login, resume) goes through here.
fn unlock<T: Transport>(t: &T, me: &Me, backup_key: sealroom_crypto::BackupKey) -> Result<Vault, Error> {
    let username = me.username.as_str();
    let vault = Vault::unlock(me, backup_key, t.seen_generation(username))?;
    t.saw_generation(username, vault.generation());
    Ok(vault)
}

/// The password keys for `username` under the salt and parameters the relay holds.
async fn keys_for<T: Transport>(
    t: &T,
    username: &Username,
    password: &str,
) -> Result<sealroom_crypto::PasswordKeys, T::Error> {
    let pre = t
        .call::<Prelogin>(&Prelogin::path(&[]), Some(&PreloginRequest { username: username.clone() }))
        .await?;
    t.derive_keys(password, &pre.salt.0, crypto_kdf(&pre.kdf)).await
}

/// Deletes the signed-in account: the password is proven to the relay as when signing in
/// (its credential, derived here), never sent.
pub async fn delete_account<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    password: &str,
) -> Result<(), T::Error> {
    let username = vault.with(|v| v.username().clone()).ok_or(Error::SignedOut)?;
    let keys = keys_for(t, &username, password).await?;
    let req = DeleteAccountRequest { auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()) };
    t.call::<DeleteAccount>(&DeleteAccount::path(&[]), Some(&req)).await
}

/// Signs in on any device: derives the keys, logs in, unseals the backup and checks that its
/// identity is the one the relay publishes.
pub async fn login<T: Transport>(
    t: &T,
    username: &Username,
    password: &str,
) -> Result<(SessionResponse, Vault), T::Error> {
    let keys = keys_for(t, username, password).await?;
    let req = LoginRequest { username: username.clone(), auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()) };
    let resp = t.call::<Login>(&Login::path(&[]), Some(&req)).await?;
    let vault = unlock(t, &resp.user, keys.backup_key)?;
    Ok((resp, vault))
}

/// Reopens a remembered device with its saved backup key while its session is valid: the same
/// unlock and identity check as [`login`]. `None` when the session belongs to someone else.
pub async fn resume<T: Transport>(
    t: &T,
    username: &str,
    backup_key: sealroom_crypto::BackupKey,
) -> Result<Option<Vault>, T::Error> {
    Ok(reopen(t, username, backup_key).await?.map(|(_, vault)| vault))
}

/// Reopens a saved session on a device that keeps its token but not its keys (the CLI): the
/// password gives the keys again, so the relay makes no new session and hashes no password;
/// the backup is unsealed and checked as at [`login`]. `None` when the session belongs to
/// someone else. A wrong password fails to unseal ([`Error::Crypto`]).
pub async fn resume_with_password<T: Transport>(
    t: &T,
    username: &Username,
    password: &str,
) -> Result<Option<(Me, Vault)>, T::Error> {
    let keys = keys_for(t, username, password).await?;
    reopen(t, username.as_str(), keys.backup_key).await
}

async fn reopen<T: Transport>(
    t: &T,
    username: &str,
    backup_key: sealroom_crypto::BackupKey,
) -> Result<Option<(Me, Vault)>, T::Error> {
    let me = t.call::<GetMe>(&GetMe::path(&[]), None).await?;
    if me.username.as_str() != username {
        return Ok(None);
    }
    let vault = unlock(t, &me, backup_key)?;
    Ok(Some((me, vault)))
}

/// Changes the password: new salt and keys, the backup re-sealed under the new key; the relay
/// swaps credential and backup in one transaction and signs out every other session.
pub async fn change_password<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    current: &str,
    new: &str,
) -> Result<Me, T::Error> {
    let username = vault.with(|v| v.username().clone()).ok_or(Error::SignedOut)?;
    check_new_password(new, username.as_str())?;
    let old = keys_for(t, &username, current).await?;
    let salt = sealroom_crypto::generate_salt().map_err(Error::from)?;
    let keys = t.derive_keys(new, &salt, KdfParams::PRODUCTION).await?;
    let (sealed, generation) = vault
        .with(|v| {
            v.contents_mut().generation += 1;
            (seal_backup(&keys.backup_key, username.as_str(), v.contents()), v.generation())
        })
        .ok_or(Error::SignedOut)?;
    let sealed = sealed.map_err(Error::from)?;
    let req = ChangePasswordRequest {
        auth_key: AuthKeyBytes(*old.auth_key.as_bytes()),
        new_auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()),
        new_salt: Salt(salt),
        new_kdf: wire_kdf(KdfParams::PRODUCTION),
        new_key_backup: SealedBackup::new(sealed).map_err(Error::from)?,
    };
    let me = t.call::<ChangePassword>(&ChangePassword::path(&[]), Some(&req)).await?;
    let version = me.key_backup_version;
    vault.with(move |v| v.rekey(keys.backup_key, version)).ok_or(Error::SignedOut)?;
    t.saw_generation(username.as_str(), generation);
    Ok(me)
}

/// Stores the vault's backup, guarded by its version. When another client stored one first,
/// fetches theirs, merges and retries.
pub async fn save_backup<T: Transport, V: VaultCell>(t: &T, vault: &V) -> Result<(), T::Error> {
    for _ in 0..BACKUP_RETRIES {
        let req = vault.with(|v| v.backup_update()).ok_or(Error::SignedOut)??;
        match t.call::<PutKeyBackup>(&PutKeyBackup::path(&[]), Some(&req)).await {
            Ok(stored) => {
                let saved = vault.with(|v| {
                    v.backup_stored(stored.key_backup_version);
                    (v.username().clone(), v.generation())
                });
                if let Some((username, generation)) = saved {
                    t.saw_generation(username.as_str(), generation);
                }
                return Ok(());
            }
            Err(e) if T::api_error(&e).is_some_and(|a| a.error == ErrorCode::StaleBackupVersion) => {
                let fresh = t.call::<GetMe>(&GetMe::path(&[]), None).await?;
                vault.with(|v| v.backup_conflict(&fresh)).ok_or(Error::SignedOut)??;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::BackupContention.into())
}

/// Checks `directory`, the relay's key for `peer`, against the pin (saving the backup when it
/// pins a key on first use). A changed key is recorded in the vault and returned, not an error:
/// the caller shows it; sealing to `peer` stays refused until it is accepted.
pub async fn learn_peer_key<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    peer: &Username,
    directory: &IdentityKey,
) -> Result<PeerKey, T::Error> {
    let checked = vault.with(|v| v.check_peer_key(peer, directory)).ok_or(Error::SignedOut)??;
    if matches!(checked, PeerKey::FirstUse(_)) {
        save_backup(t, vault).await?;
    }
    Ok(checked)
}

/// Fetches `peer`'s key from the directory and checks it ([`learn_peer_key`]).
pub async fn peer_key<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    peer: &Username,
) -> Result<PeerKey, T::Error> {
    let info = t.call::<GetUser>(&GetUser::path(&[peer]), None).await?;
    learn_peer_key(t, vault, peer, &info.identity_key).await
}

/// Accepts `peer`'s changed key (after the user compared safety numbers) and saves the backup.
pub async fn accept_new_key<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    peer: &Username,
) -> Result<(), T::Error> {
    if vault.with(|v| v.accept_new_key(peer)).ok_or(Error::SignedOut)? {
        save_backup(t, vault).await?;
    }
    Ok(())
}

/// Marks `peer`'s pinned key verified and saves the backup.
pub async fn mark_verified<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    peer: &Username,
) -> Result<bool, T::Error> {
    let marked = vault.with(|v| v.mark_verified(peer)).ok_or(Error::SignedOut)?;
    if marked {
        save_backup(t, vault).await?;
    }
    Ok(marked)
}

/// Seals `payload` to `peer`, checking their key with the directory first when none is pinned.
/// Refused with [`Error::KeyChanged`] while their key has changed.
pub async fn seal<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    peer: &Username,
    header: &MessageHeader,
    payload: &Payload,
) -> Result<(ClientMsgId, Envelope), T::Error> {
    if vault.with(|v| !v.pins().contains_key(peer.as_str())).ok_or(Error::SignedOut)? {
        peer_key(t, vault, peer).await?;
    }
    Ok(vault.with(|v| v.seal(peer, header, payload)).ok_or(Error::SignedOut)??)
}

/// Opens a stored message, checking the peer's key with the directory first when none is pinned.
pub async fn open<T: Transport, V: VaultCell>(t: &T, vault: &V, m: &MessageOut) -> Result<Opened, T::Error> {
    if let Some(peer) = vault.with(|v| v.needs_key_for(m)).ok_or(Error::SignedOut)? {
        peer_key(t, vault, &peer).await?;
    }
    let opened = vault.with(|v| v.open(m)).ok_or(Error::SignedOut)??;
    if let (Payload::Upgrade { signing_key, .. }, false) = (&opened.payload, opened.mine) {
        if vault.with(|v| v.pin_introduced_key(&opened.peer, *signing_key)).ok_or(Error::SignedOut)?? {
            save_backup(t, vault).await?;
        }
    }
    Ok(opened)
}

/// The direct conversation with `peer`: from the vault's directory when known, else found or
/// created on the relay (which shows a new one to the peer only from its first message) and
/// learnt.
pub async fn open_direct<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    peer: &Username,
) -> Result<ConversationId, T::Error> {
    if let Some(id) = vault.with(|v| v.directory().id(peer)).ok_or(Error::SignedOut)? {
        return Ok(id);
    }
    let summary: ConversationSummary =
        t.call::<OpenDirect>(OpenDirect::PATH, Some(&OpenDirectRequest { peer: peer.clone() })).await?;
    vault.with(|v| v.directory_mut().learn(&summary)).ok_or(Error::SignedOut)?;
    Ok(summary.id)
}
