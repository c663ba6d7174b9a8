//! Port implementations, one file per port family.

mod audit;
mod invitations;
mod mail;
mod members;
mod mfa;
mod tenancy;
mod webhooks;
mod workspace;

pub(crate) use webhooks::fan_out;
