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
}

#[tokio::test]
async fn audit_contract_on_postgres() {
    if let Some(store) = postgres().await {
        audit::contract::run(&store).await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_complete() {
    let (store, _dir) = sqlite().await;
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    store.migrate().await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
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
