//! The JSON body and query-string extractors of the API's routes, which refuse text no database
//! keeps.
//!
//! PostgreSQL's `text` cannot hold the NUL character (U+0000): a name, an email or a description
//! carrying one (JSON spells it `\u0000`, a query string `%00`) would fail the write or the
//! search with a storage error, a 500, where SQLite would keep it. Text with a NUL is refused as
//! the request's fault on both databases instead, before any handler runs: 400 `invalid_body`
//! ([`Json`]) or `invalid_query` ([`Query`]). (Path segments are ids, or names held to a
//! pattern such as a consent purpose's slug: one with a NUL names nothing and is refused as such,
//! 404 or 422.)
//!
//! A body is read, and a query string judged, only once the request's caller is known: the
//! extractors that authenticate ([`crate::auth::OrgCaller`], [`crate::auth::Authenticated`])
//! hold a [`CallerPending`] while they run, and the extractors here wait for it (every one of
//! a handler's: a query and a body alike). actix runs a handler's extractors side by
//! side, and a body that fails at once (a wrong content type, a size over the limit) would
//! otherwise be answered before the caller: 415 or 413 to someone not signed in, where 401 is
//! due, and no `access.denied` record for a request an IP allowlist or a 2FA requirement
//! refuses. It also spares the server reading a body for anyone not signed in. A body must
//! arrive within `server.body_timeout_secs` ([`read_in_time`]), or the request is answered 408.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// Held by an extractor that authenticates the request while it runs; when it is dropped (the
/// caller known, or refused) the request's query and body may be judged.
#[must_use]
pub struct CallerPending(
    #[allow(dead_code, reason = "held only to be dropped")] tokio::sync::watch::Sender<()>,
);

/// What the extractors here wait on: the other end of the request's [`CallerPending`], which
/// each of them watches for its closing.
struct CallerGate(tokio::sync::watch::Receiver<()>);

/// Marks the request's caller as not known yet, until the returned guard is dropped. Call it
/// in `from_request` (handlers list their caller before their query and body, so the
/// extractors made after it find the gate).
pub fn caller_pending(req: &HttpRequest) -> CallerPending {
    let (tx, rx) = tokio::sync::watch::channel(());
    req.extensions_mut().insert(CallerGate(rx));
    CallerPending(tx)
}

/// Waits until the request's caller is known, when an extractor is finding it out.
fn caller_known(req: &HttpRequest) -> impl Future<Output = ()> + 'static {
    let gate = req.extensions().get::<CallerGate>().map(|g| g.0.clone());
    async move {
        if let Some(mut gate) = gate {
            // Nothing is ever sent: the guard's drop closes the channel, which ends the wait
            // (at once, when it was dropped before this began).
            while gate.changed().await.is_ok() {}
        }
    }
}

/// How long a body may take to arrive (`server.body_timeout_secs`).
pub fn body_timeout(req: &HttpRequest) -> Duration {
    Duration::from_secs(
        req.app_data::<web::Data<AppState>>()
            .map_or(30, |st| st.settings.server.body_timeout_secs),
    )
}

/// The refusal of a body that did not arrive in time.
pub fn body_too_slow(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        format!(
            "the request body did not arrive within {} s",
            limit.as_secs()
        ),
    )
}

/// `read`, the reading of a body, given `limit` to finish, or 408.
pub async fn read_in_time<T>(
    limit: Duration,
    read: impl Future<Output = Result<T, actix_web::Error>>,
) -> Result<T, actix_web::Error> {
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| Err(body_too_slow(limit).into()))
}

/// A JSON request body deserialized into `T`, as `actix_web::web::Json` with the server's
/// `JsonConfig` (size limit, content type, problem+json errors), refused with 400
/// `invalid_body` when any string or key in it holds a NUL character.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The deserialized body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let known = caller_known(req);
        let (req, mut payload) = (req.clone(), payload.take());
        Box::pin(async move {
            known.await;
            // The body is checked as text (a tree of it could take far more memory than its
            // bytes), then read into `T` as actix would.
            let raw = read_in_time(
                body_timeout(&req),
                web::Json::<Box<serde_json::value::RawValue>>::from_request(&req, &mut payload),
            )
            .await?
            .into_inner();
            if text_holds_nul(raw.get()) {
                return Err(nul_refused("invalid_body", "the JSON body").into());
            }
            serde_json::from_str(raw.get()).map(Json).map_err(|d| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("the JSON body is invalid: {d}"),
                )
                .into()
            })
        })
    }
}

/// A request body as bytes, as `actix_web::web::Bytes` with the server's `PayloadConfig` (size
/// limit), read once the caller is known and within `server.body_timeout_secs`.
#[derive(Debug)]
pub struct Bytes(pub web::Bytes);

impl FromRequest for Bytes {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let known = caller_known(req);
        let (req, mut payload) = (req.clone(), payload.take());
        Box::pin(async move {
            known.await;
            read_in_time(
                body_timeout(&req),
                web::Bytes::from_request(&req, &mut payload),
            )
            .await
            .map(Bytes)
        })
    }
}

/// Whether valid JSON text spells U+0000 in a string or key: raw control characters are not
/// valid JSON, so a NUL can only be the escape `\u0000` (backslashes appear only in escapes).
pub fn text_holds_nul(json: &str) -> bool {
    let b = json.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'u') && b.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a string or an object key anywhere in `value` holds U+0000.
pub fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The refusal of text with a NUL character in `place`, as `code`.
fn nul_refused(code: &'static str, place: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        code,
        format!("{place} holds a NUL character (U+0000), which no text may contain"),
    )
}

/// Whether the request's query string, decoded, holds U+0000 (`%00`).
pub fn query_holds_nul(req: &HttpRequest) -> bool {
    percent_encoding::percent_decode_str(req.query_string()).any(|b| b == 0)
}

/// A query string deserialized into `T`, as `actix_web::web::Query` with the server's
/// `QueryConfig`, refused with 400 `invalid_query` when it holds a NUL character (`%00`);
/// judged once the caller is known (someone not signed in gets 401 for a bad query too).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    /// The deserialized query.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let known = caller_known(req);
        let req = req.clone();
        Box::pin(async move {
            known.await;
            if query_holds_nul(&req) {
                return Err(nul_refused("invalid_query", "the query string").into());
            }
            web::Query::<T>::extract(&req)
                .await
                .map(|q| Query(q.into_inner()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::holds_nul;
    use serde_json::json;

    #[test]
    fn a_nul_anywhere_in_the_body_is_found() {
        assert!(!holds_nul(
            &json!({"name": "Customer Support", "tags": ["a", 1, null, {"b": true}]})
        ));
        assert!(holds_nul(&json!({"name": "a\u{0}b"})));
        assert!(holds_nul(&json!({"deep": [{"x": ["ok", "\u{0}"]}]})));
        assert!(holds_nul(&json!({"ke\u{0}y": 1})));
        assert!(holds_nul(&json!("\u{0}")));
        // The six characters `\u0000` written as text are no NUL.
        let escaped: serde_json::Value = serde_json::from_str(r#"{"a": "\\u0000"}"#).unwrap();
        assert!(!holds_nul(&escaped));
        let real: serde_json::Value = serde_json::from_str(r#"{"a": "\u0000"}"#).unwrap();
        assert!(holds_nul(&real));
    }

    #[test]
    fn the_text_check_agrees_with_the_parsed_value() {
        for text in [
            r#"{"a": "\u0000"}"#,
            r#"{"a": "\\u0000"}"#,
            r#"{"a": "\\\u0000"}"#,
            r#"{"k\u0000": 1}"#,
            r#"["x", {"b": ["\u00001"]}]"#,
            r#"{"a": "\u0001", "b": "u0000"}"#,
            r#"{"a": "\"\\"}"#,
        ] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(super::text_holds_nul(text), holds_nul(&value), "{text}");
        }
    }
}
