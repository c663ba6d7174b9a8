//! Quality gates between teams: the organization's pipeline (the guide's multi-environment
//! setup, "Development → Testing → Production": "Agents must pass through each stage", "Bug
//! fixes go back through the pipeline").
//!
//! An organization may name an ordered pipeline of 2 to [`MAX_STAGES`] of its teams. A chat
//! interface (the guide's agent) enters a stage after the first only by a transfer from the
//! stage just before it: it is not created or copied there, and it skips no stage. Moving it
//! back to the first stage, or to a team outside the pipeline, is always allowed (a fix starts
//! again in Development). Knowledge bases, documents and custom domains are not gated, nor
//! what is already in a stage when the pipeline is set.
//!
//! The rule is [`check_entry`]; a [`WorkspaceStore`](crate::WorkspaceStore) applies it to the
//! pipeline as stored, under the organization's lock, when it creates or moves a chat
//! interface, so a pipeline set at the same moment is obeyed.

use async_trait::async_trait;
use audit::{AuditAction, Journal, Metadata, Target};
use chrono::{DateTime, Utc};
use rbac_core::{OrgId, Permission, TeamId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Caller;
use crate::assets::AssetKind;
use crate::error::TenancyError;
use crate::model::Team;
use crate::store::{TenancyStore, WorkspaceStore};

/// The most stages a pipeline has.
pub const MAX_STAGES: usize = 10;

/// An organization's pipeline of teams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Its organization.
    pub org: OrgId,
    /// The teams in order, first stage first.
    pub stages: Vec<TeamId>,
    /// Who set it.
    pub updated_by: UserId,
    /// When.
    pub updated_at: DateTime<Utc>,
}

/// Storage of pipelines.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// The organization's pipeline, if it has one.
    ///
    /// # Errors
    /// [`TenancyError::Store`].
    async fn pipeline(&self, org: OrgId) -> Result<Option<Pipeline>, TenancyError>;

    /// Sets (`Some`) or removes (`None`) the organization's pipeline with `journal`, under the
    /// organization's lock; every stage must be a team of the organization that is not
    /// archived, as the transaction reads it.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] (a team not of the organization); [`TenancyError::Archived`]
    /// (an archived team); [`TenancyError::NotFound`] when removing a pipeline there is none of.
    async fn set_pipeline(
        &self,
        org: OrgId,
        pipeline: Option<&Pipeline>,
        journal: Journal,
    ) -> Result<(), TenancyError>;
}

/// Checks a pipeline's stages: 2 to [`MAX_STAGES`] teams, none twice.
///
/// # Errors
/// [`TenancyError::Invalid`].
pub fn check_stages(stages: &[TeamId]) -> Result<(), TenancyError> {
    if stages.len() < 2 || stages.len() > MAX_STAGES {
        return Err(TenancyError::Invalid(format!(
            "a pipeline has 2 to {MAX_STAGES} teams, in order (it has {})",
            stages.len()
        )));
    }
    for (i, t) in stages.iter().enumerate() {
        if stages[..i].contains(t) {
            return Err(TenancyError::Invalid(format!(
                "the team {t} is in the pipeline twice"
            )));
        }
    }
    Ok(())
}

/// Whether an asset of `kind` may come into the team `to`: created or copied there (`from`
/// `None`), or moved there from the team `from`, under the pipeline `stages` (empty: no
/// pipeline). A chat interface comes into a stage after the first only from the stage just
/// before it.
///
/// # Errors
/// [`TenancyError::Conflict`] naming the stage it must come from.
pub fn check_entry(
    stages: &[TeamId],
    kind: AssetKind,
    from: Option<TeamId>,
    to: TeamId,
) -> Result<(), TenancyError> {
    if kind != AssetKind::ChatInterface {
        return Ok(());
    }
    let Some(k) = stages.iter().position(|t| *t == to).filter(|k| *k > 0) else {
        return Ok(());
    };
    if from == Some(stages[k - 1]) {
        return Ok(());
    }
    // By position, not by id: the caller may not see the stage before (a team they are not in).
    Err(TenancyError::Conflict(format!(
        "quality gate: this team is stage {} of the organization's pipeline; a chat interface \
         comes into it only by a transfer from stage {}, the stage before it{}",
        k + 1,
        k,
        if from.is_none() {
            " (it is not created or copied there)"
        } else {
            ""
        }
    )))
}

/// The refusal of a team's deletion while it is a stage of the organization's pipeline.
#[must_use]
pub fn team_is_a_stage() -> TenancyError {
    TenancyError::Conflict(
        "this team is a stage of the organization's pipeline: take it out of the pipeline first"
            .into(),
    )
}

/// The organization's pipeline, if any (any member).
///
/// # Errors
/// [`TenancyError::Store`].
pub async fn get<S: PipelineStore + ?Sized>(
    store: &S,
    caller: &Caller,
) -> Result<Option<Pipeline>, TenancyError> {
    store.pipeline(caller.org.id).await
}

/// Sets the organization's pipeline to `stages` (the Owner and Admins, who create teams),
/// recorded as `team.pipeline_set` with the stages by id and name.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Invalid`] ([`check_stages`]);
/// [`TenancyError::NotFound`] for a team not of the organization; [`TenancyError::Archived`]
/// for an archived one.
pub async fn set<S: TenancyStore + WorkspaceStore + PipelineStore + ?Sized>(
    store: &S,
    caller: &Caller,
    stages: &[TeamId],
    now: DateTime<Utc>,
) -> Result<Pipeline, TenancyError> {
    caller.check_org(Permission::CreateTeam)?;
    check_stages(stages)?;
    let mut teams: Vec<Team> = Vec::with_capacity(stages.len());
    for t in stages {
        let team = store
            .get_team(caller.org.id, *t)
            .await?
            .ok_or(TenancyError::NotFound("team"))?;
        if team.archived_at.is_some() {
            return Err(crate::teams::archived(&team.name, "it cannot be a stage"));
        }
        teams.push(team);
    }
    let pipeline = Pipeline {
        org: caller.org.id,
        stages: stages.to_vec(),
        updated_by: caller.user.id,
        updated_at: now,
    };
    let named: Vec<_> = teams
        .iter()
        .map(|t| json!({ "team": t.id, "name": t.name }))
        .collect();
    let journal = Journal::record(
        caller
            .audit(now, AuditAction::PipelineSet, pipeline_target(caller))
            .with_metadata(Metadata::from_value(json!({ "stages": named }))?),
    );
    store
        .set_pipeline(caller.org.id, Some(&pipeline), journal)
        .await?;
    Ok(pipeline)
}

/// Removes the organization's pipeline (the Owner and Admins), recorded as
/// `team.pipeline_removed`.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::NotFound`] when there is none.
pub async fn remove<S: PipelineStore + ?Sized>(
    store: &S,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    caller.check_org(Permission::CreateTeam)?;
    let journal =
        Journal::record(caller.audit(now, AuditAction::PipelineRemoved, pipeline_target(caller)));
    store.set_pipeline(caller.org.id, None, journal).await
}

fn pipeline_target(caller: &Caller) -> Target {
    Target::new("pipeline", caller.org.id, caller.org.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_interface_passes_through_each_stage_and_may_go_back_to_the_first() {
        let (dev, test, prod, other) = (TeamId::new(), TeamId::new(), TeamId::new(), TeamId::new());
        let stages = [dev, test, prod];
        let chat = AssetKind::ChatInterface;
        let ok = |from: Option<TeamId>, to: TeamId| check_entry(&stages, chat, from, to).is_ok();
        // Forward one stage at a time.
        assert!(ok(Some(dev), test));
        assert!(ok(Some(test), prod));
        // Skipping a stage, coming in from outside, being created or copied into a later stage.
        assert!(!ok(Some(dev), prod));
        assert!(!ok(Some(other), test));
        assert!(!ok(None, test));
        assert!(!ok(None, prod));
        // Back for a fix, into the first stage, or out of the pipeline: allowed; and created
        // in the first stage or outside.
        assert!(ok(Some(prod), dev));
        assert!(ok(Some(test), dev));
        assert!(ok(Some(prod), other));
        assert!(ok(None, dev));
        assert!(ok(None, other));
        // But not back one stage into a later one: Production to Testing skips nothing, yet
        // Testing takes only from Development.
        assert!(!ok(Some(prod), test));
        // Other kinds are not gated; without a pipeline nothing is.
        assert!(check_entry(&stages, AssetKind::KnowledgeBase, None, prod).is_ok());
        assert!(check_entry(&stages, AssetKind::Domain, Some(dev), prod).is_ok());
        assert!(check_entry(&[], chat, None, prod).is_ok());
        let refusal = check_entry(&stages, chat, Some(dev), prod)
            .unwrap_err()
            .to_string();
        assert!(
            refusal.contains("stage 3") && refusal.contains("from stage 2"),
            "{refusal}"
        );
        assert!(
            !refusal.contains(&test.to_string()),
            "no team's id: {refusal}"
        );
    }

    #[test]
    fn a_pipeline_has_two_to_ten_distinct_teams() {
        let t: Vec<TeamId> = (0..11).map(|_| TeamId::new()).collect();
        assert!(check_stages(&t[..2]).is_ok());
        assert!(check_stages(&t[..10]).is_ok());
        assert!(check_stages(&t[..1]).is_err());
        assert!(check_stages(&t).is_err());
        assert!(check_stages(&[t[0], t[1], t[0]]).is_err());
    }
}
