//! AES-256-GCM for secrets that must be recoverable (webhook signing secrets, TOTP secrets)
//! and for stored files (documents' bytes).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

use crate::error::SecurityError;

/// Encrypts and decrypts with one 256-bit key. Ciphertexts are `v1:<base64(nonce ‖ ct)>`
/// with a random 96-bit nonce each time.
#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

impl Cipher {
    /// A cipher from 32 key bytes.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
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

    /// Encrypts `plain`.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] if the AEAD refuses (it does not for sane input sizes).
    pub fn encrypt(&self, plain: &[u8]) -> Result<String, SecurityError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|_| SecurityError::Corrupt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("v1:{}", B64.encode(out)))
    }

    /// Decrypts a value from [`Cipher::encrypt`].
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] for tampered data or another key.
    pub fn decrypt(&self, text: &str) -> Result<Vec<u8>, SecurityError> {
        let raw = text
            .strip_prefix("v1:")
            .and_then(|b| B64.decode(b).ok())
            .ok_or(SecurityError::Corrupt)?;
        if raw.len() < 12 + 16 {
            return Err(SecurityError::Corrupt);
        }
        let (nonce, ct) = raw.split_at(12);
        self.0
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SecurityError::Corrupt)
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
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: name,
                },
            )
            .map_err(|_| SecurityError::Corrupt)?;
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + nonce.len() + ct.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Cipher::seal`] sealed for `name`.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] for tampered or truncated data, another key or another name.
    pub fn open(&self, sealed: &[u8], name: &[u8]) -> Result<Vec<u8>, SecurityError> {
        let raw = sealed
            .strip_prefix(SEALED_MAGIC.as_slice())
            .filter(|r| r.len() >= 12 + 16)
            .ok_or(SecurityError::Corrupt)?;
        let (nonce, ct) = raw.split_at(12);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: name })
            .map_err(|_| SecurityError::Corrupt)
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
