//! Health, login, sessions, `/me`, OpenAPI, and bad input answered with problem+json.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(health_and_readiness, |b| async move {
    let t = spawn_app(b).await;
    let h = json_of(t.client.get(t.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(h["status"], "ok");
    let r = json_of(t.client.get(t.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(r["status"], "ready");
    assert_eq!(
        r["database"],
        if b == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
});

both_backends!(
    first_owner_logs_in_creates_a_key_and_calls_me_with_it,
    |b| async move {
        let t = spawn_app(b).await;
        let me = json_of(t.get(&t.url("/api/v1/me"), &t.owner_token).await).await;
        assert_eq!(me["user"]["email"], OWNER_EMAIL);
        assert_eq!(me["credential"], "session");
        let m = &me["memberships"][0];
        assert_eq!(m["org_id"], t.org_id.as_str());
        assert_eq!(m["role"], "owner");
        assert!(
            m["permissions"]
                .as_array()
                .unwrap()
                .contains(&json!("manage_billing"))
        );

        let res = t
            .post(
                &t.org("/api-keys"),
                &t.owner_token,
                &json!({"name": "Production API"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let key = res.json::<Value>().await.unwrap();
        let secret = key["secret"].as_str().unwrap();
        assert!(secret.starts_with(key["prefix"].as_str().unwrap()));
        let via_key = json_of(t.get(&t.url("/api/v1/me"), secret).await).await;
        assert_eq!(via_key["credential"], "api_key");
        assert_eq!(via_key["api_key_id"], key["id"]);
        // The secret is shown once: listing shows only the prefix.
        let list = json_of(t.get(&t.org("/api-keys"), &t.owner_token).await).await;
        assert!(!list.to_string().contains(secret));
    }
);

both_backends!(
    bad_credentials_look_the_same_for_known_and_unknown_emails,
    |b| async move {
        let t = spawn_app(b).await;
        let wrong = problem(
            t.login_response(OWNER_EMAIL, "not the password at all")
                .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        let unknown = problem(
            t.login_response("nobody@acme.example", "not the password at all")
                .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        assert_eq!(wrong["detail"], unknown["detail"]);
        let failed = t.audit("action=auth.login_failed").await;
        assert_eq!(failed.len(), 1, "the known account's failure is audited");
        assert_eq!(failed[0]["outcome"], "failure");
        problem(
            t.login_response("not an email", "x").await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
    }
);

both_backends!(
    logout_ends_the_session_on_the_next_request,
    |b| async move {
        let t = spawn_app(b).await;
        let token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        json_of(t.get(&t.url("/api/v1/me"), &token).await).await;
        let res = t
            .client
            .post(t.url("/api/v1/auth/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        problem(
            t.get(&t.url("/api/v1/me"), &token).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        // The other session is untouched.
        json_of(t.get(&t.url("/api/v1/me"), &t.owner_token).await).await;
        assert_eq!(t.audit("action=auth.logout").await.len(), 1);
    }
);

both_backends!(
    cross_site_browser_requests_cannot_use_the_session_cookie,
    |b| async move {
        let t = spawn_app(b).await;
        let login = |origin: &str| {
            t.client
                .post(t.url("/api/v1/auth/login"))
                .header("origin", origin)
                .json(&json!({ "email": OWNER_EMAIL, "password": OWNER_PASSWORD }))
                .send()
        };
        // Signing in from another site's page is refused (login CSRF), and records nothing.
        let before = t.audit("action=auth.login").await.len();
        let refused = login("https://evil.example").await.unwrap();
        // Refused like any other request: with a request id and the security headers.
        assert!(refused.headers().contains_key("x-request-id"));
        assert_eq!(refused.headers()["x-frame-options"], "DENY");
        problem(refused, StatusCode::FORBIDDEN, "cross_site_request").await;
        assert_eq!(t.audit("action=auth.login").await.len(), before);
        // From the server's own origin it works, and the cookie acts there.
        let res = login(&t.address).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let cookie = res.headers()["set-cookie"].to_str().unwrap();
        let pair = cookie.split(';').next().unwrap().to_owned();
        let create = |name: &str, headers: &[(&str, &str)]| {
            let mut req = t
                .client
                .post(t.org("/api-keys"))
                .json(&json!({ "name": name }));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.send()
        };
        let with_cookie = ("cookie", pair.as_str());
        let bearer = format!("Bearer {}", t.owner_token);
        // The web client's origin, where invitation links point (another port than the API's
        // here).
        let public = t
            .settings
            .server
            .public_url
            .trim_end_matches('/')
            .to_owned();
        assert_ne!(public, t.address);
        for (name, refused) in [
            (
                "from evil",
                vec![with_cookie, ("origin", "https://evil.example")],
            ),
            ("null origin", vec![with_cookie, ("origin", "null")]),
            (
                "fetched cross-site",
                vec![with_cookie, ("sec-fetch-site", "cross-site")],
            ),
            (
                "sibling site",
                vec![with_cookie, ("sec-fetch-site", "same-site")],
            ),
        ] {
            problem(
                create(name, &refused).await.unwrap(),
                StatusCode::FORBIDDEN,
                "cross_site_request",
            )
            .await;
        }
        for (name, allowed) in [
            (
                "same origin",
                vec![with_cookie, ("origin", t.address.as_str())],
            ),
            (
                "public origin",
                vec![with_cookie, ("origin", public.as_str())],
            ),
            ("a program", vec![with_cookie]),
            (
                "bearer from anywhere",
                vec![
                    ("authorization", bearer.as_str()),
                    ("origin", "https://evil.example"),
                ],
            ),
        ] {
            let res = create(name, &allowed).await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED, "{name}");
        }
        let names: Vec<String> =
            json_of(t.get(&t.org("/api-keys"), &t.owner_token).await).await["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["name"].as_str().unwrap().to_owned())
                .collect();
        for name in [
            "from evil",
            "null origin",
            "fetched cross-site",
            "sibling site",
        ] {
            assert!(!names.contains(&name.to_owned()), "{name} was created");
        }
        for name in [
            "same origin",
            "public origin",
            "a program",
            "bearer from anywhere",
        ] {
            assert!(
                names.contains(&name.to_owned()),
                "{name} is missing: {names:?}"
            );
        }
    }
);

both_backends!(session_cookie_is_http_only_and_works, |b| async move {
    let t = spawn_app(b).await;
    let res = t.login_response(OWNER_EMAIL, OWNER_PASSWORD).await;
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("axie_session=axs_"));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let me = t
        .client
        .get(t.url("/api/v1/me"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // A made-up cookie is never honoured.
    let forged = t
        .client
        .get(t.url("/api/v1/me"))
        .header("cookie", "axie_session=axs_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
});

both_backends!(sessions_are_listed_and_ended, |b| async move {
    let t = spawn_app(b).await;
    let second = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let list = json_of(t.get(&t.url("/api/v1/me/sessions"), &t.owner_token).await).await;
    let sessions = list["items"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(list["next_cursor"].is_null(), "{list}");
    // A page at a time, newest first: the login just made, then the test's own.
    let mut paged = Vec::new();
    let mut url = t.url("/api/v1/me/sessions?limit=1");
    loop {
        let page = json_of(t.get(&url, &t.owner_token).await).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 1, "{page}");
        paged.extend(
            items
                .iter()
                .map(|s| (s["id"].clone(), s["current"].clone())),
        );
        match page["next_cursor"].as_str() {
            Some(c) => url = t.url(&format!("/api/v1/me/sessions?limit=1&cursor={c}")),
            None => break,
        }
    }
    assert_eq!(
        paged,
        sessions
            .iter()
            .map(|s| (s["id"].clone(), s["current"].clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        paged[1].1, true,
        "the older session is the test's own: {paged:?}"
    );
    // Another person's session is no cursor of mine.
    let toms = t.login("tom@example.com", DEMO_PASSWORD).await;
    let toms_id =
        json_of(t.get(&t.url("/api/v1/me/sessions"), &toms).await).await["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    problem(
        t.get(
            &t.url(&format!("/api/v1/me/sessions?cursor={toms_id}")),
            &t.owner_token,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = t
        .delete(
            &t.url(&format!("/api/v1/me/sessions/{other}")),
            &t.owner_token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    problem(
        t.get(&t.url("/api/v1/me"), &second).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    problem(
        t.delete(
            &t.url(&format!("/api/v1/me/sessions/{other}")),
            &t.owner_token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
});

both_backends!(fourth_login_ends_the_oldest_session, |b| async move {
    let t = spawn_app(b).await;
    let s2 = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let s3 = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let s4 = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    problem(
        t.get(&t.url("/api/v1/me"), &t.owner_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    for s in [&s2, &s3, &s4] {
        json_of(t.get(&t.url("/api/v1/me"), s).await).await;
    }
    // The eviction is recorded with the login that made it: the first session, by its owner.
    let audit = |q: &'static str| {
        let s4 = s4.clone();
        let t = &t;
        async move {
            let page = json_of(t.get(&t.org(&format!("/audit-events?{q}")), &s4).await).await;
            page["items"].as_array().unwrap().clone()
        }
    };
    let revoked = audit("action=auth.session_revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["metadata"]["reason"], "session_limit");
    assert_eq!(revoked[0]["actor_type"], "user");
    let logins = audit("action=auth.login").await;
    assert_eq!(
        logins[0]["seq"].as_i64().unwrap() + 1,
        revoked[0]["seq"].as_i64().unwrap()
    );
    let first_login = logins.last().unwrap();
    assert_eq!(revoked[0]["target_id"], first_login["target_id"]);
});

both_backends!(
    sessions_past_their_timeouts_do_not_count_toward_the_limit,
    |b| async move {
        let t = spawn_app(b).await;
        // The first session (the owner's token) stays in use; two later ones are left idle.
        t.clock.advance(chrono::Duration::minutes(1));
        let idle = [
            t.login(OWNER_EMAIL, OWNER_PASSWORD).await,
            t.login(OWNER_EMAIL, OWNER_PASSWORD).await,
        ];
        t.clock.advance(chrono::Duration::minutes(25));
        json_of(t.get(&t.url("/api/v1/me"), &t.owner_token).await).await;
        t.clock.advance(chrono::Duration::minutes(10));
        // A fourth login: the two idle sessions end for their timeout, and the one in use,
        // the oldest, is not evicted for them.
        let fourth = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        for s in [&t.owner_token, &fourth] {
            json_of(t.get(&t.url("/api/v1/me"), s).await).await;
        }
        for s in &idle {
            problem(
                t.get(&t.url("/api/v1/me"), s).await,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            )
            .await;
        }
        let revoked = t.audit("action=auth.session_revoked").await;
        let reasons: Vec<&str> = revoked
            .iter()
            .map(|r| r["metadata"]["reason"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(reasons, ["idle_timeout", "idle_timeout"], "{revoked:?}");
        let sessions = json_of(t.get(&t.url("/api/v1/me/sessions"), &fourth).await).await;
        assert_eq!(
            sessions["items"].as_array().map(Vec::len),
            Some(2),
            "{sessions}"
        );
    }
);

both_backends!(idle_and_absolute_timeouts_end_sessions, |b| async move {
    let t = spawn_app(b).await;
    let token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    t.clock.advance(chrono::Duration::minutes(29));
    json_of(t.get(&t.url("/api/v1/me"), &token).await).await;
    t.clock.advance(chrono::Duration::minutes(31));
    problem(
        t.get(&t.url("/api/v1/me"), &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let busy = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    for _ in 0..17 {
        t.clock.advance(chrono::Duration::minutes(28));
        json_of(t.get(&t.url("/api/v1/me"), &busy).await).await;
    }
    // 17 × 28 min = 7 h 56 min of activity; 8 h after login the session ends though it is busy.
    t.clock.advance(chrono::Duration::minutes(5));
    problem(
        t.get(&t.url("/api/v1/me"), &busy).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // Each end is recorded once, by the system, with its reason; a second request with an
    // ended session records nothing more. (The server's first session, idle since the start,
    // was ended by the login of `busy`, as past its timeout.)
    problem(
        t.get(&t.url("/api/v1/me"), &busy).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let owner = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    let revoked = json_of(
        t.get(&t.org("/audit-events?action=auth.session_revoked"), &owner)
            .await,
    )
    .await;
    let reasons: Vec<(&str, &str)> = revoked["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["metadata"]["reason"].as_str().unwrap(),
                e["actor_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("absolute_timeout", "system"),
            ("idle_timeout", "system"),
            ("idle_timeout", "system")
        ]
    );
});

both_backends!(
    session_activity_is_written_once_per_granularity,
    |b| async move {
        let t = spawn_app(b).await;
        let token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let last_seen = || async {
            let list = json_of(t.get(&t.url("/api/v1/me/sessions"), &token).await).await;
            let current = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["current"] == true)
                .unwrap()
                .clone();
            chrono::DateTime::parse_from_rfc3339(current["last_seen_at"].as_str().unwrap()).unwrap()
        };
        let login = last_seen().await;
        // The default 30-minute idle timeout: activity is written once a minute, not per request.
        t.clock.advance(chrono::Duration::seconds(45));
        assert_eq!(last_seen().await, login);
        t.clock.advance(chrono::Duration::seconds(20));
        // The test clock runs on from real time: allow the test's own running time.
        let written = |at: i64| {
            let at = login + chrono::Duration::seconds(at);
            move |seen| seen >= at && seen < at + chrono::Duration::seconds(5)
        };
        let seen = last_seen().await;
        assert!(written(65)(seen), "{seen} (login {login})");
        // A 1-minute idle timeout: within 3 seconds.
        let strict = json!({ "sessions": { "absolute_timeout_minutes": 60, "idle_timeout_minutes": 1, "max_concurrent": 3 } });
        assert_eq!(
            t.patch(&t.org("/security"), &t.owner_token, &strict)
                .await
                .status(),
            StatusCode::OK
        );
        t.clock.advance(chrono::Duration::seconds(4));
        let seen = last_seen().await;
        assert!(written(69)(seen), "{seen} (login {login})");
    }
);

both_backends!(
    text_with_a_nul_character_is_refused_on_both_databases,
    |b| async move {
        // PostgreSQL's text cannot hold U+0000: before the check, the webhook's description was
        // a 500 there (the write failed in the database) and stored as sent on SQLite; the
        // email was refused by its own rule (401). Now each is the body's fault, on both.
        let t = spawn_app(b).await;
        let before = t.audit("limit=500").await.len();
        let rx = Receiver::start().await;
        let raw = |url: String, token: Option<String>, body: String| {
            let mut req = t
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            req.send()
        };
        let owner = || Some(t.owner_token.clone());
        let refused = problem(
            raw(
                t.url("/api/v1/auth/login"),
                None,
                r#"{"email": "owner\u0000@acme.example", "password": "x"}"#.to_owned(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains("NUL"),
            "{refused}"
        );
        problem(
            raw(
                t.org("/teams"),
                owner(),
                r#"{"name": "Sales\u0000"}"#.to_owned(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        problem(
            raw(
                t.org("/webhooks"),
                owner(),
                format!(
                    r#"{{"url": "{}", "description": "a\u0000b", "events": []}}"#,
                    rx.url
                ),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        // Nested anywhere, it is refused before the body is read for what it means (an unknown
        // event would be 422).
        problem(
            raw(
                t.org("/webhooks"),
                owner(),
                format!(r#"{{"url": "{}", "events": ["user.\u0000"]}}"#, rx.url),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        problem(
            t.get(&t.org("/audit-events?actor=a%00b"), &t.owner_token)
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        // The same text written out as six characters is text like any other.
        let res = raw(
            t.org("/teams"),
            owner(),
            r#"{"name": "Sales \\u0000"}"#.to_owned(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let team = json_of(res).await;
        assert_eq!(team["name"], "Sales \\u0000");
        // Nothing else was stored or recorded: no endpoint, one team, and the log holds only
        // that team's creation.
        let hooks = json_of(t.get(&t.org("/webhooks"), &t.owner_token).await).await;
        assert_eq!(hooks["items"].as_array().unwrap().len(), 0, "{hooks}");
        let after = t.audit("limit=500").await;
        assert_eq!(
            after.len(),
            before + 1,
            "{:?}",
            &after[..after.len() - before]
        );
        assert_eq!(after[0]["action"], "team.created");
    }
);

both_backends!(
    bad_input_gets_problem_json_and_changes_nothing,
    |b| async move {
        let t = spawn_app(b).await;
        let before = t.audit("limit=500").await.len();
        let url = t.org("/api-keys");
        let raw = |body: &'static str| {
            t.client
                .post(&url)
                .bearer_auth(&t.owner_token)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        problem(
            raw("{not json").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        problem(
            raw(r#"{"name": 42}"#).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        problem(
            raw(r#"{"name": "x", "scopes": ["all"]}"#).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        problem(
            raw(r#"{"name": "   "}"#).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let huge = json!({ "name": "x".repeat(2 * 1024 * 1024) });
        problem(
            t.post(&url, &t.owner_token, &huge).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        )
        .await;
        let no_ct = t
            .client
            .post(&url)
            .bearer_auth(&t.owner_token)
            .body(r#"{"name":"x"}"#)
            .send()
            .await
            .unwrap();
        problem(
            no_ct,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
        problem(
            t.get(&t.org("/members?limit=0"), &t.owner_token).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        problem(
            t.get(&t.org("/members?bogus=1"), &t.owner_token).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        problem(
            t.get(&t.url("/api/v1/nope"), &t.owner_token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.patch(
                &t.org(""),
                &t.owner_token,
                &json!({"contact_email": "not-an-email"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        problem(
            t.get(&t.url("/api/v1/me"), "axk_wrong").await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        let keys = json_of(t.get(&url, &t.owner_token).await).await;
        assert!(
            keys["items"].as_array().unwrap().is_empty(),
            "no key was created"
        );
        let after = t.audit("limit=500").await.len();
        assert_eq!(
            before, after,
            "nothing was audited because nothing happened"
        );
    }
);

both_backends!(openapi_document_covers_the_api, |b| async move {
    let t = spawn_app(b).await;
    let doc = json_of(
        t.client
            .get(t.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/orgs/{org_id}/api-keys",
        "/api/v1/orgs/{org_id}/audit-events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    // An independent validator (PyPI's openapi-spec-validator) accepts the document.
    let mut child = std::process::Command::new(ensure_python_checkers())
        .args(["-c", "import json,sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with openapi-spec-validator");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), doc.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
});

both_backends!(
    responses_carry_request_ids_and_security_headers,
    |b| async move {
        let t = spawn_app(b).await;
        let res = t
            .client
            .get(t.url("/healthz"))
            .header("x-request-id", "trace-123")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "trace-123");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        let res = t.client.get(t.url("/healthz")).send().await.unwrap();
        assert_eq!(res.headers()["x-request-id"].len(), 32);
    }
);

both_backends!(
    company_settings_update_and_billing_fields_are_owner_only,
    |b| async move {
        let t = spawn_app(b).await;
        let body = json!({"company_name": "Your Company Inc.", "contact_email": "Admin@YourCompany.com", "billing_address": "123 Business St", "tax_id": "SE123"});
        let org = json_of(t.patch(&t.org(""), &t.owner_token, &body).await).await;
        assert_eq!(org["company_name"], "Your Company Inc.");
        assert_eq!(org["contact_email"], "admin@yourcompany.com");
        assert_eq!(org["tax_id"], "SE123");
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let seen = json_of(t.get(&t.org(""), &mike).await).await;
        assert_eq!(seen["company_name"], "Your Company Inc.");
        assert_eq!(seen["tax_id"], "", "admins do not see billing data");
        json_of(
            t.patch(&t.org(""), &mike, &json!({"company_name": "Renamed"}))
                .await,
        )
        .await;
        let denied = problem(
            t.patch(&t.org(""), &mike, &json!({"tax_id": "X"})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(denied["reason"], "role_lacks_permission");
        // The organization's own name (what mail and reports call it) changes too, and
        // `enterprise.updated` tells the endpoints that want it.
        let rx = Receiver::start().await;
        let hook = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": ["enterprise.updated"] }),
            )
            .await;
        assert_eq!(hook.status(), StatusCode::CREATED);
        let renamed = json_of(
            t.patch(&t.org(""), &mike, &json!({"name": "  Acme Holdings "}))
                .await,
        )
        .await;
        assert_eq!(renamed["name"], "Acme Holdings");
        let got = rx.wait_for(1, 10).await;
        let event: Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(event["event"], "enterprise.updated");
        let schema = crate::billing::schema_of(&t, "enterprise.updated").await;
        crate::webhooks::assert_valid(&schema, &event);
        assert_eq!(
            (&event["data"]["name"], &event["data"]["previousName"]),
            (&json!("Acme Holdings"), &json!("Acme Corp"))
        );
        assert_eq!(
            event["data"]["updatedBy"],
            t.member_id("mike@example.com").await
        );
        let seen = json_of(t.get(&t.org(""), &t.owner_token).await).await;
        assert_eq!(seen["name"], "Acme Holdings");
        problem(
            t.patch(&t.org(""), &mike, &json!({"name": " "})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let invited = t
            .post(
                &t.org("/invitations"),
                &t.owner_token,
                &json!({ "email": "newhire@example.com", "role": "user" }),
            )
            .await;
        assert_eq!(invited.status(), StatusCode::CREATED);
        let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
        assert!(
            outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["to"] == "newhire@example.com"
                    && m["subject"].as_str().unwrap().contains("Acme Holdings")),
            "{outbox}"
        );
        let updates = t.audit("action=settings.updated").await;
        assert_eq!(updates.len(), 3);
        assert_eq!(
            updates[0]["metadata"]["name"],
            json!({"from": "Acme Corp", "to": "Acme Holdings"})
        );
        let recorded = t.audit("action=access.denied").await;
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(recorded[0]["actor_type"], "user");
        assert_eq!(recorded[0]["target_id"], "update_company_settings");
        assert_eq!(recorded[0]["reason"], "role_lacks_permission");
    }
);

both_backends!(
    repeated_failed_logins_lock_the_account_for_a_while,
    |b| async move {
        let t = spawn_app(b).await;
        for _ in 0..10 {
            problem(
                t.login_response("lisa@example.com", "wrong password guess")
                    .await,
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
            )
            .await;
        }
        // Locked: even the right password is refused, with a clear answer and Retry-After.
        let res = t.login_response("lisa@example.com", DEMO_PASSWORD).await;
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        problem(res, StatusCode::TOO_MANY_REQUESTS, "login_throttled").await;
        let throttled = t.audit("action=auth.login_failed&outcome=failure").await;
        assert_eq!(
            throttled
                .iter()
                .filter(|r| r["reason"] == "throttled")
                .count(),
            1
        );
        assert_eq!(
            throttled
                .iter()
                .filter(|r| r["reason"] == "bad_credentials")
                .count(),
            10
        );
        // Other accounts are not affected.
        t.login("tom@example.com", DEMO_PASSWORD).await;
        t.clock.advance(chrono::Duration::minutes(15));
        t.login("lisa@example.com", DEMO_PASSWORD).await;
        // Success resets the count: one more mistake does not lock again.
        problem(
            t.login_response("lisa@example.com", "one more typo").await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        t.login("lisa@example.com", DEMO_PASSWORD).await;
        // An email that names no account answers the same way, so the lock does not tell
        // whether an account exists.
        for _ in 0..10 {
            problem(
                t.login_response("nobody.here@example.com", "wrong password guess")
                    .await,
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
            )
            .await;
        }
        let res = t
            .login_response("Nobody.Here@example.com", "wrong password guess")
            .await;
        assert!(res.headers().contains_key("retry-after"));
        problem(res, StatusCode::TOO_MANY_REQUESTS, "login_throttled").await;
        t.clock.advance(chrono::Duration::minutes(15));
        problem(
            t.login_response("nobody.here@example.com", "wrong password guess")
                .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
    }
);

both_backends!(
    a_signed_in_person_founds_an_organization_and_owns_it,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let found = |token: &str, name: &str| {
            let (t, token, body) = (&t, token.to_owned(), json!({ "name": name }));
            async move { t.post(&t.url("/api/v1/orgs"), &token, &body).await }
        };
        let res = found(&lisa, "Lisa Labs").await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let org: Value = res.json().await.unwrap();
        assert_eq!(
            (&org["name"], &org["plan"]),
            (&json!("Lisa Labs"), &json!("free"))
        );
        let id = org["id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/v1/orgs/{id}"));

        // She is its Owner, and its only member; it is hers alone.
        let me = json_of(t.get(&t.url("/api/v1/me"), &lisa).await).await;
        let mine = me["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["org_id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(mine["role"], "owner");
        let members = json_of(
            t.get(&t.url(&format!("/api/v1/orgs/{id}/members")), &lisa)
                .await,
        )
        .await;
        let items = members["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["email"], "lisa@example.com");
        assert_eq!(
            t.get(&t.url(&format!("/api/v1/orgs/{id}")), &t.owner_token)
                .await
                .status(),
            StatusCode::NOT_FOUND,
            "another organization's Owner learns nothing of it"
        );
        // Its log starts with its founding, by her, from her request.
        let log = audit::AuditStore::search(
            &*t.store,
            id.parse().unwrap(),
            &audit::AuditQuery {
                limit: 50,
                ..audit::AuditQuery::default()
            },
        )
        .await
        .unwrap();
        let founding: Vec<(&str, &str, &str)> = log
            .iter()
            .rev()
            .map(|r| {
                (
                    r.event.action.as_str(),
                    r.event.actor.name.as_str(),
                    r.event.context.ip.as_str(),
                )
            })
            .collect();
        assert_eq!(
            founding,
            [
                ("org.created", "Lisa", "127.0.0.1"),
                ("member.added", "Lisa", "127.0.0.1")
            ]
        );

        // Bad input, an API key and no credential are refused, and create nothing.
        problem(
            found(&lisa, "   ").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let extra = t
            .post(
                &t.url("/api/v1/orgs"),
                &lisa,
                &json!({"name": "X", "plan": "enterprise"}),
            )
            .await;
        assert!(extra.status().is_client_error(), "{}", extra.status());
        let key = json_of(
            t.post(&t.org("/api-keys"), &t.owner_token, &json!({"name": "k"}))
                .await,
        )
        .await;
        problem(
            found(key["secret"].as_str().unwrap(), "Keyed").await,
            StatusCode::FORBIDDEN,
            "interactive_only",
        )
        .await;
        assert_eq!(
            t.client
                .post(t.url("/api/v1/orgs"))
                .json(&json!({"name": "Anonymous"}))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        // One account founds at most ten.
        for i in 2..=10 {
            assert_eq!(
                found(&lisa, &format!("Lisa Labs {i}")).await.status(),
                StatusCode::CREATED
            );
        }
        problem(
            found(&lisa, "One too many").await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        let me = json_of(t.get(&t.url("/api/v1/me"), &lisa).await).await;
        assert_eq!(me["memberships"].as_array().unwrap().len(), 11);

        // The operator's command: a customer's organization with a new Owner, or an existing one.
        let out = axie_server::admin::create_org(
            &t.store,
            "Globex",
            "enterprise",
            "hank@globex.example",
            Some("Hank"),
            Some("a long enough passphrase 12"),
        )
        .await
        .unwrap();
        assert!(out.contains("enterprise plan"), "{out}");
        let hank = t
            .login("hank@globex.example", "a long enough passphrase 12")
            .await;
        let me = json_of(t.get(&t.url("/api/v1/me"), &hank).await).await;
        assert_eq!(me["memberships"][0]["role"], "owner");
        axie_server::admin::create_org(
            &t.store,
            "Lisa Consulting",
            "pro",
            "lisa@example.com",
            None,
            None,
        )
        .await
        .unwrap();
        let me = json_of(t.get(&t.url("/api/v1/me"), &lisa).await).await;
        assert_eq!(me["memberships"].as_array().unwrap().len(), 12);
        assert!(
            axie_server::admin::create_org(&t.store, "X", "platinum", "x@example.com", None, None)
                .await
                .is_err()
        );
    }
);
