//! Metering API calls against the plan's monthly limit, and the usage report.
//!
//! Months are UTC calendar months (`2026-11`): the counter of a month starts at zero on the
//! first at 00:00 UTC. Calls are reserved with conditional writes, so concurrent calls (also on
//! several server instances) never take an organization past its limit. To keep that cheap, a
//! [`CallMeter`] reserves calls in blocks of 0.1 % of the monthly limit (at most its
//! `max_block`, one near the limit) and hands them out in memory: the month's counter is then at
//! most one block per instance ahead of the calls made, and an instance that stops loses its
//! unused block (an organization may get slightly fewer calls, never more). A block is used only
//! under the limit it was reserved within: once the limit is lowered (a downgrade), what is
//! left of a block reserved under the higher one is dropped. The per-team daily
//! counters are added up in memory and written when a block is reserved and by
//! [`CallMeter::flush`], which the server calls every minute.

use async_trait::async_trait;
pub use billing_limits::trend::Trend;
use billing_limits::trend::{Window, trend};
use billing_limits::{Limit, PlanLimits};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rbac_core::{OrgId, Permission, TeamId};
use serde::Serialize;

use crate::assets::{AssetKind, TeamAssets, TeamStorage, UsageRecord};
use crate::caller::Caller;
use crate::error::TenancyError;
use crate::store::{InvitationStore, TenancyStore, WorkspaceStore};

/// The metric name of API calls.
pub const METRIC_API_CALLS: &str = "api_calls";

/// Storage of monthly counters.
#[async_trait]
pub trait MeteringStore: Send + Sync {
    /// Adds `want` (at least one) to `metric` of `org` in `month` if the count stays within
    /// `limit` (`None`: unlimited); if `want` does not fit, adds one if that fits; in one
    /// conditional write per attempt, so concurrent callers never take the count past the
    /// limit. Returns how much was added (`want`, 1 or 0) and the month's count after.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn reserve_within(
        &self,
        org: OrgId,
        metric: &str,
        month: &str,
        want: u64,
        limit: Option<u64>,
    ) -> Result<(u64, u64), TenancyError>;

    /// The month's count of `metric`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn monthly(&self, org: OrgId, metric: &str, month: &str) -> Result<u64, TenancyError>;
    /// Records that the alert for `threshold` of `limit` in `period` (the month and the limit's
    /// value, [`alert_on_change`]) went out, and commits
    /// `journal` (its audit record, mail and webhook event) with it, unless it was recorded
    /// before: then nothing is written and the answer is `false`. Concurrent callers get one `true`.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn record_alert(
        &self,
        org: OrgId,
        limit: &str,
        period: &str,
        threshold: u64,
        journal: audit::Journal,
    ) -> Result<bool, TenancyError>;

    /// The periods in which the alert for `threshold` of `limit` was recorded
    /// ([`Self::record_alert`]), in any order.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn alert_periods(
        &self,
        org: OrgId,
        limit: &str,
        threshold: u64,
    ) -> Result<Vec<String>, TenancyError>;
}

/// Sends the usage alerts that a change of use from `before` to `after` triggers: for each
/// threshold crossed (80 % and 100 %), once per period, an email to the Owner and a
/// `usage.threshold_reached` webhook event, with an audit record, in one transaction.
/// Returns the thresholds that went out now.
///
/// # Errors
/// [`TenancyError::Store`].
pub async fn alert_on_change<S: TenancyStore + MeteringStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    limit: Limit,
    before: u64,
    after: u64,
    now: DateTime<Utc>,
) -> Result<Vec<u64>, TenancyError> {
    let Some(max) = org.limits().get(limit) else {
        return Ok(Vec::new());
    };
    let crossed =
        billing_limits::thresholds_crossed(before, after, max, &billing_limits::alert_thresholds());
    send_alerts(store, org, limit, crossed, after, max, now).await
}

/// Sends the alerts for `thresholds` of `limit` (whose value is `max`) at a use of `used`, each
/// once per period ([`alert_on_change`]). Returns those that went out now. Each threshold has
/// its record and webhook event; the Owner gets one mail, for the highest: a use that jumps
/// past 80 % and 100 % at once (a bulk copy, a limit lowered under its use) says "100 %" once
/// rather than sending two mails in the same second.
async fn send_alerts<S: TenancyStore + MeteringStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    limit: Limit,
    thresholds: Vec<u64>,
    used: u64,
    max: u64,
    now: DateTime<Utc>,
) -> Result<Vec<u64>, TenancyError> {
    use audit::{
        Actor, AuditAction, DomainEvent, EventKind, Journal, Metadata, NewAuditEvent, OutboundMail,
        Target,
    };
    if thresholds.is_empty() {
        return Ok(thresholds);
    }
    let after = used;
    let owner = match crate::orgs::owner_of(store, org.id).await {
        Ok(m) => Some(m.user),
        Err(TenancyError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    // Once per month and value of the limit: an organization whose limit changed (a new plan,
    // an operator's override) is told again when it nears the new one.
    let period = format!("{} of {max}", month_key(now));
    let month = month_key(now);
    let highest = thresholds.iter().max().copied();
    let mut sent = Vec::new();
    for t in thresholds {
        let data = serde_json::json!({
            "limit": limit.as_str(), "threshold": t, "used": after, "max": max, "period": month,
        });
        let mut journal = Journal::record(
            NewAuditEvent::new(
                org.id,
                now,
                Actor::system(),
                AuditAction::UsageAlertSent,
                Target::new(
                    "limit",
                    limit.as_str(),
                    format!("{t} % of {}", limit.as_str()),
                ),
            )
            .with_metadata(Metadata::from_value(data.clone())?),
        )
        .publish(DomainEvent::new(
            org.id,
            EventKind::UsageThresholdReached,
            now,
            data,
        ));
        if let Some(o) = owner.as_ref().filter(|_| Some(t) == highest) {
            journal = journal.mail(OutboundMail {
                org: Some(org.id),
                to: o.email.as_str().to_owned(),
                subject: format!("{}: {t} % of your {} used", org.name, limit.as_str().replace('_', " ")),
                body: if limit == Limit::ApiCallsPerMonth {
                    format!(
                        "{} has used {after} of the {max} {} its {} plan includes this month ({t} %).\n\nUpgrade, or wait for the counters to start again on {}.",
                        org.name,
                        limit.as_str().replace('_', " "),
                        org.plan.as_str(),
                        next_month_start(now).format("%Y-%m-%d")
                    )
                } else {
                    format!(
                        "{} has {after} of the {max} {} its {} plan includes ({t} %).\n\nUpgrade to raise the limit, or remove some to make room.",
                        org.name,
                        limit.as_str().replace('_', " "),
                        org.plan.as_str(),
                    )
                },
                kind: "usage_alert".into(),
            });
        }
        if store
            .record_alert(org.id, limit.as_str(), &period, t, journal)
            .await?
        {
            sent.push(t);
        }
    }
    Ok(sent)
}

/// After a creation of `added` resources that count against `limit` committed, sends the
/// alerts its new use crosses (members, chat interfaces, knowledge bases, documents, API keys,
/// custom domains): from the use before the creation (the count now, less what it added), so a
/// bulk copy that jumps past a threshold alerts too. The creation stands whatever happens here:
/// an alert that cannot be sent is logged.
pub async fn alert_after_create<S: TenancyStore + WorkspaceStore + MeteringStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    limit: Limit,
    added: u64,
    now: DateTime<Utc>,
) {
    let Some(max) = org.limits().get(limit) else {
        return;
    };
    let run = async {
        let used = count_of(store, org.id, limit).await?;
        let before = used.saturating_sub(added.max(1));
        // Only a use that reaches a threshold needs the alert bookkeeping.
        if billing_limits::thresholds_crossed(
            before,
            used,
            max,
            &billing_limits::alert_thresholds(),
        )
        .is_empty()
        {
            return Ok(Vec::new());
        }
        alert_on_change(store, org, limit, before, used, now).await
    };
    if let Err(e) = run.await {
        tracing::warn!(error = %e, org = %org.id, limit = limit.as_str(), "usage alert not sent");
    }
}

/// After invitations were stored or accepted, sends the member alerts for the thresholds that
/// the seats in use have reached: members and pending invitations count against the member
/// limit alike, so an Owner who fills the plan with invitations is told then, not once they are
/// accepted. Each threshold goes once per month ([`MeteringStore::record_alert`]): an acceptance
/// (which changes no seat count) sends none again that month, and an organization that stays
/// at or above a threshold is reminded at most monthly. Since what is reached is checked, not
/// what one invitation crossed, concurrent invitations cannot all miss a threshold. The
/// invitations stand whatever happens here: an alert that cannot be sent is logged.
pub async fn alert_on_seats<S: TenancyStore + MeteringStore + InvitationStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    now: DateTime<Utc>,
) {
    let Some(max) = org.limits().get(Limit::Members) else {
        return;
    };
    let run = async {
        let (members, pending) = seats_of(store, org.id, now).await?;
        let used = members.saturating_add(pending);
        if billing_limits::thresholds_crossed(0, used, max, &billing_limits::alert_thresholds())
            .is_empty()
        {
            return Ok(Vec::new());
        }
        alert_on_change(store, org, Limit::Members, 0, used, now).await
    };
    if let Err(e) = run.await {
        tracing::warn!(error = %e, org = %org.id, "member usage alert not sent");
    }
}

/// The limits counted across months whose alerts [`send_missed_alerts`] repairs: those sent
/// after a creation, an upload or an invitation ([`alert_after_create`], [`alert_on_seats`],
/// the storage alert of an upload).
const REPAIRED_COUNTS: [Limit; 7] = [
    Limit::Members,
    Limit::ChatInterfaces,
    Limit::KnowledgeBases,
    Limit::Documents,
    Limit::ApiKeys,
    Limit::CustomDomains,
    Limit::StorageBytes,
];

/// Sends the usage alerts that are due and did not go out: the repair pass for alerts lost
/// between a change's commit and its alert (a crash there, or a store failure the change only
/// logged), which the server runs hourly. Returns the alerts that went out now.
///
/// - API calls (80 % and 100 % of the month's calls): the month's count was all reached this
///   month, so an alert due this month and not recorded this month was lost.
/// - Counts kept across months (members and the seats of pending invitations, chat interfaces,
///   knowledge bases, documents, API keys, custom domains, storage): their use may have reached a
///   threshold months ago, and its alert then went out that month; repairing "not this month"
///   would remind every such organization monthly. So one is sent only when the alert for that
///   threshold was never recorded at the limit's present value ([`MeteringStore::alert_periods`]).
///   That also tells an organization whose limit was lowered under its use (a smaller plan, an
///   operator's override), once.
///
/// Each limit is repaired on its own: one whose count or alert fails does not keep the others
/// from their alerts.
///
/// # Errors
/// The first storage error, after every limit was tried (the alerts that went out are recorded
/// in the store whatever this returns).
pub async fn send_missed_alerts<
    S: TenancyStore + WorkspaceStore + MeteringStore + InvitationStore + ?Sized,
>(
    store: &S,
    org: &crate::model::Organization,
    now: DateTime<Utc>,
) -> Result<Vec<(Limit, u64)>, TenancyError> {
    let limits = org.limits();
    let mut sent = Vec::new();
    let mut first_error = None;
    // The organization's assets are counted once (one grouped read) for the four asset limits.
    let mut assets = None;
    for limit in std::iter::once(Limit::ApiCallsPerMonth).chain(REPAIRED_COUNTS) {
        let Some(max) = limits.get(limit) else {
            continue;
        };
        let repaired = match in_use(store, org.id, limit, &mut assets, now).await {
            Ok(used) => repair(store, org, limit, max, used, now).await,
            Err(e) => Err(e),
        };
        match repaired {
            Ok(thresholds) => sent.extend(thresholds.into_iter().map(|t| (limit, t))),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(sent), Err)
}

/// The use [`send_missed_alerts`] holds `limit` to: the month's calls, the members with the
/// seats of pending invitations, or the count; `assets` keeps the organization's asset counts
/// once read (a failed read is tried again by the next asset limit).
async fn in_use<S: TenancyStore + WorkspaceStore + MeteringStore + InvitationStore + ?Sized>(
    store: &S,
    org: OrgId,
    limit: Limit,
    assets: &mut Option<Vec<TeamAssets>>,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    if limit == Limit::ApiCallsPerMonth {
        return store.monthly(org, METRIC_API_CALLS, &month_key(now)).await;
    }
    if limit == Limit::Members {
        let (members, pending) = seats_of(store, org, now).await?;
        return Ok(members.saturating_add(pending));
    }
    let Some(kind) = asset_kind(limit) else {
        return count_of(store, org, limit).await;
    };
    let counts = match assets {
        Some(counts) => counts,
        None => assets.insert(store.asset_counts(org).await?),
    };
    Ok(of_kind(counts, kind))
}

/// [`send_missed_alerts`] for one limit whose maximum is `max` and use `used`: the thresholds
/// alerted now.
async fn repair<S: TenancyStore + WorkspaceStore + MeteringStore + InvitationStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    limit: Limit,
    max: u64,
    used: u64,
    now: DateTime<Utc>,
) -> Result<Vec<u64>, TenancyError> {
    if limit == Limit::ApiCallsPerMonth {
        return alert_on_change(store, org, limit, 0, used, now).await;
    }
    // The Owner alone fills a plan of one seat (Free and Pro) without anyone using seats.
    if limit == Limit::Members && used <= 1 {
        return Ok(Vec::new());
    }
    let at_this_value = |period: &String| {
        period
            .rsplit_once(" of ")
            .is_some_and(|(_, value)| value.parse::<u64>() == Ok(max))
    };
    let mut never_sent = Vec::new();
    for t in billing_limits::thresholds_crossed(0, used, max, &billing_limits::alert_thresholds()) {
        if !store
            .alert_periods(org.id, limit.as_str(), t)
            .await?
            .iter()
            .any(at_this_value)
        {
            never_sent.push(t);
        }
    }
    send_alerts(store, org, limit, never_sent, used, max, now).await
}

/// The organization's members, and the seats its pending invitations hold at `now`.
async fn seats_of<S: TenancyStore + InvitationStore + ?Sized>(
    store: &S,
    org: OrgId,
    now: DateTime<Utc>,
) -> Result<(u64, u64), TenancyError> {
    Ok((
        store.member_count(org).await?,
        store.pending_invitation_count(org, now).await?,
    ))
}

/// The current use of one countable limit.
async fn count_of<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    org: OrgId,
    limit: Limit,
) -> Result<u64, TenancyError> {
    if let Some(kind) = asset_kind(limit) {
        return Ok(of_kind(&store.asset_counts(org).await?, kind));
    }
    match limit {
        Limit::Members => store.member_count(org).await,
        Limit::ApiKeys => store.active_api_key_count(org).await,
        Limit::StorageBytes => Ok(store.storage(org).await?.iter().map(|s| s.bytes).sum()),
        // Counted per month by the meter, not here; the asset limits were answered above.
        Limit::ApiCallsPerMonth
        | Limit::ChatInterfaces
        | Limit::KnowledgeBases
        | Limit::Documents
        | Limit::CustomDomains => Ok(0),
    }
}

/// The kind of asset a limit counts, if it counts assets.
fn asset_kind(limit: Limit) -> Option<AssetKind> {
    match limit {
        Limit::ChatInterfaces => Some(AssetKind::ChatInterface),
        Limit::KnowledgeBases => Some(AssetKind::KnowledgeBase),
        Limit::Documents => Some(AssetKind::Document),
        Limit::CustomDomains => Some(AssetKind::Domain),
        Limit::Members | Limit::ApiKeys | Limit::StorageBytes | Limit::ApiCallsPerMonth => None,
    }
}

/// The organization's assets of `kind`, across its teams.
fn of_kind(counts: &[TeamAssets], kind: AssetKind) -> u64 {
    counts
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.count)
        .sum()
}

/// The month a time falls in, as `YYYY-MM` (UTC).
#[must_use]
pub fn month_key(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

/// The first instant of the next UTC month, when the counter starts again.
#[must_use]
pub fn next_month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// Hands out API calls reserved from the database in blocks (see the module documentation).
#[derive(Debug)]
pub struct CallMeter {
    max_block: u64,
    state: std::sync::Mutex<MeterState>,
}

/// A block of calls reserved in the database and handed out in memory.
#[derive(Debug)]
struct Lease {
    /// The month (`YYYY-MM`) the calls were counted in.
    month: String,
    /// Calls left.
    left: u64,
    /// The monthly limit they were reserved within (`None`: unlimited).
    limit: Option<u64>,
}

#[derive(Debug, Default)]
struct MeterState {
    /// Calls reserved and not yet made, per organization, for the month named.
    leases: std::collections::HashMap<OrgId, Lease>,
    /// Calls made and not yet written to the daily counters.
    daily: std::collections::HashMap<(OrgId, TeamId, NaiveDate), u64>,
}

impl CallMeter {
    /// A meter reserving at most `max_block` calls at a time (1: every call is its own write).
    #[must_use]
    pub fn new(max_block: u64) -> Self {
        Self {
            max_block: max_block.max(1),
            state: std::sync::Mutex::default(),
        }
    }

    /// The block to reserve under `limit`: 0.1 % of it, between 1 and `max_block`.
    #[must_use]
    pub fn block_for(&self, limit: Option<u64>) -> u64 {
        limit.map_or(self.max_block, |l| (l / 1000).clamp(1, self.max_block))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one reserved call of `org` in `month`, if there is one reserved within `limit`
    /// or a higher one, and counts it for the day. A block reserved under a higher limit than
    /// `limit` (lowered since) is dropped.
    fn take(
        &self,
        org: OrgId,
        team: TeamId,
        month: &str,
        day: NaiveDate,
        limit: Option<u64>,
    ) -> bool {
        let mut s = self.lock();
        let ok = match s.leases.get_mut(&org) {
            Some(lease) if lease.month == month && lease.left > 0 => {
                let within = match (limit, lease.limit) {
                    (None, _) => true,
                    (Some(now), Some(then)) => then <= now,
                    (Some(_), None) => false,
                };
                if within {
                    lease.left -= 1;
                } else {
                    lease.left = 0;
                }
                within
            }
            _ => false,
        };
        if ok {
            *s.daily.entry((org, team, day)).or_insert(0) += 1;
        }
        ok
    }

    /// Records a reservation of `granted` calls within `limit`, one of which is being made now.
    fn granted(
        &self,
        org: OrgId,
        team: TeamId,
        month: &str,
        day: NaiveDate,
        granted: u64,
        limit: Option<u64>,
    ) {
        let mut s = self.lock();
        let lease = s.leases.entry(org).or_insert_with(|| Lease {
            month: month.to_owned(),
            left: 0,
            limit,
        });
        // Calls left of another month, or reserved under another limit, are not carried over.
        if lease.month != month || lease.limit != limit {
            *lease = Lease {
                month: month.to_owned(),
                left: 0,
                limit,
            };
        }
        lease.left += granted.saturating_sub(1);
        *s.daily.entry((org, team, day)).or_insert(0) += 1;
    }

    /// Calls reserved and not yet made, for `org` in `month`.
    #[must_use]
    pub fn unused(&self, org: OrgId, month: &str) -> u64 {
        match self.lock().leases.get(&org) {
            Some(lease) if lease.month == month => lease.left,
            _ => 0,
        }
    }

    /// Writes the calls made since the last flush to the daily per-team counters. Counts that
    /// cannot be written are kept for the next flush.
    ///
    /// # Errors
    /// [`TenancyError::Store`] (what was not written stays pending).
    pub async fn flush<S: WorkspaceStore + ?Sized>(&self, store: &S) -> Result<(), TenancyError> {
        let pending: Vec<_> = self.lock().daily.drain().collect();
        let mut failed = None;
        for ((org, team, day), n) in pending {
            let record = UsageRecord {
                team,
                asset: None,
                metric: METRIC_API_CALLS.to_owned(),
                day,
                count: n,
            };
            if let Err(e) = store.record_usage(&record, org).await {
                *self.lock().daily.entry((org, team, day)).or_insert(0) += n;
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Counts one API call (a request made with an API key) against the plan's monthly limit.
///
/// # Errors
/// [`TenancyError::LimitReached`] with [`Limit::ApiCallsPerMonth`] when the month's calls are
/// used up (the server answers 429 with `Retry-After` until the next month).
pub async fn meter_api_call<S: TenancyStore + WorkspaceStore + MeteringStore + ?Sized>(
    store: &S,
    meter: &CallMeter,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let Some(key) = &caller.api_key else {
        return Ok(());
    };
    meter_call(store, meter, &caller.org, key.team, now).await
}

/// Counts one API call of `team` in `org` (see [`meter_api_call`]).
///
/// # Errors
/// As [`meter_api_call`].
pub async fn meter_call<S: TenancyStore + WorkspaceStore + MeteringStore + ?Sized>(
    store: &S,
    meter: &CallMeter,
    org: &crate::model::Organization,
    team: TeamId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let month = month_key(now);
    let day = now.date_naive();
    let max = org.limits().get(Limit::ApiCallsPerMonth);
    if meter.take(org.id, team, &month, day, max) {
        return Ok(());
    }
    let want = meter.block_for(max);
    let (granted, used) = store
        .reserve_within(org.id, METRIC_API_CALLS, &month, want, max)
        .await?;
    // A concurrent request of this instance may have reserved a block meanwhile.
    if granted == 0 && meter.take(org.id, team, &month, day, max) {
        return Ok(());
    }
    if granted == 0 {
        return Err(TenancyError::LimitReached {
            limit: Limit::ApiCallsPerMonth,
            max: max.unwrap_or(u64::MAX),
            used,
            plan: org.plan,
        });
    }
    meter.granted(org.id, team, &month, day, granted, max);
    // The call is counted; daily counters and alerts that cannot be written must not fail it.
    if let Err(e) = meter.flush(store).await {
        tracing::warn!(error = %e, "daily API-call counters not written yet");
    }
    if let Some(m) = max
        && !billing_limits::thresholds_crossed(
            used - granted,
            used,
            m,
            &billing_limits::alert_thresholds(),
        )
        .is_empty()
        && let Err(e) = alert_on_change(
            store,
            org,
            Limit::ApiCallsPerMonth,
            used - granted,
            used,
            now,
        )
        .await
    {
        tracing::warn!(error = %e, org = %org.id, "usage alert not sent");
    }
    Ok(())
}

/// One figure against its limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figure {
    /// What is counted (`api_calls_per_month`, `members`, …).
    pub limit: &'static str,
    /// Current use.
    pub used: u64,
    /// Members only: seats held by pending invitations, which count against the limit as
    /// members do (0 for the other limits).
    pub pending: u64,
    /// The plan's limit; `None` is unlimited.
    pub max: Option<u64>,
    /// Use (with the seats pending invitations hold) as a percentage of the limit (rounded
    /// down), when limited.
    pub percent: Option<u64>,
}

/// Per-team figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamFigures {
    /// The team.
    pub team: TeamId,
    /// Its name.
    pub name: String,
    /// Resources by kind.
    pub chat_interfaces: u64,
    /// Knowledge bases.
    pub knowledge_bases: u64,
    /// Documents and their bytes.
    pub storage: TeamStorage,
    /// API calls this month.
    pub api_calls: u64,
    /// The trend of its API calls (no limit of its own: the organization's is shared).
    pub api_calls_trend: Trend,
}

/// A metric's trend ([`billing_limits::trend`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricTrend {
    /// `api_calls` or `messages`.
    pub metric: &'static str,
    /// The limit it counts against (`api_calls_per_month`), if any.
    pub limit: Option<&'static str>,
    /// The figures.
    pub trend: Trend,
}

/// This month's usage against the plan's limits, daily history and per-team breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// When the month's counters start again.
    pub resets_at: DateTime<Utc>,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Daily counters of this month (API calls, chat interface messages).
    pub daily: Vec<UsageRecord>,
    /// Per team.
    pub teams: Vec<TeamFigures>,
    /// API calls and chat interface messages: the last seven complete days against the seven
    /// before, and where the month is heading at the recent rate.
    pub trends: Vec<MetricTrend>,
}

fn figure(limit: Limit, used: u64, limits: &PlanLimits) -> Figure {
    let max = limits.get(limit);
    Figure {
        limit: limit.as_str(),
        used,
        pending: 0,
        max,
        // A limit of zero is always full.
        percent: max.map(|m| used.saturating_mul(100).checked_div(m).unwrap_or(100)),
    }
}

/// The members figure: the members and the seats their pending invitations hold, as the
/// member limit counts them.
fn seats(members: u64, pending: u64, limits: &PlanLimits) -> Figure {
    Figure {
        used: members,
        pending,
        ..figure(Limit::Members, members.saturating_add(pending), limits)
    }
}

/// The usage report, part of billing: the Owner's (`view_billing`), as in the guide, where
/// Admins "can't access billing".
///
/// # Errors
/// [`TenancyError::Forbidden`] for everyone else.
pub async fn usage<S: TenancyStore + WorkspaceStore + MeteringStore + InvitationStore + ?Sized>(
    store: &S,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<UsageReport, TenancyError> {
    caller.check_org(Permission::ViewBilling)?;
    report_of(store, &caller.org, now).await
}

/// The usage report of `org`, without a permission check (the weekly report's source).
async fn report_of<S: TenancyStore + WorkspaceStore + MeteringStore + InvitationStore + ?Sized>(
    store: &S,
    organization: &crate::model::Organization,
    now: DateTime<Utc>,
) -> Result<UsageReport, TenancyError> {
    let org = organization.id;
    let limits = organization.limits();
    let month = month_key(now);
    let first = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(now.date_naive());
    let api_calls = store.monthly(org, METRIC_API_CALLS, &month).await?;
    let (members, pending) = seats_of(store, org, now).await?;
    let mut by_kind = std::collections::HashMap::new();
    let mut per_team: std::collections::HashMap<(TeamId, AssetKind), u64> =
        std::collections::HashMap::new();
    for c in store.asset_counts(org).await? {
        *by_kind.entry(c.kind).or_insert(0u64) += c.count;
        *per_team.entry((c.team, c.kind)).or_insert(0) += c.count;
    }
    let storage = store.storage(org).await?;
    let bytes: u64 = storage.iter().map(|s| s.bytes).sum();
    let keys = store.active_api_key_count(org).await?;
    let window = Window::new(now, next_month_start(now), Some(organization.created_at));
    // This month's days and the two weeks before today, in one read.
    let mut daily = store
        .usage(org, first.min(window.previous_start()), now.date_naive())
        .await?;
    let days_of = |metric: &str, team: Option<TeamId>| -> Vec<(NaiveDate, u64)> {
        daily
            .iter()
            .filter(|u| u.metric == metric && team.is_none_or(|t| u.team == t))
            .map(|u| (u.day, u.count))
            .collect()
    };
    let this_month = |days: &[(NaiveDate, u64)]| -> u64 {
        days.iter()
            .filter(|(d, _)| *d >= first)
            .map(|(_, n)| *n)
            .sum()
    };
    let messages = days_of(crate::assets::METRIC_MESSAGES, None);
    let trends = vec![
        MetricTrend {
            metric: METRIC_API_CALLS,
            limit: Some(Limit::ApiCallsPerMonth.as_str()),
            trend: trend(
                &days_of(METRIC_API_CALLS, None),
                api_calls,
                limits.get(Limit::ApiCallsPerMonth),
                window,
            ),
        },
        MetricTrend {
            metric: crate::assets::METRIC_MESSAGES,
            limit: None,
            trend: trend(&messages, this_month(&messages), None, window),
        },
    ];
    let count = |k: AssetKind| by_kind.get(&k).copied().unwrap_or(0);
    let figures = vec![
        figure(Limit::ApiCallsPerMonth, api_calls, &limits),
        seats(members, pending, &limits),
        figure(
            Limit::ChatInterfaces,
            count(AssetKind::ChatInterface),
            &limits,
        ),
        figure(
            Limit::KnowledgeBases,
            count(AssetKind::KnowledgeBase),
            &limits,
        ),
        figure(Limit::Documents, count(AssetKind::Document), &limits),
        figure(Limit::ApiKeys, keys, &limits),
        figure(Limit::CustomDomains, count(AssetKind::Domain), &limits),
        figure(Limit::StorageBytes, bytes, &limits),
    ];
    let mut teams = Vec::new();
    for t in store.list_teams(org).await? {
        let calls = days_of(METRIC_API_CALLS, Some(t.id));
        let api = this_month(&calls);
        teams.push(TeamFigures {
            team: t.id,
            name: t.name.clone(),
            chat_interfaces: per_team
                .get(&(t.id, AssetKind::ChatInterface))
                .copied()
                .unwrap_or(0),
            knowledge_bases: per_team
                .get(&(t.id, AssetKind::KnowledgeBase))
                .copied()
                .unwrap_or(0),
            storage: storage
                .iter()
                .find(|s| s.team == t.id)
                .copied()
                .unwrap_or(TeamStorage {
                    team: t.id,
                    documents: 0,
                    bytes: 0,
                }),
            api_calls: api,
            // Rated over the time the team existed, not the organization.
            api_calls_trend: trend(
                &calls,
                api,
                None,
                Window::new(
                    now,
                    next_month_start(now),
                    Some(t.created_at.max(organization.created_at)),
                ),
            ),
        });
    }
    daily.retain(|u| u.day >= first);
    Ok(UsageReport {
        month,
        resets_at: next_month_start(now),
        figures,
        daily,
        teams,
        trends,
    })
}

/// The trends of a report as the weekly mail words them.
/// `now` is when the report was taken: its trends end the day before.
fn trend_lines(report: &UsageReport, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "\nTrends (the 7 days before {}, UTC, against the 7 before them):\n\n",
        now.format("%Y-%m-%d")
    );
    for m in &report.trends {
        let t = &m.trend;
        let change = t.change_percent.map_or_else(
            || "nothing to compare with".to_owned(),
            |c| format!("{c:+} %"),
        );
        out.push_str(&format!(
            "  {:<22} {} ({change}), {} a day\n",
            m.metric, t.last_7_days, t.per_day
        ));
        if m.limit.is_some() {
            let max = report
                .figures
                .iter()
                .find(|f| Some(f.limit) == m.limit)
                .and_then(|f| f.max);
            let of = max.map_or_else(|| "unlimited".to_owned(), |m| format!("of {m}"));
            out.push_str(&format!(
                "  {:<22} at that rate {} by {} ({of})\n",
                "",
                t.projected_month_end,
                report.resets_at.format("%Y-%m-%d")
            ));
            if let Some(on) = t.limit_reached_on {
                out.push_str(&format!(
                    "  {:<22} the limit would be reached on {on}\n",
                    ""
                ));
            }
        }
    }
    out
}

/// When this month's API calls, at the rate of the last seven complete days, would reach the
/// plan's limit before the counters start again, tells the Owner once per month and value of
/// the limit (the insert-once record of the usage alerts, under `api_calls_forecast`), with the
/// system's `usage.forecast_sent` record, in one transaction. Returns whether it went out now.
/// Nothing is sent for a limit reached already (the 100 % alert said so) or unlimited calls.
///
/// # Errors
/// Storage errors.
pub async fn forecast_alert<S: TenancyStore + WorkspaceStore + MeteringStore + ?Sized>(
    store: &S,
    org: &crate::model::Organization,
    now: DateTime<Utc>,
) -> Result<bool, TenancyError> {
    use audit::{Actor, AuditAction, Journal, Metadata, NewAuditEvent, OutboundMail, Target};
    let Some(max) = org.limits().get(Limit::ApiCallsPerMonth) else {
        return Ok(false);
    };
    let month = month_key(now);
    let resets_at = next_month_start(now);
    let window = Window::new(now, resets_at, Some(org.created_at));
    let used = store.monthly(org.id, METRIC_API_CALLS, &month).await?;
    if used >= max {
        return Ok(false);
    }
    let days: Vec<(NaiveDate, u64)> = store
        .usage(org.id, window.previous_start(), now.date_naive())
        .await?
        .into_iter()
        .filter(|u| u.metric == METRIC_API_CALLS)
        .map(|u| (u.day, u.count))
        .collect();
    let t = trend(&days, used, Some(max), window);
    let Some(on) = t.limit_reached_on else {
        return Ok(false);
    };
    let owner = match crate::orgs::owner_of(store, org.id).await {
        Ok(m) => m.user,
        Err(TenancyError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let period = format!("{month} of {max}");
    let journal = Journal::record(
        NewAuditEvent::new(
            org.id,
            now,
            Actor::system(),
            AuditAction::UsageForecastSent,
            Target::new(
                "limit",
                Limit::ApiCallsPerMonth.as_str(),
                format!("{} by {on}", Limit::ApiCallsPerMonth.as_str()),
            ),
        )
        .with_metadata(Metadata::from_value(serde_json::json!({
            "limit": Limit::ApiCallsPerMonth.as_str(), "used": used, "max": max,
            "per_day": t.per_day, "reached_on": on.to_string(), "period": month,
        }))?),
    )
    .mail(OutboundMail {
        org: Some(org.id),
        to: owner.email.as_str().to_owned(),
        subject: format!("{}: API calls on course to reach the limit by {on}", org.name),
        body: format!(
            "{} has used {used} of the {max} API calls its {} plan includes this month.\n\nAt the rate of the last 7 complete days ({} a day), it would reach the limit on {on}, before the counters start again on {}; calls past the limit are refused.\n\nUpgrade, or ask your teams to slow down. This forecast is sent once a month (again if the limit changes).",
            org.name,
            org.plan.as_str(),
            t.per_day,
            resets_at.format("%Y-%m-%d"),
        ),
        kind: "usage_forecast".into(),
    });
    store
        .record_alert(org.id, "api_calls_forecast", &period, 0, journal)
        .await
}

/// The ISO week a time falls in, as `YYYY-Www` (UTC).
#[must_use]
pub fn week_key(t: DateTime<Utc>) -> String {
    let w = t.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// Sends the weekly usage report for the ISO week before `now` to the Owner: once per week
/// and organization, however often it runs (the send is recorded by an insert only one caller
/// wins, in the transaction of its mail and audit record). Returns whether it went out now.
///
/// # Errors
/// Storage errors.
pub async fn weekly_report<
    S: TenancyStore + WorkspaceStore + MeteringStore + InvitationStore + ?Sized,
>(
    store: &S,
    org: &crate::model::Organization,
    now: DateTime<Utc>,
) -> Result<bool, TenancyError> {
    use audit::{Actor, AuditAction, Journal, Metadata, NewAuditEvent, OutboundMail, Target};
    let week = week_key(now - chrono::Duration::days(7));
    // Only weeks the organization lived through: nothing before its first Monday.
    let this_monday =
        now.date_naive() - chrono::Duration::days(i64::from(now.weekday().num_days_from_monday()));
    if org.created_at.date_naive() >= this_monday {
        return Ok(false);
    }
    let owner = match crate::orgs::owner_of(store, org.id).await {
        Ok(m) => m.user,
        Err(TenancyError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let report = report_of(store, org, now).await?;
    let mut body = format!(
        "Usage of {} ({} plan) this month ({}), as of {}:\n\n",
        org.name,
        org.plan.as_str(),
        report.month,
        now.format("%Y-%m-%d %H:%M UTC")
    );
    for f in &report.figures {
        let of = f
            .max
            .map_or_else(|| "unlimited".to_owned(), |m| m.to_string());
        let pct = f.percent.map_or_else(String::new, |p| format!(" ({p} %)"));
        let held = if f.pending > 0 {
            format!(" and {} invited", f.pending)
        } else {
            String::new()
        };
        body.push_str(&format!(
            "  {:<22} {}{held} of {of}{pct}\n",
            f.limit, f.used
        ));
    }
    body.push_str(&format!(
        "\nMonthly counters start again on {}.\n",
        report.resets_at.format("%Y-%m-%d")
    ));
    body.push_str(&trend_lines(&report, now));
    let journal = Journal::record(
        NewAuditEvent::new(
            org.id,
            now,
            Actor::system(),
            AuditAction::UsageReportSent,
            Target::new("organization", org.id, format!("week {week}")),
        )
        .with_metadata(Metadata::from_value(serde_json::json!({ "week": week }))?),
    )
    .mail(OutboundMail {
        org: Some(org.id),
        to: owner.email.as_str().to_owned(),
        subject: format!("{}: weekly usage report ({week})", org.name),
        body,
        kind: "usage_report".into(),
    });
    store
        .record_alert(org.id, "weekly_report", &week, 0, journal)
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn blocks_are_a_thousandth_of_the_limit_within_bounds() {
        let m = CallMeter::new(100);
        assert_eq!(m.block_for(Some(1_000)), 1, "Free: every call is written");
        assert_eq!(m.block_for(Some(10_000)), 10);
        assert_eq!(m.block_for(Some(100_000)), 100);
        assert_eq!(m.block_for(Some(10_000_000)), 100, "at most max_block");
        assert_eq!(m.block_for(None), 100);
        assert_eq!(m.block_for(Some(0)), 1);
        assert_eq!(CallMeter::new(0).block_for(None), 1);
    }

    #[tokio::test]
    async fn every_call_is_counted_once_in_blocks_and_by_day() {
        use crate::store::OrgStore;
        let (store, org, _) = crate::MemoryTenancyStore::with_org("Meter").await;
        let org = store.get_org(org.id).await.unwrap();
        let team = TeamId::new();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let meter = CallMeter::new(100);
        for _ in 0..250 {
            meter_call(&store, &meter, &org, team, now).await.unwrap();
        }
        // Enterprise's 100,000 calls: blocks of 100; 250 calls reserved 300, 50 unused.
        assert_eq!(
            store
                .monthly(org.id, METRIC_API_CALLS, "2026-11")
                .await
                .unwrap(),
            300
        );
        assert_eq!(meter.unused(org.id, "2026-11"), 50);
        meter.flush(&store).await.unwrap();
        let daily: u64 = store
            .usage(org.id, now.date_naive(), now.date_naive())
            .await
            .unwrap()
            .iter()
            .filter(|u| u.team == team && u.metric == METRIC_API_CALLS)
            .map(|u| u.count)
            .sum();
        assert_eq!(
            daily, 250,
            "the daily counters hold the calls made, not reserved"
        );
        // A new month starts with a new block; the old month's leftovers are not used for it.
        let next = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        meter_call(&store, &meter, &org, team, next).await.unwrap();
        assert_eq!(
            store
                .monthly(org.id, METRIC_API_CALLS, "2026-12")
                .await
                .unwrap(),
            100
        );
        assert_eq!(meter.unused(org.id, "2026-12"), 99);
    }

    #[tokio::test]
    async fn a_block_reserved_under_a_higher_limit_is_not_used_after_a_downgrade() {
        use crate::store::OrgStore;
        let (store, org, _) = crate::MemoryTenancyStore::with_org("Downgraded").await;
        let mut org = store.get_org(org.id).await.unwrap();
        let team = TeamId::new();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let meter = CallMeter::new(100);
        meter_call(&store, &meter, &org, team, now).await.unwrap();
        assert_eq!(meter.unused(org.id, "2026-11"), 99);
        // The limit falls under what the month's counter holds: no call of the old block.
        org.limit_overrides
            .0
            .insert(Limit::ApiCallsPerMonth, Some(50));
        assert!(matches!(
            meter_call(&store, &meter, &org, team, now).await,
            Err(TenancyError::LimitReached {
                max: 50,
                used: 100,
                ..
            })
        ));
        assert_eq!(meter.unused(org.id, "2026-11"), 0);
        // Raised again, calls are reserved anew within it.
        org.limit_overrides
            .0
            .insert(Limit::ApiCallsPerMonth, Some(200_000));
        meter_call(&store, &meter, &org, team, now).await.unwrap();
        assert_eq!(meter.unused(org.id, "2026-11"), 99);
    }

    #[tokio::test]
    async fn an_alert_goes_out_once_per_month_and_value_of_the_limit() {
        use crate::store::OrgStore;
        let (store, org, _) = crate::MemoryTenancyStore::with_org("Alerts").await;
        let mut org = store.get_org(org.id).await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let limit = Limit::ChatInterfaces;
        org.limit_overrides.0.insert(limit, Some(10));
        assert_eq!(
            alert_on_change(&store, &org, limit, 7, 8, now)
                .await
                .unwrap(),
            vec![80]
        );
        assert!(
            alert_on_change(&store, &org, limit, 7, 8, now)
                .await
                .unwrap()
                .is_empty(),
            "once a month"
        );
        // A larger limit the same month: nearing it is news.
        org.limit_overrides.0.insert(limit, Some(20));
        assert_eq!(
            alert_on_change(&store, &org, limit, 15, 16, now)
                .await
                .unwrap(),
            vec![80]
        );
        // The next month, the first limit's alert goes out again.
        org.limit_overrides.0.insert(limit, Some(10));
        let next = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(
            alert_on_change(&store, &org, limit, 7, 8, next)
                .await
                .unwrap(),
            vec![80]
        );
    }

    /// Alerts lost after their change committed go out on the next repair pass, once: a count
    /// kept across months only when never sent at the limit's present value, an API-call
    /// alert when not sent this month.
    #[tokio::test]
    async fn a_missed_alert_goes_out_on_the_repair_pass_once() {
        use crate::store::OrgStore;
        use audit::{AuditStore, MailOutbox};
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Repair").await;
        let mut o = store.get_org(org.id).await.unwrap();
        o.limit_overrides.0.insert(Limit::ChatInterfaces, Some(5));
        o.limit_overrides.0.insert(Limit::KnowledgeBases, Some(5));
        // One seat, the Owner's: full, but no one uses seats.
        o.limit_overrides.0.insert(Limit::Members, Some(1));
        store
            .set_limit_overrides(
                org.id,
                &o.limit_overrides,
                o.plan,
                audit::Journal::default(),
            )
            .await
            .unwrap();
        let mut o = store.get_org(org.id).await.unwrap();
        let team = store.list_teams(org.id).await.unwrap()[0].id;
        let now = Utc::now();
        // Four of five chat interfaces and four of five knowledge bases created, the alerts
        // lost (the store alone, as a crash after the creations' commits would leave them).
        for n in 0..8 {
            let details = if n < 4 {
                crate::assets::AssetDetails::ChatInterface {
                    description: String::new(),
                    instructions: String::new(),
                }
            } else {
                crate::assets::AssetDetails::KnowledgeBase {
                    description: String::new(),
                }
            };
            let asset = crate::assets::Asset {
                id: rbac_core::ResourceId::new(),
                org: org.id,
                team,
                name: format!("Asset {n}"),
                parent: None,
                created_by: owner.id,
                created_at: now,
                updated_at: now,
                size_bytes: 0,
                details,
                archived_at: None,
            };
            store
                .create_asset(&asset, &o.limits(), audit::Journal::default())
                .await
                .unwrap();
        }
        // The chat interfaces' 80 % alert went out in an earlier month, but at another value of
        // the limit (10): it is due again at this one.
        assert!(
            store
                .record_alert(
                    org.id,
                    Limit::ChatInterfaces.as_str(),
                    "2020-01 of 10",
                    80,
                    audit::Journal::default()
                )
                .await
                .unwrap()
        );
        // The knowledge bases' 80 % alert went out in an earlier month, at this limit's value:
        // still at 80 %, the organization is not told again every month.
        assert!(
            store
                .record_alert(
                    org.id,
                    Limit::KnowledgeBases.as_str(),
                    "2020-01 of 5",
                    80,
                    audit::Journal::default()
                )
                .await
                .unwrap()
        );
        assert_eq!(
            send_missed_alerts(&store, &o, now).await.unwrap(),
            vec![(Limit::ChatInterfaces, 80)],
            "the chat interfaces' alert, never sent; not the knowledge bases', nor one seat of one"
        );
        for later in [now, now + chrono::Duration::days(40)] {
            assert!(
                send_missed_alerts(&store, &o, later)
                    .await
                    .unwrap()
                    .is_empty(),
                "once, and not again the next month"
            );
        }
        // 85 of the month's 100 API calls counted, the alert lost: the pass sends it.
        o.limit_overrides
            .0
            .insert(Limit::ApiCallsPerMonth, Some(100));
        store
            .set_limit_overrides(
                org.id,
                &o.limit_overrides,
                o.plan,
                audit::Journal::default(),
            )
            .await
            .unwrap();
        let o = store.get_org(org.id).await.unwrap();
        store
            .reserve_within(org.id, METRIC_API_CALLS, &month_key(now), 85, Some(100))
            .await
            .unwrap();
        assert_eq!(
            send_missed_alerts(&store, &o, now).await.unwrap(),
            vec![(Limit::ApiCallsPerMonth, 80)]
        );
        assert!(
            send_missed_alerts(&store, &o, now)
                .await
                .unwrap()
                .is_empty(),
            "once"
        );
        let mails = store
            .audit()
            .list_mails(Some(org.id), None, 50)
            .await
            .unwrap();
        assert_eq!(mails.iter().filter(|m| m.kind == "usage_alert").count(), 2);
        let records = store.audit().chain_page(org.id, 0, 100).await.unwrap();
        assert_eq!(
            records
                .iter()
                .filter(|r| r.event.action == audit::AuditAction::UsageAlertSent)
                .count(),
            2
        );
    }

    #[test]
    fn pending_invitations_hold_member_seats_in_the_figures() {
        let limits = PlanLimits {
            members: Some(20),
            ..PlanLimits::deployed(billing_limits::Plan::Enterprise)
        };
        let f = seats(15, 3, &limits);
        assert_eq!(
            (f.limit, f.used, f.pending, f.max, f.percent),
            ("members", 15, 3, Some(20), Some(90))
        );
        assert_eq!(figure(Limit::ApiKeys, 5, &limits).pending, 0);
    }

    #[tokio::test]
    async fn the_usage_report_counts_seats_held_by_pending_invitations() {
        use crate::store::OrgStore;
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Seats").await;
        let org = store.get_org(org.id).await.unwrap();
        let now = Utc::now();
        let invitation = |email: &str, expires: chrono::Duration| crate::invitations::Invitation {
            id: rbac_core::InvitationId::new(),
            org: org.id,
            email: crate::model::Email::parse(email).unwrap(),
            role: rbac_core::OrgRole::User,
            invited_by: owner.id,
            created_at: now - chrono::Duration::days(1),
            expires_at: now + expires,
            accepted_at: None,
            revoked_at: None,
            team: None,
        };
        let limits = org.limits();
        for (n, (email, expires)) in [
            ("a@seats.example", chrono::Duration::days(3)),
            ("b@seats.example", chrono::Duration::days(3)),
            ("expired@seats.example", chrono::Duration::hours(-1)),
        ]
        .into_iter()
        .enumerate()
        {
            store
                .create_invitation(
                    &invitation(email, expires),
                    &format!("hash-{n}"),
                    &limits,
                    audit::Journal::default(),
                )
                .await
                .unwrap();
        }
        let report = report_of(&store, &org, now).await.unwrap();
        let members = report
            .figures
            .iter()
            .find(|f| f.limit == "members")
            .unwrap();
        assert_eq!(
            (members.used, members.pending),
            (1, 2),
            "the expired one holds none"
        );
    }

    /// Invitations hold seats, so the member alert goes out when they fill the plan, once: not
    /// again when they are accepted.
    #[tokio::test]
    async fn the_member_alert_goes_out_when_invitations_fill_the_seats() {
        use crate::invitations::{InvitationSettings, InviteRequest, invite};
        use crate::store::OrgStore;
        use audit::{AuditStore, MailOutbox};
        let (store, org, owner) = crate::MemoryTenancyStore::with_org("Inviting").await;
        let mut o = store.get_org(org.id).await.unwrap();
        o.limit_overrides.0.insert(Limit::Members, Some(5));
        store
            .set_limit_overrides(
                org.id,
                &o.limit_overrides,
                o.plan,
                audit::Journal::default(),
            )
            .await
            .unwrap();
        let caller = store.session_caller_in(org.id, owner).await;
        assert_eq!(caller.org.limits().members, Some(5));
        let settings = InvitationSettings {
            expiry: chrono::Duration::days(7),
            accept_url: "https://app.example/accept".into(),
            sealer: crate::mail_secrets::MailSealer::none(),
        };
        let now = Utc::now();
        let alerts = || async {
            store
                .audit()
                .list_mails(Some(org.id), None, 50)
                .await
                .unwrap()
                .into_iter()
                .filter(|m| m.kind == "usage_alert")
                .map(|m| m.subject)
                .collect::<Vec<_>>()
        };
        // The Owner and two invitations: 3 of 5 seats, no alert; the third invitation makes 4.
        let mut tokens = Vec::new();
        for n in 0..3 {
            assert!(alerts().await.is_empty(), "{n} invitations");
            let req = InviteRequest {
                email: format!("invitee{n}@inviting.example"),
                role: rbac_core::OrgRole::User,
                team: None,
            };
            tokens.push(
                invite(&store, &caller, req, &settings, now)
                    .await
                    .unwrap()
                    .1,
            );
        }
        let sent = alerts().await;
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].contains("80 %"), "{}", sent[0]);
        let records = store
            .search(
                org.id,
                &audit::AuditQuery {
                    action: Some(audit::ActionFilter::parse("usage.alert_sent")),
                    limit: 10,
                    ..audit::AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            records[0].event.metadata.to_map().get("used"),
            Some(&serde_json::json!(4))
        );
        // Accepting changes no seat count: once all three joined, members alone are at 80 %,
        // and nothing more goes out this month.
        let hasher =
            security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
        for t in &tokens {
            crate::invitations::accept_with_new_account(
                &store,
                &hasher,
                &t.secret,
                "Invitee",
                "a long enough passphrase for this",
                now,
            )
            .await
            .unwrap();
        }
        assert_eq!(store.member_count(org.id).await.unwrap(), 4);
        assert_eq!(alerts().await.len(), 1);
        // The next month, a fifth seat: the 80 % reminder and the 100 % alert are both due,
        // each recorded, in one mail that says 100 %.
        let next = next_month_start(now) + chrono::Duration::days(2);
        let req = InviteRequest {
            email: "fifth@inviting.example".into(),
            role: rbac_core::OrgRole::User,
            team: None,
        };
        invite(&store, &caller, req, &settings, next).await.unwrap();
        let sent = alerts().await;
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(
            sent.iter()
                .filter(|m| m.ends_with("100 % of your members used"))
                .count(),
            1,
            "{sent:?}"
        );
        assert_eq!(
            store
                .alert_periods(org.id, Limit::Members.as_str(), 80)
                .await
                .unwrap()
                .len(),
            2,
            "the 80 % reminder of the new month is recorded, without a mail of its own"
        );
    }

    #[test]
    fn months_are_utc_calendar_months() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(month_key(t), "2026-12");
        assert_eq!(
            next_month_start(t),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        assert_eq!(month_key(t), "2026-11");
        assert_eq!(
            next_month_start(t),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn percentages_round_down_and_zero_limits_are_full() {
        let l = PlanLimits::for_plan(billing_limits::Plan::Free);
        assert_eq!(figure(Limit::ApiCallsPerMonth, 799, &l).percent, Some(79));
        assert_eq!(figure(Limit::ApiCallsPerMonth, 800, &l).percent, Some(80));
        assert_eq!(figure(Limit::CustomDomains, 0, &l).percent, Some(100));
        let e = PlanLimits::for_plan(billing_limits::Plan::Enterprise);
        assert_eq!(figure(Limit::CustomDomains, 4, &e).percent, None);
    }

    #[tokio::test]
    async fn trends_compare_weeks_and_forecast_the_limit_once_a_month() {
        use crate::store::OrgStore;
        use audit::AuditStore;
        let created = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap();
        let (store, org, owner) =
            crate::MemoryTenancyStore::with_org_created("Trending", created).await;
        let org = store.get_org(org.id).await.unwrap();
        let max = org.limits().get(Limit::ApiCallsPerMonth).unwrap();
        let a = store.default_team(org.id).await.unwrap().id;
        // A team made on the 12th at noon. (Its rows from the 8th on are made up for the test:
        // a team has none before it exists; they show that its rate is taken over the time
        // it existed, whatever its rows.)
        let b = TeamId::new();
        store
            .create_team(
                &crate::model::Team {
                    id: b,
                    org: org.id,
                    name: "Young".into(),
                    is_default: false,
                    created_at: Utc.with_ymd_and_hms(2026, 11, 12, 12, 0, 0).unwrap(),
                    archived_at: None,
                },
                audit::Journal::default(),
            )
            .await
            .unwrap();
        let nov = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let record = |team: TeamId, metric: &str, day: NaiveDate, count: u64| UsageRecord {
            team,
            asset: None,
            metric: metric.into(),
            day,
            count,
        };
        let mut rows = vec![record(
            a,
            METRIC_API_CALLS,
            nov(1) - chrono::Duration::days(1),
            5_000,
        )];
        for d in 1..=7 {
            rows.push(record(a, METRIC_API_CALLS, nov(d), 100));
        }
        for d in 8..=14 {
            rows.push(record(a, METRIC_API_CALLS, nov(d), 200));
            rows.push(record(b, METRIC_API_CALLS, nov(d), 100));
            rows.push(record(a, crate::assets::METRIC_MESSAGES, nov(d), 10));
        }
        // Today's calls so far: not a complete day, not in the rate.
        rows.push(record(a, METRIC_API_CALLS, nov(15), 9_999));
        for r in &rows {
            store.record_usage(r, org.id).await.unwrap();
        }
        // 3,000 calls left of the month's limit; 300 a day in the last week: ten days.
        store
            .reserve_within(org.id, METRIC_API_CALLS, "2026-11", max - 3_000, None)
            .await
            .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
        let report = report_of(&store, &org, now).await.unwrap();
        let calls = &report.trends[0];
        assert_eq!(
            (calls.metric, calls.limit),
            (METRIC_API_CALLS, Some("api_calls_per_month"))
        );
        let t = calls.trend;
        assert_eq!((t.last_7_days, t.previous_7_days), (2_100, 700));
        assert_eq!((t.change_percent, t.per_day), (Some(200), 300));
        // 15.5 days left at 300 a day.
        assert_eq!(t.projected_month_end, max - 3_000 + 4_650);
        assert_eq!(t.limit_reached_on, Some(nov(25)));
        let messages = report.trends[1].trend;
        assert_eq!(report.trends[1].metric, "messages");
        assert_eq!(
            (
                messages.last_7_days,
                messages.change_percent,
                messages.projected_month_end
            ),
            (70, None, 70 + 155)
        );
        // Per team, against no limit of its own; today's calls are in the month's count.
        let default = report.teams.iter().find(|f| f.team == a).unwrap();
        let tt = default.api_calls_trend;
        assert_eq!(default.api_calls, 700 + 1_400 + 9_999);
        assert_eq!(
            (tt.last_7_days, tt.previous_7_days, tt.change_percent),
            (1_400, 700, Some(100))
        );
        assert_eq!(
            (tt.projected_month_end, tt.limit_reached_on),
            (12_099 + 3_100, None)
        );
        // The young team: 700 over the two and a half days it existed, 280 a day, no week
        // before it to compare with.
        let young = report
            .teams
            .iter()
            .find(|f| f.team == b)
            .unwrap()
            .api_calls_trend;
        assert_eq!(
            (young.last_7_days, young.per_day, young.change_percent),
            (700, 280, None)
        );
        let weekly = trend_lines(&report, now);
        assert!(weekly.contains("+200 %"), "{weekly}");
        assert!(
            weekly.contains("the limit would be reached on 2026-11-25"),
            "{weekly}"
        );

        // The Owner is told once this month, however many passes run.
        assert!(forecast_alert(&store, &org, now).await.unwrap());
        assert!(
            !forecast_alert(&store, &org, now + chrono::Duration::hours(1))
                .await
                .unwrap()
        );
        let mails = store.mails_of_kind(org.id, "usage_forecast").await;
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].to, owner.email.as_str());
        assert!(
            mails[0].body.contains("2026-11-25") && mails[0].body.contains("300 a day"),
            "{}",
            mails[0].body
        );
        let records = store
            .audit()
            .search(
                org.id,
                &audit::AuditQuery {
                    action: Some(audit::ActionFilter::parse("usage.forecast_sent")),
                    limit: 10,
                    ..audit::AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(records.len(), 1);
        let meta = records[0].event.metadata.to_map();
        assert_eq!(records[0].event.actor.kind, audit::ActorKind::System);
        assert_eq!(
            (meta.get("reached_on"), meta.get("per_day")),
            (
                Some(&serde_json::json!("2026-11-25")),
                Some(&serde_json::json!(300))
            )
        );

        // Next month: this month's count starts again and the same rate reaches no limit; the
        // report's daily counters are this month's, its trends read last month's days.
        store
            .record_usage(&record(b, METRIC_API_CALLS, nov(28), 700), org.id)
            .await
            .unwrap();
        let dec = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
        store
            .record_usage(
                &record(
                    b,
                    METRIC_API_CALLS,
                    dec.date_naive() - chrono::Duration::days(1),
                    7,
                ),
                org.id,
            )
            .await
            .unwrap();
        let report = report_of(&store, &org, dec).await.unwrap();
        assert!(
            report
                .daily
                .iter()
                .all(|u| u.day >= NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
        );
        assert_eq!(report.daily.len(), 1, "the 2nd's");
        // The last seven days before the 3rd are 26 Nov to 2 Dec: 707, 101 a day, for 29 days.
        let t = report.trends[0].trend;
        assert_eq!((t.last_7_days, t.previous_7_days, t.per_day), (707, 0, 101));
        assert_eq!(
            (t.projected_month_end, t.limit_reached_on),
            (707 * 29 / 7, None)
        );
        assert!(!forecast_alert(&store, &org, dec).await.unwrap());
    }
}
