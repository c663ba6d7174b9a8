//! Service notices from the operator to the people who run organizations: the guide's
//! "incident notifications" of Enterprise's uptime guarantee.
//!
//! The operator declares an incident (the `notify-incident` command), and every organization on
//! Enterprise (its trial included) has its active Owner and Admins mailed, once per incident and
//! state (`investigating`, then `resolved`), however often the command runs, with the system's
//! `service.incident_notified` record in the organization's log, in one transaction.

use audit::{Actor, AuditAction, Journal, Metadata, NewAuditEvent, OutboundMail, Target};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::TenancyError;
use crate::metering::MeteringStore;
use crate::model::Organization;
use crate::store::TenancyStore;

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    /// Under way: something does not work as it should.
    Investigating,
    /// Over.
    Resolved,
}

impl IncidentState {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            IncidentState::Investigating => "investigating",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// An incident as the operator declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// The operator's reference (`2026-12-06-api-latency`): 1 to 64 letters, digits, `-`, `_`
    /// or `.`; a notice goes out once per organization, reference and state.
    pub reference: String,
    /// One line: "Slow API responses in eu-north".
    pub title: String,
    /// What happens, what is affected, what to do (at most 4,000 characters).
    pub message: String,
    /// Where it stands.
    pub state: IncidentState,
}

impl Incident {
    /// Checks the operator's input.
    ///
    /// # Errors
    /// [`TenancyError::Invalid`] naming what is wrong.
    pub fn new(
        reference: &str,
        title: &str,
        message: &str,
        state: IncidentState,
    ) -> Result<Self, TenancyError> {
        let reference = reference.trim();
        if reference.is_empty()
            || reference.len() > 64
            || !reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(TenancyError::Invalid(
                "the incident's reference is 1 to 64 letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        let title = crate::model::valid_name("title", title)?;
        let message = crate::model::valid_lines("message", message, 4_000)?;
        Ok(Self {
            reference: reference.to_owned(),
            title,
            message,
            state,
        })
    }
}

/// Tells `org`'s active Owner and Admins of `incident`, when it is on Enterprise (a trial
/// included) and was not told of this incident in this state before; returns whether it was
/// told now. The mails (kind `incident_notice`) and the system's `service.incident_notified`
/// record commit in one transaction with the insert-once record that keeps a second run from
/// repeating them ([`MeteringStore::record_alert`], under `incident`).
///
/// # Errors
/// [`TenancyError::Store`].
pub async fn notify_incident_as_system<S: TenancyStore + MeteringStore + ?Sized>(
    store: &S,
    org: &Organization,
    incident: &Incident,
    now: DateTime<Utc>,
) -> Result<bool, TenancyError> {
    if org.plan != billing_limits::Plan::Enterprise {
        // Free and Pro have no uptime guarantee, and so no incident notices.
        return Ok(false);
    }
    let state = incident.state.as_str();
    let mut journal = Journal::record(
        NewAuditEvent::new(
            org.id,
            now,
            Actor::system(),
            AuditAction::IncidentNotified,
            Target::new("incident", &incident.reference, incident.title.clone()),
        )
        .with_metadata(Metadata::from_value(json!({
            "reference": incident.reference, "state": state,
        }))?),
    );
    let subject = match incident.state {
        IncidentState::Investigating => format!("[Incident] {}", incident.title),
        IncidentState::Resolved => format!("[Resolved] {}", incident.title),
    };
    for m in store.admins(org.id).await? {
        if m.deactivated_at.is_some() {
            continue;
        }
        journal = journal.mail(OutboundMail {
            org: Some(org.id),
            to: m.user.email.as_str().to_owned(),
            subject: subject.clone(),
            body: format!(
                "Hello {name},\n\n{message}\n\nIncident {reference}, {state}, as of {when}. You \
                 receive this as an administrator of {org_name} on the Enterprise plan.\n",
                name = m.user.name,
                message = incident.message,
                reference = incident.reference,
                when = now.format("%Y-%m-%d %H:%M UTC"),
                org_name = org.name,
            ),
            kind: "incident_notice".into(),
        });
    }
    store
        .record_alert(
            org.id,
            "incident",
            &format!("{} {state}", incident.reference),
            0,
            journal,
        )
        .await
}
