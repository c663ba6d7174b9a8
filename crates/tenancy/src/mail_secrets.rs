//! One-time tokens in queued mail, sealed at rest.
//!
//! Invitation and password-reset mail carries its token (in the link and on a line of its
//! own) while it waits in the outbox: until SMTP takes it, or for as long as the operator
//! delivers by hand when no relay is configured. The database keeps only hashes of those
//! tokens, and the mail must not undo that: with a [`MailSealer`] the body holds each token as
//! a sealed marker (`␁sealed:v2:…␁`, between two U+0001 characters, AES-256-GCM under the
//! server's encryption key, bound to the recipient's address), which the mail worker opens just before handing the mail to SMTP
//! ([`open_body`]) and the outbox opens for the Owner. Someone who reads the database or a
//! backup, but not the key, finds no usable token. Without a sealer (an embedder's unit tests,
//! say) the token is written as it is.

use security_policy::{Cipher, SecurityError};

// Delimited by a control character, which no name, email or other text a person gives can
// hold (`valid_name` refuses them): text in a body is never taken for a marker, so nobody can
// make a mail that mentions them undeliverable by writing a marker-like name.
const OPEN: &str = "\u{1}sealed:";
const CLOSE: &str = "\u{1}";

/// What a sealed token is bound to: the address the mail goes to, so a marker copied into
/// another person's mail does not open there.
fn context(to: &str) -> Vec<u8> {
    format!("axie/mail-token/{to}").into_bytes()
}

/// Seals the tokens a mail body carries, or (without a key) leaves them as they are.
#[derive(Clone, Default)]
pub struct MailSealer(Option<Cipher>);

impl std::fmt::Debug for MailSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MailSealer")
            .field(&self.0.as_ref().map(|_| "key"))
            .finish()
    }
}

impl MailSealer {
    /// Seals with `cipher` (the server's encryption key).
    #[must_use]
    pub fn new(cipher: Cipher) -> Self {
        Self(Some(cipher))
    }

    /// Leaves tokens as they are.
    #[must_use]
    pub fn none() -> Self {
        Self(None)
    }

    /// The text a body to `to` carries for `token`: its sealed marker, or the token itself
    /// without a key (or, never in practice, should the cipher refuse).
    #[must_use]
    pub fn token(&self, to: &str, token: &str) -> String {
        match &self.0 {
            Some(c) => match c.encrypt_bound(token.as_bytes(), &context(to)) {
                Ok(sealed) => format!("{OPEN}{sealed}{CLOSE}"),
                Err(_) => token.to_owned(),
            },
            None => token.to_owned(),
        }
    }
}

/// The text a body's sealed tokens begin with, for a store to find such bodies.
pub const MARKER_START: &str = OPEN;

/// Whether `body` holds a sealed token.
#[must_use]
pub fn has_sealed(body: &str) -> bool {
    body.contains(OPEN)
}

/// `body` with every sealed marker replaced by what `open` makes of its sealed text.
fn replace_markers(
    body: &str,
    mut open: impl FnMut(&str) -> Result<String, SecurityError>,
) -> Result<String, SecurityError> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            return Err(SecurityError::Corrupt);
        };
        out.push_str(&open(&after[..end])?);
        rest = &after[end + CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `body`, sent to `to`, with its sealed tokens opened: what the mail worker hands to SMTP.
///
/// # Errors
/// [`SecurityError::Corrupt`] when a marker does not open with `cipher` for `to` (another key,
/// another recipient, an edited marker).
pub fn open_body(cipher: &Cipher, to: &str, body: &str) -> Result<String, SecurityError> {
    let ctx = context(to);
    replace_markers(body, |sealed| {
        let plain = cipher.decrypt_bound(sealed, &ctx)?;
        String::from_utf8(plain).map_err(|_| SecurityError::Corrupt)
    })
}

/// [`open_body`] for people to read (the outbox): a marker that does not open is shown as
/// such rather than failing the page.
#[must_use]
pub fn open_body_for_display(cipher: &Cipher, to: &str, body: &str) -> String {
    open_body(cipher, to, body).unwrap_or_else(|_| {
        replace_markers(body, |_| {
            Ok("[a sealed token that does not open with the configured key]".to_owned())
        })
        .unwrap_or_default()
    })
}

/// `body`'s sealed tokens sealed again under `new` (a key rotation); `None` when it holds none.
///
/// # Errors
/// [`SecurityError::Corrupt`] when a marker does not open with `old`.
pub fn reseal_body(
    old: &Cipher,
    new: &Cipher,
    to: &str,
    body: &str,
) -> Result<Option<String>, SecurityError> {
    if !has_sealed(body) {
        return Ok(None);
    }
    let ctx = context(to);
    replace_markers(body, |sealed| {
        let plain = old.decrypt_bound(sealed, &ctx)?;
        Ok(format!("{OPEN}{}{CLOSE}", new.encrypt_bound(&plain, &ctx)?))
    })
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::from_text(&Cipher::generate_key()).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_recipient() {
        let (key, other) = (cipher(), cipher());
        let sealer = MailSealer::new(key.clone());
        let token = "inv_0123456789abcdef";
        let marker = sealer.token("ann@example.com", token);
        let body = format!("Accept:\nhttps://app/accept#token={marker}\n\nYour token: {marker}\n");
        assert!(has_sealed(&body) && !body.contains(token), "{body}");
        assert_eq!(
            open_body(&key, "ann@example.com", &body).unwrap(),
            format!("Accept:\nhttps://app/accept#token={token}\n\nYour token: {token}\n")
        );
        // Another recipient's mail, another key, an edited marker: nothing opens.
        assert!(open_body(&key, "eve@example.com", &body).is_err());
        assert!(open_body(&other, "ann@example.com", &body).is_err());
        let edited = body.replacen("sealed:v2:", "sealed:v2:A", 1);
        assert!(open_body(&key, "ann@example.com", &edited).is_err());
        let unterminated = format!("link {OPEN}v2:AAAA");
        assert!(open_body(&key, "ann@example.com", &unterminated).is_err());
        // Text a person gives (no control characters) is never taken for a marker.
        let lookalike = "Team {{sealed:v2:AAAA}} sealed:v2:AAAA";
        assert_eq!(
            open_body(&key, "ann@example.com", lookalike).unwrap(),
            lookalike
        );
        let shown = open_body_for_display(&other, "ann@example.com", &body);
        assert!(
            shown.contains("does not open") && !shown.contains(token),
            "{shown}"
        );
        // A body without markers is left alone, and without a key tokens are written as such.
        assert_eq!(open_body(&key, "x", "plain").unwrap(), "plain");
        assert_eq!(MailSealer::none().token("ann@example.com", token), token);
    }

    #[test]
    fn a_rotation_seals_again_under_the_new_key() {
        let (old, new) = (cipher(), cipher());
        let body = format!(
            "link {} end",
            MailSealer::new(old.clone()).token("ann@example.com", "tok")
        );
        let again = reseal_body(&old, &new, "ann@example.com", &body)
            .unwrap()
            .unwrap();
        assert_eq!(
            open_body(&new, "ann@example.com", &again).unwrap(),
            "link tok end"
        );
        assert!(open_body(&old, "ann@example.com", &again).is_err());
        assert_eq!(reseal_body(&old, &new, "x", "plain").unwrap(), None);
        assert!(reseal_body(&new, &old, "ann@example.com", &body).is_err());
    }
}
