//! [`PipelineStore`]: each organization's pipeline of teams, and the stages a creation or
//! transfer of a chat interface reads under the organization's lock.

use async_trait::async_trait;
use audit::Journal;
use rbac_core::{OrgId, TeamId};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, TransactionTrait};
use tenancy::TenancyError;
use tenancy::pipeline::{Pipeline, PipelineStore};

use super::tenancy::{commit, lock_org, store};
use super::workspace::team_row;
use crate::SeaStore;
use crate::convert::{corrupt, id, micros, time};
use crate::entity::team_pipeline;

fn of_row(m: team_pipeline::Model) -> Result<Pipeline, TenancyError> {
    let stages: Vec<String> = serde_json::from_str(&m.stages)
        .map_err(|_| TenancyError::Store(corrupt("pipeline stages", &m.stages)))?;
    Ok(Pipeline {
        org: id("organization id", &m.org_id)?,
        stages: stages
            .iter()
            .map(|s| id("team id", s))
            .collect::<Result<_, _>>()?,
        updated_by: id("user id", &m.updated_by)?,
        updated_at: time(m.updated_at)?,
    })
}

/// The organization's pipeline stages as `db` reads them (empty without a pipeline): in a
/// transaction holding the organization's lock, which [`PipelineStore::set_pipeline`] takes
/// too, they hold until its commit.
pub(super) async fn stages(
    db: &impl ConnectionTrait,
    org: OrgId,
) -> Result<Vec<TeamId>, TenancyError> {
    match team_pipeline::Entity::find_by_id(org.to_string())
        .one(db)
        .await
        .map_err(store)?
    {
        Some(m) => Ok(of_row(m)?.stages),
        None => Ok(Vec::new()),
    }
}

#[async_trait]
impl PipelineStore for SeaStore {
    async fn pipeline(&self, org: OrgId) -> Result<Option<Pipeline>, TenancyError> {
        team_pipeline::Entity::find_by_id(org.to_string())
            .one(self.db())
            .await
            .map_err(store)?
            .map(of_row)
            .transpose()
    }

    async fn set_pipeline(
        &self,
        org: OrgId,
        pipeline: Option<&Pipeline>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, org).await?;
        let Some(p) = pipeline else {
            let gone = team_pipeline::Entity::delete_by_id(org.to_string())
                .exec(&txn)
                .await
                .map_err(store)?;
            if gone.rows_affected == 0 {
                return Err(TenancyError::NotFound("pipeline"));
            }
            return commit(txn, journal).await;
        };
        for t in &p.stages {
            match team_row(&txn, org, *t).await? {
                None => return Err(TenancyError::NotFound("team")),
                Some(row) if row.archived_at.is_some() => {
                    return Err(tenancy::teams::archived(&row.name, "it cannot be a stage"));
                }
                Some(_) => {}
            }
        }
        let stages =
            serde_json::to_string(&p.stages.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|e| TenancyError::Invalid(e.to_string()))?;
        team_pipeline::Entity::delete_by_id(org.to_string())
            .exec(&txn)
            .await
            .map_err(store)?;
        team_pipeline::Entity::insert(team_pipeline::ActiveModel {
            org_id: Set(org.to_string()),
            stages: Set(stages),
            updated_by: Set(p.updated_by.to_string()),
            updated_at: Set(micros(p.updated_at)),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        commit(txn, journal).await
    }
}
