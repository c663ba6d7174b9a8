//! Errors of the security-policy crate.

/// Why a password is refused. Messages are shown to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Shorter than the policy allows.
    #[error("the password must be at least {min} characters long")]
    TooShort {
        /// The minimum length.
        min: usize,
    },
    /// Longer than the policy allows (refused before hashing).
    #[error("the password must be at most {max} characters long")]
    TooLong {
        /// The maximum length.
        max: usize,
    },
    /// Longer in bytes (UTF-8) than any password is accepted
    /// ([`crate::MAX_PASSWORD_BYTES`]): a sign-in refuses such a password before hashing it,
    /// so none is set.
    #[error("the password must be at most {max} bytes long (characters outside ASCII take 2 to 4)")]
    TooManyBytes {
        /// The maximum length in bytes.
        max: usize,
    },
    /// On the bundled list of common passwords.
    #[error("this password is too common")]
    Common,
    /// Contains the email, its local part or the organization name.
    #[error("the password must not contain your email or organization name")]
    ContextWord,
}

/// Errors of the security primitives.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The input could not be parsed or breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The password breaks the policy.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A stored hash or ciphertext is corrupt, or the key is wrong.
    #[error("stored secret could not be read")]
    Corrupt,
}
