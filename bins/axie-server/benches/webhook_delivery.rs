//! Webhook delivery under load, end to end: the real server (in this process) delivering to a
//! receiver on loopback, on SQLite and (with `AXIE_TEST_POSTGRES_URL`) PostgreSQL.
//!
//! `cargo bench -p axie-server --bench webhook_delivery` prints, per database:
//! - sustained deliveries per second for a backlog of events;
//! - p50 and p99 from commit to receipt while events are produced at 200 per second;
//! - a healthy endpoint's throughput next to one that hangs, as a ratio of its throughput alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "a benchmark program"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit::{AuditStore, DomainEvent, EventKind, Journal};
use axie_server::Application;
use serde_json::{Value, json};

/// Events committed for each throughput measurement (a few seconds of delivery).
const BACKLOG: u64 = 10_000;

/// Arrival time of each event number, per receiver.
type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

/// A loopback receiver answering 200 (or hanging for `hang`) and noting when each event arrived.
async fn receiver(hang: Option<Duration>) -> (String, Arrivals) {
    use actix_web::{App, HttpServer, web};
    let got: Arrivals = Arc::default();
    let g = got.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let g = g.clone();
        App::new().default_service(web::to(move |body: web::Bytes| {
            let g = g.clone();
            async move {
                if let Some(h) = hang {
                    tokio::time::sleep(h).await;
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&body)
                    && let Some(n) = v["data"]["n"].as_u64()
                {
                    g.lock().unwrap().entry(n).or_insert_with(Instant::now);
                }
                actix_web::HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(2)
    .max_connections(10_000)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), got)
}

struct Bench {
    app: Option<Application>,
    store: Arc<store_sea::SeaStore>,
    org: rbac_core::OrgId,
    base: String,
    token: String,
    _dir: tempfile::TempDir,
}

async fn server(postgres: Option<&str>) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let mut s = support::in_process(dir.path(), postgres).await;
    s.webhooks.allow_cidrs = vec!["127.0.0.1/32".into()];
    s.webhooks.https_only = false;
    s.webhooks.timeout_secs = 5;
    let app = Application::build(s).await.unwrap();
    let org = app.bootstrap().unwrap().org.id;
    let store = app.state().store.clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    Bench {
        app: Some(app),
        store,
        org,
        base,
        token: String::new(),
        _dir: dir,
    }
}

impl Bench {
    /// Starts serving (and the workers), logs in.
    async fn start(&mut self, c: &reqwest::Client) {
        if let Some(app) = self.app.take() {
            tokio::spawn(app.run_until_stopped());
        }
        self.token = support::login(c, &self.base, support::BENCH_OWNER).await.0;
    }

    async fn endpoint(&self, c: &reqwest::Client, url: &str) {
        let res = c
            .post(format!("{}/api/v1/orgs/{}/webhooks", self.base, self.org))
            .bearer_auth(&self.token)
            .json(&json!({"url": url, "events": ["api_key.created"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }

    /// Commits events `from..to` (each fans out to every endpoint), `batch` per transaction.
    async fn events(&self, from: u64, to: u64, batch: u64) {
        let mut n = from;
        while n < to {
            let mut j = Journal::default();
            for k in n..(n + batch).min(to) {
                j = j.publish(DomainEvent::new(
                    self.org,
                    EventKind::ApiKeyCreated,
                    chrono::Utc::now(),
                    json!({"n": k, "apiKeyId": "key_bench", "name": "bench", "teamId": "team_bench", "createdBy": "usr_bench", "prefix": "axk_bench"}),
                ));
            }
            self.store.append(j).await.unwrap();
            n += batch;
        }
    }
}

async fn wait_for(got: &Arrivals, n: usize, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if got.lock().unwrap().len() >= n {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} arrived",
            got.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A second endpoint next to the measured one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Beside {
    Nothing,
    Healthy,
    Hanging,
}

/// The measured endpoint's deliveries per second for a backlog of `n` events.
async fn throughput(postgres: Option<&str>, n: u64, beside: Beside) -> f64 {
    let c = reqwest::Client::new();
    let mut b = server(postgres).await;
    // Endpoints and the backlog are written before the workers start.
    b.start(&c).await;
    let (fast, got) = receiver(None).await;
    b.endpoint(&c, &fast).await;
    match beside {
        Beside::Nothing => {}
        Beside::Healthy => {
            let (other, _) = receiver(None).await;
            b.endpoint(&c, &other).await;
        }
        Beside::Hanging => {
            let (slow, _) = receiver(Some(Duration::from_secs(30))).await;
            b.endpoint(&c, &slow).await;
        }
    }
    // Measure from the moment the events are committed: the workers pick them up as they come.
    let started = Instant::now();
    b.events(0, n, 200).await;
    let done = wait_for(&got, n as usize, Duration::from_secs(300)).await;
    n as f64 / (done - started).as_secs_f64()
}

/// p50 and p99 milliseconds from commit to receipt at `rate` events per second for `secs`.
async fn latency(postgres: Option<&str>, rate: u64, secs: u64) -> (f64, f64) {
    let c = reqwest::Client::new();
    let mut b = server(postgres).await;
    b.start(&c).await;
    let (url, got) = receiver(None).await;
    b.endpoint(&c, &url).await;
    let total = rate * secs;
    let mut committed = Vec::with_capacity(total as usize);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total {
        tick.tick().await;
        b.events(n, n + 1, 1).await;
        committed.push(Instant::now());
    }
    wait_for(&got, total as usize, Duration::from_secs(60)).await;
    let arrivals = got.lock().unwrap().clone();
    let mut ms: Vec<f64> = (0..total)
        .map(|n| {
            let at = arrivals[&n];
            at.saturating_duration_since(committed[n as usize])
                .as_secs_f64()
                * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    (pick(0.50), pick(0.99))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pg = store_sea::testing::postgres_server();
        let mut backends: Vec<(&str, Option<&str>)> = vec![("SQLite", None)];
        if let Some(p) = pg.as_deref() {
            backends.push(("PostgreSQL", Some(p)));
        }
        println!("| Database | Deliveries/s, one endpoint (backlog of 10,000) | p50 / p99 commit→receipt at 200 events/s | Endpoint A/s next to a healthy B | A/s next to a hanging B | Ratio hanging / healthy |");
        println!("|---|---|---|---|---|---|");
        for (name, url) in backends {
            let alone = throughput(url, BACKLOG, Beside::Nothing).await;
            let (p50, p99) = latency(url, 200, 10).await;
            let healthy = throughput(url, BACKLOG, Beside::Healthy).await;
            let hanging = throughput(url, BACKLOG, Beside::Hanging).await;
            println!(
                "| {name} | {alone:.0} | {p50:.1} ms / {p99:.1} ms | {healthy:.0} | {hanging:.0} | {:.2} |",
                hanging / healthy
            );
        }
    });
}
