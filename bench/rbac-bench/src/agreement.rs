//! The check that runs before anything is timed: all three engines give the same answer to every request.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rbac_core::authorize;

use crate::casbin_engine::CasbinEngine;
use crate::cedar_engine::CedarEngine;
use crate::fixture::{Fixture, Kind};

/// Counts from a successful agreement check.
#[derive(Debug, Default)]
pub struct Agreement {
    /// Requests checked.
    pub checked: usize,
    /// Requests all three engines allowed.
    pub allowed: usize,
    /// Per kind: (requests, allowed).
    pub by_kind: BTreeMap<String, (usize, usize)>,
    /// Per rbac-core deny reason code: requests.
    pub by_reason: BTreeMap<&'static str, usize>,
    /// Cedar evaluation errors (policies skipped because evaluating them failed); expected 0.
    pub cedar_errors: usize,
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "all three engines agree on {} requests ({} allowed, {} denied)",
            self.checked,
            self.allowed,
            self.checked - self.allowed
        )?;
        writeln!(f, "  cedar evaluation errors: {}", self.cedar_errors)?;
        for (kind, (n, a)) in &self.by_kind {
            writeln!(f, "  {kind:<14} {n:>6} requests, {a:>6} allowed")?;
        }
        for (reason, n) in &self.by_reason {
            writeln!(f, "  deny {reason:<27} {n:>6}")?;
        }
        Ok(())
    }
}

/// Runs every request through rbac-core, cedar-policy and casbin.
///
/// # Panics
/// On any disagreement, listing up to 20 of them.
#[must_use]
pub fn assert_agreement(fx: &Fixture, cedar: &CedarEngine, casbin: &CasbinEngine) -> Agreement {
    let casbin_args = casbin.args(fx);
    let mut report = Agreement::default();
    let mut mismatches = 0usize;
    let mut detail = String::new();
    for (i, r) in fx.requests.iter().enumerate() {
        let decision = authorize(
            &fx.subjects[r.subject as usize],
            r.perm,
            &fx.resources[r.target as usize],
            &fx.contexts[r.tenant as usize],
        );
        let core = decision.is_allowed();
        let (ced, errors) = cedar.check(i);
        report.cedar_errors += errors;
        let cas = casbin.decide(casbin_args[i]);
        if core != ced || core != cas {
            mismatches += 1;
            if mismatches <= 20 {
                let u = &fx.users[r.user as usize];
                let t = &fx.targets[r.target as usize];
                let team_role = t
                    .team
                    .and_then(|team| u.teams.iter().find(|x| x.0 == team).map(|x| x.1));
                let _ = writeln!(
                    detail,
                    "#{i} {kind:?}: {role:?} (team role {team_role:?}, api_key {api}) {perm} on \
                     {target:?} (own tenant {own}, creator is caller {creator}), ctx {ctx:?}: \
                     rbac-core {decision:?}, cedar {ced} {errors:?}, casbin {cas}",
                    kind = r.kind,
                    role = u.role,
                    api = r.api_key,
                    perm = r.perm.as_str(),
                    target = t,
                    own = t.tenant == u.tenant,
                    creator = t.creator == Some(r.user as usize),
                    ctx = fx.contexts[r.tenant as usize],
                    errors = cedar.errors(i),
                );
            }
            continue;
        }
        report.checked += 1;
        let entry = report.by_kind.entry(kind_name(r.kind)).or_default();
        entry.0 += 1;
        if core {
            report.allowed += 1;
            entry.1 += 1;
        } else if let rbac_core::Decision::Deny(reason) = decision {
            *report.by_reason.entry(reason.code()).or_default() += 1;
        }
    }
    assert!(
        mismatches == 0,
        "{mismatches} of {} decisions disagree:\n{detail}",
        fx.requests.len()
    );
    report
}

fn kind_name(k: Kind) -> String {
    format!("{k:?}")
}
