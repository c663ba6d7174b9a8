//! Password policy (after NIST SP 800-63B) and argon2id hashing.

use argon2::password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::error::{PasswordError, SecurityError};

/// Common passwords refused under every policy (a bundled list, lower case).
const COMMON: &str = include_str!("common_passwords.txt");

/// The organization's password rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length for accounts that log in with a password only (NIST: 15).
    pub min_length: usize,
    /// Minimum length for accounts with a second factor (NIST: 8).
    pub min_length_with_2fa: usize,
    /// Maximum accepted length (at least 64).
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 15,
            min_length_with_2fa: 8,
            max_length: 128,
        }
    }
}

impl PasswordPolicy {
    /// Checks the policy's own bounds.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] when a stricter-than-possible or weaker-than-NIST value is set.
    pub fn validate(&self) -> Result<(), SecurityError> {
        if self.min_length_with_2fa < 8 || self.min_length < self.min_length_with_2fa {
            return Err(SecurityError::Invalid(
                "minimum lengths must be at least 8 (with 2FA) and 15 is recommended without"
                    .into(),
            ));
        }
        if self.max_length < 64 || self.max_length > 1024 || self.max_length < self.min_length {
            return Err(SecurityError::Invalid(
                "`max_length` must be between 64 and 1024".into(),
            ));
        }
        Ok(())
    }
}

/// Checks `password` against `policy`; `context` holds words it must not contain
/// (the email, its local part, the organization name).
///
/// # Errors
/// The first [`PasswordError`] found.
pub fn check_password(
    policy: &PasswordPolicy,
    password: &str,
    context: &[&str],
    has_second_factor: bool,
) -> Result<(), PasswordError> {
    let len = password.chars().count();
    if len > policy.max_length {
        return Err(PasswordError::TooLong {
            max: policy.max_length,
        });
    }
    let min = if has_second_factor {
        policy.min_length_with_2fa
    } else {
        policy.min_length
    };
    if len < min {
        return Err(PasswordError::TooShort { min });
    }
    let lower = password.to_lowercase();
    if COMMON.lines().any(|c| !c.is_empty() && lower == c) {
        return Err(PasswordError::Common);
    }
    for word in context {
        let w = word.trim().to_lowercase();
        if w.chars().count() >= 4 && lower.contains(&w) {
            return Err(PasswordError::ContextWord);
        }
    }
    Ok(())
}

/// Context words for a person: the email, its local part and the organization name.
#[must_use]
pub fn context_words<'a>(email: &'a str, org_name: &'a str) -> [&'a str; 3] {
    [email, email.split('@').next().unwrap_or(email), org_name]
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashParams {
    /// Memory in KiB (OWASP minimum: 19456).
    pub memory_kib: u32,
    /// Iterations (OWASP minimum with 19 MiB: 2).
    pub iterations: u32,
    /// Parallelism.
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords with argon2id.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: HashParams,
    argon: Argon2<'static>,
    /// A hash of a random password, verified against for unknown accounts so they take as long.
    dummy: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password (or no account).
    Mismatch,
    /// Right password.
    Match {
        /// The stored hash uses other parameters: store a fresh hash.
        needs_rehash: bool,
    },
}

impl PasswordHasher {
    /// A hasher with the given parameters.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] for parameters argon2 rejects or below OWASP's minimum.
    pub fn new(params: HashParams) -> Result<Self, SecurityError> {
        if params.memory_kib < 19_456 || params.iterations < 2 {
            return Err(SecurityError::Invalid(
                "argon2id parameters are below OWASP's minimum".into(),
            ));
        }
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| SecurityError::Invalid(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon
            .hash_password(b"axie dummy password for timing", &salt)
            .map_err(|e| SecurityError::Invalid(e.to_string()))?
            .to_string();
        Ok(Self {
            params,
            argon,
            dummy,
        })
    }

    /// Hashes a password into a PHC string.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] if hashing fails.
    pub fn hash(&self, password: &str) -> Result<String, SecurityError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| SecurityError::Invalid(e.to_string()))
    }

    /// Verifies `password` against `stored`; with `None` (unknown account) it still
    /// spends the same time and answers [`Verification::Mismatch`].
    #[must_use]
    pub fn verify(&self, stored: Option<&str>, password: &str) -> Verification {
        let target = stored.unwrap_or(&self.dummy);
        let Ok(parsed) = PasswordHash::new(target) else {
            return Verification::Mismatch;
        };
        let ok = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if !ok || stored.is_none() {
            return Verification::Mismatch;
        }
        let current = Params::try_from(&parsed).ok();
        let needs_rehash = parsed.algorithm.as_str() != "argon2id"
            || current.is_none_or(|p| {
                p.m_cost() != self.params.memory_kib
                    || p.t_cost() != self.params.iterations
                    || p.p_cost() != self.params.parallelism
            });
        Verification::Match { needs_rehash }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pw: &str, two_fa: bool) -> Result<(), PasswordError> {
        check_password(
            &PasswordPolicy::default(),
            pw,
            &context_words("sarah.j@acme.example", "Acme Corp"),
            two_fa,
        )
    }

    #[test]
    fn nist_lengths() {
        assert_eq!(
            check("fourteen chars", false),
            Err(PasswordError::TooShort { min: 15 })
        );
        assert_eq!(check("fifteen chars!!", false), Ok(()));
        assert_eq!(check("eight ch", true), Ok(()));
        assert_eq!(
            check("seven c", true),
            Err(PasswordError::TooShort { min: 8 })
        );
        assert_eq!(check(&"x".repeat(128), false), Ok(()));
        assert_eq!(
            check(&"x".repeat(129), false),
            Err(PasswordError::TooLong { max: 128 })
        );
    }

    #[test]
    fn no_composition_rules_but_common_and_context_words_refused() {
        assert_eq!(check("all lower case words here", false), Ok(()));
        assert_eq!(check("Password1234567", false), Err(PasswordError::Common));
        assert_eq!(
            check("my sarah.j password", false),
            Err(PasswordError::ContextWord)
        );
        assert_eq!(
            check("i work at ACME CORP ok", false),
            Err(PasswordError::ContextWord)
        );
    }

    #[test]
    fn policy_bounds() {
        assert!(PasswordPolicy::default().validate().is_ok());
        assert!(
            PasswordPolicy {
                min_length_with_2fa: 6,
                ..PasswordPolicy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            PasswordPolicy {
                max_length: 32,
                ..PasswordPolicy::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn hashes_verify_and_flag_rehash() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let stored = h.hash("correct horse battery staple").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert_eq!(
            h.verify(Some(&stored), "correct horse battery staple"),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(h.verify(Some(&stored), "wrong"), Verification::Mismatch);
        assert_eq!(h.verify(None, "anything"), Verification::Mismatch);
        let stronger = PasswordHasher::new(HashParams {
            iterations: 3,
            ..HashParams::default()
        })
        .unwrap();
        assert_eq!(
            stronger.verify(Some(&stored), "correct horse battery staple"),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn weak_parameters_refused() {
        assert!(
            PasswordHasher::new(HashParams {
                memory_kib: 1024,
                ..HashParams::default()
            })
            .is_err()
        );
    }
}
