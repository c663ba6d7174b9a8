//! Roles, permissions and the inputs of an authorization decision.

use serde::{Deserialize, Serialize};

use crate::ids::{OrgId, TeamId, UserId};

/// A member's role in an organization (the enterprise guide's Owner, Admin, User).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Team member: creates and uses chat interfaces, uploads documents, views analytics.
    User,
    /// Team manager: manages members and all features, but not billing or ownership.
    Admin,
    /// Exactly one per organization: everything, including billing.
    Owner,
}

impl OrgRole {
    /// Every role, lowest first.
    pub const ALL: [OrgRole; 3] = [OrgRole::User, OrgRole::Admin, OrgRole::Owner];

    /// The wire name (`owner`, `admin`, `user`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Admin => "admin",
            OrgRole::User => "user",
        }
    }

    /// Parses a wire name, case-insensitively.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Owner or Admin.
    #[must_use]
    pub const fn is_admin(self) -> bool {
        matches!(self, OrgRole::Owner | OrgRole::Admin)
    }
}

/// A member's role in one team (the team organization guide's Admin, Member, View only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// View only: sees and uses the team's resources, creates and changes nothing.
    Viewer,
    /// Works in the team with the rights of an organization User.
    Member,
    /// Administers this team: its members and all of its resources.
    Admin,
}

impl TeamRole {
    /// Every team role, lowest first.
    pub const ALL: [TeamRole; 3] = [TeamRole::Viewer, TeamRole::Member, TeamRole::Admin];

    /// The wire name (`admin`, `member`, `viewer`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TeamRole::Admin => "admin",
            TeamRole::Member => "member",
            TeamRole::Viewer => "viewer",
        }
    }

    /// Parses a wire name, case-insensitively.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Everything a caller may attempt. One variant per action; never a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    // Billing & Subscription
    /// See plan, invoices and billing details.
    ViewBilling,
    /// Change plan, payment details; buy credits.
    ManageBilling,
    // Team members
    /// List the organization's members.
    ViewMembers,
    /// Invite new members (single or bulk).
    InviteMembers,
    /// Remove a member.
    RemoveMembers,
    /// Promote or demote between Admin and User.
    ChangeRoles,
    /// Propose an ownership transfer.
    TransferOwnership,
    // Chat interfaces
    /// See a chat interface.
    ViewChatInterface,
    /// Use (talk to) a chat interface.
    UseChatInterface,
    /// Create a chat interface.
    CreateChatInterface,
    /// Edit or delete a chat interface.
    EditChatInterface,
    // Knowledge bases
    /// See a knowledge base and its documents.
    ViewKnowledgeBase,
    /// Create a knowledge base.
    CreateKnowledgeBase,
    /// Edit or delete a knowledge base (Limited for Users: their own).
    ManageKnowledgeBase,
    /// Upload a document to a knowledge base.
    UploadDocument,
    /// Delete a document (Limited for Users: their own).
    DeleteDocument,
    // Analytics
    /// View analytics.
    ViewAnalytics,
    // API keys
    /// Create an API key (Limited for Users: only when the setting allows).
    CreateApiKey,
    /// See an API key's metadata (Limited for Users: their own).
    ViewApiKey,
    /// Revoke an API key (Limited for Users: their own).
    RevokeApiKey,
    // Domains
    /// See custom domains.
    ViewDomains,
    /// Add, verify or remove custom domains.
    ManageDomains,
    // Audit and data
    /// Read the audit log.
    ViewAuditLog,
    /// Export data (audit log exports, usage reports).
    ExportData,
    // Enterprise settings
    /// Read enterprise settings (the company's name, plan and profile).
    ViewSettings,
    /// Read the security policy (2FA, sessions, IP allowlist, blocked countries, passwords)
    /// and check an address against it.
    ViewSecurityPolicy,
    /// Change company information.
    UpdateSettings,
    /// Change the security policy (2FA, sessions, IP allowlist, passwords).
    UpdateSecurityPolicy,
    /// Change the feature-access settings.
    UpdateFeatureAccess,
    /// Create, rotate and remove webhook endpoints.
    ManageWebhooks,
    /// Delete the whole organization.
    DeleteOrganization,
    // Teams
    /// See a team and its members.
    ViewTeam,
    /// Create a team.
    CreateTeam,
    /// Rename, archive or delete a team.
    ManageTeam,
    /// Add, remove or change members of a team.
    ManageTeamMembers,
    /// Move an asset out of or into a team.
    TransferAsset,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Permission; 36] = [
        Permission::ViewBilling,
        Permission::ManageBilling,
        Permission::ViewMembers,
        Permission::InviteMembers,
        Permission::RemoveMembers,
        Permission::ChangeRoles,
        Permission::TransferOwnership,
        Permission::ViewChatInterface,
        Permission::UseChatInterface,
        Permission::CreateChatInterface,
        Permission::EditChatInterface,
        Permission::ViewKnowledgeBase,
        Permission::CreateKnowledgeBase,
        Permission::ManageKnowledgeBase,
        Permission::UploadDocument,
        Permission::DeleteDocument,
        Permission::ViewAnalytics,
        Permission::CreateApiKey,
        Permission::ViewApiKey,
        Permission::RevokeApiKey,
        Permission::ViewDomains,
        Permission::ManageDomains,
        Permission::ViewAuditLog,
        Permission::ExportData,
        Permission::ViewSettings,
        Permission::ViewSecurityPolicy,
        Permission::UpdateSettings,
        Permission::UpdateSecurityPolicy,
        Permission::UpdateFeatureAccess,
        Permission::ManageWebhooks,
        Permission::DeleteOrganization,
        Permission::ViewTeam,
        Permission::CreateTeam,
        Permission::ManageTeam,
        Permission::ManageTeamMembers,
        Permission::TransferAsset,
    ];

    /// The snake_case wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        // Derived from serde so the two can never disagree.
        PERMISSION_NAMES[self as usize]
    }

    /// Parses the snake_case wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the permission only reads.
    #[must_use]
    pub const fn is_read_only(self) -> bool {
        matches!(
            self,
            Permission::ViewBilling
                | Permission::ViewMembers
                | Permission::ViewChatInterface
                | Permission::UseChatInterface
                | Permission::ViewKnowledgeBase
                | Permission::ViewAnalytics
                | Permission::ViewApiKey
                | Permission::ViewDomains
                | Permission::ViewSettings
                | Permission::ViewSecurityPolicy
                | Permission::ViewTeam
        )
    }
}

const PERMISSION_NAMES: [&str; 36] = [
    "view_billing",
    "manage_billing",
    "view_members",
    "invite_members",
    "remove_members",
    "change_roles",
    "transfer_ownership",
    "view_chat_interface",
    "use_chat_interface",
    "create_chat_interface",
    "edit_chat_interface",
    "view_knowledge_base",
    "create_knowledge_base",
    "manage_knowledge_base",
    "upload_document",
    "delete_document",
    "view_analytics",
    "create_api_key",
    "view_api_key",
    "revoke_api_key",
    "view_domains",
    "manage_domains",
    "view_audit_log",
    "export_data",
    "view_settings",
    "view_security_policy",
    "update_settings",
    "update_security_policy",
    "update_feature_access",
    "manage_webhooks",
    "delete_organization",
    "view_team",
    "create_team",
    "manage_team",
    "manage_team_members",
    "transfer_asset",
];

/// Who a feature-access setting lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Owner and Admins only.
    #[default]
    AdminsOnly,
    /// Owner, Admins and Users.
    AdminsAndUsers,
}

/// The enterprise guide's "Feature Access" settings.
///
/// Each one moves exactly one permission between Admins only and Admins + Users.
/// Nothing here can grant billing, ownership or enterprise settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureAccess {
    /// Who can create API keys (guide default: Admins + Users).
    pub create_api_keys: Audience,
    /// Who can manage domains (guide default: Admins only).
    pub manage_domains: Audience,
    /// Who can view audit logs (guide default: Admins only).
    pub view_audit_logs: Audience,
    /// Who can export data (guide default: Admins only).
    pub export_data: Audience,
}

impl Default for FeatureAccess {
    fn default() -> Self {
        Self {
            create_api_keys: Audience::AdminsAndUsers,
            manage_domains: Audience::AdminsOnly,
            view_audit_logs: Audience::AdminsOnly,
            export_data: Audience::AdminsOnly,
        }
    }
}

/// Names one feature-access setting, for deny reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSetting {
    /// `create_api_keys`.
    CreateApiKeys,
    /// `manage_domains`.
    ManageDomains,
    /// `view_audit_logs`.
    ViewAuditLogs,
    /// `export_data`.
    ExportData,
}

/// Plan features that gate permissions (decided by `billing-limits`, passed in here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanFeatures {
    /// Audit log access.
    pub audit_logs: bool,
    /// Feature-access settings ("advanced RBAC"); without it the defaults apply.
    pub advanced_rbac: bool,
    /// Outgoing webhooks.
    pub webhooks: bool,
    /// SCIM provisioning from an identity provider.
    pub scim: bool,
}

impl PlanFeatures {
    /// Everything enabled (the Enterprise plan).
    pub const ENTERPRISE: PlanFeatures = PlanFeatures {
        audit_logs: true,
        advanced_rbac: true,
        webhooks: true,
        scim: true,
    };
    /// Nothing enabled (Free and Pro).
    pub const BASIC: PlanFeatures = PlanFeatures {
        audit_logs: false,
        advanced_rbac: false,
        webhooks: false,
        scim: false,
    };
}

/// Names a plan feature, for deny reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanFeature {
    /// Audit log access.
    AuditLogs,
    /// Feature-access settings.
    AdvancedRbac,
    /// Outgoing webhooks.
    Webhooks,
    /// SCIM provisioning.
    Scim,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// An interactive login session.
    Session,
    /// An API key; acts with its creator's current rights, minus the interactive-only actions.
    ApiKey,
    /// A SCIM provisioning token: an Admin's rights, limited to provisioning members and teams.
    Scim,
}

/// The caller, as far as authorization is concerned.
///
/// The server builds it from the live membership on every request, so a role
/// change applies to the very next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The person acting (for an API key: its creator).
    pub user: UserId,
    /// The organization the caller is a member of.
    pub org: OrgId,
    /// The caller's role in `org`.
    pub role: OrgRole,
    /// The caller's explicit team roles in `org`.
    pub teams: Vec<(TeamId, TeamRole)>,
    /// The caller's role in every team of `org`, those created later included (the guide's
    /// "view only, all teams" for Finance, "Member (all teams)" for executives); an explicit
    /// role in a team counts where it is higher.
    pub all_teams: Option<TeamRole>,
    /// How the caller authenticated.
    pub credential: Credential,
}

impl Subject {
    /// The caller's role in `team`, if any: the explicit one or the all-teams one, whichever
    /// is higher.
    ///
    /// Should `teams` list the same team twice, the least privileged of those wins,
    /// so the answer never depends on the order of the vector.
    #[must_use]
    pub fn team_role(&self, team: TeamId) -> Option<TeamRole> {
        let explicit = self
            .teams
            .iter()
            .filter(|(t, _)| *t == team)
            .map(|(_, r)| *r)
            .min();
        explicit.max(self.all_teams)
    }

    /// Whether the caller has a role in every team (see [`Subject::all_teams`]).
    #[must_use]
    pub fn in_every_team(&self) -> bool {
        self.all_teams.is_some()
    }

    /// The subject confined to one team, as a team's API key acts: in `team`, the role it has
    /// there (the Owner and Admins, who administer every team, as its Admin); no other team;
    /// and outside teams no more than an organization User. It never has a permission the
    /// subject lacks (`a_team_key_never_exceeds_its_creator` in the property tests).
    #[must_use]
    pub fn confined_to(&self, team: TeamId) -> Self {
        let in_team = if self.role.is_admin() {
            Some(TeamRole::Admin)
        } else {
            self.team_role(team)
        };
        Self {
            user: self.user,
            org: self.org,
            role: OrgRole::User,
            teams: in_team.map(|r| vec![(team, r)]).unwrap_or_default(),
            all_teams: None,
            credential: self.credential,
        }
    }
}

/// What the action is performed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resource {
    /// The owning organization; a mismatch with the subject's is always denied.
    pub org: OrgId,
    /// The owning team, for team-scoped resources; `None` for organization-level ones.
    pub team: Option<TeamId>,
    /// Who created the resource, when that matters (the "Limited" cells).
    pub creator: Option<UserId>,
}

impl Resource {
    /// An organization-level target (settings, members, audit log, billing).
    #[must_use]
    pub const fn org(org: OrgId) -> Self {
        Self {
            org,
            team: None,
            creator: None,
        }
    }

    /// A team-level target without a creator (for example "create in this team").
    #[must_use]
    pub const fn team(org: OrgId, team: TeamId) -> Self {
        Self {
            org,
            team: Some(team),
            creator: None,
        }
    }

    /// An existing team resource with its creator.
    #[must_use]
    pub const fn owned(org: OrgId, team: TeamId, creator: UserId) -> Self {
        Self {
            org,
            team: Some(team),
            creator: Some(creator),
        }
    }
}

/// Organization-wide inputs of a decision, loaded by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The organization's feature-access settings.
    pub access: FeatureAccess,
    /// What the organization's plan includes.
    pub plan: PlanFeatures,
}

impl Context {
    /// The settings that apply: without advanced RBAC on the plan, the defaults.
    #[must_use]
    pub fn effective_access(&self) -> FeatureAccess {
        if self.plan.advanced_rbac {
            self.access
        } else {
            FeatureAccess::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_match_serde() {
        for p in Permission::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
    }

    #[test]
    fn all_lists_each_variant_in_order() {
        for (i, p) in Permission::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(OrgRole::parse(" Admin "), Some(OrgRole::Admin));
        assert_eq!(OrgRole::parse("OWNER"), Some(OrgRole::Owner));
        assert_eq!(OrgRole::parse("root"), None);
        assert_eq!(TeamRole::parse("Viewer"), Some(TeamRole::Viewer));
    }
}
