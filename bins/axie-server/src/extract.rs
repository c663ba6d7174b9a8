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

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

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
        // The body is checked as text (a tree of it could take far more memory than its
        // bytes, before anyone is authenticated), then read into `T` as actix would.
        let raw = web::Json::<Box<serde_json::value::RawValue>>::from_request(req, payload);
        Box::pin(async move {
            let raw = raw.await?.into_inner();
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
/// `QueryConfig`, refused with 400 `invalid_query` when it holds a NUL character (`%00`).
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

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if query_holds_nul(req) {
            return std::future::ready(
                Err(nul_refused("invalid_query", "the query string").into()),
            );
        }
        let query = web::Query::<T>::from_request(req, payload).into_inner();
        std::future::ready(query.map(|q| Query(q.into_inner())))
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
