//! The cost of metering API calls: the real server (in this process) answering an authorized
//! read made with an API key, with `plans.meter_api_calls` on and off, on SQLite and (with
//! `AXIE_TEST_POSTGRES_URL`) PostgreSQL. Rounds alternate between the two servers and the best
//! round of each counts, so the ratio is taken under the same machine conditions.
//!
//! `cargo bench -p axie-server --bench metering`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "a benchmark program"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use axie_server::Application;
use serde_json::{Value, json};

const CONCURRENCY: usize = 32;
const ROUND: Duration = Duration::from_secs(4);
const ROUNDS: usize = 3;

struct Server {
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

async fn server(postgres: Option<&str>, meter: bool, c: &reqwest::Client) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut s = support::in_process(dir.path(), postgres).await;
    s.plans.meter_api_calls = meter;
    // Unlimited calls, so the metered server never answers 429.
    s.plans.enterprise.insert(
        "api_calls_per_month".into(),
        axie_server::config::LimitValue::Word("unlimited".into()),
    );
    let app = Application::build(s).await.unwrap();
    let org = app.bootstrap().unwrap().org.id;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let (token, _) = support::login(c, &base, support::BENCH_OWNER).await;
    let key: Value = c
        .post(format!("{base}/api/v1/orgs/{org}/api-keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Server {
        url: format!("{base}/api/v1/orgs/{org}/teams"),
        key: key["secret"].as_str().unwrap().to_owned(),
        _dir: dir,
    }
}

/// Requests per second over one round with `CONCURRENCY` requests in flight.
async fn round(c: &reqwest::Client, s: &Server) -> f64 {
    let deadline = Instant::now() + ROUND;
    let start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (c, url, key) = (c.clone(), s.url.clone(), s.key.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let res = c.get(&url).bearer_auth(&key).send().await.unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn compare(label: &str, postgres: Option<&str>) {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let off = server(postgres, false, &c).await;
    let on = server(postgres, true, &c).await;
    // Warm both.
    round(&c, &off).await;
    round(&c, &on).await;
    let (mut best_off, mut best_on) = (0f64, 0f64);
    for _ in 0..ROUNDS {
        best_off = best_off.max(round(&c, &off).await);
        best_on = best_on.max(round(&c, &on).await);
    }
    println!(
        "| {label} | {best_off:.0} | {best_on:.0} | {:.1} % |",
        (1.0 - best_on / best_off) * 100.0
    );
}

#[tokio::main]
async fn main() {
    println!(
        "| database | API-key reads/s, metering off | metering on | overhead |\n|---|---:|---:|---:|"
    );
    compare("SQLite (file, WAL)", None).await;
    match store_sea::testing::postgres_server() {
        Some(server) => compare("PostgreSQL (same machine)", Some(&server)).await,
        None => println!("\nPostgreSQL skipped: set AXIE_TEST_POSTGRES_URL"),
    }
}
