//! # rbac-bench
//!
//! Times `rbac_core::authorize` against the same policy written for two
//! general-purpose engines, cedar-policy 4.x and casbin 2.x, on a seeded
//! fixture of organizations, teams and 100,000 requests.
//!
//! This crate is its own Cargo workspace (the main workspace excludes `bench/`),
//! so neither engine is ever a dependency of the product.
//!
//! A diagnostic group, `rbac-core-sequential`, gives `authorize` the same inputs
//! copied into one vector in request order, which separates its own cost from
//! the cache misses of random lookups into a 10,000-organization fixture.
//!
//! Before anything is timed, [`agreement::assert_agreement`] runs every request
//! through all three engines and panics on the first disagreement, so the
//! figures compare engines that give the same answers.
//!
//! ## What each engine receives
//!
//! Every engine gets the same fixture; what differs is how much of a request
//! is worked out in Rust before the engine sees it.
//! Request construction is outside the timed loop for all three engines.
//!
//! * **rbac-core** gets its normal inputs: a prebuilt [`rbac_core::Subject`]
//!   (user, organization, organization role, explicit team roles, credential),
//!   the [`rbac_core::Permission`], a [`rbac_core::Resource`] (organization,
//!   team, creator) and the organization's [`rbac_core::Context`] (raw stored
//!   feature-access settings plus plan features). Nothing is precomputed.
//! * **cedar-policy** gets a prebuilt `Request` (principal `User`, action,
//!   resource `Resource`) with the context record `{ api_key: Bool }`, and an
//!   entity store holding the action groups, every `Org` (plan features and raw stored settings),
//!   `User` (organization and role; parents are its team-role groups), `Team`
//!   (its organization and its three role groups) and `Resource` (organization,
//!   optional team, optional creator). Nothing else is precomputed: the
//!   policies derive tenancy, the effective team role (least privileged wins),
//!   creator checks, the plan gates and the effective settings (including the
//!   fall-back to the defaults without `advanced_rbac`) from the entities.
//!   See [`cedar_engine::POLICIES`].
//! * **casbin** gets the request tuple `(sub, dom, act, res, env)`:
//!   `sub` the user id, `dom` the user's organization, `act` the permission,
//!   `res` the map `{org, team, creator}` (empty strings when absent), and
//!   `env`, which is precomputed per organization and credential:
//!   `api_key`, the three plan features, and the four **effective** settings
//!   as booleans ("Admins + Users"), that is after applying the defaults when
//!   the plan lacks `advanced_rbac`. Organization roles come from `g` (RBAC with
//!   domains, domain = organization) and team roles from `g2` (domain = team);
//!   the matcher does the tenant check, the creator comparison, the plan and
//!   setting lookups, the session requirement, and the "no team means Member"
//!   rule. casbin does not implement "least privileged role wins" for a team
//!   listed twice; the fixture never lists a team twice for one user.
//!   See [`casbin_engine::MODEL`] and [`casbin_engine::policy_lines`].

pub mod agreement;
pub mod casbin_engine;
pub mod cedar_engine;
pub mod fixture;
mod rng;

/// The fixed seed of every fixture the benchmark builds.
pub const SEED: u64 = 0x00A1_E5EE_D0BA_5EED;

/// Requests per fixture.
pub const REQUESTS: usize = 100_000;
