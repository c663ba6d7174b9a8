//! Two-factor authentication: TOTP enrolment and activation, recovery codes, SMS backup,
//! the second step of a login, and the organization requirement with its grace period.
//!
//! Secrets that must be recoverable (the TOTP secret) are stored encrypted with the
//! [`Cipher`]; recovery codes, SMS codes and login challenges are stored only as hashes.

use async_trait::async_trait;
use audit::{Actor, AuditAction, Journal, NewAuditEvent, Outcome, RequestContext, Target};
use chrono::{DateTime, Duration, Utc};
use rbac_core::{OrgId, UserId};
use security_policy::{
    Cipher, LoginThrottlePolicy, MfaError, MfaRequirement, MintedToken, SmsChallenge,
    ThrottleState, hash_token, locked_until, mint,
};
use serde::{Deserialize, Serialize};

use crate::accounts::{LoginOutcome, open_session};
use crate::error::{StoreError, TenancyError};
use crate::model::{Organization, User};
use crate::store::TenancyStore;

/// Token prefix of login challenges (the half-way state between password and second factor).
pub const CHALLENGE_PREFIX: &str = "axm";
/// Minutes a login challenge stays usable.
pub const CHALLENGE_MINUTES: i64 = 5;

/// The organization's 2FA rules, part of its security settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfaPolicy {
    /// Whether every member must use a second factor.
    pub required: bool,
    /// When the requirement was switched on (the grace period runs from here, or from joining).
    pub required_since: Option<DateTime<Utc>>,
    /// Days a member may work without a second factor once it is required.
    pub grace_days: u32,
    /// Methods members may use: `totp` always; `sms` as a backup when listed.
    pub methods: Vec<MfaMethod>,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        Self {
            required: false,
            required_since: None,
            grace_days: 7,
            methods: vec![MfaMethod::Totp, MfaMethod::Sms],
        }
    }
}

/// A second-factor method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// Authenticator app codes (RFC 6238).
    Totp,
    /// Codes by text message, as a backup to TOTP.
    Sms,
}

impl MfaMethod {
    /// The wire name (`totp`, `sms`), as serialized.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::Sms => "sms",
        }
    }

    /// Parses [`MfaMethod::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [MfaMethod::Totp, MfaMethod::Sms]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// What is stored about a person's second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaRecord {
    /// The person.
    pub user: UserId,
    /// The TOTP secret, encrypted.
    pub secret_enc: String,
    /// When TOTP was activated; `None` while enrolment is pending.
    pub enabled_at: Option<DateTime<Utc>>,
    /// The last TOTP time step accepted (codes of this step or earlier are refused).
    pub last_step: Option<i64>,
    /// The SMS backup number (E.164).
    pub phone: Option<String>,
    /// The SMS code waiting to be typed in.
    pub sms: Option<SmsChallenge>,
    /// Failed second-factor attempts.
    pub throttle: Option<ThrottleState>,
    /// Unused recovery codes left.
    pub recovery_codes_left: u32,
}

/// What [`MfaStore::reset_access`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessReset {
    /// Live sessions ended.
    pub sessions_ended: u64,
    /// Whether a second factor (enabled or being enrolled) was removed.
    pub second_factor_removed: bool,
}

/// The journal an access reset commits, made from what it did: see [`MfaStore::reset_access`].
pub type AccessResetJournal<'a> = &'a (dyn Fn(AccessReset) -> Journal + Send + Sync);

/// An Owner's or Admin's reset of a member's second factor ([`reset_member_factor`]): who asks
/// it in which organization. The store checks it again under the member's account lock and the
/// organization's ([`MfaStore::reset_access`] with [`check_member_reset`]), so that a join of
/// another organization, a deactivation, a role change or the author's own demotion committed
/// after the service looked cannot let the reset through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReset {
    /// The organization whose Owner or Admin resets.
    pub org: OrgId,
    /// Who resets.
    pub by: UserId,
    /// The member's address as the service read it, which the reset's notice is mailed to: a
    /// change of it committed since (SCIM, the person) refuses the reset.
    pub email: String,
}

/// What decides a [`MemberReset`], as read together (by the service, then by the store under
/// its locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetStanding {
    /// The author's role in the organization; `None` when they are not an active member.
    pub by_role: Option<rbac_core::OrgRole>,
    /// The member's role in the organization and whether they are active; `None` when they
    /// are not a member.
    pub member: Option<(rbac_core::OrgRole, bool)>,
    /// Whether the member belongs to another organization too.
    pub elsewhere: bool,
    /// Whether the member has an active second factor.
    pub enrolled: bool,
    /// Whether the member's account still has the address of [`MemberReset::email`].
    pub address_unchanged: bool,
}

/// The rules of an Owner's or Admin's reset of `member`'s second factor: only by the Owner or
/// an Admin, not of oneself nor of the Owner, an Admin's only by the Owner, not of a
/// deactivated member, not of one who belongs to another organization too (their account
/// guards that one as well), and only of an enrolled member.
///
/// # Errors
/// [`TenancyError::RoleRule`] (not an administrator, oneself, the Owner);
/// [`TenancyError::Forbidden`] (an Admin's factor by an Admin); [`TenancyError::NotFound`]
/// (not a member, no second factor); [`TenancyError::Conflict`] (deactivated, elsewhere too);
/// [`TenancyError::Changed`] (the member's address changed since the service read it).
pub fn check_member_reset(
    reset: &MemberReset,
    member: UserId,
    s: &ResetStanding,
) -> Result<(), TenancyError> {
    let by_role = s
        .by_role
        .filter(|r| r.is_admin())
        .ok_or(rbac_core::RoleRuleError::NotAnAdmin)?;
    let (role, active) = s.member.ok_or(TenancyError::NotFound("member"))?;
    // The rules of a removal: not oneself, not the Owner.
    rbac_core::check_removal_by(reset.by, by_role, member, role)?;
    if role == rbac_core::OrgRole::Admin && by_role != rbac_core::OrgRole::Owner {
        return Err(TenancyError::Forbidden(
            rbac_core::DenyReason::RoleLacksPermission { role: by_role },
        ));
    }
    if !active {
        return Err(TenancyError::Conflict(
            "this member is deactivated: reactivate them first".into(),
        ));
    }
    if s.elsewhere {
        return Err(TenancyError::Conflict(
            "this member belongs to another organization too: their second factor guards that one as well, so they reset it themselves with a recovery code, or the operator does".into(),
        ));
    }
    if !s.enrolled {
        return Err(TenancyError::NotFound("second factor"));
    }
    if !s.address_unchanged {
        return Err(TenancyError::Changed(
            "the member's email address changed meanwhile; try again".into(),
        ));
    }
    Ok(())
}

/// Storage of second factors and login challenges.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// The person's second-factor record.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn mfa(&self, user: UserId) -> Result<Option<MfaRecord>, TenancyError>;

    /// Which of `users` have an active second factor. The default asks [`MfaStore::mfa`] for
    /// each; adapters answer in one query.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn enrolled_among(&self, users: &[UserId]) -> Result<Vec<UserId>, TenancyError> {
        let mut out = Vec::new();
        for u in users {
            if self.mfa(*u).await?.is_some_and(|r| r.enabled_at.is_some()) {
                out.push(*u);
            }
        }
        Ok(out)
    }

    /// Starts (or restarts) TOTP enrolment with a new encrypted secret.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when TOTP is already active.
    async fn start_totp(&self, user: UserId, secret_enc: &str) -> Result<(), TenancyError>;

    /// Activates the pending TOTP secret, recording `step` as used and storing the recovery
    /// code hashes, if it is still pending, still the secret `secret_enc` the code was checked
    /// against (a setup started again meanwhile replaced it), and `step` is after the last used
    /// one. The second-factor attempt count ([`MfaStore::reserve_mfa_attempt`]) starts
    /// again from nothing, and every live session of `user` but `keep` ends (opened with the
    /// password alone, perhaps by whoever had it), with the journal `records` makes from how
    /// many ended, in one transaction. Returns how many sessions ended.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when already active, restarted, or the step was used
    /// meanwhile; nothing is changed then.
    #[allow(
        clippy::too_many_arguments,
        reason = "one atomic write and what it records"
    )]
    async fn activate_totp(
        &self,
        user: UserId,
        secret_enc: &str,
        step: i64,
        recovery_hashes: &[String],
        keep: Option<rbac_core::SessionId>,
        now: DateTime<Utc>,
        records: crate::SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError>;

    /// Records `step` as used if it is after the last used one; `false` when another request won.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, TenancyError>;

    /// Consumes an unused recovery code, with `journal` (its record) in the same transaction;
    /// `false`, and nothing written, when there is no such unused code.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError>;

    /// Replaces every recovery code.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] without an active second factor.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[String],
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Sets or clears the SMS backup number.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] without an active second factor.
    async fn set_phone(
        &self,
        user: UserId,
        phone: Option<&str>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Stores `challenge` as the pending SMS code if the pending one is still the one read,
    /// which expired (or expires) at `replacing` (`None`: none was pending); `false`, storing
    /// nothing, when another was stored or taken meanwhile. So of requests for a text sent at
    /// once, one stores its code and sends it, and the others are throttled.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn replace_sms_challenge(
        &self,
        user: UserId,
        replacing: Option<DateTime<Utc>>,
        challenge: &SmsChallenge,
    ) -> Result<bool, TenancyError>;

    /// Consumes the pending SMS code if its hash is still `code_hash`; `false` otherwise.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn take_sms_challenge(&self, user: UserId, code_hash: &str)
    -> Result<bool, TenancyError>;

    /// Counts an attempt at `user`'s second factor before it is checked, or refuses it while
    /// the record is locked, under a lock on the record: attempts sent at once each count
    /// before any is checked, so no more than the throttle's limit are ever checked in its
    /// window (a correct one then clears the count, [`MfaStore::set_mfa_throttle`]). The state
    /// after it is [`security_policy::after_failure`] of the one stored.
    ///
    /// # Errors
    /// [`TenancyError::Throttled`] while locked; [`TenancyError::NotFound`] without a second
    /// factor; [`TenancyError::Store`].
    async fn reserve_mfa_attempt(
        &self,
        user: UserId,
        policy: &LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError>;

    /// Counts one more wrong second factor of `user`, committing `journal` (the failure's
    /// records) with it, and returns the new state: [`security_policy::after_failure`] of the
    /// state stored, read in the same transaction under a lock on the person's second-factor
    /// record, so that wrong codes arriving at once each count.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] without a second factor; [`TenancyError::Store`].
    async fn count_mfa_failure(
        &self,
        user: UserId,
        policy: &LoginThrottlePolicy,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<ThrottleState, TenancyError>;

    /// Replaces (or clears) the second-factor throttling state, with `journal` (the failed
    /// attempt's record) in the same transaction.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn set_mfa_throttle(
        &self,
        user: UserId,
        state: Option<&ThrottleState>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Removes the second factor and its recovery codes.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when there is none.
    async fn disable_mfa(&self, user: UserId, journal: Journal) -> Result<(), TenancyError>;

    /// A reset of `user`'s access, in one transaction with the journal `records` makes from
    /// what was done: the password hash replaced, the login throttle cleared, every live
    /// session ended, and the second factor with its recovery codes removed if there is one. A
    /// crash leaves either all of it or none of it. With `by` (an Owner's or Admin's reset of a
    /// member's factor, not the operator's), first, under the account's lock, then the
    /// organization's, then the second factor's, the [`ResetStanding`] as it is now (the
    /// member's address compared as the account reads back) must pass [`check_member_reset`].
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for an unknown user; what [`check_member_reset`] refuses;
    /// nothing is changed then.
    async fn reset_access(
        &self,
        user: UserId,
        hash: &str,
        by: Option<MemberReset>,
        now: DateTime<Utc>,
        records: AccessResetJournal<'_>,
    ) -> Result<AccessReset, TenancyError>;

    /// Stores a login challenge by hash.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn save_login_challenge(
        &self,
        hash: &str,
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TenancyError>;

    /// A login challenge: whose, and until when.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn login_challenge(
        &self,
        hash: &str,
    ) -> Result<Option<(UserId, DateTime<Utc>)>, TenancyError>;

    /// Consumes a login challenge; `false` when it was already consumed.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn consume_login_challenge(&self, hash: &str) -> Result<bool, TenancyError>;
}

/// Sends text messages (SMS codes).
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends `text` to `to` (E.164).
    ///
    /// # Errors
    /// [`StoreError`] when the message could not be handed over.
    async fn send(&self, to: &str, text: &str) -> Result<(), StoreError>;
}

/// Records of a personal security event, one in each of the person's organizations.
pub(crate) async fn personal_journal<S: TenancyStore + ?Sized>(
    store: &S,
    user: &User,
    action: AuditAction,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Journal, TenancyError> {
    personal_journal_with(store, user, action, request, now, |r| r).await
}

/// A record of `action` by `user` in each of their organizations, with `adjust` applied.
pub(crate) async fn personal_journal_with<S: TenancyStore + ?Sized>(
    store: &S,
    user: &User,
    action: AuditAction,
    request: &RequestContext,
    now: DateTime<Utc>,
    adjust: impl Fn(NewAuditEvent) -> NewAuditEvent,
) -> Result<Journal, TenancyError> {
    let mut j = Journal::default();
    for m in store.memberships(user.id).await? {
        j = j.and_record(adjust(personal_record(m.org, user, action, request, now)));
    }
    Ok(j)
}

/// A record in `org` of `action` by `user` about their own account, with the request's
/// context.
pub(crate) fn personal_record(
    org: OrgId,
    user: &User,
    action: AuditAction,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> NewAuditEvent {
    NewAuditEvent::new(
        org,
        now,
        Actor::user(user.id, user.name.clone()),
        action,
        Target::new("user", user.id, user.name.clone()),
    )
    .with_context(request.clone())
}

fn mfa_err(e: MfaError) -> TenancyError {
    match e {
        MfaError::BadSecret => TenancyError::Store(StoreError::msg("stored TOTP secret unusable")),
        other => TenancyError::Invalid(other.to_string()),
    }
}

/// What a person's TOTP secret is bound to when encrypted ([`Cipher::encrypt_bound`]): a
/// secret copied onto another person's row does not open there.
#[must_use]
pub fn totp_secret_context(user: UserId) -> Vec<u8> {
    format!("axie/totp/{user}").into_bytes()
}

fn decrypt(cipher: &Cipher, user: UserId, enc: &str) -> Result<Vec<u8>, TenancyError> {
    cipher
        .decrypt_bound(enc, &totp_secret_context(user))
        .map_err(|_| TenancyError::Store(StoreError::msg("TOTP secret cannot be decrypted")))
}

/// A started TOTP enrolment: what the authenticator app needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The secret in base32 (for typing in).
    pub secret_base32: String,
    /// The `otpauth://` URI (for the QR code).
    pub otpauth_uri: String,
}

/// Starts TOTP enrolment, confirmed with the current password (so that a stolen session
/// cannot tie the account to the thief's authenticator and lock its person out): a new 160-bit
/// secret, stored encrypted, pending until a valid code activates it. A wrong password is
/// recorded and counts towards the sign-in throttle, as when turning 2FA off.
///
/// # Errors
/// [`TenancyError::BadCredentials`] for a wrong password, [`TenancyError::Throttled`];
/// [`TenancyError::Conflict`] when TOTP is already active.
#[allow(
    clippy::too_many_arguments,
    reason = "the enrolment's parts, as they arrive"
)]
pub async fn begin_totp<S: TenancyStore + MfaStore + ?Sized>(
    store: &S,
    cipher: &Cipher,
    hasher: &security_policy::PasswordHasher,
    user: &User,
    password: &str,
    issuer: &str,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<TotpEnrolment, TenancyError> {
    crate::security::confirm_password(
        store,
        hasher,
        user,
        password,
        AuditAction::MfaEnabled,
        request,
        now,
    )
    .await?;
    let secret = security_policy::new_totp_secret();
    let enc = cipher
        .encrypt_bound(&secret, &totp_secret_context(user.id))
        .map_err(|e| TenancyError::Store(StoreError::new(e)))?;
    store.start_totp(user.id, &enc).await?;
    Ok(TotpEnrolment {
        secret_base32: security_policy::secret_base32(&secret),
        otpauth_uri: security_policy::otpauth_uri(&secret, issuer, user.email.as_str())
            .map_err(mfa_err)?,
    })
}

/// Activates TOTP with a valid code; returns the recovery codes, shown this once, and how many
/// of the person's other sessions ended: every session but `current` (the one activating, if
/// it is a session) was opened with the password alone, perhaps by whoever phished it, and
/// would otherwise pass as the second factor's from now on.
///
/// Codes are counted before they are checked, as at sign-in ([`LoginThrottlePolicy`]): a
/// session alone (a stolen one, say, held out of an organization that requires 2FA) cannot
/// guess its way through the million codes to an active factor and its recovery codes. A
/// wrong code and a refusal by the throttle are recorded (`auth.mfa_enabled`, failed,
/// `bad_second_factor`) in each of the person's organizations; activation clears the count.
///
/// # Errors
/// [`TenancyError::NotFound`] without a pending enrolment; [`TenancyError::Invalid`] for a
/// wrong code; [`TenancyError::Throttled`] after too many; [`TenancyError::Conflict`] when
/// already active.
pub async fn activate_totp<S: TenancyStore + MfaStore + audit::AuditStore + ?Sized>(
    store: &S,
    cipher: &Cipher,
    user: &User,
    current: Option<rbac_core::SessionId>,
    code: &str,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, u64), TenancyError> {
    let rec = store
        .mfa(user.id)
        .await?
        .ok_or(TenancyError::NotFound("pending TOTP enrolment"))?;
    if rec.enabled_at.is_some() {
        return Err(TenancyError::Conflict(
            "two-factor authentication is already on".into(),
        ));
    }
    let secret = decrypt(cipher, user.id, &rec.secret_enc)?;
    let failed = || async {
        personal_journal_with(store, user, AuditAction::MfaEnabled, request, now, |r| {
            r.with_outcome(Outcome::Failure {
                reason: "bad_second_factor".into(),
            })
        })
        .await
    };
    if let Err(e) = store
        .reserve_mfa_attempt(user.id, &LoginThrottlePolicy::default(), now)
        .await
    {
        if matches!(e, TenancyError::Throttled(_)) {
            store.append(failed().await?).await?;
        }
        return Err(e);
    }
    let step = match security_policy::verify_totp(&secret, code, now, rec.last_step) {
        Ok(step) => step,
        Err(e @ MfaError::BadSecret) => return Err(mfa_err(e)),
        Err(e) => {
            store.append(failed().await?).await?;
            return Err(mfa_err(e));
        }
    };
    let codes = security_policy::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| c.1.clone()).collect();
    let orgs = store.memberships(user.id).await?;
    let records = |ended: u64| {
        let mut j = Journal::default();
        for m in &orgs {
            let event = |action| personal_record(m.org, user, action, request, now);
            j = j.and_record(event(AuditAction::MfaEnabled));
            if ended > 0 {
                j = j.and_record(
                    event(AuditAction::SessionRevoked).with_metadata(
                        audit::Metadata::from_value(
                            serde_json::json!({"sessions": ended, "reason": "mfa_enabled"}),
                        )
                        .unwrap_or_default(),
                    ),
                );
            }
        }
        j
    };
    let ended = store
        .activate_totp(
            user.id,
            &rec.secret_enc,
            step,
            &hashes,
            current,
            now,
            &records,
        )
        .await?;
    Ok((codes.into_iter().map(|c| c.0).collect(), ended))
}

/// A second factor as typed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactor {
    /// A code from the authenticator app.
    Totp(String),
    /// A recovery code.
    Recovery(String),
    /// A code received by SMS.
    Sms(String),
}

/// The records of a second-factor check.
#[derive(Debug)]
struct FactorRecords {
    /// Written after a wrong code (the attempt was counted when it was reserved) or one the
    /// throttle refused.
    failed: Journal,
    /// With the use of a recovery code.
    recovery_used: Journal,
}

/// The records of a check of `factor`: `failed` (outcome `bad_second_factor`) for a wrong or
/// refused code, and a recovery code's use, which commits with its consumption; with the
/// recovery codes left after that use.
async fn factor_records<S: TenancyStore + MfaStore + ?Sized>(
    store: &S,
    user: &User,
    factor: &SecondFactor,
    failed: AuditAction,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<(FactorRecords, Option<u32>), TenancyError> {
    // A refused sign-in is a failure; a refused change behind the second factor is a denial,
    // which searches and the denial count find with the others.
    let reason = "bad_second_factor".to_owned();
    let outcome = if failed == AuditAction::AccessDenied {
        Outcome::Denied { reason }
    } else {
        Outcome::Failure { reason }
    };
    let failed = personal_journal_with(store, user, failed, request, now, |r| {
        r.with_outcome(outcome.clone())
    })
    .await?;
    let mut left = None;
    let mut recovery_used = Journal::default();
    if matches!(factor, SecondFactor::Recovery(_)) {
        let after = store
            .mfa(user.id)
            .await?
            .map_or(0, |r| r.recovery_codes_left.saturating_sub(1));
        let meta = audit::Metadata::from_value(serde_json::json!({ "left": after }))?;
        recovery_used = personal_journal_with(
            store,
            user,
            AuditAction::RecoveryCodeUsed,
            request,
            now,
            |r| r.with_metadata(meta.clone()),
        )
        .await?;
        left = Some(after);
    }
    Ok((
        FactorRecords {
            failed,
            recovery_used,
        },
        left,
    ))
}

/// What [`check_factor`] found.
enum FactorCheck {
    /// The factor is right (`recovery`: it was a recovery code, now used up).
    Passed { recovery: bool },
    /// The factor is wrong: the attempt is counted; its record is the caller's to write.
    Wrong,
}

/// The answer to a wrong second factor.
fn wrong_factor() -> TenancyError {
    TenancyError::Invalid("the code is wrong, expired or already used".into())
}

/// Checks a second factor for an enrolled person, with throttling and replay protection.
async fn check_factor<S: MfaStore + ?Sized>(
    store: &S,
    cipher: &Cipher,
    user: UserId,
    factor: &SecondFactor,
    now: DateTime<Utc>,
    recovery_used: Journal,
) -> Result<FactorCheck, TenancyError> {
    let rec = store
        .mfa(user)
        .await?
        .filter(|r| r.enabled_at.is_some())
        .ok_or(TenancyError::NotFound("second factor"))?;
    // Counted before it is checked (refused while locked): codes sent all at once cannot have
    // more than the limit checked.
    store
        .reserve_mfa_attempt(user, &LoginThrottlePolicy::default(), now)
        .await?;
    let ok = match factor {
        SecondFactor::Totp(code) => {
            let secret = decrypt(cipher, user, &rec.secret_enc)?;
            match security_policy::verify_totp(&secret, code, now, rec.last_step) {
                Ok(step) => store.use_totp_step(user, step).await?,
                Err(MfaError::BadSecret) => return Err(mfa_err(MfaError::BadSecret)),
                Err(_) => false,
            }
        }
        SecondFactor::Recovery(code) => {
            let hash = security_policy::recovery_code_hash(code);
            store.use_recovery_code(user, &hash, recovery_used).await?
        }
        SecondFactor::Sms(code) => match &rec.sms {
            Some(ch)
                if security_policy::sms_code_matches(cipher, ch, &user.to_string(), code, now) =>
            {
                store.take_sms_challenge(user, &ch.code_hash).await?
            }
            _ => false,
        },
    };
    if !ok {
        // Counted already, when it was reserved: the caller writes only its record.
        return Ok(FactorCheck::Wrong);
    }
    store
        .set_mfa_throttle(user, None, Journal::default())
        .await?;
    Ok(FactorCheck::Passed {
        recovery: matches!(factor, SecondFactor::Recovery(_)),
    })
}

/// Issues the challenge that stands between a correct password and a session for a person
/// with a second factor.
///
/// # Errors
/// [`TenancyError::Store`].
pub async fn issue_challenge<S: MfaStore + ?Sized>(
    store: &S,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<MintedToken, TenancyError> {
    let token = mint(CHALLENGE_PREFIX, 32);
    store
        .save_login_challenge(
            &token.hash,
            user,
            now + Duration::minutes(CHALLENGE_MINUTES),
        )
        .await?;
    Ok(token)
}

async fn challenge_user<S: TenancyStore + MfaStore + ?Sized>(
    store: &S,
    challenge: &str,
    now: DateTime<Utc>,
) -> Result<User, TenancyError> {
    let (user, expires) = store
        .login_challenge(&hash_token(challenge))
        .await?
        .ok_or(TenancyError::Unauthenticated)?;
    if now >= expires {
        return Err(TenancyError::Unauthenticated);
    }
    store
        .get_user(user)
        .await?
        .ok_or(TenancyError::Unauthenticated)
}

/// Second step of a login: the challenge from the first step and a second factor open a
/// session (a new session id; nothing from before the login is reused).
///
/// # Errors
/// [`TenancyError::Unauthenticated`] for an unknown, used or expired challenge;
/// [`TenancyError::Invalid`] for a wrong, expired or replayed code (audited as a failed login);
/// [`TenancyError::Throttled`] after too many wrong codes, or while `address_locked_until`
/// (the caller's per-address verdict, as for [`crate::accounts::login`]) lasts;
/// [`TenancyError::IpNotAllowed`] as for [`crate::accounts::login`];
/// [`TenancyError::Deactivated`] when every membership of the person was deactivated since
/// the first step (the challenge is spent).
#[allow(
    clippy::too_many_arguments,
    reason = "the login's parts, as they arrive"
)]
pub async fn complete_login<S: TenancyStore + MfaStore + ?Sized>(
    store: &S,
    audit_store: &dyn audit::AuditStore,
    cipher: &Cipher,
    challenge: &str,
    factor: &SecondFactor,
    address_locked_until: Option<DateTime<Utc>>,
    request: RequestContext,
    now: DateTime<Utc>,
) -> Result<LoginOutcome, TenancyError> {
    // The first step's address throttle holds here too, before the challenge is even looked
    // at (an unknown challenge gets the same answer); a known one's person has it recorded.
    if let Some(until) = address_locked_until.filter(|u| now < *u) {
        if let Ok(user) = challenge_user(store, challenge, now).await {
            let refused =
                personal_journal_with(store, &user, AuditAction::LoginFailed, &request, now, |r| {
                    r.with_outcome(Outcome::Failure {
                        reason: "address_throttled".into(),
                    })
                })
                .await?;
            audit_store.append(refused).await?;
        }
        return Err(TenancyError::Throttled(until));
    }
    let user = challenge_user(store, challenge, now).await?;
    let (
        FactorRecords {
            failed,
            recovery_used,
        },
        left,
    ) = factor_records(
        store,
        &user,
        factor,
        AuditAction::LoginFailed,
        &request,
        now,
    )
    .await?;
    let memberships = store.caller_memberships(user.id).await?;
    // Deactivated everywhere since the first step: no session, as at the first step, and the
    // challenge is spent (a reactivation does not revive it).
    if !memberships.is_empty() && memberships.iter().all(|m| m.deactivated_at.is_some()) {
        store
            .consume_login_challenge(&hash_token(challenge))
            .await?;
        let refused =
            personal_journal_with(store, &user, AuditAction::LoginFailed, &request, now, |r| {
                r.with_outcome(Outcome::Failure {
                    reason: "deactivated".into(),
                })
            })
            .await?;
        audit_store.append(refused).await?;
        return Err(TenancyError::Deactivated);
    }
    // No organization of theirs admits the address: refused before the code or the challenge
    // is used, and recorded as at the first step.
    if let Err(e) = crate::accounts::admitted(&memberships, &request.ip) {
        let refused =
            personal_journal_with(store, &user, AuditAction::LoginFailed, &request, now, |r| {
                r.with_outcome(Outcome::Failure {
                    reason: "ip_not_allowed".into(),
                })
            })
            .await?;
        audit_store.append(refused).await?;
        return Err(e);
    }
    let used_recovery = match check_factor(store, cipher, user.id, factor, now, recovery_used).await
    {
        Ok(FactorCheck::Passed { recovery }) => recovery,
        // Counted when it was reserved, or refused by the throttle before that: the record
        // goes alone.
        Ok(FactorCheck::Wrong) => {
            audit_store.append(failed).await?;
            return Err(wrong_factor());
        }
        Err(e @ TenancyError::Throttled(_)) => {
            audit_store.append(failed).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if !store
        .consume_login_challenge(&hash_token(challenge))
        .await?
    {
        return Err(TenancyError::Unauthenticated);
    }
    let mut outcome = open_session(
        store,
        &user,
        crate::SessionProof::SecondFactor,
        request.clone(),
        now,
    )
    .await?;
    if used_recovery {
        outcome.recovery_codes_left = left;
    }
    Ok(outcome)
}

/// Seconds before a person may be sent another sign-in code by SMS.
pub const SMS_RESEND_SECONDS: i64 = 60;

/// Sends an SMS code for a pending login challenge to the person's backup number, at most one
/// every [`SMS_RESEND_SECONDS`] while the last code is unused. The code is kept as a digest
/// keyed by `cipher`, the server's, with which the second step checks it.
///
/// # Errors
/// [`TenancyError::Throttled`] within a minute of the last text; [`TenancyError::Deactivated`]
/// when every membership of the person was deactivated since the first step;
/// [`TenancyError::Unauthenticated`] for a bad challenge; [`TenancyError::NotFound`] without
/// a backup number; [`TenancyError::Forbidden`]-like refusals as `Invalid` when an organization
/// of theirs does not allow SMS.
pub async fn send_login_sms<S: TenancyStore + MfaStore + ?Sized>(
    store: &S,
    sms: &dyn SmsSender,
    cipher: &Cipher,
    challenge: &str,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let user = challenge_user(store, challenge, now).await?;
    let memberships = store.memberships(user.id).await?;
    // Deactivated everywhere since the first step: the second would be refused, so no text.
    if !memberships.is_empty() && memberships.iter().all(|m| !m.active) {
        return Err(TenancyError::Deactivated);
    }
    for m in memberships {
        let org = store.get_org(m.org).await?;
        if !org.security.mfa.methods.contains(&MfaMethod::Sms) {
            return Err(TenancyError::Invalid(format!(
                "{} does not allow SMS codes",
                org.name
            )));
        }
    }
    let rec = store
        .mfa(user.id)
        .await?
        .filter(|r| r.enabled_at.is_some())
        .ok_or(TenancyError::NotFound("second factor"))?;
    if let Some(until) = locked_until(rec.throttle.as_ref(), now) {
        return Err(TenancyError::Throttled(until));
    }
    // One text a minute at most: each request would otherwise send one (a cost to the
    // operator, and anyone who knows the password could flood the person's phone).
    if let Some(last) = &rec.sms {
        let sent_at = last.expires_at - Duration::minutes(security_policy::SMS_CODE_MINUTES);
        let next = sent_at + Duration::seconds(SMS_RESEND_SECONDS);
        if now < next {
            return Err(TenancyError::Throttled(next));
        }
    }
    let phone = rec
        .phone
        .ok_or(TenancyError::NotFound("SMS backup number"))?;
    let (code, ch) = security_policy::new_sms_code(cipher, &user.id.to_string(), now);
    // Stored only over the pending code read above: of requests sent at once, one sends.
    if !store
        .replace_sms_challenge(user.id, rec.sms.as_ref().map(|s| s.expires_at), &ch)
        .await?
    {
        return Err(TenancyError::Throttled(
            now + Duration::seconds(SMS_RESEND_SECONDS),
        ));
    }
    sms.send(
        &phone,
        &format!("Your Axie Studio sign-in code is {code}. It expires in 5 minutes."),
    )
    .await?;
    Ok(())
}

/// Checks `+` followed by 8 to 15 digits (E.164).
///
/// # Errors
/// [`TenancyError::Invalid`].
pub fn valid_phone(s: &str) -> Result<String, TenancyError> {
    let t: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = t.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t)
    } else {
        Err(TenancyError::Invalid(format!(
            "`{s}` is not a phone number in international format (+15551234567)"
        )))
    }
}

/// Actions on one's own second factor that need a current code.
#[derive(Clone, PartialEq, Eq)]
pub enum Change {
    /// Turn it off, confirmed with the current password, which must then meet every password
    /// policy of the person's organizations without the shorter minimum a second factor allows.
    Disable {
        /// The current password.
        password: String,
    },
    /// Replace the recovery codes, confirmed with the current password (whoever holds a
    /// session and the authenticator, but not the password, gets no codes to keep).
    RegenerateRecoveryCodes {
        /// The current password.
        password: String,
    },
    /// Set or clear the SMS backup number, confirmed with the current password (a session and
    /// the authenticator alone cannot add a way in of their own).
    SetPhone {
        /// The number (`None` clears it).
        phone: Option<String>,
        /// The current password.
        password: String,
    },
}

impl Change {
    /// The current password confirming the change, and the action its refusal is recorded as.
    fn confirmation(&self) -> (&str, AuditAction) {
        match self {
            Change::Disable { password } => (password, AuditAction::MfaDisabled),
            Change::RegenerateRecoveryCodes { password } => {
                (password, AuditAction::RecoveryCodesRegenerated)
            }
            Change::SetPhone { password, .. } => (password, AuditAction::MfaPhoneChanged),
        }
    }
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Disable { .. } => f.write_str("Disable { password: … }"),
            Change::RegenerateRecoveryCodes { .. } => {
                f.write_str("RegenerateRecoveryCodes { password: … }")
            }
            Change::SetPhone { phone, .. } => f
                .debug_struct("SetPhone")
                .field("phone", phone)
                .field("password", &"…")
                .finish(),
        }
    }
}

/// Changes one's own second factor after proving it with a current code and the current
/// password (a wrong one is recorded as a failed attempt of the change and counts toward the
/// sign-in throttle). Turning it off is refused while an organization of theirs requires it.
///
/// # Errors
/// [`TenancyError::Invalid`] (wrong code, bad number), [`TenancyError::Conflict`] (required),
/// [`TenancyError::NotFound`] (not enrolled).
#[allow(
    clippy::too_many_arguments,
    reason = "the change's parts, as they arrive"
)]
pub async fn change<S: TenancyStore + MfaStore + audit::AuditStore + ?Sized>(
    store: &S,
    cipher: &Cipher,
    hasher: &security_policy::PasswordHasher,
    user: &User,
    proof: &SecondFactor,
    what: Change,
    request: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Option<Vec<String>>, TenancyError> {
    if let Change::Disable { .. } = &what {
        for m in store.memberships(user.id).await? {
            let org = store.get_org(m.org).await?;
            if org.security.mfa.required {
                return Err(TenancyError::Conflict(format!(
                    "{} requires two-factor authentication",
                    org.name
                )));
            }
        }
    }
    let (password, action) = what.confirmation();
    crate::security::confirm_password(store, hasher, user, password, action, request, now).await?;
    if let Change::Disable { password } = &what {
        // A password allowed only because of the second factor would be left guarding the
        // account alone.
        crate::security::check_against_policies(store, user, password, false)
            .await
            .map_err(|e| match e {
                TenancyError::Password(p) => TenancyError::Conflict(format!(
                    "your password is allowed only with two-factor authentication ({p}); \
                     change it first"
                )),
                other => other,
            })?;
    }
    let phone = match &what {
        Change::SetPhone { phone: Some(p), .. } => Some(valid_phone(p)?),
        _ => None,
    };
    // A wrong or refused proof is a denied attempt, recorded; a recovery code given as proof
    // is used up, with its record.
    let (
        FactorRecords {
            failed: denied,
            recovery_used,
        },
        _,
    ) = factor_records(store, user, proof, AuditAction::AccessDenied, request, now).await?;
    match check_factor(store, cipher, user.id, proof, now, recovery_used).await {
        Ok(FactorCheck::Passed { .. }) => {}
        Ok(FactorCheck::Wrong) => {
            store.append(denied).await?;
            return Err(wrong_factor());
        }
        Err(e) => {
            if matches!(e, TenancyError::Throttled(_)) {
                store.append(denied).await?;
            }
            return Err(e);
        }
    }
    match what {
        Change::Disable { .. } => {
            let j = personal_journal(store, user, AuditAction::MfaDisabled, request, now).await?;
            store.disable_mfa(user.id, j).await?;
            Ok(None)
        }
        Change::RegenerateRecoveryCodes { .. } => {
            let codes = security_policy::new_recovery_codes();
            let hashes: Vec<String> = codes.iter().map(|c| c.1.clone()).collect();
            let j = personal_journal(
                store,
                user,
                AuditAction::RecoveryCodesRegenerated,
                request,
                now,
            )
            .await?;
            store.replace_recovery_codes(user.id, &hashes, j).await?;
            Ok(Some(codes.into_iter().map(|c| c.0).collect()))
        }
        Change::SetPhone { .. } => {
            let j =
                personal_journal(store, user, AuditAction::MfaPhoneChanged, request, now).await?;
            store.set_phone(user.id, phone.as_deref(), j).await?;
            Ok(None)
        }
    }
}

/// The Owner's or an Admin's reset of a member's lost second factor (a phone lost with its
/// authenticator and the recovery codes). In one transaction, as the operator's access reset
/// (`MfaStore::reset_access`): the factor, its recovery codes and backup number are removed,
/// every session of the member's ends (one may be on the lost phone), and their password is
/// replaced by one nobody knows, so that they set a new one through "forgot password", which
/// proves their mailbox, and enrol again (a password allowed only with a second factor, the
/// policy's shorter minimum, never guards the account alone). Recorded as `auth.mfa_disabled`
/// by the caller (`reset_by_admin`), and the member is told by mail, in the same transaction:
/// a reset they did not ask for does not go unnoticed.
///
/// Who may: a person with a session (not an API key), the Owner or an Admin; not for oneself,
/// not for the Owner (the operator's `reset-owner`), an Admin's only by the Owner, not for a
/// deactivated member; and the member must belong to this organization alone (their account
/// guards their other organizations too, which this one's admins do not answer for)
/// ([`check_member_reset`], checked when the request is made and again by the store under the
/// account's and the organization's locks).
///
/// # Errors
/// [`TenancyError::Forbidden`] (an API key, an Admin's factor by an Admin),
/// [`TenancyError::RoleRule`] (oneself, the Owner); [`TenancyError::NotFound`] for a
/// non-member, or a member with no second factor; [`TenancyError::Conflict`] for a deactivated
/// member, or one who belongs to another organization too; [`TenancyError::Changed`] when the
/// member's address changed meanwhile (the notice would go to the old one).
pub async fn reset_member_factor<S: TenancyStore + MfaStore + ?Sized>(
    store: &S,
    hasher: &security_policy::PasswordHasher,
    caller: &crate::Caller,
    member: UserId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    caller.check_org(rbac_core::Permission::RemoveMembers)?;
    if caller.api_key.is_some() || caller.scim_token.is_some() {
        return Err(TenancyError::Forbidden(
            rbac_core::DenyReason::InteractiveOnly,
        ));
    }
    let m = store
        .get_member(caller.org.id, member)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    let reset = MemberReset {
        org: caller.org.id,
        by: caller.user.id,
        email: m.user.email.as_str().to_owned(),
    };
    // Checked now, so that a refused reset hashes nothing, and again by the store under its
    // locks, so that nothing committed meanwhile lets it through.
    let standing = ResetStanding {
        by_role: Some(caller.subject.role),
        member: Some((m.role, m.deactivated_at.is_none())),
        elsewhere: store
            .memberships(member)
            .await?
            .iter()
            .any(|x| x.org != caller.org.id),
        enrolled: enrolled(store, member).await?,
        address_unchanged: true,
    };
    check_member_reset(&reset, member, &standing)?;
    // A password nobody knows: the member sets theirs again through "forgot password".
    let unknown = hasher
        .hash_off_thread(&security_policy::mint("reset", 32).secret)
        .await
        .map_err(|e| TenancyError::Store(StoreError::msg(e.to_string())))?;
    let mail = audit::OutboundMail {
        org: Some(caller.org.id),
        to: m.user.email.as_str().to_owned(),
        subject: format!(
            "Your two-factor authentication for {} was reset",
            caller.org.name
        ),
        body: format!(
            "Hello {name},\n\n{by} reset the sign-in of your {org} account at {at} UTC: your second factor (authenticator app, recovery codes and backup number) was removed, your sessions were ended and your password was cleared.\n\nSet a new password with \"Forgot password\" on the sign-in page, then set up two-factor authentication again. If you did not ask for this, tell your organization's Owner at once.\n",
            name = m.user.name,
            by = caller.user.name,
            org = caller.org.name,
            at = now.format("%Y-%m-%d %H:%M"),
        ),
        kind: "mfa_reset".into(),
    };
    let records = |done: AccessReset| {
        let record = caller
            .audit(
                now,
                AuditAction::MfaDisabled,
                Target::new("member", member, m.user.name.clone()),
            )
            .with_metadata(
                audit::Metadata::from_value(serde_json::json!({
                    "reason": "reset_by_admin", "sessions_ended": done.sessions_ended,
                    "second_factor_removed": done.second_factor_removed,
                }))
                .unwrap_or_default(),
            );
        Journal::record(record).mail(mail.clone())
    };
    store
        .reset_access(member, &unknown, Some(reset), now, &records)
        .await?;
    Ok(())
}

/// Whether `user` has an active second factor.
///
/// # Errors
/// [`TenancyError::Store`].
pub async fn enrolled<S: MfaStore + ?Sized>(store: &S, user: UserId) -> Result<bool, TenancyError> {
    Ok(store
        .mfa(user)
        .await?
        .is_some_and(|r| r.enabled_at.is_some()))
}

/// The organization's 2FA requirement for a member who joined at `joined_at`.
#[must_use]
pub fn requirement(
    org: &Organization,
    joined_at: DateTime<Utc>,
    enrolled: bool,
    now: DateTime<Utc>,
) -> MfaRequirement {
    let p = &org.security.mfa;
    // A requirement without its start (settings written by hand or by an older version) is
    // in force since the epoch: a missing date must not switch the requirement off.
    security_policy::mfa_requirement(
        p.required
            .then(|| p.required_since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
        p.grace_days,
        joined_at,
        enrolled,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::{MfaPolicy, requirement};
    use crate::{CompanyProfile, Organization, SecuritySettings};
    use chrono::{DateTime, Duration, Utc};
    use security_policy::MfaRequirement;

    #[test]
    fn a_members_factor_is_reset_by_the_owner_or_an_admin_of_theirs_alone() {
        use super::{MemberReset, ResetStanding, check_member_reset};
        use crate::TenancyError;
        use rbac_core::{OrgId, OrgRole, RoleRuleError, UserId};
        let (by, member) = (UserId::new(), UserId::new());
        let reset = MemberReset {
            org: OrgId::new(),
            by,
            email: "m@example.org".into(),
        };
        let ok = ResetStanding {
            by_role: Some(OrgRole::Admin),
            member: Some((OrgRole::User, true)),
            elsewhere: false,
            enrolled: true,
            address_unchanged: true,
        };
        let check = |s: ResetStanding| check_member_reset(&reset, member, &s);
        assert!(check(ok).is_ok());
        assert!(
            check(ResetStanding {
                by_role: Some(OrgRole::Owner),
                member: Some((OrgRole::Admin, true)),
                ..ok
            })
            .is_ok(),
            "the Owner resets an Admin's"
        );
        for (standing, refused) in [
            (
                ResetStanding {
                    by_role: None,
                    ..ok
                },
                "author no longer a member",
            ),
            (
                ResetStanding {
                    by_role: Some(OrgRole::User),
                    ..ok
                },
                "author a User",
            ),
        ] {
            assert!(
                matches!(
                    check(standing),
                    Err(TenancyError::RoleRule(RoleRuleError::NotAnAdmin))
                ),
                "{refused}"
            );
        }
        assert!(matches!(
            check(ResetStanding {
                member: Some((OrgRole::Owner, true)),
                ..ok
            }),
            Err(TenancyError::RoleRule(RoleRuleError::TargetIsOwner))
        ));
        assert!(matches!(
            check_member_reset(&reset, by, &ok),
            Err(TenancyError::RoleRule(RoleRuleError::RemoveSelf))
        ));
        assert!(
            matches!(
                check(ResetStanding {
                    member: Some((OrgRole::Admin, true)),
                    ..ok
                }),
                Err(TenancyError::Forbidden(_))
            ),
            "an Admin's only by the Owner"
        );
        assert!(matches!(
            check(ResetStanding { member: None, ..ok }),
            Err(TenancyError::NotFound("member"))
        ));
        assert!(matches!(
            check(ResetStanding { member: Some((OrgRole::User, false)), ..ok }),
            Err(TenancyError::Conflict(m)) if m.contains("deactivated")
        ));
        assert!(matches!(
            check(ResetStanding { elsewhere: true, ..ok }),
            Err(TenancyError::Conflict(m)) if m.contains("another organization")
        ));
        assert!(matches!(
            check(ResetStanding {
                enrolled: false,
                ..ok
            }),
            Err(TenancyError::NotFound("second factor"))
        ));
        assert!(matches!(
            check(ResetStanding {
                address_unchanged: false,
                ..ok
            }),
            Err(TenancyError::Changed(m)) if m.contains("address")
        ));
    }

    fn org(mfa: MfaPolicy, at: DateTime<Utc>) -> Organization {
        Organization {
            id: rbac_core::OrgId::new(),
            name: "Org".into(),
            plan: billing_limits::Plan::Enterprise,
            profile: CompanyProfile::default(),
            access: rbac_core::FeatureAccess::default(),
            security: SecuritySettings {
                mfa,
                ..SecuritySettings::default()
            },
            created_at: at,
            audit_archived_at: None,
            limit_overrides: billing_limits::LimitOverrides::default(),
            limit_overrides_plan: None,
        }
    }

    /// A requirement stored without its start date is in force, not switched off.
    #[test]
    fn a_requirement_without_its_start_is_in_force() {
        let now = DateTime::from_timestamp(1_764_547_200, 0).unwrap_or_default();
        let joined = now - Duration::days(30);
        let undated = org(
            MfaPolicy {
                required: true,
                required_since: None,
                grace_days: 7,
                ..MfaPolicy::default()
            },
            joined,
        );
        assert_eq!(
            requirement(&undated, joined, false, now),
            MfaRequirement::EnrolmentRequired
        );
        assert_eq!(
            requirement(&undated, now, false, now),
            MfaRequirement::Grace {
                deadline: now + Duration::days(7)
            }
        );
        assert_eq!(
            requirement(&undated, joined, true, now),
            MfaRequirement::Satisfied
        );
        let off = org(MfaPolicy::default(), joined);
        assert_eq!(
            requirement(&off, joined, false, now),
            MfaRequirement::Satisfied
        );
    }
}
