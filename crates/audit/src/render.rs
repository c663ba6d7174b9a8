//! Human-readable rendering, like the enterprise guide's example log.

use crate::action::AuditAction;
use crate::model::{AuditEvent, NewAuditEvent, Outcome};

/// One line: `2025-11-23 10:30:15 | Sarah | Created chat interface "Customer Support"`.
///
/// The words come from the action's verb and the target; a few actions say more from their
/// metadata (the knowledge base a document went into, the team a member joined, the purpose of
/// a consent, the format of an export). A refusal or failure ends with its reason.
#[must_use]
pub fn render_line(record: &AuditEvent) -> String {
    let e = &record.event;
    let when = e.occurred_at.format("%Y-%m-%d %H:%M:%S");
    let who = if e.actor.name.is_empty() {
        e.actor.id.as_str()
    } else {
        e.actor.name.as_str()
    };
    let mut what = describe(e);
    match &e.outcome {
        Outcome::Success => {}
        Outcome::Failure { reason }
            if matches!(e.action, AuditAction::Login | AuditAction::LoginFailed) =>
        {
            what.push_str(&format!(" ({reason})"));
        }
        other => what.push_str(&format!(" ({}: {})", other.status(), other.reason())),
    }
    format!("{when} | {who} | {what}")
}

/// A metadata string value by key, only parsed when the key appears in the text.
fn said(metadata: &crate::model::Metadata, key: &str) -> Option<String> {
    if !metadata.as_json().contains(&format!("\"{key}\"")) {
        return None;
    }
    match metadata.to_map().remove(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The target's name in quotes, or its id when it has no name.
fn named(target: &crate::model::Target) -> String {
    if target.name.is_empty() {
        target.id.clone()
    } else {
        format!("\"{}\"", target.name)
    }
}

/// What happened, without who or when.
fn describe(e: &NewAuditEvent) -> String {
    let verb = e.action.verb();
    let target = &e.target;
    match e.action {
        AuditAction::Login | AuditAction::Logout | AuditAction::LoginFailed => verb.to_owned(),
        // The guide's "Viewed analytics dashboard"; a team's dashboard names the team.
        AuditAction::AnalyticsViewed => match target.kind.as_str() {
            "team" => format!("{verb} of team {}", named(target)),
            _ => verb.to_owned(),
        },
        // The target is the invitation; its name is the address invited.
        AuditAction::MemberInvited => format!("{verb} {}", named(target)),
        // The guide's `Uploaded document "FAQ.pdf" to knowledge base`.
        AuditAction::DocumentUploaded => {
            let mut s = format!("{verb} {}", named(target));
            match said(&e.metadata, "knowledge_base") {
                Some(kb) => s.push_str(&format!(" to knowledge base \"{kb}\"")),
                None => s.push_str(" to knowledge base"),
            }
            s
        }
        AuditAction::ConsentGranted
        | AuditAction::ConsentWithdrawn
        | AuditAction::ConsentChanged => {
            let verb = match (e.action, said(&e.metadata, "granted").as_deref()) {
                (AuditAction::ConsentChanged, Some("true")) => "Gave consent to",
                (AuditAction::ConsentChanged, Some("false")) => "Withdrew consent to",
                _ => verb,
            };
            match said(&e.metadata, "purpose") {
                Some(p) => format!("{verb} \"{p}\""),
                None => verb.to_owned(),
            }
        }
        AuditAction::TeamMemberAdded
        | AuditAction::TeamMemberRoleChanged
        | AuditAction::TeamMemberRemoved => {
            let team = said(&e.metadata, "team")
                .map_or_else(|| "a team".to_owned(), |t| format!("team \"{t}\""));
            let role = said(&e.metadata, "team_role");
            match (e.action, role) {
                (AuditAction::TeamMemberAdded, Some(r)) => {
                    format!("Added {} to {team} as {r}", named(target))
                }
                (AuditAction::TeamMemberAdded, None) => {
                    format!("Added {} to {team}", named(target))
                }
                (AuditAction::TeamMemberRoleChanged, Some(r)) => {
                    format!("Made {} {r} in {team}", named(target))
                }
                (AuditAction::TeamMemberRoleChanged, None) => {
                    format!("{verb} {} in {team}", named(target))
                }
                _ => format!("Took {} out of {team}", named(target)),
            }
        }
        // "Was denied permission revoke_api_key on DELETE /api/v1/…": a refusal decided past
        // the route names what it lacked and, in its metadata, the request refused.
        AuditAction::AccessDenied if target.kind != "route" => {
            let mut s = format!("{verb} {} {}", target.kind.replace('_', " "), named(target));
            if let Some(request) = said(&e.metadata, "request") {
                s.push_str(&format!(" on {request}"));
            }
            s
        }
        // "Exported audit log as csv": the target's kind says what, its name adds nothing.
        AuditAction::DataExported => {
            let kind = target.kind.replace('_', " ");
            let mut s = format!("{verb} {kind}");
            if !target.name.is_empty() && target.name != kind {
                s.push_str(&format!(" \"{}\"", target.name));
            }
            if let Some(f) = said(&e.metadata, "format") {
                s.push_str(&format!(" as {f}"));
            }
            s
        }
        _ => {
            let mut what = verb.to_owned();
            let kind = target.kind.replace('_', " ");
            let needs_kind = !verb.to_lowercase().contains(&kind.to_lowercase());
            if !target.kind.is_empty()
                && needs_kind
                && ![" to", " of", " for", " from"]
                    .iter()
                    .any(|end| verb.ends_with(end))
            {
                what.push(' ');
                what.push_str(&kind);
            }
            if !target.name.is_empty() || !target.id.is_empty() {
                what.push(' ');
                what.push_str(&named(target));
            }
            what
        }
    }
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
            "2025-11-23 10:30:15 | Sarah | Uploaded document \"FAQ.pdf\" to knowledge base"
        );
        assert_eq!(
            line(
                AuditAction::AnalyticsViewed,
                Target::new("organization", "org_1", "Acme"),
                Outcome::Success
            ),
            "2025-11-23 10:30:15 | Sarah | Viewed analytics dashboard"
        );
    }

    fn line_with(action: AuditAction, target: Target, metadata: serde_json::Value) -> String {
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
        .with_metadata(crate::Metadata::from_value(metadata).unwrap());
        render_line(&seal(e, 1, GENESIS))
            .split(" | ")
            .nth(2)
            .unwrap()
            .to_owned()
    }

    #[test]
    fn says_what_the_metadata_adds() {
        let cases = [
            (
                AuditAction::DocumentUploaded,
                Target::new("document", "res_2", "FAQ.pdf"),
                serde_json::json!({ "size_bytes": 10, "knowledge_base": "Product docs" }),
                "Uploaded document \"FAQ.pdf\" to knowledge base \"Product docs\"",
            ),
            (
                AuditAction::AnalyticsViewed,
                Target::new("team", "team_1", "Sales"),
                serde_json::json!({}),
                "Viewed analytics dashboard of team \"Sales\"",
            ),
            (
                AuditAction::MemberInvited,
                Target::new("invitation", "inv_1", "bob@example.com"),
                serde_json::json!({ "role": "user" }),
                "Invited \"bob@example.com\"",
            ),
            (
                AuditAction::SettingsUpdated,
                Target::new("organization", "org_1", "Acme"),
                serde_json::json!({}),
                "Updated the settings of \"Acme\"",
            ),
            (
                AuditAction::DataExported,
                Target::new("audit_log", "org_1", "audit log"),
                serde_json::json!({ "format": "csv" }),
                "Exported audit log as csv",
            ),
            (
                AuditAction::ConsentGranted,
                Target::new("user", "usr_1", "Sarah"),
                serde_json::json!({ "purpose": "product_updates", "granted": true }),
                "Gave consent to \"product_updates\"",
            ),
            (
                AuditAction::ConsentChanged,
                Target::new("user", "usr_1", "Sarah"),
                serde_json::json!({ "purpose": "product_updates", "granted": false }),
                "Withdrew consent to \"product_updates\"",
            ),
            (
                AuditAction::TeamMemberAdded,
                Target::new("member", "usr_2", "Bob"),
                serde_json::json!({ "team": "Sales", "team_role": "editor" }),
                "Added \"Bob\" to team \"Sales\" as editor",
            ),
            (
                AuditAction::TeamMemberRoleChanged,
                Target::new("member", "usr_2", "Bob"),
                serde_json::json!({ "team": "Sales", "team_role": "admin" }),
                "Made \"Bob\" admin in team \"Sales\"",
            ),
            (
                AuditAction::TeamMemberRemoved,
                Target::new("member", "usr_2", "Bob"),
                serde_json::json!({ "team": "Sales", "team_role": null }),
                "Took \"Bob\" out of team \"Sales\"",
            ),
            (
                AuditAction::AccessDenied,
                Target::new("permission", "revoke_api_key", ""),
                serde_json::json!({ "request": "DELETE /api/v1/orgs/org_1/api-keys/key_1" }),
                "Was denied permission revoke_api_key on DELETE /api/v1/orgs/org_1/api-keys/key_1",
            ),
            (
                AuditAction::AccessDenied,
                Target::new("permission", "view_team", ""),
                serde_json::json!({}),
                "Was denied permission view_team",
            ),
        ];
        for (action, target, metadata, expected) in cases {
            assert_eq!(line_with(action, target, metadata), expected, "{action}");
        }
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
