//! The setup both MLS benchmarks share: the native one (criterion, `benches/mls.rs`) and the
//! one timed in headless Chromium (`tests/wasm_mls_bench.rs`).

use std::collections::HashMap;

use sealroom_crypto::{Payload, SigningPublic, SigningSecret};
use sealroom_session::mls::{Changes, Commit, GroupId, Invitee, MlsDevice, Processed};

pub const NOW: u64 = 1_700_000_000_000;

pub struct Members {
    pub creator: (String, SigningSecret),
    pub invitees: Vec<Invitee>,
    pub devices: Vec<MlsDevice>,
    pub pins: HashMap<String, SigningPublic>,
}

/// `n` users (the creator included), each with one device and one key package.
pub fn members(n: usize) -> Members {
    let creator = ("u0".to_owned(), SigningSecret::generate().unwrap());
    let mut pins = HashMap::from([(creator.0.clone(), creator.1.public_key())]);
    let mut invitees = Vec::new();
    let mut devices = Vec::new();
    for i in 1..n {
        let name = format!("u{i}");
        let identity = SigningSecret::generate().unwrap();
        pins.insert(name.clone(), identity.public_key());
        let mut device = MlsDevice::new(&identity, &name, NOW).unwrap();
        invitees.push(Invitee { user: name, key_packages: device.key_packages(1).unwrap() });
        devices.push(device);
    }
    Members { creator, invitees, devices, pins }
}

/// The creator's device with a group of everyone in `m`, its commit merged.
pub fn group_of(m: &Members) -> (MlsDevice, GroupId, Commit) {
    let pins = |u: &str| m.pins.get(u).cloned();
    let mut d = MlsDevice::new(&m.creator.1, &m.creator.0, NOW).unwrap();
    let (g, _) = d.create_group(std::slice::from_ref(&m.creator.0)).unwrap();
    let commit =
        d.commit(&g, &Changes { add: m.invitees.clone(), ..Changes::default() }, 1000, &pins).unwrap();
    d.commit_accepted(&g).unwrap();
    (d, g, commit)
}

fn pin_of(pins: &HashMap<String, SigningPublic>) -> impl Fn(&str) -> Option<SigningPublic> + '_ {
    move |u: &str| pins.get(u).cloned()
}

/// A group of 1,000 as its creator's stored device, and a user "extra" (pinned, with a key
/// package) to add.
pub struct AtThousand {
    m: Members,
    extra: Vec<Vec<u8>>,
    group: GroupId,
    id: [u8; 16],
    sealed: Vec<u8>,
}

pub fn at_thousand() -> AtThousand {
    let mut m = members(1000);
    let extra_identity = SigningSecret::generate().unwrap();
    m.pins.insert("extra".into(), extra_identity.public_key());
    let extra = MlsDevice::new(&extra_identity, "extra", NOW).unwrap().key_packages(1).unwrap();
    let (base, group, _) = group_of(&m);
    let sealed = base.seal(&m.creator.1).unwrap();
    AtThousand { id: base.device_id(), m, extra, group, sealed }
}

impl AtThousand {
    /// The creator's device, fresh from its stored state (untimed setup).
    pub fn open(&self) -> MlsDevice {
        MlsDevice::open(&self.m.creator.1, &self.m.creator.0, &self.id, &self.sealed).unwrap()
    }

    /// The commit adding "extra", with its Welcome and GroupInfo.
    pub fn add_one(&self, d: &mut MlsDevice) -> Commit {
        let add = vec![Invitee { user: "extra".into(), key_packages: self.extra.clone() }];
        d.commit(&self.group, &Changes { add, ..Changes::default() }, 1001, &pin_of(&self.m.pins)).unwrap()
    }

    /// The commit removing one member.
    pub fn remove_one(&self, d: &mut MlsDevice) -> Commit {
        let changes = Changes { remove_users: vec!["u500".into()], ..Changes::default() };
        d.commit(&self.group, &changes, 1001, &pin_of(&self.m.pins)).unwrap()
    }
}

/// Two members of a group of two: one encrypts, the other decrypts, in log order.
pub struct Pair {
    pins: HashMap<String, SigningPublic>,
    sender: MlsDevice,
    receiver: MlsDevice,
    group: GroupId,
    position: u64,
    text: Payload,
}

pub fn pair() -> Pair {
    let m = members(2);
    let (sender, group, commit) = group_of(&m);
    let mut receiver = m.devices.into_iter().next().unwrap();
    receiver.join(&commit.welcome.unwrap(), &pin_of(&m.pins)).unwrap();
    Pair { pins: m.pins, sender, receiver, group, position: 1, text: Payload::Text("x".repeat(200)) }
}

impl Pair {
    /// A 200-byte message encrypted by one and decrypted by the other.
    pub fn round_trip(&mut self) {
        let message = self.sender.encrypt(&self.group, NOW, &self.text).unwrap();
        self.position += 1;
        let read = self.receiver.process(&self.group, self.position, false, &message, &pin_of(&self.pins));
        assert!(matches!(read.unwrap(), Processed::Message { .. }));
    }

    /// A 200-byte message encrypted. (Time these after the round trips: messages nobody
    /// decrypts would put the receiver's ratchet out of reach.)
    pub fn encrypt(&mut self) -> Vec<u8> {
        self.sender.encrypt(&self.group, NOW, &self.text).unwrap()
    }
}

/// A group of `n` and a new device of its creator's user, to join it by external commit.
pub struct Joining {
    m: Members,
    info: Vec<u8>,
}

pub fn joining(n: usize) -> Joining {
    let m = members(n);
    let info = group_of(&m).2.group_info;
    Joining { m, info }
}

impl Joining {
    /// The new device (untimed setup).
    pub fn device(&self) -> MlsDevice {
        MlsDevice::new(&self.m.creator.1, &self.m.creator.0, NOW).unwrap()
    }

    /// Its external join.
    pub fn join(&self, mut d: MlsDevice) -> Commit {
        d.join_external(&self.info, &pin_of(&self.m.pins)).unwrap()
    }
}
