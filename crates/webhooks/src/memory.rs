//! An in-memory [`WebhookStore`] for embedders' unit tests. Journals go to an inner
//! [`MemoryAuditStore`]; [`MemoryWebhookStore::publish`] plays the adapter's fan-out.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use audit::{AuditStore, DomainEvent, Journal, MemoryAuditStore};
use chrono::{DateTime, Utc};
use rbac_core::{EndpointId, OrgId};

use crate::error::{StoreError, WebhookError};
use crate::model::{Attempt, Delivery, DeliveryStatus, Endpoint};
use crate::store::{AttemptOutcome, EndpointChange, StoredSecrets, WebhookStore};

#[derive(Debug, Default)]
struct State {
    endpoints: Vec<(Endpoint, StoredSecrets)>,
    deliveries: Vec<Delivery>,
    attempts: Vec<Attempt>,
    next_id: u64,
}

/// Endpoints, deliveries and attempts in memory.
#[derive(Debug, Default)]
pub struct MemoryWebhookStore {
    state: Mutex<State>,
    audit: MemoryAuditStore,
}

impl MemoryWebhookStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The audit store that receives every journal.
    #[must_use]
    pub fn audit(&self) -> &MemoryAuditStore {
        &self.audit
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, WebhookError> {
        self.state
            .lock()
            .map_err(|_| WebhookError::Store(StoreError::msg("memory store poisoned")))
    }

    fn queue(s: &mut State, e: &DomainEvent, ep: &Endpoint, status: DeliveryStatus) {
        s.next_id += 1;
        s.deliveries.push(Delivery {
            id: format!("dlv_{:020}", s.next_id),
            org: e.org,
            endpoint: ep.id,
            event_id: e.id,
            kind: e.kind,
            payload: ep.body_for(e),
            status,
            attempts: 0,
            next_attempt_at: e.occurred_at,
            created_at: e.occurred_at,
        });
    }

    /// Queues `events` for every endpoint that wants them, as the storage adapter does on commit.
    ///
    /// # Errors
    /// When the mutex is poisoned.
    pub fn publish(&self, events: &[DomainEvent]) -> Result<(), WebhookError> {
        let mut s = self.lock()?;
        // Test events go only to the endpoint they were sent to (see `enqueue_direct`).
        for e in events
            .iter()
            .filter(|e| e.kind != audit::EventKind::WebhookTest)
        {
            let targets: Vec<(Endpoint, DeliveryStatus)> = s
                .endpoints
                .iter()
                .filter(|(ep, _)| ep.org == e.org)
                .filter_map(|(ep, _)| Some((ep.clone(), ep.queues(e.kind)?)))
                .collect();
            for (ep, status) in &targets {
                Self::queue(&mut s, e, ep, *status);
            }
        }
        Ok(())
    }

    async fn commit(&self, journal: Journal) -> Result<(), WebhookError> {
        self.audit.append(journal).await?;
        Ok(())
    }
}

fn find(
    s: &mut State,
    org: OrgId,
    id: EndpointId,
) -> Result<&mut (Endpoint, StoredSecrets), WebhookError> {
    s.endpoints
        .iter_mut()
        .find(|(e, _)| e.org == org && e.id == id)
        .ok_or(WebhookError::NotFound("webhook endpoint"))
}

#[async_trait]
impl WebhookStore for MemoryWebhookStore {
    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        secret: &str,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        {
            let mut state = self.lock()?;
            if state
                .endpoints
                .iter()
                .filter(|(e, _)| e.org == endpoint.org)
                .count()
                >= crate::MAX_ENDPOINTS_PER_ORG
            {
                return Err(crate::too_many_endpoints());
            }
            state.endpoints.push((
                endpoint.clone(),
                StoredSecrets {
                    current: secret.to_owned(),
                    previous: None,
                },
            ));
        }
        self.commit(journal).await
    }

    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<EndpointId>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, WebhookError> {
        let mut out: Vec<Endpoint> = self
            .lock()?
            .endpoints
            .iter()
            .filter(|(e, _)| e.org == org && after.is_none_or(|a| e.id > a))
            .map(|(e, _)| e.clone())
            .collect();
        out.sort_by_key(|e| e.id);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn get_endpoint(&self, org: OrgId, id: EndpointId) -> Result<Endpoint, WebhookError> {
        Ok(find(&mut *self.lock()?, org, id)?.0.clone())
    }

    async fn update_endpoint(
        &self,
        org: OrgId,
        id: EndpointId,
        change: &EndpointChange,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        change.apply_to(&mut find(&mut *self.lock()?, org, id)?.0);
        self.commit(journal).await
    }

    async fn delete_endpoint(
        &self,
        org: OrgId,
        id: EndpointId,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        {
            let mut s = self.lock()?;
            find(&mut s, org, id)?;
            s.endpoints.retain(|(e, _)| e.id != id);
            let queued: std::collections::HashSet<String> = s
                .deliveries
                .iter()
                .filter(|d| d.endpoint == id && d.status == DeliveryStatus::Pending)
                .map(|d| d.id.clone())
                .collect();
            s.deliveries.retain(|d| !queued.contains(&d.id));
            s.attempts.retain(|a| !queued.contains(&a.delivery));
        }
        self.commit(journal).await
    }

    async fn secrets(&self, org: OrgId, id: EndpointId) -> Result<StoredSecrets, WebhookError> {
        Ok(find(&mut *self.lock()?, org, id)?.1.clone())
    }

    async fn set_secrets(
        &self,
        org: OrgId,
        id: EndpointId,
        replacing: &str,
        secrets: &StoredSecrets,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        {
            let mut s = self.lock()?;
            let stored = &mut find(&mut s, org, id)?.1;
            if stored.current != replacing {
                return Err(WebhookError::secret_changed());
            }
            *stored = secrets.clone();
        }
        self.commit(journal).await
    }

    async fn enqueue_direct(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        journal: Journal,
    ) -> Result<(), WebhookError> {
        {
            let mut s = self.lock()?;
            let ep = find(&mut s, org, endpoint)?.0.clone();
            if !ep.enabled {
                return Err(WebhookError::Disabled);
            }
            // Only the endpoint's organization's events, as a database store fans them out.
            for e in journal.events.iter().filter(|e| e.org == org) {
                Self::queue(&mut s, e, &ep, DeliveryStatus::Pending);
            }
        }
        self.commit(journal).await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        skip: &[EndpointId],
        skip_orgs: &[OrgId],
    ) -> Result<Vec<(Delivery, Endpoint, StoredSecrets)>, WebhookError> {
        let mut s = self.lock()?;
        let mut out = Vec::new();
        let mut per_endpoint: std::collections::HashMap<EndpointId, usize> =
            std::collections::HashMap::new();
        let mut per_org: std::collections::HashMap<OrgId, usize> = std::collections::HashMap::new();
        let endpoints = s.endpoints.clone();
        for d in s.deliveries.iter_mut().filter(|d| {
            d.status == DeliveryStatus::Pending
                && d.next_attempt_at <= now
                && !skip.contains(&d.endpoint)
        }) {
            if out.len() == limit as usize {
                break;
            }
            let Some((ep, sec)) = endpoints
                .iter()
                .find(|(e, _)| e.id == d.endpoint && e.enabled && !skip_orgs.contains(&e.org))
            else {
                continue;
            };
            let taken = per_endpoint.entry(ep.id).or_default();
            let of_org = per_org.entry(ep.org).or_default();
            if *taken == crate::MAX_CLAIMED_PER_ENDPOINT || *of_org == crate::MAX_CLAIMED_PER_ORG {
                continue;
            }
            *taken += 1;
            *of_org += 1;
            out.push((d.clone(), ep.clone(), sec.clone()));
            d.next_attempt_at = lease_until;
        }
        Ok(out)
    }

    async fn still_leased(
        &self,
        delivery: &Delivery,
        lease: DateTime<Utc>,
    ) -> Result<Option<(Delivery, Endpoint, StoredSecrets)>, WebhookError> {
        let s = self.lock()?;
        let Some(d) = s.deliveries.iter().find(|d| {
            d.id == delivery.id
                && d.attempts == delivery.attempts
                && d.status == DeliveryStatus::Pending
                && d.next_attempt_at == lease
        }) else {
            return Ok(None);
        };
        Ok(s.endpoints
            .iter()
            .find(|(e, _)| e.id == d.endpoint && e.enabled)
            .map(|(e, sec)| {
                let now = Delivery {
                    next_attempt_at: delivery.next_attempt_at,
                    ..d.clone()
                };
                (now, e.clone(), sec.clone())
            }))
    }

    async fn record_attempt(
        &self,
        delivery: &Delivery,
        o: AttemptOutcome,
    ) -> Result<(), WebhookError> {
        let mut notice = Journal::default();
        {
            let mut s = self.lock()?;
            // Its endpoint was deleted while the attempt ran, or another worker claimed it
            // after this one's lease ran out and recorded its outcome first: nothing to record.
            let Some(d) = s.deliveries.iter_mut().find(|d| {
                d.id == delivery.id
                    && d.attempts == delivery.attempts
                    && d.status == DeliveryStatus::Pending
                    && o.lease.is_none_or(|lease| d.next_attempt_at == lease)
            }) else {
                return Ok(());
            };
            d.status = o.status;
            d.attempts = o.attempt.number;
            d.next_attempt_at = o.next_attempt_at;
            let number = s
                .attempts
                .iter()
                .filter(|a| a.delivery == delivery.id)
                .count() as u32
                + 1;
            s.attempts.push(Attempt {
                delivery: delivery.id.clone(),
                number,
                ..o.attempt.clone()
            });
            if let Some((ep, _)) = s
                .endpoints
                .iter_mut()
                .find(|(e, _)| e.id == delivery.endpoint)
            {
                match o.status {
                    DeliveryStatus::Delivered => ep.consecutive_failures = 0,
                    DeliveryStatus::Failed => ep.consecutive_failures += 1,
                    DeliveryStatus::Pending => {}
                }
                if let Some(rule) = o.disable
                    && o.status == DeliveryStatus::Failed
                    && rule.disables(ep.enabled, ep.consecutive_failures)
                {
                    ep.enabled = false;
                    ep.disabled_reason = Some(rule.reason());
                    notice = rule.notice;
                }
            }
        }
        self.commit(notice).await
    }

    async fn list_deliveries(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, WebhookError> {
        let mut s = self.lock()?;
        find(&mut s, org, endpoint)?;
        let mut out: Vec<Delivery> = s
            .deliveries
            .iter()
            .filter(|d| {
                d.endpoint == endpoint
                    && status.is_none_or(|st| d.status == st)
                    && before.is_none_or(|b| d.id.as_str() < b)
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| b.id.cmp(&a.id));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        delivery: &str,
    ) -> Result<Vec<Attempt>, WebhookError> {
        let s = self.lock()?;
        if !s
            .deliveries
            .iter()
            .any(|d| d.org == org && d.endpoint == endpoint && d.id == delivery)
        {
            return Err(WebhookError::NotFound("delivery"));
        }
        Ok(s.attempts
            .iter()
            .filter(|a| a.delivery == delivery)
            .cloned()
            .collect())
    }

    async fn requeue(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        delivery: Option<&str>,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<u64, WebhookError> {
        let n = {
            let mut s = self.lock()?;
            find(&mut s, org, endpoint)?;
            let mut n = 0;
            for d in s.deliveries.iter_mut().filter(|d| d.endpoint == endpoint) {
                let hit = match delivery {
                    Some(id) => d.id == id && d.status != DeliveryStatus::Pending,
                    None => {
                        d.status == DeliveryStatus::Failed
                            && since.is_none_or(|t| d.created_at >= t)
                    }
                };
                if hit {
                    d.status = DeliveryStatus::Pending;
                    d.attempts = 0;
                    d.next_attempt_at = now;
                    n += 1;
                }
            }
            n
        };
        if delivery.is_some() && n == 0 {
            return Err(WebhookError::NotFound("finished delivery"));
        }
        self.commit(journal).await?;
        Ok(n)
    }

    async fn delivery_counts(
        &self,
        org: OrgId,
        endpoint: EndpointId,
    ) -> Result<Vec<(DeliveryStatus, u64)>, WebhookError> {
        let mut s = self.lock()?;
        find(&mut s, org, endpoint)?;
        Ok([
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .map(|st| {
            (
                st,
                s.deliveries
                    .iter()
                    .filter(|d| d.endpoint == endpoint && d.status == st)
                    .count() as u64,
            )
        })
        .collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        let store = MemoryWebhookStore::new();
        crate::contract::run(&store, OrgId::new()).await;
        crate::contract::claimed_deliveries_are_read_again_before_sending(&store, OrgId::new())
            .await;
        crate::contract::endpoints_are_capped_per_organization(&store, OrgId::new(), OrgId::new())
            .await;
        crate::contract::claims_skip_organizations_and_take_a_share_of_one(
            &store,
            OrgId::new(),
            OrgId::new(),
        )
        .await;
        let notices =
            crate::contract::outcomes_apply_to_the_state_as_stored(&store, OrgId::new()).await;
        let outbox = store.audit.outbox().unwrap();
        for n in &notices.committed {
            assert!(outbox.iter().any(|e| e.id == n.id), "committed: {n:?}");
        }
        for n in &notices.dropped {
            assert!(outbox.iter().all(|e| e.id != n.id), "dropped: {n:?}");
        }
        let dropped =
            crate::contract::an_endpoint_deleted_mid_attempt_keeps_nothing(&store, OrgId::new())
                .await;
        {
            let s = store.lock().unwrap();
            assert!(
                s.attempts
                    .iter()
                    .all(|a| s.deliveries.iter().any(|d| d.id == a.delivery)),
                "no attempt outlives its delivery"
            );
        }
        assert!(
            store
                .audit
                .outbox()
                .unwrap()
                .iter()
                .all(|e| e.id != dropped.id),
            "the dropped outcome's journal was not committed"
        );
        let org = OrgId::new();
        crate::contract::fan_out_on_commit(&store, org, |j: Journal| {
            let events = j.events.clone();
            let store = &store;
            async move { store.publish(&events).unwrap() }
        })
        .await;
    }

    use audit::{Actor, EventKind, RequestContext};
    use security_policy::Cipher;

    use super::*;
    use crate::{Acting, EndpointInput, RetryPolicy, judge};

    #[tokio::test]
    async fn a_delivery_round_trip_through_the_port() {
        let store = MemoryWebhookStore::new();
        let cipher = Cipher::from_text(&Cipher::generate_key()).unwrap();
        let acting = Acting {
            actor: Actor::system(),
            context: RequestContext::default(),
        };
        let org = OrgId::new();
        let now = Utc::now();
        let input = EndpointInput {
            url: Some("https://hooks.example.com/x".into()),
            events: Some(vec!["user.created".into()]),
            ..EndpointInput::default()
        };
        let (ep, secret) = crate::create(&store, &cipher, &acting, org, input, true, now)
            .await
            .unwrap();
        store
            .publish(&[DomainEvent::new(
                org,
                EventKind::ApiKeyCreated,
                now,
                serde_json::json!({}),
            )])
            .unwrap();
        store
            .publish(&[DomainEvent::new(
                org,
                EventKind::UserCreated,
                now,
                serde_json::json!({"userId": "usr_1"}),
            )])
            .unwrap();
        let claimed = store
            .claim_deliveries(now, now + chrono::Duration::seconds(60), 10, &[], &[])
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "only the subscribed event is queued");
        assert!(
            store
                .claim_deliveries(now, now, 10, &[], &[])
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        let (d, _, stored) = &claimed[0];
        let secrets = crate::signing_secrets(&cipher, d.endpoint, stored, now).unwrap();
        assert_eq!(secrets, vec![secret]);
        let verdict = judge(
            &RetryPolicy::default(),
            1,
            Some(500),
            None,
            now,
            d.jitter_key(),
        );
        let crate::AttemptVerdict::RetryAt { at } = verdict else {
            panic!("{verdict:?}")
        };
        let attempt = Attempt {
            delivery: d.id.clone(),
            number: 1,
            at: now,
            status: Some(500),
            duration_ms: 3,
            error: None,
            response_body: String::new(),
        };
        store
            .record_attempt(
                d,
                AttemptOutcome {
                    attempt,
                    status: DeliveryStatus::Pending,
                    next_attempt_at: at,
                    disable: None,
                    lease: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .list_attempts(org, d.endpoint, &d.id)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .list_attempts(OrgId::new(), d.endpoint, &d.id)
                .await
                .is_err(),
            "scoped by organization"
        );
        assert_eq!(
            store
                .claim_deliveries(at, at, 10, &[], &[])
                .await
                .unwrap()
                .len(),
            1,
            "due again after the backoff"
        );
        assert!(matches!(
            store.get_endpoint(OrgId::new(), ep.id).await,
            Err(WebhookError::NotFound(_))
        ));
        assert_eq!(
            store.audit().organizations().await.unwrap(),
            vec![org],
            "endpoint creation was audited"
        );
    }
}
