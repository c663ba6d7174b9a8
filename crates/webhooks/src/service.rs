//! Endpoint management and the pure parts of delivery (headers), for the server to call.

use audit::{
    Actor, AuditAction, DomainEvent, EventKind, Journal, Metadata, NewAuditEvent, RequestContext,
    Target,
};
use chrono::{DateTime, Duration, Utc};
use rbac_core::{EndpointId, OrgId};
use security_policy::Cipher;
use serde_json::json;

use crate::error::WebhookError;
use crate::model::Endpoint;
use crate::policy::WebhookUrl;
use crate::sign::{SigningSecret, axie_signature, standard_signature};
use crate::store::{EndpointChange, StoredSecrets, WebhookStore};

/// Who acts, for audit records.
#[derive(Debug, Clone)]
pub struct Acting {
    /// The actor.
    pub actor: Actor,
    /// Request details.
    pub context: RequestContext,
}

impl Acting {
    fn audit(&self, org: OrgId, now: DateTime<Utc>, what: &str, ep: &Endpoint) -> NewAuditEvent {
        self.audit_of(org, now, what, ep.id, ep.url.host_label())
    }

    fn audit_of(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
        what: &str,
        id: EndpointId,
        destination: String,
    ) -> NewAuditEvent {
        NewAuditEvent::new(
            org,
            now,
            self.actor.clone(),
            AuditAction::WebhookEndpointChanged,
            Target::new("webhook_endpoint", id, destination),
        )
        .with_context(self.context.clone())
        .with_metadata(audit::Metadata::from_value(json!({ "change": what })).unwrap_or_default())
    }
}

/// Fields of a new or changed endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// URL.
    pub url: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Event filter (dotted names); empty = all.
    pub events: Option<Vec<String>>,
    /// Enabled flag.
    pub enabled: Option<bool>,
    /// Message template: `Some(Some(t))` sets it, `Some(None)` removes it (the event document
    /// again), `None` leaves it.
    pub message: Option<Option<String>>,
}

fn message(t: Option<String>) -> Result<Option<String>, WebhookError> {
    if let Some(t) = &t {
        crate::template::check(t)?;
    }
    Ok(t)
}

fn parse_events(names: &[String]) -> Result<Vec<EventKind>, WebhookError> {
    names
        .iter()
        .map(|n| {
            EventKind::parse(n)
                .ok_or_else(|| WebhookError::Invalid(format!("unknown event type `{n}`")))
        })
        .collect()
}

fn description(s: &str) -> Result<String, WebhookError> {
    if s.chars().count() > 500 {
        return Err(WebhookError::Invalid(
            "`description` is at most 500 characters".into(),
        ));
    }
    // PostgreSQL's `text` cannot hold U+0000: refused here for every store alike.
    if s.contains('\0') {
        return Err(WebhookError::Invalid(
            "`description` must not contain a NUL character (U+0000)".into(),
        ));
    }
    Ok(s.trim().to_owned())
}

/// Most endpoints one organization may have: every event goes to each endpoint that wants it,
/// so endpoints are what one organization could multiply its deliveries (and the load on the
/// shared delivery worker, or on one receiver) by.
pub const MAX_ENDPOINTS_PER_ORG: usize = 50;

/// The refusal of an endpoint beyond [`MAX_ENDPOINTS_PER_ORG`].
#[must_use]
pub fn too_many_endpoints() -> WebhookError {
    WebhookError::TooManyEndpoints {
        max: MAX_ENDPOINTS_PER_ORG,
    }
}

/// Creates an endpoint; returns it with its secret (to show once).
///
/// # Errors
/// [`WebhookError::Invalid`] for a bad URL, filter or description;
/// [`WebhookError::TooManyEndpoints`] beyond [`MAX_ENDPOINTS_PER_ORG`].
pub async fn create(
    store: &dyn WebhookStore,
    cipher: &Cipher,
    acting: &Acting,
    org: OrgId,
    input: EndpointInput,
    https_only: bool,
    now: DateTime<Utc>,
) -> Result<(Endpoint, SigningSecret), WebhookError> {
    let url = WebhookUrl::parse_new(input.url.as_deref().unwrap_or(""), https_only)?;
    let ep = Endpoint {
        id: EndpointId::new(),
        org,
        url,
        description: description(input.description.as_deref().unwrap_or(""))?,
        events: parse_events(&input.events.unwrap_or_default())?,
        enabled: input.enabled.unwrap_or(true),
        disabled_reason: None,
        consecutive_failures: 0,
        message: message(input.message.flatten())?,
        created_at: now,
    };
    let secret = SigningSecret::generate();
    let sealed = cipher
        .encrypt_bound(secret.as_bytes(), &secret_context(ep.id))
        .map_err(|e| WebhookError::Invalid(e.to_string()))?;
    store
        .create_endpoint(
            &ep,
            &sealed,
            Journal::record(acting.audit(org, now, "created", &ep)),
        )
        .await?;
    Ok((ep, secret))
}

/// Changes an endpoint.
///
/// # Errors
/// [`WebhookError::NotFound`], [`WebhookError::Invalid`].
pub async fn update(
    store: &dyn WebhookStore,
    acting: &Acting,
    org: OrgId,
    id: EndpointId,
    input: EndpointInput,
    https_only: bool,
    now: DateTime<Utc>,
) -> Result<Endpoint, WebhookError> {
    let ep = store.get_endpoint(org, id).await?;
    let change = EndpointChange {
        url: input
            .url
            .as_deref()
            .map(|u| WebhookUrl::parse_new(u, https_only))
            .transpose()?,
        description: input.description.as_deref().map(description).transpose()?,
        events: input.events.as_deref().map(parse_events).transpose()?,
        message: input.message.clone().map(message).transpose()?,
        enabled: input.enabled,
    };
    if change.is_empty() {
        return Ok(ep);
    }
    // Only the fields sent are written: an edit of another field at the same moment, and the
    // worker's failure streak, stay as stored.
    let mut after = ep.clone();
    change.apply_to(&mut after);
    let record = acting
        .audit(org, now, "updated", &after)
        .with_metadata(change_metadata(&change, &ep, &after));
    store
        .update_endpoint(org, id, &change, Journal::record(record))
        .await?;
    store.get_endpoint(org, id).await
}

/// What an update's audit record says: the fields written and, for those an investigator
/// asks about, the values before and after as read (the URL by its scheme and host alone:
/// its path or query may carry a credential; the description and message template by name
/// only).
fn change_metadata(change: &EndpointChange, before: &Endpoint, after: &Endpoint) -> Metadata {
    let names = |e: &Endpoint| e.events.iter().map(|k| k.as_str()).collect::<Vec<_>>();
    let (mut was, mut is) = (serde_json::Map::new(), serde_json::Map::new());
    if change.enabled.is_some() {
        was.insert("enabled".into(), json!(before.enabled));
        is.insert("enabled".into(), json!(after.enabled));
    }
    if change.url.is_some() {
        was.insert("destination".into(), json!(before.url.host_label()));
        is.insert("destination".into(), json!(after.url.host_label()));
    }
    if change.events.is_some() {
        was.insert("events".into(), json!(names(before)));
        is.insert("events".into(), json!(names(after)));
    }
    let fields = json!({ "change": "updated", "fields": change.fields() });
    let mut with_values = fields.clone();
    with_values["before"] = serde_json::Value::Object(was);
    with_values["after"] = serde_json::Value::Object(is);
    // Within the bound in practice (every event's name twice is under it); the fields alone
    // otherwise.
    Metadata::from_value(with_values)
        .or_else(|_| Metadata::from_value(fields))
        .unwrap_or_default()
}

/// Deletes an endpoint.
///
/// # Errors
/// [`WebhookError::NotFound`].
pub async fn delete(
    store: &dyn WebhookStore,
    acting: &Acting,
    org: OrgId,
    id: EndpointId,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    // One whose URL cannot be read is deleted too (it is all that can be done with it).
    let destination = match store.get_endpoint(org, id).await {
        Ok(ep) => ep.url.host_label(),
        Err(WebhookError::Unreadable(_)) => "(unreadable)".to_owned(),
        Err(e) => return Err(e),
    };
    store
        .delete_endpoint(
            org,
            id,
            Journal::record(acting.audit_of(org, now, "deleted", id, destination)),
        )
        .await
}

/// Rotates the secret; the old one stays valid (deliveries carry both signatures) for `grace`.
///
/// # Errors
/// [`WebhookError::NotFound`]; [`WebhookError::Changed`] when another rotation (or a key
/// rotation) replaced the secret after this one read it: nothing is changed.
pub async fn rotate(
    store: &dyn WebhookStore,
    cipher: &Cipher,
    acting: &Acting,
    org: OrgId,
    id: EndpointId,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<SigningSecret, WebhookError> {
    let ep = store.get_endpoint(org, id).await?;
    let old = store.secrets(org, id).await?;
    let secret = SigningSecret::generate();
    let sealed = cipher
        .encrypt_bound(secret.as_bytes(), &secret_context(id))
        .map_err(|e| WebhookError::Invalid(e.to_string()))?;
    let replaced = old.current.clone();
    let next = StoredSecrets {
        current: sealed,
        previous: (grace > Duration::zero()).then(|| (old.current, now + grace)),
    };
    store
        .set_secrets(
            org,
            id,
            &replaced,
            &next,
            Journal::record(acting.audit(org, now, "secret_rotated", &ep)),
        )
        .await?;
    Ok(secret)
}

/// Queues a `webhook.test` event for one endpoint.
///
/// # Errors
/// [`WebhookError::NotFound`].
pub async fn send_test(
    store: &dyn WebhookStore,
    acting: &Acting,
    org: OrgId,
    id: EndpointId,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let ep = store.get_endpoint(org, id).await?;
    // A disabled endpoint is sent nothing; a test queued for it would wait, unseen, until it
    // is enabled again and then arrive stale. (The store checks it again in its write.)
    if !ep.enabled {
        return Err(WebhookError::Disabled);
    }
    let event = DomainEvent::new(
        org,
        EventKind::WebhookTest,
        now,
        json!({ "endpointId": id, "message": "This is a test event from Axie Studio." }),
    );
    store
        .enqueue_direct(
            org,
            id,
            Journal::record(acting.audit(org, now, "test_sent", &ep)).publish(event),
        )
        .await
}

/// What an endpoint's signing secrets are bound to when encrypted
/// ([`Cipher::encrypt_bound`]): a secret copied onto another endpoint's row does not open there.
#[must_use]
pub fn secret_context(endpoint: EndpointId) -> Vec<u8> {
    format!("axie/webhook-secret/{endpoint}").into_bytes()
}

/// What an endpoint's URL is bound to where a store encrypts it at rest (a Slack or Teams
/// incoming-webhook URL is itself a credential): a URL copied onto another endpoint's row does
/// not open there.
#[must_use]
pub fn url_context(endpoint: EndpointId) -> Vec<u8> {
    format!("axie/webhook-url/{endpoint}").into_bytes()
}

/// The secrets to sign with now: the current one, and the previous one during its grace period.
///
/// # Errors
/// [`WebhookError::Invalid`] when a stored secret cannot be decrypted (wrong key).
pub fn signing_secrets(
    cipher: &Cipher,
    endpoint: EndpointId,
    stored: &StoredSecrets,
    now: DateTime<Utc>,
) -> Result<Vec<SigningSecret>, WebhookError> {
    let context = secret_context(endpoint);
    let open = |s: &str| -> Result<SigningSecret, WebhookError> {
        SigningSecret::from_bytes(cipher.decrypt_bound(s, &context).map_err(|_| {
            WebhookError::Invalid(
                "a stored signing secret cannot be decrypted with the configured key".into(),
            )
        })?)
    };
    let mut out = vec![open(&stored.current)?];
    if let Some((prev, until)) = &stored.previous
        && now < *until
    {
        out.push(open(prev)?);
    }
    Ok(out)
}

/// User agent of every delivery.
pub const USER_AGENT: &str = "AxieStudio-Webhook/1.0";

/// The headers of one attempt: the guide's, plus Standard Webhooks'. Several secrets give
/// several space-separated signatures.
#[must_use]
pub fn headers(
    event_id: &str,
    kind: EventKind,
    timestamp: i64,
    body: &[u8],
    secrets: &[SigningSecret],
) -> Vec<(&'static str, String)> {
    let axie: Vec<String> = secrets
        .iter()
        .map(|s| axie_signature(s, timestamp, body))
        .collect();
    let standard: Vec<String> = secrets
        .iter()
        .map(|s| standard_signature(s, event_id, timestamp, body))
        .collect();
    vec![
        ("content-type", "application/json".to_owned()),
        ("user-agent", USER_AGENT.to_owned()),
        ("x-webhook-event", kind.as_str().to_owned()),
        ("x-webhook-id", event_id.to_owned()),
        ("x-webhook-timestamp", timestamp.to_string()),
        ("x-webhook-signature", axie.join(" ")),
        ("webhook-id", event_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", standard.join(" ")),
    ]
}

/// Puts one finished delivery (`delivery`), or every failed delivery since `since`, back in the
/// queue with a fresh attempt budget, audited. Returns how many.
///
/// # Errors
/// [`WebhookError::NotFound`] for an unknown endpoint, or a single delivery that is not finished;
/// [`WebhookError::Disabled`] while the endpoint is disabled (it would be sent nothing, and the
/// deliveries would wait unseen until it is enabled: enable it, then recover).
pub async fn requeue(
    store: &dyn WebhookStore,
    acting: &Acting,
    org: OrgId,
    id: EndpointId,
    delivery: Option<&str>,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<u64, WebhookError> {
    let ep = store.get_endpoint(org, id).await?;
    if !ep.enabled {
        return Err(WebhookError::Disabled);
    }
    let mut record = acting.audit(org, now, "requeued", &ep);
    record.metadata = audit::Metadata::from_value(
        json!({ "change": "requeued", "delivery": delivery, "since": since }),
    )
    .unwrap_or_default();
    let n = store
        .requeue(org, id, delivery, since, now, Journal::record(record))
        .await?;
    if n == 0 && delivery.is_some() {
        return Err(WebhookError::NotFound("finished delivery"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_is_trimmed_bounded_and_holds_no_nul_character() {
        assert_eq!(description("  Slack alerts ").unwrap(), "Slack alerts");
        assert!(description(&"x".repeat(501)).is_err());
        assert!(matches!(
            description("Slack\0alerts"),
            Err(WebhookError::Invalid(m)) if m.contains("NUL")
        ));
    }
}
