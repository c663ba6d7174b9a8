//! The subscription lifecycle of an organization: upgrades and downgrades (monthly or annual),
//! the 14-day Enterprise trial, renewals, and the invoices they issue.
//!
//! The rules are `billing_limits::subscription`'s; this module charges through a
//! [`PaymentProvider`], and commits the new plan, the subscription, the invoice, the audit
//! record, the `subscription.updated` webhook event (and `enterprise.updated` when the plan
//! changes) and the invoice email in one transaction. Leaving Enterprise archives the audit log
//! and takes access away from everyone but the Owner (see [`crate::Caller::load`]); both come
//! back with Enterprise. Resources stay; creation above the new limits is refused by the usual
//! limit checks.

use async_trait::async_trait;
use audit::{
    Actor, AuditAction, DomainEvent, EventKind, Journal, Metadata, NewAuditEvent, OutboundMail,
    Target,
};
use billing_limits::Plan;
use billing_limits::payment::{Charge, ChargeRequest, ChargeStatus, PaymentProvider};
use billing_limits::subscription::{
    Change, PriceDeal, PriceList, Subscription, Transition, transition,
};
use chrono::{DateTime, Utc};
use rbac_core::{OrgId, Permission};
use serde::Serialize;
use serde_json::json;

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::model::Organization;
use crate::store::TenancyStore;

/// The kinds of mail about money (invoices, failed renewals, lapsed subscriptions), the
/// Owner's alone: other readers of the outbox see neither their bodies nor their subjects.
pub const BILLING_MAIL_KINDS: [&str; 5] = [
    "invoice",
    "invoice_overdue",
    "renewal_failed",
    "subscription_lapsed",
    "subscription_ended",
];

/// An invoice issued for a plan period or a credit purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    /// Invoice number (unique in the organization).
    pub number: String,
    /// The organization.
    #[serde(skip)]
    pub org: OrgId,
    /// The payment provider that issued it.
    pub provider: String,
    /// The line.
    pub description: String,
    /// Amount in the smallest currency unit.
    pub amount_cents: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// Paid or open.
    pub status: ChargeStatus,
    /// When issued.
    pub created_at: DateTime<Utc>,
    /// When due, if open.
    pub due_at: Option<DateTime<Utc>>,
}

impl Invoice {
    /// Whether it is open and its due date has passed at `now`.
    #[must_use]
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == ChargeStatus::Open && self.due_at.is_some_and(|d| d < now)
    }
}

/// When the Owner is reminded of an unpaid invoice, in days after its due date: as it falls
/// due, a week later and two weeks later ([`remind_overdue`]).
pub const OVERDUE_REMINDER_DAYS: [i64; 3] = [0, 7, 14];

/// A subscription charge about to be made, recorded before the provider is asked
/// ([`BillingStore::pending_charge`]), so that a later try of the same change from the same
/// version asks for the same amount under the same idempotency key (and the provider answers
/// it with the first charge) instead of a prorated amount a few seconds later, under a key of
/// its own, which would charge twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCharge {
    /// The subscription version the change is made from.
    pub version: u64,
    /// What is bought: the change, the plan and the cycle (`subscribe-pro-annual`).
    pub change: String,
    /// The amount, in the smallest currency unit.
    pub amount_cents: u64,
    /// The invoice line.
    pub description: String,
}

/// Storage of subscriptions and invoices.
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// The organization's subscription and its version (0 before the first change; a new
    /// organization is on its plan with nothing paid).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`], [`TenancyError::Store`].
    async fn subscription(&self, org: OrgId) -> Result<(Subscription, u64), TenancyError>;

    /// Records `candidate` as the organization's pending subscription charge and returns it,
    /// unless the charge recorded already is for the same version and change: then that one is
    /// returned (its amount and invoice line are the ones to ask for again). One per
    /// organization: a candidate for another version or change replaces it.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when another request records one at the same moment;
    /// [`TenancyError::Store`].
    async fn pending_charge(
        &self,
        org: OrgId,
        candidate: &PendingCharge,
    ) -> Result<PendingCharge, TenancyError>;

    /// Forgets the organization's pending charge if it is for `version` and `change` (the
    /// provider refused it, so the next try is a new request).
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn drop_pending_charge(
        &self,
        org: OrgId,
        version: u64,
        change: &str,
    ) -> Result<(), TenancyError>;

    /// Stores `next` if the subscription is still at `version` (compare-and-swap), sets the
    /// organization's plan and when its audit log was archived, inserts `invoice`, forgets the
    /// pending charge, and commits `journal`, in one transaction.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when the subscription changed meanwhile; [`TenancyError::Store`].
    async fn apply_subscription(
        &self,
        org: OrgId,
        version: u64,
        next: &Subscription,
        audit_archived_at: Option<DateTime<Utc>>,
        invoice: Option<&Invoice>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Up to `limit` of the organization's invoices, newest first (by issue time, then by
    /// number), after the one numbered `before` when given.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when the organization has no invoice numbered `before`;
    /// [`TenancyError::Store`].
    async fn invoices(
        &self,
        org: OrgId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Invoice>, TenancyError>;

    /// The organization's invoice numbered `number`. The default pages through
    /// [`Self::invoices`]; `SeaStore` reads its unique index.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn invoice(&self, org: OrgId, number: &str) -> Result<Option<Invoice>, TenancyError> {
        let mut before: Option<String> = None;
        loop {
            let page = self.invoices(org, before.as_deref(), 500).await?;
            let full = page.len() == 500;
            let last = page.last().map(|l| l.number.clone());
            if let Some(found) = page.into_iter().find(|i| i.number == number) {
                return Ok(Some(found));
            }
            match last {
                Some(last) if full => before = Some(last),
                _ => return Ok(None),
            }
        }
    }

    /// Marks the organization's open invoice numbered `number` paid (no longer due), with
    /// `journal`, in one transaction. Returns `false`, writing nothing, when it is not open
    /// (paid, void, or no such invoice).
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn mark_invoice_paid(
        &self,
        org: OrgId,
        number: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError>;

    /// Records that reminder `reminder` (the index in [`OVERDUE_REMINDER_DAYS`]) of the
    /// organization's invoice `number` went out, and commits `journal` (its record and mail)
    /// with it, when the invoice is still open and that reminder was not recorded before, as
    /// the transaction reads them: a payment marked at the same moment
    /// ([`Self::mark_invoice_paid`]) commits either before, and no reminder goes, or after.
    /// Otherwise it writes nothing and answers `false`. The record is the one
    /// [`crate::metering::MeteringStore::record_alert`] keeps, under `invoice_overdue`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn record_overdue_reminder(
        &self,
        org: OrgId,
        number: &str,
        reminder: u64,
        journal: Journal,
    ) -> Result<bool, TenancyError>;

    /// The organization's open invoices due before `now` (unpaid past their due date), in any
    /// order. The default pages through [`Self::invoices`]; `SeaStore` asks for them alone.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn overdue_invoices(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invoice>, TenancyError> {
        let mut overdue = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let page = self.invoices(org, before.as_deref(), 500).await?;
            let full = page.len() == 500;
            before = page.last().map(|l| l.number.clone());
            overdue.extend(page.into_iter().filter(|i| i.overdue(now)));
            if !full {
                return Ok(overdue);
            }
        }
    }

    /// Whether the organization has an invoice numbered `number` ([`Self::invoice`]).
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn has_invoice(&self, org: OrgId, number: &str) -> Result<bool, TenancyError> {
        Ok(self.invoice(org, number).await?.is_some())
    }

    /// The price agreed with the organization ([`PriceDeal`]), if any.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn price_deal(&self, org: OrgId) -> Result<Option<PriceDeal>, TenancyError>;

    /// Replaces the price agreed with the organization (`None`: it pays the list's prices
    /// again), with `journal`, in one transaction.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for an unknown organization; [`TenancyError::Store`].
    async fn set_price_deal(
        &self,
        org: OrgId,
        deal: Option<&PriceDeal>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Up to `limit` organizations whose trial ended or whose paid period renews at or before
    /// `now` (a renewal whose charge failed: once its `renewal_retry_at` has come), by id, after
    /// `after` (a page of all of them): those for which [`Subscription::due`] is some change.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn due_subscriptions(
        &self,
        now: DateTime<Utc>,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, TenancyError>;
}

/// How the deployment takes payment: its provider and prices.
#[derive(Clone, Copy)]
pub struct Payments<'a> {
    /// The payment provider.
    pub provider: &'a dyn PaymentProvider,
    /// The price list.
    pub prices: &'a PriceList,
}

/// What the Owner sees of billing.
#[derive(Debug, Clone, Serialize)]
pub struct BillingView {
    /// The subscription.
    pub subscription: Subscription,
    /// The price list (annual already discounted).
    pub prices: serde_json::Value,
    /// The limits in force.
    pub limits: billing_limits::PlanLimits,
}

/// The subscription with the price list and limits (billing readers: the Owner).
///
/// # Errors
/// [`TenancyError::Forbidden`].
pub async fn view<S: BillingStore + ?Sized>(
    store: &S,
    caller: &Caller,
    prices: &PriceList,
) -> Result<BillingView, TenancyError> {
    use billing_limits::subscription::BillingCycle::{Annual, Monthly};
    caller.check_org(Permission::ViewBilling)?;
    let (subscription, _) = store.subscription(caller.org.id).await?;
    let deal = store.price_deal(caller.org.id).await?;
    let prices = prices.with_deal(deal.as_ref());
    let p = |plan| json!({"monthly_cents": prices.price_cents(plan, Monthly), "annual_cents": prices.price_cents(plan, Annual)});
    Ok(BillingView {
        subscription,
        prices: json!({
            "currency": prices.currency, "pro": p(Plan::Pro), "enterprise": p(Plan::Enterprise),
            "credit_cents": prices.credit_cents,
            "negotiated_plan": deal.map(|d| d.plan.as_str()),
        }),
        limits: caller.org.limits(),
    })
}

/// The prices `org` pays: the deployment's `list` with the price agreed with it, if any
/// ([`BillingStore::price_deal`]). Every charge for a plan is priced by it.
///
/// # Errors
/// [`TenancyError::Store`].
pub async fn prices_for<S: BillingStore + ?Sized>(
    store: &S,
    org: OrgId,
    list: &PriceList,
) -> Result<PriceList, TenancyError> {
    Ok(list.with_deal(store.price_deal(org).await?.as_ref()))
}

/// Agrees, as the operator (the `set-price` command), a monthly price for one paid plan with
/// the organization (`None`: back to the list's prices): its next charge for that plan (a
/// subscription, a change of cycle, a renewal) is priced by it; invoices already issued are not
/// changed, and a change of plan or cycle credits what is left of the current period at the
/// organization's prices at that moment ([`Subscription::unused_cents`]), as after a change of
/// the list's prices. Audited as the system's `billing.price_agreed`, naming the plan but not the
/// amount (Admins read the log; billing is the Owner's, who sees the price in the billing
/// view), in the same transaction.
///
/// # Errors
/// [`TenancyError::NotFound`] for an unknown organization; [`TenancyError::Invalid`] for a
/// deal for Free or over the highest price.
pub async fn set_price_deal_as_system<S: BillingStore + TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
    deal: Option<(Plan, u64)>,
    now: DateTime<Utc>,
) -> Result<Option<PriceDeal>, TenancyError> {
    let o = store.get_org(org).await?;
    let deal = deal
        .map(|(plan, cents)| PriceDeal::new(plan, cents))
        .transpose()
        .map_err(|e| TenancyError::Invalid(e.to_string()))?;
    let before = store.price_deal(org).await?;
    let record = NewAuditEvent::new(
        org,
        now,
        Actor::system(),
        AuditAction::PriceAgreed,
        org_target(&o),
    )
    .with_metadata(Metadata::from_value(json!({
        "plan": deal.map(|d| d.plan.as_str()),
        "previous_plan": before.map(|d| d.plan.as_str()),
    }))?);
    store
        .set_price_deal(org, deal.as_ref(), Journal::record(record))
        .await?;
    Ok(deal)
}

/// Puts the organization on `plan` (`PUT /plan`), in `cycle` when one is named. Naming the
/// plan it is on without a cycle changes nothing while that plan is paid for (or granted
/// without a cycle), as a PUT of what is there; a trial of it, or a renewal left unpaid, is
/// subscribed to and paid for in the subscription's own cycle, as [`change`] does. Returns
/// whether anything changed.
///
/// # Errors
/// As [`change`]; [`TenancyError::Subscription`] with `Unchanged` when the named plan and cycle
/// are the current ones.
pub async fn put_plan<S: TenancyStore + BillingStore + ?Sized>(
    store: &S,
    payments: Payments<'_>,
    caller: &Caller,
    plan: Plan,
    cycle: Option<billing_limits::subscription::BillingCycle>,
    now: DateTime<Utc>,
) -> Result<bool, TenancyError> {
    use billing_limits::subscription::{BillingCycle, SubscriptionError, SubscriptionStatus};
    caller.check_org(Permission::ManageBilling)?;
    let cycle_to_pay = match cycle {
        Some(c) => c,
        None if plan == caller.org.plan => {
            let (current, _) = store.subscription(caller.org.id).await?;
            // A cancelled plan named again withdraws the cancellation.
            if current.status != SubscriptionStatus::Trialing
                && !current.renewal_unpaid(now)
                && !current.cancel_at_period_end
            {
                return Ok(false);
            }
            current.cycle.unwrap_or(BillingCycle::Monthly)
        }
        None => BillingCycle::Monthly,
    };
    let next = Change::Subscribe {
        plan,
        cycle: cycle_to_pay,
    };
    match change(store, payments, caller, next, now).await {
        Ok(_) => Ok(true),
        Err(TenancyError::Subscription(SubscriptionError::Unchanged(_))) if cycle.is_none() => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The Owner changes the subscription: a plan and cycle, or the Enterprise trial. A paid plan
/// is charged for a new period starting now, less what is left of the current paid period
/// ([`Subscription::unused_cents`]).
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Subscription`] (unchanged, trial used);
/// [`TenancyError::Payment`] when the charge fails (nothing changes);
/// [`TenancyError::Conflict`] on a concurrent change.
pub async fn change<S: TenancyStore + BillingStore + ?Sized>(
    store: &S,
    payments: Payments<'_>,
    caller: &Caller,
    change: Change,
    now: DateTime<Utc>,
) -> Result<(Subscription, Option<Invoice>), TenancyError> {
    caller.check_org(Permission::ManageBilling)?;
    if matches!(
        change,
        Change::EndTrial | Change::Renew | Change::Lapse | Change::EndCancelled
    ) {
        return Err(TenancyError::Invalid(
            "trial ends, renewals, lapses and the ends of cancelled plans happen on their own"
                .into(),
        ));
    }
    let prices = prices_for(store, caller.org.id, payments.prices).await?;
    let payments = Payments {
        prices: &prices,
        ..payments
    };
    let (current, version) = store.subscription(caller.org.id).await?;
    let t = transition(&current, change, payments.prices, now)?;
    let record = caller.audit(
        now,
        action_of(change, &current, &t.next),
        org_target(&caller.org),
    );
    commit(
        store,
        payments,
        &caller.org,
        record,
        Some(caller.user.id.to_string()),
        (&current, version),
        t,
        change,
        now,
    )
    .await
}

/// Applies what is due at `now` (trial ends, renewals, and the lapse of renewals unpaid past
/// their grace period) for every organization, `page` at a time, as the system. Returns what
/// was done.
///
/// # Errors
/// [`TenancyError::Store`] when the due organizations cannot be listed. A declined renewal
/// waits for its next try ([`Subscription::renewal_failed`]); any other failure for one
/// organization leaves it due for the next run (logged); the others are still seen to.
pub async fn run_due<S: TenancyStore + BillingStore + ?Sized>(
    store: &S,
    payments: Payments<'_>,
    now: DateTime<Utc>,
    page: u32,
) -> Result<Vec<(OrgId, Change)>, TenancyError> {
    let mut done = Vec::new();
    let mut after: Option<OrgId> = None;
    loop {
        let due = store.due_subscriptions(now, after, page.max(1)).await?;
        for org_id in &due {
            // One organization's failure (a store error, an unreadable row) is logged and the
            // others are still seen to; it is tried again on the next pass.
            match run_one(store, payments, *org_id, now).await {
                Ok(Some(change)) => done.push((*org_id, change)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(org = %org_id, error = %e, "due subscription change failed; retried on the next pass");
                }
            }
        }
        let last = due.last().copied();
        // A short page ends the pass, as does a store that does not move past the cursor.
        if due.len() < page.max(1) as usize
            || last.map(|l| l.to_string()) <= after.map(|a| a.to_string())
        {
            return Ok(done);
        }
        after = last;
    }
}

/// [`run_due`] for one organization: the change made, if any.
async fn run_one<S: TenancyStore + BillingStore + ?Sized>(
    store: &S,
    payments: Payments<'_>,
    org_id: OrgId,
    now: DateTime<Utc>,
) -> Result<Option<Change>, TenancyError> {
    let org = store.get_org(org_id).await?;
    let (current, version) = store.subscription(org_id).await?;
    let Some(change) = current.due(now) else {
        return Ok(None);
    };
    let prices = prices_for(store, org_id, payments.prices).await?;
    let payments = Payments {
        prices: &prices,
        ..payments
    };
    let t = match transition(&current, change, payments.prices, now) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(org = %org_id, error = %e, "due subscription change not applicable");
            return Ok(None);
        }
    };
    let record = NewAuditEvent::new(
        org_id,
        now,
        Actor::system(),
        action_of(change, &current, &t.next),
        org_target(&org),
    );
    match commit(
        store,
        payments,
        &org,
        record,
        None,
        (&current, version),
        t,
        change,
        now,
    )
    .await
    {
        Ok(_) => Ok(Some(change)),
        // Another instance did it first.
        Err(TenancyError::Conflict(_)) => Ok(None),
        Err(TenancyError::Payment(e)) => {
            if let Some(next) = current.renewal_failed(now) {
                tracing::warn!(org = %org_id, error = %e, retry_at = ?next.renewal_retry_at, "renewal charge failed; tried again later");
                renewal_failed(store, &org, (&current, version), &next, &e.to_string(), now)
                    .await?;
                Ok(None)
            } else {
                tracing::warn!(org = %org_id, error = %e, "renewal charge failed past the grace period; the subscription lapses to Free");
                Ok(lapse(store, payments, &org, (&current, version), now)
                    .await?
                    .then_some(Change::Lapse))
            }
        }
        Err(e) => Err(e),
    }
}

/// Records a renewal whose charge failed: when it is tried next (`next`), on the record
/// (`billing.renewal_failed`) and in a mail to the Owner saying when, and when the plan ends
/// if it cannot be paid. Nothing else changes; another instance's change first is no error.
async fn renewal_failed<S: TenancyStore + BillingStore + ?Sized>(
    store: &S,
    org: &Organization,
    (current, version): (&Subscription, u64),
    next: &Subscription,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    // The payment provider's words, anything at all: a failure that could not be recorded
    // would be met again each pass.
    let error = &audit::without_nul(error);
    let day = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let (retry, lapses) = (day(next.renewal_retry_at), day(current.lapses_at()));
    let owner = crate::orgs::owner_of(store, org.id).await?;
    let record = NewAuditEvent::new(
        org.id,
        now,
        Actor::system(),
        AuditAction::RenewalFailed,
        org_target(org),
    )
    .with_metadata(Metadata::from_value(json!({
        "plan": current.plan.as_str(), "period_end": current.period_end,
        "error": error.chars().take(200).collect::<String>(),
        "retry_at": next.renewal_retry_at, "lapses_at": current.lapses_at(),
    }))?);
    let journal = Journal::record(record).mail(OutboundMail {
        org: Some(org.id),
        to: owner.user.email.as_str().to_owned(),
        subject: format!(
            "{}: the payment for your {} plan failed",
            org.name,
            current.plan.as_str()
        ),
        body: format!(
            "The renewal of {}'s {} plan could not be charged: {}.\n\n\
             It will be tried again on {}. If it cannot be paid by {}, the organization goes \
             back to the Free plan. To pay now, subscribe to the plan again from the billing \
             settings (a new period starts then), or change the plan.\n",
            org.name,
            current.plan.as_str(),
            error.chars().take(200).collect::<String>(),
            retry.unwrap_or_default(),
            lapses.unwrap_or_default(),
        ),
        kind: "renewal_failed".into(),
    });
    match store
        .apply_subscription(org.id, version, next, org.audit_archived_at, None, journal)
        .await
    {
        Ok(()) | Err(TenancyError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ends a paid plan whose renewal could not be charged by [`Subscription::lapses_at`]: back to
/// Free, with its audit record, events and a mail to the Owner. `false` when another instance
/// changed the subscription first.
async fn lapse<S: TenancyStore + BillingStore + ?Sized>(
    store: &S,
    payments: Payments<'_>,
    org: &Organization,
    (current, version): (&Subscription, u64),
    now: DateTime<Utc>,
) -> Result<bool, TenancyError> {
    let t = transition(current, Change::Lapse, payments.prices, now)?;
    let record = NewAuditEvent::new(
        org.id,
        now,
        Actor::system(),
        action_of(Change::Lapse, current, &t.next),
        org_target(org),
    );
    match commit(
        store,
        payments,
        org,
        record,
        None,
        (current, version),
        t,
        Change::Lapse,
        now,
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(TenancyError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn action_of(change: Change, current: &Subscription, next: &Subscription) -> AuditAction {
    match change {
        Change::Subscribe { .. } if next.cancel_at_period_end => AuditAction::SubscriptionCancelled,
        Change::Subscribe { .. }
            if current.cancel_at_period_end
                && next.plan == current.plan
                && next.period_end == current.period_end =>
        {
            AuditAction::CancellationWithdrawn
        }
        Change::Subscribe { .. } => AuditAction::PlanChanged,
        Change::StartTrial => AuditAction::TrialStarted,
        Change::EndTrial => AuditAction::TrialEnded,
        Change::Renew => AuditAction::SubscriptionRenewed,
        Change::Lapse => AuditAction::SubscriptionLapsed,
        Change::EndCancelled => AuditAction::SubscriptionEnded,
    }
}

fn org_target(org: &Organization) -> Target {
    Target::new("organization", org.id, org.name.clone())
}

/// Charges the organization through the provider and describes the invoice.
///
/// # Errors
/// [`TenancyError::Payment`].
pub(crate) async fn charge(
    payments: Payments<'_>,
    org: &Organization,
    amount_cents: u64,
    description: String,
    key: String,
    now: DateTime<Utc>,
) -> Result<Invoice, TenancyError> {
    let req = charge_request(payments, org, amount_cents, description, key, now);
    let c = payments.provider.charge(&req).await?;
    Ok(invoice_of(&req, &c))
}

/// What the provider is asked for.
fn charge_request(
    payments: Payments<'_>,
    org: &Organization,
    amount_cents: u64,
    description: String,
    key: String,
    now: DateTime<Utc>,
) -> ChargeRequest {
    let p = &org.profile;
    ChargeRequest {
        org: org.id,
        bill_to: [p.company_name.as_str(), &p.billing_address, &p.tax_id]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        amount_cents,
        currency: payments.prices.currency.clone(),
        description,
        idempotency_key: key,
        now,
    }
}

/// The invoice of charge `c`, made for `req`.
fn invoice_of(req: &ChargeRequest, c: &Charge) -> Invoice {
    Invoice {
        number: c.reference.clone(),
        org: req.org,
        provider: c.provider.to_owned(),
        description: req.description.clone(),
        amount_cents: req.amount_cents,
        currency: req.currency.clone(),
        status: c.status,
        created_at: req.now,
        due_at: c.due_at,
    }
}

/// After a charge whose change lost its compare-and-swap (`why`): gives the charge back
/// through the provider, unless a concurrent request with the same key (the same change, so
/// the same charge) committed it (the winner of a compare-and-swap has committed by the time
/// the loser's fails). A provider that refuses is logged with the reference, for the operator
/// to settle by hand. Two requests with one key that both lose to a third change both cancel
/// that one charge: [`PaymentProvider::cancel`] is idempotent per charge.
async fn give_back<S: BillingStore + ?Sized>(
    store: &S,
    payments: Payments<'_>,
    (req, c): (&ChargeRequest, &Charge),
    why: &TenancyError,
) {
    match store.has_invoice(req.org, &c.reference).await {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            // Unknown whether it was applied: keep the charge rather than cancel a paid
            // change; the operator reconciles.
            tracing::error!(org = %req.org, reference = %c.reference, error = %e, change_error = %why, "a subscription charge whose change failed could not be checked; settle it by hand");
            return;
        }
    }
    match payments.provider.cancel(c, req).await {
        Ok(()) => {
            tracing::warn!(org = %req.org, reference = %c.reference, error = %why, "a subscription change was not applied; its charge was cancelled");
        }
        Err(e) => {
            tracing::error!(org = %req.org, reference = %c.reference, error = %e, change_error = %why, "a charge whose change was not applied could not be cancelled; refund it by hand");
        }
    }
}

/// The email that carries an invoice to the Owner.
pub(crate) fn invoice_mail(org: &Organization, to: &str, i: &Invoice) -> OutboundMail {
    OutboundMail {
        org: Some(org.id),
        to: to.to_owned(),
        subject: format!("{}: invoice {}", org.name, i.number),
        body: format!(
            "Invoice {}\n\n{}\nAmount: {}.{:02} {}\nStatus: {}{}\n",
            i.number,
            i.description,
            i.amount_cents / 100,
            i.amount_cents % 100,
            i.currency,
            i.status.as_str(),
            i.due_at
                .map(|d| format!(", due {}", d.format("%Y-%m-%d")))
                .unwrap_or_default(),
        ),
        kind: "invoice".into(),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one transition with everything it records"
)]
async fn commit<S: TenancyStore + BillingStore + ?Sized>(
    store: &S,
    payments: Payments<'_>,
    org: &Organization,
    record: NewAuditEvent,
    by: Option<String>,
    (current, version): (&Subscription, u64),
    t: Transition,
    change: Change,
    now: DateTime<Utc>,
) -> Result<(Subscription, Option<Invoice>), TenancyError> {
    let Transition {
        next,
        charge_cents,
        description,
    } = t;
    // Everything that can fail is read before the charge: a read failing after it would leave
    // the organization charged (the provider dedupes the key) and the change never applied.
    let owner = crate::orgs::owner_of(store, org.id).await?;
    let enterprise = Plan::Enterprise;
    let archived = if next.plan == enterprise {
        None
    } else if current.plan == enterprise {
        Some(now)
    } else {
        org.audit_archived_at
    };
    // The audit record's metadata, with the invoice's number cut to 200 characters. It names
    // the invoice but not the amount: Admins read the log and webhooks, and billing is the
    // Owner's (the invoice, amount included, is in the billing API).
    let metadata = |number: Option<&str>| {
        Metadata::from_value(json!({
            "change": change.as_str(), "from": current.plan.as_str(), "to": next.plan.as_str(),
            "status": next.status.as_str(), "cycle": next.cycle.map(|c| c.as_str()),
            "invoice": number.map(|n| n.chars().take(200).collect::<String>()),
            "audit_archived": archived.is_some(),
            "cancel_at_period_end": next.cancel_at_period_end,
        }))
    };
    // Checked at its largest before the charge (200 characters that JSON writes longest), so
    // that it cannot fail once the organization is charged.
    metadata(Some(&"\u{1}".repeat(200)))?;
    let charged = match charge_cents {
        Some(cents) if cents > 0 => {
            // Recorded first: a try of this change after a failure past the charge asks for
            // the amount first asked for, under the same key, which the provider answers with
            // that charge (a prorated amount moves with the clock).
            let what = format!(
                "{}-{}-{}",
                change.as_str(),
                next.plan.as_str(),
                next.cycle.map_or("none", |c| c.as_str()),
            );
            let candidate = PendingCharge {
                version,
                change: what,
                amount_cents: cents,
                description,
            };
            let pending = store.pending_charge(org.id, &candidate).await?;
            let req = charge_request(
                payments,
                org,
                pending.amount_cents,
                pending.description,
                charge_key(org.id, version, change, &next, pending.amount_cents),
                now,
            );
            match payments.provider.charge(&req).await {
                Ok(c) => Some((req, c)),
                Err(e) => {
                    // Refused: the next try is a new request, at the amount of its time.
                    if let Err(dropped) = store
                        .drop_pending_charge(org.id, version, &candidate.change)
                        .await
                    {
                        tracing::warn!(org = %org.id, error = %dropped, "a refused charge's pending record stays");
                    }
                    return Err(e.into());
                }
            }
        }
        _ => None,
    };
    let invoice = charged.as_ref().map(|(req, c)| invoice_of(req, c));
    let invoice_json = invoice
        .as_ref()
        .map(|i| json!({"number": i.number, "status": i.status.as_str()}));
    let mut journal = Journal::record(
        record.with_metadata(metadata(invoice.as_ref().map(|i| i.number.as_str()))?),
    )
    .publish(DomainEvent::new(
        org.id,
        EventKind::SubscriptionUpdated,
        now,
        json!({
            "change": change.as_str(), "plan": next.plan.as_str(), "previousPlan": current.plan.as_str(),
            "status": next.status.as_str(), "cycle": next.cycle.map(|c| c.as_str()),
            "periodEnd": next.period_end, "trialEndsAt": next.trial_ends_at, "invoice": invoice_json, "by": by,
            "cancelAtPeriodEnd": next.cancel_at_period_end,
        }),
    ));
    if next.plan != current.plan {
        journal = journal.publish(DomainEvent::new(
            org.id,
            EventKind::EnterpriseUpdated,
            now,
            json!({
                "ownerId": owner.user.id, "plan": next.plan.as_str(), "previousPlan": current.plan.as_str(),
                "auditArchived": archived.is_some(),
            }),
        ));
    }
    if let Some(i) = &invoice {
        journal = journal.mail(invoice_mail(org, owner.user.email.as_str(), i));
    }
    if change == Change::EndCancelled {
        journal = journal.mail(OutboundMail {
            org: Some(org.id),
            to: owner.user.email.as_str().to_owned(),
            subject: format!(
                "{}: your {} plan has ended",
                org.name,
                current.plan.as_str()
            ),
            body: format!(
                "{}'s {} plan was cancelled and its period ended on {}.\n\n\
                 The organization is on the Free plan now{}. Subscribe again to return to {}.\n",
                org.name,
                current.plan.as_str(),
                current
                    .period_end
                    .map(|e| e.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
                if archived.is_some() && current.plan == enterprise {
                    "; its audit log is archived (read-only, exportable by the Owner)"
                } else {
                    ""
                },
                current.plan.as_str(),
            ),
            kind: "subscription_ended".into(),
        });
    }
    if change == Change::Lapse {
        journal = journal.mail(OutboundMail {
            org: Some(org.id),
            to: owner.user.email.as_str().to_owned(),
            subject: format!(
                "{}: your {} plan has ended",
                org.name,
                current.plan.as_str()
            ),
            body: format!(
                "{}'s {} plan could not be renewed: the payment for the period from {} \
                 could not be taken within {} days.\n\n\
                 The organization is on the Free plan now{}. Subscribe again to return to {}.\n",
                org.name,
                current.plan.as_str(),
                current
                    .period_end
                    .map(|e| e.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
                billing_limits::subscription::RENEWAL_GRACE_DAYS,
                if archived.is_some() && current.plan == enterprise {
                    "; its audit log is archived (read-only, exportable by the Owner)"
                } else {
                    ""
                },
                current.plan.as_str(),
            ),
            kind: "subscription_lapsed".into(),
        });
    }
    match store
        .apply_subscription(org.id, version, &next, archived, invoice.as_ref(), journal)
        .await
    {
        Ok(()) => {}
        // Charged for a change that lost its compare-and-swap: the version moved, so this
        // charge's key is never used again, and the charge is given back rather than left
        // without its invoice.
        Err(e @ TenancyError::Conflict(_)) => {
            if let Some((req, c)) = &charged {
                give_back(store, payments, (req, c), &e).await;
            }
            return Err(e);
        }
        // Any other failure leaves the version where it was: the charge is kept, and the next
        // try of the same change (the worker's next pass, the Owner again) is answered with it
        // through its key. Cancelling it here could cancel what a concurrent request with the
        // same key is about to commit, or what that next try will apply.
        Err(e) => {
            if let Some((req, c)) = &charged {
                tracing::warn!(org = %req.org, reference = %c.reference, error = %e, "a subscription change was charged but not stored; the charge stays for its next try");
            }
            return Err(e);
        }
    }
    Ok((next, invoice))
}

/// The idempotency key of a subscription charge: one per version of the subscription and per
/// change with its plan, cycle and amount. An Owner's declined change and the worker's next
/// renewal may be made at the same version, and two different changes sent at once (from two
/// tabs, say) must not share a charge (a provider answers a repeated key with the first one).
fn charge_key(org: OrgId, version: u64, change: Change, next: &Subscription, cents: u64) -> String {
    format!(
        "{org}-{:06}-{}-{}-{}-{cents}",
        version + 1,
        change.as_str(),
        next.plan.as_str(),
        next.cycle.map_or("none", |c| c.as_str()),
    )
}

/// Records, as the operator (the `mark-invoice-paid` command), that the organization's open
/// invoice numbered `number` was paid (a bank transfer arrived for a manual invoice): it is no
/// longer due. Audited as the system's `billing.invoice_paid`, with the invoice's number and
/// the operator's `note` (a payment reference), in the same transaction. Returns the invoice as
/// it now is.
///
/// # Errors
/// [`TenancyError::NotFound`] for an unknown organization or invoice;
/// [`TenancyError::Conflict`] when it is paid or void already (nothing is changed);
/// [`TenancyError::Invalid`] for a note over 200 characters.
pub async fn mark_paid_as_system<S: BillingStore + TenancyStore + ?Sized>(
    store: &S,
    org: OrgId,
    number: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Invoice, TenancyError> {
    let o = store.get_org(org).await?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control)) {
        return Err(TenancyError::Invalid(
            "the note is at most 200 printable characters".into(),
        ));
    }
    let invoice = store
        .invoice(org, number)
        .await?
        .ok_or(TenancyError::NotFound("invoice"))?;
    if invoice.status != ChargeStatus::Open {
        return Err(TenancyError::Conflict(format!(
            "invoice {number} is {} already",
            invoice.status.as_str()
        )));
    }
    let record = NewAuditEvent::new(
        org,
        now,
        Actor::system(),
        AuditAction::InvoicePaid,
        Target::new("organization", org, o.name.clone()),
    )
    // The invoice by its number, not its amount: Admins read the log, billing is the Owner's.
    .with_metadata(Metadata::from_value(json!({
        "invoice": invoice.number, "note": note,
    }))?);
    if !store
        .mark_invoice_paid(org, number, Journal::record(record))
        .await?
    {
        return Err(TenancyError::Conflict(format!(
            "invoice {number} is no longer open"
        )));
    }
    Ok(Invoice {
        status: ChargeStatus::Paid,
        due_at: None,
        ..invoice
    })
}

/// Reminds the Owner of the organization's open invoices past their due date: a mail (kind
/// `invoice_overdue`, the Owner's alone as every billing mail is) and the system's
/// `billing.invoice_overdue` record, in one transaction, when an invoice falls due unpaid, a
/// week later and two weeks later ([`OVERDUE_REMINDER_DAYS`]). Each reminder goes out once
/// however often this runs, on however many instances (the insert-once record of usage alerts,
/// [`MeteringStore::record_alert`](crate::metering::MeteringStore::record_alert), keyed by the
/// invoice's number and the reminder); a pass that comes late sends only the latest reminder
/// due. After the last, following the invoice up is the operator's (`overdue-invoices`).
/// Nothing else changes: the plan stays. Returns how many reminders went out now.
///
/// # Errors
/// Storage errors (the reminders sent before one failed stay sent).
pub async fn remind_overdue<
    S: TenancyStore + BillingStore + crate::metering::MeteringStore + ?Sized,
>(
    store: &S,
    org: &Organization,
    now: DateTime<Utc>,
) -> Result<u32, TenancyError> {
    let overdue = store.overdue_invoices(org.id, now).await?;
    if overdue.is_empty() {
        return Ok(0);
    }
    let owner = match crate::orgs::owner_of(store, org.id).await {
        Ok(m) => m.user,
        Err(TenancyError::NotFound(_)) => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut sent = 0;
    for i in overdue {
        let Some(due) = i.due_at else { continue };
        // The latest reminder due: a pass after a long pause does not send the earlier ones.
        let Some(n) = OVERDUE_REMINDER_DAYS
            .iter()
            .rposition(|d| now > due + chrono::Duration::days(*d))
        else {
            continue;
        };
        let last = n + 1 == OVERDUE_REMINDER_DAYS.len();
        let record = NewAuditEvent::new(
            org.id,
            now,
            Actor::system(),
            AuditAction::InvoiceOverdue,
            org_target(org),
        )
        // The invoice by its number, not its amount: Admins read the log, billing is the Owner's.
        .with_metadata(Metadata::from_value(json!({
            "invoice": i.number, "due_at": due, "reminder": n + 1,
        }))?);
        let journal = Journal::record(record).mail(OutboundMail {
            org: Some(org.id),
            to: owner.email.as_str().to_owned(),
            subject: format!("{}: invoice {} is overdue", org.name, i.number),
            body: format!(
                "Invoice {number} of {org} ({description}) for {units}.{cents:02} {currency} was \
                 due on {due} and has not been marked paid.\n\n{how} If it is paid already, the \
                 payment may still be on its way and nothing more is needed.\n{more}",
                how = if i.provider == "manual_invoice" {
                    "Please pay it by bank transfer, quoting the invoice number."
                } else {
                    "Please pay it, or check the payment details, in the billing settings."
                },
                number = i.number,
                org = org.name,
                description = i.description,
                units = i.amount_cents / 100,
                cents = i.amount_cents % 100,
                currency = i.currency,
                due = due.format("%Y-%m-%d"),
                more = if last {
                    "\nThis is the last reminder by mail; we will be in touch about it.\n"
                } else {
                    ""
                },
            ),
            kind: "invoice_overdue".into(),
        });
        if store
            .record_overdue_reminder(org.id, &i.number, n as u64, journal)
            .await?
        {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Up to `limit` of the organization's invoices, newest first, after the one numbered `before`
/// (billing readers).
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::NotFound`] when the organization has no
/// invoice numbered `before`.
pub async fn invoices<S: BillingStore + ?Sized>(
    store: &S,
    caller: &Caller,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Invoice>, TenancyError> {
    caller.check_org(Permission::ViewBilling)?;
    store.invoices(caller.org.id, before, limit).await
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::store::OrgStore as _;
    use audit::{AuditQuery, AuditStore, MailOutbox};
    use billing_limits::payment::{ManualInvoice, PaymentError};
    use billing_limits::subscription::{BillingCycle, RENEWAL_GRACE_DAYS};
    use chrono::{Duration, TimeZone};

    /// The Owner `caller` subscribes to Pro, monthly, at `at`.
    async fn subscribe_pro(
        store: &crate::MemoryTenancyStore,
        payments: Payments<'_>,
        caller: &Caller,
        at: DateTime<Utc>,
    ) -> (Subscription, Option<Invoice>) {
        change(
            store,
            payments,
            caller,
            Change::Subscribe {
                plan: Plan::Pro,
                cycle: BillingCycle::Monthly,
            },
            at,
        )
        .await
        .unwrap()
    }

    /// The organization's audit records of `action`, newest first.
    async fn recorded(
        store: &crate::MemoryTenancyStore,
        org: OrgId,
        action: &str,
    ) -> Vec<audit::AuditEvent> {
        store
            .search(
                org,
                &AuditQuery {
                    action: Some(audit::ActionFilter::parse(action)),
                    limit: 50,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap()
    }

    /// A provider that declines every charge, and counts them.
    #[derive(Default)]
    struct Declined(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl PaymentProvider for Declined {
        async fn charge(&self, _: &ChargeRequest) -> Result<Charge, PaymentError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(PaymentError("card declined".into()))
        }

        async fn cancel(&self, _: &Charge, _: &ChargeRequest) -> Result<(), PaymentError> {
            Err(PaymentError("nothing was charged".into()))
        }
    }

    /// A renewal whose charge fails is tried again 1, 3 and 7 days after the period's end and
    /// at the end of the grace period, not on every run, the Owner told each time; the plan
    /// stays until the grace period ends, then the organization is on Free, on the record and
    /// told by mail.
    #[tokio::test]
    async fn an_unpaid_renewal_is_tried_again_then_lapses_to_free() {
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Lapsing").await;
        let caller = store.session_caller_in(org.id, owner.clone()).await;
        let prices = PriceList::default();
        let start = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
        let manual = ManualInvoice::default();
        let paid = Payments {
            provider: &manual,
            prices: &prices,
        };
        let (sub, _) = subscribe_pro(&store, paid, &caller, start).await;
        let (end, lapses) = (sub.period_end.unwrap(), sub.lapses_at().unwrap());
        assert_eq!(lapses, end + Duration::days(RENEWAL_GRACE_DAYS));
        let provider = Declined::default();
        let declined = Payments {
            provider: &provider,
            prices: &prices,
        };
        let charges = || provider.0.load(std::sync::atomic::Ordering::SeqCst);
        // Runs every hour of the grace period: one charge at the end of the period and one at
        // each retry.
        let mut at = end;
        while at < lapses {
            assert!(run_due(&store, declined, at, 1).await.unwrap().is_empty());
            let (sub, _) = store.subscription(org.id).await.unwrap();
            assert_eq!((sub.plan, sub.period_end), (Plan::Pro, Some(end)));
            assert!(sub.renewal_retry_at.unwrap() > at);
            at += Duration::hours(1);
        }
        assert_eq!(charges(), 4, "at the end, then 1, 3 and 7 days after it");
        let failed = recorded(&store, org.id, "billing.renewal_failed").await;
        assert_eq!(failed.len(), 4);
        assert_eq!(
            failed[0].event.metadata.to_map().get("retry_at"),
            Some(&json!(lapses)),
            "the newest names the last try"
        );
        let warned = store.mails_of_kind(org.id, "renewal_failed").await;
        assert_eq!(warned.len(), 4);
        assert!(warned.iter().all(|m| m.to == owner.email.as_str()
            && m.body.contains("card declined")
            && m.body.contains(&lapses.format("%Y-%m-%d").to_string())));
        assert_eq!(
            run_due(&store, declined, lapses, 1).await.unwrap(),
            vec![(org.id, Change::Lapse)]
        );
        let (now_on, _) = store.subscription(org.id).await.unwrap();
        assert_eq!((now_on.plan, now_on.period_end), (Plan::Free, None));
        assert!(
            run_due(&store, declined, lapses + Duration::days(60), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let records = store
            .search(
                org.id,
                &AuditQuery {
                    limit: 50,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        let lapsed: Vec<_> = records
            .iter()
            .filter(|r| r.event.action == AuditAction::SubscriptionLapsed)
            .collect();
        assert_eq!(lapsed.len(), 1);
        assert_eq!(
            lapsed[0].event.metadata.to_map().get("to"),
            Some(&json!("free"))
        );
        let mails = store
            .audit()
            .list_mails(Some(org.id), None, 50)
            .await
            .unwrap();
        let told: Vec<_> = mails
            .iter()
            .filter(|m| m.kind == "subscription_lapsed")
            .collect();
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].to, owner.email.as_str());
        // Renewals and lapses are not the Owner's to ask for.
        assert!(matches!(
            change(&store, paid, &caller, Change::Lapse, lapses).await,
            Err(TenancyError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn the_owner_is_reminded_of_an_overdue_invoice_three_times_at_most() {
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Slowpayer").await;
        let caller = store.session_caller_in(org.id, owner.clone()).await;
        let prices = PriceList::default();
        let manual = ManualInvoice::default();
        let payments = Payments {
            provider: &manual,
            prices: &prices,
        };
        let start = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
        let (_, invoice) = subscribe_pro(&store, payments, &caller, start).await;
        let invoice = invoice.unwrap();
        let due = invoice.due_at.unwrap();
        assert_eq!(due, start + Duration::days(30));
        let org = store.get_org(org.id).await.unwrap();
        let remind = |at: DateTime<Utc>| {
            let (store, org) = (&store, &org);
            async move { remind_overdue(store, org, at).await.unwrap() }
        };
        // Every hour from issue to three weeks past due: one reminder as it falls due, one a
        // week later, one two weeks later.
        let mut at = start;
        let mut sent = Vec::new();
        while at < due + Duration::days(21) {
            if remind(at).await == 1 {
                sent.push(at);
            }
            at += Duration::hours(1);
        }
        assert_eq!(
            sent,
            [
                due + Duration::hours(1),
                due + Duration::days(7) + Duration::hours(1),
                due + Duration::days(14) + Duration::hours(1),
            ]
        );
        let mails = store.mails_of_kind(org.id, "invoice_overdue").await;
        assert_eq!(mails.len(), 3);
        assert!(mails.iter().all(|m| m.to == owner.email.as_str()
            && m.subject.contains(&invoice.number)
            && m.body.contains(&due.format("%Y-%m-%d").to_string())));
        assert_eq!(
            mails
                .iter()
                .filter(|m| m.body.contains("last reminder"))
                .count(),
            1
        );
        let records = recorded(&store, org.id, "billing.invoice_overdue").await;
        let reminders: Vec<_> = records
            .iter()
            .map(|r| r.event.metadata.to_map().get("reminder").cloned())
            .collect();
        assert_eq!(reminders, [Some(json!(3)), Some(json!(2)), Some(json!(1))]);
        assert!(
            records
                .iter()
                .all(|r| r.event.actor.kind == audit::ActorKind::System
                    && r.event.metadata.to_map().get("invoice") == Some(&json!(invoice.number))
                    && !r.event.metadata.to_map().contains_key("amount_cents"))
        );

        // Paid: nothing more, ever.
        let (_, second) = change(
            &store,
            payments,
            &caller,
            Change::Subscribe {
                plan: Plan::Enterprise,
                cycle: BillingCycle::Monthly,
            },
            due + Duration::days(21),
        )
        .await
        .unwrap();
        let second = second.unwrap();
        mark_paid_as_system(
            &store,
            org.id,
            &second.number,
            None,
            due + Duration::days(22),
        )
        .await
        .unwrap();
        assert_eq!(remind(second.due_at.unwrap() + Duration::days(8)).await, 0);
    }

    #[tokio::test]
    async fn an_agreed_price_is_charged_from_the_next_charge_of_its_plan() {
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Dealer").await;
        let caller = store.session_caller_in(org.id, owner).await;
        let prices = PriceList::default();
        let manual = ManualInvoice::default();
        let payments = Payments {
            provider: &manual,
            prices: &prices,
        };
        let start = Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap();
        // Pro at the list price; then the deal for Enterprise, which Pro's renewal ignores.
        let (pro, listed) = subscribe_pro(&store, payments, &caller, start).await;
        assert_eq!(listed.unwrap().amount_cents, prices.pro_monthly_cents);
        let deal =
            set_price_deal_as_system(&store, org.id, Some((Plan::Enterprise, 39_900)), start)
                .await
                .unwrap();
        assert_eq!(deal.map(|d| d.monthly_cents), Some(39_900));
        assert!(matches!(
            set_price_deal_as_system(&store, org.id, Some((Plan::Free, 1)), start).await,
            Err(TenancyError::Invalid(_))
        ));
        let view = view(&store, &caller, &prices).await.unwrap();
        assert_eq!(view.prices["enterprise"]["monthly_cents"], 39_900);
        assert_eq!(
            view.prices["enterprise"]["annual_cents"],
            39_900 * 12 * 8 / 10
        );
        assert_eq!(
            view.prices["pro"]["monthly_cents"],
            prices.pro_monthly_cents
        );
        assert_eq!(view.prices["negotiated_plan"], "enterprise");
        // Enterprise, annual, at once: the deal's year less what is left of Pro's month.
        let moved = start + Duration::days(10);
        let (sub, invoice) = change(
            &store,
            payments,
            &caller,
            Change::Subscribe {
                plan: Plan::Enterprise,
                cycle: BillingCycle::Annual,
            },
            moved,
        )
        .await
        .unwrap();
        let pro_left = pro.unused_cents(&prices, moved);
        assert!(pro_left > 0);
        assert_eq!(
            invoice.unwrap().amount_cents,
            39_900 * 12 * 8 / 10 - pro_left
        );
        // Its renewal a year later is at the deal, and at the list once the deal is gone.
        let renews = sub.period_end.unwrap();
        assert_eq!(
            run_due(&store, payments, renews, 10).await.unwrap(),
            vec![(org.id, Change::Renew)]
        );
        let newest = || {
            let store = &store;
            async move { store.invoices(org.id, None, 1).await.unwrap()[0].amount_cents }
        };
        assert_eq!(newest().await, 39_900 * 12 * 8 / 10);
        set_price_deal_as_system(&store, org.id, None, renews)
            .await
            .unwrap();
        let (sub, _) = store.subscription(org.id).await.unwrap();
        run_due(&store, payments, sub.period_end.unwrap(), 10)
            .await
            .unwrap();
        assert_eq!(
            newest().await,
            prices.price_cents(Plan::Enterprise, BillingCycle::Annual)
        );
        let agreed = recorded(&store, org.id, "billing.price_agreed").await;
        let plans: Vec<_> = agreed
            .iter()
            .map(|r| r.event.metadata.to_map().get("plan").cloned())
            .collect();
        assert_eq!(plans, [Some(json!(null)), Some(json!("enterprise"))]);
        assert!(agreed.iter().all(|r| {
            !r.event
                .metadata
                .to_map()
                .values()
                .any(|v| v == &json!(39_900))
        }));
    }

    #[tokio::test]
    async fn a_late_pass_sends_only_the_latest_reminder_due() {
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Paused").await;
        let caller = store.session_caller_in(org.id, owner).await;
        let prices = PriceList::default();
        let manual = ManualInvoice::default();
        let payments = Payments {
            provider: &manual,
            prices: &prices,
        };
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let (_, invoice) = subscribe_pro(&store, payments, &caller, start).await;
        let due = invoice.unwrap().due_at.unwrap();
        let org = store.get_org(org.id).await.unwrap();
        // The server was down from before the due date until ten days after it.
        assert_eq!(
            remind_overdue(&store, &org, due + Duration::days(10))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            remind_overdue(&store, &org, due + Duration::days(11))
                .await
                .unwrap(),
            0,
            "the first reminder is not sent late"
        );
        let records = recorded(&store, org.id, "billing.invoice_overdue").await;
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].event.metadata.to_map().get("reminder"),
            Some(&json!(2))
        );
    }

    /// A provider that invoices as [`ManualInvoice`] does, lets other requests run while it
    /// charges, and records what it charged and gave back.
    #[derive(Default)]
    struct Recording {
        charged: std::sync::Mutex<Vec<String>>,
        cancelled: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl PaymentProvider for Recording {
        async fn charge(&self, req: &ChargeRequest) -> Result<Charge, PaymentError> {
            tokio::task::yield_now().await;
            let c = ManualInvoice::default().charge(req).await?;
            self.charged.lock().unwrap().push(c.reference.clone());
            Ok(c)
        }

        async fn cancel(&self, c: &Charge, _: &ChargeRequest) -> Result<(), PaymentError> {
            self.cancelled.lock().unwrap().push(c.reference.clone());
            Ok(())
        }
    }

    /// Two changes made at once from the same version: one is applied with its invoice; the
    /// other, charged too, is refused and its charge given back. The same change made twice at
    /// once is one charge, which stays.
    #[tokio::test]
    async fn a_change_that_loses_a_race_gives_its_charge_back() {
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Racing").await;
        let caller = store.session_caller_in(org.id, owner).await;
        let prices = PriceList::default();
        let provider = Recording::default();
        let pay = Payments {
            provider: &provider,
            prices: &prices,
        };
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let pro = Change::Subscribe {
            plan: Plan::Pro,
            cycle: BillingCycle::Monthly,
        };
        let enterprise = Change::Subscribe {
            plan: Plan::Enterprise,
            cycle: BillingCycle::Annual,
        };
        let (a, b) = tokio::join!(
            change(&store, pay, &caller, pro, at),
            change(&store, pay, &caller, enterprise, at)
        );
        let won = match (a, b) {
            (Ok(w), Err(TenancyError::Conflict(_))) | (Err(TenancyError::Conflict(_)), Ok(w)) => w,
            other => panic!("one change applies and the other is refused: {other:?}"),
        };
        let invoice = won.1.unwrap();
        let charged = provider.charged.lock().unwrap().clone();
        assert_eq!(charged.len(), 2, "both were charged: {charged:?}");
        assert_ne!(charged[0], charged[1], "other changes, other charges");
        let lost: Vec<_> = charged
            .into_iter()
            .filter(|r| *r != invoice.number)
            .collect();
        assert_eq!(
            *provider.cancelled.lock().unwrap(),
            lost,
            "the loser's charge, only"
        );
        assert_eq!(
            store.invoices(org.id, None, 10).await.unwrap(),
            vec![invoice]
        );
        assert_eq!(store.subscription(org.id).await.unwrap().1, 1);

        // The same change twice at once (a double click): one charge, applied once, kept.
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Clicking").await;
        let caller = store.session_caller_in(org.id, owner).await;
        let (a, b) = tokio::join!(
            change(&store, pay, &caller, pro, at),
            change(&store, pay, &caller, pro, at)
        );
        assert!(
            matches!(
                (&a, &b),
                (Ok(_), Err(TenancyError::Conflict(_))) | (Err(TenancyError::Conflict(_)), Ok(_))
            ),
            "{a:?} {b:?}"
        );
        let charged = provider.charged.lock().unwrap().clone();
        assert_eq!(charged.len(), 4);
        assert_eq!(charged[2], charged[3], "one key, one charge");
        assert_eq!(
            provider.cancelled.lock().unwrap().len(),
            1,
            "nothing more given back"
        );
        let invoices = store.invoices(org.id, None, 10).await.unwrap();
        assert_eq!(invoices.len(), 1);
        assert_eq!(invoices[0].number, charged[2]);
    }

    /// Everything that can refuse a change is read before the provider is asked for money: an
    /// organization whose Owner cannot be read (here: nobody holds the role any more) is not
    /// charged.
    #[tokio::test]
    async fn nothing_is_charged_when_the_owner_cannot_be_read() {
        use crate::store::MembershipStore as _;
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Ownerless").await;
        let caller = store.session_caller_in(org.id, owner.clone()).await;
        store
            .set_role(
                org.id,
                owner.id,
                rbac_core::OrgRole::Owner,
                rbac_core::OrgRole::Admin,
                None,
                Journal::default(),
            )
            .await
            .unwrap();
        let prices = PriceList::default();
        let provider = Recording::default();
        let pay = Payments {
            provider: &provider,
            prices: &prices,
        };
        let pro = Change::Subscribe {
            plan: Plan::Pro,
            cycle: BillingCycle::Monthly,
        };
        let at = Utc.with_ymd_and_hms(2026, 4, 1, 12, 0, 0).unwrap();
        let refused = change(&store, pay, &caller, pro, at).await;
        assert!(
            matches!(refused, Err(TenancyError::NotFound("owner"))),
            "{refused:?}"
        );
        assert!(
            provider.charged.lock().unwrap().is_empty(),
            "nothing charged"
        );
        assert!(store.invoices(org.id, None, 10).await.unwrap().is_empty());
        assert_eq!(store.subscription(org.id).await.unwrap().1, 0);
    }

    /// A provider that declines the charges of some organizations.
    struct DeclinedFor(Vec<OrgId>);

    #[async_trait]
    impl PaymentProvider for DeclinedFor {
        async fn charge(&self, req: &ChargeRequest) -> Result<Charge, PaymentError> {
            if self.0.contains(&req.org) {
                return Err(PaymentError("card declined".into()));
            }
            ManualInvoice::default().charge(req).await
        }

        async fn cancel(&self, c: &Charge, req: &ChargeRequest) -> Result<(), PaymentError> {
            ManualInvoice::default().cancel(c, req).await
        }
    }

    /// Renewals whose charges keep failing, however many, hold up no other organization's.
    #[tokio::test]
    async fn failing_renewals_hold_up_no_other_organization() {
        let store = crate::MemoryTenancyStore::new();
        let hasher =
            security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
        let prices = PriceList::default();
        let manual = ManualInvoice::default();
        let start = Utc.with_ymd_and_hms(2026, 5, 3, 8, 0, 0).unwrap();
        let mut orgs = Vec::new();
        for n in 0..4 {
            let (org, owner) = crate::orgs::create_with_new_owner(
                &store,
                &hasher,
                crate::orgs::CreateOrgRequest {
                    name: format!("Renewing {n}"),
                    plan: Plan::Free,
                    owner_email: format!("owner{n}@renewing.example"),
                    owner_name: "Owner".into(),
                    owner_password: "tilted windmill at sunrise".into(),
                },
                start,
            )
            .await
            .unwrap();
            let caller = store.session_caller_in(org.id, owner).await;
            let paid = Payments {
                provider: &manual,
                prices: &prices,
            };
            subscribe_pro(&store, paid, &caller, start).await;
            orgs.push(org.id);
        }
        orgs.sort_by_key(ToString::to_string);
        // Every one but the last by id is declined; pages of one go past them all.
        let provider = DeclinedFor(orgs[..3].to_vec());
        let payments = Payments {
            provider: &provider,
            prices: &prices,
        };
        let end = BillingCycle::Monthly.period_end(start);
        let done = run_due(&store, payments, end, 1).await.unwrap();
        assert_eq!(done, vec![(orgs[3], Change::Renew)]);
        assert!(run_due(&store, payments, end, 1).await.unwrap().is_empty());
        let (renewed, _) = store.subscription(orgs[3]).await.unwrap();
        assert_eq!(
            renewed.period_end,
            Some(BillingCycle::Monthly.period_end(end))
        );
        for o in &orgs[..3] {
            assert_eq!(
                store.subscription(*o).await.unwrap().0.period_end,
                Some(end)
            );
        }
    }
}
