//! API keys: the Limited cells, revocation, plan limits under concurrency, tenant isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

async fn create_key(t: &TestApp, token: &str, name: &str) -> Value {
    let res = t
        .post(&t.org("/api-keys"), token, &json!({ "name": name }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

both_backends!(users_see_and_revoke_only_their_own_keys, |b| async move {
    let t = spawn_app(b).await;
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
    let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
    let lisa_key = create_key(&t, &lisa, "Lisa's key").await;
    let tom_key = create_key(&t, &tom, "Tom's key").await;

    let lisa_list = json_of(t.get(&t.org("/api-keys"), &lisa).await).await;
    let names: Vec<_> = lisa_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Lisa's key")]);
    let mike_list = json_of(t.get(&t.org("/api-keys"), &mike).await).await;
    assert_eq!(
        mike_list["items"].as_array().unwrap().len(),
        2,
        "admins see every key"
    );

    let tom_key_url = t.org(&format!("/api-keys/{}", tom_key["id"].as_str().unwrap()));
    let denied = problem(
        t.delete(&tom_key_url, &lisa).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(denied["reason"], "not_creator");
    assert_eq!(
        t.delete(&tom_key_url, &mike).await.status(),
        StatusCode::NO_CONTENT,
        "admins revoke any key"
    );
    problem(
        t.get(&t.url("/api/v1/me"), tom_key["secret"].as_str().unwrap())
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    problem(
        t.delete(&tom_key_url, &mike).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let own = t.org(&format!("/api-keys/{}", lisa_key["id"].as_str().unwrap()));
    assert_eq!(t.delete(&own, &lisa).await.status(), StatusCode::NO_CONTENT);
    let revoked = t.audit("action=api_key.revoked").await;
    assert_eq!(revoked.len(), 2);
    let denied = t.audit("action=access.denied").await;
    assert_eq!(denied.len(), 1, "Lisa's attempt on Tom's key is audited");
    assert_eq!(denied[0]["reason"], "not_creator");
    assert_eq!(denied[0]["target_id"], "revoke_api_key");
    assert_eq!(
        denied[0]["metadata"]["request"],
        format!(
            "DELETE /api/v1/orgs/{}/api-keys/{}",
            t.org_id,
            tom_key["id"].as_str().unwrap()
        ),
        "the refusal names the request refused, with its ids"
    );
});

both_backends!(
    the_setting_reserves_key_creation_for_admins,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let access = json!({"create_api_keys": "admins_only", "manage_domains": "admins_only", "view_audit_logs": "admins_only", "export_data": "admins_only"});
        json_of(
            t.client
                .put(t.org("/feature-access"))
                .bearer_auth(&t.owner_token)
                .json(&access)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let denied = problem(
            t.post(&t.org("/api-keys"), &lisa, &json!({"name": "nope"}))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(denied["reason"], "disabled_by_setting");
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        create_key(&t, &mike, "Mike's key").await;
    }
);

both_backends!(
    api_keys_cannot_mint_api_keys_or_act_outside_their_org,
    |b| async move {
        let t = spawn_app(b).await;
        let key = create_key(&t, &t.owner_token, "automation").await;
        let secret = key["secret"].as_str().unwrap();
        let denied = problem(
            t.post(&t.org("/api-keys"), secret, &json!({"name": "child"}))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(denied["reason"], "interactive_only");
        json_of(t.get(&t.org("/members"), secret).await).await;
        // Nor can a key create or promote an account, and so obtain a login.
        let invite = t
            .post(
                &t.org("/invitations"),
                secret,
                &json!({"email": "attacker@evil.example", "role": "admin"}),
            )
            .await;
        assert_eq!(
            problem(invite, StatusCode::FORBIDDEN, "forbidden").await["reason"],
            "interactive_only"
        );
        let lisa = t.member_id("lisa@example.com").await;
        let promote = t
            .patch(
                &t.org(&format!("/members/{lisa}")),
                secret,
                &json!({"role": "admin"}),
            )
            .await;
        assert_eq!(
            problem(promote, StatusCode::FORBIDDEN, "forbidden").await["reason"],
            "interactive_only"
        );
        // Nor loosen the rules that constrain it: the allowlist it is used from, or who may
        // do what.
        let widen = t
            .patch(
                &t.org("/security"),
                secret,
                &json!({"ip_allowlist": ["0.0.0.0/0"]}),
            )
            .await;
        assert_eq!(
            problem(widen, StatusCode::FORBIDDEN, "forbidden").await["reason"],
            "interactive_only"
        );
        let open_up = t
            .client
            .put(t.org("/feature-access"))
            .bearer_auth(secret)
            .json(&json!({"create_api_keys": "admins_and_users", "manage_domains": "admins_only", "view_audit_logs": "admins_and_users", "export_data": "admins_only"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(open_up, StatusCode::FORBIDDEN, "forbidden").await["reason"],
            "interactive_only"
        );
        // Person-level actions need a session.
        problem(
            t.get(&t.url("/api/v1/me/sessions"), secret).await,
            StatusCode::FORBIDDEN,
            "interactive_only",
        )
        .await;
        let accept = t
            .post(
                &t.url("/api/v1/invitations/accept"),
                secret,
                &json!({"token": "axi_x"}),
            )
            .await;
        problem(accept, StatusCode::FORBIDDEN, "interactive_only").await;
        // Every one of those refusals is on the key's organization's record, the person-level
        // ones with their route.
        let denied = t.audit("action=access.denied&limit=50").await;
        let targets: Vec<&str> = denied
            .iter()
            .filter(|d| d["reason"] == "interactive_only")
            .map(|d| d["target_id"].as_str().unwrap())
            .collect();
        assert_eq!(denied.len(), 7, "{denied:?}");
        assert!(targets.contains(&"GET /api/v1/me/sessions"), "{targets:?}");
        assert!(
            targets.contains(&"POST /api/v1/invitations/accept"),
            "{targets:?}"
        );
        assert!(
            denied
                .iter()
                .all(|d| d["actor_type"] == "api_key" && d["outcome"] == "denied"),
            "{denied:?}"
        );
    }
);

both_backends!(
    the_plan_limit_holds_under_concurrent_creates,
    |b| async move {
        let t = spawn_app(b).await;
        let (org, owner_email) = second_org(&t, billing_limits::Plan::Free).await;
        let token = t.login(&owner_email, OWNER_PASSWORD).await;
        let url = t.url(&format!("/api/v1/orgs/{org}/api-keys"));
        let attempts = (0..12).map(|i| {
            let (c, url, token) = (t.client.clone(), url.clone(), token.clone());
            async move {
                c.post(url)
                    .bearer_auth(token)
                    .json(&json!({"name": format!("k{i}")}))
                    .send()
                    .await
                    .unwrap()
            }
        });
        let results = futures::future::join_all(attempts).await;
        let created = results
            .iter()
            .filter(|r| r.status() == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1, "the Free plan allows exactly one key");
        let refusal = results
            .into_iter()
            .find(|r| r.status() == StatusCode::FORBIDDEN)
            .unwrap();
        let p = problem(refusal, StatusCode::FORBIDDEN, "limit_reached").await;
        assert_eq!(p["limit"], "api_keys");
        assert_eq!(p["max"], 1);
        assert_eq!(p["used"], 1);
        assert_eq!(p["plan"], "free");
    }
);

both_backends!(another_tenants_keys_and_org_answer_404, |b| async move {
    let t = spawn_app(b).await;
    let key = create_key(&t, &t.owner_token, "acme key").await;
    let (other_org, other_email) = second_org(&t, billing_limits::Plan::Enterprise).await;
    let intruder = t.login(&other_email, OWNER_PASSWORD).await;
    for url in [
        t.org(""),
        t.org("/members"),
        t.org("/api-keys"),
        t.org("/audit-events"),
    ] {
        problem(
            t.get(&url, &intruder).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let acme_key = t.org(&format!("/api-keys/{}", key["id"].as_str().unwrap()));
    problem(
        t.delete(&acme_key, &intruder).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The same key id under the intruder's own organization is not found either.
    let via_own = t.url(&format!(
        "/api/v1/orgs/{other_org}/api-keys/{}",
        key["id"].as_str().unwrap()
    ));
    problem(
        t.delete(&via_own, &intruder).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // An API key of org B cannot reach org A.
    let b_key = t
        .post(
            &t.url(&format!("/api/v1/orgs/{other_org}/api-keys")),
            &intruder,
            &json!({"name": "b"}),
        )
        .await;
    let b_secret = b_key.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        t.get(&t.org("/members"), &b_secret).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A key is not made for another organization's team, by either Owner.
    let first_team = |org: String, token: String| {
        let t = &t;
        async move {
            let teams = json_of(
                t.get(&t.url(&format!("/api/v1/orgs/{org}/teams")), &token)
                    .await,
            )
            .await;
            teams["items"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    let acme_team = first_team(t.org_id.to_string(), t.owner_token.clone()).await;
    let b_team = first_team(other_org.clone(), intruder.clone()).await;
    for (org, token, team) in [
        (t.org_id.to_string(), &t.owner_token, &b_team),
        (other_org.clone(), &intruder, &acme_team),
    ] {
        problem(
            t.post(
                &t.url(&format!("/api/v1/orgs/{org}/api-keys")),
                token,
                &json!({ "name": "across", "team_id": team }),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    // Nothing leaked into Acme's audit log.
    assert!(
        t.audit("limit=500")
            .await
            .iter()
            .all(|r| r["actor_name"] != "Intruder")
    );
});

/// Creates a second organization through the real store and returns its id and owner email.
pub async fn second_org(t: &TestApp, plan: billing_limits::Plan) -> (String, String) {
    let hasher =
        security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
    let email = format!("owner-{}@other.example", uuid::Uuid::new_v4().simple());
    let (org, _) = tenancy::orgs::create_with_new_owner(
        &*t.store,
        &hasher,
        tenancy::orgs::CreateOrgRequest {
            name: "Globex".into(),
            plan,
            owner_email: email.clone(),
            owner_name: "Intruder".into(),
            owner_password: OWNER_PASSWORD.into(),
        },
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    (org.id.to_string(), email)
}
