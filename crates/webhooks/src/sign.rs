//! Signatures: the guide's `X-Webhook-Signature: sha256=<hex>` over `{timestamp}.{body}`,
//! and the Standard Webhooks `webhook-signature: v1,<base64>` over `{id}.{timestamp}.{body}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::WebhookError;

type HmacSha256 = Hmac<Sha256>;

/// Accepted clock skew for receivers, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// A signing secret (at least 24 random bytes). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Wraps raw key bytes.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] for fewer than 24 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, WebhookError> {
        if bytes.len() < 24 {
            return Err(WebhookError::Invalid(
                "a signing secret has at least 24 bytes".into(),
            ));
        }
        Ok(Self(bytes))
    }

    /// A new random secret of 32 bytes.
    #[must_use]
    pub fn generate() -> Self {
        let mut b = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        Self(b)
    }

    /// The Standard Webhooks text form, `whsec_<base64>`, shown to the customer once.
    #[must_use]
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", B64.encode(&self.0))
    }

    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] for anything else.
    pub fn from_whsec(s: &str) -> Result<Self, WebhookError> {
        let b64 = s
            .strip_prefix("whsec_")
            .ok_or_else(|| WebhookError::Invalid("a secret starts with `whsec_`".into()))?;
        Self::from_bytes(
            B64.decode(b64)
                .map_err(|_| WebhookError::Invalid("the secret is not base64".into()))?,
        )
    }

    /// The raw key bytes (for encryption at rest).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac())
    }
}

#[allow(
    clippy::panic,
    reason = "HMAC-SHA256 accepts every key length; this cannot run"
)]
fn unreachable_hmac() -> HmacSha256 {
    panic!("HMAC rejected a key")
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, `{timestamp}.{body}`): the guide's header.
#[must_use]
pub fn axie_signature(secret: &SigningSecret, timestamp: i64, body: &[u8]) -> String {
    let mut m = secret.mac();
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// `v1,<base64>` of HMAC-SHA256(secret, `{id}.{timestamp}.{body}`): Standard Webhooks.
#[must_use]
pub fn standard_signature(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = secret.mac();
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("v1,{}", B64.encode(m.finalize().into_bytes()))
}

/// Why a received webhook is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is missing or not a number.
    #[error("missing or malformed timestamp")]
    BadTimestamp,
    /// Older or newer than the tolerance allows. This bounds a replay to the tolerance; within
    /// it, a receiver that must not act twice drops a `webhook-id` it has seen (the id is signed
    /// in the Standard Webhooks headers, [`standard_signature`]).
    #[error("timestamp outside the tolerance")]
    Expired,
    /// No signature matches any of the secrets.
    #[error("no valid signature")]
    BadSignature,
}

/// Receiver-side verification of the guide's headers, for Rust users.
///
/// `signature_header` may hold several space-separated `sha256=…` values (during secret
/// rotation); any match of any secret passes. Comparison is constant-time.
///
/// # Errors
/// [`VerifyError`] describing the first failing check.
pub fn verify(
    secrets: &[SigningSecret],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    // Checked: the header is the sender's, unauthenticated yet, and `i64::MIN` must not
    // overflow the subtraction.
    if now_unix
        .checked_sub(ts)
        .is_none_or(|d| d.unsigned_abs() > TOLERANCE_SECS.unsigned_abs())
    {
        return Err(VerifyError::Expired);
    }
    // Each secret's tag is computed once, however many signatures the header holds: the
    // header is the sender's, and hundreds of values must not cost hundreds of passes over
    // the body.
    let tags: Vec<_> = secrets
        .iter()
        .map(|s| {
            let mut m = s.mac();
            m.update(ts.to_string().as_bytes());
            m.update(b".");
            m.update(body);
            m.finalize().into_bytes()
        })
        .collect();
    for candidate in signature_header.split_whitespace() {
        let Some(hex_sig) = candidate.strip_prefix("sha256=") else {
            continue;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            continue;
        };
        if tags.iter().any(|tag| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                tag.as_slice(),
                sig.as_slice(),
            ))
        }) {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SigningSecret {
        SigningSecret::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }

    #[test]
    fn signs_and_verifies_with_tolerance() {
        let s = secret();
        let body = br#"{"event":"user.created"}"#;
        let sig = axie_signature(&s, 1_732_294_800, body);
        assert!(sig.starts_with("sha256="));
        assert_eq!(
            verify(
                std::slice::from_ref(&s),
                "1732294800",
                &sig,
                body,
                1_732_294_800 + 300
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                std::slice::from_ref(&s),
                "1732294800",
                &sig,
                body,
                1_732_294_800 + 301
            ),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify(
                std::slice::from_ref(&s),
                "1732294801",
                &sig,
                body,
                1_732_294_801
            ),
            Err(VerifyError::BadSignature),
            "the timestamp is signed"
        );
        assert_eq!(
            verify(
                std::slice::from_ref(&s),
                "1732294800",
                &sig,
                b"{}",
                1_732_294_800
            ),
            Err(VerifyError::BadSignature)
        );
        // Timestamps at the ends of the range are refused as too old or new, not overflowed
        // (a panic with overflow checks on).
        for (ts, now) in [
            (i64::MIN, 1_732_294_800),
            (i64::MAX, -1_732_294_800),
            (i64::MIN, i64::MAX),
        ] {
            assert_eq!(
                verify(std::slice::from_ref(&s), &ts.to_string(), &sig, body, now),
                Err(VerifyError::Expired),
                "{ts} at {now}"
            );
        }
        assert_eq!(
            verify(&[s], "soon", &sig, body, 0),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn rotation_sends_both_signatures_and_either_secret_verifies() {
        let old = secret();
        let new = SigningSecret::generate();
        let body = b"x";
        let header = format!(
            "{} {}",
            axie_signature(&new, 10, body),
            axie_signature(&old, 10, body)
        );
        assert_eq!(
            verify(std::slice::from_ref(&old), "10", &header, body, 10),
            Ok(())
        );
        assert_eq!(verify(&[new], "10", &header, body, 10), Ok(()));
        assert_eq!(
            verify(&[SigningSecret::generate()], "10", &header, body, 10),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn whsec_round_trip_and_debug_hides() {
        let s = SigningSecret::generate();
        assert_eq!(SigningSecret::from_whsec(&s.to_whsec()).unwrap(), s);
        assert!(SigningSecret::from_bytes(vec![1; 23]).is_err());
        assert_eq!(format!("{s:?}"), "SigningSecret(…)");
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's example.
        let s = SigningSecret::from_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = standard_signature(
            &s,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
