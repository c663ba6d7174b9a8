//! The enterprise guide's marketing-team example, seeded with `bootstrap.demo = true`.

use rbac_core::OrgRole;
use security_policy::PasswordHasher;
use store_sea::SeaStore;
use tenancy::Organization;
use tenancy::orgs::{NewMemberAccount, add_new_member_as_system};

use crate::state::Clock;

/// The password of every demo account (printed in the README and at start).
pub const DEMO_PASSWORD: &str = "axie demo team password";

/// Adds Mike (Admin), Lisa (User) and Tom (User) to the first organization.
///
/// # Errors
/// The first domain error.
pub async fn seed(
    store: &SeaStore,
    hasher: &PasswordHasher,
    org: &Organization,
    clock: &Clock,
) -> Result<(), tenancy::TenancyError> {
    for (name, email, role) in [
        ("Mike", "mike@example.com", OrgRole::Admin),
        ("Lisa", "lisa@example.com", OrgRole::User),
        ("Tom", "tom@example.com", OrgRole::User),
    ] {
        let req = NewMemberAccount {
            email: email.into(),
            name: name.into(),
            password: DEMO_PASSWORD.into(),
            role,
        };
        add_new_member_as_system(store, hasher, org, req, clock.now()).await?;
    }
    println!(
        "Demo team seeded: mike@example.com (Admin), lisa@example.com and tom@example.com (Users), password \"{DEMO_PASSWORD}\"."
    );
    Ok(())
}
