//! GDPR over HTTP: consent records, personal-data export, and erasure that keeps the audit
//! chain verifying.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(consents_are_recorded_and_listed, |b| async move {
    let t = spawn_app(b).await;
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    for granted in [true, false] {
        let c = json_of(
            t.put(
                &t.org("/consents/marketing_email"),
                &lisa,
                &json!({"granted": granted}),
            )
            .await,
        )
        .await;
        assert_eq!(
            (c["purpose"].as_str(), c["granted"].as_bool()),
            (Some("marketing_email"), Some(granted))
        );
    }
    problem(
        t.put(
            &t.org("/consents/Not%20A%20Slug"),
            &lisa,
            &json!({"granted": true}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    // Restating the current decision answers with it and records nothing.
    let restated = json_of(
        t.put(
            &t.org("/consents/marketing_email"),
            &lisa,
            &json!({"granted": false}),
        )
        .await,
    )
    .await;
    let own = json_of(t.get(&t.org("/consents"), &lisa).await).await;
    let items = own["items"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .map(|c| c["granted"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        vec![true, false]
    );
    assert_eq!(restated["id"], items[1]["id"]);
    assert!(own.get("next_cursor").is_none(), "{own}");
    // Pages: one decision each, the cursor leading from the first to the second.
    let first = json_of(t.get(&t.org("/consents?limit=1"), &lisa).await).await;
    assert_eq!(first["items"][0]["id"], items[0]["id"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = json_of(
        t.get(&t.org(&format!("/consents?limit=1&cursor={cursor}")), &lisa)
            .await,
    )
    .await;
    assert_eq!(second["items"][0]["id"], items[1]["id"]);
    problem(
        t.get(&t.org("/consents?limit=0"), &lisa).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    // A User sees only their own; the Owner sees everyone's.
    assert_eq!(
        t.get(&t.org("/consents?user_id=all"), &lisa).await.status(),
        StatusCode::FORBIDDEN
    );
    // A key of hers (handed to a script or a client) is not her: it reads no consents.
    let key = json_of(
        t.post(
            &t.org("/api-keys"),
            &lisa,
            &json!({"name": "Lisa's script"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        t.get(&t.org("/consents"), key["secret"].as_str().unwrap())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let all = json_of(t.get(&t.org("/consents?user_id=all"), &t.owner_token).await).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let granted = t.audit("action=privacy.consent_granted").await;
    let withdrawn = t.audit("action=privacy.consent_withdrawn").await;
    assert_eq!((granted.len(), withdrawn.len()), (1, 1));
    assert_eq!(
        withdrawn[0]["metadata"],
        json!({"purpose": "marketing_email", "granted": false})
    );
    assert!(
        withdrawn[0]["text"]
            .as_str()
            .unwrap()
            .ends_with("| Withdrew consent to \"marketing_email\""),
        "{}",
        withdrawn[0]["text"]
    );
    assert_eq!(t.audit("action=privacy.consent*").await.len(), 2);
});

both_backends!(
    personal_data_exports_and_erasure_keeps_the_chain,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        t.put(
            &t.org("/consents/product_analytics"),
            &lisa,
            &json!({"granted": true}),
        )
        .await;
        let path = format!("/members/{lisa_id}/personal-data");
        // She acts through a key of hers; the Owner acts on her (promoted, then back).
        let res = t
            .post(
                &t.org("/api-keys"),
                &lisa,
                &json!({"name": "Lisa's script"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let key = json_of(res).await;
        let secret = key["secret"].as_str().unwrap();
        assert_eq!(
            t.get(&t.org("/analytics"), secret).await.status(),
            StatusCode::OK
        );
        for role in ["admin", "user"] {
            let res = t
                .patch(
                    &t.org(&format!("/members/{lisa_id}")),
                    &t.owner_token,
                    &json!({ "role": role }),
                )
                .await;
            assert!(res.status().is_success(), "{}", res.status());
        }

        // Her own export: account, membership, consents, her audit records, and her sessions.
        let res = t.get(&t.org(&path), &lisa).await;
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
        assert!(
            res.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("attachment")
        );
        let own = json_of(res).await;
        assert_eq!(own["account"]["email"], "lisa@example.com");
        assert_eq!(own["membership"]["role"], "user");
        assert_eq!(own["consents"][0]["purpose"], "product_analytics");
        assert_eq!(
            own["invitations_accepted"],
            json!([]),
            "Lisa was added directly, not invited"
        );
        assert!(
            own["audit_records"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "auth.login")
        );
        assert!(!own["sessions"].as_array().unwrap().is_empty());
        assert_eq!(own["second_factor"], Value::Null, "no second factor set up");
        // What she did through her key is hers, with its address; where the Owner acted on
        // her, the record is there without the Owner's address and browser.
        let records = own["audit_records"].as_array().unwrap();
        let viewed = records
            .iter()
            .find(|r| r["action"] == "analytics.viewed")
            .expect("the key's action");
        assert_eq!(viewed["ip"], "127.0.0.1", "{viewed}");
        let changes: Vec<&Value> = records
            .iter()
            .filter(|r| r["action"] == "member.role_changed")
            .collect();
        assert_eq!(changes.len(), 2, "{records:?}");
        for r in changes {
            assert!(r["ip"].is_null() && r["user_agent"].is_null(), "{r}");
        }
        // The Owner's export of her has no sessions (they span organizations); a User may not export hers.
        let by_owner = json_of(t.get(&t.org(&path), &t.owner_token).await).await;
        assert!(by_owner.get("sessions").is_none());
        assert!(by_owner.get("second_factor").is_none());
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        assert_eq!(
            t.get(&t.org(&path), &tom).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(t.audit("action=privacy.personal_data").await.len(), 2);

        // Erasure: removed, her annotations blanked, account anonymized, chain intact.
        let report = json_of(
            t.post(
                &t.org(&format!("/members/{lisa_id}/erasure")),
                &t.owner_token,
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(report["account_anonymized"], true);
        assert!(
            report["audit_records_erased"].as_u64().unwrap() >= 2,
            "{report}"
        );
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &lisa).await.status(),
            StatusCode::UNAUTHORIZED
        );
        problem(
            t.login_response("lisa@example.com", DEMO_PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        let hers = t.audit(&format!("actor_id={lisa_id}")).await;
        assert!(!hers.is_empty());
        for r in &hers {
            assert_eq!(r["actor_name"], "[erased]", "{r}");
            assert_eq!(r["ip"], "");
            assert!(!r["text"].as_str().unwrap().contains("Lisa"), "{r}");
        }
        let about: Vec<Value> = t
            .audit(&format!("target_type=member&target_id={lisa_id}"))
            .await;
        assert!(
            about.iter().all(|r| r["target_name"] == "[erased]"),
            "{about:?}"
        );
        let verified = json_of(
            t.client
                .post(t.org("/audit-events/verify"))
                .bearer_auth(&t.owner_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(verified["valid"], true, "{verified}");
        // Her export now holds what the organization still has: records naming her by id
        // alone, nothing of her name or address.
        let after = json_of(t.get(&t.org(&path), &t.owner_token).await).await;
        assert_eq!(after["membership"], Value::Null, "{after}");
        let text = after.to_string();
        assert!(
            !text.contains("Lisa") && !text.contains("lisa@example.com"),
            "{text}"
        );

        // Never the Owner.
        let owner_id = t.member_id(OWNER_EMAIL).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        assert_eq!(
            t.post(
                &t.org(&format!("/members/{owner_id}/erasure")),
                &mike,
                &json!({})
            )
            .await
            .status(),
            StatusCode::FORBIDDEN
        );
    }
);

both_backends!(
    a_member_asks_to_be_forgotten_and_the_chain_still_verifies,
    |b| async move {
        use crate::team_management::{invited, outbox_token};
        let t = spawn_app(b).await;
        // Every event goes to a webhook receiver, so deliveries keep what they carried.
        let rx = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "description": "all events", "events": [] }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        // And a Slack-style message naming whoever created a chat interface.
        let slack = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": slack.url, "events": ["chat_interface.created"],
                         "message": "New chat interface by {{user}}: {{name}}" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        // Ivy joins through an invitation, then invites a guest herself.
        invited(&t, "ivy@example.org", "admin").await;
        let token = outbox_token(&t, "ivy@example.org").await;
        let res = t
            .client
            .post(t.url("/api/v1/invitations/signup"))
            .json(&json!({"token": token, "name": "Ivy Quill", "password": "a sufficiently long passphrase"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let ivy = t
            .login("ivy@example.org", "a sufficiently long passphrase")
            .await;
        let ivy_id = t.member_id("ivy@example.org").await;
        let owner_id = t.member_id(OWNER_EMAIL).await;
        // Her export lists the mail the organization sent her (her invitation), without its
        // body, which held her link.
        let doc = json_of(
            t.get(&t.org(&format!("/members/{ivy_id}/personal-data")), &ivy)
                .await,
        )
        .await;
        let mail = doc["mail"].as_array().unwrap();
        assert!(
            mail.iter()
                .any(|m| m["to"] == "ivy@example.org" && m["kind"] == "invitation"),
            "{doc}"
        );
        assert!(mail.iter().all(|m| m.get("body").is_none()));
        assert_eq!(doc["mail_truncated"], false);
        let res = t
            .post(
                &t.org("/invitations"),
                &ivy,
                &json!({"email": "guest@example.org", "role": "user"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let bot = json_of(
            t.post(
                &t.org("/chat-interfaces"),
                &ivy,
                &json!({ "name": "Onboarding helper" }),
            )
            .await,
        )
        .await;
        let key = json_of(
            t.post(&t.org("/api-keys"), &ivy, &json!({"name": "Ivy's key"}))
                .await,
        )
        .await;
        let before = t.audit(&format!("actor_id={ivy_id}")).await;
        assert!(
            before.iter().any(|r| r["actor_name"] == "Ivy Quill"),
            "{before:?}"
        );
        let outbox =
            serde_json::to_string(&json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await)
                .unwrap();
        assert!(outbox.contains("ivy@example.org") && outbox.contains("Ivy Quill"));
        // Webhook bodies name her: her email when she joined, her name on her chat interface.
        let sent = rx.wait_for(3, 10).await;
        assert!(
            sent.iter().any(|r| r.body.contains("\"ivy@example.org\""))
                && sent
                    .iter()
                    .any(|r| r.body.contains("\"byName\":\"Ivy Quill\"")),
            "{sent:?}"
        );
        let message = slack.wait_for(1, 10).await;
        assert!(
            message[0]
                .body
                .contains("New chat interface by Ivy Quill: Onboarding helper"),
            "{message:?}"
        );
        // A reset link she asked for waits in the account mail (no SMTP here).
        let res = t
            .client
            .post(t.url("/api/v1/auth/password-reset"))
            .json(&json!({"email": "ivy@example.org"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let account_mail_to_her = |t: &TestApp| {
            let store = t.store.clone();
            async move {
                audit::MailOutbox::list_mails(&*store, None, None, 100)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|m| m.to == "ivy@example.org")
                    .count()
            }
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while account_mail_to_her(&t).await == 0 {
            assert!(std::time::Instant::now() < deadline, "no reset mail queued");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let reset_mail = audit::MailOutbox::list_mails(&*t.store, None, None, 10)
            .await
            .unwrap()
            .remove(0);
        // She renames herself: the events made before keep the name she had then.
        let res = t
            .patch(
                &t.url("/api/v1/me"),
                &ivy,
                &json!({ "name": "Ivy Renamed" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        // Queued, the mail holds the token sealed; the server's key opens it.
        assert!(!reset_mail.body.contains("axr_"), "{}", reset_mail.body);
        let cipher = axie_server::startup::encryption_key(&t.settings).unwrap();
        let body =
            tenancy::mail_secrets::open_body(&cipher, &reset_mail.to, &reset_mail.body).unwrap();
        let start = body.find("axr_").expect("a reset token");
        let reset_token = body[start..start + 4 + 64].to_owned();
        let stored_naming_her = |t: &TestApp| {
            let store = t.store.clone();
            async move {
                let mut n = 0;
                for (table, column) in
                    [("webhook_deliveries", "payload"), ("outbox_events", "data")]
                {
                    for needle in ["ivy@example.org", "Ivy Quill", "Ivy Renamed"] {
                        // A no-op update counts the rows that match, on both databases.
                        n += store
                            .execute_sql(&format!(
                                "UPDATE {table} SET {column} = {column} WHERE {column} LIKE '%{needle}%'"
                            ))
                            .await
                            .unwrap();
                    }
                }
                n
            }
        };
        assert!(stored_naming_her(&t).await >= 4);
        // A receiver that echoed what it got, and a mail server's answer quoting her address:
        // written into the rows as they would be.
        let echoed = t
            .store
            .execute_sql(
                "UPDATE webhook_attempts SET response_body = 'got ivy@example.org', \
                 error = '500: ivy@example.org' WHERE delivery_id IN \
                 (SELECT id FROM webhook_deliveries WHERE payload LIKE '%ivy@example.org%')",
            )
            .await
            .unwrap();
        assert!(echoed > 0, "her events were delivered");
        let quoted = t
            .store
            .execute_sql(
                "UPDATE mail_outbox SET last_error = '450 <ivy@example.org>: greylisted' \
                 WHERE to_addr = 'ivy@example.org'",
            )
            .await
            .unwrap();
        assert!(quoted > 0, "mail to her is kept");
        let answers_naming_her = |t: &TestApp| {
            let store = t.store.clone();
            async move {
                store
                    .execute_sql(
                        "UPDATE webhook_attempts SET number = number WHERE \
                         response_body LIKE '%ivy@example.org%' OR error LIKE '%ivy@example.org%'",
                    )
                    .await
                    .unwrap()
                    + store
                        .execute_sql(
                            "UPDATE mail_outbox SET attempts = attempts WHERE \
                             last_error LIKE '%ivy@example.org%'",
                        )
                        .await
                        .unwrap()
            }
        };
        assert_eq!(answers_naming_her(&t).await, echoed + quoted);

        // Not through an API key; never the Owner; not without her password.
        let confirm = json!({"password": "a sufficiently long passphrase"});
        problem(
            t.post(
                &t.org("/erasure"),
                key["secret"].as_str().unwrap(),
                &confirm,
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        problem(
            t.post(
                &t.org("/erasure"),
                &t.owner_token,
                &json!({"password": DEMO_PASSWORD}),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert_eq!(
            t.post(&t.org("/erasure"), &ivy, &json!({})).await.status(),
            StatusCode::BAD_REQUEST
        );
        problem(
            t.post(
                &t.org("/erasure"),
                &ivy,
                &json!({"password": "not her passphrase"}),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        let refused = t
            .audit(&format!(
                "action=privacy.personal_data&actor_id={ivy_id}&outcome=failure"
            ))
            .await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["outcome"], "failure", "{refused:?}");
        assert_eq!(
            t.get(&t.url("/api/v1/me"), &ivy).await.status(),
            StatusCode::OK,
            "a wrong password erases nothing"
        );

        let report = json_of(t.post(&t.org("/erasure"), &ivy, &confirm).await).await;
        assert_eq!(report["account_anonymized"], true, "{report}");
        assert!(
            report["event_bodies_erased"].as_u64().unwrap() >= 2,
            "{report}"
        );
        assert_eq!(
            stored_naming_her(&t).await,
            0,
            "no stored event body names her"
        );
        assert_eq!(
            answers_naming_her(&t).await,
            0,
            "nor a receiver's or a mail server's answer"
        );
        assert!(
            audit::MailOutbox::list_mails(&*t.store, None, None, 10)
                .await
                .unwrap()
                .is_empty(),
            "her reset mail is gone, not merely readdressed"
        );
        let res = t
            .client
            .post(t.url("/api/v1/auth/password-reset/confirm"))
            .json(
                &json!({"token": reset_token, "new_password": "a sufficiently long passphrase 2"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "her reset link died with the account"
        );
        assert_eq!(report["api_keys_deactivated"], 1);
        assert!(report["resources_transferred"].as_u64().unwrap() >= 1);
        problem(
            t.login_response("ivy@example.org", "a sufficiently long passphrase")
                .await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;

        // Every record of hers, the request's own included, names her by id only.
        let hers = t.audit(&format!("actor_id={ivy_id}")).await;
        assert!(hers.len() > before.len(), "the request is recorded");
        for r in &hers {
            assert_eq!(r["actor_name"], "[erased]", "{r}");
            assert_eq!(r["ip"], "", "{r}");
            assert_eq!(r["user_agent"], "", "{r}");
        }
        let left = t.audit("action=member.left").await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["metadata"]["erasure"], true);
        // Her sessions (addresses, browsers) are gone with her account, not only ended.
        assert_eq!(
            t.store
                .execute_sql(&format!(
                    "UPDATE sessions SET ip = ip WHERE user_id = '{ivy_id}'"
                ))
                .await
                .unwrap(),
            0
        );
        // The invitation she sent, still queued, does not go out blank: it is gone.
        let outbox = json_of(t.get(&t.org("/outbox?limit=200"), &t.owner_token).await).await;
        assert!(
            !outbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["to"] == "guest@example.org"),
            "{outbox}"
        );
        // Nowhere the organization keeps: audit log, invitations, outbox.
        for place in [
            "/audit-events?limit=200",
            "/invitations?limit=200",
            "/outbox?limit=200",
        ] {
            let dump =
                serde_json::to_string(&json_of(t.get(&t.org(place), &t.owner_token).await).await)
                    .unwrap();
            assert!(
                !dump.contains("ivy@example.org") && !dump.contains("Ivy Quill"),
                "{place}: {dump}"
            );
        }
        // What she built stays, now the Owner's; the chain verifies.
        let kept = json_of(
            t.get(
                &t.org(&format!("/chat-interfaces/{}", bot["id"].as_str().unwrap())),
                &t.owner_token,
            )
            .await,
        )
        .await;
        assert_eq!(kept["created_by"], owner_id.as_str());
        let verified = json_of(
            t.client
                .post(t.org("/audit-events/verify"))
                .bearer_auth(&t.owner_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(verified["valid"], true, "{verified}");
    }
);

both_backends!(
    an_archived_log_is_not_read_through_someone_elses_personal_data,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let path = t.org(&format!("/members/{lisa_id}/personal-data"));
        let records = |doc: &Value| doc["audit_records"].as_array().unwrap().len();
        // On Enterprise an Admin reads the log, and so her records in her export.
        let by_admin = json_of(t.get(&path, &mike).await).await;
        assert!(records(&by_admin) > 0, "{by_admin}");
        assert_eq!(by_admin["audit_records_withheld"], false);
        // Downgraded, the log is archived: only the Owner reads it, so an Admin's export of
        // someone else carries none of its records, and says so.
        let res = t
            .put(
                &t.org("/billing/subscription"),
                &t.owner_token,
                &json!({"plan": "pro", "cycle": "monthly"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        // (Pro admits only the Owner; an operator's negotiated limit lets the team in.)
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let seats =
            billing_limits::LimitOverrides([(billing_limits::Limit::Members, Some(20))].into());
        tenancy::orgs::set_limit_overrides_as_system(&*t.store, org, seats, t.clock.now())
            .await
            .unwrap();
        let by_admin = json_of(t.get(&path, &mike).await).await;
        assert_eq!(records(&by_admin), 0, "{by_admin}");
        assert_eq!(by_admin["audit_records_withheld"], true);
        assert_eq!(by_admin["account"]["email"], "lisa@example.com");
        // Her own, and the Owner's export of her, still carry them.
        for token in [&lisa, &t.owner_token] {
            let doc = json_of(t.get(&path, token).await).await;
            assert!(records(&doc) > 0, "{doc}");
            assert_eq!(doc["audit_records_withheld"], false);
        }
    }
);

both_backends!(a_former_member_is_erased_too, |b| async move {
    let t = spawn_app(b).await;
    let tom_id = t.member_id("tom@example.com").await;
    let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
    assert_eq!(
        t.get(&t.org("/members"), &tom).await.status(),
        StatusCode::OK
    );
    let left = t.post(&t.org("/leave"), &tom, &json!({})).await;
    assert_eq!(left.status(), StatusCode::OK);
    let his = t.audit(&format!("actor_id={tom_id}")).await;
    assert!(his.iter().any(|r| r["actor_name"] == "Tom"), "{his:?}");
    // Gone from the organization, he may still ask for what it holds of him: the Owner exports
    // it (no membership; the records naming him); an id the log never named is not found.
    let doc = json_of(
        t.get(
            &t.org(&format!("/members/{tom_id}/personal-data")),
            &t.owner_token,
        )
        .await,
    )
    .await;
    assert_eq!(doc["membership"], Value::Null, "{doc}");
    assert_eq!(doc["account"]["id"], tom_id.as_str());
    assert!(
        doc["audit_records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "member.left"),
        "{doc}"
    );
    let stranger = rbac_core::UserId::new();
    problem(
        t.get(
            &t.org(&format!("/members/{stranger}/personal-data")),
            &t.owner_token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Gone from the organization, he asks it to forget him: the Owner erases him.
    let path = t.org(&format!("/members/{tom_id}/erasure"));
    let report = json_of(t.post(&path, &t.owner_token, &json!({})).await).await;
    assert_eq!(report["account_anonymized"], false, "{report}");
    assert_eq!(report["resources_transferred"], 0);
    assert!(
        report["audit_records_erased"].as_u64().unwrap() >= 2,
        "{report}"
    );
    let his = t.audit(&format!("actor_id={tom_id}")).await;
    assert!(!his.is_empty());
    for r in &his {
        assert_eq!(r["actor_name"], "[erased]", "{r}");
        assert_eq!(r["ip"], "");
        assert_eq!(r["user_agent"], "");
    }
    let erased = t.audit("action=privacy.personal_data").await;
    assert_eq!(erased[0]["metadata"]["former_member"], true, "{erased:?}");
    assert_eq!(erased[0]["target_name"], "[erased]");
    let verified = json_of(
        t.post(&t.org("/audit-events/verify"), &t.owner_token, &json!({}))
            .await,
    )
    .await;
    assert_eq!(verified["valid"], true, "{verified}");
    // His account is his: he still signs in (to no organization of this one's).
    t.login("tom@example.com", DEMO_PASSWORD).await;
    // Someone this organization never had is not found here, and nothing is recorded.
    let stranger = "usr_00000000000000000000000000000001";
    problem(
        t.post(
            &t.org(&format!("/members/{stranger}/erasure")),
            &t.owner_token,
            &json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // One erasure on the record (and the export before it), nothing for the stranger.
    let processed = t.audit("action=privacy.personal_data").await;
    let operations: Vec<&str> = processed
        .iter()
        .map(|r| r["metadata"]["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["erase", "export"], "{processed:?}");
});
