//! Search filters and keyset pagination for the audit log.

use chrono::{DateTime, Duration, Utc};
use rbac_core::TeamId;
use serde::{Deserialize, Serialize};

use crate::error::AuditError;

/// Largest page a search returns.
pub const MAX_PAGE: u32 = 500;

/// How the `action` filter matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionFilter {
    /// The dotted name exactly.
    Exact(String),
    /// Every action whose name starts with this (for example `member.`).
    Prefix(String),
}

impl ActionFilter {
    /// `member.invited` is exact; `member.` or `member.*` is a prefix.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s.strip_suffix('*') {
            Some(p) => ActionFilter::Prefix(p.to_owned()),
            None if s.ends_with('.') => ActionFilter::Prefix(s.to_owned()),
            None => ActionFilter::Exact(s.to_owned()),
        }
    }
}

/// The guide's date presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePreset {
    /// The last 7 days.
    Last7Days,
    /// The last 30 days.
    Last30Days,
}

impl DatePreset {
    /// The start of the window ending at `now`.
    #[must_use]
    pub fn since(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            DatePreset::Last7Days => now - Duration::days(7),
            DatePreset::Last30Days => now - Duration::days(30),
        }
    }
}

/// What an organization User reads of the log: the records of their teams and their own
/// actions. Records of no team (sign-ins, invitations, role changes) name people of every
/// team, so only the reader's own are theirs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SeenBy {
    /// The reader's teams.
    pub teams: Vec<TeamId>,
    /// The reader's own actor id: a person's (`usr_…`), or a team-confined API key's
    /// (`key_…`), which reads its own actions and not its creator's.
    pub actor_id: String,
}

impl SeenBy {
    /// Whether a record of `team` by `actor_id` is the reader's to read, before
    /// [`hidden_from_its_actor`] (which [`SeenBy::sees_record`] applies too).
    #[must_use]
    pub fn sees(&self, team: Option<TeamId>, actor_id: &str) -> bool {
        team.is_some_and(|t| self.teams.contains(&t)) || actor_id == self.actor_id
    }

    /// Whether the record is the reader's to read: of one of their teams, or their own action,
    /// except a refusal that must not tell its actor that what they asked for exists.
    #[must_use]
    pub fn sees_record(&self, e: &crate::NewAuditEvent) -> bool {
        e.team.is_some_and(|t| self.teams.contains(&t))
            || (e.actor.id == self.actor_id && !hidden_from_its_actor(e.action, &e.outcome))
    }
}

/// The reasons of refusals that are answered as "not found" (`rbac_core::DenyReason::
/// hides_existence`): another organization's resource, another team's.
pub const HIDDEN_REFUSAL_REASONS: [&str; 2] = [
    rbac_core::DenyReason::CrossTenant.code(),
    rbac_core::DenyReason::NotTeamMember.code(),
];

/// Whether a record is a refusal its actor was answered "not found" for: it is kept from
/// them (their own view of the log, their personal-data export), or reading it would tell
/// them that what they asked for exists.
#[must_use]
pub fn hidden_from_its_actor(action: crate::AuditAction, outcome: &crate::Outcome) -> bool {
    action == crate::AuditAction::AccessDenied
        && matches!(outcome, crate::Outcome::Denied { reason }
            if HIDDEN_REFUSAL_REASONS.contains(&reason.as_str()))
}

/// A filtered, newest-first page request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only records by this actor id (`usr_…` or `key_…`).
    pub actor_id: Option<String>,
    /// Only these actions.
    pub action: Option<ActionFilter>,
    /// Only records at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only records before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only records about this target kind.
    pub target_kind: Option<String>,
    /// Only records about this target id.
    pub target_id: Option<String>,
    /// Only `success`, `denied` or `failure`.
    pub outcome: Option<String>,
    /// Only records of this team.
    pub team: Option<TeamId>,
    /// Only what an organization User may read (`None`: every record).
    pub seen_by: Option<SeenBy>,
    /// Keyset cursor: only records with `seq` below this.
    pub before_seq: Option<i64>,
    /// Page size (1..=[`MAX_PAGE`]).
    pub limit: u32,
}

impl AuditQuery {
    /// Checks the filter.
    ///
    /// # Errors
    /// [`AuditError::Invalid`] for an empty page, an inverted range or an unknown outcome.
    pub fn validate(&self) -> Result<(), AuditError> {
        if self.limit == 0 || self.limit > MAX_PAGE {
            return Err(AuditError::Invalid(format!(
                "`limit` must be between 1 and {MAX_PAGE}"
            )));
        }
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s > u
        {
            return Err(AuditError::Invalid("`since` is after `until`".to_owned()));
        }
        if let Some(o) = &self.outcome
            && !matches!(o.as_str(), "success" | "denied" | "failure")
        {
            return Err(AuditError::Invalid(format!("unknown outcome `{o}`")));
        }
        // A name that is not in the catalogue (a typo, a prefix of nothing) would quietly find
        // nothing, which reads as "nobody did that": say so instead.
        match &self.action {
            Some(ActionFilter::Exact(name)) if crate::AuditAction::parse(name).is_none() => {
                return Err(AuditError::Invalid(format!(
                    "unknown action `{name}`; end it with `.` or `*` to match a prefix"
                )));
            }
            Some(ActionFilter::Prefix(prefix))
                if !crate::AuditAction::ALL
                    .iter()
                    .any(|a| a.as_str().starts_with(prefix.as_str())) =>
            {
                return Err(AuditError::Invalid(format!(
                    "no action starts with `{prefix}`"
                )));
            }
            _ => {}
        }
        if self.target_id.is_some() && self.target_kind.is_none() {
            return Err(AuditError::Invalid(
                "`target_id` needs `target_type`".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_action(filter: &str) -> AuditQuery {
        AuditQuery {
            action: Some(ActionFilter::parse(filter)),
            limit: 50,
            ..AuditQuery::default()
        }
    }

    #[test]
    fn an_action_filter_must_name_the_catalogue() {
        for known in ["member.invited", "member.", "member.*", "auth.login*", "*"] {
            assert!(with_action(known).validate().is_ok(), "{known}");
        }
        for unknown in ["member.invite", "members.", "nothing.*", "Member.invited"] {
            let err = with_action(unknown).validate().unwrap_err();
            assert!(matches!(err, AuditError::Invalid(_)), "{unknown}: {err}");
        }
    }
}
