//! Crash safety: the real binary is killed with SIGKILL in the middle of audited, webhook-emitting
//! writes, many times, then restarted on the same database. Every write acknowledged with 2xx is
//! present, the audit chain verifies, and every acknowledged event reaches the webhook receiver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Reaped, free_port, stand_in, wait_ready};

const OWNER: &str = "owner@crash.example";

/// A server process and its base URL.
struct Server {
    process: Reaped,
    base: String,
}

/// The server binary on `port` and `database_url`, webhooks to loopback allowed; `configure`
/// adds settings before it starts.
fn start_with(
    dir: &std::path::Path,
    port: u16,
    database_url: &str,
    configure: impl FnOnce(&mut Command),
) -> Server {
    let mut command = support::server(dir, port, OWNER);
    command
        .env("AXIE_WEBHOOKS__ALLOW_CIDRS", "[\"127.0.0.1/32\"]")
        .env("AXIE_WEBHOOKS__HTTPS_ONLY", "false")
        .env("DATABASE_URL", database_url);
    configure(&mut command);
    Server {
        process: Reaped::spawn(&mut command),
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn start(dir: &std::path::Path, port: u16, database_url: &str) -> Server {
    start_with(dir, port, database_url, |_| {})
}

async fn login(c: &reqwest::Client, s: &Server) -> (String, String) {
    support::login(c, &s.base, OWNER).await
}

/// A receiver that records the `apiKeyId` of every delivered `api_key.created` event.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let base = stand_in(1, move |_, body: actix_web::web::Bytes| {
        let g = g.clone();
        async move {
            if let Ok(v) = serde_json::from_slice::<Value>(&body)
                && v["event"] == "api_key.created"
            {
                g.lock()
                    .unwrap()
                    .push(v["data"]["apiKeyId"].as_str().unwrap_or("").to_owned());
            }
            actix_web::HttpResponse::Ok().finish()
        }
    });
    (format!("{base}/hook"), got)
}

async fn crash_rounds(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (hook, delivered) = receiver();
    let mut server = start(dir.path(), port, &database_url);
    wait_ready(&c, &server.base).await;
    let (token, org) = login(&c, &server).await;
    let res = c
        .post(format!("{}/api/v1/orgs/{org}/webhooks", server.base))
        .bearer_auth(&token)
        .json(&json!({"url": hook, "events": ["api_key.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let acked_created: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let acked_revoked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    for round in 0..6 {
        let (token, _) = login(&c, &server).await;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (c, base, token, org) =
                    (c.clone(), server.base.clone(), token.clone(), org.clone());
                let (created, revoked) = (acked_created.clone(), acked_revoked.clone());
                tokio::spawn(async move {
                    for i in 0.. {
                        let Ok(res) = c
                            .post(format!("{base}/api/v1/orgs/{org}/api-keys"))
                            .bearer_auth(&token)
                            .json(&json!({"name": format!("r{round}w{w}i{i}")}))
                            .send()
                            .await
                        else {
                            return;
                        };
                        if res.status() != 201 {
                            return;
                        }
                        let Ok(key) = res.json::<Value>().await else {
                            return;
                        };
                        let id = key["id"].as_str().unwrap().to_owned();
                        created.lock().unwrap().insert(id.clone());
                        let Ok(res) = c
                            .delete(format!("{base}/api/v1/orgs/{org}/api-keys/{id}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                        else {
                            return;
                        };
                        if res.status() == 204 {
                            revoked.lock().unwrap().insert(id);
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        server.process.kill(); // SIGKILL
        for w in writers {
            let _ = w.await;
        }
        server = start(dir.path(), port, &database_url);
        wait_ready(&c, &server.base).await;
    }

    let (token, _) = login(&c, &server).await;
    let created = acked_created.lock().unwrap().clone();
    let revoked = acked_revoked.lock().unwrap().clone();
    assert!(
        created.len() >= 20,
        "too few writes got through to prove anything ({})",
        created.len()
    );
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!(
                "{}/api/v1/orgs/{org}/api-keys?limit=200&cursor={c}",
                server.base
            ),
            None => format!("{}/api/v1/orgs/{org}/api-keys?limit=200", server.base),
        };
        let page = support::get_json(&c, url, &token).await;
        keys.extend(page["items"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    for id in &created {
        let k = keys
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap_or_else(|| panic!("acknowledged key {id} is missing"));
        if revoked.contains(id) {
            assert!(
                k["revoked_at"].is_string(),
                "acknowledged revocation of {id} is missing"
            );
        }
    }
    let mut audited = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!(
                "{}/api/v1/orgs/{org}/audit-events?action=api_key.created&limit=500&cursor={c}",
                server.base
            ),
            None => format!(
                "{}/api/v1/orgs/{org}/audit-events?action=api_key.created&limit=500",
                server.base
            ),
        };
        let page = support::get_json(&c, url, &token).await;
        audited.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["target_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    assert!(
        created.is_subset(&audited),
        "acknowledged writes without their audit record"
    );
    let v: Value = c
        .post(format!(
            "{}/api/v1/orgs/{org}/audit-events/verify",
            server.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["valid"], true, "{v}");
    // Every acknowledged event is delivered at least once (leases of killed workers expire and are retried).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<String> = delivered.lock().unwrap().iter().cloned().collect();
        if created.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged events were never delivered",
            created.difference(&got).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.process.kill();
    // The operator's command agrees, and reports a broken link after tampering.
    let verify = |dir: &std::path::Path| {
        support::binary(dir, &["verify-audit", "--org", &org])
            .env("DATABASE_URL", &database_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let out = verify(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("records verified"));
    let store = store_sea::SeaStore::connect(
        &store_sea::DatabaseUrl::parse(&database_url).unwrap(),
        store_sea::PoolOptions::default(),
    )
    .await
    .unwrap();
    store
        .execute_sql(&format!(
            "UPDATE audit_events SET action = 'auth.logout' WHERE org_id = '{org}' AND seq = 3"
        ))
        .await
        .unwrap();
    store.close().await.unwrap();
    let out = verify(dir.path());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("record 3 was modified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "crash test: {} acknowledged creates, {} revokes, {} audit records, {} deliveries",
        created.len(),
        revoked.len(),
        audited.len(),
        delivered.lock().unwrap().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_nothing_acknowledged_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("crash.db").display()
    );
    crash_rounds(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_nothing_acknowledged_on_postgres() {
    let Some(server) = store_sea::testing::postgres_server() else {
        store_sea::testing::say_postgres_skipped("crash test");
        return;
    };
    let url = store_sea::testing::fresh_postgres(&server).await.unwrap();
    crash_rounds(url.expose().to_owned()).await;
}

/// A receiver that records the `X-Webhook-Id` of every delivery and answers after `delay`.
fn id_receiver(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let base = stand_in(2, move |req: actix_web::HttpRequest, _| {
        let g = g.clone();
        async move {
            tokio::time::sleep(delay).await;
            if let Some(id) = req
                .headers()
                .get("x-webhook-id")
                .and_then(|v| v.to_str().ok())
            {
                g.lock().unwrap().push(id.to_owned());
            }
            actix_web::HttpResponse::Ok().finish()
        }
    });
    (format!("{base}/hook"), got)
}

fn start_worker(dir: &std::path::Path, database_url: &str) -> Reaped {
    Reaped::spawn(
        support::binary(dir, &["worker"])
            .env("AXIE_WEBHOOKS__ALLOW_CIDRS", "[\"127.0.0.1/32\"]")
            .env("AXIE_WEBHOOKS__HTTPS_ONLY", "false")
            .env("DATABASE_URL", database_url),
    )
}

/// 1,000 events wait in the outbox of an API server that runs no workers; a separate worker
/// process delivers them and is killed with SIGKILL mid-way, twice. Every event arrives at
/// least once, and a repeated delivery carries the same `X-Webhook-Id`.
async fn backlog_survives_worker_crashes(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (hook, got) = id_receiver(Duration::from_millis(20));
    let server = start_with(dir.path(), port, &database_url, |c| {
        c.env("AXIE_SERVER__WORKERS", "false");
    });
    wait_ready(&c, &server.base).await;
    let (token, org) = login(&c, &server).await;
    let ep: Value = c
        .post(format!("{}/api/v1/orgs/{org}/webhooks", server.base))
        .bearer_auth(&token)
        .json(&json!({"url": hook, "events": ["webhook.test"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let test_url = format!(
        "{}/api/v1/orgs/{org}/webhooks/{}/test",
        server.base,
        ep["id"].as_str().unwrap()
    );
    use futures::StreamExt;
    let statuses: Vec<u16> = futures::stream::iter(0..1000)
        .map(|_| {
            let req = c.post(&test_url).bearer_auth(&token);
            async move { req.send().await.map_or(0, |r| r.status().as_u16()) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 202),
        "every event was accepted"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "the API server runs no workers"
    );

    for round in 0..2 {
        let mut worker = start_worker(dir.path(), &database_url);
        let target = 150 + 250 * round;
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.lock().unwrap().len() < target {
            assert!(Instant::now() < deadline, "the worker delivers nothing");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.kill(); // SIGKILL, with deliveries in flight
    }
    let worker = start_worker(dir.path(), &database_url);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let distinct: BTreeSet<String> = got.lock().unwrap().iter().cloned().collect();
        if distinct.len() >= 1000 {
            assert_eq!(distinct.len(), 1000, "no id appears that was never sent");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 1000 events were delivered",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = got.lock().unwrap().clone();
    eprintln!(
        "backlog crash test: 1000 events, {} deliveries ({} repeated after SIGKILL, same ids)",
        all.len(),
        all.len() - 1000
    );
    drop(worker);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_loses_no_event_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("backlog.db").display()
    );
    backlog_survives_worker_crashes(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_loses_no_event_on_postgres() {
    let Some(server) = store_sea::testing::postgres_server() else {
        store_sea::testing::say_postgres_skipped("worker crash test");
        return;
    };
    let url = store_sea::testing::fresh_postgres(&server).await.unwrap();
    backlog_survives_worker_crashes(url.expose().to_owned()).await;
}
