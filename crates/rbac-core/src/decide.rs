//! The one authorization function: pure, total and deny-by-default.

use serde::{Deserialize, Serialize};

use crate::model::{
    Audience, Context, Credential, FeatureSetting, OrgRole, Permission, PlanFeature, Resource,
    Subject, TeamRole,
};

/// Why a request was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// The organization Owner may do everything.
    Owner,
    /// Organization Admins administer every team and the organization, except Owner-only actions.
    OrgAdmin,
    /// The permission is in the User role.
    OrgUser,
    /// The caller administers the resource's team.
    TeamAdmin,
    /// The caller is a Member of the resource's team.
    TeamMember,
    /// The caller may view the resource's team.
    TeamViewer,
    /// The caller created the resource (a "Limited" cell).
    Creator,
    /// A feature-access setting opens the permission to Users.
    Setting(FeatureSetting),
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DenyReason {
    /// The resource belongs to another organization (answered as 404).
    CrossTenant,
    /// The caller has no role in the resource's team (answered as 404).
    NotTeamMember,
    /// The caller's organization role does not include the permission.
    RoleLacksPermission {
        /// The caller's role.
        role: OrgRole,
    },
    /// The caller's team role does not include the permission.
    TeamRoleLacksPermission {
        /// The caller's team role.
        role: TeamRole,
    },
    /// A Limited permission that applies only to resources the caller created.
    NotCreator,
    /// A feature-access setting reserves the permission for Admins.
    DisabledBySetting {
        /// The setting.
        setting: FeatureSetting,
    },
    /// The organization's plan does not include the feature.
    PlanLacksFeature {
        /// The missing feature.
        feature: PlanFeature,
    },
    /// The action needs an interactive session; API keys cannot perform it.
    InteractiveOnly,
    /// A SCIM token may only provision members and teams.
    OutsideScimScope,
}

impl DenyReason {
    /// A stable machine-readable code, stored in the audit log and sent in 403 bodies.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            DenyReason::CrossTenant => "cross_tenant",
            DenyReason::NotTeamMember => "not_team_member",
            DenyReason::RoleLacksPermission { .. } => "role_lacks_permission",
            DenyReason::TeamRoleLacksPermission { .. } => "team_role_lacks_permission",
            DenyReason::NotCreator => "not_creator",
            DenyReason::DisabledBySetting { .. } => "disabled_by_setting",
            DenyReason::PlanLacksFeature { .. } => "plan_lacks_feature",
            DenyReason::InteractiveOnly => "interactive_only",
            DenyReason::OutsideScimScope => "outside_scim_scope",
        }
    }

    /// Whether the caller must not even learn that the resource exists (404, not 403).
    #[must_use]
    pub const fn hides_existence(&self) -> bool {
        matches!(self, DenyReason::CrossTenant | DenyReason::NotTeamMember)
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyReason::CrossTenant => f.write_str("the resource belongs to another organization"),
            DenyReason::NotTeamMember => f.write_str("you are not a member of this team"),
            DenyReason::RoleLacksPermission { role } => {
                write!(
                    f,
                    "the `{}` role does not include this permission",
                    role.as_str()
                )
            }
            DenyReason::TeamRoleLacksPermission { role } => {
                write!(
                    f,
                    "the team role `{}` does not include this permission",
                    role.as_str()
                )
            }
            DenyReason::NotCreator => {
                f.write_str("users may do this only on resources they created")
            }
            DenyReason::DisabledBySetting { setting } => {
                write!(
                    f,
                    "the `{}` setting reserves this for admins",
                    setting_name(*setting)
                )
            }
            DenyReason::PlanLacksFeature { feature } => {
                write!(f, "the plan does not include `{}`", feature_name(*feature))
            }
            DenyReason::InteractiveOnly => f.write_str("API keys cannot perform this action"),
            DenyReason::OutsideScimScope => {
                f.write_str("SCIM tokens may only provision members and teams")
            }
        }
    }
}

fn setting_name(s: FeatureSetting) -> &'static str {
    match s {
        FeatureSetting::CreateApiKeys => "create_api_keys",
        FeatureSetting::ManageDomains => "manage_domains",
        FeatureSetting::ViewAuditLogs => "view_audit_logs",
        FeatureSetting::ExportData => "export_data",
    }
}

fn feature_name(f: PlanFeature) -> &'static str {
    match f {
        PlanFeature::AuditLogs => "audit_logs",
        PlanFeature::AdvancedRbac => "advanced_rbac",
        PlanFeature::Webhooks => "webhooks",
        PlanFeature::Scim => "scim",
    }
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    /// Allowed, and why.
    Allow(Grant),
    /// Denied, and why.
    Deny(DenyReason),
}

impl Decision {
    /// Whether the decision allows the request.
    #[must_use]
    pub const fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// Converts to a `Result`, keeping the deny reason.
    ///
    /// # Errors
    /// Returns the [`DenyReason`] when the decision is a denial.
    pub const fn into_result(self) -> Result<Grant, DenyReason> {
        match self {
            Decision::Allow(g) => Ok(g),
            Decision::Deny(r) => Err(r),
        }
    }
}

/// Where a permission is decided.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Organization-level: only the organization role matters.
    Org,
    /// Workspace resources: the team role matters for Users.
    Team,
}

const fn scope(p: Permission) -> Scope {
    use Permission as P;
    match p {
        P::ViewBilling
        | P::ManageBilling
        | P::ViewMembers
        | P::InviteMembers
        | P::RemoveMembers
        | P::ChangeRoles
        | P::TransferOwnership
        | P::ViewAuditLog
        | P::ExportData
        | P::ViewSettings
        | P::ViewSecurityPolicy
        | P::UpdateSettings
        | P::UpdateSecurityPolicy
        | P::UpdateFeatureAccess
        | P::ManageWebhooks
        | P::DeleteOrganization
        | P::CreateTeam => Scope::Org,
        P::ViewChatInterface
        | P::UseChatInterface
        | P::CreateChatInterface
        | P::EditChatInterface
        | P::ViewKnowledgeBase
        | P::CreateKnowledgeBase
        | P::ManageKnowledgeBase
        | P::UploadDocument
        | P::DeleteDocument
        | P::ViewAnalytics
        | P::CreateApiKey
        | P::ViewApiKey
        | P::RevokeApiKey
        | P::ViewDomains
        | P::ManageDomains
        | P::ViewTeam
        | P::ManageTeam
        | P::ManageTeamMembers
        | P::TransferAsset => Scope::Team,
    }
}

/// Permissions only the Owner holds, under every setting.
const fn owner_only(p: Permission) -> bool {
    matches!(
        p,
        Permission::ViewBilling
            | Permission::ManageBilling
            | Permission::TransferOwnership
            | Permission::DeleteOrganization
    )
}

/// Permissions an API key can never exercise, whatever its creator's role: money, ownership,
/// new credentials and accounts, and the rules that constrain keys and people (the security
/// policy, whose IP allowlist a leaked key must not widen, and who may do what).
const fn interactive_only(p: Permission) -> bool {
    matches!(
        p,
        Permission::ManageBilling
            | Permission::TransferOwnership
            | Permission::DeleteOrganization
            | Permission::CreateApiKey
            | Permission::InviteMembers
            | Permission::ChangeRoles
            | Permission::UpdateSecurityPolicy
            | Permission::UpdateFeatureAccess
    )
}

/// What a SCIM token may do: read and provision members and teams, nothing else.
const fn provisioning(p: Permission) -> bool {
    matches!(
        p,
        Permission::ViewMembers
            | Permission::InviteMembers
            | Permission::RemoveMembers
            | Permission::ChangeRoles
            | Permission::ViewTeam
            | Permission::CreateTeam
            | Permission::ManageTeam
            | Permission::ManageTeamMembers
    )
}

const fn plan_gate(p: Permission) -> Option<PlanFeature> {
    match p {
        Permission::ViewAuditLog => Some(PlanFeature::AuditLogs),
        Permission::UpdateFeatureAccess => Some(PlanFeature::AdvancedRbac),
        Permission::ManageWebhooks => Some(PlanFeature::Webhooks),
        _ => None,
    }
}

/// The feature-access setting that can open a permission to Users, if any.
const fn setting_for(p: Permission) -> Option<FeatureSetting> {
    match p {
        Permission::CreateApiKey => Some(FeatureSetting::CreateApiKeys),
        Permission::ManageDomains => Some(FeatureSetting::ManageDomains),
        Permission::ViewAuditLog => Some(FeatureSetting::ViewAuditLogs),
        Permission::ExportData => Some(FeatureSetting::ExportData),
        _ => None,
    }
}

/// Decides whether `subject` may perform `action` on `resource`.
///
/// Pure: no I/O and no clock; everything it needs is in its arguments, so the
/// same inputs always give the same decision. Anything not explicitly granted
/// is denied, and every decision carries its reason.
#[must_use]
pub fn authorize(
    subject: &Subject,
    action: Permission,
    resource: &Resource,
    ctx: &Context,
) -> Decision {
    if subject.org != resource.org {
        return Decision::Deny(DenyReason::CrossTenant);
    }
    // A User without a role in the resource's team must not learn that the team
    // exists, so this 404 reason comes before every 403 reason below.
    if subject.role == OrgRole::User
        && scope(action) == Scope::Team
        && let Some(team) = resource.team
        && subject.team_role(team).is_none()
    {
        return Decision::Deny(DenyReason::NotTeamMember);
    }
    if subject.credential == Credential::ApiKey && interactive_only(action) {
        return Decision::Deny(DenyReason::InteractiveOnly);
    }
    if subject.credential == Credential::Scim && !provisioning(action) {
        return Decision::Deny(DenyReason::OutsideScimScope);
    }
    if let Some(feature) = plan_gate(action) {
        let included = match feature {
            PlanFeature::AuditLogs => ctx.plan.audit_logs,
            PlanFeature::AdvancedRbac => ctx.plan.advanced_rbac,
            PlanFeature::Webhooks => ctx.plan.webhooks,
            PlanFeature::Scim => ctx.plan.scim,
        };
        if !included {
            return Decision::Deny(DenyReason::PlanLacksFeature { feature });
        }
    }
    match subject.role {
        OrgRole::Owner => Decision::Allow(Grant::Owner),
        OrgRole::Admin if owner_only(action) => Decision::Deny(DenyReason::RoleLacksPermission {
            role: OrgRole::Admin,
        }),
        OrgRole::Admin => Decision::Allow(Grant::OrgAdmin),
        OrgRole::User => decide_user(subject, action, resource, ctx),
    }
}

/// The User role: organization-level rows of the table, then the team role.
fn decide_user(
    subject: &Subject,
    action: Permission,
    resource: &Resource,
    ctx: &Context,
) -> Decision {
    let access = ctx.effective_access();
    let setting_check = |grant: Grant| match setting_for(action) {
        Some(setting) => {
            let audience = match setting {
                FeatureSetting::CreateApiKeys => access.create_api_keys,
                FeatureSetting::ManageDomains => access.manage_domains,
                FeatureSetting::ViewAuditLogs => access.view_audit_logs,
                FeatureSetting::ExportData => access.export_data,
            };
            match audience {
                Audience::AdminsAndUsers => Decision::Allow(Grant::Setting(setting)),
                Audience::AdminsOnly => Decision::Deny(DenyReason::DisabledBySetting { setting }),
            }
        }
        None => Decision::Allow(grant),
    };

    if scope(action) == Scope::Org {
        return match action {
            Permission::ViewMembers | Permission::ViewSettings => Decision::Allow(Grant::OrgUser),
            Permission::ViewAuditLog | Permission::ExportData => setting_check(Grant::OrgUser),
            _ => Decision::Deny(DenyReason::RoleLacksPermission {
                role: OrgRole::User,
            }),
        };
    }

    // Team-scoped: an organization User acts through their team role. Without a
    // team in the resource (organization-wide listings) they act as a Member.
    let team_role = match resource.team {
        Some(team) => match subject.team_role(team) {
            Some(role) => role,
            None => return Decision::Deny(DenyReason::NotTeamMember),
        },
        None => TeamRole::Member,
    };
    let is_creator = resource.creator == Some(subject.user);

    match team_role {
        TeamRole::Viewer if action.is_read_only() => match action {
            // Viewers see only their own API keys, like Members.
            Permission::ViewApiKey if !is_creator => Decision::Deny(DenyReason::NotCreator),
            _ => Decision::Allow(Grant::TeamViewer),
        },
        TeamRole::Viewer => Decision::Deny(DenyReason::TeamRoleLacksPermission {
            role: TeamRole::Viewer,
        }),
        TeamRole::Admin => match action {
            Permission::CreateApiKey | Permission::ManageDomains => setting_check(Grant::TeamAdmin),
            _ => Decision::Allow(Grant::TeamAdmin),
        },
        TeamRole::Member => match action {
            Permission::ViewChatInterface
            | Permission::UseChatInterface
            | Permission::CreateChatInterface
            | Permission::EditChatInterface
            | Permission::ViewKnowledgeBase
            | Permission::CreateKnowledgeBase
            | Permission::UploadDocument
            | Permission::ViewAnalytics
            | Permission::ViewDomains
            | Permission::ViewTeam => Decision::Allow(Grant::TeamMember),
            Permission::ManageKnowledgeBase
            | Permission::DeleteDocument
            | Permission::ViewApiKey
            | Permission::RevokeApiKey => {
                if is_creator {
                    Decision::Allow(Grant::Creator)
                } else {
                    Decision::Deny(DenyReason::NotCreator)
                }
            }
            Permission::CreateApiKey | Permission::ManageDomains => {
                setting_check(Grant::TeamMember)
            }
            _ => Decision::Deny(DenyReason::TeamRoleLacksPermission {
                role: TeamRole::Member,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    //! Decision tables read as data: every row goes through [`check`].

    use super::*;
    use crate::ids::{OrgId, TeamId, UserId};
    use crate::model::{FeatureAccess, PlanFeatures};
    use Permission as P;

    // --- Who asks --------------------------------------------------------------

    /// The caller of a row: organization role, role in the row's team, credential.
    #[derive(Debug, Clone, Copy)]
    struct Who {
        role: OrgRole,
        team: Option<TeamRole>,
        credential: Credential,
    }

    const fn who(role: OrgRole, team: Option<TeamRole>, credential: Credential) -> Who {
        Who {
            role,
            team,
            credential,
        }
    }

    const OWNER: Who = who(OrgRole::Owner, None, Credential::Session);
    const ADMIN: Who = who(OrgRole::Admin, None, Credential::Session);
    /// An organization User who is a Member of the row's team (the guide's "User" column).
    const USER: Who = who(OrgRole::User, Some(TeamRole::Member), Credential::Session);
    const VIEWER: Who = who(OrgRole::User, Some(TeamRole::Viewer), Credential::Session);
    const TEAM_ADMIN: Who = who(OrgRole::User, Some(TeamRole::Admin), Credential::Session);
    /// An organization User with no role in the row's team (but Admin of another team).
    const OUTSIDER: Who = who(OrgRole::User, None, Credential::Session);
    const OWNER_KEY: Who = who(OrgRole::Owner, None, Credential::ApiKey);
    const ADMIN_KEY: Who = who(OrgRole::Admin, None, Credential::ApiKey);
    const USER_KEY: Who = who(OrgRole::User, Some(TeamRole::Member), Credential::ApiKey);
    const OUTSIDER_KEY: Who = who(OrgRole::User, None, Credential::ApiKey);

    // --- What on ---------------------------------------------------------------

    /// The target of a row.
    #[derive(Debug, Clone, Copy)]
    enum On {
        /// The organization itself (settings, members, billing, audit log).
        Org,
        /// The caller's team, no creator ("create in this team", listings).
        Team,
        /// A resource in the caller's team that the caller created.
        Mine,
        /// A resource in the caller's team that someone else created.
        Theirs,
        /// A team resource without a team: organization-wide.
        OrgWide,
        /// A team of this organization in which the caller has no role.
        OtherTeam,
        /// A team resource of another organization.
        ForeignTeam,
        /// Another organization itself.
        ForeignOrg,
    }

    // --- Under which settings and plan -----------------------------------------

    const fn access(
        create_api_keys: Audience,
        manage_domains: Audience,
        view_audit_logs: Audience,
        export_data: Audience,
    ) -> FeatureAccess {
        FeatureAccess {
            create_api_keys,
            manage_domains,
            view_audit_logs,
            export_data,
        }
    }

    const ONLY: Audience = Audience::AdminsOnly;
    const OPEN: Audience = Audience::AdminsAndUsers;

    /// Enterprise plan, the guide's default feature access.
    const DEFAULTS: Context = Context {
        access: access(OPEN, ONLY, ONLY, ONLY),
        plan: PlanFeatures::ENTERPRISE,
    };
    /// Enterprise plan, every setting opened to Users.
    const ALL_OPEN: Context = Context {
        access: access(OPEN, OPEN, OPEN, OPEN),
        plan: PlanFeatures::ENTERPRISE,
    };
    /// Enterprise plan, every setting reserved for Admins.
    const ALL_ONLY: Context = Context {
        access: access(ONLY, ONLY, ONLY, ONLY),
        plan: PlanFeatures::ENTERPRISE,
    };
    /// Free/Pro plan with every stored setting opened: the defaults apply instead.
    const BASIC_OPEN: Context = Context {
        access: access(OPEN, OPEN, OPEN, OPEN),
        plan: PlanFeatures::BASIC,
    };
    /// Free/Pro plan with every stored setting closed: the defaults apply instead.
    const BASIC_ONLY: Context = Context {
        access: access(ONLY, ONLY, ONLY, ONLY),
        plan: PlanFeatures::BASIC,
    };
    /// A plan with audit logs but without advanced RBAC, every stored setting opened.
    const AUDIT_NO_RBAC: Context = Context {
        access: access(OPEN, OPEN, OPEN, OPEN),
        plan: PlanFeatures {
            audit_logs: true,
            advanced_rbac: false,
            webhooks: false,
            scim: false,
        },
    };

    // --- Expected decisions ----------------------------------------------------

    const OWNER_OK: Decision = Decision::Allow(Grant::Owner);
    const ADMIN_OK: Decision = Decision::Allow(Grant::OrgAdmin);
    const USER_OK: Decision = Decision::Allow(Grant::OrgUser);
    const MEMBER_OK: Decision = Decision::Allow(Grant::TeamMember);
    const VIEWER_OK: Decision = Decision::Allow(Grant::TeamViewer);
    const TEAM_ADMIN_OK: Decision = Decision::Allow(Grant::TeamAdmin);
    const CREATOR_OK: Decision = Decision::Allow(Grant::Creator);
    const ADMIN_NO: Decision = Decision::Deny(DenyReason::RoleLacksPermission {
        role: OrgRole::Admin,
    });
    const USER_NO: Decision = Decision::Deny(DenyReason::RoleLacksPermission {
        role: OrgRole::User,
    });
    const MEMBER_NO: Decision = Decision::Deny(DenyReason::TeamRoleLacksPermission {
        role: TeamRole::Member,
    });
    const VIEWER_NO: Decision = Decision::Deny(DenyReason::TeamRoleLacksPermission {
        role: TeamRole::Viewer,
    });
    const NOT_CREATOR: Decision = Decision::Deny(DenyReason::NotCreator);
    const NOT_IN_TEAM: Decision = Decision::Deny(DenyReason::NotTeamMember);
    const CROSS_TENANT: Decision = Decision::Deny(DenyReason::CrossTenant);
    const KEY_NO: Decision = Decision::Deny(DenyReason::InteractiveOnly);

    const fn opened(setting: FeatureSetting) -> Decision {
        Decision::Allow(Grant::Setting(setting))
    }

    const fn closed(setting: FeatureSetting) -> Decision {
        Decision::Deny(DenyReason::DisabledBySetting { setting })
    }

    const fn no_plan(feature: PlanFeature) -> Decision {
        Decision::Deny(DenyReason::PlanLacksFeature { feature })
    }

    const NO_RBAC: PlanFeature = PlanFeature::AdvancedRbac;

    const KEYS: FeatureSetting = FeatureSetting::CreateApiKeys;
    const DOMAINS: FeatureSetting = FeatureSetting::ManageDomains;
    const AUDIT: FeatureSetting = FeatureSetting::ViewAuditLogs;
    const EXPORT: FeatureSetting = FeatureSetting::ExportData;

    // --- The one helper --------------------------------------------------------

    fn org() -> OrgId {
        OrgId::from_uuid(uuid::Uuid::from_u128(1))
    }
    fn foreign_org() -> OrgId {
        OrgId::from_uuid(uuid::Uuid::from_u128(2))
    }
    fn team() -> TeamId {
        TeamId::from_uuid(uuid::Uuid::from_u128(10))
    }
    fn other_team() -> TeamId {
        TeamId::from_uuid(uuid::Uuid::from_u128(11))
    }
    fn me() -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(100))
    }
    fn someone_else() -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(101))
    }

    fn subject(w: Who) -> Subject {
        // Every caller also administers a third team, so the lookup must pick the row's team
        // and never borrow another team's role.
        let mut teams = vec![(
            TeamId::from_uuid(uuid::Uuid::from_u128(12)),
            TeamRole::Admin,
        )];
        if let Some(role) = w.team {
            teams.push((team(), role));
        }
        Subject {
            user: me(),
            org: org(),
            role: w.role,
            teams,
            all_teams: None,
            credential: w.credential,
        }
    }

    fn resource(on: On) -> Resource {
        match on {
            On::Org => Resource::org(org()),
            On::Team => Resource::team(org(), team()),
            On::Mine => Resource::owned(org(), team(), me()),
            On::Theirs => Resource::owned(org(), team(), someone_else()),
            On::OrgWide => Resource {
                org: org(),
                team: None,
                creator: None,
            },
            On::OtherTeam => Resource::team(org(), other_team()),
            On::ForeignTeam => Resource::owned(foreign_org(), team(), me()),
            On::ForeignOrg => Resource::org(foreign_org()),
        }
    }

    /// One row of a decision table.
    type Row = (Who, Permission, On, Context, Decision);

    /// Runs every row and reports all mismatches at once.
    fn check(rows: &[Row]) {
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|&(w, p, on, ctx, expected)| {
                let got = authorize(&subject(w), p, &resource(on), &ctx);
                (got != expected).then(|| {
                    format!(
                        "{w:?} {p:?} on {on:?} under {ctx:?}: expected {expected:?}, got {got:?}"
                    )
                })
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} row(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    // --- Tables ----------------------------------------------------------------

    /// The guide's RBAC table, one line per permission: (permission, target, Owner, Admin, User),
    /// with the guide's default feature access on the Enterprise plan. The User is a Member of
    /// the target's team, and Limited rows target someone else's resource (see `limited_cells`).
    #[rustfmt::skip]
    const GUIDE_TABLE: [(Permission, On, Decision, Decision, Decision); 36] = [
        // Billing & Subscription: Owner Full, Admin No, User No.
        (P::ViewBilling,          On::Org,    OWNER_OK, ADMIN_NO, USER_NO),
        (P::ManageBilling,        On::Org,    OWNER_OK, ADMIN_NO, USER_NO),
        // Add/Remove Team Members: Owner Yes, Admin Yes, User No (Users still see the list).
        (P::ViewMembers,          On::Org,    OWNER_OK, ADMIN_OK, USER_OK),
        (P::InviteMembers,        On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::RemoveMembers,        On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::ChangeRoles,          On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::TransferOwnership,    On::Org,    OWNER_OK, ADMIN_NO, USER_NO),
        // Create Chat Interfaces: Yes, Yes, Yes.
        (P::ViewChatInterface,    On::Theirs, OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::UseChatInterface,     On::Theirs, OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::CreateChatInterface,  On::Team,   OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::EditChatInterface,    On::Theirs, OWNER_OK, ADMIN_OK, MEMBER_OK),
        // Manage Knowledge Bases: Yes, Yes, Limited (their own).
        (P::ViewKnowledgeBase,    On::Theirs, OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::CreateKnowledgeBase,  On::Team,   OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::ManageKnowledgeBase,  On::Theirs, OWNER_OK, ADMIN_OK, NOT_CREATOR),
        (P::UploadDocument,       On::Theirs, OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::DeleteDocument,       On::Theirs, OWNER_OK, ADMIN_OK, NOT_CREATOR),
        // View Analytics: Yes, Yes, Yes.
        (P::ViewAnalytics,        On::Team,   OWNER_OK, ADMIN_OK, MEMBER_OK),
        // Create API Keys: Yes, Yes, Limited (setting; their own keys).
        (P::CreateApiKey,         On::Team,   OWNER_OK, ADMIN_OK, opened(KEYS)),
        (P::ViewApiKey,           On::Theirs, OWNER_OK, ADMIN_OK, NOT_CREATOR),
        (P::RevokeApiKey,         On::Theirs, OWNER_OK, ADMIN_OK, NOT_CREATOR),
        // Manage Domains: Yes, Yes, No (seeing them is fine).
        (P::ViewDomains,          On::Team,   OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::ManageDomains,        On::Team,   OWNER_OK, ADMIN_OK, closed(DOMAINS)),
        // View Audit Logs: Yes, Yes, No; exporting follows its own setting.
        (P::ViewAuditLog,         On::Org,    OWNER_OK, ADMIN_OK, closed(AUDIT)),
        (P::ExportData,           On::Org,    OWNER_OK, ADMIN_OK, closed(EXPORT)),
        // Enterprise Settings: Yes, Limited (no billing, ownership or deletion), No.
        (P::ViewSettings,         On::Org,    OWNER_OK, ADMIN_OK, USER_OK),
        (P::ViewSecurityPolicy,   On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::UpdateSettings,       On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::UpdateSecurityPolicy, On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::UpdateFeatureAccess,  On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::ManageWebhooks,       On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::DeleteOrganization,   On::Org,    OWNER_OK, ADMIN_NO, USER_NO),
        // Teams (team organization guide): org Admins administer every team.
        (P::ViewTeam,             On::Team,   OWNER_OK, ADMIN_OK, MEMBER_OK),
        (P::CreateTeam,           On::Org,    OWNER_OK, ADMIN_OK, USER_NO),
        (P::ManageTeam,           On::Team,   OWNER_OK, ADMIN_OK, MEMBER_NO),
        (P::ManageTeamMembers,    On::Team,   OWNER_OK, ADMIN_OK, MEMBER_NO),
        (P::TransferAsset,        On::Theirs, OWNER_OK, ADMIN_OK, MEMBER_NO),
    ];

    #[test]
    fn guide_rbac_table() {
        let rows: Vec<Row> = GUIDE_TABLE
            .iter()
            .flat_map(|&(p, on, owner, admin, user)| {
                [
                    (OWNER, p, on, DEFAULTS, owner),
                    (ADMIN, p, on, DEFAULTS, admin),
                    (USER, p, on, DEFAULTS, user),
                ]
            })
            .collect();
        check(&rows);
    }

    #[test]
    fn guide_table_lists_every_permission_once() {
        let listed: Vec<Permission> = GUIDE_TABLE.iter().map(|row| row.0).collect();
        assert_eq!(listed, Permission::ALL);
    }

    #[test]
    #[rustfmt::skip]
    fn limited_cells() {
        check(&[
            // Users manage only the knowledge bases and documents they created.
            (USER, P::ManageKnowledgeBase, On::Mine, DEFAULTS, CREATOR_OK),
            (USER, P::ManageKnowledgeBase, On::Theirs, DEFAULTS, NOT_CREATOR),
            (USER, P::ManageKnowledgeBase, On::Team, DEFAULTS, NOT_CREATOR),
            (USER, P::DeleteDocument, On::Mine, DEFAULTS, CREATOR_OK),
            (USER, P::DeleteDocument, On::Theirs, DEFAULTS, NOT_CREATOR),
            (ADMIN, P::ManageKnowledgeBase, On::Theirs, DEFAULTS, ADMIN_OK),
            (ADMIN, P::DeleteDocument, On::Theirs, DEFAULTS, ADMIN_OK),
            (OWNER, P::DeleteDocument, On::Theirs, DEFAULTS, OWNER_OK),
            // Users see and revoke only their own API keys.
            (USER, P::ViewApiKey, On::Mine, DEFAULTS, CREATOR_OK),
            (USER, P::ViewApiKey, On::Theirs, DEFAULTS, NOT_CREATOR),
            (USER, P::RevokeApiKey, On::Mine, DEFAULTS, CREATOR_OK),
            (USER, P::RevokeApiKey, On::Theirs, DEFAULTS, NOT_CREATOR),
            (ADMIN, P::ViewApiKey, On::Theirs, DEFAULTS, ADMIN_OK),
            (ADMIN, P::RevokeApiKey, On::Theirs, DEFAULTS, ADMIN_OK),
            // Users create API keys only while `create_api_keys` is Admins + Users.
            (USER, P::CreateApiKey, On::Team, ALL_OPEN, opened(KEYS)),
            (USER, P::CreateApiKey, On::Team, ALL_ONLY, closed(KEYS)),
            (ADMIN, P::CreateApiKey, On::Team, ALL_ONLY, ADMIN_OK),
            (OWNER, P::CreateApiKey, On::Team, ALL_ONLY, OWNER_OK),
            // Admin's enterprise settings: everything but billing, ownership and deletion.
            (ADMIN, P::ViewSettings, On::Org, DEFAULTS, ADMIN_OK),
            (ADMIN, P::UpdateSettings, On::Org, DEFAULTS, ADMIN_OK),
            (ADMIN, P::UpdateSecurityPolicy, On::Org, DEFAULTS, ADMIN_OK),
            (ADMIN, P::UpdateFeatureAccess, On::Org, DEFAULTS, ADMIN_OK),
            (ADMIN, P::ManageWebhooks, On::Org, DEFAULTS, ADMIN_OK),
            (ADMIN, P::ViewBilling, On::Org, ALL_OPEN, ADMIN_NO),
            (ADMIN, P::ManageBilling, On::Org, ALL_OPEN, ADMIN_NO),
            (ADMIN, P::TransferOwnership, On::Org, ALL_OPEN, ADMIN_NO),
            (ADMIN, P::DeleteOrganization, On::Org, ALL_OPEN, ADMIN_NO),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn feature_access_settings() {
        check(&[
            // Who can create API keys (default Admins + Users).
            (USER, P::CreateApiKey, On::Team, DEFAULTS, opened(KEYS)),
            (USER, P::CreateApiKey, On::Team, ALL_OPEN, opened(KEYS)),
            (USER, P::CreateApiKey, On::Team, ALL_ONLY, closed(KEYS)),
            // Who can manage domains (default Admins only).
            (USER, P::ManageDomains, On::Team, DEFAULTS, closed(DOMAINS)),
            (USER, P::ManageDomains, On::Team, ALL_OPEN, opened(DOMAINS)),
            (USER, P::ManageDomains, On::Team, ALL_ONLY, closed(DOMAINS)),
            (ADMIN, P::ManageDomains, On::Team, ALL_ONLY, ADMIN_OK),
            // Who can view audit logs (default Admins only).
            (USER, P::ViewAuditLog, On::Org, DEFAULTS, closed(AUDIT)),
            (USER, P::ViewAuditLog, On::Org, ALL_OPEN, opened(AUDIT)),
            (USER, P::ViewAuditLog, On::Org, ALL_ONLY, closed(AUDIT)),
            (ADMIN, P::ViewAuditLog, On::Org, ALL_ONLY, ADMIN_OK),
            // Who can export data (default Admins only).
            (USER, P::ExportData, On::Org, DEFAULTS, closed(EXPORT)),
            (USER, P::ExportData, On::Org, ALL_OPEN, opened(EXPORT)),
            (USER, P::ExportData, On::Org, ALL_ONLY, closed(EXPORT)),
            (ADMIN, P::ExportData, On::Org, ALL_ONLY, ADMIN_OK),
            // Organization-level settings ignore the team role; team-level ones keep it.
            (VIEWER, P::ViewAuditLog, On::Org, ALL_OPEN, opened(AUDIT)),
            (VIEWER, P::CreateApiKey, On::Team, ALL_OPEN, VIEWER_NO),
            (VIEWER, P::ManageDomains, On::Team, ALL_OPEN, VIEWER_NO),
            (TEAM_ADMIN, P::CreateApiKey, On::Team, ALL_OPEN, opened(KEYS)),
            (TEAM_ADMIN, P::CreateApiKey, On::Team, ALL_ONLY, closed(KEYS)),
            (TEAM_ADMIN, P::ManageDomains, On::Team, ALL_OPEN, opened(DOMAINS)),
            (TEAM_ADMIN, P::ManageDomains, On::Team, DEFAULTS, closed(DOMAINS)),
            // No setting opens anything else to Users.
            (USER, P::ViewBilling, On::Org, ALL_OPEN, USER_NO),
            (USER, P::UpdateSettings, On::Org, ALL_OPEN, USER_NO),
            (USER, P::UpdateFeatureAccess, On::Org, ALL_OPEN, USER_NO),
            (USER, P::InviteMembers, On::Org, ALL_OPEN, USER_NO),
        ]);
    }

    /// The permission each setting opens to Users.
    const SETTINGS: [(FeatureSetting, Permission, On); 4] = [
        (KEYS, P::CreateApiKey, On::Team),
        (DOMAINS, P::ManageDomains, On::Team),
        (AUDIT, P::ViewAuditLog, On::Org),
        (EXPORT, P::ExportData, On::Org),
    ];

    #[test]
    fn each_setting_opens_exactly_its_own_permission() {
        for (setting, opens, _) in SETTINGS {
            let mut ctx = ALL_ONLY;
            match setting {
                FeatureSetting::CreateApiKeys => ctx.access.create_api_keys = OPEN,
                FeatureSetting::ManageDomains => ctx.access.manage_domains = OPEN,
                FeatureSetting::ViewAuditLogs => ctx.access.view_audit_logs = OPEN,
                FeatureSetting::ExportData => ctx.access.export_data = OPEN,
            }
            let rows: Vec<Row> = SETTINGS
                .iter()
                .map(|&(s, p, on)| {
                    let expected = if p == opens { opened(s) } else { closed(s) };
                    (USER, p, on, ctx, expected)
                })
                .collect();
            check(&rows);
        }
    }

    #[test]
    #[rustfmt::skip]
    fn plan_gates() {
        check(&[
            // Audit logs need the plan feature, for everyone.
            (OWNER, P::ViewAuditLog, On::Org, BASIC_OPEN, no_plan(PlanFeature::AuditLogs)),
            (ADMIN, P::ViewAuditLog, On::Org, BASIC_OPEN, no_plan(PlanFeature::AuditLogs)),
            (USER, P::ViewAuditLog, On::Org, BASIC_OPEN, no_plan(PlanFeature::AuditLogs)),
            (OWNER, P::ViewAuditLog, On::Org, AUDIT_NO_RBAC, OWNER_OK),
            // Changing the feature-access settings needs advanced RBAC.
            (OWNER, P::UpdateFeatureAccess, On::Org, BASIC_OPEN, no_plan(NO_RBAC)),
            (ADMIN, P::UpdateFeatureAccess, On::Org, AUDIT_NO_RBAC, no_plan(NO_RBAC)),
            // Webhooks need the plan feature.
            (OWNER, P::ManageWebhooks, On::Org, BASIC_OPEN, no_plan(PlanFeature::Webhooks)),
            (ADMIN, P::ManageWebhooks, On::Org, BASIC_OPEN, no_plan(PlanFeature::Webhooks)),
            // Without advanced RBAC the stored settings are ignored and the defaults apply.
            (USER, P::CreateApiKey, On::Team, BASIC_ONLY, opened(KEYS)),
            (USER, P::ManageDomains, On::Team, BASIC_OPEN, closed(DOMAINS)),
            (USER, P::ExportData, On::Org, BASIC_OPEN, closed(EXPORT)),
            (USER, P::ViewAuditLog, On::Org, AUDIT_NO_RBAC, closed(AUDIT)),
            (USER, P::ExportData, On::Org, AUDIT_NO_RBAC, closed(EXPORT)),
            // Everything else works on every plan.
            (OWNER, P::ViewBilling, On::Org, BASIC_OPEN, OWNER_OK),
            (OWNER, P::ExportData, On::Org, BASIC_OPEN, OWNER_OK),
            (ADMIN, P::UpdateSecurityPolicy, On::Org, BASIC_OPEN, ADMIN_OK),
            (ADMIN, P::CreateTeam, On::Org, BASIC_OPEN, ADMIN_OK),
            (USER, P::CreateChatInterface, On::Team, BASIC_OPEN, MEMBER_OK),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn api_keys_cannot_do_interactive_only_actions() {
        check(&[
            (OWNER_KEY, P::ManageBilling, On::Org, DEFAULTS, KEY_NO),
            (OWNER_KEY, P::TransferOwnership, On::Org, DEFAULTS, KEY_NO),
            (OWNER_KEY, P::DeleteOrganization, On::Org, DEFAULTS, KEY_NO),
            (OWNER_KEY, P::CreateApiKey, On::Team, DEFAULTS, KEY_NO),
            (ADMIN_KEY, P::CreateApiKey, On::Team, DEFAULTS, KEY_NO),
            (ADMIN_KEY, P::ManageBilling, On::Org, DEFAULTS, KEY_NO),
            (USER_KEY, P::CreateApiKey, On::Team, ALL_OPEN, KEY_NO),
            // Everything else acts with the creator's current rights.
            (OWNER_KEY, P::ViewBilling, On::Org, DEFAULTS, OWNER_OK),
            (ADMIN_KEY, P::UpdateSettings, On::Org, DEFAULTS, ADMIN_OK),
            (ADMIN_KEY, P::RevokeApiKey, On::Theirs, DEFAULTS, ADMIN_OK),
            (USER_KEY, P::RevokeApiKey, On::Mine, DEFAULTS, CREATOR_OK),
            (USER_KEY, P::RevokeApiKey, On::Theirs, DEFAULTS, NOT_CREATOR),
            (USER_KEY, P::UseChatInterface, On::Team, DEFAULTS, MEMBER_OK),
            (USER_KEY, P::UpdateSettings, On::Org, DEFAULTS, USER_NO),
            // A key cannot create or promote an account (and so obtain a login).
            (ADMIN_KEY, P::InviteMembers, On::Org, DEFAULTS, KEY_NO),
            (ADMIN_KEY, P::ChangeRoles, On::Org, DEFAULTS, KEY_NO),
            (USER_KEY, P::InviteMembers, On::Org, DEFAULTS, KEY_NO),
            // Nor loosen the rules that constrain it (an allowlist, 2FA, who may do what).
            (ADMIN_KEY, P::UpdateSecurityPolicy, On::Org, DEFAULTS, KEY_NO),
            (OWNER_KEY, P::UpdateSecurityPolicy, On::Org, DEFAULTS, KEY_NO),
            (ADMIN_KEY, P::UpdateFeatureAccess, On::Org, DEFAULTS, KEY_NO),
            // Hidden resources stay hidden: 404 reasons come before the 403 one.
            (OWNER_KEY, P::ManageBilling, On::ForeignOrg, DEFAULTS, CROSS_TENANT),
            (OUTSIDER_KEY, P::CreateApiKey, On::Team, ALL_OPEN, NOT_IN_TEAM),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn team_roles() {
        check(&[
            // View only: sees and uses, creates and changes nothing.
            (VIEWER, P::ViewTeam, On::Team, DEFAULTS, VIEWER_OK),
            (VIEWER, P::ViewChatInterface, On::Theirs, DEFAULTS, VIEWER_OK),
            (VIEWER, P::UseChatInterface, On::Theirs, DEFAULTS, VIEWER_OK),
            (VIEWER, P::ViewKnowledgeBase, On::Theirs, DEFAULTS, VIEWER_OK),
            (VIEWER, P::ViewAnalytics, On::Team, DEFAULTS, VIEWER_OK),
            (VIEWER, P::ViewDomains, On::Team, DEFAULTS, VIEWER_OK),
            (VIEWER, P::ViewApiKey, On::Mine, DEFAULTS, VIEWER_OK),
            (VIEWER, P::ViewApiKey, On::Theirs, DEFAULTS, NOT_CREATOR),
            (VIEWER, P::CreateChatInterface, On::Team, DEFAULTS, VIEWER_NO),
            (VIEWER, P::EditChatInterface, On::Mine, DEFAULTS, VIEWER_NO),
            (VIEWER, P::CreateKnowledgeBase, On::Team, DEFAULTS, VIEWER_NO),
            (VIEWER, P::UploadDocument, On::Mine, DEFAULTS, VIEWER_NO),
            (VIEWER, P::ManageKnowledgeBase, On::Mine, DEFAULTS, VIEWER_NO),
            (VIEWER, P::DeleteDocument, On::Mine, DEFAULTS, VIEWER_NO),
            (VIEWER, P::RevokeApiKey, On::Mine, DEFAULTS, VIEWER_NO),
            (VIEWER, P::ManageTeam, On::Team, DEFAULTS, VIEWER_NO),
            (VIEWER, P::TransferAsset, On::Mine, DEFAULTS, VIEWER_NO),
            // Member: the guide's User column inside the team.
            (USER, P::EditChatInterface, On::Theirs, DEFAULTS, MEMBER_OK),
            (USER, P::UploadDocument, On::Theirs, DEFAULTS, MEMBER_OK),
            (USER, P::ManageTeamMembers, On::Team, DEFAULTS, MEMBER_NO),
            (USER, P::TransferAsset, On::Mine, DEFAULTS, MEMBER_NO),
            // Team Admin: administers this team and all of its resources.
            (TEAM_ADMIN, P::ManageKnowledgeBase, On::Theirs, DEFAULTS, TEAM_ADMIN_OK),
            (TEAM_ADMIN, P::DeleteDocument, On::Theirs, DEFAULTS, TEAM_ADMIN_OK),
            (TEAM_ADMIN, P::ViewApiKey, On::Theirs, DEFAULTS, TEAM_ADMIN_OK),
            (TEAM_ADMIN, P::RevokeApiKey, On::Theirs, DEFAULTS, TEAM_ADMIN_OK),
            (TEAM_ADMIN, P::ManageTeam, On::Team, DEFAULTS, TEAM_ADMIN_OK),
            (TEAM_ADMIN, P::ManageTeamMembers, On::Team, DEFAULTS, TEAM_ADMIN_OK),
            (TEAM_ADMIN, P::TransferAsset, On::Theirs, DEFAULTS, TEAM_ADMIN_OK),
            // ...but is still an organization User outside the team.
            (TEAM_ADMIN, P::InviteMembers, On::Org, DEFAULTS, USER_NO),
            (TEAM_ADMIN, P::CreateTeam, On::Org, DEFAULTS, USER_NO),
            (TEAM_ADMIN, P::ManageTeam, On::OtherTeam, DEFAULTS, NOT_IN_TEAM),
            // Organization Owner and Admins administer every team without a team role.
            (OWNER, P::ManageTeamMembers, On::OtherTeam, DEFAULTS, OWNER_OK),
            (ADMIN, P::ManageTeam, On::OtherTeam, DEFAULTS, ADMIN_OK),
            (ADMIN, P::ViewChatInterface, On::OtherTeam, DEFAULTS, ADMIN_OK),
            // Organization-wide workspace resources (no team): Users act as Members.
            (USER, P::CreateChatInterface, On::OrgWide, DEFAULTS, MEMBER_OK),
            (VIEWER, P::CreateChatInterface, On::OrgWide, DEFAULTS, MEMBER_OK),
            (OUTSIDER, P::ViewDomains, On::OrgWide, DEFAULTS, MEMBER_OK),
            (OUTSIDER, P::ManageTeam, On::OrgWide, DEFAULTS, MEMBER_NO),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn hidden_resources() {
        check(&[
            // No role in the team: the team and everything in it do not exist (404).
            (OUTSIDER, P::ViewTeam, On::Team, DEFAULTS, NOT_IN_TEAM),
            (OUTSIDER, P::ViewChatInterface, On::Theirs, DEFAULTS, NOT_IN_TEAM),
            (OUTSIDER, P::ManageKnowledgeBase, On::Mine, DEFAULTS, NOT_IN_TEAM),
            (OUTSIDER, P::CreateApiKey, On::Team, ALL_OPEN, NOT_IN_TEAM),
            (USER, P::ViewChatInterface, On::OtherTeam, DEFAULTS, NOT_IN_TEAM),
            (VIEWER, P::ViewTeam, On::OtherTeam, DEFAULTS, NOT_IN_TEAM),
            // Organization-level rows do not depend on teams.
            (OUTSIDER, P::ViewMembers, On::Org, DEFAULTS, USER_OK),
            (OUTSIDER, P::ViewAuditLog, On::Org, ALL_OPEN, opened(AUDIT)),
            // Another organization's resources never exist, whatever the role or plan.
            (OWNER, P::ViewTeam, On::ForeignTeam, DEFAULTS, CROSS_TENANT),
            (OWNER, P::ViewSettings, On::ForeignOrg, DEFAULTS, CROSS_TENANT),
            (OWNER, P::ViewAuditLog, On::ForeignOrg, BASIC_OPEN, CROSS_TENANT),
            (ADMIN, P::InviteMembers, On::ForeignOrg, DEFAULTS, CROSS_TENANT),
            (ADMIN_KEY, P::DeleteOrganization, On::ForeignOrg, DEFAULTS, CROSS_TENANT),
            (USER, P::ViewChatInterface, On::ForeignTeam, DEFAULTS, CROSS_TENANT),
            (USER, P::RevokeApiKey, On::ForeignTeam, DEFAULTS, CROSS_TENANT),
            (TEAM_ADMIN, P::ManageTeam, On::ForeignTeam, DEFAULTS, CROSS_TENANT),
            (OUTSIDER, P::ViewMembers, On::ForeignOrg, DEFAULTS, CROSS_TENANT),
        ]);
    }

    #[test]
    fn duplicate_team_entries_resolve_to_the_least_privileged_role() {
        let ctx = DEFAULTS;
        let target = resource(On::Theirs);
        let mut s = subject(USER);
        s.teams = vec![(team(), TeamRole::Admin), (team(), TeamRole::Viewer)];
        let forward = authorize(&s, P::ManageKnowledgeBase, &target, &ctx);
        s.teams.reverse();
        let backward = authorize(&s, P::ManageKnowledgeBase, &target, &ctx);
        assert_eq!(forward, VIEWER_NO);
        assert_eq!(backward, VIEWER_NO);
    }

    #[test]
    fn a_role_in_every_team_applies_where_no_higher_explicit_one_does() {
        let ctx = DEFAULTS;
        // Finance: view only, in every team, without any explicit team role.
        let mut finance = subject(OUTSIDER);
        finance.role = OrgRole::User;
        finance.teams.clear();
        assert_eq!(
            authorize(&finance, P::ViewChatInterface, &resource(On::Team), &ctx),
            Decision::Deny(DenyReason::NotTeamMember)
        );
        finance.all_teams = Some(TeamRole::Viewer);
        assert_eq!(
            authorize(&finance, P::ViewChatInterface, &resource(On::Team), &ctx),
            VIEWER_OK
        );
        assert_eq!(
            authorize(&finance, P::ViewAnalytics, &resource(On::Team), &ctx),
            VIEWER_OK
        );
        assert_eq!(
            authorize(&finance, P::EditChatInterface, &resource(On::Team), &ctx),
            VIEWER_NO
        );
        // Organization-level rows are the User's, whatever the team role.
        assert_eq!(
            authorize(&finance, P::ViewBilling, &resource(On::Org), &ctx),
            Decision::Deny(DenyReason::RoleLacksPermission {
                role: OrgRole::User
            })
        );
        // An explicit role counts where it is higher, and only there.
        finance.teams = vec![(team(), TeamRole::Admin)];
        assert_eq!(finance.team_role(team()), Some(TeamRole::Admin));
        assert_eq!(finance.team_role(other_team()), Some(TeamRole::Viewer));
        // Executives: Member in every team; an explicit Viewer role does not lower it.
        let mut exec = finance.clone();
        exec.all_teams = Some(TeamRole::Member);
        exec.teams = vec![(team(), TeamRole::Viewer)];
        assert_eq!(exec.team_role(team()), Some(TeamRole::Member));
        assert_eq!(
            authorize(&exec, P::CreateChatInterface, &resource(On::Team), &ctx),
            Decision::Allow(Grant::TeamMember)
        );
    }

    #[test]
    #[rustfmt::skip]
    fn deny_reasons_map_to_404_or_403() {
        use DenyReason as R;
        let (user, viewer, webhooks) = (OrgRole::User, TeamRole::Viewer, PlanFeature::Webhooks);
        // (reason, audit code, hides existence: answered 404 rather than 403)
        let table = [
            (R::CrossTenant,                                 "cross_tenant",               true),
            (R::NotTeamMember,                               "not_team_member",            true),
            (R::RoleLacksPermission { role: user },          "role_lacks_permission",      false),
            (R::TeamRoleLacksPermission { role: viewer },    "team_role_lacks_permission", false),
            (R::NotCreator,                                  "not_creator",                false),
            (R::DisabledBySetting { setting: EXPORT },       "disabled_by_setting",        false),
            (R::PlanLacksFeature { feature: webhooks },      "plan_lacks_feature",         false),
            (R::InteractiveOnly,                             "interactive_only",           false),
            (R::OutsideScimScope,                            "outside_scim_scope",         false),
        ];
        for (reason, code, hides) in table {
            assert_eq!(reason.code(), code, "{reason:?}");
            assert_eq!(reason.hides_existence(), hides, "{reason:?}");
            assert!(!reason.to_string().ends_with('.'), "{reason}");
        }
    }

    #[test]
    fn decisions_serialize_for_the_audit_log() {
        let deny = closed(DOMAINS);
        let json = serde_json::to_value(deny).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "decision": "deny",
                "reason": { "kind": "disabled_by_setting", "setting": "manage_domains" }
            })
        );
        assert_eq!(serde_json::from_value::<Decision>(json).unwrap(), deny);
        assert_eq!(
            deny.into_result(),
            Err(DenyReason::DisabledBySetting { setting: DOMAINS })
        );
        assert_eq!(OWNER_OK.into_result(), Ok(Grant::Owner));
    }
}
