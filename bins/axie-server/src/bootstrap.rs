//! First start: create the first organization and its Owner, optionally the guide's demo team.

use secrecy::ExposeSecret;
use security_policy::{PasswordHasher, mint};
use store_sea::SeaStore;
use tenancy::orgs::{self, CreateOrgRequest};
use tenancy::{AccountStore, OrgStore, Organization, User};

use crate::config::BootstrapSettings;
use crate::state::Clock;

/// What the first start created, for the operator.
#[derive(Debug, Clone)]
pub struct BootstrapReport {
    /// The organization.
    pub org: Organization,
    /// The Owner.
    pub owner: User,
    /// The Owner's password when it was generated (printed once, never stored in clear).
    pub generated_password: Option<String>,
}

/// Creates the first organization when the database has none.
///
/// # Errors
/// A domain error (for example a configured password that breaks the policy).
pub async fn ensure_first_org(
    store: &SeaStore,
    hasher: &PasswordHasher,
    cfg: &BootstrapSettings,
    clock: &Clock,
) -> Result<Option<BootstrapReport>, tenancy::TenancyError> {
    if store.count_orgs().await? > 0 {
        return Ok(None);
    }
    // No organization, but the first Owner's account exists: not a first start, every
    // organization was deleted since (accounts stay). The server starts without one; the
    // operator creates the next with `create-org`.
    if let Ok(email) = tenancy::Email::parse(&cfg.owner_email)
        && store.find_user_by_email(&email).await?.is_some()
    {
        tracing::warn!(
            owner = %cfg.owner_email,
            "no organization exists and the bootstrap Owner's account does: not creating one (use `axie-server create-org`)"
        );
        return Ok(None);
    }
    let configured = cfg.owner_password.expose_secret().to_owned();
    let generated = configured
        .is_empty()
        .then(|| mint("", 12).secret.trim_start_matches('_').to_owned());
    let password = generated.clone().unwrap_or(configured);
    let created = orgs::create_with_new_owner(
        store,
        hasher,
        CreateOrgRequest {
            name: cfg.org_name.clone(),
            plan: billing_limits::Plan::Enterprise,
            owner_email: cfg.owner_email.clone(),
            owner_name: cfg.owner_name.clone(),
            owner_password: password,
        },
        clock.now(),
    )
    .await;
    let (org, owner) = match created {
        Ok(made) => made,
        // Another instance starting on the same empty database founded it first (the Owner's
        // address is taken): this one starts with that organization.
        Err(e) if store.count_orgs().await.is_ok_and(|n| n > 0) => {
            tracing::info!(error = %e, "another instance created the first organization");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(Some(BootstrapReport {
        org,
        owner,
        generated_password: generated,
    }))
}

/// The message printed once on first start.
#[must_use]
pub fn banner(report: &BootstrapReport, base_url: &str) -> String {
    let password_line = match &report.generated_password {
        Some(p) => format!("  Password:     {p}\n                (generated and shown only now; it is stored hashed)"),
        None => "  Password:     the one set in bootstrap.owner_password / AXIE_BOOTSTRAP__OWNER_PASSWORD".to_owned(),
    };
    let pw = report
        .generated_password
        .as_deref()
        .unwrap_or("<your password>");
    format!(
        "\n================================================================\n\
         Axie Enterprise: first start, created organization \"{org}\" ({org_id})\n\
         Log in as its Owner:\n\
         \x20 Email:        {email}\n\
         {password_line}\n\n\
         \x20 curl -s -X POST {base_url}/api/v1/auth/login \\\n\
         \x20   -H 'content-type: application/json' \\\n\
         \x20   -d '{{\"email\":\"{email}\",\"password\":\"{pw}\"}}'\n\
         ================================================================\n",
        org = report.org.name,
        org_id = report.org.id,
        email = report.owner.email,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    /// Every organization deleted since the first start (the accounts stay): the next start
    /// makes none, rather than failing on the Owner's address being taken.
    #[tokio::test]
    async fn a_start_after_every_organization_was_deleted_creates_none() {
        let dir = tempfile::tempdir().unwrap();
        let url = store_sea::DatabaseUrl::sqlite_file(&dir.path().join("b.db"));
        let store = SeaStore::connect(&url, store_sea::PoolOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let hasher = PasswordHasher::new(security_policy::HashParams::default()).unwrap();
        let cfg = BootstrapSettings {
            org_name: "First".into(),
            owner_email: "owner@first.example".into(),
            owner_name: "Owner".into(),
            owner_password: "tilted windmill at sunrise".to_owned().into(),
            demo: false,
        };
        let clock = Clock::default();
        let first = ensure_first_org(&store, &hasher, &cfg, &clock)
            .await
            .unwrap()
            .unwrap();
        store
            .delete_org(first.org.id, first.owner.id, audit::Journal::default())
            .await
            .unwrap();
        assert_eq!(store.count_orgs().await.unwrap(), 0);
        assert!(
            ensure_first_org(&store, &hasher, &cfg, &clock)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.count_orgs().await.unwrap(), 0);
    }
}
