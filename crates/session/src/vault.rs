//! The vault: one user's keys in memory, their pinned contacts, and every decision about
//! whose key may seal or open a message.

use std::collections::{BTreeMap, HashMap};

use sealroom_crypto::{
    open_message, seal_backup, seal_message, unseal_backup, BackupContents, BackupKey, MessageHeader,
    PairKey, Payload, Pin, PublicKey, SafetyNumber,
};
use sealroom_protocol::{
    ClientMsgId, ConversationId, Envelope, IdentityKey, Me, MessageId, MessageOut, SealedBackup,
    UpdateKeyBackupRequest, Username,
};

use crate::Error;

/// What the directory's key for a peer means, against the pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerKey {
    /// No pin existed: the key is now pinned (unverified) and the backup must be saved.
    FirstUse(PublicKey),
    /// The directory agrees with the pin.
    Pinned(PublicKey),
    /// The directory's key differs from the pin. Nothing is sealed to this peer until the user
    /// compares the new safety number and accepts it ([`Vault::accept_new_key`]).
    Changed(KeyChange),
}

/// A peer whose key differs from the one pinned for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The peer.
    pub peer: Username,
    /// The pinned key; `None` when the backup has no pin for a peer this user has written to
    /// (the pin was lost: a rolled-back backup).
    pub pinned: Option<PublicKey>,
    /// The key the directory now hands out.
    pub new_key: PublicKey,
    /// Safety number with the pinned key, if there is one.
    pub old_safety_number: Option<String>,
    /// Safety number with the new key.
    pub new_safety_number: String,
}

/// A message this user may see, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Server id.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation: ConversationId,
    /// When the relay stored it (Unix ms).
    pub ts: i64,
    /// Sender.
    pub from: Username,
    /// Recipient.
    pub to: Username,
    /// The other participant.
    pub peer: Username,
    /// Sent by this user.
    pub mine: bool,
    /// The sender's clock (Unix ms), authenticated.
    pub sent_at_ms: u64,
    /// What it says.
    pub payload: Payload,
}

/// One user's keys and pins. Holds secrets: no `Debug` beyond the username, no `Clone`.
pub struct Vault {
    username: Username,
    backup_key: BackupKey,
    contents: BackupContents,
    backup_version: i64,
    pairs: HashMap<Username, (PublicKey, PairKey)>,
    changes: BTreeMap<Username, KeyChange>,
    misaddressed: std::collections::BTreeSet<MessageId>,
    directory: crate::Directory,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("username", &self.username)
            .field("pins", &self.contents.pins.len())
            .field("pending_key_changes", &self.changes.len())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// A vault for a new account.
    pub(crate) fn new(username: Username, backup_key: BackupKey, contents: BackupContents) -> Self {
        Vault {
            username,
            backup_key,
            contents,
            backup_version: 1,
            pairs: HashMap::new(),
            changes: BTreeMap::new(),
            misaddressed: std::collections::BTreeSet::new(),
            directory: crate::Directory::default(),
        }
    }

    /// Opens the sealed backup the relay returned for `me` with `backup_key`, and checks that
    /// the identity inside is the one the relay publishes for this user: a relay that hands out
    /// another key for us would otherwise make our peers encrypt to it.
    ///
    /// `seen` is the newest backup generation this device has opened or written for this user:
    /// an older one is a rollback and is refused.
    pub fn unlock(me: &Me, backup_key: BackupKey, seen: Option<u64>) -> Result<Self, Error> {
        let contents = unseal_backup(&backup_key, me.username.as_str(), me.key_backup.as_bytes())
            .map_err(|_| Error::BackupUnreadable)?;
        if contents.identity.public_key().as_bytes() != &me.identity_key.0 {
            return Err(Error::IdentityMismatch);
        }
        if let Some(seen) = seen.filter(|seen| contents.generation < *seen) {
            return Err(Error::BackupRolledBack { seen, got: contents.generation });
        }
        let mut vault = Vault::new(me.username.clone(), backup_key, contents);
        vault.backup_version = me.key_backup_version;
        Ok(vault)
    }

    /// The generation of the backup as last opened or stored.
    pub fn generation(&self) -> u64 {
        self.contents.generation
    }

    /// This user.
    pub fn username(&self) -> &Username {
        &self.username
    }

    /// This user's identity public key.
    pub fn identity_key(&self) -> PublicKey {
        self.contents.identity.public_key()
    }

    /// The key that seals the backup (for "remember this browser").
    pub fn backup_key(&self) -> &BackupKey {
        &self.backup_key
    }

    /// The backup contents (sealing a new backup on a password change).
    pub(crate) fn contents(&self) -> &BackupContents {
        &self.contents
    }

    pub(crate) fn contents_mut(&mut self) -> &mut BackupContents {
        &mut self.contents
    }

    /// The backup's version as last stored.
    pub fn backup_version(&self) -> i64 {
        self.backup_version
    }

    /// The pinned keys, by username.
    pub fn pins(&self) -> &BTreeMap<String, Pin> {
        &self.contents.pins
    }

    /// Whether `peer`'s pinned key is marked verified.
    pub fn is_verified(&self, peer: &str) -> bool {
        self.contents.pins.get(peer).is_some_and(|p| p.verified)
    }

    /// The safety number with `peer`'s pinned key.
    pub fn safety_number(&self, peer: &Username) -> Option<SafetyNumber> {
        let pin = self.contents.pins.get(peer.as_str())?;
        self.safety_number_with(peer, &pin.public_key).ok()
    }

    fn safety_number_with(&self, peer: &Username, key: &PublicKey) -> Result<SafetyNumber, Error> {
        Ok(SafetyNumber::compute(self.username.as_str(), &self.identity_key(), peer.as_str(), key)?)
    }

    /// Checks the directory's key for `peer` against the pin: pins it on first use, records a
    /// change (which blocks sealing to `peer`) when it differs. The caller saves the backup
    /// after [`PeerKey::FirstUse`].
    pub fn check_peer_key(&mut self, peer: &Username, directory: &IdentityKey) -> Result<PeerKey, Error> {
        let key = PublicKey::from(directory.0);
        match self.contents.pins.get(peer.as_str()).copied() {
            Some(pin) if pin.public_key == key => {
                self.changes.remove(peer);
                Ok(PeerKey::Pinned(key))
            }
            Some(pin) => self.key_changed(peer, Some(pin.public_key), key),
            // Sealing needs a pin, so messages this user wrote to `peer` mean a pin existed:
            // its absence is a lost pin (an older backup served), not a first use.
            None if self.directory.wrote_to(peer) => self.key_changed(peer, None, key),
            None => {
                self.contents.pins.insert(
                    peer.to_string(),
                    Pin { public_key: key, signing_key: None, verified: false, other_flags: 0 },
                );
                Ok(PeerKey::FirstUse(key))
            }
        }
    }

    fn key_changed(
        &mut self,
        peer: &Username,
        pinned: Option<PublicKey>,
        key: PublicKey,
    ) -> Result<PeerKey, Error> {
        let change = KeyChange {
            peer: peer.clone(),
            pinned,
            new_key: key,
            old_safety_number: match pinned {
                Some(old) => Some(self.safety_number_with(peer, &old)?.to_string()),
                None => None,
            },
            new_safety_number: self.safety_number_with(peer, &key)?.to_string(),
        };
        self.changes.insert(peer.clone(), change.clone());
        Ok(PeerKey::Changed(change))
    }

    /// This user's version 2 keys: the identity signing key (it signs the certificates of the
    /// user's devices) and the history archive key, each made now if the backup has none;
    /// `true` when one was made, and the caller saves the backup before using it anywhere.
    pub fn ensure_signing_key(&mut self) -> Result<bool, Error> {
        let mut made = false;
        if self.contents.signing.is_none() {
            self.contents.signing = Some(sealroom_crypto::SigningSecret::generate()?);
            made = true;
        }
        if self.contents.archive_key.is_none() {
            self.contents.archive_key = Some(sealroom_crypto::ArchiveKey::generate()?);
            made = true;
        }
        Ok(made)
    }

    /// The user's history archive key, unless they turned the archive off (then nothing is
    /// archived or read from it).
    pub fn archive_key(&self) -> Option<&sealroom_crypto::ArchiveKey> {
        if self.contents.archive_off {
            None
        } else {
            self.contents.archive_key.as_ref()
        }
    }

    /// Whether the history archive is on (the default).
    pub fn archive_on(&self) -> bool {
        !self.contents.archive_off
    }

    /// Turns the history archive on or off; `true` when that changed (the caller saves the
    /// backup, and deletes the archive at the relay when turning it off).
    pub fn set_archive(&mut self, on: bool) -> Result<bool, Error> {
        if self.contents.archive_off != on {
            return Ok(false);
        }
        self.contents.archive_off = !on;
        if on && self.contents.archive_key.is_none() {
            self.contents.archive_key = Some(sealroom_crypto::ArchiveKey::generate()?);
        }
        Ok(true)
    }

    /// This user's identity signing key, once made ([`ensure_signing_key`](Self::ensure_signing_key)).
    pub fn signing_key(&self) -> Option<&sealroom_crypto::SigningSecret> {
        self.contents.signing.as_ref()
    }

    /// The signing key pinned for `user` (this user's own for themself).
    pub fn signing_pin(&self, user: &str) -> Option<sealroom_crypto::SigningPublic> {
        if user == self.username.as_str() {
            return self.contents.signing.as_ref().map(|s| s.public_key());
        }
        self.contents.pins.get(user).and_then(|p| p.signing_key)
    }

    /// Pins `user`'s signing key on first use, beside their identity key (which is checked, and
    /// pinned on first use, as [`check_peer_key`](Self::check_peer_key) does). `Ok(true)` when
    /// a pin was added (the caller saves the backup); a signing key other than the pinned one,
    /// or an identity key that changed, is refused.
    pub fn pin_signing_key(
        &mut self,
        user: &Username,
        identity: &IdentityKey,
        signing: sealroom_crypto::SigningPublic,
    ) -> Result<bool, Error> {
        if user == &self.username {
            return match self.signing_pin(user.as_str()) {
                Some(own) if own == signing => Ok(false),
                _ => Err(Error::SigningKeyChanged(user.clone())),
            };
        }
        let first = match self.check_peer_key(user, identity)? {
            PeerKey::Changed(change) => return Err(Error::KeyChanged(Box::new(change))),
            PeerKey::FirstUse(_) => true,
            PeerKey::Pinned(_) => false,
        };
        let pin = self.contents.pins.get_mut(user.as_str()).ok_or(Error::UnknownPeer(user.clone()))?;
        match pin.signing_key {
            Some(k) if k == signing => Ok(first),
            Some(_) => Err(Error::SigningKeyChanged(user.clone())),
            None => {
                pin.signing_key = Some(signing);
                // A verification compared the version 1 number, which did not cover this key:
                // only the peer's introduction (sealed under the verified key) carries it over.
                pin.verified = false;
                Ok(true)
            }
        }
    }

    /// Pins the signing key `peer` introduced in a version 1 message (an `Upgrade` payload,
    /// sealed under their pinned X25519 key, so as authentic as it): a verified peer stays
    /// verified. `Ok(true)` when a pin was added (the caller saves the backup); a key other
    /// than the one already pinned is refused.
    pub fn pin_introduced_key(
        &mut self,
        peer: &Username,
        signing: sealroom_crypto::SigningPublic,
    ) -> Result<bool, Error> {
        let pin = self.contents.pins.get_mut(peer.as_str()).ok_or(Error::UnknownPeer(peer.clone()))?;
        match pin.signing_key {
            Some(k) if k == signing => Ok(false),
            Some(_) => Err(Error::SigningKeyChanged(peer.clone())),
            None => {
                pin.signing_key = Some(signing);
                Ok(true)
            }
        }
    }

    /// The pending key change for `peer`, if any.
    pub fn key_change(&self, peer: &Username) -> Option<&KeyChange> {
        self.changes.get(peer)
    }

    /// Every peer whose key changed and has not been accepted.
    pub fn key_changes(&self) -> impl Iterator<Item = &KeyChange> {
        self.changes.values()
    }

    /// Accepts `peer`'s new key after the user compared the new safety number: it becomes the
    /// pin (unverified). The caller saves the backup. False when no change was pending.
    pub fn accept_new_key(&mut self, peer: &Username) -> bool {
        let Some(change) = self.changes.remove(peer) else { return false };
        self.contents.pins.insert(
            peer.to_string(),
            Pin { public_key: change.new_key, signing_key: None, verified: false, other_flags: 0 },
        );
        self.pairs.remove(peer);
        true
    }

    /// Marks `peer`'s pinned key verified. The caller saves the backup. False without a pin or
    /// while the key has changed (the user must accept the new key first).
    pub fn mark_verified(&mut self, peer: &Username) -> bool {
        if self.changes.contains_key(peer) {
            return false;
        }
        match self.contents.pins.get_mut(peer.as_str()) {
            Some(pin) => {
                pin.verified = true;
                true
            }
            None => false,
        }
    }

    fn pair(&mut self, peer: &Username, key: PublicKey) -> Result<PairKey, Error> {
        if let Some((k, pair)) = self.pairs.get(peer) {
            if *k == key {
                return Ok(pair.clone());
            }
        }
        let pair = self.contents.identity.pair_key(&key)?;
        self.pairs.insert(peer.clone(), (key, pair.clone()));
        Ok(pair)
    }

    /// Seals `payload` to `peer` under their pinned key. Refused while `peer`'s key has
    /// changed ([`Error::KeyChanged`]) and before their key was ever checked
    /// ([`Error::UnknownPeer`]): the one place that decides whether a message may be sent.
    pub fn seal(
        &mut self,
        peer: &Username,
        header: &MessageHeader,
        payload: &Payload,
    ) -> Result<(ClientMsgId, Envelope), Error> {
        if let Some(change) = self.changes.get(peer) {
            return Err(Error::KeyChanged(Box::new(change.clone())));
        }
        let key = self.pinned_key(peer)?;
        let pair = self.pair(peer, key)?;
        let envelope = seal_message(&pair, &self.identity_key(), &key, header, payload)?;
        Ok((ClientMsgId(header.client_msg_id), Envelope::new(envelope)?))
    }

    /// The key pinned for `peer`.
    fn pinned_key(&self, peer: &Username) -> Result<PublicKey, Error> {
        self.contents
            .pins
            .get(peer.as_str())
            .map(|p| p.public_key)
            .ok_or_else(|| Error::UnknownPeer(peer.clone()))
    }

    /// Whether a stored message is addressed to or from this user; who the other side is.
    fn peer_of(&self, m: &MessageOut) -> Option<(Username, bool)> {
        if m.from == self.username {
            Some((m.to.clone(), true))
        } else if m.to == self.username {
            Some((m.from.clone(), false))
        } else {
            None
        }
    }

    /// The peer a message needs a key for before [`Vault::open`] can succeed, when none is
    /// pinned yet (the caller checks the directory's key for them first).
    pub fn needs_key_for(&self, m: &MessageOut) -> Option<Username> {
        let (peer, _) = self.peer_of(m)?;
        (!self.contents.pins.contains_key(peer.as_str())).then_some(peer)
    }

    /// Which direct conversation is which ([`crate::Directory`]); [`Vault::open`] learns from
    /// every message it opens.
    pub fn directory(&self) -> &crate::Directory {
        &self.directory
    }

    /// The directory, to learn from the conversation list.
    pub fn directory_mut(&mut self) -> &mut crate::Directory {
        &mut self.directory
    }

    /// Opens a stored message. A message neither from nor to this user is refused
    /// ([`Error::NotForMe`]) and counted (once per message id), never shown; one whose envelope does not open under the
    /// pinned key, or whose header disagrees with what the relay says, is [`Error::Undecryptable`].
    pub fn open(&mut self, m: &MessageOut) -> Result<Opened, Error> {
        let Some((peer, mine)) = self.peer_of(m) else {
            self.misaddressed.insert(m.id);
            return Err(Error::NotForMe);
        };
        let key = self.pinned_key(&peer)?;
        let pair = self.pair(&peer, key)?;
        let me = self.identity_key();
        let (sender, recipient) = if mine { (me, key) } else { (key, me) };
        let opened = open_message(&pair, &sender, &recipient, m.envelope.as_bytes())
            .map_err(|_| Error::Undecryptable)?;
        if opened.header.client_msg_id != m.client_msg_id.0 {
            return Err(Error::Undecryptable);
        }
        self.directory.learn_message(&self.username, m);
        Ok(Opened {
            id: m.id,
            conversation: m.conversation,
            ts: m.ts,
            from: m.from.clone(),
            to: m.to.clone(),
            peer,
            mine,
            sent_at_ms: opened.header.sent_at_ms,
            payload: opened.payload,
        })
    }

    /// How many distinct messages the relay handed this user that were addressed to someone
    /// else (the same one seen in the list, the history and a sync counts once).
    pub fn misaddressed(&self) -> u64 {
        self.misaddressed.len() as u64
    }

    /// The request that stores the current backup as the next generation, guarded by its
    /// version.
    pub fn backup_update(&mut self) -> Result<UpdateKeyBackupRequest, Error> {
        self.contents.generation += 1;
        let sealed = seal_backup(&self.backup_key, self.username.as_str(), &self.contents)?;
        Ok(UpdateKeyBackupRequest {
            key_backup: SealedBackup::new(sealed)?,
            expected_version: self.backup_version,
        })
    }

    /// The relay stored the backup as `version`.
    pub fn backup_stored(&mut self, version: i64) {
        self.backup_version = version;
    }

    /// The relay refused a stale write: `fresh` is the backup another client stored. Merges it
    /// (their pins and settings, ours on top) so the next write keeps both.
    pub fn backup_conflict(&mut self, fresh: &Me) -> Result<(), Error> {
        let theirs = unseal_backup(&self.backup_key, self.username.as_str(), fresh.key_backup.as_bytes())
            .map_err(|_| Error::BackupUnreadable)?;
        self.contents.merge_from(theirs);
        self.backup_version = fresh.key_backup_version;
        Ok(())
    }

    /// After a password change: the new backup key and the stored version.
    pub(crate) fn rekey(&mut self, backup_key: BackupKey, version: i64) {
        self.backup_key = backup_key;
        self.backup_version = version;
    }
}
