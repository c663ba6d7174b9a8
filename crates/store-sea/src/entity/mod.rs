//! SeaORM entities, one file per table. Times are UTC microseconds since the epoch (`i64`),
//! which round-trip exactly on SQLite and PostgreSQL; ids are their prefixed text form.

pub mod api_key;
pub mod asset;
pub mod asset_transfer;
pub mod audit_anchor;
pub mod audit_checkpoint;
pub mod audit_event;
pub mod audit_head;
pub mod bulk_preview;
pub mod consent;
pub mod invitation;
pub mod login_challenge;
pub mod login_throttle;
pub mod mail;
pub mod membership;
pub mod organization;
pub mod outbox_event;
pub mod ownership_transfer;
pub mod recovery_code;
pub mod scim_group;
pub mod scim_token;
pub mod scim_user;
pub mod session;
pub mod sms_outbox;
pub mod team;
pub mod team_member;
pub mod usage_alert;
pub mod usage_daily;
pub mod usage_monthly;
pub mod user;
pub mod user_mfa;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
