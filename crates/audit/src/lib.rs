//! # audit
//!
//! A complete, tamper-evident audit log for Axie Enterprise organizations.
//!
//! Every record goes into its organization's hash chain (see [`chain`]); signed
//! [`Checkpoint`]s of the chain head catch truncation and rewrites by anyone
//! without the key. Someone who can also delete the checkpoints from the
//! database could rewrite the log and chain it anew, which then verifies with no
//! checkpoint (`VerifiedChain::checkpoint_seq` is `None`): keep each
//! organization's newest checkpoint outside the database too (a
//! [`CheckpointWitness`], verified through [`Witnessed`]).
//! The crate also defines the [`Journal`] through which every state change in
//! the other crates records its audit records and domain events, so the storage
//! adapter can commit them in the same transaction as the change.
//!
//! It knows nothing about HTTP or SeaORM, and never reads the clock: times are
//! arguments.
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use audit::{Actor, AuditAction, AuditStore, Journal, MemoryAuditStore, NewAuditEvent, Target};
//! use chrono::Utc;
//! use rbac_core::OrgId;
//!
//! # tokio_test_block_on(async {
//! let store = MemoryAuditStore::new();
//! let org = OrgId::new();
//! let event = NewAuditEvent::new(org, Utc::now(), Actor::user("usr_1", "Sarah"),
//!     AuditAction::ChatInterfaceCreated, Target::new("chat_interface", "res_1", "Customer Support"));
//! store.append(Journal::record(event)).await.unwrap();
//! let report = audit::verify_chain(&store, org, b"checkpoint key").await.unwrap().unwrap();
//! assert_eq!(report.records, 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! # }
//! ```
#![deny(missing_docs)]

mod action;
pub mod chain;
#[cfg(feature = "memory")]
pub mod contract;
mod error;
mod events;
pub mod export;
mod mail;
#[cfg(feature = "memory")]
mod memory;
mod model;
#[cfg(feature = "pdf")]
pub mod pdf;
mod query;
mod render;
mod store;
mod witness;

pub use action::AuditAction;
pub use chain::{
    Anchor, ChainBreak, ChainLink, ChainVerifier, Checkpoint, GENESIS_HEX, HashedFields,
    VerifiedChain,
};
pub use error::{AuditError, StoreError};
pub use events::{DomainEvent, EventKind, Journal, OutboundMail};
pub use mail::{MAX_MAIL_ATTEMPTS, MailOutbox, QueuedMail, kept_mail_error, without_nul};
#[cfg(feature = "memory")]
pub use memory::MemoryAuditStore;
pub use model::{
    Actor, ActorKind, AuditEvent, ERASED, MAX_METADATA_BYTES, Metadata, NewAuditEvent, Outcome,
    RequestContext, SCHEMA_VERSION, Target, erase_annotations, erase_annotations_of,
    truncate_to_micros,
};
pub use query::{
    ActionFilter, AuditQuery, DatePreset, HIDDEN_REFUSAL_REASONS, MAX_PAGE, SeenBy,
    hidden_from_its_actor,
};
pub use render::render_line;
pub use store::{
    AuditStore, MAX_ACTORS, PruneJournal, WALK_PAGE, check_actors, for_each_page,
    for_each_page_by_any, prune_before, search_by_any, take_checkpoint, take_checkpoint_recorded,
    take_checkpoint_rotating, verification_metadata, verify_chain,
};
#[cfg(feature = "memory")]
pub use witness::MemoryWitness;
pub use witness::{CheckpointWitness, Witnessed};
