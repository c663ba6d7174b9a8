//! [`MfaStore`] on SeaORM. Every "use once" is a conditional write whose affected-row count
//! decides, so two racing requests cannot both succeed.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, Utc};
use rbac_core::OrgRole;
use rbac_core::UserId;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, TransactionTrait,
};
use security_policy::{LoginThrottlePolicy, SmsChallenge, ThrottleState};
use tenancy::TenancyError;
use tenancy::mfa::{
    AccessReset, AccessResetJournal, MemberReset, MfaRecord, MfaStore, ResetStanding,
};

use super::tenancy::{commit, replace_password, store};
use crate::SeaStore;
use crate::convert::corrupt;
use crate::convert::{id, micros, time};
use crate::entity::{login_challenge, membership, recovery_code, sms_outbox, user_mfa};
use crate::error::is_unique_violation;

fn uid(u: UserId) -> String {
    u.to_string()
}

fn active(u: UserId) -> Condition {
    Condition::all()
        .add(user_mfa::Column::UserId.eq(uid(u)))
        .add(user_mfa::Column::EnabledAt.is_not_null())
}

/// Locks `user`'s second-factor record in `txn` (PostgreSQL; SQLite's writes take turns) and
/// returns it. Every transaction that changes the factor or its recovery codes takes the record
/// first, so none waits for the codes while holding the record against another that holds
/// the codes, and a check of the record holds until the commit.
async fn lock_factor(
    txn: &DatabaseTransaction,
    user: UserId,
) -> Result<Option<user_mfa::Model>, TenancyError> {
    user_mfa::Entity::find_by_id(uid(user))
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(store)
}

/// Deletes `user`'s second factor and recovery codes in `txn`; whether there was one.
async fn remove_second_factor(
    txn: &DatabaseTransaction,
    user: UserId,
) -> Result<bool, TenancyError> {
    lock_factor(txn, user).await?;
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(uid(user)))
        .exec(txn)
        .await
        .map_err(store)?;
    let res = user_mfa::Entity::delete_by_id(uid(user))
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(res.rows_affected > 0)
}

/// A [`ResetStanding`] as `txn` reads it.
async fn reset_standing(
    txn: &DatabaseTransaction,
    reset: &MemberReset,
    user: UserId,
) -> Result<ResetStanding, TenancyError> {
    let rows = membership::Entity::find()
        .filter(
            Condition::any()
                .add(membership::Column::UserId.eq(uid(user)))
                .add(
                    Condition::all()
                        .add(membership::Column::OrgId.eq(reset.org.to_string()))
                        .add(membership::Column::UserId.eq(uid(reset.by))),
                ),
        )
        .all(txn)
        .await
        .map_err(store)?;
    let org = reset.org.to_string();
    let role_of = |m: &membership::Model| {
        OrgRole::parse(&m.role).ok_or_else(|| TenancyError::Store(corrupt("role", &m.role)))
    };
    let mut standing = ResetStanding {
        by_role: None,
        member: None,
        elsewhere: false,
        enrolled: lock_factor(txn, user)
            .await?
            .is_some_and(|m| m.enabled_at.is_some()),
        address_unchanged: crate::entity::user::Entity::find_by_id(uid(user))
            .select_only()
            .column(crate::entity::user::Column::Email)
            .into_tuple::<String>()
            .one(txn)
            .await
            .map_err(store)?
            // As the account reads back (an address stored in an older form is read in its
            // canonical one, which the service compared with).
            .is_some_and(|e| crate::convert::stored_email(&e).as_str() == reset.email),
    };
    for m in &rows {
        if m.org_id == org && m.user_id == uid(reset.by) && m.deactivated_at.is_none() {
            standing.by_role = Some(role_of(m)?);
        }
        if m.user_id == uid(user) {
            if m.org_id == org {
                standing.member = Some((role_of(m)?, m.deactivated_at.is_none()));
            } else {
                standing.elsewhere = true;
            }
        }
    }
    Ok(standing)
}

/// The throttling state kept in a second-factor record.
fn throttle_of(m: &user_mfa::Model) -> Result<Option<ThrottleState>, TenancyError> {
    let Some(ws) = m.window_start else {
        return Ok(None);
    };
    Ok(Some(ThrottleState {
        failures: u32::try_from(m.failures).unwrap_or(0),
        window_start: time(ws)?,
        locked_until: m.locked_until.map(time).transpose()?,
    }))
}

/// Replaces (or with `None` clears) the throttling state of a second-factor record, in the
/// caller's transaction.
async fn put_throttle(
    txn: &sea_orm::DatabaseTransaction,
    user: UserId,
    state: Option<&ThrottleState>,
) -> Result<(), TenancyError> {
    user_mfa::Entity::update_many()
        .col_expr(
            user_mfa::Column::Failures,
            Expr::value(state.map_or(0, |s| i32::try_from(s.failures).unwrap_or(i32::MAX))),
        )
        .col_expr(
            user_mfa::Column::WindowStart,
            Expr::value(state.map(|s| micros(s.window_start))),
        )
        .col_expr(
            user_mfa::Column::LockedUntil,
            Expr::value(state.and_then(|s| s.locked_until).map(micros)),
        )
        .filter(user_mfa::Column::UserId.eq(uid(user)))
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

/// `user`'s second-factor record, held until `txn` ends (the row's lock on PostgreSQL; on
/// SQLite the one writer runs transactions one after the other), so that counts read and
/// written under it do not miss each other.
async fn locked_record(
    txn: &sea_orm::DatabaseTransaction,
    user: UserId,
) -> Result<user_mfa::Model, TenancyError> {
    user_mfa::Entity::find_by_id(uid(user))
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(store)?
        .ok_or(TenancyError::NotFound("second factor"))
}

#[async_trait]
impl MfaStore for SeaStore {
    async fn mfa(&self, user: UserId) -> Result<Option<MfaRecord>, TenancyError> {
        let Some(m) = user_mfa::Entity::find_by_id(uid(user))
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        let left = recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(uid(user)))
            .count(self.db())
            .await
            .map_err(store)?;
        let throttle = throttle_of(&m)?;
        let sms = match (m.sms_code_hash, m.sms_expires_at) {
            (Some(code_hash), Some(exp)) => Some(SmsChallenge {
                code_hash,
                expires_at: time(exp)?,
            }),
            _ => None,
        };

        Ok(Some(MfaRecord {
            user: id("user id", &m.user_id)?,
            secret_enc: m.secret_enc,
            enabled_at: m.enabled_at.map(time).transpose()?,
            last_step: m.last_step,
            phone: m.phone,
            sms,
            throttle,
            recovery_codes_left: u32::try_from(left).unwrap_or(u32::MAX),
        }))
    }

    async fn start_totp(&self, user: UserId, secret_enc: &str) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Locked: an activation committed meanwhile is seen here, not deleted below.
        let existing = lock_factor(&txn, user).await?;
        if existing.as_ref().is_some_and(|m| m.enabled_at.is_some()) {
            return Err(TenancyError::Conflict(
                "two-factor authentication is already on".into(),
            ));
        }
        user_mfa::Entity::delete_many()
            .filter(user_mfa::Column::UserId.eq(uid(user)))
            .filter(user_mfa::Column::EnabledAt.is_null())
            .exec(&txn)
            .await
            .map_err(store)?;
        let inserted = user_mfa::Entity::insert(user_mfa::ActiveModel {
            user_id: Set(uid(user)),
            secret_enc: Set(secret_enc.to_owned()),
            enabled_at: Set(None),
            last_step: Set(None),
            phone: Set(None),
            sms_code_hash: Set(None),
            sms_expires_at: Set(None),
            failures: Set(0),
            window_start: Set(None),
            locked_until: Set(None),
        })
        .exec_without_returning(&txn)
        .await;
        match inserted {
            // Another setup of theirs inserted its record first (there was none to lock).
            Err(e) if is_unique_violation(&e) => Err(TenancyError::Conflict(
                "two-factor setup started again meanwhile; try again".into(),
            )),
            Err(e) => Err(store(e)),
            Ok(_) => txn.commit().await.map_err(store),
        }
    }

    async fn activate_totp(
        &self,
        user: UserId,
        secret_enc: &str,
        step: i64,
        recovery_hashes: &[String],
        keep: Option<rbac_core::SessionId>,
        now: DateTime<Utc>,
        records: tenancy::SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Under the account's lock, which a new session takes too: one opened with the password
        // alone is either stored before this (and ended below) or refused after it.
        super::tenancy::lock_user(&txn, user).await?;
        let res = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::EnabledAt, Expr::value(micros(now)))
            .col_expr(user_mfa::Column::LastStep, Expr::value(step))
            // The codes guessed while it was pending no longer count.
            .col_expr(user_mfa::Column::Failures, Expr::value(0i32))
            .col_expr(
                user_mfa::Column::WindowStart,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                user_mfa::Column::LockedUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(user_mfa::Column::UserId.eq(uid(user)))
            .filter(user_mfa::Column::EnabledAt.is_null())
            .filter(user_mfa::Column::SecretEnc.eq(secret_enc))
            .filter(
                Condition::any()
                    .add(user_mfa::Column::LastStep.is_null())
                    .add(user_mfa::Column::LastStep.lt(step)),
            )
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected != 1 {
            return Err(TenancyError::Conflict(
                "the enrolment changed meanwhile".into(),
            ));
        }
        replace_codes(&txn, user, recovery_hashes).await?;
        // The sessions opened with the password alone end, but the one activating.
        let ended = super::tenancy::end_sessions_but(&txn, user, keep, now).await?;
        commit(txn, records(ended)).await?;
        Ok(ended)
    }

    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, TenancyError> {
        let res = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::LastStep, Expr::value(step))
            .filter(user_mfa::Column::UserId.eq(uid(user)))
            .filter(
                Condition::any()
                    .add(user_mfa::Column::LastStep.is_null())
                    .add(user_mfa::Column::LastStep.lt(step)),
            )
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(res.rows_affected == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(uid(user)))
            .filter(recovery_code::Column::CodeHash.eq(hash))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected != 1 {
            txn.rollback().await.map_err(store)?;
            return Ok(false);
        }
        commit(txn, journal).await?;
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[String],
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Locked, so a factor turned off meanwhile does not leave these codes behind.
        if lock_factor(&txn, user)
            .await?
            .is_none_or(|m| m.enabled_at.is_none())
        {
            return Err(TenancyError::NotFound("second factor"));
        }
        replace_codes(&txn, user, hashes).await?;
        commit(txn, journal).await
    }

    async fn set_phone(
        &self,
        user: UserId,
        phone: Option<&str>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::Phone,
                Expr::value(phone.map(str::to_owned)),
            )
            .filter(active(user))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("second factor"));
        }
        commit(txn, journal).await
    }

    async fn replace_sms_challenge(
        &self,
        user: UserId,
        replacing: Option<DateTime<Utc>>,
        challenge: &SmsChallenge,
    ) -> Result<bool, TenancyError> {
        let pending = match replacing {
            Some(at) => user_mfa::Column::SmsExpiresAt.eq(micros(at)),
            None => user_mfa::Column::SmsExpiresAt.is_null(),
        };
        let res = user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::SmsCodeHash,
                Expr::value(challenge.code_hash.clone()),
            )
            .col_expr(
                user_mfa::Column::SmsExpiresAt,
                Expr::value(micros(challenge.expires_at)),
            )
            .filter(user_mfa::Column::UserId.eq(uid(user)))
            .filter(pending)
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(res.rows_affected == 1)
    }

    async fn take_sms_challenge(
        &self,
        user: UserId,
        code_hash: &str,
    ) -> Result<bool, TenancyError> {
        let res = user_mfa::Entity::update_many()
            .col_expr(
                user_mfa::Column::SmsCodeHash,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                user_mfa::Column::SmsExpiresAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(user_mfa::Column::UserId.eq(uid(user)))
            .filter(user_mfa::Column::SmsCodeHash.eq(code_hash))
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(res.rows_affected == 1)
    }

    async fn enrolled_among(&self, users: &[UserId]) -> Result<Vec<UserId>, TenancyError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // On the member list's path: read like the list itself, not through sqlx's readers.
        self.fetch_values::<String>(
            user_mfa::Entity::find()
                .select_only()
                .column(user_mfa::Column::UserId)
                .filter(user_mfa::Column::UserId.is_in(users.iter().map(ToString::to_string)))
                .filter(user_mfa::Column::EnabledAt.is_not_null()),
        )
        .await
        .map_err(store)?
        .iter()
        .map(|u| Ok(id("user id", u)?))
        .collect()
    }

    async fn reserve_mfa_attempt(
        &self,
        user: UserId,
        policy: &LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Attempts arriving at once each count before any is checked.
        let state = throttle_of(&locked_record(&txn, user).await?)?;
        if let Some(until) = security_policy::locked_until(state.as_ref(), now) {
            txn.rollback().await.map_err(store)?;
            return Err(TenancyError::Throttled(until));
        }
        let next = security_policy::after_failure(policy, state.as_ref(), now);
        put_throttle(&txn, user, Some(&next)).await?;
        txn.commit().await.map_err(store)
    }

    async fn count_mfa_failure(
        &self,
        user: UserId,
        policy: &LoginThrottlePolicy,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<ThrottleState, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // Wrong codes arriving at once read each other's counts.
        let m = locked_record(&txn, user).await?;
        let next = security_policy::after_failure(policy, throttle_of(&m)?.as_ref(), now);
        put_throttle(&txn, user, Some(&next)).await?;
        commit(txn, journal).await?;
        Ok(next)
    }

    async fn set_mfa_throttle(
        &self,
        user: UserId,
        state: Option<&ThrottleState>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        put_throttle(&txn, user, state).await?;
        commit(txn, journal).await
    }

    async fn disable_mfa(&self, user: UserId, journal: Journal) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        if !remove_second_factor(&txn, user).await? {
            return Err(TenancyError::NotFound("second factor"));
        }
        commit(txn, journal).await
    }

    async fn reset_access(
        &self,
        user: UserId,
        hash: &str,
        by: Option<MemberReset>,
        now: DateTime<Utc>,
        records: AccessResetJournal<'_>,
    ) -> Result<AccessReset, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        if let Some(reset) = &by {
            // The account's lock (joins, removals and changes of its address take it), then the
            // organization's (role changes, deactivations and the author's own standing), then
            // the second factor's: what is read here holds until the commit.
            super::tenancy::lock_user(&txn, user).await?;
            super::tenancy::lock_org(&txn, reset.org).await?;
            let standing = reset_standing(&txn, reset, user).await?;
            tenancy::mfa::check_member_reset(reset, user, &standing)?;
        }
        let sessions_ended = replace_password(&txn, user, hash, None, now).await?;
        let done = AccessReset {
            sessions_ended,
            second_factor_removed: remove_second_factor(&txn, user).await?,
        };
        commit(txn, records(done)).await?;
        Ok(done)
    }

    async fn save_login_challenge(
        &self,
        hash: &str,
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        // Expired challenges of anyone are swept on the way.
        login_challenge::Entity::delete_many()
            .filter(login_challenge::Column::ExpiresAt.lt(micros(expires_at) - 3_600_000_000))
            .exec(self.db())
            .await
            .map_err(store)?;
        login_challenge::Entity::insert(login_challenge::ActiveModel {
            token_hash: Set(hash.to_owned()),
            user_id: Set(uid(user)),
            expires_at: Set(micros(expires_at)),
        })
        .on_conflict(
            OnConflict::column(login_challenge::Column::TokenHash)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self.db())
        .await
        .map_err(store)?;
        Ok(())
    }

    async fn login_challenge(
        &self,
        hash: &str,
    ) -> Result<Option<(UserId, DateTime<Utc>)>, TenancyError> {
        let Some(m) = login_challenge::Entity::find_by_id(hash.to_owned())
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        Ok(Some((id("user id", &m.user_id)?, time(m.expires_at)?)))
    }

    async fn consume_login_challenge(&self, hash: &str) -> Result<bool, TenancyError> {
        let res = login_challenge::Entity::delete_by_id(hash.to_owned())
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(res.rows_affected == 1)
    }
}

async fn replace_codes(
    txn: &sea_orm::DatabaseTransaction,
    user: UserId,
    hashes: &[String],
) -> Result<(), TenancyError> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(uid(user)))
        .exec(txn)
        .await
        .map_err(store)?;
    if hashes.is_empty() {
        return Ok(());
    }
    recovery_code::Entity::insert_many(hashes.iter().map(|h| recovery_code::ActiveModel {
        user_id: Set(uid(user)),
        code_hash: Set(h.clone()),
    }))
    .exec_without_returning(txn)
    .await
    .map_err(store)?;
    Ok(())
}

/// The default SMS adapter: messages go to the `sms_outbox` table for the operator to read
/// (`axie-server sms-outbox`), as mail does without SMTP.
#[async_trait]
impl tenancy::mfa::SmsSender for SeaStore {
    async fn send(&self, to: &str, text: &str) -> Result<(), tenancy::StoreError> {
        sms_outbox::Entity::insert(sms_outbox::ActiveModel {
            seq: sea_orm::ActiveValue::NotSet,
            to_number: Set(to.to_owned()),
            body: Set(text.to_owned()),
            created_at: Set(micros(Utc::now())),
        })
        .exec_without_returning(self.db())
        .await
        .map_err(crate::error::db_err)?;
        Ok(())
    }
}

impl SeaStore {
    /// The newest text messages kept in the outbox: (recipient, text, time).
    ///
    /// # Errors
    /// [`tenancy::StoreError`] on storage failure.
    pub async fn sms_outbox(
        &self,
        limit: u64,
    ) -> Result<Vec<(String, String, DateTime<Utc>)>, tenancy::StoreError> {
        use sea_orm::{QueryOrder, QuerySelect};
        let rows = sms_outbox::Entity::find()
            .order_by_desc(sms_outbox::Column::Seq)
            .limit(limit)
            .all(self.db())
            .await
            .map_err(crate::error::db_err)?;
        rows.into_iter()
            .map(|r| Ok((r.to_number, r.body, time(r.created_at)?)))
            .collect()
    }
}
