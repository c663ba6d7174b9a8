//! [`PasswordResetStore`] on SeaORM: reset links by the hash of their token.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rbac_core::{OrgId, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};
use tenancy::password_reset::{PasswordReset, PasswordResetStore, ResetJournal, unusable};
use tenancy::{Email, TenancyError};

use super::tenancy::{commit, lock_user, replace_password, store};
use crate::SeaStore;
use crate::convert::{id, micros, time};
use crate::entity::{membership, password_reset, user};

#[async_trait]
impl PasswordResetStore for SeaStore {
    async fn create_password_reset(
        &self,
        reset: &PasswordReset,
        email: &Email,
        since: DateTime<Utc>,
        max_recent: u32,
        journal: ResetJournal<'_>,
    ) -> Result<bool, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Two requests at once count each other, and an erasure commits before or after.
        lock_user(&txn, reset.user).await?;
        let current = user::Entity::find_by_id(reset.user.to_string())
            .one(&txn)
            .await
            .map_err(store)?;
        if current.is_none_or(|u| u.email != email.as_str()) {
            return Ok(false);
        }
        let recent = password_reset::Entity::find()
            .filter(password_reset::Column::UserId.eq(reset.user.to_string()))
            .filter(password_reset::Column::CreatedAt.gt(micros(since)))
            .count(&txn)
            .await
            .map_err(store)?;
        if recent >= u64::from(max_recent) {
            return Ok(false);
        }
        password_reset::Entity::insert(password_reset::ActiveModel {
            token_hash: Set(reset.token_hash.clone()),
            user_id: Set(reset.user.to_string()),
            created_at: Set(micros(reset.created_at)),
            expires_at: Set(micros(reset.expires_at)),
            used_at: Set(reset.used_at.map(micros)),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        let orgs = orgs_of(&txn, reset.user).await?;
        commit(txn, journal(&orgs, 0)).await?;
        Ok(true)
    }

    async fn find_password_reset(
        &self,
        token_hash: &str,
    ) -> Result<Option<PasswordReset>, TenancyError> {
        password_reset::Entity::find_by_id(token_hash.to_owned())
            .one(self.db())
            .await
            .map_err(store)?
            .map(|m| -> Result<PasswordReset, TenancyError> {
                Ok(PasswordReset {
                    user: id("user id", &m.user_id)?,
                    token_hash: m.token_hash,
                    created_at: time(m.created_at)?,
                    expires_at: time(m.expires_at)?,
                    used_at: m.used_at.map(time).transpose()?,
                })
            })
            .transpose()
    }

    async fn complete_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
        records: ResetJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let Some(row) = password_reset::Entity::find_by_id(token_hash.to_owned())
            .one(&txn)
            .await
            .map_err(store)?
        else {
            return Err(unusable());
        };
        let user: UserId = id("user id", &row.user_id)?;
        // The account first, as an erasure takes it, so the two never wait on each other.
        lock_user(&txn, user).await?;
        // The use is a conditional update: of two uses at once, one finds it used.
        let used = password_reset::Entity::update_many()
            .col_expr(password_reset::Column::UsedAt, Expr::value(micros(now)))
            .filter(password_reset::Column::TokenHash.eq(token_hash))
            .filter(password_reset::Column::UsedAt.is_null())
            .filter(password_reset::Column::ExpiresAt.gt(micros(now)))
            .exec(&txn)
            .await
            .map_err(store)?;
        if used.rows_affected == 0 {
            return Err(unusable());
        }
        // Retires the person's other links with it.
        let ended = replace_password(&txn, user, password_hash, None, now).await?;
        let orgs = orgs_of(&txn, user).await?;
        commit(txn, records(&orgs, ended)).await?;
        Ok(ended)
    }
}

/// The organizations `user` belongs to, read in `txn`.
async fn orgs_of(txn: &DatabaseTransaction, user: UserId) -> Result<Vec<OrgId>, TenancyError> {
    membership::Entity::find()
        .filter(membership::Column::UserId.eq(user.to_string()))
        .all(txn)
        .await
        .map_err(store)?
        .iter()
        .map(|m| Ok(id("organization id", &m.org_id)?))
        .collect()
}

/// Retires every open reset link of `user` (a new password was set), in `txn`.
pub(super) async fn retire_links(
    txn: &DatabaseTransaction,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(micros(now)))
        .filter(password_reset::Column::UserId.eq(user.to_string()))
        .filter(password_reset::Column::UsedAt.is_null())
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}
