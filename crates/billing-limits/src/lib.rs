//! # billing-limits
//!
//! Plans and their limits (the enterprise guide's "What's Included" table), the pure quota
//! decision every creation goes through, the plans side by side ([`catalogue`]), the
//! subscription lifecycle ([`subscription`]), the
//! payment port ([`payment`]), the rules of team credits ([`credits`]) and usage trends
//! ([`trend`]).
//!
//! ```
//! use billing_limits::{check_quota, Limit, Plan, PlanLimits, QuotaDecision};
//! let limits = PlanLimits::for_plan(Plan::Enterprise);
//! assert_eq!(check_quota(&limits, Limit::Members, 19, 1), QuotaDecision::Allowed);
//! assert!(matches!(check_quota(&limits, Limit::Members, 20, 1), QuotaDecision::Exceeded { .. }));
//! ```
#![deny(missing_docs)]

pub mod catalogue;
pub mod credits;
pub mod payment;
pub mod subscription;
pub mod trend;

use rbac_core::PlanFeatures;
use serde::{Deserialize, Serialize};

/// A subscription plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// One person, one of everything.
    Free,
    /// One person, more resources.
    Pro,
    /// Teams: 20 members, audit logs, RBAC, webhooks.
    Enterprise,
}

impl Plan {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Plan::Free, Plan::Pro, Plan::Enterprise]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// Which permission-gating features the plan includes.
    #[must_use]
    pub const fn features(self) -> PlanFeatures {
        match self {
            Plan::Enterprise => PlanFeatures::ENTERPRISE,
            Plan::Free | Plan::Pro => PlanFeatures::BASIC,
        }
    }
}

/// A countable thing a plan limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Team members (including the Owner and pending invitations).
    Members,
    /// Chat interfaces.
    ChatInterfaces,
    /// Knowledge bases.
    KnowledgeBases,
    /// Documents.
    Documents,
    /// Active API keys.
    ApiKeys,
    /// Custom domains.
    CustomDomains,
    /// API calls per calendar month (UTC).
    ApiCallsPerMonth,
    /// Storage in bytes.
    StorageBytes,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 8] = [
        Limit::Members,
        Limit::ChatInterfaces,
        Limit::KnowledgeBases,
        Limit::Documents,
        Limit::ApiKeys,
        Limit::CustomDomains,
        Limit::ApiCallsPerMonth,
        Limit::StorageBytes,
    ];

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::Members => "members",
            Limit::ChatInterfaces => "chat_interfaces",
            Limit::KnowledgeBases => "knowledge_bases",
            Limit::Documents => "documents",
            Limit::ApiKeys => "api_keys",
            Limit::CustomDomains => "custom_domains",
            Limit::ApiCallsPerMonth => "api_calls_per_month",
            Limit::StorageBytes => "storage_bytes",
        }
    }
}

const GB: u64 = 1024 * 1024 * 1024;

/// The limits that apply to one organization (`None` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLimits {
    /// The plan the limits come from.
    pub plan: Plan,
    /// Team members.
    pub members: Option<u64>,
    /// Chat interfaces.
    pub chat_interfaces: Option<u64>,
    /// Knowledge bases.
    pub knowledge_bases: Option<u64>,
    /// Documents.
    pub documents: Option<u64>,
    /// API keys.
    pub api_keys: Option<u64>,
    /// Custom domains.
    pub custom_domains: Option<u64>,
    /// API calls per month.
    pub api_calls_per_month: Option<u64>,
    /// Storage in bytes.
    pub storage_bytes: Option<u64>,
}

/// An organization's negotiated limits ("custom enterprise deals"), on top of its plan's:
/// each entry replaces one limit, `None` making it unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LimitOverrides(pub std::collections::BTreeMap<Limit, Option<u64>>);

impl LimitOverrides {
    /// `plan`'s limits with these overrides applied.
    #[must_use]
    pub fn apply(&self, mut limits: PlanLimits) -> PlanLimits {
        for (limit, value) in &self.0 {
            let slot = match limit {
                Limit::Members => &mut limits.members,
                Limit::ChatInterfaces => &mut limits.chat_interfaces,
                Limit::KnowledgeBases => &mut limits.knowledge_bases,
                Limit::Documents => &mut limits.documents,
                Limit::ApiKeys => &mut limits.api_keys,
                Limit::CustomDomains => &mut limits.custom_domains,
                Limit::ApiCallsPerMonth => &mut limits.api_calls_per_month,
                Limit::StorageBytes => &mut limits.storage_bytes,
            };
            *slot = *value;
        }
        limits
    }
}

impl PlanLimits {
    /// The guide's table. Enterprise's "increased limits" default to 10× Pro and are
    /// configurable per deployment and per organization.
    #[must_use]
    pub const fn for_plan(plan: Plan) -> Self {
        match plan {
            Plan::Free => Self {
                plan,
                members: Some(1),
                chat_interfaces: Some(1),
                knowledge_bases: Some(1),
                documents: Some(10),
                api_keys: Some(1),
                custom_domains: Some(0),
                api_calls_per_month: Some(1_000),
                storage_bytes: Some(GB),
            },
            Plan::Pro => Self {
                plan,
                members: Some(1),
                chat_interfaces: Some(20),
                knowledge_bases: Some(5),
                documents: Some(100),
                api_keys: Some(5),
                custom_domains: Some(3),
                api_calls_per_month: Some(10_000),
                storage_bytes: Some(10 * GB),
            },
            Plan::Enterprise => Self {
                plan,
                members: Some(20),
                chat_interfaces: Some(100),
                knowledge_bases: Some(50),
                documents: Some(1_000),
                api_keys: Some(50),
                custom_domains: None,
                api_calls_per_month: Some(100_000),
                storage_bytes: Some(100 * GB),
            },
        }
    }

    /// The limit for one countable, `None` if unlimited.
    #[must_use]
    pub const fn get(&self, limit: Limit) -> Option<u64> {
        match limit {
            Limit::Members => self.members,
            Limit::ChatInterfaces => self.chat_interfaces,
            Limit::KnowledgeBases => self.knowledge_bases,
            Limit::Documents => self.documents,
            Limit::ApiKeys => self.api_keys,
            Limit::CustomDomains => self.custom_domains,
            Limit::ApiCallsPerMonth => self.api_calls_per_month,
            Limit::StorageBytes => self.storage_bytes,
        }
    }

    /// Each limit the smaller of `self`'s and `now`'s (`None` being unlimited), naming `now`'s
    /// plan. A store checks a count against the limits a caller read at the start of its request
    /// and those in force when the count is taken: a downgrade committed in between is obeyed,
    /// and an upgrade in between applies from the next request.
    #[must_use]
    pub fn tightest(&self, now: &PlanLimits) -> PlanLimits {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        };
        PlanLimits {
            plan: now.plan,
            members: min(self.members, now.members),
            chat_interfaces: min(self.chat_interfaces, now.chat_interfaces),
            knowledge_bases: min(self.knowledge_bases, now.knowledge_bases),
            documents: min(self.documents, now.documents),
            api_keys: min(self.api_keys, now.api_keys),
            custom_domains: min(self.custom_domains, now.custom_domains),
            api_calls_per_month: min(self.api_calls_per_month, now.api_calls_per_month),
            storage_bytes: min(self.storage_bytes, now.storage_bytes),
        }
    }
}

impl PlanLimits {
    /// `plan`'s limits in this deployment: the guide's table ([`PlanLimits::for_plan`]) with the
    /// operator's changes ([`configure_deployment`]) applied.
    #[must_use]
    pub fn deployed(plan: Plan) -> Self {
        let base = Self::for_plan(plan);
        match deployment_lock().read() {
            Ok(d) => d
                .as_ref()
                .and_then(|d| d.plans.get(&plan))
                .map_or(base, |o| o.apply(base)),
            Err(_) => base,
        }
    }
}

/// A deployment's changes to the guide's limits ("higher" limits are the operator's to set)
/// and its usage-alert thresholds. Set once at start-up ([`configure_deployment`]); every
/// limit check and alert reads it. Organizations' own negotiated limits
/// ([`LimitOverrides`]) apply on top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    /// Per plan, the limits that differ from the guide's table.
    pub plans: std::collections::BTreeMap<Plan, LimitOverrides>,
    /// Usage-alert thresholds in percent (empty: the guide's 80 % and 100 %).
    pub alert_thresholds: Vec<u64>,
}

fn deployment_lock() -> &'static std::sync::RwLock<Option<Deployment>> {
    static DEPLOYMENT: std::sync::OnceLock<std::sync::RwLock<Option<Deployment>>> =
        std::sync::OnceLock::new();
    DEPLOYMENT.get_or_init(|| std::sync::RwLock::new(None))
}

/// Sets this process's deployment limits and alert thresholds (the server does it from its
/// configuration at start-up; an embedding service calls it once, or never for the guide's
/// table).
pub fn configure_deployment(d: Deployment) {
    if let Ok(mut slot) = deployment_lock().write() {
        *slot = Some(d);
    }
}

/// The usage-alert thresholds in force, ascending.
#[must_use]
pub fn alert_thresholds() -> Vec<u64> {
    let configured = deployment_lock()
        .read()
        .ok()
        .and_then(|d| d.as_ref().map(|d| d.alert_thresholds.clone()))
        .unwrap_or_default();
    let mut t = if configured.is_empty() {
        ALERT_THRESHOLDS.to_vec()
    } else {
        configured
    };
    t.sort_unstable();
    t.dedup();
    t
}

/// The outcome of a quota check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum QuotaDecision {
    /// Within the limit.
    Allowed,
    /// Would go over the limit.
    Exceeded {
        /// Which limit.
        limit: Limit,
        /// Its value.
        max: u64,
        /// Current use.
        used: u64,
        /// The plan.
        plan: Plan,
    },
}

/// Whether `used + adding` stays within the plan's limit.
#[must_use]
pub fn check_quota(limits: &PlanLimits, limit: Limit, used: u64, adding: u64) -> QuotaDecision {
    match limits.get(limit) {
        Some(max) if used.saturating_add(adding) > max => QuotaDecision::Exceeded {
            limit,
            max,
            used,
            plan: limits.plan,
        },
        _ => QuotaDecision::Allowed,
    }
}

/// Usage-alert thresholds, in percent of a limit (the guide's 80 % and 100 %).
pub const ALERT_THRESHOLDS: [u64; 2] = [80, 100];

/// The thresholds (percent of `max`) that a change of use from `before` to `after` crosses:
/// every `t` with `before < t % of max <= after`. One change can cross several (70 % → 120 %
/// crosses 80 and 100); an unlimited or zero limit has none.
#[must_use]
pub fn thresholds_crossed(before: u64, after: u64, max: u64, thresholds: &[u64]) -> Vec<u64> {
    if max == 0 || after <= before {
        return Vec::new();
    }
    let scaled = |v: u64| u128::from(v) * 100;
    thresholds
        .iter()
        .copied()
        .filter(|t| {
            let line = u128::from(*t) * u128::from(max);
            scaled(before) < line && line <= scaled(after)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_crossed_once_including_jumps() {
        let t = &ALERT_THRESHOLDS;
        assert_eq!(thresholds_crossed(799, 800, 1000, t), vec![80]);
        assert_eq!(thresholds_crossed(800, 801, 1000, t), Vec::<u64>::new());
        assert_eq!(thresholds_crossed(700, 1200, 1000, t), vec![80, 100]);
        assert_eq!(thresholds_crossed(999, 1000, 1000, t), vec![100]);
        assert_eq!(thresholds_crossed(1000, 1001, 1000, t), Vec::<u64>::new());
        assert_eq!(thresholds_crossed(0, 5, 0, t), Vec::<u64>::new());
        assert_eq!(thresholds_crossed(5, 3, 10, t), Vec::<u64>::new());
        // 80 % of 3 is 2.4: reached at 3, not at 2.
        assert_eq!(thresholds_crossed(1, 2, 3, t), Vec::<u64>::new());
        assert_eq!(thresholds_crossed(2, 3, 3, t), vec![80, 100]);
    }

    #[test]
    fn the_tightest_limits_take_each_smaller_one_and_name_the_plan_in_force() {
        let ent = PlanLimits::for_plan(Plan::Enterprise);
        let free = PlanLimits::for_plan(Plan::Free);
        // A downgrade since the caller read Enterprise's limits: Free's apply.
        assert_eq!(ent.tightest(&free), free);
        // An upgrade since the caller read Free's: still Free's numbers, under the new plan's name.
        assert_eq!(
            free.tightest(&ent),
            PlanLimits {
                plan: Plan::Enterprise,
                ..free
            }
        );
        // Unlimited on one side only: the other side's limit.
        let mut deal = ent;
        deal.members = None;
        deal.custom_domains = Some(7);
        let both = ent.tightest(&deal);
        assert_eq!((both.members, both.custom_domains), (Some(20), Some(7)));
        let mut open = deal;
        open.custom_domains = None;
        assert_eq!(
            ent.tightest(&open).custom_domains,
            None,
            "unlimited on both sides"
        );
    }

    #[test]
    fn guide_table_members() {
        assert_eq!(PlanLimits::for_plan(Plan::Free).members, Some(1));
        assert_eq!(PlanLimits::for_plan(Plan::Pro).members, Some(1));
        assert_eq!(PlanLimits::for_plan(Plan::Enterprise).members, Some(20));
        assert_eq!(PlanLimits::for_plan(Plan::Enterprise).custom_domains, None);
        assert_eq!(PlanLimits::for_plan(Plan::Free).custom_domains, Some(0));
    }

    #[test]
    fn quota_boundaries() {
        let free = PlanLimits::for_plan(Plan::Free);
        assert_eq!(
            check_quota(&free, Limit::Documents, 9, 1),
            QuotaDecision::Allowed
        );
        assert_eq!(
            check_quota(&free, Limit::Documents, 10, 1),
            QuotaDecision::Exceeded {
                limit: Limit::Documents,
                max: 10,
                used: 10,
                plan: Plan::Free
            }
        );
        assert!(matches!(
            check_quota(&free, Limit::CustomDomains, 0, 1),
            QuotaDecision::Exceeded { .. }
        ));
        let ent = PlanLimits::for_plan(Plan::Enterprise);
        assert_eq!(
            check_quota(&ent, Limit::CustomDomains, u64::MAX, 1),
            QuotaDecision::Allowed
        );
    }

    #[test]
    fn deployment_limits_change_the_table_and_thresholds() {
        // The only test in this crate that configures the process-wide deployment.
        assert_eq!(
            PlanLimits::deployed(Plan::Pro),
            PlanLimits::for_plan(Plan::Pro)
        );
        assert_eq!(alert_thresholds(), vec![80, 100]);
        let mut plans = std::collections::BTreeMap::new();
        plans.insert(
            Plan::Enterprise,
            LimitOverrides([(Limit::Members, Some(50)), (Limit::Documents, None)].into()),
        );
        configure_deployment(Deployment {
            plans,
            alert_thresholds: vec![100, 50, 90],
        });
        let e = PlanLimits::deployed(Plan::Enterprise);
        assert_eq!((e.members, e.documents), (Some(50), None));
        assert_eq!(
            e.chat_interfaces,
            Some(100),
            "others keep the guide's values"
        );
        assert_eq!(
            PlanLimits::deployed(Plan::Free),
            PlanLimits::for_plan(Plan::Free)
        );
        assert_eq!(alert_thresholds(), vec![50, 90, 100]);
        configure_deployment(Deployment::default());
        assert_eq!(alert_thresholds(), vec![80, 100]);
    }

    #[test]
    fn only_enterprise_has_gated_features() {
        assert!(Plan::Enterprise.features().audit_logs);
        assert!(!Plan::Pro.features().webhooks);
        assert_eq!(Plan::parse("pro"), Some(Plan::Pro));
        assert_eq!(Plan::parse("gold"), None);
    }
}
