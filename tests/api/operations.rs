//! Operations: metrics, the operator's commands, backups restored into a fresh server.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    metrics_are_protected_and_count_what_happens,
    |b| async move {
        let t = spawn_app(b).await;
        // Not served without a configured token.
        assert_eq!(
            t.client
                .get(t.url("/metrics"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );

        let mut settings = t.settings.clone();
        settings.metrics.token = "scrape-secret".to_owned().into();
        settings.metrics.listen = "127.0.0.1:0".into();
        settings.server.port = 0;
        let app = axie_server::Application::build_with_clock(settings, t.clock.clone())
            .await
            .unwrap();
        let main = format!("http://127.0.0.1:{}", app.port());
        let side = format!("http://127.0.0.1:{}/metrics", app.metrics_port().unwrap());
        tokio::spawn(app.run_until_stopped());

        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let members = t
            .client
            .get(format!("{main}/api/v1/orgs/{}/members", t.org_id))
            .bearer_auth(&t.owner_token)
            .send()
            .await
            .unwrap();
        assert_eq!(members.status(), StatusCode::OK);
        let denied = t
            .client
            .patch(format!("{main}/api/v1/orgs/{}/security", t.org_id))
            .bearer_auth(&lisa)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);

        assert_eq!(
            t.client
                .get(format!("{main}/metrics"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            t.client
                .get(format!("{main}/metrics"))
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        let res = t
            .client
            .get(format!("{main}/metrics"))
            .bearer_auth("scrape-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        for needle in [
            "axie_http_requests_total{route=\"/api/v1/orgs/{org_id}/members\",method=\"GET\",status=\"200\"}",
            "axie_http_request_duration_seconds_bucket{route=\"/api/v1/orgs/{org_id}/members\",method=\"GET\",le=\"0.005\"}",
            "axie_authz_denials_total{reason=\"role_lacks_permission\"}",
            "axie_audit_appends_total",
            "axie_webhook_queue_depth",
            "axie_db_pool_connections{state=\"open\"}",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        // Paths are reported by route pattern, never with ids in them.
        assert!(!text.contains(&t.org_id));
        // The separate listener serves the same without a token.
        let side = t.client.get(side).send().await.unwrap();
        assert_eq!(side.status(), StatusCode::OK);
        assert!(
            side.text()
                .await
                .unwrap()
                .contains("axie_http_requests_total")
        );

        let ready = json_of(t.client.get(format!("{main}/readyz")).send().await.unwrap()).await;
        assert_eq!(ready["status"], "ready");
    }
);

both_backends!(
    operators_reset_the_owner_and_export_the_audit_log,
    |b| async move {
        let t = spawn_app(b).await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        // The Owner lost their password and their authenticator.
        enrol_totp(&t, &t.owner_token, OWNER_PASSWORD).await;
        assert_eq!(
            t.login_response(OWNER_EMAIL, OWNER_PASSWORD).await.status(),
            StatusCode::ACCEPTED
        );

        let out = axie_server::admin::reset_owner(
            &t.store,
            org,
            OWNER_EMAIL,
            None,
            Some("a fresh start for the chief"),
        )
        .await
        .unwrap();
        assert!(out.starts_with("reset the access of the Owner"), "{out}");
        // The reset and the second factor's removal are both recorded, by the system (they
        // commit in one transaction: the tenancy contract's `access_reset_is_one_transaction`).
        let newest = audit::AuditStore::search(
            &*t.store,
            org,
            &audit::AuditQuery {
                action: Some(audit::ActionFilter::Prefix("auth.".into())),
                limit: 2,
                ..audit::AuditQuery::default()
            },
        )
        .await
        .unwrap();
        let reset: Vec<(&str, &str, i64)> = newest
            .iter()
            .map(|r| (r.event.action.as_str(), r.event.actor.kind.as_str(), r.seq))
            .collect();
        assert_eq!(
            reset,
            [
                ("auth.mfa_disabled", "system", reset[1].2 + 1),
                ("auth.owner_access_reset", "system", reset[1].2)
            ],
            "both recorded, in this order"
        );
        problem(
            t.get(&t.url("/api/v1/me"), &t.owner_token).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        assert_eq!(
            t.login_response(OWNER_EMAIL, OWNER_PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            t.login_response(OWNER_EMAIL, "a fresh start for the chief")
                .await
                .status(),
            StatusCode::OK,
            "a password alone again: the second factor was removed"
        );
        // Weak passwords are refused here too.
        assert!(
            axie_server::admin::reset_owner(&t.store, org, OWNER_EMAIL, None, Some("short"))
                .await
                .is_err()
        );

        // Handing the organization to someone who has no account yet; integrations hear of it
        // as of an Owner's own transfer.
        let rx = Receiver::start().await;
        let owner_now = t.login(OWNER_EMAIL, "a fresh start for the chief").await;
        let hook = t
            .post(
                &t.org("/webhooks"),
                &owner_now,
                &json!({ "url": rx.url, "events": ["enterprise.updated", "role.changed"] }),
            )
            .await;
        assert_eq!(hook.status(), StatusCode::CREATED);
        let out = axie_server::admin::reset_owner(
            &t.store,
            org,
            "newboss@acme.example",
            Some("New Boss"),
            Some("the new boss has arrived"),
        )
        .await
        .unwrap();
        assert!(
            out.starts_with("newboss@acme.example is now the Owner"),
            "{out}"
        );
        let boss = t
            .login("newboss@acme.example", "the new boss has arrived")
            .await;
        let members = json_of(t.get(&t.org("/members"), &boss).await).await;
        let role_of = |email: &str| {
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["email"] == email)
                .unwrap()["role"]
                .clone()
        };
        assert_eq!(role_of("newboss@acme.example"), "owner");
        assert_eq!(role_of(OWNER_EMAIL), "admin");
        let mut heard: Vec<String> = rx
            .wait_for(3, 15)
            .await
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        heard.sort();
        assert_eq!(
            heard,
            ["enterprise.updated", "role.changed", "role.changed"]
        );
        let moved = json_of(
            t.get(&t.org("/audit-events?action=ownership."), &boss)
                .await,
        )
        .await;
        let moved: Vec<(&str, &str)> = moved["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap(),
                    e["actor_type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            moved,
            [
                ("ownership.transferred", "system"),
                ("ownership.transfer_proposed", "system")
            ],
            "each step of the operator's hand-over is recorded"
        );

        // The whole log, as the API would export it.
        let mut csv = Vec::new();
        let n = axie_server::admin::export_audit(&t.store, org, "csv", &mut csv)
            .await
            .unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert_eq!(
            text.lines().count() as u64,
            n + 1,
            "a header and one line per record"
        );
        assert!(text.contains("auth.owner_access_reset"));
        let mut nd = Vec::new();
        let m = axie_server::admin::export_audit(&t.store, org, "ndjson", &mut nd)
            .await
            .unwrap();
        assert_eq!(m, n + 1, "the first export's own record is in the second");
        let lines: Vec<Value> = String::from_utf8(nd)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.iter().all(|v| v["action"].is_string()));
        // Newest first: the export just made, by the operator's command.
        assert_eq!(lines[0]["action"], "data.exported");
        assert_eq!(lines[0]["actor"]["kind"], "system");
        assert_eq!(lines[0]["metadata"]["format"], "ndjson");
        // The same records again as one JSON array, with the NDJSON export's record on top.
        let mut array = Vec::new();
        let k = axie_server::admin::export_audit(&t.store, org, "json", &mut array)
            .await
            .unwrap();
        assert_eq!(k, m + 1);
        let array: Vec<Value> = serde_json::from_slice(&array).unwrap();
        assert_eq!(array.len() as u64, k);
        assert_eq!(array[0]["metadata"]["format"], "json");
        assert_eq!(array[1..], lines[..], "the same records, in the same order");
        assert!(
            axie_server::admin::export_audit(&t.store, org, "xml", &mut Vec::new())
                .await
                .is_err()
        );
        // An id that names no organization is refused, not exported or verified as an empty
        // log (recorded in a log of its own).
        let nobody = rbac_core::OrgId::new();
        let refused = axie_server::admin::export_audit(&t.store, nobody, "csv", &mut Vec::new())
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("no organization"), "{refused}");
        let key = axie_server::startup::checkpoint_key(&t.settings).unwrap();
        assert!(
            axie_server::admin::verify_audit(&t.store, &t.witness(), nobody, &key)
                .await
                .is_err()
        );
        assert!(
            !audit::AuditStore::organizations(&*t.store)
                .await
                .unwrap()
                .contains(&nobody)
        );
        let exported = json_of(
            t.get(&t.org("/audit-events?action=data.exported"), &boss)
                .await,
        )
        .await;
        assert_eq!(
            exported["items"].as_array().unwrap().len(),
            3,
            "an unknown format exports nothing and records nothing"
        );

        // The operator's verification is recorded with what it found.
        let checked = axie_server::admin::verify_audit(&t.store, &t.witness(), org, &key)
            .await
            .unwrap()
            .unwrap();
        let verified = json_of(
            t.get(&t.org("/audit-events?action=audit.verified"), &boss)
                .await,
        )
        .await;
        let verified = &verified["items"][0];
        assert_eq!(verified["actor_type"], "system");
        assert_eq!(verified["metadata"]["valid"], true);
        assert_eq!(verified["metadata"]["records"], checked.records);
        assert_eq!(
            verified["seq"].as_i64().unwrap(),
            checked.records + 1,
            "recorded after the walk it reports on"
        );
    }
);

both_backends!(
    a_backup_restores_into_a_fresh_server_with_every_record,
    |b| async move {
        let t = spawn_app(b).await;
        // Some of everything: a document, a webhook, an invitation, a team, a key, audit records.
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let kb: Value = t
            .post(
                &t.org("/knowledge-bases"),
                &lisa,
                &json!({ "name": "Docs" }),
            )
            .await
            .json()
            .await
            .unwrap();
        let doc: Value = t
            .upload(
                &t.org(&format!(
                    "/knowledge-bases/{}/documents?name=a.txt",
                    kb["id"].as_str().unwrap()
                )),
                &lisa,
                "text/plain",
                b"kept bytes".to_vec(),
            )
            .await
            .json()
            .await
            .unwrap();
        let hook: Value = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": "https://hooks.example.com/x", "events": ["enterprise.created"] }),
            )
            .await
            .json()
            .await
            .unwrap();
        t.post(
            &t.org("/invitations"),
            &t.owner_token,
            &json!({ "email": "new@acme.example", "role": "user" }),
        )
        .await;
        t.post(
            &t.org("/teams"),
            &t.owner_token,
            &json!({ "name": "Research" }),
        )
        .await;
        t.post(
            &t.org("/api-keys"),
            &t.owner_token,
            &json!({ "name": "CI" }),
        )
        .await;
        let before = t.store.row_counts().await.unwrap();

        // Back up while the server runs, then restore into a new data directory and database.
        let restored_dir = tempfile::tempdir().unwrap();
        let mut settings = t.settings.clone();
        settings.server.port = 0;
        settings.server.data_dir = restored_dir.path().to_path_buf();
        match b {
            Backend::Sqlite => {
                let copy = restored_dir.path().join("axie.db");
                t.store.backup_sqlite(&copy).await.unwrap();
                assert!(
                    t.store.backup_sqlite(&copy).await.is_err(),
                    "a backup never overwrites"
                );
                settings.database.url = String::new();
            }
            Backend::Postgres => {
                assert!(
                    t.store
                        .backup_sqlite(&restored_dir.path().join("x.db"))
                        .await
                        .is_err()
                );
                let dump = restored_dir.path().join("axie.dump");
                let src = t.settings.database.url.clone();
                let ok = std::process::Command::new("pg_dump")
                    .args(["--format=custom", "--no-owner", "--file"])
                    .arg(&dump)
                    .arg(&src)
                    .status()
                    .unwrap();
                assert!(ok.success());
                let server = store_sea::testing::postgres_server().unwrap();
                let fresh = store_sea::testing::fresh_postgres(&server)
                    .await
                    .unwrap()
                    .expose()
                    .to_owned();
                let ok = std::process::Command::new("pg_restore")
                    .args(["--no-owner", "--exit-on-error", "--dbname"])
                    .arg(&fresh)
                    .arg(&dump)
                    .status()
                    .unwrap();
                assert!(ok.success());
                settings.database.url = fresh;
            }
        }
        // The keys and the document bytes live outside the database and are backed up with it.
        for key in ["encryption.key", "checkpoint.key"] {
            std::fs::copy(t.data_dir().join(key), restored_dir.path().join(key)).unwrap();
        }
        let blobs = restored_dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        for f in std::fs::read_dir(t.data_dir().join("blobs")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), blobs.join(f.file_name())).unwrap();
        }
        let app = axie_server::Application::build_with_clock(settings, t.clock.clone())
            .await
            .unwrap();
        assert!(app.bootstrap().is_none());
        let restored_store = app.state().store.clone();
        let restored_health = app.state().health.clone();
        let addr = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        // Its first beat (a task of its own) stored before the rows are counted.
        for _ in 0..300 {
            if restored_health.passes("uptime") > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }

        // Every row, and the restored server's own beats (a new instance: a span of its own).
        let beats = |counts: &[(&str, i64)]| {
            counts
                .iter()
                .find(|(t, _)| *t == "service_uptime")
                .map(|(_, n)| *n)
        };
        let after = restored_store.row_counts().await.unwrap();
        assert!(
            beats(&after) > beats(&before) && beats(&before) > Some(0),
            "{after:?}"
        );
        let others = |counts: Vec<(&'static str, i64)>| -> Vec<(&'static str, i64)> {
            counts
                .into_iter()
                .filter(|(t, _)| *t != "service_uptime")
                .collect()
        };
        assert_eq!(others(after), others(before), "every table has every row");
        let login: Value = t
            .client
            .post(format!("{addr}/api/v1/auth/login"))
            .json(&json!({ "email": OWNER_EMAIL, "password": OWNER_PASSWORD }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap();
        let verify: Value = t
            .client
            .post(format!(
                "{addr}/api/v1/orgs/{}/audit-events/verify",
                t.org_id
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(verify["valid"], true, "{verify}");
        let bytes = t
            .client
            .get(format!(
                "{addr}/api/v1/orgs/{}/documents/{}/content",
                t.org_id,
                doc["id"].as_str().unwrap()
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(bytes.bytes().await.unwrap().as_ref(), b"kept bytes");
        // The webhook signing secret opens with the restored key.
        let key = std::fs::read_to_string(restored_dir.path().join("encryption.key")).unwrap();
        let cipher = security_policy::Cipher::from_text(&key).unwrap();
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let endpoint: rbac_core::EndpointId = hook["id"].as_str().unwrap().parse().unwrap();
        let stored = webhooks::WebhookStore::secrets(&*restored_store, org, endpoint)
            .await
            .unwrap();
        let opened =
            webhooks::signing_secrets(&cipher, endpoint, &stored, chrono::Utc::now()).unwrap();
        assert_eq!(opened[0].to_whsec(), hook["secret"].as_str().unwrap());
        // And so does its URL.
        let restored = webhooks::WebhookStore::get_endpoint(&*restored_store, org, endpoint)
            .await
            .unwrap();
        assert_eq!(restored.url.as_str(), hook["url"].as_str().unwrap());
    }
);

both_backends!(
    operators_delete_an_organization_by_its_name,
    |b| async move {
        let t = spawn_app(b).await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let name = json_of(t.get(&t.org(""), &t.owner_token).await).await["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let blobs = t.data_dir().join("blobs");
        // A document, whose bytes are stored outside the database.
        t.new_document(&t.owner_token).await;
        assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 1);
        // A name that does not match deletes nothing.
        assert!(
            axie_server::admin::delete_org(&t.store, org, "Somebody Else", &blobs)
                .await
                .is_err()
        );
        assert_eq!(
            t.get(&t.org("/members"), &mike).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            axie_server::admin::delete_org(&t.store, org, &name, &blobs)
                .await
                .unwrap(),
            1,
            "its one document"
        );
        assert_eq!(
            std::fs::read_dir(&blobs).map_or(0, Iterator::count),
            0,
            "their bytes are gone"
        );
        for token in [&t.owner_token, &mike] {
            assert_eq!(
                t.get(&t.org("/members"), token).await.status(),
                StatusCode::NOT_FOUND
            );
        }
        // The Owner and the Admins are told, in mail about no organization (the operator's
        // outbox, SMTP being off here).
        let mails = audit::MailOutbox::list_mails(&*t.store, None, None, 100)
            .await
            .unwrap();
        for to in [OWNER_EMAIL, "mike@example.com"] {
            assert!(
                mails.iter().any(|m| m.to == to
                    && m.subject == format!("{name} was deleted")
                    && m.body.contains("the service's operator deleted")),
                "no notice to {to}: {mails:?}"
            );
        }
        assert!(
            axie_server::admin::delete_org(&t.store, org, &name, &blobs)
                .await
                .is_err(),
            "gone"
        );
    }
);

both_backends!(
    a_relay_that_hangs_does_not_make_the_server_unready,
    |b| async move {
        // A relay that accepts connections and never says a word: every send waits out the
        // SMTP timeout (5 s an exchange, 15 s a message).
        let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = relay.local_addr().unwrap().port();
        let (accepted, mut connected) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = relay.accept().await {
                held.push(socket);
                let _ = accepted.send(());
            }
        });
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                smtp_port: Some(port),
                smtp_timeout_secs: Some(5),
                ..Options::default()
            },
        )
        .await;
        let res = t
            .post(
                &t.org("/invitations"),
                &t.owner_token,
                &json!({ "email": "slow-relay@example.com", "role": "user" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        tokio::time::timeout(std::time::Duration::from_secs(10), connected.recv())
            .await
            .expect("the mail worker connects to the relay")
            .unwrap();
        // The send hangs. Time moves past the 30 s any worker may be silent for, but not past
        // one send's limit and the margin: the mail worker is busy, not stalled.
        t.clock.advance(chrono::Duration::seconds(40));
        // The webhook worker, which beats every 50 ms, catches up with the clock.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let ready = t.client.get(t.url("/readyz")).send().await.unwrap();
        assert_eq!(
            ready.status(),
            StatusCode::OK,
            "{}",
            ready.text().await.unwrap()
        );
        // Much longer without a beat is a stall.
        t.clock.advance(chrono::Duration::seconds(600));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let res = t.client.get(t.url("/readyz")).send().await.unwrap();
        let p = problem(res, StatusCode::SERVICE_UNAVAILABLE, "not_ready").await;
        assert!(p["detail"].as_str().unwrap().contains("mail"), "{p}");
    }
);

both_backends!(
    an_incident_is_told_to_the_people_who_run_enterprise_organizations_once,
    |b| async move {
        let t = spawn_app(b).await;
        // A Pro organization has no uptime guarantee and is not told.
        let (pro, pro_owner) = crate::api_keys::second_org(&t, billing_limits::Plan::Pro).await;
        // A deactivated Admin is not told: Lisa, promoted, then deactivated (as SCIM does it,
        // set here in the database).
        let lisa = t.member_id("lisa@example.com").await;
        let res = t
            .patch(
                &t.org(&format!("/members/{lisa}")),
                &t.owner_token,
                &json!({ "role": "admin" }),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        t.store
            .execute_sql(&format!(
                "UPDATE memberships SET deactivated_at = 1 WHERE user_id = '{lisa}'"
            ))
            .await
            .unwrap();
        let now = t.clock.now();
        let notify = |resolved: bool| {
            axie_server::admin::notify_incident(
                &t.store,
                "2026-12-06-api-latency",
                "Slow API responses",
                "Responses take seconds.\nWe are on it.",
                resolved,
                false,
                now,
            )
        };
        // Another Enterprise organization; this one's log refuses the notice's record for a
        // while (as a full disk would): the other is told, this one is not, and the command
        // says so and fails.
        crate::api_keys::second_org(&t, billing_limits::Plan::Enterprise).await;
        t.refuse_audit_records(&format!(
            "NEW.action = 'service.incident_notified' AND NEW.org_id = '{}'",
            t.org_id
        ))
        .await;
        let failed = notify(false).await.unwrap_err().to_string();
        assert!(
            failed.contains("1 Enterprise organizations told now, 0 told before, 1 not told"),
            "{failed}"
        );
        t.accept_audit_records().await;
        // Run again after the failure: the one left out is told, nobody twice.
        let said = notify(false).await.unwrap();
        assert!(
            said.contains("1 Enterprise organizations told now, 1 told before"),
            "{said}"
        );
        let said = notify(false).await.unwrap();
        assert!(
            said.contains("0 Enterprise organizations told now, 2 told before"),
            "{said}"
        );
        let said = notify(true).await.unwrap();
        assert!(
            said.contains("2 Enterprise organizations told now"),
            "{said}"
        );

        let mails = json_of(t.get(&t.org("/outbox?limit=100"), &t.owner_token).await).await;
        let notices: Vec<&Value> = mails["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "incident_notice")
            .collect();
        let mut to: Vec<(&str, &str)> = notices
            .iter()
            .map(|m| (m["to"].as_str().unwrap(), m["subject"].as_str().unwrap()))
            .collect();
        to.sort_unstable();
        // The Owner and the Admin, once for the incident and once for its end; no User.
        assert_eq!(
            to,
            [
                ("mike@example.com", "[Incident] Slow API responses"),
                ("mike@example.com", "[Resolved] Slow API responses"),
                (OWNER_EMAIL, "[Incident] Slow API responses"),
                (OWNER_EMAIL, "[Resolved] Slow API responses"),
            ]
        );
        let body = notices.iter().find(|m| m["to"] == OWNER_EMAIL).unwrap()["body"]
            .as_str()
            .unwrap();
        assert!(
            body.contains("We are on it.") && body.contains("2026-12-06-api-latency"),
            "{body}"
        );
        let recorded = t.audit("action=service.incident_notified").await;
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[0]["actor_type"], "system");
        assert_eq!(recorded[0]["metadata"]["state"], "resolved");
        assert_eq!(recorded[1]["metadata"]["state"], "investigating");
        let pro_token = t.login(&pro_owner, OWNER_PASSWORD).await;
        let pro_kinds = outbox_kinds(&t, &pro, &pro_token).await;
        assert!(
            !pro_kinds.iter().any(|k| k == "incident_notice"),
            "{pro_kinds:?}"
        );
        // A reference that is not one is refused before anything is sent.
        assert!(
            axie_server::admin::notify_incident(&t.store, "no spaces", "x", "y", false, false, now)
                .await
                .is_err()
        );
        assert!(
            axie_server::admin::notify_incident(&t.store, "ok", "", "y", false, false, now)
                .await
                .is_err()
        );
    }
);

/// The kinds of the mail in `org`'s outbox, as `token` reads it.
async fn outbox_kinds(t: &TestApp, org: &str, token: &str) -> Vec<String> {
    let mails = json_of(
        t.get(
            &t.url(&format!("/api/v1/orgs/{org}/outbox?limit=100")),
            token,
        )
        .await,
    )
    .await;
    mails["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["kind"].as_str().expect("kind").to_owned())
        .collect()
}

/// The uptime report of `month`, as the Owner reads it.
async fn uptime_of(t: &TestApp, month: tenancy::uptime::Month) -> Value {
    let url = t.org(&format!("/uptime?month={month}"));
    json_of(t.get(&url, &t.owner_token).await).await
}

both_backends!(
    the_monthly_uptime_report_counts_the_gaps_between_beats,
    |b| async move {
        use tenancy::uptime::Month;
        let mut t = spawn_app_with(
            b,
            Options {
                demo: true,
                // (A beat every 5 s: an outage is a gap of more than 15 s, which no load on
                // this machine makes of a beat held up.)
                heartbeat_secs: Some(5),
                ..Options::default()
            },
        )
        .await;
        let started = t.clock.now();
        let this_month = Month::of(started);
        // This month so far: monitored since the first beat, at start, with no outage.
        let r = json_of(t.get(&t.org("/uptime"), &t.owner_token).await).await;
        assert_eq!(r["month"], this_month.to_string(), "{r}");
        let from = chrono::DateTime::parse_from_rfc3339(r["monitored_from"].as_str().unwrap())
            .unwrap()
            .to_utc();
        assert!(
            from <= started && started - from < chrono::Duration::seconds(30),
            "{r}"
        );
        assert_eq!(r["outages"], json!([]), "{r}");
        assert_eq!(r["down_seconds"], 0, "{r}");
        assert_eq!(r["availability_percent"], "100.000", "{r}");
        assert_eq!(r["committed_percent"], "99.9", "{r}");
        assert_eq!(r["met"], true, "{r}");
        assert_eq!(r["complete"], false, "{r}");

        // No beat for two hours (the clock jumps, as a suspended machine's does): the next
        // beat, within 5 s, starts a new span, and the gap is an outage, counted whole.
        t.clock.advance(chrono::Duration::hours(2));
        // (Signed in again: two hours idle ended the session.)
        t.owner_token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let months: Vec<Month> = {
            let mut m = vec![this_month, Month::of(t.clock.now())];
            m.dedup();
            m
        };
        // The next beat ends the outage (until then it is under way).
        let ended = |r: &Value| {
            r["outages"]
                .as_array()
                .and_then(|o| o.last())
                .is_some_and(|o| o["ongoing"] == false)
        };
        let mut last = Value::Null;
        for _ in 0..300 {
            last = uptime_of(&t, *months.last().unwrap()).await;
            if ended(&last) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ended(&last), "{last}");
        let mut down = 0;
        for m in &months {
            down += uptime_of(&t, *m).await["down_seconds"].as_i64().unwrap();
        }
        assert!((7_200..7_220).contains(&down), "down {down} s");
        let r = uptime_of(&t, *months.last().unwrap()).await;
        assert_eq!(
            r["met"], false,
            "two hours down misses 99.9 % of any month: {r}"
        );
        let percent: f64 = r["availability_percent"].as_str().unwrap().parse().unwrap();
        assert!(percent < 99.9, "{r}");

        // An outage the operator declares within the gap the beats show (half an hour to ten
        // minutes ago) is counted once, and named in it.
        let now = t.clock.now();
        for (resolved, at) in [
            (false, now - chrono::Duration::minutes(30)),
            (true, now - chrono::Duration::minutes(10)),
        ] {
            axie_server::admin::notify_incident(
                &t.store,
                "2026-12-06-api-down",
                "API unreachable",
                "Requests time out.",
                resolved,
                true,
                at,
            )
            .await
            .unwrap();
        }
        let mut both = 0;
        let mut named = false;
        for m in &months {
            let r = uptime_of(&t, *m).await;
            both += r["down_seconds"].as_i64().unwrap();
            named |= r["outages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["declared"] == json!(["2026-12-06-api-down"]));
        }
        assert!(
            named,
            "the declared outage is named in the one the beats show"
        );
        assert!((7_200..7_220).contains(&both), "counted once: {both} s");
        // A resolved notice ends the incident's declared outage also without `--outage`.
        for (resolved, outage) in [(false, true), (true, false)] {
            axie_server::admin::notify_incident(
                &t.store,
                "2026-12-06-lb",
                "Load balancer",
                "Down.",
                resolved,
                outage,
                now - chrono::Duration::minutes(5),
            )
            .await
            .unwrap();
        }
        for m in &months {
            let r = uptime_of(&t, *m).await;
            assert!(
                r["outages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|o| o["ongoing"] == false),
                "{r}"
            );
        }
        // Its reference, over, starts no new outage.
        assert!(
            axie_server::admin::notify_incident(
                &t.store,
                "2026-12-06-lb",
                "Load balancer",
                "Down again.",
                false,
                true,
                now,
            )
            .await
            .is_err()
        );
        // Its resolved notice without its start is refused, and nobody is told.
        let refused =
            axie_server::admin::notify_incident(&t.store, "never-begun", "x", "y", true, true, now)
                .await;
        assert!(refused.is_err());
        // The operator's command prints it too.
        let text = axie_server::admin::uptime_report(
            &t.store,
            Some(&months.last().unwrap().to_string()),
            t.settings.uptime.tolerance(),
            t.clock.now(),
        )
        .await
        .unwrap();
        assert!(
            text.contains(&format!("% of {} so far", months.last().unwrap())),
            "{text}"
        );
        assert!(text.contains("Committed: 99.9 %. Not met."), "{text}");
        assert!(
            axie_server::admin::uptime_report(
                &t.store,
                Some("2026-13"),
                t.settings.uptime.tolerance(),
                t.clock.now()
            )
            .await
            .is_err()
        );
        // Bad months are refused.
        for bad in ["2026-13", "26-11", "2999-01"] {
            let res = t
                .get(&t.org(&format!("/uptime?month={bad}")), &t.owner_token)
                .await;
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }

        // When the month is over, the hourly pass mails its report to the Owner and the Admin of
        // every Enterprise organization once (a Pro one gets none), as the system.
        let (pro, pro_owner) = crate::api_keys::second_org(&t, billing_limits::Plan::Pro).await;
        let over = this_month.end() + chrono::Duration::hours(1);
        let month = *months.last().unwrap();
        let over = over.max(month.end() + chrono::Duration::hours(1));
        let tolerance = t.settings.uptime.tolerance();
        // Not at the month's very end: a beat of its last moments may still be on its way.
        let too_soon = axie_server::workers::send_uptime_reports(&t.store, tolerance, month.end())
            .await
            .unwrap();
        assert_eq!(too_soon, 0);
        let sent = axie_server::workers::send_uptime_reports(&t.store, tolerance, over)
            .await
            .unwrap();
        assert_eq!(sent, 1);
        let again = axie_server::workers::send_uptime_reports(&t.store, tolerance, over)
            .await
            .unwrap();
        assert_eq!(again, 0, "once per organization and month");
        let mails = json_of(t.get(&t.org("/outbox?limit=100"), &t.owner_token).await).await;
        let reports: Vec<&Value> = mails["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "uptime_report")
            .collect();
        let mut to: Vec<&str> = reports.iter().map(|m| m["to"].as_str().unwrap()).collect();
        to.sort_unstable();
        assert_eq!(to, ["mike@example.com", OWNER_EMAIL]);
        let subject = reports[0]["subject"].as_str().unwrap();
        assert!(
            subject.starts_with(&format!("Uptime report {month}: ")),
            "{subject}"
        );
        let body = reports[0]["body"].as_str().unwrap();
        // The two hours, and the time from the last beat to the month's end (the report was
        // made an hour after it, with no beat since).
        assert!(body.contains("Outages (2, "), "{body}");
        assert!(body.contains("Committed: 99.9 %. Not met."), "{body}");
        let recorded = t.audit("action=service.uptime_reported").await;
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0]["actor_type"], "system");
        assert_eq!(recorded[0]["metadata"]["month"], month.to_string());
        assert_eq!(recorded[0]["metadata"]["met"], false);
        let pro_token = t.login(&pro_owner, OWNER_PASSWORD).await;
        let pro_kinds = outbox_kinds(&t, &pro, &pro_token).await;
        assert!(
            !pro_kinds.iter().any(|k| k == "uptime_report"),
            "{pro_kinds:?}"
        );
        // Pro reads the report against its own commitment, 99 %.
        let r = json_of(
            t.get(&t.url(&format!("/api/v1/orgs/{pro}/uptime")), &pro_token)
                .await,
        )
        .await;
        assert_eq!(r["committed_percent"], "99.0", "{r}");
    }
);

both_backends!(
    the_owner_and_admins_write_to_support_with_a_priority,
    |b| async move {
        let t = spawn_app(b).await;
        let url = t.org("/support-requests");
        let before = t.clock.now();
        let sent = json_of(
            t.post(
                &url,
                &t.owner_token,
                &json!({ "priority": "critical", "subject": "Chat interfaces do not answer",
                         "body": "Since 10:05 every chat interface answers 502.\nProduction is down." }),
            )
            .await,
        )
        .await;
        let after = t.clock.now();
        let reference = sent["reference"].as_str().unwrap().to_owned();
        assert!(
            reference.starts_with("SUP-") && reference.len() == 16,
            "{sent}"
        );
        assert_eq!(sent["priority"], "critical");
        // Critical on Enterprise: two hours, around the clock.
        let two_hours = chrono::Duration::hours(2);
        let critical = utc_of(&sent["response_due_at"]);
        assert!(
            before + two_hours <= critical && critical <= after + two_hours,
            "{sent}"
        );
        // An Admin's high-priority request: due in business hours, as the guide's table has it.
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let before = t.clock.now();
        let high = json_of(
            t.post(
                &url,
                &mike,
                &json!({ "priority": "high", "subject": "SSO question", "body": "How?" }),
            )
            .await,
        )
        .await;
        let after = t.clock.now();
        let closed = &t.settings.support.closed_days;
        let promised = |at| {
            billing_limits::catalogue::Priority::High
                .response_time()
                .due(at, closed)
        };
        let high_due = utc_of(&high["response_due_at"]);
        assert!(
            promised(before) <= high_due && high_due <= promised(after),
            "{high}"
        );
        // The desk is closed for the eight days from today (the test server's setting): the
        // four business hours come after them.
        assert!(high_due > before + chrono::Duration::days(7), "{high}");
        // Users do not; bad requests are refused with nothing sent.
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        problem(
            t.post(
                &url,
                &tom,
                &json!({ "priority": "low", "subject": "x", "body": "y" }),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        for bad in [
            json!({ "priority": "urgent", "subject": "x", "body": "y" }),
            json!({ "priority": "low", "subject": " ", "body": "y" }),
            json!({ "priority": "low", "subject": "x\r\nBcc: all@example.com", "body": "y" }),
            json!({ "priority": "low", "subject": "x", "body": "y".repeat(10_001) }),
        ] {
            problem(
                t.post(&url, &t.owner_token, &bad).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
        }

        // The desk gets the request, the author a copy.
        let mails = json_of(t.get(&t.org("/outbox?limit=100"), &t.owner_token).await).await;
        let items = mails["items"].as_array().unwrap();
        let to_desk: Vec<&Value> = items
            .iter()
            .filter(|m| m["kind"] == "support_request")
            .collect();
        assert_eq!(to_desk.len(), 2, "{mails}");
        let first = to_desk
            .iter()
            .find(|m| m["subject"].as_str().unwrap().contains(&reference))
            .unwrap();
        assert_eq!(first["to"], "desk@support.example");
        assert_eq!(
            first["subject"],
            format!("[ENTERPRISE][CRITICAL] Chat interfaces do not answer ({reference})")
        );
        let body = first["body"].as_str().unwrap();
        assert!(
            body.contains("Acme Corp")
                && body.contains(OWNER_EMAIL)
                && body.contains("Production is down."),
            "{body}"
        );
        let copies: Vec<&str> = items
            .iter()
            .filter(|m| m["kind"] == "support_request_copy")
            .map(|m| m["to"].as_str().unwrap())
            .collect();
        assert_eq!(copies.len(), 2);
        assert!(copies.contains(&OWNER_EMAIL) && copies.contains(&"mike@example.com"));
        // Audited without the request's text.
        let recorded = t.audit("action=support.requested").await;
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[1]["metadata"]["reference"], reference.as_str());
        assert_eq!(recorded[1]["metadata"]["priority"], "critical");
        assert!(!recorded[1].to_string().contains("Production is down"));

        // Pro has no response times.
        let (pro, pro_owner) = crate::api_keys::second_org(&t, billing_limits::Plan::Pro).await;
        let pro_token = t.login(&pro_owner, OWNER_PASSWORD).await;
        let pro_sent = json_of(
            t.post(
                &t.url(&format!("/api/v1/orgs/{pro}/support-requests")),
                &pro_token,
                &json!({ "priority": "low", "subject": "Invoices", "body": "Where?" }),
            )
            .await,
        )
        .await;
        assert_eq!(pro_sent.get("response_due_at"), Some(&Value::Null));

        // A server without a support address takes none.
        let other = t
            .another_instance_with(|s| s.support.email = String::new())
            .await;
        let res = t
            .client
            .post(format!("{other}/api/v1/orgs/{}/support-requests", t.org_id))
            .bearer_auth(&t.owner_token)
            .json(&json!({ "priority": "low", "subject": "x", "body": "y" }))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::SERVICE_UNAVAILABLE, "support_unavailable").await;

        // Twenty requests an hour per organization: two sent above, eighteen more, then 429.
        for n in 0..18 {
            let res = t
                .post(
                    &url,
                    &t.owner_token,
                    &json!({ "priority": "low", "subject": format!("Question {n}"), "body": "?" }),
                )
                .await;
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let res = t
            .post(
                &url,
                &t.owner_token,
                &json!({ "priority": "low", "subject": "One more", "body": "?" }),
            )
            .await;
        assert!(res.headers().contains_key("retry-after"));
        problem(res, StatusCode::TOO_MANY_REQUESTS, "support_throttled").await;
        // An hour after the first, the desk takes requests again.
        t.clock.advance(chrono::Duration::minutes(61));
        let owner = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let res = t
            .post(
                &url,
                &owner,
                &json!({ "priority": "low", "subject": "Later", "body": "?" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
);
