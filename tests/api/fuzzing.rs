//! API fuzzing: PyPI's schemathesis generates requests from the OpenAPI document and sends them
//! to the real server as the Owner. No answer may be a server error, and every answer must match
//! the document (status codes, content types, headers, response schemas). A short run here; the
//! justfile's `fuzz-api` recipe runs a long one.

use crate::both_backends;
use crate::helpers::*;

/// Operations left out because they end the caller's own session or lock the organization
/// (logout, session ends, plan and security changes, erasure, ownership, 2FA, password), which
/// would turn the rest of the run into 401s and 403s.
pub const DISRUPTIVE: &str = "(logout|sessions|/plan|/billing/subscription|/billing/trial|/security|erasure|ownership|/mfa|password|/remove|scim-tokens)";

both_backends!(
    generated_requests_get_documented_answers_and_no_server_errors,
    |b| async move {
        let t = spawn_app(b).await;
        let bin = schemathesis();
        let (url, auth) = (
            t.url("/api/v1/openapi.json"),
            format!("Authorization: Bearer {}", t.owner_token),
        );
        // The server runs on this runtime: wait for the tool on a blocking thread. It keeps a
        // cache in its working directory: a temporary one.
        let work = tempfile::tempdir().unwrap();
        let cwd = work.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&bin)
            .current_dir(cwd)
            .arg("run")
            .arg(url)
            .args(["-H", &auth])
            .args(["--max-examples", "10", "--seed", "20261128"])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance,unsupported_method",
            ])
            .args(["--exclude-path-regex", DISRUPTIVE])
            .args(["--phases", "coverage,fuzzing", "--request-timeout", "10"])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis found problems:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "N generated, N passed": at least 1,000 requests went out.
        let generated: u64 = text
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let n = words.next()?.parse().ok()?;
                (words.next()? == "generated,").then_some(n)
            })
            .next_back()
            .unwrap_or(0);
        assert!(generated >= 1_000, "only {generated} cases:\n{text}");
    }
);
