//! [`OrgStore`], [`AccountStore`] and [`ApiKeyStore`] on SeaORM.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, Utc};
use rbac_core::{
    ApiKeyId, FeatureAccess, OrgId, OrgRole, ResourceId, SessionId, TeamId, TeamRole, UserId,
};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tenancy::{
    AccountStore, ApiKey, ApiKeyStore, CallerMembership, CompanyProfile, Email, Member, Membership,
    OrgStore, Organization, SecuritySettings, Session, Team, TenancyError, TenancyStore, User,
};

use crate::SeaStore;
use crate::convert::{id, micros, role, to_json};
use crate::entity::{
    api_key, credential_change, login_challenge, login_throttle, membership, organization, session,
    team, team_member, user,
};
use crate::error::{db_err, is_unique_violation};

/// The organizations where `uid` holds an active membership, besides `org`, in `txn`.
async fn active_orgs_besides(
    txn: &DatabaseTransaction,
    uid: &str,
    org: OrgId,
) -> Result<Vec<OrgId>, TenancyError> {
    let ids: Vec<String> = membership::Entity::find()
        .select_only()
        .column(membership::Column::OrgId)
        .filter(membership::Column::UserId.eq(uid))
        .filter(membership::Column::OrgId.ne(org.to_string()))
        .filter(membership::Column::DeactivatedAt.is_null())
        .into_tuple()
        .all(txn)
        .await
        .map_err(store)?;
    ids.iter()
        .map(|i| id("organization id", i).map_err(TenancyError::Store))
        .collect()
}

/// Organization ids as a session row keeps them (`signed_out_of`): comma-separated.
fn org_list(orgs: &[OrgId]) -> String {
    orgs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn store(e: DbErr) -> TenancyError {
    TenancyError::Store(db_err(e))
}

/// Whether `E`'s row `id` exists, read in `txn`: what tells a conditional update that changed
/// nothing ("changed meanwhile") from one whose row is gone ("not found").
async fn exists<E: EntityTrait>(txn: &DatabaseTransaction, id: String) -> Result<bool, TenancyError>
where
    String: Into<<E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType>,
{
    Ok(E::find_by_id(id).one(txn).await.map_err(store)?.is_some())
}

/// Deletes every row of the organization `id` in `txn` but its own: the attempts of its
/// webhook deliveries (which name no organization), then each of [`crate::ORG_TABLES`].
pub(crate) async fn delete_org_rows(
    txn: &DatabaseTransaction,
    id: &str,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::{Alias, Query};
    let deliveries = Query::select()
        .column(Alias::new("id"))
        .from(Alias::new("webhook_deliveries"))
        .and_where(Expr::col(Alias::new("org_id")).eq(id))
        .to_owned();
    let attempts = Query::delete()
        .from_table(Alias::new("webhook_attempts"))
        .and_where(Expr::col(Alias::new("delivery_id")).in_subquery(deliveries))
        .to_owned();
    txn.execute(&attempts).await?;
    for table in crate::ORG_TABLES {
        let rows = Query::delete()
            .from_table(Alias::new(*table))
            .and_where(Expr::col(Alias::new("org_id")).eq(id))
            .to_owned();
        txn.execute(&rows).await?;
    }
    Ok(())
}

/// Takes the organization's write lock for the rest of the transaction (a row lock on
/// PostgreSQL, the database write lock on SQLite), so count-then-insert limit checks are atomic.
///
/// Lock order: a transaction that locks (or updates) a person's account row and an
/// organization takes the account first ([`lock_user`]), then the organization, so two of them
/// never wait on each other (erasure, SCIM writes and password resets follow it).
pub(crate) async fn lock_org(txn: &DatabaseTransaction, org: OrgId) -> Result<(), TenancyError> {
    let res = organization::Entity::update_many()
        .col_expr(
            organization::Column::LockVersion,
            Expr::col(organization::Column::LockVersion).add(1),
        )
        .filter(organization::Column::Id.eq(org.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    if res.rows_affected == 0 {
        return Err(TenancyError::NotFound("organization"));
    }
    Ok(())
}

/// The limits to check a count against in `txn`, which holds the organization's lock
/// ([`lock_org`]): the tightest of `given` (what the caller read at the start of its request)
/// and those of the organization's row as it is now. A downgrade, or lowered negotiated limits,
/// committed since the caller's read is obeyed: no creation slips past the new limit.
pub(crate) async fn limits_in_force(
    txn: &DatabaseTransaction,
    org: OrgId,
    given: &billing_limits::PlanLimits,
) -> Result<billing_limits::PlanLimits, TenancyError> {
    let row = organization::Entity::find_by_id(org.to_string())
        .one(txn)
        .await
        .map_err(store)?
        .ok_or(TenancyError::NotFound("organization"))?;
    let now = Organization::try_from(row).map_err(TenancyError::Store)?;
    Ok(given.tightest(&now.limits()))
}

/// Serializes transactions about one account: changes nothing, but takes the user row's lock
/// (PostgreSQL) until the transaction ends. On SQLite every transaction goes through the one
/// writer connection, one after the other, so the lock is the transaction itself.
pub(crate) async fn lock_user(txn: &DatabaseTransaction, user: UserId) -> Result<(), TenancyError> {
    user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::col(user::Column::Name))
        .filter(user::Column::Id.eq(user.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

/// For an existing account joining an organization: takes the account's lock before the
/// caller takes the organization's (the order an erasure and a removal follow), so a join and
/// an erasure or removal elsewhere of the same person take turns, and checks that the account
/// was not erased since the service found it (its email is then its erased address) and still
/// has the address the service matched it by.
///
/// # Errors
/// [`TenancyError::NotFound`] when the account is gone or erased; [`TenancyError::Changed`]
/// when its address changed.
pub(crate) async fn lock_joining_account(
    txn: &DatabaseTransaction,
    u: &User,
) -> Result<(), TenancyError> {
    lock_user(txn, u.id).await?;
    let email: Option<String> = user::Entity::find_by_id(u.id.to_string())
        .select_only()
        .column(user::Column::Email)
        .into_tuple()
        .one(txn)
        .await
        .map_err(store)?;
    match email {
        None => Err(TenancyError::NotFound("account")),
        Some(e) if e == tenancy::privacy::erased_address(u.id) => {
            Err(TenancyError::NotFound("account"))
        }
        // The service matched the account to what it joins by this address (an invitation's);
        // a change of address that committed since (SCIM, the person) must not carry it in.
        Some(e) if e != u.email.as_str() => Err(tenancy::invitations::joining_address_changed()),
        Some(_) => Ok(()),
    }
}

async fn read_login_throttle(
    db: &impl sea_orm::ConnectionTrait,
    user_id: UserId,
) -> Result<Option<security_policy::ThrottleState>, TenancyError> {
    let Some(m) = login_throttle::Entity::find_by_id(user_id.to_string())
        .one(db)
        .await
        .map_err(store)?
    else {
        return Ok(None);
    };
    Ok(Some(security_policy::ThrottleState {
        failures: u32::try_from(m.failures).unwrap_or(0),
        window_start: crate::convert::time(m.window_start)?,
        locked_until: m.locked_until.map(crate::convert::time).transpose()?,
    }))
}

/// Replaces (or with `None` clears) a login-throttling state, in the caller's transaction.
async fn put_login_throttle(
    txn: &DatabaseTransaction,
    user_id: UserId,
    state: Option<&security_policy::ThrottleState>,
) -> Result<(), TenancyError> {
    let Some(t) = state else {
        login_throttle::Entity::delete_by_id(user_id.to_string())
            .exec(txn)
            .await
            .map_err(store)?;
        return Ok(());
    };
    login_throttle::Entity::insert(login_throttle::ActiveModel {
        user_id: Set(user_id.to_string()),
        failures: Set(i32::try_from(t.failures).unwrap_or(i32::MAX)),
        window_start: Set(micros(t.window_start)),
        locked_until: Set(t.locked_until.map(micros)),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(login_throttle::Column::UserId)
            .update_columns([
                login_throttle::Column::Failures,
                login_throttle::Column::WindowStart,
                login_throttle::Column::LockedUntil,
            ])
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .map_err(store)?;
    Ok(())
}

/// Ends every live session of the user `uid` in the caller's transaction; returns how many.
pub(crate) async fn end_sessions(
    txn: &DatabaseTransaction,
    uid: &str,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    Ok(session::Entity::update_many()
        .col_expr(session::Column::EndedAt, Expr::value(micros(now)))
        .filter(session::Column::UserId.eq(uid))
        .filter(session::Column::EndedAt.is_null())
        .exec(txn)
        .await
        .map_err(store)?
        .rows_affected)
}

/// Signs the person `uid` out of `org` in the caller's transaction, which holds the account's
/// lock ([`lock_user`]): each live session still good in another organization where they are
/// active is refused in `org` from now on (`org` added to its `signed_out_of`), every other
/// live session ends. Returns how many sessions it touched (one refused in `org` already is
/// not counted), and how many of those it ended.
pub(crate) async fn sign_out_in(
    txn: &DatabaseTransaction,
    org: OrgId,
    uid: &str,
    now: DateTime<Utc>,
) -> Result<(u64, u64), TenancyError> {
    let elsewhere = active_orgs_besides(txn, uid, org).await?;
    let live = session::Entity::find()
        .filter(session::Column::UserId.eq(uid))
        .filter(session::Column::EndedAt.is_null())
        .all(txn)
        .await
        .map_err(store)?;
    let (mut n, mut ending) = (0, Vec::new());
    for row in live {
        let mut s = Session::try_from(row).map_err(TenancyError::Store)?;
        match s.sign_out_of(org, &elsewhere) {
            tenancy::SignOut::End => ending.push(s.id.to_string()),
            tenancy::SignOut::Refuse => {
                s.signed_out_of.push(org);
                session::Entity::update_many()
                    .col_expr(
                        session::Column::SignedOutOf,
                        Expr::value(org_list(&s.signed_out_of)),
                    )
                    .filter(session::Column::Id.eq(s.id.to_string()))
                    .exec(txn)
                    .await
                    .map_err(store)?;
            }
            tenancy::SignOut::Already => continue,
        }
        n += 1;
    }
    let ended = ending.len() as u64;
    if !ending.is_empty() {
        session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Expr::value(micros(now)))
            .filter(session::Column::Id.is_in(ending))
            .exec(txn)
            .await
            .map_err(store)?;
    }
    Ok((n, ended))
}

/// Inserts a new account (without a password hash it cannot sign in with a password); a taken
/// email is a `Conflict`. Runs in the caller's transaction.
pub(crate) async fn insert_user(
    txn: &DatabaseTransaction,
    u: &User,
    password_hash: Option<&str>,
) -> Result<(), TenancyError> {
    let res = user::Entity::insert(user::ActiveModel {
        id: Set(u.id.to_string()),
        email: Set(u.email.as_str().to_owned()),
        name: Set(u.name.clone()),
        password_hash: Set(password_hash.map(str::to_owned)),
        created_at: Set(micros(u.created_at)),
    })
    .exec_without_returning(txn)
    .await;
    match res {
        Err(e) if is_unique_violation(&e) => Err(TenancyError::Conflict(format!(
            "an account with the email `{}` exists",
            u.email
        ))),
        Err(e) => Err(store(e)),
        Ok(_) => Ok(()),
    }
}

/// Applies the plan's member limit for one more person: the seats taken are the members and the
/// invitations still open at `now` (each holds its invitee's seat), except `newcomer`'s own,
/// whose seat they are taking. An invitation left open for someone who joined another way
/// (SCIM, the operator) keeps holding a seat until it is revoked or expires: the count errs on
/// the safe side, never past the limit.
pub(crate) async fn check_seat(
    txn: &DatabaseTransaction,
    org: OrgId,
    limits: &billing_limits::PlanLimits,
    now: DateTime<Utc>,
    newcomer: Option<&Email>,
) -> Result<(), TenancyError> {
    check_seats(txn, org, limits, now, newcomer, 1).await
}

/// [`check_seat`] for `seats` people at once (a bulk confirmation's invitations).
pub(crate) async fn check_seats(
    txn: &DatabaseTransaction,
    org: OrgId,
    limits: &billing_limits::PlanLimits,
    now: DateTime<Utc>,
    newcomer: Option<&Email>,
    seats: u64,
) -> Result<(), TenancyError> {
    let members = membership::Entity::find()
        .filter(membership::Column::OrgId.eq(org.to_string()))
        .count(txn)
        .await
        .map_err(store)?;
    let mut pending = pending_invitations(org, now);
    if let Some(email) = newcomer {
        // The newcomer's own invitation holds the seat they are taking.
        pending = pending.filter(crate::entity::invitation::Column::Email.ne(email.as_str()));
    }
    let invited = pending.count(txn).await.map_err(store)?;
    tenancy::enforce_quota(billing_limits::check_quota(
        &limits_in_force(txn, org, limits).await?,
        billing_limits::Limit::Members,
        members + invited,
        seats,
    ))
}

/// Marks `user`'s invitations to `org` that are still open accepted by them: they joined
/// another way (an admin's direct add, SCIM), so no invitation keeps holding a seat for them.
/// Runs in the joining transaction.
pub(crate) async fn settle_invitations(
    txn: &DatabaseTransaction,
    org: OrgId,
    user: &User,
) -> Result<(), TenancyError> {
    use crate::entity::invitation;
    invitation::Entity::update_many()
        .col_expr(
            invitation::Column::AcceptedAt,
            Expr::value(micros(user.created_at)),
        )
        .col_expr(
            invitation::Column::AcceptedBy,
            Expr::value(user.id.to_string()),
        )
        .filter(invitation::Column::OrgId.eq(org.to_string()))
        .filter(invitation::Column::Email.eq(user.email.as_str()))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(micros(user.created_at)))
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

/// `org`'s invitations still open at `now`.
pub(crate) fn pending_invitations(
    org: OrgId,
    now: DateTime<Utc>,
) -> sea_orm::Select<crate::entity::invitation::Entity> {
    use crate::entity::invitation;
    invitation::Entity::find()
        .filter(invitation::Column::OrgId.eq(org.to_string()))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(micros(now)))
}

/// Adds the membership and the team role (the team must belong to `org`). Runs in the caller's transaction.
#[allow(
    clippy::too_many_arguments,
    reason = "the columns of two rows written together"
)]
pub(crate) async fn insert_membership(
    txn: &DatabaseTransaction,
    org: OrgId,
    u: &User,
    role: OrgRole,
    team_id: TeamId,
    team_role: TeamRole,
    joined_at: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let res = membership::Entity::insert(membership::ActiveModel {
        org_id: Set(org.to_string()),
        user_id: Set(u.id.to_string()),
        role: Set(role.as_str().to_owned()),
        joined_at: Set(micros(joined_at)),
        deactivated_at: Set(None),
        all_teams_role: Set(None),
    })
    .exec_without_returning(txn)
    .await;
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(TenancyError::Conflict(format!(
                "`{}` is already a member, or the organization already has an owner",
                u.email
            )));
        }
        Err(e) => return Err(store(e)),
        Ok(_) => {}
    }
    // Erased here before, they are back: their records name them again.
    crate::entity::audit_erasure::Entity::delete_many()
        .filter(crate::entity::audit_erasure::Column::OrgId.eq(org.to_string()))
        .filter(crate::entity::audit_erasure::Column::SubjectId.eq(u.id.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    let in_org = team::Entity::find()
        .filter(team::Column::Id.eq(team_id.to_string()))
        .filter(team::Column::OrgId.eq(org.to_string()))
        .count(txn)
        .await
        .map_err(store)?;
    if in_org == 0 {
        return Err(TenancyError::NotFound("team"));
    }
    team_member::Entity::insert(team_member::ActiveModel {
        team_id: Set(team_id.to_string()),
        user_id: Set(u.id.to_string()),
        org_id: Set(org.to_string()),
        role: Set(team_role.as_str().to_owned()),
    })
    .exec_without_returning(txn)
    .await
    .map_err(store)?;
    Ok(())
}

/// Replaces `user`'s password hash in `txn`; `NotFound` for an unknown user (the caller's
/// transaction is then dropped, which rolls it back).
async fn write_password_hash(
    txn: &DatabaseTransaction,
    user_id: UserId,
    hash: &str,
) -> Result<(), TenancyError> {
    let res = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(user_id.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    if res.rows_affected == 0 {
        return Err(TenancyError::NotFound("user"));
    }
    Ok(())
}

/// Notes in `txn` that `user`'s password changed at `now`: the addresses they signed in from
/// before no longer pass a lock as familiar ones, and the failures counted against the old
/// password are forgotten.
pub(super) async fn note_credential_change(
    txn: &DatabaseTransaction,
    user_id: UserId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    credential_change::Entity::insert(credential_change::ActiveModel {
        user_id: Set(user_id.to_string()),
        changed_at: Set(micros(now)),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(credential_change::Column::UserId)
            .update_column(credential_change::Column::ChangedAt)
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .map_err(store)?;
    login_throttle::Entity::delete_by_id(user_id.to_string())
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

/// Replaces `user`'s password hash, clears their login throttle and ends every live session of
/// theirs but `keep`, in `txn`; returns how many sessions it ended. `NotFound` for an unknown
/// user.
pub(super) async fn replace_password(
    txn: &DatabaseTransaction,
    user_id: UserId,
    hash: &str,
    keep: Option<SessionId>,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    write_password_hash(txn, user_id, hash).await?;
    note_credential_change(txn, user_id, now).await?;
    super::password_reset::retire_links(txn, user_id, now).await?;
    // A sign-in half done with the old password (waiting for its second factor) ends too.
    login_challenge::Entity::delete_many()
        .filter(login_challenge::Column::UserId.eq(user_id.to_string()))
        .exec(txn)
        .await
        .map_err(store)?;
    end_sessions_but(txn, user_id, keep, now).await
}

/// Ends every live session of `user_id` but `keep`, in `txn`; returns how many.
pub(crate) async fn end_sessions_but(
    txn: &DatabaseTransaction,
    user_id: UserId,
    keep: Option<SessionId>,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    let mut end = session::Entity::update_many()
        .col_expr(session::Column::EndedAt, Expr::value(micros(now)))
        .filter(session::Column::UserId.eq(user_id.to_string()))
        .filter(session::Column::EndedAt.is_null());
    if let Some(k) = keep {
        end = end.filter(session::Column::Id.ne(k.to_string()));
    }
    Ok(end.exec(txn).await.map_err(store)?.rows_affected)
}

pub(crate) async fn commit(txn: DatabaseTransaction, journal: Journal) -> Result<(), TenancyError> {
    crate::journal::finish(txn, journal, 0)
        .await
        .map_err(store)?;
    Ok(())
}

async fn update_org_column<C: ConnectionTrait>(
    db: &C,
    org: OrgId,
    col: organization::Column,
    value: String,
) -> Result<(), TenancyError> {
    let res = organization::Entity::update_many()
        .col_expr(col, Expr::value(value))
        .filter(organization::Column::Id.eq(org.to_string()))
        .exec(db)
        .await
        .map_err(store)?;
    if res.rows_affected == 0 {
        return Err(TenancyError::NotFound("organization"));
    }
    Ok(())
}

#[async_trait]
impl OrgStore for SeaStore {
    async fn member_count(&self, org: OrgId) -> Result<u64, TenancyError> {
        membership::Entity::find()
            .filter(membership::Column::OrgId.eq(org.to_string()))
            .count(self.reader())
            .await
            .map_err(store)
    }

    async fn create_org(
        &self,
        org: &Organization,
        default_team: &Team,
        owner: &User,
        owner_password_hash: Option<&str>,
        max_owned: Option<usize>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // An existing account joins as the Owner: under its lock, as every join (a rename or an
        // erasure of it takes turns with this), and only while it is not erased.
        if owner_password_hash.is_none() {
            lock_joining_account(&txn, owner).await?;
        }
        if let Some(max) = max_owned {
            let owned = membership::Entity::find()
                .filter(membership::Column::UserId.eq(owner.id.to_string()))
                .filter(membership::Column::Role.eq(OrgRole::Owner.as_str()))
                .count(&txn)
                .await
                .map_err(store)?;
            let owned = usize::try_from(owned).unwrap_or(usize::MAX);
            if owned >= max {
                return Err(tenancy::orgs::too_many_owned(owned));
            }
        }
        if let Some(hash) = owner_password_hash {
            insert_user(&txn, owner, Some(hash)).await?;
        }
        organization::Entity::insert(organization::ActiveModel {
            id: Set(org.id.to_string()),
            name: Set(org.name.clone()),
            plan: Set(org.plan.as_str().to_owned()),
            profile: Set(to_json(&org.profile)?),
            access: Set(to_json(&org.access)?),
            security: Set(to_json(&org.security)?),
            created_at: Set(micros(org.created_at)),
            lock_version: Set(0),
            audit_archived_at: Set(None),
            limit_overrides: Set(None),
            limit_overrides_plan: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        team::Entity::insert(team::ActiveModel {
            id: Set(default_team.id.to_string()),
            org_id: Set(org.id.to_string()),
            name: Set(default_team.name.clone()),
            is_default: Set(true),
            created_at: Set(micros(default_team.created_at)),
            archived_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        insert_membership(
            &txn,
            org.id,
            owner,
            OrgRole::Owner,
            default_team.id,
            TeamRole::Admin,
            org.created_at,
        )
        .await?;
        commit(txn, journal).await
    }

    async fn add_member(
        &self,
        org: OrgId,
        new: &User,
        new_password_hash: Option<&str>,
        org_role: OrgRole,
        team_id: TeamId,
        team_role: TeamRole,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        if new_password_hash.is_none() {
            lock_joining_account(&txn, new).await?;
        }
        lock_org(&txn, org).await?;
        check_seat(&txn, org, limits, new.created_at, Some(&new.email)).await?;
        if let Some(hash) = new_password_hash {
            insert_user(&txn, new, Some(hash)).await?;
        }
        insert_membership(&txn, org, new, org_role, team_id, team_role, new.created_at).await?;
        settle_invitations(&txn, org, new).await?;
        commit(txn, journal).await
    }

    async fn count_orgs(&self) -> Result<u64, TenancyError> {
        organization::Entity::find()
            .count(self.db())
            .await
            .map_err(store)
    }

    async fn delete_org(
        &self,
        org: OrgId,
        by: UserId,
        journal: Journal,
    ) -> Result<Vec<ResourceId>, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, org).await?;
        let owner = membership::Entity::find_by_id((org.to_string(), by.to_string()))
            .one(&txn)
            .await
            .map_err(store)?;
        if owner.is_none_or(|m| m.role != OrgRole::Owner.as_str()) {
            return Err(TenancyError::Conflict(
                "only the Owner deletes the organization".into(),
            ));
        }
        let id = org.to_string();
        // The parents other writers lock before their children, in key order, before any
        // child row is touched (see ARCHITECTURE, lock order): a webhook attempt's batch holds
        // the endpoint before its deliveries, a credit posting the team before its account.
        // They finish first, and what they wrote is deleted below, or wait and find nothing.
        crate::entity::webhook_endpoint::Entity::find()
            .filter(crate::entity::webhook_endpoint::Column::OrgId.eq(id.clone()))
            .order_by_asc(crate::entity::webhook_endpoint::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(store)?;
        crate::entity::team::Entity::find()
            .filter(crate::entity::team::Column::OrgId.eq(id.clone()))
            .order_by_asc(crate::entity::team::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(store)?;
        let documents = crate::entity::asset::Entity::find()
            .select_only()
            .column(crate::entity::asset::Column::Id)
            .filter(crate::entity::asset::Column::OrgId.eq(id.clone()))
            .filter(
                crate::entity::asset::Column::Kind
                    .eq(tenancy::assets::AssetKind::Document.as_str()),
            )
            .into_tuple::<String>()
            .all(&txn)
            .await
            .map_err(store)?
            .iter()
            .map(|d| crate::convert::id("document id", d))
            .collect::<Result<Vec<ResourceId>, _>>()
            .map_err(TenancyError::Store)?;
        delete_org_rows(&txn, &id).await.map_err(store)?;
        organization::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(store)?;
        commit(txn, journal).await?;
        Ok(documents)
    }

    async fn get_org(&self, org: OrgId) -> Result<Organization, TenancyError> {
        let m = self
            .fetch_one(organization::Entity::find_by_id(org.to_string()))
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("organization"))?;
        Ok(Organization::try_from(m)?)
    }

    async fn update_profile(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &CompanyProfile,
        profile: &CompanyProfile,
        rename: Option<(&str, &str)>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        if by.is_some() {
            lock_org(&txn, org).await?;
            super::members::check_acting(&txn, org, by).await?;
        }
        let mut update = organization::Entity::update_many()
            .col_expr(
                organization::Column::Profile,
                Expr::value(to_json(profile)?),
            )
            .filter(organization::Column::Id.eq(org.to_string()))
            .filter(organization::Column::Profile.eq(to_json(expected)?));
        if let Some((was, name)) = rename {
            update = update
                .col_expr(organization::Column::Name, Expr::value(name))
                .filter(organization::Column::Name.eq(was));
        }
        let res = update.exec(&txn).await.map_err(store)?;
        if res.rows_affected == 0 {
            txn.rollback().await.map_err(store)?;
            self.get_org(org).await?;
            return Err(TenancyError::Conflict(
                "the company profile changed meanwhile; reload and try again".into(),
            ));
        }
        commit(txn, journal).await
    }

    async fn update_access(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &FeatureAccess,
        access: &FeatureAccess,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, org).await?;
        super::members::check_acting(&txn, org, by).await?;
        let row = organization::Entity::find_by_id(org.to_string())
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("organization"))?;
        // Compared as values, as the security settings are.
        let current: FeatureAccess = crate::convert::json("feature access", &row.access)?;
        if current != *expected {
            return Err(TenancyError::Conflict(
                "the feature-access settings changed meanwhile; reload and try again".into(),
            ));
        }
        update_org_column(&txn, org, organization::Column::Access, to_json(access)?).await?;
        commit(txn, journal).await
    }

    async fn update_security(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &SecuritySettings,
        security: &SecuritySettings,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, org).await?;
        super::members::check_acting(&txn, org, by).await?;
        if let Some(by) = by
            && security.audit_retention_days != expected.audit_retention_days
        {
            let role = membership::Entity::find_by_id((org.to_string(), by.to_string()))
                .one(&txn)
                .await
                .map_err(store)?
                .filter(|m| m.deactivated_at.is_none())
                .and_then(|m| OrgRole::parse(&m.role));
            if role != Some(OrgRole::Owner) {
                return Err(tenancy::security::retention_refused(role));
            }
        }
        let row = organization::Entity::find_by_id(org.to_string())
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("organization"))?;
        // Compared as values, so settings stored by an older version still match.
        let current: SecuritySettings = crate::convert::json("security settings", &row.security)?;
        if current != *expected {
            return Err(TenancyError::Conflict(
                "the security settings changed meanwhile; reload and try again".into(),
            ));
        }
        update_org_column(
            &txn,
            org,
            organization::Column::Security,
            to_json(security)?,
        )
        .await?;
        commit(txn, journal).await
    }

    async fn set_limit_overrides(
        &self,
        org: OrgId,
        overrides: &billing_limits::LimitOverrides,
        for_plan: billing_limits::Plan,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let value = (!overrides.0.is_empty())
            .then(|| to_json(overrides))
            .transpose()?;
        let made_for = value.as_ref().map(|_| for_plan.as_str().to_owned());
        // Only while the organization is still on the plan the deal is for.
        let res = organization::Entity::update_many()
            .col_expr(organization::Column::LimitOverrides, Expr::value(value))
            .col_expr(
                organization::Column::LimitOverridesPlan,
                Expr::value(made_for),
            )
            .filter(organization::Column::Id.eq(org.to_string()))
            .filter(organization::Column::Plan.eq(for_plan.as_str()))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(
                if exists::<organization::Entity>(&txn, org.to_string()).await? {
                    tenancy::orgs::plan_changed_under_deal()
                } else {
                    TenancyError::NotFound("organization")
                },
            );
        }
        commit(txn, journal).await
    }

    async fn default_team(&self, org: OrgId) -> Result<Team, TenancyError> {
        let m = team::Entity::find()
            .filter(team::Column::OrgId.eq(org.to_string()))
            .filter(team::Column::IsDefault.eq(true))
            .one(self.db())
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("team"))?;
        Ok(Team::try_from(m)?)
    }

    async fn list_members(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<Member>, TenancyError> {
        members_page(self, org, sea_orm::Condition::all(), after, limit).await
    }

    async fn admins(&self, org: OrgId) -> Result<Vec<Member>, TenancyError> {
        let role = || {
            sea_orm::Condition::all().add(
                membership::Column::Role.is_in([OrgRole::Owner.as_str(), OrgRole::Admin.as_str()]),
            )
        };
        let mut admins: Vec<Member> = Vec::new();
        loop {
            let after = admins.last().map(|m| m.user.id);
            let page = members_page(self, org, role(), after, 500).await?;
            let full = page.len() == 500;
            admins.extend(page);
            if !full {
                return Ok(admins);
            }
        }
    }

    async fn list_members_seen_by(
        &self,
        org: OrgId,
        me: UserId,
        teams: &[TeamId],
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<Member>, TenancyError> {
        let in_teams = sea_orm::sea_query::Query::select()
            .column(team_member::Column::UserId)
            .from(team_member::Entity)
            .and_where(team_member::Column::OrgId.eq(org.to_string()))
            .and_where(team_member::Column::TeamId.is_in(teams.iter().map(ToString::to_string)))
            .to_owned();
        let seen = sea_orm::Condition::any()
            .add(membership::Column::UserId.eq(me.to_string()))
            .add(membership::Column::Role.is_in([OrgRole::Owner.as_str(), OrgRole::Admin.as_str()]))
            .add(membership::Column::AllTeamsRole.is_not_null())
            .add(membership::Column::UserId.in_subquery(in_teams));
        members_page(self, org, seen, after, limit).await
    }

    async fn get_member(
        &self,
        org: OrgId,
        user_id: UserId,
    ) -> Result<Option<Member>, TenancyError> {
        let row = self
            .fetch_one(
                membership::Entity::find_by_id((org.to_string(), user_id.to_string()))
                    .find_also_related(user::Entity),
            )
            .await
            .map_err(store)?;
        let Some((m, Some(u))) = row else {
            return Ok(None);
        };
        Ok(Some(member(org, &m, u)?))
    }

    async fn team_roles(
        &self,
        org: OrgId,
        user_id: UserId,
    ) -> Result<Vec<(TeamId, TeamRole)>, TenancyError> {
        let rows = self
            .fetch_all(
                team_member::Entity::find()
                    .filter(team_member::Column::OrgId.eq(org.to_string()))
                    .filter(team_member::Column::UserId.eq(user_id.to_string())),
            )
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(|r| {
                let t = id("team id", &r.team_id)?;
                let role = TeamRole::parse(&r.role)
                    .ok_or_else(|| crate::convert::corrupt("team role", &r.role))?;
                Ok((t, role))
            })
            .collect::<Result<_, audit::StoreError>>()
            .map_err(TenancyError::Store)
    }

    async fn memberships(&self, user_id: UserId) -> Result<Vec<Membership>, TenancyError> {
        let rows = self
            .fetch_all(
                membership::Entity::find()
                    .filter(membership::Column::UserId.eq(user_id.to_string()))
                    .order_by_asc(membership::Column::OrgId),
            )
            .await
            .map_err(store)?;
        let mut out = Vec::with_capacity(rows.len());
        for m in rows {
            let org: OrgId = id("organization id", &m.org_id)?;
            let name = self
                .fetch_one(organization::Entity::find_by_id(m.org_id.clone()))
                .await
                .map_err(store)?
                .map(|o| o.name)
                .unwrap_or_default();
            out.push(Membership {
                org,
                org_name: name,
                role: role(&m.role)?,
                teams: self.team_roles(org, user_id).await?,
                all_teams: crate::convert::all_teams_role(m.all_teams_role.as_deref())?,
                active: m.deactivated_at.is_none(),
            });
        }
        Ok(out)
    }

    async fn member_orgs(&self, user_id: UserId) -> Result<Vec<Organization>, TenancyError> {
        let of_user = sea_orm::sea_query::Query::select()
            .column(membership::Column::OrgId)
            .from(membership::Entity)
            .and_where(membership::Column::UserId.eq(user_id.to_string()))
            .to_owned();
        self.fetch_all(
            organization::Entity::find()
                .filter(organization::Column::Id.in_subquery(of_user))
                .order_by_asc(organization::Column::Id),
        )
        .await
        .map_err(store)?
        .into_iter()
        .map(|m| Organization::try_from(m).map_err(TenancyError::Store))
        .collect()
    }

    async fn caller_memberships(
        &self,
        user_id: UserId,
    ) -> Result<Vec<CallerMembership>, TenancyError> {
        // One row per (organization, team role), organizations without team roles once.
        let rows = self
            .fetch_all(
                membership::Entity::find()
                    .filter(membership::Column::UserId.eq(user_id.to_string()))
                    .find_also_related(organization::Entity)
                    .find_also_related(team_member::Entity)
                    .order_by_asc(membership::Column::OrgId),
            )
            .await
            .map_err(store)?;
        caller_memberships(rows)
    }
}

/// Folds rows of (membership, its organization, one of the person's team roles there), in
/// organization order, into one [`CallerMembership`] per organization.
fn caller_memberships(
    rows: impl IntoIterator<
        Item = (
            membership::Model,
            Option<organization::Model>,
            Option<team_member::Model>,
        ),
    >,
) -> Result<Vec<CallerMembership>, TenancyError> {
    let mut out: Vec<CallerMembership> = Vec::new();
    let mut current: Option<String> = None;
    for (m, o, t) in rows {
        let Some(o) = o else { continue };
        let team = t
            .map(|t| -> Result<_, audit::StoreError> {
                let role = TeamRole::parse(&t.role)
                    .ok_or_else(|| crate::convert::corrupt("team role", &t.role))?;
                Ok((id("team id", &t.team_id)?, role))
            })
            .transpose()
            .map_err(TenancyError::Store)?;
        if current.as_deref() != Some(m.org_id.as_str()) {
            current = Some(m.org_id.clone());
            out.push(CallerMembership {
                org: Organization::try_from(o).map_err(TenancyError::Store)?,
                role: role(&m.role).map_err(TenancyError::Store)?,
                joined_at: crate::convert::time(m.joined_at).map_err(TenancyError::Store)?,
                deactivated_at: m
                    .deactivated_at
                    .map(crate::convert::time)
                    .transpose()
                    .map_err(TenancyError::Store)?,
                teams: Vec::new(),
                all_teams: crate::convert::all_teams_role(m.all_teams_role.as_deref())
                    .map_err(TenancyError::Store)?,
            });
        }
        if let (Some(team), Some(last)) = (team, out.last_mut()) {
            last.teams.push(team);
        }
    }
    for m in &mut out {
        m.teams.sort_by_key(|(t, _)| *t);
    }
    Ok(out)
}

/// One query for a session and everything about its person that resolving a request reads.
#[async_trait]
impl TenancyStore for SeaStore {
    /// Written shortly after, with other sessions' activity (`activity::ActivityBuffer`).
    async fn note_activity(&self, s: SessionId, now: DateTime<Utc>) -> Result<(), TenancyError> {
        self.note_session_activity(s, now);
        Ok(())
    }

    async fn session_caller(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Session, User, Vec<CallerMembership>)>, TenancyError> {
        type Row = sea_orm::SelectFiveModel<
            session::Model,
            user::Model,
            membership::Model,
            organization::Model,
            team_member::Model,
        >;
        let backend = self.reader().get_database_backend();
        let stmt = sea_orm::Statement::from_sql_and_values(
            backend,
            session_caller_sql(backend),
            [token_hash.into()],
        );
        let rows = self.fetch_rows::<Row>(stmt).await.map_err(store)?;
        let Some((s, Some(u), ..)) = rows.first() else {
            return Ok(None);
        };
        let session = self.with_noted_activity(Session::try_from(s.clone())?);
        let user = User::try_from(u.clone())?;
        let memberships = caller_memberships(
            rows.into_iter()
                .filter_map(|(_, _, m, o, t)| m.map(|m| (m, o, t))),
        )?;
        Ok(Some((session, user, memberships)))
    }
}

/// The SQL of [`TenancyStore::session_caller`]'s query for `backend`, built once: the session
/// by token hash (its one parameter) with its account, and every membership of the person with
/// its organization and team roles, one row per (membership, team role); a person in no
/// organization gives one row without a membership. Building and dropping this five-table
/// query's syntax tree on every request cost about 6 % of the server's CPU under a read load.
fn session_caller_sql(backend: sea_orm::DatabaseBackend) -> String {
    static SQL: [std::sync::OnceLock<String>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let slot = usize::from(backend == sea_orm::DatabaseBackend::Postgres);
    SQL[slot]
        .get_or_init(|| session_caller_statement(backend, "").sql)
        .clone()
}

/// [`session_caller_sql`]'s query, built for `token_hash`.
pub(crate) fn session_caller_statement(
    backend: sea_orm::DatabaseBackend,
    token_hash: &str,
) -> sea_orm::Statement {
    use sea_orm::QueryTrait;
    session::Entity::find()
        .filter(session::Column::TokenHash.eq(token_hash))
        .filter(session::Column::EndedAt.is_null())
        .find_also_related(user::Entity)
        .find_also(user::Entity, membership::Entity)
        .find_also(membership::Entity, organization::Entity)
        .find_also(membership::Entity, team_member::Entity)
        .order_by_asc(membership::Column::OrgId)
        .build(backend)
}

/// One keyset page of `org`'s API keys matching `cond`, by id.
async fn api_keys_page(
    store_: &SeaStore,
    org: OrgId,
    cond: sea_orm::Condition,
    after: Option<ApiKeyId>,
    limit: u32,
) -> Result<Vec<ApiKey>, TenancyError> {
    let mut q = api_key::Entity::find()
        .filter(api_key::Column::OrgId.eq(org.to_string()))
        .filter(cond);
    if let Some(a) = after {
        q = q.filter(api_key::Column::Id.gt(a.to_string()));
    }
    let rows = q
        .order_by_asc(api_key::Column::Id)
        .limit(u64::from(limit))
        .all(store_.db())
        .await
        .map_err(store)?;
    rows.into_iter()
        .map(ApiKey::try_from)
        .collect::<Result<_, _>>()
        .map_err(TenancyError::Store)
}

/// One keyset page of `org`'s members matching `cond`, by user id.
async fn members_page(
    store_: &SeaStore,
    org: OrgId,
    cond: sea_orm::Condition,
    after: Option<UserId>,
    limit: u32,
) -> Result<Vec<Member>, TenancyError> {
    let mut q = membership::Entity::find()
        .filter(membership::Column::OrgId.eq(org.to_string()))
        .filter(cond);
    if let Some(a) = after {
        q = q.filter(membership::Column::UserId.gt(a.to_string()));
    }
    let rows = store_
        .fetch_all(
            q.order_by_asc(membership::Column::UserId)
                .limit(u64::from(limit))
                .find_also_related(user::Entity),
        )
        .await
        .map_err(store)?;
    // A membership always has its account (foreign key); one without would be left out.
    rows.into_iter()
        .filter_map(|(m, u)| u.map(|u| member(org, &m, u)))
        .collect::<Result<_, audit::StoreError>>()
        .map_err(TenancyError::Store)
}

pub(super) fn member(
    org: OrgId,
    m: &membership::Model,
    u: user::Model,
) -> Result<Member, audit::StoreError> {
    Ok(Member {
        org,
        user: User::try_from(u)?,
        role: role(&m.role)?,
        joined_at: crate::convert::time(m.joined_at)?,
        deactivated_at: m.deactivated_at.map(crate::convert::time).transpose()?,
        all_teams: crate::convert::all_teams_role(m.all_teams_role.as_deref())?,
    })
}

#[async_trait]
impl AccountStore for SeaStore {
    async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, TenancyError> {
        let Some(m) = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(self.db())
            .await
            .map_err(store)?
        else {
            return Ok(None);
        };
        let hash = m.password_hash.clone();
        Ok(Some((User::try_from(m)?, hash)))
    }

    async fn get_user(&self, user_id: UserId) -> Result<Option<User>, TenancyError> {
        let m = self
            .fetch_one(user::Entity::find_by_id(user_id.to_string()))
            .await
            .map_err(store)?;
        m.map(User::try_from)
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn rename_user(
        &self,
        user_id: UserId,
        expected: &str,
        name: &str,
        orgs: &[OrgId],
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The update takes the account's lock, which a join and a removal take too
        // (`lock_user`): the memberships read after it stay as read until the commit.
        let res = user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value(name))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .filter(user::Column::Name.eq(expected))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(
                if exists::<user::Entity>(&txn, user_id.to_string()).await? {
                    TenancyError::Conflict(
                        "the name changed meanwhile; reload and try again".into(),
                    )
                } else {
                    TenancyError::NotFound("user")
                },
            );
        }
        let mut now_in: Vec<String> = membership::Entity::find()
            .select_only()
            .column(membership::Column::OrgId)
            .filter(membership::Column::UserId.eq(user_id.to_string()))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(store)?;
        let mut expected: Vec<String> = orgs.iter().map(ToString::to_string).collect();
        now_in.sort();
        expected.sort();
        if now_in != expected {
            return Err(tenancy::me::organizations_changed());
        }
        commit(txn, journal).await
    }

    async fn set_password_hash(
        &self,
        user_id: UserId,
        replacing: &str,
        hash: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .filter(user::Column::PasswordHash.eq(replacing))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return if exists::<user::Entity>(&txn, user_id.to_string()).await? {
                Ok(false)
            } else {
                Err(TenancyError::NotFound("user"))
            };
        }
        commit(txn, journal).await?;
        Ok(true)
    }

    async fn change_password_hash(
        &self,
        user_id: UserId,
        hash: &str,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
        records: tenancy::SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let ended = replace_password(&txn, user_id, hash, keep, now).await?;
        commit(txn, records(ended)).await?;
        Ok(ended)
    }

    async fn end_sessions_in(
        &self,
        org: OrgId,
        user_id: UserId,
        by: Option<UserId>,
        now: DateTime<Utc>,
        records: tenancy::SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The account's lock, as a join or a removal takes it: the memberships read here stay
        // as they are until the commit. Then the organization's, which role changes and
        // transfers take: the author's standing and the person's role hold until the commit.
        lock_user(&txn, user_id).await?;
        lock_org(&txn, org).await?;
        super::members::check_acting(&txn, org, by).await?;
        let uid = user_id.to_string();
        // Only a member of `org` is signed out of it (read under the same lock).
        let Some(target) = membership::Entity::find_by_id((org.to_string(), uid.clone()))
            .one(&txn)
            .await
            .map_err(store)?
        else {
            return Err(TenancyError::NotFound("member"));
        };
        if let Some(by) = by
            && by != user_id
            && target.role == OrgRole::Owner.as_str()
        {
            return Err(tenancy::members::owner_sign_out_refused(OrgRole::Admin));
        }
        let (n, _) = sign_out_in(&txn, org, &uid, now).await?;
        commit(txn, records(n)).await?;
        Ok(n)
    }

    async fn create_session(
        &self,
        s: &Session,
        token_hash: &str,
        max_live: u32,
        proof: tenancy::SessionProof,
        records: tenancy::SessionsEvictedJournal<'_>,
    ) -> Result<Vec<SessionId>, TenancyError> {
        if !self.writes_on_a_thread() {
            return self
                .create_session_with(s, token_hash, max_live, proof, move |ids| {
                    std::future::ready(Some(records(&ids)))
                })
                .await;
        }
        // On the writer's thread, which cannot call `records` (it borrows from the caller). The
        // usual sign-in ends no session, and its journal is made here beforehand; one that ends
        // some hands them back to the caller and waits for their journal (a few seconds at most,
        // holding the writer): one round trip to the caller instead of one per statement.
        let no_eviction = records(&[]);
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<Vec<SessionId>>();
        let (journal_tx, journal_rx) = tokio::sync::oneshot::channel::<Journal>();
        let (this, session, hash) = (self.clone(), s.clone(), token_hash.to_owned());
        let work = self.on_writer(async move {
            this.create_session_with(&session, &hash, max_live, proof, move |ids| async move {
                if ids.is_empty() {
                    return Some(no_eviction);
                }
                ended_tx.send(ids).ok()?;
                tokio::time::timeout(HAND_BACK, journal_rx).await.ok()?.ok()
            })
            .await
        });
        let hand = async move {
            if let Ok(ids) = ended_rx.await {
                let _ = journal_tx.send(records(&ids));
            }
        };
        let (created, ()) = tokio::join!(work, hand);
        created
    }

    async fn find_session(&self, token_hash: &str) -> Result<Option<Session>, TenancyError> {
        let m = self
            .fetch_one(
                session::Entity::find()
                    .filter(session::Column::TokenHash.eq(token_hash))
                    .filter(session::Column::EndedAt.is_null()),
            )
            .await
            .map_err(store)?;
        m.map(|m| Session::try_from(m).map(|s| self.with_noted_activity(s)))
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn session_with_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Session, User)>, TenancyError> {
        let row = self
            .fetch_one(
                session::Entity::find()
                    .filter(session::Column::TokenHash.eq(token_hash))
                    .filter(session::Column::EndedAt.is_null())
                    .find_also_related(user::Entity),
            )
            .await
            .map_err(store)?;
        let Some((s, Some(u))) = row else {
            return Ok(None);
        };
        Ok(Some((
            self.with_noted_activity(Session::try_from(s)?),
            User::try_from(u)?,
        )))
    }

    async fn touch_session(&self, s: SessionId, now: DateTime<Utc>) -> Result<(), TenancyError> {
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, Expr::value(micros(now)))
            .filter(session::Column::Id.eq(s.to_string()))
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(())
    }

    async fn end_session(
        &self,
        user_id: UserId,
        s: SessionId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Expr::value(micros(now)))
            .filter(session::Column::Id.eq(s.to_string()))
            .filter(session::Column::UserId.eq(user_id.to_string()))
            .filter(session::Column::EndedAt.is_null())
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("session"));
        }
        commit(txn, journal).await
    }

    async fn login_throttle(
        &self,
        user_id: UserId,
    ) -> Result<Option<security_policy::ThrottleState>, TenancyError> {
        read_login_throttle(self.db(), user_id).await
    }

    async fn set_login_throttle(
        &self,
        user_id: UserId,
        state: Option<&security_policy::ThrottleState>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        put_login_throttle(&txn, user_id, state).await?;
        commit(txn, journal).await
    }

    async fn count_login_failure(
        &self,
        user_id: UserId,
        policy: &security_policy::LoginThrottlePolicy,
        now: DateTime<Utc>,
        from_familiar_address: bool,
        journal: Journal,
    ) -> Result<security_policy::ThrottleState, TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_user(&txn, user_id).await?;
        let current = read_login_throttle(&txn, user_id).await?;
        let next = security_policy::after_failure_from(
            policy,
            current.as_ref(),
            now,
            from_familiar_address,
        );
        put_login_throttle(&txn, user_id, Some(&next)).await?;
        commit(txn, journal).await?;
        Ok(next)
    }

    async fn last_sign_in(
        &self,
        users: &[UserId],
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, TenancyError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // On the member list's path: read like the list itself (`fetch_values`), not through
        // sqlx's reader pool.
        self.fetch_values::<(String, i64)>(
            session::Entity::find()
                .select_only()
                .column(session::Column::UserId)
                .column_as(session::Column::CreatedAt.max(), "seen")
                .filter(session::Column::UserId.is_in(users.iter().map(ToString::to_string)))
                .group_by(session::Column::UserId),
        )
        .await
        .map_err(store)?
        .into_iter()
        .map(|(user, seen)| {
            Ok((
                crate::convert::id("user id", &user)?,
                crate::convert::time(seen)?,
            ))
        })
        .collect()
    }

    async fn sign_in_addresses(
        &self,
        user_id: UserId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, TenancyError> {
        let changed = credential_change::Entity::find_by_id(user_id.to_string())
            .one(self.db())
            .await
            .map_err(store)?
            .map_or(i64::MIN, |c| c.changed_at);
        // Each address once, by its latest sign-in: a person who signs in often from one place
        // does not push the others out of the limit.
        let rows: Vec<(String, i64)> = session::Entity::find()
            .select_only()
            .column(session::Column::Ip)
            .column_as(session::Column::CreatedAt.max(), "latest")
            .filter(session::Column::UserId.eq(user_id.to_string()))
            .filter(session::Column::CreatedAt.gte(Ord::max(micros(since), changed)))
            .group_by(session::Column::Ip)
            .order_by_desc(Expr::col(sea_orm::sea_query::Alias::new("latest")))
            .order_by_asc(session::Column::Ip)
            .limit(u64::from(limit))
            .into_tuple()
            .all(self.db())
            .await
            .map_err(store)?;
        Ok(rows.into_iter().map(|(ip, _)| ip).collect())
    }

    async fn list_sessions_page(
        &self,
        user_id: UserId,
        before: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, TenancyError> {
        let mut page = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id.to_string()))
            .filter(session::Column::EndedAt.is_null());
        if let Some(before) = before {
            let Some(cursor) = self
                .fetch_one(
                    session::Entity::find_by_id(before.to_string())
                        .filter(session::Column::UserId.eq(user_id.to_string())),
                )
                .await
                .map_err(store)?
            else {
                return Err(TenancyError::NotFound("session"));
            };
            page = page.filter(
                sea_orm::Condition::any()
                    .add(session::Column::CreatedAt.lt(cursor.created_at))
                    .add(
                        sea_orm::Condition::all()
                            .add(session::Column::CreatedAt.eq(cursor.created_at))
                            .add(session::Column::Id.lt(cursor.id)),
                    ),
            );
        }
        let rows = self
            .fetch_all(
                page.order_by_desc(session::Column::CreatedAt)
                    .order_by_desc(session::Column::Id)
                    .limit(u64::from(limit)),
            )
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(|m| Session::try_from(m).map(|s| self.with_noted_activity(s)))
            .collect::<Result<_, _>>()
            .map_err(TenancyError::Store)
    }
}

#[async_trait]
impl ApiKeyStore for SeaStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &str,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, key.org).await?;
        let used = api_key::Entity::find()
            .filter(api_key::Column::OrgId.eq(key.org.to_string()))
            .filter(api_key::Column::RevokedAt.is_null())
            .count(&txn)
            .await
            .map_err(store)?;
        tenancy::enforce_quota(billing_limits::check_quota(
            &limits_in_force(&txn, key.org, limits).await?,
            billing_limits::Limit::ApiKeys,
            used,
            1,
        ))?;
        // The team, as it is now (held until the commit): an archiving committed since the
        // service looked refuses the key.
        match super::workspace::team_row(&txn, key.org, key.team).await? {
            None => return Err(TenancyError::NotFound("team")),
            Some(t) if t.archived_at.is_some() => {
                return Err(tenancy::teams::archived(
                    &t.name,
                    "no new API key is made for it",
                ));
            }
            Some(_) => {}
        }
        // Its creator is still an active member: a removal or deactivation that committed since
        // the service looked revoked the keys it found, and must not be outlived by this one.
        let creator =
            membership::Entity::find_by_id((key.org.to_string(), key.created_by.to_string()))
                .one(&txn)
                .await
                .map_err(store)?;
        if creator.is_none_or(|m| m.deactivated_at.is_some()) {
            return Err(TenancyError::NotFound("member"));
        }
        api_key::Entity::insert(api_key::ActiveModel {
            id: Set(key.id.to_string()),
            org_id: Set(key.org.to_string()),
            team_id: Set(key.team.to_string()),
            scope: Set(key.scope.as_str().to_owned()),
            created_by: Set(key.created_by.to_string()),
            name: Set(key.name.clone()),
            prefix: Set(key.prefix.clone()),
            secret_hash: Set(secret_hash.to_owned()),
            created_at: Set(micros(key.created_at)),
            last_used_at: Set(None),
            revoked_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        commit(txn, journal).await
    }

    async fn find_api_key(&self, secret_hash: &str) -> Result<Option<ApiKey>, TenancyError> {
        let m = self
            .fetch_one(
                api_key::Entity::find()
                    .filter(api_key::Column::SecretHash.eq(secret_hash))
                    .filter(api_key::Column::RevokedAt.is_null()),
            )
            .await
            .map_err(store)?;
        m.map(ApiKey::try_from)
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn get_api_key(&self, org: OrgId, key: ApiKeyId) -> Result<Option<ApiKey>, TenancyError> {
        let m = api_key::Entity::find_by_id(key.to_string())
            .filter(api_key::Column::OrgId.eq(org.to_string()))
            .one(self.db())
            .await
            .map_err(store)?;
        m.map(ApiKey::try_from)
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn list_api_keys(
        &self,
        org: OrgId,
        created_by: Option<UserId>,
        after: Option<ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, TenancyError> {
        let mut cond = sea_orm::Condition::all();
        if let Some(u) = created_by {
            cond = cond.add(api_key::Column::CreatedBy.eq(u.to_string()));
        }
        api_keys_page(self, org, cond, after, limit).await
    }

    async fn active_api_key_count(&self, org: OrgId) -> Result<u64, TenancyError> {
        api_key::Entity::find()
            .filter(api_key::Column::OrgId.eq(org.to_string()))
            .filter(api_key::Column::RevokedAt.is_null())
            .count(self.reader())
            .await
            .map_err(store)
    }

    async fn list_api_keys_seen_by(
        &self,
        org: OrgId,
        me: UserId,
        own_in: Option<&[TeamId]>,
        all_in: &[TeamId],
        after: Option<ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, TenancyError> {
        let mut own = sea_orm::Condition::all().add(api_key::Column::CreatedBy.eq(me.to_string()));
        if let Some(teams) = own_in {
            own = own.add(api_key::Column::TeamId.is_in(teams.iter().map(ToString::to_string)));
        }
        let seen = sea_orm::Condition::any()
            .add(own)
            .add(api_key::Column::TeamId.is_in(all_in.iter().map(ToString::to_string)));
        api_keys_page(self, org, seen, after, limit).await
    }

    async fn revoke_api_key(
        &self,
        org: OrgId,
        key: ApiKeyId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(micros(now)))
            .filter(api_key::Column::Id.eq(key.to_string()))
            .filter(api_key::Column::OrgId.eq(org.to_string()))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("API key"));
        }
        commit(txn, journal).await
    }

    async fn touch_api_key(&self, key: ApiKeyId, now: DateTime<Utc>) -> Result<(), TenancyError> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(micros(now)))
            .filter(api_key::Column::Id.eq(key.to_string()))
            .exec(self.db())
            .await
            .map_err(store)?;
        Ok(())
    }
}

/// How long a sign-in's transaction on the writer's thread waits for its caller to make the
/// journal of the sessions it ends, holding SQLite's one writer; then it rolls back.
const HAND_BACK: std::time::Duration = std::time::Duration::from_secs(5);

impl SeaStore {
    /// [`AccountStore::create_session`] with the journal of the sessions it ends from
    /// `journal_for` (`None`: the caller stopped waiting, and nothing is written).
    async fn create_session_with<F, Fut>(
        &self,
        s: &Session,
        token_hash: &str,
        max_live: u32,
        proof: tenancy::SessionProof,
        journal_for: F,
    ) -> Result<Vec<SessionId>, TenancyError>
    where
        F: FnOnce(Vec<SessionId>) -> Fut + Send,
        Fut: std::future::Future<Output = Option<Journal>> + Send,
    {
        let txn = self.db().begin().await.map_err(store)?;
        // The activation of a second factor takes this lock too: it ends the sessions stored
        // before it, and those stored after it are checked here.
        lock_user(&txn, s.user).await?;
        if proof == tenancy::SessionProof::Password {
            let second_factor = crate::entity::user_mfa::Entity::find()
                .filter(crate::entity::user_mfa::Column::UserId.eq(s.user.to_string()))
                .filter(crate::entity::user_mfa::Column::EnabledAt.is_not_null())
                .count(&txn)
                .await
                .map_err(store)?;
            if second_factor > 0 {
                txn.rollback().await.map_err(store)?;
                return Err(TenancyError::SecondFactorEnabled);
            }
        }
        let live = session::Entity::find()
            .filter(session::Column::UserId.eq(s.user.to_string()))
            .filter(session::Column::EndedAt.is_null())
            .order_by_asc(session::Column::CreatedAt)
            .order_by_asc(session::Column::Id)
            .all(&txn)
            .await
            .map_err(store)?;
        let evict = security_policy::sessions_to_evict(
            &security_policy::SessionPolicy {
                max_concurrent: max_live,
                ..Default::default()
            },
            live.len(),
        );
        let ended: Vec<String> = live.iter().take(evict).map(|m| m.id.clone()).collect();
        let ended_ids = ended
            .iter()
            .map(|e| id("session id", e))
            .collect::<Result<Vec<SessionId>, _>>()
            .map_err(TenancyError::Store)?;
        if !ended.is_empty() {
            session::Entity::update_many()
                .col_expr(session::Column::EndedAt, Expr::value(micros(s.created_at)))
                .filter(session::Column::Id.is_in(ended))
                .exec(&txn)
                .await
                .map_err(store)?;
        }
        session::Entity::insert(session::ActiveModel {
            id: Set(s.id.to_string()),
            token_hash: Set(token_hash.to_owned()),
            user_id: Set(s.user.to_string()),
            created_at: Set(micros(s.created_at)),
            last_seen_at: Set(micros(s.last_seen_at)),
            ended_at: Set(None),
            ip: Set(s.ip.clone()),
            user_agent: Set(s.user_agent.clone()),
            signed_out_of: Set(org_list(&s.signed_out_of)),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store)?;
        let Some(journal) = journal_for(ended_ids.clone()).await else {
            return Err(TenancyError::Store(audit::StoreError::msg(
                "the login was abandoned before its session was stored",
            )));
        };
        commit(txn, journal).await?;
        Ok(ended_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_caller_query_binds_only_the_token_hash() {
        for backend in [
            sea_orm::DatabaseBackend::Sqlite,
            sea_orm::DatabaseBackend::Postgres,
        ] {
            let fresh = session_caller_statement(backend, "some hash");
            assert_eq!(session_caller_sql(backend), fresh.sql);
            let values = fresh.values.map(|v| v.0).unwrap_or_default();
            assert_eq!(
                values,
                vec![sea_orm::Value::from("some hash")],
                "the cached SQL is run with the token hash as its only value"
            );
        }
    }
}
