//! The domain crates' store contracts, run against SQLite and (when configured) PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly"
)]

use store_sea::testing::{fresh_postgres, postgres_server, say_postgres_skipped};
use store_sea::{DatabaseUrl, PoolOptions, SeaStore};

async fn sqlite() -> (SeaStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SeaStore::connect(
        &DatabaseUrl::sqlite_file(&dir.path().join("t.db")),
        PoolOptions::default(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

async fn postgres() -> Option<SeaStore> {
    let Some(server) = postgres_server() else {
        say_postgres_skipped("store-sea contract");
        return None;
    };
    let url = fresh_postgres(&server).await.unwrap();
    let store = SeaStore::connect(&url, PoolOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

#[tokio::test]
async fn audit_contract_on_sqlite() {
    let (store, _dir) = sqlite().await;
    audit::contract::run(&store).await;
    audit::contract::run_mail(&store).await;
}

#[tokio::test]
async fn audit_contract_on_postgres() {
    if let Some(store) = postgres().await {
        audit::contract::run(&store).await;
        audit::contract::run_mail(&store).await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_complete() {
    let (store, _dir) = sqlite().await;
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    store.migrate().await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    // `TABLES` (row counts, backup checks) names every table the migrations create, and no other.
    let counts = store.row_counts().await.unwrap();
    assert_eq!(counts.len(), store_sea::TABLES.len());
    store
        .execute_sql(
            "CREATE TEMP TABLE listed AS SELECT name FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'",
        )
        .await
        .unwrap();
    let listed = store_sea::TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",");
    let unlisted = store
        .execute_sql(&format!("DELETE FROM listed WHERE name NOT IN ({listed})"))
        .await
        .unwrap();
    assert_eq!(
        unlisted, 0,
        "a migrated table is missing from store_sea::TABLES"
    );
}

#[tokio::test]
async fn tenancy_contract_on_sqlite() {
    let (store, _dir) = sqlite().await;
    tenancy::contract::run(&store).await;
}

#[tokio::test]
async fn tenancy_contract_on_postgres() {
    if let Some(store) = postgres().await {
        tenancy::contract::run(&store).await;
    }
}

/// An organization row for the adapter's foreign keys.
async fn org(store: &SeaStore) -> rbac_core::OrgId {
    let hasher =
        security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
    let req = tenancy::orgs::CreateOrgRequest {
        name: "Webhook Contract".into(),
        plan: billing_limits::Plan::Enterprise,
        owner_email: format!("o-{}@contract.example", uuid::Uuid::new_v4().simple()),
        owner_name: "Owner".into(),
        owner_password: "a long enough passphrase".into(),
    };
    tenancy::orgs::create_with_new_owner(store, &hasher, req, chrono::Utc::now())
        .await
        .unwrap()
        .0
        .id
}

async fn webhook_contract(store: &SeaStore) {
    let o = org(store).await;
    webhooks::contract::run(store, o).await;
    let o = org(store).await;
    webhooks::contract::fan_out_on_commit(store, o, |j| async move {
        audit::AuditStore::append(store, j).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn webhook_contract_on_sqlite() {
    let (store, _dir) = sqlite().await;
    webhook_contract(&store).await;
}

#[tokio::test]
async fn webhook_contract_on_postgres() {
    if let Some(store) = postgres().await {
        webhook_contract(&store).await;
    }
}
