//! Group conversations (MLS) in the native client: this device's MLS state, kept sealed in
//! `<state dir>/<relay>/<user>.mls` (device id, then the sealed state; rewritten whole after
//! every change), and the session's group calls, each a flow of
//! [`sealroom_session::groups`].

use std::path::PathBuf;
use std::sync::Mutex;

use sealroom_crypto::{Payload, SigningSecret};
use sealroom_protocol::endpoint::{Devices, Endpoint, GetGroup, Groups, RemoveDevice};
use sealroom_protocol::{AppendedEntry, ConversationId, DeviceId, DeviceInfo, GroupState, Username};
use sealroom_session::groups::{self as flows, DeviceCell, GroupEvent};
use sealroom_session::mls::{Changes, MlsDevice};

use crate::{ClientError, Http, Result, Session};

/// This device's MLS state, saved sealed to its file (none: kept in memory only).
pub(crate) struct NativeDevice {
    device: Mutex<MlsDevice>,
    file: Option<PathBuf>,
    identity: SigningSecret,
}

impl DeviceCell for NativeDevice {
    fn with<R>(&self, f: impl FnOnce(&mut MlsDevice) -> R) -> R {
        f(&mut self.device.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn save(&self) -> std::result::Result<(), sealroom_session::Error> {
        let Some(file) = &self.file else { return Ok(()) };
        let (id, sealed) = self
            .with(|d| Ok::<_, sealroom_session::mls::MlsError>((d.device_id(), d.seal(&self.identity)?)))?;
        let mut contents = Vec::with_capacity(16 + sealed.len());
        contents.extend_from_slice(&id);
        contents.extend_from_slice(&sealed);
        crate::write_private_file(file, &contents).map_err(|e| {
            sealroom_session::Error::DeviceStorage(format!(
                "could not save this device's state in {}: {e}",
                file.display()
            ))
        })
    }
}

impl NativeDevice {
    /// This device of `username`: read from `file` when there is one, else a new device.
    fn load(
        identity: &SigningSecret,
        username: &Username,
        file: Option<PathBuf>,
        now_ms: u64,
    ) -> Result<Self> {
        let stored = match &file {
            Some(f) => match std::fs::read(f) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(ClientError::Io(format!("cannot read {}: {e}", f.display()))),
            },
            None => None,
        };
        let device = match stored {
            Some(bytes) if bytes.len() > 16 => {
                let id: [u8; 16] =
                    bytes[..16].try_into().map_err(|_| ClientError::Protocol("device file".into()))?;
                MlsDevice::open(identity, username.as_str(), &id, &bytes[16..]).map_err(|e| {
                    ClientError::Usage(format!(
                        "this device's group state does not open ({e}); move {} away to start a new device",
                        file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()
                    ))
                })?
            }
            Some(_) => return Err(ClientError::Protocol("the device file is cut short".into())),
            None => {
                MlsDevice::new(identity, username.as_str(), now_ms).map_err(sealroom_session::Error::from)?
            }
        };
        let native = NativeDevice { device: Mutex::new(device), file, identity: identity.clone() };
        native.save()?;
        Ok(native)
    }
}

/// Runs a [`sealroom_session::groups`] flow with this session's transport, vault and device.
macro_rules! group_flow {
    ($self:ident, $f:ident($($arg:expr),*)) => {{
        $self.mls_start().await?;
        let t = Http { client: &$self.client, token: Some(&$self.token) };
        let cell = Mutex::new(&mut $self.vault);
        let dev = $self.mls.as_ref().ok_or(ClientError::Protocol("no device".into()))?;
        flows::$f(&t, &cell, dev $(, $arg)*).await
    }};
}

impl Session {
    /// Sets this device up for group conversations, once per session: its state loaded from
    /// the state dir (or a new device made), the signing key published, the device registered
    /// and its key packages topped up.
    pub async fn mls_start(&mut self) -> Result<()> {
        if self.mls.is_some() {
            return Ok(());
        }
        let t = Http { client: &self.client, token: Some(&self.token) };
        if self.vault.ensure_signing_key()? {
            let cell = Mutex::new(&mut self.vault);
            sealroom_session::flows::save_backup(&t, &cell).await?;
        }
        let identity =
            self.vault.signing_key().ok_or(ClientError::Protocol("no signing key".into()))?.clone();
        let file = self.client.device_file(self.me.username.as_str());
        let device = NativeDevice::load(&identity, &self.me.username, file, crate::now_ms().unsigned_abs())?;
        let cell = Mutex::new(&mut self.vault);
        flows::start_device(&t, &cell, &device).await?;
        self.mls = Some(device);
        Ok(())
    }

    /// This device's id (setting the device up first).
    pub async fn device_id(&mut self) -> Result<DeviceId> {
        self.mls_start().await?;
        Ok(DeviceId(self.mls.as_ref().map(|d| d.with(|d| d.device_id())).unwrap_or_default()))
    }

    /// Creates a group with `members` (this user its admin); returns its conversation id.
    pub async fn create_group(&mut self, members: &[&str]) -> Result<ConversationId> {
        let members: Vec<Username> = members.iter().map(|m| crate::parse(m)).collect::<Result<_>>()?;
        group_flow!(self, create_group(&members))
    }

    /// Adds users to a group (admins only).
    pub async fn add_members(&mut self, group: ConversationId, users: &[&str]) -> Result<AppendedEntry> {
        let users: Vec<Username> = users.iter().map(|m| crate::parse(m)).collect::<Result<_>>()?;
        group_flow!(self, add_members(group, &users))
    }

    /// Removes users from a group (admins only).
    pub async fn remove_members(&mut self, group: ConversationId, users: &[&str]) -> Result<AppendedEntry> {
        let changes =
            Changes { remove_users: users.iter().map(|u| u.to_string()).collect(), ..Changes::default() };
        group_flow!(self, change(group, changes))
    }

    /// Replaces a group's admins (admins only).
    pub async fn set_admins(&mut self, group: ConversationId, admins: &[&str]) -> Result<AppendedEntry> {
        let changes =
            Changes { admins: Some(admins.iter().map(|u| u.to_string()).collect()), ..Changes::default() };
        group_flow!(self, change(group, changes))
    }

    /// A commit that changes nothing but this device's keys (post-compromise security).
    pub async fn update_keys(&mut self, group: ConversationId) -> Result<AppendedEntry> {
        group_flow!(self, change(group, Changes::default()))
    }

    /// Sends to a group.
    pub async fn send_group(&mut self, group: ConversationId, payload: &Payload) -> Result<AppendedEntry> {
        let now = crate::now_ms().unsigned_abs();
        group_flow!(self, send(group, payload, now))
    }

    /// Reads everything new in this device's groups, in log order.
    pub async fn sync_groups(&mut self) -> Result<Vec<GroupEvent>> {
        group_flow!(self, sync())
    }

    /// Commits the removal of users who left and of removed devices from this device's groups.
    pub async fn tidy_groups(&mut self) -> Result<usize> {
        group_flow!(self, tidy())
    }

    /// Leaves a group.
    pub async fn leave_group(&mut self, group: ConversationId) -> Result<()> {
        self.mls_start().await?;
        let t = Http { client: &self.client, token: Some(&self.token) };
        let dev = self.mls.as_ref().ok_or(ClientError::Protocol("no device".into()))?;
        flows::leave(&t, dev, group).await
    }

    /// This user's groups, as the relay sees them.
    pub async fn groups(&self) -> Result<Vec<GroupState>> {
        Ok(self.get::<Groups>(Groups::PATH).await?.groups)
    }

    /// One group, as the relay sees it.
    pub async fn group(&self, group: ConversationId) -> Result<GroupState> {
        self.get::<GetGroup>(&GetGroup::path(&[&group])).await
    }

    /// This user's devices.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>> {
        Ok(self.get::<Devices>(Devices::PATH).await?.devices)
    }

    /// Removes one of this user's devices: it may no longer act, and the other members of its
    /// groups commit its removal.
    pub async fn remove_device(&self, device: DeviceId) -> Result<()> {
        self.client.call::<RemoveDevice>(&RemoveDevice::path(&[&device]), Some(&self.token), None).await
    }
}
