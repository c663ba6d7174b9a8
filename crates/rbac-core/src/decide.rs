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
                write!(f, "the `{}` role does not include this permission", role.as_str())
            }
            DenyReason::TeamRoleLacksPermission { role } => {
                write!(f, "the team role `{}` does not include this permission", role.as_str())
            }
            DenyReason::NotCreator => f.write_str("users may do this only on resources they created"),
            DenyReason::DisabledBySetting { setting } => {
                write!(f, "the `{}` setting reserves this for admins", setting_name(*setting))
            }
            DenyReason::PlanLacksFeature { feature } => {
                write!(f, "the plan does not include `{}`", feature_name(*feature))
            }
            DenyReason::InteractiveOnly => f.write_str("API keys cannot perform this action"),
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

/// Permissions an API key can never exercise, whatever its creator's role.
const fn interactive_only(p: Permission) -> bool {
    matches!(
        p,
        Permission::ManageBilling
            | Permission::TransferOwnership
            | Permission::DeleteOrganization
            | Permission::CreateApiKey
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
    if subject.credential == Credential::ApiKey && interactive_only(action) {
        return Decision::Deny(DenyReason::InteractiveOnly);
    }
    if let Some(feature) = plan_gate(action) {
        let included = match feature {
            PlanFeature::AuditLogs => ctx.plan.audit_logs,
            PlanFeature::AdvancedRbac => ctx.plan.advanced_rbac,
            PlanFeature::Webhooks => ctx.plan.webhooks,
        };
        if !included {
            return Decision::Deny(DenyReason::PlanLacksFeature { feature });
        }
    }
    match subject.role {
        OrgRole::Owner => Decision::Allow(Grant::Owner),
        OrgRole::Admin if owner_only(action) => {
            Decision::Deny(DenyReason::RoleLacksPermission { role: OrgRole::Admin })
        }
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
            _ => Decision::Deny(DenyReason::RoleLacksPermission { role: OrgRole::User }),
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
        TeamRole::Viewer => {
            Decision::Deny(DenyReason::TeamRoleLacksPermission { role: TeamRole::Viewer })
        }
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
            _ => Decision::Deny(DenyReason::TeamRoleLacksPermission { role: TeamRole::Member }),
        },
    }
}
