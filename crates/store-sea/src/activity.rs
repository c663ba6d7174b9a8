//! Session activity written off the request's path, many sessions in one statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rbac_core::SessionId;
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::SeaStore;
use crate::convert::micros;
use crate::entity::session;

/// Most sessions one statement updates (three parameters each).
const BATCH: usize = 500;

/// How long written activity is still overlaid on reads: a read whose statement began before
/// the write committed returns the old time, and must still see the noted one.
const KEEP_WRITTEN: std::time::Duration = std::time::Duration::from_secs(60);

/// Activity noted on sessions and not yet written ([`tenancy::TenancyStore::note_activity`]).
///
/// A request that notes activity returns at once; one task, started by the first note while
/// none runs, writes what has been noted (each session's latest time, in one `UPDATE … CASE`
/// per [`BATCH`] sessions) until nothing is left. On SQLite that keeps reads from queueing for
/// the one writer connection behind other transactions only to record that they happened.
#[derive(Debug, Default)]
pub(crate) struct ActivityBuffer {
    state: std::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    noted: HashMap<SessionId, DateTime<Utc>>,
    /// Taken by the writing task and not yet written.
    in_flight: HashMap<SessionId, DateTime<Utc>>,
    /// Written lately, with when: see [`KEEP_WRITTEN`].
    written: HashMap<SessionId, (DateTime<Utc>, std::time::Instant)>,
    writing: bool,
}

impl ActivityBuffer {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Inserts and takes only: a panic cannot leave the state half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes activity; returns whether the caller must start the writing task.
    fn note(&self, session: SessionId, at: DateTime<Utc>) -> bool {
        let mut s = self.state();
        let latest = s.noted.entry(session).or_insert(at);
        *latest = (*latest).max(at);
        !std::mem::replace(&mut s.writing, true)
    }

    /// Up to [`BATCH`] noted sessions, now in flight; none ends the writing task's turn.
    fn take(&self) -> Vec<(SessionId, DateTime<Utc>)> {
        let mut s = self.state();
        let keys: Vec<SessionId> = s.noted.keys().take(BATCH).copied().collect();
        if keys.is_empty() {
            s.writing = false;
        }
        let batch: Vec<_> = keys
            .into_iter()
            .filter_map(|k| s.noted.remove(&k).map(|at| (k, at)))
            .collect();
        s.in_flight.extend(batch.iter().copied());
        batch
    }

    /// `batch` has been written (or given up).
    fn written(&self, batch: &[(SessionId, DateTime<Utc>)]) {
        let mut s = self.state();
        let now = std::time::Instant::now();
        s.written
            .retain(|_, (_, when)| now.duration_since(*when) < KEEP_WRITTEN);
        for (id, at) in batch {
            if s.in_flight.get(id) == Some(at) {
                s.in_flight.remove(id);
            }
            let kept = s.written.entry(*id).or_insert((*at, now));
            *kept = ((*at).max(kept.0), now);
        }
    }

    /// `recorded` (a session's activity as read from the database) or the later activity this
    /// process has noted and not yet written (or written so lately that the read may have begun
    /// before it): a request sees the activity of the one before it.
    pub(crate) fn latest(&self, session: SessionId, recorded: DateTime<Utc>) -> DateTime<Utc> {
        let s = self.state();
        [
            s.noted.get(&session),
            s.in_flight.get(&session),
            s.written.get(&session).map(|(at, _)| at),
        ]
        .into_iter()
        .flatten()
        .fold(recorded, |a, b| a.max(*b))
    }
}

/// Ends the writing task's turn if it stops early (its runtime dropped it), so that the next
/// note starts another; what was noted or in flight stays to be written then.
struct Turn {
    buffer: std::sync::Arc<ActivityBuffer>,
    ended: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.ended {
            let mut s = self.buffer.state();
            s.writing = false;
            // What was in flight goes back to be written by the next task.
            let in_flight = std::mem::take(&mut s.in_flight);
            for (id, at) in in_flight {
                let latest = s.noted.entry(id).or_insert(at);
                *latest = (*latest).max(at);
            }
        }
    }
}

impl SeaStore {
    /// `session` with the latest activity this process has noted for it.
    pub(crate) fn with_noted_activity(&self, mut session: tenancy::Session) -> tenancy::Session {
        session.last_seen_at = self.activity().latest(session.id, session.last_seen_at);
        session
    }

    /// Notes activity on `session` at `at`, to be written shortly by a task of its own.
    pub(crate) fn note_session_activity(&self, session: SessionId, at: DateTime<Utc>) {
        if self.activity().note(session, at) {
            let store = self.clone();
            // The turn exists before the task: a task dropped before it first runs (its runtime
            // stopping) still hands the turn back.
            let turn = Turn {
                buffer: self.activity_buffer(),
                ended: false,
            };
            self.spawn_writing(async move { store.write_noted_activity(turn).await });
        }
    }

    async fn write_noted_activity(&self, mut turn: Turn) {
        let buffer = std::sync::Arc::clone(&turn.buffer);
        loop {
            let batch = buffer.take();
            if batch.is_empty() {
                turn.ended = true;
                return;
            }
            if let Err(e) = self.write_activity(&batch).await {
                // Lost activity only makes these sessions look idle sooner; the next request
                // of each notes it again.
                tracing::warn!(error = %e, sessions = batch.len(), "writing session activity failed");
            }
            buffer.written(&batch);
        }
    }

    async fn write_activity(
        &self,
        batch: &[(SessionId, DateTime<Utc>)],
    ) -> Result<(), sea_orm::DbErr> {
        let mut at = CaseStatement::new();
        for (id, t) in batch {
            at = at.case(
                session::Column::Id.eq(id.to_string()),
                Expr::value(micros(*t)),
            );
        }
        let at = at.finally(Expr::col(session::Column::LastSeenAt));
        // On PostgreSQL the sessions another transaction holds (a sign-out, a removal ending
        // them) are skipped, not waited for: this statement would otherwise take the batch's
        // rows in the order of its plan against theirs, and either could deadlock the other.
        // A skipped session's activity is the one thing lost, as when a write fails.
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, at.into())
            .filter(crate::store::in_key_order::<session::Entity>(
                self.db().get_database_backend(),
                session::Column::Id,
                sea_orm::Condition::all()
                    .add(session::Column::Id.is_in(batch.iter().map(|(id, _)| id.to_string()))),
                true,
                None,
            ))
            .exec(self.db())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_noted_activity_until_well_after_it_is_written() {
        let buffer = ActivityBuffer::default();
        let id = SessionId::new();
        let old = DateTime::from_timestamp(1_760_000_000, 0).unwrap_or_default();
        let noted = old + chrono::Duration::minutes(5);
        assert!(buffer.note(id, noted), "the first note starts the writer");
        assert_eq!(buffer.latest(id, old), noted, "noted");
        let batch = buffer.take();
        assert_eq!(batch, [(id, noted)]);
        assert_eq!(buffer.latest(id, old), noted, "in flight");
        // A read whose statement began before the write committed still has the old time.
        buffer.written(&batch);
        assert_eq!(buffer.latest(id, old), noted, "written lately");
        let later = noted + chrono::Duration::minutes(1);
        assert_eq!(
            buffer.latest(id, later),
            later,
            "the database's newer time wins"
        );
        assert!(
            buffer.take().is_empty(),
            "nothing left ends the writer's turn"
        );
    }
}
