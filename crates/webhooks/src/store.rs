//! The webhooks storage port. Secrets cross it only encrypted.

use async_trait::async_trait;
use audit::{EventKind, Journal};
use chrono::{DateTime, Utc};
use rbac_core::{EndpointId, OrgId};

use crate::error::WebhookError;
use crate::model::{Attempt, Delivery, DeliveryStatus, Endpoint};
use crate::policy::WebhookUrl;

/// Most deliveries of one endpoint a single claim takes ([`WebhookStore::claim_deliveries`]).
pub const MAX_CLAIMED_PER_ENDPOINT: usize = 16;

/// Most deliveries of one organization a single claim takes ([`WebhookStore::claim_deliveries`]).
pub const MAX_CLAIMED_PER_ORG: usize = 32;

/// An endpoint's secrets, encrypted at rest (opaque strings from `security_policy::Cipher`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecrets {
    /// The current secret.
    pub current: String,
    /// The previous secret and when it stops being used, during a rotation's grace period.
    pub previous: Option<(String, DateTime<Utc>)>,
}

/// A change of an endpoint's settings: the fields that are `Some` are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointChange {
    /// The URL.
    pub url: Option<WebhookUrl>,
    /// The description.
    pub description: Option<String>,
    /// The event filter (empty: every event).
    pub events: Option<Vec<EventKind>>,
    /// The message template: `Some(None)` removes it.
    pub message: Option<Option<String>>,
    /// On or off.
    pub enabled: Option<bool>,
}

impl EndpointChange {
    /// Whether the change writes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The names of the fields it writes, for the audit record.
    #[must_use]
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("url", self.url.is_some()),
            ("description", self.description.is_some()),
            ("events", self.events.is_some()),
            ("message", self.message.is_some()),
            ("enabled", self.enabled.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// `endpoint` with the change applied, as a store writes it: turning on a disabled
    /// endpoint clears its reason and failure streak.
    pub fn apply_to(&self, endpoint: &mut Endpoint) {
        if let Some(u) = &self.url {
            endpoint.url = u.clone();
        }
        if let Some(d) = &self.description {
            endpoint.description.clone_from(d);
        }
        if let Some(e) = &self.events {
            endpoint.events.clone_from(e);
        }
        if let Some(m) = &self.message {
            endpoint.message.clone_from(m);
        }
        if let Some(on) = self.enabled {
            if on && !endpoint.enabled {
                endpoint.disabled_reason = None;
                endpoint.consecutive_failures = 0;
            }
            // Off by hand, also one that was disabled automatically: it then keeps no
            // deliveries for a recovery (`Endpoint::queues`).
            if !on {
                endpoint.disabled_reason = None;
            }
            endpoint.enabled = on;
        }
    }
}

/// What the worker records after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// The attempt.
    pub attempt: Attempt,
    /// The delivery's new status.
    pub status: DeliveryStatus,
    /// When to try again (with `Pending`).
    pub next_attempt_at: DateTime<Utc>,
    /// With `Failed`: when the failure disables the endpoint, and what that commits.
    pub disable: Option<DisableRule>,
    /// The lease the delivery was claimed with (`claim_deliveries`' `lease_until`). With it,
    /// the outcome applies only while the delivery still carries that lease: not once another
    /// worker claimed it after the lease ran out, nor once it was resent (which starts its
    /// attempt count again, so the count alone would not tell).
    pub lease: Option<DateTime<Utc>>,
}

/// When a failed delivery disables its endpoint. The adapter decides, in the outcome's
/// transaction, from the failure streak and the enabled flag as stored then, not as the worker
/// read them when it claimed the delivery: other workers' outcomes and an admin's re-enabling
/// may have changed both since.
#[derive(Debug, Clone, PartialEq)]
pub struct DisableRule {
    /// Disable once this many deliveries in a row have failed, this one included (0: never
    /// for a streak).
    pub after_failures: u32,
    /// The receiver answered 410 Gone: disable whatever the streak.
    pub gone: bool,
    /// Committed with the outcome only if it disables the endpoint (one that is already
    /// disabled is not disabled again): the audit record and the notices, written for
    /// [`DisableRule::reason`].
    pub notice: Journal,
}

impl DisableRule {
    /// The reason recorded on the endpoint when the rule disables it.
    #[must_use]
    pub fn reason(&self) -> String {
        if self.gone {
            "the receiver answered 410 Gone".to_owned()
        } else {
            format!("{} deliveries in a row failed", self.after_failures)
        }
    }

    /// Whether the rule disables an endpoint that is `enabled` and whose streak of failed
    /// deliveries, this outcome's included, is `streak`.
    #[must_use]
    pub fn disables(&self, enabled: bool, streak: u32) -> bool {
        enabled && (self.gone || (self.after_failures > 0 && streak >= self.after_failures))
    }
}

/// Endpoints, the delivery queue and its history.
///
/// Domain events become deliveries inside the adapter's journal commit: each event queues one
/// delivery per endpoint of its organization that takes it, as [`Endpoint::queues`] says
/// (pending, or failed for an endpoint disabled automatically), in the same transaction as the
/// change that caused it.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint with its encrypted secret, unless its organization has
    /// [`crate::MAX_ENDPOINTS_PER_ORG`] already (counted with the insert, so concurrent
    /// creations cannot pass it).
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] at the limit; [`WebhookError::Store`] on storage failure.
    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        secret: &str,
        journal: Journal,
    ) -> Result<(), WebhookError>;

    /// Endpoints of `org` ordered by id, after the keyset cursor `after`.
    ///
    /// # Errors
    /// [`WebhookError::Store`] on storage failure.
    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<EndpointId>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, WebhookError>;

    /// One endpoint of `org`.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`] when `org` has no such endpoint.
    async fn get_endpoint(&self, org: OrgId, id: EndpointId) -> Result<Endpoint, WebhookError>;

    /// Writes the fields `change` sets and leaves the others as stored: another edit, or the
    /// delivery worker (which counts failures and may disable the endpoint), may have changed
    /// them since the change was read. Turning on an endpoint that is (as stored) disabled
    /// clears its reason and failure streak.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`] when `org` has no such endpoint.
    async fn update_endpoint(
        &self,
        org: OrgId,
        id: EndpointId,
        change: &EndpointChange,
        journal: Journal,
    ) -> Result<(), WebhookError>;

    /// Deletes an endpoint and its queue: its pending deliveries and their attempts. Finished
    /// deliveries stay as history until housekeeping removes them.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`].
    async fn delete_endpoint(
        &self,
        org: OrgId,
        id: EndpointId,
        journal: Journal,
    ) -> Result<(), WebhookError>;

    /// The endpoint's encrypted secrets.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`].
    async fn secrets(&self, org: OrgId, id: EndpointId) -> Result<StoredSecrets, WebhookError>;

    /// Replaces the secrets (rotation), if the current secret is still `replacing` (the one the
    /// rotation read): of two rotations at once, one is refused rather than both written, and
    /// the secret shown for the refused one never in force.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`]; [`WebhookError::Changed`] when the current secret is no
    /// longer `replacing`.
    async fn set_secrets(
        &self,
        org: OrgId,
        id: EndpointId,
        replacing: &str,
        secrets: &StoredSecrets,
        journal: Journal,
    ) -> Result<(), WebhookError>;

    /// Queues one delivery of `journal`'s events directly to `endpoint` (test events), committing the journal.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`]; [`WebhookError::Disabled`] when the endpoint is disabled
    /// (also by a change that committed after the caller read it), with nothing written.
    async fn enqueue_direct(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        journal: Journal,
    ) -> Result<(), WebhookError>;

    /// Claims up to `limit` due pending deliveries of enabled endpoints other than `skip`
    /// (endpoints the worker already has enough in flight for), of organizations other than
    /// `skip_orgs` (the same, for an organization), at most [`MAX_CLAIMED_PER_ENDPOINT`] of any
    /// one endpoint and [`MAX_CLAIMED_PER_ORG`] of any one organization, leasing each until
    /// `lease_until` with a conditional update, so no two workers hold one at the same time.
    /// (Without the caps one hanging endpoint's, or one organization's, backlog could fill a
    /// claim, and the deliveries it cannot take in time would wait out their lease.)
    ///
    /// # Errors
    /// [`WebhookError::Store`] on storage failure.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        skip: &[EndpointId],
        skip_orgs: &[OrgId],
    ) -> Result<Vec<(Delivery, Endpoint, StoredSecrets)>, WebhookError>;

    /// `delivery` as it is now, with its endpoint and that endpoint's secrets as they are now,
    /// if it is still pending under the lease `lease` (claimed by [`Self::claim_deliveries`]
    /// with `lease_until = lease`, at the same attempt count) and its endpoint still enabled;
    /// `None` otherwise. A worker asks just before sending, since a claimed delivery may wait
    /// (behind its endpoint's others) while its endpoint is deleted, disabled or pointed
    /// elsewhere, its secrets rotated or its payload erased: what goes out is what the
    /// database holds then. `next_attempt_at` is returned as the claim returned it.
    ///
    /// # Errors
    /// [`WebhookError::Store`] on storage failure.
    async fn still_leased(
        &self,
        delivery: &Delivery,
        lease: DateTime<Utc>,
    ) -> Result<Option<(Delivery, Endpoint, StoredSecrets)>, WebhookError>;

    /// Records an attempt and moves the delivery (and its endpoint's failure count) on, in one
    /// transaction, and disables the endpoint if the outcome's [`DisableRule`] says so then.
    /// An outcome records nothing, its notice included, when its delivery is no longer as the
    /// worker claimed it: deleted meanwhile (with its endpoint), or with an outcome recorded
    /// since by another worker that claimed it after this worker's lease ran out, or resent
    /// (no longer pending at the claimed attempt count, or, with
    /// [`AttemptOutcome::lease`], no longer under that lease).
    ///
    /// # Errors
    /// [`WebhookError::Store`] on storage failure.
    async fn record_attempt(
        &self,
        delivery: &Delivery,
        outcome: AttemptOutcome,
    ) -> Result<(), WebhookError>;

    /// Records several attempts (the worker batches the outcomes that finish together).
    /// Outcomes of one endpoint apply in the batch's order (a success ends the failure streak).
    /// An adapter should commit the batch in one transaction, all or nothing; this default
    /// records them one by one and stops at the first failure.
    ///
    /// # Errors
    /// [`WebhookError::Store`] on storage failure.
    async fn record_attempts(
        &self,
        batch: Vec<(Delivery, AttemptOutcome)>,
    ) -> Result<(), WebhookError> {
        for (delivery, outcome) in batch {
            self.record_attempt(&delivery, outcome).await?;
        }
        Ok(())
    }

    /// Deliveries of an endpoint, newest first, optionally by status, before the cursor.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`] for another organization's endpoint.
    async fn list_deliveries(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, WebhookError>;

    /// Attempts of one delivery of `endpoint`, in order.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`] for another organization's delivery, or another endpoint's.
    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        delivery: &str,
    ) -> Result<Vec<Attempt>, WebhookError>;

    /// Puts deliveries back in the queue with a fresh attempt budget: one (`delivery`), or every
    /// failed one of `endpoint` created since `since`. Returns how many. `journal` commits with
    /// the change, except when the one delivery named is not there to resend.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`] for another organization's endpoint, or when `delivery` names
    /// no finished delivery of the endpoint (nothing is changed or recorded then).
    async fn requeue(
        &self,
        org: OrgId,
        endpoint: EndpointId,
        delivery: Option<&str>,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<u64, WebhookError>;

    /// Delivery counts of an endpoint by status.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`].
    async fn delivery_counts(
        &self,
        org: OrgId,
        endpoint: EndpointId,
    ) -> Result<Vec<(DeliveryStatus, u64)>, WebhookError>;
}
