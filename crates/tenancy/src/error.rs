//! Errors of the tenancy crate.

use billing_limits::{Limit, Plan};
use rbac_core::{DenyReason, RoleRuleError};

pub use audit::StoreError;

/// Errors of organization, member, account, session and API-key operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenancyError {
    /// No valid credential.
    #[error("authentication required")]
    Unauthenticated,
    /// A live session that an Owner or Admin signed out of this organization (or of every one
    /// where the person is active): valid elsewhere, refused here until they sign in again.
    #[error("you were signed out of this organization; sign in again")]
    SignedOut,
    /// A session was to be opened with the password alone, but the person switched a second
    /// factor on meanwhile ([`crate::AccountStore::create_session`]): the sign-in asks for it.
    #[error("a second factor is now required to sign in")]
    SecondFactorEnabled,
    /// Wrong email or password (the same for unknown accounts).
    #[error("the email or password is wrong")]
    BadCredentials,
    /// The thing does not exist, or belongs to another tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Authorization refused it, and the caller may not even learn that it exists (another
    /// team's resource, another tenant's): answered exactly as [`TenancyError::NotFound`] (the
    /// same status and words), but, unlike a missing thing, a refusal to record
    /// ([`TenancyError::refusal_reason`]).
    #[error("{0} not found")]
    Hidden(&'static str, DenyReason),
    /// Authorization refused it.
    #[error("forbidden: {0}")]
    Forbidden(DenyReason),
    /// A role-management rule refused it.
    #[error("{0}")]
    RoleRule(#[from] RoleRuleError),
    /// It clashes with existing state (duplicate email, second owner, …).
    #[error("{0}")]
    Conflict(String),
    /// A concurrent write changed the record between its read and this write (a version check
    /// failed): reading it again and retrying may succeed. Unlike [`TenancyError::Conflict`],
    /// never a duplicate value. Returned by the SCIM store's versioned writes.
    #[error("{0}")]
    Changed(String),
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// What it would change is archived (read-only until restored): an archived team takes
    /// nobody new. Unlike [`TenancyError::Conflict`], never a duplicate value.
    #[error("{0}")]
    Archived(String),
    /// A plan limit would be exceeded.
    #[error("the {plan:?} plan allows {max} {}; {used} in use", limit.as_str())]
    LimitReached {
        /// Which limit.
        limit: Limit,
        /// Its value.
        max: u64,
        /// Current use.
        used: u64,
        /// The plan.
        plan: Plan,
    },
    /// None of the person's organizations admits the client address (their IP allowlists).
    #[error("requests from {0} are not allowed by the IP allowlists of your organizations")]
    IpNotAllowed(String),
    /// The person's membership is deactivated (by an administrator or the identity provider).
    #[error("your membership of this organization is deactivated")]
    Deactivated,
    /// The organization's plan admits only its Owner (after a downgrade other members lose
    /// access until it is upgraded again).
    #[error("the {} plan admits only the Owner; ask the Owner to upgrade", .0.as_str())]
    PlanExcludesMembers(Plan),
    /// The payment provider refused the charge; nothing changed.
    #[error(transparent)]
    Payment(#[from] billing_limits::payment::PaymentError),
    /// A subscription change is not possible.
    #[error(transparent)]
    Subscription(#[from] billing_limits::subscription::SubscriptionError),
    /// A credit rule refused it (insufficient credits, allocation over 100 %, key reused).
    #[error(transparent)]
    Credit(#[from] billing_limits::credits::CreditError),
    /// Too many failed logins: password logins for the account are locked until then.
    #[error("too many failed logins; try again after {0}")]
    Throttled(chrono::DateTime<chrono::Utc>),
    /// The invitation was used, revoked or has expired.
    #[error("the invitation is {}", .0.as_str())]
    InvitationUnusable(crate::invitations::InvitationStatus),
    /// The password breaks the policy.
    #[error(transparent)]
    Password(#[from] security_policy::PasswordError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns a quota decision into `Ok` or [`TenancyError::LimitReached`]; stores call it
/// inside the transaction that counts and inserts.
///
/// # Errors
/// [`TenancyError::LimitReached`] when the decision is `Exceeded`.
pub fn enforce_quota(decision: billing_limits::QuotaDecision) -> Result<(), TenancyError> {
    match decision {
        billing_limits::QuotaDecision::Allowed => Ok(()),
        billing_limits::QuotaDecision::Exceeded {
            limit,
            max,
            used,
            plan,
        } => Err(TenancyError::LimitReached {
            limit,
            max,
            used,
            plan,
        }),
    }
}

impl TenancyError {
    /// Whether the answer is "not found": the thing is missing, or hidden from the caller
    /// ([`TenancyError::Hidden`]).
    #[must_use]
    pub const fn is_not_found(&self) -> bool {
        matches!(self, TenancyError::NotFound(_) | TenancyError::Hidden(..))
    }

    /// The same error, naming the thing that was not found as `what` (a more general word,
    /// so that the answer does not tell what kind of thing the id named); other errors
    /// unchanged.
    #[must_use]
    pub fn not_found_as(self, what: &'static str) -> Self {
        match self {
            TenancyError::NotFound(_) => TenancyError::NotFound(what),
            TenancyError::Hidden(_, reason) => TenancyError::Hidden(what, reason),
            other => other,
        }
    }

    /// The reason an authorization refusal is recorded with (`access.denied`), or `None` when
    /// the error is not one (a missing resource, bad input or a storage failure is not).
    #[must_use]
    pub const fn refusal_reason(&self) -> Option<&'static str> {
        match self {
            TenancyError::Forbidden(r) | TenancyError::Hidden(_, r) => Some(r.code()),
            TenancyError::RoleRule(r) => Some(r.code()),
            _ => None,
        }
    }

    /// Why a member's own credential was refused in an organization they belong to (or were
    /// signed out of), as recorded in its audit log: `signed_out`, `member_deactivated`,
    /// `plan_excludes_members`; `None` for every other error.
    #[must_use]
    pub const fn member_refusal(&self) -> Option<&'static str> {
        match self {
            TenancyError::SignedOut => Some("signed_out"),
            TenancyError::Deactivated => Some("member_deactivated"),
            TenancyError::PlanExcludesMembers(_) => Some("plan_excludes_members"),
            _ => None,
        }
    }
}

impl From<audit::AuditError> for TenancyError {
    fn from(e: audit::AuditError) -> Self {
        match e {
            audit::AuditError::Invalid(m) => TenancyError::Invalid(m),
            audit::AuditError::Store(s) => TenancyError::Store(s),
            audit::AuditError::Tampered(b) => {
                TenancyError::Conflict(format!("the audit chain is broken: {b}"))
            }
            other => TenancyError::Store(StoreError::msg(other.to_string())),
        }
    }
}
