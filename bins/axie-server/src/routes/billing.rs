//! Billing & subscription: the plan and its cycle, the 14-day Enterprise trial, invoices
//! (the Owner; rules in `tenancy::billing` and `billing_limits::subscription`).

use actix_web::{HttpResponse, web};
use billing_limits::Plan;
use billing_limits::subscription::{BillingCycle, Change, Subscription};
use serde::{Deserialize, Serialize};
use tenancy::billing::{self, Invoice};
use utoipa::ToSchema;

use crate::auth::{OrgCaller, audited};
use crate::error::ApiError;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionResponse {
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// `active` or `trialing`.
    pub status: String,
    /// `monthly` or `annual` (null on Free).
    pub cycle: Option<String>,
    /// When the paid period renews (RFC 3339).
    pub period_end: Option<String>,
    /// When the trial ends (RFC 3339).
    pub trial_ends_at: Option<String>,
    /// Whether the one trial was used.
    pub trial_used: bool,
    /// When a renewal whose payment failed is tried next (RFC 3339; null unless one failed).
    /// Unpaid 14 days after `period_end`, the organization goes back to Free.
    pub renewal_retry_at: Option<String>,
    /// When an unpaid renewal lapses to Free (RFC 3339; null unless a renewal is unpaid).
    pub lapses_at: Option<String>,
    /// Whether the paid plan is cancelled: it stays in force until `period_end`, is not
    /// renewed, and then gives way to Free. Subscribing to the same plan and cycle before
    /// then withdraws the cancellation.
    pub cancel_at_period_end: bool,
}

impl SubscriptionResponse {
    /// `s` as the API shows it at `now` (which decides whether a renewal is unpaid).
    fn of(s: &Subscription, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            plan: s.plan.as_str().into(),
            status: s.status.as_str().into(),
            cycle: s.cycle.map(|c| c.as_str().into()),
            period_end: s.period_end.map(|t| t.to_rfc3339()),
            trial_ends_at: s.trial_ends_at.map(|t| t.to_rfc3339()),
            trial_used: s.trial_used,
            renewal_retry_at: s.renewal_retry_at.map(|t| t.to_rfc3339()),
            lapses_at: s.unpaid_lapses_at(now).map(|t| t.to_rfc3339()),
            cancel_at_period_end: s.cancel_at_period_end,
        }
    }
}

/// An invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceResponse {
    /// Invoice number.
    pub number: String,
    /// Payment provider (`manual_invoice`).
    pub provider: String,
    /// The line.
    pub description: String,
    /// Amount in the smallest currency unit.
    pub amount_cents: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// `open`, `paid`, or `void` (the credits it bought were reversed before it was paid).
    pub status: String,
    /// Issued (RFC 3339).
    pub created_at: String,
    /// Due (RFC 3339).
    pub due_at: Option<String>,
}

impl From<&Invoice> for InvoiceResponse {
    fn from(i: &Invoice) -> Self {
        Self {
            number: i.number.clone(),
            provider: i.provider.clone(),
            description: i.description.clone(),
            amount_cents: i.amount_cents,
            currency: i.currency.clone(),
            status: i.status.as_str().into(),
            created_at: i.created_at.to_rfc3339(),
            due_at: i.due_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// The subscription, prices and limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingResponse {
    /// The subscription.
    pub subscription: SubscriptionResponse,
    /// The prices this organization pays: `currency`, `pro` and `enterprise` with
    /// `monthly_cents` and `annual_cents`, `credit_cents`, and `negotiated_plan`, the plan whose
    /// price was agreed with it (the operator's `set-price`), or `null` for the list's prices.
    #[schema(value_type = Object)]
    pub prices: serde_json::Value,
    /// The limits in force (`null`: unlimited).
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
}

/// The result of a subscription change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeResponse {
    /// The subscription after it.
    pub subscription: SubscriptionResponse,
    /// The invoice issued for it, if any.
    pub invoice: Option<InvoiceResponse>,
}

/// A plan and billing cycle to move to. `free` cancels a paid plan: one with a paid period
/// running stays in force until that period ends, then Free (`cancel_at_period_end`); a trial,
/// or a plan with its renewal unpaid, ends at once. Another paid plan starts a new period now,
/// less what is left of the current one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeBody {
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// `monthly` (default) or `annual` (20 % cheaper); ignored for `free`.
    pub cycle: Option<String>,
}

/// Parses a plan and cycle.
///
/// # Errors
/// 400 for unknown names.
pub fn parse_change(plan: &str, cycle: Option<&str>) -> Result<Change, ApiError> {
    let (plan, cycle) = parse_plan(plan, cycle)?;
    Ok(Change::Subscribe {
        plan,
        cycle: cycle.unwrap_or(BillingCycle::Monthly),
    })
}

/// A plan and, when one is named, a billing cycle, as the API spells them.
///
/// # Errors
/// 400 for an unknown plan or cycle.
pub fn parse_plan(
    plan: &str,
    cycle: Option<&str>,
) -> Result<(Plan, Option<BillingCycle>), ApiError> {
    let plan = Plan::parse(plan).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown plan `{plan}`; use free, pro or enterprise"
        ))
    })?;
    let cycle = cycle
        .map(|c| {
            BillingCycle::parse(c).ok_or_else(|| {
                ApiError::bad_request(format!("unknown cycle `{c}`; use monthly or annual"))
            })
        })
        .transpose()?;
    Ok((plan, cycle))
}

/// A first answer promised for a support request's priority.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseTimeResponse {
    /// `critical`, `high`, `medium` or `low`.
    pub priority: String,
    /// Hours until the first answer.
    pub hours: u32,
    /// `24/7`, or `business_hours`.
    pub availability: String,
}

/// One plan as offered.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanResponse {
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// Per month on the monthly cycle, in the smallest currency unit.
    pub monthly_cents: u64,
    /// Per year on the annual cycle (twelve months less 20 %).
    pub annual_cents: u64,
    /// The limits in this deployment (`null`: unlimited): `members`, `chat_interfaces`,
    /// `knowledge_bases`, `documents`, `api_keys`, `custom_domains`, `api_calls_per_month`,
    /// `storage_bytes`, and `plan`, the plan they are of (as in the organization's billing).
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
    /// The features it includes: `audit_logs`, `advanced_rbac`, `webhooks`, `scim`.
    #[schema(value_type = Object)]
    pub features: serde_json::Value,
    /// `email`, `priority_email` or `phone_and_dedicated`.
    pub support: String,
    /// Response times by priority (Enterprise's; empty for the others).
    pub response_times: Vec<ResponseTimeResponse>,
    /// The uptime committed to, in per mille (990: 99 %; 999: 99.9 %); null: none.
    pub sla_uptime_per_mille: Option<u32>,
}

/// The plans side by side.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlansResponse {
    /// ISO 4217 code of the prices.
    pub currency: String,
    /// One team credit, in the smallest currency unit.
    pub credit_cents: u64,
    /// Free, Pro and Enterprise, cheapest first.
    pub plans: Vec<PlanResponse>,
}

/// The plans side by side (the guide's "What's Included"): each one's list prices, limits in
/// this deployment, features, support and uptime commitment, for anyone signed in who weighs
/// an upgrade. An organization's own prices, with a price agreed with it, are in its billing.
#[utoipa::path(get, path = "/api/v1/plans", tag = "billing",
    responses((status = 200, description = "The plans", body = PlansResponse)),
    security(("bearer" = [])))]
pub async fn plans(
    st: web::Data<AppState>,
    _auth: crate::auth::Authenticated,
) -> Result<HttpResponse, ApiError> {
    let plans = billing_limits::catalogue::catalogue(&st.prices)
        .into_iter()
        .map(|p| {
            Ok(PlanResponse {
                plan: p.plan.as_str().into(),
                monthly_cents: p.monthly_cents,
                annual_cents: p.annual_cents,
                limits: serde_json::to_value(p.limits)?,
                features: serde_json::to_value(p.features)?,
                support: p.support.as_str().into(),
                response_times: p
                    .response_times
                    .iter()
                    .map(|r| ResponseTimeResponse {
                        priority: r.priority.as_str().into(),
                        hours: r.hours,
                        availability: if r.around_the_clock {
                            "24/7"
                        } else {
                            "business_hours"
                        }
                        .into(),
                    })
                    .collect(),
                sla_uptime_per_mille: p.sla_uptime_per_mille,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(PlansResponse {
        currency: st.prices.currency.clone(),
        credit_cents: st.prices.credit_cents,
        plans,
    }))
}

/// The subscription with prices and limits.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/billing", tag = "billing",
    params(("org_id" = String, Path, description = "Organization id")),
    responses((status = 200, description = "Subscription, prices, limits", body = BillingResponse)),
    security(("bearer" = [])))]
pub async fn get(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    let v = match billing::view(&*st.store, &caller, &st.prices).await {
        Ok(v) => v,
        Err(e) => return Err(audited(&st, &caller, "view_billing", e).await),
    };
    Ok(HttpResponse::Ok().json(BillingResponse {
        subscription: SubscriptionResponse::of(&v.subscription, st.clock.now()),
        prices: v.prices,
        limits: serde_json::to_value(v.limits).map_err(ApiError::internal)?,
    }))
}

async fn apply(
    st: &AppState,
    caller: &tenancy::Caller,
    change: Change,
) -> Result<HttpResponse, ApiError> {
    let now = st.clock.now();
    let (sub, invoice) = match billing::change(&*st.store, st.payments(), caller, change, now).await
    {
        Ok(r) => r,
        Err(e) => return Err(audited(st, caller, "change_subscription", e).await),
    };
    Ok(HttpResponse::Ok().json(ChangeResponse {
        subscription: SubscriptionResponse::of(&sub, now),
        invoice: invoice.as_ref().map(InvoiceResponse::from),
    }))
}

/// Changes the plan or billing cycle (the Owner). A paid plan starts a new period now and is
/// invoiced; leaving Enterprise archives the audit log and takes access from everyone but the
/// Owner until the organization returns to Enterprise.
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/billing/subscription", tag = "billing",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = SubscribeBody,
    responses(
        (status = 200, description = "Changed", body = ChangeResponse),
        (status = 400, description = "Unknown plan or cycle", content_type = "application/problem+json"),
        (status = 402, description = "The payment provider refused the charge", content_type = "application/problem+json"),
        (status = 403, description = "Not the Owner", content_type = "application/problem+json"),
        (status = 409, description = "Already on that plan and cycle, already cancelled, or changed meanwhile", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn subscribe(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<SubscribeBody>,
) -> Result<HttpResponse, ApiError> {
    let change = parse_change(&body.plan, body.cycle.as_deref())?;
    apply(&st, &caller, change).await
}

/// Starts the 14-day Enterprise trial (once per organization; the Owner). When it ends the
/// organization returns to its plan before the trial.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/billing/trial", tag = "billing",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "Trial started", body = ChangeResponse),
        (status = 403, description = "Not the Owner", content_type = "application/problem+json"),
        (status = 409, description = "The trial was used, or the organization is on Enterprise", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn start_trial(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    apply(&st, &caller, Change::StartTrial).await
}

/// The organization's invoices, newest first, a page at a time (the Owner).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/billing/invoices", tag = "billing",
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses((status = 200, description = "One page of invoices", body = inline(Page<InvoiceResponse>))),
    security(("bearer" = [])))]
pub async fn invoices(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let before = q.cursor.as_deref();
    let list = match billing::invoices(&*st.store, &caller, before, limit).await {
        Ok(l) => l,
        // The cursor names no invoice of this organization.
        Err(tenancy::TenancyError::NotFound(_)) if before.is_some() => {
            return Err(ApiError::bad_request("`cursor` is not valid"));
        }
        Err(e) => return Err(audited(&st, &caller, "view_invoices", e).await),
    };
    let items: Vec<InvoiceResponse> = list.iter().map(InvoiceResponse::from).collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |i| i.number.clone())))
}
