//! The HTTP gateway adapter for text messages. Without a gateway, the store's SMS outbox
//! (`store_sea::SeaStore` as `SmsSender`) keeps them for the operator, sealed
//! ([`SealedOutbox`]).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tenancy::StoreError;
use tenancy::mfa::SmsSender;

/// The SMS outbox for a server without a gateway: each text (a sign-in code) is encrypted
/// under the server's key, bound to its number, before the store keeps it, so that a copy of
/// the database does not hold the codes; `axie-server sms-outbox` opens them ([`open`]).
pub struct SealedOutbox {
    /// Where the texts are kept.
    pub store: std::sync::Arc<store_sea::SeaStore>,
    /// The server's key.
    pub cipher: std::sync::Arc<security_policy::Cipher>,
}

#[async_trait]
impl SmsSender for SealedOutbox {
    async fn send(&self, to: &str, text: &str) -> Result<(), StoreError> {
        let sealed = self
            .cipher
            .encrypt_bound(text.as_bytes(), &context(to))
            .map_err(StoreError::new)?;
        self.store.send(to, &sealed).await
    }
}

/// What a text sealed by [`SealedOutbox`] for `to` is bound to.
fn context(to: &str) -> Vec<u8> {
    format!("sms_outbox:{to}").into_bytes()
}

/// A text of the outbox as the operator reads it: opened when [`SealedOutbox`] sealed it,
/// as stored when an earlier version kept it in clear, and a note when it does not open
/// (another key: the one it was sealed under was rotated since).
#[must_use]
pub fn open(cipher: &security_policy::Cipher, to: &str, stored: &str) -> String {
    if !stored.starts_with("v2:") {
        return stored.to_owned();
    }
    cipher
        .decrypt_bound(stored, &context(to))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| "(sealed under another key)".to_owned())
}

/// Posts `{"to", "text"}` as JSON to a gateway URL, with an optional bearer token.
#[derive(Debug, Clone)]
pub struct HttpSms {
    client: reqwest::Client,
    url: String,
    token: SecretString,
}

impl HttpSms {
    /// A sender for `url`.
    #[must_use]
    pub fn new(client: reqwest::Client, url: String, token: SecretString) -> Self {
        Self { client, url, token }
    }
}

#[async_trait]
impl SmsSender for HttpSms {
    async fn send(&self, to: &str, text: &str) -> Result<(), StoreError> {
        let mut req = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "to": to, "text": text }));
        if !self.token.expose_secret().is_empty() {
            req = req.bearer_auth(self.token.expose_secret());
        }
        let res = req.send().await.map_err(StoreError::new)?;
        if !res.status().is_success() {
            return Err(StoreError::msg(format!(
                "the SMS gateway answered {}",
                res.status()
            )));
        }
        Ok(())
    }
}
