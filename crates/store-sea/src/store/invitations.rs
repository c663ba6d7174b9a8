//! [`InvitationStore`] on SeaORM.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, Utc};
use rbac_core::{InvitationId, OrgId, OrgRole, TeamId, TeamRole, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, RelationTrait, TransactionTrait,
};
use tenancy::bulk::BulkPreview;
use tenancy::invitations::Invitation;
use tenancy::{BulkStore, InvitationStore, TenancyError, User};

use super::tenancy::{
    check_seat, check_seats, commit, insert_membership, insert_user, lock_org, pending_invitations,
    store,
};
use crate::SeaStore;
use crate::convert::{json, micros, to_json};
use crate::entity::{bulk_preview, invitation, mail, membership, user};

/// Inserts pending invitations of `org` (one, or a bulk confirmation's), each refused unless
/// its address is neither a member's nor invited already (nor twice in the batch), its inviter
/// still may invite with its role, its team is live, and the seat limit (members plus pending
/// invitations) holds them all. Runs inside the caller's transaction, after `lock_org`. The
/// checks are made once for the batch: the inviters' rights and the teams as
/// they are now, the addresses that are members or invited already (a query per 500), and the
/// seats for all of them; then the inserts, 500 rows a statement. A row at a time, a sheet of
/// 10,000 took some 70,000 statements and recounted the pending invitations for each, holding
/// the organization's lock (on SQLite, the one writer) the while.
async fn insert_checked(
    txn: &DatabaseTransaction,
    org: OrgId,
    invitations: &[(Invitation, String)],
    limits: &billing_limits::PlanLimits,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    use std::collections::hash_map::Entry;
    use std::collections::{HashMap, HashSet};
    const CHUNK: usize = 500;
    let mut inviters: HashMap<UserId, Option<OrgRole>> = HashMap::new();
    let mut teams: HashMap<TeamId, bool> = HashMap::new();
    for (inv, _) in invitations {
        // The inviter's rights as they are now: a demotion or removal committed since the
        // service checked them withdrew the invitations that existed then, and must not be
        // outlived by these. The team as it is now: deleting it takes the organization's lock
        // too and revokes its pending invitations.
        if let Entry::Vacant(slot) = inviters.entry(inv.invited_by) {
            let role =
                membership::Entity::find_by_id((org.to_string(), inv.invited_by.to_string()))
                    .one(txn)
                    .await
                    .map_err(store)?
                    .filter(|m| m.deactivated_at.is_none())
                    .and_then(|m| OrgRole::parse(&m.role));
            slot.insert(role);
        }
        tenancy::invitations::check_inviter(inviters[&inv.invited_by], inv.role)?;
        if let Some(t) = inv.team {
            if let Entry::Vacant(slot) = teams.entry(t.id) {
                let live = super::workspace::team_row(txn, org, t.id)
                    .await?
                    .is_some_and(|row| row.archived_at.is_none());
                slot.insert(live);
            }
            if !teams[&t.id] {
                return Err(TenancyError::NotFound("team"));
            }
        }
    }
    let emails: Vec<&str> = invitations.iter().map(|(i, _)| i.email.as_str()).collect();
    let mut members: HashSet<String> = HashSet::new();
    let mut invited: HashSet<String> = HashSet::new();
    for chunk in emails.chunks(CHUNK) {
        let found: Vec<String> = membership::Entity::find()
            .select_only()
            .column(user::Column::Email)
            .join(
                sea_orm::JoinType::InnerJoin,
                membership::Relation::User.def(),
            )
            .filter(membership::Column::OrgId.eq(org.to_string()))
            .filter(user::Column::Email.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(store)?;
        members.extend(found);
        let pending: Vec<String> = pending_invitations(org, now)
            .select_only()
            .column(invitation::Column::Email)
            .filter(invitation::Column::Email.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(store)?;
        invited.extend(pending);
    }
    // An address twice in the batch is refused as one invited already (its first row's
    // invitation would be pending when the second's was checked).
    let mut batch: HashSet<&str> = HashSet::new();
    for (inv, _) in invitations {
        if !batch.insert(inv.email.as_str()) {
            invited.insert(inv.email.as_str().to_owned());
        }
    }
    for (inv, _) in invitations {
        if members.contains(inv.email.as_str()) {
            return Err(TenancyError::Conflict(format!(
                "`{}` is already a member",
                inv.email
            )));
        }
        if invited.contains(inv.email.as_str()) {
            return Err(TenancyError::Conflict(format!(
                "`{}` already has a pending invitation",
                inv.email
            )));
        }
    }
    check_seats(txn, org, limits, now, None, invitations.len() as u64).await?;
    for chunk in invitations.chunks(CHUNK) {
        invitation::Entity::insert_many(chunk.iter().map(|(inv, token_hash)| {
            invitation::ActiveModel {
                id: Set(inv.id.to_string()),
                org_id: Set(inv.org.to_string()),
                email: Set(inv.email.as_str().to_owned()),
                role: Set(inv.role.as_str().to_owned()),
                invited_by: Set(inv.invited_by.to_string()),
                token_hash: Set(token_hash.clone()),
                created_at: Set(micros(inv.created_at)),
                expires_at: Set(micros(inv.expires_at)),
                accepted_at: Set(None),
                accepted_by: Set(None),
                revoked_at: Set(None),
                team_id: Set(inv.team.map(|t| t.id.to_string())),
                team_role: Set(inv.team.map(|t| t.role.as_str().to_owned())),
            }
        }))
        .exec_without_returning(txn)
        .await
        .map_err(store)?;
    }
    Ok(())
}

/// Deletes the invitation mail not sent yet of the invitations of `org` that `which` selects
/// and that are pending at `now` (about to be revoked with them: a team deleted, their sender
/// no longer an admin), in the caller's transaction, as [`drop_unsent_mail`] does for one.
pub(super) async fn drop_unsent_mail_of(
    txn: &DatabaseTransaction,
    org: OrgId,
    which: sea_orm::Condition,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let emails: Vec<String> = invitation::Entity::find()
        .select_only()
        .column(invitation::Column::Email)
        .filter(invitation::Column::OrgId.eq(org.to_string()))
        .filter(which)
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(micros(now)))
        .into_tuple()
        .all(txn)
        .await
        .map_err(store)?;
    delete_unsent_invitation_mail(txn, org, emails).await
}

/// Deletes the organization's invitation mail not sent yet to any of `emails`. Runs in the
/// caller's transaction.
async fn delete_unsent_invitation_mail(
    txn: &DatabaseTransaction,
    org: OrgId,
    emails: Vec<String>,
) -> Result<(), TenancyError> {
    if emails.is_empty() {
        return Ok(());
    }
    mail::Entity::delete_many()
        .filter(mail::Column::OrgId.eq(org.to_string()))
        .filter(mail::Column::ToAddr.is_in(emails))
        .filter(mail::Column::Kind.eq(tenancy::invitations::INVITATION_MAIL))
        .filter(mail::Column::SentAt.is_null())
        .exec(txn)
        .await
        .map_err(store)?;
    Ok(())
}

/// Deletes the invitation mail not sent yet to the address of invitation `id`, when it was
/// pending at `now` (an address has one pending invitation per organization, so that mail is
/// its): revoked or sent again with a new link, it would carry a link that no longer works.
/// An expired invitation's revocation leaves the mail of a newer one to the same address.
/// Runs in the caller's transaction.
async fn drop_unsent_mail(
    txn: &DatabaseTransaction,
    org: OrgId,
    id: InvitationId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    let row: Option<(String, i64)> = invitation::Entity::find_by_id(id.to_string())
        .select_only()
        .column(invitation::Column::Email)
        .column(invitation::Column::ExpiresAt)
        .into_tuple()
        .one(txn)
        .await
        .map_err(store)?;
    match row {
        Some((email, expires_at)) if expires_at > micros(now) => {
            delete_unsent_invitation_mail(txn, org, vec![email]).await
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl InvitationStore for SeaStore {
    async fn pending_invitation_count(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<u64, TenancyError> {
        super::tenancy::pending_invitations(org, now)
            .count(self.reader())
            .await
            .map_err(store)
    }

    async fn create_invitation(
        &self,
        inv: &Invitation,
        token_hash: &str,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, inv.org).await?;
        let one = [(inv.clone(), token_hash.to_owned())];
        insert_checked(&txn, inv.org, &one, limits, inv.created_at).await?;
        commit(txn, journal).await
    }

    async fn find_invitation(&self, token_hash: &str) -> Result<Option<Invitation>, TenancyError> {
        let m = invitation::Entity::find()
            .filter(invitation::Column::TokenHash.eq(token_hash))
            .one(self.db())
            .await
            .map_err(store)?;
        m.map(Invitation::try_from)
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn get_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, TenancyError> {
        let m = invitation::Entity::find_by_id(id.to_string())
            .filter(invitation::Column::OrgId.eq(org.to_string()))
            .one(self.db())
            .await
            .map_err(store)?;
        m.map(Invitation::try_from)
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn list_invitations(
        &self,
        org: OrgId,
        after: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, TenancyError> {
        let mut q =
            invitation::Entity::find().filter(invitation::Column::OrgId.eq(org.to_string()));
        if let Some(a) = after {
            q = q.filter(invitation::Column::Id.lt(a.to_string()));
        }
        let rows = q
            .order_by_desc(invitation::Column::Id)
            .limit(u64::from(limit))
            .all(self.db())
            .await
            .map_err(store)?;
        rows.into_iter()
            .map(Invitation::try_from)
            .collect::<Result<_, _>>()
            .map_err(TenancyError::Store)
    }

    async fn invitations_accepted_by(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Vec<Invitation>, TenancyError> {
        invitation::Entity::find()
            .filter(invitation::Column::OrgId.eq(org.to_string()))
            .filter(invitation::Column::AcceptedBy.eq(user.to_string()))
            .order_by_asc(invitation::Column::CreatedAt)
            .order_by_asc(invitation::Column::Id)
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(Invitation::try_from)
            .collect::<Result<_, _>>()
            .map_err(TenancyError::Store)
    }

    async fn reissue_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        by: UserId,
        token_hash: &str,
        sent_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        // The sender's rights as they are now, under the organization's lock, which a demotion
        // or removal takes too.
        lock_org(&txn, org).await?;
        let role = invitation::Entity::find_by_id(id.to_string())
            .filter(invitation::Column::OrgId.eq(org.to_string()))
            .select_only()
            .column(invitation::Column::Role)
            .into_tuple::<String>()
            .one(&txn)
            .await
            .map_err(store)?
            .ok_or(TenancyError::NotFound("invitation"))?;
        let sender = membership::Entity::find_by_id((org.to_string(), by.to_string()))
            .one(&txn)
            .await
            .map_err(store)?
            .filter(|m| m.deactivated_at.is_none())
            .and_then(|m| OrgRole::parse(&m.role));
        let role = crate::convert::role(&role).map_err(TenancyError::Store)?;
        tenancy::invitations::check_inviter(sender, role)?;
        let res = invitation::Entity::update_many()
            .col_expr(invitation::Column::TokenHash, Expr::value(token_hash))
            .col_expr(invitation::Column::CreatedAt, Expr::value(micros(sent_at)))
            .col_expr(
                invitation::Column::ExpiresAt,
                Expr::value(micros(expires_at)),
            )
            .filter(invitation::Column::Id.eq(id.to_string()))
            .filter(invitation::Column::OrgId.eq(org.to_string()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            // Expired since the service looked: its seat may be taken, so it stays expired.
            .filter(invitation::Column::ExpiresAt.gt(micros(sent_at)))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("invitation"));
        }
        drop_unsent_mail(&txn, org, id, sent_at).await?;
        commit(txn, journal).await
    }

    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        let res = invitation::Entity::update_many()
            .col_expr(invitation::Column::RevokedAt, Expr::value(micros(now)))
            .filter(invitation::Column::Id.eq(id.to_string()))
            .filter(invitation::Column::OrgId.eq(org.to_string()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            return Err(TenancyError::NotFound("invitation"));
        }
        drop_unsent_mail(&txn, org, id, now).await?;
        commit(txn, journal).await
    }

    async fn accept_invitation(
        &self,
        inv: &Invitation,
        token_hash: &str,
        new: &User,
        new_password_hash: Option<&str>,
        team_id: TeamId,
        team_role: TeamRole,
        limits: &billing_limits::PlanLimits,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let txn = self.db().begin().await.map_err(store)?;
        if new_password_hash.is_none() {
            super::tenancy::lock_joining_account(&txn, new).await?;
        }
        lock_org(&txn, inv.org).await?;
        // The conditional update is the single-use guarantee: of two racing acceptances only one matches.
        let res = invitation::Entity::update_many()
            .col_expr(invitation::Column::AcceptedAt, Expr::value(micros(now)))
            .col_expr(
                invitation::Column::AcceptedBy,
                Expr::value(new.id.to_string()),
            )
            .filter(invitation::Column::Id.eq(inv.id.to_string()))
            .filter(invitation::Column::TokenHash.eq(token_hash))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .filter(invitation::Column::ExpiresAt.gt(micros(now)))
            .exec(&txn)
            .await
            .map_err(store)?;
        if res.rows_affected == 0 {
            txn.rollback().await.map_err(store)?;
            let current = self
                .find_invitation(token_hash)
                .await?
                .ok_or(TenancyError::NotFound("invitation"))?;
            return Err(TenancyError::InvitationUnusable(
                match current.status(now) {
                    tenancy::invitations::InvitationStatus::Pending => {
                        tenancy::invitations::InvitationStatus::Accepted
                    }
                    other => other,
                },
            ));
        }
        // This invitation's seat: it is no longer pending, so counted once, as the member.
        check_seat(&txn, inv.org, limits, now, None).await?;
        // Team deletion takes the organization's lock too, so the team cannot go after this.
        match super::workspace::team_row(&txn, inv.org, team_id).await? {
            Some(t) if t.archived_at.is_none() => {}
            _ => return Err(tenancy::invitations::gone_team()),
        }
        if let Some(hash) = new_password_hash {
            insert_user(&txn, new, Some(hash))
                .await
                .map_err(|e| match e {
                    TenancyError::Conflict(_) => TenancyError::Conflict(format!(
                        "an account with the email `{}` exists: sign in and accept the invitation",
                        new.email
                    )),
                    other => other,
                })?;
        }
        insert_membership(&txn, inv.org, new, inv.role, team_id, team_role, now).await?;
        commit(txn, journal).await
    }
}

#[async_trait]
impl BulkStore for SeaStore {
    async fn member_and_pending_emails(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, Vec<String>), TenancyError> {
        // One join: a list of every member's id would not fit in one statement's parameters
        // (PostgreSQL takes 65,535) in an organization without a member limit.
        let members: Vec<String> = membership::Entity::find()
            .select_only()
            .column(user::Column::Email)
            .join(
                sea_orm::JoinType::InnerJoin,
                membership::Relation::User.def(),
            )
            .filter(membership::Column::OrgId.eq(org.to_string()))
            .into_tuple()
            .all(self.db())
            .await
            .map_err(store)?;
        let pending = pending_invitations(org, now)
            .all(self.db())
            .await
            .map_err(store)?
            .into_iter()
            .map(|i| i.email)
            .collect();
        Ok((members, pending))
    }

    async fn save_preview(&self, p: &BulkPreview) -> Result<(), TenancyError> {
        // Previews live minutes: purge this organization's expired or used ones as new ones arrive.
        let issued = p.expires_at - chrono::Duration::minutes(tenancy::bulk::PREVIEW_TTL_MINUTES);
        bulk_preview::Entity::delete_many()
            .filter(bulk_preview::Column::OrgId.eq(p.org.to_string()))
            .filter(
                sea_orm::Condition::any()
                    .add(bulk_preview::Column::ExpiresAt.lte(micros(issued)))
                    .add(bulk_preview::Column::ConsumedAt.is_not_null()),
            )
            .exec(self.db())
            .await
            .map_err(store)?;
        bulk_preview::Entity::insert(bulk_preview::ActiveModel {
            id: Set(p.id.to_string()),
            org_id: Set(p.org.to_string()),
            created_by: Set(p.created_by.to_string()),
            expires_at: Set(micros(p.expires_at)),
            data: Set(to_json(p)?),
            consumed_at: Set(None),
        })
        .exec_without_returning(self.db())
        .await
        .map_err(store)?;
        Ok(())
    }

    async fn get_preview(
        &self,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Option<BulkPreview>, TenancyError> {
        let m = bulk_preview::Entity::find_by_id(id.to_string())
            .filter(bulk_preview::Column::OrgId.eq(org.to_string()))
            .filter(bulk_preview::Column::ConsumedAt.is_null())
            .one(self.db())
            .await
            .map_err(store)?;
        m.map(|m| json::<BulkPreview>("bulk preview", &m.data))
            .transpose()
            .map_err(TenancyError::Store)
    }

    async fn confirm_preview(
        &self,
        org: OrgId,
        id: InvitationId,
        invitations: &[(Invitation, String)],
        limits: &billing_limits::PlanLimits,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        if invitations.iter().any(|(i, _)| i.org != org) {
            return Err(TenancyError::Invalid(
                "an invitation of another organization".into(),
            ));
        }
        let txn = self.db().begin().await.map_err(store)?;
        lock_org(&txn, org).await?;
        let used = bulk_preview::Entity::update_many()
            .col_expr(bulk_preview::Column::ConsumedAt, Expr::value(micros(now)))
            .filter(bulk_preview::Column::Id.eq(id.to_string()))
            .filter(bulk_preview::Column::OrgId.eq(org.to_string()))
            .filter(bulk_preview::Column::ConsumedAt.is_null())
            .filter(bulk_preview::Column::ExpiresAt.gt(micros(now)))
            .exec(&txn)
            .await
            .map_err(store)?;
        if used.rows_affected != 1 {
            return Err(TenancyError::NotFound("preview"));
        }
        insert_checked(&txn, org, invitations, limits, now).await?;
        commit(txn, journal).await
    }
}
