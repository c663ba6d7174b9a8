//! Webhooks end to end: real HTTP to a loopback receiver, signatures checked with our
//! verifier and with PyPI's `standardwebhooks`, retries on the guide's schedule.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

async fn endpoint(t: &TestApp, url: &str, events: Value) -> Value {
    let res = t
        .post(
            &t.org("/webhooks"),
            &t.owner_token,
            &json!({ "url": url, "description": "tests", "events": events }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// The endpoint's deliveries page once `done` holds for it: the worker records an outcome a
/// moment after the receiver has it. Fails after 10 s, showing the last page.
async fn deliveries_once(t: &TestApp, endpoint: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = json_of(
            t.get(
                &t.org(&format!("/webhooks/{endpoint}/deliveries")),
                &t.owner_token,
            )
            .await,
        )
        .await;
        if done(&page) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not recorded in time: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A delivery's attempts, in order.
async fn attempts_of(t: &TestApp, endpoint: &str, delivery: &str) -> Value {
    json_of(
        t.get(
            &t.org(&format!(
                "/webhooks/{endpoint}/deliveries/{delivery}/attempts"
            )),
            &t.owner_token,
        )
        .await,
    )
    .await
}

async fn make_key(t: &TestApp, name: &str) {
    assert_eq!(
        t.post(&t.org("/api-keys"), &t.owner_token, &json!({"name": name}))
            .await
            .status(),
        StatusCode::CREATED
    );
}

/// Verifies with the independent Standard Webhooks implementation from PyPI.
fn standard_verify(secret: &str, r: &Received) -> bool {
    let script = "import json,sys\nfrom standardwebhooks.webhooks import Webhook\nd=json.load(sys.stdin)\nWebhook(d['secret']).verify(d['body'], d['headers'])\nprint('verified')";
    let input = json!({
        "secret": secret,
        "body": r.body,
        "headers": {"webhook-id": r.headers["webhook-id"], "webhook-timestamp": r.headers["webhook-timestamp"], "webhook-signature": r.headers["webhook-signature"]},
    });
    let mut child = std::process::Command::new(ensure_python_checkers())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with standardwebhooks (pip install standardwebhooks)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("verified")
}

/// Verifies `X-Webhook-Signature` with the Python function the README gives receivers, taken
/// from the README itself (so what it tells them is what the server does).
fn readme_verify(secret: &str, r: &Received) -> bool {
    let readme = include_str!("../../README.md");
    let fence = "```python\nimport base64";
    let start = readme.find(fence).expect("the README's receiver snippet") + "```python\n".len();
    let end = start + readme[start..].find("```").expect("its closing fence");
    let script = format!(
        "{}\nimport json,sys\nd=json.load(sys.stdin)\nprint('verified' if valid(d['secret'], d['ts'], d['body'].encode(), d['sig']) else 'refused')",
        &readme[start..end]
    );
    let input = json!({
        "secret": secret,
        "body": r.body,
        "ts": r.headers["x-webhook-timestamp"],
        "sig": r.headers["x-webhook-signature"],
    });
    let mut child = std::process::Command::new(ensure_python_checkers())
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        input.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("verified") || said.contains("refused"),
        "the README's snippet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    said.contains("verified")
}

/// Validates a delivered body against its published JSON Schema with PyPI's jsonschema.
pub(crate) fn assert_valid(schema: &Value, body: &Value) {
    let mut child = std::process::Command::new(ensure_python_checkers())
        .args(["-c", "import json,sys\nimport jsonschema\nd=json.load(sys.stdin)\njsonschema.validate(d['body'], d['schema'])\nprint('valid')"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"body": body, "schema": schema}).to_string();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid"),
        "{body}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn our_verify(secret: &str, r: &Received) -> Result<(), webhooks::VerifyError> {
    let s = webhooks::SigningSecret::from_whsec(secret).unwrap();
    webhooks::verify(
        &[s],
        &r.headers["x-webhook-timestamp"],
        &r.headers["x-webhook-signature"],
        r.body.as_bytes(),
        chrono::Utc::now().timestamp(),
    )
}

both_backends!(
    events_are_delivered_in_the_guides_shape_and_signed,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let ep = endpoint(&t, &rx.url, json!([])).await;
        let secret = ep["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"));
        make_key(&t, "Production API").await;
        let got = rx.wait_for(1, 10).await;
        let r = &got[0];
        assert_eq!(r.headers["x-webhook-event"], "api_key.created");
        assert_eq!(r.headers["user-agent"], "AxieStudio-Webhook/1.0");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers["x-webhook-signature"].starts_with("sha256="));
        assert_eq!(r.headers["x-webhook-id"], r.headers["webhook-id"]);
        let ts: i64 = r.headers["x-webhook-timestamp"].parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 30);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["event"], "api_key.created");
        assert_eq!(body["enterpriseId"], t.org_id.as_str());
        assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["data"]["name"], "Production API");
        assert_eq!(
            body.as_object().unwrap().len(),
            4,
            "exactly the guide's keys"
        );
        our_verify(&secret, r).unwrap();
        assert!(
            standard_verify(&secret, r),
            "standardwebhooks rejected the delivery"
        );
        // Tampering is caught by both.
        let mut forged = r.clone();
        forged.body = forged.body.replace("Production", "Forged");
        assert!(our_verify(&secret, &forged).is_err());
        assert!(!standard_verify(&secret, &forged));
        assert!(readme_verify(&secret, r) && !readme_verify(&secret, &forged));
        let page = json_of(
            t.get(
                &t.org(&format!(
                    "/webhooks/{}/deliveries",
                    ep["id"].as_str().unwrap()
                )),
                &t.owner_token,
            )
            .await,
        )
        .await;
        assert_eq!(page["counts"]["delivered"], 1);
        // The delivered body validates against the published JSON Schema (checked with PyPI's jsonschema).
        let types = json_of(
            t.get(&t.url("/api/v1/webhooks/event-types"), &t.owner_token)
                .await,
        )
        .await;
        let schema = types
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "api_key.created")
            .unwrap()["schema"]
            .clone();
        assert_valid(&schema, &body);
        // Secrets are stored encrypted: the database never holds the whsec text or its bytes in
        // the clear (rows matched by an update that changes nothing, counted).
        let matching = |condition: String| {
            let t = &t;
            async move {
                t.store
                    .execute_sql(&format!(
                        "UPDATE webhook_endpoints SET secret = secret WHERE {condition}"
                    ))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            matching("secret LIKE 'v2:%'".into()).await,
            1,
            "the endpoint's secret is a ciphertext"
        );
        let clear = secret.trim_start_matches("whsec_");
        assert_eq!(
            matching(format!("secret LIKE '%{clear}%' OR secret LIKE '%whsec%'")).await,
            0
        );
        let list = json_of(t.get(&t.org("/webhooks"), &t.owner_token).await).await;
        assert!(!list.to_string().contains("whsec_"), "nor does a listing");
    }
);

both_backends!(
    failures_are_retried_on_the_guides_schedule,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        rx.answer(&[(500, None), (503, None), (500, None), (502, None)]);
        let ep = endpoint(&t, &rx.url, json!(["api_key.created"])).await;
        make_key(&t, "retry me").await;
        let got = rx.wait_for(5, 45).await;
        let ids: std::collections::BTreeSet<_> = got
            .iter()
            .map(|r| r.headers["x-webhook-id"].clone())
            .collect();
        assert_eq!(ids.len(), 1, "every attempt carries the same id");
        let gaps: Vec<f64> = got
            .windows(2)
            .map(|w| (w[1].at - w[0].at).as_secs_f64())
            .collect();
        // The guide's 2/4/8/16 s, each with up to 10 % of jitter added (the default).
        for (gap, expected) in gaps.iter().zip([2.0, 4.0, 8.0, 16.0]) {
            assert!(
                *gap >= expected - 0.25 && *gap <= expected * 1.1 + 0.25,
                "gaps {gaps:?} are not 2/4/8/16 s, up to 10 % later, ± 250 ms"
            );
        }
        let eid = ep["id"].as_str().unwrap();
        // The worker records the fifth attempt's 200 after the receiver has answered it.
        let page = deliveries_once(&t, eid, |p| p["items"][0]["status"] == "delivered").await;
        let d = &page["items"][0];
        assert_eq!(d["status"], "delivered");
        assert_eq!(d["attempts"], 5);
        let attempts = attempts_of(&t, eid, d["id"].as_str().unwrap()).await;
        let statuses: Vec<_> = attempts
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status"].clone())
            .collect();
        assert_eq!(
            statuses,
            vec![json!(500), json!(503), json!(500), json!(502), json!(200)]
        );
    }
);

both_backends!(
    gone_disables_retry_after_is_honoured_and_recovery_resends,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        rx.answer(&[(429, Some("1")), (410, None)]);
        let ep = endpoint(&t, &rx.url, json!([])).await;
        let eid = ep["id"].as_str().unwrap().to_owned();
        make_key(&t, "one").await;
        let got = rx.wait_for(2, 10).await;
        let gap = (got[1].at - got[0].at).as_secs_f64();
        // Not before the second the receiver asked for, and well before the schedule's own
        // first retry (2 s, `webhooks.base_delay_ms`): the worker picks a due retry up at its
        // next poll, which a loaded CI machine delays by a few hundred milliseconds.
        assert!(
            (0.75..1.75).contains(&gap),
            "Retry-After: 1 gave a {gap} s gap"
        );
        // 410 disables the endpoint; nothing more is sent while it is off.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let eps = json_of(t.get(&t.org("/webhooks"), &t.owner_token).await).await;
            if eps["items"][0]["enabled"] == false {
                assert_eq!(
                    eps["items"][0]["disabled_reason"],
                    "the receiver answered 410 Gone"
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "endpoint not disabled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Nothing is sent while it is off; what happens meanwhile is kept as a failed delivery,
        // for the recovery.
        make_key(&t, "while disabled").await;
        let page = json_of(
            t.get(
                &t.org(&format!("/webhooks/{eid}/deliveries")),
                &t.owner_token,
            )
            .await,
        )
        .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        assert_eq!(page["counts"]["failed"], 2);
        assert_eq!(page["items"][0]["attempts"], 0, "never tried: {page}");
        // A test event is refused while it is off (it would wait unseen until it is enabled
        // again, and arrive stale), and queues nothing.
        problem(
            t.post(
                &t.org(&format!("/webhooks/{eid}/test")),
                &t.owner_token,
                &json!({}),
            )
            .await,
            StatusCode::CONFLICT,
            "endpoint_disabled",
        )
        .await;
        let again = json_of(
            t.get(
                &t.org(&format!("/webhooks/{eid}/deliveries")),
                &t.owner_token,
            )
            .await,
        )
        .await;
        assert_eq!(again["items"].as_array().unwrap().len(), 2, "{again}");
        // Recovering while it is disabled would queue deliveries that wait unseen: refused.
        let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
        problem(
            t.post(
                &t.org(&format!("/webhooks/{eid}/recover")),
                &t.owner_token,
                &json!({"since": since}),
            )
            .await,
            StatusCode::CONFLICT,
            "endpoint_disabled",
        )
        .await;
        // Re-enable, then recover everything that failed since before the test began.
        json_of(
            t.patch(
                &t.org(&format!("/webhooks/{eid}")),
                &t.owner_token,
                &json!({"enabled": true}),
            )
            .await,
        )
        .await;
        let rec = json_of(
            t.post(
                &t.org(&format!("/webhooks/{eid}/recover")),
                &t.owner_token,
                &json!({"since": since}),
            )
            .await,
        )
        .await;
        assert_eq!(rec["requeued"], 2);
        let got = rx.wait_for(4, 10).await;
        let ids: Vec<_> = got[2..]
            .iter()
            .map(|g| &g.headers["x-webhook-id"])
            .collect();
        assert!(
            ids.contains(&&got[0].headers["x-webhook-id"]),
            "the recovered delivery is the same event"
        );
        let names: Vec<_> = got[2..]
            .iter()
            .map(|g| serde_json::from_str::<Value>(&g.body).unwrap()["data"]["name"].clone())
            .collect();
        assert!(names.contains(&json!("while disabled")), "{names:?}");
        // The receiver has them; their outcomes are recorded a moment later.
        deliveries_once(&t, &eid, |p| p["counts"]["delivered"] == 2).await;
        make_key(&t, "after re-enabling").await;
        let got = rx.wait_for(5, 10).await;
        assert_eq!(
            serde_json::from_str::<Value>(&got[4].body).unwrap()["data"]["name"],
            "after re-enabling"
        );
        assert!(!t.audit("action=webhook.endpoint_changed").await.is_empty());
        let notices = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
        let kinds: Vec<_> = notices["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "webhook_disabled")
            .map(|m| m["to"].clone())
            .collect();
        assert!(
            kinds.contains(&json!(OWNER_EMAIL)) && kinds.contains(&json!("mike@example.com")),
            "admins are told: {kinds:?}"
        );
    }
);

both_backends!(
    a_receivers_answer_with_nul_bytes_is_recorded_once,
    |b| async move {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A receiver that takes the delivery and answers with U+0000 and a byte that is not
        // UTF-8 in its body: PostgreSQL refuses U+0000 in text, and an outcome that is never
        // recorded would have the delivery sent again after every lease.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Headers, then the body of Content-Length bytes.
                    loop {
                        let Ok(n) = socket.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len: usize = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if got.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    counted.fetch_add(1, SeqCst);
                    let body = b"fine\0then\xffend";
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        let t = spawn_app(b).await;
        let ep = endpoint(
            &t,
            &format!("http://127.0.0.1:{port}/hook"),
            json!(["api_key.created"]),
        )
        .await;
        let eid = ep["id"].as_str().unwrap();
        make_key(&t, "nul answer").await;
        let page = deliveries_once(&t, eid, |p| p["items"][0]["status"] == "delivered").await;
        let d = &page["items"][0];
        assert_eq!(d["attempts"], 1, "{page}");
        let attempts = attempts_of(&t, eid, d["id"].as_str().unwrap()).await;
        assert_eq!(attempts[0]["status"], 200, "{attempts}");
        assert_eq!(
            attempts[0]["response_body"], "fine\u{FFFD}then\u{FFFD}end",
            "{attempts}"
        );
        assert_eq!(requests.load(SeqCst), 1, "delivered once");
        // A delivery id with U+0000 in the URL is one that does not exist.
        let nul = format!(
            "/webhooks/{eid}/deliveries/{}%00/attempts",
            d["id"].as_str().unwrap()
        );
        let res = t.get(&t.org(&nul), &t.owner_token).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
);

both_backends!(
    filters_test_events_rotation_and_refused_destinations,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let ep = endpoint(&t, &rx.url, json!(["user.created"])).await;
        let eid = ep["id"].as_str().unwrap().to_owned();
        make_key(&t, "not subscribed").await;
        assert_eq!(
            t.post(
                &t.org(&format!("/webhooks/{eid}/test")),
                &t.owner_token,
                &json!({})
            )
            .await
            .status(),
            StatusCode::ACCEPTED
        );
        let got = rx.wait_for(1, 10).await;
        assert_eq!(
            got[0].headers["x-webhook-event"], "webhook.test",
            "the filtered api_key.created was not sent"
        );
        let old = ep["secret"].as_str().unwrap().to_owned();
        let rotated = json_of(
            t.post(
                &t.org(&format!("/webhooks/{eid}/rotate-secret")),
                &t.owner_token,
                &json!({"grace_hours": 1}),
            )
            .await,
        )
        .await;
        let new = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(old, new);
        t.post(
            &t.org(&format!("/webhooks/{eid}/test")),
            &t.owner_token,
            &json!({}),
        )
        .await;
        let got = rx.wait_for(2, 10).await;
        assert_eq!(
            got[1].headers["x-webhook-signature"].split(' ').count(),
            2,
            "both signatures during the grace period"
        );
        our_verify(&old, &got[1]).unwrap();
        our_verify(&new, &got[1]).unwrap();
        assert!(standard_verify(&new, &got[1]) && standard_verify(&old, &got[1]));
        assert!(readme_verify(&new, &got[1]) && readme_verify(&old, &got[1]));

        for bad in [
            "ftp://example.com/x",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            problem(
                t.post(&t.org("/webhooks"), &t.owner_token, &json!({"url": bad}))
                    .await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
        }
        // Ports of other protocols (mail, SSH, file sharing) are refused, new or changed.
        for port in [25, 22, 445] {
            let p = problem(
                t.post(
                    &t.org("/webhooks"),
                    &t.owner_token,
                    &json!({"url": format!("https://hooks.example.com:{port}/x")}),
                )
                .await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("port {port}")),
                "{p}"
            );
        }
        let kept = endpoint(&t, "https://hooks.example.com:8443/x", json!([])).await;
        problem(
            t.patch(
                &t.org(&format!("/webhooks/{}", kept["id"].as_str().unwrap())),
                &t.owner_token,
                &json!({"url": "https://hooks.example.com:23/x"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        problem(
            t.post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({"url": rx.url, "events": ["user.exploded"]}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        // An internal address outside the allowlist is refused at delivery time.
        let internal = endpoint(&t, "http://10.255.255.1/hook", json!([])).await;
        let iid = internal["id"].as_str().unwrap();
        t.post(
            &t.org(&format!("/webhooks/{iid}/test")),
            &t.owner_token,
            &json!({}),
        )
        .await;
        let page = deliveries_once(&t, iid, |p| p["items"][0]["attempts"].as_u64() > Some(0)).await;
        let attempts = attempts_of(&t, iid, page["items"][0]["id"].as_str().unwrap()).await;
        assert!(
            attempts[0]["error"]
                .as_str()
                .unwrap()
                .contains("internal address"),
            "{attempts}"
        );
        assert!(attempts[0]["status"].is_null());
    }
);

both_backends!(
    webhooks_are_an_enterprise_admin_feature_and_tenant_scoped,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let ep = endpoint(&t, &rx.url, json!([])).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        problem(
            t.get(&t.org("/webhooks"), &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let (free_org, free_owner) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Free).await;
        let token = t.login(&free_owner, OWNER_PASSWORD).await;
        let p = problem(
            t.post(
                &t.url(&format!("/api/v1/orgs/{free_org}/webhooks")),
                &token,
                &json!({"url": rx.url}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(p["reason"], "plan_lacks_feature");
        let (ent_org, ent_owner) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        let other = t.login(&ent_owner, OWNER_PASSWORD).await;
        let eid = ep["id"].as_str().unwrap();
        problem(
            t.get(
                &t.url(&format!("/api/v1/orgs/{ent_org}/webhooks/{eid}/deliveries")),
                &other,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.delete(
                &t.url(&format!("/api/v1/orgs/{ent_org}/webhooks/{eid}")),
                &other,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        // Leaving Enterprise: integrations hear of the change itself, then nothing until the
        // organization returns; the endpoint was kept.
        let plan = |body: Value| {
            let t = &t;
            async move {
                let res = t
                    .put(&t.org("/billing/subscription"), &t.owner_token, &body)
                    .await;
                assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
            }
        };
        plan(json!({"plan": "pro"})).await;
        let chat = |name: &'static str| {
            let t = &t;
            async move {
                let res = t
                    .post(
                        &t.org("/chat-interfaces"),
                        &t.owner_token,
                        &json!({ "name": name }),
                    )
                    .await;
                assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text().await);
            }
        };
        chat("While on Pro").await;
        plan(json!({"plan": "enterprise", "cycle": "monthly"})).await;
        chat("Back on Enterprise").await;
        // Deliveries run side by side, so they may arrive in any order: wait for the last
        // chat interface and both plan changes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let heard = loop {
            let heard: Vec<String> = rx.received().iter().map(|r| r.body.clone()).collect();
            let plan_changes = heard
                .iter()
                .filter(|b| b.contains("\"subscription.updated\""))
                .count();
            if (heard.iter().any(|b| b.contains("Back on Enterprise")) && plan_changes >= 2)
                || std::time::Instant::now() > deadline
            {
                break heard;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(
            heard.iter().any(|b| b.contains("Back on Enterprise")),
            "{heard:?}"
        );
        assert!(
            !heard.iter().any(|b| b.contains("While on Pro")),
            "{heard:?}"
        );
        let mut changes: Vec<(String, String)> = heard
            .iter()
            .map(|b| serde_json::from_str::<Value>(b).unwrap())
            .filter(|b| b["event"] == "subscription.updated")
            .map(|b| {
                (
                    b["data"]["previousPlan"].as_str().unwrap().to_owned(),
                    b["data"]["plan"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        changes.sort();
        assert_eq!(
            changes,
            [
                ("enterprise".to_owned(), "pro".to_owned()),
                ("pro".to_owned(), "enterprise".to_owned())
            ]
        );
    }
);

both_backends!(
    workspace_events_are_delivered_and_match_their_schemas,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        endpoint(
            &t,
            &rx.url,
            json!([
                "chat_interface.created",
                "chat_interface.updated",
                "chat_interface.deleted",
                "document.uploaded",
                "team.created",
                "team.updated",
                "asset.transferred"
            ]),
        )
        .await;
        let team = json_of(
            t.post(
                &t.org("/teams"),
                &t.owner_token,
                &json!({"name": "Production"}),
            )
            .await,
        )
        .await;
        let bot = json_of(
            t.post(
                &t.org("/chat-interfaces"),
                &t.owner_token,
                &json!({"name": "Agent - DEV"}),
            )
            .await,
        )
        .await;
        let bot_id = bot["id"].as_str().unwrap();
        t.patch(
            &t.org(&format!("/chat-interfaces/{bot_id}")),
            &t.owner_token,
            &json!({"instructions": "Be brief."}),
        )
        .await;
        let kb = json_of(
            t.post(
                &t.org("/knowledge-bases"),
                &t.owner_token,
                &json!({"name": "KB", "chat_interface_id": bot_id}),
            )
            .await,
        )
        .await;
        let up = t
            .upload(
                &t.org(&format!(
                    "/knowledge-bases/{}/documents?name=a.txt",
                    kb["id"].as_str().unwrap()
                )),
                &t.owner_token,
                "text/plain",
                b"hello".to_vec(),
            )
            .await;
        assert_eq!(up.status(), StatusCode::CREATED);
        let moved = t
            .post(
                &t.org(&format!("/assets/{bot_id}/transfer")),
                &t.owner_token,
                &json!({"team_id": team["id"], "name": "Agent - PROD", "note": "QA: 20/20 passed"}),
            )
            .await;
        assert_eq!(moved.status(), StatusCode::OK);
        t.patch(
            &t.org(&format!("/teams/{}", team["id"].as_str().unwrap())),
            &t.owner_token,
            &json!({"archived": true}),
        )
        .await;

        let got = rx.wait_for(6, 15).await;
        let types = json_of(
            t.get(&t.url("/api/v1/webhooks/event-types"), &t.owner_token)
                .await,
        )
        .await;
        let mut seen = Vec::new();
        for r in &got {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let event = body["event"].as_str().unwrap().to_owned();
            let ty = types
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == event.as_str())
                .unwrap();
            assert_eq!(ty["emitted"], true, "{event} is documented as emitted");
            assert_valid(&ty["schema"], &body);
            seen.push(event);
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "asset.transferred",
                "chat_interface.created",
                "chat_interface.updated",
                "document.uploaded",
                "team.created",
                "team.updated"
            ]
        );
        let transfer = got
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .find(|b| b["event"] == "asset.transferred")
            .unwrap();
        assert_eq!(transfer["data"]["toTeamId"], team["id"]);
        assert_eq!(transfer["data"]["previousName"], "Agent - DEV");
        assert_eq!(transfer["data"]["note"], "QA: 20/20 passed");
    }
);

both_backends!(
    a_message_template_posts_the_guides_slack_notification,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        // The guide's example, as an endpoint, as the guide writes it (`webhook_url`).
        let template = "🎉 New chat interface created by {{user}}: {{name}}";
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({"webhook_url": rx.url, "events": ["chat_interface.created"], "message": template}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let ep: Value = res.json().await.unwrap();
        assert_eq!(ep["message"], template);
        assert_eq!(ep["url"], rx.url);
        // Both names at once is one too many.
        let twice = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({"webhook_url": rx.url, "url": rx.url}),
            )
            .await;
        assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
        let secret = ep["secret"].as_str().unwrap().to_owned();
        let id = ep["id"].as_str().unwrap().to_owned();
        t.post(
            &t.org("/chat-interfaces"),
            &t.owner_token,
            &json!({"name": "Customer Support"}),
        )
        .await;
        let got = rx.wait_for(1, 10).await;
        assert_eq!(
            serde_json::from_str::<Value>(&got[0].body).unwrap(),
            json!({"text": "🎉 New chat interface created by Sarah Owner: Customer Support"})
        );
        // Signed like every delivery.
        assert_eq!(got[0].headers["x-webhook-event"], "chat_interface.created");
        our_verify(&secret, &got[0]).unwrap();

        // Malformed templates are refused when saved; `null` returns to the event document.
        let p = problem(
            t.patch(
                &t.org(&format!("/webhooks/{id}")),
                &t.owner_token,
                &json!({"message": "by {{user"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("placeholder"), "{p}");
        let res = t
            .patch(
                &t.org(&format!("/webhooks/{id}")),
                &t.owner_token,
                &json!({"message": null}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.json::<Value>().await.unwrap()["message"].is_null());
        t.post(
            &t.org("/chat-interfaces"),
            &t.owner_token,
            &json!({"name": "Sales Bot"}),
        )
        .await;
        let got = rx.wait_for(2, 10).await;
        let doc: Value = serde_json::from_str(&got[1].body).unwrap();
        assert_eq!(
            (&doc["event"], &doc["data"]["name"], &doc["data"]["byName"]),
            (
                &json!("chat_interface.created"),
                &json!("Sales Bot"),
                &json!("Sarah Owner")
            )
        );
    }
);

both_backends!(
    concurrent_edits_of_different_fields_both_apply,
    |b| async move {
        let t = spawn_app(b).await;
        let ep = endpoint(&t, "https://hooks.example.com/a", json!([])).await;
        let path = t.org(&format!("/webhooks/{}", ep["id"].as_str().unwrap()));
        // Each round sends two PATCHes at once, each of one field; both must stick (a PATCH
        // used to write every field from its own read, undoing the other).
        for round in 0..10 {
            let description = format!("round {round}");
            let events = if round % 2 == 0 {
                json!(["user.created"])
            } else {
                json!(["user.deleted"])
            };
            let (one, other) = (
                json!({ "description": description }),
                json!({ "events": events }),
            );
            let (a, b) = tokio::join!(
                t.patch(&path, &t.owner_token, &one),
                t.patch(&path, &t.owner_token, &other),
            );
            assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
            let list = json_of(t.get(&t.org("/webhooks"), &t.owner_token).await).await;
            let now = &list["items"][0];
            assert_eq!(
                (&now["description"], &now["events"]),
                (&json!(description), &events),
                "round {round}"
            );
        }
        let records = t.audit("action=webhook.endpoint_changed").await;
        assert!(
            records
                .iter()
                .any(|r| r["metadata"]["fields"] == json!(["events"])),
            "the audit record names the fields changed: {records:?}"
        );
        // It also says what the switch, the destination's host and the filter were and became.
        let res = t
            .patch(
                &path,
                &t.owner_token,
                &json!({"enabled": false, "url": "https://elsewhere.example.com/secret-path?token=x", "events": []}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let last = &t.audit("action=webhook.endpoint_changed&limit=1").await[0];
        assert_eq!(
            (&last["metadata"]["before"], &last["metadata"]["after"]),
            (
                &json!({"enabled": true, "destination": "https://hooks.example.com", "events": ["user.deleted"]}),
                &json!({"enabled": false, "destination": "https://elsewhere.example.com", "events": []}),
            ),
            "{last}"
        );
        assert!(!last.to_string().contains("secret-path"), "{last}");
    }
);

/// A receiver on loopback that accepts connections and never answers; the count is of the
/// connections open now (a sender that gives up closes its own).
async fn hanging_receiver() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = open.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, SeqCst);
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                counted.fetch_sub(1, SeqCst);
            });
        }
    });
    (port, open)
}

both_backends!(
    one_organizations_hanging_endpoints_leave_the_others_their_deliveries,
    |b| async move {
        use std::time::{Duration, Instant};
        let t = spawn_app(b).await;
        let (port, open) = hanging_receiver().await;
        let hanging = || open.load(std::sync::atomic::Ordering::SeqCst);
        let hook = |name: &str| format!("http://127.0.0.1:{port}/hang/{name}");
        // Sixteen endpoints of this organization there: together they could take every one of
        // the worker's 128 attempts at once (8 each).
        for i in 0..16 {
            endpoint(
                &t,
                &hook(&format!("a{i}")),
                json!(["chat_interface.created"]),
            )
            .await;
        }
        // Another organization: two hanging endpoints and a healthy one.
        let (other_org, other_owner) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        let other = t.login(&other_owner, OWNER_PASSWORD).await;
        let rx = Receiver::start().await;
        for url in [hook("b0"), hook("b1"), rx.url.clone()] {
            let res = t
                .post(
                    &t.url(&format!("/api/v1/orgs/{other_org}/webhooks")),
                    &other,
                    &json!({ "url": url, "events": ["chat_interface.created"] }),
                )
                .await;
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let create = |org: String, token: String, name: String| {
            let t = &t;
            async move {
                let res = t
                    .post(
                        &t.url(&format!("/api/v1/orgs/{org}/chat-interfaces")),
                        &token,
                        &json!({ "name": name }),
                    )
                    .await;
                assert_eq!(res.status(), StatusCode::CREATED);
            }
        };
        // Eight events there fill its two hanging endpoints (8 attempts each), then 160
        // deliveries to this organization's.
        for i in 0..8 {
            create(other_org.clone(), other.clone(), format!("Other {i}")).await;
        }
        for i in 0..10 {
            create(
                t.org_id.clone(),
                t.owner_token.clone(),
                format!("Hanging {i}"),
            )
            .await;
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        while hanging() < 48 {
            assert!(
                Instant::now() < deadline,
                "only {} attempts open",
                hanging()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Time for the worker to start all it would (without the caps it fills its 128
        // attempts within a few hundred milliseconds).
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            hanging(),
            32 + 16,
            "one organization has at most a quarter of the worker's attempts in flight; the \
             other's two hanging endpoints 8 each"
        );
        // The other organization's healthy endpoint, next to its two hanging ones, gets its
        // event at once, not after the hanging attempts' 10-second timeout.
        let sent = Instant::now();
        create(other_org.clone(), other.clone(), "Healthy".into()).await;
        let deadline = sent + Duration::from_secs(5);
        while !rx.received().iter().any(|r| r.body.contains("Healthy")) {
            assert!(
                Instant::now() < deadline,
                "the healthy endpoint waited: {} requests",
                rx.received().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
);

both_backends!(
    an_organization_beyond_its_endpoint_limit_is_refused_as_every_limit_is,
    |b| async move {
        let t = spawn_app(b).await;
        let max = webhooks::MAX_ENDPOINTS_PER_ORG;
        let existing = t
            .get(&t.org("/webhooks"), &t.owner_token)
            .await
            .json::<Value>()
            .await
            .unwrap();
        let have = existing["items"].as_array().unwrap().len();
        for i in have..max {
            endpoint(&t, &format!("https://hooks.example.com/{i}"), json!([])).await;
        }
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": "https://hooks.example.com/one-too-many", "events": [] }),
            )
            .await;
        let p = problem(res, StatusCode::FORBIDDEN, "limit_reached").await;
        assert_eq!(p["limit"], "webhook_endpoints");
        assert_eq!(p["max"], max);
        // Deleting one makes room again.
        let listed = t
            .get(&t.org("/webhooks"), &t.owner_token)
            .await
            .json::<Value>()
            .await
            .unwrap();
        let first = listed["items"][0]["id"].as_str().unwrap().to_owned();
        let res = t
            .delete(&t.org(&format!("/webhooks/{first}")), &t.owner_token)
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        endpoint(&t, "https://hooks.example.com/in-its-place", json!([])).await;
    }
);

both_backends!(
    a_stopping_server_finishes_and_records_the_attempts_under_way,
    |b| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The API instance runs no workers; a second instance delivers, and is stopped in the
        // middle of an attempt.
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                no_workers: true,
                ..Options::default()
            },
        )
        .await;
        // A receiver that takes 2 s to answer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (arrived, mut arrival) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = socket.read(&mut buf).await;
                    let _ = arrived.send(());
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        let ep = endpoint(
            &t,
            &format!("http://127.0.0.1:{port}/hook"),
            json!(["api_key.created"]),
        )
        .await;
        let eid = ep["id"].as_str().unwrap();
        let (_, server, run) = t.stoppable_instance_with(|s| s.server.workers = true).await;
        make_key(&t, "sent while stopping").await;
        tokio::time::timeout(std::time::Duration::from_secs(10), arrival.recv())
            .await
            .expect("the worker sends the event")
            .unwrap();
        // SIGTERM, as a deploy sends it, while the receiver has not answered yet.
        server.stop(true).await;
        tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .expect("the instance stops")
            .unwrap()
            .unwrap();
        // The attempt under way was finished and recorded before it stopped: delivered, once,
        // not left leased to be sent again by the next instance.
        let page = json_of(
            t.get(
                &t.org(&format!("/webhooks/{eid}/deliveries")),
                &t.owner_token,
            )
            .await,
        )
        .await;
        let d = &page["items"][0];
        assert_eq!(d["status"], "delivered", "{page}");
        assert_eq!(d["attempts"], 1, "{page}");
    }
);
