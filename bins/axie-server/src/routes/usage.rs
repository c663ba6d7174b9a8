//! Usage against the plan's limits (`tenancy::metering`).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::OrgCaller;
use crate::error::ApiError;
use crate::state::AppState;

/// One figure.
#[derive(Debug, Serialize, ToSchema)]
pub struct FigureResponse {
    /// `api_calls_per_month`, `members`, `chat_interfaces`, `knowledge_bases`, `documents`,
    /// `api_keys`, `custom_domains` or `storage_bytes`.
    pub limit: String,
    /// Current use.
    pub used: u64,
    /// `members` only: seats held by pending invitations, which count against the limit as
    /// members do (0 for the other limits).
    pub pending_invitations: u64,
    /// The plan's limit; absent when unlimited.
    pub max: Option<u64>,
    /// Use (with the seats pending invitations hold) in percent of the limit, rounded down.
    pub percent: Option<u64>,
}

/// One day's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyResponse {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Team id.
    pub team_id: String,
    /// `api_calls` or `messages`.
    pub metric: String,
    /// Count.
    pub count: u64,
}

/// One team's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamUsageResponse {
    /// Team id.
    pub team_id: String,
    /// Team name.
    pub name: String,
    /// Chat interfaces.
    pub chat_interfaces: u64,
    /// Knowledge bases.
    pub knowledge_bases: u64,
    /// Documents.
    pub documents: u64,
    /// Bytes stored.
    pub storage_bytes: u64,
    /// API calls this month.
    pub api_calls: u64,
}

/// The usage report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    /// `YYYY-MM`, UTC calendar month.
    pub month: String,
    /// When the monthly counters start again (RFC 3339).
    pub resets_at: String,
    /// Use against each limit.
    pub figures: Vec<FigureResponse>,
    /// This month's daily counters, for trends.
    pub daily: Vec<DailyResponse>,
    /// Per team.
    pub teams: Vec<TeamUsageResponse>,
}

/// This month's usage against the plan's limits, daily history and per-team breakdown (Owner).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/usage", tag = "usage",
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "Usage", body = UsageResponse),
        (status = 403, description = "Not the Owner", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn usage(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
) -> Result<HttpResponse, ApiError> {
    let r = tenancy::metering::usage(&*st.store, &caller, st.clock.now()).await?;
    Ok(HttpResponse::Ok().json(UsageResponse {
        month: r.month,
        resets_at: r.resets_at.to_rfc3339(),
        figures: r
            .figures
            .into_iter()
            .map(|f| FigureResponse {
                limit: f.limit.to_owned(),
                used: f.used,
                pending_invitations: f.pending,
                max: f.max,
                percent: f.percent,
            })
            .collect(),
        daily: r
            .daily
            .into_iter()
            .map(|u| DailyResponse {
                day: u.day.to_string(),
                team_id: u.team.to_string(),
                metric: u.metric,
                count: u.count,
            })
            .collect(),
        teams: r
            .teams
            .into_iter()
            .map(|t| TeamUsageResponse {
                team_id: t.team.to_string(),
                name: t.name,
                chat_interfaces: t.chat_interfaces,
                knowledge_bases: t.knowledge_bases,
                documents: t.storage.documents,
                storage_bytes: t.storage.bytes,
                api_calls: t.api_calls,
            })
            .collect(),
    }))
}
