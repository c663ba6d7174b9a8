//! End-to-end suite: each test starts the real server on a random port against a
//! fresh database and drives it over HTTP. Every test runs on SQLite, and on
//! PostgreSQL when `AXIE_TEST_POSTGRES_URL` is set (as `.ci/run` does).

#![allow(unreachable_pub, reason = "helpers are shared between test modules")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod helpers;

mod api_keys;
mod audit_log;
mod authorization;
mod billing;
mod foundation;
mod fuzzing;
mod operations;
mod privacy;
mod scale_out;
mod scim;
mod security;
mod team_management;
mod usage;
mod webhooks;
mod workspace;
