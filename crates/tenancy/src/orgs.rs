//! Creating organizations and reading or changing their settings.

use audit::{Actor, AuditAction, DomainEvent, EventKind, Journal, Metadata, NewAuditEvent, Target};
use billing_limits::Plan;
use chrono::{DateTime, Utc};
use rbac_core::{DenyReason, FeatureAccess, OrgId, OrgRole, Permission, TeamId, UserId};
use security_policy::{PasswordHasher, PasswordPolicy, check_password, context_words};
use serde_json::json;

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::mfa::AccessReset;
use crate::model::{
    CompanyProfile, Email, Member, Organization, SecuritySettings, Team, User, valid_name,
};
use crate::store::TenancyStore;

/// What is needed to create an organization with a new Owner.
#[derive(Debug, Clone)]
pub struct CreateOrgRequest {
    /// Organization name.
    pub name: String,
    /// Plan.
    pub plan: Plan,
    /// The Owner's email.
    pub owner_email: String,
    /// The Owner's display name.
    pub owner_name: String,
    /// The Owner's password.
    pub owner_password: String,
}

/// Creates an organization, its default team and its Owner (a new account), audited as done by the system.
///
/// # Errors
/// [`TenancyError::Invalid`], [`TenancyError::Password`], or [`TenancyError::Conflict`] when the email is taken.
pub async fn create_with_new_owner<S: TenancyStore + ?Sized>(
    store: &S,
    hasher: &PasswordHasher,
    req: CreateOrgRequest,
    now: DateTime<Utc>,
) -> Result<(Organization, User), TenancyError> {
    let name = valid_name("name", &req.name)?;
    let email = Email::parse(&req.owner_email)?;
    let owner_name = valid_name("owner_name", &req.owner_name)?;
    check_password(
        &PasswordPolicy::default(),
        &req.owner_password,
        &context_words(email.as_str(), &name),
        false,
    )?;
    let hash = hasher
        .hash_off_thread(&req.owner_password)
        .await
        .map_err(|e| TenancyError::Invalid(e.to_string()))?;
    let owner = User {
        id: UserId::new(),
        email,
        name: owner_name,
        created_at: now,
    };
    let org = founded(
        store,
        &owner,
        Some(&hash),
        None,
        Actor::system(),
        None,
        name,
        req.plan,
        now,
    )
    .await?;
    Ok((org, owner))
}

/// The most organizations one account may found through [`create_for_user`].
pub const MAX_FOUNDED_ORGS: usize = 10;

/// Creates an organization owned by `owner`, an existing account (the person signed in), on
/// the Free plan: "Upgrade to Enterprise" is then the Owner's plan change. Recorded as done by
/// them, with their request's context; sends `enterprise.created`. An account may own at most
/// [`MAX_FOUNDED_ORGS`] organizations this way (a limit against abuse, counted by the store in
/// the founding's transaction under the account's lock, so racing requests cannot pass it
/// together). An account an
/// organization's identity provider manages (a SCIM record) founds none: owning an
/// organization would take its sign-in out of that provider's hands (see `scim`).
///
/// # Errors
/// [`TenancyError::Invalid`] for a bad name; [`TenancyError::Conflict`] past the limit or for
/// an account managed through SCIM.
pub async fn create_for_user<S: TenancyStore + crate::scim::ScimStore + ?Sized>(
    store: &S,
    owner: &User,
    request: &audit::RequestContext,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Organization, TenancyError> {
    let name = valid_name("name", name)?;
    let memberships = store.memberships(owner.id).await?;
    for m in &memberships {
        if store.user_record(m.org, owner.id).await?.is_some() {
            return Err(TenancyError::Conflict(format!(
                "this account is managed by {}'s identity provider; sign up with a personal \
                 account to found an organization",
                m.org_name
            )));
        }
    }
    let actor = Actor::user(owner.id, owner.name.clone());
    founded(
        store,
        owner,
        None,
        Some(MAX_FOUNDED_ORGS),
        actor,
        Some(request),
        name,
        Plan::Free,
        now,
    )
    .await
}

/// The refusal of a founding by someone who owns `owned` organizations, the most allowed.
#[must_use]
pub fn too_many_owned(owned: usize) -> TenancyError {
    TenancyError::Conflict(format!(
        "this account already owns {owned} organizations, the most one account may create"
    ))
}

/// Creates an organization on `plan` owned by `owner`, an existing account, as the system
/// does (an operator provisioning a customer): no limit on how many the account owns.
///
/// # Errors
/// [`TenancyError::Invalid`] for a bad name.
pub async fn create_as_system_for<S: TenancyStore + ?Sized>(
    store: &S,
    owner: &User,
    name: &str,
    plan: Plan,
    now: DateTime<Utc>,
) -> Result<Organization, TenancyError> {
    let name = valid_name("name", name)?;
    founded(
        store,
        owner,
        None,
        None,
        Actor::system(),
        None,
        name,
        plan,
        now,
    )
    .await
}

/// Writes a new organization with its default team and `owner`'s Owner membership (creating
/// the account when `new_owner_hash` is given), its records and its `enterprise.created` event.
#[allow(clippy::too_many_arguments, reason = "the founding's parts")]
async fn founded<S: TenancyStore + ?Sized>(
    store: &S,
    owner: &User,
    new_owner_hash: Option<&str>,
    max_owned: Option<usize>,
    actor: Actor,
    request: Option<&audit::RequestContext>,
    name: String,
    plan: Plan,
    now: DateTime<Utc>,
) -> Result<Organization, TenancyError> {
    let org = Organization {
        id: OrgId::new(),
        name: name.clone(),
        plan,
        profile: CompanyProfile {
            company_name: name,
            ..CompanyProfile::default()
        },
        access: FeatureAccess::default(),
        security: SecuritySettings::default(),
        created_at: now,
        audit_archived_at: None,
        limit_overrides: billing_limits::LimitOverrides::default(),
        limit_overrides_plan: None,
    };
    let team = Team {
        id: TeamId::new(),
        org: org.id,
        name: "Default".into(),
        is_default: true,
        created_at: now,
        archived_at: None,
    };
    let record = |action, target| {
        let e = NewAuditEvent::new(org.id, now, actor.clone(), action, target);
        match request {
            Some(r) => e.with_context(r.clone()),
            None => e,
        }
    };
    let journal = Journal::record(record(
        AuditAction::OrgCreated,
        Target::new("organization", org.id, org.name.clone()),
    ))
    .and_record(
        record(
            AuditAction::MemberAdded,
            Target::new("member", owner.id, owner.name.clone()),
        )
        .with_metadata(Metadata::from_value(json!({"role": "owner"}))?),
    )
    .publish(DomainEvent::new(
        org.id,
        EventKind::EnterpriseCreated,
        now,
        json!({
            "enterpriseId": org.id, "name": org.name, "plan": org.plan.as_str(), "ownerId": owner.id,
        }),
    ));
    store
        .create_org(&org, &team, owner, new_owner_hash, max_owned, journal)
        .await?;
    Ok(org)
}

/// The company profile as the caller may see it: billing address and tax id only for billing readers.
#[must_use]
pub fn visible_profile(caller: &Caller) -> CompanyProfile {
    redact_billing(caller, caller.org.profile.clone())
}

fn redact_billing(caller: &Caller, mut p: CompanyProfile) -> CompanyProfile {
    if caller.check_org(Permission::ViewBilling).is_err() {
        p.billing_address = String::new();
        p.tax_id = String::new();
    }
    p
}

/// A partial update of the company profile; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct UpdateProfileRequest {
    /// New name of the organization (what mail, invitations and reports call it).
    pub name: Option<String>,
    /// New company name.
    pub company_name: Option<String>,
    /// New contact email (`Some(None)` clears it).
    pub contact_email: Option<Option<String>>,
    /// New billing address (Owner only).
    pub billing_address: Option<String>,
    /// New tax id (Owner only).
    pub tax_id: Option<String>,
}

/// Updates the company profile and returns it as the caller may see it. Billing fields need the
/// billing permission (Owner).
///
/// # Errors
/// [`TenancyError::Forbidden`], [`TenancyError::Invalid`].
pub async fn update_profile<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    req: UpdateProfileRequest,
    now: DateTime<Utc>,
) -> Result<CompanyProfile, TenancyError> {
    caller.check_org(Permission::UpdateSettings)?;
    if req.billing_address.is_some() || req.tax_id.is_some() {
        caller.check_org(Permission::ManageBilling)?;
    }
    let mut p = caller.org.profile.clone();
    let mut changed = Vec::new();
    let mut renamed = None;
    if let Some(n) = req.name {
        let n = valid_name("name", &n)?;
        if n != caller.org.name {
            renamed = Some(n);
        }
        changed.push("name");
    }
    if let Some(n) = req.company_name {
        p.company_name = valid_name("company_name", &n)?;
        changed.push("company_name");
    }
    if let Some(e) = req.contact_email {
        p.contact_email = e.as_deref().map(Email::parse).transpose()?;
        changed.push("contact_email");
    }
    if let Some(a) = req.billing_address {
        p.billing_address = bounded("billing_address", a, 500)?;
        changed.push("billing_address");
    }
    if let Some(t) = req.tax_id {
        p.tax_id = bounded("tax_id", t, 64)?;
        changed.push("tax_id");
    }
    if changed.is_empty() {
        return Err(TenancyError::Invalid("nothing to update".into()));
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::SettingsUpdated,
                Target::new("organization", caller.org.id, caller.org.name.clone()),
            )
            .with_metadata(Metadata::from_value(match &renamed {
                Some(n) => {
                    json!({ "fields": changed, "name": { "from": caller.org.name, "to": n } })
                }
                None => json!({ "fields": changed }),
            })?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::SettingsUpdated,
        now,
        json!({
            "fields": changed, "updatedBy": caller.user.id,
        }),
    ));
    // A new name changes the enterprise itself, as a transfer or a plan change does.
    let journal = match &renamed {
        Some(n) => journal.publish(DomainEvent::new(
            caller.org.id,
            EventKind::EnterpriseUpdated,
            now,
            json!({
                "name": n, "previousName": caller.org.name, "updatedBy": caller.user.id,
            }),
        )),
        None => journal,
    };
    store
        .update_profile(
            caller.org.id,
            Some(caller.user.id),
            &caller.org.profile,
            &p,
            renamed.as_deref().map(|n| (caller.org.name.as_str(), n)),
            journal,
        )
        .await?;
    Ok(redact_billing(caller, p))
}

fn bounded(field: &str, s: String, max: usize) -> Result<String, TenancyError> {
    if s.chars().count() > max || s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(TenancyError::Invalid(format!(
            "`{field}` must be at most {max} printable characters"
        )));
    }
    Ok(s.trim().to_owned())
}

/// Members of the caller's organization, one keyset page. The Owner, the Admins and those with
/// a role in every team see everyone; an organization User sees the people of their own teams
/// (the guide's isolated client teams: "nothing of team B, members included, is visible to
/// someone who is not a member of B"), the Owner and the Admins, those with a role in every
/// team, and themselves.
///
/// # Errors
/// [`TenancyError::Forbidden`] without the view-members permission.
pub async fn list_members<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    after: Option<UserId>,
    limit: u32,
) -> Result<Vec<Member>, TenancyError> {
    caller.check_org(Permission::ViewMembers)?;
    match caller.teams_seen() {
        None => store.list_members(caller.org.id, after, limit).await,
        Some(teams) => {
            store
                .list_members_seen_by(caller.org.id, caller.user.id, &teams, after, limit)
                .await
        }
    }
}

/// What the guide's monthly checklist asks about a member: "check for inactive users",
/// "verify 2FA is enabled for all".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    /// When they last signed in, if ever. Sessions are the person's, not one organization's:
    /// this is their latest sign-in anywhere, which each of their organizations' audit logs
    /// records too (`auth.login`), and no more (not how long the session was used, nor where).
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// Whether they have a second factor on.
    pub mfa_enabled: bool,
}

/// The status of each of `members`, in their order, for a caller who manages members
/// (`remove_members`: the Owner and Admins); `None` for anyone else, to whom another member's
/// second factor and habits are none of their business.
///
/// # Errors
/// [`TenancyError::Store`].
pub async fn member_status<S: TenancyStore + crate::mfa::MfaStore + ?Sized>(
    store: &S,
    caller: &Caller,
    members: &[Member],
) -> Result<Option<Vec<MemberStatus>>, TenancyError> {
    if caller.check_org(Permission::RemoveMembers).is_err() {
        return Ok(None);
    }
    let ids: Vec<UserId> = members.iter().map(|m| m.user.id).collect();
    let seen: std::collections::HashMap<UserId, DateTime<Utc>> =
        store.last_sign_in(&ids).await?.into_iter().collect();
    let enrolled: std::collections::HashSet<UserId> =
        store.enrolled_among(&ids).await?.into_iter().collect();
    Ok(Some(
        members
            .iter()
            .map(|m| MemberStatus {
                last_sign_in_at: seen.get(&m.user.id).copied(),
                mfa_enabled: enrolled.contains(&m.user.id),
            })
            .collect(),
    ))
}

/// A new account to add directly as a member (demo seeding, operator tools).
#[derive(Debug, Clone)]
pub struct NewMemberAccount {
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Organization role (Admin or User).
    pub role: rbac_core::OrgRole,
}

/// Creates an account and adds it to `org` as the system, within the plan's member limit.
///
/// # Errors
/// [`TenancyError::Invalid`] for an Owner role or bad input, [`TenancyError::Password`],
/// [`TenancyError::LimitReached`], [`TenancyError::Conflict`].
pub async fn add_new_member_as_system<S: TenancyStore + ?Sized>(
    store: &S,
    hasher: &PasswordHasher,
    org: &Organization,
    req: NewMemberAccount,
    now: DateTime<Utc>,
) -> Result<User, TenancyError> {
    use rbac_core::{OrgRole, TeamRole};
    if req.role == OrgRole::Owner {
        return Err(TenancyError::Invalid(
            "the owner role is handed over only by an ownership transfer".into(),
        ));
    }
    let email = Email::parse(&req.email)?;
    let name = valid_name("name", &req.name)?;
    check_password(
        &org.security.passwords,
        &req.password,
        &context_words(email.as_str(), &org.name),
        false,
    )?;
    let hash = hasher
        .hash_off_thread(&req.password)
        .await
        .map_err(|e| TenancyError::Invalid(e.to_string()))?;
    let user = User {
        id: UserId::new(),
        email,
        name,
        created_at: now,
    };
    let team = store.default_team(org.id).await?;
    let team_role = if req.role.is_admin() {
        TeamRole::Admin
    } else {
        TeamRole::Member
    };
    let journal = Journal::record(
        NewAuditEvent::new(
            org.id,
            now,
            Actor::system(),
            AuditAction::MemberAdded,
            Target::new("member", user.id, user.name.clone()),
        )
        .with_metadata(Metadata::from_value(json!({ "role": req.role.as_str() }))?),
    )
    .publish(DomainEvent::new(
        org.id,
        EventKind::UserCreated,
        now,
        json!({
            "userId": user.id, "email": user.email, "role": req.role.as_str(), "invitedBy": null, "invitedById": null,
        }),
    ));
    let limits = org.limits();
    store
        .add_member(
            org.id,
            &user,
            Some(&hash),
            req.role,
            team.id,
            team_role,
            &limits,
            journal,
        )
        .await?;
    Ok(user)
}

/// Replaces the feature-access settings (Enterprise plan; Owner and Admins).
///
/// # Errors
/// [`TenancyError::Forbidden`] without the permission or the plan feature.
pub async fn update_access<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    access: FeatureAccess,
    now: DateTime<Utc>,
) -> Result<FeatureAccess, TenancyError> {
    caller.check_org(Permission::UpdateFeatureAccess)?;
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::FeatureAccessUpdated,
                Target::new("organization", caller.org.id, caller.org.name.clone()),
            )
            .with_metadata(Metadata::from_value(
                json!({ "before": caller.org.access, "after": access }),
            )?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::SettingsUpdated,
        now,
        json!({
            "featureAccess": access, "updatedBy": caller.user.id,
        }),
    ));
    store
        .update_access(
            caller.org.id,
            Some(caller.user.id),
            &caller.org.access,
            &access,
            journal,
        )
        .await?;
    Ok(access)
}

/// What an operator's owner reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerReset {
    /// The Owner's password was replaced, their sessions ended, their second factor and login
    /// lock removed (lost access recovered).
    AccessReset {
        /// The Owner.
        owner: User,
        /// Sessions ended.
        sessions_ended: u64,
    },
    /// Ownership passed to another person (an existing member, or a new account).
    Transferred {
        /// The new Owner.
        to: User,
        /// The previous Owner, now an Admin.
        from: User,
    },
}

/// The operator's recovery tool (`axie-server reset-owner`), acting as the system: for the
/// Owner's own email it resets their access with a new password; for anyone else it makes them
/// the Owner (creating their account first when needed) and the previous Owner an Admin.
/// Audited in the organization.
///
/// # Errors
/// [`TenancyError::NotFound`] (organization, or no Owner), [`TenancyError::Password`],
/// [`TenancyError::Conflict`].
#[allow(
    clippy::too_many_arguments,
    reason = "the command line's arguments, as given"
)]
pub async fn reset_owner_as_system<S>(
    store: &S,
    hasher: &PasswordHasher,
    org: OrgId,
    email: &str,
    name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<OwnerReset, TenancyError>
where
    S: TenancyStore + crate::store::MembershipStore + crate::mfa::MfaStore + ?Sized,
{
    use audit::{Actor, AuditAction, Journal, NewAuditEvent, Target};
    let organization = store.get_org(org).await?;
    let email = Email::parse(email)?;
    let owner = owner_of(store, org).await?;
    let record = |action: AuditAction, who: &User| {
        NewAuditEvent::new(
            org,
            now,
            Actor::system(),
            action,
            Target::new("member", who.id, who.name.clone()),
        )
    };
    if owner.user.email == email {
        check_password(
            &organization.security.passwords,
            password,
            &context_words(email.as_str(), &organization.name),
            false,
        )?;
        let hash = hasher
            .hash_off_thread(password)
            .await
            .map_err(|e| TenancyError::Invalid(e.to_string()))?;
        let u = owner.user.clone();
        // The new password, the cleared login throttle, the end of every session and the
        // removal of the second factor commit together, with their records.
        let records = |done: AccessReset| {
            let mut r = record(AuditAction::OwnerAccessReset, &u);
            if let Ok(m) = Metadata::from_value(json!({ "sessions_ended": done.sessions_ended })) {
                r = r.with_metadata(m);
            }
            let j = Journal::record(r);
            if done.second_factor_removed {
                j.and_record(record(AuditAction::MfaDisabled, &u))
            } else {
                j
            }
        };
        let done = store.reset_access(u.id, &hash, None, now, &records).await?;
        return Ok(OwnerReset::AccessReset {
            owner: u,
            sessions_ended: done.sessions_ended,
        });
    }
    let target = match store.find_user_by_email(&email).await? {
        Some((u, _)) if store.get_member(org, u.id).await?.is_some() => u,
        Some(_) => {
            return Err(TenancyError::Conflict(format!(
                "`{email}` has an account but is not a member: invite them first"
            )));
        }
        None => {
            add_new_member_as_system(
                store,
                hasher,
                &organization,
                NewMemberAccount {
                    email: email.as_str().to_owned(),
                    name: name.to_owned(),
                    password: password.to_owned(),
                    role: rbac_core::OrgRole::Admin,
                },
                now,
            )
            .await?
        }
    };
    let transfer = crate::members::OwnershipTransfer {
        org,
        from: owner.user.id,
        to: target.id,
        proposed_at: now,
        expires_at: now + chrono::Duration::minutes(1),
    };
    // Proposed and completed at once; each step commits with its record, the completion with
    // the webhook events an Owner's transfer sends. A transfer the Owner had proposed is
    // replaced, and its proposal's record says so. Should the completion fail (ownership
    // changed meanwhile), running the command again finishes it: the person is a member then.
    let mut proposed = record(AuditAction::OwnershipTransferProposed, &target);
    if let Some(pending) = store.pending_transfer(org).await? {
        proposed = proposed.with_metadata(Metadata::from_value(json!({
            "replaces": { "to": pending.to, "proposed_at": pending.proposed_at },
        }))?);
    }
    store
        .save_transfer(&transfer, Journal::record(proposed))
        .await?;
    let done = Journal::record(
        record(AuditAction::OwnershipTransferred, &target).with_metadata(Metadata::from_value(
            json!({ "from": owner.user.id, "to": target.id }),
        )?),
    );
    store
        .complete_transfer(
            &transfer,
            now,
            crate::members::transferred(done, &transfer, now),
        )
        .await?;
    Ok(OwnerReset::Transferred {
        to: target,
        from: owner.user,
    })
}

/// The organization's Owner (there is exactly one).
///
/// # Errors
/// [`TenancyError::NotFound`] when there is none; [`TenancyError::Store`].
pub async fn owner_of<S: TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
) -> Result<Member, TenancyError> {
    // The Owner is among the admins, which a database store reads without the other members.
    store
        .admins(org)
        .await?
        .into_iter()
        .find(|m| m.role == rbac_core::OrgRole::Owner)
        .ok_or(TenancyError::NotFound("owner"))
}

/// The archived audit log may be read only by the Owner, and only while it is archived (on
/// the Enterprise plan the regular audit-log routes apply).
///
/// # Errors
/// [`TenancyError::Forbidden`] otherwise.
pub fn check_audit_archive(caller: &Caller) -> Result<(), TenancyError> {
    if caller.subject.role != OrgRole::Owner {
        return Err(TenancyError::Forbidden(DenyReason::RoleLacksPermission {
            role: caller.subject.role,
        }));
    }
    if caller.org.audit_archived_at.is_none() {
        return Err(TenancyError::Invalid(
            "the audit log is not archived; use the audit-log export".into(),
        ));
    }
    Ok(())
}

/// The refusal of negotiated limits set for a plan the organization has left meanwhile.
#[must_use]
pub fn plan_changed_under_deal() -> TenancyError {
    TenancyError::Conflict(
        "the organization's plan changed while its limits were being set; nothing was set, set them again"
            .into(),
    )
}

/// Sets an organization's negotiated limits (an operator's action, for custom enterprise
/// deals; audited as the system), as a deal for the plan it is on now: they apply while it is
/// on that plan (`Organization::limit_overrides_plan`). Each entry replaces one of the plan's
/// limits, `None` making it unlimited; an empty set returns to the plan's limits.
///
/// # Errors
/// [`TenancyError::NotFound`]; [`TenancyError::Conflict`] when the plan changed while it was
/// being set (set it again, for the plan it is on now).
pub async fn set_limit_overrides_as_system<S: TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
    overrides: billing_limits::LimitOverrides,
    now: DateTime<Utc>,
) -> Result<billing_limits::PlanLimits, TenancyError> {
    let o = store.get_org(org).await?;
    let journal = Journal::record(
        NewAuditEvent::new(
            org,
            now,
            Actor::system(),
            AuditAction::LimitsChanged,
            Target::new("organization", org, o.name.clone()),
        )
        .with_metadata(Metadata::from_value(json!({
            "before": o.limit_overrides, "after": overrides, "plan": o.plan.as_str(),
        }))?),
    );
    store
        .set_limit_overrides(org, &overrides, o.plan, journal)
        .await?;
    let made_for = (!overrides.0.is_empty()).then_some(o.plan);
    Ok(Organization {
        limit_overrides: overrides,
        limit_overrides_plan: made_for,
        ..o
    }
    .limits())
}

/// Deletes the caller's organization for good (the Owner, signed in with a session; not with
/// an API key): its members, teams, resources, API keys, invitations, SCIM tokens, webhooks,
/// subscription, invoices, credits, usage and consents, and its audit log, in one
/// transaction; the people's accounts stay. `confirm_name` must be the organization's name as
/// it is, and `password` the Owner's: a wrong one is recorded, as for other confirmations, in
/// the logs of the Owner's organizations. The Owner and the Admins are told by mail (mail about
/// no organization, so that it outlives this one). Export the audit log first: it goes too.
/// Returns the deleted documents' ids: their bytes are the caller's to remove from its blob
/// store ([`crate::assets::remove_document_blobs`]).
///
/// # Errors
/// [`TenancyError::Forbidden`] for anyone but the Owner; [`TenancyError::Invalid`] when the
/// name does not match; [`TenancyError::BadCredentials`] or [`TenancyError::Throttled`] for
/// the password; [`TenancyError::Conflict`] when ownership moved meanwhile.
pub async fn delete<S: TenancyStore + ?Sized>(
    store: &S,
    hasher: &PasswordHasher,
    caller: &Caller,
    confirm_name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<Vec<rbac_core::ResourceId>, TenancyError> {
    caller.check_org(Permission::DeleteOrganization)?;
    let org = &caller.org;
    if confirm_name != org.name {
        return Err(TenancyError::Invalid(
            "`confirm_name` must be the organization's name, exactly as it is".into(),
        ));
    }
    crate::security::confirm_password(
        store,
        hasher,
        &caller.user,
        password,
        AuditAction::OrgDeleted,
        &caller.request,
        now,
    )
    .await?;
    let by = format!(
        "{} ({}), the Owner of {}",
        caller.user.name, caller.user.email, org.name
    );
    let journal = deletion_notices(store, org, &by, now).await?;
    store.delete_org(org.id, caller.user.id, journal).await
}

/// Deletes an organization as the operator (the `delete-org` command: an organization whose
/// Owner is gone, or a deletion asked for outside the product), as [`delete`] does for the
/// Owner: everything of it in one transaction, the Owner and the Admins mailed. `confirm_name`
/// must be its name as it is. Returns the deleted documents' ids, as [`delete`] does.
///
/// # Errors
/// [`TenancyError::NotFound`] for an organization that is not there; [`TenancyError::Invalid`]
/// when the name does not match; [`TenancyError::Conflict`] when ownership moved meanwhile
/// (run it again).
pub async fn delete_as_system<S: TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
    confirm_name: &str,
    now: DateTime<Utc>,
) -> Result<Vec<rbac_core::ResourceId>, TenancyError> {
    let o = store.get_org(org).await?;
    if confirm_name != o.name {
        return Err(TenancyError::Invalid(format!(
            "the organization {org} is named `{}`, not `{confirm_name}`",
            o.name
        )));
    }
    let owner = owner_of(store, org).await?;
    let journal = deletion_notices(store, &o, "the service's operator", now).await?;
    store.delete_org(org, owner.user.id, journal).await
}

/// The mails that tell the active Owner and Admins of `org` that `by` deleted it (mail about
/// no organization, so that it outlives it).
async fn deletion_notices<S: TenancyStore + ?Sized>(
    store: &S,
    org: &Organization,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Journal, TenancyError> {
    let mut journal = Journal::default();
    for m in store.admins(org.id).await? {
        if m.deactivated_at.is_some() {
            continue;
        }
        journal = journal.mail(audit::OutboundMail {
            org: None,
            to: m.user.email.to_string(),
            subject: format!("{} was deleted", org.name),
            body: format!(
                "Hello {name},\n\n{by} deleted the organization {org_name} on {when}. Its \
                 members, teams, chat interfaces, knowledge bases, API keys, webhooks, billing \
                 records and audit log were deleted with it.\n\nYour account stays, with your \
                 other organizations.\n",
                name = m.user.name,
                org_name = org.name,
                when = now.format("%Y-%m-%d %H:%M UTC"),
            ),
            kind: "organization_deleted".into(),
        });
    }
    Ok(journal)
}
