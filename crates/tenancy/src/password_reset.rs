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
use rbac_core::{OrgId, UserId};
use serde_json::json;

use crate::error::TenancyError;
use crate::mfa::{MfaStore, personal_record};
use crate::model::{Email, User};
use crate::store::TenancyStore;

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
    /// Seals the token in the queued mail ([`crate::mail_secrets`]).
    pub sealer: crate::mail_secrets::MailSealer,
}

impl ResetSettings {
    /// One-hour links to `reset_url`, at most three an hour.
    #[must_use]
    pub fn new(reset_url: impl Into<String>) -> Self {
        Self {
            expiry: Duration::hours(1),
            reset_url: reset_url.into(),
            max_per_hour: 3,
            sealer: crate::mail_secrets::MailSealer::none(),
        }
    }
}

/// The journal a reset step commits, made inside its transaction from the person's
/// organizations as they are then (and, for a completed reset, how many sessions it ended), so
/// an erasure or removal that commits first is never written into.
pub type ResetJournal<'a> = &'a (dyn Fn(&[OrgId], u64) -> Journal + Send + Sync);

/// Storage of reset links.
#[async_trait]
pub trait PasswordResetStore: Send + Sync {
    /// Under a lock on the person's account: unless their email is no longer `email` (an
    /// erasure or a change committed meanwhile) or they already have `max_recent` links
    /// created after `since`, stores `reset` and commits `journal(orgs, 0)` (its email and
    /// audit records) in one transaction, and answers `true`; otherwise stores nothing and
    /// answers `false`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn create_password_reset(
        &self,
        reset: &PasswordReset,
        email: &Email,
        since: DateTime<Utc>,
        max_recent: u32,
        journal: ResetJournal<'_>,
    ) -> Result<bool, TenancyError>;

    /// The link stored under `token_hash`, used or not.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn find_password_reset(
        &self,
        token_hash: &str,
    ) -> Result<Option<PasswordReset>, TenancyError>;

    /// In one transaction, under a lock on the person's account: uses the link (only while
    /// unused and unexpired at `now`), retires the person's other open links, sets
    /// `password_hash`, clears their login throttle, ends every live session of theirs and
    /// commits `records(orgs, ended)`. Returns the sessions ended. Every other replacement of
    /// the password hash (a change, an operator's reset, a SCIM write) and every change of the
    /// address retires the open links too.
    ///
    /// # Errors
    /// [`unusable`] when the link is unknown, used or expired (a concurrent use loses here),
    /// with nothing changed; [`TenancyError::Store`].
    async fn complete_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
        records: ResetJournal<'_>,
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
    // An erased account keeps a placeholder address that nobody receives.
    if email.as_str().ends_with(crate::privacy::ERASED_DOMAIN) {
        return Ok(());
    }
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
    let mail = reset_mail(&user, &reset, &token.secret, settings);
    // Anyone may ask: the records name the account as the one asked about, from the request's
    // address, as a failed login for it does.
    let journal = |orgs: &[OrgId], _: u64| {
        let mut j = Journal::default().mail(mail.clone());
        for org in orgs {
            j = j.and_record(
                personal_record(
                    *org,
                    &user,
                    AuditAction::PasswordResetRequested,
                    request,
                    now,
                )
                .with_metadata(
                    Metadata::from_value(json!({"signed_in": false})).unwrap_or_default(),
                ),
            );
        }
        j
    };
    store
        .create_password_reset(
            &reset,
            &user.email,
            now - Duration::hours(1),
            settings.max_per_hour,
            &journal,
        )
        .await?;
    Ok(())
}

fn reset_mail(user: &User, reset: &PasswordReset, token: &str, s: &ResetSettings) -> OutboundMail {
    let to = user.email.to_string();
    // The token as the queued mail keeps it: sealed, when the server has a key.
    let token = s.sealer.token(&to, token);
    OutboundMail {
        org: None,
        to,
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
    crate::security::check_against_policies(store, &user, new_password, has_2fa).await?;
    let hash = hasher
        .hash_off_thread(new_password)
        .await
        .map_err(|e| TenancyError::Store(crate::StoreError::msg(e.to_string())))?;
    let records = |orgs: &[OrgId], ended: u64| {
        let mut j = Journal::default();
        for org in orgs {
            let event = |action| personal_record(*org, &user, action, request, now);
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
