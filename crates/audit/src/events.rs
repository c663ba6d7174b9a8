//! Domain events and the journal every mutation writes through.
//!
//! A [`Journal`] is what a state change leaves behind: its audit records and the
//! domain events that webhooks deliver. Store methods that change state take a
//! `Journal` and commit it in the same transaction as the change, so there is no
//! way to change state without recording it.

use chrono::{DateTime, Utc};
use rbac_core::{EventId, OrgId};
use serde::{Deserialize, Serialize};

use crate::model::NewAuditEvent;

macro_rules! event_kinds {
    ($( $(#[$m:meta])* $variant:ident => $name:literal; )*) => {
        /// The catalogue of outgoing event types (the guide's, plus those it calls planned).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[$m])* $variant, )*
        }

        impl EventKind {
            /// Every event type.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The dotted wire name, for example `user.created`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }

            /// Parses the dotted wire name.
            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(EventKind::$variant),)* _ => None }
            }
        }
    };
}

event_kinds! {
    /// New team member added.
    UserCreated => "user.created";
    /// Team member profile updated (also deactivation and reactivation).
    UserUpdated => "user.updated";
    /// Team member removed.
    UserDeleted => "user.deleted";
    /// Enterprise account created.
    EnterpriseCreated => "enterprise.created";
    /// Enterprise changed (plan, ownership).
    EnterpriseUpdated => "enterprise.updated";
    /// Team member role modified.
    RoleChanged => "role.changed";
    /// Enterprise settings updated.
    SettingsUpdated => "settings.updated";
    /// Chat interface created.
    ChatInterfaceCreated => "chat_interface.created";
    /// Chat interface updated.
    ChatInterfaceUpdated => "chat_interface.updated";
    /// Chat interface deleted.
    ChatInterfaceDeleted => "chat_interface.deleted";
    /// Document uploaded.
    DocumentUploaded => "document.uploaded";
    /// Document deleted.
    DocumentDeleted => "document.deleted";
    /// API key created.
    ApiKeyCreated => "api_key.created";
    /// API key revoked.
    ApiKeyRevoked => "api_key.revoked";
    /// Team created.
    TeamCreated => "team.created";
    /// Team updated.
    TeamUpdated => "team.updated";
    /// Team deleted.
    TeamDeleted => "team.deleted";
    /// Asset moved between teams.
    AssetTransferred => "asset.transferred";
    /// A test event sent on request.
    WebhookTest => "webhook.test";
    /// Usage reached 80 % or 100 % of a plan limit.
    UsageThresholdReached => "usage.threshold_reached";
    /// The subscription changed: plan or cycle, trial started or ended, renewal.
    SubscriptionUpdated => "subscription.updated";
    /// Credits were bought.
    CreditsPurchased => "credits.purchased";
    /// A team's credit balance fell below its low-credit threshold.
    CreditsLow => "credits.low";
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventKind::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown event `{s}`")))
    }
}

/// Something that happened, to be delivered to the organization's webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Stable id, sent as `X-Webhook-Id` on every attempt.
    pub id: EventId,
    /// The organization ("enterpriseId").
    pub org: OrgId,
    /// The event type.
    pub kind: EventKind,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The event's `data` object.
    pub data: serde_json::Value,
}

impl DomainEvent {
    /// A new event with a fresh id.
    #[must_use]
    pub fn new(
        org: OrgId,
        kind: EventKind,
        occurred_at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: EventId::new(),
            org,
            kind,
            occurred_at: crate::model::truncate_to_micros(occurred_at),
            data,
        }
    }
}

/// What one state change records: audit records and domain events, committed with the change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Journal {
    /// Audit records, appended to their organizations' chains in order.
    pub records: Vec<NewAuditEvent>,
    /// Events for the webhook outbox.
    pub events: Vec<DomainEvent>,
    /// Emails for the mail outbox (sent by a worker after the commit).
    pub mails: Vec<OutboundMail>,
}

/// An email queued with the change that caused it.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundMail {
    /// The organization it concerns (for the admins' outbox view); `None` for mail about the
    /// account itself (a password reset), which no organization's outbox shows.
    pub org: Option<OrgId>,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body (may contain a one-time link; it is removed once sent).
    pub body: String,
    /// What kind of mail, for example `invitation`.
    pub kind: String,
}

impl std::fmt::Debug for OutboundMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies may hold one-time links: keep them out of logs.
        f.debug_struct("OutboundMail")
            .field("org", &self.org)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// A journal with one audit record.
    #[must_use]
    pub fn record(event: NewAuditEvent) -> Self {
        Self {
            records: vec![event],
            events: Vec::new(),
            mails: Vec::new(),
        }
    }

    /// Queues an email.
    #[must_use]
    pub fn mail(mut self, mail: OutboundMail) -> Self {
        self.mails.push(mail);
        self
    }

    /// Adds another audit record.
    #[must_use]
    pub fn and_record(mut self, event: NewAuditEvent) -> Self {
        self.records.push(event);
        self
    }

    /// Adds a domain event.
    #[must_use]
    pub fn publish(mut self, event: DomainEvent) -> Self {
        self.events.push(event);
        self
    }

    /// Appends everything `other` records, publishes and mails after what this journal holds,
    /// for a store that decides inside a change's transaction that more goes with it (an alert
    /// the change set off).
    pub fn absorb(&mut self, other: Journal) {
        self.records.extend(other.records);
        self.events.extend(other.events);
        self.mails.extend(other.mails);
    }
}
