//! Liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers, every migration is applied and the background workers are alive.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Not ready", content_type = "application/problem+json")
))]
pub async fn readyz(st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let not_ready = |detail: String| {
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            detail,
        )
    };
    // The cause goes to the log, not to whoever asks (the route is public, and a storage error
    // may name the database's host, user or file).
    st.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness: the database does not answer");
        not_ready("database unreachable".into())
    })?;
    let pending = st.store.pending_migrations().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness: cannot read the applied migrations");
        not_ready("cannot read the applied migrations".into())
    })?;
    if pending > 0 {
        return Err(not_ready(format!("{pending} migrations pending")));
    }
    let stalled = st.health.stalled(st.clock.now().timestamp());
    if !stalled.is_empty() {
        return Err(not_ready(format!(
            "background workers not running: {}",
            stalled.join(", ")
        )));
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "database": st.store.backend_name() })))
}

/// Prometheus metrics (when `metrics.token` is set; send it as a bearer token).
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain"),
    (status = 401, description = "Missing or wrong token", content_type = "application/problem+json"),
    (status = 404, description = "Not served on this listener", content_type = "application/problem+json"),
))]
pub async fn metrics(
    st: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    use secrecy::ExposeSecret;
    let token = st.settings.metrics.token.expose_secret();
    if token.is_empty() {
        return Err(ApiError::not_found("route"));
    }
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !security_policy::constant_time_eq(given, token) {
        return Err(ApiError::unauthenticated());
    }
    Ok(scrape(&st).await)
}

/// The metrics answer.
pub async fn scrape(st: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::prom::render(st).await)
}
