//! Team credits: purchases (top-ups) and their allocation across teams, consumption with
//! idempotency keys, transfers, reversals, low-credit alerts, history and the chargeback report.
//!
//! The ledger rules are `billing_limits::credits`'. Entries are never changed: a correction is
//! a reversal (compensating entries). Every operation is applied by [`CreditStore::post_credits`]
//! in one transaction with its audit record: the balances are checked and changed there with
//! conditional updates, so concurrent operations never overdraw an account, and an idempotency
//! key applies once however many times (and however concurrently) it is sent.
//!
//! Who may do what: the Owner (billing) buys, allocates, transfers, reverses, configures and
//! reads everything; members who may use a team's chat interfaces consume its credits (also with
//! an API key); anyone who sees a team sees its balance and history.

use std::collections::BTreeMap;

use async_trait::async_trait;
use audit::{
    Actor, AuditAction, DomainEvent, EventKind, Journal, Metadata, NewAuditEvent, OutboundMail,
    Target,
};
use billing_limits::credits::{
    self, Account, Allocation, ChargebackLine, CreditError, EntryKind, Posting, ReportEntry,
};
use chrono::{DateTime, Utc};
use rbac_core::{CreditOperationId, OrgId, Permission, Resource, TeamId};
use serde::Serialize;
use serde_json::json;

use crate::billing::{Invoice, Payments};
use crate::caller::Caller;
use crate::error::TenancyError;
use crate::store::{TenancyStore, WorkspaceStore};

/// One account's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditAccountState {
    /// The account.
    pub account: Account,
    /// The team's name (empty for the pool).
    pub name: String,
    /// Its balance.
    pub balance: i64,
    /// How far below zero debits may take it.
    pub overdraft: i64,
    /// Below this balance a low-credit alert goes out.
    pub low_threshold: Option<i64>,
    /// The team's share of pool purchases, in percent.
    pub allocation_percent: u8,
}

/// One immutable ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditEntry {
    /// Position in the organization's ledger.
    pub seq: i64,
    /// The operation it belongs to.
    pub operation: CreditOperationId,
    /// The account.
    pub account: Account,
    /// What it is.
    pub kind: EntryKind,
    /// Signed amount.
    pub amount: i64,
    /// The account's balance after it.
    pub balance_after: i64,
    /// The operation's description.
    pub description: String,
    /// Who did it (name at the time).
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An operation to apply.
#[derive(Debug, Clone)]
pub struct NewOperation {
    /// Its id.
    pub id: CreditOperationId,
    /// The organization.
    pub org: OrgId,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// The canonical description of the request ([`credits::fingerprint`]).
    pub fingerprint: String,
    /// `purchase`, `consumption`, `transfer` or `reversal`.
    pub kind: EntryKind,
    /// The operation it cancels (reversals; one reversal per operation).
    pub reverses: Option<CreditOperationId>,
    /// The postings, applied in order.
    pub postings: Vec<Posting>,
    /// A description for the history.
    pub description: String,
    /// Who (name at the time).
    pub actor: String,
    /// Who, by id (a user's, an API key's or a SCIM token's, as in the audit log): an erasure
    /// of the person finds their entries by it.
    pub actor_id: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The low-credit alerts its debits may set off, which the store commits with it.
    pub low_credit: LowCreditAlerts,
}

/// Who is told when a debit takes a team below its low-credit threshold, gathered before an
/// operation runs, so that the store can commit each alert the operation sets off in the
/// operation's own transaction: the threshold and the fall are read there, and a crash after
/// the commit cannot lose the alert's audit record, webhook event or mail.
///
/// Only teams that had a threshold when it was gathered have their recipients; a team whose
/// threshold was set in the meantime still gets its audit record and webhook event, without
/// mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LowCreditAlerts {
    org_name: String,
    teams: BTreeMap<TeamId, AlertedTeam>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AlertedTeam {
    name: String,
    to: Vec<String>,
}

/// An alert that an operation's entries set off, for the store to record once (the key of
/// [`MeteringStore::record_alert`](crate::metering::MeteringStore::record_alert): `limit`, `period`, `threshold`) and, when it was not
/// recorded before, to commit `journal` with the operation.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredAlert {
    /// `credits_low:<team id>`.
    pub limit: String,
    /// The sequence number of the entry that fell below the threshold.
    pub period: String,
    /// The threshold.
    pub threshold: u64,
    /// The alert's audit record, `credits.low` event and mails.
    pub journal: Journal,
}

impl LowCreditAlerts {
    /// No alerts prepared: fired alerts still get their record and event, without mail.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Alerts in the organization named `org_name`, telling no one yet.
    #[must_use]
    pub fn new(org_name: impl Into<String>) -> Self {
        Self {
            org_name: org_name.into(),
            teams: BTreeMap::new(),
        }
    }

    /// Tells `to` when the team `team` (named `name`) falls below its threshold.
    #[must_use]
    pub fn tell(mut self, team: TeamId, name: impl Into<String>, to: Vec<String>) -> Self {
        self.teams.insert(
            team,
            AlertedTeam {
                name: name.into(),
                to,
            },
        );
        self
    }

    /// The alerts `entries` set off: each team debit that takes the balance from at or above
    /// the account's threshold (`threshold_of`, read in the operation's transaction) to below
    /// it, once per fall.
    ///
    /// # Errors
    /// [`TenancyError::Invalid`] if the alert's metadata cannot be built (it always can).
    pub fn fired(
        &self,
        org: OrgId,
        entries: &[CreditEntry],
        threshold_of: impl Fn(Account) -> Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Vec<FiredAlert>, TenancyError> {
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| e.amount < 0) {
            let Some(team) = e.account.team() else {
                continue;
            };
            let threshold = threshold_of(e.account);
            if !credits::fell_below(e.balance_after - e.amount, e.balance_after, threshold) {
                continue;
            }
            let threshold = threshold.unwrap_or_default();
            let known = self.teams.get(&team);
            let name = known.map_or_else(|| team.to_string(), |t| t.name.clone());
            let data =
                json!({ "teamId": team, "balance": e.balance_after, "threshold": threshold });
            let mut journal = Journal::record(
                NewAuditEvent::new(
                    org,
                    now,
                    Actor::system(),
                    AuditAction::CreditsLow,
                    Target::new("team", team, name.clone()),
                )
                .with_metadata(Metadata::from_value(data.clone())?),
            )
            .publish(DomainEvent::new(org, EventKind::CreditsLow, now, data));
            for to in known.map(|t| t.to.as_slice()).unwrap_or_default() {
                journal = journal.mail(OutboundMail {
                    org: Some(org),
                    to: to.clone(),
                    subject: format!("{}: team {name} is low on credits", self.org_name),
                    body: format!(
                        "The team {name} has {} credits left, below its alert threshold of {threshold}.\n\nBuy credits for it, or transfer some from another team.",
                        e.balance_after
                    ),
                    kind: "credits_low".into(),
                });
            }
            out.push(FiredAlert {
                limit: format!("credits_low:{team}"),
                period: e.seq.to_string(),
                threshold: u64::try_from(threshold).unwrap_or(0),
                journal,
            });
        }
        Ok(out)
    }
}

/// What [`CreditStore::post_credits`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// Applied now.
    Applied(Vec<CreditEntry>),
    /// The idempotency key was applied before: its entries, nothing changed.
    Replayed(Vec<CreditEntry>),
}

impl Posted {
    /// The entries.
    #[must_use]
    pub fn entries(&self) -> &[CreditEntry] {
        match self {
            Posted::Applied(e) | Posted::Replayed(e) => e,
        }
    }
}

/// An operation read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    /// Its kind.
    pub kind: EntryKind,
    /// The reversal that cancelled it, if any.
    pub reversed_by: Option<CreditOperationId>,
    /// Its entries, in order.
    pub entries: Vec<CreditEntry>,
    /// The number of the invoice issued with it (a purchase), if any.
    pub invoice: Option<String>,
}

/// Storage of the credit ledger.
#[async_trait]
pub trait CreditStore: Send + Sync {
    /// The organization's accounts that have a row (pool and teams), unordered.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn credit_accounts(&self, org: OrgId) -> Result<Vec<CreditAccountState>, TenancyError>;

    /// Applies `op` in one transaction: a key seen before answers [`Posted::Replayed`] with its
    /// entries when the fingerprint matches and [`CreditError::KeyReused`] when not; otherwise each
    /// posting changes its account's balance (creating the account at zero), a debit only if the
    /// balance stays at or above minus the account's overdraft ([`CreditError::Insufficient`]
    /// otherwise, and nothing is applied); entries are written with the balance after them; a
    /// reversal is refused ([`TenancyError::Conflict`]) if its operation was reversed before. The
    /// invoice and `journal` commit with it; the operation keeps the invoice's number. A
    /// reversal voids the reversed operation's invoice if it is still open
    /// ([`ChargeStatus::Void`](billing_limits::payment::ChargeStatus::Void)); a paid one stays
    /// paid (the money goes back through the payment provider, outside this store).
    /// The low-credit alerts the entries set off ([`LowCreditAlerts::fired`] on
    /// `op.low_credit`, with each account's threshold as read in the transaction) are recorded
    /// once each, as [`MeteringStore::record_alert`](crate::metering::MeteringStore::record_alert) records them, and the journals of those
    /// recorded now commit with the operation.
    ///
    /// # Errors
    /// As above; [`TenancyError::Store`].
    async fn post_credits(
        &self,
        op: &NewOperation,
        invoice: Option<&Invoice>,
        journal: Journal,
    ) -> Result<Posted, TenancyError>;

    /// The operation applied under `key`: its fingerprint and entries.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn credit_operation_by_key(
        &self,
        org: OrgId,
        key: &str,
    ) -> Result<Option<(String, Vec<CreditEntry>)>, TenancyError>;

    /// One operation with its entries.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn credit_operation(
        &self,
        org: OrgId,
        id: CreditOperationId,
    ) -> Result<Option<OperationRecord>, TenancyError>;

    /// Replaces the allocation: the listed teams get their percentage, every other team zero.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn set_allocations(
        &self,
        org: OrgId,
        plan: &[Allocation],
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Sets an account's overdraft and low-credit threshold (creating the account at zero).
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn configure_credit_account(
        &self,
        org: OrgId,
        account: Account,
        overdraft: i64,
        low_threshold: Option<i64>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Entries newest first, of one account or all, before the keyset cursor `before` (a seq).
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn credit_history(
        &self,
        org: OrgId,
        account: Option<Account>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CreditEntry>, TenancyError>;

    /// Entries oldest first after the cursor `after`, created before `until` (for reports).
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn credit_ledger(
        &self,
        org: OrgId,
        after: Option<i64>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CreditEntry>, TenancyError>;
}

/// Every account with its team's name: the pool and every team (zero when it has no entries).
///
/// # Errors
/// [`TenancyError::Forbidden`] without the billing permission.
pub async fn accounts<S: CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
) -> Result<Vec<CreditAccountState>, TenancyError> {
    caller.check_org(Permission::ViewBilling)?;
    all_accounts(store, caller.org.id).await
}

async fn all_accounts<S: CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    org: OrgId,
) -> Result<Vec<CreditAccountState>, TenancyError> {
    let mut rows: BTreeMap<Account, CreditAccountState> = store
        .credit_accounts(org)
        .await?
        .into_iter()
        .map(|a| (a.account, a))
        .collect();
    let blank = |account, name: String| CreditAccountState {
        account,
        name,
        balance: 0,
        overdraft: 0,
        low_threshold: None,
        allocation_percent: 0,
    };
    rows.entry(Account::Pool)
        .or_insert_with(|| blank(Account::Pool, String::new()));
    for t in store.list_teams(org).await? {
        rows.entry(Account::Team(t.id))
            .or_insert_with(|| blank(Account::Team(t.id), String::new()))
            .name = t.name;
    }
    Ok(rows.into_values().collect())
}

/// One team's account and its latest entries (anyone who sees the team).
///
/// # Errors
/// [`TenancyError::NotFound`] for a team the caller cannot see.
pub async fn team_account<S: CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
) -> Result<CreditAccountState, TenancyError> {
    let t = visible_team(store, caller, team).await?;
    all_accounts(store, caller.org.id)
        .await?
        .into_iter()
        .find(|a| a.account == Account::Team(t.id))
        .ok_or(TenancyError::NotFound("team"))
}

async fn visible_team<S: WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
) -> Result<crate::model::Team, TenancyError> {
    let t = store
        .get_team(caller.org.id, team)
        .await?
        .ok_or(TenancyError::NotFound("team"))?;
    caller
        .check(Permission::ViewTeam, &Resource::team(t.org, t.id))
        .map_err(|e| e.not_found_as("team"))?;
    Ok(t)
}

/// Entries newest first: of one team (anyone who sees it), or of the pool or all accounts
/// (billing readers).
///
/// # Errors
/// [`TenancyError::Forbidden`], [`TenancyError::NotFound`].
pub async fn history<S: CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    account: Option<Account>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<CreditEntry>, TenancyError> {
    match account {
        Some(Account::Team(t)) => {
            visible_team(store, caller, t).await?;
        }
        _ => {
            caller.check_org(Permission::ViewBilling)?;
        }
    }
    let mut entries = store
        .credit_history(caller.org.id, account, before, limit.clamp(1, 500))
        .await?;
    // A team's members who do not see billing read their team's entries described without
    // what an operation says of the organization's billing or of other teams: a purchase's
    // invoice number and total, a transfer's other account, a reversal's reason.
    if caller.check_org(Permission::ViewBilling).is_err() {
        for e in &mut entries {
            if let Some(d) = team_description(e) {
                e.description = d.to_owned();
            }
        }
    }
    Ok(entries)
}

/// How an entry of `e`'s kind is described to a team's members who do not see billing; `None`
/// keeps the entry's own (a consumption's, which the team's member gave).
fn team_description(e: &CreditEntry) -> Option<&'static str> {
    match e.kind {
        EntryKind::Consumption => None,
        EntryKind::Purchase | EntryKind::Allocation => Some("Credits from a purchase"),
        EntryKind::Transfer if e.amount >= 0 => Some("Credits transferred in"),
        EntryKind::Transfer => Some("Credits transferred out"),
        EntryKind::Reversal => Some("Reversal of an earlier operation"),
    }
}

/// What a credit operation did, for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationResult {
    /// The operation.
    pub operation: CreditOperationId,
    /// Whether this request repeated an applied idempotency key (nothing changed now).
    pub replayed: bool,
    /// Its entries.
    pub entries: Vec<CreditEntry>,
    /// The invoice issued, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Invoice>,
}

fn result_of(posted: Posted, invoice: Option<Invoice>) -> OperationResult {
    let replayed = matches!(posted, Posted::Replayed(_));
    let entries = posted.entries().to_vec();
    OperationResult {
        operation: entries
            .first()
            .map_or_else(CreditOperationId::new, |e| e.operation),
        replayed,
        invoice,
        entries,
    }
}

/// The idempotency key to use: the caller's, or a fresh one (the request is then not retryable).
fn key_or_fresh(key: Option<String>) -> Result<String, TenancyError> {
    match key {
        Some(k) => {
            credits::check_idempotency_key(&k)?;
            Ok(k)
        }
        None => Ok(CreditOperationId::new().to_string()),
    }
}

/// Refuses an account of a team that is gone ([`TenancyError::NotFound`]) or archived
/// ([`TenancyError::Archived`], as the store refuses it in the write, saying `what`).
async fn live_team<S: WorkspaceStore + ?Sized>(
    store: &S,
    org: OrgId,
    account: Account,
    what: &str,
) -> Result<(), TenancyError> {
    if let Account::Team(t) = account {
        let team = store
            .get_team(org, t)
            .await?
            .ok_or(TenancyError::NotFound("team"))?;
        if team.archived_at.is_some() {
            return Err(crate::teams::archived(&team.name, what));
        }
    }
    Ok(())
}

/// A consumption's idempotency key as stored: the client's key in its team's own space (teams
/// are separate tenants of an organization, each with its own clients choosing keys: one
/// team's key neither replays nor blocks another's). The space between them keeps these apart
/// from the keys clients give for other operations, which have none
/// (`credits::check_idempotency_key`).
fn consumption_key(team: TeamId, key: &str) -> String {
    format!("{team} {key}")
}

/// Replays an applied key without doing anything, or refuses a key reused for another request.
async fn replay<S: CreditStore + ?Sized>(
    store: &S,
    org: OrgId,
    key: &str,
    fingerprint: &str,
) -> Result<Option<OperationResult>, TenancyError> {
    match store.credit_operation_by_key(org, key).await? {
        Some((f, entries)) if f == fingerprint => {
            Ok(Some(result_of(Posted::Replayed(entries), None)))
        }
        Some(_) => Err(CreditError::KeyReused(key.to_owned()).into()),
        None => Ok(None),
    }
}

/// The Owner buys `amount` credits into `account`. Bought into the pool, they are split by the
/// allocation at once (what rounding leaves, and an archived team's share, stays in the pool).
/// Charged through the payment provider (an invoice) and applied once per idempotency key,
/// which the caller must give: a retried request (a timeout, a proxy) with a fresh key would
/// charge again.
///
/// # Errors
/// [`TenancyError::Forbidden`], [`TenancyError::Credit`], [`TenancyError::Payment`];
/// [`TenancyError::NotFound`] or [`TenancyError::Archived`] for a team gone or archived.
pub async fn purchase<
    S: TenancyStore + CreditStore + WorkspaceStore + crate::billing::BillingStore + ?Sized,
>(
    store: &S,
    payments: Payments<'_>,
    caller: &Caller,
    account: Account,
    amount: i64,
    key: &str,
    now: DateTime<Utc>,
) -> Result<OperationResult, TenancyError> {
    caller.check_org(Permission::ManageBilling)?;
    credits::check_idempotency_key(key)?;
    let key = key.to_owned();
    // The request's fingerprint is its first posting (what was bought, into which account),
    // whatever the allocation adds; a retry of a purchase that was posted is answered with it,
    // whatever became of its team since. (Not covered: one charged and never posted, its
    // server stopped between the two, is refused on retry while its team is archived or gone,
    // and its charge stays with the provider.)
    let fingerprint = credits::fingerprint("purchase", &credits::purchase(account, amount, &[])?);
    if let Some(mut r) = replay(store, caller.org.id, &key, &fingerprint).await? {
        // Answered as the first time: with the purchase's invoice as stored now.
        let number = store
            .credit_operation(caller.org.id, r.operation)
            .await?
            .and_then(|o| o.invoice);
        if let Some(number) = number {
            r.invoice = store.invoice(caller.org.id, &number).await?;
        }
        return Ok(r);
    }
    live_team(
        store,
        caller.org.id,
        account,
        "no credits are bought for it",
    )
    .await?;
    let mut postings = purchase_postings(store, caller.org.id, account, amount).await?;
    let id = CreditOperationId::new();
    let cents = payments
        .prices
        .credits_cents(u64::try_from(amount).unwrap_or(0));
    // Everything that can refuse the purchase is read before the provider is asked for money.
    let owner = crate::orgs::owner_of(store, caller.org.id).await?;
    let invoice = crate::billing::charge(
        payments,
        &caller.org,
        cents,
        format!("{amount} team credits for {account}"),
        charge_key(caller.org.id, &key),
        now,
    )
    .await?;
    // Charged: the credits are posted. A team deleted or archived since the plan was read
    // refuses its share (`NotFound`, `Archived`); the plan is read again (an archived team's
    // share stays in the pool). Should the team the credits were bought for be the one
    // deleted or archived, they go into the pool, whole (bought for one team, they are not
    // shared out among the others by the allocation): paid credits are never lost.
    let mut account = account;
    let mut tries = 0;
    loop {
        tries += 1;
        let (op, journal) = purchase_operation(
            caller,
            account,
            amount,
            &key,
            &fingerprint,
            id,
            postings,
            &invoice,
            &owner,
            now,
        )?;
        match store.post_credits(&op, Some(&invoice), journal).await {
            Err(TenancyError::NotFound("team") | TenancyError::Archived(_)) if tries < 3 => {
                if let Account::Team(t) = account
                    && store
                        .get_team(caller.org.id, t)
                        .await?
                        .is_none_or(|team| team.archived_at.is_some())
                {
                    account = Account::Pool;
                    postings = credits::purchase(account, amount, &[])?;
                } else {
                    postings = purchase_postings(store, caller.org.id, account, amount).await?;
                }
            }
            posted => return Ok(result_of(posted?, Some(invoice))),
        }
    }
}

/// The postings of a purchase of `amount` into `account` under the allocation as stored.
async fn purchase_postings<S: TenancyStore + CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    org: OrgId,
    account: Account,
    amount: i64,
) -> Result<Vec<Posting>, TenancyError> {
    // An archived team's share stays in the pool, as its credits cannot be used.
    let archived: Vec<TeamId> = store
        .list_teams(org)
        .await?
        .into_iter()
        .filter(|t| t.archived_at.is_some())
        .map(|t| t.id)
        .collect();
    let plan: Vec<Allocation> = store
        .credit_accounts(org)
        .await?
        .into_iter()
        .filter_map(|a| {
            a.account
                .team()
                .filter(|t| a.allocation_percent > 0 && !archived.contains(t))
                .map(|t| Allocation::new(t, a.allocation_percent))
        })
        .collect();
    Ok(credits::purchase(account, amount, &plan)?)
}

/// A charged purchase's operation and the journal committed with it.
#[allow(clippy::too_many_arguments, reason = "the purchase's parts")]
fn purchase_operation(
    caller: &Caller,
    account: Account,
    amount: i64,
    key: &str,
    fingerprint: &str,
    id: CreditOperationId,
    postings: Vec<Posting>,
    invoice: &Invoice,
    owner: &crate::Member,
    now: DateTime<Utc>,
) -> Result<(NewOperation, Journal), TenancyError> {
    let allocated: BTreeMap<String, i64> = postings
        .iter()
        .filter(|p| p.kind == EntryKind::Allocation && p.amount > 0)
        .map(|p| (p.account.key(), p.amount))
        .collect();
    let data = json!({
        "account": account, "amount": amount, "allocated": allocated, "invoice": invoice.number,
        "by": caller.user.id,
    });
    let journal = Journal::record(
        caller
            .audit(now, AuditAction::CreditsPurchased, account_target(account))
            .with_metadata(Metadata::from_value(json!({
                "amount": amount, "allocated": allocated, "invoice": invoice.number,
                "idempotency_key": key,
            }))?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::CreditsPurchased,
        now,
        data,
    ))
    .mail(crate::billing::invoice_mail(
        &caller.org,
        owner.user.email.as_str(),
        invoice,
    ));
    let op = NewOperation {
        id,
        org: caller.org.id,
        idempotency_key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        kind: EntryKind::Purchase,
        reverses: None,
        postings,
        description: format!("Purchase of {amount} credits ({})", invoice.number),
        actor: caller.actor().name,
        actor_id: caller.actor().id,
        created_at: now,
        low_credit: LowCreditAlerts::none(),
    };
    Ok((op, journal))
}

/// The payment provider's idempotency key for a purchase: the same for every attempt with the
/// client's key in this organization (two concurrent requests, or a retry after a failure past
/// the charge, are one charge at the provider), and unlike any other organization's.
fn charge_key(org: OrgId, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("credits-purchase\n{org}\n{key}"));
    format!("credits-{}", hex::encode(&digest[..16]))
}

fn account_target(account: Account) -> Target {
    Target::new("credit_account", account.key(), account.key())
}

/// A team uses `amount` credits, once per idempotency key (the same key with another amount is
/// refused). Members who may use the team's chat interfaces may consume. Below the team's
/// low-credit threshold the alert goes out once per fall.
///
/// # Errors
/// [`TenancyError::NotFound`] for a team the caller cannot see; [`TenancyError::Forbidden`];
/// [`TenancyError::Credit`] (insufficient, key reused, bad amount); [`TenancyError::Archived`]
/// for an archived team.
#[allow(clippy::too_many_arguments, reason = "the request's fields")]
pub async fn consume<S: TenancyStore + CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
    amount: i64,
    key: &str,
    description: &str,
    now: DateTime<Utc>,
) -> Result<OperationResult, TenancyError> {
    let t = visible_team(store, caller, team).await?;
    caller.check(Permission::UseChatInterface, &Resource::team(t.org, t.id))?;
    credits::check_idempotency_key(key)?;
    let description = crate::model::valid_name("description", description)?;
    let postings = credits::consume(team, amount)?;
    let fingerprint = credits::fingerprint("consumption", &postings);
    let stored_key = consumption_key(team, key);
    // A refusal names the key the client gave.
    let as_given = |e: TenancyError| match e {
        TenancyError::Credit(CreditError::KeyReused(_)) => {
            TenancyError::Credit(CreditError::KeyReused(key.to_owned()))
        }
        other => other,
    };
    if let Some(r) = replay(store, caller.org.id, &stored_key, &fingerprint)
        .await
        .map_err(as_given)?
    {
        return Ok(r);
    }
    // A consumption stored before keys were kept per team, under the client's key alone:
    // answered when it is this one (its fingerprint names the team); another operation
    // under that key is not this team's business.
    if let Some((f, entries)) = store.credit_operation_by_key(caller.org.id, key).await?
        && f == fingerprint
    {
        return Ok(result_of(Posted::Replayed(entries), None));
    }
    // A retry of a consumption made before the team was archived is answered above.
    if t.archived_at.is_some() {
        return Err(crate::teams::archived(&t.name, "its credits are not used"));
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::CreditsConsumed,
                Target::new("team", t.id, t.name.clone()),
            )
            .with_metadata(Metadata::from_value(json!({
                "amount": amount, "idempotency_key": key, "description": description,
            }))?),
    );
    let op = NewOperation {
        id: CreditOperationId::new(),
        org: caller.org.id,
        idempotency_key: stored_key,
        fingerprint,
        kind: EntryKind::Consumption,
        reverses: None,
        postings,
        description,
        actor: caller.actor().name,
        actor_id: caller.actor().id,
        created_at: now,
        low_credit: LowCreditAlerts::none(),
    };
    let posted = post_debits(store, &caller.org, op, journal)
        .await
        .map_err(as_given)?;
    Ok(result_of(posted, None))
}

/// The Owner moves `amount` credits between two accounts (the total is conserved).
///
/// # Errors
/// [`TenancyError::Forbidden`], [`TenancyError::Credit`]; [`TenancyError::NotFound`] or
/// [`TenancyError::Archived`] for a team gone or archived (a retry of an applied key is
/// answered with it all the same).
#[allow(clippy::too_many_arguments, reason = "the request's fields")]
pub async fn transfer<S: TenancyStore + CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    from: Account,
    to: Account,
    amount: i64,
    key: Option<String>,
    now: DateTime<Utc>,
) -> Result<OperationResult, TenancyError> {
    caller.check_org(Permission::ManageBilling)?;
    let key = key_or_fresh(key)?;
    let postings = credits::transfer(from, to, amount)?;
    let fingerprint = credits::fingerprint("transfer", &postings);
    // A retry of a transfer made before a team was archived or deleted is answered with it.
    if let Some(r) = replay(store, caller.org.id, &key, &fingerprint).await? {
        return Ok(r);
    }
    live_team(store, caller.org.id, from, "its credits do not move").await?;
    live_team(store, caller.org.id, to, "its credits do not move").await?;
    let journal = Journal::record(
        caller
            .audit(now, AuditAction::CreditsTransferred, account_target(from))
            .with_metadata(Metadata::from_value(json!({
                "from": from, "to": to, "amount": amount, "idempotency_key": key,
            }))?),
    );
    let op = NewOperation {
        id: CreditOperationId::new(),
        org: caller.org.id,
        idempotency_key: key,
        fingerprint,
        kind: EntryKind::Transfer,
        reverses: None,
        postings,
        description: format!("Transfer of {amount} credits from {from} to {to}"),
        actor: caller.actor().name,
        actor_id: caller.actor().id,
        created_at: now,
        low_credit: LowCreditAlerts::none(),
    };
    let posted = post_debits(store, &caller.org, op, journal).await?;
    Ok(result_of(posted, None))
}

/// The Owner cancels an operation with compensating entries (once; a reversal itself cannot be
/// reversed). Refused when a balance cannot carry it (credits bought and already used).
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Conflict`] (already reversed),
/// [`TenancyError::Credit`].
pub async fn reverse<S: TenancyStore + CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    operation: CreditOperationId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<OperationResult, TenancyError> {
    caller.check_org(Permission::ManageBilling)?;
    let reason = crate::model::valid_name("reason", reason)?;
    let original = store
        .credit_operation(caller.org.id, operation)
        .await?
        .ok_or(TenancyError::NotFound("credit operation"))?;
    if original.kind == EntryKind::Reversal {
        return Err(TenancyError::Invalid(
            "a reversal cannot be reversed; make a new operation instead".into(),
        ));
    }
    if original.reversed_by.is_some() {
        return Err(TenancyError::Conflict(
            "the operation was reversed already".into(),
        ));
    }
    let postings = credits::reversal_of(
        &original
            .entries
            .iter()
            .map(|e| Posting {
                account: e.account,
                amount: e.amount,
                kind: e.kind,
            })
            .collect::<Vec<_>>(),
    );
    let key = format!("reversal:{operation}");
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::CreditsReversed,
                Target::new("credit_operation", operation, original.kind.as_str()),
            )
            .with_metadata(Metadata::from_value(match &original.invoice {
                // The purchase's invoice: the store voids it if it is open; if it was paid,
                // this names the invoice whose money is owed back.
                Some(number) => json!({ "reason": reason, "invoice": number }),
                None => json!({ "reason": reason }),
            })?),
    );
    let op = NewOperation {
        id: CreditOperationId::new(),
        org: caller.org.id,
        fingerprint: credits::fingerprint("reversal", &postings),
        idempotency_key: key,
        kind: EntryKind::Reversal,
        reverses: Some(operation),
        postings,
        description: format!("Reversal of {operation}: {reason}"),
        actor: caller.actor().name,
        actor_id: caller.actor().id,
        created_at: now,
        low_credit: LowCreditAlerts::none(),
    };
    let posted = post_debits(store, &caller.org, op, journal).await?;
    if let Posted::Replayed(_) = posted {
        return Err(TenancyError::Conflict(
            "the operation was reversed already".into(),
        ));
    }
    Ok(result_of(posted, None))
}

/// The Owner sets how pool purchases are split across teams (at most 100 % in all; the rest
/// stays in the pool). Teams not listed get no share.
///
/// # Errors
/// [`TenancyError::Forbidden`], [`TenancyError::Credit`] (over 100 %, duplicates),
/// [`TenancyError::NotFound`] for a team of another organization, [`TenancyError::Archived`]
/// for an archived one.
pub async fn set_allocations<S: CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    plan: Vec<Allocation>,
    now: DateTime<Utc>,
) -> Result<Vec<CreditAccountState>, TenancyError> {
    caller.check_org(Permission::ManageBilling)?;
    credits::validate_allocations(&plan)?;
    for a in &plan {
        live_team(
            store,
            caller.org.id,
            Account::Team(a.team),
            "it takes no share of the pool",
        )
        .await?;
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::CreditAllocationChanged,
                Target::new("organization", caller.org.id, caller.org.name.clone()),
            )
            .with_metadata(Metadata::from_value(json!({ "allocations": plan }))?),
    );
    store.set_allocations(caller.org.id, &plan, journal).await?;
    all_accounts(store, caller.org.id).await
}

/// The Owner sets an account's overdraft and low-credit threshold (`None`: no alerts); both
/// are for team accounts only (the pool never goes below zero, and only the Owner's own
/// operations move it).
///
/// # Errors
/// [`TenancyError::Forbidden`], [`TenancyError::Invalid`], [`TenancyError::Archived`].
pub async fn configure<S: CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    account: Account,
    overdraft: i64,
    low_threshold: Option<i64>,
    now: DateTime<Utc>,
) -> Result<CreditAccountState, TenancyError> {
    caller.check_org(Permission::ManageBilling)?;
    live_team(store, caller.org.id, account, "its account is not changed").await?;
    if !(0..=credits::MAX_AMOUNT).contains(&overdraft) {
        return Err(TenancyError::Invalid(format!(
            "`overdraft` must be between 0 and {}",
            credits::MAX_AMOUNT
        )));
    }
    if account == Account::Pool && overdraft != 0 {
        return Err(TenancyError::Invalid(
            "the pool cannot be overdrawn; set overdrafts on team accounts".into(),
        ));
    }
    // Low-credit alerts watch what teams use; the pool only moves by the Owner's own purchases,
    // allocations and transfers, and a threshold there would be accepted and never fire.
    if account == Account::Pool && low_threshold.is_some() {
        return Err(TenancyError::Invalid(
            "low-credit alerts are for team accounts; the pool has none".into(),
        ));
    }
    if low_threshold.is_some_and(|t| !(0..=credits::MAX_AMOUNT).contains(&t)) {
        return Err(TenancyError::Invalid(format!(
            "`low_threshold` must be between 0 and {}",
            credits::MAX_AMOUNT
        )));
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::CreditAccountUpdated,
                account_target(account),
            )
            .with_metadata(Metadata::from_value(
                json!({ "overdraft": overdraft, "low_threshold": low_threshold }),
            )?),
    );
    store
        .configure_credit_account(caller.org.id, account, overdraft, low_threshold, journal)
        .await?;
    all_accounts(store, caller.org.id)
        .await?
        .into_iter()
        .find(|a| a.account == account)
        .ok_or(TenancyError::NotFound("credit account"))
}

/// Applies an operation that may debit team accounts, with the low-credit alerts it sets off
/// committed in its transaction: who is told is gathered first (the Owner, who buys credits,
/// and the team's own Admins, who run it: "set up low credit alerts for the production team"),
/// for each debited team that has a threshold.
async fn post_debits<S: TenancyStore + CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    mut op: NewOperation,
    journal: Journal,
) -> Result<Posted, TenancyError> {
    op.low_credit = low_credit_alerts(store, org, &op).await?;
    store.post_credits(&op, None, journal).await
}

/// The recipients of the low-credit alerts `op` may set off.
async fn low_credit_alerts<S: TenancyStore + CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    op: &NewOperation,
) -> Result<LowCreditAlerts, TenancyError> {
    let debited: std::collections::BTreeSet<TeamId> = op
        .postings
        .iter()
        .filter(|p| p.amount < 0)
        .filter_map(|p| p.account.team())
        .collect();
    let mut alerts = LowCreditAlerts::new(org.name.clone());
    if debited.is_empty() {
        return Ok(alerts);
    }
    let watched: Vec<CreditAccountState> = store
        .credit_accounts(org.id)
        .await?
        .into_iter()
        .filter(|a| {
            a.low_threshold.is_some() && a.account.team().is_some_and(|t| debited.contains(&t))
        })
        .collect();
    if watched.is_empty() {
        return Ok(alerts);
    }
    let owner = match crate::orgs::owner_of(store, org.id).await {
        Ok(m) => Some(m.user.email.as_str().to_owned()),
        Err(TenancyError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    for a in watched {
        let Some(team) = a.account.team() else {
            continue;
        };
        let mut to: Vec<String> = owner.iter().cloned().collect();
        for m in store.team_members(org.id, team).await? {
            let email = m.member.user.email.as_str();
            if m.role == rbac_core::TeamRole::Admin
                && m.member.deactivated_at.is_none()
                && !to.iter().any(|t| t == email)
            {
                to.push(email.to_owned());
            }
        }
        // The account's state carries no name from every store: the team's own row has it.
        let name = match store.get_team(org.id, team).await? {
            Some(t) => t.name,
            None => a.name,
        };
        alerts = alerts.tell(team, name, to);
    }
    Ok(alerts)
}

/// The chargeback report: per account, what it received and used between `from` (inclusive)
/// and `to` (exclusive), with opening and closing balances (billing readers). The period is cut
/// in ledger order ([`credits::Period`]): an operation committed just after a boundary but
/// dated just before it counts after it, and every line adds up.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Invalid`] for an empty period.
pub async fn chargeback<S: CreditStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ChargebackLine>, TenancyError> {
    caller.check_org(Permission::ViewBilling)?;
    if to <= from {
        return Err(TenancyError::Invalid("`to` must be after `from`".into()));
    }
    let names: BTreeMap<Account, String> = all_accounts(store, caller.org.id)
        .await?
        .into_iter()
        .map(|a| (a.account, a.name))
        .collect();
    let mut report = credits::Chargeback::default();
    let mut period = credits::Period::new(from, to);
    // The period ends at the first entry, in ledger order, dated at or after `to`; entries
    // dated a little later are read too, so that it is found wherever it is dated.
    let until = to + chrono::Duration::days(1);
    let mut after = None;
    'pages: loop {
        let page = store
            .credit_ledger(caller.org.id, after, until, 1_000)
            .await?;
        after = page.last().map(|e| e.seq);
        for e in &page {
            let in_period = match period.place(e.created_at) {
                credits::Placed::After => break 'pages,
                placed => placed == credits::Placed::In,
            };
            report.add(&ReportEntry {
                account: e.account,
                kind: e.kind,
                amount: e.amount,
                balance_after: e.balance_after,
                in_period,
            });
        }
        if page.len() < 1_000 {
            break;
        }
    }
    Ok(report.finish(&names))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payment provider that deletes (or archives) the team the credits are for while it
    /// charges: the race between the charge and the posting.
    #[cfg(feature = "memory")]
    struct TeamVanishesWhileCharging<'a> {
        store: &'a crate::memory::MemoryTenancyStore,
        org: OrgId,
        team: TeamId,
        archive: bool,
    }

    #[cfg(feature = "memory")]
    #[async_trait::async_trait]
    impl billing_limits::payment::PaymentProvider for TeamVanishesWhileCharging<'_> {
        async fn charge(
            &self,
            req: &billing_limits::payment::ChargeRequest,
        ) -> Result<billing_limits::payment::Charge, billing_limits::payment::PaymentError>
        {
            let failed = |e: TenancyError| billing_limits::payment::PaymentError(e.to_string());
            if self.archive {
                let before = self
                    .store
                    .get_team(self.org, self.team)
                    .await
                    .map_err(failed)?
                    .ok_or(TenancyError::NotFound("team"))
                    .map_err(failed)?;
                let after = crate::Team {
                    archived_at: Some(req.now),
                    ..before.clone()
                };
                self.store
                    .update_team(&before, &after, Journal::default())
                    .await
                    .map_err(failed)?;
            } else {
                self.store
                    .delete_team(self.org, self.team, req.now, None, Journal::default())
                    .await
                    .map_err(failed)?;
            }
            billing_limits::payment::ManualInvoice::default()
                .charge(req)
                .await
        }

        async fn cancel(
            &self,
            c: &billing_limits::payment::Charge,
            req: &billing_limits::payment::ChargeRequest,
        ) -> Result<(), billing_limits::payment::PaymentError> {
            billing_limits::payment::ManualInvoice::default()
                .cancel(c, req)
                .await
        }
    }

    /// Paid credits are never lost: a purchase for a team deleted or archived after the
    /// charge lands in the pool, once, with its invoice; its retry is answered with it.
    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn credits_bought_for_a_team_deleted_during_the_charge_go_to_the_pool() {
        for archive in [false, true] {
            bought_for_a_team_gone_during_the_charge(archive).await;
        }
    }

    /// An organization with a team named "Client", and its Owner's session.
    #[cfg(feature = "memory")]
    async fn org_with_client_team() -> (
        crate::memory::MemoryTenancyStore,
        crate::Organization,
        crate::Caller,
        crate::Team,
        DateTime<Utc>,
    ) {
        let (store, org, owner) = crate::memory::MemoryTenancyStore::with_org("Agency").await;
        let now = chrono::Utc::now();
        let team = crate::Team {
            id: TeamId::new(),
            org: org.id,
            name: "Client".into(),
            is_default: false,
            created_at: now,
            archived_at: None,
        };
        store.create_team(&team, Journal::default()).await.unwrap();
        let caller = store.session_caller_in(org.id, owner).await;
        (store, org, caller, team, now)
    }

    #[cfg(feature = "memory")]
    async fn bought_for_a_team_gone_during_the_charge(archive: bool) {
        let (store, org, caller, team, now) = org_with_client_team().await;
        // Another team takes half of every pool purchase: credits bought for the client are
        // not shared out with it when they land in the pool.
        let other = crate::Team {
            id: TeamId::new(),
            name: "Other".into(),
            ..team.clone()
        };
        store.create_team(&other, Journal::default()).await.unwrap();
        set_allocations(&store, &caller, vec![Allocation::new(other.id, 50)], now)
            .await
            .unwrap();
        let provider = TeamVanishesWhileCharging {
            store: &store,
            org: org.id,
            team: team.id,
            archive,
        };
        let prices = billing_limits::subscription::PriceList::default();
        let payments = crate::billing::Payments {
            provider: &provider,
            prices: &prices,
        };
        let r = purchase(
            &store,
            payments,
            &caller,
            Account::Team(team.id),
            40,
            "order-1",
            now,
        )
        .await
        .unwrap();
        let left = store.get_team(org.id, team.id).await.unwrap();
        assert_eq!(
            left.map(|t| t.archived_at.is_some()),
            archive.then_some(true)
        );
        let balances: Vec<(Account, i64)> = store
            .credit_accounts(org.id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.account, a.balance))
            .filter(|(_, balance)| *balance != 0)
            .collect();
        assert_eq!(balances, vec![(Account::Pool, 40)], "{r:?}");
        assert!(r.invoice.is_some() && !r.replayed);
        // The client's retry (its answer lost) is the same purchase, not a refusal.
        let again = purchase(
            &store,
            payments,
            &caller,
            Account::Team(team.id),
            40,
            "order-1",
            now,
        )
        .await
        .unwrap();
        assert!(again.replayed, "{again:?}");
        assert_eq!(again.invoice, r.invoice, "answered with its invoice");
    }

    /// A transfer's retry (its answer lost) is answered with it after its team was archived;
    /// a new transfer out of the archived team is refused as the store refuses it.
    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn a_transfer_is_replayed_after_its_team_was_archived() {
        let (store, org, caller, team, now) = org_with_client_team().await;
        let prices = billing_limits::subscription::PriceList::default();
        let provider = billing_limits::payment::ManualInvoice::default();
        let payments = crate::billing::Payments {
            provider: &provider,
            prices: &prices,
        };
        let pool = Account::Pool;
        let client = Account::Team(team.id);
        purchase(&store, payments, &caller, pool, 10, "order-1", now)
            .await
            .unwrap();
        let key = || Some("move-1".to_owned());
        let first = transfer(&store, &caller, pool, client, 4, key(), now)
            .await
            .unwrap();
        assert!(!first.replayed);
        let archived = crate::Team {
            archived_at: Some(now),
            ..team.clone()
        };
        store
            .update_team(&team, &archived, Journal::default())
            .await
            .unwrap();
        let again = transfer(&store, &caller, pool, client, 4, key(), now)
            .await
            .unwrap();
        assert!(again.replayed, "{again:?}");
        let refused = transfer(&store, &caller, client, pool, 1, None, now).await;
        assert!(
            matches!(refused, Err(TenancyError::Archived(ref m)) if m.contains("do not move")),
            "{refused:?}"
        );
        let balance = |a: Account| {
            let store = &store;
            async move {
                store
                    .credit_accounts(org.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|s| s.account == a)
                    .map_or(0, |s| s.balance)
            }
        };
        assert_eq!((balance(pool).await, balance(client).await), (6, 4));
    }

    /// Two teams (two clients of an agency) choosing the same idempotency key each get their
    /// own consumption; each one's retry is answered with its own.
    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn consumption_keys_are_each_teams_own() {
        let (store, org, caller, client, now) = org_with_client_team().await;
        let other = crate::Team {
            id: TeamId::new(),
            name: "Other client".into(),
            ..client.clone()
        };
        store.create_team(&other, Journal::default()).await.unwrap();
        let prices = billing_limits::subscription::PriceList::default();
        let provider = billing_limits::payment::ManualInvoice::default();
        let payments = crate::billing::Payments {
            provider: &provider,
            prices: &prices,
        };
        for (t, order) in [(&client, "order-1"), (&other, "order-2")] {
            purchase(
                &store,
                payments,
                &caller,
                Account::Team(t.id),
                10,
                order,
                now,
            )
            .await
            .unwrap();
        }
        let first = consume(&store, &caller, client.id, 3, "req-1", "chat", now)
            .await
            .unwrap();
        let second = consume(&store, &caller, other.id, 2, "req-1", "chat", now)
            .await
            .unwrap();
        assert!(!first.replayed && !second.replayed, "{second:?}");
        assert_ne!(first.operation, second.operation);
        let retry = consume(&store, &caller, other.id, 2, "req-1", "chat", now)
            .await
            .unwrap();
        assert_eq!((retry.replayed, retry.operation), (true, second.operation));
        // Within one team a key still names one consumption.
        let reused = consume(&store, &caller, client.id, 5, "req-1", "chat", now).await;
        assert!(
            matches!(
                reused,
                Err(TenancyError::Credit(CreditError::KeyReused(ref k))) if k == "req-1"
            ),
            "{reused:?}"
        );
        let balances: Vec<i64> = store
            .credit_accounts(org.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.account != Account::Pool)
            .map(|a| a.balance)
            .collect();
        assert_eq!(balances.iter().sum::<i64>(), 15, "{balances:?}");
    }

    #[test]
    fn a_purchase_charges_once_per_key_and_organization() {
        let (a, b) = (OrgId::new(), OrgId::new());
        assert_eq!(charge_key(a, "order-17"), charge_key(a, "order-17"));
        assert_ne!(charge_key(a, "order-17"), charge_key(a, "order-18"));
        assert_ne!(charge_key(a, "order-17"), charge_key(b, "order-17"));
        // Within what providers accept as a key, and the manual invoice's number stays distinct.
        assert!(charge_key(a, &"k".repeat(128)).len() <= 64);
    }
}
