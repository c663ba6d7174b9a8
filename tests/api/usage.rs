//! Metering API calls against the monthly limit, and the usage report.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api_keys::second_org;
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    api_calls_are_metered_per_month_and_never_overshoot,
    |b| async move {
        let t = spawn_app(b).await;
        let (org, email) = second_org(&t, billing_limits::Plan::Free).await;
        let owner = t.login(&email, OWNER_PASSWORD).await;
        let key: Value = t
            .post(
                &t.url(&format!("/api/v1/orgs/{org}/api-keys")),
                &owner,
                &json!({ "name": "CI" }),
            )
            .await
            .json()
            .await
            .unwrap();
        let secret = key["secret"].as_str().unwrap().to_owned();
        let members = t.url(&format!("/api/v1/orgs/{org}/members"));
        assert_eq!(t.get(&members, &secret).await.status(), StatusCode::OK);
        // 995 of the Free plan's 1,000 calls used this month: of ten concurrent calls, five pass.
        let month = tenancy::metering::month_key(t.clock.now());
        t.store
        .execute_sql(&format!(
            "UPDATE usage_monthly SET count = 995 WHERE org_id = '{org}' AND month = '{month}' AND metric = 'api_calls'"
        ))
        .await
        .unwrap();
        let calls: Vec<_> = (0..10).map(|_| t.get(&members, &secret)).collect();
        let answers = futures::future::join_all(calls).await;
        let ok = answers
            .iter()
            .filter(|r| r.status() == StatusCode::OK)
            .count();
        assert_eq!(ok, 5, "exactly the remaining calls pass");
        let refused = answers
            .into_iter()
            .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
            .unwrap();
        assert!(refused.headers().contains_key("retry-after"));
        let p = problem(
            refused,
            StatusCode::TOO_MANY_REQUESTS,
            "api_calls_exhausted",
        )
        .await;
        assert_eq!(
            (
                p["limit"].as_str(),
                p["max"].as_u64(),
                p["used"].as_u64(),
                p["plan"].as_str()
            ),
            (
                Some("api_calls_per_month"),
                Some(1000),
                Some(1000),
                Some("free")
            )
        );
        // People signed in are not metered; the report shows the month against the limits.
        let report = json_of(
            t.get(&t.url(&format!("/api/v1/orgs/{org}/usage")), &owner)
                .await,
        )
        .await;
        assert_eq!(report["month"], month.as_str());
        let fig = |name: &str| {
            report["figures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["limit"] == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            (
                fig("api_calls_per_month")["used"].as_u64(),
                fig("api_calls_per_month")["percent"].as_u64()
            ),
            (Some(1000), Some(100))
        );
        assert_eq!(
            (
                fig("api_keys")["used"].as_u64(),
                fig("api_keys")["max"].as_u64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(fig("members")["used"], 1);
        let daily_calls: u64 = report["daily"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["metric"] == "api_calls")
            .map(|d| d["count"].as_u64().unwrap())
            .sum();
        assert_eq!(daily_calls, 6, "the first call and the five that passed");
        assert_eq!(report["teams"][0]["api_calls"], 6);
        // A new month, a new allowance.
        let reset = utc_of(&report["resets_at"]);
        t.clock
            .advance(reset - t.clock.now() + chrono::Duration::seconds(1));
        assert_eq!(t.get(&members, &secret).await.status(), StatusCode::OK);
        // Billing is the Owner's: Admins cannot read usage.
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        problem(
            t.get(&t.org("/usage"), &mike).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
);

both_backends!(
    usage_alerts_go_out_once_per_threshold_by_mail_and_webhook,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": ["usage.threshold_reached"] }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let key: Value = t
            .post(
                &t.org("/api-keys"),
                &t.owner_token,
                &json!({ "name": "CI" }),
            )
            .await
            .json()
            .await
            .unwrap();
        let secret = key["secret"].as_str().unwrap().to_owned();
        let members = t.org("/members");
        let month = tenancy::metering::month_key(t.clock.now());
        let set = |n: u64| {
            let (store, org, month) = (t.store.clone(), t.org_id.clone(), month.clone());
            async move {
                store
                .execute_sql(&format!(
                    "UPDATE usage_monthly SET count = {n} WHERE org_id = '{org}' AND month = '{month}' AND metric = 'api_calls'"
                ))
                .await
                .unwrap();
            }
        };
        assert_eq!(t.get(&members, &secret).await.status(), StatusCode::OK);
        // Enterprise includes 100,000 calls: ten concurrent calls cross 80 % once.
        set(79_995).await;
        let calls: Vec<_> = (0..10).map(|_| t.get(&members, &secret)).collect();
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.status(), StatusCode::OK);
        }
        let got = rx.wait_for(1, 10).await;
        let body: Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(body["event"], "usage.threshold_reached");
        assert_eq!(
            (
                body["data"]["threshold"].as_u64(),
                body["data"]["limit"].as_str(),
                body["data"]["max"].as_u64()
            ),
            (Some(80), Some("api_calls_per_month"), Some(100_000))
        );
        // Back under and over again in the same month: no second 80 % alert. Then 100 %, once.
        set(79_999).await;
        t.get(&members, &secret).await;
        set(99_999).await;
        assert_eq!(t.get(&members, &secret).await.status(), StatusCode::OK);
        problem(
            t.get(&members, &secret).await,
            StatusCode::TOO_MANY_REQUESTS,
            "api_calls_exhausted",
        )
        .await;
        let got = rx.wait_for(2, 10).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(rx.received().len(), 2, "one event per threshold");
        let body: Value = serde_json::from_str(&got[1].body).unwrap();
        assert_eq!(body["data"]["threshold"], 100);
        let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
        let alerts: Vec<&Value> = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "usage_alert")
            .collect();
        assert_eq!(alerts.len(), 2);
        assert!(alerts.iter().all(|m| m["to"] == OWNER_EMAIL));
        assert_eq!(t.audit("action=usage.alert_sent").await.len(), 2);
    }
);

both_backends!(
    an_alert_lost_after_its_change_goes_out_on_the_repair_pass,
    |b| async move {
        let t = spawn_app(b).await;
        let rx = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": ["usage.threshold_reached"] }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let key: Value = t
            .post(
                &t.org("/api-keys"),
                &t.owner_token,
                &json!({ "name": "CI" }),
            )
            .await
            .json()
            .await
            .unwrap();
        let secret = key["secret"].as_str().unwrap().to_owned();
        assert_eq!(
            t.get(&t.org("/members"), &secret).await.status(),
            StatusCode::OK
        );
        let repair = || axie_server::workers::send_missed_alerts(&t.store, t.clock.now());
        assert_eq!(repair().await.unwrap(), 0, "nothing reached yet");
        // 85,000 of Enterprise's 100,000 calls counted, and the server stopped before the
        // alert went: the counter is committed, the alert is not.
        let month = tenancy::metering::month_key(t.clock.now());
        t.store
            .execute_sql(&format!(
                "UPDATE usage_monthly SET count = 85000 WHERE org_id = '{}' AND month = '{month}' AND metric = 'api_calls'",
                t.org_id
            ))
            .await
            .unwrap();
        assert_eq!(repair().await.unwrap(), 1, "the 80 % alert");
        assert_eq!(repair().await.unwrap(), 0, "once");
        let got = rx.wait_for(1, 10).await;
        let body: Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(
            (
                body["event"].as_str(),
                body["data"]["threshold"].as_u64(),
                body["data"]["limit"].as_str()
            ),
            (
                Some("usage.threshold_reached"),
                Some(80),
                Some("api_calls_per_month")
            )
        );
        let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
        let alerts = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "usage_alert" && m["to"] == OWNER_EMAIL)
            .count();
        assert_eq!(alerts, 1);
        assert_eq!(t.audit("action=usage.alert_sent").await.len(), 1);
    }
);

both_backends!(
    a_limit_lowered_under_its_use_is_told_once_by_the_repair_pass,
    |b| async move {
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                ..Options::default()
            },
        )
        .await;
        let rx = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": ["usage.threshold_reached"] }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        // Four chat interfaces (the demo's and three more) under Enterprise's unlimited count.
        for name in ["Sales", "Onboarding", "Legal"] {
            let res = t
                .post(
                    &t.org("/chat-interfaces"),
                    &t.owner_token,
                    &json!({ "name": name }),
                )
                .await;
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let repair = || axie_server::workers::send_missed_alerts(&t.store, t.clock.now());
        assert_eq!(repair().await.unwrap(), 0, "no limit, no alert");
        // The operator negotiates five: four is 80 % of it, and no creation will cross it.
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let overrides = billing_limits::LimitOverrides(
            [(billing_limits::Limit::ChatInterfaces, Some(5))].into(),
        );
        tenancy::orgs::set_limit_overrides_as_system(&*t.store, org, overrides, t.clock.now())
            .await
            .unwrap();
        assert_eq!(repair().await.unwrap(), 1, "the 80 % alert");
        assert_eq!(repair().await.unwrap(), 0, "once");
        let got = rx.wait_for(1, 10).await;
        let body: Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(
            (
                body["data"]["limit"].as_str(),
                body["data"]["threshold"].as_u64(),
                body["data"]["used"].as_u64(),
                body["data"]["max"].as_u64()
            ),
            (Some("chat_interfaces"), Some(80), Some(4), Some(5))
        );
        let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
        let alerts: Vec<&Value> = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "usage_alert" && m["to"] == OWNER_EMAIL)
            .collect();
        assert_eq!(alerts.len(), 1, "{outbox}");
        assert_eq!(t.audit("action=usage.alert_sent").await.len(), 1);
        // Still at 80 % the next month: not told again.
        t.clock.advance(chrono::Duration::days(40));
        assert_eq!(repair().await.unwrap(), 0, "no monthly reminder");
        // Lowered to three, under the four in use: both thresholds are reached at the new
        // value, each recorded and sent as an event, and the Owner gets one mail, for 100 %.
        // (The Owner signs in again: forty days ended the session.)
        let owner = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let overrides = billing_limits::LimitOverrides(
            [(billing_limits::Limit::ChatInterfaces, Some(3))].into(),
        );
        tenancy::orgs::set_limit_overrides_as_system(&*t.store, org, overrides, t.clock.now())
            .await
            .unwrap();
        assert_eq!(repair().await.unwrap(), 2, "80 % and 100 % of three");
        assert_eq!(repair().await.unwrap(), 0, "once");
        // Delivery is at least once (a slow answer is sent again), so the events are told apart
        // by their id: three of them, whatever arrived twice.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let thresholds = loop {
            let events: std::collections::BTreeMap<String, (Option<u64>, Option<u64>)> = rx
                .received()
                .iter()
                .map(|d| {
                    let body: Value = serde_json::from_str(&d.body).unwrap();
                    (
                        d.headers["webhook-id"].clone(),
                        (
                            body["data"]["threshold"].as_u64(),
                            body["data"]["max"].as_u64(),
                        ),
                    )
                })
                .collect();
            if events.len() >= 3 || std::time::Instant::now() > deadline {
                let mut thresholds: Vec<_> = events.into_values().collect();
                thresholds.sort_unstable();
                break thresholds;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(
            thresholds,
            vec![
                (Some(80), Some(3)),
                (Some(80), Some(5)),
                (Some(100), Some(3))
            ]
        );
        let outbox = json_of(t.get(&t.org("/outbox"), &owner).await).await;
        let subjects: Vec<&str> = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "usage_alert" && m["to"] == OWNER_EMAIL)
            .map(|m| m["subject"].as_str().unwrap())
            .collect();
        assert_eq!(subjects.len(), 2, "{subjects:?}");
        assert_eq!(
            subjects
                .iter()
                .filter(|s| s.ends_with("100 % of your chat interfaces used"))
                .count(),
            1,
            "{subjects:?}"
        );
        let records = json_of(
            t.get(&t.org("/audit-events?action=usage.alert_sent"), &owner)
                .await,
        )
        .await;
        assert_eq!(records["items"].as_array().unwrap().len(), 3);
    }
);

both_backends!(
    a_count_the_repair_pass_cannot_read_holds_back_no_other_alert,
    |b| async move {
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                ..Options::default()
            },
        )
        .await;
        for name in ["Sales", "Onboarding", "Legal"] {
            let res = t
                .post(
                    &t.org("/chat-interfaces"),
                    &t.owner_token,
                    &json!({ "name": name }),
                )
                .await;
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let res = t
            .post(
                &t.org("/api-keys"),
                &t.owner_token,
                &json!({ "name": "CI" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        // Four chat interfaces of five and one API key of one, set by the operator, whose
        // alerts the repair pass owes.
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let overrides = billing_limits::LimitOverrides(
            [
                (billing_limits::Limit::ChatInterfaces, Some(5)),
                (billing_limits::Limit::ApiKeys, Some(1)),
            ]
            .into(),
        );
        tenancy::orgs::set_limit_overrides_as_system(&*t.store, org, overrides, t.clock.now())
            .await
            .unwrap();
        // The assets cannot be counted (their table is out of reach): the chat interfaces'
        // alert cannot be sent, and the API keys', a limit repaired after it, still goes out.
        t.store
            .execute_sql("ALTER TABLE assets RENAME TO assets_out_of_reach")
            .await
            .unwrap();
        let repair = || axie_server::workers::send_missed_alerts(&t.store, t.clock.now());
        assert!(repair().await.is_err(), "the failed count is reported");
        let sent = |limit: &'static str| {
            let t = &t;
            async move {
                t.audit("action=usage.alert_sent")
                    .await
                    .iter()
                    .filter(|r| r["metadata"]["limit"] == limit)
                    .count()
            }
        };
        assert_eq!(sent("api_keys").await, 2, "80 % and 100 % of one key");
        assert_eq!(sent("chat_interfaces").await, 0);
        t.store
            .execute_sql("ALTER TABLE assets_out_of_reach RENAME TO assets")
            .await
            .unwrap();
        assert_eq!(repair().await.unwrap(), 1, "the chat interfaces' 80 %, now");
        assert_eq!(sent("chat_interfaces").await, 1);
        assert_eq!(sent("api_keys").await, 2, "not again");
    }
);

both_backends!(
    the_weekly_usage_report_goes_out_once_per_week,
    |b| async move {
        let mut t = spawn_app(b).await;
        let reports = |t: &TestApp| {
            let (url, token) = (t.org("/outbox"), t.owner_token.clone());
            let client = t.client.clone();
            async move {
                let mails: Value = client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                mails["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["kind"] == "usage_report")
                    .cloned()
                    .collect::<Vec<Value>>()
            }
        };
        // Nothing for the week before the organization existed.
        assert_eq!(
            axie_server::workers::send_weekly_reports(&t.store, t.clock.now())
                .await
                .unwrap(),
            0
        );
        // Eight days on: last week's report, once, however many passes run at the same time.
        t.clock.advance(chrono::Duration::days(8));
        let now = t.clock.now();
        let passes = futures::future::join_all(
            (0..4).map(|_| axie_server::workers::send_weekly_reports(&t.store, now)),
        )
        .await;
        assert_eq!(passes.into_iter().map(Result::unwrap).sum::<u64>(), 1);
        assert_eq!(
            axie_server::workers::send_weekly_reports(&t.store, now)
                .await
                .unwrap(),
            0
        );
        t.owner_token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let sent = reports(&t).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["to"], OWNER_EMAIL);
        let week = tenancy::metering::week_key(now - chrono::Duration::days(7));
        assert!(
            sent[0]["subject"].as_str().unwrap().contains(&week),
            "{}",
            sent[0]
        );
        assert!(
            sent[0]["body"]
                .as_str()
                .unwrap()
                .contains("api_calls_per_month")
                && sent[0]["body"]
                    .as_str()
                    .unwrap()
                    .contains("Trends (the 7 days before"),
            "{}",
            sent[0]
        );
        // The next week brings the next report.
        t.clock.advance(chrono::Duration::days(7));
        assert_eq!(
            axie_server::workers::send_weekly_reports(&t.store, t.clock.now())
                .await
                .unwrap(),
            1
        );
        t.owner_token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        assert_eq!(reports(&t).await.len(), 2);
        assert_eq!(t.audit("action=usage.report_sent").await.len(), 2);
    }
);

both_backends!(negotiated_limits_replace_the_plans, |b| async move {
    let t = spawn_app(b).await;
    let (org, email) = crate::api_keys::second_org(&t, billing_limits::Plan::Pro).await;
    let owner = t.login(&email, OWNER_PASSWORD).await;
    let keys = t.url(&format!("/api/v1/orgs/{org}/api-keys"));
    let create = |n: u32| {
        let (client, url, owner) = (t.client.clone(), keys.clone(), owner.clone());
        async move {
            client
                .post(url)
                .bearer_auth(owner)
                .json(&json!({"name": format!("k{n}")}))
                .send()
                .await
                .unwrap()
        }
    };
    for n in 0..5 {
        assert_eq!(create(n).await.status(), StatusCode::CREATED);
    }
    assert_eq!(
        create(5).await.status(),
        StatusCode::FORBIDDEN,
        "the Pro plan's 5"
    );

    // The operator's deal: 7 keys; the refusal names the new limit.
    let org_id: rbac_core::OrgId = org.parse().unwrap();
    let bad = axie_server::admin::set_limits(&t.store, org_id, &["api_keys=seven".into()]).await;
    assert!(bad.is_err());
    assert!(
        axie_server::admin::set_limits(&t.store, org_id, &["keys=7".into()])
            .await
            .is_err()
    );
    let effective = axie_server::admin::set_limits(&t.store, org_id, &["api_keys=7".into()])
        .await
        .unwrap();
    assert_eq!(effective.api_keys, Some(7));
    assert_eq!(
        effective.chat_interfaces,
        Some(20),
        "other limits stay the plan's"
    );
    assert_eq!(create(5).await.status(), StatusCode::CREATED);
    assert_eq!(create(6).await.status(), StatusCode::CREATED);
    let p = problem(create(7).await, StatusCode::FORBIDDEN, "limit_reached").await;
    assert_eq!((p["max"].as_u64(), p["used"].as_u64()), (Some(7), Some(7)));
    let usage = json_of(
        t.get(&t.url(&format!("/api/v1/orgs/{org}/usage")), &owner)
            .await,
    )
    .await;
    let figure = usage["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["limit"] == "api_keys")
        .cloned()
        .unwrap();
    assert_eq!(
        (figure["used"].as_u64(), figure["max"].as_u64()),
        (Some(7), Some(7))
    );

    // Unlimited, then back to the plan.
    axie_server::admin::set_limits(&t.store, org_id, &["api_keys=unlimited".into()])
        .await
        .unwrap();
    assert_eq!(create(7).await.status(), StatusCode::CREATED);
    let effective = axie_server::admin::set_limits(&t.store, org_id, &[])
        .await
        .unwrap();
    assert_eq!(effective.api_keys, Some(5));
    assert_eq!(create(8).await.status(), StatusCode::FORBIDDEN);
    // Pro has no audit-log access over the API: read the records through the store.
    let q = audit::AuditQuery {
        action: Some(audit::ActionFilter::parse("billing.limits_changed")),
        limit: 10,
        ..audit::AuditQuery::default()
    };
    let changes: Vec<Value> = audit::AuditStore::search(&*t.store, org_id, &q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::to_value(e.event.metadata).unwrap())
        .collect();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2]["after"], json!({"api_keys": 7}));
});

both_backends!(
    api_calls_are_reserved_in_blocks_and_never_overshoot_across_instances,
    |b| async move {
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                api_call_block_max: Some(100),
                ..Options::default()
            },
        )
        .await;
        let second = t.another_instance().await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        // A negotiated 5,000 calls a month: blocks of 5 (0.1 %).
        let overrides = billing_limits::LimitOverrides(
            [(billing_limits::Limit::ApiCallsPerMonth, Some(5_000))].into(),
        );
        tenancy::orgs::set_limit_overrides_as_system(&*t.store, org, overrides, t.clock.now())
            .await
            .unwrap();
        let key = json_of(
            t.post(
                &t.org("/api-keys"),
                &t.owner_token,
                &json!({ "name": "CI" }),
            )
            .await,
        )
        .await;
        let secret = key["secret"].as_str().unwrap().to_owned();
        let members = format!("/api/v1/orgs/{}/members", t.org_id);
        let month = tenancy::metering::month_key(t.clock.now());
        let counted = || {
            let (store, org, month) = (t.store.clone(), org, month.clone());
            async move {
                tenancy::metering::MeteringStore::monthly(&*store, org, "api_calls", &month)
                    .await
                    .unwrap()
            }
        };
        // The first call reserves a block of five; the next four use it without a write.
        for i in 0..5 {
            assert_eq!(
                t.get(&t.url(&members), &secret).await.status(),
                StatusCode::OK
            );
            assert_eq!(counted().await, 5, "after call {i}");
        }
        assert_eq!(
            t.get(&t.url(&members), &secret).await.status(),
            StatusCode::OK
        );
        assert_eq!(counted().await, 10);
        // Near the limit, two instances never hand out more than the month allows: 4,990
        // reserved, this instance holds 4 unused calls, so 10 + 4 calls remain in all.
        t.store
            .execute_sql(&format!(
                "UPDATE usage_monthly SET count = 4990 WHERE org_id = '{org}' AND month = '{month}' AND metric = 'api_calls'"
            ))
            .await
            .unwrap();
        let calls = (0..30_u32).map(|i| {
            let url = if i.is_multiple_of(2) {
                t.url(&members)
            } else {
                format!("{second}{members}")
            };
            let (client, secret) = (t.client.clone(), secret.clone());
            async move {
                client
                    .get(url)
                    .bearer_auth(secret)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        });
        let answers = futures::future::join_all(calls).await;
        let mut ok = answers.iter().filter(|s| **s == StatusCode::OK).count();
        assert!(ok <= 14, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS)
        );
        // Calls one at a time use up what either instance still holds, then both refuse:
        // exactly the 14 calls the month had left, never one more.
        for base in [t.address.clone(), second.clone()] {
            while t.get(&format!("{base}{members}"), &secret).await.status() == StatusCode::OK {
                ok += 1;
            }
        }
        assert_eq!(ok, 14);
        assert_eq!(counted().await, 5_000, "never past the limit");
    }
);

both_backends!(a_copy_that_jumps_past_a_threshold_alerts, |b| async move {
    let t = spawn_app_with(b, Options::default()).await;
    let org: rbac_core::OrgId = t.org_id.parse().unwrap();
    // Five knowledge bases: 80 % is the fourth.
    let overrides =
        billing_limits::LimitOverrides([(billing_limits::Limit::KnowledgeBases, Some(5))].into());
    tenancy::orgs::set_limit_overrides_as_system(&*t.store, org, overrides, t.clock.now())
        .await
        .unwrap();
    let team = json_of(
        t.post(
            &t.org("/teams"),
            &t.owner_token,
            &json!({ "name": "Client" }),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let template = json_of(
        t.post(
            &t.org("/chat-interfaces"),
            &t.owner_token,
            &json!({ "name": "Template" }),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (name, under) in [
        ("FAQ", Some(&template)),
        ("Pricing", Some(&template)),
        ("Loose", None),
    ] {
        let mut body = json!({ "name": name });
        if let Some(ci) = under {
            body["chat_interface_id"] = json!(ci);
        }
        let res = t
            .post(&t.org("/knowledge-bases"), &t.owner_token, &body)
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    assert!(
        t.audit("action=usage.alert_sent").await.is_empty(),
        "3 of 5 is 60 %"
    );
    // The copy brings two knowledge bases at once: from 3 to 5, past 80 % (4) and to 100 %.
    let res = t
        .post(
            &t.org(&format!("/assets/{template}/copy")),
            &t.owner_token,
            &json!({ "team_id": team }),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap()
    );
    let mut thresholds: Vec<u64> = t
        .audit("action=usage.alert_sent")
        .await
        .iter()
        .filter(|e| e["target_id"] == "knowledge_bases")
        .map(|e| e["metadata"]["threshold"].as_u64().unwrap())
        .collect();
    thresholds.sort_unstable();
    assert_eq!(thresholds, [80, 100]);
    // One mail, for the highest threshold reached.
    let outbox = json_of(t.get(&t.org("/outbox"), &t.owner_token).await).await;
    let subjects: Vec<&str> = outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "usage_alert")
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(
        subjects[0].ends_with("100 % of your knowledge bases used"),
        "{subjects:?}"
    );
});

both_backends!(
    pending_invitations_hold_member_seats_in_the_usage_report,
    |b| async move {
        let t = spawn_app(b).await;
        let members = |report: &Value| {
            report["figures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["limit"] == "members")
                .unwrap()
                .clone()
        };
        let before = members(&json_of(t.get(&t.org("/usage"), &t.owner_token).await).await);
        crate::team_management::invited(&t, "seat.one@example.org", "user").await;
        crate::team_management::invited(&t, "seat.two@example.org", "user").await;
        let after = members(&json_of(t.get(&t.org("/usage"), &t.owner_token).await).await);
        assert_eq!(
            after["used"], before["used"],
            "an invitation is not a member"
        );
        assert_eq!(
            (
                before["pending_invitations"].as_u64(),
                after["pending_invitations"].as_u64()
            ),
            (Some(0), Some(2))
        );
    }
);

both_backends!(
    usage_trends_forecast_the_month_and_warn_the_owner_once,
    |b| async move {
        let t = spawn_app(b).await;
        // The 2nd of next month, 09:00 UTC: the days below are all of one month.
        let start = t.clock.now();
        let next = tenancy::metering::next_month_start(start);
        t.clock
            .advance(next - start + chrono::Duration::days(1) + chrono::Duration::hours(9));
        let hasher =
            security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
        let email = format!("owner-{}@trend.example", uuid::Uuid::new_v4().simple());
        let created = t.clock.now();
        let (org, _) = tenancy::orgs::create_with_new_owner(
            &*t.store,
            &hasher,
            tenancy::orgs::CreateOrgRequest {
                name: "Trendy".into(),
                plan: billing_limits::Plan::Free,
                owner_email: email.clone(),
                owner_name: "Tess".into(),
                owner_password: OWNER_PASSWORD.into(),
            },
            created,
        )
        .await
        .unwrap();
        let org = org.id.to_string();
        let owner = t.login(&email, OWNER_PASSWORD).await;
        let key: Value = json_of(
            t.post(
                &t.url(&format!("/api/v1/orgs/{org}/api-keys")),
                &owner,
                &json!({ "name": "CI" }),
            )
            .await,
        )
        .await;
        let secret = key["secret"].as_str().unwrap().to_owned();
        let members = t.url(&format!("/api/v1/orgs/{org}/members"));
        // Twenty calls a day on the organization's first three days.
        for _ in 0..3 {
            for _ in 0..20 {
                assert_eq!(t.get(&members, &secret).await.status(), StatusCode::OK);
            }
            t.clock.advance(chrono::Duration::days(1));
        }
        // Three days on, the session has ended: sign in again.
        let owner = t.login(&email, OWNER_PASSWORD).await;
        let now = t.clock.now();
        let usage = t.url(&format!("/api/v1/orgs/{org}/usage"));
        let report = json_of(t.get(&usage, &owner).await).await;
        let calls = report["trends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == "api_calls")
            .unwrap()
            .clone();
        assert_eq!(calls["limit"], "api_calls_per_month");
        assert_eq!(
            (&calls["last_7_days"], &calls["previous_7_days"]),
            (&json!(60), &json!(0))
        );
        assert_eq!(
            calls.get("change_percent"),
            Some(&Value::Null),
            "no week before the organization"
        );
        // Rated over the time it existed, from 09:00 on the 2nd to today's midnight.
        let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        let lived = (midnight - created).num_seconds();
        assert!((226_790..=226_800).contains(&lived), "{lived}");
        assert_eq!(
            calls["per_day"].as_i64(),
            Some(60 * 86_400 / lived),
            "22 a day"
        );
        let left = (utc_of(&report["resets_at"]) - now).num_seconds();
        // The server's clock read a moment later: at most one call fewer.
        let projected = calls["projected_month_end"].as_i64().unwrap();
        let expected = 60 + 60 * left / lived;
        assert!(
            (expected - 1..=expected).contains(&projected),
            "{projected} for {expected}"
        );
        assert_eq!(
            calls.get("limit_reached_on"),
            Some(&Value::Null),
            "940 to go at 22 a day"
        );
        let team = &report["teams"][0]["api_calls_trend"];
        assert_eq!(
            (&team["last_7_days"], &team["per_day"]),
            (&json!(60), &calls["per_day"])
        );
        let messages = report["trends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == "messages")
            .unwrap();
        assert_eq!(
            (&messages["last_7_days"], messages.get("limit")),
            (&json!(0), Some(&Value::Null))
        );
        // Nothing to forecast yet.
        assert_eq!(
            axie_server::workers::send_usage_forecasts(&t.store, now)
                .await
                .unwrap(),
            0
        );

        // 900 of the 1,000 used: 100 to go at 22 a day is four days and nine hours.
        let month = tenancy::metering::month_key(now);
        t.store
            .execute_sql(&format!(
                "UPDATE usage_monthly SET count = 900 WHERE org_id = '{org}' AND month = '{month}' AND metric = 'api_calls'"
            ))
            .await
            .unwrap();
        let report = json_of(t.get(&usage, &owner).await).await;
        let on = (now + chrono::Duration::seconds(100 * lived / 60))
            .date_naive()
            .to_string();
        assert_eq!(report["trends"][0]["limit_reached_on"], on.as_str());
        // The Owner is told once, however many passes run at the same time.
        let passes = futures::future::join_all(
            (0..3).map(|_| axie_server::workers::send_usage_forecasts(&t.store, now)),
        )
        .await;
        assert_eq!(passes.into_iter().map(Result::unwrap).sum::<u64>(), 1);
        assert_eq!(
            axie_server::workers::send_usage_forecasts(&t.store, now + chrono::Duration::hours(1))
                .await
                .unwrap(),
            0
        );
        let outbox = json_of(
            t.get(&t.url(&format!("/api/v1/orgs/{org}/outbox")), &owner)
                .await,
        )
        .await;
        let forecasts: Vec<&Value> = outbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "usage_forecast")
            .collect();
        assert_eq!(forecasts.len(), 1, "{outbox}");
        assert_eq!(forecasts[0]["to"], email.as_str());
        assert!(
            forecasts[0]["body"].as_str().unwrap().contains(&on),
            "{}",
            forecasts[0]
        );
    }
);
