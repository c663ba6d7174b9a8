//! The authenticated caller inside one organization, and the permission check every operation starts with.

use audit::{Actor, ActorKind, AuditAction, NewAuditEvent, RequestContext, Target};
use chrono::{DateTime, Utc};
use rbac_core::{
    Context, Credential, Decision, DenyReason, Grant, OrgId, Permission, Resource, Subject, TeamId,
    authorize,
};

use crate::error::TenancyError;
use crate::model::{ApiKey, CallerMembership, KeyScope, Organization, User};
use crate::store::TenancyStore;

/// Who is calling and how, before an organization is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person with a login session.
    Session {
        /// The person.
        user: User,
        /// The session id, for logout.
        session: rbac_core::SessionId,
    },
    /// An API key, acting with its creator's current rights.
    ApiKey {
        /// The key's creator.
        user: User,
        /// The key.
        key: ApiKey,
    },
}

impl Principal {
    /// The person behind the credential.
    #[must_use]
    pub fn user(&self) -> &User {
        match self {
            Principal::Session { user, .. } | Principal::ApiKey { user, .. } => user,
        }
    }
}

/// A principal resolved inside one organization, loaded fresh for every request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The person (for an API key: its creator).
    pub user: User,
    /// The API key used, if any.
    pub api_key: Option<ApiKey>,
    /// The SCIM token acting (see `scim::authenticate`), if any; audit records name it.
    pub scim_token: Option<Actor>,
    /// The organization.
    pub org: Organization,
    /// The authorization subject.
    pub subject: Subject,
    /// Request details for audit records.
    pub request: RequestContext,
    /// When the person joined the organization (the 2FA grace period runs from here at the earliest).
    pub member_since: DateTime<Utc>,
}

impl Caller {
    /// Resolves `principal` in `org`.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when the person is not a member of `org`, or an API key
    /// is used outside its organization (another tenant's organization does not exist for them).
    pub async fn load<S: TenancyStore + ?Sized>(
        store: &S,
        principal: &Principal,
        org: OrgId,
        request: RequestContext,
    ) -> Result<Self, TenancyError> {
        if let Principal::ApiKey { key, .. } = principal
            && key.org != org
        {
            return Err(TenancyError::NotFound("organization"));
        }
        let memberships = store.caller_memberships(principal.user().id).await?;
        Self::in_membership(principal.clone(), memberships, org, request)
    }

    /// Resolves `principal` in `org` from the person's `memberships` (as the store gave them):
    /// the same checks as [`Self::load`] without reading anything.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn in_membership(
        principal: Principal,
        memberships: Vec<CallerMembership>,
        org: OrgId,
        request: RequestContext,
    ) -> Result<Self, TenancyError> {
        Self::resolve(principal, memberships, org, request, false)
    }

    /// [`Self::in_membership`] for leaving the organization (`members::leave`,
    /// `privacy::erase_own`): also for a member whose organization's plan no longer admits
    /// members, who may still leave it and ask it to forget them.
    ///
    /// # Errors
    /// As [`Self::load`], but for [`TenancyError::PlanExcludesMembers`].
    pub fn in_membership_to_leave(
        principal: Principal,
        memberships: Vec<CallerMembership>,
        org: OrgId,
        request: RequestContext,
    ) -> Result<Self, TenancyError> {
        Self::resolve(principal, memberships, org, request, true)
    }

    fn resolve(
        principal: Principal,
        memberships: Vec<CallerMembership>,
        org: OrgId,
        request: RequestContext,
        leaving: bool,
    ) -> Result<Self, TenancyError> {
        let membership = memberships
            .into_iter()
            .find(|m| m.org.id == org)
            .ok_or(TenancyError::NotFound("organization"))?;
        let (user, api_key, credential) = match principal {
            Principal::Session { user, .. } => (user, None, Credential::Session),
            Principal::ApiKey { user, key } => {
                if key.org != org {
                    return Err(TenancyError::NotFound("organization"));
                }
                (user, Some(key), Credential::ApiKey)
            }
        };
        if membership.deactivated_at.is_some() {
            return Err(TenancyError::Deactivated);
        }
        if !leaving
            && membership.role != rbac_core::OrgRole::Owner
            && !membership.org.admits_members()
        {
            return Err(TenancyError::PlanExcludesMembers(membership.org.plan));
        }
        let mut subject = Subject {
            user: user.id,
            org,
            role: membership.role,
            teams: membership.teams,
            all_teams: membership.all_teams,
            credential,
        };
        if let Some(key) = api_key.as_ref().filter(|k| k.scope == KeyScope::Team) {
            subject = subject.confined_to(key.team);
        }
        Ok(Self {
            user,
            api_key,
            scim_token: None,
            org: membership.org,
            subject,
            request,
            member_since: membership.joined_at,
        })
    }

    /// The teams whose people (and, with their own actions, audit records) the caller sees,
    /// `None` for every team: the Owner, the Admins and those with a role in every team see
    /// everything; an organization User the teams they have a role in (the guide's isolated
    /// client teams).
    #[must_use]
    pub fn teams_seen(&self) -> Option<Vec<TeamId>> {
        let s = &self.subject;
        if s.role.is_admin() || s.in_every_team() {
            None
        } else {
            Some(s.teams.iter().map(|(t, _)| *t).collect())
        }
    }

    /// What the caller reads of the audit log, `None` for every record: an organization User
    /// the records of the teams they see ([`Self::teams_seen`]) and their own actions. A key
    /// confined to one team reads that team's records and the key's own actions, not its
    /// creator's (which name other teams' resources and people).
    #[must_use]
    pub fn audit_seen_by(&self) -> Option<audit::SeenBy> {
        let actor_id = match &self.api_key {
            Some(k) if k.scope == KeyScope::Team => k.id.to_string(),
            _ => self.user.id.to_string(),
        };
        self.teams_seen()
            .map(|teams| audit::SeenBy { teams, actor_id })
    }

    /// Checks that the caller reads the organization's whole audit log, as verifying its chain
    /// or signing its head needs (both speak for every record): a caller whose view is narrowed
    /// to their teams ([`Caller::audit_seen_by`]) is refused, as one refused the log altogether.
    ///
    /// # Errors
    /// [`TenancyError::Forbidden`] or [`TenancyError::NotFound`].
    pub fn check_whole_audit_log(&self) -> Result<(), TenancyError> {
        self.check_org(Permission::ViewAuditLog)?;
        if self.audit_seen_by().is_some() {
            return Err(TenancyError::Forbidden(DenyReason::RoleLacksPermission {
                role: self.subject.role,
            }));
        }
        Ok(())
    }

    /// The organization-wide inputs of authorization.
    #[must_use]
    pub fn context(&self) -> Context {
        Context {
            access: self.org.access,
            plan: self.org.plan.features(),
        }
    }

    /// The raw decision for `action` on `resource`.
    #[must_use]
    pub fn decide(&self, action: Permission, resource: &Resource) -> Decision {
        authorize(&self.subject, action, resource, &self.context())
    }

    /// Checks a permission; a resource the caller may not learn of answers
    /// [`TenancyError::Hidden`] (a "not found" that is recorded as a refusal), others
    /// [`TenancyError::Forbidden`].
    ///
    /// # Errors
    /// [`TenancyError::Hidden`] or [`TenancyError::Forbidden`].
    pub fn check(&self, action: Permission, resource: &Resource) -> Result<Grant, TenancyError> {
        self.decide(action, resource)
            .into_result()
            .map_err(|reason| {
                if reason.hides_existence() {
                    TenancyError::Hidden("resource", reason)
                } else {
                    TenancyError::Forbidden(reason)
                }
            })
    }

    /// Checks an organization-level permission.
    ///
    /// # Errors
    /// As [`Caller::check`].
    pub fn check_org(&self, action: Permission) -> Result<Grant, TenancyError> {
        self.check(action, &Resource::org(self.org.id))
    }

    /// The acting party for audit records.
    #[must_use]
    pub fn actor(&self) -> Actor {
        if let Some(token) = &self.scim_token {
            return token.clone();
        }
        match &self.api_key {
            Some(k) => Actor {
                kind: ActorKind::ApiKey,
                id: k.id.to_string(),
                name: format!("{} (API key of {})", k.name, self.user.name),
            },
            None => Actor::user(self.user.id, self.user.name.clone()),
        }
    }

    /// An audit record of this caller's action, with the request context.
    #[must_use]
    pub fn audit(&self, now: DateTime<Utc>, action: AuditAction, target: Target) -> NewAuditEvent {
        NewAuditEvent::new(self.org.id, now, self.actor(), action, target)
            .with_context(self.request.clone())
    }
}
