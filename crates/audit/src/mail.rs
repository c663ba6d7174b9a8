//! The mail outbox port: emails committed with their change, delivered by a worker.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rbac_core::OrgId;
use serde::Serialize;

use crate::error::AuditError;

/// An email in the outbox (`Debug` leaves out the body, which may hold a one-time link).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct QueuedMail {
    /// Outbox id.
    pub id: String,
    /// Organization; `None` for mail about the account itself, which only the operator sees.
    pub org: Option<OrgId>,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Body; emptied once the mail was handed to SMTP.
    pub body: String,
    /// Kind, for example `invitation`.
    pub kind: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When SMTP accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// Attempts after which the mail worker stops trying a mail ([`MailOutbox::give_up_mail`]):
/// with a minute more between each try than the last, about twenty hours.
pub const MAX_MAIL_ATTEMPTS: u32 = 48;

/// `text` with each U+0000 as U+FFFD. Text from outside (a relay's or a receiver's answer, a
/// payment provider's message) may hold U+0000, which PostgreSQL's `text` refuses: what is kept
/// of it goes through this, or the write that records it fails, and with it whatever the write
/// was for.
#[must_use]
pub fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// What a mail outbox keeps of a failed send's error (`MailOutbox::mark_mail_failed`): its
/// first 500 characters, [`without_nul`].
#[must_use]
pub fn kept_mail_error(error: &str) -> String {
    let cut: String = error.chars().take(500).collect();
    without_nul(&cut)
}

/// Storage of queued emails.
#[async_trait]
pub trait MailOutbox: Send + Sync {
    /// Claims up to `limit` unsent mails whose lease expired, leasing them until `lease_until`.
    /// Several workers never hold the same mail at once.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn claim_mails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, AuditError>;

    /// Marks a mail sent and removes its body.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn mark_mail_sent(&self, id: &str, now: DateTime<Utc>) -> Result<(), AuditError>;

    /// Records a failed attempt; the mail is retried after `retry_at`. `error` is the relay's
    /// answer or the transport's, anything at all: it is kept as [`kept_mail_error`] makes it,
    /// so that no answer keeps the failure from being recorded.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), AuditError>;

    /// Stops trying mail `id`: the relay refused it for good (an address it rejects), or it
    /// failed [`MAX_MAIL_ATTEMPTS`] times. It stays in the outbox, unsent, with `error` and
    /// one more attempt counted, until housekeeping removes it with the rest of the old mail.
    /// The default records a failure whose retry never comes.
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn give_up_mail(&self, id: &str, error: &str) -> Result<(), AuditError> {
        self.mark_mail_failed(id, &format!("gave up: {error}"), DateTime::<Utc>::MAX_UTC)
            .await
    }

    /// The organization's mails (with `None`, the mail about accounts themselves, which only
    /// the operator reads), newest first, with ids below the keyset cursor `before` (the
    /// outbox read when SMTP is off).
    ///
    /// # Errors
    /// [`AuditError::Store`] on storage failure.
    async fn list_mails(
        &self,
        org: Option<OrgId>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, AuditError>;
}

impl std::fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("org", &self.org)
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("sent_at", &self.sent_at)
            .finish_non_exhaustive()
    }
}
