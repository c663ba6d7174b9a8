//! # tenancy
//!
//! Organizations (enterprises), their members and teams, accounts, sessions and
//! API keys: the operations, with their rules, behind storage ports.
//!
//! Every operation inside an organization takes a [`Caller`] (the authenticated
//! principal resolved in one organization) and starts with a permission check
//! through `rbac-core` (per-person and system operations are the exceptions,
//! listed in `docs/ARCHITECTURE.md`); every state change hands its audit records and domain events to the store
//! in a `Journal`, which commits them with the change. The crate knows nothing
//! about HTTP or SeaORM and never reads the clock.
#![deny(missing_docs)]

pub mod accounts;
pub mod api_keys;
pub mod assets;
pub mod billing;
pub mod bulk;
mod caller;
#[cfg(feature = "memory")]
pub mod contract;
pub mod credits;
mod error;
pub mod housekeeping;
pub mod invitations;
pub mod mail_secrets;
pub mod me;
pub mod members;
#[cfg(feature = "memory")]
mod memory;
pub mod metering;
pub mod mfa;
mod model;
pub mod notices;
pub mod orgs;
pub mod password_reset;
pub mod pipeline;
pub mod privacy;
pub mod scim;
pub mod security;
mod store;
pub mod support;
pub mod teams;
pub mod uptime;

pub use caller::{Caller, Principal};
pub use error::{StoreError, TenancyError, enforce_quota};
#[cfg(feature = "memory")]
pub use memory::MemoryTenancyStore;
pub use model::{
    ApiKey, CallerMembership, CompanyProfile, Email, KeyScope, Member, Membership, Organization,
    SecuritySettings, Session, SignOut, Team, User, valid_lines, valid_name,
};
pub use store::{
    AccountStore, ApiKeyStore, BulkStore, InvitationStore, MembershipStore, OrgStore, SessionProof,
    SessionsEndedJournal, SessionsEvictedJournal, TeamRoleJournal, TenancyStore, WorkspaceStore,
    each_session,
};
