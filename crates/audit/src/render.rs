//! Human-readable rendering, like the enterprise guide's example log.

use crate::model::AuditEvent;

/// One line: `2025-11-23 10:30:15 | Sarah | Created chat interface "Customer Support"`.
#[must_use]
pub fn render_line(record: &AuditEvent) -> String {
    let e = &record.event;
    let when = e.occurred_at.format("%Y-%m-%d %H:%M:%S");
    let who = if e.actor.name.is_empty() {
        e.actor.id.as_str()
    } else {
        e.actor.name.as_str()
    };
    let mut what = e.action.verb().to_owned();
    if matches!(
        e.action,
        crate::AuditAction::Login | crate::AuditAction::Logout | crate::AuditAction::LoginFailed
    ) {
        if let crate::model::Outcome::Failure { reason } = &e.outcome {
            what.push_str(&format!(" ({reason})"));
        }
        return format!("{when} | {who} | {what}");
    }
    let kind = e.target.kind.replace('_', " ");
    let needs_kind = !e
        .action
        .verb()
        .to_lowercase()
        .contains(&kind.to_lowercase());
    if !e.target.kind.is_empty()
        && needs_kind
        && !e.action.verb().ends_with(" to")
        && !e.action.verb().ends_with(" of")
    {
        what.push(' ');
        what.push_str(&kind);
    }
    if !e.target.name.is_empty() {
        what.push_str(&format!(" \"{}\"", e.target.name));
    } else if !e.target.id.is_empty() {
        what.push_str(&format!(" {}", e.target.id));
    }
    match &e.outcome {
        crate::model::Outcome::Success => {}
        other => what.push_str(&format!(" ({}: {})", other.status(), other.reason())),
    }
    format!("{when} | {who} | {what}")
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use rbac_core::OrgId;

    use super::*;
    use crate::action::AuditAction;
    use crate::chain::{GENESIS, seal};
    use crate::model::{Actor, NewAuditEvent, Outcome, Target};

    fn line(action: AuditAction, target: Target, outcome: Outcome) -> String {
        let at = DateTime::parse_from_rfc3339("2025-11-23T10:30:15Z")
            .unwrap()
            .to_utc();
        let e = NewAuditEvent::new(
            OrgId::new(),
            at,
            Actor::user("usr_1", "Sarah"),
            action,
            target,
        )
        .with_outcome(outcome);
        render_line(&seal(e, 1, GENESIS))
    }

    #[test]
    fn matches_the_guide() {
        assert_eq!(
            line(
                AuditAction::ChatInterfaceCreated,
                Target::new("chat_interface", "res_1", "Customer Support"),
                Outcome::Success
            ),
            "2025-11-23 10:30:15 | Sarah | Created chat interface \"Customer Support\""
        );
        assert_eq!(
            line(
                AuditAction::ApiKeyCreated,
                Target::new("api_key", "key_1", "Production API"),
                Outcome::Success
            ),
            "2025-11-23 10:30:15 | Sarah | Created API key \"Production API\""
        );
        assert_eq!(
            line(
                AuditAction::DocumentUploaded,
                Target::new("document", "res_2", "FAQ.pdf"),
                Outcome::Success
            ),
            "2025-11-23 10:30:15 | Sarah | Uploaded document \"FAQ.pdf\""
        );
    }

    #[test]
    fn shows_denials() {
        assert_eq!(
            line(
                AuditAction::AccessDenied,
                Target::new("route", "view_billing", ""),
                Outcome::Denied {
                    reason: "role_lacks_permission".into()
                }
            ),
            "2025-11-23 10:30:15 | Sarah | Was denied route view_billing (denied: role_lacks_permission)"
        );
    }
}
