//! The audit log through the real store, on SQLite and (with `AXIE_TEST_POSTGRES_URL`)
//! PostgreSQL: append throughput (batched journals, one append per event from one task and from
//! 16 at once, which `append` commits in groups), the filtered
//! first page at a large log, CSV export of the whole log with its memory growth, and chain
//! verification read back from the database. Each figure comes with an in-run baseline.
//!
//! `cargo bench -p store-sea --bench audit_store` (`AXIE_BENCH_EVENTS`, default 1,000,000, sets
//! the size of the log that search, export and verification run against).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a benchmark program"
)]

use std::time::{Duration, Instant};

use audit::{
    ActionFilter, Actor, AuditAction, AuditQuery, AuditStore, Journal, NewAuditEvent, Outcome,
    Target,
};
use chrono::{DateTime, Utc};
use rbac_core::OrgId;
use store_sea::{DatabaseUrl, PoolOptions, SeaStore};

const ACTIONS: [AuditAction; 8] = [
    AuditAction::Login,
    AuditAction::ChatInterfaceUpdated,
    AuditAction::DocumentUploaded,
    AuditAction::ApiKeyCreated,
    AuditAction::MemberInvited,
    AuditAction::RoleChanged,
    AuditAction::AnalyticsViewed,
    AuditAction::KnowledgeBaseUpdated,
];

/// Concurrent writers (each its own organization) for the one-commit-per-event figure.
const WRITERS: u64 = 16;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_760_000_000, 0).unwrap()
}

/// Event `i` of a log spread over 30 days: 8 actions, 200 actors, 5,000 targets, 2 % denied.
fn event(org: OrgId, i: u64, total: u64) -> NewAuditEvent {
    let at = start() + chrono::Duration::milliseconds((i * 30 * 86_400_000 / total.max(1)) as i64);
    let actor = format!("usr_{:032x}", i % 200);
    let mut e = NewAuditEvent::new(
        org,
        at,
        Actor::user(actor.as_str(), format!("Person {}", i % 200)),
        ACTIONS[(i % 8) as usize],
        Target::new(
            "chat_interface",
            format!("res_{:032x}", i % 5000),
            "Customer Support",
        ),
    );
    e.context.ip = "203.0.113.7".into();
    e.context.user_agent = "bench".into();
    // Records carry metadata, like the server's (a role, the fields an edit changed).
    let role = if i.is_multiple_of(2) { "user" } else { "admin" };
    e = e.with_metadata(
        audit::Metadata::from_value(serde_json::json!({
            "changes": ["name", "model"],
            "role": role,
        }))
        .unwrap(),
    );
    if i.is_multiple_of(50) {
        e = e.with_outcome(Outcome::Denied {
            reason: "role_lacks_permission".into(),
        });
    }
    e
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn fill(store: &SeaStore, org: OrgId, n: u64, batch: u64) -> Duration {
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut j = Journal::default();
        for k in i..(i + batch).min(n) {
            j = j.and_record(event(org, k, n));
        }
        store.append(j).await.unwrap();
        i += batch;
    }
    t.elapsed()
}

async fn run(label: &str, url: DatabaseUrl, events: u64) {
    let store = std::sync::Arc::new(
        SeaStore::connect(&url, PoolOptions::default())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    println!("\n## {label}\n");

    // Append: a baseline of plain multi-row inserts of rows the same size, then the chained store.
    store
        .execute_sql("CREATE TABLE bench_rows (org_id VARCHAR(64), seq BIGINT, body TEXT)")
        .await
        .unwrap();
    let body = "x".repeat(460);
    let n_base = 100_000u64;
    let t = Instant::now();
    for chunk in 0..(n_base / 1000) {
        let values: Vec<String> = (0..1000)
            .map(|k| format!("('org_bench', {}, '{body}')", chunk * 1000 + k))
            .collect();
        store
            .execute_sql(&format!(
                "INSERT INTO bench_rows VALUES {}",
                values.join(",")
            ))
            .await
            .unwrap();
    }
    let base_rate = n_base as f64 / t.elapsed().as_secs_f64();
    let org = OrgId::new();
    let n_append = 100_000u64;
    let took = fill(&store, org, n_append, 1000).await;
    let batched = n_append as f64 / took.as_secs_f64();
    // Larger journals (an import, a busy group commit): the scattered index pages each journal
    // dirties are shared by more records.
    let took = fill(&store, OrgId::new(), n_append, 10_000).await;
    let batched_large = n_append as f64 / took.as_secs_f64();
    let single_org = OrgId::new();
    let n_single = 5_000u64;
    let took = fill(&store, single_org, n_single, 1).await;
    let single = n_single as f64 / took.as_secs_f64();
    // Audit appends as a server sees them: many organizations at once; `append` commits what
    // arrives during a commit together.
    let t = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { fill(&store, OrgId::new(), n_single / WRITERS, 1).await })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let concurrent = (n_single / WRITERS * WRITERS) as f64 / t.elapsed().as_secs_f64();
    println!("| append | events/s | baseline (plain inserts, same row size) | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| chained, journals of 1,000 | {batched:.0} | {base_rate:.0} | {:.2}× the time |",
        base_rate / batched
    );
    println!(
        "| chained, journals of 10,000 | {batched_large:.0} | {base_rate:.0} | {:.2}× the time |",
        base_rate / batched_large
    );
    println!("| chained, one append per event (one commit each) | {single:.0} | | |");
    println!(
        "| chained, one append per event, {WRITERS} organizations at once (group commits) | {concurrent:.0} | | |"
    );

    // A large log for the reads.
    let big = OrgId::new();
    let took = fill(&store, big, events, 1000).await;
    println!(
        "\nLog of {events} events written in {:.1} s ({:.0} events/s).\n",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
    // Planner statistics, as the server's hourly `optimize` (SQLite) or autovacuum (PostgreSQL)
    // keep them.
    store.optimize().await.unwrap();
    if label.starts_with("PostgreSQL") {
        store.execute_sql("ANALYZE audit_events").await.unwrap();
    }

    // Filtered first pages (50 newest), 200 times each, against a trivial query as the baseline.
    let end = start() + chrono::Duration::days(30);
    let queries: Vec<(&str, AuditQuery)> = vec![
        (
            "no filter",
            AuditQuery {
                limit: 50,
                ..AuditQuery::default()
            },
        ),
        (
            "one actor",
            AuditQuery {
                actor_id: Some(format!("usr_{:032x}", 7)),
                limit: 50,
                ..AuditQuery::default()
            },
        ),
        (
            "action prefix `member.`",
            AuditQuery {
                action: Some(ActionFilter::parse("member.")),
                limit: 50,
                ..AuditQuery::default()
            },
        ),
        (
            "one resource",
            AuditQuery {
                target_kind: Some("chat_interface".into()),
                target_id: Some(format!("res_{:032x}", 42)),
                limit: 50,
                ..AuditQuery::default()
            },
        ),
        (
            "last 7 days, denied",
            AuditQuery {
                since: Some(end - chrono::Duration::days(7)),
                outcome: Some("denied".into()),
                limit: 50,
                ..AuditQuery::default()
            },
        ),
        (
            "actor + action + 30-day range",
            AuditQuery {
                actor_id: Some(format!("usr_{:032x}", 3)),
                action: Some(ActionFilter::parse("auth.login")),
                since: Some(start()),
                until: Some(end),
                limit: 50,
                ..AuditQuery::default()
            },
        ),
    ];
    let mut base = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        store.execute_sql("SELECT 1").await.unwrap();
        base.push(t.elapsed());
    }
    println!("| first page (50 rows) at {events} events | p50 | p95 |");
    println!("|---|---:|---:|");
    println!(
        "| baseline: `SELECT 1` round trip | {} | {} |",
        ms(pct(base.clone(), 0.5)),
        ms(pct(base, 0.95))
    );
    for (name, q) in &queries {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..200 {
            let t = Instant::now();
            rows = store.search(big, q).await.unwrap().len();
            times.push(t.elapsed());
        }
        println!(
            "| {name} ({rows} rows) | {} | {} |",
            ms(pct(times.clone(), 0.5)),
            ms(pct(times, 0.95))
        );
    }

    // Export: the whole log as CSV into a sink, page by page, with the growth of resident memory;
    // the baseline reads the same pages without formatting them.
    let page = |before: Option<i64>| AuditQuery {
        before_seq: before,
        limit: audit::MAX_PAGE,
        ..AuditQuery::default()
    };
    let t = Instant::now();
    let mut before = None;
    let mut read = 0u64;
    loop {
        let p = store.search(big, &page(before)).await.unwrap();
        read += p.len() as u64;
        before = p.last().map(|r| r.seq);
        if p.len() < audit::MAX_PAGE as usize {
            break;
        }
    }
    let read_rate = read as f64 / t.elapsed().as_secs_f64();
    let rss_before = rss_kib();
    let mut peak = rss_before;
    let t = Instant::now();
    // As the server and the `export-audit` command do: the next page is read while this one
    // is written.
    let mut x = audit::export::CsvExporter::new(std::io::sink()).unwrap();
    let written = audit::for_each_page(&*store, big, page(None), |p| {
        let wrote = p.iter().try_for_each(|r| x.write(r));
        peak = peak.max(rss_kib());
        std::future::ready(wrote.map_err(|e| audit::AuditError::Store(audit::StoreError::new(e))))
    })
    .await
    .unwrap();
    x.finish().unwrap();
    let csv_rate = written as f64 / t.elapsed().as_secs_f64();
    println!("\n| export of {written} rows | rows/s | resident memory growth |");
    println!("|---|---:|---:|");
    println!("| baseline: read the pages only | {read_rate:.0} | |");
    println!(
        "| CSV (formula-safe) into a sink | {csv_rate:.0} | {:.1} MiB |",
        (peak.saturating_sub(rss_before)) as f64 / 1024.0
    );

    // Verification read back from the database.
    let t = Instant::now();
    let v = audit::verify_chain(&*store, big, b"bench-key")
        .await
        .unwrap()
        .unwrap();
    let verify_rate = v.records as f64 / t.elapsed().as_secs_f64();
    println!(
        "\n| verification from the database | events/s | baseline (read the pages only) | ratio |"
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| {} events | {verify_rate:.0} | {read_rate:.0} | {:.2}× the time |",
        v.records,
        read_rate / verify_rate
    );
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::var("AXIE_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = DatabaseUrl::parse(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    ))
    .unwrap();
    run("SQLite (file, WAL)", sqlite, events).await;
    if let Some(server) = store_sea::testing::postgres_server() {
        let url = store_sea::testing::fresh_postgres(&server).await.unwrap();
        run("PostgreSQL 15 (same machine)", url, events).await;
    } else {
        println!("\nPostgreSQL skipped: set AXIE_TEST_POSTGRES_URL");
    }
}
