//! Criterion benchmarks of group conversations on OpenMLS (issue 13), native:
//! `cargo xtask bench-mls` (results: docs/BENCHMARKS.md). Every member is a user with one
//! device; the creator commits the adds as one commit, as `group create --member …` does.
#![allow(clippy::unwrap_used)] // a benchmark fails loudly on a broken setup

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};

#[path = "support/mls.rs"]
mod support;
use support::{at_thousand, group_of, joining, members, pair};

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("mls_create_group");
    g.sample_size(10);
    for n in [10usize, 100, 1000] {
        let m = members(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &m, |b, m| b.iter(|| group_of(m)));
    }
    g.finish();

    // Add one member to, and remove one from, a group of 1,000.
    let big = at_thousand();
    let mut g = c.benchmark_group("mls_at_1000_members");
    g.sample_size(10);
    g.bench_function("add_one", |b| {
        b.iter_batched(|| big.open(), |mut d| big.add_one(&mut d), BatchSize::LargeInput)
    });
    g.bench_function("remove_one", |b| {
        b.iter_batched(|| big.open(), |mut d| big.remove_one(&mut d), BatchSize::LargeInput)
    });
    g.finish();

    // One message, encrypted by one member and decrypted by another (a group of two).
    let mut two = pair();
    c.bench_function("mls_encrypt_and_decrypt_200_byte_message", |b| b.iter(|| two.round_trip()));
    c.bench_function("mls_encrypt_200_byte_message", |b| b.iter(|| two.encrypt()));

    // A new device of a member joins a group of 100 by external commit.
    let j = joining(100);
    let mut g = c.benchmark_group("mls_external_join");
    g.sample_size(10);
    g.bench_function("at_100_members", |b| {
        b.iter_batched(|| j.device(), |d| j.join(d), BatchSize::LargeInput)
    });
    g.finish();
}

criterion_group!(mls, benches);
criterion_main!(mls);
