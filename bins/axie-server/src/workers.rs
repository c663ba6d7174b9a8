//! Background workers: mail, webhook delivery, periodic signed checkpoints of every audit
//! chain, subscription renewals and trial ends, the audit retention periods and housekeeping.

use std::time::Duration;

use audit::take_checkpoint;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// The running background workers, and the signal that stops them.
pub struct Workers {
    stop: watch::Sender<bool>,
    running: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl Workers {
    /// How many workers run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Stops the workers: none starts anything new, and what is in flight finishes (a webhook
    /// attempt or a mail being sent, with its outcome recorded, so that a deploy sends nothing
    /// twice). A worker still busy after the grace period (the longest webhook attempt or mail
    /// send, and a margin) is aborted: its transaction rolls back, and what it had claimed is
    /// claimed again when the lease runs out.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.grace;
        for mut worker in self.running {
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                tracing::warn!(
                    grace_secs = self.grace.as_secs(),
                    "a worker was still busy after the grace period; aborted"
                );
                worker.abort();
            }
        }
    }
}

/// Resolves once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Starts the workers; [`Workers::shutdown`] stops them.
pub fn spawn(state: AppState) -> Workers {
    let (stop, stopping) = watch::channel(false);
    let mut out = Vec::new();
    let every = state.settings.audit.checkpoint_interval_secs;
    let now = state.clock.now().timestamp();
    let mut longest = Duration::from_secs(state.settings.webhooks.timeout_secs);
    match crate::mailer::Smtp::from_settings(&state.settings.smtp) {
        Ok(Some(smtp)) => {
            // It beats before each send, and one send to a relay that hangs takes up to
            // `send_limit` (three SMTP timeouts).
            let silence = i64::try_from(smtp.send_limit().as_secs()).unwrap_or(900) + 30;
            state.health.register("mail", silence, now);
            longest = longest.max(smtp.send_limit());
            out.push(tokio::spawn(mail(state.clone(), smtp, stopping.clone())));
        }
        Ok(None) => tracing::info!(
            "SMTP is not configured: mail stays in the outbox (GET /api/v1/orgs/{{org_id}}/outbox)"
        ),
        Err(e) => {
            tracing::error!(error = %e, "SMTP settings are unusable: mail stays in the outbox")
        }
    }
    state.health.register("webhooks", 30, now);
    out.push(tokio::spawn(crate::deliver::run(
        state.clone(),
        stopping.clone(),
    )));
    state.health.register("billing", 3 * 60, now);
    out.push(tokio::spawn(billing(state.clone(), stopping.clone())));
    state.health.register("retention", 2 * 3600 + 60, now);
    out.push(tokio::spawn(retention(state.clone(), stopping.clone())));
    if every > 0 {
        state.health.register(
            "checkpoints",
            i64::try_from(every).unwrap_or(i64::MAX / 4) * 2 + 30,
            now,
        );
        out.push(tokio::spawn(checkpoints(
            state,
            Duration::from_secs(every),
            stopping,
        )));
    }
    Workers {
        stop,
        running: out,
        grace: longest + Duration::from_secs(15),
    }
}

async fn mail(state: AppState, smtp: crate::mailer::Smtp, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        state.health.beat("mail", state.clock.now().timestamp());
        crate::mailer::deliver_due(&state, &smtp, &stop).await;
    }
}

async fn checkpoints(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        state
            .health
            .beat("checkpoints", state.clock.now().timestamp());
        let orgs = match state.store.live_organizations().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint worker: cannot list organizations");
                continue;
            }
        };
        let mut all_ok = true;
        for org in orgs {
            if let Err(e) = take_checkpoint(
                &state.audit_log(),
                org,
                &state.checkpoint_key,
                state.clock.now(),
            )
            .await
            {
                all_ok = false;
                tracing::warn!(error = %e, %org, "checkpoint worker: checkpoint failed");
            }
        }
        if all_ok {
            state.health.checkpointed(state.clock.now().timestamp());
        }
    }
}

/// Ends the trials that are over and renews the paid periods that ended, every minute (the
/// first pass right at start).
async fn billing(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        state.health.beat("billing", state.clock.now().timestamp());
        if let Err(e) = run_billing(&state.store, state.payments(), state.clock.now()).await {
            tracing::warn!(error = %e, "billing worker failed");
        }
        state.health.finished("billing");
    }
}

/// Writes the API calls this process counted since the last write (`CallMeter`: calls handed
/// out of a reserved block) into the daily per-team counters, every minute, and once more when
/// `stop` is sent (or dropped), then returns. It runs wherever the HTTP server runs, workers or
/// not (`server.workers = false`), as only that process counts calls. It is stopped, not
/// aborted: an abort in the middle of a write would lose the counts it had taken.
pub(crate) async fn meter_flush(state: AppState, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => flush_meter(&state).await,
            _ = &mut stop => break,
        }
    }
    flush_meter(&state).await;
}

/// One write of the counted API calls ([`meter_flush`]); what cannot be written stays counted
/// for the next.
async fn flush_meter(state: &AppState) {
    if let Err(e) = state.meter.flush(&*state.store).await {
        tracing::warn!(error = %e, "daily API-call counters not written; retried next minute");
    }
}

/// One pass of the billing worker: ends the Enterprise trials that are over, renews the paid
/// periods that ended (an invoice each) and lapses to Free the renewals left unpaid past their
/// grace period, for every organization due (a hundred read at a time, by id, so that
/// renewals whose charge keeps failing hold up no other). Returns how many changes were made.
/// Safe on several instances at once (each change is compare-and-swap).
///
/// # Errors
/// Storage errors.
pub async fn run_billing(
    store: &store_sea::SeaStore,
    payments: tenancy::billing::Payments<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, tenancy::TenancyError> {
    let done = tenancy::billing::run_due(store, payments, now, 100).await?;
    for (org, change) in &done {
        tracing::info!(org = %org, change = change.as_str(), "subscription changed by the billing worker");
    }
    Ok(done.len())
}

/// Notes that this server is up (`tenancy::uptime`), every `uptime.heartbeat_secs` from its
/// start until `stop`: the monthly uptime reports are made of these beats. Every process that
/// serves the API beats ([`crate::Application::run_until_stopped`], whatever
/// `server.workers` says); `axie-server worker` does not, as it serves no one.
pub(crate) async fn uptime_beats(state: AppState, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let instance = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(Duration::from_secs(state.settings.uptime.heartbeat_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tolerance = state.settings.uptime.tolerance();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        let now = state.clock.now();
        match tenancy::uptime::UptimeStore::note_up(&*state.store, &instance, now, tolerance).await
        {
            // A beat that is not stored shows as an outage, as it should: the service cannot
            // write to its database.
            Ok(()) => {
                state.health.beat("uptime", now.timestamp());
                state.health.finished("uptime");
            }
            Err(e) => tracing::warn!(error = %e, "the uptime beat was not stored"),
        }
    }
}

/// Mails the Owner and Admins of every Enterprise organization the uptime report of the month
/// before `now`, once `tolerance` has passed since it ended
/// (`tenancy::uptime::send_report_as_system`: once per organization and month, however many
/// passes or instances run; not for a month nothing of which was monitored); the hourly pass.
/// Returns how many organizations were sent it now.
///
/// # Errors
/// Storage errors (other organizations are still processed; the first error is returned).
pub async fn send_uptime_reports(
    store: &store_sea::SeaStore,
    tolerance: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, tenancy::TenancyError> {
    let Some(month) = tenancy::uptime::month_to_send(now, tolerance) else {
        return Ok(0);
    };
    let report = tenancy::uptime::month_report(store, month, now, tolerance)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, %month, "uptime report not made"))?;
    if report.monitored_from.is_none() {
        return Ok(0);
    }
    let report = &report;
    let sent = each_org(store, "uptime report", |org| async move {
        let o = tenancy::OrgStore::get_org(store, org).await?;
        tenancy::uptime::send_report_as_system(store, &o, report, now).await
    })
    .await?;
    Ok(sent.into_iter().filter(|s| *s).count())
}

/// Refreshes the planner statistics, sends the weekly usage reports due, the reminders of
/// overdue invoices, the uptime reports of the month before and the usage alerts that went
/// missing, applies every organization's audit retention period and removes stale rows
/// (`tenancy::housekeeping`), hourly (the first pass right at start, but for the missing
/// alerts, which read every organization's usage and wait an hour: a start is busy enough).
async fn retention(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    let mut first = true;
    let mut passes: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        state
            .health
            .beat("retention", state.clock.now().timestamp());
        // Document bytes no document refers to (left by a crash or a stop between a commit and
        // its file work): at start and once a day.
        if passes.is_multiple_of(24) {
            sweep_unreferenced_documents(&state).await;
        }
        passes += 1;
        // Fresh planner statistics keep filtered audit searches on their indexes.
        if let Err(e) = state.store.optimize().await {
            tracing::warn!(error = %e, "refreshing planner statistics failed");
        }
        // The per-organization passes log each failure where it happens (`each_org`); their
        // results (the first error, for callers that want it) are not logged again here.
        let _ = send_weekly_reports(&state.store, state.clock.now()).await;
        let _ = send_usage_forecasts(&state.store, state.clock.now()).await;
        let _ = remind_overdue_invoices(&state.store, state.clock.now()).await;
        let _ = send_uptime_reports(
            &state.store,
            state.settings.uptime.tolerance(),
            state.clock.now(),
        )
        .await;
        if !std::mem::take(&mut first) {
            let _ = send_missed_alerts(&state.store, state.clock.now()).await;
        }
        let _ = apply_retention(
            &state.store,
            &*state.witness,
            &state.checkpoint_key,
            state.clock.now(),
        )
        .await;
        let policy = state.settings.housekeeping.policy();
        match tenancy::housekeeping::run(state.store.as_ref(), &policy, state.clock.now()).await {
            Ok(r) if r.total() > 0 => tracing::info!(
                sessions = r.sessions,
                password_resets = r.password_resets,
                login_challenges = r.login_challenges,
                bulk_previews = r.bulk_previews,
                mails = r.mails,
                sms = r.sms,
                webhook_deliveries = r.webhook_deliveries,
                webhook_attempts = r.webhook_attempts,
                events = r.events,
                "stale rows removed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
        state.health.finished("retention");
    }
}

/// Runs `pass` over every organization, each on its own: one that fails does not stop the
/// others. Every failure is logged here, once: the organizations that could not be listed, or
/// each organization's (`what` failed), at error level for a conflict (data that does not add
/// up: for retention, an audit chain that does not verify), else as a warning. Returns what
/// each gave, or the first error.
async fn each_org<T, F, Fut>(
    store: &store_sea::SeaStore,
    what: &str,
    pass: F,
) -> Result<Vec<T>, tenancy::TenancyError>
where
    F: Fn(rbac_core::OrgId) -> Fut,
    Fut: Future<Output = Result<T, tenancy::TenancyError>>,
{
    let orgs = store
        .live_organizations()
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "{what}: organizations not listed"))?;
    let mut done = Vec::new();
    let mut first_error = None;
    for org in orgs {
        match pass(org).await {
            Ok(t) => done.push(t),
            Err(e) => {
                if matches!(e, tenancy::TenancyError::Conflict(_)) {
                    tracing::error!(error = %e, %org, "{what} failed");
                } else {
                    tracing::warn!(error = %e, %org, "{what} failed");
                }
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(done), Err)
}

/// One pass of the retention worker over every organization with audit records; returns the
/// records removed.
///
/// # Errors
/// Storage errors (other organizations are still processed; the first error is returned).
pub async fn apply_retention(
    store: &store_sea::SeaStore,
    witness: &dyn audit::CheckpointWitness,
    checkpoint_key: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, tenancy::TenancyError> {
    let log = &audit::Witnessed::new(store, witness);
    let removed = each_org(store, "retention", |org| async move {
        // A conflict: records to be removed that do not verify are kept, as evidence; or the
        // checkpoint after the removal found a break in the records kept.
        let n =
            tenancy::security::apply_audit_retention(store, log, org, checkpoint_key, now).await?;
        if n > 0 {
            tracing::info!(%org, removed = n, "audit records past the retention period removed");
        }
        Ok(n)
    })
    .await?;
    Ok(removed.iter().sum())
}

/// Sends the usage alerts due that went missing (`tenancy::metering::send_missed_alerts`: a
/// change committed and the server stopped before its alert), for every organization; the
/// hourly pass. Returns how many went out.
///
/// # Errors
/// Storage errors (other organizations are still processed; the first error is returned).
pub async fn send_missed_alerts(
    store: &store_sea::SeaStore,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, tenancy::TenancyError> {
    let sent = each_org(store, "usage alert repair pass", |org| async move {
        let o = tenancy::OrgStore::get_org(store, org).await?;
        let alerts = tenancy::metering::send_missed_alerts(store, &o, now).await?;
        for (limit, threshold) in &alerts {
            tracing::info!(%org, limit = limit.as_str(), threshold, "usage alert sent by the repair pass");
        }
        Ok(alerts.len())
    })
    .await?;
    Ok(sent.iter().sum())
}

/// Sets aside document bytes that no document refers to, puts back those a document refers
/// to again and removes those set aside a month ago (`tenancy::assets::sweep_unreferenced_blobs`:
/// only bytes older than a day are set aside, so no upload under way is touched; by the wall
/// clock, which file times follow), logging what it did. Returns how many were set aside.
pub async fn sweep_unreferenced_documents(state: &AppState) -> u64 {
    let swept =
        tenancy::assets::sweep_unreferenced_blobs(&*state.store, &*state.blobs, chrono::Utc::now())
            .await;
    match swept {
        Ok(done) => {
            if done.set_aside > 0 {
                tracing::warn!(
                    set_aside = done.set_aside,
                    dir = crate::workspace_io::SET_ASIDE,
                    "set aside document bytes no document refers to (left by a crash or a stop \
                     mid-request; if this server uses the wrong database, stop it and start it \
                     on the right one: they are put back); removed after 30 days"
                );
            }
            if done.put_back > 0 {
                tracing::warn!(
                    put_back = done.put_back,
                    "put back document bytes set aside earlier that documents refer to again"
                );
            }
            if done.removed > 0 {
                tracing::info!(
                    removed = done.removed,
                    "removed document bytes set aside 30 days ago"
                );
            }
            done.set_aside
        }
        Err(e) => {
            tracing::warn!(error = %e, "sweeping unreferenced document bytes failed; tried again tomorrow");
            0
        }
    }
}

/// Reminds every organization's Owner of its invoices unpaid past their due date (the hourly
/// pass; `tenancy::billing::remind_overdue`: as each falls due, a week and two weeks later,
/// each reminder once however many passes or instances run). Returns how many went out.
///
/// # Errors
/// Storage errors (other organizations are still processed; the first error is returned).
pub async fn remind_overdue_invoices(
    store: &store_sea::SeaStore,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, tenancy::TenancyError> {
    let sent = each_org(store, "overdue invoice reminders", |org| async move {
        let o = tenancy::OrgStore::get_org(store, org).await?;
        tenancy::billing::remind_overdue(store, &o, now).await
    })
    .await?;
    Ok(sent.iter().map(|&n| u64::from(n)).sum())
}

/// Tells each Owner whose API calls are on course to reach the plan's limit this month
/// (`tenancy::metering::forecast_alert`, once per month). Returns how many went out.
///
/// # Errors
/// Storage errors (other organizations are still processed; the first error is returned).
pub async fn send_usage_forecasts(
    store: &store_sea::SeaStore,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, tenancy::TenancyError> {
    let sent = each_org(store, "usage forecast", |org| async move {
        let o = tenancy::OrgStore::get_org(store, org).await?;
        tenancy::metering::forecast_alert(store, &o, now).await
    })
    .await?;
    Ok(sent.iter().filter(|&&went| went).count() as u64)
}

/// Sends last week's usage report of every organization that has not had it yet (the hourly
/// pass; each report goes out once however many passes or instances run). Returns how many
/// went out.
///
/// # Errors
/// Storage errors (other organizations are still processed; the first error is returned).
pub async fn send_weekly_reports(
    store: &store_sea::SeaStore,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, tenancy::TenancyError> {
    let sent = each_org(store, "weekly usage report", |org| async move {
        let o = tenancy::OrgStore::get_org(store, org).await?;
        tenancy::metering::weekly_report(store, &o, now).await
    })
    .await?;
    Ok(sent.iter().filter(|&&went| went).count() as u64)
}
