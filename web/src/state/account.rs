//! Accounts and peers' keys. The flows themselves live in `sealroom-session`, shared with the
//! CLI; this runs them and shows the outcome.

use std::collections::BTreeMap;

use sealroom_crypto::BackupKey;
use sealroom_protocol::endpoint::{Logout, LogoutAll};
use sealroom_protocol::{Endpoint, ErrorCode, IdentityKey, Registration, Username};
use sealroom_session::{flows, KeyChange, Outbox, PeerKey, Vault, VaultCell};

use super::keys::{Keys, KEYS};
use crate::api::{self, Socket};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::keys::{with_keys, Failure, Fetch, WebVault};
use super::model::*;
use super::App;

impl App {
    /// Creates an account: keys are made here, the password never leaves the browser.
    pub async fn sign_up(self, username: String, password: String, invite: Option<String>) {
        self.account.auth_error.set(None);
        let username = match Username::parse(&username) {
            Ok(u) => u,
            Err(_) => return self.account.auth_error.set(Some(USERNAME_RULE.into())),
        };
        match flows::register(&Fetch(self), &username, &password, invite.as_deref()).await {
            Ok((resp, vault)) => self.start(resp.user.username, vault, self.account.remember.get_untracked()),
            Err(e) => {
                self.account.busy.set(None);
                // The form learns the relay's policy from the refusal too (if its first look
                // failed, or the operator changed it since).
                if let Failure::Api(api) = &e {
                    match api.error {
                        ErrorCode::InviteRequired => self.account.registration.set(Registration::Invite),
                        ErrorCode::RegistrationClosed => self.account.registration.set(Registration::Closed),
                        _ => {}
                    }
                }
                self.account.auth_error.set(Some(e.human()));
            }
        }
    }

    /// Asks the relay who may register (for the sign-up form) and how long it keeps messages.
    pub async fn load_server_info(self) {
        use sealroom_protocol::endpoint::GetServerInfo;
        if let Ok(info) = super::call::<GetServerInfo>(GetServerInfo::PATH, None).await {
            self.account.registration.try_set(info.registration);
            self.account.retention_days.try_set(info.retention_days);
        }
    }

    /// Signs in on any browser: keys come back out of the sealed backup, whose identity must
    /// be the one the relay publishes for this user.
    pub async fn sign_in(self, username: String, password: String) {
        self.account.auth_error.set(None);
        let username = match Username::parse(&username) {
            Ok(u) => u,
            Err(_) => return self.account.auth_error.set(Some(USERNAME_RULE.into())),
        };
        self.account.busy.set(Some("Contacting the server…".into()));
        match flows::login(&Fetch(self), &username, &password).await {
            Ok((resp, vault)) => self.start(resp.user.username, vault, self.account.remember.get_untracked()),
            Err(e) => {
                self.account.busy.set(None);
                self.account.auth_error.set(Some(e.human()));
            }
        }
    }

    pub(crate) fn start(self, username: Username, vault: Vault, remember: bool) {
        let reopen = crate::browser::tab::get("active");
        if remember {
            let name = username.to_string();
            let bytes = zeroize::Zeroizing::new(*vault.backup_key().expose_bytes());
            spawn_local(async move {
                if crate::device::remember(&name, &bytes).await.is_err() {
                    web_sys::console::warn_1(&"could not remember this browser".into());
                }
            });
        }
        KEYS.with(|k| *k.borrow_mut() = Some(Keys { vault, outbox: Outbox::default(), socket: None }));
        self.account.busy.set(None);
        self.account.me.set(Some(username.to_string()));
        self.account.screen.set(Screen::Chats);
        crate::browser::mark_returning();
        let app = self;
        spawn_local(async move {
            // The list first: its newest message is where live sync starts, so a sign-in does
            // not stream the whole history over the socket.
            app.load_conversations().await;
            app.load_blocks().await;
            // A reload reopens the chat that was open in this tab.
            if let Some(room) = reopen.as_deref().and_then(Room::from_slug) {
                if app.rooms.active.get_untracked().is_none() {
                    spawn_local(app.open_room(room));
                }
            }
            let socket = Socket::connect(move |f| app.on_frame(f), move |up| app.on_socket(up));
            with_keys(|k| k.socket = Some(socket));
        });
        self.start_device(username.to_string());
    }

    /// Changes the password: the backup is re-sealed under the new key here, and the relay
    /// replaces credential and backup in one transaction, signing out every other session.
    pub async fn change_password(self, current: String, new: String) -> Result<(), String> {
        let result = flows::change_password(&Fetch(self), &WebVault, &current, &new).await;
        self.account.busy.set(None);
        let me = result.map_err(|e| match e.code() {
            Some(ErrorCode::InvalidCredentials) => "Your current password is wrong.".to_owned(),
            _ => e.human(),
        })?;
        if crate::device::recall().await.is_some() {
            if let Some(key) = WebVault.with(|v| zeroize::Zeroizing::new(*v.backup_key().expose_bytes())) {
                let _ = crate::device::remember(me.username.as_str(), &key).await;
            }
        }
        Ok(())
    }

    /// Deletes this account (the password proves it to the relay, derived here); then this
    /// browser forgets it: session, remembered key and MLS device.
    pub async fn delete_account(self, password: String) -> Result<(), String> {
        let me = self.account.me.get_untracked();
        self.account.busy.set(Some("Checking your password…".into()));
        let result = flows::delete_account(&Fetch(self), &WebVault, &password).await;
        self.account.busy.set(None);
        result.map_err(|e| match e.code() {
            Some(ErrorCode::InvalidCredentials) => "That password is wrong.".to_owned(),
            _ => e.human(),
        })?;
        if let Some(me) = me {
            let _ = crate::device::BrowserDevice::forget(&me).await;
        }
        self.forget(Some("Your account was deleted, with everything it kept on this server.".into()));
        Ok(())
    }

    /// Everything this user can read, decrypted in this browser, as an export; `progress`
    /// shows the messages so far.
    pub async fn export_history(
        self,
        progress: RwSignal<Option<usize>>,
    ) -> Result<sealroom_session::export::Export, String> {
        let origin = web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default();
        sealroom_session::export::collect(
            &Fetch(self),
            &WebVault,
            &origin,
            crate::browser::now() as i64,
            |n| {
                progress.try_set(Some(n));
            },
        )
        .await
        .map_err(|e| e.human())
    }

    /// Reopens a remembered browser without the password, while its session is valid.
    pub async fn resume(self) {
        let Some(saved) = crate::device::recall().await else { return };
        self.account.busy.set(Some("Unlocking…".into()));
        let key = BackupKey::from_bytes(saved.backup_key);
        match flows::resume(&Fetch(self), &saved.username, key).await {
            Ok(Some(vault)) => {
                self.account.remember.set(true);
                let name = vault.username().clone();
                self.start(name, vault, false); // already remembered; don't re-store
            }
            Ok(None) | Err(Failure::Api(_)) => {
                crate::device::forget().await;
                self.account.busy.set(None);
            }
            // The relay did not answer: this browser stays remembered (a reload tries again).
            Err(e @ Failure::NoAnswer(_)) => {
                self.account.busy.set(None);
                self.account.auth_error.set(Some(e.human()));
            }
            Err(e) => {
                crate::device::forget().await;
                self.account.busy.set(None);
                self.account.auth_error.set(Some(e.human()));
            }
        }
    }

    /// Signs out of this session (or all of them) and forgets every key.
    pub async fn sign_out(self, everywhere: bool) {
        // Without "Remember this browser", this browser's MLS device was for this visit only:
        // it leaves its groups (the relay removes it; the members commit its removal) and its
        // state is deleted here.
        if crate::device::recall().await.is_none() {
            if let Some(me) = self.account.me.get_untracked() {
                self.end_device(&me).await;
            }
        }
        let path = if everywhere { LogoutAll::PATH } else { Logout::PATH };
        let _ = api::call::<(), ()>("POST", path, None).await;
        self.forget(None);
    }

    pub(crate) fn forget(&self, why: Option<String>) {
        crate::browser::tab::clear();
        self.stop_device();
        spawn_local(crate::device::forget());
        if let Some(s) = KEYS.with(|k| k.borrow_mut().take()).and_then(|k| k.socket) {
            s.stop();
        }
        self.account.me.set(None);
        self.rooms.convs.set(Vec::new());
        self.timeline.msgs.set(Vec::new());
        crate::files::drop_all(*self, true);
        self.rooms.active.set(None);
        self.rooms.key_alerts.set(BTreeMap::new());
        self.rooms.blocked.set(Default::default());
        self.ui.misaddressed.set(0);
        self.account.online.set(false);
        self.account.auth_error.set(why);
        self.account.screen.set(Screen::SignIn);
    }

    /// Checks `peer`'s key: the relay's current one when `directory` is given (the conversation
    /// list carries it), else the directory's. A changed key raises the alert for that peer
    /// whether or not their chat is open; sending to them stops everywhere until accepted.
    pub(crate) async fn check_peer(&self, peer: &str, directory: Option<IdentityKey>) {
        let Ok(name) = Username::parse(peer) else { return };
        let checked = match directory {
            Some(key) => flows::learn_peer_key(&Fetch(*self), &WebVault, &name, &key).await,
            None => flows::peer_key(&Fetch(*self), &WebVault, &name).await,
        };
        match checked {
            Ok(PeerKey::Changed(change)) => self.raise_key_alert(&change),
            Ok(_) => self.rooms.key_alerts.update(|a| {
                a.remove(peer);
            }),
            // Unreachable directory or an unknown user: nothing to decide now.
            Err(_) => {}
        }
    }

    pub(crate) fn raise_key_alert(&self, change: &KeyChange) {
        let alert = KeyAlert {
            peer: change.peer.to_string(),
            new_key: *change.new_key.as_bytes(),
            safety_number: change.new_safety_number.clone(),
            pin_lost: change.pinned.is_none(),
        };
        if self.rooms.key_alerts.with_untracked(|a| a.get(&alert.peer) != Some(&alert)) {
            self.rooms.key_alerts.update(|a| {
                a.insert(alert.peer.clone(), alert);
            });
        }
    }

    /// Accepts the open chat's changed key after the user compared the new safety number.
    pub async fn accept_new_key(self) {
        let Some(alert) = self.rooms.key_alert.get_untracked() else { return };
        let Ok(peer) = Username::parse(&alert.peer) else { return };
        match flows::accept_new_key(&Fetch(self), &WebVault, &peer).await {
            Ok(()) => {
                self.rooms.key_alerts.update(|a| {
                    a.remove(&alert.peer);
                });
                self.flush_outbox();
            }
            Err(e) => self.ui.notice.set(Some(e.human())),
        }
    }

    /// Marks the open chat's peer as verified (kept in the sealed backup).
    pub async fn mark_verified(self, peer: String) {
        let Ok(name) = Username::parse(&peer) else { return };
        match flows::mark_verified(&Fetch(self), &WebVault, &name).await {
            Ok(true) => self.ui.notice.set(Some(format!("{peer} is marked as verified."))),
            Ok(false) => {
                self.ui.notice.set(Some(format!("{peer}'s key has changed: accept it before verifying.")))
            }
            Err(e) => self.ui.notice.set(Some(e.human())),
        }
    }

    /// Whether `peer`'s pinned key is verified.
    pub fn is_verified(&self, peer: &str) -> bool {
        WebVault.with(|v| v.is_verified(peer)).unwrap_or(false)
    }

    /// The safety number with `peer`'s pinned key.
    pub fn safety_number(&self, peer: &str) -> Option<String> {
        let peer = Username::parse(peer).ok()?;
        WebVault.with(|v| v.safety_number(&peer)).flatten().map(|s| s.to_string())
    }

    /// Pins set in this session (for the safety-number screen).
    pub fn pins(&self) -> BTreeMap<String, bool> {
        WebVault.with(|v| v.pins().iter().map(|(n, p)| (n.clone(), p.verified)).collect()).unwrap_or_default()
    }
}
