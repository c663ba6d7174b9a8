//! Background workers: periodic signed checkpoints of every audit chain.

use std::time::Duration;

use audit::{AuditStore, take_checkpoint};
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Starts the workers; the caller aborts them at shutdown.
pub fn spawn(state: AppState) -> Vec<JoinHandle<()>> {
    let mut out = Vec::new();
    let every = state.settings.audit.checkpoint_interval_secs;
    let now = state.clock.now().timestamp();
    match crate::mailer::Smtp::from_settings(&state.settings.smtp) {
        Ok(Some(smtp)) => {
            state.health.register("mail", 30, now);
            out.push(tokio::spawn(mail(state.clone(), smtp)));
        }
        Ok(None) => tracing::info!(
            "SMTP is not configured: mail stays in the outbox (GET /api/v1/orgs/{{org_id}}/outbox)"
        ),
        Err(e) => {
            tracing::error!(error = %e, "SMTP settings are unusable: mail stays in the outbox")
        }
    }
    state.health.register("webhooks", 30, now);
    out.push(tokio::spawn(crate::deliver::run(state.clone())));
    if every > 0 {
        state.health.register(
            "checkpoints",
            i64::try_from(every).unwrap_or(i64::MAX / 4) * 2 + 30,
            now,
        );
        out.push(tokio::spawn(checkpoints(state, Duration::from_secs(every))));
    }
    out
}

async fn mail(state: AppState, smtp: crate::mailer::Smtp) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        state.health.beat("mail", state.clock.now().timestamp());
        crate::mailer::deliver_due(&state, &smtp).await;
    }
}

async fn checkpoints(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        state
            .health
            .beat("checkpoints", state.clock.now().timestamp());
        let orgs = match state.store.organizations().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint worker: cannot list organizations");
                continue;
            }
        };
        let mut all_ok = true;
        for org in orgs {
            if let Err(e) =
                take_checkpoint(&*state.store, org, &state.checkpoint_key, state.clock.now()).await
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
