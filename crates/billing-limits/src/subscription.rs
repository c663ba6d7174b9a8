//! The subscription lifecycle: billing cycles and prices, the 14-day Enterprise trial, upgrades,
//! downgrades and renewals, decided as pure transitions (the caller charges and stores them).
//!
//! ```
//! use billing_limits::subscription::{BillingCycle, Change, PriceList, Subscription, transition};
//! use billing_limits::Plan;
//! let now = chrono::Utc::now();
//! let prices = PriceList::default();
//! let t = transition(&Subscription::new(Plan::Free), Change::Subscribe { plan: Plan::Pro, cycle: BillingCycle::Annual }, &prices, now).unwrap();
//! // Annual is 20 % cheaper than twelve months.
//! assert_eq!(t.charge_cents, Some(prices.pro_monthly_cents * 12 * 8 / 10));
//! assert_eq!(t.next.plan, Plan::Pro);
//! ```

use chrono::{DateTime, Datelike as _, Duration, Months, Utc};
use serde::{Deserialize, Serialize};

use crate::Plan;

/// How long the Enterprise trial lasts.
pub const TRIAL_DAYS: i64 = 14;

/// How long after its period ended a renewal whose charge fails is tried again: then the
/// subscription lapses to Free ([`Change::Lapse`]), so that an unpaid plan does not stay in
/// force for ever.
pub const RENEWAL_GRACE_DAYS: i64 = 14;

/// When a renewal whose charge failed is tried again, in days after the end of the period:
/// then once more at [`Subscription::lapses_at`], where a last failure lapses it.
pub const RENEWAL_RETRY_DAYS: [i64; 3] = [1, 3, 7];

/// How often a paid plan is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingCycle {
    /// Every calendar month; cancel anytime.
    Monthly,
    /// Every twelve months, 20 % cheaper than twelve monthly payments.
    Annual,
}

impl BillingCycle {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            BillingCycle::Monthly => "monthly",
            BillingCycle::Annual => "annual",
        }
    }

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [BillingCycle::Monthly, BillingCycle::Annual]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    /// Months in one period.
    const fn months(self) -> u32 {
        match self {
            BillingCycle::Monthly => 1,
            BillingCycle::Annual => 12,
        }
    }

    /// The end of a period that starts at `start`.
    #[must_use]
    pub fn period_end(self, start: DateTime<Utc>) -> DateTime<Utc> {
        self.next_end(start, start)
    }

    /// The end of the `k`-th period counted from `anchor` (`anchor` itself for 0).
    fn nth_end(self, anchor: DateTime<Utc>, k: u32) -> Option<DateTime<Utc>> {
        k.checked_mul(self.months())
            .and_then(|m| anchor.checked_add_months(Months::new(m)))
    }

    /// A period count from `anchor` a little before the one in force at `at` (at least `floor`),
    /// from the calendar months between them.
    fn periods_before(self, anchor: DateTime<Utc>, at: DateTime<Utc>, floor: u32) -> u32 {
        let months = (i64::from(at.year()) - i64::from(anchor.year())) * 12
            + i64::from(at.month0())
            - i64::from(anchor.month0());
        u32::try_from(months / i64::from(self.months()) - 1)
            .unwrap_or(0)
            .max(floor)
    }

    /// The end of the period in force at `after`, periods counted from `anchor`: the first of
    /// one, two, … cycles after `anchor` that is later than `after`. Counting every period
    /// from one anchor keeps the day of the month: a month bought on the 31st ends on the
    /// 28th of February and on the 31st of March, not on the 28th ever after.
    #[must_use]
    pub fn next_end(self, anchor: DateTime<Utc>, after: DateTime<Utc>) -> DateTime<Utc> {
        let mut k = self.periods_before(anchor, after, 1);
        loop {
            match self.nth_end(anchor, k) {
                Some(end) if end > after => return end,
                Some(_) => k += 1,
                None => return DateTime::<Utc>::MAX_UTC,
            }
        }
    }

    /// The start of the period that ends at `end`, periods counted from `anchor`; `None` when
    /// `end` is not the end of one.
    fn start_of(self, anchor: DateTime<Utc>, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut k = self.periods_before(anchor, end, 0);
        loop {
            let start = self.nth_end(anchor, k)?;
            match self.nth_end(anchor, k + 1)? {
                e if e == end => return Some(start),
                e if e > end => return None,
                _ => k += 1,
            }
        }
    }
}

/// The deployment's prices, in the smallest currency unit (cents). Enterprise pricing is
/// negotiated, so operators set it per deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriceList {
    /// ISO 4217 currency code.
    pub currency: String,
    /// Pro, per month on the monthly cycle.
    pub pro_monthly_cents: u64,
    /// Enterprise, per month on the monthly cycle.
    pub enterprise_monthly_cents: u64,
    /// One team credit.
    pub credit_cents: u64,
}

impl Default for PriceList {
    fn default() -> Self {
        Self {
            currency: "EUR".into(),
            pro_monthly_cents: 2_900,
            enterprise_monthly_cents: 49_900,
            credit_cents: 1,
        }
    }
}

/// The highest monthly plan price a list may hold, in the smallest currency unit (ten million
/// euros a month): with it, no price or proration overflows.
pub const MAX_MONTHLY_CENTS: u64 = 1_000_000_000;

/// The highest price of one team credit (ten thousand euros): with it, the largest purchase
/// ([`crate::credits::MAX_AMOUNT`] credits) has a price that does not overflow.
pub const MAX_CREDIT_CENTS: u64 = 1_000_000;

/// A price list a deployment cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` is at most {max} (it is {value})")]
pub struct PriceTooHigh {
    /// The price's name.
    pub field: &'static str,
    /// Its bound.
    pub max: u64,
    /// What was given.
    pub value: u64,
}

impl PriceList {
    /// Checks the prices against [`MAX_MONTHLY_CENTS`] and [`MAX_CREDIT_CENTS`], within which
    /// [`PriceList::price_cents`] and [`PriceList::credits_cents`] are exact.
    ///
    /// # Errors
    /// [`PriceTooHigh`] naming the first price over its bound.
    pub fn validate(&self) -> Result<(), PriceTooHigh> {
        for (field, value, max) in [
            (
                "pro_monthly_cents",
                self.pro_monthly_cents,
                MAX_MONTHLY_CENTS,
            ),
            (
                "enterprise_monthly_cents",
                self.enterprise_monthly_cents,
                MAX_MONTHLY_CENTS,
            ),
            ("credit_cents", self.credit_cents, MAX_CREDIT_CENTS),
        ] {
            if value > max {
                return Err(PriceTooHigh { field, max, value });
            }
        }
        Ok(())
    }

    /// What one period of `plan` on `cycle` costs: annual is twelve months less 20 % (exact
    /// for a validated list).
    #[must_use]
    pub fn price_cents(&self, plan: Plan, cycle: BillingCycle) -> u64 {
        let monthly = match plan {
            Plan::Free => 0,
            Plan::Pro => self.pro_monthly_cents,
            Plan::Enterprise => self.enterprise_monthly_cents,
        };
        match cycle {
            BillingCycle::Monthly => monthly,
            BillingCycle::Annual => monthly.saturating_mul(12).saturating_mul(8) / 10,
        }
    }

    /// This list as one organization pays it: with `deal`'s monthly price for its plan (a
    /// deal for Free, which [`PriceDeal::new`] refuses, changes nothing).
    #[must_use]
    pub fn with_deal(&self, deal: Option<&PriceDeal>) -> PriceList {
        let mut prices = self.clone();
        match deal {
            Some(PriceDeal {
                plan: Plan::Pro,
                monthly_cents,
            }) => prices.pro_monthly_cents = (*monthly_cents).min(MAX_MONTHLY_CENTS),
            Some(PriceDeal {
                plan: Plan::Enterprise,
                monthly_cents,
            }) => prices.enterprise_monthly_cents = (*monthly_cents).min(MAX_MONTHLY_CENTS),
            Some(PriceDeal {
                plan: Plan::Free, ..
            })
            | None => {}
        }
        prices
    }

    /// What `credits` team credits cost (exact for a validated list and at most
    /// [`crate::credits::MAX_AMOUNT`] credits; beyond, it saturates rather than wraps).
    #[must_use]
    pub fn credits_cents(&self, credits: u64) -> u64 {
        credits.saturating_mul(self.credit_cents)
    }
}

/// A monthly price agreed with one organization for one paid plan (the guide's "Enterprise
/// pricing is customized based on your needs"): it replaces the list's monthly price of that
/// plan for that organization ([`PriceList::with_deal`]), the annual price following from it
/// as from the list's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceDeal {
    /// The plan it prices (Pro or Enterprise).
    pub plan: Plan,
    /// Its price per month on the monthly cycle, in the list's currency's smallest unit.
    pub monthly_cents: u64,
}

/// A price deal that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceDealError {
    /// Free has no price.
    #[error("the Free plan has no price to agree")]
    FreePlan,
    /// Over [`MAX_MONTHLY_CENTS`].
    #[error(transparent)]
    TooHigh(#[from] PriceTooHigh),
}

impl PriceDeal {
    /// A deal for `plan` at `monthly_cents` a month.
    ///
    /// # Errors
    /// [`PriceDealError`] for Free or a price over [`MAX_MONTHLY_CENTS`].
    pub fn new(plan: Plan, monthly_cents: u64) -> Result<Self, PriceDealError> {
        if plan == Plan::Free {
            return Err(PriceDealError::FreePlan);
        }
        if monthly_cents > MAX_MONTHLY_CENTS {
            return Err(PriceTooHigh {
                field: "monthly_cents",
                max: MAX_MONTHLY_CENTS,
                value: monthly_cents,
            }
            .into());
        }
        Ok(Self {
            plan,
            monthly_cents,
        })
    }
}

/// Whether the subscription is paid or a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// On the plan (Free, or paid for the current period).
    Active,
    /// On the Enterprise trial until `trial_ends_at`.
    Trialing,
}

impl SubscriptionStatus {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Trialing => "trialing",
        }
    }

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [SubscriptionStatus::Active, SubscriptionStatus::Trialing]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// An organization's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The plan in force (Enterprise during a trial).
    pub plan: Plan,
    /// Active or trialing.
    pub status: SubscriptionStatus,
    /// The paid plan's billing cycle (`None` on Free).
    pub cycle: Option<BillingCycle>,
    /// When the paid period ends and renews (`None` on Free).
    pub period_end: Option<DateTime<Utc>>,
    /// When the trial ends (while trialing).
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Whether the organization has had its trial (one per organization).
    pub trial_used: bool,
    /// The plan to return to when the trial ends.
    pub plan_before_trial: Option<Plan>,
    /// The time paid periods are counted from (`None` on Free): the *n*-th period ends *n*
    /// cycles after it, so that renewals keep the day of the month it fell on
    /// ([`BillingCycle::next_end`]).
    #[serde(default)]
    pub anchor: Option<DateTime<Utc>>,
    /// When a renewal whose charge failed is tried next (`None` unless one failed): see
    /// [`Subscription::renewal_failed`].
    #[serde(default)]
    pub renewal_retry_at: Option<DateTime<Utc>>,
    /// The paid plan was cancelled: it stays in force until `period_end`, is not renewed, and
    /// then gives way to Free ([`Change::EndCancelled`]). Subscribing to it again before then
    /// withdraws the cancellation.
    #[serde(default)]
    pub cancel_at_period_end: bool,
}

impl Subscription {
    /// A subscription to `plan` with nothing paid yet (a new organization, or one an operator set).
    #[must_use]
    pub const fn new(plan: Plan) -> Self {
        Self {
            plan,
            status: SubscriptionStatus::Active,
            cycle: None,
            period_end: None,
            trial_ends_at: None,
            trial_used: false,
            plan_before_trial: None,
            anchor: None,
            renewal_retry_at: None,
            cancel_at_period_end: false,
        }
    }

    /// What is left of the paid period at `now`, in cents: the period's price (at the current
    /// price list) in proportion to the time left in it, to the second (rounded down). A change
    /// to another paid plan is charged that much less; a trial (free) and Free leave nothing, and
    /// what is left beyond the new plan's price is not paid back.
    ///
    /// The period's start is the anchor's period before `period_end`. Without an anchor
    /// (subscriptions stored before there was one) it is the latest time from which the cycle
    /// ends at `period_end` (a month from Jan 28, 29, 30 or 31 all end on Feb 28; Jan 31 is
    /// taken), so that such a period is measured a few days short at worst, in the customer's
    /// favour.
    #[must_use]
    pub fn unused_cents(&self, prices: &PriceList, now: DateTime<Utc>) -> u64 {
        let paid = match self.status {
            SubscriptionStatus::Active => self.plan,
            SubscriptionStatus::Trialing => self.plan_before_trial.unwrap_or(Plan::Free),
        };
        let (Some(cycle), Some(end)) = (self.cycle, self.period_end) else {
            return 0;
        };
        if paid == Plan::Free || end <= now {
            return 0;
        }
        let months = Months::new(cycle.months());
        let anchored = self.anchor.and_then(|a| cycle.start_of(a, end));
        let Some(start) = anchored.or_else(|| {
            let earliest = end.checked_sub_months(months)?;
            Some(
                (0..=3)
                    .rev()
                    .map(|d| earliest + Duration::days(d))
                    .find(|s| s.checked_add_months(months) == Some(end))
                    .unwrap_or(earliest),
            )
        }) else {
            return 0;
        };
        let length = (end - start).num_seconds().max(1);
        let left = (end - now).num_seconds().clamp(0, length);
        let price = u128::from(prices.price_cents(paid, cycle));
        let unused = price * u128::from(left.unsigned_abs()) / u128::from(length.unsigned_abs());
        u64::try_from(unused).unwrap_or(u64::MAX)
    }

    /// When a renewal that could not be charged lapses: the end of the paid period plus
    /// [`RENEWAL_GRACE_DAYS`] (`None` without a paid period).
    #[must_use]
    pub fn lapses_at(&self) -> Option<DateTime<Utc>> {
        self.period_end.map(|end| {
            end.checked_add_signed(Duration::days(RENEWAL_GRACE_DAYS))
                .unwrap_or(end)
        })
    }

    /// Whether the paid period ended by `now` and its renewal is not paid (due, or waiting to
    /// be tried again).
    #[must_use]
    pub fn renewal_unpaid(&self, now: DateTime<Utc>) -> bool {
        self.status == SubscriptionStatus::Active
            && !self.cancel_at_period_end
            && self.plan != Plan::Free
            && self.cycle.is_some()
            && self.period_end.is_some_and(|end| end <= now)
    }

    /// When the renewal unpaid at `now` lapses to Free ([`Self::lapses_at`]); `None` while
    /// nothing is unpaid.
    #[must_use]
    pub fn unpaid_lapses_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.lapses_at().filter(|_| self.renewal_unpaid(now))
    }

    /// The change that is due at `now`, if any: the end of a trial, or a renewal (one whose
    /// charge failed when its next try comes, [`Subscription::renewal_retry_at`]).
    #[must_use]
    pub fn due(&self, now: DateTime<Utc>) -> Option<Change> {
        match self.status {
            SubscriptionStatus::Trialing => self
                .trial_ends_at
                .filter(|t| *t <= now)
                .map(|_| Change::EndTrial),
            SubscriptionStatus::Active if self.cancel_at_period_end => self
                .period_end
                .filter(|end| *end <= now)
                .map(|_| Change::EndCancelled),
            SubscriptionStatus::Active => (self.renewal_unpaid(now)
                && self.renewal_retry_at.is_none_or(|r| r <= now))
            .then_some(Change::Renew),
        }
    }

    /// The subscription after the renewal tried at `now` could not be charged: the same, to be
    /// tried again [`RENEWAL_RETRY_DAYS`] after the end of the period and last at
    /// [`Subscription::lapses_at`]. `None` when no renewal is unpaid, or when the grace period
    /// is over: then it lapses ([`Change::Lapse`]).
    #[must_use]
    pub fn renewal_failed(&self, now: DateTime<Utc>) -> Option<Subscription> {
        let (end, lapses) = (self.period_end?, self.lapses_at()?);
        if !self.renewal_unpaid(now) || now >= lapses {
            return None;
        }
        let next = RENEWAL_RETRY_DAYS
            .iter()
            .filter_map(|d| end.checked_add_signed(Duration::days(*d)))
            .chain([lapses])
            .find(|t| *t > now)?;
        Some(Subscription {
            renewal_retry_at: Some(next),
            ..self.clone()
        })
    }
}

/// A requested or due change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Move to `plan` (Free cancels the paid plan; a paid plan starts a new period now).
    Subscribe {
        /// The plan.
        plan: Plan,
        /// Its billing cycle (ignored for Free).
        cycle: BillingCycle,
    },
    /// Start the 14-day Enterprise trial.
    StartTrial,
    /// The trial ended: back to the plan before it.
    EndTrial,
    /// The paid period ended: bill the next one.
    Renew,
    /// The paid period ended and its renewal could not be charged until
    /// [`Subscription::lapses_at`]: back to Free, unbilled.
    Lapse,
    /// The period of a cancelled paid plan ended ([`Subscription::cancel_at_period_end`]):
    /// back to Free, unbilled.
    EndCancelled,
}

impl Change {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Change::Subscribe { .. } => "subscribe",
            Change::StartTrial => "trial_started",
            Change::EndTrial => "trial_ended",
            Change::Renew => "renewed",
            Change::Lapse => "lapsed",
            Change::EndCancelled => "cancellation_ended",
        }
    }
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// Already on this plan and cycle.
    #[error("the organization is already on the {} plan", .0.as_str())]
    Unchanged(Plan),
    /// The organization had its trial.
    #[error("the Enterprise trial can be used once per organization")]
    TrialUsed,
    /// A trial while on a paid Enterprise plan, or a due change that is not due.
    #[error("{0}")]
    NotApplicable(&'static str),
    /// The paid plan is cancelled already; it ends with its period.
    #[error("the {} plan is already cancelled; it ends on {}", .0.as_str(), .1.format("%Y-%m-%d"))]
    AlreadyCancelled(Plan, DateTime<Utc>),
}

/// The result of a change: the next state, and what to charge for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The subscription after the change.
    pub next: Subscription,
    /// The amount to charge now, if any.
    pub charge_cents: Option<u64>,
    /// What the charge is for (an invoice line).
    pub description: String,
}

/// Decides `change` on `current` at `now`.
///
/// # Errors
/// [`SubscriptionError`].
pub fn transition(
    current: &Subscription,
    change: Change,
    prices: &PriceList,
    now: DateTime<Utc>,
) -> Result<Transition, SubscriptionError> {
    match change {
        Change::Subscribe {
            plan: Plan::Free, ..
        } => {
            if current.plan == Plan::Free {
                return Err(SubscriptionError::Unchanged(Plan::Free));
            }
            // During a trial, the paid plan it interrupted keeps the period paid for: the trial
            // ends now, and that plan is cancelled, in force to the period's end.
            if current.status == SubscriptionStatus::Trialing
                && let (Some(paid), Some(cycle), Some(end)) =
                    (current.plan_before_trial, current.cycle, current.period_end)
                && paid != Plan::Free
                && end > now
            {
                return Ok(Transition {
                    next: Subscription {
                        plan: paid,
                        status: SubscriptionStatus::Active,
                        cycle: Some(cycle),
                        trial_ends_at: None,
                        plan_before_trial: None,
                        renewal_retry_at: None,
                        cancel_at_period_end: true,
                        ..current.clone()
                    },
                    charge_cents: None,
                    description: format!(
                        "Enterprise trial ended and {} plan cancelled: in force until {}, then Free",
                        paid.as_str(),
                        end.format("%Y-%m-%d")
                    ),
                });
            }
            // "Cancel anytime": a paid period running is used to its end, then Free. A trial
            // of an organization on Free, a plan granted without a period, or a renewal left
            // unpaid end now.
            if let Some(end) = current.period_end.filter(|end| {
                current.status == SubscriptionStatus::Active
                    && current.cycle.is_some()
                    && *end > now
            }) {
                if current.cancel_at_period_end {
                    return Err(SubscriptionError::AlreadyCancelled(current.plan, end));
                }
                return Ok(Transition {
                    next: Subscription {
                        cancel_at_period_end: true,
                        ..current.clone()
                    },
                    charge_cents: None,
                    description: format!(
                        "{} plan cancelled: in force until {}, then Free",
                        current.plan.as_str(),
                        end.format("%Y-%m-%d")
                    ),
                });
            }
            Ok(Transition {
                next: Subscription {
                    trial_used: current.trial_used,
                    ..Subscription::new(Plan::Free)
                },
                charge_cents: None,
                description: "Downgrade to Free".into(),
            })
        }
        Change::Subscribe { plan, cycle } => {
            // The cancelled plan and cycle again, before its period ends, withdraws the
            // cancellation: the period paid for goes on and renews.
            if current.cancel_at_period_end
                && current.status == SubscriptionStatus::Active
                && current.plan == plan
                && current.cycle == Some(cycle)
                && current.period_end.is_some_and(|end| end > now)
            {
                return Ok(Transition {
                    next: Subscription {
                        cancel_at_period_end: false,
                        ..current.clone()
                    },
                    charge_cents: None,
                    description: format!("{} plan cancellation withdrawn", plan.as_str()),
                });
            }
            // The same plan and cycle again is how an Owner pays a renewal that is unpaid
            // (a new period from now) instead of waiting for its next try.
            if current.status == SubscriptionStatus::Active
                && current.plan == plan
                && current.cycle == Some(cycle)
                && !current.renewal_unpaid(now)
            {
                return Err(SubscriptionError::Unchanged(plan));
            }
            let end = cycle.period_end(now);
            let price = prices.price_cents(plan, cycle);
            let unused = current.unused_cents(prices, now);
            let mut description = line(plan, cycle, now, end);
            if unused > 0 {
                description.push_str(&format!(
                    ", less {} cents unused of the current period",
                    unused.min(price)
                ));
            }
            Ok(Transition {
                next: Subscription {
                    plan,
                    status: SubscriptionStatus::Active,
                    cycle: Some(cycle),
                    period_end: Some(end),
                    trial_ends_at: None,
                    trial_used: current.trial_used,
                    plan_before_trial: None,
                    anchor: Some(now),
                    renewal_retry_at: None,
                    cancel_at_period_end: false,
                },
                charge_cents: Some(price.saturating_sub(unused)),
                description,
            })
        }
        Change::StartTrial => {
            if current.trial_used {
                return Err(SubscriptionError::TrialUsed);
            }
            if current.plan == Plan::Enterprise {
                return Err(SubscriptionError::NotApplicable(
                    "the organization is already on Enterprise",
                ));
            }
            // Not as a way round a renewal that is due and unpaid (its grace period running).
            if current.renewal_unpaid(now) {
                return Err(SubscriptionError::NotApplicable(
                    "the current plan's renewal is due; the trial can start once it is paid",
                ));
            }
            Ok(Transition {
                next: Subscription {
                    plan: Plan::Enterprise,
                    status: SubscriptionStatus::Trialing,
                    trial_ends_at: Some(now + Duration::days(TRIAL_DAYS)),
                    trial_used: true,
                    plan_before_trial: Some(current.plan),
                    renewal_retry_at: None,
                    ..current.clone()
                },
                charge_cents: None,
                description: format!("{TRIAL_DAYS}-day Enterprise trial"),
            })
        }
        Change::EndTrial => {
            if current.due(now) != Some(Change::EndTrial) {
                return Err(SubscriptionError::NotApplicable("the trial has not ended"));
            }
            let plan = current.plan_before_trial.unwrap_or(Plan::Free);
            // A paid period that ended during the trial renews now, its next period (and an
            // unpaid renewal's grace) counted from the trial's end.
            let trial_end = current.trial_ends_at.unwrap_or(now);
            let moved = current.period_end.is_some_and(|end| end < trial_end);
            Ok(Transition {
                next: Subscription {
                    plan,
                    status: SubscriptionStatus::Active,
                    trial_ends_at: None,
                    plan_before_trial: None,
                    period_end: current.period_end.map(|end| end.max(trial_end)),
                    anchor: if moved {
                        Some(trial_end)
                    } else {
                        current.anchor
                    },
                    renewal_retry_at: None,
                    ..current.clone()
                },
                charge_cents: None,
                description: format!("End of the Enterprise trial, back to {}", plan.as_str()),
            })
        }
        Change::Renew => {
            let (Some(Change::Renew), Some(cycle), Some(start)) =
                (current.due(now), current.cycle, current.period_end)
            else {
                return Err(SubscriptionError::NotApplicable("no renewal is due"));
            };
            let anchor = current.anchor.unwrap_or(start);
            let end = cycle.next_end(anchor, start);
            Ok(Transition {
                next: Subscription {
                    period_end: Some(end),
                    anchor: Some(anchor),
                    renewal_retry_at: None,
                    ..current.clone()
                },
                charge_cents: Some(prices.price_cents(current.plan, cycle)),
                description: line(current.plan, cycle, start, end),
            })
        }
        Change::Lapse => {
            let (true, Some(end), Some(lapses)) = (
                current.renewal_unpaid(now),
                current.period_end,
                current.lapses_at(),
            ) else {
                return Err(SubscriptionError::NotApplicable("no renewal is due"));
            };
            if now < lapses {
                return Err(SubscriptionError::NotApplicable(
                    "the unpaid renewal's grace period has not ended",
                ));
            }
            Ok(Transition {
                next: Subscription {
                    trial_used: current.trial_used,
                    ..Subscription::new(Plan::Free)
                },
                charge_cents: None,
                description: format!(
                    "{} renewal due {} unpaid: back to Free",
                    current.plan.as_str(),
                    end.format("%Y-%m-%d")
                ),
            })
        }
        Change::EndCancelled => {
            let (Some(Change::EndCancelled), Some(end)) = (current.due(now), current.period_end)
            else {
                return Err(SubscriptionError::NotApplicable(
                    "no cancelled plan's period has ended",
                ));
            };
            Ok(Transition {
                next: Subscription {
                    trial_used: current.trial_used,
                    ..Subscription::new(Plan::Free)
                },
                charge_cents: None,
                description: format!(
                    "{} plan cancelled, its period ended {}: back to Free",
                    current.plan.as_str(),
                    end.format("%Y-%m-%d")
                ),
            })
        }
    }
}

fn line(plan: Plan, cycle: BillingCycle, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "{} plan, {} billing, {} to {}",
        plan.as_str(),
        cycle.as_str(),
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_deal_prices_its_plan_alone() {
        let list = PriceList::default();
        let deal = PriceDeal::new(Plan::Enterprise, 39_900).unwrap();
        let dealt = list.with_deal(Some(&deal));
        assert_eq!(
            dealt.price_cents(Plan::Enterprise, BillingCycle::Monthly),
            39_900
        );
        assert_eq!(
            dealt.price_cents(Plan::Enterprise, BillingCycle::Annual),
            39_900 * 12 * 8 / 10
        );
        assert_eq!(
            dealt.price_cents(Plan::Pro, BillingCycle::Monthly),
            list.pro_monthly_cents
        );
        assert_eq!(list.with_deal(None), list);
        let pro = PriceDeal::new(Plan::Pro, 0).unwrap();
        assert_eq!(
            list.with_deal(Some(&pro)).pro_monthly_cents,
            0,
            "a plan given free"
        );
        assert_eq!(PriceDeal::new(Plan::Free, 1), Err(PriceDealError::FreePlan));
        assert!(matches!(
            PriceDeal::new(Plan::Pro, MAX_MONTHLY_CENTS + 1),
            Err(PriceDealError::TooHigh(_))
        ));
        assert!(PriceDeal::new(Plan::Pro, MAX_MONTHLY_CENTS).is_ok());
    }

    /// A subscription to `plan` on `cycle` bought at `at` from Free, at the default prices.
    fn subscribed(plan: Plan, cycle: BillingCycle, at: DateTime<Utc>) -> Subscription {
        transition(
            &Subscription::new(Plan::Free),
            Change::Subscribe { plan, cycle },
            &PriceList::default(),
            at,
        )
        .unwrap()
        .next
    }

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, 12, 0, 0).unwrap()
    }

    /// At the bounds a deployment may set, every price is exact (nothing saturates), and one
    /// cent more is refused, naming the price.
    #[test]
    fn prices_within_their_bounds_never_overflow() {
        let top = PriceList {
            currency: "EUR".into(),
            pro_monthly_cents: MAX_MONTHLY_CENTS,
            enterprise_monthly_cents: MAX_MONTHLY_CENTS,
            credit_cents: MAX_CREDIT_CENTS,
        };
        assert_eq!(top.validate(), Ok(()));
        let most = u64::try_from(crate::credits::MAX_AMOUNT).unwrap();
        assert_eq!(
            Some(top.credits_cents(most)),
            most.checked_mul(MAX_CREDIT_CENTS)
        );
        assert_eq!(
            Some(top.price_cents(Plan::Enterprise, BillingCycle::Annual)),
            MAX_MONTHLY_CENTS.checked_mul(12).map(|y| y * 8 / 10)
        );
        assert_ne!(top.credits_cents(most), u64::MAX);
        let over = PriceList {
            credit_cents: MAX_CREDIT_CENTS + 1,
            ..top.clone()
        };
        let err = over.validate().unwrap_err();
        assert_eq!(err.field, "credit_cents");
        assert!(err.to_string().contains("at most 1000000"), "{err}");
        let over = PriceList {
            enterprise_monthly_cents: MAX_MONTHLY_CENTS + 1,
            ..top
        };
        assert_eq!(
            over.validate().unwrap_err().field,
            "enterprise_monthly_cents"
        );
    }

    #[test]
    fn annual_is_twenty_percent_cheaper() {
        let p = PriceList::default();
        for plan in [Plan::Pro, Plan::Enterprise] {
            let monthly = p.price_cents(plan, BillingCycle::Monthly);
            assert_eq!(
                p.price_cents(plan, BillingCycle::Annual) * 10,
                monthly * 12 * 8
            );
        }
        assert_eq!(p.price_cents(Plan::Free, BillingCycle::Annual), 0);
    }

    #[test]
    fn a_trial_lasts_fourteen_days_once_and_returns_to_the_plan_before() {
        let p = PriceList::default();
        let pro = subscribed(Plan::Pro, BillingCycle::Monthly, at(1));
        let trial = transition(&pro, Change::StartTrial, &p, at(2)).unwrap();
        assert_eq!(trial.charge_cents, None);
        assert_eq!(trial.next.plan, Plan::Enterprise);
        assert_eq!(trial.next.trial_ends_at, Some(at(16)));
        assert_eq!(trial.next.due(at(15)), None);
        assert_eq!(trial.next.due(at(16)), Some(Change::EndTrial));
        assert!(transition(&trial.next, Change::EndTrial, &p, at(15)).is_err());
        let back = transition(&trial.next, Change::EndTrial, &p, at(16))
            .unwrap()
            .next;
        assert_eq!(
            (back.plan, back.status),
            (Plan::Pro, SubscriptionStatus::Active)
        );
        assert_eq!(back.period_end, pro.period_end, "the Pro period is kept");
        assert_eq!(
            transition(&back, Change::StartTrial, &p, at(17)),
            Err(SubscriptionError::TrialUsed)
        );
    }

    #[test]
    fn cancelling_during_a_trial_keeps_the_paid_period_it_interrupted() {
        let p = PriceList::default();
        let pro = subscribed(Plan::Pro, BillingCycle::Annual, at(1));
        let trial = transition(&pro, Change::StartTrial, &p, at(2))
            .unwrap()
            .next;
        let free = Change::Subscribe {
            plan: Plan::Free,
            cycle: BillingCycle::Monthly,
        };
        let t = transition(&trial, free, &p, at(3)).unwrap();
        assert_eq!(t.charge_cents, None);
        assert_eq!(
            (
                t.next.plan,
                t.next.status,
                t.next.cycle,
                t.next.period_end,
                t.next.cancel_at_period_end,
                t.next.trial_ends_at,
                t.next.trial_used,
            ),
            (
                Plan::Pro,
                SubscriptionStatus::Active,
                Some(BillingCycle::Annual),
                pro.period_end,
                true,
                None,
                true
            )
        );
        assert!(
            t.description.contains("pro plan cancelled"),
            "{}",
            t.description
        );
        // Then Free at the period's end, as for any cancelled plan.
        let end = pro.period_end.unwrap();
        assert_eq!(t.next.due(end), Some(Change::EndCancelled));
        // Cancelling again is refused as for any cancelled plan.
        assert_eq!(
            transition(&t.next, free, &p, at(4)),
            Err(SubscriptionError::AlreadyCancelled(Plan::Pro, end))
        );
        // A trial started from Free has no period to keep: cancelling it is Free at once.
        let from_free = transition(
            &Subscription::new(Plan::Free),
            Change::StartTrial,
            &p,
            at(2),
        )
        .unwrap()
        .next;
        let ended = transition(&from_free, free, &p, at(3)).unwrap().next;
        assert_eq!(
            (ended.plan, ended.status, ended.trial_used),
            (Plan::Free, SubscriptionStatus::Active, true)
        );
    }

    #[test]
    fn renewals_bill_the_next_period_from_the_end_of_the_last() {
        let p = PriceList::default();
        let s = subscribed(Plan::Enterprise, BillingCycle::Monthly, at(31));
        // 31 January + one month is 28 February.
        let end = Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap();
        assert_eq!(s.period_end, Some(end));
        assert_eq!(s.due(end - Duration::seconds(1)), None);
        let r = transition(&s, Change::Renew, &p, end).unwrap();
        assert_eq!(r.charge_cents, Some(p.enterprise_monthly_cents));
        assert!(transition(&r.next, Change::Renew, &p, end).is_err());
        // Every period is counted from the day bought: the day of the month comes back after
        // a shorter month instead of drifting to the 28th.
        let mut renewed = s.clone();
        let mut ends = Vec::new();
        for _ in 0..4 {
            let at = renewed.period_end.unwrap();
            renewed = transition(&renewed, Change::Renew, &p, at).unwrap().next;
            ends.push(renewed.period_end.unwrap().format("%m-%d").to_string());
        }
        assert_eq!(ends, ["03-31", "04-30", "05-31", "06-30"]);
        // The 31-day period from Feb 28 to Mar 31 is measured from Feb 28.
        let march = transition(&s, Change::Renew, &p, end).unwrap().next;
        assert_eq!(
            march.unused_cents(&p, end + Duration::days(31) - Duration::hours(372)),
            p.enterprise_monthly_cents / 2
        );
        // An annual plan bought on a leap day renews on Feb 28 and on the next leap day.
        let leap = Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap();
        let mut annual = subscribed(Plan::Pro, BillingCycle::Annual, leap);
        let mut years = Vec::new();
        for _ in 0..4 {
            let at = annual.period_end.unwrap();
            years.push(at.format("%Y-%m-%d").to_string());
            annual = transition(&annual, Change::Renew, &p, at).unwrap().next;
        }
        assert_eq!(
            years,
            ["2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"]
        );
        // A subscription stored without an anchor renews from the end of its period, and
        // counts from it afterwards.
        let legacy = Subscription { anchor: None, ..s };
        let next = transition(&legacy, Change::Renew, &p, end).unwrap().next;
        assert_eq!(next.anchor, Some(end));
        assert_eq!(next.period_end, Some(BillingCycle::Monthly.period_end(end)));
    }

    #[test]
    fn a_failed_renewal_is_tried_again_on_a_schedule_until_it_lapses() {
        let p = PriceList::default();
        let s = subscribed(Plan::Pro, BillingCycle::Monthly, at(5));
        let (end, lapses) = (s.period_end.unwrap(), s.lapses_at().unwrap());
        assert_eq!(
            s.renewal_failed(end - Duration::seconds(1)),
            None,
            "not due"
        );
        let mut tries = vec![end];
        let mut now = end;
        let mut cur = s.clone();
        while let Some(next) = cur.renewal_failed(now) {
            let retry = next.renewal_retry_at.unwrap();
            assert_eq!(next.due(retry - Duration::seconds(1)), None, "{retry}");
            assert!(next.renewal_unpaid(retry - Duration::seconds(1)));
            assert_eq!(next.due(retry), Some(Change::Renew));
            assert_eq!((next.plan, next.period_end), (cur.plan, cur.period_end));
            tries.push(retry);
            now = retry;
            cur = next;
        }
        let days: Vec<i64> = tries.iter().map(|t| (*t - end).num_days()).collect();
        assert_eq!(days, [0, 1, 3, 7, RENEWAL_GRACE_DAYS]);
        assert_eq!(now, lapses);
        assert!(transition(&cur, Change::Lapse, &p, now).is_ok());
        assert_eq!(s.unpaid_lapses_at(end - Duration::seconds(1)), None);
        assert_eq!(s.unpaid_lapses_at(end), Some(lapses));
        // Still unpaid while waiting: no trial meanwhile.
        let waiting = s.renewal_failed(end).unwrap();
        assert!(matches!(
            transition(&waiting, Change::StartTrial, &p, end + Duration::hours(1)),
            Err(SubscriptionError::NotApplicable(_))
        ));
        assert!(transition(&waiting, Change::Renew, &p, end + Duration::hours(1)).is_err());
        // A worker that comes late waits for the next try after it; past the grace, none.
        let late = s.renewal_failed(end + Duration::days(5)).unwrap();
        assert_eq!(late.renewal_retry_at, Some(end + Duration::days(7)));
        assert_eq!(s.renewal_failed(lapses), None);
        // The Owner may pay at once by subscribing to the same plan again: a new period from
        // now, at the full price (nothing is left of the ended one).
        let now_paid = transition(
            &waiting,
            Change::Subscribe {
                plan: Plan::Pro,
                cycle: BillingCycle::Monthly,
            },
            &p,
            end + Duration::hours(2),
        )
        .unwrap();
        assert_eq!(now_paid.charge_cents, Some(p.pro_monthly_cents));
        assert_eq!(now_paid.next.renewal_retry_at, None);
        assert_eq!(now_paid.next.anchor, Some(end + Duration::hours(2)));
        assert_eq!(now_paid.next.due(end + Duration::days(20)), None);
        // A paid renewal clears the retry.
        let paid = transition(&waiting, Change::Renew, &p, end + Duration::days(1))
            .unwrap()
            .next;
        assert_eq!(paid.renewal_retry_at, None);
        assert_eq!(paid.period_end, Some(BillingCycle::Monthly.period_end(end)));
    }

    #[test]
    fn a_change_between_paid_plans_is_charged_less_what_is_left_of_the_period() {
        let p = PriceList::default();
        let start = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let pro = transition(
            &Subscription::new(Plan::Free),
            Change::Subscribe {
                plan: Plan::Pro,
                cycle: BillingCycle::Monthly,
            },
            &p,
            start,
        )
        .unwrap();
        assert_eq!(
            pro.charge_cents,
            Some(p.pro_monthly_cents),
            "from Free: the full price"
        );
        let pro = pro.next;
        // April has 30 days: a third of the way in, two thirds of Pro's price are left.
        let at = start + Duration::days(10);
        assert_eq!(pro.unused_cents(&p, at), p.pro_monthly_cents * 2 / 3);
        let up = transition(
            &pro,
            Change::Subscribe {
                plan: Plan::Enterprise,
                cycle: BillingCycle::Monthly,
            },
            &p,
            at,
        )
        .unwrap();
        assert_eq!(
            up.charge_cents,
            Some(p.enterprise_monthly_cents - p.pro_monthly_cents * 2 / 3)
        );
        assert!(
            up.description.contains("less 1933 cents unused"),
            "{}",
            up.description
        );
        assert_eq!(
            up.next.period_end,
            Some(BillingCycle::Monthly.period_end(at))
        );
        // Nothing is left at or after the period's end, nor of Free.
        assert_eq!(pro.unused_cents(&p, pro.period_end.unwrap()), 0);
        assert_eq!(Subscription::new(Plan::Free).unused_cents(&p, at), 0);
        // Down to a cheaper plan with more left than it costs: nothing to pay, nothing paid back.
        let annual = subscribed(Plan::Enterprise, BillingCycle::Annual, start);
        let down = transition(
            &annual,
            Change::Subscribe {
                plan: Plan::Pro,
                cycle: BillingCycle::Monthly,
            },
            &p,
            start + Duration::days(30),
        )
        .unwrap();
        assert_eq!(down.charge_cents, Some(0));
        // On a trial the paid plan before it is what is left.
        let trial = transition(&pro, Change::StartTrial, &p, at).unwrap().next;
        assert_eq!(trial.unused_cents(&p, at), pro.unused_cents(&p, at));
        let from_free_trial =
            transition(&Subscription::new(Plan::Free), Change::StartTrial, &p, at)
                .unwrap()
                .next;
        assert_eq!(from_free_trial.unused_cents(&p, at), 0);
    }

    #[test]
    fn a_period_bought_at_a_months_end_is_measured_from_its_start() {
        let p = PriceList::default();
        let jan31 = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        let pro = subscribed(Plan::Pro, BillingCycle::Monthly, jan31);
        assert_eq!(
            pro.period_end,
            Some(Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap())
        );
        // At once, all of it is left; half-way (14 of 28 days), half.
        assert_eq!(pro.unused_cents(&p, jan31), p.pro_monthly_cents);
        assert_eq!(
            pro.unused_cents(&p, jan31 + Duration::days(14)),
            p.pro_monthly_cents / 2
        );
        // A leap day's annual period, bought on Feb 29, ends on Feb 28 and is a full year.
        let leap = Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap();
        let annual = subscribed(Plan::Enterprise, BillingCycle::Annual, leap);
        assert_eq!(
            annual.unused_cents(&p, leap),
            p.price_cents(Plan::Enterprise, BillingCycle::Annual)
        );
    }

    #[test]
    fn a_paid_period_that_ended_during_the_trial_renews_when_the_trial_ends() {
        let p = PriceList::default();
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let pro = subscribed(Plan::Pro, BillingCycle::Monthly, start);
        let trial_start = pro.period_end.unwrap() - Duration::days(3);
        let trial = transition(&pro, Change::StartTrial, &p, trial_start)
            .unwrap()
            .next;
        let trial_end = trial.trial_ends_at.unwrap();
        assert_eq!(trial.due(trial_end - Duration::seconds(1)), None);
        // The worker may come late: the period still starts at the trial's end.
        let late = transition(&trial, Change::EndTrial, &p, trial_end + Duration::hours(2))
            .unwrap()
            .next;
        assert_eq!(late.period_end, Some(trial_end));
        let back = transition(&trial, Change::EndTrial, &p, trial_end)
            .unwrap()
            .next;
        assert_eq!((back.plan, back.period_end), (Plan::Pro, Some(trial_end)));
        assert_eq!(back.due(trial_end), Some(Change::Renew));
        assert_eq!(
            back.lapses_at(),
            Some(trial_end + Duration::days(RENEWAL_GRACE_DAYS)),
            "the grace period starts when the trial ends"
        );
        let renewed = transition(&back, Change::Renew, &p, trial_end)
            .unwrap()
            .next;
        assert_eq!(
            renewed.period_end,
            Some(BillingCycle::Monthly.period_end(trial_end))
        );
    }

    #[test]
    fn an_unpaid_renewal_lapses_to_free_after_the_grace_period() {
        let p = PriceList::default();
        let start = Utc.with_ymd_and_hms(2026, 1, 28, 12, 0, 0).unwrap();
        let s = transition(
            &Subscription {
                trial_used: true,
                ..Subscription::new(Plan::Free)
            },
            Change::Subscribe {
                plan: Plan::Enterprise,
                cycle: BillingCycle::Monthly,
            },
            &p,
            start,
        )
        .unwrap()
        .next;
        let end = s.period_end.unwrap();
        let lapses = end + Duration::days(RENEWAL_GRACE_DAYS);
        assert_eq!(s.lapses_at(), Some(lapses));
        // Not before the period ends, nor during the grace period.
        for at in [
            end - Duration::seconds(1),
            end,
            lapses - Duration::seconds(1),
        ] {
            assert!(
                matches!(
                    transition(&s, Change::Lapse, &p, at),
                    Err(SubscriptionError::NotApplicable(_))
                ),
                "{at}"
            );
        }
        let t = transition(&s, Change::Lapse, &p, lapses).unwrap();
        assert_eq!(t.charge_cents, None);
        assert_eq!(
            t.next,
            Subscription {
                trial_used: true,
                ..Subscription::new(Plan::Free)
            }
        );
        assert_eq!(
            t.next.due(lapses + Duration::days(400)),
            None,
            "Free renews nothing"
        );
        // No trial while the renewal is due and unpaid.
        assert!(matches!(
            transition(
                &Subscription {
                    trial_used: false,
                    ..s.clone()
                },
                Change::StartTrial,
                &p,
                end
            ),
            Err(SubscriptionError::NotApplicable(_))
        ));
        // A renewal paid in time leaves nothing to lapse.
        let renewed = transition(&s, Change::Renew, &p, end).unwrap().next;
        assert!(transition(&renewed, Change::Lapse, &p, lapses).is_err());
    }

    #[test]
    fn a_cancelled_paid_plan_runs_to_the_end_of_its_period_then_free() {
        let p = PriceList::default();
        let free = Change::Subscribe {
            plan: Plan::Free,
            cycle: BillingCycle::Monthly,
        };
        let s = subscribed(Plan::Enterprise, BillingCycle::Annual, at(1));
        let end = s.period_end.unwrap();
        let cancel = transition(&s, free, &p, at(10)).unwrap();
        assert_eq!(cancel.charge_cents, None);
        assert_eq!(
            (cancel.next.plan, cancel.next.period_end),
            (Plan::Enterprise, Some(end)),
            "the year paid for stays in force"
        );
        assert!(cancel.next.cancel_at_period_end);
        assert_eq!(
            transition(&cancel.next, free, &p, at(11)),
            Err(SubscriptionError::AlreadyCancelled(Plan::Enterprise, end))
        );
        // Not renewed: at the period's end the due change is its end, unbilled.
        assert_eq!(cancel.next.due(end - Duration::seconds(1)), None);
        assert_eq!(cancel.next.due(end), Some(Change::EndCancelled));
        assert!(!cancel.next.renewal_unpaid(end));
        assert!(transition(&cancel.next, Change::Renew, &p, end).is_err());
        assert!(transition(&cancel.next, Change::EndCancelled, &p, at(20)).is_err());
        let ended = transition(&cancel.next, Change::EndCancelled, &p, end).unwrap();
        assert_eq!(ended.charge_cents, None);
        assert_eq!(
            (
                ended.next.plan,
                ended.next.period_end,
                ended.next.cancel_at_period_end
            ),
            (Plan::Free, None, false)
        );
        // Naming the plan and cycle again before then withdraws the cancellation, unbilled:
        // the period goes on and renews.
        let resumed = transition(
            &cancel.next,
            Change::Subscribe {
                plan: Plan::Enterprise,
                cycle: BillingCycle::Annual,
            },
            &p,
            at(12),
        )
        .unwrap();
        assert_eq!(resumed.charge_cents, None);
        assert_eq!(resumed.next, s, "as before the cancellation");
        assert_eq!(resumed.next.due(end), Some(Change::Renew));
        // Another paid plan is a change as before: a new period, less what is left.
        let pro = transition(
            &cancel.next,
            Change::Subscribe {
                plan: Plan::Pro,
                cycle: BillingCycle::Monthly,
            },
            &p,
            at(12),
        )
        .unwrap();
        assert!(!pro.next.cancel_at_period_end);
        assert_eq!(
            pro.charge_cents,
            Some(0),
            "the unused Enterprise year pays for it"
        );
        // A trial, or a plan granted without a period, ends at once.
        let trial = transition(
            &Subscription::new(Plan::Free),
            Change::StartTrial,
            &p,
            at(1),
        )
        .unwrap()
        .next;
        let now_free = transition(&trial, free, &p, at(2)).unwrap().next;
        assert_eq!(
            (now_free.plan, now_free.cancel_at_period_end),
            (Plan::Free, false)
        );
    }

    #[test]
    fn unchanged_and_downgrades() {
        let p = PriceList::default();
        assert_eq!(
            transition(
                &Subscription::new(Plan::Free),
                Change::Subscribe {
                    plan: Plan::Free,
                    cycle: BillingCycle::Monthly
                },
                &p,
                at(1)
            ),
            Err(SubscriptionError::Unchanged(Plan::Free))
        );
        let ent = Subscription {
            trial_used: true,
            ..Subscription::new(Plan::Enterprise)
        };
        let down = transition(
            &ent,
            Change::Subscribe {
                plan: Plan::Free,
                cycle: BillingCycle::Monthly,
            },
            &p,
            at(1),
        )
        .unwrap();
        assert_eq!(down.charge_cents, None);
        assert_eq!(down.next.period_end, None);
        assert!(
            down.next.trial_used,
            "a downgrade does not give a new trial"
        );
        // Switching the cycle of the same plan is a change.
        let monthly = transition(
            &ent,
            Change::Subscribe {
                plan: Plan::Enterprise,
                cycle: BillingCycle::Monthly,
            },
            &p,
            at(1),
        )
        .unwrap()
        .next;
        assert!(
            transition(
                &monthly,
                Change::Subscribe {
                    plan: Plan::Enterprise,
                    cycle: BillingCycle::Annual
                },
                &p,
                at(2)
            )
            .is_ok()
        );
    }
}
