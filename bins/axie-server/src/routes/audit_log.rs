//! The audit log: search, export, verification and checkpoints.

use actix_web::{HttpResponse, web};
use audit::{
    ActionFilter, AuditAction, AuditEvent, AuditQuery, AuditStore, DatePreset, Journal, Metadata,
    Target,
    export::{CsvExporter, JsonArrayExporter, ndjson_line},
    render_line, take_checkpoint_recorded, verify_chain,
};
use chrono::{DateTime, Utc};
use rbac_core::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{OrgCaller, enforce};
use crate::error::ApiError;
use crate::state::AppState;

/// Audit log filters.
#[derive(Debug, Deserialize, IntoParams, Clone)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Only this actor (`usr_…` or `key_…`).
    pub actor_id: Option<String>,
    /// Only this person's actions: in person, or through any API key they created in the
    /// organization (not with `actor_id`).
    pub user_id: Option<String>,
    /// Exact action (`member.invited`) or prefix (`member.` / `member.*`).
    pub action: Option<String>,
    /// `last_7_days` or `last_30_days`.
    pub period: Option<String>,
    /// Custom range start (RFC 3339, inclusive).
    pub since: Option<String>,
    /// Custom range end (RFC 3339, exclusive).
    pub until: Option<String>,
    /// Resource type, for example `chat_interface`.
    pub target_type: Option<String>,
    /// Resource id (needs `target_type`).
    pub target_id: Option<String>,
    /// `success`, `denied` or `failure`.
    pub outcome: Option<String>,
    /// Only this team.
    pub team_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Export format (exports only): `csv` (default), `json` (one array), `ndjson` (one record
    /// per line) or `pdf` (a report of at most 5,000 events).
    #[param(inline, default = json!("csv"))]
    pub format: Option<ExportFormat>,
}

/// An audit export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// RFC 4180 CSV, formula-safe, with a header row.
    #[default]
    Csv,
    /// One JSON array.
    Json,
    /// One JSON record per line.
    Ndjson,
    /// A PDF report of at most 5,000 events.
    Pdf,
}

impl ExportFormat {
    /// The name the query and the export's record use.
    fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Pdf => "pdf",
        }
    }
}

impl AuditFilter {
    /// The filters given, as (name, value), for the PDF report's heading.
    fn described(&self) -> Vec<(String, String)> {
        [
            ("actor_id", &self.actor_id),
            ("user_id", &self.user_id),
            ("action", &self.action),
            ("period", &self.period),
            ("since", &self.since),
            ("until", &self.until),
            ("target_type", &self.target_type),
            ("target_id", &self.target_id),
            ("outcome", &self.outcome),
            ("team_id", &self.team_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
        .collect()
    }
}

fn time(field: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|_| ApiError::bad_request(format!("`{field}` must be an RFC 3339 time")))
}

impl AuditFilter {
    fn to_query(&self, now: DateTime<Utc>) -> Result<AuditQuery, ApiError> {
        // One start only: a preset would replace `since` silently, while a report lists both.
        if self.period.is_some() && self.since.is_some() {
            return Err(ApiError::invalid_input(
                "give either `period` or `since`, not both",
            ));
        }
        let mut since = self
            .since
            .as_deref()
            .map(|s| time("since", s))
            .transpose()?;
        match self.period.as_deref() {
            None => {}
            Some("last_7_days") => since = Some(DatePreset::Last7Days.since(now)),
            Some("last_30_days") => since = Some(DatePreset::Last30Days.since(now)),
            Some(other) => {
                return Err(ApiError::invalid_input(format!(
                    "unknown period `{other}`: `last_7_days` or `last_30_days`, or give `since`"
                )));
            }
        }
        Ok(AuditQuery {
            actor_id: self.actor_id.clone(),
            action: self.action.as_deref().map(ActionFilter::parse),
            since,
            until: self
                .until
                .as_deref()
                .map(|s| time("until", s))
                .transpose()?,
            target_kind: self.target_type.clone(),
            target_id: self.target_id.clone(),
            outcome: self.outcome.clone(),
            team: self
                .team_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| ApiError::bad_request("`team_id` is not a team id"))?,
            before_seq: self
                .cursor
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| ApiError::bad_request("`cursor` is not valid"))?,
            limit: self.limit.unwrap_or(50),
            seen_by: None,
        })
    }
}

/// An audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    /// Stable id (`<org>-<seq>`).
    pub id: String,
    /// Position in the organization's chain.
    pub seq: i64,
    /// The organization whose log holds it.
    pub org_id: String,
    /// Version of the record's schema (what its hash covers).
    pub schema_version: u16,
    /// When (RFC 3339, UTC).
    pub occurred_at: String,
    /// Team id.
    pub team_id: Option<String>,
    /// `user`, `api_key` or `system`.
    pub actor_type: String,
    /// Actor id.
    pub actor_id: String,
    /// Actor display name at the time.
    pub actor_name: String,
    /// Dotted action.
    pub action: String,
    /// Target type.
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Target name at the time.
    pub target_name: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    /// Reason code for denials and failures.
    pub reason: String,
    /// Client IP.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// Request id.
    pub request_id: String,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Human-readable line.
    pub text: String,
    /// Chain hash (hex).
    pub hash: String,
}

impl From<&AuditEvent> for AuditEventResponse {
    fn from(r: &AuditEvent) -> Self {
        let e = &r.event;
        Self {
            id: r.id(),
            seq: r.seq,
            org_id: e.org.to_string(),
            schema_version: r.schema_version,
            occurred_at: e
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            team_id: e.team.map(|t| t.to_string()),
            actor_type: e.actor.kind.as_str().to_owned(),
            actor_id: e.actor.id.clone(),
            actor_name: e.actor.name.clone(),
            action: e.action.as_str().to_owned(),
            target_type: e.target.kind.clone(),
            target_id: e.target.id.clone(),
            target_name: e.target.name.clone(),
            outcome: e.outcome.status().to_owned(),
            reason: e.outcome.reason().to_owned(),
            ip: e.context.ip.clone(),
            user_agent: e.context.user_agent.clone(),
            request_id: e.context.request_id.clone(),
            metadata: serde_json::Value::Object(e.metadata.to_map()),
            text: render_line(r),
            hash: hex::encode(r.hash),
        }
    }
}

/// A page of audit records.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Records, newest first.
    pub items: Vec<AuditEventResponse>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Searches the audit log, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit-events", tag = "audit",
    params(("org_id" = String, Path, description = "Organization id"), AuditFilter),
    responses(
        (status = 200, description = "One page", body = AuditPage),
        (status = 400, description = "A malformed filter (a time, a team id, a cursor)", content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", content_type = "application/problem+json"),
        (status = 422, description = "A filter value not accepted (an unknown period, outcome or action; `period` with `since`; `since` after `until`)", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn search(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<AuditFilter>,
) -> Result<HttpResponse, ApiError> {
    let mut query = q.to_query(st.clock.now())?;
    query.seen_by = caller.audit_seen_by();
    let actors = actors_of(&st, &caller, &q).await?;
    let records = audit::search_by_any(&*st.store, caller.org.id, &query, &actors).await?;
    let next_cursor = (records.len() == query.limit as usize)
        .then(|| records.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage {
        items: records.iter().map(AuditEventResponse::from).collect(),
        next_cursor,
    }))
}

/// Exports every record matching the filter as CSV, a JSON array or NDJSON, streamed, or as a
/// PDF report. The export itself is audited.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit-events/export", tag = "audit",
    params(("org_id" = String, Path, description = "Organization id"), AuditFilter),
    responses(
        (status = 200, description = "The export: CSV, a JSON array, NDJSON, or a PDF report", content(
            (String = "text/csv"), (Vec<serde_json::Value> = "application/json"), (String = "application/x-ndjson"), (String = "application/pdf"))),
        (status = 400, description = "A malformed filter (a time, a team id, a cursor)", content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", content_type = "application/problem+json"),
        (status = 422, description = "A filter value not accepted (an unknown period, outcome or action; `period` with `since`; `since` after `until`)", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn export(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<AuditFilter>,
) -> Result<HttpResponse, ApiError> {
    enforce(&st, &caller, Permission::ViewAuditLog).await?;
    export_body(&st, &caller, &q).await
}

/// Exports the archived audit log of an organization that left the Enterprise plan (the Owner
/// only), with the same filters and formats as the live export. The export is audited.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit-archive/export", tag = "audit",
    params(("org_id" = String, Path, description = "Organization id"), AuditFilter),
    responses(
        (status = 200, description = "The export: CSV, a JSON array, NDJSON, or a PDF report", content(
            (String = "text/csv"), (Vec<serde_json::Value> = "application/json"), (String = "application/x-ndjson"), (String = "application/pdf"))),
        (status = 400, description = "A malformed filter", content_type = "application/problem+json"),
        (status = 403, description = "Not the Owner", content_type = "application/problem+json"),
        (status = 422, description = "The log is not archived, or a filter value not accepted", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn export_archive(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<AuditFilter>,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = tenancy::orgs::check_audit_archive(&caller) {
        return Err(crate::auth::audited(&st, &caller, "export_audit_archive", e).await);
    }
    export_body(&st, &caller, &q).await
}

/// The actors `user_id` names: the person and every API key they created in the organization
/// (revoked ones too: their records stay); none without `user_id`.
async fn actors_of(
    st: &AppState,
    caller: &tenancy::Caller,
    q: &AuditFilter,
) -> Result<Vec<String>, ApiError> {
    use tenancy::ApiKeyStore as _;
    let Some(user) = &q.user_id else {
        return Ok(Vec::new());
    };
    if q.actor_id.is_some() {
        return Err(ApiError::bad_request(
            "give either `actor_id` or `user_id`, not both",
        ));
    }
    let id: rbac_core::UserId = user
        .parse()
        .map_err(|_| ApiError::bad_request("`user_id` is not a user id"))?;
    let mut actors = vec![id.to_string()];
    let mut after = None;
    loop {
        let page = st
            .store
            .list_api_keys(caller.org.id, Some(id), after, 200)
            .await?;
        after = page.last().map(|k| k.id);
        let done = page.len() < 200;
        actors.extend(page.iter().map(|k| k.id.to_string()));
        // Past the most a search takes, the count is enough for the refusal.
        if done || actors.len() > audit::MAX_ACTORS {
            break;
        }
    }
    Ok(actors)
}

async fn export_body(
    st: &web::Data<AppState>,
    caller: &tenancy::Caller,
    q: &crate::extract::Query<AuditFilter>,
) -> Result<HttpResponse, ApiError> {
    let format = q.format.unwrap_or_default();
    // An export is of every record the filters match: a page's cursor or size would narrow it
    // without the report or its audit record saying so.
    if q.cursor.is_some() || q.limit.is_some() {
        return Err(ApiError::invalid_input(
            "an export takes the filters, not `cursor` or `limit`: it has every matching record",
        ));
    }
    let mut query = q.to_query(st.clock.now())?;
    query.limit = audit::MAX_PAGE;
    query.seen_by = caller.audit_seen_by();
    // Checked before anything is sent: a streamed body cannot turn into an error answer later.
    query.validate()?;
    let actors = actors_of(st, caller, q).await?;
    audit::check_actors(&query, &actors)?;
    let record = caller
        .audit(
            st.clock.now(),
            AuditAction::DataExported,
            Target::new("audit_log", caller.org.id, "audit log"),
        )
        .with_metadata(Metadata::from_value(json!({
            // The filters as checked, each cut to 200 characters: the record is hashed and
            // kept, and what someone typed into a filter should not make it large.
            "format": format.as_str(),
            "filter": q.described().into_iter()
                .map(|(k, v)| (k, serde_json::Value::from(v.chars().take(200).collect::<String>())))
                .collect::<serde_json::Map<_, _>>(),
            "only_own_teams_and_actions": query.seen_by.is_some(),
        }))?);
    st.store.append(Journal::record(record)).await?;
    if format == ExportFormat::Pdf {
        return pdf_report(st, caller, q, query, &actors).await;
    }

    let store = st.store.clone();
    let org = caller.org.id;
    let csv = format == ExportFormat::Csv;
    let array = format == ExportFormat::Json;
    // A task reads the pages (the next while this one is formatted) and hands the formatted
    // chunks to the body through a channel of two: memory stays bounded by a few pages, and
    // a client that reads slowly slows the reading down.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, &'static str>>(2);
    tokio::spawn(async move {
        let mut first = true;
        let mut json_array = JsonArrayExporter::new();
        let sent = audit::for_each_page_by_any(&*store, org, query, &actors, |page| {
            let chunk = if csv {
                csv_chunk(&page, first)
            } else if array {
                json_array
                    .page(&page)
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string())
            } else {
                page.iter()
                    .map(ndjson_line)
                    .collect::<Result<String, _>>()
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string())
            };
            first = false;
            let tx = tx.clone();
            async move {
                let chunk = chunk.map_err(ExportStopped::Failed)?;
                tx.send(Ok(web::Bytes::from(chunk)))
                    .await
                    .map_err(|_| ExportStopped::ClientGone)
            }
        })
        .await;
        match sent {
            Err(ExportStopped::Failed(e)) => {
                tracing::error!(error = %e, "audit export failed part-way");
                let _ = tx.send(Err("the export failed part-way")).await;
            }
            // The array is closed only when every record is in it: an export cut short is
            // not valid JSON, so it cannot pass for a whole one.
            Ok(_) if array => {
                let end = json_array.finish();
                let _ = tx.send(Ok(web::Bytes::from_static(end.as_bytes()))).await;
            }
            Ok(_) | Err(ExportStopped::ClientGone) => {}
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((
            chunk.map_err(actix_web::error::ErrorInternalServerError),
            rx,
        ))
    });
    let (content_type, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else if array {
        ("application/json", "json")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"audit-{org}.{ext}\""),
        ))
        .streaming(stream))
}

/// Why an export's reading task stopped early.
enum ExportStopped {
    /// Reading or formatting failed.
    Failed(String),
    /// The client went away: nothing more to send.
    ClientGone,
}

impl From<audit::AuditError> for ExportStopped {
    fn from(e: audit::AuditError) -> Self {
        Self::Failed(e.to_string())
    }
}

/// One page as CSV; the header row only on the first.
fn csv_chunk(page: &[AuditEvent], first: bool) -> Result<Vec<u8>, String> {
    let mut x = CsvExporter::new(Vec::new()).map_err(|e| e.to_string())?;
    for r in page {
        x.write(r).map_err(|e| e.to_string())?;
    }
    let bytes = x.finish().map_err(|e| e.to_string())?;
    // The exporter writes the header first; keep it only on the first chunk.
    Ok(if first {
        bytes
    } else {
        bytes
            .splitn(2, |b| *b == b'\n')
            .nth(1)
            .unwrap_or_default()
            .to_vec()
    })
}

/// The PDF report: the newest matching events up to the cap, fetched page by page.
async fn pdf_report(
    st: &AppState,
    caller: &tenancy::Caller,
    q: &AuditFilter,
    query: AuditQuery,
    actors: &[String],
) -> Result<HttpResponse, ApiError> {
    let (since, until) = (query.since, query.until);
    let mut filters = q.described();
    if query.seen_by.is_some() {
        let who = match &caller.api_key {
            Some(k) if k.scope == tenancy::KeyScope::Team => {
                format!(
                    "API key \"{}\": its team's records and its own actions",
                    k.name
                )
            }
            _ => format!(
                "{}: their teams' records and their own actions",
                caller.user.name
            ),
        };
        filters.push(("read by".to_owned(), who));
    }
    let (events, more) =
        audit::pdf::newest_events(&*st.store, caller.org.id, query, actors).await?;
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let period = match (since, until) {
        (Some(a), Some(b)) => format!("from {} (included) to {} (excluded)", fmt(a), fmt(b)),
        (Some(a), None) => format!("from {} (included) to now", fmt(a)),
        (None, Some(b)) => format!("everything before {}", fmt(b)),
        (None, None) => "the whole log".to_owned(),
    };
    let header = audit::pdf::ReportHeader {
        organization: caller.org.name.clone(),
        organization_id: caller.org.id.to_string(),
        filters,
        period,
        generated_at: fmt(st.clock.now()),
    };
    // Up to a tenth of a second for a full report (layout, font subset, compression): off the
    // worker that serves other requests.
    let bytes = web::block(move || audit::pdf::render_pdf(&header, &events, more))
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"audit-{}.pdf\"", caller.org.id),
        ))
        .body(bytes))
}

/// The verification result.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the whole chain verified.
    pub valid: bool,
    /// Records checked (when valid).
    pub records: Option<i64>,
    /// Position of the checkpoint checked against.
    pub checkpoint_seq: Option<i64>,
    /// The first broken link (when invalid).
    #[schema(value_type = Option<Object>)]
    pub first_break: Option<audit::ChainBreak>,
    /// A sentence for people.
    pub detail: String,
}

/// Verifies the organization's audit chain and its latest signed checkpoint.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/audit-events/verify", tag = "audit",
    params(("org_id" = String, Path, description = "Organization id")),
    responses((status = 200, description = "The result", body = VerifyResponse)),
    security(("bearer" = [])))]
pub async fn verify(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = caller.check_whole_audit_log() {
        return Err(crate::auth::audited(&st, &caller, "audit.verify", e).await);
    }
    verify_body(&st, &caller).await
}

/// Verifies the archived audit log of an organization that left the Enterprise plan (the
/// Owner only), as the live log is verified: the Owner can check the chain of what they
/// export. The verification is audited.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/audit-archive/verify", tag = "audit",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The result", body = VerifyResponse),
        (status = 403, description = "Not the Owner", content_type = "application/problem+json"),
        (status = 422, description = "The log is not archived", content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn verify_archive(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = tenancy::orgs::check_audit_archive(&caller) {
        return Err(crate::auth::audited(&st, &caller, "verify_audit_archive", e).await);
    }
    verify_body(&st, &caller).await
}

async fn verify_body(st: &AppState, caller: &tenancy::Caller) -> Result<HttpResponse, ApiError> {
    let result = verify_chain(&st.audit_log(), caller.org.id, &st.checkpoint_key).await?;
    // Recorded after the walk, so the record is not part of what it reports on.
    let record = caller
        .audit(
            st.clock.now(),
            AuditAction::AuditVerified,
            Target::new("audit_log", caller.org.id, "audit log"),
        )
        .with_metadata(audit::verification_metadata(&result));
    st.store.append(Journal::record(record)).await?;
    let body = match result {
        Ok(v) => VerifyResponse {
            valid: true,
            records: Some(v.records),
            checkpoint_seq: v.checkpoint_seq,
            first_break: None,
            detail: format!("{} records verified", v.records),
        },
        Err(b) => VerifyResponse {
            valid: false,
            records: None,
            checkpoint_seq: None,
            detail: b.to_string(),
            first_break: Some(b),
        },
    };
    Ok(HttpResponse::Ok().json(body))
}

/// A signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointResponse {
    /// Records covered.
    pub seq: i64,
    /// Head hash (hex).
    pub head: String,
    /// Signing time (RFC 3339).
    pub signed_at: String,
}

/// Signs the current chain head now.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/audit-events/checkpoints", tag = "audit",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 201, description = "Checkpoint taken", body = CheckpointResponse),
        (status = 409, description = "The log is empty", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn checkpoint(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = caller.check_whole_audit_log() {
        return Err(crate::auth::audited(&st, &caller, "audit.checkpoint", e).await);
    }
    let now = st.clock.now();
    let cp = take_checkpoint_recorded(
        &st.audit_log(),
        caller.org.id,
        &st.checkpoint_key,
        now,
        |cp| {
            let record = caller
                .audit(
                    now,
                    AuditAction::AuditCheckpointed,
                    Target::new("audit_log", caller.org.id, "audit log"),
                )
                .with_metadata(audit::Metadata::from_value(serde_json::json!({
                    "seq": cp.seq, "head": hex::encode(cp.head),
                }))?);
            Ok(Journal::record(record))
        },
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "empty_log",
            "the audit log is empty",
        )
    })?;
    Ok(HttpResponse::Created().json(CheckpointResponse {
        seq: cp.seq,
        head: hex::encode(cp.head),
        signed_at: cp.signed_at.to_rfc3339(),
    }))
}
