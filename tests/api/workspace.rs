//! Shared workspace and teams: the guide's examples and scenarios end to end, document
//! uploads, domain verification over DNS, and a randomized tenant/team isolation sweep.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api_keys::second_org;
use crate::both_backends;
use crate::helpers::*;

async fn created(res: reqwest::Response) -> Value {
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Opens the audit log (and exports, and API keys) to organization Users, as the Owner.
async fn open_audit_log_to_users(t: &TestApp) {
    let open = json!({"create_api_keys": "admins_and_users", "manage_domains": "admins_only", "view_audit_logs": "admins_and_users", "export_data": "admins_and_users"});
    let res = t
        .client
        .put(t.org("/feature-access"))
        .bearer_auth(&t.owner_token)
        .json(&open)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn new_team(t: &TestApp, token: &str, name: &str) -> String {
    id(&created(
        t.post(&t.org("/teams"), token, &json!({ "name": name }))
            .await,
    )
    .await)
}

async fn set_team_role(t: &TestApp, team: &str, user: &str, role: &str) {
    let res = t
        .put(
            &t.org(&format!("/teams/{team}/members/{user}")),
            &t.owner_token,
            &json!({ "role": role }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

async fn default_team(t: &TestApp) -> String {
    let teams = json_of(t.get(&t.org("/teams"), &t.owner_token).await).await;
    teams["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["is_default"] == true)
        .map(id)
        .unwrap()
}

/// `field` of every item of an organization list read `limit` at a time, following
/// `next_cursor`.
async fn every_page(t: &TestApp, token: &str, path: &str, limit: u32, field: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut url = t.org(&format!("{path}?limit={limit}"));
    loop {
        let page = json_of(t.get(&url, token).await).await;
        all.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x[field].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => url = t.org(&format!("{path}?limit={limit}&cursor={c}")),
            None => return all,
        }
    }
}

fn names(page: &Value) -> Vec<String> {
    let mut n: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

both_backends!(the_guides_shared_workspace_example, |b| async move {
    let t = spawn_app(b).await;
    let (mike, lisa, tom) = (
        t.login("mike@example.com", DEMO_PASSWORD).await,
        t.login("lisa@example.com", DEMO_PASSWORD).await,
        t.login("tom@example.com", DEMO_PASSWORD).await,
    );
    // The demo seed is the guide's example: Sarah (the Owner) created "Customer Support"
    // with its knowledge base. Mike sees it at once and uses it.
    let listed = json_of(t.get(&t.org("/chat-interfaces"), &mike).await).await;
    let support = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Customer Support")
        .cloned()
        .expect("Mike sees Customer Support");
    assert_eq!(support["created_by"], t.member_id(OWNER_EMAIL).await);
    let support_url = t.org(&format!("/chat-interfaces/{}", id(&support)));
    let kbs = json_of(t.get(&t.org("/knowledge-bases"), &lisa).await).await;
    let kb = kbs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["parent_id"] == support["id"])
        .cloned()
        .expect("Lisa sees its knowledge base");
    assert_eq!(
        kb["team_id"], support["team_id"],
        "the knowledge base sits in its chat interface's team"
    );
    for _ in 0..3 {
        let res = t
            .post(&format!("{support_url}/use"), &mike, &json!({}))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    // Lisa adds a document to its knowledge base; the bytes come back as uploaded.
    let docs_url = t.org(&format!("/knowledge-bases/{}/documents", id(&kb)));
    let faq = b"# FAQ\n\nQ: Do you ship abroad?\nA: Yes.\n".to_vec();
    let doc = created(
        t.upload(
            &format!("{docs_url}?name=FAQ.md"),
            &lisa,
            "text/markdown; charset=utf-8",
            faq.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(doc["size_bytes"], faq.len());
    assert_eq!(doc["content_type"], "text/markdown");
    assert_eq!(doc["created_by"], t.member_id("lisa@example.com").await);
    let content = t
        .get(&t.org(&format!("/documents/{}/content", id(&doc))), &tom)
        .await;
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(content.headers()["content-type"], "text/markdown");
    assert_eq!(content.bytes().await.unwrap().to_vec(), faq);
    // The download is on the record: who read which document.
    let read = t.audit("action=document.downloaded").await;
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(
        (
            &read[0]["actor_name"],
            &read[0]["target_id"],
            &read[0]["metadata"]["bytes"]
        ),
        (&json!("Tom"), &doc["id"], &json!(faq.len()))
    );

    // Tom views analytics for all interfaces: Mike's three uses and Lisa's bytes are there.
    let a = json_of(t.get(&t.org("/analytics"), &tom).await).await;
    let uses = a["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource_id"] == support["id"])
        .unwrap();
    assert_eq!(uses["count"], 3);
    assert_eq!(uses["metric"], "messages");
    let storage = a["storage"].as_array().unwrap();
    assert_eq!(storage.len(), 1);
    assert_eq!(storage[0]["bytes"], faq.len());

    // Tom may not delete Lisa's document; Lisa may, and the bytes go with it.
    let doc_url = t.org(&format!("/documents/{}", id(&doc)));
    let denied = problem(
        t.delete(&doc_url, &tom).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(denied["reason"], "not_creator");
    assert_eq!(
        t.delete(&doc_url, &lisa).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        t.get(&format!("{doc_url}/content"), &tom).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // The audit log reads like the guide's.
    let texts: Vec<String> = t
        .audit("limit=200")
        .await
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "| Sarah Owner | Created chat interface \"Customer Support\"",
        "| Lisa | Uploaded document \"FAQ.md\" to knowledge base \"",
        "| Tom | Downloaded document \"FAQ.md\"",
        "| Tom | Viewed analytics dashboard",
        "| Lisa | Deleted document \"FAQ.md\"",
    ] {
        assert!(
            texts.iter().any(|l| l.contains(expected)),
            "no `{expected}` in {texts:#?}"
        );
    }
});

both_backends!(
    concurrent_edits_of_one_chat_interface_all_apply,
    |b| async move {
        // Fourteen edits racing on one record (the service tries each up to 16 times, and every
        // failed try means another edit committed): each names only the fields it sets, so each is
        // applied to the record as the others left it. None is refused and no field is lost.
        let t = spawn_app(b).await;
        let listed = json_of(t.get(&t.org("/chat-interfaces"), &t.owner_token).await).await;
        let support = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Customer Support")
            .map(id)
            .unwrap();
        let url = t.org(&format!("/chat-interfaces/{support}"));
        let mut bodies: Vec<Value> = (0..12)
            .map(|i| json!({ "description": format!("edit {i}") }))
            .collect();
        bodies.push(json!({ "name": "Customer Support (EU)" }));
        bodies.push(json!({ "instructions": "Answer in the customer's language." }));
        let answers = futures::future::join_all(
            bodies
                .iter()
                .map(|body| t.patch(&url, &t.owner_token, body)),
        )
        .await;
        for res in answers {
            let status = res.status();
            assert_eq!(status, StatusCode::OK, "{}", res.text().await.unwrap());
        }
        let now = json_of(t.get(&url, &t.owner_token).await).await;
        assert_eq!(now["name"], "Customer Support (EU)", "{now}");
        assert_eq!(now["instructions"], "Answer in the customer's language.");
        let description = now["description"].as_str().unwrap();
        assert!(
            description.starts_with("edit "),
            "one of the edits' descriptions, not the seed's: {description}"
        );
        let audited = json_of(
        t.get(
            &t.org(&format!(
                "/audit-events?action=chat_interface.updated&target_type=chat_interface&target_id={support}&limit=100"
            )),
            &t.owner_token,
        )
        .await,
    )
    .await;
        assert_eq!(
            audited["items"].as_array().unwrap().len(),
            14,
            "every edit committed with its own record"
        );
    }
);

both_backends!(
    document_bytes_no_document_refers_to_are_set_aside_at_start,
    |b| async move {
        // What a crash or a stop between a commit and its file work leaves: bytes of a
        // document that was deleted, or never committed. A server started afterwards sets them
        // aside (older than a day only: an upload under way writes its bytes before its row),
        // puts back what a document refers to again (what a server on the wrong database set
        // aside), and removes what it set aside 30 days before and nothing refers to.
        let t = spawn_app(b).await;
        let kb = created(
            t.post(
                &t.org("/knowledge-bases"),
                &t.owner_token,
                &json!({ "name": "Docs" }),
            )
            .await,
        )
        .await;
        let mut docs = Vec::new();
        for (name, text) in [("a.md", "kept"), ("b.md", "put back")] {
            docs.push(
                created(
                    t.upload(
                        &t.org(&format!(
                            "/knowledge-bases/{}/documents?name={name}",
                            id(&kb)
                        )),
                        &t.owner_token,
                        "text/markdown",
                        text.as_bytes().to_vec(),
                    )
                    .await,
                )
                .await,
            );
        }
        let dir = t.settings.workspace.blob_dir(&t.settings.server.data_dir);
        let aside = dir.join("unreferenced");
        std::fs::create_dir_all(&aside).unwrap();
        let days_ago = |days: u64| {
            std::time::SystemTime::now() - std::time::Duration::from_secs(days * 24 * 3600)
        };
        let age = |path: &std::path::Path, days: u64| {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(days_ago(days))
                .unwrap();
        };
        let kept = dir.join(id(&docs[0]));
        age(&kept, 2);
        // Set aside a month ago by a server on the wrong database: a document refers to it.
        let wrongly = dir.join(id(&docs[1]));
        std::fs::rename(&wrongly, aside.join(id(&docs[1]))).unwrap();
        age(&aside.join(id(&docs[1])), 31);
        let orphan_key = rbac_core::ResourceId::new().to_string();
        let orphan = dir.join(&orphan_key);
        std::fs::write(&orphan, b"AXB1 left by a crash").unwrap();
        age(&orphan, 2);
        let recent = dir.join(rbac_core::ResourceId::new().to_string());
        std::fs::write(&recent, b"AXB1 an upload under way").unwrap();
        let not_a_key = dir.join("notes.txt");
        std::fs::write(&not_a_key, b"the operator's").unwrap();
        age(&not_a_key, 2);
        let long_aside = aside.join(rbac_core::ResourceId::new().to_string());
        std::fs::write(&long_aside, b"AXB1 set aside a month ago").unwrap();
        age(&long_aside, 31);
        let _second = t.another_instance().await;
        let mut waited = 0;
        while orphan.exists() || long_aside.exists() || !wrongly.exists() {
            waited += 1;
            assert!(waited < 100, "the sweep did not run");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            std::fs::read(aside.join(&orphan_key)).unwrap(),
            b"AXB1 left by a crash",
            "set aside, not removed"
        );
        assert!(kept.exists() && recent.exists() && not_a_key.exists());
        for (doc, text) in [(&docs[0], "kept"), (&docs[1], "put back")] {
            let content = t
                .get(
                    &t.org(&format!("/documents/{}/content", id(doc))),
                    &t.owner_token,
                )
                .await;
            assert_eq!(content.status(), StatusCode::OK);
            assert_eq!(content.bytes().await.unwrap().as_ref(), text.as_bytes());
        }
    }
);

both_backends!(uploads_are_checked_and_limits_apply, |b| async move {
    let t = spawn_app(b).await;
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    let kb = created(
        t.post(
            &t.org("/knowledge-bases"),
            &lisa,
            &json!({ "name": "Docs" }),
        )
        .await,
    )
    .await;
    let url = t.org(&format!("/knowledge-bases/{}/documents?name=x", id(&kb)));
    problem(
        t.upload(&url, &lisa, "application/x-msdownload", b"MZ".to_vec())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    problem(
        t.upload(&url, &lisa, "text/plain", Vec::new()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    let too_big = vec![b'a'; 10 * 1024 * 1024 + 1];
    problem(
        t.upload(&url, &lisa, "text/plain", too_big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    let ok = created(
        t.upload(&url, &lisa, "text/plain", vec![b'a'; 10 * 1024 * 1024])
            .await,
    )
    .await;
    assert_eq!(ok["size_bytes"], 10 * 1024 * 1024);
    let listed = json_of(
        t.get(
            &t.org(&format!("/knowledge-bases/{}/documents", id(&kb))),
            &lisa,
        )
        .await,
    )
    .await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "refused uploads left nothing behind"
    );

    // Deleting the knowledge base takes its documents and their bytes.
    assert_eq!(
        t.delete(&t.org(&format!("/knowledge-bases/{}", id(&kb))), &lisa)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        t.get(&t.org(&format!("/documents/{}", id(&ok))), &lisa)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A Free organization gets one chat interface; the refusal names limit, use and plan.
    let (other_org, email) = second_org(&t, billing_limits::Plan::Free).await;
    let owner = t.login(&email, OWNER_PASSWORD).await;
    let url = t.url(&format!("/api/v1/orgs/{other_org}/chat-interfaces"));
    created(t.post(&url, &owner, &json!({ "name": "One" })).await).await;
    let p = problem(
        t.post(&url, &owner, &json!({ "name": "Two" })).await,
        StatusCode::FORBIDDEN,
        "limit_reached",
    )
    .await;
    assert_eq!(
        (
            p["limit"].as_str(),
            p["used"].as_u64(),
            p["max"].as_u64(),
            p["plan"].as_str()
        ),
        (Some("chat_interfaces"), Some(1), Some(1), Some("free"))
    );
    let p = problem(
        t.post(
            &t.url(&format!("/api/v1/orgs/{other_org}/domains")),
            &owner,
            &json!({ "hostname": "chat.globex.example" }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "limit_reached",
    )
    .await;
    assert_eq!(p["limit"], "custom_domains");
});

both_backends!(
    the_development_lifecycle_moves_an_agent_through_the_pipeline,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let tom_id = t.member_id("tom@example.com").await;
        let dev = new_team(&t, &t.owner_token, "Development").await;
        let test = new_team(&t, &t.owner_token, "Testing").await;
        let prod = new_team(&t, &t.owner_token, "Production").await;
        // Lisa develops and tests; Tom watches production.
        set_team_role(&t, &dev, &lisa_id, "admin").await;
        set_team_role(&t, &test, &lisa_id, "admin").await;
        set_team_role(&t, &prod, &tom_id, "viewer").await;

        let agent = created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Customer Service Agent - DEV", "team_id": dev }),
            )
            .await,
        )
        .await;
        let kb = created(
            t.post(
                &t.org("/knowledge-bases"),
                &lisa,
                &json!({ "name": "Answers", "chat_interface_id": id(&agent) }),
            )
            .await,
        )
        .await;
        let transfer_url = t.org(&format!("/assets/{}/transfer", id(&agent)));

        // Dev → Test by Lisa, admin of both.
        let moved = json_of(
            t.post(
                &transfer_url,
                &lisa,
                &json!({ "team_id": test, "name": "Customer Service Agent - TEST",
                         "note": "  Dev sign-off: 12/12 scripted conversations pass.\n\tRun 41.  " }),
            )
            .await,
        )
        .await;
        assert_eq!(moved["asset"]["team_id"], test);
        let qa_note = "Dev sign-off: 12/12 scripted conversations pass.\n\tRun 41.";
        assert_eq!(moved["transfer"]["note"], qa_note);
        assert_eq!(moved["asset"]["name"], "Customer Service Agent - TEST");
        // Tom is not in Testing: to him it is no asset at all, of no kind.
        let hidden = problem(
            t.get(&t.org(&format!("/assets/{}/transfers", id(&agent))), &tom)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert_eq!(hidden["detail"], "asset not found", "{hidden}");
        let kb_now = json_of(
            t.get(&t.org(&format!("/knowledge-bases/{}", id(&kb))), &lisa)
                .await,
        )
        .await;
        assert_eq!(
            kb_now["team_id"], test,
            "the knowledge base moves with its agent"
        );

        // Test → Prod needs rights on Production, which Lisa lacks: she cannot even see it.
        problem(
            t.post(&transfer_url, &lisa, &json!({ "team_id": prod }))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        // Tom sees Production but is not its admin, and cannot see Testing.
        problem(
            t.post(&transfer_url, &tom, &json!({ "team_id": prod }))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        // A note too long, or with a control character, refuses the move: nothing moves.
        for bad in ["x".repeat(2_001), "QA passed\u{7}".to_owned()] {
            problem(
                t.post(
                    &transfer_url,
                    &t.owner_token,
                    &json!({ "team_id": prod, "note": bad }),
                )
                .await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
        }
        let still = json_of(
            t.get(&t.org(&format!("/chat-interfaces/{}", id(&agent))), &lisa)
                .await,
        )
        .await;
        assert_eq!(still["team_id"], test);
        let moved = json_of(
            t.post(
                &transfer_url,
                &t.owner_token,
                &json!({ "team_id": prod, "name": "Customer Service Agent - PROD", "note": "" }),
            )
            .await,
        )
        .await;
        assert_eq!(moved["asset"]["team_id"], prod);
        assert_eq!(
            moved["transfer"].get("note"),
            Some(&Value::Null),
            "empty is none"
        );

        // Now Lisa no longer sees it; Tom does, read-only.
        let agent_url = t.org(&format!("/chat-interfaces/{}", id(&agent)));
        let lisa_id = t.member_id("lisa@example.com").await;
        let refusals_of_lisa = format!("action=access.denied&actor_id={lisa_id}&limit=100");
        let before = t.audit(&refusals_of_lisa).await.len();
        let hidden = problem(
            t.get(&agent_url, &lisa).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        // To her it is not there, as a missing one is not; the log records that she asked for
        // another team's, where she cannot read it (her own view of the log, her personal-data
        // export).
        let missing = problem(
            t.get(
                &t.org(&format!(
                    "/chat-interfaces/res_{}",
                    uuid::Uuid::now_v7().simple()
                )),
                &lisa,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert_eq!(hidden["detail"], missing["detail"]);
        let refusals = t.audit(&refusals_of_lisa).await;
        assert_eq!(refusals.len(), before + 1, "{refusals:#?}");
        assert_eq!(refusals[0]["outcome"], "denied");
        assert_eq!(refusals[0]["reason"], "not_team_member");
        let export = json_of(
            t.get(&t.org(&format!("/members/{lisa_id}/personal-data")), &lisa)
                .await,
        )
        .await;
        let records = export["audit_records"].as_array().unwrap();
        assert!(!records.is_empty(), "{export}");
        assert!(
            records.iter().all(|r| r["seq"] != refusals[0]["seq"]),
            "{export}"
        );
        // A team of others' answers as a missing team, in the same words.
        let hidden_team = problem(
            t.get(&t.org(&format!("/teams/{prod}")), &lisa).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let missing_team = problem(
            t.get(
                &t.org(&format!("/teams/team_{}", uuid::Uuid::now_v7().simple())),
                &lisa,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert_eq!(hidden_team["detail"], missing_team["detail"]);
        assert_eq!(
            json_of(t.get(&agent_url, &tom).await).await["name"],
            "Customer Service Agent - PROD"
        );
        problem(
            t.patch(&agent_url, &tom, &json!({ "name": "x" })).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;

        // The history is kept and audited.
        let history = json_of(
            t.get(
                &t.org(&format!("/assets/{}/transfers", id(&agent))),
                &t.owner_token,
            )
            .await,
        )
        .await;
        let hops: Vec<(&str, &str)> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["from_team_id"].as_str().unwrap(),
                    h["to_team_id"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            hops,
            vec![
                (dev.as_str(), test.as_str()),
                (test.as_str(), prod.as_str())
            ]
        );
        assert_eq!(history[0]["note"], qa_note);
        assert_eq!(history[1].get("note"), Some(&Value::Null));
        let recorded = t.audit("action=asset.transferred").await;
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[1]["metadata"]["note"], qa_note, "{}", recorded[1]);
        assert_eq!(recorded[1]["metadata"]["note_truncated"], false);
        // Moving to the team it is in, or moving a child on its own, is refused.
        problem(
            t.post(&transfer_url, &t.owner_token, &json!({ "team_id": prod }))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        problem(
            t.post(
                &t.org(&format!("/assets/{}/transfer", id(&kb))),
                &t.owner_token,
                &json!({ "team_id": dev }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        // A bug found in production goes back to Testing with a long report: the longest note,
        // in letters of two bytes, moves; its record keeps the first 500 characters.
        let report = "é".repeat(2_000);
        let back = json_of(
            t.post(
                &transfer_url,
                &t.owner_token,
                &json!({ "team_id": test, "note": report }),
            )
            .await,
        )
        .await;
        assert_eq!(back["transfer"]["note"], report.as_str());
        let recorded = &t.audit("action=asset.transferred").await[0];
        assert_eq!(recorded["metadata"]["note"], "é".repeat(500));
        assert_eq!(recorded["metadata"]["note_truncated"], true);
    }
);

both_backends!(
    client_teams_are_separated_and_developers_administer_all,
    |b| async move {
        let t = spawn_app(b).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let tom_id = t.member_id("tom@example.com").await;
        let client_a = new_team(&t, &mike, "Client A").await;
        let client_b = new_team(&t, &mike, "Client B").await;
        // Tom is Client A's stakeholder: only in Client A, as a viewer.
        set_team_role(&t, &client_a, &tom_id, "viewer").await;
        let default = default_team(&t).await;
        assert_eq!(
            t.delete(&t.org(&format!("/teams/{default}/members/{tom_id}")), &mike)
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        let a_bot = created(
            t.post(
                &t.org("/chat-interfaces"),
                &mike,
                &json!({ "name": "A bot", "team_id": client_a }),
            )
            .await,
        )
        .await;
        let b_bot = created(
            t.post(
                &t.org("/chat-interfaces"),
                &mike,
                &json!({ "name": "B bot", "team_id": client_b }),
            )
            .await,
        )
        .await;

        let teams = json_of(t.get(&t.org("/teams"), &tom).await).await;
        assert_eq!(names(&teams), vec!["Client A".to_owned()]);
        assert_eq!(
            names(&json_of(t.get(&t.org("/chat-interfaces"), &tom).await).await),
            vec!["A bot".to_owned()]
        );
        problem(
            t.get(&t.org(&format!("/chat-interfaces/{}", id(&b_bot))), &tom)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.get(&t.org(&format!("/teams/{client_b}")), &tom).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.get(
                &t.org(&format!("/chat-interfaces?team_id={client_b}")),
                &tom,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        problem(
            t.get(&t.org(&format!("/analytics?team_id={client_b}")), &tom)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        // A viewer cannot change anything in their own team either.
        problem(
            t.post(
                &t.org("/chat-interfaces"),
                &tom,
                &json!({ "name": "x", "team_id": client_a }),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        // …but may use what is there (using changes nothing).
        assert_eq!(
            t.post(
                &t.org(&format!("/chat-interfaces/{}/use", id(&a_bot))),
                &tom,
                &json!({}),
            )
            .await
            .status(),
            StatusCode::OK
        );

        // The agency's developers (Admins) see and administer every client.
        let all = json_of(t.get(&t.org("/teams"), &mike).await).await;
        assert_eq!(all["items"].as_array().unwrap().len(), 3);
        assert_eq!(
            names(&json_of(t.get(&t.org("/chat-interfaces"), &mike).await).await),
            vec![
                "A bot".to_owned(),
                "B bot".to_owned(),
                "Customer Support".to_owned()
            ]
        );
        let renamed = json_of(
            t.patch(
                &t.org(&format!("/teams/{client_b}")),
                &mike,
                &json!({ "name": "Client B (Globex)" }),
            )
            .await,
        )
        .await;
        assert_eq!(renamed["name"], "Client B (Globex)");
    }
);

both_backends!(
    departments_are_segmented_and_teams_archive_and_delete,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let tom_id = t.member_id("tom@example.com").await;
        let marketing = new_team(&t, &t.owner_token, "Marketing").await;
        let sales = new_team(&t, &t.owner_token, "Sales").await;
        set_team_role(&t, &marketing, &lisa_id, "member").await;
        set_team_role(&t, &sales, &tom_id, "member").await;
        let campaign = created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Campaign helper", "team_id": marketing }),
            )
            .await,
        )
        .await;
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &tom,
                &json!({ "name": "Deal desk", "team_id": sales }),
            )
            .await,
        )
        .await;
        problem(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "x", "team_id": sales }),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let lisa_sees = names(
            &json_of(
                t.get(
                    &t.org(&format!("/chat-interfaces?team_id={marketing}")),
                    &lisa,
                )
                .await,
            )
            .await,
        );
        assert_eq!(lisa_sees, vec!["Campaign helper".to_owned()]);
        // Team members are listed with their team roles; a User cannot manage them.
        let members = json_of(
            t.get(&t.org(&format!("/teams/{marketing}/members")), &lisa)
                .await,
        )
        .await;
        assert_eq!(members["items"].as_array().unwrap().len(), 1);
        assert_eq!(members["items"][0]["team_role"], "member");
        problem(
            t.put(
                &t.org(&format!("/teams/{marketing}/members/{tom_id}")),
                &lisa,
                &json!({ "role": "member" }),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        problem(
            t.post(&t.org("/teams"), &lisa, &json!({ "name": "Mine" }))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;

        // Archived: readable, nothing new; restored: open again.
        let team_url = t.org(&format!("/teams/{marketing}"));
        let archived = json_of(
            t.patch(&team_url, &t.owner_token, &json!({ "archived": true }))
                .await,
        )
        .await;
        assert!(archived["archived_at"].is_string());
        problem(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Late", "team_id": marketing }),
            )
            .await,
            StatusCode::CONFLICT,
            "archived",
        )
        .await;
        // Its resources are not edited or used (they stay readable, below).
        let campaign_url = t.org(&format!("/chat-interfaces/{}", id(&campaign)));
        problem(
            t.patch(&campaign_url, &lisa, &json!({ "name": "Renamed late" }))
                .await,
            StatusCode::CONFLICT,
            "archived",
        )
        .await;
        problem(
            t.post(&format!("{campaign_url}/use"), &lisa, &json!({}))
                .await,
            StatusCode::CONFLICT,
            "archived",
        )
        .await;
        // No new API key is made for it, and its credits are not used.
        problem(
            t.post(
                &t.org("/api-keys"),
                &t.owner_token,
                &json!({ "name": "Late key", "team_id": marketing }),
            )
            .await,
            StatusCode::CONFLICT,
            "archived",
        )
        .await;
        problem(
            t.client
                .post(t.org(&format!("/teams/{marketing}/credits/consumptions")))
                .bearer_auth(&lisa)
                .header("Idempotency-Key", "late-use")
                .json(&json!({ "amount": 1 }))
                .send()
                .await
                .unwrap(),
            StatusCode::CONFLICT,
            "archived",
        )
        .await;
        // Nobody new joins it (Tom is in Sales); its own people keep their place.
        problem(
            t.put(
                &t.org(&format!("/teams/{marketing}/members/{tom_id}")),
                &t.owner_token,
                &json!({ "role": "member" }),
            )
            .await,
            StatusCode::CONFLICT,
            "archived",
        )
        .await;
        set_team_role(&t, &marketing, &lisa_id, "viewer").await;
        set_team_role(&t, &marketing, &lisa_id, "member").await;
        assert_eq!(
            t.get(
                &t.org(&format!("/chat-interfaces/{}", id(&campaign))),
                &lisa
            )
            .await
            .status(),
            StatusCode::OK
        );
        t.patch(&team_url, &t.owner_token, &json!({ "archived": false }))
            .await;
        // A team holding resources is not deleted; once empty it is.
        problem(
            t.delete(&team_url, &t.owner_token).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert_eq!(
            t.delete(
                &t.org(&format!("/chat-interfaces/{}", id(&campaign))),
                &lisa
            )
            .await
            .status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            t.delete(&team_url, &t.owner_token).await.status(),
            StatusCode::NO_CONTENT
        );
        problem(
            t.get(&team_url, &t.owner_token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let default = default_team(&t).await;
        problem(
            t.delete(&t.org(&format!("/teams/{default}")), &t.owner_token)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        problem(
            t.post(
                &t.org("/teams"),
                &t.owner_token,
                &json!({ "name": "Sales" }),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert_eq!(t.audit("action=team.deleted").await.len(), 1);
    }
);

both_backends!(
    removing_a_member_hands_over_or_deletes_their_resources,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let mike_id = t.member_id("mike@example.com").await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let tom_id = t.member_id("tom@example.com").await;
        let lisas = created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Lisa's bot" }),
            )
            .await,
        )
        .await;
        let toms = created(
            t.post(
                &t.org("/chat-interfaces"),
                &tom,
                &json!({ "name": "Tom's bot" }),
            )
            .await,
        )
        .await;
        let toms_kb = created(
            t.post(
                &t.org("/knowledge-bases"),
                &tom,
                &json!({ "name": "Tom's notes", "chat_interface_id": id(&toms) }),
            )
            .await,
        )
        .await;
        let doc = created(
            t.upload(
                &t.org(&format!(
                    "/knowledge-bases/{}/documents?name=n.txt",
                    id(&toms_kb)
                )),
                &t.owner_token,
                "text/plain",
                b"notes".to_vec(),
            )
            .await,
        )
        .await;
        // Lisa also made something in Research, where Tom, a User, has no role: he could not
        // see it, so her resources do not go to him (the Admin Mike sees every team).
        let research = new_team(&t, &t.owner_token, "Research").await;
        set_team_role(&t, &research, &lisa_id, "member").await;
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Lisa's research bot", "team_id": research }),
            )
            .await,
        )
        .await;
        let count = |v: Value| v["items"].as_array().unwrap().len();
        let before = count(json_of(t.get(&t.org("/chat-interfaces"), &t.owner_token).await).await);
        let refused = problem(
            t.post(
                &t.org(&format!("/members/{lisa_id}/remove")),
                &t.owner_token,
                &json!({ "resources": "transfer", "transfer_to": tom_id }),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains("`Research`"),
            "{refused}"
        );
        assert_eq!(
            t.member_id("lisa@example.com").await,
            lisa_id,
            "nothing removed"
        );

        let r = json_of(
            t.post(
                &t.org(&format!("/members/{lisa_id}/remove")),
                &t.owner_token,
                &json!({ "resources": "transfer", "transfer_to": mike_id }),
            )
            .await,
        )
        .await;
        assert_eq!(r["transferred"], 2);
        assert_eq!(
            count(json_of(t.get(&t.org("/chat-interfaces"), &t.owner_token).await).await),
            before,
            "nothing lost in a transfer"
        );
        let now_mikes = json_of(
            t.get(
                &t.org(&format!("/chat-interfaces/{}", id(&lisas))),
                &t.owner_token,
            )
            .await,
        )
        .await;
        assert_eq!(now_mikes["created_by"], mike_id);

        let r = json_of(
            t.post(
                &t.org(&format!("/members/{tom_id}/remove")),
                &t.owner_token,
                &json!({ "resources": "delete" }),
            )
            .await,
        )
        .await;
        assert_eq!(
            (r["deleted"].as_u64(), r["cascaded"].as_u64()),
            (Some(2), Some(1)),
            "transferred + deleted = Tom's resources (his chat interface and knowledge base); the Owner's document in his knowledge base went with them"
        );
        assert_eq!(
            count(json_of(t.get(&t.org("/chat-interfaces"), &t.owner_token).await).await),
            before - 1
        );
        problem(
            t.get(&t.org(&format!("/documents/{}", id(&doc))), &t.owner_token)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let dir = t.data_dir().join("blobs");
        assert!(
            !dir.join(id(&doc)).exists(),
            "the document's bytes are gone"
        );
    }
);

both_backends!(custom_domains_are_verified_over_dns, |b| async move {
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
    let d = created(
        t.post(
            &t.org("/domains"),
            &t.owner_token,
            &json!({ "hostname": "Chat.Acme.Example." }),
        )
        .await,
    )
    .await;
    assert_eq!(d["hostname"], "chat.acme.example");
    assert_eq!(
        d["verification"]["record_name"],
        "_axie-verification.chat.acme.example"
    );
    assert!(d["verification"]["verified_at"].is_null());
    let verify = t.org(&format!("/domains/{}/verify", id(&d)));
    problem(
        t.post(&verify, &t.owner_token, &json!({})).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    dns.publish("_axie-verification.chat.acme.example", "axie-verify_wrong");
    problem(
        t.post(&verify, &t.owner_token, &json!({})).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    dns.publish(
        "_axie-verification.chat.acme.example",
        d["verification"]["record_value"].as_str().unwrap(),
    );
    let ok = json_of(t.post(&verify, &t.owner_token, &json!({})).await).await;
    assert!(ok["verification"]["verified_at"].is_string());
    for bad in [
        "localhost",
        "10.0.0.1",
        "-bad-.example",
        "a..example",
        "ex ample.com",
    ] {
        problem(
            t.post(
                &t.org("/domains"),
                &t.owner_token,
                &json!({ "hostname": bad }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
    }
    problem(
        t.post(
            &t.org("/domains"),
            &t.owner_token,
            &json!({ "hostname": "chat.acme.example" }),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // Users manage domains only when the feature-access setting opens it.
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    let denied = problem(
        t.post(
            &t.org("/domains"),
            &lisa,
            &json!({ "hostname": "lisa.acme.example" }),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(denied["reason"], "disabled_by_setting");
    // Nor move one: administering both teams, she may transfer their assets, but not a
    // domain while the setting keeps domains to the Owner and Admins.
    let other = new_team(&t, &t.owner_token, "Client B").await;
    let lisa_id = t.member_id("lisa@example.com").await;
    for team in [default_team(&t).await, other.clone()] {
        set_team_role(&t, &team, &lisa_id, "admin").await;
    }
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    let transfer = t.org(&format!("/assets/{}/transfer", id(&d)));
    let denied = problem(
        t.post(&transfer, &lisa, &json!({ "team_id": other })).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(denied["reason"], "disabled_by_setting");
    let still = json_of(
        t.get(&t.org(&format!("/domains/{}", id(&d))), &t.owner_token)
            .await,
    )
    .await;
    assert_ne!(still["team_id"], other.as_str(), "{still}");
    // The Owner moves it.
    let moved = json_of(
        t.post(&transfer, &t.owner_token, &json!({ "team_id": other }))
            .await,
    )
    .await;
    assert_eq!(moved["asset"]["team_id"], other.as_str());
    assert_eq!(t.audit("action=domain.verified").await.len(), 1);
});

/// Everything one tenant's team holds, by route.
struct Holdings {
    org: String,
    team: String,
    chat: String,
    kb: String,
    doc: String,
    domain: String,
    key: String,
}

async fn fill(t: &TestApp, org: &str, token: &str, team: &str, tag: &str) -> Holdings {
    let base = |rest: &str| t.url(&format!("/api/v1/orgs/{org}{rest}"));
    let chat = id(&created(
        t.post(
            &base("/chat-interfaces"),
            token,
            &json!({ "name": format!("{tag} bot"), "team_id": team }),
        )
        .await,
    )
    .await);
    let kb = id(&created(
        t.post(
            &base("/knowledge-bases"),
            token,
            &json!({ "name": format!("{tag} kb"), "chat_interface_id": chat }),
        )
        .await,
    )
    .await);
    let doc = id(&created(
        t.upload(
            &base(&format!("/knowledge-bases/{kb}/documents?name=d.txt")),
            token,
            "text/plain",
            tag.as_bytes().to_vec(),
        )
        .await,
    )
    .await);
    let domain = id(&created(
        t.post(
            &base("/domains"),
            token,
            &json!({ "hostname": format!("{}.example", tag.to_lowercase()), "team_id": team }),
        )
        .await,
    )
    .await);
    let key = id(&created(
        t.post(
            &base("/api-keys"),
            token,
            &json!({ "name": format!("{tag} key"), "team_id": team }),
        )
        .await,
    )
    .await);
    Holdings {
        org: org.to_owned(),
        team: team.to_owned(),
        chat,
        kb,
        doc,
        domain,
        key,
    }
}

/// Every read and write of the workspace API aimed at `h`, from the URL prefix `org`
/// (the attacker's own organization id, or the victim's).
fn attacks(org: &str, h: &Holdings) -> Vec<(&'static str, String, Value)> {
    let o = |rest: String| format!("/api/v1/orgs/{org}{rest}");
    let (team, chat, kb, doc, domain, key) = (&h.team, &h.chat, &h.kb, &h.doc, &h.domain, &h.key);
    vec![
        ("GET", o(format!("/teams/{team}")), json!(null)),
        (
            "PATCH",
            o(format!("/teams/{team}")),
            json!({ "name": "pwned" }),
        ),
        ("DELETE", o(format!("/teams/{team}")), json!(null)),
        ("GET", o(format!("/teams/{team}/members")), json!(null)),
        (
            "GET",
            o(format!("/chat-interfaces?team_id={team}")),
            json!(null),
        ),
        (
            "POST",
            o("/chat-interfaces".into()),
            json!({ "name": "x", "team_id": team }),
        ),
        ("GET", o(format!("/chat-interfaces/{chat}")), json!(null)),
        (
            "PATCH",
            o(format!("/chat-interfaces/{chat}")),
            json!({ "name": "pwned" }),
        ),
        ("DELETE", o(format!("/chat-interfaces/{chat}")), json!(null)),
        ("POST", o(format!("/chat-interfaces/{chat}/use")), json!({})),
        (
            "POST",
            o("/knowledge-bases".into()),
            json!({ "name": "x", "chat_interface_id": chat }),
        ),
        ("GET", o(format!("/knowledge-bases/{kb}")), json!(null)),
        (
            "PATCH",
            o(format!("/knowledge-bases/{kb}")),
            json!({ "name": "pwned" }),
        ),
        ("DELETE", o(format!("/knowledge-bases/{kb}")), json!(null)),
        (
            "GET",
            o(format!("/knowledge-bases/{kb}/documents")),
            json!(null),
        ),
        (
            "UPLOAD",
            o(format!("/knowledge-bases/{kb}/documents?name=x.txt")),
            json!(null),
        ),
        ("GET", o(format!("/documents/{doc}")), json!(null)),
        ("GET", o(format!("/documents/{doc}/content")), json!(null)),
        ("DELETE", o(format!("/documents/{doc}")), json!(null)),
        ("GET", o(format!("/domains/{domain}")), json!(null)),
        ("DELETE", o(format!("/domains/{domain}")), json!(null)),
        ("POST", o(format!("/domains/{domain}/verify")), json!({})),
        (
            "POST",
            o("/domains".into()),
            json!({ "hostname": "x.evil.example", "team_id": team }),
        ),
        (
            "POST",
            o(format!("/assets/{chat}/transfer")),
            json!({ "team_id": team }),
        ),
        ("GET", o(format!("/assets/{chat}/transfers")), json!(null)),
        ("GET", o(format!("/analytics?team_id={team}")), json!(null)),
        ("DELETE", o(format!("/api-keys/{key}")), json!(null)),
        (
            "POST",
            o("/api-keys".into()),
            json!({ "name": "x", "team_id": team }),
        ),
    ]
}

async fn send(t: &TestApp, token: &str, method: &str, path: &str, body: &Value) -> StatusCode {
    let url = t.url(path);
    match method {
        "GET" => t.get(&url, token).await,
        "POST" => t.post(&url, token, body).await,
        "PATCH" => t.patch(&url, token, body).await,
        "DELETE" => t.delete(&url, token).await,
        "UPLOAD" => t.upload(&url, token, "text/plain", b"x".to_vec()).await,
        other => panic!("{other}"),
    }
    .status()
}

both_backends!(
    randomized_isolation_sweep_finds_no_way_across_tenants_or_teams,
    |b| async move {
        let t = spawn_app(b).await;
        let seed: u64 = rand::thread_rng().r#gen();
        println!("isolation sweep seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;

        // Tenant A (the test organization) with a random number of teams; Lisa is in one of them.
        let mut victims = Vec::new();
        let n_teams = rng.gen_range(2..=3);
        let mut lisas_team = String::new();
        for i in 0..n_teams {
            let team = new_team(&t, &t.owner_token, &format!("Team {i}")).await;
            if i == 0 {
                set_team_role(&t, &team, &lisa_id, "admin").await;
                lisas_team = team.clone();
            } else {
                victims.push(fill(&t, &t.org_id, &t.owner_token, &team, &format!("A{i}")).await);
            }
        }
        // Other tenants, each with its own teams and resources.
        let mut outsiders = Vec::new();
        for k in 0..rng.gen_range(2..=3) {
            let (org, email) = second_org(&t, billing_limits::Plan::Enterprise).await;
            let token = t.login(&email, OWNER_PASSWORD).await;
            let teams = json_of(
                t.get(&t.url(&format!("/api/v1/orgs/{org}/teams")), &token)
                    .await,
            )
            .await;
            let team = id(&teams["items"][0]);
            victims.push(fill(&t, &org, &token, &team, &format!("B{k}")).await);
            outsiders.push((org, token));
        }

        // Attackers: Tenant A's Owner and Lisa (a team admin in A), and each outsider's Owner.
        let mut tries = Vec::new();
        for v in &victims {
            let cross_tenant = v.org != t.org_id;
            let mut who: Vec<(&str, &str)> = vec![("lisa", lisa.as_str())];
            if cross_tenant {
                who.push(("owner A", t.owner_token.as_str()));
            }
            for (org, token) in &outsiders {
                if *org != v.org {
                    who.push(("outsider", token.as_str()));
                }
            }
            for (name, token) in who {
                let own_org = if name == "lisa" || name == "owner A" {
                    t.org_id.clone()
                } else {
                    outsiders
                        .iter()
                        .find(|(_, tk)| tk == token)
                        .map(|(o, _)| o.clone())
                        .unwrap()
                };
                // Through the attacker's own organization path, and through the victim's.
                for prefix in [own_org.as_str(), v.org.as_str()] {
                    for (m, path, body) in attacks(prefix, v) {
                        tries.push((name, token.to_owned(), m, path, body));
                    }
                }
            }
        }
        tries.shuffle(&mut rng);
        let mut breaches = Vec::new();
        for (name, token, m, path, body) in &tries {
            let status = send(&t, token, m, path, body).await;
            if status != StatusCode::NOT_FOUND {
                breaches.push(format!("{name}: {m} {path} -> {status}"));
            }
        }
        assert!(
            breaches.is_empty(),
            "seed {seed}: {} of {} attempts did not answer 404:\n{}",
            breaches.len(),
            tries.len(),
            breaches.join("\n")
        );
        assert!(
            tries.len() > 300,
            "the sweep tried {} operations",
            tries.len()
        );

        // And everything is still there, untouched.
        for v in &victims {
            let owner = if v.org == t.org_id {
                t.owner_token.clone()
            } else {
                outsiders
                    .iter()
                    .find(|(o, _)| *o == v.org)
                    .unwrap()
                    .1
                    .clone()
            };
            let chat = json_of(
                t.get(
                    &t.url(&format!(
                        "/api/v1/orgs/{}/chat-interfaces/{}",
                        v.org, v.chat
                    )),
                    &owner,
                )
                .await,
            )
            .await;
            assert!(chat["name"].as_str().unwrap().ends_with(" bot"));
            let docs = json_of(
                t.get(
                    &t.url(&format!(
                        "/api/v1/orgs/{}/knowledge-bases/{}/documents",
                        v.org, v.kb
                    )),
                    &owner,
                )
                .await,
            )
            .await;
            assert_eq!(docs["items"].as_array().unwrap().len(), 1);
        }
        // Lisa still works in her own team.
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Mine", "team_id": lisas_team }),
            )
            .await,
        )
        .await;
    }
);

both_backends!(
    an_unused_agent_is_archived_and_brought_back,
    |b| async move {
        // The guide: "Archive or delete old experimental agents in dev".
        let t = spawn_app(b).await;
        let (mike, lisa) = (
            t.login("mike@example.com", DEMO_PASSWORD).await,
            t.login("lisa@example.com", DEMO_PASSWORD).await,
        );
        let bot = created(
            t.post(
                &t.org("/chat-interfaces"),
                &mike,
                &json!({ "name": "Experimental agent" }),
            )
            .await,
        )
        .await;
        let url = t.org(&format!("/chat-interfaces/{}", id(&bot)));
        let kb = created(
            t.post(
                &t.org("/knowledge-bases"),
                &mike,
                &json!({ "name": "Experiment notes", "chat_interface_id": id(&bot) }),
            )
            .await,
        )
        .await;
        let listed = |archived: &'static str| {
            let t = &t;
            let mike = mike.clone();
            async move {
                names(
                    &json_of(
                        t.get(
                            &t.org(&format!("/chat-interfaces?archived={archived}")),
                            &mike,
                        )
                        .await,
                    )
                    .await,
                )
            }
        };
        assert!(
            listed("false")
                .await
                .contains(&"Experimental agent".to_owned())
        );

        // A team Member archives only what they created; not together with an edit.
        problem(
            t.patch(&url, &lisa, &json!({ "archived": true })).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        problem(
            t.patch(&url, &mike, &json!({ "archived": true, "name": "x" }))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        let archived = json_of(t.patch(&url, &mike, &json!({ "archived": true })).await).await;
        assert!(archived["archived_at"].is_string(), "{archived}");
        let h = t.audit("action=chat_interface.archived").await;
        assert_eq!(h.len(), 1);
        assert_eq!(h[0]["target_id"], bot["id"]);
        // Again: nothing changes, nothing is recorded.
        let again = json_of(t.patch(&url, &mike, &json!({ "archived": true })).await).await;
        assert_eq!(again["archived_at"], archived["archived_at"]);
        assert_eq!(t.audit("action=chat_interface.archived").await.len(), 1);

        // Out of the default listing, in the archived one, still readable.
        assert!(
            !listed("false")
                .await
                .contains(&"Experimental agent".to_owned())
        );
        assert!(
            listed("true")
                .await
                .contains(&"Experimental agent".to_owned())
        );
        let read = json_of(t.get(&url, &lisa).await).await;
        assert_eq!(read["name"], "Experimental agent");
        // Not edited, used or added to.
        for res in [
            t.patch(&url, &mike, &json!({ "description": "v2" })).await,
            t.post(&format!("{url}/use"), &lisa, &json!({})).await,
            t.post(
                &t.org("/knowledge-bases"),
                &mike,
                &json!({ "name": "More notes", "chat_interface_id": id(&bot) }),
            )
            .await,
        ] {
            problem(res, StatusCode::CONFLICT, "conflict").await;
        }
        // Its knowledge base is not archived with it, but takes nothing new while it is.
        let kb_url = t.org(&format!("/knowledge-bases/{}", id(&kb)));
        for res in [
            t.upload(
                &format!("{kb_url}/documents?name=early.md"),
                &mike,
                "text/markdown",
                b"# early".to_vec(),
            )
            .await,
            t.patch(&kb_url, &mike, &json!({ "description": "v2" }))
                .await,
        ] {
            problem(res, StatusCode::CONFLICT, "conflict").await;
        }
        let kb_archived =
            json_of(t.patch(&kb_url, &mike, &json!({ "archived": true })).await).await;
        assert!(kb_archived["archived_at"].is_string());
        let upload = t
            .upload(
                &format!("{kb_url}/documents?name=notes.md"),
                &mike,
                "text/markdown",
                b"# notes".to_vec(),
            )
            .await;
        problem(upload, StatusCode::CONFLICT, "conflict").await;
        problem(
            t.patch(
                &t.org(&format!("/knowledge-bases/{}", id(&kb))),
                &mike,
                &json!({ "archived": "yes" }),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;

        // Back in use: listed, edited and used again.
        let back = json_of(t.patch(&url, &mike, &json!({ "archived": false })).await).await;
        assert!(back.get("archived_at").is_none(), "{back}");
        assert!(
            listed("false")
                .await
                .contains(&"Experimental agent".to_owned())
        );
        let res = t.patch(&url, &mike, &json!({ "description": "v2" })).await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = t.post(&format!("{url}/use"), &lisa, &json!({})).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(t.audit("action=chat_interface.unarchived").await.len(), 1);
    }
);

both_backends!(
    a_template_is_copied_into_a_client_team_with_its_documents,
    |b| async move {
        // The guide's template library: "Keep best agents in Internal Team for reuse".
        let t = spawn_app(b).await;
        let owner = t.owner_token.clone();
        let internal = new_team(&t, &owner, "Internal").await;
        let client = new_team(&t, &owner, "Client A").await;
        let template = created(
            t.post(
                &t.org("/chat-interfaces"),
                &owner,
                &json!({ "name": "Support template", "team_id": internal, "instructions": "Be kind." }),
            )
            .await,
        )
        .await;
        let kb = created(
            t.post(
                &t.org("/knowledge-bases"),
                &owner,
                &json!({ "name": "Support FAQ", "chat_interface_id": id(&template) }),
            )
            .await,
        )
        .await;
        let faq = b"# FAQ\n\nQ: Refunds?\nA: Within 30 days.\n".to_vec();
        created(
            t.upload(
                &t.org(&format!(
                    "/knowledge-bases/{}/documents?name=faq.md",
                    id(&kb)
                )),
                &owner,
                "text/markdown",
                faq.clone(),
            )
            .await,
        )
        .await;

        // A retired knowledge base, archived under the template, is left out of copies.
        let retired = created(
            t.post(
                &t.org("/knowledge-bases"),
                &owner,
                &json!({ "name": "Old pricing", "chat_interface_id": id(&template) }),
            )
            .await,
        )
        .await;
        let res = t
            .patch(
                &t.org(&format!("/knowledge-bases/{}", id(&retired))),
                &owner,
                &json!({ "archived": true }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);

        // Lisa, who is not in the Internal team, sees no template to copy.
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let copy_url = t.org(&format!("/assets/{}/copy", id(&template)));
        problem(
            t.post(&copy_url, &lisa, &json!({ "team_id": client }))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        let copy = created(
            t.post(&copy_url, &owner, &json!({ "team_id": client }))
                .await,
        )
        .await;
        assert_eq!(copy["name"], "Support template (copy)");
        assert_eq!(copy["team_id"], client.as_str());
        assert_eq!(copy["instructions"], "Be kind.");
        assert_ne!(copy["id"], template["id"]);
        let kbs = json_of(
            t.get(
                &t.org(&format!("/knowledge-bases?team_id={client}")),
                &owner,
            )
            .await,
        )
        .await;
        assert_eq!(kbs["items"].as_array().unwrap().len(), 1, "{kbs}");
        let archived_in_client = json_of(
            t.get(
                &t.org(&format!("/knowledge-bases?team_id={client}&archived=true")),
                &owner,
            )
            .await,
        )
        .await;
        assert_eq!(
            archived_in_client["items"].as_array().unwrap().len(),
            0,
            "the retired knowledge base is not copied: {archived_in_client}"
        );
        let kb_copy = kbs["items"][0].clone();
        assert_eq!(kb_copy["name"], "Support FAQ");
        assert_eq!(kb_copy["parent_id"], copy["id"]);
        let docs = json_of(
            t.get(
                &t.org(&format!("/knowledge-bases/{}/documents", id(&kb_copy))),
                &owner,
            )
            .await,
        )
        .await;
        let doc_copy = docs["items"][0].clone();
        assert_eq!(doc_copy["name"], "faq.md");
        let bytes = t
            .get(
                &t.org(&format!("/documents/{}/content", id(&doc_copy))),
                &owner,
            )
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.as_ref(), faq.as_slice(), "the bytes are copied");
        // The template stays where it was; each copy is recorded with its source.
        let original = json_of(
            t.get(
                &t.org(&format!("/chat-interfaces/{}", id(&template))),
                &owner,
            )
            .await,
        )
        .await;
        assert_eq!(original["team_id"], internal.as_str());
        let made = t.audit("action=chat_interface.created").await;
        assert_eq!(made[0]["target_id"], copy["id"]);
        assert_eq!(made[0]["metadata"]["copied_from"], template["id"]);
        assert_eq!(
            t.audit("action=document.uploaded").await[0]["metadata"]["copied_from"],
            t.audit("action=document.uploaded").await[1]["target_id"]
        );

        // Reading the source's documents is on the source team's record.
        let read = t.audit("action=document.downloaded").await;
        let by_copy = read
            .iter()
            .find(|r| r["metadata"]["copied_to"].is_string())
            .expect("the copy's read is recorded");
        assert_eq!(by_copy["metadata"]["copied_to"], doc_copy["id"]);
        assert_eq!(by_copy["team_id"], internal.as_str());

        // A named copy in the same team; a document alone is not copied.
        let named = created(
            t.post(&copy_url, &owner, &json!({ "name": "Support v2" }))
                .await,
        )
        .await;
        assert_eq!(named["team_id"], internal.as_str());
        assert_eq!(named["name"], "Support v2");
        problem(
            t.post(
                &t.org(&format!("/assets/{}/copy", id(&doc_copy))),
                &owner,
                &json!({}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
    }
);

both_backends!(
    finance_views_every_team_and_executives_work_in_every_team,
    |b| async move {
        // The guide's department scenario: "Finance | Admin (view only, all teams)" and
        // "Executive Leadership | Member (all teams)", teams created later included.
        let t = spawn_app(b).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let (tom_id, lisa_id) = (
            t.member_id("tom@example.com").await,
            t.member_id("lisa@example.com").await,
        );
        let all_teams = |user: &str| t.org(&format!("/members/{user}/all-teams-role"));
        let sales = new_team(&t, &mike, "Sales").await;
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &mike,
                &json!({ "name": "Sales bot", "team_id": sales }),
            )
            .await,
        )
        .await;
        // Tom (finance) is in no team but the default one.
        problem(
            t.get(&t.org(&format!("/teams/{sales}")), &tom).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        // Only the Owner and Admins give it, and only known team roles.
        problem(
            t.put(&all_teams(&lisa_id), &tom, &json!({ "role": "viewer" }))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        problem(
            t.put(&all_teams(&tom_id), &mike, &json!({ "role": "boss" }))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        // Admins administer every team already.
        let mike_id = t.member_id("mike@example.com").await;
        problem(
            t.put(
                &all_teams(&mike_id),
                &t.owner_token,
                &json!({ "role": "admin" }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let rx = Receiver::start().await;
        created(
            t.post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({ "url": rx.url, "events": ["role.changed"] }),
            )
            .await,
        )
        .await;
        for (user, role) in [(&tom_id, "viewer"), (&lisa_id, "member")] {
            assert_eq!(
                t.put(&all_teams(user), &mike, &json!({ "role": role }))
                    .await
                    .status(),
                StatusCode::NO_CONTENT
            );
        }
        // Integrations hear of it.
        let mut heard: Vec<(String, String)> = rx
            .wait_for(2, 15)
            .await
            .iter()
            .map(|r| {
                let body: Value = serde_json::from_str(&r.body).unwrap();
                assert_eq!(body["event"], "role.changed");
                assert_eq!(body["data"]["previousAllTeamsRole"], Value::Null);
                (
                    body["data"]["userId"].as_str().unwrap().to_owned(),
                    body["data"]["allTeamsRole"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        heard.sort();
        let mut want = vec![
            (tom_id.clone(), "viewer".to_owned()),
            (lisa_id.clone(), "member".to_owned()),
        ];
        want.sort();
        assert_eq!(heard, want);
        // A team created afterwards is theirs too.
        let marketing = new_team(&t, &mike, "Marketing").await;
        let campaign = created(
            t.post(
                &t.org("/chat-interfaces"),
                &mike,
                &json!({ "name": "Campaign bot", "team_id": marketing }),
            )
            .await,
        )
        .await;
        let teams = names(&json_of(t.get(&t.org("/teams"), &tom).await).await);
        assert!(
            teams.contains(&"Sales".to_owned()) && teams.contains(&"Marketing".to_owned()),
            "{teams:?}"
        );
        // The team's member list names them, with where their role comes from.
        let in_marketing = json_of(
            t.get(&t.org(&format!("/teams/{marketing}/members")), &mike)
                .await,
        )
        .await;
        let row = |id: &str| {
            in_marketing["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["user_id"] == id)
                .map(|m| {
                    (
                        m["team_role"].clone(),
                        m["assigned_role"].clone(),
                        m["all_teams_role"].clone(),
                    )
                })
        };
        assert_eq!(
            (row(&tom_id), row(&lisa_id)),
            (
                Some((json!("viewer"), Value::Null, json!("viewer"))),
                Some((json!("member"), Value::Null, json!("member")))
            ),
            "{in_marketing}"
        );
        let bots = names(&json_of(t.get(&t.org("/chat-interfaces"), &tom).await).await);
        assert!(
            bots.contains(&"Sales bot".to_owned()) && bots.contains(&"Campaign bot".to_owned()),
            "{bots:?}"
        );
        assert_eq!(
            t.get(&t.org(&format!("/analytics?team_id={marketing}")), &tom)
                .await
                .status(),
            StatusCode::OK
        );
        // View only: Finance changes nothing; the executive works in the new team.
        problem(
            t.post(
                &t.org("/chat-interfaces"),
                &tom,
                &json!({ "name": "x", "team_id": marketing }),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Exec bot", "team_id": marketing }),
            )
            .await,
        )
        .await;
        // Shown on the members page and in the person's own memberships, and audited.
        let members = json_of(t.get(&t.org("/members"), &mike).await).await;
        let role_of = |id: &str| {
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["user_id"] == id)
                .map(|m| m["all_teams_role"].clone())
                .unwrap()
        };
        assert_eq!(
            (role_of(&tom_id), role_of(&lisa_id)),
            (json!("viewer"), json!("member"))
        );
        let me = json_of(t.get(&t.url("/api/v1/me"), &tom).await).await;
        assert_eq!(me["memberships"][0]["all_teams_role"], "viewer");
        assert!(
            t.audit("action=member.role_changed")
                .await
                .iter()
                .any(|r| r["metadata"]["all_teams"]["to"] == "viewer"),
            "audited"
        );
        // An empty body is refused, not read as taking the role away.
        assert!(
            t.put(&all_teams(&tom_id), &mike, &json!({}))
                .await
                .status()
                .is_client_error()
        );
        assert_eq!(
            names(&json_of(t.get(&t.org("/teams"), &tom).await).await).len(),
            teams.len()
        );
        // Taken away: the next request no longer sees other teams.
        assert_eq!(
            t.put(&all_teams(&tom_id), &mike, &json!({ "role": null }))
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        problem(
            t.get(&t.org(&format!("/chat-interfaces/{}", id(&campaign))), &tom)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
);

both_backends!(
    a_key_made_in_a_client_team_acts_in_that_team_alone,
    |b| async move {
        // The agency scenario: "Provide client with API keys for integration". A key an Admin
        // creates in Client A's team reaches Client A's workspace only; a key created in the
        // default team stays the organization's.
        let t = spawn_app(b).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let (client_a, client_b) = (
            new_team(&t, &mike, "Client A").await,
            new_team(&t, &mike, "Client B").await,
        );
        let bot = |team: String, name: &'static str| {
            let (t, mike) = (&t, &mike);
            async move {
                created(
                    t.post(
                        &t.org("/chat-interfaces"),
                        mike,
                        &json!({ "name": name, "team_id": team }),
                    )
                    .await,
                )
                .await
            }
        };
        let a_bot = bot(client_a.clone(), "A bot").await;
        let b_bot = bot(client_b.clone(), "B bot").await;
        let team_key = created(
            t.post(
                &t.org("/api-keys"),
                &mike,
                &json!({ "name": "Client A integration", "team_id": client_a }),
            )
            .await,
        )
        .await;
        assert_eq!(team_key["scope"], "team");
        let org_key = created(
            t.post(&t.org("/api-keys"), &mike, &json!({ "name": "Ops" }))
                .await,
        )
        .await;
        assert_eq!(org_key["scope"], "organization");
        let (team_key, org_key) = (
            team_key["secret"].as_str().unwrap().to_owned(),
            org_key["secret"].as_str().unwrap().to_owned(),
        );

        // In its team: its creator's rights there (an Admin's key works as the team's Admin).
        assert_eq!(
            names(&json_of(t.get(&t.org("/chat-interfaces"), &team_key).await).await),
            ["A bot"]
        );
        assert_eq!(
            t.get(
                &t.org(&format!("/chat-interfaces/{}", id(&a_bot))),
                &team_key
            )
            .await
            .status(),
            StatusCode::OK
        );
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &team_key,
                &json!({ "name": "A bot 2", "team_id": client_a }),
            )
            .await,
        )
        .await;
        // Another client's team does not exist for it.
        for res in [
            t.get(
                &t.org(&format!("/chat-interfaces/{}", id(&b_bot))),
                &team_key,
            )
            .await,
            t.get(&t.org(&format!("/teams/{client_b}")), &team_key)
                .await,
            t.post(
                &t.org("/chat-interfaces"),
                &team_key,
                &json!({ "name": "Intruder", "team_id": client_b }),
            )
            .await,
        ] {
            problem(res, StatusCode::NOT_FOUND, "not_found").await;
        }
        let teams = names(&json_of(t.get(&t.org("/teams"), &team_key).await).await);
        assert_eq!(teams, ["Client A"]);
        // Outside teams, no more than an organization User: no administration.
        let p = problem(
            t.get(&t.org("/webhooks"), &team_key).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(p["reason"], "role_lacks_permission");
        problem(
            t.post(&t.org("/teams"), &team_key, &json!({ "name": "Mine now" }))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        // It shows itself as it acts, and is not its creator for their personal data.
        let me = json_of(t.get(&t.url("/api/v1/me"), &team_key).await).await;
        let m = &me["memberships"][0];
        assert_eq!(m["role"], "user", "{me}");
        assert_eq!(m["teams"].as_array().map(Vec::len), Some(1), "{me}");
        assert!(
            !m["permissions"]
                .as_array()
                .unwrap()
                .contains(&json!("manage_webhooks")),
            "{me}"
        );
        let mike_id = t.member_id("mike@example.com").await;
        problem(
            t.get(
                &t.org(&format!("/members/{mike_id}/personal-data")),
                &team_key,
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        // The organization's key keeps its creator's reach.
        assert_eq!(
            t.get(&t.org("/webhooks"), &org_key).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            t.get(
                &t.org(&format!("/chat-interfaces/{}", id(&b_bot))),
                &org_key
            )
            .await
            .status(),
            StatusCode::OK
        );
        let teams = names(&json_of(t.get(&t.org("/teams"), &org_key).await).await);
        assert!(teams.contains(&"Client B".to_owned()), "{teams:?}");
        // With the audit log opened to Users, the team's key reads Client A's records, not
        // those its creator wrote in Client B; the organization's key reads both.
        open_audit_log_to_users(&t).await;
        for path in ["/audit-events", "/audit-events/export"] {
            let read = |key: &str| {
                let t = &t;
                let key = key.to_owned();
                async move {
                    let res = t
                        .get(&t.org(&format!("{path}?action=chat_interface.")), &key)
                        .await;
                    assert_eq!(res.status(), StatusCode::OK, "{path}");
                    res.text().await.unwrap()
                }
            };
            let seen = read(&team_key).await;
            assert!(
                seen.contains("A bot") && !seen.contains("B bot"),
                "{path}: {seen}"
            );
            let seen = read(&org_key).await;
            assert!(seen.contains("A bot") && seen.contains("B bot"), "{path}");
        }
    }
);

both_backends!(a_teams_members_come_in_pages, |b| async move {
    let t = spawn_app(b).await;
    let default = default_team(&t).await;
    let path = format!("/teams/{default}/members");
    let one_page = json_of(
        t.get(&t.org(&format!("{path}?limit=200")), &t.owner_token)
            .await,
    )
    .await;
    assert!(one_page["next_cursor"].is_null(), "{one_page}");
    let whole: Vec<String> = one_page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        whole.len() >= 3,
        "the demo's default team has its people: {whole:?}"
    );
    let mut sorted = whole.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(whole, sorted, "ordered by user id, each once");
    for limit in [1, 2] {
        assert_eq!(
            every_page(&t, &t.owner_token, &path, limit, "user_id").await,
            whole,
            "pages of {limit}"
        );
    }
    problem(
        t.get(&t.org(&format!("{path}?cursor=not-an-id")), &t.owner_token)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    problem(
        t.get(&t.org(&format!("{path}?limit=0")), &t.owner_token)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
});

both_backends!(a_user_sees_the_people_of_their_own_teams, |b| async move {
    // Client teams are isolated, their people included: Tom (Client A) and Lisa (Client
    // B) do not see each other, while both see the Owner and the Admins.
    let t = spawn_app(b).await;
    let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
    let (client_a, client_b) = (
        new_team(&t, &mike, "Client A").await,
        new_team(&t, &mike, "Client B").await,
    );
    let default = default_team(&t).await;
    let (tom_id, lisa_id) = (
        t.member_id("tom@example.com").await,
        t.member_id("lisa@example.com").await,
    );
    for (team, user) in [(&client_a, &tom_id), (&client_b, &lisa_id)] {
        set_team_role(&t, team, user, "member").await;
        assert_eq!(
            t.delete(&t.org(&format!("/teams/{default}/members/{user}")), &mike)
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    // Pages of two, so that the narrowing is seen to keep pages full.
    let emails = |token: String| {
        let t = &t;
        async move { every_page(t, &token, "/members", 2, "email").await }
    };
    let tom_sees = emails(t.login("tom@example.com", DEMO_PASSWORD).await).await;
    let lisa_sees = emails(t.login("lisa@example.com", DEMO_PASSWORD).await).await;
    let everyone = emails(mike.clone()).await;
    // With the audit log opened to Users, each reads its own team's records (and those of
    // no team), not the other client's.
    for (team, name) in [(&client_a, "A bot"), (&client_b, "B bot")] {
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &mike,
                &json!({ "name": name, "team_id": team }),
            )
            .await,
        )
        .await;
    }
    open_audit_log_to_users(&t).await;
    let created_bots = |token: String, path: &'static str| {
        let t = &t;
        async move {
            let res = t
                .get(
                    &t.org(&format!("{path}?action=chat_interface.created")),
                    &token,
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            let text = res.text().await.unwrap();
            let mut names: Vec<&str> = ["A bot", "B bot"]
                .into_iter()
                .filter(|n| text.contains(n))
                .collect();
            names.sort_unstable();
            names.join(",")
        }
    };
    let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    // Sign-ins carry no team: Tom reads his own, not Lisa's.
    let logins = json_of(t.get(&t.org("/audit-events?action=auth.login"), &tom).await).await;
    let actors: Vec<&str> = logins["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor_id"].as_str().unwrap())
        .collect();
    assert!(
        !actors.is_empty() && actors.iter().all(|a| *a == tom_id),
        "{actors:?}"
    );
    for path in ["/audit-events", "/audit-events/export"] {
        assert_eq!(created_bots(tom.clone(), path).await, "A bot", "{path}");
        assert_eq!(created_bots(lisa.clone(), path).await, "B bot", "{path}");
        assert_eq!(
            created_bots(mike.clone(), path).await,
            "A bot,B bot",
            "{path}"
        );
    }
    for (who, sees, not) in [
        ("tom", &tom_sees, "lisa@example.com"),
        ("lisa", &lisa_sees, "tom@example.com"),
    ] {
        assert!(!sees.contains(&not.to_owned()), "{who} sees {sees:?}");
        assert!(
            sees.contains(&format!("{who}@example.com"))
                && sees.contains(&"mike@example.com".to_owned())
                && sees.contains(&OWNER_EMAIL.to_owned()),
            "{who} sees {sees:?}"
        );
        assert!(sees.len() < everyone.len());
    }
    assert!(
        everyone.contains(&"tom@example.com".to_owned())
            && everyone.contains(&"lisa@example.com".to_owned())
    );
    // Made Client A's admin, Tom brings in people he sees (an Admin), not Lisa, whom he does
    // not see, by her id: she is not found, as someone outside the organization is, and
    // stays out of his team's member list.
    set_team_role(&t, &client_a, &tom_id, "admin").await;
    let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
    let mike_id = t.member_id("mike@example.com").await;
    let into_a = |user: &str| t.org(&format!("/teams/{client_a}/members/{user}"));
    problem(
        t.put(&into_a(&lisa_id), &tom, &json!({ "role": "member" }))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        t.put(&into_a(&mike_id), &tom, &json!({ "role": "member" }))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let members_of_a = json_of(
        t.get(&t.org(&format!("/teams/{client_a}/members")), &mike)
            .await,
    )
    .await
    .to_string();
    assert!(
        !members_of_a.contains(&lisa_id) && members_of_a.contains(&mike_id),
        "{members_of_a}"
    );
    // Taking her out (she is not in his team) answers as for an id nobody has: it does not
    // tell him she is a member elsewhere.
    let hidden = problem(
        t.delete(&into_a(&lisa_id), &tom).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let nobody = problem(
        t.delete(&into_a(&rbac_core::UserId::new().to_string()), &tom)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(hidden["detail"], nobody["detail"]);
    // The Owner and Admins bring in anyone.
    set_team_role(&t, &client_a, &lisa_id, "member").await;
});

both_backends!(a_team_admin_sees_every_key_of_their_team, |b| async move {
    // "A Team Admin sees and revokes every key in their team": Tom administers Client A,
    // where Lisa works; her key there is his to see, her key elsewhere is not.
    let t = spawn_app(b).await;
    let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
    let client_a = new_team(&t, &mike, "Client A").await;
    let (tom_id, lisa_id) = (
        t.member_id("tom@example.com").await,
        t.member_id("lisa@example.com").await,
    );
    set_team_role(&t, &client_a, &tom_id, "admin").await;
    set_team_role(&t, &client_a, &lisa_id, "member").await;
    let (tom, lisa) = (
        t.login("tom@example.com", DEMO_PASSWORD).await,
        t.login("lisa@example.com", DEMO_PASSWORD).await,
    );
    let key = |token: String, name: &'static str, team: Option<String>| {
        let t = &t;
        async move {
            let body = match team {
                Some(team) => json!({ "name": name, "team_id": team }),
                None => json!({ "name": name }),
            };
            id(&created(t.post(&t.org("/api-keys"), &token, &body).await).await)
        }
    };
    let lisa_a = key(lisa.clone(), "Lisa in A", Some(client_a.clone())).await;
    key(lisa.clone(), "Lisa's own", None).await;
    key(tom.clone(), "Tom's own", None).await;
    key(mike.clone(), "Mike's ops", None).await;
    // Pages of one: each page is full until the last.
    let listed = |token: String| {
        let t = &t;
        async move {
            let mut all = every_page(t, &token, "/api-keys", 1, "name").await;
            all.sort();
            all
        }
    };
    assert_eq!(listed(tom.clone()).await, ["Lisa in A", "Tom's own"]);
    assert_eq!(listed(lisa.clone()).await, ["Lisa in A", "Lisa's own"]);
    assert_eq!(
        listed(mike.clone()).await.len(),
        4,
        "the Admin sees every key"
    );
    // And he may revoke it.
    assert_eq!(
        t.delete(&t.org(&format!("/api-keys/{lisa_a}")), &tom)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
});

both_backends!(
    a_member_deletes_nothing_of_others_through_what_they_created,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        // Lisa's chat interface, with Tom's knowledge base and his document under it.
        let lisas = created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Lisa's bot" }),
            )
            .await,
        )
        .await;
        let toms_kb = created(
            t.post(
                &t.org("/knowledge-bases"),
                &tom,
                &json!({ "name": "Tom's notes", "chat_interface_id": id(&lisas) }),
            )
            .await,
        )
        .await;
        let doc = created(
            t.upload(
                &t.org(&format!(
                    "/knowledge-bases/{}/documents?name=n.txt",
                    id(&toms_kb)
                )),
                &tom,
                "text/plain",
                b"notes".to_vec(),
            )
            .await,
        )
        .await;
        // She may not delete his knowledge base, nor, through her chat interface, take it
        // and his document with it.
        let lisas_path = t.org(&format!("/chat-interfaces/{}", id(&lisas)));
        let kb_path = t.org(&format!("/knowledge-bases/{}", id(&toms_kb)));
        problem(
            t.delete(&kb_path, &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let p = problem(
            t.delete(&lisas_path, &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(p["reason"], "not_creator", "{p}");
        for path in [&lisas_path, &kb_path] {
            assert_eq!(t.get(path, &tom).await.status(), StatusCode::OK);
        }
        let content = t
            .get(&t.org(&format!("/documents/{}/content", id(&doc))), &tom)
            .await;
        assert_eq!(content.status(), StatusCode::OK);
        // Saved under its name.
        let disposition = content.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            disposition.starts_with("attachment")
                && disposition.contains("filename=\"n.txt\"")
                && disposition.contains("filename*=UTF-8''n.txt"),
            "{disposition}"
        );
        assert_eq!(content.bytes().await.unwrap().as_ref(), b"notes");
        let denied = t.audit("action=access.denied&limit=5").await;
        assert_eq!(denied[0]["reason"], "not_creator", "{denied:?}");
        // The Owner may delete it with everything under it.
        assert_eq!(
            t.delete(&lisas_path, &t.owner_token).await.status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(t.get(&kb_path, &tom).await.status(), StatusCode::NOT_FOUND);
        // What holds only her own she deletes.
        let hers = created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Lisa's second bot" }),
            )
            .await,
        )
        .await;
        created(
            t.post(
                &t.org("/knowledge-bases"),
                &lisa,
                &json!({ "name": "Lisa's notes", "chat_interface_id": id(&hers) }),
            )
            .await,
        )
        .await;
        assert_eq!(
            t.delete(&t.org(&format!("/chat-interfaces/{}", id(&hers))), &lisa)
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        // Her knowledge base, with Tom's document in it: she may not delete his document, nor
        // take it with her knowledge base.
        let her_kb = created(
            t.post(
                &t.org("/knowledge-bases"),
                &lisa,
                &json!({ "name": "Lisa's shared notes" }),
            )
            .await,
        )
        .await;
        let his_doc = created(
            t.upload(
                &t.org(&format!(
                    "/knowledge-bases/{}/documents?name=his.txt",
                    id(&her_kb)
                )),
                &tom,
                "text/plain",
                b"his".to_vec(),
            )
            .await,
        )
        .await;
        let her_kb_path = t.org(&format!("/knowledge-bases/{}", id(&her_kb)));
        let his_doc_path = t.org(&format!("/documents/{}", id(&his_doc)));
        problem(
            t.delete(&his_doc_path, &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let p = problem(
            t.delete(&her_kb_path, &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(p["reason"], "not_creator", "{p}");
        assert_eq!(t.get(&her_kb_path, &tom).await.status(), StatusCode::OK);
        let content = t
            .get(
                &t.org(&format!("/documents/{}/content", id(&his_doc))),
                &tom,
            )
            .await;
        assert_eq!(content.status(), StatusCode::OK);
        assert_eq!(content.bytes().await.unwrap().as_ref(), b"his");
        // Once he has taken his document out, her knowledge base is hers alone to delete.
        assert_eq!(
            t.delete(&his_doc_path, &tom).await.status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            t.delete(&her_kb_path, &lisa).await.status(),
            StatusCode::NO_CONTENT
        );
    }
);

both_backends!(
    a_copy_of_a_long_name_is_named_within_bounds,
    |b| async move {
        let t = spawn_app(b).await;
        let long = "L".repeat(100);
        let source = created(
            t.post(
                &t.org("/chat-interfaces"),
                &t.owner_token,
                &json!({ "name": long }),
            )
            .await,
        )
        .await;
        let copy = created(
            t.post(
                &t.org(&format!("/assets/{}/copy", id(&source))),
                &t.owner_token,
                &json!({}),
            )
            .await,
        )
        .await;
        let name = copy["name"].as_str().unwrap();
        assert_eq!(name.chars().count(), 100, "{name}");
        assert!(
            name.ends_with(" (copy)") && name.starts_with("LLL"),
            "{name}"
        );
    }
);

both_backends!(
    quality_gates_make_an_agent_pass_every_stage_of_the_pipeline,
    |b| async move {
        let t = spawn_app(b).await;
        let owner = t.owner_token.clone();
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let dev = new_team(&t, &owner, "Development").await;
        let test = new_team(&t, &owner, "Testing").await;
        let prod = new_team(&t, &owner, "Production").await;
        set_team_role(&t, &dev, &lisa_id, "admin").await;
        let url = t.org("/pipeline");
        problem(
            t.get(&url, &owner).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        // Only the Owner and Admins set it, with 2 to 10 distinct teams of the organization.
        let stages = json!({ "stages": [dev, test, prod] });
        problem(
            t.put(&url, &lisa, &stages).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        for bad in [json!([dev]), json!([dev, test, dev])] {
            problem(
                t.put(&url, &owner, &json!({ "stages": bad })).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
        }
        problem(
            t.put(
                &url,
                &owner,
                &json!({ "stages": [dev, rbac_core::TeamId::new().to_string()] }),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let set = json_of(t.put(&url, &owner, &stages).await).await;
        let names: Vec<_> = set["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].clone())
            .collect();
        assert_eq!(
            names,
            [json!("Development"), json!("Testing"), json!("Production")]
        );
        // A User reads it, seeing only the teams they are in.
        let seen = json_of(t.get(&url, &lisa).await).await;
        assert_eq!(seen["stages"][0]["name"], "Development");
        assert_eq!(seen["stages"][0]["team_id"], dev.as_str());
        assert_eq!(
            seen["stages"][2],
            json!({ "team_id": null, "name": null, "archived": null }),
            "a team she is not in stays hidden"
        );
        let recorded = t.audit("action=team.pipeline_set").await;
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0]["metadata"]["stages"][1]["name"], "Testing");

        // Agents are made in Development, not straight into a later stage.
        let p = problem(
            t.post(
                &t.org("/chat-interfaces"),
                &owner,
                &json!({ "name": "Shortcut", "team_id": prod }),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains("quality gate"),
            "{p}"
        );
        let agent = created(
            t.post(
                &t.org("/chat-interfaces"),
                &lisa,
                &json!({ "name": "Support agent", "team_id": dev }),
            )
            .await,
        )
        .await;
        // Knowledge bases are not gated.
        created(
            t.post(
                &t.org("/knowledge-bases"),
                &owner,
                &json!({ "name": "Prod answers", "team_id": prod }),
            )
            .await,
        )
        .await;
        let transfer = t.org(&format!("/assets/{}/transfer", id(&agent)));
        let in_team = |team: String| {
            let t = &t;
            let owner = owner.clone();
            let agent = id(&agent);
            async move {
                let a = json_of(
                    t.get(&t.org(&format!("/chat-interfaces/{agent}")), &owner)
                        .await,
                )
                .await;
                assert_eq!(a["team_id"], team.as_str(), "{a}");
            }
        };
        // Skipping Testing is refused and moves nothing.
        let p = problem(
            t.post(&transfer, &owner, &json!({ "team_id": prod })).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        assert!(
            p["detail"].as_str().unwrap().contains("from stage 2"),
            "names the stage before by position: {p}"
        );
        in_team(dev.clone()).await;
        // Nor is a copy made into Testing.
        problem(
            t.post(
                &t.org(&format!("/assets/{}/copy", id(&agent))),
                &owner,
                &json!({ "team_id": test }),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        // Dev → Test → Prod, then back to Development for a fix.
        for team in [&test, &prod, &dev] {
            json_of(t.post(&transfer, &owner, &json!({ "team_id": team })).await).await;
            in_team(team.to_string()).await;
        }

        // A stage is not deleted while the pipeline names it.
        problem(
            t.delete(&t.org(&format!("/teams/{test}")), &owner).await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        // Removed: nothing is gated any more.
        problem(
            t.delete(&url, &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(
            t.delete(&url, &owner).await.status(),
            StatusCode::NO_CONTENT
        );
        problem(
            t.get(&url, &owner).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert_eq!(t.audit("action=team.pipeline_removed").await.len(), 1);
        created(
            t.post(
                &t.org("/chat-interfaces"),
                &owner,
                &json!({ "name": "Direct", "team_id": prod }),
            )
            .await,
        )
        .await;
        assert_eq!(
            t.delete(&t.org(&format!("/teams/{test}")), &owner)
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
);
