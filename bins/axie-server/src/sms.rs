//! The HTTP gateway adapter for text messages. Without a gateway, the store's SMS outbox
//! (`store_sea::SeaStore` as `SmsSender`) keeps them for the operator.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tenancy::StoreError;
use tenancy::mfa::SmsSender;

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
