//! What a principal may do: their memberships with effective permissions.

use rbac_core::{
    Credential, OrgId, OrgRole, Permission, Resource, Subject, TeamId, TeamRole, authorize,
};
use serde::Serialize;

use crate::caller::Principal;
use crate::error::TenancyError;
use crate::store::TenancyStore;

/// One membership with what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MembershipView {
    /// The organization.
    pub org: OrgId,
    /// Its name.
    pub org_name: String,
    /// The principal's role.
    pub role: OrgRole,
    /// The principal's team roles.
    pub teams: Vec<(TeamId, TeamRole)>,
    /// The principal's role in every team, if any.
    pub all_teams: Option<TeamRole>,
    /// Permissions held on every resource (in the default team for workspace resources; for a
    /// team's API key, in its team, the role and teams being then those it acts with).
    pub permissions: Vec<Permission>,
    /// Permissions held only on resources the principal created (the "Limited" cells).
    pub limited: Vec<Permission>,
}

/// The principal's memberships with effective permissions (an API key sees only its own organization).
///
/// # Errors
/// [`TenancyError::Store`] on storage failure.
pub async fn memberships<S: TenancyStore + ?Sized>(
    store: &S,
    principal: &Principal,
) -> Result<Vec<MembershipView>, TenancyError> {
    let user = principal.user();
    let (credential, only_org) = match principal {
        Principal::Session { .. } => (Credential::Session, None),
        Principal::ApiKey { key, .. } => (Credential::ApiKey, Some(key.org)),
    };
    // A team's key acts, and so is shown, as confined to its team.
    let confined_to = match principal {
        Principal::ApiKey { key, .. } if key.scope == crate::KeyScope::Team => Some(key.team),
        _ => None,
    };
    let mut out = Vec::new();
    for m in store.memberships(user.id).await? {
        if only_org.is_some_and(|o| o != m.org) {
            continue;
        }
        let org = store.get_org(m.org).await?;
        let mut team = store.default_team(m.org).await?.id;
        let ctx = rbac_core::Context {
            access: org.access,
            plan: org.plan.features(),
        };
        let mut subject = Subject {
            user: user.id,
            org: m.org,
            role: m.role,
            teams: m.teams.clone(),
            all_teams: m.all_teams,
            credential,
        };
        if let Some(t) = confined_to {
            subject = subject.confined_to(t);
            team = t;
        }
        let mut permissions = Vec::new();
        let mut limited = Vec::new();
        for p in Permission::ALL {
            let any = Resource {
                org: m.org,
                team: Some(team),
                creator: None,
            };
            if authorize(&subject, p, &any, &ctx).is_allowed() {
                permissions.push(p);
            } else if authorize(&subject, p, &Resource::owned(m.org, team, user.id), &ctx)
                .is_allowed()
            {
                limited.push(p);
            }
        }
        out.push(MembershipView {
            org: m.org,
            org_name: m.org_name,
            role: subject.role,
            teams: subject.teams,
            all_teams: subject.all_teams,
            permissions,
            limited,
        });
    }
    Ok(out)
}

/// A person renames themselves: the display name every organization of theirs shows. Recorded
/// as `member.updated` (`{"via": "self", "changed": ["name"]}`) in each of their organizations
/// and sent there as `user.updated`, in the rename's transaction. Returns the person as renamed.
/// The caller checks that a session, not an API key, asks: a key acts for its creator, it is not
/// them. An organization that provisions its people through SCIM sets the name again with its
/// next update.
///
/// # Errors
/// [`TenancyError::Invalid`] for an empty, overlong or unprintable name;
/// [`TenancyError::NotFound`] when the account is gone; [`TenancyError::Conflict`] when it
/// was renamed meanwhile; [`TenancyError::Changed`] when its organizations kept changing
/// under it (four reads).
pub async fn rename<S: TenancyStore + ?Sized>(
    store: &S,
    user: &crate::model::User,
    name: &str,
    request: &audit::RequestContext,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::model::User, TenancyError> {
    let name = crate::model::valid_name("name", name)?;
    let renamed = crate::model::User {
        name: name.clone(),
        ..user.clone()
    };
    if name == user.name {
        return Ok(renamed);
    }
    // The organizations are read again, and the records made for them again, when a join or a
    // removal commits between this read and the rename.
    let mut tries = 0;
    loop {
        let memberships = store.memberships(user.id).await?;
        let orgs: Vec<_> = memberships.iter().map(|m| m.org).collect();
        let journal = rename_journal(user, &renamed, &memberships, request, now)?;
        match store
            .rename_user(user.id, &user.name, &name, &orgs, journal)
            .await
        {
            Err(TenancyError::Changed(_)) if tries < 3 => tries += 1,
            done => return done.map(|()| renamed),
        }
    }
}

/// The error of a rename whose person joined or left an organization meanwhile.
#[must_use]
pub fn organizations_changed() -> TenancyError {
    TenancyError::Changed(
        "the person's organizations changed meanwhile; read them again and retry".into(),
    )
}

/// The rename's records: `member.updated` and `user.updated` in each organization.
fn rename_journal(
    user: &crate::model::User,
    renamed: &crate::model::User,
    memberships: &[crate::model::Membership],
    request: &audit::RequestContext,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<audit::Journal, TenancyError> {
    use audit::{AuditAction, DomainEvent, EventKind, Journal, Metadata};
    let mut journal = Journal::default();
    for m in memberships {
        journal = journal
            .and_record(
                crate::mfa::personal_record(
                    m.org,
                    renamed,
                    AuditAction::MemberUpdated,
                    request,
                    now,
                )
                .with_metadata(Metadata::from_value(
                    serde_json::json!({"via": "self", "changed": ["name"]}),
                )?),
            )
            .publish(DomainEvent::new(
                m.org,
                EventKind::UserUpdated,
                now,
                serde_json::json!({
                    "userId": user.id, "email": user.email.as_str(), "role": m.role.as_str(),
                    "active": m.active, "changed": ["name"], "via": "self",
                }),
            ));
    }
    Ok(journal)
}
