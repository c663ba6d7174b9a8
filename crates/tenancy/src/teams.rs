//! Teams: isolated workspaces inside an organization, and their members.
//!
//! Every organization has a default team that every member joins; further teams
//! are created by the Owner or Admins, who administer every team. A User sees and
//! uses only the teams they have a role in (every team, with a role in all teams:
//! `rbac_core::Subject::all_teams`): another team's ids answer 404.

use audit::{AuditAction, DomainEvent, EventKind, Journal, Metadata, Target};
use chrono::{DateTime, Utc};
use rbac_core::{Permission, Resource, TeamId, TeamRole, UserId};
use serde::Serialize;
use serde_json::json;

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::model::{Member, Team, valid_name};
use crate::store::{TenancyStore, WorkspaceStore};

/// A member of one team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamMember {
    /// The organization member.
    pub member: Member,
    /// Their role in the team: the higher of the role given to them in it and their role in
    /// every team ([`Member::all_teams`]).
    pub role: TeamRole,
    /// The role given to them in this team; `None` when they are in it only through their
    /// role in every team.
    pub assigned: Option<TeamRole>,
}

/// The refusal to delete a team whose credit account holds credits or a share of purchases.
#[must_use]
pub fn holds_credits(balance: i64, allocation_percent: u8) -> TenancyError {
    TenancyError::Conflict(format!(
        "the team still holds {balance} credits and receives {allocation_percent} % of the credits bought for the organization; transfer them and set its allocation to 0 first"
    ))
}

/// Loads a team the caller may see (404 otherwise, also for other tenants' ids).
///
/// # Errors
/// [`TenancyError::NotFound`].
pub async fn get<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
) -> Result<Team, TenancyError> {
    let t = store
        .get_team(caller.org.id, team)
        .await?
        .ok_or(TenancyError::NotFound("team"))?;
    // Another team's answers as a missing one does, in the same words.
    caller
        .check(Permission::ViewTeam, &Resource::team(t.org, t.id))
        .map_err(|e| e.not_found_as("team"))?;
    Ok(t)
}

/// The teams the caller may see: all of them for the Owner and Admins (and a User with a role
/// in every team), else those they belong to.
///
/// # Errors
/// [`TenancyError::Store`] on storage failure.
pub async fn list<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
) -> Result<Vec<Team>, TenancyError> {
    let teams = store.list_teams(caller.org.id).await?;
    Ok(teams
        .into_iter()
        .filter(|t| {
            caller
                .decide(Permission::ViewTeam, &Resource::team(t.org, t.id))
                .is_allowed()
        })
        .collect())
}

/// Creates a team (Owner and Admins).
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Invalid`] for a bad name;
/// [`TenancyError::Conflict`] when the name is taken in the organization.
pub async fn create<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Team, TenancyError> {
    caller.check_org(Permission::CreateTeam)?;
    let team = Team {
        id: TeamId::new(),
        org: caller.org.id,
        name: valid_name("name", name)?,
        is_default: false,
        created_at: now,
        archived_at: None,
    };
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::TeamCreated,
                Target::new("team", team.id, team.name.clone()),
            )
            .in_team(team.id),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::TeamCreated,
        now,
        json!({ "teamId": team.id, "name": team.name, "createdBy": caller.user.id }),
    ));
    store.create_team(&team, journal).await?;
    Ok(team)
}

/// What to change on a team.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamUpdate {
    /// New name.
    pub name: Option<String>,
    /// Archive (`true`) or restore (`false`).
    pub archived: Option<bool>,
}

/// Renames, archives or restores a team (its admins, the Owner and Admins). The default
/// team cannot be archived.
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`], [`TenancyError::Invalid`],
/// [`TenancyError::Conflict`] (name taken, or the team changed concurrently).
pub async fn update<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
    change: TeamUpdate,
    now: DateTime<Utc>,
) -> Result<Team, TenancyError> {
    let before = get(store, caller, team).await?;
    caller.check(
        Permission::ManageTeam,
        &Resource::team(before.org, before.id),
    )?;
    let mut after = before.clone();
    if let Some(name) = &change.name {
        after.name = valid_name("name", name)?;
    }
    match change.archived {
        Some(true) if before.is_default => {
            return Err(TenancyError::Invalid(
                "the default team cannot be archived".into(),
            ));
        }
        Some(true) if before.archived_at.is_none() => after.archived_at = Some(now),
        Some(false) => after.archived_at = None,
        _ => {}
    }
    if after == before {
        return Ok(after);
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::TeamUpdated,
                Target::new("team", team, after.name.clone()),
            )
            .in_team(team)
            .with_metadata(Metadata::from_value(json!({
                "name": { "from": before.name, "to": after.name },
                "archived": after.archived_at.is_some(),
            }))?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::TeamUpdated,
        now,
        json!({ "teamId": team, "name": after.name, "previousName": before.name, "archived": after.archived_at.is_some() }),
    ));
    store.update_team(&before, &after, journal).await?;
    Ok(after)
}

/// Deletes a team that holds nothing (no resources, no active API keys). The default team stays.
///
/// # Errors
/// [`TenancyError::NotFound`], [`TenancyError::Forbidden`], [`TenancyError::Invalid`]
/// (default team), [`TenancyError::Conflict`] when it still holds resources, keys or credits
/// (or a share of credit purchases), or is a stage of the organization's pipeline
/// ([`crate::pipeline::team_is_a_stage`]).
pub async fn delete<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let t = get(store, caller, team).await?;
    caller.check(Permission::ManageTeam, &Resource::team(t.org, t.id))?;
    if t.is_default {
        return Err(TenancyError::Invalid(
            "the default team cannot be deleted".into(),
        ));
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::TeamDeleted,
                Target::new("team", team, t.name.clone()),
            )
            .in_team(team),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::TeamDeleted,
        now,
        json!({ "teamId": team, "name": t.name, "deletedBy": caller.user.id }),
    ));
    // Rights that come from the organization's role (an Owner's or Admin's, a SCIM token's
    // creator's) are read again by the store under the organization's lock; a team admin's come
    // from the team, which the store does not check again.
    let by = caller.subject.role.is_admin().then_some(caller.user.id);
    store
        .delete_team(caller.org.id, team, now, by, journal)
        .await
}

/// One keyset page of the team's members with their team roles, by user id after `after`.
///
/// # Errors
/// [`TenancyError::NotFound`] when the caller may not see the team.
pub async fn members<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
    after: Option<UserId>,
    limit: u32,
) -> Result<Vec<TeamMember>, TenancyError> {
    let t = get(store, caller, team).await?;
    store
        .team_members_page(caller.org.id, t.id, after, limit)
        .await
}

/// The refusal of someone new in an archived team (stores use it in their transaction: an
/// archived team keeps its people, who may be taken out or given another role, and takes no
/// one new until it is restored, as for invitations). People with a role in every team are in
/// it already, and may be given an explicit role there.
#[must_use]
pub fn archived_team(name: &str) -> TenancyError {
    archived(name, "nobody joins it")
}

/// The refusal of `what` (`"nobody joins it"`, `"no new API key is made for it"`) in the
/// archived team `name`, until it is restored.
#[must_use]
pub fn archived(name: &str, what: &str) -> TenancyError {
    TenancyError::Archived(format!(
        "the team \"{name}\" is archived: {what} until it is restored"
    ))
}

/// Gives an organization member a role in the team, or with `None` takes them out of it.
/// Team admins manage their team's members; the Owner and Admins manage every team. A team
/// admin who is an organization User brings in only people they see
/// ([`crate::orgs::list_members`]).
///
/// # Errors
/// [`TenancyError::NotFound`] (team, or the person is not a member of the organization, or
/// one the caller does not see);
/// [`TenancyError::Forbidden`]; [`TenancyError::Archived`] for someone new in an archived team.
pub async fn set_member<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    team: TeamId,
    user: UserId,
    role: Option<TeamRole>,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let t = get(store, caller, team).await?;
    caller.check(Permission::ManageTeamMembers, &Resource::team(t.org, t.id))?;
    let member = store
        .get_member(caller.org.id, user)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    // An organization User who administers a team brings in only people they see (those of
    // their own teams, the Owner and Admins, those in every team): not, by their id, another
    // client team's people, whom the team's member list would then show them. Someone they
    // do not see is not found, as someone outside the organization is; for a removal too
    // (the store's "not in this team" would tell them the id is a member elsewhere).
    if let Some(teams) = caller.teams_seen()
        && !(user == caller.user.id
            || member.role.is_admin()
            || member.all_teams.is_some()
            || store
                .team_roles(caller.org.id, user)
                .await?
                .iter()
                .any(|(t, _)| teams.contains(t)))
    {
        return Err(TenancyError::NotFound("member"));
    }
    let metadata = |before: Option<TeamRole>| {
        Metadata::from_value(json!({
            "team": t.name,
            "team_role": role.map(TeamRole::as_str),
            "previous_team_role": before.map(TeamRole::as_str),
        }))
    };
    // Within the bound whatever the role before was (the longest name checked here), so the
    // journal below is never made without its metadata.
    metadata(Some(TeamRole::Viewer))?;
    // Whether this adds, changes or removes: decided by the store from the person's role in
    // the team as it stands in the write's transaction.
    let journal = |before: Option<TeamRole>| {
        let action = match (before, role) {
            (_, None) => AuditAction::TeamMemberRemoved,
            (None, Some(_)) => AuditAction::TeamMemberAdded,
            (Some(_), Some(_)) => AuditAction::TeamMemberRoleChanged,
        };
        // An archived team keeps its people (they may be taken out) and takes no one new, as
        // for invitations: the store refuses it in its transaction (`archived_team`).
        Journal::record(
            caller
                .audit(
                    now,
                    action,
                    Target::new("member", user, member.user.name.clone()),
                )
                .in_team(team)
                .with_metadata(metadata(before).unwrap_or_default()),
        )
        .publish(DomainEvent::new(
            caller.org.id,
            EventKind::TeamUpdated,
            now,
            json!({ "teamId": team, "userId": user, "teamRole": role.map(TeamRole::as_str) }),
        ))
    };
    // A person's right rests on roles a concurrent change may take away: the store checks it
    // again under its lock. A SCIM token's does not.
    let by = caller.scim_token.is_none().then_some(caller.user.id);
    store
        .set_team_member_recorded(caller.org.id, team, user, role, by, &journal)
        .await
}

/// Whether someone with `org_role` in the organization (of an active membership; `None`: none),
/// `all_teams` (their role in every team) and `in_team` (their role in the team) may still give
/// roles in the team: the Owner and Admins manage every team, a team's Admin their team.
#[must_use]
pub fn may_manage_members(
    org_role: Option<rbac_core::OrgRole>,
    all_teams: Option<TeamRole>,
    in_team: Option<TeamRole>,
) -> bool {
    crate::members::may_administer(org_role)
        || (org_role.is_some()
            && (all_teams == Some(TeamRole::Admin) || in_team == Some(TeamRole::Admin)))
}
