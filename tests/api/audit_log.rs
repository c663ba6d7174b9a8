//! The audit log through HTTP: what is recorded, search, export, and tamper detection
//! with rows changed directly in the database.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

async fn verify(t: &TestApp) -> Value {
    json_of(
        t.client
            .post(t.org("/audit-events/verify"))
            .bearer_auth(&t.owner_token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn checkpoint(t: &TestApp) -> Value {
    let res = t
        .client
        .post(t.org("/audit-events/checkpoints"))
        .bearer_auth(&t.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// The actions of an NDJSON export, line by line.
fn ndjson_actions(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Makes some history: logins and key creations by different people.
async fn history(t: &TestApp) {
    let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
    for name in ["Production API", "Staging API"] {
        let res = t
            .post(&t.org("/api-keys"), &lisa, &json!({ "name": name }))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
    let res = t
        .post(
            &t.org("/api-keys"),
            &mike,
            &json!({ "name": "=HYPERLINK(\"http://evil\")" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

both_backends!(
    actions_are_recorded_with_actor_context_and_readable_text,
    |b| async move {
        let t = spawn_app(b).await;
        history(&t).await;
        let created = t.audit("action=api_key.created").await;
        assert_eq!(created.len(), 3);
        let staging = created
            .iter()
            .find(|r| r["target_name"] == "Staging API")
            .unwrap();
        assert_eq!(staging["actor_name"], "Lisa");
        assert_eq!(staging["actor_type"], "user");
        assert_eq!(staging["outcome"], "success");
        assert_eq!(staging["ip"], "127.0.0.1");
        assert_eq!(staging["request_id"].as_str().unwrap().len(), 32);
        assert!(
            staging["text"]
                .as_str()
                .unwrap()
                .ends_with("| Lisa | Created API key \"Staging API\""),
            "{}",
            staging["text"]
        );
        let logins = t.audit("action=auth.login").await;
        assert_eq!(logins.len(), 3, "owner, Lisa and Mike logged in");
        let boot = t.audit("action=org.created").await;
        assert_eq!(boot[0]["actor_type"], "system");
    }
);

both_backends!(search_filters_and_keyset_pages, |b| async move {
    let t = spawn_app(b).await;
    history(&t).await;
    let lisa_id = t.member_id("lisa@example.com").await;
    let by_lisa = t.audit(&format!("actor_id={lisa_id}")).await;
    assert_eq!(by_lisa.len(), 3, "login and two keys");
    assert_eq!(t.audit("action=api_key.*").await.len(), 3);
    assert_eq!(t.audit("action=api_key.").await.len(), 3);
    // Without a dot or star it is exact, and no action is named `api_key`: a filter that
    // names nothing in the catalogue is refused rather than answered with an empty page.
    for unknown in ["api_key", "api_keys.", "apikey.*"] {
        let refused = problem(
            t.get(
                &t.org(&format!("/audit-events?action={unknown}")),
                &t.owner_token,
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains(unknown.trim_end_matches(['.', '*'])),
            "{refused}"
        );
    }
    let key_id = t.audit("action=api_key.created").await[0]["target_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        t.audit(&format!("target_type=api_key&target_id={key_id}"))
            .await
            .len(),
        1
    );
    assert_eq!(
        t.audit("period=last_7_days").await.len(),
        t.audit("limit=500").await.len()
    );
    let future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    assert!(
        t.audit(&format!("since={}", urlencode(&future)))
            .await
            .is_empty()
    );

    let all = t.audit("limit=500").await;
    let seqs: Vec<i64> = all.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/audit-events?limit=2&cursor={c}"),
            None => "/audit-events?limit=2".into(),
        };
        let page = json_of(t.get(&t.org(&q), &t.owner_token).await).await;
        paged.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, seqs, "pages cover everything exactly once");
    problem(
        t.get(&t.org("/audit-events?outcome=maybe"), &t.owner_token)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    problem(
        t.get(&t.org("/audit-events?since=yesterday"), &t.owner_token)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    // A preset and a custom start together would leave one of them unused.
    problem(
        t.get(
            &t.org(&format!(
                "/audit-events?period=last_7_days&since={}",
                urlencode(&future)
            )),
            &t.owner_token,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    problem(
        t.get(&t.org("/audit-events?period=last_90_days"), &t.owner_token)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    // An export has every matching record: a page's cursor or size is refused, not applied
    // silently.
    for page in ["cursor=900", "limit=10"] {
        problem(
            t.get(
                &t.org(&format!("/audit-events/export?format=pdf&{page}")),
                &t.owner_token,
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
    }
});

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

both_backends!(
    csv_and_ndjson_exports_are_complete_safe_and_audited,
    |b| async move {
        let t = spawn_app(b).await;
        history(&t).await;
        let total = t.audit("limit=500").await.len();
        let res = t
            .get(&t.org("/audit-events/export?format=csv"), &t.owner_token)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = res.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap().get(0), Some("seq"));
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(
            rows.len(),
            total + 1,
            "every record plus the export's own record"
        );
        assert!(
            rows.iter()
                .any(|r| &r[10] == "'=HYPERLINK(\"http://evil\")"),
            "formula neutralised"
        );
        assert!(!text.contains(",=HYPERLINK"), "no raw formula cell");

        let nd = t
            .get(
                &t.org("/audit-events/export?format=ndjson&action=api_key.created"),
                &t.owner_token,
            )
            .await
            .text()
            .await
            .unwrap();
        let lines: Vec<Value> = nd
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l["action"] == "api_key.created"));
        // The guide's "JSON" export: one array holding the same records, streamed as well.
        let res = t
            .get(
                &t.org("/audit-events/export?format=json&action=api_key.created"),
                &t.owner_token,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/json");
        let array: Vec<Value> = res.json().await.unwrap();
        assert_eq!(array, lines, "the same records, in the same order");
        // An export with nothing in it is an empty array.
        let res = t
            .get(
                &t.org("/audit-events/export?format=json&action=member.removed"),
                &t.owner_token,
            )
            .await;
        let empty: Vec<Value> = res.json().await.unwrap();
        assert!(empty.is_empty());
        assert_eq!(t.audit("action=data.exported").await.len(), 4);
        let unknown = problem(
            t.get(&t.org("/audit-events/export?format=xlsx"), &t.owner_token)
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
        let detail = unknown["detail"].as_str().unwrap();
        assert!(
            ["xlsx", "csv", "json", "ndjson", "pdf"]
                .iter()
                .all(|f| detail.contains(f)),
            "{detail}"
        );
        // A filter the store refuses is an error answer before anything streams (schemathesis
        // found this one cutting the connection after a 200).
        problem(
            t.get(&t.org("/audit-events/export?target_id=x"), &t.owner_token)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
    }
);

both_backends!(pdf_reports_read_back_with_pdftotext, |b| async move {
    let t = spawn_app(b).await;
    // Names in other scripts print as they are (the report embeds its font); characters the
    // font lacks, such as Chinese, print as `?`.
    for name in [
        "Production API",
        "Staging API",
        "Ключ Łódź Ωμέγα",
        "顧客 key",
    ] {
        t.post(
            &t.org("/api-keys"),
            &t.owner_token,
            &json!({ "name": name }),
        )
        .await;
    }
    let res = t
        .get(
            &t.org("/audit-events/export?format=pdf&action=api_key.&period=last_7_days"),
            &t.owner_token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let text = pdftotext(&res.bytes().await.unwrap());
    for expected in [
        "Audit log report",
        "Organization: Acme Corp",
        "action = api_key.",
        "period = last_7_days",
        "Events: 4, newest first",
        "Page 1 of 1",
        "api_key.created",
        "Production API",
        "Staging API",
        "\"Ключ Łódź Ωμέγα\"",
        "\"?? key\"",
        "Sarah Owner",
        "(included) to now",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
    assert!(!text.contains("auth.login"), "the filter applies");
    // Many events take several numbered pages.
    for i in 0..60 {
        t.post(
            &t.org("/api-keys"),
            &t.owner_token,
            &json!({ "name": format!("k{i}") }),
        )
        .await;
        t.delete(&t.org("/api-keys/none"), &t.owner_token).await;
    }
    let all = t
        .get(&t.org("/audit-events/export?format=pdf"), &t.owner_token)
        .await;
    let text = pdftotext(&all.bytes().await.unwrap());
    assert!(
        text.contains("Page 1 of ") && text.contains("Filters: none"),
        "{text}"
    );
    let pages: usize = text
        .split("Page 1 of ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(pages >= 2, "{pages}");
    assert!(text.contains(&format!("Page {pages} of {pages}")));
    let exported = t.audit("action=data.exported").await;
    assert_eq!(exported[0]["metadata"]["format"], "pdf");
    assert_eq!(
        exported[1]["metadata"]["filter"],
        json!({"action": "api_key.", "period": "last_7_days"}),
        "the filters as checked"
    );
});

/// The text of a PDF as poppler's `pdftotext` reads it (an implementation independent of ours).
fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (Debian's poppler-utils; `.ci/run` installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

both_backends!(large_exports_stream_across_pages, |b| async move {
    let t = spawn_app(b).await;
    // 1,200 records straight through the audit store, then exported over HTTP in pages of 500.
    let org: rbac_core::OrgId = t.org_id.parse().unwrap();
    let mut journal = audit::Journal::default();
    for i in 0..1200 {
        journal = journal.and_record(audit::NewAuditEvent::new(
            org,
            chrono::Utc::now(),
            audit::Actor::system(),
            audit::AuditAction::AnalyticsViewed,
            audit::Target::new("analytics", i, "dashboard"),
        ));
    }
    audit::AuditStore::append(&*t.store, journal).await.unwrap();
    let total = t.audit("limit=500").await[0]["seq"].as_i64().unwrap();
    let text = t
        .get(&t.org("/audit-events/export"), &t.owner_token)
        .await
        .text()
        .await
        .unwrap();
    let rows = csv::Reader::from_reader(text.as_bytes()).records().count() as i64;
    assert_eq!(rows, total + 1);
    assert!(verify(&t).await["valid"].as_bool().unwrap());
});

both_backends!(
    erasure_keeps_the_chain_valid_but_edits_break_it,
    |b| async move {
        let t = spawn_app(b).await;
        history(&t).await;
        let cp = checkpoint(&t).await;
        let ok = verify(&t).await;
        assert_eq!(ok["valid"], true, "{ok}");
        assert_eq!(ok["checkpoint_seq"], cp["seq"]);
        // Who asked for the checkpoint is recorded, right after the head it signed.
        let asked = t.audit("action=audit.checkpointed").await;
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0]["metadata"]["seq"], cp["seq"]);
        assert_eq!(asked[0]["metadata"]["head"], cp["head"]);
        assert_eq!(asked[0]["seq"], cp["seq"].as_i64().unwrap() + 1);
        assert_eq!(
            asked[0]["actor_id"],
            t.member_id(OWNER_EMAIL).await.as_str()
        );
        let org = &t.org_id;
        // Personal annotations are outside the hash: erasing them keeps the chain valid.
        t.store.execute_sql(&format!("UPDATE audit_events SET actor_name = '[erased]', ip = '' WHERE org_id = '{org}' AND seq = 3")).await.unwrap();
        assert_eq!(verify(&t).await["valid"], true);
        // Editing what the record says is caught at that record.
        t.store.execute_sql(&format!("UPDATE audit_events SET target_id = 'key_forged' WHERE org_id = '{org}' AND seq = 5")).await.unwrap();
        let v = verify(&t).await;
        assert_eq!(v["valid"], false);
        assert_eq!(v["first_break"], json!({"kind": "modified", "seq": 5}));
        assert!(v["detail"].as_str().unwrap().contains("record 5"));
        // Each verification is itself recorded, newest first, with what it found.
        let found: Vec<Value> = t
            .audit("action=audit.verified")
            .await
            .iter()
            .map(|r| r["metadata"].clone())
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(
            found[0],
            json!({"valid": false, "first_break": {"kind": "modified", "seq": 5}})
        );
        assert_eq!(found[2]["valid"], true);
        assert_eq!(found[2]["checkpoint_seq"], cp["seq"]);
    }
);

both_backends!(
    deletion_reordering_and_truncation_are_detected,
    |b| async move {
        for case in ["delete", "reorder", "truncate"] {
            let t = spawn_app(b).await;
            history(&t).await;
            let cp = checkpoint(&t).await;
            let last = cp["seq"].as_i64().unwrap();
            let org = t.org_id.clone();
            assert_eq!(verify(&t).await["valid"], true);
            match case {
                "delete" => {
                    t.store
                        .execute_sql(&format!(
                            "DELETE FROM audit_events WHERE org_id = '{org}' AND seq = 4"
                        ))
                        .await
                        .unwrap();
                }
                "reorder" => {
                    t.store
                        .execute_sql(&format!(
                            "UPDATE audit_events SET seq = -1 WHERE org_id = '{org}' AND seq = 4"
                        ))
                        .await
                        .unwrap();
                    t.store
                        .execute_sql(&format!(
                            "UPDATE audit_events SET seq = 4 WHERE org_id = '{org}' AND seq = 5"
                        ))
                        .await
                        .unwrap();
                    t.store
                        .execute_sql(&format!(
                            "UPDATE audit_events SET seq = 5 WHERE org_id = '{org}' AND seq = -1"
                        ))
                        .await
                        .unwrap();
                }
                _ => {
                    t.store
                        .execute_sql(&format!(
                            "DELETE FROM audit_events WHERE org_id = '{org}' AND seq > {}",
                            last - 2
                        ))
                        .await
                        .unwrap();
                    t.store
                        .execute_sql(&format!(
                            "UPDATE audit_heads SET seq = {} WHERE org_id = '{org}'",
                            last - 2
                        ))
                        .await
                        .unwrap();
                }
            }
            let v = verify(&t).await;
            assert_eq!(v["valid"], false, "{case} went unnoticed");
            let expected = match case {
                "delete" => json!({"kind": "missing", "seq": 5, "expected": 4}),
                "reorder" => json!({"kind": "modified", "seq": 4}),
                _ => json!({"kind": "truncated", "last": last - 2, "checkpoint": last}),
            };
            assert_eq!(v["first_break"], expected, "{case}");
        }
    }
);

both_backends!(
    records_after_the_newest_checkpoint_are_held_to_the_head,
    |b| async move {
        // Cut off after the newest checkpoint: the chain must still reach the recorded head.
        let t = spawn_app(b).await;
        history(&t).await;
        let last = checkpoint(&t).await["seq"].as_i64().unwrap();
        history(&t).await;
        let org = t.org_id.clone();
        let head = verify(&t).await["records"].as_i64().unwrap();
        assert!(head > last + 2);
        t.store
            .execute_sql(&format!(
                "DELETE FROM audit_events WHERE org_id = '{org}' AND seq > {last}"
            ))
            .await
            .unwrap();
        let v = verify(&t).await;
        assert_eq!(v["valid"], false, "{v}");
        assert_eq!(v["first_break"]["kind"], "short_of_head", "{v}");
        assert_eq!(v["first_break"]["last"], last);

        // Edited after the newest checkpoint: no new checkpoint is signed over it.
        let t = spawn_app(b).await;
        history(&t).await;
        let last = checkpoint(&t).await["seq"].as_i64().unwrap();
        history(&t).await;
        let org = t.org_id.clone();
        t.store
            .execute_sql(&format!(
                "UPDATE audit_events SET target_id = 'key_forged' WHERE org_id = '{org}' AND seq = {}",
                last + 2
            ))
            .await
            .unwrap();
        let refused = problem(
            t.post(
                &t.org("/audit-events/checkpoints"),
                &t.owner_token,
                &json!({}),
            )
            .await,
            StatusCode::CONFLICT,
            "audit_chain_broken",
        )
        .await;
        assert_eq!(
            refused["first_break"],
            json!({"kind": "modified", "seq": last + 2}),
            "{refused}"
        );
        let newest = audit::AuditStore::latest_checkpoint(&*t.store, org.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(newest.seq, last, "no checkpoint was signed after it");
    }
);

/// Seals `org`'s chain again from record `from` on, with record `from` saying another key was
/// created, straight in the database: fresh hashes and a head to match, as someone with write
/// access to the database (but not the checkpoint key) could.
async fn reseal_from(t: &TestApp, org: rbac_core::OrgId, from: i64) {
    let records = audit::AuditStore::chain_page(&*t.store, org, 0, 10_000)
        .await
        .unwrap();
    let mut prev = records[usize::try_from(from - 2).unwrap()].hash;
    for r in records.into_iter().filter(|r| r.seq >= from) {
        let mut e = r.event;
        if r.seq == from {
            e.target.id = "key_forged".into();
        }
        let sealed = audit::chain::seal(e, r.seq, prev);
        t.store
            .execute_sql(&format!(
                "UPDATE audit_events SET target_id = '{}', prev_hash = '{}', hash = '{}' WHERE org_id = '{org}' AND seq = {}",
                sealed.event.target.id,
                hex::encode(sealed.prev_hash),
                hex::encode(sealed.hash),
                sealed.seq
            ))
            .await
            .unwrap();
        t.store
            .execute_sql(&format!(
                "UPDATE audit_heads SET hash = '{}' WHERE org_id = '{org}' AND seq = {}",
                hex::encode(sealed.hash),
                sealed.seq
            ))
            .await
            .unwrap();
        prev = sealed.hash;
    }
}

both_backends!(
    checkpoints_deleted_from_the_database_are_still_held_by_the_witness,
    |b| async move {
        for case in ["reseal", "cut"] {
            let t = spawn_app(b).await;
            history(&t).await;
            let cp = checkpoint(&t).await;
            let seq = cp["seq"].as_i64().unwrap();
            let org: rbac_core::OrgId = t.org_id.parse().unwrap();
            // The checkpoint is also kept outside the database.
            let kept = audit::CheckpointWitness::latest(&t.witness(), org)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(kept.seq, seq);
            assert_eq!(json!(hex::encode(kept.head)), cp["head"]);
            history(&t).await;
            t.store
                .execute_sql(&format!(
                    "DELETE FROM audit_checkpoints WHERE org_id = '{org}'"
                ))
                .await
                .unwrap();
            match case {
                "reseal" => reseal_from(&t, org, 4).await,
                _ => {
                    let records = audit::AuditStore::chain_page(&*t.store, org, seq - 3, 1)
                        .await
                        .unwrap();
                    let hash = hex::encode(records[0].hash);
                    t.store
                        .execute_sql(&format!(
                            "DELETE FROM audit_events WHERE org_id = '{org}' AND seq > {}",
                            seq - 2
                        ))
                        .await
                        .unwrap();
                    t.store
                        .execute_sql(&format!(
                            "UPDATE audit_heads SET seq = {}, hash = '{}' WHERE org_id = '{org}'",
                            seq - 2,
                            hash
                        ))
                        .await
                        .unwrap();
                }
            }
            // The database alone holds nothing to tell the chain is not the one signed.
            let key = axie_server::startup::checkpoint_key(&t.settings).unwrap();
            assert!(
                audit::verify_chain(&*t.store, org, &key)
                    .await
                    .unwrap()
                    .is_ok(),
                "{case}: the tampering is consistent within the database"
            );
            let v = verify(&t).await;
            assert_eq!(v["valid"], false, "{case} went unnoticed: {v}");
            let expected = match case {
                "reseal" => json!({"kind": "checkpoint_mismatch", "seq": seq}),
                _ => json!({"kind": "truncated", "last": seq - 2, "checkpoint": seq}),
            };
            assert_eq!(v["first_break"], expected, "{case}");
            // No checkpoint is signed over it, and the witness keeps what it had.
            problem(
                t.post(
                    &t.org("/audit-events/checkpoints"),
                    &t.owner_token,
                    &json!({}),
                )
                .await,
                StatusCode::CONFLICT,
                "audit_chain_broken",
            )
            .await;
            let still = audit::CheckpointWitness::latest(&t.witness(), org)
                .await
                .unwrap();
            assert_eq!(still, Some(kept), "{case}");
        }
    }
);

both_backends!(
    an_operator_accepts_a_restored_database_after_it_verifies_on_its_own,
    |b| async move {
        let t = spawn_app(b).await;
        let org: rbac_core::OrgId = t.org_id.parse().unwrap();
        let key = axie_server::startup::checkpoint_key(&t.settings).unwrap();
        history(&t).await;
        // The backup is taken here: the log up to the record of this checkpoint.
        let at_backup = checkpoint(&t).await["seq"].as_i64().unwrap() + 1;
        history(&t).await;
        let newest = checkpoint(&t).await["seq"].as_i64().unwrap();
        // The backup restored: the records and checkpoints since are gone from the database.
        let kept = audit::AuditStore::chain_page(&*t.store, org, at_backup - 1, 1)
            .await
            .unwrap();
        assert_eq!(kept[0].seq, at_backup);
        for sql in [
            format!("DELETE FROM audit_events WHERE org_id = '{org}' AND seq > {at_backup}"),
            format!("DELETE FROM audit_checkpoints WHERE org_id = '{org}' AND seq >= {at_backup}"),
            format!(
                "UPDATE audit_heads SET seq = {at_backup}, hash = '{}' WHERE org_id = '{org}'",
                hex::encode(kept[0].hash)
            ),
        ] {
            t.store.execute_sql(&sql).await.unwrap();
        }
        let v = verify(&t).await;
        assert_eq!(
            v["first_break"],
            json!({"kind": "truncated", "last": at_backup, "checkpoint": newest}),
            "{v}"
        );
        // The operator accepts the loss: the witness's checkpoint is set aside, recorded, and
        // the log as restored is signed and witnessed.
        let witness = t.witness();
        let accept = |witnessed_seq| {
            axie_server::admin::accept_restored_audit(
                &t.store,
                &witness,
                org,
                &key,
                witnessed_seq,
                t.clock.now(),
            )
        };
        // The operator names the loss they accept: another position changes nothing.
        assert!(accept(newest - 1).await.is_err());
        assert!(t.audit("action=audit.witness_reset").await.is_empty());
        let done = accept(newest).await.unwrap();
        let axie_server::admin::Acceptance::Accepted {
            witnessed,
            set_aside,
            database_checkpoint,
            database_seq,
            now,
        } = done
        else {
            panic!("nothing accepted: {done:?}");
        };
        assert_eq!(witnessed.seq, newest);
        assert!(set_aside.exists(), "{}", set_aside.display());
        assert_eq!(database_checkpoint.map(|c| c.seq), Some(at_backup - 1));
        // The restored records and the failed verification's record.
        assert_eq!(database_seq, at_backup + 1);
        let now = now.unwrap();
        assert!(
            now.seq > database_seq,
            "the acceptance's record is signed too"
        );
        assert_eq!(
            audit::CheckpointWitness::latest(&witness, org)
                .await
                .unwrap(),
            Some(now.clone())
        );
        assert_eq!(verify(&t).await["valid"], true);
        let reset = t.audit("action=audit.witness_reset").await;
        assert_eq!(reset.len(), 1);
        assert_eq!(reset[0]["actor_type"], "system");
        let m = &reset[0]["metadata"];
        assert_eq!(
            (
                &m["witnessed_seq"],
                &m["database_seq"],
                &m["database_checkpoint_seq"]
            ),
            (&json!(newest), &json!(at_backup + 1), &json!(at_backup - 1))
        );
        // Once is enough.
        assert_eq!(
            accept(now.seq).await.unwrap(),
            axie_server::admin::Acceptance::NothingToAccept
        );
        // A database whose own log does not verify is not accepted: nothing changes.
        t.store
            .execute_sql(&format!(
                "UPDATE audit_events SET target_id = 'forged' WHERE org_id = '{org}' AND seq = 3"
            ))
            .await
            .unwrap();
        let before = audit::CheckpointWitness::latest(&witness, org)
            .await
            .unwrap();
        assert!(accept(now.seq).await.is_err());
        assert_eq!(
            audit::CheckpointWitness::latest(&witness, org)
                .await
                .unwrap(),
            before
        );
    }
);

both_backends!(
    retention_removes_old_records_and_the_chain_still_verifies,
    |b| async move {
        let mut t = spawn_app(b).await;
        // Only the Owner sets it, within bounds.
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        assert_eq!(
            t.patch(
                &t.org("/security"),
                &mike,
                &json!({"audit_retention_days": 30})
            )
            .await
            .status(),
            StatusCode::FORBIDDEN
        );
        problem(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({"audit_retention_days": 7}),
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
                &json!({"audit_retention_days": 30}),
            )
            .await,
        )
        .await;
        assert_eq!(s["audit_retention_days"], 30);
        t.post(
            &t.org("/api-keys"),
            &t.owner_token,
            &json!({"name": "old key"}),
        )
        .await;

        // A month and a day later, new activity, then the retention pass.
        t.clock.advance(chrono::Duration::days(31));
        t.owner_token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        t.post(
            &t.org("/api-keys"),
            &t.owner_token,
            &json!({"name": "new key"}),
        )
        .await;
        let key = axie_server::startup::checkpoint_key(&t.settings).unwrap();
        // An old record edited: retention refuses to remove the evidence with it.
        let org = &t.org_id;
        let forge = format!(
            "UPDATE audit_events SET target_id = target_id || '-forged' WHERE org_id = '{org}' AND seq = 2"
        );
        t.store.execute_sql(&forge).await.unwrap();
        let records = || async {
            let counts = t.store.row_counts().await.unwrap();
            counts
                .into_iter()
                .find(|(n, _)| *n == "audit_events")
                .unwrap()
                .1
        };
        let before = records().await;
        let refused =
            axie_server::workers::apply_retention(&t.store, &t.witness(), &key, t.clock.now())
                .await
                .unwrap_err();
        assert!(
            refused.to_string().contains("the audit chain is broken"),
            "{refused}"
        );
        assert_eq!(records().await, before, "nothing removed");
        assert_eq!(verify(&t).await["valid"], false);
        let mend = format!(
            "UPDATE audit_events SET target_id = replace(target_id, '-forged', '') WHERE org_id = '{org}' AND seq = 2"
        );
        t.store.execute_sql(&mend).await.unwrap();
        let removed =
            axie_server::workers::apply_retention(&t.store, &t.witness(), &key, t.clock.now())
                .await
                .unwrap();
        assert!(removed > 5, "{removed}");
        let again =
            axie_server::workers::apply_retention(&t.store, &t.witness(), &key, t.clock.now())
                .await
                .unwrap();
        assert_eq!(again, 0, "nothing more is old enough");

        let keys: Vec<String> = t
            .audit("action=api_key.created")
            .await
            .iter()
            .map(|e| e["target_name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["new key"]);
        let pruned = t.audit("action=audit.pruned").await;
        assert_eq!(pruned.len(), 1);
        assert_eq!(pruned[0]["actor_type"], "system");
        assert_eq!(pruned[0]["metadata"]["removed"], removed);
        assert_eq!(verify(&t).await["valid"], true);

        // The anchor is signed: moving it (to hide a removed record) is detected.
        t.store
            .execute_sql("UPDATE audit_anchors SET seq = seq - 1")
            .await
            .unwrap();
        let v = verify(&t).await;
        assert_eq!(v["valid"], false, "{v}");
    }
);

both_backends!(
    leaving_enterprise_archives_the_log_for_the_owner,
    |b| async move {
        let mut t = spawn_app(b).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        assert_eq!(
            t.patch(
                &t.org("/security"),
                &t.owner_token,
                &json!({"audit_retention_days": 30})
            )
            .await
            .status(),
            StatusCode::OK
        );
        assert_eq!(
            t.put(&t.org("/plan"), &mike, &json!({"plan": "pro"}))
                .await
                .status(),
            StatusCode::FORBIDDEN,
            "only the Owner changes the plan"
        );
        let org = json_of(
            t.put(&t.org("/plan"), &t.owner_token, &json!({"plan": "pro"}))
                .await,
        )
        .await;
        assert_eq!(org["plan"], "pro");
        assert!(org["audit_archived_at"].is_string());
        // An archive is kept whole: the retention period no longer removes anything from it.
        t.clock.advance(chrono::Duration::days(31));
        t.owner_token = t.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let key = axie_server::startup::checkpoint_key(&t.settings).unwrap();
        assert_eq!(
            axie_server::workers::apply_retention(&t.store, &t.witness(), &key, t.clock.now())
                .await
                .unwrap(),
            0
        );

        // The live log is an Enterprise feature; the archive stays readable by the Owner only.
        let p = problem(
            t.get(&t.org("/audit-events"), &t.owner_token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(p["reason"], "plan_lacks_feature");
        let res = t
            .get(
                &t.org("/audit-archive/export?format=ndjson"),
                &t.owner_token,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let actions = ndjson_actions(&res.text().await.unwrap());
        assert_eq!(actions[0], "data.exported", "the export is audited first");
        assert!(actions.contains(&"billing.plan_changed".to_owned()));
        assert!(
            actions.contains(&"auth.login".to_owned()),
            "nothing was deleted"
        );
        assert_eq!(
            t.get(&t.org("/audit-archive/export"), &mike).await.status(),
            StatusCode::FORBIDDEN
        );
        // The Owner can check the chain of what they export; a verification is recorded.
        let checked = json_of(
            t.post(&t.org("/audit-archive/verify"), &t.owner_token, &json!({}))
                .await,
        )
        .await;
        assert_eq!(checked["valid"], true, "{checked}");
        assert!(checked["records"].as_i64().unwrap() > 2, "{checked}");
        assert_eq!(
            t.post(&t.org("/audit-archive/verify"), &mike, &json!({}))
                .await
                .status(),
            StatusCode::FORBIDDEN
        );

        // Upgrading again makes the log live; the archive export is then not the way.
        let org = json_of(
            t.put(
                &t.org("/plan"),
                &t.owner_token,
                &json!({"plan": "enterprise"}),
            )
            .await,
        )
        .await;
        assert!(org["audit_archived_at"].is_null());
        let changes = t.audit("action=billing.plan_changed").await;
        assert_eq!(changes.len(), 2);
        let m = &changes[1]["metadata"];
        assert_eq!(
            (&m["from"], &m["to"], &m["audit_archived"]),
            (&json!("enterprise"), &json!("pro"), &json!(true))
        );
        problem(
            t.get(&t.org("/audit-archive/export"), &t.owner_token).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        problem(
            t.post(&t.org("/audit-archive/verify"), &t.owner_token, &json!({}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        assert_eq!(verify(&t).await["valid"], true);
        assert_eq!(
            t.audit("action=audit.verified").await.len(),
            2,
            "the archive's verification and this one"
        );
    }
);

both_backends!(
    a_person_is_found_with_what_their_api_keys_did,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let key = json_of(
            t.post(
                &t.org("/api-keys"),
                &lisa,
                &json!({ "name": "Lisa's script" }),
            )
            .await,
        )
        .await;
        let secret = key["secret"].as_str().unwrap();
        // Her script asks for something it may not have: refused, and recorded as the key's.
        assert_eq!(
            t.get(&t.org("/billing"), secret).await.status(),
            StatusCode::FORBIDDEN
        );
        let in_person = t.audit(&format!("actor_id={lisa_id}")).await;
        let actions = |records: &[Value]| -> Vec<String> {
            records
                .iter()
                .map(|r| r["action"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(actions(&in_person), ["api_key.created", "auth.login"]);
        let hers = t.audit(&format!("user_id={lisa_id}")).await;
        assert_eq!(
            actions(&hers),
            ["access.denied", "api_key.created", "auth.login"],
            "newest first, her key's refusal with her own actions"
        );
        assert_eq!(hers[0]["actor_type"], "api_key");
        assert_eq!(hers[0]["actor_id"], key["id"]);
        // Paged one at a time, the same three.
        let mut seqs = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = json_of(
                t.get(
                    &t.org(&format!("/audit-events?user_id={lisa_id}&limit=1{cursor}")),
                    &t.owner_token,
                )
                .await,
            )
            .await;
            seqs.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["seq"].clone()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(
            seqs,
            hers.iter().map(|r| r["seq"].clone()).collect::<Vec<_>>()
        );
        // The export follows the same filter.
        let res = t
            .get(
                &t.org(&format!(
                    "/audit-events/export?format=ndjson&user_id={lisa_id}"
                )),
                &t.owner_token,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let exported = ndjson_actions(&res.text().await.unwrap());
        assert_eq!(exported, actions(&hers));
        // One or the other.
        for bad in [
            format!("user_id={lisa_id}&actor_id={lisa_id}"),
            "user_id=lisa".to_owned(),
        ] {
            problem(
                t.get(&t.org(&format!("/audit-events?{bad}")), &t.owner_token)
                    .await,
                StatusCode::BAD_REQUEST,
                "invalid_request",
            )
            .await;
        }
    }
);

both_backends!(
    a_person_with_too_many_keys_is_refused_before_an_export_begins,
    |b| async move {
        let t = spawn_app(b).await;
        let me = json_of(t.get(&t.url("/api/v1/me"), &t.owner_token).await).await;
        let owner_id = me["user"]["id"].as_str().unwrap().to_owned();
        // A search by person looks for them and each of their keys, revoked ones too, at most
        // 256 actors in all: 255 keys are searched, one more is refused.
        let add_keys = |n: usize| {
            let t = &t;
            async move {
                for i in 0..n {
                    let key = json_of(
                        t.post(
                            &t.org("/api-keys"),
                            &t.owner_token,
                            &json!({ "name": format!("k{i}") }),
                        )
                        .await,
                    )
                    .await;
                    let res = t
                        .delete(
                            &t.org(&format!("/api-keys/{}", key["id"].as_str().unwrap())),
                            &t.owner_token,
                        )
                        .await;
                    assert!(res.status().is_success(), "{key}");
                }
            }
        };
        add_keys(255).await;
        let export = format!("/audit-events/export?format=ndjson&user_id={owner_id}");
        let res = t.get(&t.org(&export), &t.owner_token).await;
        assert_eq!(res.status(), StatusCode::OK);
        let exported = ndjson_actions(&res.text().await.unwrap());
        assert_eq!(
            exported.iter().filter(|a| *a == "api_key.created").count(),
            255
        );
        add_keys(1).await;
        let exports = || async { t.audit("action=data.exported").await.len() };
        let before = exports().await;
        for path in [export.clone(), format!("/audit-events?user_id={owner_id}")] {
            problem(
                t.get(&t.org(&path), &t.owner_token).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
            )
            .await;
        }
        assert_eq!(exports().await, before, "a refused export is not recorded");
    }
);

both_backends!(
    a_change_whose_audit_record_cannot_be_written_is_not_made,
    |b| async move {
        let t = spawn_app_with(
            b,
            Options {
                demo: true,
                ..Options::default()
            },
        )
        .await;
        let url = t.org("/chat-interfaces");
        let named = |listed: &Value, name: &str| {
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["name"] == name)
                .count()
        };
        let created_records = async || {
            t.audit("action=chat_interface.created&limit=100")
                .await
                .into_iter()
                .filter(|r| r["target_name"] == "Billing Helper")
                .count()
        };

        // The database refuses the creation's audit record: the creation is refused with it.
        t.refuse_audit_records("NEW.action = 'chat_interface.created'")
            .await;
        let refused = problem(
            t.post(&url, &t.owner_token, &json!({ "name": "Billing Helper" }))
                .await,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        )
        .await;
        assert!(
            !refused.to_string().contains("audit record refused"),
            "the database's words stay in the server's log: {refused}"
        );
        t.accept_audit_records().await;
        let listed = json_of(t.get(&url, &t.owner_token).await).await;
        assert_eq!(named(&listed, "Billing Helper"), 0, "{listed}");
        assert_eq!(created_records().await, 0);
        let verdict = verify(&t).await;
        assert_eq!(verdict["valid"], true, "{verdict}");
        // Accepted again, the same creation goes through with its one record.
        let res = t
            .post(&url, &t.owner_token, &json!({ "name": "Billing Helper" }))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let listed = json_of(t.get(&url, &t.owner_token).await).await;
        assert_eq!(named(&listed, "Billing Helper"), 1, "{listed}");
        assert_eq!(created_records().await, 1);

        // A refusal answered "not found" (another team's chat interface) stays that answer when
        // its record cannot be written: a 500 there, against a 404 for a missing one, would
        // tell that it exists.
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let team = json_of(
            t.post(
                &t.org("/teams"),
                &t.owner_token,
                &json!({ "name": "Secret" }),
            )
            .await,
        )
        .await;
        let secret = json_of(
            t.post(
                &url,
                &t.owner_token,
                &json!({ "name": "Secret bot", "team_id": team["id"] }),
            )
            .await,
        )
        .await;
        let secret_url = t.org(&format!(
            "/chat-interfaces/{}",
            secret["id"].as_str().unwrap()
        ));
        let missing_url = t.org(&format!(
            "/chat-interfaces/res_{}",
            uuid::Uuid::now_v7().simple()
        ));
        let refusals_of_lisa = format!("action=access.denied&actor_id={lisa_id}&limit=100");
        let before = t.audit(&refusals_of_lisa).await.len();
        t.refuse_audit_records("NEW.action = 'access.denied'").await;
        let hidden = problem(
            t.get(&secret_url, &lisa).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let missing = problem(
            t.get(&missing_url, &lisa).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert_eq!(hidden["detail"], missing["detail"]);
        t.accept_audit_records().await;
        assert_eq!(t.audit(&refusals_of_lisa).await.len(), before);
        // Once records can be written again, the same refusal is recorded.
        problem(
            t.get(&secret_url, &lisa).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let refusals = t.audit(&refusals_of_lisa).await;
        assert_eq!(refusals.len(), before + 1, "{refusals:#?}");
        assert_eq!(refusals[0]["reason"], "not_team_member");
        let verdict = verify(&t).await;
        assert_eq!(verdict["valid"], true, "{verdict}");
    }
);
