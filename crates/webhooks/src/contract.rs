//! The contract every [`WebhookStore`] must meet. Adapters also run
//! [`fan_out_on_commit`] with a way to commit a journal, since fan-out is their job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test suite for store implementations: failing loudly is its job"
)]

use audit::{Actor, AuditAction, DomainEvent, EventKind, Journal, NewAuditEvent, Target};
use chrono::{DateTime, Duration, Utc};
use rbac_core::{EndpointId, OrgId};

use crate::{
    Attempt, AttemptOutcome, Delivery, DeliveryStatus, DisableRule, Endpoint, EndpointChange,
    StoredSecrets, WebhookError, WebhookStore, WebhookUrl,
};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_893_815, 0).unwrap()
}

fn note(org: OrgId) -> Journal {
    Journal::record(NewAuditEvent::new(
        org,
        now(),
        Actor::system(),
        AuditAction::WebhookEndpointChanged,
        Target::new("webhook_endpoint", "x", ""),
    ))
}

const GONE: &str = "the receiver answered 410 Gone";

/// A 410's rule, whose notice is an audit record.
fn gone(org: OrgId) -> DisableRule {
    DisableRule {
        after_failures: 20,
        gone: true,
        notice: note(org),
    }
}

fn endpoint(org: OrgId, events: Vec<EventKind>) -> Endpoint {
    Endpoint {
        id: EndpointId::new(),
        org,
        url: WebhookUrl::parse("https://hooks.example.com/a", true).unwrap(),
        description: "contract".into(),
        events,
        enabled: true,
        disabled_reason: None,
        consecutive_failures: 0,
        message: None,
        created_at: now(),
    }
}

/// An organization (`org`, with no endpoint yet) has at most [`crate::MAX_ENDPOINTS_PER_ORG`]
/// endpoints, also when they are created at once; another organization is not held to its
/// count (`other`).
pub async fn endpoints_are_capped_per_organization(
    store: &dyn WebhookStore,
    org: OrgId,
    other: OrgId,
) {
    let max = crate::MAX_ENDPOINTS_PER_ORG;
    let creations = (0..max + 5).map(|_| async move {
        store
            .create_endpoint(&endpoint(org, vec![]), "v1:secret", note(org))
            .await
    });
    let results = futures::future::join_all(creations).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), max);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, WebhookError::TooManyEndpoints { max: m } if *m == max)),
        "{results:?}"
    );
    let listed = store.list_endpoints(org, None, 1_000).await.unwrap();
    assert_eq!(listed.len(), max);
    store
        .create_endpoint(&endpoint(other, vec![]), "v1:secret", note(other))
        .await
        .unwrap();
}

/// A claim takes at most [`crate::MAX_CLAIMED_PER_ORG`] deliveries of one organization, and
/// none of an organization it is told to skip; every delivery is claimed once in the end.
/// `org` and `other` are organizations with no endpoint yet.
pub async fn claims_skip_organizations_and_take_a_share_of_one(
    store: &dyn WebhookStore,
    org: OrgId,
    other: OrgId,
) {
    let per_endpoint = crate::MAX_CLAIMED_PER_ENDPOINT;
    // More than one claim may take of `org`, spread so that no endpoint's cap is what binds.
    let mut busy = Vec::new();
    for _ in 0..3 {
        busy.push(
            endpoint_with_tests(store, org, u32::try_from(per_endpoint).unwrap())
                .await
                .0,
        );
    }
    let (quiet, _) = endpoint_with_tests(store, other, 2).await;
    let lease = now() + Duration::seconds(60);
    let count = |claimed: &[(Delivery, Endpoint, StoredSecrets)], ep: &Endpoint| {
        claimed.iter().filter(|c| c.1.id == ep.id).count()
    };
    // Both lists at once: nothing of either.
    let both = store
        .claim_deliveries(now(), lease, 500, &[quiet.id], &[org])
        .await
        .unwrap();
    assert!(both.iter().all(|c| c.1.org != org && c.1.id != quiet.id));
    let skipping = store
        .claim_deliveries(now(), lease, 500, &[], &[org])
        .await
        .unwrap();
    assert!(
        skipping.iter().all(|c| c.1.org != org),
        "the organization is skipped"
    );
    assert_eq!(count(&skipping, &quiet), 2, "the other organization is not");
    let mut taken = 0;
    for round in 0..4 {
        let claimed = store
            .claim_deliveries(now(), lease, 500, &[], &[])
            .await
            .unwrap();
        let of_org: usize = busy.iter().map(|ep| count(&claimed, ep)).sum();
        assert!(
            of_org <= crate::MAX_CLAIMED_PER_ORG,
            "round {round}: {of_org}"
        );
        if round == 0 {
            assert_eq!(of_org, crate::MAX_CLAIMED_PER_ORG, "a full share at first");
        }
        taken += of_org;
    }
    assert_eq!(
        taken,
        3 * per_endpoint,
        "each delivery claimed once in the end"
    );
    for ep in busy.iter().chain([&quiet]) {
        store
            .delete_endpoint(ep.org, ep.id, note(ep.org))
            .await
            .unwrap();
    }
}

/// A new endpoint of `org` with `n` test events queued for it.
async fn endpoint_with_tests(
    store: &dyn WebhookStore,
    org: OrgId,
    n: u32,
) -> (Endpoint, Vec<DomainEvent>) {
    let ep = endpoint(org, vec![]);
    store
        .create_endpoint(&ep, "v1:secret", note(org))
        .await
        .unwrap();
    let events: Vec<DomainEvent> = (0..n)
        .map(|n| {
            DomainEvent::new(
                org,
                EventKind::WebhookTest,
                now(),
                serde_json::json!({"n": n}),
            )
        })
        .collect();
    let journal = events
        .iter()
        .fold(Journal::default(), |j, e| j.publish(e.clone()));
    store.enqueue_direct(org, ep.id, journal).await.unwrap();
    (ep, events)
}

/// Runs the endpoint, queue and history checks. `org` must exist where the store needs it
/// (the SQL adapter has a foreign key to organizations).
pub async fn run(store: &dyn WebhookStore, org: OrgId) {
    let ep = endpoint(org, vec![]);
    store
        .create_endpoint(&ep, "v1:secret", note(org))
        .await
        .unwrap();
    assert_eq!(store.get_endpoint(org, ep.id).await.unwrap(), ep);
    assert!(
        matches!(
            store.get_endpoint(OrgId::new(), ep.id).await,
            Err(WebhookError::NotFound(_))
        ),
        "scoped by organization"
    );
    assert_eq!(
        store.secrets(org, ep.id).await.unwrap(),
        StoredSecrets {
            current: "v1:secret".into(),
            previous: None
        }
    );
    let rotated = StoredSecrets {
        current: "v1:new".into(),
        previous: Some(("v1:secret".into(), now() + Duration::hours(1))),
    };
    store
        .set_secrets(org, ep.id, "v1:secret", &rotated, note(org))
        .await
        .unwrap();
    assert_eq!(store.secrets(org, ep.id).await.unwrap(), rotated);
    // A second rotation computed from the same read loses: nothing is written.
    let lost = StoredSecrets {
        current: "v1:other".into(),
        previous: Some(("v1:secret".into(), now() + Duration::hours(1))),
    };
    assert!(matches!(
        store
            .set_secrets(org, ep.id, "v1:secret", &lost, note(org))
            .await,
        Err(WebhookError::Changed(_))
    ));
    assert_eq!(store.secrets(org, ep.id).await.unwrap(), rotated);
    assert!(matches!(
        store
            .set_secrets(org, EndpointId::new(), "v1:new", &lost, note(org))
            .await,
        Err(WebhookError::NotFound(_))
    ));

    let test = DomainEvent::new(
        org,
        EventKind::WebhookTest,
        now(),
        serde_json::json!({"n": 1}),
    );
    store
        .enqueue_direct(org, ep.id, Journal::default().publish(test.clone()))
        .await
        .unwrap();
    let lease = now() + Duration::seconds(60);
    // A saturated endpoint's deliveries are left for later.
    let skipped = store
        .claim_deliveries(now(), lease, 10, &[ep.id], &[])
        .await
        .unwrap();
    assert!(skipped.iter().all(|c| c.1.id != ep.id));
    let claimed = store
        .claim_deliveries(now(), lease, 10, &[], &[])
        .await
        .unwrap();
    let mine: Vec<_> = claimed.iter().filter(|c| c.1.id == ep.id).collect();
    assert_eq!(mine.len(), 1);
    let d = mine[0].0.clone();
    assert_eq!(d.event_id, test.id);
    assert_eq!(d.payload, crate::payload(&test));
    assert!(
        store
            .claim_deliveries(now(), lease, 10, &[], &[])
            .await
            .unwrap()
            .iter()
            .all(|c| c.0.id != d.id),
        "a leased delivery is not claimed twice"
    );
    // A receiver's answer is anything: U+0000 and bytes that are not UTF-8 are kept as U+FFFD.
    let attempt = |n: u32, status: u16| {
        Attempt {
            delivery: d.id.clone(),
            number: n,
            at: now(),
            status: Some(status),
            duration_ms: 5,
            error: Some("reset\0".into()),
            response_body: Attempt::response_excerpt(b"no\0pe\xff"),
        }
        .storable()
    };
    store
        .record_attempt(
            &d,
            AttemptOutcome {
                attempt: attempt(1, 500),
                status: DeliveryStatus::Pending,
                next_attempt_at: now() + Duration::seconds(2),
                disable: None,
                lease: None,
            },
        )
        .await
        .unwrap();
    let again = store
        .claim_deliveries(now() + Duration::seconds(2), lease, 10, &[], &[])
        .await
        .unwrap();
    let d2 = again
        .into_iter()
        .find(|c| c.0.id == d.id)
        .expect("due again")
        .0;
    assert_eq!(d2.attempts, 1);
    store
        .record_attempt(
            &d2,
            AttemptOutcome {
                attempt: attempt(2, 410),
                status: DeliveryStatus::Failed,
                next_attempt_at: now(),
                disable: Some(gone(org)),
                lease: None,
            },
        )
        .await
        .unwrap();
    let off = store.get_endpoint(org, ep.id).await.unwrap();
    assert!(!off.enabled);
    assert_eq!(off.disabled_reason.as_deref(), Some(GONE));
    assert_eq!(off.consecutive_failures, 1);
    // An edit of another field leaves the delivery state as the worker left it.
    let edit = EndpointChange {
        description: Some("edited".into()),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, ep.id, &edit, note(org))
        .await
        .unwrap();
    let kept = store.get_endpoint(org, ep.id).await.unwrap();
    assert_eq!(
        (
            kept.description.as_str(),
            kept.enabled,
            kept.disabled_reason.as_deref(),
            kept.consecutive_failures
        ),
        ("edited", false, Some(GONE), 1)
    );
    // Only the fields a change sets are written: another edit's stays.
    let events = EndpointChange {
        events: Some(vec![EventKind::WebhookTest]),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, ep.id, &events, note(org))
        .await
        .unwrap();
    let both = store.get_endpoint(org, ep.id).await.unwrap();
    assert_eq!(
        (both.description.as_str(), both.events.as_slice()),
        ("edited", &[EventKind::WebhookTest][..]),
        "two edits of different fields both apply"
    );
    let back = EndpointChange {
        description: Some(off.description.clone()),
        events: Some(off.events.clone()),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, ep.id, &back, note(org))
        .await
        .unwrap();
    assert_eq!(store.get_endpoint(org, ep.id).await.unwrap(), off);
    // Turned off by hand, it is no longer "disabled automatically": it keeps nothing for a
    // recovery (`Endpoint::queues`).
    let by_hand = EndpointChange {
        enabled: Some(false),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, ep.id, &by_hand, note(org))
        .await
        .unwrap();
    assert_eq!(
        store.get_endpoint(org, ep.id).await.unwrap(),
        Endpoint {
            disabled_reason: None,
            ..off.clone()
        }
    );
    assert!(matches!(
        store
            .update_endpoint(OrgId::new(), ep.id, &back, note(org))
            .await,
        Err(WebhookError::NotFound(_))
    ));
    let history = store.list_attempts(org, d.endpoint, &d.id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|a| (a.number, a.status))
            .collect::<Vec<_>>(),
        vec![(1, Some(500)), (2, Some(410))]
    );
    // An id from a URL may hold anything: one that cannot exist is not found, not an error.
    let nul = format!("{}\0", d.id);
    assert!(matches!(
        store.list_attempts(org, d.endpoint, &nul).await,
        Err(WebhookError::NotFound(_))
    ));
    assert!(matches!(
        store
            .requeue(org, d.endpoint, Some(&nul), None, now(), Journal::default())
            .await,
        Err(WebhookError::NotFound(_))
    ));
    assert_eq!(history[0].response_body, "no\u{FFFD}pe\u{FFFD}");
    assert_eq!(history[0].error.as_deref(), Some("reset\u{FFFD}"));
    assert!(
        store
            .list_attempts(OrgId::new(), d.endpoint, &d.id)
            .await
            .is_err()
    );
    assert!(
        matches!(
            store.list_attempts(org, EndpointId::new(), &d.id).await,
            Err(WebhookError::NotFound(_))
        ),
        "a delivery's attempts are not listed under another endpoint"
    );
    let failed = store
        .list_deliveries(org, ep.id, Some(DeliveryStatus::Failed), None, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        store
            .requeue(
                org,
                ep.id,
                None,
                Some(now() - Duration::hours(1)),
                now(),
                note(org)
            )
            .await
            .unwrap(),
        1
    );
    let counts = store.delivery_counts(org, ep.id).await.unwrap();
    assert!(counts.contains(&(DeliveryStatus::Pending, 1)));
    // Resending one delivery that is not there (or still pending) is refused, not recorded.
    assert!(matches!(
        store
            .requeue(org, ep.id, Some("no-such-delivery"), None, now(), note(org))
            .await,
        Err(WebhookError::NotFound(_))
    ));
    assert!(
        store
            .claim_deliveries(now() + Duration::days(1), lease, 10, &[], &[])
            .await
            .unwrap()
            .iter()
            .all(|c| c.1.id != ep.id),
        "disabled endpoints are not served"
    );
    store.delete_endpoint(org, ep.id, note(org)).await.unwrap();
    assert!(
        store
            .list_endpoints(org, None, 100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.id != ep.id)
    );
    batches_record_as_one_by_one(store, org).await;
    a_disabled_endpoints_backlog_does_not_stall_claims(store, org).await;
    one_endpoint_does_not_fill_a_claim(store, org).await;
}

/// A disabled endpoint keeps its queue (for when it is recovered), and older deliveries of it
/// than anyone else's must not fill every claim: claims take only enabled endpoints' work.
async fn a_disabled_endpoints_backlog_does_not_stall_claims(store: &dyn WebhookStore, org: OrgId) {
    let (off, on) = (endpoint(org, vec![]), endpoint(org, vec![]));
    for ep in [&off, &on] {
        store
            .create_endpoint(ep, "v1:secret", note(org))
            .await
            .unwrap();
    }
    let event = |at: DateTime<Utc>| {
        DomainEvent::new(org, EventKind::WebhookTest, at, serde_json::json!({}))
    };
    // The disabled endpoint's three deliveries are the oldest due work in the store.
    let backlog = (0..3).fold(Journal::default(), |j, n| {
        j.publish(event(now() - Duration::days(1) + Duration::seconds(n)))
    });
    store.enqueue_direct(org, off.id, backlog).await.unwrap();
    let fresh = event(now());
    store
        .enqueue_direct(org, on.id, Journal::default().publish(fresh.clone()))
        .await
        .unwrap();
    let disabled = EndpointChange {
        enabled: Some(false),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, off.id, &disabled, note(org))
        .await
        .unwrap();
    let claimed = store
        .claim_deliveries(now(), now() + Duration::seconds(60), 2, &[], &[])
        .await
        .unwrap();
    assert!(
        claimed.iter().all(|c| c.1.enabled),
        "only enabled endpoints' deliveries are claimed"
    );
    assert!(
        claimed.iter().any(|c| c.0.event_id == fresh.id),
        "the enabled endpoint's delivery is claimed past the disabled one's backlog: {claimed:?}"
    );
    assert_eq!(
        store
            .delivery_counts(org, off.id)
            .await
            .unwrap()
            .iter()
            .find(|(s, _)| *s == DeliveryStatus::Pending)
            .map(|(_, n)| *n),
        Some(3),
        "the disabled endpoint keeps its queue"
    );
    // Nothing more is queued for it directly (a test event would wait there unseen), and the
    // refusal queues nothing.
    let before = store.delivery_counts(org, off.id).await.unwrap();
    let refused = store
        .enqueue_direct(org, off.id, note(org).publish(event(now())))
        .await;
    assert!(
        matches!(refused, Err(WebhookError::Disabled)),
        "{refused:?}"
    );
    assert_eq!(store.delivery_counts(org, off.id).await.unwrap(), before);
    for ep in [&off, &on] {
        store.delete_endpoint(org, ep.id, note(org)).await.unwrap();
    }
}

/// A claim takes at most [`crate::MAX_CLAIMED_PER_ENDPOINT`] deliveries of one endpoint, so a
/// hanging endpoint's backlog leaves room for the others'.
async fn one_endpoint_does_not_fill_a_claim(store: &dyn WebhookStore, org: OrgId) {
    let cap = crate::MAX_CLAIMED_PER_ENDPOINT;
    let (busy, _) = endpoint_with_tests(store, org, u32::try_from(cap + 4).unwrap()).await;
    let (quiet, _) = endpoint_with_tests(store, org, 2).await;
    let lease = now() + Duration::seconds(60);
    let mut per_claim = Vec::new();
    for _ in 0..6 {
        let claimed = store
            .claim_deliveries(now(), lease, 100, &[], &[])
            .await
            .unwrap();
        let of = |ep: &Endpoint| claimed.iter().filter(|c| c.1.id == ep.id).count();
        per_claim.push((of(&busy), of(&quiet)));
    }
    assert_eq!(per_claim[0].0, cap, "{per_claim:?}");
    assert!(per_claim.iter().all(|(b, _)| *b <= cap), "{per_claim:?}");
    assert_eq!(
        per_claim
            .iter()
            .fold((0, 0), |(b, q), (x, y)| (b + x, q + y)),
        (cap + 4, 2),
        "everything is claimed in the end, once: {per_claim:?}"
    );
    for ep in [&busy, &quiet] {
        store.delete_endpoint(org, ep.id, note(org)).await.unwrap();
    }
}

/// A batch of outcomes leaves deliveries, history and the endpoint's failure streak as
/// recording them one by one, in order, would.
async fn batches_record_as_one_by_one(store: &dyn WebhookStore, org: OrgId) {
    let (ep, events) = endpoint_with_tests(store, org, 4).await;
    let lease = now() + Duration::seconds(60);
    let claimed = store
        .claim_deliveries(now(), lease, 100, &[], &[])
        .await
        .unwrap();
    let mine = |event: usize| {
        claimed
            .iter()
            .find(|c| c.0.event_id == events[event].id)
            .expect("claimed")
            .0
            .clone()
    };
    let outcome = |n: u32, status: DeliveryStatus, code: u16, at: DateTime<Utc>| AttemptOutcome {
        attempt: Attempt {
            delivery: String::new(),
            number: n,
            at: now(),
            status: Some(code),
            duration_ms: 3,
            error: None,
            response_body: String::new(),
        },
        status,
        next_attempt_at: at,
        disable: None,
        lease: None,
    };
    let retry_at = now() + Duration::seconds(2);
    store
        .record_attempts(vec![
            (mine(0), outcome(1, DeliveryStatus::Delivered, 200, now())),
            (mine(1), outcome(1, DeliveryStatus::Failed, 500, now())),
            (mine(2), outcome(1, DeliveryStatus::Pending, 503, retry_at)),
            (mine(3), outcome(1, DeliveryStatus::Failed, 500, now())),
        ])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_endpoint(org, ep.id)
            .await
            .unwrap()
            .consecutive_failures,
        2,
        "the failures after the batch's last success"
    );
    // An edit that sets `enabled` from a copy read before those failures: the endpoint was on,
    // so the worker's streak stays.
    let stale = EndpointChange {
        description: Some("renamed".into()),
        enabled: Some(true),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, ep.id, &stale, note(org))
        .await
        .unwrap();
    let edited = store.get_endpoint(org, ep.id).await.unwrap();
    assert_eq!(
        (
            edited.description.as_str(),
            edited.enabled,
            edited.disabled_reason,
            edited.consecutive_failures
        ),
        ("renamed", true, None, 2)
    );
    let counts = store.delivery_counts(org, ep.id).await.unwrap();
    for expected in [
        (DeliveryStatus::Delivered, 1),
        (DeliveryStatus::Failed, 2),
        (DeliveryStatus::Pending, 1),
    ] {
        assert!(counts.contains(&expected), "{counts:?}");
    }
    let again = store
        .claim_deliveries(retry_at, lease, 100, &[], &[])
        .await
        .unwrap();
    let d = again
        .into_iter()
        .find(|c| c.0.event_id == events[2].id)
        .expect("the retried delivery is due again")
        .0;
    assert_eq!(d.attempts, 1);
    store
        .record_attempts(vec![(
            d.clone(),
            AttemptOutcome {
                disable: Some(gone(org)),
                ..outcome(2, DeliveryStatus::Failed, 410, now())
            },
        )])
        .await
        .unwrap();
    let after = store.get_endpoint(org, ep.id).await.unwrap();
    assert_eq!(
        after.consecutive_failures, 3,
        "a batch without a success adds to the streak"
    );
    assert!(
        !after.enabled,
        "an outcome in a batch disables its endpoint"
    );
    assert_eq!(after.disabled_reason.as_deref(), Some(GONE));
    // Turned on again (from the same stale copy): it starts afresh.
    store
        .update_endpoint(org, ep.id, &stale, note(org))
        .await
        .unwrap();
    let again = store.get_endpoint(org, ep.id).await.unwrap();
    assert_eq!(
        (
            again.enabled,
            again.disabled_reason,
            again.consecutive_failures
        ),
        (true, None, 0)
    );
    assert_eq!(
        store
            .list_attempts(org, d.endpoint, &d.id)
            .await
            .unwrap()
            .iter()
            .map(|a| (a.number, a.status))
            .collect::<Vec<_>>(),
        vec![(1, Some(503)), (2, Some(410))]
    );
    store.delete_endpoint(org, ep.id, note(org)).await.unwrap();
}

/// What [`outcomes_apply_to_the_state_as_stored`] leaves the adapter to check in what it
/// committed: each event is the notice of a [`DisableRule`].
#[derive(Debug)]
pub struct Notices {
    /// Notices of outcomes that disabled their endpoint: committed.
    pub committed: Vec<DomainEvent>,
    /// Notices of outcomes that did not (a late outcome, a streak restarted by re-enabling,
    /// an endpoint already disabled): not committed.
    pub dropped: Vec<DomainEvent>,
}

/// Checks that an outcome applies to its delivery and endpoint as they are stored when it is
/// recorded, not as the worker claimed them: a late outcome (another worker claimed the
/// delivery after the lease ran out and recorded first) records nothing, and whether a failure
/// disables the endpoint follows the stored streak and flag, so re-enabling restarts the count
/// and an endpoint already disabled is not disabled (and its admins told) again.
pub async fn outcomes_apply_to_the_state_as_stored(
    store: &dyn WebhookStore,
    org: OrgId,
) -> Notices {
    let (ep, _) = endpoint_with_tests(store, org, 6).await;
    let lease = now() + Duration::seconds(60);
    let mut claimed: Vec<Delivery> = store
        .claim_deliveries(now(), lease, 100, &[], &[])
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.1.id == ep.id)
        .map(|c| c.0)
        .collect();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(claimed.len(), 6);
    let mut notices = Notices {
        committed: Vec::new(),
        dropped: Vec::new(),
    };
    let notice = |n: &str| {
        DomainEvent::new(
            org,
            EventKind::WebhookTest,
            now(),
            serde_json::json!({ "notice": n }),
        )
    };
    let outcome = |number: u32, status: DeliveryStatus, code: u16, rule: Option<DisableRule>| {
        AttemptOutcome {
            attempt: Attempt {
                delivery: String::new(),
                number,
                at: now(),
                status: Some(code),
                duration_ms: 3,
                error: None,
                response_body: String::new(),
            },
            status,
            next_attempt_at: now() + Duration::seconds(2),
            disable: rule,
            lease: None,
        }
    };
    let after_two = |event: &DomainEvent| DisableRule {
        after_failures: 2,
        gone: false,
        notice: Journal::default().publish(event.clone()),
    };
    let state = || async {
        let e = store.get_endpoint(org, ep.id).await.unwrap();
        (e.enabled, e.consecutive_failures, e.disabled_reason)
    };

    // A late outcome: the delivery's first attempt was recorded (by the worker that claimed it
    // after this one's lease ran out); this one's, a failure that would disable, is dropped.
    store
        .record_attempt(&claimed[0], outcome(1, DeliveryStatus::Pending, 503, None))
        .await
        .unwrap();
    let late = notice("late");
    let late_rule = DisableRule {
        after_failures: 1,
        ..after_two(&late)
    };
    store
        .record_attempt(
            &claimed[0],
            outcome(1, DeliveryStatus::Failed, 500, Some(late_rule.clone())),
        )
        .await
        .unwrap();
    notices.dropped.push(late);
    assert_eq!(
        store
            .list_attempts(org, claimed[0].endpoint, &claimed[0].id)
            .await
            .unwrap()
            .iter()
            .map(|a| a.status)
            .collect::<Vec<_>>(),
        vec![Some(503)],
        "the late outcome recorded no attempt"
    );
    assert_eq!(state().await, (true, 0, None), "nor counted a failure");
    // The same in a batch, beside an outcome that applies.
    let first = notice("first failure");
    store
        .record_attempts(vec![
            (
                claimed[0].clone(),
                outcome(1, DeliveryStatus::Failed, 500, Some(late_rule)),
            ),
            (
                claimed[1].clone(),
                outcome(1, DeliveryStatus::Failed, 500, Some(after_two(&first))),
            ),
        ])
        .await
        .unwrap();
    notices.dropped.push(first);
    assert_eq!(
        store
            .list_attempts(org, claimed[0].endpoint, &claimed[0].id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        state().await,
        (true, 1, None),
        "one failure in a row: below the rule's two"
    );
    // The second failure in a row disables the endpoint, with its rule's notice.
    let second = notice("second failure");
    store
        .record_attempt(
            &claimed[2],
            outcome(1, DeliveryStatus::Failed, 500, Some(after_two(&second))),
        )
        .await
        .unwrap();
    notices.committed.push(second);
    assert_eq!(
        state().await,
        (false, 2, Some("2 deliveries in a row failed".to_owned()))
    );
    // An admin turns it back on; a failure claimed before that (when the streak stood at 2)
    // starts the count again instead of disabling the endpoint at once.
    let on = EndpointChange {
        enabled: Some(true),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, ep.id, &on, note(org))
        .await
        .unwrap();
    assert_eq!(state().await, (true, 0, None));
    let restarted = notice("after re-enabling");
    store
        .record_attempt(
            &claimed[3],
            outcome(1, DeliveryStatus::Failed, 500, Some(after_two(&restarted))),
        )
        .await
        .unwrap();
    notices.dropped.push(restarted);
    assert_eq!(state().await, (true, 1, None));
    // Two 410s in one batch disable it once: one notice.
    let (gone_first, gone_again) = (notice("410"), notice("410 again"));
    let gone_rule = |event: &DomainEvent| DisableRule {
        gone: true,
        ..after_two(event)
    };
    store
        .record_attempts(vec![
            (
                claimed[4].clone(),
                outcome(1, DeliveryStatus::Failed, 410, Some(gone_rule(&gone_first))),
            ),
            (
                claimed[5].clone(),
                outcome(1, DeliveryStatus::Failed, 410, Some(gone_rule(&gone_again))),
            ),
        ])
        .await
        .unwrap();
    notices.committed.push(gone_first);
    notices.dropped.push(gone_again);
    assert_eq!(state().await, (false, 3, Some(GONE.to_owned())));
    // A late outcome of a delivery recorded since and then resent: pending again at attempt
    // 0, as when it was claimed, but no longer under that claim's lease, so it applies only
    // with the lease named.
    let resent = &claimed[5];
    assert_eq!(
        store
            .requeue(org, ep.id, Some(&resent.id), None, now(), note(org))
            .await
            .unwrap(),
        1
    );
    let stale = AttemptOutcome {
        lease: Some(lease),
        ..outcome(1, DeliveryStatus::Delivered, 200, None)
    };
    store.record_attempt(resent, stale).await.unwrap();
    assert_eq!(
        store
            .list_attempts(org, resent.endpoint, &resent.id)
            .await
            .unwrap()
            .len(),
        1,
        "the first claim's late outcome recorded nothing"
    );
    // (Resent, it is due at `now()`: that is the lease a claim's outcome would name.)
    let current = AttemptOutcome {
        lease: Some(now()),
        ..outcome(1, DeliveryStatus::Delivered, 200, None)
    };
    store.record_attempt(resent, current).await.unwrap();
    assert_eq!(
        store
            .list_attempts(org, resent.endpoint, &resent.id)
            .await
            .unwrap()
            .len(),
        2,
        "an outcome under the lease the delivery carries applies"
    );
    store.delete_endpoint(org, ep.id, note(org)).await.unwrap();
    notices
}

/// Checks an endpoint deleted while its deliveries are being attempted: its queue goes with
/// the attempts already made, and an outcome that arrives afterwards is accepted and records
/// nothing. Returns the event that outcome's journal published, which the adapter must not
/// have committed; adapters also check that no attempt is left without its delivery.
pub async fn an_endpoint_deleted_mid_attempt_keeps_nothing(
    store: &dyn WebhookStore,
    org: OrgId,
) -> DomainEvent {
    let (ep, _) = endpoint_with_tests(store, org, 2).await;
    let claimed: Vec<Delivery> = store
        .claim_deliveries(now(), now() + Duration::seconds(60), 100, &[], &[])
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.1.id == ep.id)
        .map(|c| c.0)
        .collect();
    assert_eq!(claimed.len(), 2);
    let outcome = |code: u16| AttemptOutcome {
        attempt: Attempt {
            delivery: String::new(),
            number: 1,
            at: now(),
            status: Some(code),
            duration_ms: 3,
            error: None,
            response_body: String::new(),
        },
        status: DeliveryStatus::Pending,
        next_attempt_at: now() + Duration::seconds(5),
        disable: None,
        lease: None,
    };
    store
        .record_attempt(&claimed[0], outcome(503))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_attempts(org, claimed[0].endpoint, &claimed[0].id)
            .await
            .unwrap()
            .len(),
        1
    );
    store.delete_endpoint(org, ep.id, note(org)).await.unwrap();
    let dropped = DomainEvent::new(
        org,
        EventKind::WebhookTest,
        now(),
        serde_json::json!({"dropped": true}),
    );
    store
        .record_attempts(vec![(
            claimed[1].clone(),
            AttemptOutcome {
                status: DeliveryStatus::Failed,
                disable: Some(DisableRule {
                    after_failures: 1,
                    gone: false,
                    notice: Journal::default().publish(dropped.clone()),
                }),
                ..outcome(500)
            },
        )])
        .await
        .expect("an outcome for a deleted delivery is not an error");
    for d in &claimed {
        assert!(
            matches!(
                store.list_attempts(org, d.endpoint, &d.id).await,
                Err(WebhookError::NotFound(_))
            ),
            "the queued delivery went with its endpoint"
        );
    }
    dropped
}

/// Checks [`WebhookStore::still_leased`]: a claimed delivery is read again as it is now
/// (its endpoint's new URL), and not at all once its endpoint is disabled or deleted, once
/// it was claimed again under another lease, or under a lease it never had.
pub async fn claimed_deliveries_are_read_again_before_sending(
    store: &dyn WebhookStore,
    org: OrgId,
) {
    let (ep, _) = endpoint_with_tests(store, org, 3).await;
    let lease = now() + Duration::seconds(60);
    let claimed: Vec<Delivery> = store
        .claim_deliveries(now(), lease, 100, &[], &[])
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.1.id == ep.id)
        .map(|c| c.0)
        .collect();
    assert_eq!(claimed.len(), 3);
    let (first, again) = (&claimed[0], store.still_leased(&claimed[0], lease).await);
    let (d, e, s) = again.unwrap().expect("still leased, endpoint enabled");
    assert_eq!(
        (&d.id, d.attempts, &d.payload),
        (&first.id, 0, &first.payload)
    );
    assert_eq!(
        d.next_attempt_at, first.next_attempt_at,
        "as the claim returned it"
    );
    assert_eq!(e.url.as_str(), "https://hooks.example.com/a");
    assert_eq!((s.current.as_str(), s.previous), ("v1:secret", None));
    assert!(
        store
            .still_leased(first, lease + Duration::seconds(1))
            .await
            .unwrap()
            .is_none(),
        "not under a lease it does not hold"
    );

    // The endpoint pointed elsewhere: the new address is the one read.
    let moved = EndpointChange {
        url: Some(WebhookUrl::parse("https://hooks.example.com/moved", true).unwrap()),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, ep.id, &moved, note(org))
        .await
        .unwrap();
    let (_, e, _) = store.still_leased(first, lease).await.unwrap().unwrap();
    assert_eq!(e.url.as_str(), "https://hooks.example.com/moved");

    // Claimed again by another worker after the lease ran out: not this worker's to send.
    let later = lease + Duration::seconds(1);
    let retaken = store
        .claim_deliveries(later, later + Duration::seconds(60), 100, &[], &[])
        .await
        .unwrap();
    assert_eq!(retaken.iter().filter(|c| c.1.id == ep.id).count(), 3);
    assert!(store.still_leased(first, lease).await.unwrap().is_none());
    let current = later + Duration::seconds(60);
    let leased = |d: &Delivery| {
        let d = d.clone();
        async move { store.still_leased(&d, current).await.unwrap().is_some() }
    };
    let enabled = |on: bool| async move {
        let change = EndpointChange {
            enabled: Some(on),
            ..EndpointChange::default()
        };
        store
            .update_endpoint(org, ep.id, &change, note(org))
            .await
            .unwrap();
    };
    assert!(leased(&claimed[1]).await);

    // Disabled by hand: nothing goes out.
    enabled(false).await;
    assert!(!leased(&claimed[1]).await);

    // Deleted: nothing either.
    enabled(true).await;
    assert!(leased(&claimed[2]).await);
    store.delete_endpoint(org, ep.id, note(org)).await.unwrap();
    assert!(!leased(&claimed[2]).await);
}

/// Checks the adapter's fan-out: `commit` must commit a journal the way the adapter's
/// mutating methods do. Enabled endpoints that want an event get a pending delivery, those
/// disabled automatically a failed one (for a recovery), those disabled by hand none.
pub async fn fan_out_on_commit<F, Fut>(store: &dyn WebhookStore, org: OrgId, commit: F)
where
    F: Fn(Journal) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let all = endpoint(org, vec![]);
    let users = endpoint(org, vec![EventKind::UserCreated]);
    let off = Endpoint {
        enabled: false,
        ..endpoint(org, vec![])
    };
    let chat = Endpoint {
        message: Some("{{event}} by {{user}}".into()),
        ..endpoint(org, vec![EventKind::UserCreated])
    };
    let broken = Endpoint {
        enabled: false,
        disabled_reason: Some(GONE.into()),
        ..endpoint(org, vec![EventKind::UserCreated])
    };
    for e in [&all, &users, &off, &chat, &broken] {
        store.create_endpoint(e, "v1:s", note(org)).await.unwrap();
    }
    assert_eq!(store.get_endpoint(org, chat.id).await.unwrap(), chat);
    let user_created = DomainEvent::new(
        org,
        EventKind::UserCreated,
        now(),
        serde_json::json!({"by": "usr_1"}),
    );
    let key_created = DomainEvent::new(org, EventKind::ApiKeyCreated, now(), serde_json::json!({}));
    let test = DomainEvent::new(org, EventKind::WebhookTest, now(), serde_json::json!({}));
    commit(
        Journal::default()
            .publish(user_created)
            .publish(key_created)
            .publish(test),
    )
    .await;
    let count = |id| async move {
        store
            .list_deliveries(org, id, None, None, 100)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count(all.id).await, 2, "everything but test events");
    assert_eq!(count(users.id).await, 1, "the filter holds");
    assert_eq!(count(off.id).await, 0, "disabled endpoints get nothing");
    // One disabled automatically keeps what it missed as failed deliveries (which no claim
    // takes), and a recovery sends them once it is enabled again.
    let missed = store
        .list_deliveries(org, broken.id, None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        missed
            .iter()
            .map(|d| (d.kind, d.status))
            .collect::<Vec<_>>(),
        [(EventKind::UserCreated, DeliveryStatus::Failed)],
        "the filter holds, and the missed event is kept for recovery"
    );
    let enable = EndpointChange {
        enabled: Some(true),
        ..EndpointChange::default()
    };
    store
        .update_endpoint(org, broken.id, &enable, note(org))
        .await
        .unwrap();
    assert_eq!(
        store
            .requeue(org, broken.id, None, Some(now()), now(), note(org))
            .await
            .unwrap(),
        1,
        "recovered"
    );
    // A templated endpoint gets its message; the others the event document.
    let body = |id| async move {
        store
            .list_deliveries(org, id, None, None, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.kind == EventKind::UserCreated)
            .unwrap()
            .payload
    };
    assert_eq!(body(chat.id).await, r#"{"text":"user.created by usr_1"}"#);
    let document: serde_json::Value = serde_json::from_str(&body(all.id).await).unwrap();
    assert_eq!(
        (&document["event"], &document["data"]["by"]),
        (
            &serde_json::json!("user.created"),
            &serde_json::json!("usr_1")
        )
    );
}
