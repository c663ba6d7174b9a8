//! # webhooks
//!
//! Signed, retried outgoing webhooks: the guide's payload shape and headers, HMAC-SHA256
//! signatures over `{timestamp}.{body}` (plus Standard Webhooks signatures), the retry
//! schedule (0, 2, 4, 8, 16 s), SSRF rules for destinations, endpoint management and the
//! storage port of the delivery queue. A receiver-side [`verify`] is included for Rust users.
//!
//! The crate does no HTTP itself: the server's worker sends requests and reports outcomes.
//!
//! ```
//! use webhooks::{SigningSecret, axie_signature, verify};
//! let secret = SigningSecret::generate();
//! let body = br#"{"event":"user.created"}"#;
//! let sig = axie_signature(&secret, 1_732_294_800, body);
//! assert!(verify(&[secret], "1732294800", &sig, body, 1_732_294_860).is_ok());
//! ```
#![deny(missing_docs)]

mod catalogue;
#[cfg(feature = "memory")]
pub mod contract;
mod error;
#[cfg(feature = "memory")]
mod memory;
mod model;
mod plan;
mod policy;
mod service;
mod sign;
mod store;
pub mod template;

pub use catalogue::{EventType, event_types};
pub use error::{StoreError, WebhookError};
#[cfg(feature = "memory")]
pub use memory::MemoryWebhookStore;
pub use model::{Attempt, Delivery, DeliveryStatus, Endpoint, payload, queued_as};
pub use plan::goes_out;
pub use policy::{
    AttemptVerdict, MAX_RETRY_DELAY_MS, RetryPolicy, WebhookUrl, destination_allowed, judge,
    port_allowed,
};
pub use service::{
    Acting, EndpointInput, MAX_ENDPOINTS_PER_ORG, USER_AGENT, create, delete, headers, requeue,
    rotate, secret_context, send_test, signing_secrets, too_many_endpoints, update, url_context,
};
pub use sign::{
    SigningSecret, TOLERANCE_SECS, VerifyError, axie_signature, standard_signature, verify,
};
pub use store::{
    AttemptOutcome, DisableRule, EndpointChange, MAX_CLAIMED_PER_ENDPOINT, MAX_CLAIMED_PER_ORG,
    StoredSecrets, WebhookStore,
};
