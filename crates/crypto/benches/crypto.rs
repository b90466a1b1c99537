//! Criterion benchmarks of the crypto core. `cargo xtask bench` (results: docs/BENCHMARKS.md).
#![allow(clippy::unwrap_used)] // a benchmark fails loudly on a broken setup

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealroom_crypto::*;

fn pair() -> (IdentitySecret, PublicKey, IdentitySecret, PublicKey) {
    let a = IdentitySecret::from_bytes([1; 32]);
    let b = IdentitySecret::from_bytes([2; 32]);
    let (ap, bp) = (a.public_key(), b.public_key());
    (a, ap, b, bp)
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("password");
    g.sample_size(10);
    g.bench_function("argon2id_production_64MiB_t3_p1", |bch| {
        bch.iter(|| {
            PasswordKeys::derive("correct horse battery staple", &[7; 16], KdfParams::PRODUCTION).unwrap()
        })
    });
    g.finish();

    let (a, ap, b, bp) = pair();
    c.bench_function("pair_key_derivation", |bch| bch.iter(|| a.pair_key(&bp).unwrap()));

    let key = a.pair_key(&bp).unwrap();
    let text = Payload::Text("x".repeat(200));
    let header = MessageHeader { client_msg_id: [3; 16], sent_at_ms: 1 };
    let env = seal_message(&key, &ap, &bp, &header, &text).unwrap();
    c.bench_function("encrypt_200_byte_message", |bch| {
        bch.iter(|| seal_message(&key, &ap, &bp, &header, &text).unwrap())
    });
    c.bench_function("decrypt_200_byte_message", |bch| {
        bch.iter(|| open_message(&key, &ap, &bp, &env).unwrap())
    });

    let kb = b.pair_key(&ap).unwrap();
    let history: Vec<Vec<u8>> = (0..10_000)
        .map(|i| {
            let h = MessageHeader { client_msg_id: [(i % 256) as u8; 16], sent_at_ms: i };
            seal_message(&key, &ap, &bp, &h, &Payload::Text(format!("message number {i} with some words")))
                .unwrap()
        })
        .collect();
    let mut g = c.benchmark_group("history");
    g.sample_size(10);
    g.bench_function("decrypt_10000_messages_cached_key", |bch| {
        bch.iter(|| {
            history.iter().map(|e| open_message(&kb, &ap, &bp, e).unwrap().header.sent_at_ms).sum::<u64>()
        })
    });
    g.finish();

    let fk = FileKey::from_bytes([5; 32]);
    let mut g = c.benchmark_group("attachment");
    g.sample_size(10);
    for mib in [1usize, 16] {
        let data = vec![0x5au8; mib << 20];
        let (blob, hash) = encrypt_attachment(&fk, &data).unwrap();
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::new("encrypt", format!("{mib}MiB")), &data, |bch, d| {
            bch.iter(|| encrypt_attachment(&fk, d).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("decrypt", format!("{mib}MiB")), &blob, |bch, bl| {
            bch.iter(|| decrypt_attachment(&fk, bl, Some(&hash)).unwrap())
        });
    }
    g.finish();

    c.bench_function("safety_number", |bch| {
        bch.iter(|| SafetyNumber::compute("alice", &ap, "bob", &bp).unwrap())
    });
}

criterion_group!(crypto, benches);
criterion_main!(crypto);
