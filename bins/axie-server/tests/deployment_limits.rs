//! Deployment-wide plan limits and alert thresholds from the configuration: the real binary,
//! configured through the environment (its own process, since the deployment is process-wide).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

mod support;

use std::process::Stdio;

use serde_json::{Value, json};
use support::{Reaped, free_port, wait_ready};

const OWNER: &str = "owner@limits.example";

#[tokio::test]
async fn the_operator_sets_higher_limits_and_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Reaped::spawn(
        support::server(dir.path(), port, OWNER)
            .env("AXIE_PLANS__ENTERPRISE__CHAT_INTERFACES", "2")
            .env("AXIE_PLANS__ENTERPRISE__API_KEYS", "unlimited")
            .env("AXIE_PLANS__ALERT_THRESHOLDS", "[50]"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    wait_ready(&c, &base).await;
    let (token, org) = support::login(&c, &base, OWNER).await;
    let usage = support::get_json(&c, format!("{base}/api/v1/orgs/{org}/usage"), &token).await;
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
    let outbox = support::get_json(&c, format!("{base}/api/v1/orgs/{org}/outbox"), &token).await;
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
    let out = support::server(dir.path(), free_port(), OWNER)
        .env("AXIE_PLANS__ENTERPRISE__SEATS", "50")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run axie-server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`plans.enterprise.seats` is not a limit"),
        "{err}"
    );
}

/// Secrets from the environment are text whatever they look like: an all-digit metrics token
/// with a leading zero is the token, not a number (which the server refused at start, the
/// secret in its message, or kept without the zero).
#[tokio::test]
async fn an_all_digit_secret_from_the_environment_is_kept_as_text() {
    const TOKEN: &str = "01234567890123456789";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Reaped::spawn(
        support::server(dir.path(), port, "owner@digits.example").env("AXIE_METRICS__TOKEN", TOKEN),
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    wait_ready(&c, &base).await;
    let scrape = |token: &'static str| c.get(format!("{base}/metrics")).bearer_auth(token).send();
    assert_eq!(scrape(TOKEN).await.unwrap().status(), 200);
    assert_eq!(
        scrape("1234567890123456789").await.unwrap().status(),
        401,
        "the leading zero is part of the token"
    );
}

/// The operator's reading commands, run where no key exists (another data directory), stop
/// with a message naming the key, and create none: a fresh checkpoint key would report every
/// chain broken, a fresh encryption key every secret unreadable.
#[test]
fn operator_commands_do_not_mint_keys() {
    let dir = tempfile::tempdir().unwrap();
    let org = rbac_core::OrgId::new().to_string();
    for args in [
        vec!["verify-audit", "--org", org.as_str()],
        vec!["account-mail"],
        vec!["sms-outbox"],
    ] {
        let out = support::binary(dir.path(), &args)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no key at"), "{args:?}: {err}");
    }
    for key in ["checkpoint.key", "encryption.key"] {
        assert!(!dir.path().join(key).exists(), "{key} was created");
    }
}
