//! API fuzzing: PyPI's schemathesis generates requests from the OpenAPI document and sends them
//! to the real server as the Owner. No answer may be a server error, and every answer must match
//! the document (status codes, content types, headers, response schemas). The path's ids are
//! pinned to resources that exist (a team, a member, a chat interface, a knowledge base, a
//! webhook endpoint, an API key, an invitation), so that generated bodies and queries reach the
//! handlers instead of stopping at "not found"; deletions run in a second pass, after everything
//! else. A short run here (`AXIE_FUZZ_EXAMPLES` cases per operation and phase, default 10); the
//! justfile's `fuzz-api` recipe runs it long.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

/// Operations left out because they end the caller's own session or lock the organization
/// (logout, session ends, plan and security changes, erasure, ownership, 2FA, password), which
/// would turn the rest of the run into 401s and 403s.
pub const DISRUPTIVE: &str = "(logout|sessions|/plan$|/billing/subscription|/billing/trial|/security|erasure|ownership|/mfa|password|/remove|scim-tokens)";

/// Creates one resource through the API and returns its id.
async fn created(t: &TestApp, path: &str, body: Value) -> String {
    let res = t.post(&t.org(path), &t.owner_token, &body).await;
    let status = res.status();
    let body = json_of(res).await;
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body["id"].as_str().expect("id").to_owned()
}

/// One schemathesis run in `cwd` (which holds the pinned ids); returns its output and the
/// number of cases it generated.
async fn run(
    cwd: std::path::PathBuf,
    url: String,
    auth: String,
    examples: String,
    methods: [&'static str; 2],
) -> (String, u64) {
    let bin = schemathesis();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&bin)
            .current_dir(cwd)
            .arg("run")
            .arg(url)
            .args(["-H", &auth])
            .args(["--max-examples", &examples, "--seed", "20261128"])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance,unsupported_method",
            ])
            .args(["--exclude-path-regex", DISRUPTIVE])
            .args(methods)
            .args(["--phases", "coverage,fuzzing", "--request-timeout", "10"])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: u64 = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            (words.next()? == "generated,").then_some(n)
        })
        .next_back()
        .unwrap_or(0);
    (text, generated)
}

both_backends!(
    generated_requests_get_documented_answers_and_no_server_errors,
    |b| async move {
        // A domain's verification asks this loopback DNS server (no answer: not verified).
        let dns = DnsStub::start().await;
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                dns: Some(dns.addr),
                ..Options::default()
            },
        )
        .await;
        let rx = Receiver::start().await;
        let team = created(&t, "/teams", json!({ "name": "Fuzzed team" })).await;
        let chat = created(
            &t,
            "/chat-interfaces",
            json!({ "name": "Fuzzed chat", "team_id": team }),
        )
        .await;
        let kb = created(
            &t,
            "/knowledge-bases",
            json!({ "name": "Fuzzed knowledge", "team_id": team }),
        )
        .await;
        let endpoint = created(
            &t,
            "/webhooks",
            json!({ "url": rx.url, "events": ["chat_interface.updated"] }),
        )
        .await;
        let key = created(&t, "/api-keys", json!({ "name": "Fuzzed key" })).await;
        let invitation = created(
            &t,
            "/invitations",
            json!({ "email": "fuzzed@example.com", "role": "user" }),
        )
        .await;
        let document = t
            .upload(
                &t.org(&format!("/knowledge-bases/{kb}/documents?name=FAQ.md")),
                &t.owner_token,
                "text/markdown; charset=utf-8",
                b"# FAQ\n\nQ: Fuzzed?\nA: Yes.\n".to_vec(),
            )
            .await;
        assert!(
            document.status().is_success(),
            "upload: {}",
            document.status()
        );
        let document = json_of(document).await["id"].as_str().unwrap().to_owned();
        let domain = created(&t, "/domains", json!({ "hostname": "chat.fuzzed.example" })).await;
        let user = t.member_id("lisa@example.com").await;
        let work = tempfile::tempdir().unwrap();
        // schemathesis reads ./schemathesis.toml: every operation's path ids, and the knowledge
        // base's, the document's and the domain's for their own routes (theirs are asset ids
        // too).
        std::fs::write(
            work.path().join("schemathesis.toml"),
            format!(
                "[parameters]\norg_id = \"{}\"\nteam_id = \"{team}\"\nuser_id = \"{user}\"\n\
                 asset_id = \"{chat}\"\nendpoint_id = \"{endpoint}\"\nkey_id = \"{key}\"\n\
                 invitation_id = \"{invitation}\"\n\n[[operations]]\n\
                 include-path-regex = \"knowledge-bases/\"\nparameters = {{ asset_id = \"{kb}\" }}\n\n\
                 [[operations]]\ninclude-path-regex = \"/documents/\"\n\
                 parameters = {{ asset_id = \"{document}\" }}\n\n\
                 [[operations]]\ninclude-path-regex = \"/domains/\"\n\
                 parameters = {{ asset_id = \"{domain}\" }}\n",
                t.org_id
            ),
        )
        .unwrap();
        let examples = std::env::var("AXIE_FUZZ_EXAMPLES").unwrap_or_else(|_| "10".into());
        let (url, auth) = (
            t.url("/api/v1/openapi.json"),
            format!("Authorization: Bearer {}", t.owner_token),
        );
        let cwd = work.path().to_path_buf();
        let (first, kept) = run(
            cwd.clone(),
            url.clone(),
            auth.clone(),
            examples.clone(),
            ["--exclude-method", "DELETE"],
        )
        .await;
        // The pinned ids were reached: generated requests acted on the chat interface (an edit,
        // an archiving, a transfer), on the record; a run that stopped at "not found" would
        // have left only its creation there.
        let acted: Vec<Value> = t
            .audit(&format!("target_type=chat_interface&target_id={chat}"))
            .await
            .into_iter()
            .filter(|r| r["action"] != "chat_interface.created")
            .collect();
        assert!(
            !acted.is_empty(),
            "nothing reached the chat interface:\n{first}"
        );
        // And the document's own routes: its content was read.
        let read = t
            .audit(&format!(
                "target_type=document&target_id={document}&action=document.downloaded"
            ))
            .await;
        assert!(!read.is_empty(), "nothing read the document:\n{first}");
        let (_, deleting) = run(
            cwd,
            url,
            auth,
            examples.clone(),
            ["--include-method", "DELETE"],
        )
        .await;
        // The deletions reached the domain's own route.
        let removed = t
            .audit(&format!(
                "target_type=domain&target_id={domain}&action=domain.removed"
            ))
            .await;
        assert!(!removed.is_empty(), "the domain was not removed");
        let generated = kept + deleting;
        eprintln!(
            "schemathesis: {kept} cases, then {deleting} deleting ({examples} per operation and phase)"
        );
        // The floor is 1,000 cases, which the default of 10 per operation and phase
        // clears; a shorter run asked for on purpose (`just fuzz-api examples=3`) is held to
        // the same rate, about 100 cases per example.
        let floor = examples
            .parse::<u64>()
            .map_or(1_000, |e| (e * 100).clamp(100, 1_000));
        assert!(
            generated >= floor,
            "only {generated} cases (at least {floor}):\n{first}"
        );
    }
);
