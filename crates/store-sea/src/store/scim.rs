//! [`ScimStore`] on SeaORM: tokens, member and team records, and the member and team changes
//! SCIM makes, each in one transaction with its journal.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, Utc};
use rbac_core::{OrgId, OrgRole, ScimTokenId, TeamId, TeamRole, UserId};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use tenancy::scim::{
    GroupRecord, GroupWrite, MemberWrite, MemberWriteReport, ScimStore, ScimToken, UserRecord,
};
use tenancy::{TenancyError, User};

use super::tenancy::{
    check_seat, commit, end_sessions, insert_membership, insert_user, lock_org, lock_user, store,
};
use crate::SeaStore;
use crate::convert::{id, json, micros, time, to_json};
use crate::entity::{
    api_key, membership, scim_group, scim_token, scim_user, team, team_member, user,
};
use crate::error::is_unique_violation;

/// Revokes the SCIM tokens `user` created in `org` that are still live, in `txn`; how many.
/// A token works only while its creator is an active Owner or Admin: revoked when they are
/// removed or deactivated, it does not work again should they come back as one.
pub(crate) async fn revoke_scim_tokens(
    txn: &sea_orm::DatabaseTransaction,
    org: &str,
    user: &str,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    Ok(scim_token::Entity::update_many()
        .col_expr(scim_token::Column::RevokedAt, Expr::value(micros(now)))
        .filter(scim_token::Column::OrgId.eq(org))
        .filter(scim_token::Column::CreatedBy.eq(user))
        .filter(scim_token::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .map_err(store)?
        .rows_affected)
}

fn token(m: scim_token::Model) -> Result<ScimToken, TenancyError> {
    Ok(ScimToken {
        id: id("SCIM token id", &m.id)?,
        org: id("organization id", &m.org_id)?,
        name: m.name,
        prefix: m.prefix,
        created_by: id("user id", &m.created_by)?,
        created_at: time(m.created_at)?,
        last_used_at: m.last_used_at.map(time).transpose()?,
        revoked_at: m.revoked_at.map(time).transpose()?,
    })
}

fn user_record(m: scim_user::Model) -> Result<UserRecord, TenancyError> {
    Ok(UserRecord {
        user: id("user id", &m.user_id)?,
        user_name: m.user_name,
        external_id: m.external_id,
        attributes: json("SCIM attributes", &m.attributes)?,
        version: m.version,
        updated_at: time(m.updated_at)?,
    })
}

fn group_record(m: scim_group::Model) -> Result<GroupRecord, TenancyError> {
    Ok(GroupRecord {
        team: id("team id", &m.team_id)?,
        external_id: m.external_id,
        members: json("SCIM members", &m.members)?,
        version: m.version,
        updated_at: time(m.updated_at)?,
    })
}

fn user_name_taken(name: &str) -> TenancyError {
    TenancyError::Conflict(format!("userName `{name}` is already in use"))
}

/// Inserts or (compare-and-swap on `expected`) replaces a member's record.
async fn put_user_record(
    txn: &DatabaseTransaction,
    org: OrgId,
    r: &UserRecord,
    expected: Option<i64>,
) -> Result<(), TenancyError> {
    let attributes = to_json(&r.attributes)?;
    let res = match expected {
        None => {
            scim_user::Entity::insert(scim_user::ActiveModel {
                org_id: Set(org.to_string()),
                user_id: Set(r.user.to_string()),
                user_name: Set(r.user_name.clone()),
                user_name_key: Set(r.user_name.to_lowercase()),
                external_id: Set(r.external_id.clone()),
                attributes: Set(attributes),
                version: Set(r.version),
                updated_at: Set(micros(r.updated_at)),
            })
            // A record written meanwhile by another request (a race, not a duplicate userName:
            // that is another unique key, and still an error here) inserts nothing: `Changed`
            // below.
            .on_conflict(
                OnConflict::columns([scim_user::Column::OrgId, scim_user::Column::UserId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await
        }
        Some(v) => scim_user::Entity::update_many()
            .col_expr(
                scim_user::Column::UserName,
                Expr::value(r.user_name.clone()),
            )
            .col_expr(
                scim_user::Column::UserNameKey,
                Expr::value(r.user_name.to_lowercase()),
            )
            .col_expr(
                scim_user::Column::ExternalId,
                Expr::value(r.external_id.clone()),
            )
            .col_expr(scim_user::Column::Attributes, Expr::value(attributes))
            .col_expr(scim_user::Column::Version, Expr::value(r.version))
            .col_expr(
                scim_user::Column::UpdatedAt,
                Expr::value(micros(r.updated_at)),
            )
            .filter(scim_user::Column::OrgId.eq(org.to_string()))
            .filter(scim_user::Column::UserId.eq(r.user.to_string()))
            .filter(scim_user::Column::Version.eq(v))
            .exec(txn)
            .await
            .map(|x| x.rows_affected),
    };
    match res {
        Err(e) if is_unique_violation(&e) => Err(user_name_taken(&r.user_name)),
        Err(e) => Err(store(e)),
        Ok(0) => Err(TenancyError::Changed(
            "the member changed meanwhile; read it again".into(),
        )),
        Ok(_) => Ok(()),
    }
}

#[async_trait]
impl ScimStore for SeaStore {
    async fn create_scim_token(
        &self,
        t: &ScimToken,
        secret_hash: &str,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Its creator is still an active Owner or Admin: a demotion, removal or deactivation
        // that committed since the service looked revoked the tokens it found, and must not be
        // outlived by this one.
        lock_org(&txn, t.org).await?;
        super::members::check_acting(&txn, t.org, Some(t.created_by)).await?;
        scim_token::Entity::insert(scim_token::ActiveModel {
            id: Set(t.id.to_string()),
            org_id: Set(t.org.to_string()),
            name: Set(t.name.clone()),
            prefix: Set(t.prefix.clone()),
            secret_hash: Set(secret_hash.to_owned()),
            created_by: Set(t.created_by.to_string()),
            created_at: Set(micros(t.created_at)),
            revoked_at: Set(None),
            last_used_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        commit(txn, journal).await
    }

    async fn find_scim_token(&self, secret_hash: &str) -> Result<Option<ScimToken>, TenancyError> {
        scim_token::Entity::find()
            .filter(scim_token::Column::SecretHash.eq(secret_hash))
            .filter(scim_token::Column::RevokedAt.is_null())
            .one(self.db())
            .await
            .map_err(store)?
            .map(token)
            .transpose()
    }

    async fn list_scim_tokens(&self, org: OrgId) -> Result<Vec<ScimToken>, TenancyError> {
        scim_token::Entity::find()
            .filter(scim_token::Column::OrgId.eq(org.to_string()))
            .order_by_asc(scim_token::Column::Id)
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(token)
            .collect()
    }

    async fn revoke_scim_token(
        &self,
        org: OrgId,
        t: ScimTokenId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = scim_token::Entity::update_many()
            .col_expr(scim_token::Column::RevokedAt, Expr::value(micros(now)))
            .filter(scim_token::Column::Id.eq(t.to_string()))
            .filter(scim_token::Column::OrgId.eq(org.to_string()))
            .filter(scim_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("SCIM token"));
        }
        commit(txn, journal).await
    }

    async fn touch_scim_token(
        &self,
        t: ScimTokenId,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        scim_token::Entity::update_many()
            .col_expr(scim_token::Column::LastUsedAt, Expr::value(micros(now)))
            .filter(scim_token::Column::Id.eq(t.to_string()))
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn user_records(&self, org: OrgId) -> Result<Vec<UserRecord>, TenancyError> {
        scim_user::Entity::find()
            .filter(scim_user::Column::OrgId.eq(org.to_string()))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(user_record)
            .collect()
    }

    async fn user_record_by_name(
        &self,
        org: OrgId,
        user_name: &str,
    ) -> Result<Option<UserRecord>, TenancyError> {
        // The unique index `scim_users_user_name` (org_id, user_name_key).
        scim_user::Entity::find()
            .filter(scim_user::Column::OrgId.eq(org.to_string()))
            .filter(scim_user::Column::UserNameKey.eq(user_name.to_lowercase()))
            .one(self.db())
            .await
            .map_err(store)?
            .map(user_record)
            .transpose()
    }

    async fn user_record(&self, org: OrgId, u: UserId) -> Result<Option<UserRecord>, TenancyError> {
        scim_user::Entity::find_by_id((org.to_string(), u.to_string()))
            .one(self.db())
            .await
            .map_err(store)?
            .map(user_record)
            .transpose()
    }

    async fn provision_member(
        &self,
        org: OrgId,
        u: &User,
        password_hash: Option<&str>,
        record: &UserRecord,
        org_role: OrgRole,
        active: bool,
        team_id: TeamId,
        limits: &billing_limits::PlanLimits,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, org).await?;
        super::members::check_acting(&txn, org, by).await?;
        check_seat(&txn, org, limits, u.created_at, Some(&u.email)).await?;
        insert_user(&txn, u, password_hash).await?;
        insert_membership(
            &txn,
            org,
            u,
            org_role,
            team_id,
            TeamRole::Member,
            u.created_at,
        )
        .await?;
        super::tenancy::settle_invitations(&txn, org, u).await?;
        if !active {
            membership::Entity::update_many()
                .col_expr(
                    membership::Column::DeactivatedAt,
                    Expr::value(micros(u.created_at)),
                )
                .filter(membership::Column::OrgId.eq(org.to_string()))
                .filter(membership::Column::UserId.eq(u.id.to_string()))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        put_user_record(&txn, org, record, None).await?;
        commit(txn, journal).await
    }

    async fn write_member(
        &self,
        w: &MemberWrite,
        journal: Journal,
        ended: tenancy::SessionsEndedJournal<'_>,
    ) -> Result<MemberWriteReport, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The account before the organization, as everywhere (see `lock_org`).
        lock_user(&txn, w.user).await?;
        lock_org(&txn, w.org).await?;
        super::members::check_acting(&txn, w.org, w.by).await?;
        let (org, uid) = (w.org.to_string(), w.user.to_string());
        let present = membership::Entity::find_by_id((org.clone(), uid.clone()))
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("User"))?;
        let (old_email, old_name) = user::Entity::find_by_id(uid.clone())
            .one(&txn)
            .await
            .map_err(store)?
            .map(|u| (u.email, u.name))
            .unzip();
        // The sign-in and the name are the organization's to change only while it alone holds
        // the account and the person is not its Owner: checked again under the locks a join, a
        // founding and an ownership transfer take too, so one that committed since the service
        // looked is seen here.
        if old_email.as_deref() != Some(w.email.as_str())
            || old_name.as_deref() != Some(w.name.as_str())
            || w.password_hash.is_some()
        {
            let elsewhere = membership::Entity::find()
                .filter(membership::Column::UserId.eq(uid.clone()))
                .filter(membership::Column::OrgId.ne(org.clone()))
                .count(&txn)
                .await
                .map_err(store)?;
            if elsewhere > 0 || present.role == OrgRole::Owner.as_str() {
                return Err(tenancy::scim::credentials_changed_hands());
            }
        }
        put_user_record(&txn, w.org, &w.record, w.expected_version).await?;
        let mut q = user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value(w.name.clone()))
            .col_expr(
                user::Column::Email,
                Expr::value(w.email.as_str().to_owned()),
            );
        if let Some(h) = &w.password_hash {
            q = q.col_expr(user::Column::PasswordHash, Expr::value(Some(h.clone())));
        }
        match q.filter(user::Column::Id.eq(uid.clone())).exec(&txn).await {
            Err(e) if is_unique_violation(&e) => {
                return Err(TenancyError::Conflict(format!(
                    "the email `{}` belongs to another account",
                    w.email
                )));
            }
            Err(e) => return Err(store(e)),
            Ok(_) => {}
        }
        // A password the identity provider sets is a credential change, as a reset is.
        if w.password_hash.is_some() {
            super::tenancy::note_credential_change(&txn, w.user, w.now).await?;
        }
        // A new password or a new address retires the reset links sent before.
        if w.password_hash.is_some() || old_email.as_deref() != Some(w.email.as_str()) {
            super::password_reset::retire_links(&txn, w.user, w.now).await?;
        }
        // A new password ends a sign-in begun with the old one (waiting for its second factor).
        if w.password_hash.is_some() {
            crate::entity::login_challenge::Entity::delete_many()
                .filter(crate::entity::login_challenge::Column::UserId.eq(uid.clone()))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        let mut demotion_tokens = 0;
        if let Some((from, to)) = w.role {
            // Never the Owner's row (the domain refuses it; this keeps the store honest too).
            if from == OrgRole::Owner || to == OrgRole::Owner {
                return Err(TenancyError::RoleRule(
                    rbac_core::RoleRuleError::OwnerViaTransferOnly,
                ));
            }
            // Its role changed since the service read it: a race, not a duplicate.
            demotion_tokens = super::members::change_role(&txn, w.org, w.user, (from, to), w.now)
                .await
                .map_err(|e| match e {
                    TenancyError::Conflict(m) => TenancyError::Changed(m),
                    other => other,
                })?;
        }
        let mut report = MemberWriteReport {
            scim_tokens_revoked: demotion_tokens,
            ..MemberWriteReport::default()
        };
        // The sessions the write ends or signs out of the organization, each recorded.
        let mut revoked = 0;
        if w.password_hash.is_some() {
            // A new password ends the sessions the old one opened.
            report.sessions_ended = end_sessions(&txn, &uid, w.now).await?;
            revoked = report.sessions_ended;
        }
        match w.active {
            Some(false) if present.deactivated_at.is_none() => {
                // The Owner is never deactivated: the service checked the role it read, and an
                // ownership transfer may have made them the Owner since. Nothing is done then.
                if present.role == OrgRole::Owner.as_str() {
                    return Err(TenancyError::Changed(
                        "the person became the Owner meanwhile, and the Owner is not deactivated"
                            .into(),
                    ));
                }
                // A deactivated admin's pending invitations and a transfer to them go, as
                // with a demotion or removal.
                super::members::withdraw_grants(&txn, w.org, w.user, w.now).await?;
                membership::Entity::update_many()
                    .col_expr(
                        membership::Column::DeactivatedAt,
                        Expr::value(micros(w.now)),
                    )
                    .filter(membership::Column::OrgId.eq(org.clone()))
                    .filter(membership::Column::UserId.eq(uid.clone()))
                    .filter(membership::Column::Role.ne(OrgRole::Owner.as_str()))
                    .exec(&txn)
                    .await
                    .map_err(store)?;
                report.api_keys_deactivated = api_key::Entity::update_many()
                    .col_expr(api_key::Column::RevokedAt, Expr::value(micros(w.now)))
                    .filter(api_key::Column::OrgId.eq(org.clone()))
                    .filter(api_key::Column::CreatedBy.eq(uid.clone()))
                    .filter(api_key::Column::RevokedAt.is_null())
                    .exec(&txn)
                    .await
                    .map_err(store)?
                    .rows_affected;
                report.scim_tokens_revoked += revoke_scim_tokens(&txn, &org, &uid, w.now).await?;
                // Sessions belong to the person: those good in no other organization where
                // they are active end, the others are signed out of this one (so that being
                // reactivated does not open it to them again).
                let (touched, gone) = super::tenancy::sign_out_in(&txn, w.org, &uid, w.now).await?;
                report.sessions_ended += gone;
                revoked += touched;
            }
            Some(true) => {
                membership::Entity::update_many()
                    .col_expr(
                        membership::Column::DeactivatedAt,
                        Expr::value(Option::<i64>::None),
                    )
                    .filter(membership::Column::OrgId.eq(org.clone()))
                    .filter(membership::Column::UserId.eq(uid.clone()))
                    .exec(&txn)
                    .await
                    .map_err(store)?;
            }
            _ => {}
        }
        let mut journal = journal;
        journal.absorb(ended(revoked));
        commit(txn, journal).await?;
        Ok(report)
    }

    async fn group_records(&self, org: OrgId) -> Result<Vec<GroupRecord>, TenancyError> {
        scim_group::Entity::find()
            .filter(scim_group::Column::OrgId.eq(org.to_string()))
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(group_record)
            .collect()
    }

    async fn group_record(
        &self,
        org: OrgId,
        team: TeamId,
    ) -> Result<Option<GroupRecord>, TenancyError> {
        scim_group::Entity::find_by_id((org.to_string(), team.to_string()))
            .one(self.db())
            .await
            .map_err(store)?
            .map(group_record)
            .transpose()
    }

    async fn write_group(&self, w: &GroupWrite, journal: Journal) -> Result<(), TenancyError> {
        let t = &w.team;
        let (org, tid) = (t.org.to_string(), t.id.to_string());
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, t.org).await?;
        super::members::check_acting(&txn, t.org, w.by).await?;
        let conflict = || TenancyError::Conflict(format!("a team named `{}` exists", t.name));
        if w.create {
            match team::Entity::insert(team::ActiveModel {
                id: Set(tid.clone()),
                org_id: Set(org.clone()),
                name: Set(t.name.clone()),
                is_default: Set(false),
                created_at: Set(micros(t.created_at)),
                archived_at: Set(None),
            })
            .exec_without_returning(&txn)
            .await
            {
                Err(e) if is_unique_violation(&e) => return Err(conflict()),
                Err(e) => return Err(store(e)),
                Ok(_) => {}
            }
        } else {
            match team::Entity::update_many()
                .col_expr(team::Column::Name, Expr::value(t.name.clone()))
                .filter(team::Column::Id.eq(tid.clone()))
                .filter(team::Column::OrgId.eq(org.clone()))
                .exec(&txn)
                .await
            {
                Err(e) if is_unique_violation(&e) => return Err(conflict()),
                Err(e) => return Err(store(e)),
                Ok(r) if r.rows_affected == 0 => return Err(TenancyError::NotFound("Group")),
                Ok(_) => {}
            }
            // Read after the update, which holds the team's row: an archiving committed
            // first is seen; one after waits for this commit.
            // Someone with a role in every team, or a role in this team already, is in it.
            if !w.add.is_empty()
                && let Some(row) = super::workspace::team_row(&txn, t.org, t.id).await?
                && row.archived_at.is_some()
                && membership::Entity::find()
                    .filter(membership::Column::OrgId.eq(org.clone()))
                    .filter(
                        membership::Column::UserId
                            .is_in(w.add.iter().map(ToString::to_string).collect::<Vec<_>>()),
                    )
                    .filter(membership::Column::AllTeamsRole.is_null())
                    .filter(
                        membership::Column::UserId.not_in_subquery(
                            sea_orm::sea_query::Query::select()
                                .column(team_member::Column::UserId)
                                .from(team_member::Entity)
                                .and_where(team_member::Column::TeamId.eq(tid.clone()))
                                .to_owned(),
                        ),
                    )
                    .count(&txn)
                    .await
                    .map_err(store)?
                    > 0
            {
                return Err(tenancy::teams::archived_team(&row.name));
            }
        }
        let members = to_json(&w.record.members)?;
        let updated = match w.expected_version {
            Some(v) => {
                scim_group::Entity::update_many()
                    .col_expr(
                        scim_group::Column::ExternalId,
                        Expr::value(w.record.external_id.clone()),
                    )
                    .col_expr(scim_group::Column::Members, Expr::value(members.clone()))
                    .col_expr(scim_group::Column::Version, Expr::value(w.record.version))
                    .col_expr(
                        scim_group::Column::UpdatedAt,
                        Expr::value(micros(w.record.updated_at)),
                    )
                    .filter(scim_group::Column::OrgId.eq(org.clone()))
                    .filter(scim_group::Column::TeamId.eq(tid.clone()))
                    .filter(scim_group::Column::Version.eq(v))
                    .exec(&txn)
                    .await
                    .map_err(store)?
                    .rows_affected
            }
            None => {
                scim_group::Entity::insert(scim_group::ActiveModel {
                    org_id: Set(org.clone()),
                    team_id: Set(tid.clone()),
                    external_id: Set(w.record.external_id.clone()),
                    members: Set(members),
                    version: Set(w.record.version),
                    updated_at: Set(micros(w.record.updated_at)),
                })
                .exec_without_returning(&txn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        TenancyError::Changed("the group changed meanwhile".into())
                    } else {
                        store(e)
                    }
                })?;
                1
            }
        };
        if updated == 0 {
            return Err(TenancyError::Changed(
                "the group changed meanwhile; read it again".into(),
            ));
        }
        for u in &w.add {
            // Only people who are members of the organization (checked in this transaction).
            let is_member = membership::Entity::find_by_id((org.clone(), u.to_string()))
                .count(&txn)
                .await
                .map_err(store)?;
            if is_member == 0 {
                continue;
            }
            // Someone given a role in the team since the group was read (through the API,
            // say) keeps it: a group write adds Members, it does not demote.
            team_member::Entity::insert(team_member::ActiveModel {
                team_id: Set(tid.clone()),
                user_id: Set(u.to_string()),
                org_id: Set(org.clone()),
                role: Set(TeamRole::Member.as_str().to_owned()),
            })
            .on_conflict(
                OnConflict::columns([team_member::Column::TeamId, team_member::Column::UserId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(store)?;
        }
        if !w.remove.is_empty() {
            team_member::Entity::delete_many()
                .filter(team_member::Column::TeamId.eq(tid.clone()))
                .filter(team_member::Column::OrgId.eq(org.clone()))
                .filter(
                    team_member::Column::UserId
                        .is_in(w.remove.iter().map(ToString::to_string).collect::<Vec<_>>()),
                )
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        commit(txn, journal).await
    }
}
