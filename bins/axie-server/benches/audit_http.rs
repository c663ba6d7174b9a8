//! The audit log over HTTP: the real server (in this process) answering filtered first pages of
//! `GET /api/v1/orgs/{org}/audit-events` and streaming a CSV export, against a large log, on
//! SQLite and (with `AXIE_TEST_POSTGRES_URL`) PostgreSQL.
//!
//! `cargo bench -p axie-server --bench audit_http` (`AXIE_BENCH_EVENTS`, default 1,000,000, sets
//! the size of the log). Each page is asked for 200 times, one request at a time, as the Owner
//! with a session token; the baselines are the same server's `GET /healthz` (no database) and
//! `GET /api/v1/me` (authentication and the caller's account, no audit query).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "a benchmark program"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use audit::{Actor, AuditAction, AuditStore, Journal, NewAuditEvent, Outcome, Target};
use axie_server::Application;
use chrono::{DateTime, Utc};
use rbac_core::OrgId;
use serde_json::Value;

const RUNS: usize = 200;

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

fn actor(i: u64) -> String {
    format!("usr_{:032x}", i % 200)
}

/// Event `i` of `total`, spread over the 30 days before `end`: 8 actions, 200 actors, 5,000
/// resources, 2 % denied (the same shape as `store-sea`'s `audit_store` benchmark).
fn event(org: OrgId, i: u64, total: u64, end: DateTime<Utc>) -> NewAuditEvent {
    let back = (total - i) * 30 * 86_400_000 / total.max(1);
    let at = end - chrono::Duration::milliseconds(back as i64);
    let mut e = NewAuditEvent::new(
        org,
        at,
        Actor::user(actor(i).as_str(), format!("Person {}", i % 200)),
        ACTIONS[(i % 8) as usize],
        Target::new(
            "chat_interface",
            format!("res_{:032x}", i % 5000),
            "Customer Support",
        ),
    );
    e.context.ip = "203.0.113.7".into();
    e.context.user_agent = "bench".into();
    if i.is_multiple_of(50) {
        e = e.with_outcome(Outcome::Denied {
            reason: "role_lacks_permission".into(),
        });
    }
    e
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// p50 and p95 in milliseconds of `RUNS` sequential GETs of `url`, and the items of the last.
async fn timed(c: &reqwest::Client, url: &str, token: Option<&str>) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(RUNS);
    let mut items = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut req = c.get(url);
        if let Some(tok) = token {
            req = req.bearer_auth(tok);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let body = res.bytes().await.unwrap();
        times.push(t.elapsed());
        items = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["items"].as_array().map(Vec::len))
            .unwrap_or(0);
    }
    (pct(&mut times, 0.5), pct(&mut times, 0.95), items)
}

async fn run(label: &str, postgres: Option<&str>, events: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = support::in_process(dir.path(), postgres).await;
    s.plans.meter_api_calls = false;
    let app = Application::build(s).await.unwrap();
    let org = app.bootstrap().unwrap().org.id;
    let store = app.state().store.clone();
    let base = format!("http://127.0.0.1:{}", app.port());

    let end = Utc::now();
    let t = Instant::now();
    let mut i = 0;
    while i < events {
        let mut j = Journal::default();
        for k in i..(i + 1000).min(events) {
            j = j.and_record(event(org, k, events, end));
        }
        store.append(j).await.unwrap();
        i += 1000;
    }
    let filled = t.elapsed();
    // Planner statistics, as the server's hourly `optimize` (and autovacuum on PostgreSQL) keep them.
    store.optimize().await.unwrap();
    if postgres.is_some() {
        store.execute_sql("ANALYZE audit_events").await.unwrap();
    }
    tokio::spawn(app.run_until_stopped());

    let c = reqwest::Client::new();
    let (token, _) = support::login(&c, &base, support::BENCH_OWNER).await;
    let tok = Some(token.as_str());

    println!("\n## {label}\n");
    println!(
        "Log of {events} events written in {:.1} s ({:.0} events/s).\n",
        filled.as_secs_f64(),
        events as f64 / filled.as_secs_f64()
    );
    println!("| request | items | p50 | p95 |");
    println!("|---|---:|---:|---:|");
    // Warm the connection and the server.
    timed(&c, &format!("{base}/healthz"), None).await;
    let (p50, p95, _) = timed(&c, &format!("{base}/healthz"), None).await;
    println!("| baseline: `GET /healthz` | | {p50:.2} ms | {p95:.2} ms |");
    let (p50, p95, _) = timed(&c, &format!("{base}/api/v1/me"), tok).await;
    println!("| baseline: `GET /api/v1/me` (authenticated) | | {p50:.2} ms | {p95:.2} ms |");
    let since =
        (end - chrono::Duration::days(31)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until =
        (end + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let pages = [
        ("no filter", String::new()),
        ("one actor", format!("actor_id={}", actor(7))),
        ("action prefix `member.`", "action=member.".to_owned()),
        (
            "one resource",
            format!("target_type=chat_interface&target_id=res_{:032x}", 42),
        ),
        (
            "last 7 days, denied",
            "period=last_7_days&outcome=denied".to_owned(),
        ),
        (
            "one actor + one action + 31-day range (no match)",
            format!(
                "actor_id={}&action=auth.login&since={}&until={}",
                actor(3),
                urlencode(&since),
                urlencode(&until)
            ),
        ),
    ];
    let audit = format!("{base}/api/v1/orgs/{org}/audit-events");
    for (name, q) in &pages {
        let url = format!("{audit}?limit=50&{q}");
        let (p50, p95, items) = timed(&c, &url, tok).await;
        println!("| {name} | {items} | {p50:.2} ms | {p95:.2} ms |");
    }

    // The whole log as CSV over HTTP, streamed: rows per second as the client receives them.
    let t = Instant::now();
    let mut res = c
        .get(format!("{audit}/export?format=csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut lines = 0u64;
    while let Some(chunk) = res.chunk().await.unwrap() {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let took = t.elapsed().as_secs_f64();
    println!(
        "\nCSV export over HTTP: {} lines (header included) in {took:.1} s, {:.0} rows/s.",
        lines,
        (lines.saturating_sub(1)) as f64 / took
    );
}

/// Percent-encodes the characters of an RFC 3339 time that a query string cannot carry as is.
fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

fn main() {
    let events: u64 = std::env::var("AXIE_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("SQLite (file, WAL)", None, events).await;
        match store_sea::testing::postgres_server() {
            Some(pg) => run("PostgreSQL 15 (same machine)", Some(&pg), events).await,
            None => println!("\nPostgreSQL skipped: set AXIE_TEST_POSTGRES_URL"),
        }
    });
}
