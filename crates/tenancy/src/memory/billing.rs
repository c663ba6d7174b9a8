//! The memory store's subscriptions, invoices and credit ledger.

use std::collections::HashMap;

use async_trait::async_trait;
use audit::Journal;
use billing_limits::credits::{self, Account, Allocation, CreditError};
use billing_limits::payment::ChargeStatus;
use billing_limits::subscription::{PriceDeal, Subscription};
use chrono::{DateTime, Utc};
use rbac_core::{CreditOperationId, OrgId, TeamId};

use super::{MemoryTenancyStore, State};
use crate::billing::{BillingStore, Invoice, PendingCharge};
use crate::credits::{
    CreditAccountState, CreditEntry, CreditStore, NewOperation, OperationRecord, Posted,
};
use crate::error::TenancyError;
use crate::store::OrgStore;

#[derive(Debug, Default)]
pub(super) struct BillingState {
    subscriptions: HashMap<OrgId, (Subscription, u64)>,
    pending_charges: HashMap<OrgId, PendingCharge>,
    price_deals: HashMap<OrgId, PriceDeal>,
    invoices: Vec<Invoice>,
    accounts: HashMap<(OrgId, Account), CreditAccountState>,
    operations: Vec<Operation>,
    entries: Vec<(OrgId, CreditEntry)>,
    seq: i64,
}

#[derive(Debug, Clone)]
struct Operation {
    org: OrgId,
    id: CreditOperationId,
    key: String,
    fingerprint: String,
    kind: credits::EntryKind,
    reverses: Option<CreditOperationId>,
    actor_id: String,
    invoice: Option<String>,
}

/// Refuses accounts of teams that do not exist (deleted, say), as the stores do.
fn teams_exist(
    s: &State,
    org: OrgId,
    mut accounts: impl Iterator<Item = Account>,
) -> Result<(), TenancyError> {
    if accounts.all(|a| {
        a.team()
            .is_none_or(|t| s.teams.iter().any(|x| x.org == org && x.id == t))
    }) {
        Ok(())
    } else {
        Err(TenancyError::NotFound("team"))
    }
}

fn blank(account: Account) -> CreditAccountState {
    CreditAccountState {
        account,
        name: String::new(),
        balance: 0,
        overdraft: 0,
        low_threshold: None,
        allocation_percent: 0,
    }
}

impl BillingState {
    /// What keeps `team` from being deleted: its credits and its share of purchases.
    pub(super) fn team_account_in_use(&self, org: OrgId, team: TeamId) -> Option<(i64, u8)> {
        self.accounts
            .get(&(org, Account::Team(team)))
            .filter(|a| a.balance != 0 || a.allocation_percent != 0)
            .map(|a| (a.balance, a.allocation_percent))
    }

    /// Erases the names of `subjects` (a person's id and their API keys') from `org`'s ledger.
    pub(super) fn erase_actors(&mut self, org: OrgId, subjects: &[String]) {
        let ops: Vec<CreditOperationId> = self
            .operations
            .iter()
            .filter(|o| o.org == org && subjects.contains(&o.actor_id))
            .map(|o| o.id)
            .collect();
        for (o, e) in &mut self.entries {
            if *o == org && ops.contains(&e.operation) {
                audit::ERASED.clone_into(&mut e.actor);
            }
        }
    }

    /// Forgets everything of a deleted organization.
    pub(super) fn forget_org(&mut self, org: OrgId) {
        self.subscriptions.remove(&org);
        self.pending_charges.remove(&org);
        self.price_deals.remove(&org);
        self.invoices.retain(|i| i.org != org);
        self.accounts.retain(|(o, _), _| *o != org);
        self.operations.retain(|o| o.org != org);
        self.entries.retain(|(o, _)| *o != org);
    }

    /// Forgets a deleted team's (empty) account.
    pub(super) fn drop_team_account(&mut self, org: OrgId, team: TeamId) {
        self.accounts.remove(&(org, Account::Team(team)));
    }

    fn entries_of(&self, org: OrgId, op: CreditOperationId) -> Vec<CreditEntry> {
        self.entries
            .iter()
            .filter(|(o, e)| *o == org && e.operation == op)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

#[async_trait]
impl BillingStore for MemoryTenancyStore {
    async fn subscription(&self, org: OrgId) -> Result<(Subscription, u64), TenancyError> {
        let plan = self.get_org(org).await?.plan;
        let s = self.lock()?;
        Ok(match s.billing.subscriptions.get(&org) {
            Some((sub, v)) => (
                Subscription {
                    plan,
                    ..sub.clone()
                },
                *v,
            ),
            None => (Subscription::new(plan), 0),
        })
    }

    async fn apply_subscription(
        &self,
        org: OrgId,
        version: u64,
        next: &Subscription,
        audit_archived_at: Option<DateTime<Utc>>,
        invoice: Option<&Invoice>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        if invoice.is_some_and(|i| i.org != org) {
            return Err(TenancyError::Invalid(
                "the invoice is another organization's".into(),
            ));
        }
        {
            let mut s = self.lock()?;
            let current = s.billing.subscriptions.get(&org).map_or(0, |(_, v)| *v);
            if current != version {
                return Err(TenancyError::Conflict(
                    "the subscription changed meanwhile; reload and try again".into(),
                ));
            }
            let o = s
                .orgs
                .get_mut(&org)
                .ok_or(TenancyError::NotFound("organization"))?;
            o.plan = next.plan;
            o.audit_archived_at = audit_archived_at;
            s.billing
                .subscriptions
                .insert(org, (next.clone(), version + 1));
            s.billing.pending_charges.remove(&org);
            if let Some(i) = invoice {
                s.billing.invoices.push(i.clone());
            }
        }
        self.commit(journal).await
    }

    async fn pending_charge(
        &self,
        org: OrgId,
        candidate: &PendingCharge,
    ) -> Result<PendingCharge, TenancyError> {
        let mut s = self.lock()?;
        let pending = s
            .billing
            .pending_charges
            .entry(org)
            .or_insert_with(|| candidate.clone());
        if (pending.version, &pending.change) != (candidate.version, &candidate.change) {
            *pending = candidate.clone();
        }
        Ok(pending.clone())
    }

    async fn drop_pending_charge(
        &self,
        org: OrgId,
        version: u64,
        change: &str,
    ) -> Result<(), TenancyError> {
        let mut s = self.lock()?;
        if s.billing
            .pending_charges
            .get(&org)
            .is_some_and(|p| p.version == version && p.change == change)
        {
            s.billing.pending_charges.remove(&org);
        }
        Ok(())
    }

    async fn invoices(
        &self,
        org: OrgId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Invoice>, TenancyError> {
        let s = self.lock()?;
        let mut all: Vec<&Invoice> = s.billing.invoices.iter().filter(|i| i.org == org).collect();
        all.sort_by(|a, b| (b.created_at, &b.number).cmp(&(a.created_at, &a.number)));
        let start = match before {
            None => 0,
            Some(n) => {
                all.iter()
                    .position(|i| i.number == n)
                    .ok_or(TenancyError::NotFound("invoice"))?
                    + 1
            }
        };
        Ok(all
            .into_iter()
            .skip(start)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn mark_invoice_paid(
        &self,
        org: OrgId,
        number: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        {
            let mut s = self.lock()?;
            let Some(i) = s
                .billing
                .invoices
                .iter_mut()
                .find(|i| i.org == org && i.number == number && i.status == ChargeStatus::Open)
            else {
                return Ok(false);
            };
            i.status = ChargeStatus::Paid;
            i.due_at = None;
        }
        self.commit(journal).await?;
        Ok(true)
    }

    async fn record_overdue_reminder(
        &self,
        org: OrgId,
        number: &str,
        reminder: u64,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        {
            let mut s = self.lock()?;
            let open = s
                .billing
                .invoices
                .iter()
                .any(|i| i.org == org && i.number == number && i.status == ChargeStatus::Open);
            if !open
                || !s.alerts.insert((
                    org,
                    "invoice_overdue".to_owned(),
                    number.to_owned(),
                    reminder,
                ))
            {
                return Ok(false);
            }
        }
        self.commit(journal).await?;
        Ok(true)
    }

    async fn price_deal(&self, org: OrgId) -> Result<Option<PriceDeal>, TenancyError> {
        Ok(self.lock()?.billing.price_deals.get(&org).copied())
    }

    async fn set_price_deal(
        &self,
        org: OrgId,
        deal: Option<&PriceDeal>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        self.get_org(org).await?;
        {
            let mut s = self.lock()?;
            match deal {
                Some(d) => s.billing.price_deals.insert(org, *d),
                None => s.billing.price_deals.remove(&org),
            };
        }
        self.commit(journal).await
    }

    async fn due_subscriptions(
        &self,
        now: DateTime<Utc>,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, TenancyError> {
        let s = self.lock()?;
        let mut due: Vec<OrgId> = s
            .billing
            .subscriptions
            .iter()
            .filter(|(o, (sub, _))| {
                sub.due(now).is_some() && after.is_none_or(|a| o.to_string() > a.to_string())
            })
            .map(|(o, _)| *o)
            .collect();
        due.sort_by_key(ToString::to_string);
        due.truncate(limit as usize);
        Ok(due)
    }
}

#[async_trait]
impl CreditStore for MemoryTenancyStore {
    async fn credit_accounts(&self, org: OrgId) -> Result<Vec<CreditAccountState>, TenancyError> {
        let s = self.lock()?;
        Ok(s.billing
            .accounts
            .iter()
            .filter(|((o, _), _)| *o == org)
            .map(|(_, a)| a.clone())
            .collect())
    }

    async fn post_credits(
        &self,
        op: &NewOperation,
        invoice: Option<&Invoice>,
        mut journal: Journal,
    ) -> Result<Posted, TenancyError> {
        let entries = {
            let mut s = self.lock()?;
            teams_exist(&s, op.org, op.postings.iter().map(|p| p.account))?;
            let b = &mut s.billing;
            if let Some(o) = b
                .operations
                .iter()
                .find(|o| o.org == op.org && o.key == op.idempotency_key)
            {
                if o.fingerprint != op.fingerprint {
                    return Err(CreditError::KeyReused(op.idempotency_key.clone()).into());
                }
                return Ok(Posted::Replayed(b.entries_of(op.org, o.id)));
            }
            // An archived team's credits are not used nor moved (a reversal still applies), as
            // `SeaStore` checks in the posting (after a replay, which answers what was done
            // before).
            if op.kind != credits::EntryKind::Reversal
                && let Some(t) = s.teams.iter().find(|t| {
                    t.org == op.org
                        && t.archived_at.is_some()
                        && op.postings.iter().any(|p| p.account.team() == Some(t.id))
                })
            {
                let what = if op.kind == credits::EntryKind::Consumption {
                    "its credits are not used"
                } else {
                    "its credits do not move"
                };
                return Err(crate::teams::archived(&t.name, what));
            }
            let b = &mut s.billing;
            // Only an operation of the same organization is reversed.
            if op
                .reverses
                .is_some_and(|r| !b.operations.iter().any(|o| o.org == op.org && o.id == r))
            {
                return Err(TenancyError::NotFound("credit operation"));
            }
            if invoice.is_some_and(|i| i.org != op.org) {
                return Err(TenancyError::Invalid(
                    "the invoice is another organization's".into(),
                ));
            }
            if op.reverses.is_some_and(|r| {
                b.operations
                    .iter()
                    .any(|o| o.org == op.org && o.reverses == Some(r))
            }) {
                return Err(TenancyError::Conflict(
                    "the operation was reversed already".into(),
                ));
            }
            // Check every posting against the balances first, so a refusal changes nothing.
            let mut balances: HashMap<Account, i64> = HashMap::new();
            let mut after = Vec::with_capacity(op.postings.len());
            for p in &op.postings {
                let row = b
                    .accounts
                    .get(&(op.org, p.account))
                    .cloned()
                    .unwrap_or_else(|| blank(p.account));
                let balance = *balances.get(&p.account).unwrap_or(&row.balance);
                let next = credits::apply(p.account, balance, p.amount, row.overdraft)?;
                balances.insert(p.account, next);
                after.push(next);
            }
            let mut entries = Vec::with_capacity(op.postings.len());
            for (p, balance_after) in op.postings.iter().zip(after) {
                b.accounts
                    .entry((op.org, p.account))
                    .or_insert_with(|| blank(p.account))
                    .balance = balance_after;
                b.seq += 1;
                let e = CreditEntry {
                    seq: b.seq,
                    operation: op.id,
                    account: p.account,
                    kind: p.kind,
                    amount: p.amount,
                    balance_after,
                    description: op.description.clone(),
                    actor: op.actor.clone(),
                    created_at: op.created_at,
                };
                b.entries.push((op.org, e.clone()));
                entries.push(e);
            }
            b.operations.push(Operation {
                org: op.org,
                id: op.id,
                key: op.idempotency_key.clone(),
                fingerprint: op.fingerprint.clone(),
                kind: op.kind,
                reverses: op.reverses,
                actor_id: op.actor_id.clone(),
                invoice: invoice.map(|i| i.number.clone()),
            });
            if let Some(i) = invoice {
                b.invoices.push(i.clone());
            }
            let voided = op.reverses.and_then(|r| {
                b.operations
                    .iter()
                    .find(|o| o.org == op.org && o.id == r)
                    .and_then(|o| o.invoice.clone())
            });
            if let Some(number) = voided {
                for i in &mut b.invoices {
                    if i.org == op.org && i.number == number && i.status == ChargeStatus::Open {
                        i.status = ChargeStatus::Void;
                        i.due_at = None;
                    }
                }
            }
            // The low-credit alerts go with the operation that set them off.
            let fired = op.low_credit.fired(
                op.org,
                &entries,
                |a| {
                    b.accounts
                        .get(&(op.org, a))
                        .and_then(|row| row.low_threshold)
                },
                op.created_at,
            )?;
            for alert in fired {
                if s.alerts
                    .insert((op.org, alert.limit, alert.period, alert.threshold))
                {
                    journal.absorb(alert.journal);
                }
            }
            entries
        };
        self.commit(journal).await?;
        Ok(Posted::Applied(entries))
    }

    async fn credit_operation_by_key(
        &self,
        org: OrgId,
        key: &str,
    ) -> Result<Option<(String, Vec<CreditEntry>)>, TenancyError> {
        let s = self.lock()?;
        let b = &s.billing;
        Ok(b.operations
            .iter()
            .find(|o| o.org == org && o.key == key)
            .map(|o| (o.fingerprint.clone(), b.entries_of(org, o.id))))
    }

    async fn credit_operation(
        &self,
        org: OrgId,
        id: CreditOperationId,
    ) -> Result<Option<OperationRecord>, TenancyError> {
        let s = self.lock()?;
        let b = &s.billing;
        Ok(b.operations
            .iter()
            .find(|o| o.org == org && o.id == id)
            .map(|o| OperationRecord {
                kind: o.kind,
                reversed_by: b
                    .operations
                    .iter()
                    .find(|r| r.org == org && r.reverses == Some(id))
                    .map(|r| r.id),
                entries: b.entries_of(org, id),
                invoice: o.invoice.clone(),
            }))
    }

    async fn set_allocations(
        &self,
        org: OrgId,
        plan: &[Allocation],
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            teams_exist(&s, org, plan.iter().map(|a| Account::Team(a.team)))?;
            let b = &mut s.billing;
            for ((o, _), a) in &mut b.accounts {
                if *o == org {
                    a.allocation_percent = 0;
                }
            }
            for a in plan {
                let acc = Account::Team(a.team);
                b.accounts
                    .entry((org, acc))
                    .or_insert_with(|| blank(acc))
                    .allocation_percent = a.percent;
            }
        }
        self.commit(journal).await
    }

    async fn configure_credit_account(
        &self,
        org: OrgId,
        account: Account,
        overdraft: i64,
        low_threshold: Option<i64>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            teams_exist(&s, org, std::iter::once(account))?;
            let a = s
                .billing
                .accounts
                .entry((org, account))
                .or_insert_with(|| blank(account));
            a.overdraft = overdraft;
            a.low_threshold = low_threshold;
        }
        self.commit(journal).await
    }

    async fn credit_history(
        &self,
        org: OrgId,
        account: Option<Account>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CreditEntry>, TenancyError> {
        let s = self.lock()?;
        Ok(s.billing
            .entries
            .iter()
            .rev()
            .filter(|(o, e)| {
                *o == org
                    && account.is_none_or(|a| a == e.account)
                    && before.is_none_or(|b| e.seq < b)
            })
            .take(limit as usize)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn credit_ledger(
        &self,
        org: OrgId,
        after: Option<i64>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CreditEntry>, TenancyError> {
        let s = self.lock()?;
        Ok(s.billing
            .entries
            .iter()
            .filter(|(o, e)| *o == org && after.is_none_or(|a| e.seq > a) && e.created_at < until)
            .take(limit as usize)
            .map(|(_, e)| e.clone())
            .collect())
    }
}
