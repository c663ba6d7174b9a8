//! Opaque secrets (session tokens, API keys, invitation tokens): random, shown once, stored hashed.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly minted secret: the text to hand out once, and the hash to store.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// The secret, `<prefix>_<base32-ish hex>`; never stored.
    pub secret: String,
    /// SHA-256 of the secret, hex; what the store keeps and looks up by.
    pub hash: String,
    /// A short visible prefix for lists (`axk_3f9a1c`), safe to store and show.
    pub display_prefix: String,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("display_prefix", &self.display_prefix)
            .finish_non_exhaustive()
    }
}

/// Mints a token of `bytes` random bytes (at least 16, i.e. 128 bits) with a readable prefix.
#[must_use]
pub fn mint(prefix: &str, bytes: usize) -> MintedToken {
    let mut buf = vec![0u8; bytes.max(16)];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    let secret = format!("{prefix}_{}", hex::encode(&buf));
    let display_prefix = secret.chars().take(prefix.len() + 1 + 8).collect();
    MintedToken {
        hash: hash_token(&secret),
        secret,
        display_prefix,
    }
}

/// The stored form of a token: hex SHA-256. Tokens carry 128+ bits of entropy, so a
/// fast hash is enough (no password stretching needed).
#[must_use]
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets or hashes in constant time.
#[must_use]
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_long_unique_and_hash_consistently() {
        let a = mint("axk", 32);
        let b = mint("axk", 32);
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("axk_"));
        assert_eq!(a.secret.len(), 4 + 64);
        assert_eq!(hash_token(&a.secret), a.hash);
        assert!(a.secret.starts_with(&a.display_prefix));
        assert!(
            !format!("{a:?}").contains(&a.secret),
            "Debug hides the secret"
        );
    }

    #[test]
    fn short_requests_still_get_128_bits() {
        assert_eq!(mint("x", 4).secret.len(), 2 + 32);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
