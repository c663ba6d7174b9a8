//! How long confirming a bulk-invitation sheet takes through the store: `N` invitations
//! (default 10,000) of one organization, confirmed in one `BulkStore::confirm_preview` on a new
//! SQLite file (`docs/benchmarks.md`, "Bulk invitation preview").
//!
//! `N=10000 cargo run --release -p store-sea --example bulk_confirm`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measuring tool: failing loudly is its job"
)]

use store_sea::{DatabaseUrl, PoolOptions, SeaStore};
use tenancy::{BulkStore, Email};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::sqlite_file(&dir.path().join("bulk.db"));
    let store = SeaStore::connect(&url, PoolOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let hasher =
        security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
    let now = chrono::Utc::now();
    let (org, owner) = tenancy::orgs::create_with_new_owner(
        &store,
        &hasher,
        tenancy::orgs::CreateOrgRequest {
            name: "Bulk".into(),
            plan: billing_limits::Plan::Enterprise,
            owner_email: "owner@bulk.example".into(),
            owner_name: "Owner".into(),
            owner_password: "a long enough passphrase".into(),
        },
        now,
    )
    .await
    .unwrap();
    // No seat limit: the sheet is the measure.
    tenancy::orgs::set_limit_overrides_as_system(
        &store,
        org.id,
        billing_limits::LimitOverrides([(billing_limits::Limit::Members, None)].into()),
        now,
    )
    .await
    .unwrap();
    let limits = billing_limits::PlanLimits {
        members: None,
        ..billing_limits::PlanLimits::for_plan(billing_limits::Plan::Enterprise)
    };
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let preview = tenancy::bulk::BulkPreview {
        id: rbac_core::InvitationId::new(),
        org: org.id,
        created_by: owner.id,
        expires_at: now + chrono::Duration::minutes(30),
        rows: vec![],
        seats_available: None,
    };
    store.save_preview(&preview).await.unwrap();
    let invitations: Vec<_> = (0..n)
        .map(|i| {
            let inv = tenancy::invitations::Invitation {
                id: rbac_core::InvitationId::new(),
                org: org.id,
                email: Email::parse(&format!("person{i}@bulk.example")).unwrap(),
                role: rbac_core::OrgRole::User,
                invited_by: owner.id,
                created_at: now,
                expires_at: now + chrono::Duration::days(7),
                accepted_at: None,
                revoked_at: None,
                team: None,
            };
            (inv, format!("hash-{i}"))
        })
        .collect();
    let t = std::time::Instant::now();
    store
        .confirm_preview(
            org.id,
            preview.id,
            &invitations,
            &limits,
            now,
            audit::Journal::default(),
        )
        .await
        .unwrap();
    println!("confirmed {n} invitations in {:?}", t.elapsed());
}
