//! [`MembershipStore`] on SeaORM: role changes, ownership transfer, removal.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, Utc};
use rbac_core::{OrgId, OrgRole, TeamRole, UserId};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};
use tenancy::members::{Disposition, OwnershipTransfer, RemovalReport};
use tenancy::{MembershipStore, TenancyError};

use super::tenancy::{commit, lock_org, lock_user, store};
use crate::SeaStore;
use crate::convert::{id, micros, time};
use crate::entity::{api_key, invitation, membership, ownership_transfer, team, team_member};

fn team_role_for(role: OrgRole) -> TeamRole {
    if role.is_admin() {
        TeamRole::Admin
    } else {
        TeamRole::Member
    }
}

async fn set_default_team_role(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    user: UserId,
    role: OrgRole,
) -> Result<(), TenancyError> {
    let Some(default) = team::Entity::find()
        .filter(team::Column::OrgId.eq(org.to_string()))
        .filter(team::Column::IsDefault.eq(true))
        .one(txn)
        .await
        .map_err(store)?
    else {
        return Ok(());
    };
    team_member::Entity::update_many()
        .col_expr(
            team_member::Column::Role,
            Expr::value(team_role_for(role).as_str()),
        )
        .filter(team_member::Column::TeamId.eq(default.id))
        .filter(team_member::Column::UserId.eq(user.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

async fn update_role(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    user: UserId,
    from: OrgRole,
    to: OrgRole,
) -> Result<bool, TenancyError> {
    let mut update = membership::Entity::update_many()
        .col_expr(membership::Column::Role, Expr::value(to.as_str()));
    if to.is_admin() {
        // A role in every team is a User's: one kept through a promotion would come back
        // into force with a later demotion.
        update = update.col_expr(
            membership::Column::AllTeamsRole,
            Expr::value(Option::<String>::None),
        );
    }
    let res = update
        .filter(membership::Column::OrgId.eq(org.to_string()))
        .filter(membership::Column::UserId.eq(user.to_string()))
        .filter(membership::Column::Role.eq(from.as_str()))
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(res.rows_affected == 1)
}

/// Withdraws what a person leaving the organization (or deactivated) had pending: the
/// invitations they sent ([`revoke_invitations_by`]) and a transfer of ownership addressed to
/// them.
pub(super) async fn withdraw_grants(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    revoke_invitations_by(txn, org, user, now).await?;
    ownership_transfer::Entity::delete_many()
        .filter(ownership_transfer::Column::OrgId.eq(org.to_string()))
        .filter(ownership_transfer::Column::ToUser.eq(user.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

/// Revokes the invitations a person sent that are still pending (which would otherwise still
/// grant access): on losing admin rights. A transfer of ownership addressed to them stays: the
/// Owner proposed it to a member, of any role, and only the Owner withdraws it.
pub(super) async fn revoke_invitations_by(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    // Their links die with them: the mail not sent yet goes too.
    super::invitations::drop_unsent_mail_of(
        txn,
        org,
        sea_orm::Condition::all().add(invitation::Column::InvitedBy.eq(user.to_string())),
        now,
    )
    .await?;
    invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, Expr::value(micros(now)))
        .filter(invitation::Column::OrgId.eq(org.to_string()))
        .filter(invitation::Column::InvitedBy.eq(user.to_string()))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

/// Changes a member's role from `from` to `to` with what follows from it: their role in the
/// default team, and, when they lose admin rights, the invitations they sent with them.
///
/// # Errors
/// [`TenancyError::Conflict`] when the member no longer has the role `from`.
pub(super) async fn change_role(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    user: UserId,
    (from, to): (OrgRole, OrgRole),
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    if !update_role(txn, org, user, from, to).await? {
        return Err(TenancyError::Conflict(
            "the member's role changed meanwhile; reload and try again".into(),
        ));
    }
    set_default_team_role(txn, org, user, to).await?;
    let mut tokens = 0;
    if !to.is_admin() {
        revoke_invitations_by(txn, org, user, now).await?;
        // Their SCIM tokens stop working with the role (only an Owner's or Admin's work); revoked,
        // they do not work again should the person be made an Admin again.
        tokens =
            super::scim::revoke_scim_tokens(txn, &org.to_string(), &user.to_string(), now).await?;
        // Admin roles in teams go with the organization's: such a role came with it (an
        // Admin invited into a team, say) as often as not, and a demotion takes away the
        // right to manage people. The Owner or an Admin gives one back where it is meant.
        team_member::Entity::update_many()
            .col_expr(
                team_member::Column::Role,
                Expr::value(TeamRole::Member.as_str()),
            )
            .filter(team_member::Column::OrgId.eq(org.to_string()))
            .filter(team_member::Column::UserId.eq(user.to_string()))
            .filter(team_member::Column::Role.eq(TeamRole::Admin.as_str()))
            .exec(txn)
            .await
            .map_err(store)?;
    }
    // How many SCIM tokens the demotion revoked.
    Ok(tokens)
}

#[async_trait]
impl MembershipStore for SeaStore {
    async fn set_role(
        &self,
        org: OrgId,
        user: UserId,
        from: OrgRole,
        to: OrgRole,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The organization first, as every other change of its members takes it: a transfer
        // being confirmed, whose transfer row `change_role` may withdraw, holds it too.
        lock_org(&txn, org).await?;
        check_acting(&txn, org, by).await?;
        change_role(&txn, org, user, (from, to), Utc::now()).await?;
        commit(txn, journal).await
    }

    async fn set_all_teams_role(
        &self,
        org: OrgId,
        user: UserId,
        from: Option<TeamRole>,
        to: Option<TeamRole>,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Under the organization's lock, as every change of its members.
        lock_org(&txn, org).await?;
        check_acting(&txn, org, by).await?;
        let mut update = membership::Entity::update_many()
            .col_expr(
                membership::Column::AllTeamsRole,
                Expr::value(to.map(TeamRole::as_str)),
            )
            .filter(membership::Column::OrgId.eq(org.to_string()))
            .filter(membership::Column::UserId.eq(user.to_string()));
        update = match from {
            Some(role) => update.filter(membership::Column::AllTeamsRole.eq(role.as_str())),
            None => update.filter(membership::Column::AllTeamsRole.is_null()),
        };
        if to.is_some() {
            // Read again under the lock: a promotion since the service looked.
            update = update.filter(membership::Column::Role.eq(OrgRole::User.as_str()));
        }
        if update.exec(&txn).await.map_err(store)?.rows_affected == 0 {
            let member = membership::Entity::find_by_id((org.to_string(), user.to_string()))
                .select_only()
                .column(membership::Column::Role)
                .into_tuple::<String>()
                .one(&txn)
                .await
                .map_err(store)?;
            return Err(match member {
                None => TenancyError::NotFound("member"),
                Some(role) if to.is_some() && role != OrgRole::User.as_str() => {
                    tenancy::members::all_teams_for_users_only()
                }
                Some(_) => tenancy::members::all_teams_changed(),
            });
        }
        commit(txn, journal).await
    }

    async fn withdraw_transfer(
        &self,
        t: &OwnershipTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = ownership_transfer::Entity::delete_many()
            .filter(ownership_transfer::Column::OrgId.eq(t.org.to_string()))
            .filter(ownership_transfer::Column::FromUser.eq(t.from.to_string()))
            .filter(ownership_transfer::Column::ToUser.eq(t.to.to_string()))
            .filter(ownership_transfer::Column::ProposedAt.eq(micros(t.proposed_at)))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("ownership transfer"));
        }
        commit(txn, journal).await
    }

    async fn save_transfer(
        &self,
        t: &OwnershipTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Checked again under the organization's lock: a removal or demotion that committed
        // since the service looked withdrew nothing (there was no transfer yet), so the
        // proposal must not outlive it.
        lock_org(&txn, t.org).await?;
        let role_of = |user: UserId| {
            membership::Entity::find_by_id((t.org.to_string(), user.to_string()))
                .select_only()
                .column(membership::Column::Role)
                .into_tuple::<String>()
                .one(&txn)
        };
        if role_of(t.from).await.map_err(store)?.as_deref() != Some(OrgRole::Owner.as_str()) {
            return Err(TenancyError::Conflict(
                "ownership changed meanwhile; the transfer was not proposed".into(),
            ));
        }
        let to = membership::Entity::find_by_id((t.org.to_string(), t.to.to_string()))
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("member"))?;
        if to.deactivated_at.is_some() {
            return Err(tenancy::members::transfer_to_deactivated());
        }
        ownership_transfer::Entity::insert(ownership_transfer::ActiveModel {
            org_id: Set(t.org.to_string()),
            from_user: Set(t.from.to_string()),
            to_user: Set(t.to.to_string()),
            proposed_at: Set(micros(t.proposed_at)),
            expires_at: Set(micros(t.expires_at)),
        })
        .on_conflict(
            OnConflict::column(ownership_transfer::Column::OrgId)
                .update_columns([
                    ownership_transfer::Column::FromUser,
                    ownership_transfer::Column::ToUser,
                    ownership_transfer::Column::ProposedAt,
                    ownership_transfer::Column::ExpiresAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        commit(txn, journal).await
    }

    async fn pending_transfer(
        &self,
        org: OrgId,
    ) -> Result<Option<OwnershipTransfer>, TenancyError> {
        let Some(m) = ownership_transfer::Entity::find_by_id(org.to_string())
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        Ok(Some(OwnershipTransfer {
            org,
            from: id("user id", &m.from_user)?,
            to: id("user id", &m.to_user)?,
            proposed_at: time(m.proposed_at)?,
            expires_at: time(m.expires_at)?,
        }))
    }

    async fn complete_transfer(
        &self,
        t: &OwnershipTransfer,
        _now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, t.org).await?;
        let consumed = ownership_transfer::Entity::delete_many()
            .filter(ownership_transfer::Column::OrgId.eq(t.org.to_string()))
            .filter(ownership_transfer::Column::ToUser.eq(t.to.to_string()))
            .filter(ownership_transfer::Column::ProposedAt.eq(micros(t.proposed_at)))
            .exec(&txn)
            .await
            .map_err(store)?;
        let conflict = || {
            TenancyError::Conflict(
                "ownership changed meanwhile; the transfer was not applied".into(),
            )
        };
        if consumed.rows_affected != 1
            || !update_role(&txn, t.org, t.from, OrgRole::Owner, OrgRole::Admin).await?
        {
            return Err(conflict());
        }
        // The old Owner is demoted first, so the one-owner unique index is never violated.
        let promoted = membership::Entity::update_many()
            .col_expr(
                membership::Column::Role,
                Expr::value(OrgRole::Owner.as_str()),
            )
            // As with every promotion (`update_role`): a role in every team is a User's.
            .col_expr(
                membership::Column::AllTeamsRole,
                Expr::value(Option::<String>::None),
            )
            .filter(membership::Column::OrgId.eq(t.org.to_string()))
            .filter(membership::Column::UserId.eq(t.to.to_string()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if promoted.rows_affected != 1 {
            return Err(conflict());
        }
        set_default_team_role(&txn, t.org, t.from, OrgRole::Admin).await?;
        set_default_team_role(&txn, t.org, t.to, OrgRole::Owner).await?;
        commit(txn, journal).await
    }

    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        disposition: Disposition,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
        sessions: tenancy::SessionsEndedJournal<'_>,
    ) -> Result<RemovalReport, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The account, then the organization (as an erasure and a join take them): a removal
        // from another organization at the same time waits, and whichever comes second sees
        // that the person has no organization left and ends their sessions.
        lock_user(&txn, user).await?;
        let (report, touched) = remove_in(&txn, org, user, disposition, now).await?;
        // Under the organization's lock, which `remove_in` took; a refusal rolls it all back.
        check_acting(&txn, org, by).await?;
        let mut journal = journal;
        journal.absorb(sessions(touched));
        commit(txn, journal).await?;
        Ok(report)
    }
}

/// The author of a role change or removal (`by`), read under the organization's lock, must
/// still be an active Owner or Admin (see `MembershipStore::set_role`).
pub(crate) async fn check_acting(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    by: Option<UserId>,
) -> Result<(), TenancyError> {
    let Some(by) = by else {
        return Ok(());
    };
    let role = membership::Entity::find_by_id((org.to_string(), by.to_string()))
        .one(txn)
        .await
        .map_err(store)?
        .filter(|m| m.deactivated_at.is_none())
        .and_then(|m| OrgRole::parse(&m.role));
    if tenancy::members::may_administer(role) {
        Ok(())
    } else {
        Err(tenancy::members::acting_role_changed())
    }
}

/// Refuses a transfer of `user`'s resources to the User `to` when some are in a team where
/// `to` has no role ([`tenancy::members::recipient_outside_teams`]). Read under the
/// organization's lock, which role changes take too.
async fn recipient_reaches_teams(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    user: UserId,
    to: UserId,
) -> Result<(), TenancyError> {
    let holding: Vec<String> = crate::entity::asset::Entity::find()
        .select_only()
        .column(crate::entity::asset::Column::TeamId)
        .distinct()
        .filter(crate::entity::asset::Column::OrgId.eq(org.to_string()))
        .filter(crate::entity::asset::Column::CreatedBy.eq(user.to_string()))
        .into_tuple()
        .all(txn)
        .await
        .map_err(store)?;
    if holding.is_empty() {
        return Ok(());
    }
    let theirs: Vec<String> = team_member::Entity::find()
        .select_only()
        .column(team_member::Column::TeamId)
        .filter(team_member::Column::OrgId.eq(org.to_string()))
        .filter(team_member::Column::UserId.eq(to.to_string()))
        .into_tuple()
        .all(txn)
        .await
        .map_err(store)?;
    let missing: Vec<String> = holding
        .into_iter()
        .filter(|t| !theirs.contains(t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = crate::entity::team::Entity::find()
        .select_only()
        .column(crate::entity::team::Column::Name)
        .filter(crate::entity::team::Column::OrgId.eq(org.to_string()))
        .filter(crate::entity::team::Column::Id.is_in(missing))
        .into_tuple()
        .all(txn)
        .await
        .map_err(store)?;
    names.sort();
    Err(tenancy::members::recipient_outside_teams(&names))
}

/// A member's removal inside the caller's transaction (see `MembershipStore::remove_member`),
/// with how many sessions it ended or signed out of `org`.
pub(crate) async fn remove_in(
    txn: &sea_orm::DatabaseTransaction,
    org: OrgId,
    user: UserId,
    disposition: Disposition,
    now: DateTime<Utc>,
) -> Result<(RemovalReport, u64), TenancyError> {
    lock_org(txn, org).await?;
    if let Some(to) = disposition.recipient() {
        let recipient = membership::Entity::find_by_id((org.to_string(), to.to_string()))
            .one(txn)
            .await
            .map_err(store)?;
        let Some(recipient) = recipient.filter(|r| to != user && r.deactivated_at.is_none()) else {
            return Err(tenancy::members::recipient_refused());
        };
        if matches!(disposition, Disposition::TransferToOwner(_))
            && recipient.role != OrgRole::Owner.as_str()
        {
            return Err(tenancy::members::ownership_changed());
        }
        let role = OrgRole::parse(&recipient.role).ok_or_else(|| {
            TenancyError::Store(tenancy::StoreError::msg("unknown organization role"))
        })?;
        if !tenancy::members::reaches_every_team(role, recipient.all_teams_role.is_some()) {
            recipient_reaches_teams(txn, org, user, to).await?;
        }
    }
    let gone = membership::Entity::delete_many()
        .filter(membership::Column::OrgId.eq(org.to_string()))
        .filter(membership::Column::UserId.eq(user.to_string()))
        .filter(membership::Column::Role.ne(OrgRole::Owner.as_str()))
        .exec(txn)
        .await
        .map_err(store)?;
    if gone.rows_affected == 0 {
        return Err(TenancyError::NotFound("member"));
    }
    team_member::Entity::delete_many()
        .filter(team_member::Column::OrgId.eq(org.to_string()))
        .filter(team_member::Column::UserId.eq(user.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    withdraw_grants(txn, org, user, now).await?;
    crate::entity::scim_user::Entity::delete_many()
        .filter(crate::entity::scim_user::Column::OrgId.eq(org.to_string()))
        .filter(crate::entity::scim_user::Column::UserId.eq(user.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    let (transferred, deleted) =
        super::workspace::dispose_assets(txn, org, user, disposition).await?;
    let keys = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(micros(now)))
        .filter(api_key::Column::OrgId.eq(org.to_string()))
        .filter(api_key::Column::CreatedBy.eq(user.to_string()))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .map_err(store)?
        .rows_affected;
    let scim_tokens =
        super::scim::revoke_scim_tokens(txn, &org.to_string(), &user.to_string(), now).await?;
    // Sessions belong to the person, not to one organization: those good nowhere else (no
    // other organization where they are active) end; the others are signed out of this one,
    // so that joining it again later does not open it to them.
    let (touched, sessions) = super::tenancy::sign_out_in(txn, org, &user.to_string(), now).await?;
    let report = RemovalReport {
        transferred,
        deleted: deleted.iter().filter(|a| a.created_by == user).count() as u64,
        cascaded: deleted.iter().filter(|a| a.created_by != user).count() as u64,
        api_keys_deactivated: keys,
        scim_tokens_revoked: scim_tokens,
        sessions_ended: sessions,
        deleted_documents: deleted
            .iter()
            .filter(|a| a.kind() == tenancy::assets::AssetKind::Document)
            .map(|a| a.id)
            .collect(),
    };
    Ok((report, touched))
}
