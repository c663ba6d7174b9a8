//! Deployment-wide plan limits and alert thresholds from the configuration: the real binary,
//! configured through the environment (its own process, since the deployment is process-wide).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PASSWORD: &str = "tilted windmill at sunrise";

fn command(dir: &std::path::Path, port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_axie-server"));
    c.env("AXIE_SERVER__PORT", port.to_string())
        .env("AXIE_SERVER__DATA_DIR", dir)
        .env("AXIE_BOOTSTRAP__OWNER_EMAIL", "owner@limits.example")
        .env("AXIE_BOOTSTRAP__OWNER_PASSWORD", PASSWORD)
        .env("AXIE_LOG__LEVEL", "warn")
        .env_remove("DATABASE_URL");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_operator_sets_higher_limits_and_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server(
        command(dir.path(), port)
            .env("AXIE_PLANS__ENTERPRISE__CHAT_INTERFACES", "2")
            .env("AXIE_PLANS__ENTERPRISE__API_KEYS", "unlimited")
            .env("AXIE_PLANS__ALERT_THRESHOLDS", "[50]")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start axie-server"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let login: Value = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "owner@limits.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let me: Value = c
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = me["memberships"][0]["org_id"].as_str().unwrap().to_owned();
    let usage: Value = c
        .get(format!("{base}/api/v1/orgs/{org}/usage"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let max = |limit: &str| {
        usage["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["limit"] == limit)
            .unwrap()["max"]
            .clone()
    };
    assert_eq!(max("chat_interfaces"), json!(2));
    assert_eq!(max("api_keys"), Value::Null, "unlimited");
    assert_eq!(
        max("members"),
        json!(20),
        "the rest keep the guide's values"
    );

    let create = |name: &str| {
        c.post(format!("{base}/api/v1/orgs/{org}/chat-interfaces"))
            .bearer_auth(&token)
            .json(&json!({"name": name}))
            .send()
    };
    assert_eq!(create("One").await.unwrap().status(), 201);
    assert_eq!(create("Two").await.unwrap().status(), 201);
    let third = create("Three").await.unwrap();
    assert_eq!(third.status(), 403);
    let p: Value = third.json().await.unwrap();
    assert_eq!(
        (
            p["type"].as_str().map(|t| t.ends_with("limit_reached")),
            p["max"].as_u64()
        ),
        (Some(true), Some(2))
    );

    // The configured 50 % threshold: the first chat interface (1 of 2) sent the alert, once.
    let outbox: Value = c
        .get(format!("{base}/api/v1/orgs/{org}/outbox"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alerts: Vec<&Value> = outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("50 % of your chat interfaces")
        })
        .collect();
    assert_eq!(alerts.len(), 1, "{outbox}");
}

#[test]
fn an_unknown_limit_name_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), free_port())
        .env("AXIE_PLANS__ENTERPRISE__SEATS", "50")
        .output()
        .expect("run axie-server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`plans.enterprise.seats` is not a limit"),
        "{err}"
    );
}
