//! Team credits: balances, purchases and their allocation, consumption, transfers, reversals,
//! history and the chargeback report (rules in `tenancy::credits` and
//! `billing_limits::credits`).
//!
//! Writes take an `Idempotency-Key` header (required for consumption): a retry with the same
//! key answers the first result with `Idempotent-Replayed: true` and changes nothing; the same
//! key with another request is refused with 422. Keys are the organization's, except a
//! consumption's, which are its team's own (two teams' clients may choose the same key).

use actix_web::{HttpRequest, HttpResponse, web};
use billing_limits::credits::{Account, Allocation, ChargebackLine};
use chrono::{DateTime, Utc};
use rbac_core::CreditOperationId;
use serde::{Deserialize, Serialize};
use tenancy::credits::{self, CreditAccountState, CreditEntry, OperationResult};
use utoipa::{IntoParams, ToSchema};

use super::billing::InvoiceResponse;
use super::teams::team_id;
use crate::auth::{OrgCaller, audited};
use crate::error::ApiError;
use crate::state::AppState;

/// One credit account.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditAccountResponse {
    /// `pool` (bought, not allocated) or a team id.
    pub account: String,
    /// The team's name (empty for the pool).
    pub name: String,
    /// Balance in credits.
    pub balance: i64,
    /// How far below zero the balance may go.
    pub overdraft: i64,
    /// Below this balance a low-credit alert goes out (null: none).
    pub low_threshold: Option<i64>,
    /// The team's share of pool purchases, in percent.
    pub allocation_percent: u8,
}

impl From<&CreditAccountState> for CreditAccountResponse {
    fn from(a: &CreditAccountState) -> Self {
        Self {
            account: a.account.key(),
            name: a.name.clone(),
            balance: a.balance,
            overdraft: a.overdraft,
            low_threshold: a.low_threshold,
            allocation_percent: a.allocation_percent,
        }
    }
}

/// One immutable ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditEntryResponse {
    /// Position in the organization's ledger (the history's cursor).
    pub seq: i64,
    /// The operation it belongs to.
    pub operation_id: String,
    /// `pool` or a team id.
    pub account: String,
    /// `purchase`, `allocation`, `consumption`, `transfer` or `reversal`.
    pub kind: String,
    /// Signed amount.
    pub amount: i64,
    /// The balance after it.
    pub balance_after: i64,
    /// Description.
    pub description: String,
    /// Who (name at the time).
    pub actor: String,
    /// When (RFC 3339).
    pub created_at: String,
}

impl From<&CreditEntry> for CreditEntryResponse {
    fn from(e: &CreditEntry) -> Self {
        Self {
            seq: e.seq,
            operation_id: e.operation.to_string(),
            account: e.account.key(),
            kind: e.kind.as_str().into(),
            amount: e.amount,
            balance_after: e.balance_after,
            description: e.description.clone(),
            actor: e.actor.clone(),
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

/// What an operation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationResponse {
    /// The operation.
    pub operation_id: String,
    /// Whether this request repeated an applied idempotency key (nothing changed now).
    pub replayed: bool,
    /// Its entries.
    pub entries: Vec<CreditEntryResponse>,
    /// The invoice for a purchase.
    pub invoice: Option<InvoiceResponse>,
}

fn operation_response(r: &OperationResult) -> HttpResponse {
    let body = OperationResponse {
        operation_id: r.operation.to_string(),
        replayed: r.replayed,
        entries: r.entries.iter().map(CreditEntryResponse::from).collect(),
        invoice: r.invoice.as_ref().map(InvoiceResponse::from),
    };
    if r.replayed {
        HttpResponse::Ok()
            .insert_header(("Idempotent-Replayed", "true"))
            .json(body)
    } else {
        HttpResponse::Created().json(body)
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    req.headers()
        .get("Idempotency-Key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request("`Idempotency-Key` must be visible ASCII"))
        })
        .transpose()
}

fn account(s: &str) -> Result<Account, ApiError> {
    Account::parse(s).ok_or_else(|| ApiError::not_found("credit account"))
}

fn accounts_json(list: &[CreditAccountState]) -> HttpResponse {
    HttpResponse::Ok().json(
        list.iter()
            .map(CreditAccountResponse::from)
            .collect::<Vec<_>>(),
    )
}

/// Every account: the pool and each team (the Owner).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/credits", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id")),
    responses((status = 200, description = "Accounts", body = Vec<CreditAccountResponse>)),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    match credits::accounts(&*st.store, &caller).await {
        Ok(l) => Ok(accounts_json(&l)),
        Err(e) => Err(audited(&st, &caller, "view_credits", e).await),
    }
}

/// One team's account (anyone who sees the team).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/teams/{team_id}/credits", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id")),
    responses(
        (status = 200, description = "The account", body = CreditAccountResponse),
        (status = 404, description = "No such team for the caller", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn team(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let team = team_id(&path.1)?;
    match credits::team_account(&*st.store, &caller, team).await {
        Ok(a) => Ok(HttpResponse::Ok().json(CreditAccountResponse::from(&a))),
        Err(e) => Err(audited(&st, &caller, "view_team_credits", e).await),
    }
}

/// A purchase.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// `pool` (split across teams by the allocation at once) or a team id.
    pub account: String,
    /// Credits to buy.
    pub amount: i64,
}

/// Buys credits (the Owner; invoiced through the payment provider).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/credits/purchases", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"),
        ("Idempotency-Key" = String, Header, description = "Required; the same key charges and applies once")),
    request_body = PurchaseBody,
    responses(
        (status = 201, description = "Bought", body = OperationResponse),
        (status = 200, description = "A retry of an applied key: the first result", body = OperationResponse),
        (status = 400, description = "No idempotency key", content_type = "application/problem+json"),
        (status = 402, description = "The payment provider refused the charge", content_type = "application/problem+json"),
        (status = 404, description = "No such team", content_type = "application/problem+json"),
        (status = 409, description = "The team is archived", content_type = "application/problem+json"),
        (status = 422, description = "Bad amount, or the key was used for another request", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn purchase(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    req: HttpRequest,
    body: crate::extract::Json<PurchaseBody>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?
        .ok_or_else(|| ApiError::bad_request("the `Idempotency-Key` header is required"))?;
    let account = account(&body.account)?;
    match credits::purchase(
        &*st.store,
        st.payments(),
        &caller,
        account,
        body.amount,
        &key,
        st.clock.now(),
    )
    .await
    {
        Ok(r) => Ok(operation_response(&r)),
        Err(e) => Err(audited(&st, &caller, "purchase_credits", e).await),
    }
}

/// A consumption.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumeBody {
    /// Credits used.
    pub amount: i64,
    /// What they were used for.
    pub description: Option<String>,
}

/// Records that the team used credits (members who may use the team's chat interfaces, also
/// with an API key). The `Idempotency-Key` header is required: the same key applies once.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/teams/{team_id}/credits/consumptions", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"), ("team_id" = String, Path, description = "Team id"),
        ("Idempotency-Key" = String, Header, description = "Required; the same key applies once")),
    request_body = ConsumeBody,
    responses(
        (status = 201, description = "Recorded", body = OperationResponse),
        (status = 200, description = "A retry of an applied key: the first result", body = OperationResponse),
        (status = 400, description = "No idempotency key", content_type = "application/problem+json"),
        (status = 404, description = "No such team", content_type = "application/problem+json"),
        (status = 409, description = "Not enough credits (beyond the overdraft), or the team is archived", content_type = "application/problem+json"),
        (status = 422, description = "Bad amount, or the key was used for another amount", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn consume(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<ConsumeBody>,
) -> Result<HttpResponse, ApiError> {
    let team = team_id(&path.1)?;
    let key = idempotency_key(&req)?
        .ok_or_else(|| ApiError::bad_request("the `Idempotency-Key` header is required"))?;
    match credits::consume(
        &*st.store,
        &caller,
        team,
        body.amount,
        &key,
        body.description.as_deref().unwrap_or("Consumption"),
        st.clock.now(),
    )
    .await
    {
        Ok(r) => Ok(operation_response(&r)),
        Err(e) => Err(audited(&st, &caller, "consume_credits", e).await),
    }
}

/// A transfer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// `pool` or a team id.
    pub from: String,
    /// `pool` or a team id.
    pub to: String,
    /// Credits to move.
    pub amount: i64,
}

/// Moves credits between accounts (the Owner; the total is conserved).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/credits/transfers", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")),
    request_body = TransferBody,
    responses(
        (status = 201, description = "Moved", body = OperationResponse),
        (status = 200, description = "A retry of an applied key: the first result", body = OperationResponse),
        (status = 404, description = "No such team", content_type = "application/problem+json"),
        (status = 409, description = "Not enough credits in the source, or a team is archived (a retry of an applied key is answered with it all the same)", content_type = "application/problem+json"),
        (status = 422, description = "Bad amount, the same account twice, or the key was used for another request", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn transfer(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    req: HttpRequest,
    body: crate::extract::Json<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let (from, to) = (account(&body.from)?, account(&body.to)?);
    match credits::transfer(
        &*st.store,
        &caller,
        from,
        to,
        body.amount,
        key,
        st.clock.now(),
    )
    .await
    {
        Ok(r) => Ok(operation_response(&r)),
        Err(e) => Err(audited(&st, &caller, "transfer_credits", e).await),
    }
}

/// Why an operation is reversed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseBody {
    /// The reason, kept in the ledger and the audit log.
    pub reason: String,
}

/// Cancels an operation with compensating entries (the Owner; once per operation).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/credits/operations/{operation_id}/reversal", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"), ("operation_id" = String, Path, description = "Operation id")),
    request_body = ReverseBody,
    responses(
        (status = 201, description = "Reversed", body = OperationResponse),
        (status = 404, description = "No such operation", content_type = "application/problem+json"),
        (status = 409, description = "Reversed already, or the balances cannot carry it", content_type = "application/problem+json"),
        (status = 422, description = "No reason, or the operation is itself a reversal", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn reverse(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<ReverseBody>,
) -> Result<HttpResponse, ApiError> {
    let op: CreditOperationId = path
        .1
        .parse()
        .map_err(|_| ApiError::not_found("credit operation"))?;
    match credits::reverse(&*st.store, &caller, op, &body.reason, st.clock.now()).await {
        Ok(r) => Ok(operation_response(&r)),
        Err(e) => Err(audited(&st, &caller, "reverse_credits", e).await),
    }
}

/// One team's share.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationItem {
    /// Team id.
    pub team_id: String,
    /// Whole percent, 1 to 100.
    pub percent: i64,
}

/// The allocation of pool purchases across teams.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationsBody {
    /// At most 100 % in all; the rest stays in the pool.
    pub allocations: Vec<AllocationItem>,
}

/// Replaces the allocation (the Owner).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/credits/allocations", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = AllocationsBody,
    responses(
        (status = 200, description = "The accounts with their shares", body = Vec<CreditAccountResponse>),
        (status = 404, description = "No such team", content_type = "application/problem+json"),
        (status = 409, description = "A team is archived", content_type = "application/problem+json"),
        (status = 422, description = "Over 100 %, a team twice, or a share outside 1–100", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn set_allocations(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<AllocationsBody>,
) -> Result<HttpResponse, ApiError> {
    let plan = body
        .allocations
        .iter()
        .map(|a| {
            // Out of range is a bad value (422, as the domain answers 0 or 101), not bad JSON.
            let percent = u8::try_from(a.percent).map_err(|_| {
                ApiError::invalid_input(format!(
                    "a team's share is 1 to 100 percent, not {}",
                    a.percent
                ))
            })?;
            Ok(Allocation::new(team_id(&a.team_id)?, percent))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    match credits::set_allocations(&*st.store, &caller, plan, st.clock.now()).await {
        Ok(l) => Ok(accounts_json(&l)),
        Err(e) => Err(audited(&st, &caller, "allocate_credits", e).await),
    }
}

/// An account's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSettingsBody {
    /// How far below zero debits may take the balance (team accounts; 0 = none).
    pub overdraft: i64,
    /// Below this balance a low-credit alert goes out (null: no alerts).
    pub low_threshold: Option<i64>,
}

/// Sets an account's overdraft and low-credit threshold (the Owner).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/credits/accounts/{account}", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"), ("account" = String, Path, description = "`pool` or a team id")),
    request_body = AccountSettingsBody,
    responses(
        (status = 200, description = "The account", body = CreditAccountResponse),
        (status = 404, description = "No such team", content_type = "application/problem+json"),
        (status = 409, description = "The team is archived", content_type = "application/problem+json"),
        (status = 422, description = "Out of range, or an overdraft on the pool", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn configure(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<AccountSettingsBody>,
) -> Result<HttpResponse, ApiError> {
    let account = account(&path.1)?;
    match credits::configure(
        &*st.store,
        &caller,
        account,
        body.overdraft,
        body.low_threshold,
        st.clock.now(),
    )
    .await
    {
        Ok(a) => Ok(HttpResponse::Ok().json(CreditAccountResponse::from(&a))),
        Err(e) => Err(audited(&st, &caller, "configure_credits", e).await),
    }
}

/// History filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `pool` or a team id (all accounts when absent: the Owner only).
    pub account: Option<String>,
    /// Entries before this `seq` (the previous page's last).
    pub before: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// Ledger entries, newest first: one team's (anyone who sees it) or all (the Owner).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/credits/entries", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"), HistoryQuery),
    responses((status = 200, description = "Entries", body = Vec<CreditEntryResponse>)),
    security(("bearer" = [])))]
pub async fn entries(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let account = q.account.as_deref().map(account).transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 500"));
    }
    match credits::history(&*st.store, &caller, account, q.before, limit).await {
        Ok(l) => Ok(
            HttpResponse::Ok().json(l.iter().map(CreditEntryResponse::from).collect::<Vec<_>>())
        ),
        Err(e) => Err(audited(&st, &caller, "view_credit_history", e).await),
    }
}

/// The report's period and format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChargebackQuery {
    /// Start, inclusive (RFC 3339).
    pub from: String,
    /// End, exclusive (RFC 3339).
    pub to: String,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// One line of the chargeback report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargebackLineResponse {
    /// `pool` or a team id.
    pub account: String,
    /// The team's name.
    pub name: String,
    /// Balance at the start.
    pub opening_balance: i64,
    /// Bought into the account.
    pub purchased: i64,
    /// Received (+) or handed out (−) by the allocation.
    pub allocated: i64,
    /// Net transfers.
    pub transferred: i64,
    /// Consumed.
    pub consumed: i64,
    /// Net reversals.
    pub reversed: i64,
    /// Balance at the end.
    pub closing_balance: i64,
}

impl From<&ChargebackLine> for ChargebackLineResponse {
    fn from(l: &ChargebackLine) -> Self {
        Self {
            account: l.account.clone(),
            name: l.name.clone(),
            opening_balance: l.opening_balance,
            purchased: l.purchased,
            allocated: l.allocated,
            transferred: l.transferred,
            consumed: l.consumed,
            reversed: l.reversed,
            closing_balance: l.closing_balance,
        }
    }
}

fn rfc3339(field: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request(format!("`{field}` must be an RFC 3339 time")))
}

/// What each account received and used in a period, with opening and closing balances, as
/// JSON or CSV (the Owner).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/credits/chargeback", tag = "credits",
    params(("org_id" = String, Path, description = "Organization id"), ChargebackQuery),
    responses(
        (status = 200, description = "The report (JSON lines, or CSV with a header row)", content(
            (Vec<ChargebackLineResponse> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A time that is not RFC 3339, or an unknown format", content_type = "application/problem+json"),
        (status = 422, description = "`to` is not after `from`", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn chargeback(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<ChargebackQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (rfc3339("from", &q.from)?, rfc3339("to", &q.to)?);
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad_request("`format` must be json or csv")),
    };
    let lines = match credits::chargeback(&*st.store, &caller, from, to).await {
        Ok(l) => l,
        Err(e) => return Err(audited(&st, &caller, "credit_chargeback", e).await),
    };
    // The report is an export of the ledger: audited, in either format.
    let record = caller
        .audit(
            st.clock.now(),
            audit::AuditAction::DataExported,
            audit::Target::new("credit_ledger", caller.org.id, "chargeback report"),
        )
        .with_metadata(audit::Metadata::from_value(serde_json::json!({
            "format": if csv { "csv" } else { "json" },
            "from": q.from, "to": q.to,
        }))?);
    audit::AuditStore::append(&*st.store, audit::Journal::record(record)).await?;
    if csv {
        let body = billing_limits::credits::chargeback_csv(&lines).map_err(ApiError::internal)?;
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"chargeback.csv\"",
            ))
            .body(body));
    }
    Ok(HttpResponse::Ok().json(
        lines
            .iter()
            .map(ChargebackLineResponse::from)
            .collect::<Vec<_>>(),
    ))
}
