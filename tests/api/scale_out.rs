//! Two server instances on one database: sessions work on both, limits and quotas hold across
//! them under concurrent requests, and webhook events are delivered once although both run a
//! delivery worker.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    two_instances_share_sessions_limits_quotas_and_deliveries,
    |b| async move {
        let t = spawn_app(b).await;
        let second = t.another_instance().await;
        let on = |i: usize, path: &str| {
            if i.is_multiple_of(2) {
                t.org(path)
            } else {
                format!("{second}/api/v1/orgs/{}{path}", t.org_id)
            }
        };

        // A session from one instance works on the other.
        let me = t
            .client
            .get(format!("{second}/api/v1/me"))
            .bearer_auth(&t.owner_token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);

        // Seats: 4 members of the Enterprise plan's 20; 30 concurrent invitations over both
        // instances leave exactly 16 pending.
        let invites = (0..30).map(|i| {
            let url = on(i, "/invitations");
            let token = t.owner_token.clone();
            let client = t.client.clone();
            async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"email": format!("seat{i}@example.com"), "role": "user"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        });
        let answers = futures::future::join_all(invites).await;
        let created = answers
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        assert_eq!(created, 16, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|s| *s == StatusCode::CREATED || *s == StatusCode::FORBIDDEN)
        );

        // Quota: 12 concurrent API keys against a Pro organization's limit of 5, over both
        // instances.
        let (pro, pro_owner) = crate::api_keys::second_org(&t, billing_limits::Plan::Pro).await;
        let pro_token = t.login(&pro_owner, OWNER_PASSWORD).await;
        let keys = (0..12_u32).map(|i| {
            let url = if i.is_multiple_of(2) {
                t.url(&format!("/api/v1/orgs/{pro}/api-keys"))
            } else {
                format!("{second}/api/v1/orgs/{pro}/api-keys")
            };
            let (client, token) = (t.client.clone(), pro_token.clone());
            async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"name": format!("k{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        });
        let answers = futures::future::join_all(keys).await;
        assert_eq!(
            answers
                .iter()
                .filter(|s| **s == StatusCode::CREATED)
                .count(),
            5,
            "{answers:?}"
        );

        // Monthly API calls: 9,995 of the Pro plan's 10,000 used; 10 calls over both instances,
        // 5 pass.
        assert_eq!(
            t.post(
                &t.url(&format!("/api/v1/orgs/{pro}/api-keys")),
                &pro_token,
                &json!({"name": "x"})
            )
            .await
            .status(),
            StatusCode::FORBIDDEN,
            "the key limit holds afterwards"
        );
        let listed = json_of(
            t.get(&t.url(&format!("/api/v1/orgs/{pro}/api-keys")), &pro_token)
                .await,
        )
        .await;
        let first_key_id = listed["items"][0]["id"].as_str().unwrap().to_owned();
        t.delete(
            &t.url(&format!("/api/v1/orgs/{pro}/api-keys/{first_key_id}")),
            &pro_token,
        )
        .await;
        let key: Value = json_of(
            t.post(
                &t.url(&format!("/api/v1/orgs/{pro}/api-keys")),
                &pro_token,
                &json!({"name": "metered"}),
            )
            .await,
        )
        .await;
        let secret = key["secret"].as_str().unwrap().to_owned();
        let members = format!("/api/v1/orgs/{pro}/members");
        assert_eq!(
            t.get(&t.url(&members), &secret).await.status(),
            StatusCode::OK
        );
        let month = tenancy::metering::month_key(t.clock.now());
        t.store
        .execute_sql(&format!(
            "UPDATE usage_monthly SET count = 9995 WHERE org_id = '{pro}' AND month = '{month}' AND metric = 'api_calls'"
        ))
        .await
        .unwrap();
        let calls = (0..10_u32).map(|i| {
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
        assert_eq!(
            answers.iter().filter(|s| **s == StatusCode::OK).count(),
            5,
            "{answers:?}"
        );

        // Deliveries: both instances run a delivery worker; each event reaches the receiver once.
        let hook = Receiver::start().await;
        let res = t
            .post(
                &t.org("/webhooks"),
                &t.owner_token,
                &json!({"url": hook.url, "events": ["api_key.created"]}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        for i in 0..20 {
            let url = on(i, "/api-keys");
            let res = t
                .client
                .post(url)
                .bearer_auth(&t.owner_token)
                .json(&json!({"name": format!("d{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let got = hook.wait_for(20, 20).await;
        // A little longer: a double send would arrive now.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let got = if hook.received().len() > got.len() {
            hook.received()
        } else {
            got
        };
        let mut ids: Vec<String> = got
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap()["data"]["apiKeyId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 20, "every event once");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20, "no event twice");
    }
);

/// Two instances started at once on one empty PostgreSQL database (a deployment's first
/// rollout): the migrations run once, the second instance waiting on the first's advisory
/// lock, and one organization is founded, the other instance starting with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_starting_on_one_empty_database_migrate_once_and_found_one_organization() {
    use axie_server::{Application, Clock, Settings};
    use tenancy::OrgStore as _;
    if !postgres_enabled() {
        return;
    }
    let server = store_sea::testing::postgres_server().unwrap();
    let url = store_sea::testing::fresh_postgres(&server)
        .await
        .unwrap()
        .expose()
        .to_owned();
    let settings = |dir: &std::path::Path| {
        let mut s = Settings::load(None).unwrap();
        s.server.port = 0;
        s.server.data_dir = dir.to_path_buf();
        s.database.url = url.clone();
        s.database.max_connections = 5;
        s.bootstrap.owner_email = OWNER_EMAIL.into();
        s.bootstrap.owner_password = OWNER_PASSWORD.to_owned().into();
        s.audit.checkpoint_interval_secs = 0;
        s
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = Clock::default();
    let (one, two) = tokio::join!(
        Application::build_with_clock(settings(a.path()), clock.clone()),
        Application::build_with_clock(settings(b.path()), clock.clone())
    );
    let (one, two) = (
        one.expect("the first instance starts"),
        two.expect("the second instance starts"),
    );
    let founded = [one.bootstrap().is_some(), two.bootstrap().is_some()];
    assert_eq!(
        founded.iter().filter(|f| **f).count(),
        1,
        "exactly one instance founds the organization: {founded:?}"
    );
    assert_eq!(one.state().store.count_orgs().await.unwrap(), 1);
    assert_eq!(two.state().store.pending_migrations().await.unwrap(), 0);
}
