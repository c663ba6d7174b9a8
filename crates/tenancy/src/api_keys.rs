//! Creating, listing and revoking API keys.

use audit::{AuditAction, DomainEvent, EventKind, Journal, Target};

use chrono::{DateTime, Utc};
use rbac_core::{ApiKeyId, Permission, Resource, TeamId, UserId};
use security_policy::{MintedToken, mint};
use serde_json::json;

use crate::accounts::API_KEY_PREFIX;
use crate::caller::Caller;
use crate::error::TenancyError;
use crate::model::{ApiKey, KeyScope, valid_name};
use crate::store::TenancyStore;

/// A request to create a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateApiKeyRequest {
    /// Display name.
    pub name: String,
    /// Team; the default team when `None`.
    pub team: Option<TeamId>,
}

/// Creates a key; the secret is in the returned token and nowhere else.
///
/// # Errors
/// [`TenancyError::Forbidden`] (Users when the setting reserves keys for Admins, API keys
/// themselves), [`TenancyError::LimitReached`] at the plan's key limit, [`TenancyError::Invalid`],
/// [`TenancyError::Archived`] for an archived team.
pub async fn create<
    S: TenancyStore + crate::WorkspaceStore + crate::metering::MeteringStore + ?Sized,
>(
    store: &S,
    caller: &Caller,
    req: CreateApiKeyRequest,
    now: DateTime<Utc>,
) -> Result<(ApiKey, MintedToken), TenancyError> {
    let name = valid_name("name", &req.name)?;
    let default = store.default_team(caller.org.id).await?.id;
    let team = req.team.unwrap_or(default);
    let scope = if team == default {
        KeyScope::Organization
    } else {
        KeyScope::Team
    };
    caller.check(
        Permission::CreateApiKey,
        &Resource::team(caller.org.id, team),
    )?;
    if let Some(t) = store.get_team(caller.org.id, team).await?
        && t.archived_at.is_some()
    {
        return Err(crate::teams::archived(
            &t.name,
            "no new API key is made for it",
        ));
    }
    let token = mint(API_KEY_PREFIX, 32);
    let key = ApiKey {
        id: ApiKeyId::new(),
        org: caller.org.id,
        team,
        scope,
        created_by: caller.user.id,
        name,
        prefix: token.display_prefix.clone(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    let limits = caller.org.limits();
    let journal = Journal::record(caller.audit(now, AuditAction::ApiKeyCreated, Target::new("api_key", key.id, key.name.clone())).in_team(team))
        .publish(DomainEvent::new(caller.org.id, EventKind::ApiKeyCreated, now, json!({
            "apiKeyId": key.id, "name": key.name, "teamId": team, "scope": scope.as_str(), "createdBy": caller.user.id, "prefix": key.prefix,
        })));
    store
        .create_api_key(&key, &token.hash, &limits, journal)
        .await?;
    crate::metering::alert_after_create(store, &caller.org, billing_limits::Limit::ApiKeys, 1, now)
        .await;
    Ok((key, token))
}

/// Lists the keys the caller may view, one keyset page: all of the organization's for the Owner
/// and Admins; for an organization User, every key of the teams they administer and their own
/// in the teams they are in (what `view_api_key` allows, asked of rbac-core team by team, and
/// narrowed in the store so that pages stay full).
///
/// # Errors
/// [`TenancyError::Store`] on storage failure.
pub async fn list<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    after: Option<ApiKeyId>,
    limit: u32,
) -> Result<Vec<ApiKey>, TenancyError> {
    let (org, me) = (caller.org.id, caller.user.id);
    let someone_else = UserId::new();
    let sees = |team: Option<TeamId>, creator: Option<UserId>| {
        caller
            .decide(Permission::ViewApiKey, &Resource { org, team, creator })
            .is_allowed()
    };
    // A team with no explicit role of the caller's: their role in every team decides there.
    let elsewhere = Some(TeamId::new());
    let keys = if sees(None, None) || sees(elsewhere, Some(someone_else)) {
        store.list_api_keys(org, None, after, limit).await?
    } else {
        let (mut all_in, mut own_in) = (Vec::new(), Vec::new());
        for (t, _) in &caller.subject.teams {
            if sees(Some(*t), Some(someone_else)) {
                all_in.push(*t);
            } else if sees(Some(*t), Some(me)) {
                own_in.push(*t);
            }
        }
        let own_in = if sees(elsewhere, Some(me)) {
            None
        } else {
            Some(&own_in[..])
        };
        store
            .list_api_keys_seen_by(org, me, own_in, &all_in, after, limit)
            .await?
    };
    Ok(keys
        .into_iter()
        .filter(|k| {
            caller
                .decide(
                    Permission::ViewApiKey,
                    &Resource::owned(k.org, k.team, k.created_by),
                )
                .is_allowed()
        })
        .collect())
}

/// Revokes a key.
///
/// # Errors
/// [`TenancyError::NotFound`] for unknown, hidden or already revoked keys;
/// [`TenancyError::Forbidden`] for Users revoking others' keys.
pub async fn revoke<S: TenancyStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: ApiKeyId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let key = store
        .get_api_key(caller.org.id, id)
        .await?
        .ok_or(TenancyError::NotFound("API key"))?;
    caller
        .check(
            Permission::RevokeApiKey,
            &Resource::owned(key.org, key.team, key.created_by),
        )
        .map_err(|e| e.not_found_as("API key"))?;
    if key.revoked_at.is_some() {
        return Err(TenancyError::NotFound("API key"));
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::ApiKeyRevoked,
                Target::new("api_key", key.id, key.name.clone()),
            )
            .in_team(key.team),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::ApiKeyRevoked,
        now,
        json!({
            "apiKeyId": key.id, "name": key.name, "revokedBy": caller.user.id,
        }),
    ));
    store.revoke_api_key(caller.org.id, id, now, journal).await
}
