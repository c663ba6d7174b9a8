//! Trace export: the real binary, with `telemetry.otlp_endpoint` pointing at a collector stand-in
//! on loopback, posts the spans of the requests it serves to `<endpoint>/v1/traces`, in both
//! OTLP/HTTP encodings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test"
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{PASSWORD, Reaped, free_port, stand_in, wait_ready};

/// (path, content type, body) of every request the stand-in collector received.
type Got = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

fn collector() -> (String, Got) {
    let got: Got = Arc::default();
    let g = got.clone();
    let base = stand_in(
        1,
        move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
            let g = g.clone();
            async move {
                let ct = req
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                g.lock()
                    .unwrap()
                    .push((req.path().to_owned(), ct, body.to_vec()));
                actix_web::HttpResponse::Ok().finish()
            }
        },
    );
    (base, got)
}

/// The trace a caller's `traceparent` header puts the login in.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Starts the server exporting with `protocol`, with `proxies` as its trusted proxies (a TOML
/// list), serves one login sent with a `traceparent`, and returns what the collector received
/// once a batch naming the login route has arrived.
async fn traced_login(protocol: &str, proxies: &str) -> Vec<(String, String, Vec<u8>)> {
    let (endpoint, got) = collector();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Each test's own Owner: a login that reached another test's server would be refused.
    let owner = format!(
        "owner@{}-{}.otlp.example",
        protocol.replace('/', "-"),
        proxies.len()
    );
    let _server = Reaped::spawn(
        support::server(dir.path(), port, &owner)
            .env("AXIE_SERVER__TRUSTED_PROXIES", proxies)
            .env("AXIE_TELEMETRY__OTLP_ENDPOINT", &endpoint)
            .env("AXIE_TELEMETRY__OTLP_PROTOCOL", protocol)
            .env("AXIE_TELEMETRY__SERVICE_NAME", "axie-under-test")
            // The SDK's batch delay (milliseconds), so the test need not wait the default 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    wait_ready(&c, &base).await;
    let res = c
        .post(format!("{base}/api/v1/auth/login"))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({"email": owner, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = got.lock().unwrap().clone();
        if seen
            .iter()
            .any(|(_, _, body)| contains(body, b"/api/v1/auth/login"))
        {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no exported span named the login route ({} posts arrived)",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every span of every batch, as (name, attributes by key plus `traceId`, service.name).
fn json_spans(posts: &[(String, String, Vec<u8>)]) -> Vec<(String, Value, String)> {
    let mut out = Vec::new();
    for (_, _, body) in posts {
        let v: Value = serde_json::from_slice(body).expect("OTLP/JSON body");
        for rs in v["resourceSpans"].as_array().unwrap() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "service.name")
                .map(|a| a["value"]["stringValue"].as_str().unwrap().to_owned())
                .unwrap_or_default();
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for span in ss["spans"].as_array().unwrap() {
                    let attrs: serde_json::Map<String, Value> = span["attributes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|kv| {
                                    (kv["key"].as_str().unwrap().to_owned(), kv["value"].clone())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut attrs = attrs;
                    attrs.insert("traceId".into(), span["traceId"].clone());
                    out.push((
                        span["name"].as_str().unwrap().to_owned(),
                        Value::Object(attrs),
                        service.clone(),
                    ));
                }
            }
        }
    }
    out
}

/// The trusted proxies of the tests whose `traceparent` is followed: the test's own address.
const LOOPBACK_PROXY: &str = r#"["127.0.0.1/32"]"#;

/// The login's request span among the spans of `posts`.
fn login_span(posts: &[(String, String, Vec<u8>)]) -> (String, Value, String) {
    let spans = json_spans(posts);
    spans
        .iter()
        .find(|(name, attrs, _)| {
            name == "request" && attrs["http.route"]["stringValue"] == "/api/v1/auth/login"
        })
        .cloned()
        .unwrap_or_else(|| panic!("no request span for the login route in {spans:?}"))
}

#[tokio::test]
async fn request_spans_are_exported_as_otlp_json() {
    let posts = traced_login("http/json", LOOPBACK_PROXY).await;
    assert!(
        posts
            .iter()
            .all(|(path, ct, _)| path == "/v1/traces" && ct.starts_with("application/json"))
    );
    let login = login_span(&posts);
    assert_eq!(login.1["http.request.method"]["stringValue"], "POST");
    // OTLP/JSON writes 64-bit integers as strings; accept a number too.
    let status = &login.1["http.response.status_code"]["intValue"];
    assert!(
        status == "200" || status == 200,
        "status attribute {:?}",
        login.1
    );
    assert_eq!(
        login.1["request_id"]["stringValue"].as_str().unwrap().len(),
        32
    );
    assert_eq!(login.2, "axie-under-test");
    assert_eq!(
        login.1["traceId"].as_str().unwrap().to_ascii_lowercase(),
        TRACE_ID,
        "a trusted proxy's traceparent is the span's parent"
    );
}

/// From a client that is not a trusted proxy, a `traceparent` is ignored: it neither picks the
/// trace (nor, with its sampled flag, overrides `telemetry.sample_ratio`).
#[tokio::test]
async fn a_clients_own_traceparent_is_not_followed() {
    let posts = traced_login("http/json", "[]").await;
    let login = login_span(&posts);
    let trace = login.1["traceId"].as_str().unwrap().to_ascii_lowercase();
    assert_eq!(trace.len(), 32, "{trace}");
    assert_ne!(trace, TRACE_ID, "a new trace, not the client's");
}

#[tokio::test]
async fn request_spans_are_exported_as_otlp_protobuf() {
    let posts = traced_login("http/protobuf", LOOPBACK_PROXY).await;
    assert!(
        posts
            .iter()
            .all(|(path, ct, _)| path == "/v1/traces" && ct == "application/x-protobuf")
    );
    // Protobuf keeps strings as they are: the service name and the span's fields are readable.
    let body: Vec<u8> = posts.into_iter().flat_map(|(_, _, b)| b).collect();
    for needle in [
        b"axie-under-test".as_slice(),
        b"request",
        b"http.route",
        b"/api/v1/auth/login",
    ] {
        assert!(
            contains(&body, needle),
            "{} missing from the export",
            String::from_utf8_lossy(needle)
        );
    }
}
