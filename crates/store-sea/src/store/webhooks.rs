//! [`WebhookStore`] on SeaORM, and the fan-out of domain events into deliveries that
//! runs inside every journal commit.

use async_trait::async_trait;
use audit::{DomainEvent, EventKind, Journal};
use chrono::{DateTime, Utc};
use rbac_core::{EndpointId, OrgId};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};
use webhooks::{
    Attempt, AttemptOutcome, Delivery, DeliveryStatus, Endpoint, EndpointChange, StoredSecrets,
    WebhookError, WebhookStore, WebhookUrl,
};

use crate::SeaStore;
use crate::convert::{corrupt, id, micros, time};
use crate::entity::{webhook_attempt, webhook_delivery, webhook_endpoint};
use crate::error::db_err;

fn store(e: DbErr) -> WebhookError {
    WebhookError::Store(db_err(e))
}

/// An endpoint's stored event filter: the names this version knows, and whether there were
/// names it did not know (a newer version stored them).
fn event_filter(m: &webhook_endpoint::Model) -> Result<(Vec<EventKind>, bool), WebhookError> {
    let names: Vec<String> =
        serde_json::from_str(&m.events).map_err(|_| corrupt("event filter", &m.events))?;
    let known: Vec<EventKind> = names.iter().filter_map(|e| EventKind::parse(e)).collect();
    let unknown = known.len() < names.len();
    Ok((known, unknown))
}

impl SeaStore {
    /// An endpoint's URL as stored: encrypted, bound to the endpoint's id.
    fn seal_url(&self, endpoint: EndpointId, url: &WebhookUrl) -> Result<String, WebhookError> {
        self.cipher()?
            .encrypt_bound(url.as_str().as_bytes(), &webhooks::url_context(endpoint))
            .map_err(|e| WebhookError::Store(tenancy::StoreError::new(e)))
    }

    /// The URL of an endpoint's row. A URL in clear (which only the one-time pass of
    /// [`SeaStore::seal_webhook_urls`] finds, and encrypts) or one sealed for another row does
    /// not open: the row cannot be read, and nothing is sent to it.
    fn open_url(&self, m: &webhook_endpoint::Model) -> Result<WebhookUrl, WebhookError> {
        let endpoint: EndpointId = id("endpoint id", &m.id)?;
        let plain = self
            .cipher()?
            .decrypt_bound(&m.url, &webhooks::url_context(endpoint))
            .map_err(|_| WebhookError::Unreadable(endpoint))?;
        let text = String::from_utf8(plain).map_err(|_| corrupt("webhook url", &m.id))?;
        Ok(WebhookUrl::parse(&text, false).map_err(|_| corrupt("webhook url", &m.id))?)
    }

    fn endpoint(&self, m: &webhook_endpoint::Model) -> Result<Endpoint, WebhookError> {
        endpoint_with(m, self.open_url(m)?)
    }
}

fn endpoint_with(m: &webhook_endpoint::Model, url: WebhookUrl) -> Result<Endpoint, WebhookError> {
    let (events, _) = event_filter(m)?;
    Ok(Endpoint {
        id: id("endpoint id", &m.id)?,
        org: id("organization id", &m.org_id)?,
        url,
        description: m.description.clone(),
        events,
        enabled: m.enabled,
        disabled_reason: m.disabled_reason.clone(),
        consecutive_failures: u32::try_from(m.consecutive_failures).unwrap_or(0),
        message: m.message.clone(),
        created_at: time(m.created_at)?,
    })
}

fn secrets(m: &webhook_endpoint::Model) -> Result<StoredSecrets, WebhookError> {
    Ok(StoredSecrets {
        current: m.secret.clone(),
        previous: match (&m.previous_secret, m.previous_secret_until) {
            (Some(s), Some(until)) => Some((s.clone(), time(until)?)),
            _ => None,
        },
    })
}

fn delivery(m: webhook_delivery::Model) -> Result<Delivery, WebhookError> {
    Ok(Delivery {
        org: id("organization id", &m.org_id)?,
        endpoint: id("endpoint id", &m.endpoint_id)?,
        event_id: id("event id", &m.event_id)?,
        kind: EventKind::parse(&m.kind).ok_or_else(|| corrupt("event kind", &m.kind))?,
        status: DeliveryStatus::parse(&m.status)
            .ok_or_else(|| corrupt("delivery status", &m.status))?,
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        next_attempt_at: time(m.next_attempt_at)?,
        created_at: time(m.created_at)?,
        id: m.id,
        payload: m.payload,
    })
}

/// Queues each event for every endpoint of its organization that takes it, as
/// [`webhooks::Endpoint::queues`] says (pending, or failed for an endpoint disabled
/// automatically), or for `only` that endpoint, while the organization's plan has webhooks
/// (`webhooks::goes_out`). Test events are queued only for the endpoint they were sent to.
/// Endpoints are read once per organization and the deliveries inserted in a few multi-row
/// statements. Returns how many pending deliveries were queued.
pub(crate) async fn fan_out<C: ConnectionTrait>(
    db: &C,
    events: &[DomainEvent],
    only: Option<EndpointId>,
) -> Result<usize, DbErr> {
    let mut endpoints: std::collections::HashMap<
        OrgId,
        Vec<(Vec<EventKind>, bool, webhook_endpoint::Model)>,
    > = std::collections::HashMap::new();
    let mut plans: std::collections::HashMap<OrgId, Option<String>> =
        std::collections::HashMap::new();
    let (mut rows, mut pending) = (Vec::new(), 0);
    for e in events {
        if only.is_none() && e.kind == EventKind::WebhookTest {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = plans.entry(e.org) {
            // As this transaction sees it: a plan change's own events see the new plan.
            slot.insert(
                crate::entity::organization::Entity::find_by_id(e.org.to_string())
                    .select_only()
                    .column(crate::entity::organization::Column::Plan)
                    .into_tuple()
                    .one(db)
                    .await?,
            );
        }
        if !webhooks::goes_out(plans.get(&e.org).and_then(Option::as_deref), e) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = endpoints.entry(e.org) {
            let mut q = webhook_endpoint::Entity::find()
                .filter(webhook_endpoint::Column::OrgId.eq(e.org.to_string()))
                .order_by_asc(webhook_endpoint::Column::Id);
            if let Some(ep) = only {
                q = q.filter(webhook_endpoint::Column::Id.eq(ep.to_string()));
            }
            // On PostgreSQL the endpoints are held (`KEY SHARE`, which only a deletion waits
            // for) until this transaction commits, so an endpoint deleted meanwhile also loses
            // the deliveries queued here: its deletion waits, then deletes them with the rest.
            // One being deleted right now is skipped, not waited for: its deletion holds it
            // and may wait for locks of this transaction's. (Should that deletion then roll
            // back, the endpoint misses this transaction's events: the price of never waiting
            // here, for a deletion that fails, which only a database error makes it do.)
            if db.get_database_backend() == DbBackend::Postgres {
                q = q.lock_with_behavior(LockType::KeyShare, LockBehavior::SkipLocked);
            }
            // Read without the URL (encrypted, and not needed to queue).
            let found = q
                .all(db)
                .await?
                .into_iter()
                .filter_map(|m| {
                    // A URL in clear (written by hand after the one-time pass that seals
                    // them) is never read: nothing is queued for it.
                    if !m.url.starts_with("v2:") {
                        tracing::warn!(endpoint = %m.id, "webhook endpoint skipped: its URL is not sealed");
                        return None;
                    }
                    let (events, unknown) = event_filter(&m)
                        .inspect_err(|err| {
                            tracing::warn!(endpoint = %m.id, error = %err, "webhook endpoint skipped: it cannot be read");
                        })
                        .ok()?;
                    // A filter none of whose names this version knows (a newer one stored
                    // them) reads as empty, which would mean every event: it means none here.
                    let unknown_filter = events.is_empty() && unknown;
                    Some((events, unknown_filter, m))
                })
                .collect();
            slot.insert(found);
        }
        let mut document = None;
        for (events, unknown_filter, ep) in endpoints.get(&e.org).into_iter().flatten() {
            let queued =
                webhooks::queued_as(events, ep.enabled, ep.disabled_reason.is_some(), e.kind);
            let status = match (only, queued) {
                (Some(_), _) => DeliveryStatus::Pending,
                (None, Some(status)) if !*unknown_filter => status,
                _ => continue,
            };
            pending += usize::from(status == DeliveryStatus::Pending);
            // The event document is made once for the endpoints that take it; a templated
            // endpoint gets its own message.
            let templated;
            let body = if let Some(t) = &ep.message {
                templated = webhooks::template::body(t, e);
                &templated
            } else {
                &*document.get_or_insert_with(|| webhooks::payload(e))
            };
            rows.push(webhook_delivery::ActiveModel {
                id: Set(format!("dlv_{}", uuid::Uuid::now_v7().simple())),
                org_id: Set(e.org.to_string()),
                endpoint_id: Set(ep.id.clone()),
                event_id: Set(e.id.to_string()),
                kind: Set(e.kind.as_str().to_owned()),
                payload: Set(body.clone()),
                status: Set(status.as_str().to_owned()),
                attempts: Set(0),
                next_attempt_at: Set(micros(e.occurred_at)),
                created_at: Set(micros(e.occurred_at)),
            });
        }
    }
    // Ten columns a row: 500 rows stay far below either database's bound on parameters.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(500).collect();
        webhook_delivery::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(pending)
}

/// Writes a batch of attempts and moves their deliveries and endpoints on, inside `txn`, with a
/// few statements per batch rather than per attempt: the previous attempt numbers (history keeps
/// counting across a resend, while `attempts` on the delivery counts the current budget) in one
/// query, the attempts in multi-row inserts, one update per delivery, and one per endpoint whose
/// failure streak or state changes. Each endpoint ends as applying the outcomes one by one, in
/// order, to the endpoint as stored would leave it: a success ends the streak, a failure adds to
/// it, and the first failure whose [`webhooks::DisableRule`] disables the endpoint (as it then
/// stands) does so. Returns the notices of the disabled endpoints, for the caller to commit. An
/// outcome whose delivery is gone (its endpoint was deleted while the attempt ran) or no longer
/// as claimed (pending at the claimed attempt count, under the outcome's lease) is dropped.
async fn apply_attempts(
    txn: &DatabaseTransaction,
    batch: Vec<(Delivery, AttemptOutcome)>,
) -> Result<Journal, DbErr> {
    // The batch's endpoints first, in id order, as an endpoint's deletion locks its endpoint
    // before its deliveries: with the deliveries first here, the two would take the same rows in
    // opposite orders and could deadlock on PostgreSQL. A batch that will write an endpoint's
    // streak or state reads them here and holds the endpoint until it commits (`FOR NO KEY
    // UPDATE`, which another such batch, an edit and a deletion wait for): a failure always
    // may; a success only when the stored streak is not 0 already. Taking that lock later, at
    // the endpoint's update, would let two batches that both hold one delivery (sent twice
    // after a lease ran out) each wait for the other, one on the delivery and one on the
    // endpoint. Other batches hold their endpoints against deletion alone (`KEY SHARE`), so
    // batches of successes for one healthy endpoint do not wait for each other. SQLite drops
    // the lock clause: its writes take turns.
    let mut ids: Vec<String> = batch.iter().map(|(d, _)| d.endpoint.to_string()).collect();
    ids.sort();
    ids.dedup();
    let read = |lock: LockType| {
        webhook_endpoint::Entity::find()
            .select_only()
            .column(webhook_endpoint::Column::Id)
            .column(webhook_endpoint::Column::Enabled)
            .column(webhook_endpoint::Column::ConsecutiveFailures)
            .filter(webhook_endpoint::Column::Id.is_in(ids.clone()))
            .order_by_asc(webhook_endpoint::Column::Id)
            .lock(lock)
            .into_tuple::<(String, bool, i32)>()
            .all(txn)
    };
    let any_failed = batch
        .iter()
        .any(|(_, o)| o.status == DeliveryStatus::Failed);
    let mut rows = read(if any_failed {
        LockType::NoKeyUpdate
    } else {
        LockType::KeyShare
    })
    .await?;
    let any_delivered = batch
        .iter()
        .any(|(_, o)| o.status == DeliveryStatus::Delivered);
    if !any_failed && any_delivered && rows.iter().any(|(_, _, streak)| *streak != 0) {
        // Before any delivery is touched, and read again: the lock may wait for a batch that
        // moved the streak on.
        rows = read(LockType::NoKeyUpdate).await?;
    }
    let stored: std::collections::HashMap<String, (bool, i32)> = rows
        .into_iter()
        .map(|(id, enabled, streak)| (id, (enabled, streak)))
        .collect();
    // Then the deliveries, in id order (an erasure updates deliveries in id order too), each
    // only if it is still as the worker claimed it. One deleted with its endpoint (before this
    // batch took the lock, or at any time on SQLite, whose writes take turns), or whose lease
    // ran out and whose outcome another worker recorded first, or that was recorded and resent
    // since (its attempt count moved on, it is no longer pending, or it no longer carries the
    // outcome's lease), updates no row, and its outcome is dropped, attempt and notice alike:
    // no attempt without its delivery, and no late outcome over a newer one.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|&a, &b| batch[a].0.id.cmp(&batch[b].0.id));
    let mut moved = vec![false; batch.len()];
    for i in order {
        let (d, o) = &batch[i];
        moved[i] = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(o.status.as_str()),
            )
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::value(i32::try_from(o.attempt.number).unwrap_or(i32::MAX)),
            )
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(micros(o.next_attempt_at)),
            )
            .filter(webhook_delivery::Column::Id.eq(d.id.as_str()))
            .filter(
                webhook_delivery::Column::Attempts
                    .eq(i32::try_from(d.attempts).unwrap_or(i32::MAX)),
            )
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(
                Condition::all().add_option(
                    o.lease
                        .map(|lease| webhook_delivery::Column::NextAttemptAt.eq(micros(lease))),
                ),
            )
            .exec(txn)
            .await?
            .rows_affected
            > 0;
    }
    let kept: Vec<(Delivery, AttemptOutcome)> = batch
        .into_iter()
        .zip(moved)
        .filter_map(|(outcome, moved)| moved.then_some(outcome))
        .collect();
    let mut journal = Journal::default();
    if kept.is_empty() {
        return Ok(journal);
    }
    let ids: Vec<String> = kept.iter().map(|(d, _)| d.id.clone()).collect();
    let mut numbers: std::collections::HashMap<String, i32> = webhook_attempt::Entity::find()
        .select_only()
        .column(webhook_attempt::Column::DeliveryId)
        .column_as(webhook_attempt::Column::Number.max(), "number")
        .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
        .group_by(webhook_attempt::Column::DeliveryId)
        .into_tuple::<(String, Option<i32>)>()
        .all(txn)
        .await?
        .into_iter()
        .map(|(id, n)| (id, n.unwrap_or(0)))
        .collect();
    /// An endpoint's state as the batch moves it on, from the stored one.
    struct EndpointState {
        enabled: bool,
        streak: u32,
        /// Whether the streak changed.
        counted: bool,
        /// The reason, when this batch disabled the endpoint.
        disabled: Option<String>,
    }
    let mut endpoints: std::collections::BTreeMap<String, EndpointState> =
        std::collections::BTreeMap::new();
    let mut attempts = Vec::with_capacity(kept.len());
    // The outcomes in the batch's order: a success ends a streak, and a failure that reaches
    // its rule's threshold, or a 410, disables the endpoint once.
    for (d, o) in kept {
        let n = numbers.entry(d.id.clone()).or_insert(0);
        *n += 1;
        attempts.push(webhook_attempt::ActiveModel {
            delivery_id: Set(d.id.clone()),
            number: Set(*n),
            at: Set(micros(o.attempt.at)),
            status: Set(o.attempt.status.map(i32::from)),
            duration_ms: Set(i64::try_from(o.attempt.duration_ms).unwrap_or(i64::MAX)),
            error: Set(o.attempt.error.clone()),
            response_body: Set(o.attempt.response_body.clone()),
        });
        let key = d.endpoint.to_string();
        let Some(&(enabled, streak)) = stored.get(&key) else {
            continue;
        };
        let state = endpoints.entry(key).or_insert(EndpointState {
            enabled,
            streak: u32::try_from(streak).unwrap_or(0),
            counted: false,
            disabled: None,
        });
        match o.status {
            DeliveryStatus::Delivered => {
                state.counted |= state.streak != 0;
                state.streak = 0;
            }
            DeliveryStatus::Failed => {
                state.counted = true;
                state.streak = state.streak.saturating_add(1);
            }
            DeliveryStatus::Pending => {}
        }
        if let Some(rule) = o.disable
            && o.status == DeliveryStatus::Failed
            && rule.disables(state.enabled, state.streak)
        {
            state.enabled = false;
            state.disabled = Some(rule.reason());
            journal.records.extend(rule.notice.records);
            journal.events.extend(rule.notice.events);
            journal.mails.extend(rule.notice.mails);
        }
    }
    // Seven columns a row: 500 rows stay far below either database's bound on parameters.
    let mut rows = attempts.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(500).collect();
        webhook_attempt::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    for (endpoint, state) in endpoints {
        if !state.counted && state.disabled.is_none() {
            continue;
        }
        let mut upd = webhook_endpoint::Entity::update_many()
            .filter(webhook_endpoint::Column::Id.eq(endpoint.as_str()))
            .col_expr(
                webhook_endpoint::Column::ConsecutiveFailures,
                Expr::value(i32::try_from(state.streak).unwrap_or(i32::MAX)),
            );
        if let Some(reason) = state.disabled {
            tracing::warn!(endpoint = %endpoint, %reason, "webhook endpoint disabled");
            upd = upd
                .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
                .col_expr(
                    webhook_endpoint::Column::DisabledReason,
                    Expr::value(reason),
                );
        }
        upd.exec(txn).await?;
    }
    Ok(journal)
}

/// The deliveries `filter` selects, locked in id order on PostgreSQL (see
/// [`super::in_key_order`]). Every transaction that changes several deliveries takes them in
/// id order (a batch of attempts and an erasure's scrub update them one by one in id order).
pub(super) fn deliveries_in_id_order(
    backend: DbBackend,
    filter: Condition,
    skip_locked: bool,
) -> Condition {
    super::in_key_order::<webhook_delivery::Entity>(
        backend,
        webhook_delivery::Column::Id,
        filter,
        skip_locked,
        None,
    )
}

/// Deletes the deliveries `filter` selects, inside `txn`, taking them in id order (see
/// [`deliveries_in_id_order`]), and returns their ids only (a delivery's row holds its whole
/// payload, which `exec_with_returning` would read back).
pub(super) async fn delete_deliveries_returning_ids(
    txn: &DatabaseTransaction,
    filter: Condition,
) -> Result<Vec<String>, DbErr> {
    let backend = txn.get_database_backend();
    let stmt = Query::delete()
        .from_table(webhook_delivery::Entity)
        .cond_where(deliveries_in_id_order(backend, filter, false))
        .returning_col(webhook_delivery::Column::Id)
        .to_owned();
    txn.query_all_raw(backend.build(&stmt))
        .await?
        .iter()
        .map(|r| r.try_get::<String>("", "id"))
        .collect()
}

/// Checks inside `txn` that `org` has the endpoint `id`, and on PostgreSQL holds it (`KEY
/// SHARE`, which only a deletion waits for) until the commit: a deletion that commits first
/// leaves nothing to act on (NotFound); one that comes later waits, then removes what this
/// transaction queued with the rest.
async fn hold_endpoint(
    txn: &DatabaseTransaction,
    org: OrgId,
    id: EndpointId,
) -> Result<(), WebhookError> {
    webhook_endpoint::Entity::find_by_id(id.to_string())
        .filter(webhook_endpoint::Column::OrgId.eq(org.to_string()))
        .select_only()
        .column(webhook_endpoint::Column::Id)
        .lock(LockType::KeyShare)
        .into_tuple::<String>()
        .one(txn)
        .await
        .map_err(store)?
        .ok_or(WebhookError::NotFound("webhook endpoint"))?;
    Ok(())
}

async fn commit(txn: DatabaseTransaction, journal: Journal) -> Result<(), WebhookError> {
    crate::journal::finish(txn, journal, 0)
        .await
        .map_err(store)?;
    Ok(())
}

impl SeaStore {
    /// The due deliveries to claim: the oldest overall; or, while some endpoints or
    /// organizations are skipped (they have enough in flight), the oldest of each remaining
    /// endpoint with due work, taking the endpoints whose oldest due delivery is oldest first. The second way costs one index
    /// seek per enabled endpoint and never scans the skipped endpoints' waiting deliveries, which
    /// pile up behind a slow or hanging receiver.
    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        skip: &[EndpointId],
        skip_orgs: &[OrgId],
    ) -> Result<Vec<webhook_delivery::Model>, DbErr> {
        let due = || {
            webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                .filter(webhook_delivery::Column::NextAttemptAt.lte(micros(now)))
                .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        };
        if skip.is_empty() && skip_orgs.is_empty() {
            // Enabled endpoints' work only: a disabled endpoint keeps its queue until it is
            // recovered, and its oldest deliveries would otherwise fill every claim.
            let enabled = Query::select()
                .column(webhook_endpoint::Column::Id)
                .from(webhook_endpoint::Entity)
                .and_where(webhook_endpoint::Column::Enabled.eq(true))
                .to_owned();
            return self
                .fetch_all(
                    due()
                        .filter(webhook_delivery::Column::EndpointId.in_subquery(enabled))
                        .limit(u64::from(limit)),
                )
                .await;
        }
        const ENDPOINTS_PER_CLAIM: usize = 16;
        let backend = self.reader().get_database_backend();
        let mut next = 0;
        let mut param = || {
            next += 1;
            if backend == DbBackend::Postgres {
                format!("${next}")
            } else {
                "?".to_owned()
            }
        };
        let status = param();
        let mut not_in = String::new();
        for (column, n) in [("e.id", skip.len()), ("e.org_id", skip_orgs.len())] {
            if n > 0 {
                let params: Vec<String> = (0..n).map(|_| param()).collect();
                not_in.push_str(&format!(" AND {column} NOT IN ({})", params.join(", ")));
            }
        }
        let at = param();
        let sql = format!(
            "SELECT id FROM (SELECT e.id AS id, (SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
             WHERE d.endpoint_id = e.id AND d.status = {status}) AS due FROM webhook_endpoints e \
             WHERE e.enabled{not_in}) x WHERE due <= {at} ORDER BY due LIMIT {ENDPOINTS_PER_CLAIM}"
        );
        let mut values: Vec<sea_orm::Value> = vec![DeliveryStatus::Pending.as_str().into()];
        values.extend(skip.iter().map(|e| sea_orm::Value::from(e.to_string())));
        values.extend(
            skip_orgs
                .iter()
                .map(|o| sea_orm::Value::from(o.to_string())),
        );
        values.push(micros(now).into());
        let endpoints: Vec<String> = self
            .reader()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .iter()
            .map(|r| r.try_get::<String>("", "id"))
            .collect::<Result<_, _>>()?;
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        // An even share of the claim for each endpoint, no more than a claim takes of one.
        let share = u64::from(limit)
            .div_ceil(endpoints.len() as u64)
            .min(webhooks::MAX_CLAIMED_PER_ENDPOINT as u64);
        let mut out = Vec::new();
        for ep in endpoints {
            out.extend(
                self.fetch_all(
                    due()
                        .filter(webhook_delivery::Column::EndpointId.eq(ep))
                        .limit(share),
                )
                .await?,
            );
        }
        out.sort_by_key(|d| d.next_attempt_at);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn endpoint_row(
        &self,
        org: OrgId,
        id: EndpointId,
    ) -> Result<webhook_endpoint::Model, WebhookError> {
        webhook_endpoint::Entity::find_by_id(id.to_string())
            .filter(webhook_endpoint::Column::OrgId.eq(org.to_string()))
            .one(self.db())
            .await
            .map_err(store)?
            .ok_or(WebhookError::NotFound("webhook endpoint"))
    }
}

fn events_json(events: &[EventKind]) -> String {
    serde_json::to_string(&events.iter().map(|e| e.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl WebhookStore for SeaStore {
    async fn create_endpoint(
        &self,
        ep: &Endpoint,
        secret: &str,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Under the organization's lock, so two creations cannot both pass the count.
        super::tenancy::lock_org(&txn, ep.org)
            .await
            .map_err(|e| match e {
                tenancy::TenancyError::Store(s) => WebhookError::Store(s),
                _ => WebhookError::NotFound("organization"),
            })?;
        let existing = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::OrgId.eq(ep.org.to_string()))
            .count(&txn)
            .await
            .map_err(store)?;
        if existing >= webhooks::MAX_ENDPOINTS_PER_ORG as u64 {
            txn.rollback().await.map_err(store)?;
            return Err(webhooks::too_many_endpoints());
        }
        webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel {
            id: Set(ep.id.to_string()),
            org_id: Set(ep.org.to_string()),
            url: Set(self.seal_url(ep.id, &ep.url)?),
            description: Set(ep.description.clone()),
            events: Set(events_json(&ep.events)),
            enabled: Set(ep.enabled),
            disabled_reason: Set(ep.disabled_reason.clone()),
            consecutive_failures: Set(i32::try_from(ep.consecutive_failures).unwrap_or(i32::MAX)),
            secret: Set(secret.to_owned()),
            previous_secret: Set(None),
            previous_secret_until: Set(None),
            created_at: Set(micros(ep.created_at)),
            message: Set(ep.message.clone()),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        commit(txn, journal).await
    }

    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<EndpointId>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, WebhookError> {
        let mut q = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::OrgId.eq(org.to_string()));
        if let Some(a) = after {
            q = q.filter(webhook_endpoint::Column::Id.gt(a.to_string()));
        }
        let rows = q
            .order_by_asc(webhook_endpoint::Column::Id)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?;
        // One whose URL cannot be read is left out (and logged), not the whole list: it can
        // still be deleted by its id.
        rows.iter()
            .filter_map(|m| match self.endpoint(m) {
                Err(e @ WebhookError::Unreadable(_)) => {
                    tracing::warn!(endpoint = %m.id, error = %e, "webhook endpoint left out of its list: it cannot be read");
                    None
                }
                other => Some(other),
            })
            .collect()
    }

    async fn still_leased(
        &self,
        claimed: &Delivery,
        lease: DateTime<Utc>,
    ) -> Result<Option<(Delivery, Endpoint, StoredSecrets)>, WebhookError> {
        // On the readers (on a SQLite file, rusqlite on the calling thread): each read is its
        // own statement, so it sees the committed claim, and the writer, which the claims and
        // the recorder's batches need, is not asked twice more per delivery.
        let Some(row) = self
            .fetch_one(
                webhook_delivery::Entity::find_by_id(claimed.id.clone())
                    .filter(webhook_delivery::Column::OrgId.eq(claimed.org.to_string()))
                    .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(webhook_delivery::Column::NextAttemptAt.eq(micros(lease)))
                    .filter(webhook_delivery::Column::Attempts.eq(i64::from(claimed.attempts))),
            )
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        let Some(ep) = self
            .fetch_one(
                webhook_endpoint::Entity::find_by_id(row.endpoint_id.clone())
                    .filter(webhook_endpoint::Column::OrgId.eq(claimed.org.to_string()))
                    .filter(webhook_endpoint::Column::Enabled.eq(true)),
            )
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        let mut now = delivery(row)?;
        now.next_attempt_at = claimed.next_attempt_at;
        Ok(Some((now, self.endpoint(&ep)?, secrets(&ep)?)))
    }

    async fn get_endpoint(&self, org: OrgId, id: EndpointId) -> Result<Endpoint, WebhookError> {
        self.endpoint(&self.endpoint_row(org, id).await?)
    }

    async fn update_endpoint(
        &self,
        org: OrgId,
        id: EndpointId,
        change: &EndpointChange,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        use webhook_endpoint::Column;
        let url = change
            .url
            .as_ref()
            .map(|u| self.seal_url(id, u))
            .transpose()?;
        let txn = self.db().begin().await.map_err(store)?;
        // Only the fields the change sets: the row keeps what another edit, or the worker,
        // wrote since the change was read.
        let mut update = webhook_endpoint::Entity::update_many();
        let mut set = false;
        if let Some(u) = url {
            update = update.col_expr(Column::Url, Expr::value(u));
            set = true;
        }
        if let Some(d) = &change.description {
            update = update.col_expr(Column::Description, Expr::value(d.as_str()));
            set = true;
        }
        if let Some(e) = &change.events {
            update = update.col_expr(Column::Events, Expr::value(events_json(e)));
            set = true;
        }
        if let Some(m) = &change.message {
            update = update.col_expr(Column::Message, Expr::value(m.clone()));
            set = true;
        }
        if let Some(on) = change.enabled {
            update = update.col_expr(Column::Enabled, Expr::value(on));
            if on {
                // Decided by the row as it is when written: an endpoint that was off starts
                // afresh; one that was on keeps the failure streak the worker may have added
                // to since.
                update = update
                    .col_expr(
                        Column::DisabledReason,
                        Expr::cust("CASE WHEN enabled THEN disabled_reason ELSE NULL END"),
                    )
                    .col_expr(
                        Column::ConsecutiveFailures,
                        Expr::cust("CASE WHEN enabled THEN consecutive_failures ELSE 0 END"),
                    );
            } else {
                // Off by hand, also one that was disabled automatically: it then keeps no
                // deliveries for a recovery (`Endpoint::queues`).
                update =
                    update.col_expr(Column::DisabledReason, Expr::value(Option::<String>::None));
            }
            set = true;
        }
        if !set {
            // Nothing to write: the endpoint must still be there for the journal to commit.
            update = update.col_expr(Column::Id, Expr::col(Column::Id));
        }
        let res = update
            .filter(Column::Id.eq(id.to_string()))
            .filter(Column::OrgId.eq(org.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(WebhookError::NotFound("webhook endpoint"));
        }
        commit(txn, journal).await
    }

    async fn delete_endpoint(
        &self,
        org: OrgId,
        id: EndpointId,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = webhook_endpoint::Entity::delete_many()
            .filter(webhook_endpoint::Column::Id.eq(id.to_string()))
            .filter(webhook_endpoint::Column::OrgId.eq(org.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(WebhookError::NotFound("webhook endpoint"));
        }
        // The queued deliveries go with their attempts. The endpoint's row is already held
        // (its delete above), which a batch of attempts on PostgreSQL locks first too: a batch
        // that took it earlier has committed by now, and the attempts it wrote are read by the
        // delete of attempts below, a statement after it.
        let queued = delete_deliveries_returning_ids(
            &txn,
            Condition::all()
                .add(webhook_delivery::Column::EndpointId.eq(id.to_string()))
                .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str())),
        )
        .await
        .map_err(store)?;
        for chunk in queued.chunks(500) {
            webhook_attempt::Entity::delete_many()
                .filter(webhook_attempt::Column::DeliveryId.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        commit(txn, journal).await
    }

    async fn secrets(&self, org: OrgId, id: EndpointId) -> Result<StoredSecrets, WebhookError> {
        secrets(&self.endpoint_row(org, id).await?)
    }

    async fn set_secrets(
        &self,
        org: OrgId,
        id: EndpointId,
        replacing: &str,
        s: &StoredSecrets,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = webhook_endpoint::Entity::update_many()
            .col_expr(
                webhook_endpoint::Column::Secret,
                Expr::value(s.current.as_str()),
            )
            .col_expr(
                webhook_endpoint::Column::PreviousSecret,
                Expr::value(s.previous.as_ref().map(|p| p.0.clone())),
            )
            .col_expr(
                webhook_endpoint::Column::PreviousSecretUntil,
                Expr::value(s.previous.as_ref().map(|p| micros(p.1))),
            )
            .filter(webhook_endpoint::Column::Id.eq(id.to_string()))
            .filter(webhook_endpoint::Column::OrgId.eq(org.to_string()))
            .filter(webhook_endpoint::Column::Secret.eq(replacing))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            // Gone, or rotated (or re-encrypted) since the rotation read it. Asked in the
            // transaction: on SQLite it holds the one writer connection.
            let exists = webhook_endpoint::Entity::find_by_id(id.to_string())
                .filter(webhook_endpoint::Column::OrgId.eq(org.to_string()))
                .count(&txn)
                .await
                .map_err(store)?;
            return Err(if exists == 0 {
                WebhookError::NotFound("webhook endpoint")
            } else {
                WebhookError::secret_changed()
            });
        }
        commit(txn, journal).await
    }

    async fn enqueue_direct(
        &self,
        org: OrgId,
        endpoint_id: EndpointId,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        let events = journal.events.clone();
        let txn = self.db().begin().await.map_err(store)?;
        // Held against updates (not only deletion, as `hold_endpoint` does): a disabling that
        // commits first is seen here, one that comes later waits for this commit.
        let enabled = webhook_endpoint::Entity::find_by_id(endpoint_id.to_string())
            .filter(webhook_endpoint::Column::OrgId.eq(org.to_string()))
            .select_only()
            .column(webhook_endpoint::Column::Enabled)
            .lock(LockType::Share)
            .into_tuple::<bool>()
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(WebhookError::NotFound("webhook endpoint"))?;
        if !enabled {
            return Err(WebhookError::Disabled);
        }
        let queued = fan_out(&txn, &events, Some(endpoint_id))
            .await
            .map_err(store)?;
        crate::journal::finish(txn, journal, queued)
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        skip: &[EndpointId],
        skip_orgs: &[OrgId],
    ) -> Result<Vec<(Delivery, Endpoint, StoredSecrets)>, WebhookError> {
        let due = self
            .due_deliveries(now, limit, skip, skip_orgs)
            .await
            .map_err(store)?;
        // The endpoints of the whole batch in one query.
        let mut ids: Vec<String> = due.iter().map(|d| d.endpoint_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let endpoints: std::collections::HashMap<String, webhook_endpoint::Model> = if ids
            .is_empty()
        {
            std::collections::HashMap::new()
        } else {
            self.fetch_all(
                webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::Id.is_in(ids)),
            )
            .await
            .map_err(store)?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect()
        };
        // At most so many of one endpoint and of one organization: a hanging endpoint's
        // backlog, or one organization's, does not fill the claim.
        let mut per_endpoint: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::new();
        let mut per_org: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let wanted: Vec<String> = due
            .iter()
            .filter(|d| endpoints.get(&d.endpoint_id).is_some_and(|e| e.enabled))
            .filter(|d| {
                let (taken, of_org) = (
                    per_endpoint
                        .get(d.endpoint_id.as_str())
                        .copied()
                        .unwrap_or(0),
                    per_org.get(d.org_id.as_str()).copied().unwrap_or(0),
                );
                if taken == webhooks::MAX_CLAIMED_PER_ENDPOINT
                    || of_org == webhooks::MAX_CLAIMED_PER_ORG
                {
                    return false;
                }
                per_endpoint.insert(d.endpoint_id.as_str(), taken + 1);
                per_org.insert(d.org_id.as_str(), of_org + 1);
                true
            })
            .map(|d| d.id.clone())
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // One conditional update is the lease for the whole batch: a row another worker leased
        // meanwhile is due later than `now` (or no longer pending) and is not taken again. On
        // PostgreSQL a row another transaction holds (an attempt being recorded, an erasure,
        // an endpoint's deletion) is skipped, not waited for.
        let leasable = Condition::all()
            .add(webhook_delivery::Column::Id.is_in(wanted))
            .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .add(webhook_delivery::Column::NextAttemptAt.lte(micros(now)));
        let leased = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(micros(lease_until)),
            )
            .filter(deliveries_in_id_order(
                self.db().get_database_backend(),
                leasable,
                true,
            ))
            .exec_with_returning(self.db())
            .await
            .map_err(store)?;
        let mut leased: std::collections::HashMap<String, webhook_delivery::Model> =
            leased.into_iter().map(|l| (l.id.clone(), l)).collect();
        let mut out = Vec::with_capacity(leased.len());
        for d in due {
            // The row as the lease left it, not as `due` read it: an erasure may have
            // rewritten its payload in between, and the old one must not go out.
            let Some(mut row) = leased.remove(&d.id) else {
                continue;
            };
            row.next_attempt_at = d.next_attempt_at;
            let Some(ep) = endpoints.get(&row.endpoint_id) else {
                continue;
            };
            // A row this version cannot read (an event kind or URL a newer one stored) is left
            // under its lease and logged: the rest of the batch still goes out.
            let id = row.id.clone();
            match (delivery(row), self.endpoint(ep), secrets(ep)) {
                (Ok(d), Ok(e), Ok(s)) => out.push((d, e, s)),
                (d, e, s) => {
                    let error = [d.err(), e.err(), s.err()]
                        .into_iter()
                        .flatten()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    tracing::warn!(delivery = %id, %error, "webhook delivery skipped: it cannot be read");
                }
            }
        }
        Ok(out)
    }

    async fn record_attempt(&self, d: &Delivery, o: AttemptOutcome) -> Result<(), WebhookError> {
        self.record_attempts(vec![(d.clone(), o)]).await
    }

    async fn record_attempts(
        &self,
        batch: Vec<(Delivery, AttemptOutcome)>,
    ) -> Result<(), WebhookError> {
        let txn = self.db().begin().await.map_err(store)?;
        let journal = apply_attempts(&txn, batch).await.map_err(store)?;
        commit(txn, journal).await
    }

    async fn list_deliveries(
        &self,
        org: OrgId,
        ep: EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.endpoint_row(org, ep).await?;
        let mut q = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::OrgId.eq(org.to_string()))
            .filter(webhook_delivery::Column::EndpointId.eq(ep.to_string()));
        if let Some(s) = status {
            q = q.filter(webhook_delivery::Column::Status.eq(s.as_str()));
        }
        if let Some(b) = before {
            q = q.filter(webhook_delivery::Column::Id.lt(b));
        }
        let rows = q
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?;
        rows.into_iter().map(delivery).collect()
    }

    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        delivery_id: &str,
    ) -> Result<Vec<Attempt>, WebhookError> {
        // No delivery id holds U+0000, and PostgreSQL would refuse the query.
        if delivery_id.contains('\0') {
            return Err(WebhookError::NotFound("delivery"));
        }
        let owned = webhook_delivery::Entity::find_by_id(delivery_id.to_owned())
            .filter(webhook_delivery::Column::OrgId.eq(org.to_string()))
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint.to_string()))
            .one(self.db())
            .await
            .map_err(store)?;
        if owned.is_none() {
            return Err(WebhookError::NotFound("delivery"));
        }
        let rows = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::DeliveryId.eq(delivery_id))
            .order_by_asc(webhook_attempt::Column::Number)
            .all(self.db())
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(|m| {
                Ok(Attempt {
                    delivery: m.delivery_id,
                    number: u32::try_from(m.number).unwrap_or(0),
                    at: time(m.at)?,
                    status: m.status.and_then(|s| u16::try_from(s).ok()),
                    duration_ms: u64::try_from(m.duration_ms).unwrap_or(0),
                    error: m.error,
                    response_body: m.response_body,
                })
            })
            .collect()
    }

    async fn requeue(
        &self,
        org: OrgId,
        ep: EndpointId,
        one: Option<&str>,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<u64, WebhookError> {
        // No delivery id holds U+0000, and PostgreSQL would refuse the query.
        if one.is_some_and(|d| d.contains('\0')) {
            return Err(WebhookError::NotFound("finished delivery"));
        }
        let txn = self.db().begin().await.map_err(store)?;
        // Checked before the transaction, a failed delivery could be made pending again just
        // after its endpoint's deletion removed the queue, and stay queued for an endpoint that
        // no longer exists.
        hold_endpoint(&txn, org, ep).await?;
        let mut which = Condition::all()
            .add(webhook_delivery::Column::OrgId.eq(org.to_string()))
            .add(webhook_delivery::Column::EndpointId.eq(ep.to_string()));
        match one {
            Some(d) => {
                which = which
                    .add(webhook_delivery::Column::Id.eq(d))
                    .add(webhook_delivery::Column::Status.ne(DeliveryStatus::Pending.as_str()))
            }
            None => {
                which =
                    which.add(webhook_delivery::Column::Status.eq(DeliveryStatus::Failed.as_str()));
                if let Some(s) = since {
                    which = which.add(webhook_delivery::Column::CreatedAt.gte(micros(s)));
                }
            }
        }
        let n = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Pending.as_str()),
            )
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(0))
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(micros(now)),
            )
            .filter(deliveries_in_id_order(
                txn.get_database_backend(),
                which,
                false,
            ))
            .exec(&txn)
            .await
            .map_err(store)?
            .rows_affected;
        if one.is_some() && n == 0 {
            // Nothing was resent, so nothing is recorded: the transaction is dropped.
            return Err(WebhookError::NotFound("finished delivery"));
        }
        commit(txn, journal).await?;
        Ok(n)
    }

    async fn delivery_counts(
        &self,
        org: OrgId,
        ep: EndpointId,
    ) -> Result<Vec<(DeliveryStatus, u64)>, WebhookError> {
        self.endpoint_row(org, ep).await?;
        let mut out = Vec::new();
        for s in [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ] {
            let n = sea_orm::PaginatorTrait::count(
                webhook_delivery::Entity::find()
                    .filter(webhook_delivery::Column::EndpointId.eq(ep.to_string()))
                    .filter(webhook_delivery::Column::Status.eq(s.as_str())),
                self.db(),
            )
            .await
            .map_err(store)?;
            out.push((s, n));
        }
        Ok(out)
    }
}
