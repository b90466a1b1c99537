//! The MLS layer with real OpenMLS groups: several users' devices, a log ordered as the relay
//! orders it (one commit per epoch), and hostile leaves and commits.

use std::collections::HashMap;

use sealroom_crypto::{DeviceCertificate, Payload, SigningPublic, SigningSecret};

use super::*;

/// A stand-in for the relay's ordering: one log per group; a commit is appended only while its
/// epoch is the group's.
#[derive(Default)]
struct Log {
    entries: Vec<(u64, DeviceId, Vec<u8>)>,
    epoch: u64,
    group_info: Vec<u8>,
    welcomes: Vec<(DeviceId, Vec<u8>)>,
}

impl Log {
    fn submit_commit(&mut self, by: DeviceId, commit: &Commit) -> bool {
        if commit.epoch != self.epoch {
            return false;
        }
        self.entries.push((self.entries.len() as u64 + 1, by, commit.message.clone()));
        self.epoch += 1;
        self.group_info = commit.group_info.clone();
        if let Some(w) = &commit.welcome {
            for d in &commit.welcome_devices {
                self.welcomes.push((*d, w.clone()));
            }
        }
        true
    }
    fn append(&mut self, by: DeviceId, message: Vec<u8>) -> u64 {
        self.entries.push((self.entries.len() as u64 + 1, by, message));
        self.entries.len() as u64
    }
    fn welcome_for(&self, device: DeviceId) -> Vec<u8> {
        self.welcomes.iter().rev().find(|(d, _)| *d == device).map(|(_, w)| w.clone()).unwrap()
    }
}

struct User {
    name: String,
    identity: SigningSecret,
}

fn user(name: &str) -> User {
    User { name: name.into(), identity: SigningSecret::generate().unwrap() }
}

fn device(u: &User) -> MlsDevice {
    MlsDevice::new(&u.identity, &u.name, 1_700_000_000_000).unwrap()
}

/// Every device trusts the same pins (first use).
fn pins(users: &[&User]) -> HashMap<String, SigningPublic> {
    users.iter().map(|u| (u.name.clone(), u.identity.public_key())).collect()
}

fn pin_fn(p: &HashMap<String, SigningPublic>) -> impl Fn(&str) -> Option<SigningPublic> + '_ {
    move |u: &str| p.get(u).cloned()
}

fn invitee(u: &User, devices: &mut [&mut MlsDevice]) -> Invitee {
    Invitee {
        user: u.name.clone(),
        key_packages: devices.iter_mut().map(|d| d.key_packages(1).unwrap().remove(0)).collect(),
    }
}

/// Processes every log entry after the device's cursor; returns the texts it read.
fn catch_up(d: &mut MlsDevice, group: &GroupId, log: &Log, p: &dyn Pins) -> Vec<String> {
    let mut texts = Vec::new();
    for (pos, by, bytes) in &log.entries {
        match d.process(group, *pos, *by == d.device_id(), bytes, p).unwrap() {
            Processed::Message { payload: Payload::Text(t), .. } => texts.push(t),
            Processed::Unreadable { reason } => panic!("unreadable at {pos}: {reason}"),
            _ => {}
        }
    }
    texts
}

fn text(t: &str) -> Payload {
    Payload::Text(t.into())
}

fn commit_and_order(
    d: &mut MlsDevice,
    group: &GroupId,
    changes: &Changes,
    log: &mut Log,
    p: &dyn Pins,
) -> Commit {
    let c = d.commit(group, changes, 1000, p).unwrap();
    assert!(log.submit_commit(d.device_id(), &c));
    d.commit_accepted(group).unwrap();
    c
}

#[test]
fn three_users_and_four_devices_share_a_group_and_every_device_reads_every_message() {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let p = pins(&[&alice, &bob, &carol]);
    let p = pin_fn(&p);
    let (mut a, mut b1, mut b2, mut c) = (device(&alice), device(&bob), device(&bob), device(&carol));

    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    let changes = Changes {
        add: vec![invitee(&bob, &mut [&mut b1, &mut b2]), invitee(&carol, &mut [&mut c])],
        ..Changes::default()
    };
    let commit = commit_and_order(&mut a, &g, &changes, &mut log, &p);
    assert_eq!(commit.added_users, vec!["bob".to_string(), "carol".to_string()]);
    assert_eq!(commit.welcome_devices.len(), 3);
    for d in [&mut b1, &mut b2, &mut c] {
        let id = d.device_id();
        assert_eq!(d.join(&log.welcome_for(id), &p).unwrap(), g);
        // The Welcome's commit is before the device's time in the group.
        assert!(catch_up(d, &g, &log, &p).is_empty());
    }
    assert_eq!(a.members(&g).unwrap().len(), 4);
    assert_eq!(c.admins(&g).unwrap(), vec!["alice".to_string()]);

    let m1 = a.encrypt(&g, 1, &text("hello group")).unwrap();
    log.append(a.device_id(), m1);
    let m2 = b2.encrypt(&g, 2, &text("hi from bob's laptop")).unwrap();
    log.append(b2.device_id(), m2);
    assert_eq!(catch_up(&mut b1, &g, &log, &p), ["hello group", "hi from bob's laptop"]);
    assert_eq!(catch_up(&mut c, &g, &log, &p), ["hello group", "hi from bob's laptop"]);
    assert_eq!(catch_up(&mut a, &g, &log, &p), ["hi from bob's laptop"]);
    assert_eq!(catch_up(&mut b2, &g, &log, &p), ["hello group"]);
    // Processed once: a second pass reads nothing.
    assert!(catch_up(&mut c, &g, &log, &p).is_empty());
    let epochs: Vec<u64> = [&a, &b1, &b2, &c].iter().map(|d| d.epoch(&g).unwrap()).collect();
    assert_eq!(epochs, [1, 1, 1, 1]);
}

#[test]
fn of_two_commits_for_one_epoch_the_loser_catches_up_and_commits_again() {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let p = pins(&[&alice, &bob, &carol]);
    let p = pin_fn(&p);
    let (mut a, mut b, mut c) = (device(&alice), device(&bob), device(&carol));
    let (g, info) = a.create_group(&["alice".into(), "bob".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    commit_and_order(
        &mut a,
        &g,
        &Changes { add: vec![invitee(&bob, &mut [&mut b])], ..Changes::default() },
        &mut log,
        &p,
    );
    b.join(&log.welcome_for(b.device_id()), &p).unwrap();
    catch_up(&mut b, &g, &log, &p);

    // Both commit at epoch 1; the relay orders alice's update first.
    let from_a = a.commit(&g, &Changes::default(), 1000, &p).unwrap();
    let from_b = b
        .commit(&g, &Changes { add: vec![invitee(&carol, &mut [&mut c])], ..Changes::default() }, 1000, &p)
        .unwrap();
    assert_eq!((from_a.epoch, from_b.epoch), (1, 1));
    assert!(log.submit_commit(a.device_id(), &from_a));
    assert!(!log.submit_commit(b.device_id(), &from_b), "one commit per epoch");
    a.commit_accepted(&g).unwrap();
    // Bob cannot send while his commit waits; the refusal drops it, the log brings alice's.
    assert_eq!(b.encrypt(&g, 0, &text("x")).unwrap_err(), MlsError::PendingCommit);
    b.commit_refused(&g).unwrap();
    catch_up(&mut b, &g, &log, &p);
    assert_eq!(b.epoch(&g).unwrap(), 2);
    // Again, now at epoch 2 (the key package was not used: a new one).
    let again = commit_and_order(
        &mut b,
        &g,
        &Changes { add: vec![invitee(&carol, &mut [&mut c])], ..Changes::default() },
        &mut log,
        &p,
    );
    assert_eq!(again.epoch, 2);
    c.join(&log.welcome_for(c.device_id()), &p).unwrap();
    catch_up(&mut a, &g, &log, &p);
    catch_up(&mut c, &g, &log, &p);
    log.append(c.device_id(), c.encrypt(&g, 3, &text("carol is in")).unwrap());
    assert_eq!(catch_up(&mut a, &g, &log, &p), ["carol is in"]);
    assert_eq!(catch_up(&mut b, &g, &log, &p), ["carol is in"]);
    assert_eq!([a.epoch(&g).unwrap(), b.epoch(&g).unwrap(), c.epoch(&g).unwrap()], [3, 3, 3]);
}

#[test]
fn the_accepted_commit_is_merged_from_the_log_when_the_acceptance_was_lost() {
    let (alice, bob) = (user("alice"), user("bob"));
    let p = pins(&[&alice, &bob]);
    let p = pin_fn(&p);
    let (mut a, mut b) = (device(&alice), device(&bob));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    let c = a
        .commit(&g, &Changes { add: vec![invitee(&bob, &mut [&mut b])], ..Changes::default() }, 1000, &p)
        .unwrap();
    assert!(log.submit_commit(a.device_id(), &c));
    // No commit_accepted: the device reads its own commit back.
    catch_up(&mut a, &g, &log, &p);
    assert_eq!(a.epoch(&g).unwrap(), 1);
    b.join(&log.welcome_for(b.device_id()), &p).unwrap();
    log.append(a.device_id(), a.encrypt(&g, 1, &text("after the lost ack")).unwrap());
    assert_eq!(catch_up(&mut b, &g, &log, &p), ["after the lost ack"]);
}

#[test]
fn a_leaf_not_signed_by_the_pinned_user_key_is_refused_everywhere() {
    let (alice, bob, mallory) = (user("alice"), user("bob"), user("mallory"));
    let good = pins(&[&alice, &bob]);
    let good = pin_fn(&good);
    let mut a = device(&alice);
    let (g, _) = a.create_group(&["alice".into()]).unwrap();

    // Mallory's device claiming to be bob: a certificate signed by mallory's key, named bob.
    let mut fake = MlsDevice::new(&mallory.identity, "bob", 0).unwrap();
    let fake_invitee = Invitee { user: "bob".into(), key_packages: fake.key_packages(1).unwrap() };
    let before = a.seal(&alice.identity).unwrap();
    let err = a
        .commit(&g, &Changes { add: vec![fake_invitee.clone()], ..Changes::default() }, 1000, &good)
        .unwrap_err();
    assert_eq!(err, MlsError::DeviceRefused { user: "bob".into() });
    // Nothing changed, the state is as before (no staged commit left behind).
    assert!(a.commit(&g, &Changes::default(), 1000, &good).is_ok());
    a = MlsDevice::open(&alice.identity, "alice", &a.device_id(), &before).unwrap();

    // A key package of a real bob device offered as someone else's.
    let mut b = device(&bob);
    let as_carol = Invitee { user: "carol".into(), key_packages: b.key_packages(1).unwrap() };
    let carol_pinned = {
        let mut m = HashMap::new();
        m.insert("carol".to_string(), bob.identity.public_key());
        m.insert("bob".to_string(), bob.identity.public_key());
        m.insert("alice".to_string(), alice.identity.public_key());
        m
    };
    let err = a
        .commit(&g, &Changes { add: vec![as_carol], ..Changes::default() }, 1000, &pin_fn(&carol_pinned))
        .unwrap_err();
    assert_eq!(err, MlsError::DeviceRefused { user: "carol".into() });

    // A Welcome into a group whose tree holds the fake device, made by a hostile client that
    // skips the checks (straight through OpenMLS): bob refuses to join.
    let mut hostile = device(&alice);
    let (hg, _) = hostile.create_group(&["alice".into()]).unwrap();
    let mut group = hostile.load(&hg).unwrap();
    let kp_fake = parse_key_package(&fake.key_packages(1).unwrap()[0], hostile.provider.crypto()).unwrap();
    let kp_bob = parse_key_package(&b.key_packages(1).unwrap()[0], hostile.provider.crypto()).unwrap();
    let (_, welcome, _) = group.add_members(&hostile.provider, &hostile.signer, &[kp_fake, kp_bob]).unwrap();
    let welcome = welcome.tls_serialize_detached().unwrap();
    let before_b = b.seal(&bob.identity).unwrap();
    assert_eq!(b.join(&welcome, &good).unwrap_err(), MlsError::DeviceRefused { user: "bob".into() });
    assert!(b.groups().is_empty());
    // The refused Welcome left the device as it was: its key package is still usable.
    assert_eq!(b.seal(&bob.identity).unwrap().len(), before_b.len());
}

#[test]
fn an_unpinned_member_is_named_and_the_same_welcome_joins_once_pinned() {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let all = pins(&[&alice, &bob, &carol]);
    let all = pin_fn(&all);
    let (mut a, mut b, mut c) = (device(&alice), device(&bob), device(&carol));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    let add = Changes {
        add: vec![invitee(&bob, &mut [&mut b]), invitee(&carol, &mut [&mut c])],
        ..Changes::default()
    };
    commit_and_order(&mut a, &g, &add, &mut log, &all);

    let only_bob = pins(&[&bob]);
    let err = b.join(&log.welcome_for(b.device_id()), &pin_fn(&only_bob)).unwrap_err();
    assert_eq!(err, MlsError::UnpinnedUsers(vec!["alice".into(), "carol".into()]));
    // The Welcome's key material was restored: the same Welcome joins after pinning.
    assert_eq!(b.join(&log.welcome_for(b.device_id()), &all).unwrap(), g);
}

#[test]
fn only_admins_add_users_or_change_admins_and_receivers_check_it_too() {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let p = pins(&[&alice, &bob, &carol]);
    let p = pin_fn(&p);
    let (mut a, mut b, mut c) = (device(&alice), device(&bob), device(&carol));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    commit_and_order(
        &mut a,
        &g,
        &Changes { add: vec![invitee(&bob, &mut [&mut b])], ..Changes::default() },
        &mut log,
        &p,
    );
    b.join(&log.welcome_for(b.device_id()), &p).unwrap();
    catch_up(&mut b, &g, &log, &p);

    let err = b
        .commit(&g, &Changes { add: vec![invitee(&carol, &mut [&mut c])], ..Changes::default() }, 1000, &p)
        .unwrap_err();
    assert_eq!(err, MlsError::NotAdmin { by: "bob".into(), what: "add users" });
    let err = b
        .commit(&g, &Changes { admins: Some(vec!["bob".into()]), ..Changes::default() }, 1000, &p)
        .unwrap_err();
    assert_eq!(err, MlsError::NotAdmin { by: "bob".into(), what: "change the admins" });

    // A hostile bob client skips its own check: alice's device refuses the commit.
    let mut group = b.load(&g).unwrap();
    let kp = parse_key_package(&c.key_packages(1).unwrap()[0], b.provider.crypto()).unwrap();
    let (commit, _, _) = group.add_members(&b.provider, &b.signer, &[kp]).unwrap();
    catch_up(&mut a, &g, &log, &p);
    let pos = log.append(b.device_id(), commit.tls_serialize_detached().unwrap());
    let err = a.process(&g, pos, false, &log.entries[pos as usize - 1].2, &p).unwrap_err();
    assert_eq!(err, MlsError::NotAdmin { by: "bob".into(), what: "add users" });
    assert_eq!(a.epoch(&g).unwrap(), 1, "the commit was not applied");
    assert_eq!(a.groups()[&g].cursor, 1, "and its position not passed");

    // (The relay's policy would not have ordered it either: take it back out.)
    log.entries.pop();
    b.commit_refused(&g).unwrap();
    // Alice makes bob an admin; then bob may add carol, and alice accepts it.
    let s = {
        commit_and_order(
            &mut a,
            &g,
            &Changes { admins: Some(vec!["alice".into(), "bob".into()]), ..Changes::default() },
            &mut log,
            &p,
        );
        catch_up_summary(&mut b, &g, &log, &p).unwrap()
    };
    assert!(s.admins_changed && !s.self_removed);
    assert_eq!(b.admins(&g).unwrap(), vec!["alice".to_string(), "bob".to_string()]);
    commit_and_order(
        &mut b,
        &g,
        &Changes { add: vec![invitee(&carol, &mut [&mut c])], ..Changes::default() },
        &mut log,
        &p,
    );
    let s = catch_up_summary(&mut a, &g, &log, &p).unwrap();
    assert_eq!((s.by.as_str(), s.added), ("bob", vec![("carol".to_string(), c.device_id())]));
}

fn catch_up_summary(d: &mut MlsDevice, group: &GroupId, log: &Log, p: &dyn Pins) -> Option<CommitSummary> {
    let mut last = None;
    for (pos, by, bytes) in &log.entries {
        if let Processed::Commit(s) = d.process(group, *pos, *by == d.device_id(), bytes, p).unwrap() {
            last = Some(s);
        }
    }
    last
}

#[test]
fn a_new_device_joins_by_external_commit_and_a_non_member_cannot() {
    let (alice, bob, eve) = (user("alice"), user("bob"), user("eve"));
    let p = pins(&[&alice, &bob, &eve]);
    let p = pin_fn(&p);
    let (mut a, mut b1) = (device(&alice), device(&bob));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    commit_and_order(
        &mut a,
        &g,
        &Changes { add: vec![invitee(&bob, &mut [&mut b1])], ..Changes::default() },
        &mut log,
        &p,
    );
    b1.join(&log.welcome_for(b1.device_id()), &p).unwrap();
    log.append(a.device_id(), a.encrypt(&g, 1, &text("before the new device")).unwrap());
    catch_up(&mut b1, &g, &log, &p);

    // Bob's new device joins from the GroupInfo alone.
    let mut b2 = device(&bob);
    let join = b2.join_external(&log.group_info, &p).unwrap();
    assert_eq!(join.epoch, 1);
    assert!(log.submit_commit(b2.device_id(), &join));
    b2.commit_accepted(&g).unwrap();
    b2.set_conversation(&g, 7).unwrap();
    // It starts after its own join (earlier entries are for the archive, not for it).
    let start = log.entries.len() as u64;
    for d in [&mut a, &mut b1] {
        let s = catch_up_summary(d, &g, &log, &p).unwrap();
        assert_eq!(s.added, vec![("bob".to_string(), b2.device_id())]);
        assert_eq!(s.by, "bob");
    }
    log.append(a.device_id(), a.encrypt(&g, 2, &text("welcome, new laptop")).unwrap());
    let texts: Vec<String> = log.entries[start as usize..]
        .iter()
        .filter_map(|(pos, by, bytes)| {
            match b2.process(&g, *pos, *by == b2.device_id(), bytes, &p).unwrap() {
                Processed::Message { payload: Payload::Text(t), .. } => Some(t),
                _ => None,
            }
        })
        .collect();
    assert_eq!(texts, ["welcome, new laptop"]);
    assert_eq!(b2.group_of(7), Some(g));

    // Eve is no member: her device refuses to make the join, and members refuse it if made.
    let mut e = device(&eve);
    assert_eq!(e.join_external(&log.group_info, &p).unwrap_err(), MlsError::NotAMember("eve".into()));
    assert!(e.groups().is_empty());
    let (_, bundle) = MlsGroup::external_commit_builder()
        .with_config(join_config())
        .build_group(&e.provider, verifiable(&log.group_info), e.credential_with_key())
        .unwrap()
        .leaf_node_parameters(LeafNodeParameters::builder().with_capabilities(capabilities()).build())
        .load_psks(e.provider.storage())
        .unwrap()
        .build(e.provider.rand(), e.provider.crypto(), &e.signer, |_| true)
        .unwrap()
        .finalize(&e.provider)
        .unwrap();
    let pos = log.append(e.device_id(), bundle.into_commit().tls_serialize_detached().unwrap());
    let err = a.process(&g, pos, false, &log.entries[pos as usize - 1].2, &p).unwrap_err();
    assert_eq!(err, MlsError::NotAMember("eve".into()));
}

fn verifiable(info: &[u8]) -> openmls::messages::group_info::VerifiableGroupInfo {
    match MlsMessageIn::tls_deserialize_exact(info).unwrap().extract() {
        MlsMessageBodyIn::GroupInfo(i) => i,
        _ => panic!("not a GroupInfo"),
    }
}

#[test]
fn a_removed_user_reads_nothing_sent_after_and_learns_of_the_removal() {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let p = pins(&[&alice, &bob, &carol]);
    let p = pin_fn(&p);
    let (mut a, mut b, mut c) = (device(&alice), device(&bob), device(&carol));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    let add = Changes {
        add: vec![invitee(&bob, &mut [&mut b]), invitee(&carol, &mut [&mut c])],
        ..Changes::default()
    };
    commit_and_order(&mut a, &g, &add, &mut log, &p);
    for d in [&mut b, &mut c] {
        let id = d.device_id();
        d.join(&log.welcome_for(id), &p).unwrap();
        catch_up(d, &g, &log, &p);
    }
    // Bob (no admin) may not remove carol.
    assert_eq!(
        b.commit(&g, &Changes { remove_users: vec!["carol".into()], ..Changes::default() }, 1000, &p)
            .unwrap_err(),
        MlsError::NotAdmin { by: "bob".into(), what: "remove other users" }
    );
    let removal = commit_and_order(
        &mut a,
        &g,
        &Changes { remove_users: vec!["carol".into()], ..Changes::default() },
        &mut log,
        &p,
    );
    assert_eq!(removal.removed_users, vec!["carol".to_string()]);
    let carol_before = c.seal(&carol.identity).unwrap();
    let s = catch_up_summary(&mut c, &g, &log, &p).unwrap();
    assert!(s.self_removed);
    assert!(c.groups().is_empty());
    catch_up(&mut b, &g, &log, &p);

    let secret = a.encrypt(&g, 5, &text("after carol left")).unwrap();
    let pos = log.append(a.device_id(), secret.clone());
    assert_eq!(catch_up(&mut b, &g, &log, &p), ["after carol left"]);
    // Carol's state from before she processed the removal cannot read it either.
    let mut old = MlsDevice::open(&carol.identity, "carol", &c.device_id(), &carol_before).unwrap();
    assert!(matches!(old.process(&g, pos, false, &secret, &p).unwrap(), Processed::Unreadable { .. }));
}

#[test]
fn forward_secrecy_a_stored_state_cannot_decrypt_what_it_has_already_processed() {
    let (alice, bob) = (user("alice"), user("bob"));
    let p = pins(&[&alice, &bob]);
    let p = pin_fn(&p);
    let (mut a, mut b) = (device(&alice), device(&bob));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    commit_and_order(
        &mut a,
        &g,
        &Changes { add: vec![invitee(&bob, &mut [&mut b])], ..Changes::default() },
        &mut log,
        &p,
    );
    b.join(&log.welcome_for(b.device_id()), &p).unwrap();
    catch_up(&mut b, &g, &log, &p);

    let secret = a.encrypt(&g, 9, &text("read once")).unwrap();
    let pos = log.append(a.device_id(), secret.clone());
    // The state from before processing can decrypt it: the test can fail.
    let before = b.seal(&bob.identity).unwrap();
    let mut probe = MlsDevice::open(&bob.identity, "bob", &b.device_id(), &before).unwrap();
    assert!(matches!(probe.process(&g, pos, false, &secret, &p).unwrap(), Processed::Message { .. }));

    assert_eq!(catch_up(&mut b, &g, &log, &p), ["read once"]);
    let after = b.seal(&bob.identity).unwrap();
    let mut stolen = MlsDevice::open(&bob.identity, "bob", &b.device_id(), &after).unwrap();
    // Past the cursor, so OpenMLS itself must refuse: the message key is gone from the state.
    match stolen.process(&g, pos + 1, false, &secret, &p).unwrap() {
        Processed::Unreadable { .. } => {}
        other => panic!("the stored state decrypted a consumed message: {other:?}"),
    }
    // And after an update commit moves the epoch on, nothing of the old epoch is left.
    commit_and_order(&mut a, &g, &Changes::default(), &mut log, &p);
    catch_up(&mut b, &g, &log, &p);
    let later = b.seal(&bob.identity).unwrap();
    let mut stolen = MlsDevice::open(&bob.identity, "bob", &b.device_id(), &later).unwrap();
    assert!(matches!(stolen.process(&g, 1000, false, &secret, &p).unwrap(), Processed::Unreadable { .. }));
}

#[test]
fn a_sealed_state_reopens_whole_and_only_for_its_user_and_device() {
    let alice = user("alice");
    let mut a = device(&alice);
    let (g, _) = a.create_group(&["alice".into()]).unwrap();
    a.set_conversation(&g, 42).unwrap();
    a.set_name(42, "Ünïcode team ✓");
    let queued = crate::mls::QueuedEntry {
        conversation: 42,
        seq: 7,
        sender: "bob".into(),
        sent_ms: 1_700_000_000_000,
        entry: vec![1, 2, 3],
    };
    a.queue_archive([queued.clone(), crate::mls::QueuedEntry { seq: 8, ..queued.clone() }]);
    a.archive_done(1);
    let pending = crate::mls::PendingSend {
        conversation: 42,
        client_msg_id: [9; 16],
        sent_ms: 1_700_000_000_001,
        payload: sealroom_crypto::Payload::Text("kept until answered".into()).encode().unwrap(),
        blobs: vec!["q1w2e3r4t5y6u7i8o9p0aa".into(), "b".into()],
    };
    a.queue_send(pending.clone());
    a.queue_send(crate::mls::PendingSend { client_msg_id: [10; 16], blobs: vec![], ..pending.clone() });
    a.sent(&[10; 16]);
    let sealed = a.seal(&alice.identity).unwrap();
    let again = MlsDevice::open(&alice.identity, "alice", &a.device_id(), &sealed).unwrap();
    assert_eq!(again.groups(), a.groups());
    assert_eq!(again.name_of(42), Some("Ünïcode team ✓"));
    assert_eq!(again.archive_queue(), &[crate::mls::QueuedEntry { seq: 8, ..queued }]);
    assert_eq!(again.outbox(), &[pending], "what was sent without an answer survives");
    assert_eq!(again.certificate(), a.certificate());
    assert_eq!(again.epoch(&g).unwrap(), 0);
    assert_eq!(
        MlsDevice::open(&alice.identity, "bob", &a.device_id(), &sealed).unwrap_err(),
        MlsError::State
    );
    assert_eq!(MlsDevice::open(&alice.identity, "alice", &[0; 16], &sealed).unwrap_err(), MlsError::State);
    let other = SigningSecret::generate().unwrap();
    assert_eq!(MlsDevice::open(&other, "alice", &a.device_id(), &sealed).unwrap_err(), MlsError::State);
    // The certificate names this device's leaf key and verifies under alice's key.
    let cert = DeviceCertificate::decode(&a.certificate().encode()).unwrap();
    assert!(cert.verify(&alice.identity.public_key(), "alice", &cert.leaf_key).is_ok());
}

#[test]
fn the_admins_extension_has_one_encoding() {
    let admins = vec!["alice".to_string(), "ünïcødé".to_string()];
    let bytes = encode_admins(&admins).unwrap();
    let mut expected = vec![0x01, 0x00, 0x02, 5];
    expected.extend_from_slice(b"alice");
    expected.push("ünïcødé".len() as u8);
    expected.extend_from_slice("ünïcødé".as_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(decode_admins(&bytes).unwrap(), admins);
    for bad in
        [&bytes[..bytes.len() - 1], &[bytes.as_slice(), &[0]].concat(), &[0x02, 0, 0], &[0x01, 0, 1, 0], &[]]
    {
        assert!(decode_admins(bad).is_err(), "{bad:?}");
    }
    assert!(encode_admins(&[String::new()]).is_err());
}

#[test]
fn the_relays_framing_reader_agrees_with_openmls() {
    use sealroom_protocol::mls::{
        parse_framing, wire_format, ContentType as Ct, WIRE_GROUP_INFO, WIRE_WELCOME,
    };
    let (alice, bob) = (user("alice"), user("bob"));
    let p = pins(&[&alice, &bob]);
    let p = pin_fn(&p);
    let (mut a, mut b1, mut b2) = (device(&alice), device(&bob), device(&bob));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    assert_eq!(wire_format(&info).unwrap(), WIRE_GROUP_INFO);
    let mut log = Log { group_info: info, ..Log::default() };
    let c = commit_and_order(
        &mut a,
        &g,
        &Changes { add: vec![invitee(&bob, &mut [&mut b1])], ..Changes::default() },
        &mut log,
        &p,
    );
    let f = parse_framing(&c.message).unwrap();
    assert_eq!(
        (f.group_id.as_slice(), f.epoch, f.content_type, f.external_join),
        (&g[..], 0, Ct::Commit, false)
    );
    assert_eq!(wire_format(c.welcome.as_ref().unwrap()).unwrap(), WIRE_WELCOME);
    assert!(parse_framing(c.welcome.as_ref().unwrap()).is_err());
    let m = a.encrypt(&g, 1, &text("x")).unwrap();
    let f = parse_framing(&m).unwrap();
    assert_eq!((f.epoch, f.content_type), (1, Ct::Application));
    let join = b2.join_external(&log.group_info, &p).unwrap();
    let f = parse_framing(&join.message).unwrap();
    assert_eq!(
        (f.group_id.as_slice(), f.epoch, f.content_type, f.external_join),
        (&g[..], 1, Ct::Commit, true)
    );
}

#[test]
fn a_commit_past_the_member_limit_is_refused_and_changes_nothing() {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let p = pins(&[&alice, &bob, &carol]);
    let p = pin_fn(&p);
    let (mut a, mut b, mut c) = (device(&alice), device(&bob), device(&carol));
    let (g, _) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log::default();
    let add_bob = Changes { add: vec![invitee(&bob, &mut [&mut b])], ..Changes::default() };
    assert_eq!(a.commit(&g, &add_bob, 1, &p).unwrap_err(), MlsError::TooManyMembers { max: 1 });
    assert!(a.commit(&g, &Changes::default(), 1, &p).is_ok(), "no commit was left pending");
    a.commit_refused(&g).unwrap();
    commit_and_order(&mut a, &g, &add_bob, &mut log, &p);
    // At the limit of two, carol fits only in the commit that removes bob.
    let add_carol = Changes { add: vec![invitee(&carol, &mut [&mut c])], ..Changes::default() };
    assert_eq!(a.commit(&g, &add_carol, 2, &p).unwrap_err(), MlsError::TooManyMembers { max: 2 });
    let swap = Changes { remove_users: vec!["bob".into()], ..add_carol };
    let commit = a.commit(&g, &swap, 2, &p).unwrap();
    assert_eq!(
        (commit.added_users, commit.removed_users),
        (vec!["carol".to_string()], vec!["bob".to_string()])
    );
}

/// A device added by a Welcome it had not read yet, which joined by external commit meanwhile
/// (its user's other device being in the group), is in the tree once: the external commit
/// replaces the leaf its key package made (a signature key is unique in a tree, RFC 9420
/// §7.3), and the Welcome is then discarded. Everyone agrees, and the device reads on.
#[test]
fn a_device_added_and_joining_by_itself_at_once_is_in_the_tree_once() {
    let (alice, bob) = (user("alice"), user("bob"));
    let p = pins(&[&alice, &bob]);
    let p = pin_fn(&p);
    let (mut a, mut b1, mut b) = (device(&alice), device(&bob), device(&bob));
    let (g, info) = a.create_group(&["alice".into()]).unwrap();
    let mut log = Log { group_info: info, ..Log::default() };
    commit_and_order(
        &mut a,
        &g,
        &Changes { add: vec![invitee(&bob, &mut [&mut b1, &mut b])], ..Changes::default() },
        &mut log,
        &p,
    );
    b1.join(&log.welcome_for(b1.device_id()), &p).unwrap();
    let bob_device = b.device_id();
    let leaves = |d: &MlsDevice| d.members(&g).unwrap().iter().filter(|m| m.device == bob_device).count();
    assert_eq!((leaves(&a), leaves(&b1)), (1, 1));
    // Bob's second device does not read its Welcome: it joins from the GroupInfo.
    let join = b.join_external(&log.group_info, &p).unwrap();
    assert!(log.submit_commit(b.device_id(), &join));
    b.commit_accepted(&g).unwrap();
    for d in [&mut a, &mut b1] {
        catch_up(d, &g, &log, &p);
    }
    assert_eq!((leaves(&a), leaves(&b1), leaves(&b)), (1, 1, 1));
    assert_eq!(a.members(&g).unwrap(), b.members(&g).unwrap());
    assert_eq!(a.epoch(&g).unwrap(), b.epoch(&g).unwrap());
    log.append(a.device_id(), a.encrypt(&g, 5, &text("still in")).unwrap());
    assert_eq!(catch_up(&mut b, &g, &log, &p), ["still in"]);
    // The Welcome, read late, is refused: the device is in the group already.
    assert!(b.join(&log.welcome_for(bob_device), &p).is_err());
    assert_eq!(catch_up(&mut b1, &g, &log, &p), ["still in"]);
}
