//! Chain verification throughput (target ≥ 1,000,000 events/s), against SHA-256 over the same
//! canonical bytes as the in-run baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use audit::chain::{GENESIS, canonical_bytes, seal};
use audit::{Actor, AuditAction, ChainVerifier, NewAuditEvent, Target};
use chrono::DateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rbac_core::OrgId;
use sha2::{Digest, Sha256};

fn chain(n: i64) -> Vec<audit::AuditEvent> {
    let org = OrgId::new();
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let at = DateTime::from_timestamp(1_763_893_815 + seq, 0).unwrap();
            let e = NewAuditEvent::new(
                org,
                at,
                Actor::user("usr_01a2140b4f7076dead2e8b9e6b707124", "Sarah"),
                AuditAction::ChatInterfaceCreated,
                Target::new("chat_interface", format!("res_{seq}"), "Customer Support"),
            );
            let r = seal(e, seq, prev);
            prev = r.hash;
            r
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let records = chain(100_000);
    let mut g = c.benchmark_group("audit_chain_100k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("baseline_sha256_of_canonical_bytes", |b| {
        b.iter(|| {
            let mut x = [0u8; 32];
            for r in &records {
                let mut h = Sha256::new();
                h.update(x);
                h.update(canonical_bytes(&r.event, r.seq, r.schema_version));
                x = h.finalize().into();
            }
            x
        })
    });
    g.bench_function("verify_chain", |b| {
        b.iter(|| {
            let mut v = ChainVerifier::new();
            for r in &records {
                v.push(r).unwrap();
            }
            v.finish().unwrap().records
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
