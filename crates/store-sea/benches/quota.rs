//! Quota check-and-increment and credit consumption through the real store, on SQLite and (with
//! `AXIE_TEST_POSTGRES_URL`) PostgreSQL, each next to an in-run baseline: the same number of
//! single-row `UPDATE` statements, the smallest write transaction the database can do.
//!
//! `cargo bench -p store-sea --bench quota`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "a benchmark program"
)]

use std::sync::Arc;
use std::time::Instant;

use billing_limits::credits::{self, EntryKind};
use rbac_core::{CreditOperationId, OrgId, TeamId};
use store_sea::{DatabaseUrl, PoolOptions, SeaStore};
use tenancy::credits::{CreditStore, NewOperation};
use tenancy::metering::MeteringStore;

const N: u64 = 20_000;
const TASKS: u64 = 16;

async fn rate<F, Fut>(n: u64, tasks: u64, f: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|w| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut i = w;
                while i < n {
                    f(i).await;
                    i += tasks;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn run(label: &str, url: DatabaseUrl) {
    let store = Arc::new(
        SeaStore::connect(
            &url,
            PoolOptions {
                max_connections: 16,
                ..PoolOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    store.migrate().await.unwrap();
    store
        .execute_sql("CREATE TABLE bench_counter (id INTEGER PRIMARY KEY, n BIGINT)")
        .await
        .unwrap();
    store
        .execute_sql("INSERT INTO bench_counter VALUES (1, 0)")
        .await
        .unwrap();
    println!("\n## {label}\n");
    println!("| operation | tasks | ops/s | baseline (one-row UPDATE) ops/s | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for tasks in [1, TASKS] {
        let s = store.clone();
        let base = rate(N, tasks, move |_| {
            let s = s.clone();
            async move {
                s.execute_sql("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
                    .await
                    .unwrap();
            }
        })
        .await;
        // Quota check-and-increment, exact: one conditional reservation of one call per call.
        let (org, team) = (OrgId::new(), TeamId::new());
        let s = store.clone();
        let exact = rate(N, tasks, move |_| {
            let s = s.clone();
            async move {
                let (granted, _) = s
                    .reserve_within(org, "api_calls", "2026-11", 1, Some(u64::MAX / 2))
                    .await
                    .unwrap();
                assert_eq!(granted, 1);
            }
        })
        .await;
        println!(
            "| quota check-and-increment, one write per call (`reserve_within`) | {tasks} | {exact:.0} | {base:.0} | {:.2} |",
            exact / base
        );
        // The API-call meter as the server runs it: blocks of 0.1 % of a 1,000,000-call month
        // (at most 100) reserved in the database, handed out in memory.
        let meter = Arc::new(tenancy::metering::CallMeter::new(100));
        let organization = Arc::new(tenancy::Organization {
            id: OrgId::new(),
            name: "Bench".into(),
            plan: billing_limits::Plan::Enterprise,
            profile: tenancy::CompanyProfile::default(),
            access: rbac_core::FeatureAccess::default(),
            security: tenancy::SecuritySettings::default(),
            created_at: chrono::Utc::now(),
            audit_archived_at: None,
            limit_overrides: billing_limits::LimitOverrides(
                [(billing_limits::Limit::ApiCallsPerMonth, Some(1_000_000))].into(),
            ),
            limit_overrides_plan: Some(billing_limits::Plan::Enterprise),
        });
        let s = store.clone();
        let (m, o) = (meter.clone(), organization.clone());
        let n_meter = N * 10;
        let metered = rate(n_meter, tasks, move |_| {
            let (s, m, o) = (s.clone(), m.clone(), o.clone());
            async move {
                tenancy::metering::meter_call(&*s, &m, &o, team, chrono::Utc::now())
                    .await
                    .unwrap();
            }
        })
        .await;
        meter.flush(&*store).await.unwrap();
        assert_eq!(
            store
                .monthly(
                    organization.id,
                    "api_calls",
                    &tenancy::metering::month_key(chrono::Utc::now())
                )
                .await
                .unwrap()
                - meter.unused(
                    organization.id,
                    &tenancy::metering::month_key(chrono::Utc::now())
                ),
            n_meter,
            "every call counted exactly once"
        );
        println!(
            "| quota check-and-increment, API-call meter (`meter_call`, blocks of 100) | {tasks} | {metered:.0} | {base:.0} | {:.2} |",
            metered / base
        );
        // Credit consumption: one debit with its idempotency key, entry and balance check.
        let s = store.clone();
        let n_credits = N / 4;
        let top_up = NewOperation {
            id: CreditOperationId::new(),
            org,
            idempotency_key: format!("top-up-{tasks}"),
            fingerprint: String::new(),
            kind: EntryKind::Purchase,
            reverses: None,
            postings: credits::purchase(credits::Account::Team(team), 1_000_000_000, &[]).unwrap(),
            description: "bench".into(),
            actor: "bench".into(),
            actor_id: "bench".into(),
            created_at: chrono::Utc::now(),
            low_credit: tenancy::credits::LowCreditAlerts::none(),
        };
        s.post_credits(&top_up, None, audit::Journal::default())
            .await
            .unwrap();
        let consume = rate(n_credits, tasks, move |i| {
            let s = s.clone();
            async move {
                let op = NewOperation {
                    id: CreditOperationId::new(),
                    org,
                    idempotency_key: format!("use-{tasks}-{i}"),
                    fingerprint: String::new(),
                    kind: EntryKind::Consumption,
                    reverses: None,
                    postings: credits::consume(team, 1).unwrap(),
                    description: "bench".into(),
                    actor: "bench".into(),
                    actor_id: "bench".into(),
                    created_at: chrono::Utc::now(),
                    low_credit: tenancy::credits::LowCreditAlerts::none(),
                };
                s.post_credits(&op, None, audit::Journal::default())
                    .await
                    .unwrap();
            }
        })
        .await;
        println!(
            "| credit consumption (`post_credits`) | {tasks} | {consume:.0} | {base:.0} | {:.2} |",
            consume / base
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = DatabaseUrl::parse(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    ))
    .unwrap();
    run("SQLite (file, WAL)", sqlite).await;
    if let Some(server) = store_sea::testing::postgres_server() {
        let url = store_sea::testing::fresh_postgres(&server).await.unwrap();
        run("PostgreSQL (same machine)", url).await;
    } else {
        println!("\nPostgreSQL skipped: set AXIE_TEST_POSTGRES_URL");
    }
}
