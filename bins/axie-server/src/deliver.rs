//! The webhook delivery worker: claims due deliveries, signs and sends them over HTTP,
//! and records each attempt. Rules (schedule, verdicts, SSRF ranges) come from `webhooks`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::{Actor, AuditAction, Journal, NewAuditEvent, Target};
use ipnetwork::IpNetwork;
use rbac_core::{EndpointId, OrgId};
use tokio::sync::Semaphore;
use webhooks::{
    Attempt, AttemptOutcome, AttemptVerdict, Delivery, DeliveryStatus, DisableRule, Endpoint,
    RetryPolicy, StoredSecrets, WebhookStore,
};

use crate::config::WebhookSettings;
use crate::state::AppState;

/// Resolves names, then drops every address `webhooks::destination_allowed` refuses, so a
/// hostname cannot smuggle a delivery to an internal address (checked at delivery time).
struct GuardedResolver {
    allow: Arc<Vec<IpNetwork>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            // A name that does not resolve and one that resolves only to internal addresses
            // get the same answer, which the endpoint's owner reads among its attempts: the
            // server's resolver (and its search domains) must not tell a tenant which internal
            // names exist. The operator's log has the difference.
            let refused = || -> Box<dyn std::error::Error + Send + Sync> {
                format!(
                    "`{}` does not resolve to an address deliveries may go to",
                    name.as_str()
                )
                .into()
            };
            let found = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| {
                    tracing::debug!(host = name.as_str(), error = %e, "webhook host lookup failed");
                    refused()
                })?;
            let addrs: Vec<SocketAddr> = found
                .filter(|a| webhooks::destination_allowed(a.ip(), &allow))
                .collect();
            if addrs.is_empty() {
                tracing::info!(
                    host = name.as_str(),
                    "webhook host resolves only to refused internal addresses"
                );
                return Err(refused());
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// Parsed allowlist of internal destinations.
pub fn allow_list(s: &WebhookSettings) -> Vec<IpNetwork> {
    s.allow_cidrs
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// The delivery client: no redirects, a timeout, the guarded resolver.
///
/// # Errors
/// When reqwest cannot build a client.
pub fn client(s: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve names itself and bypass the guarded resolver.
        .no_proxy()
        .timeout(Duration::from_secs(s.timeout_secs))
        .dns_resolver(Arc::new(GuardedResolver {
            allow: Arc::new(allow_list(s)),
        }))
        .build()
}

fn policy(s: &WebhookSettings) -> RetryPolicy {
    RetryPolicy {
        max_attempts: s.max_attempts,
        base_delay_ms: s.base_delay_ms,
        disable_after_failures: s.disable_after_failures,
        jitter_percent: s.retry_jitter_percent,
    }
}

/// What the worker has claimed and not finished, per endpoint and per organization.
#[derive(Default)]
struct Claimed {
    /// Per endpoint: its gate, how many of its claimed deliveries are not finished, and its
    /// organization.
    endpoints: HashMap<EndpointId, (Arc<Semaphore>, usize, OrgId)>,
    /// Per organization: its gate and how many of its claimed deliveries are not finished.
    orgs: HashMap<OrgId, (Arc<Semaphore>, usize)>,
}

impl Claimed {
    /// The endpoints not to claim from, those with [`CLAIM_AHEAD`] claimed deliveries
    /// unfinished, and the organizations, those with [`ORG_CLAIM_AHEAD`].
    fn full(&self) -> (Vec<EndpointId>, Vec<OrgId>) {
        let endpoints = self
            .endpoints
            .iter()
            .filter(|(_, (_, n, _))| *n >= CLAIM_AHEAD)
            .map(|(id, _)| *id)
            .collect();
        let orgs = self
            .orgs
            .iter()
            .filter(|(_, (_, n))| *n >= ORG_CLAIM_AHEAD)
            .map(|(id, _)| *id)
            .collect();
        (endpoints, orgs)
    }

    /// Counts a claimed delivery; returns its endpoint's and its organization's gates.
    fn claim(&mut self, endpoint: EndpointId, org: OrgId) -> (Arc<Semaphore>, Arc<Semaphore>) {
        let e = self
            .endpoints
            .entry(endpoint)
            .or_insert_with(|| (Arc::new(Semaphore::new(PER_ENDPOINT_IN_FLIGHT)), 0, org));
        e.1 += 1;
        let o = self
            .orgs
            .entry(org)
            .or_insert_with(|| (Arc::new(Semaphore::new(PER_ORG_IN_FLIGHT)), 0));
        o.1 += 1;
        (e.0.clone(), o.0.clone())
    }

    /// Counts a claimed delivery of `endpoint` (of `org`) finished; whether the worker should
    /// claim again at once (the endpoint or the organization fell below what the worker claims
    /// ahead for it). A delivery not counted as claimed changes nothing.
    fn finish(&mut self, endpoint: EndpointId, org: OrgId) -> bool {
        let Some(e) = self.endpoints.get_mut(&endpoint) else {
            return false;
        };
        e.1 -= 1;
        let mut below = e.1 == CLAIM_AHEAD - 1;
        if e.1 == 0 {
            self.endpoints.remove(&endpoint);
        }
        if let Some(o) = self.orgs.get_mut(&org) {
            o.1 = o.1.saturating_sub(1);
            below |= o.1 == ORG_CLAIM_AHEAD - 1;
            if o.1 == 0 {
                self.orgs.remove(&org);
            }
        }
        below
    }
}

type InFlight = Arc<std::sync::Mutex<Claimed>>;

/// Most attempts in flight at once, for all organizations.
const WORKERS: usize = 128;

/// Most attempts in flight for one organization, a quarter of the worker's and four endpoints'
/// worth: an organization whose endpoints all hang (it may have up to 50, each with
/// [`PER_ENDPOINT_IN_FLIGHT`]) leaves the other organizations three quarters of the worker, and
/// a healthy endpoint of its own keeps its throughput next to up to three hanging ones.
pub const PER_ORG_IN_FLIGHT: usize = WORKERS / 4;
const _: () = assert!(PER_ORG_IN_FLIGHT >= 4 * PER_ENDPOINT_IN_FLIGHT);

/// An organization with this many claimed deliveries not yet finished is passed to the claim as
/// skipped, as an endpoint with [`CLAIM_AHEAD`].
const ORG_CLAIM_AHEAD: usize = 2 * PER_ORG_IN_FLIGHT;
// One claim takes no more of an organization than the worker claims ahead for it.
const _: () = assert!(webhooks::MAX_CLAIMED_PER_ORG <= ORG_CLAIM_AHEAD);

/// Most attempts in flight to one endpoint, so a slow or hanging receiver cannot take the
/// worker's capacity from the others.
pub const PER_ENDPOINT_IN_FLIGHT: usize = 8;

/// An endpoint with this many claimed deliveries not yet finished is not claimed from; when it
/// falls below, the worker claims again at once, so a busy endpoint's queue never runs dry
/// between polls.
const CLAIM_AHEAD: usize = 2 * PER_ENDPOINT_IN_FLIGHT;
// One claim takes no more of an endpoint than the worker claims ahead for it (an endpoint
// just under that may so hold up to twice as many, for a moment).
const _: () = assert!(webhooks::MAX_CLAIMED_PER_ENDPOINT <= CLAIM_AHEAD);

/// What an attempt must leave of its delivery's lease after its own timeout: the time to
/// record its outcome (the recorder may be behind a batch, the database busy). An attempt
/// recorded after the lease ran out may already have been claimed and sent again by another
/// instance, and its outcome is dropped.
const RECORDING_MARGIN: chrono::Duration = chrono::Duration::seconds(15);

/// When a delivery claimed at `now` stops being this worker's: two timeouts (one for waiting
/// behind its endpoint's or its organization's deliveries in flight, as it claims about twice
/// as many ahead of each as it sends at once; one for the attempt itself) and 30 s. A delivery
/// that waited longer is not attempted ([`leaves_time_to_record`]): it is claimed again once
/// the lease runs out.
fn lease_until(
    now: chrono::DateTime<chrono::Utc>,
    timeout: chrono::Duration,
) -> chrono::DateTime<chrono::Utc> {
    now + timeout * 2 + chrono::Duration::seconds(30)
}

/// Whether an attempt started at `now`, which may take `timeout`, leaves its delivery's lease
/// (running out at `lease`) the [`RECORDING_MARGIN`] to record its outcome.
fn leaves_time_to_record(
    now: chrono::DateTime<chrono::Utc>,
    timeout: chrono::Duration,
    lease: chrono::DateTime<chrono::Utc>,
) -> bool {
    now + timeout + RECORDING_MARGIN < lease
}

/// Runs forever: every 50 ms, at once when a commit in this process queued deliveries, and at
/// once when the last batch was full, claims due deliveries and sends each on its own task, at
/// most [`WORKERS`] at once, at most [`PER_ORG_IN_FLIGHT`] per organization and at most
/// [`PER_ENDPOINT_IN_FLIGHT`] per endpoint; endpoints with [`CLAIM_AHEAD`] claimed deliveries
/// unfinished (and those of an organization with [`ORG_CLAIM_AHEAD`]) are not claimed from, so
/// their deliveries wait in the database (not in memory), a healthy endpoint keeps its
/// throughput next to a hanging one and an organization's next to another's. Outcomes are recorded in batches by a second task; until an outcome is recorded its
/// delivery stays leased, so it is not sent again (unless the process dies first: then the lease
/// runs out and it is sent again, at least once in all).
///
/// Once `stop` says so it claims nothing more, lets the attempts under way finish, records
/// their outcomes and returns; a claimed delivery not yet attempted is left to its lease.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(WORKERS));
    let in_flight: InFlight = Arc::default();
    let drained = Arc::new(tokio::sync::Notify::new());
    let (outcomes, pending) = tokio::sync::mpsc::unbounded_channel();
    let recorder = tokio::spawn(record(state.clone(), pending));
    let mut attempts = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut full = false;
    loop {
        if !full {
            tokio::select! {
                _ = tick.tick() => {}
                () = store_sea::deliveries_queued() => {}
                () = drained.notified() => {}
                () = crate::workers::stopped(&mut stop) => break,
            }
        } else if *stop.borrow() {
            break;
        }
        // The attempts that finished are let go of.
        while attempts.try_join_next().is_some() {}
        let now = state.clock.now();
        state.health.beat("webhooks", now.timestamp());
        let free = permits.available_permits();
        if free == 0 {
            full = false;
            continue;
        }
        let (skip, skip_orgs) = in_flight.lock().map(|c| c.full()).unwrap_or_default();
        let timeout = chrono::Duration::seconds(
            i64::try_from(state.settings.webhooks.timeout_secs).unwrap_or(10),
        );
        let lease = lease_until(now, timeout);
        let limit = u32::try_from(free.min(100)).unwrap_or(100);
        let batch = match state
            .store
            .claim_deliveries(now, lease, limit, &skip, &skip_orgs)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "webhook worker: cannot claim deliveries");
                full = false;
                continue;
            }
        };
        full = batch.len() == limit as usize;
        for (d, ep, secrets) in batch {
            let (endpoint_gate, org_gate) = match in_flight.lock() {
                Ok(mut c) => c.claim(ep.id, ep.org),
                Err(_) => return,
            };
            let (st, permits, in_flight) = (state.clone(), permits.clone(), in_flight.clone());
            let drained = drained.clone();
            let outcomes = outcomes.clone();
            let stopping = stop.clone();
            attempts.spawn(async move {
                let (id, org) = (ep.id, ep.org);
                // The endpoint's own cap first, then its organization's, then the worker's:
                // a delivery waiting for its endpoint or organization holds none of the
                // worker's attempts.
                if let (Ok(_gate), Ok(_org_gate), Ok(_permit)) = (
                    endpoint_gate.acquire_owned().await,
                    org_gate.acquire_owned().await,
                    permits.acquire_owned().await,
                ) {
                    // Waiting behind its endpoint's other deliveries may have taken most of
                    // the lease: an attempt that could outlast it (with the recording of its
                    // outcome) is not made, since another instance may claim the delivery
                    // once it runs out and send it too. It stays leased until then, and is
                    // claimed again.
                    if !leaves_time_to_record(st.clock.now(), timeout, lease) {
                        tracing::info!(delivery = %d.id, "webhook worker: too little of the lease left to attempt; claimed again later");
                    } else if *stopping.borrow() {
                        tracing::info!(delivery = %d.id, "webhook worker: stopping; not attempted, claimed again after the lease");
                    } else {
                        // What goes out is what the database holds now: while the delivery
                        // waited, its endpoint may have been deleted, disabled or pointed
                        // elsewhere, its secrets rotated, its payload erased.
                        drop((ep, secrets));
                        match st.store.still_leased(&d, lease).await {
                            // The read may have waited (on SQLite, behind the writer): the
                            // lease must still leave the attempt and its recording time.
                            Ok(Some(_)) if !leaves_time_to_record(st.clock.now(), timeout, lease) => {
                                tracing::info!(delivery = %d.id, "webhook worker: too little of the lease left to attempt; claimed again later");
                            }
                            Ok(Some((d, ep, secrets))) => {
                                let outcome = attempt(&st, &d, ep, secrets, lease).await;
                                if outcomes.send((d, outcome)).is_err() {
                                    tracing::error!(
                                        "webhook worker: the recorder stopped; the attempt will be retried after the lease"
                                    );
                                }
                            }
                            Ok(None) => tracing::info!(delivery = %d.id, "webhook worker: the delivery, or its endpoint, changed since the claim (deleted, disabled or resent); not sent"),
                            Err(e) => tracing::warn!(delivery = %d.id, error = %e, "webhook worker: cannot read the delivery again; claimed again after the lease"),
                        }
                    }
                }
                if let Ok(mut c) = in_flight.lock()
                    && c.finish(id, org)
                {
                    drained.notify_one();
                }
            });
        }
    }
    // Stopping: the attempts under way finish, then the recorder writes what is left.
    while attempts.join_next().await.is_some() {}
    drop(outcomes);
    if let Err(e) = recorder.await {
        tracing::warn!(error = %e, "webhook worker: the recorder did not finish");
    }
}

/// Writes finished attempts in batches of whatever has arrived (at most 256), one transaction
/// each; a batch that cannot be written is retried one outcome at a time, so one bad row does
/// not hold back the others. An outcome that still cannot be written is logged, and its delivery
/// is sent again after the lease.
async fn record(
    state: AppState,
    mut pending: tokio::sync::mpsc::UnboundedReceiver<(Delivery, AttemptOutcome)>,
) {
    let mut batch = Vec::with_capacity(256);
    while pending.recv_many(&mut batch, 256).await > 0 {
        let items = std::mem::take(&mut batch);
        if let Err(e) = state.store.record_attempts(items.clone()).await {
            tracing::warn!(error = %e, n = items.len(), "webhook worker: batch of attempts not recorded; recording one by one");
            for (d, o) in items {
                let Err(e) = state.store.record_attempt(&d, o.clone()).await else {
                    continue;
                };
                if o.attempt.response_body.is_empty() {
                    tracing::error!(error = %e, delivery = %d.id, "webhook worker: attempt not recorded; it will be retried after the lease");
                    continue;
                }
                // What the receiver answered is the one part of an outcome from outside: an
                // outcome the store refuses is tried once more without it, so that the
                // delivery's state still moves on rather than being sent again every lease.
                tracing::warn!(error = %e, delivery = %d.id, "webhook worker: attempt not recorded; trying without the response body");
                let o = AttemptOutcome {
                    attempt: o.attempt.without_body(),
                    ..o
                };
                if let Err(e) = state.store.record_attempt(&d, o).await {
                    tracing::error!(error = %e, delivery = %d.id, "webhook worker: attempt not recorded; it will be retried after the lease");
                }
            }
        }
    }
}

async fn attempt(
    state: &AppState,
    d: &Delivery,
    ep: Endpoint,
    stored: StoredSecrets,
    lease: chrono::DateTime<chrono::Utc>,
) -> AttemptOutcome {
    let number = d.attempts + 1;
    let started_at = state.clock.now();
    let started = Instant::now();
    let (status, retry_after, error, body) = send(state, d, &ep, &stored).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let now = state.clock.now();
    let policy = policy(&state.settings.webhooks);
    let verdict = webhooks::judge(&policy, number, status, retry_after, now, d.jitter_key());
    crate::prom::webhook_attempt(
        match verdict {
            AttemptVerdict::Delivered => "delivered",
            AttemptVerdict::RetryAt { .. } => "retry",
            AttemptVerdict::GiveUp => "failed",
            AttemptVerdict::DisableEndpoint => "disabled",
        },
        started.elapsed().as_secs_f64(),
    );
    let (next_status, next_at) = match verdict {
        AttemptVerdict::Delivered => (DeliveryStatus::Delivered, now),
        AttemptVerdict::RetryAt { at } => (DeliveryStatus::Pending, at),
        AttemptVerdict::GiveUp | AttemptVerdict::DisableEndpoint => (DeliveryStatus::Failed, now),
    };
    // Whether a failure disables the endpoint is the store's decision, from the streak as it
    // stands when the outcome is recorded (other deliveries' outcomes, and an admin turning the
    // endpoint back on, may have changed it since the claim); the notice is written here in
    // case it does, and committed only then.
    let disable = if next_status == DeliveryStatus::Failed {
        let mut rule = DisableRule {
            after_failures: policy.disable_after_failures,
            gone: verdict == AttemptVerdict::DisableEndpoint,
            notice: Journal::default(),
        };
        rule.notice = disabled_journal(state, &ep, &rule.reason(), now).await;
        Some(rule)
    } else {
        None
    };
    AttemptOutcome {
        attempt: Attempt {
            delivery: d.id.clone(),
            number,
            at: started_at,
            status,
            duration_ms,
            error,
            response_body: body,
        }
        .storable(),
        status: next_status,
        next_attempt_at: next_at,
        disable,
        lease: Some(lease),
    }
}

/// The audit record of an automatic disable, and a notice to the organization's Owner and Admins.
async fn disabled_journal(
    state: &AppState,
    ep: &Endpoint,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Journal {
    let mut journal = Journal::record(
        NewAuditEvent::new(
            ep.org,
            now,
            Actor::system(),
            AuditAction::WebhookEndpointChanged,
            Target::new("webhook_endpoint", ep.id, ep.url.host_label()),
        )
        .with_metadata(
            audit::Metadata::from_value(
                serde_json::json!({ "change": "disabled", "reason": reason }),
            )
            .unwrap_or_default(),
        ),
    );
    // The audit record and the disable itself must not wait on the notice: without the list,
    // the operator learns of it from the log and the members from the endpoint's state.
    let admins = tenancy::OrgStore::admins(&*state.store, ep.org)
        .await
        .inspect_err(|e| {
            tracing::warn!(error = %e, org = %ep.org, endpoint = %ep.id, "webhook disable notice not addressed");
        })
        .unwrap_or_default();
    for m in admins.iter().filter(|m| m.deactivated_at.is_none()) {
        journal = journal.mail(audit::OutboundMail {
            org: Some(ep.org),
            to: m.user.email.to_string(),
            subject: "A webhook endpoint was disabled".into(),
            body: format!(
                "Hello {},\n\nThe webhook endpoint {} ({}) was disabled: {reason}.\n\
                 Events from now on are kept as failed deliveries. Fix the receiver, re-enable\n\
                 the endpoint, and recover the failed deliveries\n\
                 (POST /api/v1/orgs/{}/webhooks/{}/recover).\n",
                m.user.name,
                ep.id,
                ep.url.host_label(),
                ep.org,
                ep.id
            ),
            kind: "webhook_disabled".into(),
        });
    }
    journal
}

/// Sends one attempt: status, `Retry-After` seconds, transport error, first KiB of the body.
async fn send(
    state: &AppState,
    d: &Delivery,
    ep: &Endpoint,
    stored: &StoredSecrets,
) -> (Option<u16>, Option<u64>, Option<String>, String) {
    let fail = |e: String| (None, None, Some(e), String::new());
    let secrets = match webhooks::signing_secrets(&state.cipher, ep.id, stored, state.clock.now()) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let url = match reqwest::Url::parse(ep.url.as_str()) {
        Ok(u) => u,
        Err(e) => return fail(format!("bad URL: {e}")),
    };
    // `webhooks.https_only` applies to endpoints stored before it was turned on, too.
    if state.settings.webhooks.https_only && url.scheme() != "https" {
        return fail("webhooks.https_only is on: an http:// endpoint gets no deliveries".into());
    }
    // The port rule applies to endpoints stored before it, too; the port is the one the
    // request will use, as the HTTP client's parser reads it.
    match url.port_or_known_default() {
        Some(p) if webhooks::port_allowed(p) => {}
        Some(p) => {
            return fail(format!(
                "destination port {p} is refused: webhooks go to 80, 443 or a port from 1024 up"
            ));
        }
        None => return fail("the URL's port is not a number from 1 to 65535".into()),
    }
    // IP literals never reach the resolver: check them here.
    if let Some(host) = url.host_str() {
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = literal
            && !webhooks::destination_allowed(ip, &allow_list(&state.settings.webhooks))
        {
            return fail(format!(
                "destination {ip} is an internal address and not allowlisted"
            ));
        }
    }
    let ts = state.clock.now().timestamp();
    let mut req = state.http.post(url).body(d.payload.clone());
    for (k, v) in webhooks::headers(
        &d.event_id.to_string(),
        d.kind,
        ts,
        d.payload.as_bytes(),
        &secrets,
    ) {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let mut res = res;
            let mut bytes: Vec<u8> = Vec::new();
            // Read at most 1 KiB: a receiver cannot make the worker buffer a large body.
            while bytes.len() < Attempt::RESPONSE_EXCERPT_BYTES {
                match res.chunk().await {
                    Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            (
                Some(status),
                retry_after,
                None,
                Attempt::response_excerpt(&bytes),
            )
        }
        Err(e) => {
            // Without the URL: it may carry a credential the customer put in the path.
            let e = e.without_url();
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            fail(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    /// An endpoint is skipped at [`CLAIM_AHEAD`] claimed deliveries and an organization at
    /// [`ORG_CLAIM_AHEAD`]; each finish that falls below those asks for a claim at once; a
    /// finish of nothing claimed changes nothing; nothing is kept of what is all finished.
    /// A name that does not exist and one that resolves only to internal addresses are
    /// refused in the same words: an endpoint's attempts do not tell its owner which of the
    /// server's internal names exist.
    #[tokio::test]
    async fn unknown_and_internal_names_are_refused_alike() {
        use reqwest::dns::Resolve as _;
        let guard = GuardedResolver {
            allow: Arc::new(Vec::new()),
        };
        let refusal = |host: &'static str| {
            let resolving = guard.resolve(host.parse().unwrap());
            async move {
                match resolving.await {
                    Ok(addrs) => panic!("{host} resolved to {:?}", addrs.collect::<Vec<_>>()),
                    Err(e) => e.to_string().replace(host, "<host>"),
                }
            }
        };
        let internal = refusal("localhost").await;
        let unknown = refusal("no-such-host.invalid").await;
        assert_eq!(internal, unknown);
        assert!(!internal.contains("internal"), "{internal}");
    }

    #[test]
    fn claims_are_held_back_per_endpoint_and_per_organization() {
        let (busy, quiet) = (OrgId::new(), OrgId::new());
        let mut c = Claimed::default();
        // The busy organization's claims spread over endpoints, each under its own cap.
        let endpoints: Vec<EndpointId> = (0..5).map(|_| EndpointId::new()).collect();
        let other = EndpointId::new();
        let claim = |c: &mut Claimed, e: EndpointId, o: OrgId| c.claim(e, o);
        claim(&mut c, other, quiet);
        for n in 0..ORG_CLAIM_AHEAD - 1 {
            claim(&mut c, endpoints[n % endpoints.len()], busy);
        }
        assert_eq!(c.full(), (vec![], vec![]), "under both caps");
        claim(&mut c, endpoints[0], busy);
        assert_eq!(
            c.full(),
            (vec![], vec![busy]),
            "the organization is held back"
        );
        assert!(c.finish(endpoints[1], busy), "it fell below: claim again");
        assert_eq!(c.full(), (vec![], vec![]));
        assert!(!c.finish(endpoints[1], busy));
        // One endpoint alone at its cap.
        for _ in 0..CLAIM_AHEAD - 1 {
            claim(&mut c, other, quiet);
        }
        assert_eq!(c.full(), (vec![other], vec![]));
        assert!(c.finish(other, quiet));
        // The gates are shared by the deliveries of one endpoint and of one organization.
        let (e1, o1) = claim(&mut c, other, quiet);
        let (e2, o2) = claim(&mut c, other, quiet);
        assert!(Arc::ptr_eq(&e1, &e2) && Arc::ptr_eq(&o1, &o2));
        assert_eq!(o1.available_permits(), PER_ORG_IN_FLIGHT);
        assert_eq!(e1.available_permits(), PER_ENDPOINT_IN_FLIGHT);
        // A finish of an endpoint with nothing claimed leaves the organization's count alone.
        let before = c.orgs[&busy].1;
        assert!(!c.finish(EndpointId::new(), busy));
        assert_eq!(c.orgs[&busy].1, before);
        // Each delivery finished once, as counted: nothing is kept.
        for (e, n) in claimed_counts(&c) {
            let org = if e == other { quiet } else { busy };
            for _ in 0..n {
                c.finish(e, org);
            }
        }
        assert!(c.endpoints.is_empty() && c.orgs.is_empty());
    }

    /// What is still counted as claimed, per endpoint.
    fn claimed_counts(c: &Claimed) -> Vec<(EndpointId, usize)> {
        c.endpoints.iter().map(|(e, (_, n, _))| (*e, *n)).collect()
    }

    /// A delivery claimed with the worker's lease (two timeouts and 30 s) may be attempted at
    /// once, and after waiting less than one timeout and 15 s behind its endpoint's others; not
    /// from then on, when the attempt and the recording of its outcome could outlast the lease.
    #[test]
    fn an_attempt_starts_only_with_its_timeout_and_the_recording_margin_left() {
        let claimed = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
        let timeout = Duration::seconds(10);
        let lease = lease_until(claimed, timeout);
        assert_eq!(lease - claimed, Duration::seconds(50));
        let waited = |d: Duration| leaves_time_to_record(claimed + d, timeout, lease);
        assert!(waited(Duration::seconds(24)));
        assert!(
            !waited(Duration::seconds(25)),
            "10 s of attempt, 15 s to record"
        );
        assert!(leaves_time_to_record(claimed, timeout, lease));
        let last = lease - timeout - RECORDING_MARGIN - Duration::milliseconds(1);
        assert!(leaves_time_to_record(last, timeout, lease));
        assert!(!leaves_time_to_record(
            last + Duration::milliseconds(1),
            timeout,
            lease
        ));
        // 15 s, not the 5 s of before: 10 s of lease left after the attempt is not enough.
        assert!(!leaves_time_to_record(
            lease - timeout - Duration::seconds(10),
            timeout,
            lease
        ));
        assert!(!leaves_time_to_record(lease, timeout, lease));
    }
}
