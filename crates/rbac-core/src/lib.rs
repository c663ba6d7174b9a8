//! # rbac-core
//!
//! Decides who may do what in an Axie Enterprise organization.
//!
//! The crate holds the enterprise guide's role table (Owner, Admin, User), the
//! team organization guide's team roles (Admin, Member, Viewer), the
//! feature-access settings that move a few permissions between "Admins only"
//! and "Admins + Users", and the role-management rules (one Owner, nobody
//! grants above their own role, Admins never touch the Owner).
//!
//! It deliberately knows nothing about HTTP, databases or the clock: the caller
//! loads the [`Subject`], the [`Resource`] and the [`Context`], and
//! [`authorize`] returns a [`Decision`] with a typed reason the audit log can
//! store. `docs/permissions.md` in the repository is the human-readable table.
//!
//! ```
//! use rbac_core::{authorize, Context, Credential, Decision, DenyReason, FeatureAccess,
//!     OrgId, OrgRole, Permission, PlanFeatures, Resource, Subject, TeamId, TeamRole, UserId};
//!
//! let org = OrgId::new();
//! let team = TeamId::new();
//! let lisa = Subject {
//!     user: UserId::new(),
//!     org,
//!     role: OrgRole::User,
//!     teams: vec![(team, TeamRole::Member)],
//!     all_teams: None,
//!     credential: Credential::Session,
//! };
//! let ctx = Context { access: FeatureAccess::default(), plan: PlanFeatures::ENTERPRISE };
//!
//! // Users create chat interfaces...
//! assert!(authorize(&lisa, Permission::CreateChatInterface, &Resource::team(org, team), &ctx).is_allowed());
//! // ...but billing is the Owner's alone.
//! assert_eq!(
//!     authorize(&lisa, Permission::ViewBilling, &Resource::org(org), &ctx),
//!     Decision::Deny(DenyReason::RoleLacksPermission { role: OrgRole::User }),
//! );
//! // Another organization's resources do not exist for Lisa.
//! assert_eq!(
//!     authorize(&lisa, Permission::ViewChatInterface, &Resource::team(OrgId::new(), team), &ctx),
//!     Decision::Deny(DenyReason::CrossTenant),
//! );
//! ```
#![deny(missing_docs)]

mod decide;
mod ids;
mod model;
mod roles;

pub use decide::{Decision, DenyReason, Grant, authorize};
pub use ids::{
    ApiKeyId, ConsentId, CreditOperationId, EndpointId, EventId, IdParseError, InvitationId, OrgId,
    ResourceId, ScimTokenId, SessionId, TeamId, UserId,
};
pub use model::{
    Audience, Context, Credential, FeatureAccess, FeatureSetting, OrgRole, Permission, PlanFeature,
    PlanFeatures, Resource, Subject, TeamRole,
};
pub use roles::{
    RoleRuleError, check_invite_role, check_invite_role_of, check_ownership_transfer,
    check_removal, check_removal_by, check_role_change,
};
