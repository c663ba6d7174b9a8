//! Request ids, request logging, security headers, and the refusal of cross-site browser requests.

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

tokio::task_local! {
    /// The request being served, as `"PATCH /api/v1/orgs/…/assets/…"` (method and path, no
    /// query), for the audit records of refusals decided deep inside the crates.
    static REQUEST_LINE: String;
}

/// The longest request line kept for an audit record; longer paths are cut at a character.
const REQUEST_LINE_MAX: usize = 512;

/// The method and path of the request this task serves, if it is serving one.
pub fn request_line() -> Option<String> {
    REQUEST_LINE.try_with(Clone::clone).ok()
}

fn line_of(method: &str, path: &str) -> String {
    let mut line = format!("{method} {path}");
    if line.len() > REQUEST_LINE_MAX {
        let mut cut = REQUEST_LINE_MAX;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

/// Whether the connection comes from one of `server.trusted_proxies`.
fn from_trusted_proxy(req: &ServiceRequest) -> bool {
    let (Some(peer), Some(st)) = (
        req.peer_addr(),
        req.app_data::<actix_web::web::Data<crate::state::AppState>>(),
    ) else {
        return false;
    };
    let peer = security_policy::normalize(peer.ip());
    st.trusted_proxies.iter().any(|p| p.contains(peer))
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
    // A W3C `traceparent` makes this request part of the caller's trace (a no-op without
    // export), when it comes from a trusted proxy: anyone else could choose the trace id and,
    // with its sampled flag, have every request exported whatever `telemetry.sample_ratio` says.
    if from_trusted_proxy(&req) {
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&HeaderExtractor(req.headers()));
        let _ = span.set_parent(parent);
    }
    let started = std::time::Instant::now();
    let line = line_of(&method, req.path());
    let safe = req_method_is_safe(&method);
    let serve = REQUEST_LINE.scope(line, next.call(req).instrument(span.clone()));
    let finish = async move {
        let res = serve.await?;
        Ok::<_, Error>(finished(res, &span, &method, started, &id, over_tls))
    };
    // A request that may change something is served in a task of its own, which runs to its
    // end (its record and its log line included) even if the client goes away meanwhile:
    // actix-http drops what serves a connection where it stands when the client resets it,
    // which would cut an operation between its steps (a change committed and the document
    // bytes it deleted left on disk, a lowered session limit half applied, a recovery code
    // spent and no session opened). Each step commits on its own; this keeps the sequence
    // whole. Reads are not detached: dropping one changes nothing. At most `DETACHED_MAX` run
    // detached at once, so clients that send and hang up cannot pile up work (password hashes,
    // say) beyond it; past it a request is served as a read is, attached to its connection
    // (never held back: slow clients holding every place must not stop others' changes).
    if safe {
        return finish.await;
    }
    let Ok(place) = DETACHED.try_acquire() else {
        return finish.await;
    };
    match actix_web::rt::spawn(async move {
        let _place = place;
        finish.await
    })
    .await
    {
        Ok(res) => res,
        // A panic in the request's task: answered as any internal error, the panic logged.
        Err(e) => {
            tracing::error!(error = %e, "a request's task failed");
            Err(crate::error::ApiError::internal(e).into())
        }
    }
}

/// How many requests that may change something are served at once in tasks of their own
/// ([`observe`]); more are served attached to their connections.
pub const DETACHED_MAX: usize = 512;

static DETACHED: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(DETACHED_MAX);

fn req_method_is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The response as it leaves: a problem document for actix's own errors, the request's span,
/// metric and log line, the request id and the security headers.
fn finished<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
    span: &tracing::Span,
    method: &str,
    started: std::time::Instant,
    id: &str,
    over_tls: bool,
) -> ServiceResponse<actix_web::body::BoxBody> {
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut res = as_problem(res.map_into_boxed_body());
    let status = res.status().as_u16();
    span.record("http.route", route.as_str());
    span.record("http.response.status_code", i64::from(status));
    crate::prom::request(&route, method, status, started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request done"
        )
    });
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id) {
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
    res
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

/// The `scheme://host[:port]` of `url`, lower-cased, without the scheme's default port, or
/// `None` when it has no scheme.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Some(format!(
        "{scheme}://{}",
        without_default_port(&scheme, authority)
    ))
}

fn without_default_port(scheme: &str, authority: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return authority,
    };
    authority
        .strip_suffix(default)
        .map_or_else(|| authority.clone(), str::to_owned)
}

/// Why a browser request is refused as cross-site, if it is: an unsafe method (anything but
/// GET, HEAD and OPTIONS) without a bearer token in its `Authorization` header (so the browser
/// may have attached the session cookie, or a proxy's credentials, by itself) whose `Origin` is neither `public_origin` nor the server's own
/// (`host`, the request's host, under `public_origin`'s scheme), or that has no `Origin` but a
/// `Sec-Fetch-Site` other than `same-origin` or `none`. A request without either header (a
/// program, an old browser) is left to the cookie's `SameSite=Strict`.
#[must_use]
pub fn cross_site_refusal(
    method: &actix_web::http::Method,
    headers: &actix_web::http::header::HeaderMap,
    host: Option<&str>,
    public_origin: Option<&str>,
) -> Option<String> {
    use actix_web::http::Method;
    // Only a bearer token is one the browser did not attach by itself: Basic, Digest or
    // Negotiate credentials (a proxy's sign-in) are as ambient as a cookie.
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    if [Method::GET, Method::HEAD, Method::OPTIONS].contains(method) || bearer {
        return None;
    }
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    match text("origin") {
        Some(origin) => {
            let theirs = origin_of(origin);
            let public_scheme = public_origin
                .and_then(|p| p.split_once("://"))
                .map(|(s, _)| s);
            let own = |o: &String| {
                public_origin == Some(o.as_str())
                    || o.split_once("://").is_some_and(|(scheme, authority)| {
                        public_scheme.is_none_or(|p| p == scheme)
                            && host.is_some_and(|h| without_default_port(scheme, h) == authority)
                    })
            };
            match theirs {
                Some(o) if own(&o) => None,
                _ => Some(format!("a request from another origin ({origin})")),
            }
        }
        None => match text("sec-fetch-site") {
            None | Some("same-origin" | "none") => None,
            Some(site) => Some(format!("a {site} request")),
        },
    }
}

/// Refuses cross-site browser requests that could act with the session cookie
/// ([`cross_site_refusal`]): 403 `cross_site_request`, before any handler runs (nothing is
/// recorded: no one is authenticated yet).
pub async fn same_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, Error> {
    let public_origin = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .and_then(|st| origin_of(&st.settings.server.public_url));
    // The `Host` header, or the request target's authority (HTTP/2 has no `Host`).
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(ToString::to_string));
    if let Some(why) = cross_site_refusal(
        req.method(),
        req.headers(),
        host.as_deref(),
        public_origin.as_deref(),
    ) {
        tracing::info!(
            reason = %why,
            public_origin = public_origin.as_deref().unwrap_or(""),
            host = host.as_deref().unwrap_or(""),
            "cross-site request refused (behind a proxy that rewrites Host, server.public_url must be the browsers' origin)"
        );
        let err = crate::error::ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            "cross_site_request",
            format!(
                "{why} cannot act with the session cookie; a client on another origin sends its token in the Authorization header"
            ),
        );
        let answer = actix_web::ResponseError::error_response(&err);
        return Ok(req.into_response(answer).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    const PUBLIC: Option<&str> = Some("https://axie.example.com");

    fn refused(method: Method, pairs: &[(&'static str, &'static str)]) -> bool {
        let h = headers(pairs);
        let host = h.get("host").map(|v| v.to_str().unwrap());
        cross_site_refusal(&method, &h, host, PUBLIC).is_some()
    }

    #[test]
    fn browser_requests_from_other_sites_are_refused_and_the_rest_pass() {
        let evil = ("origin", "https://evil.example");
        let host = ("host", "10.0.0.5:8080");
        // Unsafe methods from another origin, or with no origin but a cross-site fetch.
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(refused(m.clone(), &[evil, host]), "{m}");
        }
        assert!(refused(Method::POST, &[("origin", "null"), host]));
        assert!(refused(Method::POST, &[("sec-fetch-site", "cross-site")]));
        assert!(refused(Method::POST, &[("sec-fetch-site", "same-site")]));
        // A sibling subdomain is another origin.
        assert!(refused(
            Method::POST,
            &[("origin", "https://other.axie.example.com"), host]
        ));
        // Reads, bearer credentials, programs without browser headers.
        assert!(!refused(Method::GET, &[evil, host]));
        assert!(!refused(
            Method::POST,
            &[evil, ("authorization", "Bearer axk_x")]
        ));
        assert!(!refused(
            Method::POST,
            &[evil, ("authorization", "bearer axk_x")]
        ));
        // Credentials a browser attaches by itself (a proxy's Basic or Negotiate sign-in) do
        // not make a cross-site request safe, nor does a header that does not read.
        for ambient in ["Basic YTpi", "Negotiate YIIx", "Bearer"] {
            assert!(
                refused(Method::POST, &[evil, ("authorization", ambient)]),
                "{ambient}"
            );
        }
        assert!(!refused(Method::POST, &[host]));
        assert!(!refused(Method::POST, &[("sec-fetch-site", "same-origin")]));
        assert!(!refused(Method::POST, &[("sec-fetch-site", "none")]));
        // The public origin, or the server's own host, in any case, with or without the
        // scheme's default port.
        assert!(!refused(
            Method::POST,
            &[("origin", "https://AXIE.example.com:443"), host]
        ));
        assert!(!refused(
            Method::POST,
            &[
                ("origin", "https://10.0.0.5:8080"),
                host,
                ("sec-fetch-site", "same-origin")
            ]
        ));
        assert!(!refused(
            Method::POST,
            &[("origin", "https://axie.local"), ("host", "axie.local:443")]
        ));
        assert!(refused(
            Method::POST,
            &[("origin", "https://axie.local:81"), ("host", "axie.local")]
        ));
        // The server's own host under another scheme than the public URL's (a page served over
        // plain HTTP on an HTTPS deployment) is not its origin.
        assert!(refused(
            Method::POST,
            &[("origin", "http://10.0.0.5:8080"), host]
        ));
        // Without a public URL, the host under any scheme.
        let plain = headers(&[("origin", "http://axie.local:8080")]);
        assert!(cross_site_refusal(&Method::POST, &plain, Some("axie.local:8080"), None).is_none());
        assert!(cross_site_refusal(&Method::POST, &plain, None, None).is_some());
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://Axie.Example.com:443/accept?x=1").as_deref(),
            Some("https://axie.example.com")
        );
        assert_eq!(
            origin_of("http://localhost:8080").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(origin_of("localhost:8080"), None);
    }

    /// Whether the handler ran in a task of its own: the test's body runs on the runtime's
    /// thread outside any task, so a handler served attached sees no task id.
    async fn in_own_task() -> actix_web::HttpResponse {
        actix_web::HttpResponse::Ok().body(if tokio::task::try_id().is_some() {
            "detached"
        } else {
            "attached"
        })
    }

    #[allow(clippy::panic, reason = "the panic under test")]
    async fn panics() -> actix_web::HttpResponse {
        panic!("secret detail of a bug")
    }

    #[actix_web::test]
    async fn changes_run_detached_up_to_the_cap_then_attached_and_a_panic_is_an_internal_problem() {
        use actix_web::{App, test, web};
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(observe))
                .route("/w", web::post().to(in_own_task))
                .route("/w", web::get().to(in_own_task))
                .route("/panic", web::post().to(panics)),
        )
        .await;
        let served = |method: Method| {
            let req = test::TestRequest::default()
                .method(method)
                .uri("/w")
                .to_request();
            let app = &app;
            async move {
                let res = test::call_service(app, req).await;
                assert!(res.status().is_success());
                assert!(res.headers().contains_key("x-request-id"));
                String::from_utf8(test::read_body(res).await.to_vec()).unwrap_or_default()
            }
        };
        assert_eq!(served(Method::POST).await, "detached");
        assert_eq!(
            served(Method::GET).await,
            "attached",
            "reads are not detached"
        );
        // Every place taken: served at once, attached.
        let all = DETACHED
            .acquire_many(u32::try_from(DETACHED_MAX).unwrap_or(u32::MAX))
            .await
            .ok();
        assert!(all.is_some());
        assert_eq!(served(Method::POST).await, "attached");
        drop(all);
        assert_eq!(served(Method::POST).await, "detached");

        // A panic in a detached request: a problem document, the message not given away.
        // (The error is turned into its response by the server, as here.)
        let req = test::TestRequest::post().uri("/panic").to_request();
        let Err(e) = test::try_call_service(&app, req).await else {
            panic!("a panic is an error");
        };
        let res = e.error_response();
        assert_eq!(
            res.status(),
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let body = actix_web::body::to_bytes(res.into_body())
            .await
            .unwrap_or_default();
        let body = String::from_utf8(body.to_vec()).unwrap_or_default();
        assert!(body.contains("\"internal\""), "{body}");
        assert!(!body.contains("secret detail"), "{body}");
        // No other test of this binary goes through `observe`: every place is free again.
        assert_eq!(
            DETACHED.available_permits(),
            DETACHED_MAX,
            "its place given back"
        );
    }
}
