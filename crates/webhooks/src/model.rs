//! Endpoints, deliveries and attempts.

use audit::{DomainEvent, EventKind};
use chrono::{DateTime, Utc};
use rbac_core::{EndpointId, EventId, OrgId};
use serde::Serialize;

use crate::policy::WebhookUrl;

/// A customer's receiving endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// The organization.
    pub org: OrgId,
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// Free text.
    pub description: String,
    /// Event types to send; empty means all.
    pub events: Vec<EventKind>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled automatically (410, sustained failure), if so.
    pub disabled_reason: Option<String>,
    /// Failed deliveries in a row.
    pub consecutive_failures: u32,
    /// A message template (`crate::template`): when set, deliveries are `{"text": …}` for a chat
    /// tool's incoming webhook instead of the event document.
    pub message: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Endpoint {
    /// Whether this endpoint subscribes to `kind` (test events always go to their endpoint).
    #[must_use]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.enabled && self.subscribes(kind)
    }

    /// How an event of `kind` is queued for this endpoint, if at all: as a pending delivery
    /// when it is enabled and subscribes; as a failed one when it subscribes but was disabled
    /// automatically (a `410`, too many failures in a row), so that the events it missed while
    /// broken are among "the deliveries that failed since" its owner recovers once it is fixed
    /// (housekeeping removes them with the rest of the history); not at all when disabled by
    /// hand.
    #[must_use]
    pub fn queues(&self, kind: EventKind) -> Option<DeliveryStatus> {
        queued_as(
            &self.events,
            self.enabled,
            self.disabled_reason.is_some(),
            kind,
        )
    }

    fn subscribes(&self, kind: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }

    /// The request body this endpoint gets for `event`: the event document ([`payload`]), or
    /// its message template filled in.
    #[must_use]
    pub fn body_for(&self, event: &DomainEvent) -> String {
        match &self.message {
            Some(t) => crate::template::body(t, event),
            None => payload(event),
        }
    }
}

/// [`Endpoint::queues`] from the fields that decide it, for a store that queues deliveries
/// without reading (or decrypting) the rest of the endpoint: its event filter (empty = all),
/// whether it is enabled, and whether it was disabled automatically.
#[must_use]
pub fn queued_as(
    events: &[EventKind],
    enabled: bool,
    disabled_automatically: bool,
    kind: EventKind,
) -> Option<DeliveryStatus> {
    if !(events.is_empty() || events.contains(&kind)) {
        None
    } else if enabled {
        Some(DeliveryStatus::Pending)
    } else if disabled_automatically {
        Some(DeliveryStatus::Failed)
    } else {
        None
    }
}

/// The exact request body of an event, in the guide's shape:
/// `{"event", "timestamp", "enterpriseId", "data"}` with an RFC 3339 UTC timestamp.
#[must_use]
pub fn payload(event: &DomainEvent) -> String {
    serde_json::json!({
        "event": event.kind.as_str(),
        "timestamp": event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "enterpriseId": event.org,
        "data": event.data,
    })
    .to_string()
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx was received.
    Delivered,
    /// Every attempt failed (or the endpoint asked to be removed).
    Failed,
}

impl DeliveryStatus {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Delivery id.
    pub id: String,
    /// The organization.
    pub org: OrgId,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The event (sent as `X-Webhook-Id` on every attempt).
    pub event_id: EventId,
    /// The event type.
    pub kind: EventKind,
    /// The exact body.
    pub payload: String,
    /// Status.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (or the lease of the worker holding it).
    pub next_attempt_at: DateTime<Utc>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    /// A number of this delivery's own for [`crate::judge`]'s jitter (FNV-1a of its id), so
    /// that deliveries failing at the same moment retry at different moments.
    #[must_use]
    pub fn jitter_key(&self) -> u64 {
        self.id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
}

/// One HTTP attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// Delivery id.
    pub delivery: String,
    /// 1-based attempt number.
    pub number: u32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Response status, if a response came.
    pub status: Option<u16>,
    /// Time to the response, in milliseconds.
    pub duration_ms: u64,
    /// Transport error, if any.
    pub error: Option<String>,
    /// The first kilobyte of the response body, as [`Attempt::response_excerpt`] keeps it.
    pub response_body: String,
}

impl Attempt {
    /// At most this many bytes of a response body are kept with an attempt.
    pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

    /// What an attempt keeps of a response body: its first [`Self::RESPONSE_EXCERPT_BYTES`]
    /// bytes as text, with invalid UTF-8 and U+0000 (which a PostgreSQL text column refuses)
    /// each replaced by U+FFFD. A receiver's answer is anything it likes; what is kept of it
    /// must always be storable, or the outcome would never be recorded and the delivery would
    /// be sent again after every lease.
    #[must_use]
    pub fn response_excerpt(bytes: &[u8]) -> String {
        let bytes = &bytes[..bytes.len().min(Self::RESPONSE_EXCERPT_BYTES)];
        audit::without_nul(&String::from_utf8_lossy(bytes))
    }

    /// This attempt with its text storable: U+0000 in the error or the body becomes U+FFFD.
    #[must_use]
    pub fn storable(self) -> Self {
        Self {
            error: self.error.as_deref().map(audit::without_nul),
            response_body: audit::without_nul(&self.response_body),
            ..self
        }
    }

    /// This attempt without the receiver's body, for when the outcome cannot be recorded with
    /// it: the status, the timing and the error still are.
    #[must_use]
    pub fn without_body(self) -> Self {
        Self {
            response_body: String::new(),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_excerpt_is_short_and_storable() {
        let long = vec![b'a'; 5000];
        assert_eq!(Attempt::response_excerpt(&long), "a".repeat(1024));
        // A character cut at the limit, U+0000 and stray bytes all become U+FFFD.
        let mut cut = vec![b'a'; 1023];
        cut.extend_from_slice("é".as_bytes());
        assert_eq!(
            Attempt::response_excerpt(&cut),
            format!("{}\u{FFFD}", "a".repeat(1023))
        );
        assert_eq!(Attempt::response_excerpt(b"\0x\xfe"), "\u{FFFD}x\u{FFFD}");
        assert_eq!(Attempt::response_excerpt(b"ok \xce\xbb"), "ok λ");
    }
}
