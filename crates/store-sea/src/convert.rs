//! Conversions between entity models and domain types.

use std::str::FromStr;

use audit::{
    Actor, ActorKind, AuditAction, AuditEvent, Metadata, NewAuditEvent, Outcome, RequestContext,
    StoreError, Target,
};
use billing_limits::Plan;
use chrono::{DateTime, Utc};
use rbac_core::{OrgRole, TeamRole};
use tenancy::{ApiKey, Email, Organization, Session, Team, User};

use crate::entity;

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn time(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("timestamp", &us.to_string()))
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::msg(format!("stored {what} `{value}` is corrupt"))
}

pub(crate) fn id<T: FromStr>(what: &str, s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| corrupt(what, s))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(what, s))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(StoreError::new)
}

pub(crate) fn role(s: &str) -> Result<OrgRole, StoreError> {
    OrgRole::parse(s).ok_or_else(|| corrupt("role", s))
}

/// A member's stored role in every team (`memberships.all_teams_role`).
pub(crate) fn all_teams_role(s: Option<&str>) -> Result<Option<rbac_core::TeamRole>, StoreError> {
    s.map(|s| rbac_core::TeamRole::parse(s).ok_or_else(|| corrupt("team role", s)))
        .transpose()
}

/// A stored address in its canonical form, or as stored when it no longer parses (accepted by
/// an earlier, more lenient check): such a row stays readable.
pub(crate) fn stored_email(s: &str) -> Email {
    Email::parse(s).unwrap_or_else(|_| Email::stored(s.to_owned()))
}

pub(crate) fn hash32(what: &str, s: &str) -> Result<[u8; 32], StoreError> {
    let mut out = [0; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| corrupt(what, s))?;
    Ok(out)
}

impl TryFrom<entity::organization::Model> for Organization {
    type Error = StoreError;
    fn try_from(m: entity::organization::Model) -> Result<Self, StoreError> {
        Ok(Organization {
            id: id("organization id", &m.id)?,
            name: m.name,
            plan: Plan::parse(&m.plan).ok_or_else(|| corrupt("plan", &m.plan))?,
            profile: json("profile", &m.profile)?,
            access: json("feature access", &m.access)?,
            security: json("security settings", &m.security)?,
            created_at: time(m.created_at)?,
            audit_archived_at: m.audit_archived_at.map(time).transpose()?,
            limit_overrides: m
                .limit_overrides
                .as_deref()
                .map(|s| json("limit overrides", s))
                .transpose()?
                .unwrap_or_default(),
            limit_overrides_plan: m
                .limit_overrides_plan
                .as_deref()
                .map(|p| Plan::parse(p).ok_or_else(|| corrupt("plan", p)))
                .transpose()?,
        })
    }
}

impl TryFrom<entity::user::Model> for User {
    type Error = StoreError;
    fn try_from(m: entity::user::Model) -> Result<Self, StoreError> {
        Ok(User {
            id: id("user id", &m.id)?,
            email: stored_email(&m.email),
            name: m.name,
            created_at: time(m.created_at)?,
        })
    }
}

impl TryFrom<entity::team::Model> for Team {
    type Error = StoreError;
    fn try_from(m: entity::team::Model) -> Result<Self, StoreError> {
        Ok(Team {
            id: id("team id", &m.id)?,
            org: id("organization id", &m.org_id)?,
            name: m.name,
            is_default: m.is_default,
            created_at: time(m.created_at)?,
            archived_at: m.archived_at.map(time).transpose()?,
        })
    }
}

impl TryFrom<entity::session::Model> for Session {
    type Error = StoreError;
    fn try_from(m: entity::session::Model) -> Result<Self, StoreError> {
        Ok(Session {
            id: id("session id", &m.id)?,
            user: id("user id", &m.user_id)?,
            created_at: time(m.created_at)?,
            last_seen_at: time(m.last_seen_at)?,
            ip: m.ip,
            user_agent: m.user_agent,
            signed_out_of: m
                .signed_out_of
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| id("organization id", s))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<entity::api_key::Model> for ApiKey {
    type Error = StoreError;
    fn try_from(m: entity::api_key::Model) -> Result<Self, StoreError> {
        Ok(ApiKey {
            id: id("api key id", &m.id)?,
            org: id("organization id", &m.org_id)?,
            team: id("team id", &m.team_id)?,
            scope: tenancy::KeyScope::parse(&m.scope)
                .ok_or_else(|| corrupt("key scope", &m.scope))?,
            created_by: id("user id", &m.created_by)?,
            name: m.name,
            prefix: m.prefix,
            created_at: time(m.created_at)?,
            last_used_at: m.last_used_at.map(time).transpose()?,
            revoked_at: m.revoked_at.map(time).transpose()?,
        })
    }
}

/// The columns of a stored audit record that are parsed rather than kept: a reader can lend
/// them (`scan.rs` lends SQLite's own text, so none is copied into a string of its own).
pub(crate) struct AuditKeys<'a> {
    pub(crate) org_id: &'a str,
    pub(crate) team_id: Option<&'a str>,
    pub(crate) actor_type: &'a str,
    pub(crate) action: &'a str,
    pub(crate) outcome: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) prev_hash: &'a str,
    pub(crate) hash: &'a str,
}

/// The columns of a stored audit record that the record keeps as they are.
pub(crate) struct AuditValues {
    pub(crate) seq: i64,
    pub(crate) occurred_at: i64,
    pub(crate) actor_id: String,
    pub(crate) actor_name: String,
    pub(crate) target_type: String,
    pub(crate) target_id: String,
    pub(crate) target_name: String,
    pub(crate) ip: String,
    pub(crate) user_agent: String,
    pub(crate) request_id: String,
    pub(crate) metadata: String,
    pub(crate) schema_version: i32,
}

/// A stored audit record from its columns.
pub(crate) fn audit_event(k: &AuditKeys<'_>, v: AuditValues) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        seq: v.seq,
        event: NewAuditEvent {
            org: id("organization id", k.org_id)?,
            team: k.team_id.map(|t| id("team id", t)).transpose()?,
            occurred_at: time(v.occurred_at)?,
            actor: Actor {
                kind: ActorKind::parse(k.actor_type)
                    .ok_or_else(|| corrupt("actor type", k.actor_type))?,
                id: v.actor_id,
                name: v.actor_name,
            },
            action: AuditAction::parse(k.action)
                .ok_or_else(|| corrupt("audit action", k.action))?,
            target: Target {
                kind: v.target_type,
                id: v.target_id,
                name: v.target_name,
            },
            context: RequestContext {
                ip: v.ip,
                user_agent: v.user_agent,
                request_id: v.request_id,
            },
            outcome: Outcome::from_parts(k.outcome, k.reason)
                .ok_or_else(|| corrupt("outcome", k.outcome))?,
            metadata: Metadata::from_json(v.metadata)
                .map_err(|_| corrupt("audit metadata", "…"))?,
        },
        schema_version: u16::try_from(v.schema_version)
            .map_err(|_| corrupt("schema version", &v.schema_version.to_string()))?,
        prev_hash: hash32("previous hash", k.prev_hash)?,
        hash: hash32("hash", k.hash)?,
    })
}

impl TryFrom<entity::audit_event::Model> for AuditEvent {
    type Error = StoreError;
    fn try_from(m: entity::audit_event::Model) -> Result<Self, StoreError> {
        let keys = AuditKeys {
            org_id: &m.org_id,
            team_id: m.team_id.as_deref(),
            actor_type: &m.actor_type,
            action: &m.action,
            outcome: &m.outcome,
            reason: &m.reason,
            prev_hash: &m.prev_hash,
            hash: &m.hash,
        };
        audit_event(
            &keys,
            AuditValues {
                seq: m.seq,
                occurred_at: m.occurred_at,
                actor_id: m.actor_id,
                actor_name: m.actor_name,
                target_type: m.target_type,
                target_id: m.target_id,
                target_name: m.target_name,
                ip: m.ip,
                user_agent: m.user_agent,
                request_id: m.request_id,
                metadata: m.metadata,
                schema_version: m.schema_version,
            },
        )
    }
}

pub(crate) fn audit_model(r: &AuditEvent) -> entity::audit_event::ActiveModel {
    use sea_orm::ActiveValue::Set;
    let e = &r.event;
    entity::audit_event::ActiveModel {
        org_id: Set(e.org.to_string()),
        seq: Set(r.seq),
        team_id: Set(e.team.map(|t| t.to_string())),
        occurred_at: Set(micros(e.occurred_at)),
        actor_type: Set(e.actor.kind.as_str().to_owned()),
        actor_id: Set(e.actor.id.clone()),
        actor_name: Set(e.actor.name.clone()),
        action: Set(e.action.as_str().to_owned()),
        target_type: Set(e.target.kind.clone()),
        target_id: Set(e.target.id.clone()),
        target_name: Set(e.target.name.clone()),
        ip: Set(e.context.ip.clone()),
        user_agent: Set(e.context.user_agent.clone()),
        request_id: Set(e.context.request_id.clone()),
        outcome: Set(e.outcome.status().to_owned()),
        reason: Set(e.outcome.reason().to_owned()),
        metadata: Set(e.metadata.as_json().to_owned()),
        schema_version: Set(i32::from(r.schema_version)),
        prev_hash: Set(hex::encode(r.prev_hash)),
        hash: Set(hex::encode(r.hash)),
    }
}

impl TryFrom<entity::invitation::Model> for tenancy::invitations::Invitation {
    type Error = StoreError;
    fn try_from(m: entity::invitation::Model) -> Result<Self, StoreError> {
        Ok(tenancy::invitations::Invitation {
            id: id("invitation id", &m.id)?,
            org: id("organization id", &m.org_id)?,
            email: stored_email(&m.email),
            role: role(&m.role)?,
            invited_by: id("user id", &m.invited_by)?,
            created_at: time(m.created_at)?,
            expires_at: time(m.expires_at)?,
            accepted_at: m.accepted_at.map(time).transpose()?,
            revoked_at: m.revoked_at.map(time).transpose()?,
            team: match (m.team_id, m.team_role) {
                (Some(t), Some(r)) => Some(tenancy::invitations::InvitedTeam {
                    id: id("team id", &t)?,
                    role: TeamRole::parse(&r).ok_or_else(|| corrupt("team role", &r))?,
                }),
                (None, None) => None,
                (t, r) => {
                    return Err(corrupt(
                        "invitation team",
                        &format!("{t:?} with role {r:?}"),
                    ));
                }
            },
        })
    }
}
