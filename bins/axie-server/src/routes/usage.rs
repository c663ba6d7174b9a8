//! Usage against the plan's limits (`tenancy::metering`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
    /// The trend of its API calls over the time the team existed (`limit_reached_on` is always
    /// null: the limit is the organization's).
    pub api_calls_trend: TrendResponse,
}

/// A metric's last seven complete days (UTC) against the seven before, and where this month is
/// heading at that rate.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendResponse {
    /// The count of the last seven complete days before today (UTC; today is not over).
    pub last_7_days: u64,
    /// The count of the seven days before those.
    pub previous_7_days: u64,
    /// The change from the previous seven days to the last seven, in percent (rounded toward
    /// zero); null when there is nothing to compare with (no use in the previous seven days,
    /// or the organization did not exist for all of them).
    pub change_percent: Option<i64>,
    /// The recent daily rate: the last seven days' count per day of the time of them (up to
    /// today, 00:00 UTC) the organization (for a team, the team) existed for, rounded down.
    pub per_day: u64,
    /// This month's count when the counters start again, if the recent rate holds.
    pub projected_month_end: u64,
    /// `YYYY-MM-DD` (UTC): the day the count would reach the limit at the recent rate, when that
    /// is before the counters start again; null when unlimited, reached already, without recent
    /// use or not this month.
    pub limit_reached_on: Option<String>,
}

impl From<tenancy::metering::Trend> for TrendResponse {
    fn from(t: tenancy::metering::Trend) -> Self {
        Self {
            last_7_days: t.last_7_days,
            previous_7_days: t.previous_7_days,
            change_percent: t.change_percent,
            per_day: t.per_day,
            projected_month_end: t.projected_month_end,
            limit_reached_on: t.limit_reached_on.map(|d| d.to_string()),
        }
    }
}

/// One metric's trend.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricTrendResponse {
    /// `api_calls` or `messages` (chat interface messages).
    pub metric: String,
    /// The limit it counts against (`api_calls_per_month`); null for messages.
    pub limit: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub trend: TrendResponse,
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
    /// Trend analysis of API calls and messages.
    pub trends: Vec<MetricTrendResponse>,
}

/// This month's usage against the plan's limits, daily history, per-team breakdown and trends
/// (Owner).
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
                api_calls_trend: t.api_calls_trend.into(),
            })
            .collect(),
        trends: r
            .trends
            .into_iter()
            .map(|m| MetricTrendResponse {
                metric: m.metric.to_owned(),
                limit: m.limit.map(str::to_owned),
                trend: m.trend.into(),
            })
            .collect(),
    }))
}

/// Which month's uptime report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UptimeQuery {
    /// `YYYY-MM` (UTC); this month when absent.
    pub month: Option<String>,
}

/// A time the service was down.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutageResponse {
    /// The last beat before it, or the start of the month (RFC 3339).
    pub from: String,
    /// The first beat after it, the end of the month, or now while it lasts (RFC 3339).
    pub to: String,
    /// Its length within the month.
    pub seconds: i64,
    /// Whether it is still under way.
    pub ongoing: bool,
    /// The references of the incidents the operator declared as outages within it (empty:
    /// seen by the service's beats alone).
    pub declared: Vec<String>,
}

/// A month's uptime report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UptimeResponse {
    /// `YYYY-MM`, UTC calendar month.
    pub month: String,
    /// Whether the month is over (the figures no longer change).
    pub complete: bool,
    /// Since when it was monitored: the month's start, or the service's first beat when that
    /// came later (RFC 3339); null when none of the month was.
    pub monitored_from: Option<String>,
    /// Until when: the month's end, or now for this month (RFC 3339).
    pub monitored_to: String,
    /// Seconds monitored.
    pub monitored_seconds: i64,
    /// Seconds down.
    pub down_seconds: i64,
    /// Percent of the monitored time the service was up, three decimals, rounded down
    /// (`"99.953"`); null when nothing was monitored.
    pub availability_percent: Option<String>,
    /// What the organization's plan commits to (`"99.9"` on Enterprise, `"99.0"` on Pro); null on
    /// Free.
    pub committed_percent: Option<String>,
    /// Whether the availability reaches the commitment; null without either.
    pub met: Option<bool>,
    /// The outages, oldest first.
    pub outages: Vec<OutageResponse>,
}

/// The service's availability in a month, as its own beats and the outages the operator
/// declared show it (`tenancy::uptime`): the
/// guide's "Monthly uptime reports" (mailed to Enterprise's Owner and Admins when a month is
/// over), against what the plan commits to. Any member. An outage is a gap of more than three
/// beats (`uptime.heartbeat_secs`) between the beats of every server that serves the API, or an
/// incident the operator declared as one (`notify-incident --outage`); time before the first
/// beat is not monitored.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/uptime", tag = "usage",
    params(("org_id" = String, Path, description = "Organization id"), UptimeQuery),
    responses(
        (status = 200, description = "The report", body = UptimeResponse),
        (status = 422, description = "Not a month such as 2026-11, or one that has not begun", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn uptime(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<UptimeQuery>,
) -> Result<HttpResponse, ApiError> {
    let month = q
        .month
        .as_deref()
        .map(tenancy::uptime::Month::parse)
        .transpose()?;
    let (r, committed) = tenancy::uptime::view(
        &*st.store,
        &caller,
        month,
        st.clock.now(),
        st.settings.uptime.tolerance(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(UptimeResponse {
        month: r.month.to_string(),
        complete: r.complete,
        monitored_from: r.monitored_from.map(|t| t.to_rfc3339()),
        monitored_to: r.monitored_to.to_rfc3339(),
        monitored_seconds: r.monitored.num_seconds(),
        down_seconds: r.down.num_seconds(),
        availability_percent: r.percent(),
        committed_percent: committed.map(tenancy::uptime::per_mille_percent),
        met: committed.and_then(|c| r.meets(c)),
        outages: r
            .outages
            .iter()
            .map(|o| OutageResponse {
                from: o.from.to_rfc3339(),
                to: o.to.to_rfc3339(),
                seconds: o.seconds(),
                ongoing: o.ongoing,
                declared: o.declared.clone(),
            })
            .collect(),
    }))
}
