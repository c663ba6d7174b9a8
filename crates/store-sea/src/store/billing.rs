//! [`BillingStore`] and [`CreditStore`] on SeaORM.
//!
//! Credit balances change only through conditional updates
//! (`balance = balance + d WHERE balance + overdraft + lowest >= 0`) inside the transaction that
//! writes the entries, one per account in account order, so concurrent operations can neither
//! overdraw an account nor deadlock each other on PostgreSQL; the idempotency key and the
//! one-reversal rule are unique indexes, so concurrent duplicates lose at the insert.

use std::collections::BTreeMap;

use async_trait::async_trait;
use audit::Journal;
use billing_limits::Plan;
use billing_limits::credits::{Account, Allocation, CreditError, EntryKind};
use billing_limits::payment::ChargeStatus;
use billing_limits::subscription::{BillingCycle, PriceDeal, Subscription, SubscriptionStatus};
use chrono::{DateTime, Utc};
use rbac_core::{CreditOperationId, OrgId};
use sea_orm::sea_query::{Expr, ExprTrait, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use tenancy::TenancyError;
use tenancy::billing::{BillingStore, Invoice, PendingCharge};
use tenancy::credits::{
    CreditAccountState, CreditEntry, CreditStore, NewOperation, OperationRecord, Posted,
};

use super::tenancy::{commit, store};
use crate::SeaStore;
use crate::convert::{corrupt, id, micros, time};
use crate::entity::{
    credit_account, credit_entry, credit_operation, invoice, organization, pending_charge,
    price_deal, subscription,
};
use crate::error::is_unique_violation;

fn sub_of(plan: Plan, m: subscription::Model) -> Result<(Subscription, u64), TenancyError> {
    let plan_of = |s: &str| Plan::parse(s).ok_or_else(|| corrupt("plan", s));
    let sub = Subscription {
        plan,
        status: SubscriptionStatus::parse(&m.status)
            .ok_or_else(|| corrupt("subscription status", &m.status))?,
        cycle: m
            .cycle
            .as_deref()
            .map(|c| BillingCycle::parse(c).ok_or_else(|| corrupt("billing cycle", c)))
            .transpose()?,
        period_end: m.period_end.map(time).transpose()?,
        trial_ends_at: m.trial_ends_at.map(time).transpose()?,
        trial_used: m.trial_used,
        plan_before_trial: m.plan_before_trial.as_deref().map(plan_of).transpose()?,
        anchor: m.billing_anchor.map(time).transpose()?,
        renewal_retry_at: m.renewal_retry_at.map(time).transpose()?,
        cancel_at_period_end: m.cancel_at_period_end,
    };
    Ok((sub, u64::try_from(m.version).unwrap_or(0)))
}

fn invoice_of(m: invoice::Model) -> Result<Invoice, TenancyError> {
    Ok(Invoice {
        org: id("organization id", &m.org_id)?,
        status: ChargeStatus::parse(&m.status)
            .ok_or_else(|| corrupt("invoice status", &m.status))?,
        number: m.number,
        provider: m.provider,
        description: m.description,
        amount_cents: u64::try_from(m.amount_cents).unwrap_or(0),
        currency: m.currency,
        created_at: time(m.created_at)?,
        due_at: m.due_at.map(time).transpose()?,
    })
}

async fn insert_invoice(txn: &DatabaseTransaction, i: &Invoice) -> Result<(), TenancyError> {
    invoice::Entity::insert(invoice::ActiveModel {
        org_id: Set(i.org.to_string()),
        number: Set(i.number.clone()),
        provider: Set(i.provider.clone()),
        description: Set(i.description.clone()),
        amount_cents: Set(i64::try_from(i.amount_cents).unwrap_or(i64::MAX)),
        currency: Set(i.currency.clone()),
        status: Set(i.status.as_str().to_owned()),
        created_at: Set(micros(i.created_at)),
        due_at: Set(i.due_at.map(micros)),
    })
    .exec_without_returning(txn)
    .await
    .map_err(store)?;
    Ok(())
}

/// The charge recorded in `m`, for the subscription at `version`.
fn pending_of(m: pending_charge::Model, version: u64) -> Result<PendingCharge, TenancyError> {
    Ok(PendingCharge {
        version,
        change: m.change,
        amount_cents: u64::try_from(m.amount_cents)
            .map_err(|_| corrupt("pending charge amount", &m.amount_cents.to_string()))?,
        description: m.description,
    })
}

#[async_trait]
impl BillingStore for SeaStore {
    async fn subscription(&self, org: OrgId) -> Result<(Subscription, u64), TenancyError> {
        // The plan is the organization's row and the rest the subscription's: read from one
        // snapshot, so that a change committing meanwhile (plan and version change together)
        // never pairs one's plan with the other's version, which the change's compare-and-swap
        // would take for the state it read. PostgreSQL's default isolation takes a snapshot per
        // statement, so the transaction asks for one snapshot (repeatable read); a SQLite
        // transaction reads one snapshot from its first read on.
        let txn = if self.db().get_database_backend() == sea_orm::DbBackend::Postgres {
            self.db()
                .begin_with_config(
                    Some(sea_orm::IsolationLevel::RepeatableRead),
                    Some(sea_orm::AccessMode::ReadOnly),
                )
                .await
        } else {
            self.db().begin().await
        }
        .map_err(store)?;
        let row = subscription::Entity::find_by_id(org.to_string())
            .one(&txn)
            .await
            .map_err(store)?;
        let organization = organization::Entity::find_by_id(org.to_string())
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("organization"))?;
        txn.commit().await.map_err(store)?;
        let plan =
            Plan::parse(&organization.plan).ok_or_else(|| corrupt("plan", &organization.plan))?;
        match row {
            Some(m) => sub_of(plan, m),
            None => Ok((Subscription::new(plan), 0)),
        }
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
        let conflict = || {
            TenancyError::Conflict(
                "the subscription changed meanwhile; reload and try again".into(),
            )
        };
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let txn = self.db().begin().await.map_err(store)?;
        let row = subscription::ActiveModel {
            org_id: Set(org.to_string()),
            status: Set(next.status.as_str().to_owned()),
            cycle: Set(next.cycle.map(|c| c.as_str().to_owned())),
            period_end: Set(next.period_end.map(micros)),
            trial_ends_at: Set(next.trial_ends_at.map(micros)),
            trial_used: Set(next.trial_used),
            plan_before_trial: Set(next.plan_before_trial.map(|p| p.as_str().to_owned())),
            version: Set(version + 1),
            billing_anchor: Set(next.anchor.map(micros)),
            renewal_retry_at: Set(next.renewal_retry_at.map(micros)),
            cancel_at_period_end: Set(next.cancel_at_period_end),
        };
        if version == 0 {
            match subscription::Entity::insert(row)
                .exec_without_returning(&txn)
                .await
            {
                Err(e) if is_unique_violation(&e) => return Err(conflict()),
                Err(e) => return Err(store(e)),
                Ok(_) => {}
            }
        } else {
            let res = subscription::Entity::update_many()
                .set(row)
                .filter(subscription::Column::OrgId.eq(org.to_string()))
                .filter(subscription::Column::Version.eq(version))
                .exec(&txn)
                .await
                .map_err(store)?;
            if res.rows_affected == 0 {
                return Err(conflict());
            }
        }
        let res = organization::Entity::update_many()
            .col_expr(organization::Column::Plan, Expr::value(next.plan.as_str()))
            .col_expr(
                organization::Column::AuditArchivedAt,
                Expr::value(audit_archived_at.map(micros)),
            )
            .filter(organization::Column::Id.eq(org.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("organization"));
        }
        pending_charge::Entity::delete_by_id(org.to_string())
            .exec(&txn)
            .await
            .map_err(store)?;
        if let Some(i) = invoice {
            insert_invoice(&txn, i).await?;
        }
        commit(txn, journal).await
    }

    async fn pending_charge(
        &self,
        org: OrgId,
        candidate: &PendingCharge,
    ) -> Result<PendingCharge, TenancyError> {
        let version = i64::try_from(candidate.version).unwrap_or(i64::MAX);
        let txn = self.db().begin().await.map_err(store)?;
        let recorded = pending_charge::Entity::find_by_id(org.to_string())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(store)?;
        if let Some(m) = &recorded
            && m.for_version == version
            && m.change == candidate.change
        {
            let pending = pending_of(m.clone(), candidate.version)?;
            txn.commit().await.map_err(store)?;
            return Ok(pending);
        }
        let row = pending_charge::ActiveModel {
            org_id: Set(org.to_string()),
            for_version: Set(version),
            change: Set(candidate.change.clone()),
            amount_cents: Set(i64::try_from(candidate.amount_cents).unwrap_or(i64::MAX)),
            description: Set(candidate.description.clone()),
        };
        if recorded.is_some() {
            pending_charge::Entity::update(row)
                .exec(&txn)
                .await
                .map_err(store)?;
        } else {
            match pending_charge::Entity::insert(row)
                .exec_without_returning(&txn)
                .await
            {
                // Another request of this organization recorded one first (PostgreSQL: there
                // was no row to lock): the same change (a double click) is asked for as that
                // one; another is refused.
                Err(e) if is_unique_violation(&e) => {
                    drop(txn);
                    let recorded = pending_charge::Entity::find_by_id(org.to_string())
                        .one(self.db())
                        .await
                        .map_err(store)?;
                    return match recorded {
                        Some(m) if m.for_version == version && m.change == candidate.change => {
                            pending_of(m, candidate.version)
                        }
                        _ => Err(TenancyError::Conflict(
                            "another subscription change is being charged; try again".into(),
                        )),
                    };
                }
                Err(e) => return Err(store(e)),
                Ok(_) => {}
            }
        }
        txn.commit().await.map_err(store)?;
        Ok(candidate.clone())
    }

    async fn drop_pending_charge(
        &self,
        org: OrgId,
        version: u64,
        change: &str,
    ) -> Result<(), TenancyError> {
        pending_charge::Entity::delete_many()
            .filter(pending_charge::Column::OrgId.eq(org.to_string()))
            .filter(
                pending_charge::Column::ForVersion.eq(i64::try_from(version).unwrap_or(i64::MAX)),
            )
            .filter(pending_charge::Column::Change.eq(change))
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn invoices(
        &self,
        org: OrgId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Invoice>, TenancyError> {
        let mut q = invoice::Entity::find().filter(invoice::Column::OrgId.eq(org.to_string()));
        if let Some(number) = before {
            let at = invoice::Entity::find_by_id((org.to_string(), number.to_owned()))
                .one(self.db())
                .await
                .map_err(store)?
                .ok_or(TenancyError::NotFound("invoice"))?
                .created_at;
            q = q.filter(
                Condition::any().add(invoice::Column::CreatedAt.lt(at)).add(
                    Condition::all()
                        .add(invoice::Column::CreatedAt.eq(at))
                        .add(invoice::Column::Number.lt(number)),
                ),
            );
        }
        q.order_by_desc(invoice::Column::CreatedAt)
            .order_by_desc(invoice::Column::Number)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(invoice_of)
            .collect()
    }

    async fn invoice(&self, org: OrgId, number: &str) -> Result<Option<Invoice>, TenancyError> {
        invoice::Entity::find_by_id((org.to_string(), number.to_owned()))
            .one(self.db())
            .await
            .map_err(store)?
            .map(invoice_of)
            .transpose()
    }

    async fn overdue_invoices(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invoice>, TenancyError> {
        invoice::Entity::find()
            .filter(invoice::Column::OrgId.eq(org.to_string()))
            .filter(invoice::Column::Status.eq(ChargeStatus::Open.as_str()))
            .filter(invoice::Column::DueAt.lt(micros(now)))
            .order_by_asc(invoice::Column::DueAt)
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(invoice_of)
            .collect()
    }

    async fn mark_invoice_paid(
        &self,
        org: OrgId,
        number: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let paid = invoice::Entity::update_many()
            .col_expr(
                invoice::Column::Status,
                Expr::value(ChargeStatus::Paid.as_str()),
            )
            .col_expr(invoice::Column::DueAt, Expr::value(Option::<i64>::None))
            .filter(invoice::Column::OrgId.eq(org.to_string()))
            .filter(invoice::Column::Number.eq(number))
            .filter(invoice::Column::Status.eq(ChargeStatus::Open.as_str()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if paid.rows_affected != 1 {
            txn.rollback().await.map_err(store)?;
            return Ok(false);
        }
        commit(txn, journal).await?;
        Ok(true)
    }

    async fn record_overdue_reminder(
        &self,
        org: OrgId,
        number: &str,
        reminder: u64,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // A write that changes nothing but holds the invoice while it is open (the row's lock on
        // PostgreSQL, the database's on SQLite), so a payment marked at the same moment waits
        // for this commit or is seen here.
        let open = invoice::Entity::update_many()
            .col_expr(invoice::Column::Status, Expr::col(invoice::Column::Status))
            .filter(invoice::Column::OrgId.eq(org.to_string()))
            .filter(invoice::Column::Number.eq(number))
            .filter(invoice::Column::Status.eq(ChargeStatus::Open.as_str()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if open.rows_affected != 1
            || !super::metering::insert_alert(&txn, org, "invoice_overdue", number, reminder)
                .await?
        {
            txn.rollback().await.map_err(store)?;
            return Ok(false);
        }
        commit(txn, journal).await?;
        metrics::counter!("axie_usage_alerts_sent_total", "limit" => "invoice_overdue")
            .increment(1);
        Ok(true)
    }

    async fn price_deal(&self, org: OrgId) -> Result<Option<PriceDeal>, TenancyError> {
        price_deal::Entity::find_by_id(org.to_string())
            .one(self.db())
            .await
            .map_err(store)?
            .map(|m| {
                let plan = Plan::parse(&m.plan).ok_or_else(|| corrupt("plan", &m.plan))?;
                let cents = u64::try_from(m.monthly_cents)
                    .map_err(|_| corrupt("price", &m.monthly_cents.to_string()))?;
                PriceDeal::new(plan, cents).map_err(|e| corrupt("price deal", &e.to_string()))
            })
            .transpose()
            .map_err(Into::into)
    }

    async fn set_price_deal(
        &self,
        org: OrgId,
        deal: Option<&PriceDeal>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        organization::Entity::find_by_id(org.to_string())
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("organization"))?;
        price_deal::Entity::delete_by_id(org.to_string())
            .exec(&txn)
            .await
            .map_err(store)?;
        if let Some(d) = deal {
            price_deal::Entity::insert(price_deal::ActiveModel {
                org_id: Set(org.to_string()),
                plan: Set(d.plan.as_str().to_owned()),
                monthly_cents: Set(i64::try_from(d.monthly_cents).unwrap_or(i64::MAX)),
            })
            .exec_without_returning(&txn)
            .await
            .map_err(store)?;
        }
        commit(txn, journal).await
    }

    async fn due_subscriptions(
        &self,
        now: DateTime<Utc>,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, TenancyError> {
        let now = micros(now);
        let trial = Condition::all()
            .add(subscription::Column::Status.eq(SubscriptionStatus::Trialing.as_str()))
            .add(subscription::Column::TrialEndsAt.lte(now));
        let renewal = Condition::all()
            .add(subscription::Column::Status.eq(SubscriptionStatus::Active.as_str()))
            .add(subscription::Column::Cycle.is_not_null())
            .add(subscription::Column::PeriodEnd.lte(now))
            .add(
                Condition::any()
                    .add(subscription::Column::RenewalRetryAt.is_null())
                    .add(subscription::Column::RenewalRetryAt.lte(now)),
            );
        let mut q = subscription::Entity::find().filter(Condition::any().add(trial).add(renewal));
        if let Some(a) = after {
            q = q.filter(subscription::Column::OrgId.gt(a.to_string()));
        }
        q.order_by_asc(subscription::Column::OrgId)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(|m| Ok(id("organization id", &m.org_id)?))
            .collect()
    }
}

fn account_state(m: credit_account::Model) -> Result<CreditAccountState, TenancyError> {
    Ok(CreditAccountState {
        account: Account::parse(&m.account).ok_or_else(|| corrupt("credit account", &m.account))?,
        name: String::new(),
        balance: m.balance,
        overdraft: m.overdraft,
        low_threshold: m.low_threshold,
        allocation_percent: u8::try_from(m.allocation_percent).unwrap_or(0),
    })
}

fn entry_of(m: credit_entry::Model) -> Result<CreditEntry, TenancyError> {
    Ok(CreditEntry {
        seq: m.seq,
        operation: id("credit operation id", &m.operation_id)?,
        account: Account::parse(&m.account).ok_or_else(|| corrupt("credit account", &m.account))?,
        kind: EntryKind::parse(&m.kind).ok_or_else(|| corrupt("credit entry kind", &m.kind))?,
        amount: m.amount,
        balance_after: m.balance_after,
        description: m.description,
        actor: m.actor,
        created_at: time(m.created_at)?,
    })
}

async fn entries_of<C: sea_orm::ConnectionTrait>(
    db: &C,
    op: &str,
) -> Result<Vec<CreditEntry>, TenancyError> {
    credit_entry::Entity::find()
        .filter(credit_entry::Column::OperationId.eq(op))
        .order_by_asc(credit_entry::Column::Seq)
        .all(db)
        .await
        .map_err(store)?
        .into_iter()
        .map(entry_of)
        .collect()
}

/// Checks, in `txn`, that the teams of `accounts` still exist, and holds them until the commit
/// (PostgreSQL `FOR SHARE`, which a team's deletion waits for: it takes the team `FOR UPDATE`
/// before it checks that the team's account is empty), so that no credits or allocation land
/// in the account of a team deleted meanwhile. Teams before accounts, in every transaction.
async fn teams_exist(
    txn: &DatabaseTransaction,
    org: OrgId,
    accounts: impl IntoIterator<Item = Account>,
) -> Result<(), TenancyError> {
    let mut teams: Vec<_> = accounts.into_iter().filter_map(|a| a.team()).collect();
    teams.sort_by_key(ToString::to_string);
    teams.dedup();
    for t in teams {
        if super::workspace::team_row(txn, org, t).await?.is_none() {
            return Err(TenancyError::NotFound("team"));
        }
    }
    Ok(())
}

async fn ensure_account(
    txn: &DatabaseTransaction,
    org: OrgId,
    account: Account,
) -> Result<(), TenancyError> {
    credit_account::Entity::insert(credit_account::ActiveModel {
        org_id: Set(org.to_string()),
        account: Set(account.key()),
        balance: Set(0),
        overdraft: Set(0),
        low_threshold: Set(None),
        allocation_percent: Set(0),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await
    .map_err(store)?;
    Ok(())
}

async fn account_row(
    txn: &DatabaseTransaction,
    org: OrgId,
    account: Account,
) -> Result<credit_account::Model, TenancyError> {
    credit_account::Entity::find_by_id((org.to_string(), account.key()))
        .one(txn)
        .await
        .map_err(store)?
        .ok_or(TenancyError::NotFound("credit account"))
}

impl SeaStore {
    /// The outcome for an operation whose insert hit a unique index: a replay, a reused key, or
    /// a second reversal.
    async fn after_duplicate(&self, op: &NewOperation) -> Result<Posted, TenancyError> {
        match self
            .credit_operation_by_key(op.org, &op.idempotency_key)
            .await?
        {
            Some((f, entries)) if f == op.fingerprint => Ok(Posted::Replayed(entries)),
            Some(_) => Err(CreditError::KeyReused(op.idempotency_key.clone()).into()),
            None => Err(TenancyError::Conflict(
                "the operation was reversed already".into(),
            )),
        }
    }
}

/// Voids the invoice issued with operation `reversed`, if it has one and it is still open.
async fn void_invoice_of(
    txn: &DatabaseTransaction,
    org: OrgId,
    reversed: CreditOperationId,
) -> Result<(), TenancyError> {
    let number: Option<Option<String>> = credit_operation::Entity::find_by_id(reversed.to_string())
        .filter(credit_operation::Column::OrgId.eq(org.to_string()))
        .select_only()
        .column(credit_operation::Column::InvoiceNumber)
        .into_tuple()
        .one(txn)
        .await
        .map_err(store)?;
    if let Some(Some(number)) = number {
        invoice::Entity::update_many()
            .col_expr(
                invoice::Column::Status,
                Expr::value(ChargeStatus::Void.as_str()),
            )
            .col_expr(invoice::Column::DueAt, Expr::value(Option::<i64>::None))
            .filter(invoice::Column::OrgId.eq(org.to_string()))
            .filter(invoice::Column::Number.eq(number))
            .filter(invoice::Column::Status.eq(ChargeStatus::Open.as_str()))
            .exec(txn)
            .await
            .map_err(store)?;
    }
    Ok(())
}

#[async_trait]
impl CreditStore for SeaStore {
    async fn credit_accounts(&self, org: OrgId) -> Result<Vec<CreditAccountState>, TenancyError> {
        credit_account::Entity::find()
            .filter(credit_account::Column::OrgId.eq(org.to_string()))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(account_state)
            .collect()
    }

    async fn post_credits(
        &self,
        op: &NewOperation,
        invoice: Option<&Invoice>,
        journal: Journal,
    ) -> Result<Posted, TenancyError> {
        if invoice.is_some_and(|i| i.org != op.org) {
            return Err(TenancyError::Invalid(
                "the invoice is another organization's".into(),
            ));
        }
        let txn = self.db().begin().await.map_err(store)?;
        // The organization's postings commit one at a time, so that the ledger's order (entries'
        // sequence numbers, taken at insert) is the order they commit in, as a chargeback
        // report's periods assume (`billing_limits::credits::Period`): on PostgreSQL, postings
        // to two teams' accounts would otherwise take their numbers in one order and commit in
        // the other, and a report run between the two commits would never count the first.
        super::tenancy::lock_org(&txn, op.org).await?;
        // Only an operation of the same organization is reversed.
        if let Some(r) = op.reverses {
            let theirs = credit_operation::Entity::find_by_id(r.to_string())
                .filter(credit_operation::Column::OrgId.eq(op.org.to_string()))
                .one(&txn)
                .await
                .map_err(store)?;
            if theirs.is_none() {
                return Err(TenancyError::NotFound("credit operation"));
            }
        }
        let inserted = credit_operation::Entity::insert(credit_operation::ActiveModel {
            id: Set(op.id.to_string()),
            org_id: Set(op.org.to_string()),
            idempotency_key: Set(op.idempotency_key.clone()),
            fingerprint: Set(op.fingerprint.clone()),
            kind: Set(op.kind.as_str().to_owned()),
            reverses: Set(op.reverses.map(|r| r.to_string())),
            created_at: Set(micros(op.created_at)),
            invoice_number: Set(invoice.map(|i| i.number.clone())),
        })
        .exec_without_returning(&txn)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                txn.rollback().await.map_err(store)?;
                return self.after_duplicate(op).await;
            }
            Err(e) => return Err(store(e)),
            Ok(_) => {}
        }
        // Per account: the net change and the lowest point the postings reach on the way (the
        // balance must stay above minus the overdraft at every step, not only at the end).
        let mut per_account: BTreeMap<Account, (i64, i64)> = BTreeMap::new();
        for p in &op.postings {
            let (net, lowest) = per_account.entry(p.account).or_insert((0, 0));
            *net += p.amount;
            *lowest = Ord::min(*lowest, *net);
        }
        teams_exist(&txn, op.org, per_account.keys().copied()).await?;
        // An archived team's credits are not used, nor moved in or out (a reversal, which
        // undoes what was done before, still applies): checked here, with the team held until
        // the commit, so that an archiving committed since the service looked is obeyed.
        if op.kind != EntryKind::Reversal {
            for t in per_account.keys().filter_map(|a| a.team()) {
                if let Some(row) = super::workspace::team_row(&txn, op.org, t).await?
                    && row.archived_at.is_some()
                {
                    let what = if op.kind == EntryKind::Consumption {
                        "its credits are not used"
                    } else {
                        "its credits do not move"
                    };
                    return Err(tenancy::teams::archived(&row.name, what));
                }
            }
        }
        let mut finals = BTreeMap::new();
        let mut thresholds = BTreeMap::new();
        for (account, (net, lowest)) in &per_account {
            ensure_account(&txn, op.org, *account).await?;
            let mut update = credit_account::Entity::update_many()
                .col_expr(
                    credit_account::Column::Balance,
                    Expr::col(credit_account::Column::Balance).add(*net),
                )
                .filter(credit_account::Column::OrgId.eq(op.org.to_string()))
                .filter(credit_account::Column::Account.eq(account.key()));
            if *lowest < 0 {
                update = update.filter(
                    Expr::col(credit_account::Column::Balance)
                        .add(Expr::col(credit_account::Column::Overdraft))
                        .gte(-*lowest),
                );
            }
            let res = update.exec(&txn).await.map_err(store)?;
            let row = account_row(&txn, op.org, *account).await?;
            if res.rows_affected == 0 {
                txn.rollback().await.map_err(store)?;
                return Err(CreditError::Insufficient {
                    account: *account,
                    balance: row.balance,
                    needed: -*lowest,
                    overdraft: row.overdraft,
                }
                .into());
            }
            finals.insert(*account, row.balance);
            thresholds.insert(*account, row.low_threshold);
        }
        // Walk the postings from each account's balance before the operation.
        let mut running: BTreeMap<Account, i64> = finals
            .iter()
            .map(|(a, b)| (*a, b - per_account.get(a).map_or(0, |x| x.0)))
            .collect();
        let mut rows = Vec::with_capacity(op.postings.len());
        for p in &op.postings {
            let b = running.entry(p.account).or_insert(0);
            *b += p.amount;
            rows.push(credit_entry::ActiveModel {
                seq: sea_orm::ActiveValue::NotSet,
                org_id: Set(op.org.to_string()),
                operation_id: Set(op.id.to_string()),
                account: Set(p.account.key()),
                kind: Set(p.kind.as_str().to_owned()),
                amount: Set(p.amount),
                balance_after: Set(*b),
                description: Set(op.description.clone()),
                actor: Set(op.actor.clone()),
                actor_id: Set(Some(op.actor_id.clone())),
                created_at: Set(micros(op.created_at)),
            });
        }
        credit_entry::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .map_err(store)?;
        if let Some(i) = invoice {
            insert_invoice(&txn, i).await?;
        }
        if let Some(reversed) = op.reverses {
            void_invoice_of(&txn, op.org, reversed).await?;
        }
        let entries = entries_of(&txn, &op.id.to_string()).await?;
        // The low-credit alerts go with the operation that set them off.
        let mut journal = journal;
        let mut alerted = Vec::new();
        for alert in op.low_credit.fired(
            op.org,
            &entries,
            |a| thresholds.get(&a).copied().flatten(),
            op.created_at,
        )? {
            if super::metering::insert_alert(
                &txn,
                op.org,
                &alert.limit,
                &alert.period,
                alert.threshold,
            )
            .await?
            {
                journal.absorb(alert.journal);
                alerted.push(alert.limit);
            }
        }
        commit(txn, journal).await?;
        for limit in alerted {
            metrics::counter!("axie_usage_alerts_sent_total", "limit" => limit).increment(1);
        }
        metrics::counter!("axie_credit_operations_total", "kind" => op.kind.as_str()).increment(1);
        Ok(Posted::Applied(entries))
    }

    async fn credit_operation_by_key(
        &self,
        org: OrgId,
        key: &str,
    ) -> Result<Option<(String, Vec<CreditEntry>)>, TenancyError> {
        let Some(op) = credit_operation::Entity::find()
            .filter(credit_operation::Column::OrgId.eq(org.to_string()))
            .filter(credit_operation::Column::IdempotencyKey.eq(key))
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        Ok(Some((op.fingerprint, entries_of(self.db(), &op.id).await?)))
    }

    async fn credit_operation(
        &self,
        org: OrgId,
        op_id: CreditOperationId,
    ) -> Result<Option<OperationRecord>, TenancyError> {
        let Some(op) = credit_operation::Entity::find_by_id(op_id.to_string())
            .filter(credit_operation::Column::OrgId.eq(org.to_string()))
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        let reversed_by = credit_operation::Entity::find()
            .filter(credit_operation::Column::Reverses.eq(op_id.to_string()))
            .filter(credit_operation::Column::OrgId.eq(org.to_string()))
            .one(self.db())
            .await
            .map_err(store)?
            .map(|r| id("credit operation id", &r.id))
            .transpose()?;
        Ok(Some(OperationRecord {
            kind: EntryKind::parse(&op.kind)
                .ok_or_else(|| corrupt("credit operation kind", &op.kind))?,
            reversed_by,
            entries: entries_of(self.db(), &op.id).await?,
            invoice: op.invoice_number,
        }))
    }

    async fn set_allocations(
        &self,
        org: OrgId,
        plan: &[Allocation],
        journal: Journal,
    ) -> Result<(), TenancyError> {
        // The plan's accounts exist first, in a transaction of their own (empty accounts, which
        // change nothing if the rest fails), so the one below inserts nothing: an insert would
        // wait for a posting's insert of the same account while that posting waits for a row
        // this transaction holds.
        let txn = self.db().begin().await.map_err(store)?;
        teams_exist(&txn, org, plan.iter().map(|a| Account::Team(a.team))).await?;
        for a in plan {
            ensure_account(&txn, org, Account::Team(a.team)).await?;
        }
        txn.commit().await.map_err(store)?;
        let txn = self.db().begin().await.map_err(store)?;
        teams_exist(&txn, org, plan.iter().map(|a| Account::Team(a.team))).await?;
        // Every account of the organization, locked in key order (PostgreSQL), as a posting
        // takes its accounts in key order: the updates below, in the order of their plans and
        // of `plan`, then wait for no row a posting holds while it waits for one of these.
        credit_account::Entity::find()
            .select_only()
            .column(credit_account::Column::Account)
            .filter(credit_account::Column::OrgId.eq(org.to_string()))
            .order_by_asc(credit_account::Column::Account)
            .lock(LockType::Update)
            .into_tuple::<String>()
            .all(&txn)
            .await
            .map_err(store)?;
        credit_account::Entity::update_many()
            .col_expr(
                credit_account::Column::AllocationPercent,
                Expr::value(0_i16),
            )
            .filter(credit_account::Column::OrgId.eq(org.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        for a in plan {
            let account = Account::Team(a.team);
            credit_account::Entity::update_many()
                .col_expr(
                    credit_account::Column::AllocationPercent,
                    Expr::value(i16::from(a.percent)),
                )
                .filter(credit_account::Column::OrgId.eq(org.to_string()))
                .filter(credit_account::Column::Account.eq(account.key()))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        commit(txn, journal).await
    }

    async fn configure_credit_account(
        &self,
        org: OrgId,
        account: Account,
        overdraft: i64,
        low_threshold: Option<i64>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        teams_exist(&txn, org, [account]).await?;
        ensure_account(&txn, org, account).await?;
        credit_account::Entity::update_many()
            .col_expr(credit_account::Column::Overdraft, Expr::value(overdraft))
            .col_expr(
                credit_account::Column::LowThreshold,
                Expr::value(low_threshold),
            )
            .filter(credit_account::Column::OrgId.eq(org.to_string()))
            .filter(credit_account::Column::Account.eq(account.key()))
            .exec(&txn)
            .await
            .map_err(store)?;
        commit(txn, journal).await
    }

    async fn credit_history(
        &self,
        org: OrgId,
        account: Option<Account>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CreditEntry>, TenancyError> {
        let mut q =
            credit_entry::Entity::find().filter(credit_entry::Column::OrgId.eq(org.to_string()));
        if let Some(a) = account {
            q = q.filter(credit_entry::Column::Account.eq(a.key()));
        }
        if let Some(b) = before {
            q = q.filter(credit_entry::Column::Seq.lt(b));
        }
        q.order_by_desc(credit_entry::Column::Seq)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(entry_of)
            .collect()
    }

    async fn credit_ledger(
        &self,
        org: OrgId,
        after: Option<i64>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CreditEntry>, TenancyError> {
        let mut q = credit_entry::Entity::find()
            .filter(credit_entry::Column::OrgId.eq(org.to_string()))
            .filter(credit_entry::Column::CreatedAt.lt(micros(until)));
        if let Some(a) = after {
            q = q.filter(credit_entry::Column::Seq.gt(a));
        }
        q.order_by_asc(credit_entry::Column::Seq)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(entry_of)
            .collect()
    }
}
