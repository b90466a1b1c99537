//! The setup both MLS benchmarks share: the native one (criterion, `benches/mls.rs`) and the
//! one timed in headless Chromium (`tests/wasm_mls_bench.rs`).

use std::collections::HashMap;

use sealroom_crypto::{SigningPublic, SigningSecret};
use sealroom_session::mls::{Changes, Commit, GroupId, Invitee, MlsDevice};

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
