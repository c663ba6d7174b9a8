//! Security policy end to end: TOTP with an independent authenticator (pyotp), replay and
//! race protection, recovery and SMS codes, the 2FA requirement's grace period at its
//! boundary, session rules, IP allowlists behind a trusted proxy, passwords, throttling.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

/// The demo team behind a trusted loopback proxy (`X-Forwarded-For` names the client).
async fn spawn_behind_proxy(b: Backend) -> TestApp {
    spawn_app_with(
        b,
        Options {
            demo: true,
            trust_loopback_proxy: true,
            ..Options::default()
        },
    )
    .await
}

/// The demo team behind a trusted loopback proxy, whose addresses are locked after `failures`
/// failed logins.
async fn spawn_locking_addresses_after(b: Backend, failures: u32) -> TestApp {
    spawn_app_with(
        b,
        Options {
            demo: true,
            trust_loopback_proxy: true,
            address_login_failures: Some(failures),
            ..Options::default()
        },
    )
    .await
}

/// A password login from `ip` (as the trusted proxy says).
async fn login_from(t: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    t.client
        .post(t.url("/api/v1/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

/// First login step for someone with 2FA: the challenge.
async fn challenge(t: &TestApp, email: &str, password: &str) -> Value {
    let res = t.login_response(email, password).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    res.json().await.unwrap()
}

async fn verify(t: &TestApp, challenge: &Value, factor: Value) -> reqwest::Response {
    let mut body = factor;
    body["challenge"] = challenge["challenge"].clone();
    t.client
        .post(t.url("/api/v1/auth/login/verify"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

both_backends!(
    totp_works_with_an_independent_authenticator_and_never_twice,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        // Enrolment is confirmed with the current password: a stolen session cannot tie the
        // account to someone else's authenticator. A wrong one is refused and recorded.
        let res = t
            .post(
                &t.url("/api/v1/me/mfa/totp"),
                &lisa,
                &json!({ "password": "not her password" }),
            )
            .await;
        problem(res, StatusCode::UNAUTHORIZED, "bad_credentials").await;
        let refused = t.audit("action=auth.mfa_enabled").await;
        assert_eq!(refused[0]["outcome"], "failure", "{refused:?}");
        assert_eq!(refused[0]["reason"], "bad_current_password");
        let res = t
            .post(
                &t.url("/api/v1/me/mfa/totp"),
                &lisa,
                &json!({ "password": DEMO_PASSWORD }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let e: Value = res.json().await.unwrap();
        // 160 bits of secret are 32 base32 characters; the QR code is an SVG image of the URI.
        assert_eq!(e["secret"].as_str().unwrap().len(), 32);
        let uri = e["otpauth_uri"].as_str().unwrap().to_owned();
        assert!(
            uri.starts_with("otpauth://totp/Axie%20Studio:lisa%40example.com?"),
            "{uri}"
        );
        assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
        // Not active before a valid code; a wrong code does not activate it.
        let status = json_of(t.get(&t.url("/api/v1/me/mfa"), &lisa).await).await;
        assert_eq!(
            (status["enabled"].as_bool(), status["pending"].as_bool()),
            (Some(false), Some(true))
        );
        assert_eq!(
            t.login_response("lisa@example.com", DEMO_PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
        problem(
            t.post(
                &t.url("/api/v1/me/mfa/totp/activate"),
                &lisa,
                &json!({ "code": "000000" }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let code = pyotp_code(&uri, t.clock.now().timestamp());
        let res = t
            .post(
                &t.url("/api/v1/me/mfa/totp/activate"),
                &lisa,
                &json!({ "code": code }),
            )
            .await;
        let codes: Value = res.json().await.unwrap();
        assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);

        // Now a password alone opens no session: a challenge, which is no credential.
        let ch = challenge(&t, "lisa@example.com", DEMO_PASSWORD).await;
        assert_eq!(ch["methods"], json!(["totp", "recovery_code"]));
        problem(
            t.get(&t.url("/api/v1/me"), ch["challenge"].as_str().unwrap())
                .await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        // The activation code's time step was used: the same code is refused (RFC 6238 §5.2).
        problem(
            verify(&t, &ch, json!({ "code": code })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;

        // The next step's code works, from pyotp at the server's time; the window is ±1 step.
        t.clock.advance(Duration::seconds(30));
        let now = t.clock.now().timestamp();
        let two_back = pyotp_code(&uri, now - 60);
        problem(
            verify(&t, &ch, json!({ "code": two_back })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let ok = verify(&t, &ch, json!({ "code": pyotp_code(&uri, now + 30) })).await;
        assert_eq!(
            ok.status(),
            StatusCode::OK,
            "one step ahead is inside the window"
        );
        let session: Value = ok.json().await.unwrap();
        assert_eq!(
            json_of(
                t.get(&t.url("/api/v1/me"), session["token"].as_str().unwrap())
                    .await
            )
            .await["user"]["email"],
            "lisa@example.com"
        );
        // The challenge is spent.
        problem(
            verify(&t, &ch, json!({ "code": pyotp_code(&uri, now + 30) })).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;

        // Two logins racing with one code: exactly one session.
        t.clock.advance(Duration::seconds(90));
        let code = pyotp_code(&uri, t.clock.now().timestamp());
        let a = challenge(&t, "lisa@example.com", DEMO_PASSWORD).await;
        let b2 = challenge(&t, "lisa@example.com", DEMO_PASSWORD).await;
        let (ra, rb) = tokio::join!(
            verify(&t, &a, json!({ "code": code })),
            verify(&t, &b2, json!({ "code": code }))
        );
        let wins = [ra.status(), rb.status()]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert_eq!(
            wins, 1,
            "a code opens one session, also when two submissions race"
        );

        // Recovery codes work once each.
        let rc = codes["recovery_codes"][0].as_str().unwrap();
        let ch = challenge(&t, "lisa@example.com", DEMO_PASSWORD).await;
        let res = verify(&t, &ch, json!({ "recovery_code": rc.to_uppercase() })).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap()["recovery_codes_left"], 9);
        let used = t.audit("action=auth.recovery_code_used").await;
        assert_eq!(used.len(), 1, "{used:?}");
        assert_eq!(used[0]["metadata"]["left"], 9);
        let ch = challenge(&t, "lisa@example.com", DEMO_PASSWORD).await;
        problem(
            verify(&t, &ch, json!({ "recovery_code": rc })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        assert_eq!(
            t.audit("action=auth.recovery_code_used").await.len(),
            1,
            "a refused code writes no use"
        );
        problem(
            verify(&t, &ch, json!({ "code": "1", "recovery_code": rc })).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;

        // Wrong codes are throttled per account (10 in 15 minutes), and audited; also thirty
        // sent at once: each is counted before it is checked, so no more than ten are checked.
        let (answers, checked) = burst(
            (0..30).map(|_| verify(&t, &ch, json!({ "code": "000000" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            checked <= 10 && answers.contains(&StatusCode::TOO_MANY_REQUESTS),
            "{checked} codes were checked: {answers:?}"
        );
        let locked = verify(
            &t,
            &ch,
            json!({ "code": pyotp_code(&uri, t.clock.now().timestamp()) }),
        )
        .await;
        assert_eq!(
            locked.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "even the right code waits out the lock"
        );
        let failed = t.audit("action=auth.login_failed&limit=50").await;
        assert!(
            failed
                .iter()
                .filter(|r| r["reason"] == "bad_second_factor")
                .count()
                >= 10
        );
        assert!(!t.audit("action=auth.mfa_enabled").await.is_empty());
    }
);

both_backends!(
    changing_the_second_factor_records_refusals_and_recovery_codes,
    |b| async move {
        let t = spawn_app(b).await;
        let (_, codes) = enrol_totp(&t, &t.owner_token, OWNER_PASSWORD).await;
        // A wrong proof is refused and recorded as a denied attempt.
        problem(
            t.post(
                &t.url("/api/v1/me/mfa/disable"),
                &t.owner_token,
                &json!({ "code": "000000", "password": OWNER_PASSWORD }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let denied = t.audit("action=access.denied&outcome=denied").await;
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert_eq!(denied[0]["reason"], "bad_second_factor");
        // Turning it off also takes the current password, recorded when wrong.
        problem(
            t.post(
                &t.url("/api/v1/me/mfa/disable"),
                &t.owner_token,
                &json!({ "recovery_code": codes[0], "password": "not my password at all" }),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        let failed = t.audit("action=auth.mfa_disabled").await;
        assert_eq!(
            (
                failed.len(),
                failed[0]["outcome"].as_str(),
                failed[0]["reason"].as_str()
            ),
            (1, Some("failure"), Some("bad_current_password"))
        );
        // A password the policy allows only with 2FA must be changed before 2FA goes.
        let res = t
            .post(
                &t.url("/api/v1/me/password"),
                &t.owner_token,
                &json!({ "current_password": OWNER_PASSWORD, "new_password": "eight ch" }),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "8 characters suffice with 2FA"
        );
        let p = problem(
            t.post(
                &t.url("/api/v1/me/mfa/disable"),
                &t.owner_token,
                &json!({ "recovery_code": codes[0], "password": "eight ch" }),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains("change it first"),
            "{p}"
        );
        let res = t
            .post(
                &t.url("/api/v1/me/password"),
                &t.owner_token,
                &json!({ "current_password": "eight ch", "new_password": OWNER_PASSWORD }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        // A recovery code as proof is used up, and its use recorded with the change.
        let res = t
            .post(
                &t.url("/api/v1/me/mfa/disable"),
                &t.owner_token,
                &json!({ "recovery_code": codes[0], "password": OWNER_PASSWORD }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let used = t.audit("action=auth.recovery_code_used").await;
        assert_eq!(used.len(), 1, "{used:?}");
        assert_eq!(used[0]["metadata"]["left"], 9);
        let off = t.audit("action=auth.mfa_disabled").await;
        assert_eq!(
            (off.len(), off[0]["outcome"].as_str()),
            (2, Some("success"))
        );
    }
);

both_backends!(
    an_operator_reopens_an_organization_its_network_rules_lock_out,
    |b| async move {
        let t = spawn_behind_proxy(b).await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        // The allowlist admits the address it was saved from, and no longer the Owner's.
        let saved = t
            .patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": [{ "network": "127.0.0.1/32", "label": "Proxy" }] }),
            )
            .await;
        assert_eq!(saved.status(), StatusCode::OK);
        let url = t.org("/security");
        let from_home = || get_from(&t, &url, &t.owner_token, "198.51.100.7");
        problem(from_home().await, StatusCode::FORBIDDEN, "ip_not_allowed").await;

        let said = axie_server::admin::clear_network_rules(&t.store, org)
            .await
            .unwrap();
        assert!(said.contains("127.0.0.1/32"), "{said}");
        let open = json_of(from_home().await).await;
        assert_eq!(open["ip_allowlist_allows_everyone"], true, "{open}");
        // Recorded as the system's change, with what it removed.
        let logged = t.audit("action=security_policy.updated").await;
        assert_eq!(logged[0]["actor_type"], "system", "{:?}", logged[0]);
        assert_eq!(
            logged[0]["metadata"]["fields"],
            json!(["ip_allowlist", "ip_allowlist_labels"])
        );
        assert_eq!(
            logged[0]["metadata"]["changes"]["ip_allowlist"],
            json!({ "added": [], "removed": ["127.0.0.1/32"] })
        );
        assert_eq!(
            logged[0]["metadata"]["changes"]["ip_allowlist_labels"]["removed_networks"],
            json!(["127.0.0.1/32"])
        );
        let stored = tenancy::OrgStore::get_org(&*t.store, org).await.unwrap();
        assert!(stored.security.ip_allowlist_labels.is_empty());
        // Nothing left to clear: nothing written.
        let said = axie_server::admin::clear_network_rules(&t.store, org)
            .await
            .unwrap();
        assert!(said.contains("nothing to clear"), "{said}");
        assert_eq!(t.audit("action=security_policy.updated").await.len(), 2);
        assert!(
            axie_server::admin::clear_network_rules(&t.store, rbac_core::OrgId::new())
                .await
                .is_err()
        );
    }
);

/// `GET url` with `token`, from `ip` as the trusted proxy on loopback reports it.
async fn get_from(t: &TestApp, url: &str, token: &str, ip: &str) -> reqwest::Response {
    t.client
        .get(url)
        .bearer_auth(token)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
}

/// What the organization's address check says of `ip`.
async fn ip_check(t: &TestApp, ip: &str) -> Value {
    json_of(
        t.post(
            &t.org("/security/ip-check"),
            &t.owner_token,
            &json!({ "ip": ip }),
        )
        .await,
    )
    .await
}

/// A GeoLite2-style country database placing 203.0.113.0/24 in France and 198.51.100.0/24 in the
/// United States (loopback and private addresses are in no country), written to `dir`.
fn country_database(dir: &std::path::Path) -> std::path::PathBuf {
    use mmdb_writer::ipnet::IpNet;
    let mut w = mmdb_writer::Writer::new("GeoLite2-Country");
    for (net, code) in [("203.0.113.0/24", "FR"), ("198.51.100.0/24", "US")] {
        w.insert(
            net.parse::<IpNet>().unwrap(),
            &json!({ "country": { "iso_code": code } }),
        )
        .unwrap();
    }
    let path = dir.join("countries.mmdb");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

both_backends!(blocked_countries_refuse_their_requests, |b| async move {
    // Without a GeoIP database the server cannot place addresses, and says so.
    let plain = spawn_app_with(
        b,
        Options {
            trust_loopback_proxy: true,
            ..Options::default()
        },
    )
    .await;
    let p = problem(
        plain
            .patch(
                &plain.org("/security"),
                &plain.owner_token,
                &json!({ "blocked_countries": ["RU"] }),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("geoip_database"),
        "{p}"
    );
    drop(plain);

    let dir = tempfile::tempdir().unwrap();
    let t = spawn_app_with(
        b,
        Options {
            trust_loopback_proxy: true,
            geoip_database: Some(country_database(dir.path())),
            ..Options::default()
        },
    )
    .await;
    let from = |ip: &'static str, method: reqwest::Method, path: String, body: Value| {
        let t = &t;
        async move {
            t.client
                .request(method, path)
                .bearer_auth(&t.owner_token)
                .header("x-forwarded-for", ip)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let patch =
        |ip: &'static str, body: Value| from(ip, reqwest::Method::PATCH, t.org("/security"), body);
    // Blocking the caller's own country is refused; so are codes that are no country.
    let p = problem(
        patch("203.0.113.5", json!({ "blocked_countries": ["fr"] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("France (FR)"), "{p}");
    problem(
        patch("198.51.100.7", json!({ "blocked_countries": ["FR", "XX"] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    let saved =
        json_of(patch("198.51.100.7", json!({ "blocked_countries": ["fr", "RU"] })).await).await;
    assert_eq!(saved["blocked_countries"], json!(["FR", "RU"]));
    let shown = json_of(t.get(&t.org("/security"), &t.owner_token).await).await;
    assert_eq!(shown["blocked_countries"], json!(["FR", "RU"]));

    // Requests from France reach nothing of the organization, with a session or a key;
    // from the United States, or from an address in no country (loopback), they do.
    let key: Value = json_of(
        t.post(&t.org("/api-keys"), &t.owner_token, &json!({ "name": "k" }))
            .await,
    )
    .await;
    let secret = key["secret"].as_str().unwrap().to_owned();
    for token in [t.owner_token.clone(), secret] {
        let get = |ip: &'static str| {
            let (t, token) = (&t, token.clone());
            async move { get_from(t, &t.org("/members"), &token, ip).await }
        };
        let p = problem(
            get("203.0.113.5").await,
            StatusCode::FORBIDDEN,
            "country_blocked",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("France (FR)"), "{p}");
        assert_eq!(get("198.51.100.7").await.status(), StatusCode::OK);
        assert_eq!(
            t.get(&t.org("/members"), &token).await.status(),
            StatusCode::OK
        );
    }
    // An API key belongs to one organization: its blocked countries hold on `/me` too. A
    // session outside the organization is held to the allowlists only.
    let me = |token: String, ip: &'static str| {
        let t = &t;
        async move { get_from(t, &t.url("/api/v1/me"), &token, ip).await }
    };
    let secret = key["secret"].as_str().unwrap().to_owned();
    problem(
        me(secret.clone(), "203.0.113.5").await,
        StatusCode::FORBIDDEN,
        "country_blocked",
    )
    .await;
    assert_eq!(me(secret, "198.51.100.7").await.status(), StatusCode::OK);
    assert_eq!(
        me(t.owner_token.clone(), "203.0.113.5").await.status(),
        StatusCode::OK
    );
    // SCIM too.
    let scim: Value = json_of(
        t.post(
            &t.org("/scim-tokens"),
            &t.owner_token,
            &json!({ "name": "Okta" }),
        )
        .await,
    )
    .await;
    let scim_users = |ip: &'static str| {
        let (t, token) = (&t, scim["secret"].as_str().unwrap().to_owned());
        async move {
            get_from(
                t,
                &t.url(&format!("/scim/v2/{}/Users", t.org_id)),
                &token,
                ip,
            )
            .await
        }
    };
    let refused = scim_users("203.0.113.5").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("France (FR)"));
    assert_eq!(scim_users("198.51.100.7").await.status(), StatusCode::OK);
    let denied = t.audit("action=access.denied").await;
    assert_eq!(
        denied
            .iter()
            .filter(|r| r["reason"] == "country_blocked" && r["ip"] == "203.0.113.5")
            .count(),
        3,
        "a session's, a key's and a SCIM token's refusals are recorded: {denied:?}"
    );
    let updated = t.audit("action=security_policy.updated").await;
    assert_eq!(
        updated[0]["metadata"]["blocked_countries"],
        json!(["FR", "RU"])
    );

    // The address check tells where an address is and why it would be refused.
    let check = |ip: &'static str| ip_check(&t, ip);
    let fr = check("::ffff:203.0.113.9").await;
    assert_eq!(
        (
            &fr["ip"],
            &fr["allowed"],
            &fr["country"],
            &fr["refused_because"]
        ),
        (
            &json!("203.0.113.9"),
            &json!(false),
            &json!("FR"),
            &json!("country_blocked")
        )
    );
    let us = check("198.51.100.9").await;
    assert_eq!(
        (&us["allowed"], &us["country"], &us["refused_because"]),
        (&json!(true), &json!("US"), &Value::Null)
    );
    assert!(
        us.as_object().unwrap().contains_key("refused_because"),
        "{us}"
    );
    let private = check("10.0.0.1").await;
    assert_eq!(
        (&private["allowed"], &private["country"]),
        (&json!(true), &Value::Null)
    );
    assert!(
        private.as_object().unwrap().contains_key("country"),
        "{private}"
    );
    assert_eq!(shown["geoip_available"], true);

    // Started again without the database, the server cannot place addresses: the
    // organization refuses everything but its security settings, where the rule is lifted.
    let again = t
        .another_instance_with(|s| s.security.geoip_database = Default::default())
        .await;
    let at = |path: &str| format!("{again}/api/v1/orgs/{}{path}", t.org_id);
    let members = t
        .client
        .get(at("/members"))
        .bearer_auth(&t.owner_token)
        .send()
        .await
        .unwrap();
    problem(members, StatusCode::FORBIDDEN, "country_unverifiable").await;
    let settings = t
        .client
        .get(at("/security"))
        .bearer_auth(&t.owner_token)
        .send()
        .await
        .unwrap();
    let settings = json_of(settings).await;
    assert_eq!(
        (&settings["geoip_available"], &settings["blocked_countries"]),
        (&json!(false), &json!(["FR", "RU"]))
    );
    let lifted = t
        .client
        .patch(at("/security"))
        .bearer_auth(&t.owner_token)
        .json(&json!({ "blocked_countries": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(lifted).await["blocked_countries"], json!([]));
    let members = t
        .client
        .get(at("/members"))
        .bearer_auth(&t.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), StatusCode::OK);

    // Unblocked, France is back.
    assert_eq!(
        from(
            "203.0.113.5",
            reqwest::Method::GET,
            t.org("/members"),
            Value::Null
        )
        .await
        .status(),
        StatusCode::OK
    );
});

both_backends!(
    recovery_codes_are_replaced_with_a_code_and_the_password,
    |b| async move {
        let t = spawn_app(b).await;
        let (uri, old_codes) = enrol_totp(&t, &t.owner_token, OWNER_PASSWORD).await;
        t.clock.advance(Duration::seconds(30));
        let code = pyotp_code(&uri, t.clock.now().timestamp());
        let url = t.url("/api/v1/me/mfa/recovery-codes");
        problem(
            t.post(&url, &t.owner_token, &json!({ "code": code })).await,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        problem(
            t.post(
                &url,
                &t.owner_token,
                &json!({ "code": code, "password": "not the password" }),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        let failed = t.audit("action=auth.recovery_codes_regenerated").await;
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0]["outcome"], "failure", "{failed:?}");
        let fresh = json_of(
            t.post(
                &url,
                &t.owner_token,
                &json!({ "code": code, "password": OWNER_PASSWORD }),
            )
            .await,
        )
        .await;
        let fresh: Vec<String> = fresh["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fresh.len(), old_codes.len());
        // The old codes open nothing; a new one signs in.
        let ch = challenge(&t, OWNER_EMAIL, OWNER_PASSWORD).await;
        problem(
            verify(&t, &ch, json!({ "recovery_code": old_codes[0] })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let ch = challenge(&t, OWNER_EMAIL, OWNER_PASSWORD).await;
        let res = verify(&t, &ch, json!({ "recovery_code": fresh[0] })).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
);

both_backends!(sms_codes_are_a_single_use_backup, |b| async move {
    let t = spawn_app(b).await;
    let (uri, _) = enrol_totp(&t, &t.owner_token, OWNER_PASSWORD).await;
    t.clock.advance(Duration::seconds(30));
    let code = pyotp_code(&uri, t.clock.now().timestamp());
    problem(
        t.put(
            &t.url("/api/v1/me/mfa/phone"),
            &t.owner_token,
            &json!({ "phone": "555-1234", "code": code, "password": OWNER_PASSWORD }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    // A session and the authenticator are not enough: the password too.
    problem(
        t.put(
            &t.url("/api/v1/me/mfa/phone"),
            &t.owner_token,
            &json!({ "phone": "+1 555 010 6666", "code": code, "password": "not the password" }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
    )
    .await;
    let status = json_of(t.get(&t.url("/api/v1/me/mfa"), &t.owner_token).await).await;
    assert!(status["phone"].is_null(), "{status}");
    let res = t
        .put(
            &t.url("/api/v1/me/mfa/phone"),
            &t.owner_token,
            &json!({ "phone": "+1 555 010 9999", "code": code, "password": OWNER_PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let status = json_of(t.get(&t.url("/api/v1/me/mfa"), &t.owner_token).await).await;
    assert_eq!(status["phone"], "+15•••••••99");

    let ch = challenge(&t, OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(ch["methods"], json!(["totp", "recovery_code", "sms"]));
    let send = |ch: Value| {
        let t = &t;
        async move {
            t.client
                .post(t.url("/api/v1/auth/login/sms"))
                .json(&json!({ "challenge": ch["challenge"] }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send(ch.clone()).await.status(), StatusCode::NO_CONTENT);
    // Without a gateway the text waits in the outbox sealed under the server's key (a copy of
    // the database holds no code); the operator's command opens it, as this does.
    let cipher = axie_server::startup::encryption_key(&t.settings).unwrap();
    let newest_code = |t: &TestApp| {
        let (store, cipher) = (t.store.clone(), cipher.clone());
        async move {
            let sms = store.sms_outbox(1).await.unwrap();
            assert!(!sms[0].1.contains("code"), "sealed: {}", sms[0].1);
            let text = axie_server::sms::open(&cipher, &sms[0].0, &sms[0].1);
            assert!(text.contains("sign-in code"), "{text}");
            (
                sms[0].0.clone(),
                text.chars()
                    .filter(char::is_ascii_digit)
                    .take(6)
                    .collect::<String>(),
            )
        }
    };
    let (to, sms_code) = newest_code(&t).await;
    assert_eq!(to, "+15550109999");
    let res = verify(&t, &ch, json!({ "sms_code": sms_code })).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The code is spent; an expired one fails too.
    let ch = challenge(&t, OWNER_EMAIL, OWNER_PASSWORD).await;
    problem(
        verify(&t, &ch, json!({ "sms_code": sms_code })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    send(ch.clone()).await;
    // Another text within the minute is refused: no flood of the person's phone.
    problem(
        send(ch.clone()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
    )
    .await;
    assert_eq!(
        t.store.sms_outbox(10).await.unwrap().len(),
        2,
        "no third text"
    );
    let (_, late) = newest_code(&t).await;
    t.clock.advance(Duration::minutes(5));
    problem(
        verify(&t, &ch, json!({ "sms_code": late })).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // An unknown method is a bad value, like the rest of the body's; a method named twice,
    // anywhere in the list, is kept once.
    problem(
        t.patch(
            &t.org("/security"),
            &t.owner_token,
            &json!({ "mfa_methods": ["totp", "email"] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    let s = json_of(
        t.patch(
            &t.org("/security"),
            &t.owner_token,
            &json!({ "mfa_methods": ["totp", "sms", "totp"] }),
        )
        .await,
    )
    .await;
    assert_eq!(s["mfa"]["methods"], json!(["totp", "sms"]), "{s}");

    // An organization that allows only authenticator apps refuses SMS.
    let res = t
        .patch(
            &t.org("/security"),
            &t.owner_token,
            &json!({ "mfa_methods": ["totp"] }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    problem(
        t.patch(
            &t.org("/security"),
            &t.owner_token,
            &json!({ "mfa_methods": ["sms"] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    let ch = challenge(&t, OWNER_EMAIL, OWNER_PASSWORD).await;
    problem(
        send(ch).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
});

both_backends!(
    required_2fa_has_a_grace_period_then_only_enrolment_answers,
    |b| async move {
        let t = spawn_app(b).await;
        // A SCIM token acts for its creator (the Owner here), and is held to the same policy.
        let scim: Value = json_of(
            t.post(
                &t.org("/scim-tokens"),
                &t.owner_token,
                &json!({"name": "Okta"}),
            )
            .await,
        )
        .await;
        let scim_users = |t: &TestApp| {
            t.client
                .get(t.url(&format!("/scim/v2/{}/Users", t.org_id)))
                .bearer_auth(scim["secret"].as_str().unwrap())
                .send()
        };
        let res = t
            .patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "mfa_required": true, "mfa_grace_days": 7 }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(scim_users(&t).await.unwrap().status(), StatusCode::OK);
        let settings: Value = res.json().await.unwrap();
        assert_eq!(settings["mfa"]["required"], true);
        let since = chrono::DateTime::parse_from_rfc3339(
            settings["mfa"]["required_since"].as_str().unwrap(),
        )
        .unwrap();
        let deadline = since + Duration::days(7);

        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let me = json_of(t.get(&t.url("/api/v1/me"), &lisa).await).await;
        let m = &me["memberships"][0]["mfa"];
        assert_eq!(m["status"], "grace");
        let left = m["seconds_left"].as_i64().unwrap();
        assert!((7 * 86_400 - 60..=7 * 86_400).contains(&left), "{left}");
        assert_eq!(
            t.get(&t.org("/chat-interfaces"), &lisa).await.status(),
            StatusCode::OK
        );

        // One second before the deadline: still working (fresh login: 7 days outlive any session).
        let to_deadline = deadline.with_timezone(&chrono::Utc) - t.clock.now();
        t.clock.advance(to_deadline - Duration::seconds(1));
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        assert_eq!(
            t.get(&t.org("/chat-interfaces"), &lisa).await.status(),
            StatusCode::OK
        );
        let left = json_of(t.get(&t.url("/api/v1/me"), &lisa).await).await["memberships"][0]["mfa"]
            ["seconds_left"]
            .as_i64()
            .unwrap();
        assert!((0..=1).contains(&left), "{left}");
        // One second after: only enrolment answers.
        t.clock.advance(Duration::seconds(2));
        problem(
            t.get(&t.org("/chat-interfaces"), &lisa).await,
            StatusCode::FORBIDDEN,
            "mfa_enrollment_required",
        )
        .await;
        problem(
            t.get(&t.org("/members"), &lisa).await,
            StatusCode::FORBIDDEN,
            "mfa_enrollment_required",
        )
        .await;
        assert_eq!(
            json_of(t.get(&t.url("/api/v1/me"), &lisa).await).await["memberships"][0]["mfa"]["status"],
            "enrollment_required"
        );
        // Someone else holding her password signed in too; her enrolment ends their session.
        let phished = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let (_, _) = enrol_totp(&t, &lisa, DEMO_PASSWORD).await;
        assert_eq!(
            t.get(&t.org("/chat-interfaces"), &lisa).await.status(),
            StatusCode::OK,
            "enrolling opens the door again"
        );
        problem(
            t.get(&t.url("/api/v1/me"), &phished).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let revoked = audit::AuditStore::search(
            &*t.store,
            org,
            &audit::AuditQuery {
                action: Some(audit::ActionFilter::Exact("auth.session_revoked".into())),
                limit: 1,
                ..audit::AuditQuery::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            serde_json::to_value(&revoked[0].event.metadata).unwrap(),
            json!({"sessions": 1, "reason": "mfa_enabled"}),
            "{revoked:?}"
        );

        // While required, 2FA cannot be turned off; Lisa joined before, so her deadline was the policy's.
        let owner = t.login_response(OWNER_EMAIL, OWNER_PASSWORD).await;
        assert_eq!(
            owner.status(),
            StatusCode::OK,
            "the Owner has no second factor yet and logs in with a password"
        );
        let owner: Value = owner.json().await.unwrap();
        problem(
            t.get(&t.org("/members"), owner["token"].as_str().unwrap())
                .await,
            StatusCode::FORBIDDEN,
            "mfa_enrollment_required",
        )
        .await;
        let refused = scim_users(&t).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("two-factor authentication"),
            "{body}"
        );
        t.clock.advance(Duration::seconds(30));
        let lisa_uri_code = "000000";
        problem(
            t.post(
                &t.url("/api/v1/me/mfa/disable"),
                &lisa,
                &json!({ "code": lisa_uri_code, "password": DEMO_PASSWORD }),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
    }
);

both_backends!(
    requests_the_allowlist_refuses_do_not_keep_a_session_alive,
    |b| async move {
        let t = spawn_behind_proxy(b).await;
        let saved = t
            .patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": ["127.0.0.0/8"] }),
            )
            .await;
        assert_eq!(saved.status(), StatusCode::OK);
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let members = t.org("/members");
        // Twenty minutes on, her token is tried from outside the list: refused, and that
        // refused request is no activity of hers.
        t.clock.advance(Duration::minutes(20));
        problem(
            get_from(&t, &members, &lisa, "198.51.100.7").await,
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
        )
        .await;
        // Her own sessions are listed from anywhere (to end a stolen one), but from outside
        // the list that is no activity either.
        assert_eq!(
            get_from(&t, &t.url("/api/v1/me/sessions"), &lisa, "198.51.100.7")
                .await
                .status(),
            StatusCode::OK
        );
        // Thirty-one minutes after her last admitted request the session is idle.
        t.clock.advance(Duration::minutes(11));
        problem(
            get_from(&t, &members, &lisa, "127.0.0.9").await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        // An admitted request does keep a session alive.
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        t.clock.advance(Duration::minutes(20));
        assert_eq!(
            get_from(&t, &members, &tom, "127.0.0.9").await.status(),
            StatusCode::OK
        );
        t.clock.advance(Duration::minutes(20));
        assert_eq!(
            get_from(&t, &members, &tom, "127.0.0.9").await.status(),
            StatusCode::OK
        );
    }
);

both_backends!(
    security_settings_ip_allowlist_and_sessions,
    |b| async move {
        let t = spawn_behind_proxy(b).await;
        let tom_id = t.member_id("tom@example.com").await;
        let s = json_of(t.get(&t.org("/security"), &t.owner_token).await).await;
        assert_eq!(s["ip_allowlist_allows_everyone"], true);
        assert_eq!(
            (
                s["sessions"]["absolute_timeout_minutes"].as_u64(),
                s["sessions"]["idle_timeout_minutes"].as_u64(),
                s["sessions"]["max_concurrent"].as_u64()
            ),
            (Some(480), Some(30), Some(3))
        );
        assert_eq!(s["passwords"]["min_length"], 15);

        // A list that leaves out the caller's own address is refused.
        let p = problem(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": ["10.0.0.0/8"] }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("127.0.0.1"));
        problem(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": ["not-a-cidr"] }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        // An address with a prefix is not guessed at: the network or the one address.
        let p = problem(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": ["127.0.0.1/8"] }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains("`127.0.0.0/8`"),
            "{p}"
        );
        let too_many: Vec<String> = (0..=1_000)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        problem(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": too_many }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        // A list at the limit is saved and edited an entry at a time; its record says what
        // each edit added and removed (bounded: the lists are not copied into it whole).
        let mut full: Vec<String> = (0..999)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        full.push("127.0.0.0/8".into());
        for list in [&full[..], &full[1..]] {
            let res = t
                .patch(
                    &t.org("/security"),
                    &t.owner_token,
                    &json!({ "ip_allowlist": list }),
                )
                .await;
            assert_eq!(
                res.status(),
                StatusCode::OK,
                "{}",
                res.text().await.unwrap()
            );
        }
        let edit = &t.audit("action=security_policy.updated").await[0]["metadata"];
        assert_eq!(
            edit["changes"]["ip_allowlist"],
            json!({ "added": [], "removed": ["10.0.0.0/24"] }),
            "{edit}"
        );
        assert_eq!(edit["ip_allowlist"]["count"], 999, "{edit}");
        let saved = json_of(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": ["127.0.0.0/8", "2001:db8::/32"] }),
            )
            .await,
        )
        .await;
        assert_eq!(saved["ip_allowlist_allows_everyone"], false);
        let check = |ip: &'static str| ip_check(&t, ip);
        assert_eq!(check("10.1.2.3").await["allowed"], false);
        let mapped = check("::ffff:127.0.0.9").await;
        assert_eq!(
            (mapped["ip"].as_str(), mapped["allowed"].as_bool()),
            (Some("127.0.0.9"), Some(true))
        );
        assert_eq!(check("2001:db8::1").await["allowed"], true);

        // Behind the trusted proxy, the right-most untrusted X-Forwarded-For hop is the client.
        let key: Value = t
            .post(&t.org("/api-keys"), &t.owner_token, &json!({ "name": "k" }))
            .await
            .json()
            .await
            .unwrap();
        let secret = key["secret"].as_str().unwrap();
        let members = t.org("/members");
        for token in [t.owner_token.as_str(), secret] {
            let far = get_from(&t, &members, token, "198.51.100.7").await;
            problem(far, StatusCode::FORBIDDEN, "ip_not_allowed").await;
            // A forged hop in front of the real one changes nothing.
            let spoof = get_from(&t, &members, token, "127.0.0.5, 198.51.100.7").await;
            problem(spoof, StatusCode::FORBIDDEN, "ip_not_allowed").await;
            // Nor does a forged line in front of the one a proxy adds (HAProxy's way), nor
            // a proxy line that holds no address.
            for (forged, real) in [("2001:db8::5", "198.51.100.7"), ("2001:db8::5", "unknown")] {
                let two_lines = t
                    .client
                    .get(&members)
                    .bearer_auth(token)
                    .header("x-forwarded-for", forged)
                    .header("x-forwarded-for", real)
                    .send()
                    .await
                    .unwrap();
                problem(two_lines, StatusCode::FORBIDDEN, "ip_not_allowed").await;
            }
            // Bytes that are not text before the address a proxy appended hide nothing.
            let garbled = t
                .client
                .get(&members)
                .bearer_auth(token)
                .header(
                    "x-forwarded-for",
                    reqwest::header::HeaderValue::from_bytes(b"\xff2001:db8::5, 198.51.100.7")
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            problem(garbled, StatusCode::FORBIDDEN, "ip_not_allowed").await;
            let near = get_from(&t, &members, token, "2001:db8::5").await;
            assert_eq!(near.status(), StatusCode::OK);
        }
        // The person's own account is out of reach from an address none of their
        // organizations admit: their profile, password and second factor, and signing in.
        for token in [t.owner_token.as_str(), secret] {
            let me = get_from(&t, &t.url("/api/v1/me"), token, "198.51.100.7").await;
            problem(me, StatusCode::FORBIDDEN, "ip_not_allowed").await;
        }
        let sign_in = |from: &'static str| {
            let t = &t;
            async move {
                t.client
                    .post(t.url("/api/v1/auth/login"))
                    .header("x-forwarded-for", from)
                    .json(&json!({ "email": "lisa@example.com", "password": DEMO_PASSWORD }))
                    .send()
                    .await
                    .unwrap()
            }
        };
        problem(
            sign_in("198.51.100.7").await,
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
        )
        .await;
        // A wrong password gets the same answer there (it got 401, which told the right one
        // apart), counts toward no lock of the account, and of the refusals from one address
        // only the first is recorded.
        for _ in 0..12 {
            let wrong =
                login_from(&t, "198.51.100.8", "lisa@example.com", "not her password").await;
            problem(wrong, StatusCode::FORBIDDEN, "ip_not_allowed").await;
        }
        let from_there = t
            .audit("action=auth.login_failed&limit=50")
            .await
            .into_iter()
            .filter(|r| r["ip"] == "198.51.100.8")
            .count();
        assert_eq!(from_there, 1);
        let refused = t.audit("action=auth.login_failed").await;
        assert!(
            refused
                .iter()
                .any(|r| r["reason"] == "ip_not_allowed" && r["ip"] == "198.51.100.7"),
            "{refused:?}"
        );
        assert_eq!(sign_in("2001:db8::5").await.status(), StatusCode::OK);
        // With a second factor: the second step from outside is refused before the challenge
        // or the code is used; the same code then works from inside.
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let (uri, _) = enrol_totp(&t, &mike, DEMO_PASSWORD).await;
        t.clock.advance(chrono::Duration::seconds(30)); // past the code used to enrol
        let ch = challenge(&t, "mike@example.com", DEMO_PASSWORD).await;
        let code = pyotp_code(&uri, t.clock.now().timestamp());
        let body = json!({ "challenge": ch["challenge"], "code": code });
        let far = t
            .client
            .post(t.url("/api/v1/auth/login/verify"))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(far, StatusCode::FORBIDDEN, "ip_not_allowed").await;
        let refused = t.audit("action=auth.login_failed").await;
        assert_eq!(refused[0]["reason"], "ip_not_allowed", "{refused:?}");
        assert_eq!(
            refused[0]["actor_id"],
            t.member_id("mike@example.com").await
        );
        let near = t
            .client
            .post(t.url("/api/v1/auth/login/verify"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(near.status(), StatusCode::OK);
        // Signing out works from anywhere.
        let lisa_token = sign_in("2001:db8::5").await.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let out = t
            .client
            .post(t.url("/api/v1/auth/logout"))
            .bearer_auth(&lisa_token)
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap();
        assert!(out.status().is_success(), "{}", out.status());
        problem(
            t.get(&t.url("/api/v1/me"), &lisa_token).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        // Saving from outside the new list is refused too.
        let from_far = t
            .client
            .patch(t.org("/security"))
            .bearer_auth(&t.owner_token)
            .header("x-forwarded-for", "2001:db8::5")
            .json(&json!({ "ip_allowlist": ["127.0.0.0/8"] }))
            .send()
            .await
            .unwrap();
        problem(from_far, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
        let cleared = json_of(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": [] }),
            )
            .await,
        )
        .await;
        assert_eq!(cleared["ip_allowlist_allows_everyone"], true);
        // Each refusal by the allowlist is recorded (five requests, two credentials), with
        // the address read: the proxy's hop, or none where it held no address.
        let denied: Vec<Value> = t
            .audit("action=access.denied&limit=50")
            .await
            .into_iter()
            .filter(|r| r["reason"] == "ip_not_allowed")
            .collect();
        assert_eq!(denied.len(), 10, "{denied:?}");
        assert_eq!(denied[0]["target_id"], "GET /api/v1/orgs/{org_id}/members");
        assert_eq!(denied[0]["ip"], "198.51.100.7");
        assert_eq!(denied[1]["ip"], "0.0.0.0");
        assert_eq!(denied[2]["ip"], "198.51.100.7");
        let changes = t.audit("action=security_policy.updated").await;
        assert_eq!(changes.len(), 4);
        assert_eq!(changes[0]["metadata"]["fields"], json!(["ip_allowlist"]));
        // What the list was and became: the log alone tells what was opened.
        let what = &changes[0]["metadata"]["changes"]["ip_allowlist"];
        assert_eq!(what["added"], json!([]), "{what}");
        assert!(
            what["removed"].as_array().is_some_and(|l| !l.is_empty()),
            "{what}"
        );

        // Policy changes apply to sessions that already exist.
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let users_cannot = problem(
            t.patch(&t.org("/security"), &lisa, &json!({ "mfa_required": true }))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(users_cannot["reason"], "role_lacks_permission");
        // Nor read it: the guide's "Enterprise Settings" are not a User's (the allowlist maps
        // the company's offices), while the organization's name and plan are.
        let users_cannot_read = problem(
            t.get(&t.org("/security"), &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(users_cannot_read["reason"], "role_lacks_permission");
        problem(
            t.post(
                &t.org("/security/ip-check"),
                &lisa,
                &json!({ "ip": "192.0.2.1" }),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(t.get(&t.org(""), &lisa).await.status(), StatusCode::OK);
        let bad = problem(t.patch(&t.org("/security"), &t.owner_token, &json!({ "sessions": { "absolute_timeout_minutes": 60, "idle_timeout_minutes": 120, "max_concurrent": 3 } })).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
        assert!(bad["detail"].as_str().unwrap().contains("idle"));
        t.patch(&t.org("/security"), &t.owner_token, &json!({ "sessions": { "absolute_timeout_minutes": 60, "idle_timeout_minutes": 5, "max_concurrent": 3 } })).await;
        let logged = t.audit("action=security_policy.updated").await;
        let sessions = &logged[0]["metadata"]["changes"]["sessions"];
        assert_eq!(sessions["to"]["idle_timeout_minutes"], 5, "{sessions}");
        assert_eq!(sessions["to"]["absolute_timeout_minutes"], 60, "{sessions}");
        assert_ne!(sessions["from"], sessions["to"], "{sessions}");
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &lisa).await.status(),
            StatusCode::OK
        );
        t.clock.advance(Duration::minutes(5));
        problem(
            t.get(&t.url("/api/v1/me"), &lisa).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;

        // The concurrent-session limit holds when logins race.
        let owner = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let logins: Vec<_> = (0..8)
            .map(|_| t.login_response("tom@example.com", DEMO_PASSWORD))
            .collect();
        for r in futures::future::join_all(logins).await {
            assert_eq!(r.status(), StatusCode::OK);
        }
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let live = json_of(t.get(&t.url("/api/v1/me/sessions"), &tom).await).await;
        assert_eq!(
            live["items"].as_array().unwrap().len(),
            3,
            "the fourth login ends the oldest"
        );
        // An admin ends all of a member's sessions.
        let sessions_url = t.org(&format!("/members/{tom_id}/sessions"));
        let sign_out = || t.delete(&sessions_url, &owner);
        assert_eq!(json_of(sign_out().await).await["ended"], 3);
        problem(
            t.get(&t.url("/api/v1/me"), &tom).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        // Someone who belongs to another organization too is signed out of this one only: an
        // Admin here ends nothing of theirs elsewhere.
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let own = json_of(
            t.post(
                &t.url("/api/v1/orgs"),
                &tom,
                &json!({ "name": "Tom's side project" }),
            )
            .await,
        )
        .await;
        let own_org = t.url(&format!("/api/v1/orgs/{}", own["id"].as_str().unwrap()));
        let own_teams = format!("{own_org}/teams");
        assert_eq!(json_of(sign_out().await).await["ended"], 1);
        problem(
            t.get(&t.org("/teams"), &tom).await,
            StatusCode::UNAUTHORIZED,
            "signed_out",
        )
        .await;
        // The organization's log shows who kept trying, and where.
        let tried = json_of(
            t.get(
                &t.org("/audit-events?action=access.denied&outcome=denied"),
                &owner,
            )
            .await,
        )
        .await;
        assert!(
            tried["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["reason"] == "signed_out"
                    && r["actor_id"] == tom_id.as_str()
                    && r["target_id"] == "GET /api/v1/orgs/{org_id}/teams"),
            "{tried:?}"
        );
        assert_eq!(t.get(&own_teams, &tom).await.status(), StatusCode::OK);
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &tom).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            json_of(sign_out().await).await["ended"],
            0,
            "signed out here already"
        );
        // Their session lists where it is refused.
        let listed = json_of(t.get(&t.url("/api/v1/me/sessions"), &tom).await).await;
        assert_eq!(
            listed["items"][0]["signed_out_of"],
            json!([t.org_id.to_string()]),
            "{listed}"
        );
        // Signed out of their own organization too (where they are the only one, by the Owner
        // they are): the session is good nowhere, and ends.
        let own_sessions = format!("{own_org}/members/{tom_id}/sessions");
        assert_eq!(
            json_of(t.delete(&own_sessions, &tom).await).await["ended"],
            1
        );
        problem(
            t.get(&t.url("/api/v1/me"), &tom).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        // Signing in again opens this organization to them again.
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        assert_eq!(t.get(&t.org("/teams"), &tom).await.status(), StatusCode::OK);
        // Removed (which signs their sessions out of it), they are an outsider here: answered
        // as one, and their tries are not the organization's log to fill.
        let outsider = t.login("tom@example.com", DEMO_PASSWORD).await;
        let removed = t
            .post(
                &t.org(&format!("/members/{tom_id}/remove")),
                &owner,
                &json!({"resources": "delete"}),
            )
            .await;
        assert_eq!(
            removed.status(),
            StatusCode::OK,
            "{}",
            removed.text().await.unwrap()
        );
        let denials = || async {
            json_of(
                t.get(
                    &t.org("/audit-events?action=access.denied&limit=100"),
                    &owner,
                )
                .await,
            )
            .await["items"]
                .as_array()
                .unwrap()
                .len()
        };
        let before = denials().await;
        for _ in 0..3 {
            problem(
                t.get(&t.org("/teams"), &outsider).await,
                StatusCode::NOT_FOUND,
                "not_found",
            )
            .await;
        }
        assert_eq!(denials().await, before);

        // A session cookie the client made up is never honoured, and login mints a new one.
        let res = t
            .client
            .post(t.url("/api/v1/auth/login"))
            .header("cookie", "axie_session=axs_chosen_by_attacker")
            .json(&json!({ "email": "tom@example.com", "password": DEMO_PASSWORD }))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        assert_ne!(body["token"], "axs_chosen_by_attacker");
        let fixed = t
            .client
            .get(t.url("/api/v1/me"))
            .header("cookie", "axie_session=axs_chosen_by_attacker")
            .send()
            .await
            .unwrap();
        assert_eq!(fixed.status(), StatusCode::UNAUTHORIZED);
    }
);

both_backends!(
    passwords_follow_the_policy_and_changing_one_ends_other_sessions,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let other = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let change = |current: &str, new: &str| {
            let (t, lisa) = (&t, &lisa);
            let body = json!({ "current_password": current, "new_password": new });
            async move { t.post(&t.url("/api/v1/me/password"), lisa, &body).await }
        };
        problem(
            change("wrong password entirely", "a brand new long passphrase").await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        for (bad, why) in [
            ("short one", "too short"),
            ("acme corp forever and ever", "organization name"),
            ("lisa@example.com is my password", "email"),
            (&"x".repeat(200)[..], "too long"),
        ] {
            let p = problem(
                change(DEMO_PASSWORD, bad).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
            )
            .await;
            assert!(p["detail"].is_string(), "{why}");
        }
        let res = change(DEMO_PASSWORD, "correct horse battery staple 42").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.json::<Value>().await.unwrap()["other_sessions_ended"],
            1
        );
        problem(
            t.get(&t.url("/api/v1/me"), &other).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &lisa).await.status(),
            StatusCode::OK,
            "the current session stays"
        );
        assert_eq!(
            t.login_response("lisa@example.com", DEMO_PASSWORD)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        t.login("lisa@example.com", "correct horse battery staple 42")
            .await;
        let changes = t.audit("action=auth.password_changed").await;
        assert_eq!(
            changes
                .iter()
                .map(|r| (r["outcome"].as_str().unwrap(), r["reason"].as_str()))
                .collect::<Vec<_>>(),
            [
                ("success", Some("")),
                ("failure", Some("bad_current_password"))
            ],
            "the wrong current password is recorded too: {changes:?}"
        );
        let revoked = t.audit("action=auth.session_revoked").await;
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!(
            revoked[0]["metadata"],
            json!({"sessions": 1, "reason": "password_changed"})
        );
        // Over-long input is refused before any hashing.
        let huge = "y".repeat(5000);
        assert_eq!(
            t.login_response("lisa@example.com", &huge).await.status(),
            StatusCode::UNAUTHORIZED
        );
        // Guessing the current password from a session meets the login's throttle (which the
        // change above cleared): ten wrong guesses lock the account for both. Lisa signed in
        // from this address, so it keeps its small allowance during the lock; five more wrong
        // guesses spend it.
        for _ in 0..10 + security_policy::FAMILIAR_FAILURES_DURING_LOCK {
            let res = change("still not the password", "another long passphrase 1").await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        problem(
            change(
                "correct horse battery staple 42",
                "another long passphrase 1",
            )
            .await,
            StatusCode::TOO_MANY_REQUESTS,
            "login_throttled",
        )
        .await;
        assert_eq!(
            t.login_response("lisa@example.com", "correct horse battery staple 42")
                .await
                .status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
);

both_backends!(
    a_lock_caused_elsewhere_does_not_keep_the_owner_out,
    |b| async move {
        let t = spawn_behind_proxy(b).await;
        let from = |ip: &'static str, password: &'static str| {
            let t = &t;
            async move {
                t.client
                    .post(t.url("/api/v1/auth/login"))
                    .header("x-forwarded-for", ip)
                    .header("user-agent", format!("tester at {ip}"))
                    .json(&json!({ "email": "lisa@example.com", "password": password }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        // Lisa signs in from home and, on another day, from her office's IPv6 network.
        assert_eq!(from("198.51.100.20", DEMO_PASSWORD).await, StatusCode::OK);
        assert_eq!(
            from("2001:db8:1:2::10", DEMO_PASSWORD).await,
            StatusCode::OK
        );
        let failures_before = t.audit("action=auth.login_failed&limit=100").await.len();
        // Someone elsewhere guesses until the account locks, and keeps at it.
        for _ in 0..10 {
            assert_eq!(
                from("203.0.113.66", "a wrong guess").await,
                StatusCode::UNAUTHORIZED
            );
        }
        for _ in 0..20 {
            assert_eq!(
                from("203.0.113.66", "another wrong guess").await,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
        // Of the guesses during the lock only the first refusal is recorded, after the ten.
        let failed = t.audit("action=auth.login_failed&limit=100").await;
        assert_eq!(failed.len() - failures_before, 11, "{failed:?}");
        assert_eq!(failed[0]["reason"], "throttled");
        // Any address Lisa has not signed in from is locked out, even with her password; the
        // refusal of the right password is recorded.
        assert_eq!(
            from("192.0.2.44", DEMO_PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        let refused = t.audit("action=auth.login_failed&limit=1").await.remove(0);
        assert_eq!(
            (refused["reason"].as_str(), refused["ip"].as_str()),
            (Some("throttled"), Some("192.0.2.44"))
        );
        // From home, and from another address of her office's /64, she still gets in.
        assert_eq!(from("198.51.100.20", DEMO_PASSWORD).await, StatusCode::OK);
        assert_eq!(
            from("2001:db8:1:2::99", DEMO_PASSWORD).await,
            StatusCode::OK
        );
        // Her success does not lift the lock for the others.
        assert_eq!(
            from("203.0.113.66", DEMO_PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // A familiar address gets a few wrong passwords during the lock, then the lock holds
        // there too, until it ends.
        for _ in 0..security_policy::FAMILIAR_FAILURES_DURING_LOCK {
            assert_eq!(
                from("198.51.100.20", "a typo at home").await,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            from("198.51.100.20", DEMO_PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        t.clock.advance(Duration::minutes(15));
        assert_eq!(from("192.0.2.44", DEMO_PASSWORD).await, StatusCode::OK);
    }
);

both_backends!(failed_logins_are_throttled_per_address, |b| async move {
    let t = spawn_locking_addresses_after(b, 5).await;
    let from = |ip: &'static str, email: &'static str, password: &'static str| {
        login_from(&t, ip, email, password)
    };
    // Spraying many accounts from one address: five failures, then the address is locked,
    // even for a correct password, while another address is unaffected.
    for email in [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "mike@example.com",
        "tom@example.com",
    ] {
        assert_eq!(
            from("203.0.113.9", email, "guess guess guess guess")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = from("203.0.113.9", "lisa@example.com", DEMO_PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    assert_eq!(
        from("203.0.113.9", "nobody@example.com", "x")
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "unknown accounts get the same answer"
    );
    assert_eq!(
        from("198.51.100.2", "lisa@example.com", DEMO_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    let throttled = t.audit("action=auth.login_failed&limit=50").await;
    assert!(
        throttled.iter().any(|r| r["reason"] == "address_throttled"),
        "the refusal is audited"
    );
    // Thirty guesses sent at once from another address all wait for a hashing slot; each is
    // judged against the failures counted by the time its hash is done, so no more than the
    // limit (and the one beside it in the other slot) learn anything.
    let (answers, checked) = burst(
        (0..30).map(|_| from("192.0.2.77", "nobody@example.com", "guess guess guess")),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(checked <= 7, "{checked} guesses were checked: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS)
    );
    // The second step answers a locked address the same way, before looking at the code.
    let verify = t
        .client
        .post(t.url("/api/v1/auth/login/verify"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({ "challenge": "axc_whatever", "code": "123456" }))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), StatusCode::TOO_MANY_REQUESTS);
    t.clock.advance(Duration::minutes(15));
    assert_eq!(
        from("203.0.113.9", "lisa@example.com", DEMO_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    // Wrong codes at the second step count against the address too.
    let enrolled = t.login("tom@example.com", DEMO_PASSWORD).await;
    let _ = enrol_totp(&t, &enrolled, DEMO_PASSWORD).await;
    for _ in 0..5 {
        let ch: Value = from("198.51.100.77", "tom@example.com", DEMO_PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        let wrong = t
            .client
            .post(t.url("/api/v1/auth/login/verify"))
            .header("x-forwarded-for", "198.51.100.77")
            .json(&json!({ "challenge": ch["challenge"], "code": "000000" }))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        from("198.51.100.77", "lisa@example.com", DEMO_PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "five wrong codes lock the address"
    );
    // A challenge opened elsewhere is refused from the locked address, and the refusal is
    // recorded for its person.
    let ch: Value = from("192.0.2.50", "tom@example.com", DEMO_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let before = t.audit("action=auth.login_failed&limit=100").await.len();
    let refused = t
        .client
        .post(t.url("/api/v1/auth/login/verify"))
        .header("x-forwarded-for", "198.51.100.77")
        .json(&json!({ "challenge": ch["challenge"], "code": "000000" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let failed = t.audit("action=auth.login_failed&limit=100").await;
    assert_eq!(failed.len(), before + 1);
    assert_eq!(
        (
            failed[0]["actor_name"].as_str(),
            failed[0]["reason"].as_str()
        ),
        (Some("Tom"), Some("address_throttled"))
    );
});

#[tokio::test]
async fn the_server_terminates_tls_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let t = spawn_app_with(
        Backend::Sqlite,
        Options {
            demo: true,
            tls: Some((cert, key)),
            ..Options::default()
        },
    )
    .await;
    assert!(t.address.starts_with("https://"));
    let me = json_of(t.get(&t.url("/api/v1/me"), &t.owner_token).await).await;
    assert_eq!(me["user"]["email"], OWNER_EMAIL);
    let res = t.client.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    // Plain HTTP on the TLS port gets no answer of ours.
    let port = t.address.rsplit(':').next().unwrap();
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

both_backends!(stored_secrets_are_bound_to_their_rows, |b| async move {
    let t = spawn_app(b).await;
    let rx = Receiver::start().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let ep: Value = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": [] }),
            )
            .await
            .json()
            .await
            .unwrap();
        ids.push(ep["id"].as_str().unwrap().to_owned());
    }
    let key = std::fs::read_to_string(t.settings.server.data_dir.join("encryption.key")).unwrap();
    let cipher = security_policy::Cipher::from_text(&key).unwrap();
    let org: rbac_core::OrgId = t.org_id.parse().unwrap();
    let second: rbac_core::EndpointId = ids[1].parse().unwrap();
    let stored = || async {
        webhooks::WebhookStore::secrets(&*t.store, org, second)
            .await
            .unwrap()
    };
    let now = chrono::Utc::now();
    assert!(webhooks::signing_secrets(&cipher, second, &stored().await, now).is_ok());
    // The first endpoint's secret copied onto the second's row does not open there.
    t.store
            .execute_sql(&format!(
                "UPDATE webhook_endpoints SET secret = (SELECT w.secret FROM webhook_endpoints w WHERE w.id = '{}') WHERE id = '{}'",
                ids[0], ids[1]
            ))
            .await
            .unwrap();
    assert!(webhooks::signing_secrets(&cipher, second, &stored().await, now).is_err());
    // An unbound value (as earlier versions wrote) pasted onto the row now is not read as a
    // bound one, and a restart does not bind it: the database's one binding pass was made
    // when the first server of this release started.
    let legacy = webhooks::SigningSecret::generate();
    let unbound = cipher.encrypt(legacy.as_bytes()).unwrap();
    t.store
        .execute_sql(&format!(
            "UPDATE webhook_endpoints SET secret = '{unbound}' WHERE id = '{}'",
            ids[1]
        ))
        .await
        .unwrap();
    assert!(webhooks::signing_secrets(&cipher, second, &stored().await, now).is_err());
    t.another_instance().await;
    assert!(
        webhooks::signing_secrets(&cipher, second, &stored().await, now).is_err(),
        "pasted after the binding pass, it stays unreadable"
    );
    assert_eq!(stored().await.current, unbound);
    // A database from before this release (no pass recorded): its unbound secrets are bound
    // to their rows when the server starts, once.
    t.store
        .execute_sql("DELETE FROM store_markers")
        .await
        .unwrap();
    t.another_instance().await;
    let opened = webhooks::signing_secrets(&cipher, second, &stored().await, now).unwrap();
    assert_eq!(opened[0].to_whsec(), legacy.to_whsec());
    assert!(stored().await.current.starts_with("v2:"));
    let again = t.store.bind_secrets(&cipher).await.unwrap();
    assert!(again.done_before && again.rewritten == 0, "{again:?}");
});

both_backends!(
    sign_ins_from_outside_every_allowlist_lock_the_address,
    |b| async move {
        let t = spawn_locking_addresses_after(b, 3).await;
        let saved = t
            .patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": ["127.0.0.0/8"] }),
            )
            .await;
        assert_eq!(saved.status(), StatusCode::OK);
        // Refused before any password is checked, so each counts against the address: its
        // guesses stop after three, the right password's included.
        for _ in 0..3 {
            let res = login_from(&t, "198.51.100.9", "lisa@example.com", "a guess").await;
            problem(res, StatusCode::FORBIDDEN, "ip_not_allowed").await;
        }
        let res = login_from(&t, "198.51.100.9", "lisa@example.com", DEMO_PASSWORD).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        // The account is not locked: from inside, the right password signs in.
        let res = login_from(&t, "127.0.0.1", "lisa@example.com", DEMO_PASSWORD).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
);

both_backends!(
    a_lowered_session_limit_ends_the_sessions_beyond_it,
    |b| async move {
        let t = spawn_app(b).await;
        let tom = t.member_id("tom@example.com").await;
        let me = t.url("/api/v1/me");
        // Lisa's older session is the one she uses; her newer one went idle (past the
        // 30-minute idle timeout), refused already.
        let lisa_old = t.login("lisa@example.com", DEMO_PASSWORD).await;
        t.clock.advance(Duration::seconds(1));
        let lisa_new = t.login("lisa@example.com", DEMO_PASSWORD).await;
        t.clock.advance(Duration::minutes(20));
        assert_eq!(t.get(&me, &lisa_old).await.status(), StatusCode::OK);
        t.clock.advance(Duration::minutes(15));
        let mut toms = Vec::new();
        for _ in 0..3 {
            toms.push(t.login("tom@example.com", DEMO_PASSWORD).await);
            t.clock.advance(Duration::seconds(1));
        }
        let owner = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let res = t
            .patch(
                &t.org("/security"),
                &owner,
                &json!({ "sessions": { "absolute_timeout_minutes": 480, "idle_timeout_minutes": 30, "max_concurrent": 1 } }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        // Each member keeps their newest usable session; the ones before it end now (they
        // stayed open until the member's next sign-in). An expired session is not counted:
        // Lisa keeps the one she uses.
        for old in [&toms[0], &toms[1], &lisa_new] {
            problem(
                t.get(&me, old).await,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            )
            .await;
        }
        for kept in [&toms[2], &owner, &lisa_old] {
            assert_eq!(t.get(&me, kept).await.status(), StatusCode::OK);
        }
        let revoked = json_of(
            t.get(&t.org("/audit-events?action=auth.session_revoked"), &owner)
                .await,
        )
        .await;
        // (Expired sessions are ended, as `idle_timeout`, when a request or sign-in finds them.)
        let by_limit: Vec<&Value> = revoked["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metadata"]["reason"] == "session_limit")
            .collect();
        assert_eq!(by_limit.len(), 2, "{by_limit:?}");
        assert!(
            by_limit
                .iter()
                .all(|r| r["metadata"]["userId"] == tom && r["metadata"]["limit"] == 1),
            "{by_limit:?}"
        );
        // Raising it again ends nothing.
        let res = t
            .patch(
                &t.org("/security"),
                &owner,
                &json!({ "sessions": { "absolute_timeout_minutes": 480, "idle_timeout_minutes": 30, "max_concurrent": 2 } }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(t.get(&me, &toms[2]).await.status(), StatusCode::OK);
    }
);

both_backends!(
    a_security_change_is_carried_through_when_the_client_hangs_up,
    |b| async move {
        use sea_orm::{ConnectionTrait as _, TransactionTrait as _};
        use tokio::io::AsyncWriteExt as _;
        let t = spawn_app(b).await;
        let me = t.url("/api/v1/me");
        let mut toms = Vec::new();
        for _ in 0..3 {
            toms.push(t.login("tom@example.com", DEMO_PASSWORD).await);
            t.clock.advance(Duration::seconds(1));
        }
        let owner = t.owner_token.clone();
        // Another connection holds the organization's row, so the change waits for it; the
        // client resets the connection meanwhile (as a client that times out and closes with
        // unread data does), which makes actix-http drop what serves the connection. The
        // change, and the ending of the sessions beyond the lowered limit after it, still run
        // to the end once the row is free (every request that may change something is served
        // in a task of its own: `middleware::observe`).
        let db = sea_orm::Database::connect(t.settings.database_url().unwrap().expose())
            .await
            .unwrap();
        let holding = db.begin().await.unwrap();
        holding
            .execute_unprepared(&format!(
                "UPDATE organizations SET name = name WHERE id = '{}'",
                t.org_id
            ))
            .await
            .unwrap();
        let body = json!({ "sessions": { "absolute_timeout_minutes": 480, "idle_timeout_minutes": 30, "max_concurrent": 1 } }).to_string();
        let host = t.address.trim_start_matches("http://").to_owned();
        let request = format!(
            "PATCH /api/v1/orgs/{}/security HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {owner}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            t.org_id,
            body.len()
        );
        let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        socket.set_zero_linger().unwrap();
        drop(socket);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        holding.rollback().await.unwrap();
        // The older two end one after the other, the oldest last.
        let mut waited = 0;
        while t.get(&me, &toms[0]).await.status() == StatusCode::OK {
            waited += 1;
            assert!(waited < 100, "the change was not carried through");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        problem(
            t.get(&me, &toms[1]).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        assert_eq!(t.get(&me, &toms[2]).await.status(), StatusCode::OK);
        let settings = json_of(t.get(&t.org("/security"), &owner).await).await;
        assert_eq!(settings["sessions"]["max_concurrent"], 1);
        let revoked = json_of(
            t.get(&t.org("/audit-events?action=auth.session_revoked"), &owner)
                .await,
        )
        .await;
        let by_limit = revoked["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metadata"]["reason"] == "session_limit")
            .count();
        assert_eq!(by_limit, 2, "{revoked}");
    }
);

both_backends!(
    an_admin_resets_a_members_lost_second_factor,
    |b| async move {
        let t = spawn_app(b).await;
        let (lisa_id, tom_id, owner_id) = (
            t.member_id("lisa@example.com").await,
            t.member_id("tom@example.com").await,
            t.member_id(OWNER_EMAIL).await,
        );
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        enrol_totp(&t, &lisa, DEMO_PASSWORD).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let reset = |id: &str| t.org(&format!("/members/{id}/mfa/reset"));
        // A User may not; the Owner's is the operator's to reset; nor one's own; nor an API
        // key, even an Admin's.
        problem(
            t.post(&reset(&lisa_id), &tom, &json!({})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        problem(
            t.post(&reset(&owner_id), &mike, &json!({})).await,
            StatusCode::FORBIDDEN,
            "role_rule",
        )
        .await;
        let mike_id = t.member_id("mike@example.com").await;
        problem(
            t.post(&reset(&mike_id), &mike, &json!({})).await,
            StatusCode::FORBIDDEN,
            "role_rule",
        )
        .await;
        let key = json_of(
            t.post(&t.org("/api-keys"), &mike, &json!({ "name": "automation" }))
                .await,
        )
        .await;
        let denied = problem(
            t.post(
                &reset(&lisa_id),
                key["secret"].as_str().unwrap(),
                &json!({}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(denied["reason"], "interactive_only", "{denied}");
        // An Admin resets Lisa's: her sessions end and her password is cleared (she sets a new
        // one through "forgot password", proving her mailbox), and she is mailed.
        let res = t.post(&reset(&lisa_id), &mike, &json!({})).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        problem(
            t.get(&t.url("/api/v1/me"), &lisa).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        problem(
            t.login_response("lisa@example.com", DEMO_PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
        assert!(
            outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["to"] == "lisa@example.com"
                    && m["subject"]
                        .as_str()
                        .unwrap()
                        .contains("two-factor authentication")),
            "{outbox}"
        );
        let recorded = t.audit("action=auth.mfa_disabled").await;
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(
            (
                &recorded[0]["actor_id"],
                &recorded[0]["target_id"],
                &recorded[0]["metadata"]["reason"],
                &recorded[0]["metadata"]["sessions_ended"]
            ),
            (
                &json!(mike_id),
                &json!(lisa_id),
                &json!("reset_by_admin"),
                &json!(1)
            )
        );
        // Nothing left to reset.
        problem(
            t.post(&reset(&lisa_id), &mike, &json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        // An Admin's is the Owner's to reset, not another Admin's.
        let promoted = t
            .patch(
                &t.org(&format!("/members/{lisa_id}")),
                &t.owner_token,
                &json!({ "role": "admin" }),
            )
            .await;
        assert!(promoted.status().is_success(), "{}", promoted.status());
        let denied = problem(
            t.post(&reset(&lisa_id), &mike, &json!({})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(denied["reason"], "role_lacks_permission", "{denied}");
        // Someone who belongs to another organization too is not reset from here.
        let own = t
            .post(
                &t.url("/api/v1/orgs"),
                &tom,
                &json!({ "name": "Tom's own" }),
            )
            .await;
        assert_eq!(own.status(), StatusCode::CREATED);
        enrol_totp(&t, &tom, DEMO_PASSWORD).await;
        problem(
            t.post(&reset(&tom_id), &t.owner_token, &json!({})).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
    }
);

both_backends!(webhook_urls_are_stored_encrypted, |b| async move {
    let t = spawn_app(b).await;
    let rx = Receiver::start().await;
    let ep = json_of(
        t.post(
            &t.org("/webhooks"),
            &t.owner_token,
            &json!({ "url": format!("{}/T000/B000/secretpart", rx.url), "events": [] }),
        )
        .await,
    )
    .await;
    let id = ep["id"].as_str().unwrap().to_owned();
    // A no-op update counts the rows that match, on both databases.
    let rows_where = |condition: String| {
        let store = t.store.clone();
        async move {
            store
                .execute_sql(&format!(
                    "UPDATE webhook_endpoints SET url = url WHERE {condition}"
                ))
                .await
                .unwrap()
        }
    };
    assert_eq!(rows_where("url LIKE '%secretpart%'".into()).await, 0);
    assert_eq!(
        rows_where(format!("id = '{id}' AND url LIKE 'v2:%'")).await,
        1
    );
    // Its organization sees it, and deliveries reach it.
    let listed = json_of(t.get(&t.org("/webhooks"), &t.owner_token).await).await;
    assert_eq!(
        listed["items"][0]["url"],
        format!("{}/T000/B000/secretpart", rx.url)
    );
    let test = t.org(&format!("/webhooks/{id}/test"));
    let res = t.post(&test, &t.owner_token, &json!({})).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(rx.wait_for(1, 10).await.len(), 1);
    // A database from before this release, its URL in clear: the server encrypts it when it
    // starts, once, and deliveries still reach it.
    t.store
        .execute_sql(&format!(
            "UPDATE webhook_endpoints SET url = '{}/legacy' WHERE id = '{id}'",
            rx.url
        ))
        .await
        .unwrap();
    t.store
        .execute_sql("DELETE FROM store_markers WHERE name = 'webhook_urls_sealed'")
        .await
        .unwrap();
    let second = t.another_instance().await;
    assert_eq!(rows_where("url LIKE '%legacy%'".into()).await, 0);
    let res = t
        .client
        .post(format!(
            "{second}/api/v1/orgs/{}/webhooks/{id}/test",
            t.org_id
        ))
        .bearer_auth(&t.owner_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::ACCEPTED,
        "{}",
        res.text().await.unwrap()
    );
    let got = rx.wait_for(2, 10).await;
    assert_eq!(got.len(), 2);
});

both_backends!(
    keys_rotate_without_losing_a_secret_or_a_checkpoint,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let ep: Value = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": [] }),
            )
            .await
            .json()
            .await
            .unwrap();
        let whsec = ep["secret"].as_str().unwrap().to_owned();
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let (uri, _) = enrol_totp(&t, &lisa, DEMO_PASSWORD).await;
        // The monthly checklist: the Owner sees who has 2FA and who was last active when; a
        // User sees neither about others.
        let listed = json_of(t.get(&t.org("/members"), &t.owner_token).await).await;
        let of = |email: &str| {
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["email"] == email)
                .unwrap()
                .clone()
        };
        assert_eq!(of("lisa@example.com")["mfa_enabled"], true);
        assert_eq!(of("tom@example.com")["mfa_enabled"], false);
        assert!(of("lisa@example.com")["last_sign_in_at"].is_string());
        assert!(
            of("tom@example.com")["last_sign_in_at"].is_null(),
            "Tom never signed in"
        );
        let as_user = json_of(t.get(&t.org("/members"), &lisa).await).await;
        assert!(
            as_user["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["mfa_enabled"].is_null() && m["last_sign_in_at"].is_null())
        );
        // A document, sealed on disk under the key.
        let kbs = json_of(t.get(&t.org("/knowledge-bases"), &lisa).await).await;
        let kb = kbs["items"][0]["id"].as_str().unwrap().to_owned();
        let secret_text = b"Q: the launch date?\nA: the 14th".to_vec();
        let doc: Value = json_of(
            t.upload(
                &t.org(&format!("/knowledge-bases/{kb}/documents?name=plan.md")),
                &lisa,
                "text/markdown",
                secret_text.clone(),
            )
            .await,
        )
        .await;
        let doc_id = doc["id"].as_str().unwrap().to_owned();
        let blob = t
            .settings
            .workspace
            .blob_dir(&t.settings.server.data_dir)
            .join(&doc_id);
        let sealed = std::fs::read(&blob).unwrap();
        assert!(sealed.starts_with(b"AXB1"));
        assert!(
            !sealed.windows(11).any(|w| w == b"launch date"),
            "not in the clear on disk"
        );
        let dir = t.settings.server.data_dir.clone();
        let before = std::fs::read_to_string(dir.join("encryption.key")).unwrap();
        // An invitation waiting in the outbox (no SMTP here), its token sealed under the key.
        let res = t
            .post(
                &t.org("/invitations"),
                &t.owner_token,
                &json!({ "email": "waiting@example.com", "role": "user" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let waiting = crate::team_management::outbox_token(&t, "waiting@example.com").await;

        let report = axie_server::keys::rotate_encryption_key(&t.settings, &t.store, None)
            .await
            .unwrap();
        // The webhook's signing secret and URL, Lisa's TOTP secret, the waiting invitation.
        assert!(report.starts_with("re-encrypted 4 secrets"), "{report}");
        assert!(report.contains("and 1 documents"), "{report}");
        assert_ne!(std::fs::read(&blob).unwrap(), sealed, "re-sealed");
        let after = std::fs::read_to_string(dir.join("encryption.key")).unwrap();
        assert_ne!(before, after);
        assert_eq!(
            std::fs::read_to_string(dir.join("encryption.key.old")).unwrap(),
            before
        );
        // The webhook secret opens with the new key only, and is the one shown at creation.
        let new = security_policy::Cipher::from_text(&after).unwrap();
        let old = security_policy::Cipher::from_text(&before).unwrap();
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let id: rbac_core::EndpointId = ep["id"].as_str().unwrap().parse().unwrap();
        let stored = webhooks::WebhookStore::secrets(&*t.store, org, id)
            .await
            .unwrap();
        let opened = webhooks::signing_secrets(&new, id, &stored, chrono::Utc::now()).unwrap();
        assert_eq!(opened[0].to_whsec(), whsec);
        assert!(webhooks::signing_secrets(&old, id, &stored, chrono::Utc::now()).is_err());

        // A server started afterwards reads the new key: Lisa's second factor still works.
        let second = t.another_instance().await;
        t.clock.advance(Duration::seconds(30));
        let ch: Value = t
            .client
            .post(format!("{second}/api/v1/auth/login"))
            .json(&json!({ "email": "lisa@example.com", "password": DEMO_PASSWORD }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let res = t
        .client
        .post(format!("{second}/api/v1/auth/login/verify"))
        .json(&json!({ "challenge": ch["challenge"], "code": pyotp_code(&uri, t.clock.now().timestamp()) }))
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // And the document reads back as uploaded through it.
        let token: Value = res.json().await.unwrap();
        let content = t
            .client
            .get(format!(
                "{second}/api/v1/orgs/{}/documents/{doc_id}/content",
                t.org_id
            ))
            .bearer_auth(token["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(content.status(), StatusCode::OK);
        assert_eq!(content.bytes().await.unwrap().to_vec(), secret_text);
        // The waiting invitation's token, sealed again, opens under the new key.
        let outbox: Value = t
            .client
            .get(format!("{second}/api/v1/orgs/{}/outbox", t.org_id))
            .bearer_auth(&t.owner_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let body = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"] == "waiting@example.com")
            .unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(token_in(&body), waiting, "{body}");

        // The checkpoint key: chains verify with the old key, then checkpoints are signed with the new one.
        let old_ck = std::fs::read_to_string(dir.join("checkpoint.key")).unwrap();
        // The oldest records removed by retention under an anchor signed with the old key, and
        // a checkpoint signed with it, as a running server has.
        let cut = t.clock.now() + Duration::seconds(1);
        t.clock.advance(Duration::seconds(2));
        t.post(
            &t.org("/api-keys"),
            &t.owner_token,
            &json!({"name": "after the cut"}),
        )
        .await;
        let (anchor, _) = audit::prune_before(
            &*t.store,
            org,
            cut,
            old_ck.trim().as_bytes(),
            t.clock.now(),
            &|_, _| Ok(audit::Journal::default()),
        )
        .await
        .unwrap()
        .expect("records older than the cut");
        audit::take_checkpoint(&*t.store, org, old_ck.trim().as_bytes(), t.clock.now())
            .await
            .unwrap()
            .unwrap();
        let report = axie_server::keys::rotate_checkpoint_key(&t.settings, &t.store, None)
            .await
            .unwrap();
        assert!(report.starts_with("verified 1 audit chains"), "{report}");
        let new_ck = std::fs::read_to_string(dir.join("checkpoint.key")).unwrap();
        assert_ne!(old_ck, new_ck);
        assert_eq!(
            audit::verify_chain(&*t.store, org, new_ck.trim().as_bytes())
                .await
                .unwrap()
                .map(|_| ()),
            Ok(()),
            "the anchor moved to the new key with the checkpoint"
        );
        let resealed = audit::AuditStore::anchor(&*t.store, org)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (resealed.seq, resealed.hash, resealed.pruned_at),
            (anchor.seq, anchor.hash, anchor.pruned_at)
        );
        assert!(resealed.is_authentic(new_ck.trim().as_bytes()));
        assert!(!resealed.is_authentic(old_ck.trim().as_bytes()));
        assert!(
            audit::verify_chain(&*t.store, org, old_ck.trim().as_bytes())
                .await
                .unwrap()
                .is_err(),
            "the newest checkpoint is signed with the new key"
        );
        // A rotation cut short after this organization moved to the next key is finished
        // when run again, not refused as a broken chain.
        let next = "ck_a_key_given_by_the_operator_for_this_test";
        audit::take_checkpoint_rotating(
            &*t.store,
            org,
            new_ck.trim().as_bytes(),
            next.as_bytes(),
            t.clock.now(),
        )
        .await
        .unwrap();
        let report = axie_server::keys::rotate_checkpoint_key(&t.settings, &t.store, Some(next))
            .await
            .unwrap();
        assert!(
            report.starts_with("verified 0 audit chains")
                && report.contains("; 1 already verified under the new key"),
            "{report}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("checkpoint.key"))
                .unwrap()
                .trim(),
            next
        );
        // Both keys before it are kept, for the checkpoints and backups signed under them.
        assert_eq!(
            std::fs::read_to_string(dir.join("checkpoint.key.old")).unwrap(),
            new_ck
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("checkpoint.key.old.1")).unwrap(),
            old_ck
        );
        assert!(
            audit::verify_chain(&*t.store, org, next.as_bytes())
                .await
                .unwrap()
                .is_ok()
        );
        // A rotation interrupted on its way to one key is not taken over by another: that
        // file is the only copy of the key some things moved to.
        let pending = dir.join("checkpoint.key.next");
        std::fs::write(&pending, "ck_pending_from_an_interrupted_run").unwrap();
        let refused =
            axie_server::keys::rotate_checkpoint_key(&t.settings, &t.store, Some("ck_another"))
                .await;
        assert!(
            refused.is_err_and(|e| e.to_string().contains("another new key")),
            "a pending key is not overwritten"
        );
        assert_eq!(
            std::fs::read_to_string(&pending).unwrap(),
            "ck_pending_from_an_interrupted_run"
        );
        std::fs::remove_file(&pending).unwrap();
        // A configured key cannot be replaced behind the operator's back.
        let mut configured = t.settings.clone();
        configured.security.encryption_key = after.clone().into();
        assert!(
            axie_server::keys::rotate_encryption_key(&configured, &t.store, None)
                .await
                .is_err()
        );
        // Given on the command line, the new key is kept in the data directory (readable by
        // the server's user only) before anything moves to it: generated inline, it would
        // otherwise exist nowhere once the documents were under it. The report names the file.
        // (The server is running here, as the test's store is its own: a rotation that meets
        // its writer busy fails and is run again, as an operator would, with the same key.)
        let rotate = |settings: axie_server::Settings, key: String| {
            let store = t.store.clone();
            async move {
                let mut last = None;
                for _ in 0..5 {
                    match axie_server::keys::rotate_encryption_key(&settings, &store, Some(&key))
                        .await
                    {
                        Ok(report) => return report,
                        Err(e) => last = Some(e.to_string()),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                panic!("the rotation failed five times: {last:?}")
            }
        };
        let fresh = security_policy::Cipher::generate_key();
        let report = rotate(configured.clone(), fresh.clone()).await;
        let kept = dir.join("encryption.key.next");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), fresh);
        assert!(report.contains("encryption.key.next"), "{report}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // Once the configuration holds that key, the file left behind is no pending rotation:
        // the next one goes ahead (it was refused as "interrupted").
        configured.security.encryption_key = fresh.clone().into();
        let newer = security_policy::Cipher::generate_key();
        rotate(configured.clone(), newer.clone()).await;
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), newer);
    }
);

/// The reset token in a mail (plain or quoted-printable body).
fn reset_token_in(mail: &str) -> String {
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    let start = unfolded.find("axr_").expect("a reset token in the mail");
    unfolded[start..start + 4 + 64].to_owned()
}

both_backends!(
    a_forgotten_password_is_reset_through_an_emailed_link_once,
    |b| async move {
        let smtp = SmtpSink::start().await;
        let t = spawn_app_mailing_to(b, &smtp).await;
        let old_session = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let ask = |email: &'static str| {
            t.client
                .post(t.url("/api/v1/auth/password-reset"))
                .json(&json!({ "email": email }))
                .send()
        };
        let confirm = |token: String, password: &'static str| {
            t.client
                .post(t.url("/api/v1/auth/password-reset/confirm"))
                .json(&json!({ "token": token, "new_password": password }))
                .send()
        };
        // The same answer whether or not the address has an account.
        let unknown = ask("nobody@example.com").await.unwrap();
        assert_eq!(unknown.status(), StatusCode::ACCEPTED);
        let known = ask("Lisa@Example.com").await.unwrap();
        assert_eq!(known.status(), StatusCode::ACCEPTED);
        assert_eq!(
            unknown.json::<Value>().await.unwrap(),
            known.json::<Value>().await.unwrap()
        );
        problem(
            ask("not an address").await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let mail = smtp.wait_for("lisa@example.com", 0).await;
        assert!(
            mail.replace("=\r\n", "")
                .replace("=\n", "")
                .contains("/reset-password#token=")
                || mail.contains("/reset-password#token=3Daxr_"),
            "{mail}"
        );
        let token = reset_token_in(&mail);
        // Account mail: no organization's outbox shows it, not even the Owner's.
        let outbox = serde_json::to_string(
            &json_of(t.get(&t.org("/outbox?limit=200"), &t.owner_token).await).await,
        )
        .unwrap();
        assert!(!outbox.contains("Reset your"), "{outbox}");

        // A password the policy refuses leaves the link usable.
        let weak = confirm(token.clone(), "short").await.unwrap();
        assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &old_session).await.status(),
            StatusCode::OK
        );
        let done = confirm(token.clone(), "a brand new passphrase 42")
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        let done: Value = done.json().await.unwrap();
        assert!(done["sessions_ended"].as_u64().unwrap() >= 1, "{done}");
        // Signed out everywhere; the old password is gone, the new one works.
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &old_session).await.status(),
            StatusCode::UNAUTHORIZED
        );
        problem(
            t.login_response("lisa@example.com", DEMO_PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        t.login("lisa@example.com", "a brand new passphrase 42")
            .await;
        // Once only.
        let again = confirm(token, "yet another passphrase 43").await.unwrap();
        assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
        t.login("lisa@example.com", "a brand new passphrase 42")
            .await;

        // Recorded in her organization, with the request's address; nothing for the
        // unknown address.
        let asked = t.audit("action=auth.password_reset_requested").await;
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(asked[0]["actor_name"], "Lisa");
        assert_eq!(asked[0]["ip"], "127.0.0.1");
        let reset = t.audit("action=auth.password_reset").await;
        assert_eq!(reset.len(), 1, "{reset:?}");
        assert_eq!(
            t.audit("action=auth.session_revoked").await[0]["metadata"]["reason"],
            "password_reset"
        );

        // At most three links an hour: the fourth request sends nothing, and answers the same.
        for _ in 0..3 {
            assert_eq!(
                ask("lisa@example.com").await.unwrap().status(),
                StatusCode::ACCEPTED
            );
        }
        smtp.wait_for("lisa@example.com", 2).await;
        // The requests run after their answers; give the capped one time to (not) commit.
        // The store contract checks the cap deterministically; this checks it end to end.
        for _ in 0..10 {
            let kept = audit::MailOutbox::list_mails(&*t.store, None, None, 100)
                .await
                .unwrap();
            assert_eq!(
                kept.iter().filter(|m| m.to == "lisa@example.com").count(),
                3,
                "{kept:?}"
            );
            assert_eq!(
                t.audit("action=auth.password_reset_requested").await.len(),
                3
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // Ten requests from one address in 15 minutes, whatever their answers: the six above
        // and four more; the eleventh is refused.
        for _ in 0..4 {
            assert_eq!(
                ask("someone@example.com").await.unwrap().status(),
                StatusCode::ACCEPTED
            );
        }
        let refused = ask("someone@example.com").await.unwrap();
        assert!(refused.headers().contains_key("retry-after"));
        problem(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    }
);

/// Sends `requests` all at once; returns their statuses and how many were `checked` (answered
/// on their merits rather than refused by a throttle).
async fn burst(
    requests: impl IntoIterator<Item = impl std::future::Future<Output = reqwest::Response>>,
    checked: StatusCode,
) -> (Vec<StatusCode>, usize) {
    let answers: Vec<StatusCode> = futures::future::join_all(requests)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();
    let n = answers.iter().filter(|s| **s == checked).count();
    (answers, n)
}

both_backends!(
    an_unknown_name_locks_under_every_spelling_as_an_account_does,
    |b| async move {
        let t = spawn_locking_addresses_after(b, 1_000).await;
        // Ten failures, alternating two spellings of one name (a domain in Unicode and in
        // punycode, a local part composed and decomposed), each from an address of its own.
        // An account is found by every spelling and locks; an unknown name must lock too, or
        // the answer (429 against 401) would tell which names are accounts.
        let mike = ["Mike@Example.com", "mike@EXAMPLE.COM "];
        let unknown = ["nobody@bücher.example", "NOBODY@xn--bcher-kva.example"];
        let composed = ["jos\u{e9}@example.com", "jose\u{301}@example.com"];
        for (n, spellings) in [mike, unknown, composed].iter().enumerate() {
            for i in 0..10 {
                let ip = format!("198.51.{n}.{}", i + 1);
                assert_eq!(
                    login_from(&t, &ip, spellings[i % 2], "a wrong guess")
                        .await
                        .status(),
                    StatusCode::UNAUTHORIZED,
                    "{spellings:?} failure {i}"
                );
            }
            for spelling in spellings {
                assert_eq!(
                    login_from(&t, "192.0.2.200", spelling, "a wrong guess")
                        .await
                        .status(),
                    StatusCode::TOO_MANY_REQUESTS,
                    "{spelling} is locked"
                );
            }
        }
    }
);

both_backends!(
    refusals_of_locked_accounts_count_against_the_address_once_each,
    |b| async move {
        let t = spawn_locking_addresses_after(b, 3).await;
        let from = |ip: String, email: &'static str, password: &'static str| {
            let t = &t;
            async move { login_from(t, &ip, email, password).await.status() }
        };
        // Three accounts locked by ten wrong passwords each, every one from an address of its
        // own (so that no address is locked).
        let accounts = ["mike@example.com", "lisa@example.com", "tom@example.com"];
        for (i, email) in accounts.iter().enumerate() {
            for n in 0..10 {
                let ip = format!("198.51.{i}.{}", n + 1);
                assert_eq!(
                    from(ip, email, "a wrong guess").await,
                    StatusCode::UNAUTHORIZED
                );
            }
            assert_eq!(
                from("192.0.2.200".into(), email, "a wrong guess").await,
                StatusCode::TOO_MANY_REQUESTS,
                "{email} is locked"
            );
        }
        // Someone retrying their own locked account counts once: their address stays open.
        for _ in 0..4 {
            assert_eq!(
                from("203.0.113.5".into(), "mike@example.com", DEMO_PASSWORD).await,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
        assert_eq!(
            from("203.0.113.5".into(), OWNER_EMAIL, OWNER_PASSWORD).await,
            StatusCode::OK
        );
        // An address going from locked account to locked account is locked itself after the
        // third: then even a right password of an open account is refused from there.
        for email in accounts {
            assert_eq!(
                from("203.0.113.66".into(), email, "a wrong guess").await,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
        assert_eq!(
            from("203.0.113.66".into(), OWNER_EMAIL, OWNER_PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            from("203.0.113.67".into(), OWNER_EMAIL, OWNER_PASSWORD).await,
            StatusCode::OK
        );
        // Each of those refusals was recorded once for its person.
        let refused = t
            .audit("action=auth.login_failed&outcome=failure&limit=200")
            .await
            .into_iter()
            .filter(|r| r["reason"] == "throttled" && r["ip"] == "203.0.113.66")
            .count();
        assert_eq!(refused, 3);
    }
);

both_backends!(
    a_locked_accounts_refusal_whose_record_failed_is_recorded_at_the_next,
    |b| async move {
        // An address is locked after two locked accounts' refusals counted against it: had the
        // unrecorded refusal counted, the recorded one would lock the address.
        let t = spawn_locking_addresses_after(b, 2).await;
        for n in 0..10 {
            let res = login_from(
                &t,
                &format!("198.51.100.{}", n + 1),
                "mike@example.com",
                "a wrong guess",
            )
            .await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        let throttled_from = async |ip: &str| {
            t.audit("action=auth.login_failed&outcome=failure&limit=200")
                .await
                .into_iter()
                .filter(|r| r["reason"] == "throttled" && r["ip"] == ip)
                .count()
        };
        // Only the first refusal of a locked account from an address is recorded; this first
        // one's record cannot be written, so the login fails without being answered as a lock.
        t.refuse_audit_records("NEW.action = 'auth.login_failed' AND NEW.reason = 'throttled'")
            .await;
        let res = login_from(&t, "203.0.113.66", "mike@example.com", "a wrong guess").await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        t.accept_audit_records().await;
        assert_eq!(throttled_from("203.0.113.66").await, 0);
        // So the next refusal from there is the one recorded, once.
        for _ in 0..3 {
            let res = login_from(&t, "203.0.113.66", "mike@example.com", "a wrong guess").await;
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        assert_eq!(throttled_from("203.0.113.66").await, 1);
        // The refusal that was not recorded did not count against the address either: one
        // refusal counted from there, below the two that lock an address.
        assert_eq!(
            login_from(&t, "203.0.113.66", OWNER_EMAIL, OWNER_PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
    }
);

both_backends!(
    activation_codes_are_counted_and_recorded_like_sign_in_codes,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let res = t
            .post(
                &t.url("/api/v1/me/mfa/totp"),
                &lisa,
                &json!({ "password": DEMO_PASSWORD }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let uri = res.json::<Value>().await.unwrap()["otpauth_uri"]
            .as_str()
            .unwrap()
            .to_owned();
        let now = t.clock.now().timestamp();
        let valid: Vec<String> = [now - 30, now, now + 30]
            .iter()
            .map(|&at| pyotp_code(&uri, at))
            .collect();
        let wrong = (0..)
            .map(|n| format!("{n:06}"))
            .find(|c| !valid.contains(c))
            .unwrap();
        let activate = |code: String| {
            let (t, lisa) = (&t, &lisa);
            async move {
                t.post(
                    &t.url("/api/v1/me/mfa/totp/activate"),
                    lisa,
                    &json!({ "code": code }),
                )
                .await
            }
        };
        // A session alone (a stolen one) cannot guess its way to an active factor: ten wrong
        // codes, each refused and recorded, then even the right one is refused for a while.
        for _ in 0..10 {
            problem(
                activate(wrong.clone()).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
        }
        let res = activate(valid[1].clone()).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let status = json_of(t.get(&t.url("/api/v1/me/mfa"), &lisa).await).await;
        assert_eq!(
            (status["enabled"].as_bool(), status["pending"].as_bool()),
            (Some(false), Some(true))
        );
        let failed = t
            .audit("action=auth.mfa_enabled&outcome=failure&limit=50")
            .await;
        assert_eq!(failed.len(), 11, "{failed:?}");
        assert!(
            failed
                .iter()
                .all(|r| r["reason"] == "bad_second_factor" && r["actor_name"] == "Lisa"),
            "{failed:?}"
        );

        // Once the lock is over the right code activates it, and signing in asks for it.
        t.clock.advance(Duration::minutes(16));
        let res = activate(pyotp_code(&uri, t.clock.now().timestamp())).await;
        assert_eq!(res.status(), StatusCode::OK);
        let ch = challenge(&t, "lisa@example.com", DEMO_PASSWORD).await;
        assert_eq!(ch["methods"], json!(["totp", "recovery_code"]));
    }
);

both_backends!(
    the_caller_is_known_before_the_body_is_read,
    |b| async move {
        let t = spawn_behind_proxy(b).await;
        let keys = t.org("/api-keys");
        let bulk = t.org("/invitations/bulk");
        // A token that names no session: 401, whatever the body (415, 400 and 413 before, as
        // finding out takes the store a moment, and a bad body was answered first).
        let unknown = format!("axs_{}", "0".repeat(64));
        let huge = "x".repeat(2 * 1024 * 1024);
        for (url, content_type, body) in [
            (&keys, "text/plain", "x"),
            (&keys, "application/json", "{not json"),
            (&keys, "application/json", huge.as_str()),
            (&bulk, "text/csv", huge.as_str()),
        ] {
            let res = t
                .client
                .post(url)
                .bearer_auth(&unknown)
                .header("content-type", content_type)
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        }
        // Nor is a query string judged before the caller: 401, not 400.
        for query in ["limit=abc", "cursor=%00", "unknown=1"] {
            let res = t
                .client
                .get(t.org(&format!("/members?{query}")))
                .bearer_auth(&unknown)
                .send()
                .await
                .unwrap();
            problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        }
        // Signed in, from an address the organization does not admit: refused as such, and
        // recorded, whatever the body.
        let allowlist = t
            .patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({ "ip_allowlist": ["127.0.0.0/8"] }),
            )
            .await;
        assert_eq!(allowlist.status(), StatusCode::OK);
        let denied_before = t.audit("action=access.denied&limit=50").await.len();
        for (content_type, body) in [("text/plain", "x"), ("application/json", "{not json")] {
            let res = t
                .client
                .post(&keys)
                .bearer_auth(&t.owner_token)
                .header("x-forwarded-for", "198.51.100.7")
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            problem(res, StatusCode::FORBIDDEN, "ip_not_allowed").await;
        }
        let res = t
            .client
            .get(t.org("/members?limit=abc"))
            .bearer_auth(&t.owner_token)
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::FORBIDDEN, "ip_not_allowed").await;
        let denied = t.audit("action=access.denied&limit=50").await;
        assert_eq!(denied.len(), denied_before + 3, "{denied:?}");
        // From an admitted address, the body is then judged.
        let res = t
            .client
            .post(&keys)
            .bearer_auth(&t.owner_token)
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        problem(
            res,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
        // And the query: judged once the caller is known, as the request's fault.
        let res = t.get(&t.org("/members?limit=abc"), &t.owner_token).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
);

both_backends!(
    a_body_that_does_not_arrive_is_answered_408,
    |b| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                body_timeout_secs: Some(1),
                ..Options::default()
            },
        )
        .await;
        let addr = t.address.trim_start_matches("http://").to_owned();
        let path = t.org("/api-keys").replace(&t.address, "");
        // The head and the start of a body promised 100 bytes long, then nothing.
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": ",
            t.owner_token
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            let mut buf = [0u8; 4096];
            loop {
                let n = conn.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
                // The head, then a problem document (one JSON object).
                let text = String::from_utf8_lossy(&answer);
                if text
                    .split_once("\r\n\r\n")
                    .is_some_and(|(_, body)| body.ends_with('}'))
                {
                    break;
                }
            }
        })
        .await;
        assert!(read.is_ok(), "no answer to a stalled body");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
        // Nothing was created.
        let listed = json_of(t.get(&t.org("/api-keys"), &t.owner_token).await).await;
        assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
    }
);

both_backends!(allowlist_entries_carry_their_labels, |b| async move {
    let t = spawn_app(b).await;
    let url = t.org("/security");
    let saved = json_of(
        t.patch(
            &url,
            &t.owner_token,
            &json!({ "ip_allowlist": [
                { "network": "127.0.0.0/8", "label": "This machine" },
                { "network": "203.0.113.0/24", "label": "  Office network " },
                "198.51.100.50",
                { "network": "2001:db8::/32", "label": "" },
            ] }),
        )
        .await,
    )
    .await;
    let entries = json!([
        { "network": "127.0.0.0/8", "label": "This machine" },
        { "network": "203.0.113.0/24", "label": "Office network" },
        { "network": "198.51.100.50/32", "label": null },
        { "network": "2001:db8::/32", "label": null },
    ]);
    assert_eq!(saved["ip_allowlist_entries"], entries);
    assert_eq!(
        saved["ip_allowlist"],
        json!([
            "127.0.0.0/8",
            "203.0.113.0/24",
            "198.51.100.50/32",
            "2001:db8::/32"
        ])
    );
    let read = json_of(t.get(&url, &t.owner_token).await).await;
    assert_eq!(read["ip_allowlist_entries"], entries);
    let record = &t.audit("action=security_policy.updated").await[0];
    let meta = &record["metadata"];
    assert!(
        meta["fields"]
            .as_array()
            .unwrap()
            .contains(&json!("ip_allowlist_labels")),
        "{record}"
    );
    // Which networks' labels changed, not the labels' text: the record stays small.
    assert_eq!(
        meta["changes"]["ip_allowlist_labels"],
        json!({ "set": 2, "set_networks": ["127.0.0.0/8", "203.0.113.0/24"],
                "removed": 0, "removed_networks": [] }),
        "{record}"
    );

    // A bad label refuses the whole change: nothing is half applied.
    for bad in [json!("x".repeat(65)), json!("VPN\nAdmin"), json!(7)] {
        let res = t
            .patch(
                &url,
                &t.owner_token,
                &json!({ "ip_allowlist": [{ "network": "127.0.0.0/8", "label": bad }] }),
            )
            .await;
        assert!(res.status().is_client_error(), "{bad}: {}", res.status());
    }
    let unknown = t
        .patch(
            &url,
            &t.owner_token,
            &json!({ "ip_allowlist": [{ "network": "127.0.0.0/8", "name": "x" }] }),
        )
        .await;
    assert!(unknown.status().is_client_error());
    let read = json_of(t.get(&url, &t.owner_token).await).await;
    assert_eq!(read["ip_allowlist_entries"], entries);

    // A list of plain networks replaces the labels too; relabelling alone is recorded.
    let saved = json_of(
        t.patch(
            &url,
            &t.owner_token,
            &json!({ "ip_allowlist": ["127.0.0.0/8"] }),
        )
        .await,
    )
    .await;
    assert_eq!(
        saved["ip_allowlist_entries"],
        json!([{ "network": "127.0.0.0/8", "label": null }])
    );
    json_of(
        t.patch(
            &url,
            &t.owner_token,
            &json!({ "ip_allowlist": [{ "network": "127.0.0.0/8", "label": "Loopback" }] }),
        )
        .await,
    )
    .await;
    let record = &t.audit("action=security_policy.updated").await[0];
    assert_eq!(
        record["metadata"]["fields"],
        json!(["ip_allowlist", "ip_allowlist_labels"])
    );
    assert_eq!(
        record["metadata"]["changes"],
        json!({ "ip_allowlist_labels": { "set": 1, "set_networks": ["127.0.0.0/8"],
                                         "removed": 0, "removed_networks": [] } })
    );

    // A thousand labelled networks, relabelled one at a time: every change is recorded.
    let mut list: Vec<Value> = (0..999)
        .map(|i| json!({ "network": format!("10.{}.{}.0/24", i / 256, i % 256), "label": "é".repeat(64) }))
        .collect();
    list.push(json!({ "network": "127.0.0.0/8", "label": "Loopback" }));
    json_of(
        t.patch(&url, &t.owner_token, &json!({ "ip_allowlist": list }))
            .await,
    )
    .await;
    list[500]["label"] = json!("Branch office");
    let saved = json_of(
        t.patch(&url, &t.owner_token, &json!({ "ip_allowlist": list }))
            .await,
    )
    .await;
    assert_eq!(saved["ip_allowlist_entries"][500]["label"], "Branch office");
    let record = &t.audit("action=security_policy.updated").await[0];
    assert_eq!(
        record["metadata"]["changes"]["ip_allowlist_labels"],
        json!({ "set": 1, "set_networks": ["10.1.244.0/24"], "removed": 0, "removed_networks": [] })
    );
    // Allowing everyone again leaves no label behind.
    let saved = json_of(
        t.patch(&url, &t.owner_token, &json!({ "ip_allowlist": [] }))
            .await,
    )
    .await;
    assert_eq!(saved["ip_allowlist_entries"], json!([]));
    let org: rbac_core::OrgId = t.org_id.parse().unwrap();
    let stored = tenancy::OrgStore::get_org(&*t.store, org).await.unwrap();
    assert!(stored.security.ip_allowlist_labels.is_empty());
    let record = &t.audit("action=security_policy.updated").await[0];
    assert_eq!(
        record["metadata"]["changes"]["ip_allowlist_labels"]["removed"],
        1000
    );
});
