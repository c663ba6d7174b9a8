//! Login, logout and authentication of sessions and API keys.

use audit::{
    Actor, AuditAction, AuditStore, Journal, Metadata, NewAuditEvent, Outcome, RequestContext,
    Target,
};
use chrono::{DateTime, Duration, Utc};
use rbac_core::SessionId;
use security_policy::{
    LoginThrottlePolicy, MintedToken, PasswordHasher, SessionPolicy, SessionStatus, Verification,
    check_session, hash_token, locked_until, mint,
};
use serde_json::json;

use crate::caller::{Caller, Principal};
use crate::error::TenancyError;
use crate::model::{Email, Session, User};
use crate::store::{SessionProof, TenancyStore};

/// Passwords longer than this are refused before hashing (a denial-of-service guard); none
/// so long is set (`security_policy::check_password`).
pub const MAX_PASSWORD_BYTES: usize = security_policy::MAX_PASSWORD_BYTES;

/// An API key's last use is written at most this often, so reads stay reads (a session's
/// activity, at most every [`SessionPolicy::activity_granularity`]).
pub const TOUCH_INTERVAL_SECS: i64 = 15;

/// Token prefix of session tokens.
pub const SESSION_PREFIX: &str = "axs";
/// Token prefix of API keys.
pub const API_KEY_PREFIX: &str = "axk";
/// Longer secrets are refused before they are hashed: every token and key is far shorter.
const MAX_SECRET_LEN: usize = 200;

/// A successful login.
#[derive(Debug)]
pub struct LoginOutcome {
    /// The session token, to hand to the client once.
    pub token: MintedToken,
    /// The new session.
    pub session: Session,
    /// Who logged in.
    pub user: User,
    /// Older sessions ended by the concurrent-session limit.
    pub ended: Vec<SessionId>,
    /// Recovery codes left, when one was used to sign in.
    pub recovery_codes_left: Option<u32>,
}

/// The first step of a login.
#[derive(Debug)]
pub enum LoginResult {
    /// The password was enough: here is the session.
    Session(Box<LoginOutcome>),
    /// The person has a second factor: complete the login with it and this challenge
    /// (valid for a few minutes, once) through [`crate::mfa::complete_login`].
    SecondFactor {
        /// The challenge token, to hand to the client.
        challenge: MintedToken,
        /// Whether an SMS code can be requested.
        sms_available: bool,
    },
}

/// The session policy that applies to a person (the strictest of their organizations'), after
/// checking that one of their organizations admits the client address
/// (`security_policy::admitted_by_any`).
///
/// # Errors
/// [`TenancyError::IpNotAllowed`].
pub(crate) async fn policy_for<S: TenancyStore + ?Sized>(
    store: &S,
    user: &User,
    ip: Option<&str>,
) -> Result<SessionPolicy, TenancyError> {
    policy_of(&store.caller_memberships(user.id).await?, ip)
}

/// [`policy_for`] from the person's memberships.
fn policy_of(
    memberships: &[crate::CallerMembership],
    ip: Option<&str>,
) -> Result<SessionPolicy, TenancyError> {
    if let Some(ip) = ip {
        admitted(memberships, ip)?;
    }
    Ok(SessionPolicy::strictest(
        memberships.iter().map(|m| m.org.security.sessions),
    ))
}

/// Whether `session` was signed out of some organization and of every one where its person
/// is still active (or they belong to none now): good nowhere, not even for their own account.
fn signed_out_everywhere(session: &Session, memberships: &[crate::CallerMembership]) -> bool {
    !session.signed_out_of.is_empty()
        && memberships
            .iter()
            .filter(|m| m.deactivated_at.is_none())
            .all(|m| session.signed_out_of.contains(&m.org.id))
}

/// Checks that one of the organizations where the person may act (an active membership of an
/// organization whose plan admits them; when there is none, any of theirs) admits `ip`
/// (`security_policy::admitted_by_any`; a person with no organization is admitted).
///
/// # Errors
/// [`TenancyError::IpNotAllowed`].
pub(crate) fn admitted(
    memberships: &[crate::CallerMembership],
    ip: &str,
) -> Result<(), TenancyError> {
    let acting: Vec<&crate::Organization> = memberships
        .iter()
        .filter(|m| {
            m.deactivated_at.is_none()
                && (m.role == rbac_core::OrgRole::Owner || m.org.admits_members())
        })
        .map(|m| &m.org)
        .collect();
    // Someone who may act nowhere just now is held to every organization's list they have,
    // not to none.
    if acting.is_empty() {
        admitted_by(memberships.iter().map(|m| &m.org), ip)
    } else {
        admitted_by(acting, ip)
    }
}

fn admitted_by<'a>(
    orgs: impl IntoIterator<Item = &'a crate::Organization>,
    ip: &str,
) -> Result<(), TenancyError> {
    let addr: std::net::IpAddr = ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if security_policy::admitted_by_any(
        orgs.into_iter().map(|o| &o.security.ip_allowlist[..]),
        addr,
    ) {
        Ok(())
    } else {
        Err(TenancyError::IpNotAllowed(addr.to_string()))
    }
}

/// What a server counts about failed logins outside its database (per instance), for
/// [`login`].
pub trait LoginCounters: Send + Sync {
    /// When the caller's address is locked for every account.
    fn address_locked_until(&self) -> Option<DateTime<Utc>>;
    /// When `email`, which names no account, is locked (as an account's lock would be:
    /// `security_policy::NameThrottle`).
    fn unknown_locked_until(&self, email: &str) -> Option<DateTime<Utc>>;
    /// Counts one failed login of `email`, which names no account.
    fn count_unknown(&self, email: &str);
    /// Whether this refusal of `account` from the caller's address is the first during the
    /// lock that ends at `until` (`security_policy::RefusalMarks`): only that one is recorded
    /// (and, once recorded, [`refusal_recorded`](Self::refusal_recorded) counts it against the
    /// address in the server).
    fn first_refusal(&self, account: &str, until: DateTime<Utc>) -> bool;
    /// The record of a refusal [`first_refusal`](Self::first_refusal) chose could not be
    /// written: the next refusal of `account` from the caller's address during the lock is
    /// recorded instead. The default does nothing.
    fn refusal_unrecorded(&self, _account: &str, _until: DateTime<Utc>) {}
    /// The record of a refusal [`first_refusal`](Self::first_refusal) chose was written (what
    /// a server counts against the caller's address, once per locked account, it counts
    /// here, so that refusals whose record could not be written are not counted again and
    /// again). The default does nothing.
    fn refusal_recorded(&self, _account: &str, _until: DateTime<Utc>) {}
}

/// Writes the record of a refusal [`LoginCounters::first_refusal`] chose, and tells `counters`
/// whether it was written.
async fn refusal_record(
    audit_store: &dyn AuditStore,
    counters: &dyn LoginCounters,
    mark: &str,
    until: DateTime<Utc>,
    journal: Journal,
) -> Result<(), TenancyError> {
    match audit_store.append(journal).await {
        Ok(_) => {
            counters.refusal_recorded(mark, until);
            Ok(())
        }
        Err(e) => {
            counters.refusal_unrecorded(mark, until);
            Err(e.into())
        }
    }
}

/// Checks an email and password and opens a session, or, for a person with a second
/// factor, issues the challenge that the second step needs.
///
/// Unknown emails cost the same argon2 work as wrong passwords. A failed login
/// for a known account is audited in each of the person's organizations.
///
/// Too many failures lock the account (`LoginThrottlePolicy::default()`: 10 in 15 minutes, for
/// 15 minutes), but not for the addresses the person signed in from in the last
/// [`FAMILIAR_DAYS`] days, which keep a small allowance of wrong passwords during the lock
/// (`security_policy::admits_familiar`): whoever locks an account from elsewhere, again and
/// again, does not keep its owner out. Of the refusals during a lock, of the account's or of
/// the address's, only the first from each address is recorded (`LoginCounters::first_refusal`,
/// decided without looking at the password): the guesses that keep coming do not flood the
/// person's organizations' logs.
///
/// `counters` gives what the server counts outside the database: the caller's per-address
/// verdict (while it lies in the future every login from there is refused), and the locks of
/// emails that name no account, which lock as an account would, so that a lock's answer does
/// not tell whether an account exists. Both are asked after the password was checked, not when
/// the request arrived: logins sent all at once from one address wait for a hashing slot, and
/// each must see the failures counted while it waited, or a burst would have every guess in it
/// checked. A login refused so learns nothing of its password.
///
/// # Errors
/// [`TenancyError::BadCredentials`] for a wrong email or password;
/// [`TenancyError::Throttled`] for a locked account or address;
/// [`TenancyError::IpNotAllowed`] when none of the person's organizations admits the address
/// (whatever the password).
#[allow(
    clippy::too_many_arguments,
    reason = "the login's parts, as they arrive"
)]
pub async fn login<S: TenancyStore + ?Sized>(
    store: &S,
    mfa_store: &dyn crate::mfa::MfaStore,
    audit_store: &dyn AuditStore,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
    counters: &dyn LoginCounters,
    request: RequestContext,
    now: DateTime<Utc>,
) -> Result<LoginResult, TenancyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(TenancyError::BadCredentials);
    }
    let parsed = Email::parse(email).ok();
    let found = match &parsed {
        Some(e) => store.find_user_by_email(e).await?,
        None => None,
    };
    let (user, stored) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, None),
    };
    let verification = hasher.verify_off_thread(stored.as_deref(), password).await;
    let address_lock = counters.address_locked_until().filter(|u| now < *u);
    let Some(user) = user else {
        // The same answers as for an account: refused while the address is locked, or after as
        // many failures of this email as lock an account (counted here, in memory).
        // In the order an account's are asked (the address's first), so that the end a
        // refusal names does not tell the two apart either.
        // Counted by the name's canonical form, as an account's failures are counted by the
        // account its every spelling finds: so many spellings of one unknown name lock it as
        // they would lock an account.
        let name = parsed.as_ref().map_or(email, Email::as_str);
        let name_lock = counters.unknown_locked_until(name).filter(|u| now < *u);
        if let Some(until) = address_lock.or(name_lock) {
            return Err(TenancyError::Throttled(until));
        }
        counters.count_unknown(name);
        return Err(TenancyError::BadCredentials);
    };
    let memberships = store.memberships(user.id).await?;
    let failed = |reason: &str| {
        let mut journal = Journal::default();
        for m in &memberships {
            journal = journal.and_record(
                NewAuditEvent::new(
                    m.org,
                    now,
                    Actor::user(user.id, user.name.clone()),
                    AuditAction::LoginFailed,
                    Target::new("user", user.id, user.name.clone()),
                )
                .with_context(request.clone())
                .with_outcome(Outcome::Failure {
                    reason: reason.into(),
                }),
            );
        }
        journal
    };
    // An address that failed too often is refused for every account, after the same argon2
    // work. Of the refusals during a lock only the first from each address is recorded, chosen
    // without looking at the password (a record written for the right one only would take
    // longer, and tell it): the guesses that keep coming do not flood the person's logs.
    if let Some(until) = address_lock {
        let mark = format!("{}/address", user.id);
        if counters.first_refusal(&mark, until) {
            refusal_record(
                audit_store,
                counters,
                &mark,
                until,
                failed("address_throttled"),
            )
            .await?;
        }
        return Err(TenancyError::Throttled(until));
    }
    // No organization of theirs admits the address: refused before the password or the
    // account's lock is looked at, a right password and a wrong one alike, and counted toward
    // no lock of the account (the server counts it against the address): from outside every
    // allowlist a password cannot be tested (a right one was told by this refusal coming after
    // it), nor the person locked out. (That the address is refused tells that the account
    // exists, which an unknown email's 401 does not: the price of telling a member why they
    // cannot sign in.)
    // Of these refusals the first from each address in each quarter hour is recorded: the
    // guesses that keep coming from outside do not flood the person's organizations' logs.
    if let Err(e) = admitted(&store.caller_memberships(user.id).await?, &request.ip) {
        let quarter = 15 * 60;
        let until =
            DateTime::from_timestamp((now.timestamp().div_euclid(quarter) + 1) * quarter, 0)
                .unwrap_or(now);
        let mark = format!("{}/network", user.id);
        if counters.first_refusal(&mark, until)
            && let Err(err) = audit_store.append(failed("ip_not_allowed")).await
        {
            counters.refusal_unrecorded(&mark, until);
            return Err(err.into());
        }
        return Err(e);
    }
    // A locked account is refused even with the right password, after the same argon2 work,
    // except from an address the person signed in from recently, within its allowance: someone
    // who locks the account from elsewhere does not lock its owner out.
    let throttle = store.login_throttle(user.id).await?;
    let lock = locked_until(throttle.as_ref(), now);
    let familiar = match lock {
        Some(_) => lock_admits(store, user.id, throttle.as_ref(), &request.ip, now).await?,
        None => false,
    };
    if let Some(until) = lock
        && !familiar
    {
        let mark = user.id.to_string();
        if counters.first_refusal(&mark, until) {
            refusal_record(audit_store, counters, &mark, until, failed("throttled")).await?;
        }
        return Err(TenancyError::Throttled(until));
    }
    let Verification::Match { needs_rehash } = verification else {
        store
            .count_login_failure(
                user.id,
                &LoginThrottlePolicy::default(),
                now,
                familiar,
                failed("bad_credentials"),
            )
            .await?;
        return Err(TenancyError::BadCredentials);
    };
    // The right password ends the count, but not a lock (it was passed from a familiar
    // address, and still holds for the others).
    let clear_throttle = throttle.is_some() && lock.is_none();
    // The password may have been changed or reset while this one waited for its hash (a queue
    // of logins, seconds under load): one checked against the old hash opens nothing. The hash
    // found in its place may also be another login's rehash of this same password (two
    // devices at once, after the parameters were raised): checked again, it lets this one in.
    // (From here to the session's insert is a few statements; closing that too would take the
    // insert comparing the hash in its transaction.)
    let (stored, needs_rehash) = match current_hash(store, &user).await? {
        current if current == stored => (stored, needs_rehash),
        current => match hasher.verify_off_thread(current.as_deref(), password).await {
            Verification::Match { needs_rehash } => (current, needs_rehash),
            Verification::Mismatch => return Err(TenancyError::BadCredentials),
        },
    };
    // Someone whose every membership is deactivated has nowhere to go: no session. The right
    // password still clears the throttle, in the refusal's transaction.
    if !memberships.is_empty() && memberships.iter().all(|m| !m.active) {
        if clear_throttle {
            store
                .set_login_throttle(user.id, None, failed("deactivated"))
                .await?;
        } else {
            audit_store.append(failed("deactivated")).await?;
        }
        return Err(TenancyError::Deactivated);
    }
    if clear_throttle {
        store
            .set_login_throttle(user.id, None, Journal::default())
            .await?;
    }
    // Only over the hash this password was checked against: a password changed meanwhile
    // stays changed. The hash found in its place may be another login's rehash of this same
    // password (two devices at once): checked again, it lets this one in; a changed or reset
    // password does not.
    if needs_rehash
        && let Some(old) = stored.as_deref()
        && let Ok(h) = hasher.hash_off_thread(password).await
        && !store
            .set_password_hash(user.id, old, &h, Journal::default())
            .await?
    {
        let now_stored = current_hash(store, &user).await?;
        if !matches!(
            hasher
                .verify_off_thread(now_stored.as_deref(), password)
                .await,
            Verification::Match { .. }
        ) {
            return Err(TenancyError::BadCredentials);
        }
    }
    let second_factor = || async {
        let rec = mfa_store.mfa(user.id).await?;
        let challenge = crate::mfa::issue_challenge(mfa_store, user.id, now).await?;
        Ok(LoginResult::SecondFactor {
            challenge,
            sms_available: rec.is_some_and(|r| r.phone.is_some()),
        })
    };
    if mfa_store
        .mfa(user.id)
        .await?
        .is_some_and(|rec| rec.enabled_at.is_some())
    {
        return second_factor().await;
    }
    // Switched on since it was read just now: the store refuses the password-only session.
    match open_session(store, &user, SessionProof::Password, request, now).await {
        Ok(out) => Ok(LoginResult::Session(Box::new(out))),
        Err(TenancyError::SecondFactorEnabled) => second_factor().await,
        Err(e) => Err(e),
    }
}

/// How long an address the person signed in from stays familiar to their account's lock.
pub const FAMILIAR_DAYS: i64 = 30;

/// How many of the person's latest sign-in addresses are looked at (each address once; an
/// IPv6 client may have used several of its /64, each counted here).
const FAMILIAR_LOOKBACK: u32 = 1_000;

/// Whether the account's lock (`throttle`, holding at `now`) still admits a password from
/// `ip`: while familiar addresses have their allowance ([`security_policy::admits_familiar`])
/// and `ip` is one the person signed in from in the last [`FAMILIAR_DAYS`], compared by client
/// ([`security_policy::client_key`]: an IPv6 client by its /64).
///
/// # Errors
/// [`TenancyError::Store`].
pub(crate) async fn lock_admits<S: TenancyStore + ?Sized>(
    store: &S,
    user: rbac_core::UserId,
    throttle: Option<&security_policy::ThrottleState>,
    ip: &str,
    now: DateTime<Utc>,
) -> Result<bool, TenancyError> {
    if !security_policy::admits_familiar(&LoginThrottlePolicy::default(), throttle, now) {
        return Ok(false);
    }
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return Ok(false);
    };
    let client = security_policy::client_key(ip);
    Ok(store
        .sign_in_addresses(user, now - Duration::days(FAMILIAR_DAYS), FAMILIAR_LOOKBACK)
        .await?
        .iter()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .any(|a| security_policy::client_key(a) == client))
}

/// Opens a session for a person whose credentials were checked: a new session id and
/// token, the concurrent-session limit applied, the login audited in each organization.
///
/// # Errors
/// [`TenancyError::SecondFactorEnabled`] for a [`SessionProof::Password`] session of a person
/// who has a second factor by the time it is stored; [`TenancyError::Store`].
pub async fn open_session<S: TenancyStore + ?Sized>(
    store: &S,
    user: &User,
    proof: SessionProof,
    request: RequestContext,
    now: DateTime<Utc>,
) -> Result<LoginOutcome, TenancyError> {
    let memberships = store.memberships(user.id).await?;
    let policy = policy_for(store, user, Some(&request.ip)).await?;
    // Sessions past their timeouts are ended first (each with its record), so that the
    // concurrent-session limit counts only those still usable: a person whose earlier
    // sessions timed out does not lose a live one to them.
    for old in store.list_sessions(user.id).await? {
        let status = check_session(&policy, old.created_at, old.last_seen_at, now);
        if status != SessionStatus::Active {
            match end_timed_out(store, &memberships, &old, status, now).await {
                Ok(()) | Err(TenancyError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let token = mint(SESSION_PREFIX, 32);
    let session = Session {
        id: SessionId::new(),
        user: user.id,
        created_at: now,
        last_seen_at: now,
        ip: request.ip.clone(),
        user_agent: request.user_agent.clone(),
        signed_out_of: Vec::new(),
    };
    // The login, and each older session the concurrent-session limit ends, in every
    // organization of the person's.
    let records = |evicted: &[SessionId]| {
        let mut journal = Journal::default();
        for m in &memberships {
            let event = |action, target| {
                NewAuditEvent::new(
                    m.org,
                    now,
                    Actor::user(user.id, user.name.clone()),
                    action,
                    target,
                )
                .with_context(request.clone())
            };
            journal = journal.and_record(event(
                AuditAction::Login,
                Target::new("session", session.id, ""),
            ));
            for e in evicted {
                journal = journal.and_record(
                    event(AuditAction::SessionRevoked, Target::new("session", e, ""))
                        .with_metadata(
                            Metadata::from_value(json!({"reason": "session_limit"}))
                                .unwrap_or_default(),
                        ),
                );
            }
        }
        journal
    };
    let ended = store
        .create_session(
            &session,
            &token.hash,
            policy.max_concurrent,
            proof,
            &records,
        )
        .await?;
    Ok(LoginOutcome {
        token,
        session,
        user: user.clone(),
        ended,
        recovery_codes_left: None,
    })
}

/// Ends the caller's own session.
///
/// # Errors
/// [`TenancyError::NotFound`] when the session is already over.
pub async fn logout<S: TenancyStore + ?Sized>(
    store: &S,
    user: &User,
    session: SessionId,
    request: RequestContext,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let mut journal = Journal::default();
    for m in store.memberships(user.id).await? {
        journal = journal.and_record(
            NewAuditEvent::new(
                m.org,
                now,
                Actor::user(user.id, user.name.clone()),
                AuditAction::Logout,
                Target::new("session", session, ""),
            )
            .with_context(request.clone()),
        );
    }
    store.end_session(user.id, session, now, journal).await
}

/// `user`'s password hash as stored now (`None`: none, or the email now names another account).
async fn current_hash<S: TenancyStore + ?Sized>(
    store: &S,
    user: &User,
) -> Result<Option<String>, TenancyError> {
    Ok(store
        .find_user_by_email(&user.email)
        .await?
        .filter(|(u, _)| u.id == user.id)
        .and_then(|(_, h)| h))
}

/// Where a request authenticated by [`authenticate`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress<'a> {
    /// The client's address, which must be admitted by one of the person's organizations (an
    /// API key's: its organization), as at sign-in.
    Checked(&'a str),
    /// The client's address on a route that must work from anywhere (signing out, seeing and
    /// ending one's own sessions): it is not refused, but a request from an address none of
    /// the person's organizations admits does not keep their session alive.
    Anywhere(&'a str),
}

/// Resolves a bearer or cookie secret: a session token (`axs_…`) or an API key (`axk_…`).
///
/// Sessions past their absolute or idle timeout are ended and refused; the
/// check runs against the current policy, so policy changes apply to existing sessions.
///
/// # Errors
/// [`TenancyError::Unauthenticated`] for anything that is not a live credential;
/// [`TenancyError::IpNotAllowed`] for a [`ClientAddress::Checked`] address not admitted.
pub async fn authenticate<S: TenancyStore + ?Sized>(
    store: &S,
    secret: &str,
    address: ClientAddress<'_>,
    now: DateTime<Utc>,
) -> Result<Principal, TenancyError> {
    let ip = match address {
        ClientAddress::Checked(ip) => Some(ip),
        ClientAddress::Anywhere(_) => None,
    };
    match lookup(store, secret, now).await? {
        Found::Key(principal) => {
            if let (Principal::ApiKey { key, .. }, Some(ip)) = (&principal, ip) {
                admitted_by([&store.get_org(key.org).await?], ip)?;
            }
            Ok(principal)
        }
        Found::Session(session, user) => {
            let memberships = store.caller_memberships(user.id).await?;
            if signed_out_everywhere(&session, &memberships) {
                // Signed out of every organization where the person is still active (they
                // left the others since): good nowhere, it ends (best effort, as a timeout).
                let journal = memberships.iter().fold(Journal::default(), |j, m| {
                    j.and_record(
                        NewAuditEvent::new(
                            m.org.id,
                            now,
                            Actor::system(),
                            AuditAction::SessionRevoked,
                            Target::new("session", session.id, ""),
                        )
                        .with_metadata(
                            Metadata::from_value(
                                json!({"reason": "signed_out_everywhere", "user": user.id}),
                            )
                            .unwrap_or_default(),
                        ),
                    )
                });
                let _ = store.end_session(user.id, session.id, now, journal).await;
                return Err(TenancyError::Unauthenticated);
            }
            let policy = policy_of(&memberships, ip)?;
            let (principal, activity) = unexpired(store, &policy, &session, user, now).await?;
            // From an address none of the person's organizations admits, a request that works
            // from anywhere is no activity: a stolen token tried from outside every allowlist
            // does not keep the session from going idle.
            if let ClientAddress::Anywhere(ip) = address
                && admitted(&memberships, ip).is_err()
            {
                return Ok(principal);
            }
            activity.note(store, now).await?;
            Ok(principal)
        }
    }
}

/// [`authenticate`] and then [`Caller::load`] in `org`, with fewer reads: a session's
/// memberships, whose session policies decide whether it is still live, also hold the
/// membership in `org`, and [`TenancyStore::session_caller`] reads them with the session
/// (one read for a session where an adapter joins them, where the two calls take three).
/// The session's activity is not written yet: the caller writes it
/// ([`PendingActivity::note`]) once the organization has admitted the request.
///
/// # Errors
/// As [`authenticate`], then as [`Caller::load`].
pub async fn authenticate_in<S: TenancyStore + ?Sized>(
    store: &S,
    secret: &str,
    org: rbac_core::OrgId,
    request: RequestContext,
    now: DateTime<Utc>,
) -> Result<(Caller, PendingActivity), TenancyError> {
    authenticate_for(store, secret, org, request, now, Caller::in_membership).await
}

/// [`authenticate_in`] for leaving the organization: a session is also resolved for a member
/// whose organization's plan no longer admits members ([`Caller::in_membership_to_leave`]).
/// An API key is resolved as by [`authenticate_in`] (leaving then refuses it, on the record).
///
/// # Errors
/// As [`authenticate_in`].
pub async fn authenticate_to_leave<S: TenancyStore + ?Sized>(
    store: &S,
    secret: &str,
    org: rbac_core::OrgId,
    request: RequestContext,
    now: DateTime<Utc>,
) -> Result<(Caller, PendingActivity), TenancyError> {
    authenticate_for(
        store,
        secret,
        org,
        request,
        now,
        Caller::in_membership_to_leave,
    )
    .await
}

type Resolve = fn(
    Principal,
    Vec<crate::model::CallerMembership>,
    rbac_core::OrgId,
    RequestContext,
) -> Result<Caller, TenancyError>;

async fn authenticate_for<S: TenancyStore + ?Sized>(
    store: &S,
    secret: &str,
    org: rbac_core::OrgId,
    request: RequestContext,
    now: DateTime<Utc>,
    resolve: Resolve,
) -> Result<(Caller, PendingActivity), TenancyError> {
    if secret.len() > MAX_SECRET_LEN {
        return Err(TenancyError::Unauthenticated);
    }
    if secret.starts_with(API_KEY_PREFIX) {
        // The key's organization's allowlist is then checked against the request, on the
        // record, as for a session (the server's `OrgCaller`).
        let Found::Key(principal) = lookup(store, secret, now).await? else {
            return Err(TenancyError::Unauthenticated);
        };
        let caller = Caller::load(store, &principal, org, request).await?;
        return Ok((caller, PendingActivity::default()));
    }
    let (session, user, memberships) = store
        .session_caller(&hash_token(secret))
        .await?
        .ok_or(TenancyError::Unauthenticated)?;
    // Signed out of this organization by its Owner or an Admin; still signed in elsewhere.
    // Only while they are still its member: someone removed is answered as any outsider is
    // (`resolve`), not with a refusal its log records, which they could fill at will.
    if session.signed_out_of.contains(&org) && memberships.iter().any(|m| m.org.id == org) {
        return Err(TenancyError::SignedOut);
    }
    let policy = SessionPolicy::strictest(memberships.iter().map(|m| m.org.security.sessions));
    let (principal, activity) = unexpired(store, &policy, &session, user, now).await?;
    Ok((resolve(principal, memberships, org, request)?, activity))
}

/// The audit record of `refusal`, a member's own credential refused in `org`
/// ([`TenancyError::member_refusal`]: signed out, deactivated, excluded by the plan): an
/// `access.denied` of `target` by the person the secret belongs to, so that the organization's
/// log shows who kept trying, from where. `None` for other errors, or when the secret names
/// nobody (any more).
///
/// # Errors
/// The store's, reading the secret's session or key.
pub async fn member_refusal_record<S: TenancyStore + ?Sized>(
    store: &S,
    secret: &str,
    org: rbac_core::OrgId,
    refusal: &TenancyError,
    target: Target,
    request: RequestContext,
    now: DateTime<Utc>,
) -> Result<Option<NewAuditEvent>, TenancyError> {
    let Some(reason) = refusal.member_refusal() else {
        return Ok(None);
    };
    let actor = match lookup(store, secret, now).await {
        Ok(Found::Session(_, user)) => Actor::user(user.id, user.name),
        Ok(Found::Key(Principal::ApiKey { key, user })) => Actor {
            kind: audit::ActorKind::ApiKey,
            id: key.id.to_string(),
            name: format!("{} (API key of {})", key.name, user.name),
        },
        Ok(Found::Key(Principal::Session { .. })) | Err(TenancyError::Unauthenticated) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(Some(
        NewAuditEvent::new(org, now, actor, AuditAction::AccessDenied, target)
            .with_context(request)
            .with_outcome(Outcome::Denied {
                reason: reason.to_owned(),
            }),
    ))
}

/// What a secret names, before its session (if it is one) is checked against the policy.
enum Found {
    /// A live API key and its creator.
    Key(Principal),
    /// An open session and its person.
    Session(Session, User),
}

async fn lookup<S: TenancyStore + ?Sized>(
    store: &S,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Found, TenancyError> {
    if secret.len() > MAX_SECRET_LEN {
        return Err(TenancyError::Unauthenticated);
    }
    let hash = hash_token(secret);
    if secret.starts_with(API_KEY_PREFIX) {
        let key = store
            .find_api_key(&hash)
            .await?
            .ok_or(TenancyError::Unauthenticated)?;
        let user = store
            .get_user(key.created_by)
            .await?
            .ok_or(TenancyError::Unauthenticated)?;
        if key
            .last_used_at
            .is_none_or(|t| now - t >= Duration::seconds(TOUCH_INTERVAL_SECS))
        {
            store.touch_api_key(key.id, now).await?;
        }
        return Ok(Found::Key(Principal::ApiKey { user, key }));
    }
    let (session, user) = store
        .session_with_user(&hash)
        .await?
        .ok_or(TenancyError::Unauthenticated)?;
    Ok(Found::Session(session, user))
}

/// Ends `session`, past its timeouts (`status`, not [`SessionStatus::Active`]), with a
/// `session.revoked` record in each of `memberships`' organizations naming the timeout.
///
/// # Errors
/// [`TenancyError::NotFound`] when it has ended already (a concurrent request ended it, and
/// recorded that); [`TenancyError::Store`].
async fn end_timed_out<S: TenancyStore + ?Sized>(
    store: &S,
    memberships: &[crate::Membership],
    session: &Session,
    status: SessionStatus,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let reason = if status == SessionStatus::Expired {
        "absolute_timeout"
    } else {
        "idle_timeout"
    };
    let journal = memberships.iter().fold(Journal::default(), |j, m| {
        j.and_record(
            NewAuditEvent::new(
                m.org,
                now,
                Actor::system(),
                AuditAction::SessionRevoked,
                Target::new("session", session.id, ""),
            )
            .with_metadata(
                Metadata::from_value(json!({"reason": reason, "user": session.user}))
                    .unwrap_or_default(),
            ),
        )
    });
    store
        .end_session(session.user, session.id, now, journal)
        .await
}

/// A session's activity, to be written once the request it came with is admitted
/// ([`authenticate_in`]): a request the organization refuses (an address outside its
/// allowlist, a missing second factor) does not keep the session from going idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use = "the session's activity is written by `note`"]
pub struct PendingActivity(Option<SessionId>);

impl PendingActivity {
    /// Writes the activity (nothing for an API key, or a session whose recorded activity is
    /// recent enough: [`SessionPolicy::activity_granularity`]).
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    pub async fn note<S: TenancyStore + ?Sized>(
        self,
        store: &S,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        match self.0 {
            Some(session) => store.note_activity(session, now).await,
            None => Ok(()),
        }
    }
}

/// Checks an open session against `policy`: one past its timeouts is ended and refused; a live
/// one gives the activity to write ([`PendingActivity`]), when the recorded one is older than
/// the policy's [`SessionPolicy::activity_granularity`].
async fn unexpired<S: TenancyStore + ?Sized>(
    store: &S,
    policy: &SessionPolicy,
    session: &Session,
    user: User,
    now: DateTime<Utc>,
) -> Result<(Principal, PendingActivity), TenancyError> {
    match check_session(policy, session.created_at, session.last_seen_at, now) {
        SessionStatus::Active => {}
        status @ (SessionStatus::Expired | SessionStatus::Idle) => {
            // Ending it is best effort: a concurrent request may already have done so, and
            // then its record was committed with that request's end. When the memberships
            // cannot be read it stays open (and refused), for a later request to end.
            if let Ok(memberships) = store.memberships(user.id).await {
                let _ = end_timed_out(store, &memberships, session, status, now).await;
            }
            return Err(TenancyError::Unauthenticated);
        }
    }
    let due = now - session.last_seen_at >= policy.activity_granularity();
    Ok((
        Principal::Session {
            user,
            session: session.id,
        },
        PendingActivity(due.then_some(session.id)),
    ))
}

#[cfg(test)]
mod tests {
    use super::admitted;
    use crate::{CallerMembership, CompanyProfile, Organization, SecuritySettings};
    use billing_limits::Plan;
    use rbac_core::{FeatureAccess, OrgId, OrgRole};

    fn membership(plan: Plan, role: OrgRole, list: &[&str], active: bool) -> CallerMembership {
        let entries: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        let now = chrono::DateTime::from_timestamp(1_764_547_200, 0).unwrap_or_default();
        CallerMembership {
            org: Organization {
                id: OrgId::new(),
                name: "Org".into(),
                plan,
                profile: CompanyProfile::default(),
                access: FeatureAccess::default(),
                security: SecuritySettings {
                    ip_allowlist: security_policy::parse_allowlist(&entries).unwrap_or_default(),
                    ..SecuritySettings::default()
                },
                created_at: now,
                audit_archived_at: None,
                limit_overrides: billing_limits::LimitOverrides::default(),
                limit_overrides_plan: None,
            },
            role,
            joined_at: now,
            deactivated_at: (!active).then_some(now),
            teams: Vec::new(),
            all_teams: None,
        }
    }

    /// Counters that never lock anything.
    #[cfg(feature = "memory")]
    struct Open;

    #[cfg(feature = "memory")]
    impl super::LoginCounters for Open {
        fn address_locked_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
            None
        }
        fn unknown_locked_until(&self, _: &str) -> Option<chrono::DateTime<chrono::Utc>> {
            None
        }
        fn count_unknown(&self, _: &str) {}
        fn first_refusal(&self, _: &str, _: chrono::DateTime<chrono::Utc>) -> bool {
            true
        }
    }

    /// After a change of hashing parameters, two sign-ins with the right password at once
    /// both rehash it: the second's compare-and-swap finds the first's new hash, which holds
    /// the same password, and lets it in; a password changed meanwhile would not.
    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn two_sign_ins_rehashing_at_once_both_get_in() {
        use crate::AccountStore as _;
        let (store, _org, owner) = crate::memory::MemoryTenancyStore::with_org("Rehash").await;
        let stronger = security_policy::PasswordHasher::new(security_policy::HashParams {
            iterations: 3,
            ..security_policy::HashParams::default()
        })
        .unwrap();
        let before = store.find_user_by_email(&owner.email).await.unwrap();
        let sign_in = || {
            super::login(
                &store,
                &store,
                &store,
                &stronger,
                owner.email.as_str(),
                "tilted windmill at sunrise",
                &Open,
                audit::RequestContext::default(),
                chrono::Utc::now(),
            )
        };
        let (a, b) = tokio::join!(sign_in(), sign_in());
        assert!(
            matches!(
                (&a, &b),
                (
                    Ok(super::LoginResult::Session(_)),
                    Ok(super::LoginResult::Session(_))
                )
            ),
            "{:?} {:?}",
            a.err(),
            b.err()
        );
        let after = store.find_user_by_email(&owner.email).await.unwrap();
        assert_ne!(
            before.and_then(|(_, h)| h),
            after.and_then(|(_, h)| h),
            "rehashed"
        );
    }

    #[test]
    fn only_organizations_where_the_person_may_act_admit_an_address_unless_there_are_none() {
        let office = ["203.0.113.0/24"];
        let (home, desk) = ("192.0.2.7", "203.0.113.9");
        let listed = membership(Plan::Enterprise, OrgRole::User, &office, true);
        let open_deactivated = membership(Plan::Enterprise, OrgRole::User, &[], false);
        let open_excluded = membership(Plan::Free, OrgRole::User, &[], true);
        assert!(admitted(&[], home).is_ok(), "no organization at all");
        assert!(admitted(std::slice::from_ref(&listed), home).is_err());
        assert!(admitted(std::slice::from_ref(&listed), desk).is_ok());
        // A deactivated membership, or one whose plan no longer admits the person, does not
        // open the door the active one keeps shut.
        assert!(admitted(&[listed.clone(), open_deactivated.clone()], home).is_err());
        assert!(admitted(&[listed.clone(), open_excluded.clone()], home).is_err());
        // The Owner of a Free organization acts there.
        let free_owner = membership(Plan::Free, OrgRole::Owner, &[], true);
        assert!(admitted(&[listed.clone(), free_owner], home).is_ok());
        // Someone who may act nowhere is held to every list they have.
        let listed_excluded = membership(Plan::Free, OrgRole::User, &office, true);
        assert!(admitted(std::slice::from_ref(&listed_excluded), home).is_err());
        assert!(admitted(&[listed_excluded, open_deactivated], home).is_ok());
    }
}
