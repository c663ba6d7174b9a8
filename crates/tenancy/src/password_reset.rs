//! Self-service password reset: a person who forgot their password asks for a one-time link by
//! email, then sets a new password with it.
//!
//! The answer to a request never says whether the address has an account. The link's token is
//! stored only as its SHA-256 hash, works once, expires (one hour by default), and using it ends
//! every session of the person, clears their login lockout and retires their other open links.
//! The new password must satisfy the password policy of every organization of the person, as a
//! change does; a second factor, when enrolled, is still asked at the next sign-in. The request
//! and the reset are recorded in each of the person's organizations.

use async_trait::async_trait;
use audit::{AuditAction, Journal, Metadata, OutboundMail, RequestContext};
use chrono::{DateTime, Duration, Utc};
use rbac_core::UserId;
use serde_json::json;

use crate::error::TenancyError;
use crate::mfa::MfaStore;
use crate::model::{Email, User};
use crate::store::{SessionsEndedJournal, TenancyStore};

/// A stored reset link: the hash of its token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    /// SHA-256 of the token, hex (`security_policy::hash_token`).
    pub token_hash: String,
    /// Whose password it resets.
    pub user: UserId,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used (or retired by another link's use).
    pub used_at: Option<DateTime<Utc>>,
}

impl PasswordReset {
    /// Whether the link still works at `now`.
    #[must_use]
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

/// How reset links are made.
#[derive(Debug, Clone)]
pub struct ResetSettings {
    /// How long a link works (default one hour).
    pub expiry: Duration,
    /// The page that sets the new password; the token is appended as `#token=…`.
    pub reset_url: String,
    /// At most this many links per person in any hour; further requests send nothing
    /// (and answer the same), so the form cannot be used to flood someone's inbox.
    pub max_per_hour: u32,
}

impl ResetSettings {
    /// One-hour links to `reset_url`, at most three an hour.
    #[must_use]
    pub fn new(reset_url: impl Into<String>) -> Self {
        Self {
            expiry: Duration::hours(1),
            reset_url: reset_url.into(),
            max_per_hour: 3,
        }
    }
}

/// Storage of reset links.
#[async_trait]
pub trait PasswordResetStore: Send + Sync {
    /// Stores `reset` and commits `journal` (its email and audit records) in one transaction,
    /// unless the person already has `max_recent` links created after `since`: then nothing
    /// is stored and the answer is `false`. The count and the insert are serialized per person.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn create_password_reset(
        &self,
        reset: &PasswordReset,
        since: DateTime<Utc>,
        max_recent: u32,
        journal: Journal,
    ) -> Result<bool, TenancyError>;

    /// The link stored under `token_hash`, used or not.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn find_password_reset(
        &self,
        token_hash: &str,
    ) -> Result<Option<PasswordReset>, TenancyError>;

    /// In one transaction: uses the link (only while unused and unexpired at `now`), retires
    /// the person's other open links, sets `password_hash`, clears their login throttle, ends
    /// every live session of theirs and commits `records(ended)`. Returns the sessions ended.
    ///
    /// # Errors
    /// [`unusable`] when the link is unknown, used or expired (a concurrent use loses here),
    /// with nothing changed; [`TenancyError::Store`].
    async fn complete_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
        records: SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError>;
}

/// The refusal of a link that is unknown, used or expired: one answer for all three.
#[must_use]
pub fn unusable() -> TenancyError {
    TenancyError::Invalid(
        "this password reset link is unknown, used or expired; ask for a new one".into(),
    )
}

/// Asks for a reset link for `email`. When the address has an account (and fewer than
/// [`ResetSettings::max_per_hour`] links were made for it in the last hour), the link is
/// stored, emailed (account mail: no organization's outbox shows it) and recorded as
/// `auth.password_reset_requested` in each of the person's organizations, in one transaction.
/// Otherwise nothing happens. Either way the answer is the same.
///
/// # Errors
/// [`TenancyError::Invalid`] for something that is not an email address;
/// [`TenancyError::Store`].
pub async fn request<S: TenancyStore + PasswordResetStore + ?Sized>(
    store: &S,
    email: &str,
    settings: &ResetSettings,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let email = Email::parse(email)?;
    let Some((user, _)) = store.find_user_by_email(&email).await? else {
        return Ok(());
    };
    let token = security_policy::mint("axr", 32);
    let reset = PasswordReset {
        token_hash: token.hash.clone(),
        user: user.id,
        created_at: now,
        expires_at: now + settings.expiry,
        used_at: None,
    };
    let journal = crate::mfa::personal_journal(
        store,
        &user,
        AuditAction::PasswordResetRequested,
        request,
        now,
    )
    .await?
    .mail(reset_mail(&user, &reset, &token.secret, settings));
    store
        .create_password_reset(
            &reset,
            now - Duration::hours(1),
            settings.max_per_hour,
            journal,
        )
        .await?;
    Ok(())
}

fn reset_mail(user: &User, reset: &PasswordReset, token: &str, s: &ResetSettings) -> OutboundMail {
    OutboundMail {
        org: None,
        to: user.email.to_string(),
        subject: "Reset your Axie Studio password".into(),
        body: format!(
            "Hello {name},\n\n\
             Someone (we hope you) asked to reset the password of your Axie Studio account.\n\n\
             Set a new password:\n{url}#token={token}\n\n\
             Your reset token: {token}\n\n\
             The link works once and expires on {expires} (UTC). Using it signs you out \
             everywhere.\n\
             If you did not ask for this, ignore this email: your password stays as it is.\n",
            name = user.name,
            url = s.reset_url,
            expires = reset.expires_at.format("%Y-%m-%d %H:%M"),
        ),
        kind: "password_reset".into(),
    }
}

/// Sets a new password with a reset link's `token`: checked against the password policy of
/// every organization of the person, then, in one transaction, the link used, the password
/// replaced, every session ended and `auth.password_reset` recorded in each organization (with
/// `auth.session_revoked` when sessions ended). Returns how many sessions ended.
///
/// # Errors
/// [`unusable`] for an unknown, used or expired link; [`TenancyError::Password`] when the new
/// password breaks a policy (the link stays usable); [`TenancyError::Store`].
pub async fn complete<S: TenancyStore + MfaStore + PasswordResetStore + ?Sized>(
    store: &S,
    hasher: &security_policy::PasswordHasher,
    token: &str,
    new_password: &str,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    let token_hash = security_policy::hash_token(token.trim());
    let reset = store
        .find_password_reset(&token_hash)
        .await?
        .filter(|r| r.usable(now))
        .ok_or_else(unusable)?;
    let user = store.get_user(reset.user).await?.ok_or_else(unusable)?;
    let has_2fa = crate::mfa::enrolled(store, user.id).await?;
    let orgs = crate::security::check_against_policies(store, &user, new_password, has_2fa).await?;
    let hash = hasher
        .hash_off_thread(new_password)
        .await
        .map_err(|e| TenancyError::Invalid(e.to_string()))?;
    let records = |ended: u64| {
        let mut j = Journal::default();
        for org in &orgs {
            let event = |action| {
                audit::NewAuditEvent::new(
                    org.id,
                    now,
                    audit::Actor::user(user.id, user.name.clone()),
                    action,
                    audit::Target::new("user", user.id, user.name.clone()),
                )
                .with_context(request.clone())
            };
            j = j.and_record(event(AuditAction::PasswordReset));
            if ended > 0 {
                j = j.and_record(
                    event(AuditAction::SessionRevoked).with_metadata(
                        Metadata::from_value(
                            json!({"sessions": ended, "reason": "password_reset"}),
                        )
                        .unwrap_or_default(),
                    ),
                );
            }
        }
        j
    };
    store
        .complete_password_reset(&token_hash, &hash, now, &records)
        .await
}
