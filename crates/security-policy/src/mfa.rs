//! Second factors: TOTP (RFC 6238) with replay protection, single-use recovery codes and
//! short-lived SMS codes. Pure: the caller supplies the time and the stored state.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, TOTP};

use crate::token::{constant_time_eq, hash_token};

/// Seconds per TOTP time step.
pub const TOTP_STEP_SECS: u64 = 30;
/// Digits per TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;
/// Recovery codes issued at once.
pub const RECOVERY_CODES: usize = 10;
/// How long an SMS code stays valid.
pub const SMS_CODE_MINUTES: i64 = 5;

/// Why a second factor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    /// Not a code of the current step ±1.
    #[error("the code is wrong or expired")]
    Wrong,
    /// A code of a step already used (RFC 6238 §5.2): each code works once.
    #[error("the code was already used")]
    Replayed,
    /// The stored secret cannot be used.
    #[error("the authenticator secret is unusable")]
    BadSecret,
}

/// A fresh TOTP secret: 160 random bits.
#[must_use]
pub fn new_totp_secret() -> Vec<u8> {
    let mut buf = vec![0u8; TOTP_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<TOTP, MfaError> {
    // `otpauth` labels may not contain ':'; issuers and emails normally do not.
    let clean = |s: &str| s.replace(':', " ");
    TOTP::new(
        Algorithm::SHA1,
        TOTP_DIGITS,
        1,
        TOTP_STEP_SECS,
        secret.to_vec(),
        Some(clean(issuer)),
        clean(account),
    )
    .map_err(|_| MfaError::BadSecret)
}

/// The `otpauth://totp/…` URI for authenticator apps (SHA-1, 6 digits, 30 s: what every app supports).
///
/// # Errors
/// [`MfaError::BadSecret`] for a secret shorter than 128 bits.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Result<String, MfaError> {
    Ok(totp(secret, issuer, account)?.get_url())
}

/// The secret in base32, for people who type it in.
#[must_use]
pub fn secret_base32(secret: &[u8]) -> String {
    totp_rs::Secret::Raw(secret.to_vec())
        .to_encoded()
        .to_string()
}

/// The code for `time` (tests and tools; servers only verify).
///
/// # Errors
/// [`MfaError::BadSecret`].
pub fn totp_code(secret: &[u8], time: DateTime<Utc>) -> Result<String, MfaError> {
    let t = totp(secret, "x", "x")?;
    Ok(t.generate(u64::try_from(time.timestamp()).unwrap_or(0)))
}

/// Checks a TOTP code at `now`: codes of the current step and one step either side are
/// accepted, but only for steps after `last_used_step`. Returns the matched step, which the
/// caller must record with a compare-and-swap so that two racing submissions of one code
/// cannot both pass.
///
/// # Errors
/// [`MfaError::Wrong`], [`MfaError::Replayed`], [`MfaError::BadSecret`].
pub fn verify_totp(
    secret: &[u8],
    code: &str,
    now: DateTime<Utc>,
    last_used_step: Option<i64>,
) -> Result<i64, MfaError> {
    let code = code.trim().replace(' ', "");
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MfaError::Wrong);
    }
    let t = totp(secret, "x", "x")?;
    let step_secs = TOTP_STEP_SECS as i64;
    let current = now.timestamp().div_euclid(step_secs);
    let mut matched = None;
    // Every candidate is computed and compared, so timing does not tell which one matched.
    for step in [current - 1, current, current + 1] {
        let Ok(at) = u64::try_from(step * step_secs) else {
            continue;
        };
        if constant_time_eq(&t.generate(at), &code) && matched.is_none() {
            matched = Some(step);
        }
    }
    let step = matched.ok_or(MfaError::Wrong)?;
    if last_used_step.is_some_and(|last| step <= last) {
        return Err(MfaError::Replayed);
    }
    Ok(step)
}

/// New recovery codes (shown once) and their hashes (stored). Each carries 80 random bits,
/// so a plain SHA-256 is a sound way to store it.
#[must_use]
pub fn new_recovery_codes() -> Vec<(String, String)> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut buf = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut buf);
            let hex = hex::encode(buf);
            let code = format!(
                "{}-{}-{}-{}",
                &hex[0..5],
                &hex[5..10],
                &hex[10..15],
                &hex[15..20]
            );
            let hash = recovery_code_hash(&code);
            (code, hash)
        })
        .collect()
}

/// The stored form of a recovery code as typed (case, spaces and dashes do not matter).
#[must_use]
pub fn recovery_code_hash(typed: &str) -> String {
    let canonical: String = typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hash_token(&format!("recovery:{canonical}"))
}

/// A one-time SMS code waiting to be typed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsChallenge {
    /// Keyed digest of the code ([`crate::Cipher::digest`]), bound to the person: a plain hash
    /// of six digits would give the code to anyone with the database, in a million tries.
    pub code_hash: String,
    /// The code works strictly before this instant.
    pub expires_at: DateTime<Utc>,
}

fn sms_hash(key: &crate::Cipher, subject: &str, code: &str) -> String {
    key.digest("sms", format!("{subject}:{}", code.trim()).as_bytes())
}

/// A new six-digit SMS code for `subject` (a user id): the code to send and the challenge to
/// keep, its digest keyed by `key` (the server's).
#[must_use]
pub fn new_sms_code(
    key: &crate::Cipher,
    subject: &str,
    now: DateTime<Utc>,
) -> (String, SmsChallenge) {
    let n = rand::rngs::OsRng.next_u32() % 1_000_000;
    let code = format!("{n:06}");
    let challenge = SmsChallenge {
        code_hash: sms_hash(key, subject, &code),
        expires_at: now + Duration::minutes(SMS_CODE_MINUTES),
    };
    (code, challenge)
}

/// Whether `code` answers `challenge` at `now` (the caller consumes the challenge either way
/// when it matches, so a code works once).
#[must_use]
pub fn sms_code_matches(
    key: &crate::Cipher,
    challenge: &SmsChallenge,
    subject: &str,
    code: &str,
    now: DateTime<Utc>,
) -> bool {
    now < challenge.expires_at
        && constant_time_eq(&challenge.code_hash, &sms_hash(key, subject, code))
}

/// When an organization requires 2FA, whether a person without it may still work, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MfaRequirement {
    /// Not required, or already enrolled.
    Satisfied,
    /// Required; they may work until `deadline` and should enrol.
    Grace {
        /// End of the grace period.
        deadline: DateTime<Utc>,
    },
    /// Required and the grace period is over: only enrolment is open.
    EnrolmentRequired,
}

/// Decides the 2FA requirement at `now` for a person who is (or is not) `enrolled`, in an
/// organization that has required 2FA since `required_since` with a grace period of
/// `grace_days`, which the person joined at `joined_at`: the grace period runs from the later of the two.
#[must_use]
pub fn mfa_requirement(
    required_since: Option<DateTime<Utc>>,
    grace_days: u32,
    joined_at: DateTime<Utc>,
    enrolled: bool,
    now: DateTime<Utc>,
) -> MfaRequirement {
    let Some(since) = required_since else {
        return MfaRequirement::Satisfied;
    };
    if enrolled {
        return MfaRequirement::Satisfied;
    }
    // Checked: a grace of millions of days (a policy built by hand) is a deadline beyond any
    // date, not a panic.
    let Some(deadline) = since
        .max(joined_at)
        .checked_add_signed(Duration::days(i64::from(grace_days)))
    else {
        return MfaRequirement::Grace {
            deadline: DateTime::<Utc>::MAX_UTC,
        };
    };
    if now < deadline {
        MfaRequirement::Grace { deadline }
    } else {
        MfaRequirement::EnrolmentRequired
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn secrets_are_160_bits_and_the_uri_is_standard() {
        let s = new_totp_secret();
        assert_eq!(s.len() * 8, 160);
        assert_ne!(s, new_totp_secret());
        let uri = otpauth_uri(&s, "Axie Studio", "sarah@company.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Axie%20Studio:sarah%40company.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={}", secret_base32(&s))));
        assert!(uri.contains("issuer=Axie%20Studio"));
    }

    #[test]
    fn rfc6238_vector_and_the_window() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits) → 6 digits 287082.
        let secret = b"12345678901234567890".to_vec();
        assert_eq!(totp_code(&secret, at(59)).unwrap(), "287082");
        let now = at(1_111_111_109);
        let code = totp_code(&secret, now).unwrap();
        let step = verify_totp(&secret, &code, now, None).unwrap();
        assert_eq!(step, 1_111_111_109 / 30);
        // One step either side is accepted, two are not.
        let prev = totp_code(&secret, now - Duration::seconds(30)).unwrap();
        let next = totp_code(&secret, now + Duration::seconds(30)).unwrap();
        let far = totp_code(&secret, now - Duration::seconds(60)).unwrap();
        assert_eq!(verify_totp(&secret, &prev, now, None).unwrap(), step - 1);
        assert_eq!(verify_totp(&secret, &next, now, None).unwrap(), step + 1);
        assert_eq!(verify_totp(&secret, &far, now, None), Err(MfaError::Wrong));
        for bad in ["", "12345", "1234567", "abcdef", "000000"] {
            if bad != code {
                assert_eq!(
                    verify_totp(&secret, bad, now, None),
                    Err(MfaError::Wrong),
                    "{bad}"
                );
            }
        }
    }

    #[test]
    fn a_used_step_is_never_accepted_again() {
        let secret = new_totp_secret();
        let now = at(1_800_000_000);
        let code = totp_code(&secret, now).unwrap();
        let step = verify_totp(&secret, &code, now, None).unwrap();
        assert_eq!(
            verify_totp(&secret, &code, now, Some(step)),
            Err(MfaError::Replayed)
        );
        // An older step is refused after a newer one was used.
        let prev = totp_code(&secret, now - Duration::seconds(30)).unwrap();
        assert_eq!(
            verify_totp(&secret, &prev, now, Some(step)),
            Err(MfaError::Replayed)
        );
        let next = totp_code(&secret, now + Duration::seconds(30)).unwrap();
        assert_eq!(
            verify_totp(&secret, &next, now + Duration::seconds(30), Some(step)),
            Ok(step + 1)
        );
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_about_format() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut hashes: Vec<_> = codes.iter().map(|c| c.1.clone()).collect();
        hashes.dedup();
        assert_eq!(hashes.len(), RECOVERY_CODES);
        let (code, hash) = &codes[0];
        assert_eq!(
            &recovery_code_hash(&code.to_uppercase().replace('-', " ")),
            hash
        );
        assert_ne!(&recovery_code_hash("00000-00000-00000-00000"), hash);
    }

    #[test]
    fn sms_codes_expire_and_are_bound_to_the_person() {
        let now = at(1_800_000_000);
        let key = crate::Cipher::new(&[7; 32]);
        let (code, ch) = new_sms_code(&key, "usr_1", now);
        assert_eq!(code.len(), 6);
        assert!(sms_code_matches(
            &key,
            &ch,
            "usr_1",
            &code,
            now + Duration::minutes(4)
        ));
        assert!(!sms_code_matches(
            &key,
            &ch,
            "usr_1",
            &code,
            now + Duration::minutes(SMS_CODE_MINUTES)
        ));
        assert!(!sms_code_matches(&key, &ch, "usr_2", &code, now));
        // The digest is keyed: without the server's key, trying every six-digit code against
        // what the database holds finds nothing (a plain hash of the same text would match).
        let other = crate::Cipher::new(&[8; 32]);
        assert!(!sms_code_matches(&other, &ch, "usr_1", &code, now));
        assert_ne!(ch.code_hash, hash_token(&format!("sms:usr_1:{code}")));
    }

    #[test]
    fn a_grace_beyond_any_date_is_no_panic() {
        let since = at(1_800_000_000);
        assert!(matches!(
            mfa_requirement(Some(since), u32::MAX, since, false, since),
            MfaRequirement::Grace { .. }
        ));
    }

    #[test]
    fn grace_runs_from_the_later_of_requirement_and_joining() {
        let since = at(1_800_000_000);
        let joined = since + Duration::days(3);
        let deadline = joined + Duration::days(7);
        assert_eq!(
            mfa_requirement(None, 7, joined, false, since),
            MfaRequirement::Satisfied
        );
        assert_eq!(
            mfa_requirement(Some(since), 7, joined, true, deadline),
            MfaRequirement::Satisfied
        );
        assert_eq!(
            mfa_requirement(
                Some(since),
                7,
                joined,
                false,
                deadline - Duration::seconds(1)
            ),
            MfaRequirement::Grace { deadline }
        );
        assert_eq!(
            mfa_requirement(Some(since), 7, joined, false, deadline),
            MfaRequirement::EnrolmentRequired
        );
    }
}
