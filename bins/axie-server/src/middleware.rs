//! Request ids, request logging and security headers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use opentelemetry::propagation::TextMapPropagator as _;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The request id, in request extensions and the `x-request-id` response header.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Reads trace-context headers for the propagator.
struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(actix_web::http::header::HeaderName::as_str)
            .collect()
    }
}

/// Assigns a request id (or keeps a sane incoming one), logs the request, adds security headers.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    // Only a TLS connection terminated here counts (a proxy's headers are not trusted for this).
    let over_tls = req.app_config().secure();
    let method = req.method().to_string();
    // Field names follow OpenTelemetry's HTTP semantic conventions, so exported traces read
    // like any other service's.
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        request_id = %id,
        http.request.method = %req.method(),
        url.path = %req.path(),
        org = tracing::field::Empty,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    // A caller's W3C `traceparent` makes this request part of its trace (a no-op without export).
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&HeaderExtractor(req.headers()));
    let _ = span.set_parent(parent);
    let started = std::time::Instant::now();
    let res = next.call(req).instrument(span.clone()).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut res = as_problem(res.map_into_boxed_body());
    let status = res.status().as_u16();
    span.record("http.route", route.as_str());
    span.record("http.response.status_code", i64::from(status));
    crate::prom::request(&route, &method, status, started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request done"
        )
    });
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    for (k, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("cache-control", "no-store"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    if over_tls {
        h.insert(
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    Ok(res)
}

/// Errors produced by actix itself (payload limits, 405s, …) come as plain text: rewrite them
/// as RFC 9457 problem documents so every error has the same shape.
fn as_problem(
    res: ServiceResponse<actix_web::body::BoxBody>,
) -> ServiceResponse<actix_web::body::BoxBody> {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // SCIM answers with its own error documents.
            v.starts_with("application/problem+json") || v.starts_with("application/scim+json")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return res;
    }
    let (code, detail) = match status.as_u16() {
        413 => ("body_too_large", "the request body is too large"),
        404 => ("not_found", "not found"),
        405 => (
            "method_not_allowed",
            "this method is not allowed on this resource",
        ),
        408 => ("timeout", "the request took too long"),
        s if s >= 500 => ("internal", "an internal error occurred; it has been logged"),
        _ => ("invalid_request", "the request could not be processed"),
    };
    let err = crate::error::ApiError::new(status, code, detail);
    let (req, _) = res.into_parts();
    let mut answer = actix_web::ResponseError::error_response(&err);
    if status == actix_web::http::StatusCode::METHOD_NOT_ALLOWED {
        let allow = req
            .match_pattern()
            .map(|p| crate::routes::allowed_methods(&p))
            .unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&allow) {
            answer
                .headers_mut()
                .insert(actix_web::http::header::ALLOW, v);
        }
    }
    ServiceResponse::new(req, answer)
}
