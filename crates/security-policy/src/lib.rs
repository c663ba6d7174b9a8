//! # security-policy
//!
//! The security rules of an Axie Enterprise organization, as pure functions:
//! password policy and argon2id hashing ([`check_password`], [`PasswordHasher`]),
//! opaque tokens stored only as hashes ([`mint`], [`hash_token`]), session
//! lifetimes ([`check_session`]), IP allowlists with trusted-proxy handling
//! ([`check_ip`], [`admitted_by_any`], [`client_ip`]) and blocked countries
//! ([`check_country`], with addresses placed by a GeoIP database, [`GeoIp`]).
//!
//! Nothing here reads the clock, the network or a database: times, addresses
//! and stored values are arguments (a GeoIP database arrives as its bytes).
//!
//! ```
//! use security_policy::{check_ip, parse_allowlist, IpDecision};
//! let office = parse_allowlist(&["203.0.113.0/24".to_string()]).unwrap();
//! assert_eq!(check_ip(&office, "203.0.113.10".parse().unwrap()), IpDecision::Allowed);
//! assert_eq!(check_ip(&office, "198.51.100.1".parse().unwrap()), IpDecision::Denied);
//! ```
#![deny(missing_docs)]

mod cipher;
mod error;
mod geo;
mod ip;
mod mfa;
mod password;
mod session;
mod throttle;
mod token;

pub use cipher::{Cipher, SEALED_MAGIC};
pub use error::{PasswordError, SecurityError};
pub use geo::{Country, CountryDecision, GeoIp, Located, check_country, parse_countries};
pub use ip::{
    IpAllowlistEntry, IpDecision, MAX_ALLOWLIST_ENTRIES, MAX_ALLOWLIST_LABEL_CHARS,
    admitted_by_any, check_ip, client_ip, normalize, parse_allowlist, parse_allowlist_label,
};
pub use mfa::{
    MfaError, MfaRequirement, RECOVERY_CODES, SMS_CODE_MINUTES, SmsChallenge, TOTP_DIGITS,
    TOTP_SECRET_BYTES, TOTP_STEP_SECS, mfa_requirement, new_recovery_codes, new_sms_code,
    new_totp_secret, otpauth_uri, recovery_code_hash, secret_base32, sms_code_matches, totp_code,
    verify_totp,
};
pub use password::{
    HashParams, MAX_PASSWORD_BYTES, MIN_LENGTH_FLOOR, PasswordHasher, PasswordPolicy, Verification,
    check_password, context_words,
};
pub use session::{
    MAX_ABSOLUTE_TIMEOUT_MINUTES, SessionPolicy, SessionStatus, check_session, sessions_to_evict,
};
pub use throttle::{
    AddressThrottle, FAMILIAR_FAILURES_DURING_LOCK, LoginThrottlePolicy, NETWORK_FACTOR,
    NameThrottle, REFUSALS_RECORDED_PER_LOCK, RefusalMarks, ThrottleState, admits_familiar,
    after_failure, after_failure_from, after_familiar_failure, client_key, locked_until,
};
pub use token::{MintedToken, constant_time_eq, hash_token, mint};
