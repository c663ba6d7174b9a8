//! First start: create the first organization and its Owner, optionally the guide's demo team.

use secrecy::ExposeSecret;
use security_policy::{PasswordHasher, mint};
use store_sea::SeaStore;
use tenancy::orgs::{self, CreateOrgRequest};
use tenancy::{OrgStore, Organization, User};

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
