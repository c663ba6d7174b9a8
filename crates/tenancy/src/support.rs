//! Support requests (the guide's "Priority Support"): the Owner or an Admin writes to the
//! support desk with a priority ("Subject: [ENTERPRISE] Your issue, Priority:
//! Critical/High/Medium/Low"); on Enterprise the answer is promised within the priority's
//! response time (`billing_limits::catalogue::RESPONSE_TIMES`).

use audit::{AuditAction, Journal, Metadata, OutboundMail, Target};
use billing_limits::Plan;
use billing_limits::catalogue::Priority;
use chrono::{DateTime, Utc};
use rbac_core::Permission;
use serde_json::json;

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::store::TenancyStore;

/// The longest request, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;

/// Requests one organization may send in any hour, at most: enough for an incident with its
/// follow-ups, few enough that a script or a stolen key cannot flood the desk.
pub const REQUESTS_PER_HOUR: u32 = 20;

/// A request as its author writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportRequest {
    /// How urgent it is.
    pub priority: Priority,
    /// One line, 1 to 100 printable characters.
    pub subject: String,
    /// What happens, 1 to [`MAX_BODY_CHARS`] characters (lines and tabs allowed).
    pub body: String,
}

/// A request as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportTicket {
    /// Its reference (`SUP-…`), in the mails and the audit record.
    pub reference: String,
    /// How urgent it is.
    pub priority: Priority,
    /// When the first answer is due (Enterprise; `None` on the other plans, which have no
    /// response times).
    pub response_due_at: Option<DateTime<Utc>>,
}

/// Sends `request` to the support desk at `desk`, and a copy to its author, with the
/// `support.requested` record (its reference and priority, not its text) in one transaction.
/// On Enterprise the answer is due within the priority's response time, business hours
/// counted without the desk's `closed` days.
/// The Owner and the Admins may (`update_settings`: they run the organization's account), at
/// most [`REQUESTS_PER_HOUR`] an hour per organization (counted by those records, so that
/// requests sent at the same moment may pass it by a few).
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Invalid`] for a bad subject or body;
/// [`TenancyError::Throttled`] until the hour's oldest request is an hour old.
pub async fn request<
    S: TenancyStore + crate::store::WorkspaceStore + audit::AuditStore + ?Sized,
>(
    store: &S,
    caller: &Caller,
    request: &SupportRequest,
    desk: &str,
    closed: &[chrono::NaiveDate],
    now: DateTime<Utc>,
) -> Result<SupportTicket, TenancyError> {
    caller.check_org(Permission::UpdateSettings)?;
    let subject = crate::model::valid_name("subject", &request.subject)?;
    let body = crate::model::valid_lines("body", &request.body, MAX_BODY_CHARS)?;
    let org = &caller.org;
    let hour = chrono::Duration::hours(1);
    let recent = store
        .search(
            org.id,
            &audit::AuditQuery {
                action: Some(audit::ActionFilter::parse(
                    AuditAction::SupportRequested.as_str(),
                )),
                since: Some(now - hour),
                limit: REQUESTS_PER_HOUR,
                ..audit::AuditQuery::default()
            },
        )
        .await?;
    if recent.len() >= REQUESTS_PER_HOUR as usize
        && let Some(oldest) = recent.last()
    {
        return Err(TenancyError::Throttled(oldest.event.occurred_at + hour));
    }
    let enterprise = org.plan == Plan::Enterprise;
    let response = request.priority.response_time();
    let due = enterprise.then(|| response.due(now, closed));
    // The random end of a fresh time-ordered id: twelve hex digits.
    let reference = format!(
        "SUP-{}",
        &rbac_core::ResourceId::new().as_uuid().simple().to_string()[20..]
    );
    let priority = request.priority.as_str();
    let plan = org.plan.as_str().to_uppercase();
    let promise = due.map_or_else(
        || format!("The {} plan has no response times.", org.plan.as_str()),
        |d| {
            format!(
                "First answer due by {} ({} hours{}).",
                d.format("%Y-%m-%d %H:%M UTC"),
                response.hours,
                if response.around_the_clock {
                    ", around the clock"
                } else {
                    " of business hours, Monday to Friday 9:00-17:00 CET/CEST, but for the desk's closed days"
                }
            )
        },
    );
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::SupportRequested,
                // Named by its reference: the subject is the author's text, kept in the mails.
                Target::new("support_request", &reference, reference.clone()),
            )
            .with_metadata(Metadata::from_value(json!({
                "reference": reference, "priority": priority,
                "response_due_at": due.map(|d| d.to_rfc3339()),
            }))?),
    )
    .mail(OutboundMail {
        org: Some(org.id),
        to: desk.to_owned(),
        subject: format!(
            "[{plan}][{}] {subject} ({reference})",
            priority.to_uppercase()
        ),
        body: format!(
            "Priority: {priority}\nOrganization: {} ({}), {} plan\nFrom: {} <{}>, {}\n{promise}\n\n{body}\n",
            org.name,
            org.id,
            org.plan.as_str(),
            caller.user.name,
            caller.user.email.as_str(),
            caller.subject.role.as_str(),
        ),
        kind: "support_request".into(),
    })
    .mail(OutboundMail {
        org: Some(org.id),
        to: caller.user.email.as_str().to_owned(),
        subject: format!("Your support request {reference}: {subject}"),
        body: format!(
            "Hello {},\n\nWe received your {priority}-priority request {reference} for {}. {promise}\n\nWhat you wrote:\n\n{body}\n",
            caller.user.name, org.name,
        ),
        kind: "support_request_copy".into(),
    });
    store.record(journal).await?;
    Ok(SupportTicket {
        reference,
        priority: request.priority,
        response_due_at: due,
    })
}
