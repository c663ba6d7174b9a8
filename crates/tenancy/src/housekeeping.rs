//! Housekeeping: removing what has served its purpose and only grows (sessions no policy can
//! still honour, spent or expired reset links and sign-in challenges, old mail, SMS codes,
//! finished webhook deliveries and their attempts, outbox events).
//!
//! Each kind of row carries personal data (addresses, IP addresses, message bodies, links), so
//! keeping it no longer than needed is also data minimisation. Deliveries still being retried
//! stay whatever their age, and so do the outbox events they came from (an erasure finds the
//! deliveries that name a person through those events). Each person's newest session stays too:
//! it is their "last sign-in". The audit log is not touched here; its retention is each
//! organization's setting (`security::apply_audit_retention`).
//!
//! The rules (which rows, how old) live here; [`HousekeepingStore::prune_stale`] removes what
//! [`Cutoffs`] names, in one pass per kind.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::TenancyError;

/// How long to keep what an operator or an organization may still want to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Housekeeping {
    /// Days an email stays in the outbox, sent or not (at least the invitation links' expiry,
    /// `invitations.expiry_days`; reset links expire within a day).
    pub mail_days: u32,
    /// Days a webhook delivery stays in the delivery history, with its attempts, after its last
    /// attempt (delivered, or failed for good; a failed one can be sent again until then), and
    /// an outbox event once no delivery refers to it.
    pub webhook_history_days: u32,
}

impl Default for Housekeeping {
    fn default() -> Self {
        Self {
            mail_days: 30,
            webhook_history_days: 30,
        }
    }
}

/// A reset link or sign-in challenge that expired longer ago than this is removed: no request
/// can use it, and a day leaves its record for anyone investigating that day's sign-ins.
const SPENT_TOKENS_KEPT: Duration = Duration::days(1);

/// SMS codes live minutes; the outbox row an operator reads them from is kept a day.
const SMS_KEPT: Duration = Duration::days(1);

/// The oldest time of each kind of row to keep; older rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Sessions created before this: past the longest absolute timeout any policy allows
    /// ([`security_policy::MAX_ABSOLUTE_TIMEOUT_MINUTES`]), so no organization honours them,
    /// whether they ended or not. Each person's newest session stays (their last sign-in).
    pub sessions_created_before: DateTime<Utc>,
    /// Password reset links, sign-in challenges and bulk-invitation previews that expired
    /// before this (used or not).
    pub tokens_expired_before: DateTime<Utc>,
    /// Mail sent before this, and mail created before this and never sent.
    pub mail_before: DateTime<Utc>,
    /// SMS outbox rows created before this.
    pub sms_created_before: DateTime<Utc>,
    /// Finished webhook deliveries (and their attempts) whose last attempt was before this, and
    /// outbox events created before this that no delivery refers to. Pending deliveries stay.
    pub history_before: DateTime<Utc>,
}

impl Cutoffs {
    /// The cutoffs of a pass at `now` under `settings`.
    #[must_use]
    pub fn at(now: DateTime<Utc>, settings: &Housekeeping) -> Self {
        Self {
            sessions_created_before: now
                - Duration::minutes(i64::from(security_policy::MAX_ABSOLUTE_TIMEOUT_MINUTES))
                - SPENT_TOKENS_KEPT,
            tokens_expired_before: now - SPENT_TOKENS_KEPT,
            mail_before: now - Duration::days(i64::from(settings.mail_days)),
            sms_created_before: now - SMS_KEPT,
            history_before: now - Duration::days(i64::from(settings.webhook_history_days)),
        }
    }
}

/// What a pass removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HousekeepingReport {
    /// Sessions.
    pub sessions: u64,
    /// Password reset links.
    pub password_resets: u64,
    /// Sign-in challenges (the step between password and second factor).
    pub login_challenges: u64,
    /// Bulk-invitation previews (uploaded sheets' rows) past their expiry.
    pub bulk_previews: u64,
    /// Emails.
    pub mails: u64,
    /// SMS outbox rows.
    pub sms: u64,
    /// Finished webhook deliveries.
    pub webhook_deliveries: u64,
    /// Their delivery attempts.
    pub webhook_attempts: u64,
    /// Outbox events.
    pub events: u64,
    /// Organizations deleted while a request of theirs was writing, whose late rows (an audit
    /// record and its chain head, usage counts) were found and removed.
    pub orphaned_organizations: u64,
}

impl HousekeepingReport {
    /// Rows removed in all.
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.sessions
            + self.password_resets
            + self.login_challenges
            + self.bulk_previews
            + self.mails
            + self.sms
            + self.webhook_deliveries
            + self.webhook_attempts
            + self.events
            + self.orphaned_organizations
    }
}

/// The port: removes the rows [`Cutoffs`] names.
#[async_trait]
pub trait HousekeepingStore: Send + Sync {
    /// Removes every row older than its kind's cutoff, and nothing else, in batches (a delivery
    /// with its attempts in one transaction), so a failure part-way leaves every row either
    /// kept or removed whole; running it again finishes the job. Several instances may run it
    /// at once: a row is removed once, and a delivery sent again meanwhile (pending again)
    /// stays.
    ///
    /// # Errors
    /// Storage errors.
    async fn prune_stale(&self, cutoffs: &Cutoffs) -> Result<HousekeepingReport, TenancyError>;
}

/// One housekeeping pass at `now`.
///
/// # Errors
/// Storage errors.
pub async fn run(
    store: &dyn HousekeepingStore,
    settings: &Housekeeping,
    now: DateTime<Utc>,
) -> Result<HousekeepingReport, TenancyError> {
    store.prune_stale(&Cutoffs::at(now, settings)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_session_a_policy_still_honours_is_older_than_the_session_cutoff() {
        let now = DateTime::from_timestamp(1_763_893_815, 0).unwrap_or_default();
        let c = Cutoffs::at(now, &Housekeeping::default());
        // The longest session any organization may allow, created the moment before the cutoff
        // would have ended already.
        let longest = security_policy::SessionPolicy {
            absolute_timeout_minutes: security_policy::MAX_ABSOLUTE_TIMEOUT_MINUTES,
            idle_timeout_minutes: security_policy::MAX_ABSOLUTE_TIMEOUT_MINUTES,
            max_concurrent: 1,
        };
        assert!(longest.validate().is_ok());
        let created = c.sessions_created_before - Duration::seconds(1);
        assert_eq!(
            security_policy::check_session(&longest, created, now, now),
            security_policy::SessionStatus::Expired
        );
        // With a day to spare.
        assert!(c.sessions_created_before < now - Duration::days(30));
        assert_eq!(c.tokens_expired_before, now - Duration::days(1));
        assert_eq!(c.mail_before, now - Duration::days(30));
        assert_eq!(c.history_before, now - Duration::days(30));
        let short = Cutoffs::at(
            now,
            &Housekeeping {
                mail_days: 2,
                webhook_history_days: 7,
            },
        );
        assert_eq!(short.mail_before, now - Duration::days(2));
        assert_eq!(short.history_before, now - Duration::days(7));
    }
}
