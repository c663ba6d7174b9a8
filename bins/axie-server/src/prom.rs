//! Prometheus metrics through the `metrics` facade: the recorder is installed once per process
//! and rendered at `/metrics` (on the main listener with a bearer token, or on a separate
//! listener), with the gauges that are cheaper to read at scrape time than to maintain.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &seconds)
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed (another one is)");
                    None
                }
            }
        })
        .clone()
}

/// One request, by route pattern (never the raw path, so ids do not explode the label set).
pub fn request(route: &str, method: &str, status: u16, seconds: f64) {
    let status = status.to_string();
    metrics::counter!("axie_http_requests_total", "route" => route.to_owned(), "method" => method.to_owned(), "status" => status).increment(1);
    metrics::histogram!("axie_http_request_duration_seconds", "route" => route.to_owned(), "method" => method.to_owned()).record(seconds);
}

/// An authorization denial, by reason code.
pub fn denial(reason: &str) {
    metrics::counter!("axie_authz_denials_total", "reason" => reason.to_owned()).increment(1);
}

/// One webhook attempt's outcome (`delivered`, `retry`, `failed`, `disabled`) and duration.
pub fn webhook_attempt(outcome: &'static str, seconds: f64) {
    metrics::counter!("axie_webhook_deliveries_total", "outcome" => outcome).increment(1);
    metrics::histogram!("axie_webhook_attempt_duration_seconds").record(seconds);
}

/// Last heartbeat of each background worker, and when the last checkpoint round finished.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    beats: Mutex<HashMap<&'static str, (i64, i64)>>,
    passes: Mutex<HashMap<&'static str, u64>>,
    checkpoint_at: std::sync::atomic::AtomicI64,
}

impl WorkerHealth {
    /// Registers a worker that beats at least every `max_silence_secs`.
    pub fn register(&self, name: &'static str, max_silence_secs: i64, now: i64) {
        if let Ok(mut b) = self.beats.lock() {
            b.insert(name, (now, max_silence_secs));
        }
    }

    /// A worker is alive at `now`.
    pub fn beat(&self, name: &'static str, now: i64) {
        if let Ok(mut b) = self.beats.lock()
            && let Some(e) = b.get_mut(name)
        {
            e.0 = now;
        }
    }

    /// A periodic worker finished a pass (whatever came of it).
    pub fn finished(&self, name: &'static str) {
        if let Ok(mut p) = self.passes.lock() {
            *p.entry(name).or_default() += 1;
        }
    }

    /// How many passes a periodic worker has finished since start (the first one runs at
    /// start, with the clock as it is then).
    pub fn passes(&self, name: &'static str) -> u64 {
        self.passes
            .lock()
            .map_or(0, |p| p.get(name).copied().unwrap_or(0))
    }

    /// Workers silent for longer than they promised, at `now`.
    pub fn stalled(&self, now: i64) -> Vec<&'static str> {
        self.beats.lock().map_or_else(
            |_| vec!["(health lock poisoned)"],
            |b| {
                let mut out: Vec<_> = b
                    .iter()
                    .filter(|(_, (last, max))| now - last > *max)
                    .map(|(n, _)| *n)
                    .collect();
                out.sort_unstable();
                out
            },
        )
    }

    /// A checkpoint round finished at `now`.
    pub fn checkpointed(&self, now: i64) {
        self.checkpoint_at
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the last checkpoint round finished (0 = none since start).
    pub fn last_checkpoint(&self) -> i64 {
        self.checkpoint_at
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The scrape: refreshes the gauges read from the database and the process, then renders.
pub async fn render(st: &AppState) -> String {
    let Some(handle) = install() else {
        return String::new();
    };
    match st.store.webhook_queue_depth().await {
        Ok(n) => metrics::gauge!("axie_webhook_queue_depth").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "metrics: queue depth unavailable"),
    }
    let (size, idle) = st.store.pool_stats();
    metrics::gauge!("axie_db_pool_connections", "state" => "open").set(f64::from(size));
    metrics::gauge!("axie_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("axie_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    let now = st.clock.now().timestamp();
    let last = st.health.last_checkpoint();
    if last > 0 {
        metrics::gauge!("axie_audit_last_checkpoint_age_seconds").set((now - last) as f64);
    }
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_stops_beating_is_reported() {
        let h = WorkerHealth::default();
        h.register("webhooks", 30, 1_000);
        h.register("checkpoints", 630, 1_000);
        assert!(h.stalled(1_030).is_empty());
        assert_eq!(h.stalled(1_031), vec!["webhooks"]);
        h.beat("webhooks", 1_031);
        assert!(h.stalled(1_031).is_empty());
        assert_eq!(h.stalled(1_700), vec!["checkpoints", "webhooks"]);
        h.beat("unknown", 1_700);
        assert_eq!(h.last_checkpoint(), 0);
        h.checkpointed(1_650);
        assert_eq!(h.last_checkpoint(), 1_650);
        assert_eq!(h.passes("billing"), 0);
        h.finished("billing");
        h.finished("billing");
        assert_eq!((h.passes("billing"), h.passes("retention")), (2, 0));
    }
}
