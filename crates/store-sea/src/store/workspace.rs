//! [`WorkspaceStore`] on SeaORM: teams, team roles, assets, transfers, usage.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, NaiveDate, Utc};
use rbac_core::{OrgId, OrgRole, ResourceId, TeamId, TeamRole, UserId};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use tenancy::assets::{
    Asset, AssetDetails, AssetFilter, AssetKind, AssetTransfer, TeamAssets, TeamStorage,
    UsageRecord,
};
use tenancy::members::Disposition;
use tenancy::teams::TeamMember;
use tenancy::{StoreError, Team, TenancyError, WorkspaceStore};

use super::tenancy::{commit, limits_in_force, lock_org, store};
use crate::SeaStore;
use crate::convert::{corrupt, id, json, micros, time, to_json};
use crate::entity::{
    api_key, asset, asset_transfer, credit_account, membership, team, team_member, usage_daily,
    user,
};
use crate::error::is_unique_violation;

impl TryFrom<asset::Model> for Asset {
    type Error = StoreError;
    fn try_from(m: asset::Model) -> Result<Self, StoreError> {
        let details: AssetDetails = json("asset details", &m.details)?;
        if details.kind().as_str() != m.kind {
            return Err(corrupt("asset kind", &m.kind));
        }
        Ok(Asset {
            id: id("asset id", &m.id)?,
            org: id("organization id", &m.org_id)?,
            team: id("team id", &m.team_id)?,
            name: m.name,
            parent: m
                .parent_id
                .as_deref()
                .map(|p| id("asset id", p))
                .transpose()?,
            created_by: id("user id", &m.created_by)?,
            created_at: time(m.created_at)?,
            updated_at: time(m.updated_at)?,
            size_bytes: u64::try_from(m.size_bytes)
                .map_err(|_| corrupt("size", &m.size_bytes.to_string()))?,
            details,
            archived_at: m.archived_at.map(time).transpose()?,
        })
    }
}

impl TryFrom<asset_transfer::Model> for AssetTransfer {
    type Error = StoreError;
    fn try_from(m: asset_transfer::Model) -> Result<Self, StoreError> {
        Ok(AssetTransfer {
            asset: id("asset id", &m.asset_id)?,
            org: id("organization id", &m.org_id)?,
            from_team: id("team id", &m.from_team)?,
            to_team: id("team id", &m.to_team)?,
            from_name: m.from_name,
            to_name: m.to_name,
            by: id("user id", &m.by_user)?,
            at: time(m.at)?,
            note: m.note,
        })
    }
}

/// `CAST(SUM(size_bytes) AS BIGINT)`: PostgreSQL sums BIGINT into NUMERIC otherwise.
fn total_bytes() -> sea_orm::sea_query::SimpleExpr {
    sea_orm::sea_query::Func::cast_as(
        sea_orm::sea_query::Func::sum(Expr::col(asset::Column::SizeBytes)),
        "BIGINT",
    )
    .into()
}

fn hostname(a: &Asset) -> Option<String> {
    match &a.details {
        AssetDetails::Domain { hostname, .. } => Some(hostname.clone()),
        _ => None,
    }
}

fn size(a: &Asset) -> Result<i64, TenancyError> {
    i64::try_from(a.size_bytes).map_err(|_| TenancyError::Invalid("the size is too large".into()))
}

pub(super) async fn team_row(
    txn: &DatabaseTransaction,
    org: OrgId,
    team_id: TeamId,
) -> Result<Option<team::Model>, TenancyError> {
    team::Entity::find_by_id(team_id.to_string())
        .filter(team::Column::OrgId.eq(org.to_string()))
        // Held until the commit (PostgreSQL; SQLite's writes take turns): archiving the team
        // (an update without the organization's lock) waits, so what this transaction adds
        // to it cannot land in a team archived since this read.
        .lock_shared()
        .one(txn)
        .await
        .map_err(store)
}

/// Ids of `roots` and everything under them (assets nest at most two levels).
async fn subtree(
    txn: &DatabaseTransaction,
    org: OrgId,
    roots: Vec<String>,
) -> Result<Vec<String>, TenancyError> {
    let mut all = roots.clone();
    let mut frontier = roots;
    for _ in 0..2 {
        if frontier.is_empty() {
            break;
        }
        let children: Vec<String> = asset::Entity::find()
            .select_only()
            .column(asset::Column::Id)
            .filter(asset::Column::OrgId.eq(org.to_string()))
            .filter(asset::Column::ParentId.is_in(frontier))
            .into_tuple()
            .all(txn)
            .await
            .map_err(store)?;
        frontier = children.into_iter().filter(|c| !all.contains(c)).collect();
        all.extend(frontier.iter().cloned());
    }
    Ok(all)
}

/// Deletes assets by id and returns them.
async fn delete_ids(
    txn: &DatabaseTransaction,
    org: OrgId,
    ids: Vec<String>,
) -> Result<Vec<Asset>, TenancyError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = asset::Entity::find()
        .filter(asset::Column::OrgId.eq(org.to_string()))
        .filter(asset::Column::Id.is_in(ids.clone()))
        .all(txn)
        .await
        .map_err(store)?;
    asset::Entity::delete_many()
        .filter(asset::Column::OrgId.eq(org.to_string()))
        .filter(asset::Column::Id.is_in(ids))
        .exec(txn)
        .await
        .map_err(store)?;
    rows.into_iter()
        .map(Asset::try_from)
        .collect::<Result<_, _>>()
        .map_err(TenancyError::Store)
}

/// A removed member's assets: handed to another member, or deleted with what is under them.
/// Runs in the removal's transaction; returns (transferred count, deleted assets).
pub(crate) async fn dispose_assets(
    txn: &DatabaseTransaction,
    org: OrgId,
    user: UserId,
    disposition: Disposition,
) -> Result<(u64, Vec<Asset>), TenancyError> {
    let theirs = asset::Entity::find()
        .filter(asset::Column::OrgId.eq(org.to_string()))
        .filter(asset::Column::CreatedBy.eq(user.to_string()));
    match disposition.recipient() {
        Some(to) => {
            let res = asset::Entity::update_many()
                .col_expr(asset::Column::CreatedBy, Expr::value(to.to_string()))
                .filter(asset::Column::OrgId.eq(org.to_string()))
                .filter(asset::Column::CreatedBy.eq(user.to_string()))
                .exec(txn)
                .await
                .map_err(store)?;
            Ok((res.rows_affected, Vec::new()))
        }
        None => {
            let roots: Vec<String> = theirs
                .select_only()
                .column(asset::Column::Id)
                .into_tuple()
                .all(txn)
                .await
                .map_err(store)?;
            let ids = subtree(txn, org, roots).await?;
            Ok((0, delete_ids(txn, org, ids).await?))
        }
    }
}

fn team_conflict(name: &str) -> TenancyError {
    TenancyError::Conflict(format!("a team named `{name}` exists"))
}

/// Inserts `a` after the checks [`WorkspaceStore::create_asset`] names, in `txn`.
async fn insert_asset_checked(
    txn: &DatabaseTransaction,
    a: &Asset,
    limits: &billing_limits::PlanLimits,
) -> Result<(), TenancyError> {
    let Some(t) = team_row(txn, a.org, a.team).await? else {
        return Err(TenancyError::NotFound("team"));
    };
    if t.archived_at.is_some() {
        return Err(TenancyError::Conflict(format!(
            "the team `{}` is archived",
            t.name
        )));
    }
    // Its creator is still an active member: a removal (which deleted or handed on what they
    // had made), a deactivation or an erasure that committed since the service looked must not
    // be outlived by something they were making meanwhile (an upload takes a while).
    let creator = membership::Entity::find_by_id((a.org.to_string(), a.created_by.to_string()))
        .one(txn)
        .await
        .map_err(store)?;
    if creator.is_none_or(|m| m.deactivated_at.is_some()) {
        return Err(TenancyError::NotFound("member"));
    }
    if let Some(p) = a.parent {
        let Some(parent) = asset::Entity::find_by_id(p.to_string())
            .filter(asset::Column::OrgId.eq(a.org.to_string()))
            .filter(asset::Column::TeamId.eq(a.team.to_string()))
            // Held until the commit, as the team is (see `team_row`): archiving the parent
            // waits, and a create that comes after it sees it archived.
            .lock_shared()
            .one(txn)
            .await
            .map_err(store)?
        else {
            return Err(TenancyError::NotFound("parent"));
        };
        if parent.archived_at.is_some() {
            return Err(TenancyError::Conflict(format!(
                "`{}` is archived; unarchive it first",
                parent.name
            )));
        }
    }
    let kind = a.kind();
    let used = asset::Entity::find()
        .filter(asset::Column::OrgId.eq(a.org.to_string()))
        .filter(asset::Column::Kind.eq(kind.as_str()))
        .count(txn)
        .await
        .map_err(store)?;
    tenancy::enforce_quota(billing_limits::check_quota(limits, kind.limit(), used, 1))?;
    if a.size_bytes > 0 {
        let bytes: Option<i64> = asset::Entity::find()
            .select_only()
            .column_as(total_bytes(), "total")
            .filter(asset::Column::OrgId.eq(a.org.to_string()))
            .into_tuple::<Option<i64>>()
            .one(txn)
            .await
            .map_err(store)?
            .flatten();
        tenancy::enforce_quota(billing_limits::check_quota(
            limits,
            billing_limits::Limit::StorageBytes,
            u64::try_from(bytes.unwrap_or(0)).unwrap_or(0),
            a.size_bytes,
        ))?;
    }
    let res = asset::Entity::insert(asset::ActiveModel {
        id: Set(a.id.to_string()),
        org_id: Set(a.org.to_string()),
        team_id: Set(a.team.to_string()),
        kind: Set(kind.as_str().to_owned()),
        name: Set(a.name.clone()),
        parent_id: Set(a.parent.map(|p| p.to_string())),
        created_by: Set(a.created_by.to_string()),
        created_at: Set(micros(a.created_at)),
        updated_at: Set(micros(a.updated_at)),
        size_bytes: Set(size(a)?),
        hostname: Set(hostname(a)),
        details: Set(to_json(&a.details)?),
        archived_at: Set(a.archived_at.map(micros)),
    })
    .exec_without_returning(txn)
    .await;
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(TenancyError::Conflict(format!(
                "`{}` is already added",
                hostname(a).unwrap_or_default()
            )));
        }
        Err(e) => return Err(store(e)),
        Ok(_) => {}
    }
    Ok(())
}

/// The author of a team-role change (`by`), read under the organization's lock, must still
/// manage the team's members ([`tenancy::teams::may_manage_members`]).
async fn check_team_manager(
    txn: &DatabaseTransaction,
    org: OrgId,
    t: TeamId,
    by: UserId,
) -> Result<(), TenancyError> {
    let Some(m) = membership::Entity::find_by_id((org.to_string(), by.to_string()))
        .one(txn)
        .await
        .map_err(store)?
        .filter(|m| m.deactivated_at.is_none())
    else {
        return Err(tenancy::members::acting_role_changed());
    };
    let in_team = team_member::Entity::find_by_id((t.to_string(), by.to_string()))
        .one(txn)
        .await
        .map_err(store)?
        .map(|r| crate::convert::all_teams_role(Some(&r.role)))
        .transpose()
        .map_err(TenancyError::Store)?
        .flatten();
    let all_teams =
        crate::convert::all_teams_role(m.all_teams_role.as_deref()).map_err(TenancyError::Store)?;
    if tenancy::teams::may_manage_members(OrgRole::parse(&m.role), all_teams, in_team) {
        Ok(())
    } else {
        Err(tenancy::members::acting_role_changed())
    }
}

#[async_trait]
impl WorkspaceStore for SeaStore {
    async fn documents_among(&self, ids: &[ResourceId]) -> Result<Vec<ResourceId>, TenancyError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<String> = asset::Entity::find()
            .select_only()
            .column(asset::Column::Id)
            .filter(asset::Column::Id.is_in(ids.iter().map(ToString::to_string)))
            .filter(asset::Column::Kind.eq(AssetKind::Document.as_str()))
            .into_tuple()
            .all(self.db())
            .await
            .map_err(store)?;
        found
            .iter()
            .map(|i| id("resource id", i).map_err(TenancyError::from))
            .collect()
    }

    async fn create_team(&self, t: &Team, journal: Journal) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, t.org).await?;
        let res = team::Entity::insert(team::ActiveModel {
            id: Set(t.id.to_string()),
            org_id: Set(t.org.to_string()),
            name: Set(t.name.clone()),
            is_default: Set(t.is_default),
            created_at: Set(micros(t.created_at)),
            archived_at: Set(t.archived_at.map(micros)),
        })
        .exec_without_returning(&txn)
        .await;
        match res {
            Err(e) if is_unique_violation(&e) => return Err(team_conflict(&t.name)),
            Err(e) => return Err(store(e)),
            Ok(_) => {}
        }
        commit(txn, journal).await
    }

    async fn list_teams(&self, org: OrgId) -> Result<Vec<Team>, TenancyError> {
        let rows = self
            .fetch_all(
                team::Entity::find()
                    .filter(team::Column::OrgId.eq(org.to_string()))
                    .order_by_asc(team::Column::Name),
            )
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(Team::try_from)
            .collect::<Result<_, _>>()
            .map_err(TenancyError::Store)
    }

    async fn get_team(&self, org: OrgId, t: TeamId) -> Result<Option<Team>, TenancyError> {
        team::Entity::find_by_id(t.to_string())
            .filter(team::Column::OrgId.eq(org.to_string()))
            .one(self.db())
            .await
            .map_err(store)?
            .map(Team::try_from)
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn update_team(
        &self,
        before: &Team,
        after: &Team,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = team::Entity::update_many()
            .col_expr(team::Column::Name, Expr::value(after.name.clone()))
            .col_expr(
                team::Column::ArchivedAt,
                Expr::value(after.archived_at.map(micros)),
            )
            .filter(team::Column::Id.eq(before.id.to_string()))
            .filter(team::Column::OrgId.eq(before.org.to_string()))
            .filter(team::Column::Name.eq(before.name.clone()))
            .filter(match before.archived_at {
                Some(t) => team::Column::ArchivedAt.eq(micros(t)),
                None => team::Column::ArchivedAt.is_null(),
            })
            .exec(&txn)
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => return Err(team_conflict(&after.name)),
            Err(e) => return Err(store(e)),
            Ok(r) if r.rows_affected == 0 => {
                return Err(TenancyError::Conflict("the team changed meanwhile".into()));
            }
            Ok(_) => {}
        }
        commit(txn, journal).await
    }

    async fn delete_team(
        &self,
        org: OrgId,
        t: TeamId,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, org).await?;
        super::members::check_acting(&txn, org, by).await?;
        // Held for writing before the credit account is read: a credit posting or allocation
        // holds the team (`FOR SHARE`, `teams_exist`) until it commits, so it either commits
        // first, and its credits are seen below, or waits and then finds the team gone.
        let row = team::Entity::find_by_id(t.to_string())
            .filter(team::Column::OrgId.eq(org.to_string()))
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(store)?;
        if row.is_none_or(|r| r.is_default) {
            return Err(TenancyError::NotFound("team"));
        }
        if super::pipeline::stages(&txn, org).await?.contains(&t) {
            return Err(tenancy::pipeline::team_is_a_stage());
        }
        let credits = credit_account::Entity::find_by_id((org.to_string(), t.to_string()))
            .one(&txn)
            .await
            .map_err(store)?;
        if let Some(c) = credits.filter(|c| c.balance != 0 || c.allocation_percent != 0) {
            return Err(tenancy::teams::holds_credits(
                c.balance,
                u8::try_from(c.allocation_percent).unwrap_or(u8::MAX),
            ));
        }
        credit_account::Entity::delete_by_id((org.to_string(), t.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        let assets = asset::Entity::find()
            .filter(asset::Column::TeamId.eq(t.to_string()))
            .count(&txn)
            .await
            .map_err(store)?;
        let keys = api_key::Entity::find()
            .filter(api_key::Column::TeamId.eq(t.to_string()))
            .filter(api_key::Column::RevokedAt.is_null())
            .count(&txn)
            .await
            .map_err(store)?;
        if assets + keys > 0 {
            return Err(TenancyError::Conflict(format!(
                "the team still holds {assets} resources and {keys} active API keys; transfer or delete them first"
            )));
        }
        team_member::Entity::delete_many()
            .filter(team_member::Column::TeamId.eq(t.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        // The team's pending invitations are revoked, and their mail not sent yet goes.
        super::invitations::drop_unsent_mail_of(
            &txn,
            org,
            sea_orm::Condition::all()
                .add(crate::entity::invitation::Column::TeamId.eq(t.to_string())),
            now,
        )
        .await?;
        crate::entity::invitation::Entity::update_many()
            .col_expr(
                crate::entity::invitation::Column::RevokedAt,
                Expr::value(micros(now)),
            )
            .filter(crate::entity::invitation::Column::OrgId.eq(org.to_string()))
            .filter(crate::entity::invitation::Column::TeamId.eq(t.to_string()))
            .filter(crate::entity::invitation::Column::AcceptedAt.is_null())
            .filter(crate::entity::invitation::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(store)?;
        crate::entity::scim_group::Entity::delete_many()
            .filter(crate::entity::scim_group::Column::TeamId.eq(t.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        // Revoked keys keep their history row; it still names the team id.
        team::Entity::delete_by_id(t.to_string())
            .exec(&txn)
            .await
            .map_err(store)?;
        commit(txn, journal).await
    }

    async fn team_members_page(
        &self,
        org: OrgId,
        t: TeamId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<TeamMember>, TenancyError> {
        // Two reads: the page of memberships, then the roles given in the team to its people.
        // A role taken away between them leaves a row without a role, which is left out, and
        // a short page would read as the last one: the page is read again then (a change
        // committed meanwhile), up to three times.
        for _ in 0..2 {
            let (page, complete) = team_members_read(self, org, t, after, limit).await?;
            if complete {
                return Ok(page);
            }
        }
        Ok(team_members_read(self, org, t, after, limit).await?.0)
    }

    async fn set_team_member_recorded(
        &self,
        org: OrgId,
        t: TeamId,
        u: UserId,
        r: Option<TeamRole>,
        by: Option<UserId>,
        journal: tenancy::TeamRoleJournal<'_>,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The organization's lock, as a member's removal takes it: the membership checked
        // below cannot be removed before this commits (a team role for someone no longer in
        // the organization would come back if they rejoined). Every role change takes it too,
        // so the author's roles read below are current.
        lock_org(&txn, org).await?;
        // Held `FOR SHARE` until the commit: archiving waits, and is seen if it came first.
        let Some(team) = team_row(&txn, org, t).await? else {
            return Err(TenancyError::NotFound("team"));
        };
        if let Some(by) = by {
            check_team_manager(&txn, org, t, by).await?;
        }
        let member = membership::Entity::find_by_id((org.to_string(), u.to_string()))
            .one(&txn)
            .await
            .map_err(store)?;
        let Some(member) = member else {
            return Err(TenancyError::NotFound("member"));
        };
        // The role before, under the organization's lock: what the record says the write did.
        let before = team_member::Entity::find_by_id((t.to_string(), u.to_string()))
            .one(&txn)
            .await
            .map_err(store)?
            .map(|m| crate::convert::all_teams_role(Some(&m.role)))
            .transpose()
            .map_err(TenancyError::Store)?
            .flatten();
        // An archived team's people (a role in it, or in every team) may be given another
        // role; nobody new joins.
        if r.is_some()
            && team.archived_at.is_some()
            && member.all_teams_role.is_none()
            && before.is_none()
        {
            return Err(tenancy::teams::archived_team(&team.name));
        }
        match r {
            Some(r) => {
                team_member::Entity::insert(team_member::ActiveModel {
                    team_id: Set(t.to_string()),
                    user_id: Set(u.to_string()),
                    org_id: Set(org.to_string()),
                    role: Set(r.as_str().to_owned()),
                })
                .on_conflict(
                    OnConflict::columns([team_member::Column::TeamId, team_member::Column::UserId])
                        .update_column(team_member::Column::Role)
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(store)?;
            }
            None => {
                let res = team_member::Entity::delete_many()
                    .filter(team_member::Column::TeamId.eq(t.to_string()))
                    .filter(team_member::Column::UserId.eq(u.to_string()))
                    .exec(&txn)
                    .await
                    .map_err(store)?;
                if res.rows_affected == 0 {
                    return Err(TenancyError::NotFound("team member"));
                }
            }
        }
        commit(txn, journal(before)).await
    }

    async fn create_asset(
        &self,
        a: &Asset,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        self.create_assets(std::slice::from_ref(a), limits, journal)
            .await
    }

    async fn create_assets(
        &self,
        assets: &[Asset],
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let Some(first) = assets.first() else {
            return Err(TenancyError::Invalid("no assets to create".into()));
        };
        if assets.iter().any(|a| a.org != first.org) {
            return Err(TenancyError::Invalid(
                "assets created together belong to one organization".into(),
            ));
        }
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, first.org).await?;
        let stages = super::pipeline::stages(&txn, first.org).await?;
        for a in assets {
            tenancy::pipeline::check_entry(&stages, a.kind(), None, a.team)?;
        }
        let limits = limits_in_force(&txn, first.org, limits).await?;
        for a in assets {
            insert_asset_checked(&txn, a, &limits).await?;
        }
        commit(txn, journal).await
    }

    async fn get_asset(&self, org: OrgId, aid: ResourceId) -> Result<Option<Asset>, TenancyError> {
        asset::Entity::find_by_id(aid.to_string())
            .filter(asset::Column::OrgId.eq(org.to_string()))
            .one(self.db())
            .await
            .map_err(store)?
            .map(Asset::try_from)
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn list_assets(
        &self,
        org: OrgId,
        filter: &AssetFilter,
        after: Option<ResourceId>,
        limit: u32,
    ) -> Result<Vec<Asset>, TenancyError> {
        let mut q = asset::Entity::find()
            .filter(asset::Column::OrgId.eq(org.to_string()))
            .filter(asset::Column::Kind.eq(filter.kind.as_str()));
        if let Some(teams) = &filter.teams {
            if teams.is_empty() {
                return Ok(Vec::new());
            }
            q = q.filter(asset::Column::TeamId.is_in(teams.iter().map(ToString::to_string)));
        }
        if let Some(p) = filter.parent {
            q = q.filter(asset::Column::ParentId.eq(p.to_string()));
        }
        match filter.archived {
            Some(true) => q = q.filter(asset::Column::ArchivedAt.is_not_null()),
            Some(false) => q = q.filter(asset::Column::ArchivedAt.is_null()),
            None => {}
        }
        if let Some(a) = after {
            q = q.filter(asset::Column::Id.gt(a.to_string()));
        }
        let rows = self
            .fetch_all(q.order_by_asc(asset::Column::Id).limit(u64::from(limit)))
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(Asset::try_from)
            .collect::<Result<_, _>>()
            .map_err(TenancyError::Store)
    }

    async fn update_asset(
        &self,
        before: &Asset,
        after: &Asset,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let (this, before, after) = (self.clone(), before.clone(), after.clone());
        self.on_writer(async move { this.update_asset_now(&before, &after, journal).await })
            .await
    }

    async fn delete_asset(
        &self,
        org: OrgId,
        aid: ResourceId,
        team: TeamId,
        only_by: Option<UserId>,
        journal: Journal,
    ) -> Result<Vec<Asset>, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Serialized with `create_asset` (which takes the same lock): on PostgreSQL a document
        // added to a knowledge base being deleted would otherwise commit beside the deletion
        // and be left without its parent.
        lock_org(&txn, org).await?;
        // Still in the team the deletion was allowed in: a transfer that committed since must
        // not let it delete from a team its caller may not act in.
        let now_in: Option<String> = asset::Entity::find_by_id(aid.to_string())
            .filter(asset::Column::OrgId.eq(org.to_string()))
            .select_only()
            .column(asset::Column::TeamId)
            .into_tuple()
            .one(&txn)
            .await
            .map_err(store)?;
        match now_in {
            None => return Err(TenancyError::NotFound("asset")),
            Some(t) if t != team.to_string() => return Err(tenancy::assets::moved_meanwhile()),
            Some(_) => {}
        }
        let ids = subtree(&txn, org, vec![aid.to_string()]).await?;
        let gone = delete_ids(&txn, org, ids).await?;
        if !gone.iter().any(|a| a.id == aid) {
            return Err(TenancyError::NotFound("asset"));
        }
        // Rolled back (the transaction is dropped) when it took what someone else created.
        if let Some(creator) = only_by
            && gone.iter().any(|a| a.created_by != creator)
        {
            return Err(tenancy::assets::others_under_it());
        }
        commit(txn, journal).await?;
        Ok(gone)
    }

    async fn transfer_asset(
        &self,
        t: &AssetTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, t.org).await?;
        match team_row(&txn, t.org, t.to_team).await? {
            None => return Err(TenancyError::NotFound("team")),
            Some(row) if row.archived_at.is_some() => {
                return Err(TenancyError::Conflict(format!(
                    "the team `{}` is archived",
                    row.name
                )));
            }
            Some(_) => {}
        }
        // A chat interface passes the organization's pipeline one stage at a time, as the
        // pipeline is now (its change takes the organization's lock too).
        let stages = super::pipeline::stages(&txn, t.org).await?;
        if !stages.is_empty() {
            let kind: Option<String> = asset::Entity::find_by_id(t.asset.to_string())
                .select_only()
                .column(asset::Column::Kind)
                .filter(asset::Column::OrgId.eq(t.org.to_string()))
                .filter(asset::Column::TeamId.eq(t.from_team.to_string()))
                .filter(asset::Column::Name.eq(t.from_name.clone()))
                .into_tuple()
                .one(&txn)
                .await
                .map_err(store)?;
            let kind = kind.ok_or_else(tenancy::assets::moved_meanwhile)?;
            let kind = tenancy::assets::AssetKind::parse(&kind)
                .ok_or_else(|| TenancyError::Store(crate::convert::corrupt("asset kind", &kind)))?;
            tenancy::pipeline::check_entry(&stages, kind, Some(t.from_team), t.to_team)?;
        }
        let moved = asset::Entity::update_many()
            .col_expr(asset::Column::TeamId, Expr::value(t.to_team.to_string()))
            .col_expr(asset::Column::Name, Expr::value(t.to_name.clone()))
            .col_expr(asset::Column::UpdatedAt, Expr::value(micros(t.at)))
            .filter(asset::Column::Id.eq(t.asset.to_string()))
            .filter(asset::Column::OrgId.eq(t.org.to_string()))
            .filter(asset::Column::TeamId.eq(t.from_team.to_string()))
            // Not renamed since it was read: the transfer writes the name, and would otherwise
            // undo the rename.
            .filter(asset::Column::Name.eq(t.from_name.clone()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if moved.rows_affected != 1 {
            return Err(tenancy::assets::moved_meanwhile());
        }
        let ids = subtree(&txn, t.org, vec![t.asset.to_string()]).await?;
        asset::Entity::update_many()
            .col_expr(asset::Column::TeamId, Expr::value(t.to_team.to_string()))
            .filter(asset::Column::OrgId.eq(t.org.to_string()))
            .filter(asset::Column::Id.is_in(ids))
            .exec(&txn)
            .await
            .map_err(store)?;
        asset_transfer::Entity::insert(asset_transfer::ActiveModel {
            seq: sea_orm::ActiveValue::NotSet,
            org_id: Set(t.org.to_string()),
            asset_id: Set(t.asset.to_string()),
            from_team: Set(t.from_team.to_string()),
            to_team: Set(t.to_team.to_string()),
            from_name: Set(t.from_name.clone()),
            to_name: Set(t.to_name.clone()),
            by_user: Set(t.by.to_string()),
            at: Set(micros(t.at)),
            note: Set(t.note.clone()),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        commit(txn, journal).await
    }

    async fn transfers_of(
        &self,
        org: OrgId,
        aid: ResourceId,
    ) -> Result<Vec<AssetTransfer>, TenancyError> {
        let rows = asset_transfer::Entity::find()
            .filter(asset_transfer::Column::OrgId.eq(org.to_string()))
            .filter(asset_transfer::Column::AssetId.eq(aid.to_string()))
            .order_by_asc(asset_transfer::Column::Seq)
            .all(self.db())
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(AssetTransfer::try_from)
            .collect::<Result<_, _>>()
            .map_err(TenancyError::Store)
    }

    async fn record_usage(&self, u: &UsageRecord, org: OrgId) -> Result<(), TenancyError> {
        let count = i64::try_from(u.count)
            .map_err(|_| TenancyError::Invalid("the count is too large".into()))?;
        usage_daily::Entity::insert(usage_daily::ActiveModel {
            org_id: Set(org.to_string()),
            day: Set(u.day.to_string()),
            team_id: Set(u.team.to_string()),
            asset_id: Set(u.asset.map(|a| a.to_string()).unwrap_or_default()),
            metric: Set(u.metric.clone()),
            count: Set(count),
        })
        .on_conflict(
            OnConflict::columns([
                usage_daily::Column::OrgId,
                usage_daily::Column::Day,
                usage_daily::Column::TeamId,
                usage_daily::Column::AssetId,
                usage_daily::Column::Metric,
            ])
            .value(
                usage_daily::Column::Count,
                Expr::col((usage_daily::Entity, usage_daily::Column::Count)).add(count),
            )
            .to_owned(),
        )
        .exec_without_returning(self.db())
        .await
        .map_err(store)?;
        Ok(())
    }

    async fn usage(
        &self,
        org: OrgId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsageRecord>, TenancyError> {
        let rows = usage_daily::Entity::find()
            .filter(usage_daily::Column::OrgId.eq(org.to_string()))
            .filter(usage_daily::Column::Day.gte(from.to_string()))
            .filter(usage_daily::Column::Day.lte(to.to_string()))
            .order_by_asc(usage_daily::Column::Day)
            .order_by_asc(usage_daily::Column::TeamId)
            .order_by_asc(usage_daily::Column::AssetId)
            .order_by_asc(usage_daily::Column::Metric)
            .all(self.db())
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(|r| {
                Ok(UsageRecord {
                    team: id("team id", &r.team_id)?,
                    asset: if r.asset_id.is_empty() {
                        None
                    } else {
                        Some(id("asset id", &r.asset_id)?)
                    },
                    metric: r.metric,
                    day: r.day.parse().map_err(|_| corrupt("day", &r.day))?,
                    count: u64::try_from(r.count)
                        .map_err(|_| corrupt("count", &r.count.to_string()))?,
                })
            })
            .collect::<Result<_, StoreError>>()
            .map_err(TenancyError::Store)
    }

    async fn storage(&self, org: OrgId) -> Result<Vec<TeamStorage>, TenancyError> {
        let rows: Vec<(String, i64, Option<i64>)> = asset::Entity::find()
            .select_only()
            .column(asset::Column::TeamId)
            .column_as(asset::Column::Id.count(), "documents")
            .column_as(total_bytes(), "bytes")
            .filter(asset::Column::OrgId.eq(org.to_string()))
            .filter(asset::Column::Kind.eq(AssetKind::Document.as_str()))
            .group_by(asset::Column::TeamId)
            .order_by_asc(asset::Column::TeamId)
            .into_tuple()
            .all(self.db())
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(|(t, n, b)| {
                Ok(TeamStorage {
                    team: id("team id", &t)?,
                    documents: u64::try_from(n).unwrap_or(0),
                    bytes: u64::try_from(b.unwrap_or(0)).unwrap_or(0),
                })
            })
            .collect::<Result<_, StoreError>>()
            .map_err(TenancyError::Store)
    }

    async fn asset_counts(&self, org: OrgId) -> Result<Vec<TeamAssets>, TenancyError> {
        let rows: Vec<(String, String, i64)> = asset::Entity::find()
            .select_only()
            .column(asset::Column::TeamId)
            .column(asset::Column::Kind)
            .column_as(asset::Column::Id.count(), "n")
            .filter(asset::Column::OrgId.eq(org.to_string()))
            .group_by(asset::Column::TeamId)
            .group_by(asset::Column::Kind)
            .into_tuple()
            .all(self.reader())
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(|(t, k, n)| {
                Ok(TeamAssets {
                    team: id("team id", &t)?,
                    kind: AssetKind::parse(&k).ok_or_else(|| corrupt("asset kind", &k))?,
                    count: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect::<Result<_, StoreError>>()
            .map_err(TenancyError::Store)
    }

    async fn record(&self, journal: Journal) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        commit(txn, journal).await
    }
}

impl SeaStore {
    /// [`WorkspaceStore::update_asset`], on the calling task.
    async fn update_asset_now(
        &self,
        before: &Asset,
        after: &Asset,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // An edit in a team archived since the service looked is refused; archiving or
        // restoring the resource is not an edit.
        if before.archived_at == after.archived_at
            && let Some(t) = team_row(&txn, before.org, before.team).await?
            && t.archived_at.is_some()
        {
            return Err(tenancy::assets::team_archived(&t.name));
        }
        let res = asset::Entity::update_many()
            .col_expr(asset::Column::Name, Expr::value(after.name.clone()))
            .col_expr(
                asset::Column::UpdatedAt,
                Expr::value(micros(after.updated_at)),
            )
            .col_expr(
                asset::Column::Details,
                Expr::value(to_json(&after.details)?),
            )
            .col_expr(
                asset::Column::ArchivedAt,
                Expr::value(after.archived_at.map(micros)),
            )
            .filter(asset::Column::Id.eq(before.id.to_string()))
            .filter(asset::Column::OrgId.eq(before.org.to_string()))
            .filter(asset::Column::TeamId.eq(before.team.to_string()))
            .filter(asset::Column::Name.eq(before.name.clone()))
            .filter(asset::Column::UpdatedAt.eq(micros(before.updated_at)))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::Conflict(format!(
                "the {} changed meanwhile",
                before.kind().label()
            )));
        }
        commit(txn, journal).await
    }
}

/// One read of [`WorkspaceStore::team_members_page`], and whether every membership row it
/// read had its role.
async fn team_members_read(
    s: &SeaStore,
    org: OrgId,
    t: TeamId,
    after: Option<UserId>,
    limit: u32,
) -> Result<(Vec<TeamMember>, bool), TenancyError> {
    let in_team = sea_orm::sea_query::Query::select()
        .column(team_member::Column::UserId)
        .from(team_member::Entity)
        .and_where(team_member::Column::TeamId.eq(t.to_string()))
        .and_where(team_member::Column::OrgId.eq(org.to_string()))
        .to_owned();
    // A role in every team counts only for a team of this organization.
    let team_of_org = sea_orm::sea_query::Query::select()
        .expr(Expr::val(1))
        .from(team::Entity)
        .and_where(team::Column::Id.eq(t.to_string()))
        .and_where(team::Column::OrgId.eq(org.to_string()))
        .to_owned();
    let mut page = membership::Entity::find()
        .filter(membership::Column::OrgId.eq(org.to_string()))
        .filter(
            sea_orm::Condition::any()
                .add(membership::Column::UserId.in_subquery(in_team))
                .add(
                    sea_orm::Condition::all()
                        .add(membership::Column::AllTeamsRole.is_not_null())
                        .add(Expr::exists(team_of_org)),
                ),
        );
    if let Some(after) = after {
        page = page.filter(membership::Column::UserId.gt(after.to_string()));
    }
    let rows = s
        .fetch_all(
            page.order_by_asc(membership::Column::UserId)
                .limit(u64::from(limit))
                .find_also_related(user::Entity),
        )
        .await
        .map_err(store)?;
    let Some(last) = rows.last().map(|(m, _)| m.user_id.clone()) else {
        return Ok((Vec::new(), true));
    };
    // The roles given in the team to the people of this page: the same range of user ids.
    let mut given_roles = team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(t.to_string()))
        .filter(team_member::Column::OrgId.eq(org.to_string()))
        .filter(team_member::Column::UserId.lte(last));
    if let Some(after) = after {
        given_roles = given_roles.filter(team_member::Column::UserId.gt(after.to_string()));
    }
    let assigned: std::collections::HashMap<String, TeamRole> = s
        .fetch_all(given_roles)
        .await
        .map_err(store)?
        .into_iter()
        .map(|r| {
            let role = TeamRole::parse(&r.role).ok_or_else(|| corrupt("team role", &r.role))?;
            Ok((r.user_id, role))
        })
        .collect::<Result<_, StoreError>>()?;
    let mut out = Vec::with_capacity(rows.len());
    let mut complete = true;
    // A membership always has its account (foreign key); one without would be left out.
    for (m, u) in rows {
        let Some(u) = u else { continue };
        let given = assigned.get(&m.user_id).copied();
        let member = super::tenancy::member(org, &m, u)?;
        let Some(role) = given.max(member.all_teams) else {
            complete = false;
            continue;
        };
        out.push(TeamMember {
            member,
            role,
            assigned: given,
        });
    }
    Ok((out, complete))
}
