//! Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL database.
//!
//! PostgreSQL tests read the server URL from `AXIE_TEST_POSTGRES_URL`
//! (for example `postgres://postgres@127.0.0.1:5432/test`) and create a
//! database named `axie_t_<uuid>` on it for each call.

use sea_orm::{ConnectionTrait, Database};

use crate::{DatabaseUrl, db_err};

/// The environment variable naming the PostgreSQL server used by tests.
pub const POSTGRES_ENV: &str = "AXIE_TEST_POSTGRES_URL";

/// The PostgreSQL server URL from [`POSTGRES_ENV`], if set.
#[must_use]
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Creates an empty database on the PostgreSQL server at `server_url` and returns its URL.
///
/// # Errors
/// When the server cannot be reached or refuses `CREATE DATABASE`.
pub async fn fresh_postgres(server_url: &str) -> Result<DatabaseUrl, audit::StoreError> {
    let name = format!("axie_t_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(server_url).await.map_err(db_err)?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(db_err)?;
    admin.close().await.map_err(db_err)?;
    let base = server_url.rsplit_once('/').map_or(server_url, |(b, _)| b);
    DatabaseUrl::parse(&format!("{base}/{name}")).map_err(audit::StoreError::msg)
}

/// Prints, once per process, that the PostgreSQL half of a suite is skipped.
pub fn say_postgres_skipped(suite: &str) {
    eprintln!(
        "{suite}: {POSTGRES_ENV} is unset, so the PostgreSQL pass is skipped (`.ci/run` sets it)"
    );
}

/// Every organization with its Owner, as stored (for tests that delete them all).
///
/// # Errors
/// The database error.
pub async fn org_owners(
    store: &crate::SeaStore,
) -> Result<Vec<(rbac_core::OrgId, rbac_core::UserId)>, audit::StoreError> {
    let db = store.db();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT org_id, user_id FROM memberships WHERE role = 'owner' ORDER BY org_id",
        ))
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            let org: String = r.try_get("", "org_id").map_err(db_err)?;
            let user: String = r.try_get("", "user_id").map_err(db_err)?;
            Ok((
                org.parse()
                    .map_err(|_| audit::StoreError::msg(format!("organization id {org}")))?,
                user.parse()
                    .map_err(|_| audit::StoreError::msg(format!("user id {user}")))?,
            ))
        })
        .collect()
}
