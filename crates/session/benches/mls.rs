//! Criterion benchmarks of group conversations on OpenMLS (issue 13), native:
//! `cargo xtask bench-mls` (results: docs/BENCHMARKS.md). Every member is a user with one
//! device; the creator commits the adds as one commit, as `group create --member …` does.
#![allow(clippy::unwrap_used)] // a benchmark fails loudly on a broken setup

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use sealroom_crypto::{Payload, SigningSecret};
use sealroom_session::mls::{Changes, Invitee, MlsDevice, Processed};

#[path = "support/mls.rs"]
mod support;
use support::{group_of, members, NOW};

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("mls_create_group");
    g.sample_size(10);
    for n in [10usize, 100, 1000] {
        let m = members(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &m, |b, m| b.iter(|| group_of(m)));
    }
    g.finish();

    // Add one member to, and remove one from, a group of 1,000.
    let mut m = members(1000);
    let extra_identity = SigningSecret::generate().unwrap();
    m.pins.insert("extra".into(), extra_identity.public_key());
    let mut extra = MlsDevice::new(&extra_identity, "extra", NOW).unwrap();
    let extra_kp = extra.key_packages(1).unwrap();
    let (base, group, _) = group_of(&m);
    let sealed = base.seal(&m.creator.1).unwrap();
    let id = base.device_id();
    let pins = |u: &str| m.pins.get(u).cloned();
    let mut g = c.benchmark_group("mls_at_1000_members");
    g.sample_size(10);
    g.bench_function("add_one", |b| {
        b.iter_batched(
            || MlsDevice::open(&m.creator.1, &m.creator.0, &id, &sealed).unwrap(),
            |mut d| {
                let add = vec![Invitee { user: "extra".into(), key_packages: extra_kp.clone() }];
                d.commit(&group, &Changes { add, ..Changes::default() }, 1001, &pins).unwrap()
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("remove_one", |b| {
        b.iter_batched(
            || MlsDevice::open(&m.creator.1, &m.creator.0, &id, &sealed).unwrap(),
            |mut d| {
                let changes = Changes { remove_users: vec!["u500".into()], ..Changes::default() };
                d.commit(&group, &changes, 1001, &pins).unwrap()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // One message, encrypted by one member and decrypted by another (a group of two).
    let m2 = members(2);
    let pins2 = |u: &str| m2.pins.get(u).cloned();
    let (mut sender, group2, commit) = group_of(&m2);
    let mut receiver = m2.devices.into_iter().next().unwrap();
    receiver.join(&commit.welcome.unwrap(), &pins2).unwrap();
    let text = Payload::Text("x".repeat(200));
    let mut position = 1u64;
    c.bench_function("mls_encrypt_and_decrypt_200_byte_message", |b| {
        b.iter(|| {
            let message = sender.encrypt(&group2, NOW, &text).unwrap();
            position += 1;
            let read = receiver.process(&group2, position, false, &message, &pins2).unwrap();
            assert!(matches!(read, Processed::Message { .. }));
        })
    });
    // (After the pair: messages nobody decrypts would put the receiver's ratchet out of reach.)
    c.bench_function("mls_encrypt_200_byte_message", |b| {
        b.iter(|| sender.encrypt(&group2, NOW, &text).unwrap())
    });

    // A new device of a member joins a group of 100 by external commit.
    let m100 = members(100);
    let info = group_of(&m100).2.group_info;
    let pins100 = |u: &str| m100.pins.get(u).cloned();
    let mut g = c.benchmark_group("mls_external_join");
    g.sample_size(10);
    g.bench_function("at_100_members", |b| {
        b.iter_batched(
            || MlsDevice::new(&m100.creator.1, &m100.creator.0, NOW).unwrap(),
            |mut d| d.join_external(&info, &pins100).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(mls, benches);
criterion_main!(mls);
