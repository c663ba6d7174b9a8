//! The plans side by side, as the enterprise guide's "What's Included" table sets them out:
//! limits, features, prices, support and the uptime commitment of each.
//!
//! The guide's "Support" row is one cell short ("Priority Email | Phone + Dedicated" under
//! three plans); with "Phone: Direct line (Enterprise only)" elsewhere in the guide, it reads
//! as Pro's priority email and Enterprise's phone and dedicated contact, Free having the
//! ordinary email channel every customer has.
//!
//! ```
//! use billing_limits::catalogue::{catalogue, Support};
//! use billing_limits::subscription::PriceList;
//! use billing_limits::Plan;
//! let plans = catalogue(&PriceList::default());
//! let enterprise = plans.iter().find(|p| p.plan == Plan::Enterprise).unwrap();
//! assert_eq!(enterprise.support, Support::PhoneAndDedicated);
//! assert_eq!(enterprise.sla_uptime_per_mille, Some(999));
//! assert!(enterprise.features.audit_logs && enterprise.features.webhooks);
//! assert_eq!(enterprise.response_times.len(), 4);
//! ```

use rbac_core::PlanFeatures;
use serde::Serialize;

use crate::subscription::{BillingCycle, PriceList};
use crate::{Plan, PlanLimits};

/// The support a plan comes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// The support address, answered in turn.
    Email,
    /// Email answered first.
    PriorityEmail,
    /// A direct phone line, a dedicated channel and an account manager, with response times
    /// by priority ([`RESPONSE_TIMES`]).
    PhoneAndDedicated,
}

impl Support {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Support::Email => "email",
            Support::PriorityEmail => "priority_email",
            Support::PhoneAndDedicated => "phone_and_dedicated",
        }
    }
}

/// How urgent a support request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Production down.
    Critical,
    /// Badly impaired.
    High,
    /// Impaired.
    Medium,
    /// A question.
    Low,
}

impl Priority {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

/// The first answer promised for a priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResponseTime {
    /// The priority.
    pub priority: Priority,
    /// Hours until the first answer.
    pub hours: u32,
    /// Whether the hours run around the clock (`24/7`), or in business hours only.
    pub around_the_clock: bool,
}

/// The guide's "Priority Support" table: Enterprise's response times.
pub const RESPONSE_TIMES: [ResponseTime; 4] = [
    ResponseTime {
        priority: Priority::Critical,
        hours: 2,
        around_the_clock: true,
    },
    ResponseTime {
        priority: Priority::High,
        hours: 4,
        around_the_clock: false,
    },
    ResponseTime {
        priority: Priority::Medium,
        hours: 8,
        around_the_clock: false,
    },
    ResponseTime {
        priority: Priority::Low,
        hours: 24,
        around_the_clock: false,
    },
];

/// One plan as offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSheet {
    /// The plan.
    pub plan: Plan,
    /// Its limits in this deployment ([`PlanLimits::deployed`]).
    pub limits: PlanLimits,
    /// The features it includes.
    pub features: PlanFeatures,
    /// Its price per month on the monthly cycle, in the smallest currency unit.
    pub monthly_cents: u64,
    /// Its price per year on the annual cycle (twelve months less 20 %).
    pub annual_cents: u64,
    /// The support it comes with.
    pub support: Support,
    /// Response times by priority (Enterprise's; empty for the others).
    pub response_times: Vec<ResponseTime>,
    /// The uptime committed to, in per mille (990: 99 %); `None`: no commitment.
    pub sla_uptime_per_mille: Option<u32>,
}

/// Every plan, cheapest first, at `prices` (the list, or an organization's with its deal).
#[must_use]
pub fn catalogue(prices: &PriceList) -> Vec<PlanSheet> {
    [Plan::Free, Plan::Pro, Plan::Enterprise]
        .into_iter()
        .map(|plan| {
            let (support, sla) = match plan {
                Plan::Free => (Support::Email, None),
                Plan::Pro => (Support::PriorityEmail, Some(990)),
                Plan::Enterprise => (Support::PhoneAndDedicated, Some(999)),
            };
            PlanSheet {
                plan,
                limits: PlanLimits::deployed(plan),
                features: plan.features(),
                monthly_cents: prices.price_cents(plan, BillingCycle::Monthly),
                annual_cents: prices.price_cents(plan, BillingCycle::Annual),
                support,
                response_times: if support == Support::PhoneAndDedicated {
                    RESPONSE_TIMES.to_vec()
                } else {
                    Vec::new()
                },
                sla_uptime_per_mille: sla,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_table_cheapest_first() {
        let prices = PriceList {
            currency: "SEK".into(),
            pro_monthly_cents: 1_000,
            enterprise_monthly_cents: 10_000,
            credit_cents: 1,
        };
        let plans = catalogue(&prices);
        let order: Vec<Plan> = plans.iter().map(|p| p.plan).collect();
        assert_eq!(order, [Plan::Free, Plan::Pro, Plan::Enterprise]);
        let [free, pro, enterprise] = [&plans[0], &plans[1], &plans[2]];
        assert_eq!((free.monthly_cents, free.annual_cents), (0, 0));
        assert_eq!((pro.monthly_cents, pro.annual_cents), (1_000, 9_600));
        assert_eq!(enterprise.annual_cents, 96_000);
        assert_eq!(
            (
                free.sla_uptime_per_mille,
                pro.sla_uptime_per_mille,
                enterprise.sla_uptime_per_mille
            ),
            (None, Some(990), Some(999))
        );
        assert_eq!(
            (free.support, pro.support, enterprise.support),
            (
                Support::Email,
                Support::PriorityEmail,
                Support::PhoneAndDedicated
            )
        );
        assert!(free.response_times.is_empty() && pro.response_times.is_empty());
        let critical = enterprise.response_times[0];
        assert_eq!(
            (critical.priority, critical.hours, critical.around_the_clock),
            (Priority::Critical, 2, true)
        );
        assert!(
            enterprise.response_times[1..]
                .iter()
                .all(|r| !r.around_the_clock)
        );
        assert_eq!(free.features, PlanFeatures::BASIC);
        assert_eq!(enterprise.features, PlanFeatures::ENTERPRISE);
        // The deployment's limits (the guide's for Pro: the one test that configures others
        // here changes Enterprise's alone, for a moment).
        assert_eq!(pro.limits, PlanLimits::for_plan(Plan::Pro));
        assert_eq!(free.limits, PlanLimits::for_plan(Plan::Free));
    }
}
