//! Per-check cost of rbac-core, cedar-policy and casbin on the same 100,000 requests.
//!
//! Setup builds the fixture for 100 and for 10,000 organizations, loads it into
//! the three engines and panics unless they agree on every request. Each timed
//! iteration then decides the whole request list, so ns per check is the time
//! per iteration divided by the list length (criterion reports the throughput
//! as elements per second; `cargo run --release --example report` prints ns/check).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use rbac_bench::casbin_engine::CasbinEngine;
use rbac_bench::cedar_engine::CedarEngine;
use rbac_bench::fixture::{Fixture, FixtureConfig};
use rbac_bench::{REQUESTS, SEED, agreement};
use rbac_core::{Context, Permission, Resource, Subject, authorize};

const SIZES: [usize; 2] = [100, 10_000];

struct Prepared {
    tenants: usize,
    fx: Fixture,
    cedar: CedarEngine,
    casbin: CasbinEngine,
}

fn prepare(tenants: usize) -> Prepared {
    let start = Instant::now();
    let fx = Fixture::generate(FixtureConfig {
        tenants,
        requests: REQUESTS,
        seed: SEED,
    });
    let cedar = CedarEngine::new(&fx);
    let casbin = CasbinEngine::new(&fx);
    eprintln!(
        "fixture {tenants} tenants: {} users, {} teams, {} targets, built in {:.1?}",
        fx.users.len(),
        fx.teams.len(),
        fx.targets.len(),
        start.elapsed()
    );
    let start = Instant::now();
    let report = agreement::assert_agreement(&fx, &cedar, &casbin);
    eprintln!(
        "agreement check, {tenants} tenants ({:.1?}): {report}",
        start.elapsed()
    );
    Prepared {
        tenants,
        fx,
        cedar,
        casbin,
    }
}

fn rbac_core_all(fx: &Fixture) -> usize {
    let mut allowed = 0;
    for r in black_box(&fx.requests) {
        let d = authorize(
            &fx.subjects[r.subject as usize],
            r.perm,
            &fx.resources[r.target as usize],
            &fx.contexts[r.tenant as usize],
        );
        allowed += usize::from(d.is_allowed());
    }
    allowed
}

/// The same inputs copied into one vector in request order, as a server holds
/// the subject it has just built: no random lookups into the fixture.
fn in_request_order(fx: &Fixture) -> Vec<(Subject, Permission, Resource, Context)> {
    fx.requests
        .iter()
        .map(|r| {
            (
                fx.subjects[r.subject as usize].clone(),
                r.perm,
                fx.resources[r.target as usize],
                fx.contexts[r.tenant as usize],
            )
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let prepared: Vec<Prepared> = SIZES.into_iter().map(prepare).collect();
    let elements = Throughput::Elements(REQUESTS as u64);

    let mut group = c.benchmark_group("rbac-core");
    group
        .throughput(elements.clone())
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for p in &prepared {
        group.bench_with_input(BenchmarkId::from_parameter(p.tenants), p, |b, p| {
            b.iter(|| rbac_core_all(&p.fx));
        });
    }
    group.finish();

    // Diagnostic, not a target figure: separates authorize's own cost from the
    // cache misses of looking its inputs up in a large fixture.
    let mut group = c.benchmark_group("rbac-core-sequential");
    group
        .throughput(elements.clone())
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for p in &prepared {
        let inputs = in_request_order(&p.fx);
        group.bench_with_input(
            BenchmarkId::from_parameter(p.tenants),
            &inputs,
            |b, inputs| {
                b.iter(|| {
                    let mut allowed = 0usize;
                    for (s, perm, r, ctx) in black_box(inputs) {
                        allowed += usize::from(authorize(s, *perm, r, ctx).is_allowed());
                    }
                    allowed
                });
            },
        );
    }
    group.finish();

    // One iteration of the slow engines takes seconds: flat sampling, ten samples.
    let mut group = c.benchmark_group("cedar-policy");
    group
        .throughput(elements.clone())
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for p in &prepared {
        group.bench_with_input(BenchmarkId::from_parameter(p.tenants), p, |b, p| {
            b.iter(|| {
                let mut allowed = 0usize;
                for r in black_box(&p.cedar.requests) {
                    allowed += usize::from(p.cedar.decide(r));
                }
                allowed
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("casbin");
    group
        .throughput(elements)
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for p in &prepared {
        let args = p.casbin.args(&p.fx);
        group.bench_with_input(BenchmarkId::from_parameter(p.tenants), &args, |b, args| {
            b.iter(|| {
                let mut allowed = 0usize;
                for a in black_box(args) {
                    allowed += usize::from(p.casbin.decide(*a));
                }
                allowed
            });
        });
    }
    group.finish();
}

criterion_group!(authorization, benches);
criterion_main!(authorization);
