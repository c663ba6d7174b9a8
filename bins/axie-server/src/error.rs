//! The one place where domain errors become HTTP: RFC 9457 `application/problem+json`.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};
use tenancy::TenancyError;

/// An error answer. 5xx bodies are generic; their cause goes to the log.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Option<Value>,
    retry_after: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    /// A 4xx with a stable code and a human detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: None,
            retry_after: None,
            source: None,
        }
    }

    /// Adds a `Retry-After` header of `secs` seconds (at least one).
    #[must_use]
    pub fn with_retry_after(mut self, secs: i64) -> Self {
        self.retry_after = Some(u64::try_from(secs.max(1)).unwrap_or(1));
        self
    }

    /// Adds machine-readable members to the problem document.
    #[must_use]
    pub fn with_extra(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    /// 400 `invalid_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 422 `invalid_input`: a well-formed request with a value the API does not accept (as
    /// the crates' `Invalid` errors are answered).
    pub fn invalid_input(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", detail)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid session or API key is required",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 500 with a logged cause.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            detail: "an internal error occurred; it has been logged".into(),
            extra: None,
            retry_after: None,
            source: Some(Box::new(source)),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.detail)?;
        let mut src = self.source.as_deref().map(|e| e as &dyn std::error::Error);
        while let Some(e) = src {
            write!(f, "; caused by: {e}")?;
            src = e.source();
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut body = json!({
            "type": format!("urn:axie:problem:{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let (Some(Value::Object(extra)), Value::Object(map)) = (&self.extra, &mut body) {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        let mut res = HttpResponse::build(self.status);
        res.insert_header(ContentType(mime_problem()));
        if let Some(secs) = self.retry_after {
            res.insert_header(("Retry-After", secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        res.body(body.to_string())
    }
}

fn mime_problem() -> actix_web::mime::Mime {
    "application/problem+json"
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_JSON)
}

impl From<TenancyError> for ApiError {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::Unauthenticated => ApiError::unauthenticated(),
            // Still signed in elsewhere: a client should not drop the token for this.
            TenancyError::SignedOut => {
                ApiError::new(StatusCode::UNAUTHORIZED, "signed_out", e.to_string())
            }
            TenancyError::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", e.to_string())
            }
            TenancyError::NotFound(what) | TenancyError::Hidden(what, _) => {
                ApiError::not_found(what)
            }
            TenancyError::Forbidden(reason) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", reason.to_string())
                    .with_extra(json!({ "reason": reason.code() }))
            }
            TenancyError::RoleRule(r) => {
                ApiError::new(StatusCode::FORBIDDEN, "role_rule", r.to_string())
                    .with_extra(json!({ "reason": r }))
            }
            TenancyError::Conflict(m) | TenancyError::Changed(m) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            TenancyError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", m)
            }
            TenancyError::Archived(m) => ApiError::new(StatusCode::CONFLICT, "archived", m),
            // The sign-in asks for the second factor instead (`accounts::login`); not answered.
            e @ TenancyError::SecondFactorEnabled => ApiError::new(
                StatusCode::CONFLICT,
                "second_factor_required",
                e.to_string(),
            ),
            TenancyError::LimitReached {
                limit: billing_limits::Limit::ApiCallsPerMonth,
                max,
                used,
                plan,
            } => {
                let now = chrono::Utc::now();
                let reset = tenancy::metering::next_month_start(now);
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "api_calls_exhausted",
                    format!(
                        "the {} plan includes {max} API calls a month and {used} were made; they start again at {}",
                        plan.as_str(),
                        reset.to_rfc3339()
                    ),
                )
                .with_extra(json!({ "limit": "api_calls_per_month", "max": max, "used": used, "plan": plan.as_str(), "resets_at": reset.to_rfc3339() }));
                err.retry_after =
                    Some(u64::try_from((reset - now).num_seconds().max(1)).unwrap_or(1));
                err
            }
            TenancyError::LimitReached {
                limit,
                max,
                used,
                plan,
            } => ApiError::new(StatusCode::FORBIDDEN, "limit_reached", e.to_string()).with_extra(
                json!({ "limit": limit.as_str(), "max": max, "used": used, "plan": plan.as_str() }),
            ),
            TenancyError::IpNotAllowed(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "ip_not_allowed", e.to_string())
            }
            TenancyError::Deactivated => ApiError::new(
                StatusCode::FORBIDDEN,
                "member_deactivated",
                "your membership of this organization is deactivated",
            ),
            TenancyError::Throttled(until) => {
                let secs =
                    u64::try_from((until - chrono::Utc::now()).num_seconds().max(1)).unwrap_or(1);
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "login_throttled",
                    e.to_string(),
                )
                .with_extra(json!({ "locked_until": until.to_rfc3339() }));
                err.retry_after = Some(secs);
                err
            }
            TenancyError::InvitationUnusable(status) => ApiError::new(
                StatusCode::GONE,
                match status {
                    tenancy::invitations::InvitationStatus::Expired => "invitation_expired",
                    tenancy::invitations::InvitationStatus::Revoked => "invitation_revoked",
                    _ => "invitation_used",
                },
                e.to_string(),
            ),
            TenancyError::Password(p) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                p.to_string(),
            ),
            TenancyError::PlanExcludesMembers(plan) => ApiError::new(
                StatusCode::FORBIDDEN,
                "plan_excludes_members",
                e.to_string(),
            )
            .with_extra(json!({ "plan": plan.as_str() })),
            TenancyError::Payment(p) => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment_failed",
                p.to_string(),
            ),
            TenancyError::Subscription(s) => {
                use billing_limits::subscription::SubscriptionError as S;
                let code = match s {
                    S::Unchanged(_) => "plan_unchanged",
                    S::TrialUsed => "trial_used",
                    S::AlreadyCancelled(..) => "already_cancelled",
                    _ => "subscription_change_refused",
                };
                ApiError::new(StatusCode::CONFLICT, code, s.to_string())
            }
            TenancyError::Credit(c) => {
                use billing_limits::credits::CreditError as C;
                match c {
                    C::Insufficient {
                        account,
                        balance,
                        needed,
                        overdraft,
                    } => ApiError::new(StatusCode::CONFLICT, "insufficient_credits", c.to_string())
                        .with_extra(json!({ "account": account, "balance": balance, "needed": needed, "overdraft": overdraft })),
                    C::KeyReused(_) => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        c.to_string(),
                    ),
                    C::OverAllocated(total) => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "over_allocated",
                        c.to_string(),
                    )
                    .with_extra(json!({ "total_percent": total })),
                    _ => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_input",
                        c.to_string(),
                    ),
                }
            }
            TenancyError::Store(s) => ApiError::internal(s),
            other => ApiError::internal(std::io::Error::other(other.to_string())),
        }
    }
}

impl From<audit::AuditError> for ApiError {
    fn from(e: audit::AuditError) -> Self {
        match e {
            audit::AuditError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", m)
            }
            audit::AuditError::Store(s) => ApiError::internal(s),
            // Nothing was signed: the operator verifies the chain to see where it broke.
            audit::AuditError::Tampered(b) => ApiError::new(
                StatusCode::CONFLICT,
                "audit_chain_broken",
                format!("the audit chain is broken ({b}): no checkpoint was signed"),
            )
            .with_extra(serde_json::json!({ "first_break": b })),
            other => ApiError::internal(std::io::Error::other(other.to_string())),
        }
    }
}

/// Turns actix's body, query and path parse failures into problem documents.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let e = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is too large",
        ),
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send `Content-Type: application/json`",
        ),
        J::Deserialize(d) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the JSON body is invalid: {d}"),
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body could not be read: {other}"),
        ),
    };
    e.into()
}

/// Query-string parse failures.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("the query string is invalid: {err}"),
    )
    .into()
}

/// Path parse failures: an id that cannot exist is simply not found.
pub fn path_error(
    _err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::not_found("resource").into()
}

impl From<webhooks::WebhookError> for ApiError {
    fn from(e: webhooks::WebhookError) -> Self {
        match e {
            webhooks::WebhookError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", m)
            }
            webhooks::WebhookError::NotFound(what) => ApiError::not_found(what),
            webhooks::WebhookError::Changed(m) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            // Refused as every other limit is, though this one is the same on every plan.
            webhooks::WebhookError::TooManyEndpoints { max } => {
                ApiError::new(StatusCode::FORBIDDEN, "limit_reached", e.to_string())
                    .with_extra(json!({ "limit": "webhook_endpoints", "max": max }))
            }
            webhooks::WebhookError::Disabled => {
                ApiError::new(StatusCode::CONFLICT, "endpoint_disabled", e.to_string())
            }
            webhooks::WebhookError::Unreadable(_) => {
                ApiError::new(StatusCode::CONFLICT, "endpoint_unreadable", e.to_string())
            }
            webhooks::WebhookError::Store(s) => ApiError::internal(s),
            other => ApiError::internal(std::io::Error::other(other.to_string())),
        }
    }
}
