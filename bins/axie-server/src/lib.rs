//! # axie-server
//!
//! The reference server: it wires the domain crates to HTTP (actix-web) and to
//! storage (`store-sea`). Handlers parse input into domain requests, call a
//! crate, and map the result; the rules live in the crates.
#![allow(
    unreachable_pub,
    reason = "a binary crate's library half; everything is internal"
)]

pub mod admin;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod deliver;
pub mod demo;
pub mod error;
pub mod extract;
pub mod keys;
pub mod mailer;
pub mod middleware;
pub mod prom;
pub mod routes;
pub mod scim;
pub mod sms;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod witness;
pub mod workers;
pub mod workspace_io;

pub use config::Settings;
pub use startup::{Application, StartupError};
pub use state::Clock;
