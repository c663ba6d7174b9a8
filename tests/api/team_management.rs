//! Invitations end to end: real SMTP delivery, acceptance with and without an account,
//! resend, revoke, expiry at the boundary, seat limits under concurrency.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

async fn invite(t: &TestApp, token: &str, email: &str, role: &str) -> reqwest::Response {
    t.post(
        &t.org("/invitations"),
        token,
        &json!({ "email": email, "role": role }),
    )
    .await
}

pub(crate) async fn invited(t: &TestApp, email: &str, role: &str) -> Value {
    let res = invite(t, &t.owner_token, email, role).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// The token of the newest invitation mail to `email` in the outbox (SMTP off).
pub(crate) async fn outbox_token(t: &TestApp, email: &str) -> String {
    let mails = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
    let mail = mails["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["to"] == email)
        .expect("mail in outbox");
    assert_eq!(mail["kind"], "invitation");
    let token = token_in(mail["body"].as_str().unwrap());
    // The Owner reads the token; the database holds it only sealed (`tenancy::mail_secrets`).
    let rows = |condition: String| async move {
        t.store
            .execute_sql(&format!(
                "UPDATE mail_outbox SET kind = kind WHERE to_addr = '{email}' AND {condition}"
            ))
            .await
            .unwrap()
    };
    assert_eq!(rows(format!("body LIKE '%{token}%'")).await, 0);
    assert!(
        rows(format!(
            "body LIKE '%{}v2:%'",
            tenancy::mail_secrets::MARKER_START
        ))
        .await
            >= 1
    );
    token
}

async fn lookup(t: &TestApp, token: &str) -> reqwest::Response {
    t.client
        .post(t.url("/api/v1/invitations/lookup"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

async fn signup(t: &TestApp, token: &str, name: &str, password: &str) -> reqwest::Response {
    t.client
        .post(t.url("/api/v1/invitations/signup"))
        .json(&json!({ "token": token, "name": name, "password": password }))
        .send()
        .await
        .unwrap()
}

both_backends!(
    user_created_names_the_inviter_by_email_as_in_the_guide,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": ["user.created"] }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        invited(&t, "john@company.com", "user").await;
        let token = outbox_token(&t, "john@company.com").await;
        let res = signup(&t, &token, "John", "a long enough password 42").await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "{}",
            res.text().await.unwrap()
        );
        let got = rx.wait_for(1, 10).await;
        let body: Value = serde_json::from_str(&got[0].body).unwrap();
        let owner = t.member_id(OWNER_EMAIL).await;
        // The guide's example: `"invitedBy": "sarah@company.com"`.
        assert_eq!(
            (
                body["event"].as_str(),
                body["data"]["email"].as_str(),
                body["data"]["role"].as_str(),
                body["data"]["invitedBy"].as_str(),
                body["data"]["invitedById"].as_str(),
            ),
            (
                Some("user.created"),
                Some("john@company.com"),
                Some("user"),
                Some(OWNER_EMAIL),
                Some(owner.as_str()),
            ),
            "{body}"
        );
        let types = json_of(
            t.get(&t.url("/api/v1/webhooks/event-types"), &t.owner_token)
                .await,
        )
        .await;
        let schema = types
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "user.created")
            .unwrap()["schema"]
            .clone();
        crate::webhooks::assert_valid(&schema, &body);
    }
);

both_backends!(
    mail_the_relay_refuses_for_good_is_not_tried_again,
    |b| async move {
        let sink = SmtpSink::start_rejecting().await;
        let t = spawn_app_mailing_to(b, &sink).await;
        invited(&t, "bounce@company.com", "user").await;
        invited(&t, "john@company.com", "user").await;
        sink.wait_for("john@company.com", 0).await;
        let t = &t;
        let bounced = |token: String| async move {
            json_of(t.get(&t.org("/outbox"), &token).await).await["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["to"] == "bounce@company.com")
                .unwrap()
                .clone()
        };
        let mut entry = Value::Null;
        for _ in 0..100 {
            entry = bounced(t.owner_token.clone()).await;
            if entry["attempts"] == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(entry["attempts"], 1, "{entry}");
        assert!(entry["sent_at"].is_null(), "{entry}");
        let error = entry["last_error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("gave up:") && error.contains("550"),
            "{entry}"
        );
        // A day later it has still not been tried again (a passing failure would have been,
        // after a minute).
        t.clock.advance(chrono::Duration::days(1));
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let owner = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        assert_eq!(bounced(owner).await["attempts"], 1);
    }
);

both_backends!(
    invitation_email_goes_over_smtp_and_the_link_creates_an_account,
    |b| async move {
        let sink = SmtpSink::start().await;
        let t = spawn_app_mailing_to(b, &sink).await;
        let inv = invited(&t, "John@Company.com", "user").await;
        assert_eq!(inv["email"], "john@company.com");
        assert_eq!(inv["status"], "pending");
        let mail = sink.wait_for("john@company.com", 0).await;
        assert!(
            mail.contains("Subject: Sarah Owner invited you to Acme Corp on Axie Studio"),
            "{mail}"
        );
        assert!(
            mail.contains("/invitations/accept#token=3Daxi_")
                || mail.contains("/invitations/accept#token=axi_"),
            "{mail}"
        );
        let token = token_in(&mail);
        // Once sent, the outbox keeps no copy of the link. The worker records the sending
        // after the SMTP server took the mail, so the sink may see it a moment before.
        let mut entry = Value::Null;
        for _ in 0..50 {
            let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
            entry = outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["to"] == "john@company.com")
                .unwrap()
                .clone();
            if entry["sent_at"].is_string() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(entry["sent_at"].is_string(), "{entry}");
        assert_eq!(entry["body"], "");

        let page = json_of(lookup(&t, &token).await).await;
        assert_eq!(
            page,
            json!({"organization": "Acme Corp", "email": "john@company.com", "role": "user", "team": null, "team_role": null, "status": "pending", "expires_at": page["expires_at"]})
        );
        problem(
            signup(&t, &token, "John Smith", "short").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        )
        .await;
        problem(
            signup(&t, &token, "John Smith", "john@company.com is me ok").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        )
        .await;
        let res = signup(&t, &token, "John Smith", "a sufficiently long passphrase").await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let john = t
            .login("john@company.com", "a sufficiently long passphrase")
            .await;
        let me = json_of(t.get(&t.url("/api/v1/me"), &john).await).await;
        assert_eq!(me["memberships"][0]["role"], "user");
        assert_eq!(me["memberships"][0]["org_id"], t.org_id.as_str());
        // His personal-data export names the invitation he joined by, and where it was sent.
        let john_id = t.member_id("john@company.com").await;
        let path = format!("/members/{john_id}/personal-data");
        let export = json_of(t.get(&t.org(&path), &john).await).await;
        let joined = export["invitations_accepted"].as_array().unwrap();
        assert_eq!(joined.len(), 1, "{export}");
        assert_eq!(joined[0]["email"], "john@company.com");
        assert_eq!(joined[0]["role"], "user");
        assert!(joined[0]["accepted_at"].is_string(), "{export}");
        // And the log's record of the invitation, which names him by that address.
        let records = export["audit_records"].as_array().unwrap();
        let invited = records
            .iter()
            .find(|r| r["action"] == "member.invited")
            .unwrap_or_else(|| panic!("no invitation record in {export}"));
        assert!(
            invited["text"]
                .as_str()
                .unwrap()
                .ends_with("| Invited \"john@company.com\""),
            "{invited}"
        );
        assert!(invited["ip"].is_null(), "the Owner's address is not his");
        // Used once only.
        problem(
            signup(&t, &token, "John Again", "another long passphrase here").await,
            StatusCode::GONE,
            "invitation_used",
        )
        .await;
        let accepted = t
            .client
            .post(t.url("/api/v1/invitations/accept"))
            .bearer_auth(&john)
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        problem(accepted, StatusCode::GONE, "invitation_used").await;
        assert_eq!(t.audit("action=member.invited").await.len(), 1);
        let added = t.audit("action=member.added").await;
        assert_eq!(added[0]["target_name"], "John Smith");
    }
);

both_backends!(
    an_existing_account_signs_in_and_accepts_its_own_invitation,
    |b| async move {
        let t = spawn_app(b).await;
        let (_, globex_owner) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        invited(&t, &globex_owner.to_uppercase(), "admin").await;
        let token = outbox_token(&t, &globex_owner).await;
        // An Admin sees the mail and its state, not its body: the link would let them sign up
        // as the invitee.
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let seen = json_of(t.get(&t.org("/outbox"), &mike).await).await;
        let mail = seen["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"] == globex_owner.as_str())
            .unwrap();
        assert_eq!(
            (&mail["kind"], &mail["body"]),
            (&json!("invitation"), &json!(""))
        );
        assert!(!seen.to_string().contains(&token));
        // Someone else, not yet a member either, cannot take it: it was sent to another address.
        let (_, stranger) = crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        let stranger = t.login(&stranger, OWNER_PASSWORD).await;
        let wrong = t
            .client
            .post(t.url("/api/v1/invitations/accept"))
            .bearer_auth(&stranger)
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        let p = problem(wrong, StatusCode::CONFLICT, "conflict").await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("another email address"),
            "{p}"
        );
        problem(
            signup(&t, &token, "Dup", "a sufficiently long passphrase").await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        let session = t.login(&globex_owner, OWNER_PASSWORD).await;
        let ok = json_of(
            t.client
                .post(t.url("/api/v1/invitations/accept"))
                .bearer_auth(&session)
                .json(&json!({"token": token}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(ok["role"], "admin");
        let me = json_of(t.get(&t.url("/api/v1/me"), &session).await).await;
        assert_eq!(
            me["memberships"].as_array().unwrap().len(),
            2,
            "member of Globex and Acme"
        );
        // As an Acme admin they see Acme's members at once.
        json_of(t.get(&t.org("/members"), &session).await).await;
    }
);

both_backends!(
    resend_revoke_and_expiry_refuse_old_links_clearly,
    |b| async move {
        let mut t = spawn_app(b).await;
        let inv = invited(&t, "sarah@company.com", "admin").await;
        let first = outbox_token(&t, "sarah@company.com").await;
        let id = inv["id"].as_str().unwrap();
        let resent = json_of(
            t.post(
                &t.org(&format!("/invitations/{id}/resend")),
                &t.owner_token,
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(resent["status"], "pending");
        let second = outbox_token(&t, "sarah@company.com").await;
        assert_ne!(first, second);
        problem(lookup(&t, &first).await, StatusCode::NOT_FOUND, "not_found").await;
        problem(
            signup(&t, &first, "Sarah", "a sufficiently long passphrase").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        // Expiry: valid until 7 days after the resend, not one second more.
        t.clock
            .advance(chrono::Duration::days(7) - chrono::Duration::seconds(2));
        assert_eq!(
            json_of(lookup(&t, &second).await).await["status"],
            "pending"
        );
        t.clock.advance(chrono::Duration::seconds(2));
        assert_eq!(
            json_of(lookup(&t, &second).await).await["status"],
            "expired"
        );
        problem(
            signup(&t, &second, "Sarah", "a sufficiently long passphrase").await,
            StatusCode::GONE,
            "invitation_expired",
        )
        .await;

        // An expired invitation is not revived (it holds no seat any more): invite again instead.
        t.owner_token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        problem(
            t.post(
                &t.org(&format!("/invitations/{id}/resend")),
                &t.owner_token,
                &json!({}),
            )
            .await,
            StatusCode::GONE,
            "invitation_expired",
        )
        .await;
        let third = second.clone();
        let res = t
            .delete(&t.org(&format!("/invitations/{id}")), &t.owner_token)
            .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        problem(
            signup(&t, &third, "Sarah", "a sufficiently long passphrase").await,
            StatusCode::GONE,
            "invitation_revoked",
        )
        .await;
        problem(
            t.post(
                &t.org(&format!("/invitations/{id}/resend")),
                &t.owner_token,
                &json!({}),
            )
            .await,
            StatusCode::GONE,
            "invitation_revoked",
        )
        .await;
        let list = json_of(t.get(&t.org("/invitations"), &t.owner_token).await).await;
        assert_eq!(list["items"][0]["status"], "revoked");
        assert_eq!(t.audit("action=invitation.resent").await.len(), 1);
        assert_eq!(t.audit("action=invitation.revoked").await.len(), 1);
    }
);

both_backends!(invitation_rules_and_bad_input, |b| async move {
    let t = spawn_app(b).await;
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    let p = problem(
        invite(&t, &lisa, "x@company.com", "user").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(p["reason"], "role_lacks_permission");
    problem(
        invite(&t, &t.owner_token, "x@company.com", "owner").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    problem(
        invite(&t, &t.owner_token, "x@company.com", "superuser").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    problem(
        invite(&t, &t.owner_token, "not-an-email", "user").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    problem(
        invite(&t, &t.owner_token, "LISA@example.com", "user").await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    invited(&t, "x@company.com", "user").await;
    problem(
        invite(&t, &t.owner_token, "X@Company.com", "admin").await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // One address written another way (decomposed, in capitals, its domain as an `xn--`
    // label) is the same address.
    invited(&t, "zoë@münchen.example", "user").await;
    for other in ["ZOE\u{308}@München.example", "zoë@xn--mnchen-3ya.example"] {
        problem(
            invite(&t, &t.owner_token, other, "user").await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
    }
    problem(
        lookup(
            &t,
            "axi_0000000000000000000000000000000000000000000000000000000000000000",
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        lookup(&t, "garbage").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
    assert_eq!(
        invite(&t, &mike, "y@company.com", "admin").await.status(),
        StatusCode::CREATED,
        "admins invite admins"
    );
});

both_backends!(
    seat_limit_holds_under_concurrent_invites_and_accepts,
    |b| async move {
        let t = spawn_app(b).await;
        // Enterprise allows 20 members; the demo has 4, so 16 seats are left.
        let sends = (0..25).map(|i| {
            let (c, url, tok) = (
                t.client.clone(),
                t.org("/invitations"),
                t.owner_token.clone(),
            );
            async move {
                c.post(url)
                    .bearer_auth(tok)
                    .json(&json!({"email": format!("p{i}@company.com"), "role": "user"}))
                    .send()
                    .await
                    .unwrap()
            }
        });
        let results = futures::future::join_all(sends).await;
        let ok = results
            .iter()
            .filter(|r| r.status() == StatusCode::CREATED)
            .count();
        assert_eq!(
            ok, 16,
            "members plus pending invitations never exceed the plan"
        );
        let refused = results
            .into_iter()
            .find(|r| r.status() != StatusCode::CREATED)
            .unwrap();
        let p = problem(refused, StatusCode::FORBIDDEN, "limit_reached").await;
        assert_eq!(p["max"], 20);

        let mails = json_of(t.get(&t.org("/outbox?limit=200"), &t.owner_token).await).await;
        let mails = mails["items"].as_array().unwrap();
        // The invitations filled the seats: the Owner was told at 100 %, and at 80 % unless one
        // invitation's alert saw both reached at once (one mail, for the highest); each once.
        let mut alerts: Vec<&str> = mails
            .iter()
            .filter(|m| m["kind"] == "usage_alert")
            .map(|m| m["subject"].as_str().unwrap())
            .collect();
        alerts.sort_unstable();
        assert!(
            alerts[0].ends_with("100 % of your members used"),
            "{alerts:?}"
        );
        assert!(
            alerts.len() == 1
                || (alerts.len() == 2 && alerts[1].ends_with("80 % of your members used")),
            "{alerts:?}"
        );
        assert_eq!(
            t.audit("action=usage.alert_sent").await.len(),
            2,
            "both thresholds recorded"
        );
        let alerts_before = alerts.len();
        let tokens: Vec<(String, String)> = mails
            .iter()
            .filter(|m| m["kind"] == "invitation")
            .map(|m| {
                (
                    m["to"].as_str().unwrap().to_owned(),
                    token_in(m["body"].as_str().unwrap()),
                )
            })
            .collect();
        assert_eq!(tokens.len(), 16);
        // Everyone accepts at once, and one token is also tried twice concurrently.
        let (dup_to, dup_token) = tokens[0].clone();
        let mut attempts: Vec<_> = tokens
            .iter()
            .map(|(to, tok)| (to.clone(), tok.clone()))
            .collect();
        attempts.push((dup_to, dup_token));
        let accepts = attempts.into_iter().map(|(to, tok)| {
        let (c, url) = (t.client.clone(), t.url("/api/v1/invitations/signup"));
        async move { c.post(url).json(&json!({"token": tok, "name": to, "password": "a sufficiently long passphrase"})).send().await.unwrap() }
    });
        let results = futures::future::join_all(accepts).await;
        let joined = results
            .iter()
            .filter(|r| r.status() == StatusCode::CREATED)
            .count();
        assert_eq!(joined, 16, "each invitation is used exactly once");
        let members = json_of(t.get(&t.org("/members?limit=200"), &t.owner_token).await).await;
        assert_eq!(members["items"].as_array().unwrap().len(), 20);
        assert_eq!(t.audit("action=member.added&limit=500").await.len(), 4 + 16);
        // The accepts filled no more seats: no more alerts.
        let mails = json_of(t.get(&t.org("/outbox?limit=200"), &t.owner_token).await).await;
        let alerts = mails["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "usage_alert")
            .count();
        assert_eq!(alerts, alerts_before);
        assert_eq!(t.audit("action=usage.alert_sent").await.len(), 2);
    }
);

async fn set_role(t: &TestApp, token: &str, user: &str, role: &str) -> reqwest::Response {
    t.patch(
        &t.org(&format!("/members/{user}")),
        token,
        &json!({ "role": role }),
    )
    .await
}

both_backends!(
    role_changes_apply_at_once_and_follow_the_rules,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let (lisa_id, mike_id) = (
            t.member_id("lisa@example.com").await,
            t.member_id("mike@example.com").await,
        );
        let owner_id = t.member_id(OWNER_EMAIL).await;
        problem(
            t.get(&t.org("/audit-events"), &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(
            set_role(&t, &mike, &lisa_id, "admin").await.status(),
            StatusCode::NO_CONTENT
        );
        json_of(t.get(&t.org("/audit-events"), &lisa).await).await;
        assert_eq!(
            set_role(&t, &t.owner_token, &lisa_id, "user")
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        problem(
            t.get(&t.org("/audit-events"), &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;

        let owner_target = problem(
            set_role(&t, &mike, &owner_id, "user").await,
            StatusCode::FORBIDDEN,
            "role_rule",
        )
        .await;
        assert_eq!(owner_target["reason"], "target_is_owner");
        let own = problem(
            set_role(&t, &mike, &mike_id, "user").await,
            StatusCode::FORBIDDEN,
            "role_rule",
        )
        .await;
        assert_eq!(own["reason"], "own_role");
        let to_owner = problem(
            set_role(&t, &t.owner_token, &lisa_id, "owner").await,
            StatusCode::FORBIDDEN,
            "role_rule",
        )
        .await;
        assert_eq!(to_owner["reason"], "owner_via_transfer_only");
        problem(
            set_role(&t, &lisa, &mike_id, "user").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        problem(
            set_role(&t, &t.owner_token, &lisa_id, "root").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        problem(
            set_role(
                &t,
                &t.owner_token,
                "usr_00000000000000000000000000000000",
                "admin",
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let changes = t.audit("action=member.role_changed").await;
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0]["metadata"],
            json!({"from": "admin", "to": "user"})
        );
    }
);

both_backends!(
    ownership_transfer_needs_both_parties_and_keeps_one_owner,
    |b| async move {
        let mut t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let url = t.org("/ownership-transfer");
        let confirm = t.org("/ownership-transfer/confirm");
        problem(
            t.post(
                &url,
                &mike,
                &json!({"to_user_id": lisa_id, "password": DEMO_PASSWORD}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        // Ownership is permanent: the Owner's session alone does not propose it.
        problem(
            t.post(
                &url,
                &t.owner_token,
                &json!({"to_user_id": lisa_id, "password": "not the password"}),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        problem(
            t.post(&url, &t.owner_token, &json!({"to_user_id": lisa_id}))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        let res = t
            .post(
                &url,
                &t.owner_token,
                &json!({"to_user_id": lisa_id, "password": OWNER_PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        problem(
            t.post(&confirm, &mike, &json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        // Lisa is told by mail, and both parties (no one else) see the proposal.
        let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
        assert!(
            outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["to"] == "lisa@example.com"
                    && m["kind"] == "ownership_transfer"
                    && m["subject"].as_str().unwrap().contains("Owner of")),
            "{outbox}"
        );
        for who in [&t.owner_token, &lisa] {
            let pending = json_of(t.get(&url, who).await).await;
            assert_eq!(pending["to_user_id"], lisa_id.as_str());
        }
        problem(t.get(&url, &mike).await, StatusCode::NOT_FOUND, "not_found").await;
        // Lisa confirms twice at once: exactly one succeeds.
        let empty = json!({});
        let (a, b2) = tokio::join!(
            t.post(&confirm, &lisa, &empty),
            t.post(&confirm, &lisa, &empty)
        );
        let statuses = [a.status(), b2.status()];
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "{statuses:?}"
        );
        let members = json_of(t.get(&t.org("/members"), &lisa).await).await;
        let owners: Vec<_> = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "owner")
            .map(|m| m["email"].clone())
            .collect();
        assert_eq!(owners, vec![json!("lisa@example.com")]);
        let old = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == OWNER_EMAIL)
            .unwrap();
        assert_eq!(old["role"], "admin");
        // The old Owner lost billing on the next request; Lisa has it.
        let billing = json_of(
            t.get(&t.org("/explain?permission=manage_billing"), &t.owner_token)
                .await,
        )
        .await;
        assert_eq!(billing["allowed"], false);
        let billing = json_of(
            t.get(&t.org("/explain?permission=manage_billing"), &lisa)
                .await,
        )
        .await;
        assert_eq!(billing["allowed"], true);
        // The Owner who proposed it is told it happened.
        let outbox = json_of(t.get(&t.org("/outbox"), &lisa).await).await;
        assert!(
            outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["to"] == OWNER_EMAIL
                    && m["subject"]
                        .as_str()
                        .unwrap()
                        .starts_with("You are no longer the Owner of")),
            "{outbox}"
        );
        t.owner_token = lisa.clone();
        assert_eq!(
            t.audit("action=ownership.transfer_proposed&outcome=success")
                .await
                .len(),
            1
        );
        // The wrong password's attempt is on the record too.
        assert_eq!(
            t.audit("action=ownership.transfer_proposed&outcome=failure")
                .await
                .len(),
            1
        );
        assert_eq!(t.audit("action=ownership.transferred").await.len(), 1);

        // An unconfirmed proposal expires.
        let sarah_id = t.member_id(OWNER_EMAIL).await;
        assert_eq!(
            t.post(
                &url,
                &lisa,
                &json!({"to_user_id": sarah_id, "password": DEMO_PASSWORD}),
            )
            .await
            .status(),
            StatusCode::CREATED
        );
        t.clock.advance(chrono::Duration::hours(72));
        let sarah = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        problem(
            t.post(&confirm, &sarah, &json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.get(&url, &sarah).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        // The Owner may withdraw a proposal before it is confirmed (nobody else may), and the
        // member it waited for is told.
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        t.owner_token = lisa.clone();
        assert_eq!(
            t.post(
                &url,
                &lisa,
                &json!({"to_user_id": sarah_id, "password": DEMO_PASSWORD}),
            )
            .await
            .status(),
            StatusCode::CREATED
        );
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        problem(
            t.delete(&url, &mike).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(t.delete(&url, &lisa).await.status(), StatusCode::NO_CONTENT);
        problem(
            t.delete(&url, &lisa).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.post(&confirm, &sarah, &json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.get(&url, &sarah).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let withdrawn = t.audit("action=ownership.transfer_withdrawn").await;
        assert_eq!(withdrawn.len(), 1);
        assert_eq!(withdrawn[0]["target_id"], sarah_id.as_str());
        let outbox = json_of(t.get(&t.org("/outbox"), &lisa).await).await;
        assert!(
            outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["to"] == OWNER_EMAIL
                    && m["subject"].as_str().unwrap().contains("withdrew")),
            "{outbox}"
        );

        // A proposal to someone else replaces the pending one: on the record, and the member
        // it waited for is told, as with a withdrawal.
        let mike_id = t.member_id("mike@example.com").await;
        for to in [&sarah_id, &mike_id] {
            assert_eq!(
                t.post(
                    &url,
                    &lisa,
                    &json!({"to_user_id": to, "password": DEMO_PASSWORD}),
                )
                .await
                .status(),
                StatusCode::CREATED
            );
        }
        let proposed = t
            .audit("action=ownership.transfer_proposed&outcome=success")
            .await;
        assert_eq!(proposed[0]["target_id"], mike_id.as_str());
        assert_eq!(proposed[0]["metadata"]["replaces"], sarah_id.as_str());
        assert!(proposed[1]["metadata"].get("replaces").is_none());
        let outbox = json_of(t.get(&t.org("/outbox"), &lisa).await).await;
        let told = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["to"] == OWNER_EMAIL && m["subject"].as_str().unwrap().contains("withdrew")
            })
            .count();
        assert_eq!(told, 2, "{outbox}");
    }
);

both_backends!(
    removal_revokes_access_keys_and_sessions_at_once,
    |b| async move {
        let t = spawn_app(b).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let key = t
            .post(&t.org("/api-keys"), &tom, &json!({"name": "Tom's key"}))
            .await
            .json::<Value>()
            .await
            .unwrap();
        let tom_key = key["secret"].as_str().unwrap().to_owned();
        let (tom_id, lisa_id) = (
            t.member_id("tom@example.com").await,
            t.member_id("lisa@example.com").await,
        );
        let owner_id = t.member_id(OWNER_EMAIL).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let mike_id = t.member_id("mike@example.com").await;
        let remove = |who: &str| t.org(&format!("/members/{who}/remove"));
        problem(
            t.post(&remove(&owner_id), &mike, &json!({"resources": "delete"}))
                .await,
            StatusCode::FORBIDDEN,
            "role_rule",
        )
        .await;
        problem(
            t.post(&remove(&mike_id), &mike, &json!({"resources": "delete"}))
                .await,
            StatusCode::FORBIDDEN,
            "role_rule",
        )
        .await;
        problem(
            t.post(
                &remove(&tom_id),
                &mike,
                &json!({"resources": "transfer", "transfer_to": tom_id}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        problem(
            t.post(&remove(&tom_id), &mike, &json!({"resources": "keep"}))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        let report = json_of(
            t.post(
                &remove(&tom_id),
                &mike,
                &json!({"resources": "transfer", "transfer_to": lisa_id}),
            )
            .await,
        )
        .await;
        assert_eq!(report["api_keys_deactivated"], 1);
        assert_eq!(report["sessions_ended"], 1);
        problem(
            t.get(&t.url("/api/v1/me"), &tom).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        problem(
            t.get(&t.url("/api/v1/me"), &tom_key).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        problem(
            t.post(&remove(&tom_id), &mike, &json!({"resources": "delete"}))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let removed = t.audit("action=member.removed").await;
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0]["target_id"], tom_id.as_str());
        // The session the removal ended is on the record, by the remover, in the same commit
        // (the next position after the removal's own record).
        let revoked = t.audit("action=auth.session_revoked").await;
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!(revoked[0]["target_id"], tom_id.as_str());
        assert_eq!(revoked[0]["actor_id"], removed[0]["actor_id"]);
        assert_eq!(revoked[0]["metadata"]["reason"], "member_removed");
        assert_eq!(
            revoked[0]["seq"].as_i64().unwrap(),
            removed[0]["seq"].as_i64().unwrap() + 1
        );
        // Tom's account still exists but belongs to no organization: he cannot get back in here.
        let again = t.login("tom@example.com", DEMO_PASSWORD).await;
        problem(
            t.get(&t.org("/members"), &again).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
);

async fn upload(t: &TestApp, csv: &[u8]) -> reqwest::Response {
    t.client
        .post(t.org("/invitations/bulk"))
        .bearer_auth(&t.owner_token)
        .header("content-type", "text/csv")
        .body(csv.to_vec())
        .send()
        .await
        .unwrap()
}

both_backends!(bulk_csv_preview_then_single_use_confirm, |b| async move {
    let t = spawn_app(b).await;
    invited(&t, "pending@company.com", "user").await;
    let csv = "\u{feff}Name,ROLE,Email\nJohn Smith,user,john@company.com\nSarah Johnson,admin,sarah@company.com\nMike Davis,user,mike@company.com\n\
               Bad,user,not-an-email\nBoss,owner,boss@company.com\nDup,user,JOHN@company.com\nLisa,user,lisa@example.com\nP,user,pending@company.com\nX,wizard,x@company.com\n";
    let preview = json_of(upload(&t, csv.as_bytes()).await).await;
    assert_eq!(preview["valid"], 3);
    assert_eq!(preview["invalid"], 6);
    assert_eq!(preview["fits_limit"], true);
    assert_eq!(preview["seats_available"], 20 - 4 - 1);
    let reasons: Vec<(u64, Value)> = preview["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, Value::Null),
            (3, Value::Null),
            (4, Value::Null),
            (5, json!("bad_email")),
            (6, json!("owner_not_allowed")),
            (7, json!("duplicate_in_file")),
            (8, json!("already_member")),
            (9, json!("already_invited")),
            (10, json!("unknown_role")),
        ]
    );
    // The preview has no side effects.
    assert_eq!(
        json_of(t.get(&t.org("/invitations"), &t.owner_token).await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let id = preview["preview_id"].as_str().unwrap();
    let confirm = t.org(&format!("/invitations/bulk/{id}/confirm"));
    let done = t.post(&confirm, &t.owner_token, &json!({})).await;
    assert_eq!(done.status(), StatusCode::CREATED);
    assert_eq!(done.json::<Value>().await.unwrap()["invited"], 3);
    problem(
        t.post(&confirm, &t.owner_token, &json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list = json_of(t.get(&t.org("/invitations"), &t.owner_token).await).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        4,
        "confirming twice adds nothing"
    );
    let mails = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
    assert_eq!(mails["items"].as_array().unwrap().len(), 4);
    assert_eq!(t.audit("action=member.invited").await.len(), 4);
});

both_backends!(bulk_csv_refusals_are_clear, |b| async move {
    let t = spawn_app(b).await;
    let p = problem(
        upload(&t, b"email,role\na@b.example,user\nc@d.ex\xffample,user\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("line 3"));
    problem(
        upload(&t, b"mail,role\nx,y\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    let many: String = std::iter::once("email,role\n".to_owned())
        .chain((0..10_001).map(|i| format!("u{i}@company.com,user\n")))
        .collect();
    let p = problem(
        upload(&t, many.as_bytes()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("10000"));
    let huge = vec![b'a'; 2 * 1024 * 1024];
    problem(
        upload(&t, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await;
    // More valid rows than seats: the preview says so and confirming is refused atomically.
    let over: String = std::iter::once("email,role\n".to_owned())
        .chain((0..17).map(|i| format!("u{i}@company.com,user\n")))
        .collect();
    let preview = json_of(upload(&t, over.as_bytes()).await).await;
    assert_eq!(preview["fits_limit"], false);
    let confirm = t.org(&format!(
        "/invitations/bulk/{}/confirm",
        preview["preview_id"].as_str().unwrap()
    ));
    problem(
        t.post(&confirm, &t.owner_token, &json!({})).await,
        StatusCode::FORBIDDEN,
        "limit_reached",
    )
    .await;
    assert!(
        json_of(t.get(&t.org("/invitations"), &t.owner_token).await).await["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing half-applied"
    );
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    let denied = t
        .client
        .post(t.org("/invitations/bulk"))
        .bearer_auth(&lisa)
        .body("email,role\n")
        .send()
        .await
        .unwrap();
    problem(denied, StatusCode::FORBIDDEN, "forbidden").await;
});

both_backends!(
    bulk_csv_rows_invite_into_the_team_they_name,
    |b| async move {
        // The guide's client onboarding ("Invite client stakeholders as Members" of the
        // client's team), for a whole sheet at once.
        let t = spawn_app(b).await;
        let owner = t.owner_token.clone();
        let mut ids = Vec::new();
        for name in ["Client A", "Client B", "Old client"] {
            let res = t
                .post(&t.org("/teams"), &owner, &json!({ "name": name }))
                .await;
            ids.push(json_of(res).await["id"].as_str().unwrap().to_owned());
        }
        let (client_a, client_b, old) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
        let res = t
            .patch(
                &t.org(&format!("/teams/{old}")),
                &owner,
                &json!({ "archived": true }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        // Another organization's team, by its id, is no team here.
        let (other, other_email) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        let other_token = t.login(&other_email, OWNER_PASSWORD).await;
        let theirs = json_of(
            t.get(&t.url(&format!("/api/v1/orgs/{other}/teams")), &other_token)
                .await,
        )
        .await["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let csv = format!(
            "email,role,name,team,team_role\n\
             ann@client-a.example,user,Ann Archer,client a,\n\
             bob@client-b.example,user,Bob Baker,{client_b},viewer\n\
             cid@acme.example,admin,Cid,,\n\
             dee@client-a.example,user,Dee,Client A,boss\n\
             eve@client-a.example,user,Eve,,admin\n\
             fay@client-x.example,user,Fay,Client X,\n\
             gus@old.example,user,Gus,Old client,member\n\
             hal@globex.example,user,Hal,{theirs},\n"
        );
        let preview = json_of(upload(&t, csv.as_bytes()).await).await;
        let rows: Vec<(Value, Value, Value, Value)> = preview["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["reason"].clone(),
                    r["team_id"].clone(),
                    r["team_name"].clone(),
                    r["team"].clone(),
                )
            })
            .collect();
        let none = Value::Null;
        assert_eq!(
            rows,
            vec![
                (
                    none.clone(),
                    json!(client_a),
                    json!("Client A"),
                    json!("client a")
                ),
                (
                    none.clone(),
                    json!(client_b),
                    json!("Client B"),
                    json!(client_b)
                ),
                (none.clone(), none.clone(), none.clone(), json!("")),
                (
                    json!("unknown_team_role"),
                    none.clone(),
                    none.clone(),
                    json!("Client A")
                ),
                (
                    json!("team_role_without_team"),
                    none.clone(),
                    none.clone(),
                    json!("")
                ),
                (
                    json!("unknown_team"),
                    none.clone(),
                    none.clone(),
                    json!("Client X")
                ),
                (
                    json!("archived_team"),
                    none.clone(),
                    none.clone(),
                    json!("Old client")
                ),
                (
                    json!("unknown_team"),
                    none.clone(),
                    none.clone(),
                    json!(theirs)
                ),
            ]
        );
        let id = preview["preview_id"].as_str().unwrap();
        let done = t
            .post(
                &t.org(&format!("/invitations/bulk/{id}/confirm")),
                &owner,
                &json!({}),
            )
            .await;
        assert_eq!(done.status(), StatusCode::CREATED);
        assert_eq!(json_of(done).await["invited"], 3);

        let listed = json_of(t.get(&t.org("/invitations"), &owner).await).await;
        let team_of = |email: &str| {
            let i = listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["email"] == email)
                .unwrap_or_else(|| panic!("{email} invited: {listed}"));
            (i["team_id"].clone(), i["team_role"].clone())
        };
        assert_eq!(
            team_of("ann@client-a.example"),
            (json!(client_a), json!("member"))
        );
        assert_eq!(
            team_of("bob@client-b.example"),
            (json!(client_b), json!("viewer"))
        );
        assert_eq!(team_of("cid@acme.example"), (Value::Null, Value::Null));
        let invited = t.audit("action=member.invited").await;
        let ann = invited
            .iter()
            .find(|r| r["target_name"] == "ann@client-a.example")
            .unwrap();
        assert_eq!(ann["metadata"]["team"]["name"], "Client A");
        assert_eq!(ann["metadata"]["team"]["role"], "member");

        // The mail greets Ann by the sheet's name and names her team; her link puts her there.
        let mails = json_of(t.get(&t.org("/outbox"), &owner).await).await;
        let body = mails["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"] == "ann@client-a.example")
            .unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(body.starts_with("Hello Ann Archer,\n"), "{body}");
        assert!(
            body.contains("to join Acme Corp as user, in the team Client A as member."),
            "{body}"
        );
        let res = signup(
            &t,
            &token_in(&body),
            "Ann Archer",
            "a sufficiently long passphrase",
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let ann = t
            .login("ann@client-a.example", "a sufficiently long passphrase")
            .await;
        let teams = json_of(t.get(&t.org("/teams"), &ann).await).await;
        let names: Vec<&str> = teams["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["Client A"]);

        // A team archived between the preview and the confirmation: nothing is sent.
        let csv = "email,role,team\nhal@client-b.example,user,Client B\nivy@acme.example,user,\n";
        let preview = json_of(upload(&t, csv.as_bytes()).await).await;
        assert_eq!(preview["valid"], 2);
        let res = t
            .patch(
                &t.org(&format!("/teams/{client_b}")),
                &owner,
                &json!({ "archived": true }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let refused = problem(
            t.post(
                &t.org(&format!(
                    "/invitations/bulk/{}/confirm",
                    preview["preview_id"].as_str().unwrap()
                )),
                &owner,
                &json!({}),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("upload the file again"),
            "{refused}"
        );
        let listed = json_of(t.get(&t.org("/invitations"), &owner).await).await;
        assert!(
            !listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["email"] == "ivy@acme.example"),
            "nothing half-applied: {listed}"
        );
    }
);

both_backends!(
    an_invitation_into_a_client_team_joins_that_team_alone,
    |b| async move {
        // The guide's client separation: "Client Stakeholders | Member (their team only)".
        let t = spawn_app(b).await;
        let owner = t.owner_token.clone();
        let new_team = |name: &'static str| {
            let t = &t;
            let owner = owner.clone();
            async move {
                json_of(
                    t.post(&t.org("/teams"), &owner, &json!({ "name": name }))
                        .await,
                )
                .await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let client_a = new_team("Client A").await;
        let bot = t
            .post(
                &t.org("/chat-interfaces"),
                &owner,
                &json!({ "name": "Acme support bot", "team_id": client_a }),
            )
            .await;
        assert_eq!(bot.status(), StatusCode::CREATED);

        // Bad requests name the field; another organization's or an unknown team is not found.
        problem(
            t.post(
                &t.org("/invitations"),
                &owner,
                &json!({ "email": "x@client.example", "role": "user", "team_role": "viewer" }),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        problem(
            t.post(
                &t.org("/invitations"),
                &owner,
                &json!({ "email": "x@client.example", "role": "user", "team_id": client_a, "team_role": "boss" }),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        problem(
            t.post(
                &t.org("/invitations"),
                &owner,
                &json!({ "email": "x@client.example", "role": "user", "team_id": format!("team_{}", uuid::Uuid::new_v4().simple()) }),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        let res = t
            .post(
                &t.org("/invitations"),
                &owner,
                &json!({ "email": "stakeholder@client.example", "role": "user", "team_id": client_a, "team_role": "viewer" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let inv: Value = res.json().await.unwrap();
        assert_eq!(inv["team_id"], client_a.as_str());
        assert_eq!(inv["team_role"], "viewer");
        let listed = json_of(t.get(&t.org("/invitations"), &owner).await).await;
        assert_eq!(listed["items"][0]["team_id"], client_a.as_str());

        let mails = json_of(t.get(&t.org("/outbox"), &owner).await).await;
        let body = mails["items"][0]["body"].as_str().unwrap().to_owned();
        assert!(
            body.contains("to join Acme Corp as user, in the team Client A as viewer."),
            "{body}"
        );
        let token = token_in(&body);
        let page = json_of(lookup(&t, &token).await).await;
        assert_eq!(page["team"], "Client A");
        assert_eq!(page["team_role"], "viewer");
        let res = signup(
            &t,
            &token,
            "Stella Stakeholder",
            "a sufficiently long passphrase",
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let stella = t
            .login(
                "stakeholder@client.example",
                "a sufficiently long passphrase",
            )
            .await;

        // Only their team: its bot, not the default team's "Customer Support".
        let teams = json_of(t.get(&t.org("/teams"), &stella).await).await;
        let names: Vec<&str> = teams["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["Client A"]);
        let bots = json_of(t.get(&t.org("/chat-interfaces"), &stella).await).await;
        let bot_names: Vec<&str> = bots["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(bot_names, vec!["Acme support bot"]);
        // A viewer creates nothing there.
        let res = t
            .post(
                &t.org("/chat-interfaces"),
                &stella,
                &json!({ "name": "mine", "team_id": client_a }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let joined = t.audit("action=member.added").await;
        assert_eq!(joined[0]["metadata"]["team"], client_a.as_str());

        // The team goes before the next invitee signs up: refused, and nobody joins.
        let client_b = new_team("Client B").await;
        let res = t
            .post(
                &t.org("/invitations"),
                &owner,
                &json!({ "email": "late@client.example", "role": "user", "team_id": client_b }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let inv: Value = res.json().await.unwrap();
        assert_eq!(inv["team_role"], "member", "the default team role");
        let token = outbox_token(&t, "late@client.example").await;
        // Archived meanwhile: nobody joins it, and the invitation stays open.
        let res = t
            .patch(
                &t.org(&format!("/teams/{client_b}")),
                &owner,
                &json!({ "archived": true }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let refused = problem(
            signup(&t, &token, "Late Comer", "a sufficiently long passphrase").await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains("is archived"),
            "{refused}"
        );
        // Deleted: the invitation is revoked with the team and holds no seat.
        let res = t
            .delete(&t.org(&format!("/teams/{client_b}")), &owner)
            .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        problem(
            signup(&t, &token, "Late Comer", "a sufficiently long passphrase").await,
            StatusCode::GONE,
            "invitation_revoked",
        )
        .await;
        assert_eq!(
            t.login_response("late@client.example", "a sufficiently long passphrase")
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "no account was created"
        );
    }
);

both_backends!(
    a_member_leaves_and_what_they_built_stays_with_the_owner,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let owner_id = t.member_id(OWNER_EMAIL).await;
        let bot = json_of(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Lisa's onboarding bot" }),
            )
            .await,
        )
        .await;
        let key = json_of(
            t.post(&t.org("/api-keys"), &lisa, &json!({"name": "Lisa's key"}))
                .await,
        )
        .await;
        let lisa_key = key["secret"].as_str().unwrap().to_owned();

        // Not through an API key; the Owner hands over ownership first.
        problem(
            t.post(&t.org("/leave"), &lisa_key, &json!({})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let refused = problem(
            t.post(&t.org("/leave"), &t.owner_token, &json!({})).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("transfer ownership"),
            "{refused}"
        );

        let is_member = |members: &Value| {
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["user_id"] == lisa_id.as_str())
        };
        assert!(is_member(
            &json_of(t.get(&t.org("/members"), &t.owner_token).await).await
        ));
        let report = json_of(t.post(&t.org("/leave"), &lisa, &json!({})).await).await;
        assert_eq!(report["api_keys_deactivated"], 1);
        assert_eq!(report["sessions_ended"], 1, "her only organization");
        assert!(report["transferred"].as_u64().unwrap() >= 1, "{report}");
        problem(
            t.get(&t.url("/api/v1/me"), &lisa).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        // The bot stays, now the Owner's.
        let kept = json_of(
            t.get(
                &t.org(&format!("/chat-interfaces/{}", bot["id"].as_str().unwrap())),
                &t.owner_token,
            )
            .await,
        )
        .await;
        assert_eq!(kept["created_by"], owner_id.as_str());
        let members = json_of(t.get(&t.org("/members"), &t.owner_token).await).await;
        assert!(!is_member(&members), "{members}");
        let left = t.audit("action=member.left").await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["actor_id"], lisa_id.as_str());
        assert_eq!(left[0]["target_id"], t.org_id.as_str());
        assert_eq!(
            left[0]["metadata"]["resources"]["transfer_to"],
            owner_id.as_str()
        );
    }
);

both_backends!(
    team_membership_changes_are_audited_as_what_they_are,
    |b| async move {
        let t = spawn_app(b).await;
        let res = t
            .post(
                &t.org("/teams"),
                &t.owner_token,
                &json!({ "name": "Sales" }),
            )
            .await;
        let sales = json_of(res).await["id"].as_str().unwrap().to_owned();
        let tom_id = t.member_id("tom@example.com").await;
        let url = t.org(&format!("/teams/{sales}/members/{tom_id}"));
        for role in ["member", "admin"] {
            let res = t.put(&url, &t.owner_token, &json!({ "role": role })).await;
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
        }
        assert_eq!(
            t.delete(&url, &t.owner_token).await.status(),
            StatusCode::NO_CONTENT
        );
        let one = |action: &'static str| {
            let t = &t;
            async move {
                let found = t.audit(&format!("action={action}")).await;
                assert_eq!(found.len(), 1, "{action}: {found:#?}");
                found[0].clone()
            }
        };
        let added = one("team.member_added").await;
        let changed = one("team.member_role_changed").await;
        let removed = one("team.member_removed").await;
        for (r, text, role, before) in [
            (
                &added,
                "Added \"Tom\" to team \"Sales\" as member",
                json!("member"),
                Value::Null,
            ),
            (
                &changed,
                "Made \"Tom\" admin in team \"Sales\"",
                json!("admin"),
                json!("member"),
            ),
            (
                &removed,
                "Took \"Tom\" out of team \"Sales\"",
                Value::Null,
                json!("admin"),
            ),
        ] {
            assert_eq!(r["team_id"], sales.as_str());
            assert_eq!(r["target_id"], tom_id.as_str());
            assert!(r["text"].as_str().unwrap().ends_with(text), "{r}");
            assert_eq!(r["metadata"]["team_role"], role, "{r}");
            assert_eq!(r["metadata"]["previous_team_role"], before, "{r}");
        }
        // A prefix finds the three together.
        assert_eq!(t.audit("action=team.member*").await.len(), 3);
    }
);

both_backends!(
    members_rename_themselves_everywhere_and_it_is_recorded_and_sent,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": ["user.updated"] }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let me = json_of(
            t.patch(
                &t.url("/api/v1/me"),
                &lisa,
                &json!({ "name": "  Lisa Lindqvist " }),
            )
            .await,
        )
        .await;
        assert_eq!(me["name"], "Lisa Lindqvist");
        assert_eq!(me["id"], lisa_id.as_str());
        let members = json_of(t.get(&t.org("/members"), &t.owner_token).await).await;
        assert!(
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["user_id"] == lisa_id.as_str() && m["name"] == "Lisa Lindqvist"),
            "{members}"
        );
        let updated = t.audit("action=member.updated").await;
        assert_eq!(updated.len(), 1);
        assert_eq!(updated[0]["actor_id"], lisa_id.as_str());
        assert_eq!(updated[0]["metadata"]["via"], "self");
        // Refused: a bad name, and an API key (it acts for its creator, it is not them).
        problem(
            t.patch(&t.url("/api/v1/me"), &lisa, &json!({ "name": " \n " }))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let key = json_of(
            t.post(&t.org("/api-keys"), &lisa, &json!({ "name": "mine" }))
                .await,
        )
        .await;
        problem(
            t.patch(
                &t.url("/api/v1/me"),
                key["secret"].as_str().unwrap(),
                &json!({ "name": "Not Lisa" }),
            )
            .await,
            StatusCode::FORBIDDEN,
            "interactive_only",
        )
        .await;
        assert_eq!(t.audit("action=member.updated").await.len(), 1);
        // The organization's integrations hear of it, in the published shape.
        let types = json_of(
            t.get(&t.url("/api/v1/webhooks/event-types"), &t.owner_token)
                .await,
        )
        .await;
        let schema = types
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "user.updated")
            .unwrap()["schema"]
            .clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let body = loop {
            if let Some(r) = rx.received().first() {
                break serde_json::from_str::<Value>(&r.body).unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no user.updated delivered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        crate::webhooks::assert_valid(&schema, &body);
        assert_eq!(body["data"]["userId"], lisa_id.as_str());
        assert_eq!(body["data"]["via"], "self");
        assert_eq!(body["data"]["changed"], json!(["name"]));
    }
);

both_backends!(
    the_owner_deletes_the_organization_and_nothing_of_it_answers,
    |b| async move {
        let sink = SmtpSink::start().await;
        let t = spawn_app_mailing_to(b, &sink).await;
        let name = json_of(t.get(&t.org(""), &t.owner_token).await).await["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let key = t
            .post(
                &t.org("/api-keys"),
                &t.owner_token,
                &json!({ "name": "ci" }),
            )
            .await;
        assert_eq!(key.status(), StatusCode::CREATED);
        let key = json_of(key).await["secret"].as_str().unwrap().to_owned();
        let (other_org, other_email) =
            crate::api_keys::second_org(&t, billing_limits::Plan::Pro).await;
        // A document, whose bytes are stored outside the database.
        let doc = t.new_document(&t.owner_token).await;
        let blob = t.data_dir().join("blobs").join(&doc);
        assert!(blob.exists(), "{}", blob.display());
        let other = t.login(&other_email, OWNER_PASSWORD).await;
        let delete = |token: String, confirm: &str, password: &str| {
            let t = &t;
            let body = json!({ "confirm_name": confirm, "password": password });
            async move { t.post(&t.org("/delete"), &token, &body).await }
        };
        // Not an Admin, not an API key (even the Owner's), not another organization's Owner.
        problem(
            delete(mike.clone(), &name, DEMO_PASSWORD).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        problem(
            delete(key.clone(), &name, OWNER_PASSWORD).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(
            delete(other.clone(), &name, OWNER_PASSWORD).await.status(),
            StatusCode::NOT_FOUND
        );
        // The name must be typed as it is, and the password must be the Owner's.
        problem(
            delete(t.owner_token.clone(), &name.to_uppercase(), OWNER_PASSWORD).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let wrong = delete(t.owner_token.clone(), &name, "not the password").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let refused = t.audit("action=org.deleted").await;
        assert_eq!(
            refused.len(),
            1,
            "the failed confirmation is recorded: {refused:?}"
        );
        assert_eq!(
            t.get(&t.org(""), &t.owner_token).await.status(),
            StatusCode::OK
        );

        let res = delete(t.owner_token.clone(), &name, OWNER_PASSWORD).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        // Nothing of it answers any more, to anyone.
        for token in [&t.owner_token, &mike] {
            assert_eq!(
                t.get(&t.org("/members"), token).await.status(),
                StatusCode::NOT_FOUND
            );
        }
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &key).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let me = json_of(t.get(&t.url("/api/v1/me"), &mike).await).await;
        assert!(
            me["memberships"].as_array().unwrap().is_empty(),
            "accounts stay, without it: {me}"
        );
        // The Owner and the Admins are told.
        let subject = format!("Subject: {name} was deleted");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        for to in [OWNER_EMAIL, "mike@example.com"] {
            loop {
                let told = sink.messages().iter().any(|m| {
                    m.contains(&subject)
                        && m.lines()
                            .any(|l| l.to_lowercase().starts_with("to:") && l.contains(to))
                });
                if told {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "no notice to {to}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        assert!(!blob.exists(), "the document's bytes are gone too");
        // Another organization is untouched.
        let still = t
            .get(&t.url(&format!("/api/v1/orgs/{other_org}/members")), &other)
            .await;
        assert_eq!(still.status(), StatusCode::OK);
        assert_eq!(
            delete(t.owner_token.clone(), &name, OWNER_PASSWORD)
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }
);

both_backends!(
    an_invitation_to_an_archived_team_is_not_sent_again,
    |b| async move {
        let t = spawn_app(b).await;
        let team = json_of(
            t.post(
                &t.org("/teams"),
                &t.owner_token,
                &json!({ "name": "Pilot" }),
            )
            .await,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let inv = json_of(
            t.post(
                &t.org("/invitations"),
                &t.owner_token,
                &json!({ "email": "pat@client.example", "role": "user", "team_id": team }),
            )
            .await,
        )
        .await;
        let id = inv["id"].as_str().unwrap();
        let res = t
            .patch(
                &t.org(&format!("/teams/{team}")),
                &t.owner_token,
                &json!({ "archived": true }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let mails = |t: &TestApp| {
            let store = t.store.clone();
            async move {
                audit::MailOutbox::list_mails(&*store, Some(org), None, 100)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|m| m.to == "pat@client.example")
                    .count()
            }
        };
        let before = mails(&t).await;
        assert_eq!(before, 1, "the invitation's mail");
        // Its link could not be used (accepting refuses an archived team): no new one goes out.
        problem(
            t.post(
                &t.org(&format!("/invitations/{id}/resend")),
                &t.owner_token,
                &json!({}),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert_eq!(mails(&t).await, before);
    }
);

both_backends!(
    invitations_revoked_with_their_team_or_sender_send_no_mail,
    |b| async move {
        let t = spawn_app(b).await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let unsent_to = |t: &TestApp, to: &'static str| {
            let store = t.store.clone();
            async move {
                audit::MailOutbox::list_mails(&*store, Some(org), None, 100)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|m| m.to == to && m.sent_at.is_none())
                    .count()
            }
        };
        // An invitation into a team, its mail waiting (no SMTP here); the team is deleted.
        let team = json_of(
            t.post(
                &t.org("/teams"),
                &t.owner_token,
                &json!({ "name": "Pilot" }),
            )
            .await,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = t
            .post(
                &t.org("/invitations"),
                &t.owner_token,
                &json!({ "email": "pat@client.example", "role": "user", "team_id": team }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(unsent_to(&t, "pat@client.example").await, 1);
        let res = t
            .delete(&t.org(&format!("/teams/{team}")), &t.owner_token)
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        assert_eq!(
            unsent_to(&t, "pat@client.example").await,
            0,
            "its dead link is not sent"
        );
        // An Admin's invitation, its mail waiting; the Admin is made a User.
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let mike_id = t.member_id("mike@example.com").await;
        let res = t
            .post(
                &t.org("/invitations"),
                &mike,
                &json!({ "email": "sam@client.example", "role": "user" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(unsent_to(&t, "sam@client.example").await, 1);
        let res = t
            .patch(
                &t.org(&format!("/members/{mike_id}")),
                &t.owner_token,
                &json!({ "role": "user" }),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        assert_eq!(unsent_to(&t, "sam@client.example").await, 0);
    }
);
