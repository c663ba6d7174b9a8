//! AES-256-GCM for secrets that must be recoverable (webhook signing secrets, TOTP secrets)
//! and for stored files (documents' bytes).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

use crate::error::SecurityError;

/// Encrypts and decrypts with one 256-bit key, with a random 96-bit nonce each time.
///
/// Secrets kept in a database row are encrypted with [`Cipher::encrypt_bound`]: the ciphertext
/// (`v2:<base64(nonce ‖ ct)>`) is bound to a context naming its row (authenticated as
/// associated data, not stored), so a value copied onto another row — someone's TOTP secret
/// over another person's, one endpoint's signing secret over another's — does not open.
/// [`Cipher::encrypt`] (`v1:`, unbound) is what earlier versions wrote; stores rewrite such
/// values bound ([`Cipher::rebind`]).
#[derive(Clone)]
pub struct Cipher(Aes256Gcm, [u8; 32]);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

impl Cipher {
    /// A cipher from 32 key bytes.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        use hmac::Mac as _;
        // A key of its own for [`Cipher::digest`], derived from this one: the two are never
        // used with one key.
        let mut derive = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        derive.update(b"axie security-policy cipher: digest key v1");
        Self(
            Aes256Gcm::new(key.into()),
            derive.finalize().into_bytes().into(),
        )
    }

    /// A keyed digest (HMAC-SHA-256, hex) of `data` for `purpose`, under a key derived from
    /// this cipher's: for low-entropy secrets that are checked, not read back (a six-digit SMS
    /// code), whose plain hash anyone with the database could reverse by trying every value.
    #[must_use]
    pub fn digest(&self, purpose: &str, data: &[u8]) -> String {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.1)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// A cipher from a base64 or hex key of 32 bytes.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] when the text is not 32 bytes in base64 or hex.
    pub fn from_text(key: &str) -> Result<Self, SecurityError> {
        let k = key.trim();
        let bytes = hex::decode(k)
            .ok()
            .filter(|b| b.len() == 32)
            .or_else(|| B64.decode(k).ok().filter(|b| b.len() == 32));
        let bytes: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
            SecurityError::Invalid("the encryption key must be 32 bytes, hex or base64".into())
        })?;
        Ok(Self::new(&bytes))
    }

    /// A fresh random key as hex, for first start.
    #[must_use]
    pub fn generate_key() -> String {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        hex::encode(k)
    }

    /// `nonce ‖ ciphertext` of `plain` under a fresh random nonce, `aad` authenticated with it
    /// (an empty `aad` is what AES-GCM without associated data computes).
    fn seal_raw(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecurityError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| SecurityError::Corrupt)?;
        let mut out = Vec::with_capacity(nonce.len() + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Cipher::seal_raw`] made with the same `aad`.
    fn open_raw(&self, raw: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecurityError> {
        if raw.len() < 12 + 16 {
            return Err(SecurityError::Corrupt);
        }
        let (nonce, ct) = raw.split_at(12);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SecurityError::Corrupt)
    }

    /// The bytes after `prefix` in base64 text.
    fn text_body(text: &str, prefix: &str) -> Result<Vec<u8>, SecurityError> {
        text.strip_prefix(prefix)
            .and_then(|b| B64.decode(b).ok())
            .ok_or(SecurityError::Corrupt)
    }

    /// Encrypts `plain`, bound to nothing (`v1:`): prefer [`Cipher::encrypt_bound`].
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] if the AEAD refuses (it does not for sane input sizes).
    pub fn encrypt(&self, plain: &[u8]) -> Result<String, SecurityError> {
        Ok(format!("v1:{}", B64.encode(self.seal_raw(plain, b"")?)))
    }

    /// Decrypts a value from [`Cipher::encrypt`].
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] for tampered data or another key.
    pub fn decrypt(&self, text: &str) -> Result<Vec<u8>, SecurityError> {
        self.open_raw(&Self::text_body(text, "v1:")?, b"")
    }

    /// Encrypts `plain` bound to `context` (for example `axie/totp/usr_…`): the value opens
    /// only with the same key and context.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] if the AEAD refuses (it does not for sane input sizes).
    pub fn encrypt_bound(&self, plain: &[u8], context: &[u8]) -> Result<String, SecurityError> {
        Ok(format!("v2:{}", B64.encode(self.seal_raw(plain, context)?)))
    }

    /// Decrypts a value from [`Cipher::encrypt_bound`] with the same `context`. An unbound
    /// (`v1:`) value is refused: it could have been copied from any row.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] for tampered data, another key, another context or an
    /// unbound value.
    pub fn decrypt_bound(&self, text: &str, context: &[u8]) -> Result<Vec<u8>, SecurityError> {
        self.open_raw(&Self::text_body(text, "v2:")?, context)
    }

    /// For a store upgrading what it holds: a value from [`Cipher::encrypt`] (unbound, as
    /// earlier versions wrote) encrypted again bound to `context`; `None` when `text` is
    /// bound already.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] when `text` is unbound and does not open with this key.
    pub fn rebind(&self, text: &str, context: &[u8]) -> Result<Option<String>, SecurityError> {
        if !text.starts_with("v1:") {
            return Ok(None);
        }
        let plain = self.decrypt(text)?;
        self.encrypt_bound(&plain, context).map(Some)
    }
}

/// The first bytes of a file sealed by [`Cipher::seal`].
pub const SEALED_MAGIC: &[u8; 4] = b"AXB1";

impl Cipher {
    /// Seals `plain` as binary `AXB1 ‖ nonce ‖ ciphertext`, bound to `name` (authenticated as
    /// associated data): a sealed file opens only under the name it was sealed for, so files
    /// swapped on disk are refused, not served as each other.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] if the AEAD refuses (it does not for sane input sizes).
    pub fn seal(&self, plain: &[u8], name: &[u8]) -> Result<Vec<u8>, SecurityError> {
        let raw = self.seal_raw(plain, name)?;
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + raw.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&raw);
        Ok(out)
    }

    /// Opens what [`Cipher::seal`] sealed for `name`.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] for tampered or truncated data, another key or another name.
    pub fn open(&self, sealed: &[u8], name: &[u8]) -> Result<Vec<u8>, SecurityError> {
        let raw = sealed
            .strip_prefix(SEALED_MAGIC.as_slice())
            .ok_or(SecurityError::Corrupt)?;
        self.open_raw(raw, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let c = Cipher::from_text(&Cipher::generate_key()).unwrap();
        let a = c.encrypt(b"whsec secret").unwrap();
        let b = c.encrypt(b"whsec secret").unwrap();
        assert_ne!(a, b, "random nonces");
        assert_eq!(c.decrypt(&a).unwrap(), b"whsec secret");
        let mut t = a.clone().into_bytes();
        let last = t.len() - 2;
        t[last] = if t[last] == b'A' { b'B' } else { b'A' };
        assert!(c.decrypt(&String::from_utf8(t).unwrap()).is_err());
        let other = Cipher::from_text(&Cipher::generate_key()).unwrap();
        assert!(other.decrypt(&a).is_err());
        assert!(Cipher::from_text("short").is_err());
    }

    #[test]
    fn bound_secrets_open_only_under_their_key_and_context() {
        let c = Cipher::from_text(&Cipher::generate_key()).unwrap();
        let a = c.encrypt_bound(b"JBSWY3DP", b"axie/totp/usr_a").unwrap();
        assert!(a.starts_with("v2:"));
        assert_ne!(a, c.encrypt_bound(b"JBSWY3DP", b"axie/totp/usr_a").unwrap());
        assert_eq!(
            c.decrypt_bound(&a, b"axie/totp/usr_a").unwrap(),
            b"JBSWY3DP"
        );
        assert!(
            c.decrypt_bound(&a, b"axie/totp/usr_b").is_err(),
            "copied onto another row"
        );
        assert!(c.decrypt(&a).is_err(), "not an unbound value");
        let other = Cipher::from_text(&Cipher::generate_key()).unwrap();
        assert!(other.decrypt_bound(&a, b"axie/totp/usr_a").is_err());
        // An unbound value is refused where a bound one is expected, and rebinding makes one.
        let legacy = c.encrypt(b"JBSWY3DP").unwrap();
        assert!(c.decrypt_bound(&legacy, b"axie/totp/usr_a").is_err());
        let bound = c.rebind(&legacy, b"axie/totp/usr_a").unwrap().unwrap();
        assert_eq!(
            c.decrypt_bound(&bound, b"axie/totp/usr_a").unwrap(),
            b"JBSWY3DP"
        );
        assert_eq!(c.rebind(&bound, b"axie/totp/usr_a").unwrap(), None);
        assert!(other.rebind(&legacy, b"axie/totp/usr_a").is_err());
        assert!(c.decrypt_bound("v2:AAAA", b"x").is_err(), "truncated");
    }

    #[test]
    fn sealed_files_open_only_under_their_key_and_name() {
        let c = Cipher::from_text(&Cipher::generate_key()).unwrap();
        let plain = b"# FAQ\nHow do I reset my password?".repeat(100);
        let sealed = c.seal(&plain, b"res_1").unwrap();
        assert!(sealed.starts_with(SEALED_MAGIC));
        assert!(
            !sealed.windows(6).any(|w| w == b"# FAQ\n"),
            "the plaintext is not on disk"
        );
        assert_ne!(sealed, c.seal(&plain, b"res_1").unwrap(), "random nonces");
        assert_eq!(c.open(&sealed, b"res_1").unwrap(), plain);
        assert!(c.open(&sealed, b"res_2").is_err(), "bound to its name");
        let mut flipped = sealed.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        assert!(c.open(&flipped, b"res_1").is_err(), "tampering is detected");
        assert!(c.open(&sealed[..30], b"res_1").is_err(), "truncation too");
        let other = Cipher::from_text(&Cipher::generate_key()).unwrap();
        assert!(other.open(&sealed, b"res_1").is_err());
        assert_eq!(c.open(&c.seal(b"", b"e").unwrap(), b"e").unwrap(), b"");
    }
}
