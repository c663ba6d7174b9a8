//! The guide's RBAC table walked through HTTP for each role, with both branches of the
//! Limited cells and the feature-access settings, plus enforcement on real routes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

const Y: Cell = Cell::Yes;
const N: Cell = Cell::No;
const OWN: Cell = Cell::OwnOnly;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Yes,
    No,
    /// Allowed on resources the caller created, denied on others'.
    OwnOnly,
}

/// The enterprise guide's table (section 4) plus export, under the default settings.
#[rustfmt::skip]
const TABLE: &[(&str, bool, Cell, Cell, Cell)] = &[
    // permission,             team?, Owner, Admin, User
    ("view_billing",           false, Y, N, N),
    ("manage_billing",         false, Y, N, N),
    ("invite_members",         false, Y, Y, N),
    ("remove_members",         false, Y, Y, N),
    ("create_chat_interface",  true,  Y, Y, Y),
    ("create_knowledge_base",  true,  Y, Y, Y),
    ("manage_knowledge_base",  true,  Y, Y, OWN),
    ("upload_document",        true,  Y, Y, Y),
    ("delete_document",        true,  Y, Y, OWN),
    ("view_analytics",         true,  Y, Y, Y),
    ("create_api_key",         true,  Y, Y, Y),
    ("revoke_api_key",         true,  Y, Y, OWN),
    ("manage_domains",         true,  Y, Y, N),
    ("view_audit_log",         false, Y, Y, N),
    ("update_settings",        false, Y, Y, N),
    ("update_security_policy", false, Y, Y, N),
    ("transfer_ownership",     false, Y, N, N),
    ("delete_organization",    false, Y, N, N),
    ("export_data",            false, Y, Y, N),
];

async fn explain(
    t: &TestApp,
    token: &str,
    perm: &str,
    team: Option<&str>,
    creator: Option<&str>,
) -> bool {
    let mut q = format!("/explain?permission={perm}");
    if let Some(team) = team {
        q.push_str(&format!("&team_id={team}"));
    }
    if let Some(c) = creator {
        q.push_str(&format!("&creator_id={c}"));
    }
    let v = json_of(t.get(&t.org(&q), token).await).await;
    v["allowed"].as_bool().unwrap()
}

async fn default_team(t: &TestApp) -> String {
    let me = json_of(t.get(&t.url("/api/v1/me"), &t.owner_token).await).await;
    me["memberships"][0]["teams"][0]["team_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

both_backends!(
    every_cell_of_the_guide_table_for_every_role,
    |b| async move {
        let t = spawn_app(b).await;
        let team = default_team(&t).await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let lisa_id = t.member_id("lisa@example.com").await;
        let tom_id = t.member_id("tom@example.com").await;
        let mut mismatches = Vec::new();
        for (perm, team_scoped, owner, admin, user) in TABLE {
            let team_arg = team_scoped.then_some(team.as_str());
            for (who, token, cell, me) in [
                ("owner", &t.owner_token, owner, None),
                ("admin", &mike, admin, None),
                ("user", &lisa, user, Some(&lisa_id)),
            ] {
                let (on_own, on_others) = match cell {
                    Cell::Yes => (true, true),
                    Cell::No => (false, false),
                    Cell::OwnOnly => (true, false),
                };
                let own = explain(
                    &t,
                    token,
                    perm,
                    team_arg,
                    me.map(String::as_str).or(Some(&tom_id)),
                )
                .await;
                let others = explain(&t, token, perm, team_arg, Some(&tom_id)).await;
                if (own, others) != (on_own || on_others, on_others) {
                    mismatches.push(format!(
                        "{who} {perm}: own={own} others={others}, expected {cell:?}"
                    ));
                }
            }
        }
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
);

both_backends!(
    feature_access_settings_move_only_their_permission,
    |b| async move {
        let t = spawn_app(b).await;
        let lisa = t.login("lisa@example.com", DEMO_PASSWORD).await;
        let set = |v: Value| {
            let t = &t;
            async move {
                t.client
                    .put(t.org("/feature-access"))
                    .bearer_auth(&t.owner_token)
                    .json(&v)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let denied = problem(
            t.get(&t.org("/audit-events"), &lisa).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(denied["reason"], "disabled_by_setting");
        let open_all = json!({"create_api_keys": "admins_and_users", "manage_domains": "admins_and_users", "view_audit_logs": "admins_and_users", "export_data": "admins_and_users"});
        json_of(set(open_all).await).await;
        json_of(t.get(&t.org("/audit-events"), &lisa).await).await;
        let export = t
            .get(&t.org("/audit-events/export?format=ndjson"), &lisa)
            .await;
        assert_eq!(export.status(), StatusCode::OK);
        // She reads her teams' records, not the whole log: verifying or signing the whole
        // chain is not hers to do.
        for whole in ["/audit-events/verify", "/audit-events/checkpoints"] {
            problem(
                t.post(&t.org(whole), &lisa, &json!({})).await,
                StatusCode::FORBIDDEN,
                "forbidden",
            )
            .await;
        }
        let refused = t.audit("action=access.denied&outcome=denied").await;
        assert!(
            ["audit.verify", "audit.checkpoint"]
                .iter()
                .all(|p| refused.iter().any(|r| r["target_id"] == *p)),
            "{refused:?}"
        );
        for still_denied in [
            "view_billing",
            "manage_billing",
            "update_settings",
            "transfer_ownership",
            "update_feature_access",
        ] {
            assert!(
                !explain(&t, &lisa, still_denied, None, None).await,
                "{still_denied} leaked to users"
            );
        }
        problem(
            t.patch(&t.org(""), &lisa, &json!({"company_name": "Lisa Inc"}))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let bad = json!({"create_api_keys": "everyone", "manage_domains": "admins_only", "view_audit_logs": "admins_only", "export_data": "admins_only"});
        problem(
            set(bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
        let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
        assert_eq!(t.client.put(t.org("/feature-access")).bearer_auth(&lisa).json(&json!({"create_api_keys": "admins_only", "manage_domains": "admins_only", "view_audit_logs": "admins_only", "export_data": "admins_only"})).send().await.unwrap().status(), StatusCode::FORBIDDEN);
        assert!(explain(&t, &mike, "update_feature_access", None, None).await);
        assert_eq!(t.audit("action=feature_access.updated").await.len(), 1);
    }
);

both_backends!(
    denied_attempts_on_protected_routes_are_audited,
    |b| async move {
        let t = spawn_app(b).await;
        let tom = t.login("tom@example.com", DEMO_PASSWORD).await;
        let tom_id = t.member_id("tom@example.com").await;
        let p = problem(
            t.get(&t.org("/audit-events"), &tom).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_eq!(p["reason"], "disabled_by_setting");
        problem(
            t.patch(&t.org(""), &tom, &json!({"company_name": "x"}))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        let denials = t.audit(&format!("outcome=denied&actor_id={tom_id}")).await;
        assert_eq!(denials.len(), 2);
        assert!(denials.iter().all(|d| d["action"] == "access.denied"));
        let reasons: Vec<_> = denials
            .iter()
            .map(|d| d["reason"].as_str().unwrap())
            .collect();
        assert!(reasons.contains(&"disabled_by_setting"));
        assert!(reasons.contains(&"role_lacks_permission"));
    }
);

both_backends!(role_of_the_moment_not_a_cached_one, |b| async move {
    let t = spawn_app(b).await;
    let mike = t.login("mike@example.com", DEMO_PASSWORD).await;
    json_of(t.get(&t.org("/audit-events"), &mike).await).await;
    // Demote Mike directly in the database, as another server instance would; the next request sees it.
    let mike_id = t.member_id("mike@example.com").await;
    t.store
        .execute_sql(&format!(
            "UPDATE memberships SET role = 'user' WHERE user_id = '{mike_id}'"
        ))
        .await
        .unwrap();
    problem(
        t.get(&t.org("/audit-events"), &mike).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
});
