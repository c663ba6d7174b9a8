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

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
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
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Medium,
        Priority::Low,
    ];

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Its promised first answer ([`RESPONSE_TIMES`]).
    #[must_use]
    pub fn response_time(self) -> ResponseTime {
        RESPONSE_TIMES[match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }]
    }

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

/// The guide's business hours: Monday to Friday, 9:00 to 17:00 CET, as clocks in Central Europe
/// show it (the tz database's `CET`: UTC+1 in winter, UTC+2 from the last Sunday of March to
/// the last Sunday of October), but for the support desk's closed days.
pub const BUSINESS_OPEN: u32 = 9;
/// When business hours end, CET.
pub const BUSINESS_CLOSE: u32 = 17;

/// The time zone of business hours.
pub const BUSINESS_ZONE: chrono_tz::Tz = chrono_tz::Tz::CET;

const _: () = assert!(BUSINESS_OPEN < BUSINESS_CLOSE && BUSINESS_CLOSE < 24);

/// The longest response time [`ResponseTime::due`] counts, in hours (about five years of
/// business hours): a longer one is counted as this.
pub const MAX_RESPONSE_HOURS: u32 = 10_000;

impl ResponseTime {
    /// When the first answer to a request made at `from` is due: `hours` later around the
    /// clock, or `hours` of business hours later (at most [`MAX_RESPONSE_HOURS`]), on weekdays
    /// that are not among the desk's `closed` days (public holidays, a company day off; dates
    /// in [`BUSINESS_ZONE`]).
    #[must_use]
    pub fn due(self, from: DateTime<Utc>, closed: &[NaiveDate]) -> DateTime<Utc> {
        let hours = Duration::hours(i64::from(self.hours.min(MAX_RESPONSE_HOURS)));
        if self.around_the_clock {
            return from + hours;
        }
        // 0:00, 9:00 and 17:00 exist once on every day in CET (its clocks change at 2:00 and
        // 3:00); `from` itself stands for a time that would not.
        let at = |d: NaiveDate, h: u32| {
            d.and_time(NaiveTime::from_hms_opt(h, 0, 0).unwrap_or(NaiveTime::MIN))
                .and_local_timezone(BUSINESS_ZONE)
                .earliest()
                .map_or(from, |t| t.with_timezone(&Utc))
        };
        let open_day = |d: NaiveDate| {
            !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !closed.contains(&d)
        };
        let mut left = hours;
        let mut now = from;
        loop {
            let day = now.with_timezone(&BUSINESS_ZONE).date_naive();
            let (open, close) = (at(day, BUSINESS_OPEN), at(day, BUSINESS_CLOSE));
            if open_day(day) && now < close {
                let start = now.max(open);
                if start + left <= close {
                    return start + left;
                }
                left -= close - start;
            }
            let next = at(day + Duration::days(1), 0);
            // (Never behind: a day's midnight that did not exist would stand for `from`.)
            now = next.max(now + Duration::hours(1));
        }
    }
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

/// The uptime `plan` commits to, in per mille (the guide's "SLA": none, 99 %, 99.9 %).
#[must_use]
pub const fn sla_uptime_per_mille(plan: Plan) -> Option<u32> {
    match plan {
        Plan::Free => None,
        Plan::Pro => Some(990),
        Plan::Enterprise => Some(999),
    }
}

/// Every plan, cheapest first, at `prices` (the list, or an organization's with its deal).
#[must_use]
pub fn catalogue(prices: &PriceList) -> Vec<PlanSheet> {
    [Plan::Free, Plan::Pro, Plan::Enterprise]
        .into_iter()
        .map(|plan| {
            let support = match plan {
                Plan::Free => Support::Email,
                Plan::Pro => Support::PriorityEmail,
                Plan::Enterprise => Support::PhoneAndDedicated,
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
                sla_uptime_per_mille: sla_uptime_per_mille(plan),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        // December 2026: the 7th is a Monday.
        Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
    }

    #[test]
    fn answers_are_due_around_the_clock_or_in_business_hours_cet() {
        let due = |p: Priority, at| p.response_time().due(at, &[]);
        // Critical: two hours, whenever (a Saturday night).
        assert_eq!(due(Priority::Critical, utc(12, 22, 30)), utc(13, 0, 30));
        // High, Monday 10:00 CET (09:00 UTC): four business hours, 14:00 CET.
        assert_eq!(due(Priority::High, utc(7, 9, 0)), utc(7, 13, 0));
        // High, Monday 15:00 CET: two hours that day, two the next morning, Tuesday 11:00 CET.
        assert_eq!(due(Priority::High, utc(7, 14, 0)), utc(8, 10, 0));
        // Medium, Friday 16:00 CET: one hour Friday, seven Monday: Monday 16:00 CET.
        assert_eq!(due(Priority::Medium, utc(11, 15, 0)), utc(14, 15, 0));
        // Low, Saturday: three business days from Monday 9:00 CET, Wednesday 17:00 CET.
        assert_eq!(due(Priority::Low, utc(12, 10, 0)), utc(16, 16, 0));
        // Before opening: counted from 9:00 CET.
        assert_eq!(due(Priority::High, utc(8, 5, 0)), utc(8, 12, 0));
        // Exactly at closing time: the next business morning.
        assert_eq!(due(Priority::High, utc(8, 16, 0)), utc(9, 12, 0));
        // Closed days: Christmas Eve and Christmas Day, a Thursday and a Friday. High on
        // Wednesday the 23rd at 16:00 CET: one hour that day, three on Monday the 28th.
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let closed = [day(24), day(25)];
        assert_eq!(
            Priority::High.response_time().due(utc(23, 15, 0), &closed),
            utc(28, 11, 0)
        );
        // Critical runs around the clock, closed days included.
        assert_eq!(
            Priority::Critical
                .response_time()
                .due(utc(24, 10, 0), &closed),
            utc(24, 12, 0)
        );
        assert_eq!(Priority::parse("medium"), Some(Priority::Medium));
    }

    #[test]
    fn business_hours_follow_central_european_summer_time() {
        use chrono::TimeZone;
        let at = |m: u32, d: u32, h: u32| Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap();
        let high = Priority::High.response_time();
        // Summer (CEST, UTC+2): Monday 15 June 2026, 9:00 CEST is 7:00 UTC; four hours later,
        // 13:00 CEST, 11:00 UTC.
        assert_eq!(high.due(at(6, 15, 6), &[]), at(6, 15, 11));
        // Friday 27 March 2026, 16:00 CET (15:00 UTC): one hour, then clocks go forward on
        // Sunday; Monday 30 March opens at 9:00 CEST (7:00 UTC): three more hours, 10:00 UTC.
        assert_eq!(high.due(at(3, 27, 15), &[]), at(3, 30, 10));
        // Friday 23 October 2026, 16:00 CEST (14:00 UTC): one hour, then clocks go back;
        // Monday 26 October opens at 9:00 CET (8:00 UTC): three more hours, 11:00 UTC.
        assert_eq!(high.due(at(10, 23, 14), &[]), at(10, 26, 11));
        // The low priority across a whole closed week and a weekend stays in business hours.
        let closed: Vec<NaiveDate> = (2..=6)
            .map(|d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
            .collect();
        // Friday 30 October 2026, 17:00 CET: Monday 9 November 9:00 CET (8:00 UTC) + 24 hours:
        // Wednesday 11 November 17:00 CET (16:00 UTC).
        assert_eq!(
            Priority::Low.response_time().due(at(10, 30, 16), &closed),
            at(11, 11, 16)
        );
        assert_eq!(Priority::parse("urgent"), None);
    }

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
