//! Port implementations, one file per port family.

mod audit;
mod billing;
mod housekeeping;
mod invitations;
mod keys;
mod mail;
mod members;
mod metering;
mod mfa;
mod password_reset;
mod privacy;
mod scim;
mod tenancy;
mod webhooks;
mod workspace;

pub use keys::ReencryptReport;
#[cfg(test)]
pub(crate) use tenancy::session_caller_statement;
pub(crate) use webhooks::fan_out;
