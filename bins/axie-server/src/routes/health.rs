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

/// The database answers and every migration is applied.
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
    st.store
        .ping()
        .await
        .map_err(|e| not_ready(format!("database unreachable: {e}")))?;
    let pending = st
        .store
        .pending_migrations()
        .await
        .map_err(|e| not_ready(format!("cannot read migrations: {e}")))?;
    if pending > 0 {
        return Err(not_ready(format!("{pending} migrations pending")));
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "database": st.store.backend_name() })))
}
