//! Role changes, ownership transfer and member removal.

use audit::{AuditAction, DomainEvent, EventKind, Journal, Metadata, Target};
use chrono::{DateTime, Duration, Utc};
use rbac_core::{
    OrgRole, Permission, TeamRole, UserId, check_ownership_transfer, check_removal,
    check_role_change,
};
use serde::Serialize;
use serde_json::json;

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::store::{MembershipStore, TenancyStore};

/// How long an ownership transfer waits for the new Owner's confirmation.
pub const TRANSFER_EXPIRY_HOURS: i64 = 72;

/// Promotes or demotes a member between Admin and User. Applies to their very next request.
///
/// # Errors
/// [`TenancyError::NotFound`] for non-members; [`TenancyError::RoleRule`] for the role rules
/// (own role, the Owner, above your own role, Owner only by transfer);
/// [`TenancyError::Conflict`] when the role changed concurrently.
pub async fn change_role<S: TenancyStore + MembershipStore + ?Sized>(
    store: &S,
    caller: &Caller,
    target: UserId,
    new_role: OrgRole,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    caller.check_org(Permission::ChangeRoles)?;
    let member = store
        .get_member(caller.org.id, target)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    check_role_change(&caller.subject, target, member.role, new_role)?;
    if member.role == new_role {
        return Ok(());
    }
    let journal = Journal::record(
        caller
            .audit(now, AuditAction::RoleChanged, Target::new("member", target, member.user.name.clone()))
            .with_metadata(Metadata::from_value(json!({ "from": member.role.as_str(), "to": new_role.as_str() }))?),
    )
    .publish(DomainEvent::new(caller.org.id, EventKind::RoleChanged, now, json!({
        "change": "role", "userId": target, "email": member.user.email, "previousRole": member.role.as_str(), "role": new_role.as_str(), "changedBy": caller.user.id,
    })));
    store
        .set_role(
            caller.org.id,
            target,
            member.role,
            new_role,
            Some(caller.user.id),
            journal,
        )
        .await
}

/// Gives a member a role in every team of the organization, those created later included, or
/// takes it away (`None`): the guide's Finance ("view only, all teams": `Viewer`) and
/// executives ("Member (all teams)"). An explicit role in a team counts where it is higher.
/// Applies to their very next request.
///
/// # Errors
/// [`TenancyError::NotFound`] for non-members; [`TenancyError::RoleRule`] for the rules of a
/// role change (not your own, not the Owner's, Owner and Admins only);
/// [`TenancyError::Invalid`] for an Admin; [`TenancyError::Conflict`] when it changed
/// concurrently.
pub async fn set_all_teams_role<S: TenancyStore + MembershipStore + ?Sized>(
    store: &S,
    caller: &Caller,
    target: UserId,
    role: Option<TeamRole>,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    caller.check_org(Permission::ChangeRoles)?;
    let member = store
        .get_member(caller.org.id, target)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    check_role_change(&caller.subject, target, member.role, member.role)?;
    // For Users: the Owner and Admins administer every team already (a promotion clears
    // it, so that it does not come back with a later demotion); taking one away is allowed.
    if member.role.is_admin() && role.is_some() {
        return Err(all_teams_for_users_only());
    }
    if member.all_teams == role {
        return Ok(());
    }
    let name = |r: Option<TeamRole>| r.map(TeamRole::as_str);
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::RoleChanged,
                Target::new("member", target, member.user.name.clone()),
            )
            .with_metadata(Metadata::from_value(json!({
                "all_teams": { "from": name(member.all_teams), "to": name(role) },
            }))?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::RoleChanged,
        now,
        json!({
            "change": "all_teams_role", "userId": target, "email": member.user.email,
            "role": member.role.as_str(), "previousRole": member.role.as_str(),
            "previousAllTeamsRole": name(member.all_teams), "allTeamsRole": name(role),
            "changedBy": caller.user.id,
        }),
    ));
    store
        .set_all_teams_role(
            caller.org.id,
            target,
            member.all_teams,
            role,
            Some(caller.user.id),
            journal,
        )
        .await
}

/// The refusal of a recipient of a removed member's resources who is not another active member
/// (the stores check it again under the organization's lock).
#[must_use]
pub fn recipient_refused() -> TenancyError {
    TenancyError::Invalid(
        "resources can be transferred only to another active member of the organization".into(),
    )
}

/// Whether a member with the organization role `role` (and, with `all_teams`, a role in every
/// team) reaches the resources of every team: the Owner and Admins, and Users with a role in
/// every team. Any other User reaches only the teams they hold a role in, so a removed
/// member's resources go to them only when all of those resources are in such teams
/// ([`recipient_outside_teams`]; the stores check it under the organization's lock).
#[must_use]
pub const fn reaches_every_team(role: OrgRole, all_teams: bool) -> bool {
    role.is_admin() || all_teams
}

/// The refusal of a recipient of a removed member's resources who is an organization User
/// without a role in some of the teams those resources are in (`teams`, by name): they could
/// neither see nor use what they would own. The Owner and Admins reach every team, and so
/// does a User with a role in every team.
#[must_use]
pub fn recipient_outside_teams(teams: &[String]) -> TenancyError {
    let names: Vec<String> = teams.iter().map(|t| format!("`{t}`")).collect();
    TenancyError::Conflict(format!(
        "the recipient has no role in the team{} {} where the removed member's resources are: \
         give them a role there first, or transfer to the Owner or an Admin",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))
}

/// The refusal of a role in every team for an Admin or the Owner.
#[must_use]
pub fn all_teams_for_users_only() -> TenancyError {
    TenancyError::Invalid(
        "a role in every team is for Users: the Owner and Admins administer every team already"
            .into(),
    )
}

/// The refusal of a change of a member's role in every team that another change overtook.
#[must_use]
pub fn all_teams_changed() -> TenancyError {
    TenancyError::Conflict(
        "the member's role in every team changed meanwhile; reload and try again".into(),
    )
}

/// A pending ownership transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnershipTransfer {
    /// The organization.
    pub org: rbac_core::OrgId,
    /// The current Owner.
    pub from: UserId,
    /// The proposed Owner.
    pub to: UserId,
    /// When proposed.
    pub proposed_at: DateTime<Utc>,
    /// Confirmation must come strictly before this.
    pub expires_at: DateTime<Utc>,
}

/// The Owner proposes handing ownership to a member, confirmed with their `password`; it waits
/// for the member's confirmation.
///
/// # Errors
/// [`TenancyError::RoleRule`] unless the caller is the Owner and the target someone else;
/// [`TenancyError::NotFound`] when the target is not a member; [`TenancyError::Invalid`] when
/// they are deactivated ([`transfer_to_deactivated`]); [`TenancyError::BadCredentials`] or
/// [`TenancyError::Throttled`] for the password.
pub async fn propose_transfer<S: TenancyStore + MembershipStore + ?Sized>(
    store: &S,
    hasher: &security_policy::PasswordHasher,
    caller: &Caller,
    to: UserId,
    password: &str,
    now: DateTime<Utc>,
) -> Result<OwnershipTransfer, TenancyError> {
    caller.check_org(Permission::TransferOwnership)?;
    check_ownership_transfer(&caller.subject, to)?;
    let target = store
        .get_member(caller.org.id, to)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    if target.deactivated_at.is_some() {
        return Err(transfer_to_deactivated());
    }
    // Ownership is permanent: a session alone (a stolen cookie, a browser left open) does not
    // hand it to an accomplice, as it does not delete the organization.
    crate::security::confirm_password(
        store,
        hasher,
        &caller.user,
        password,
        AuditAction::OwnershipTransferProposed,
        &caller.request,
        now,
    )
    .await?;
    let t = OwnershipTransfer {
        org: caller.org.id,
        from: caller.user.id,
        to,
        proposed_at: now,
        expires_at: now + Duration::hours(TRANSFER_EXPIRY_HOURS),
    };
    // A proposal pending to someone else is replaced: on the record, and they are told there is
    // nothing to confirm any more (their confirmation would find none).
    let replaced = match store.pending_transfer(caller.org.id).await? {
        Some(p) if now < p.expires_at && p.to != to => Some(p.to),
        _ => None,
    };
    let mut record = caller.audit(
        now,
        AuditAction::OwnershipTransferProposed,
        Target::new("member", to, target.user.name.clone()),
    );
    if let Some(previous) = replaced {
        record = record.with_metadata(Metadata::from_value(json!({ "replaces": previous }))?);
    }
    let mut journal =
        Journal::record(record).mail(transfer_proposed_mail(caller, &target.user, &t));
    if let Some(previous) = replaced
        && let Some(m) = store.get_member(caller.org.id, previous).await?
    {
        journal = journal.mail(transfer_withdrawn_mail(caller, &m.user));
    }
    store.save_transfer(&t, journal).await?;
    Ok(t)
}

/// The refusal of a transfer of ownership to a deactivated member (who could not act as the
/// Owner): reactivate them first. The stores check it again under the organization's lock.
#[must_use]
pub fn transfer_to_deactivated() -> TenancyError {
    TenancyError::Invalid(
        "the member is deactivated; reactivate them before handing them ownership".into(),
    )
}

/// How the subject of the mail proposing an ownership transfer begins: it names the Owner
/// who proposed it (an erasure of theirs finds the mail by it, `privacy::subjects_naming`).
#[must_use]
pub fn transfer_proposed_prefix(owner: &str) -> String {
    format!("{owner} proposes to make you the Owner of ")
}

/// How the subject of the mail withdrawing an ownership transfer begins: it names the Owner
/// who withdrew it, and, unlike the proposal, the mail holds no address of theirs.
#[must_use]
pub fn transfer_withdrawn_prefix(owner: &str) -> String {
    format!("{owner} withdrew the ownership transfer of ")
}

/// The mail that tells the proposed Owner what waits for their confirmation, queued with the
/// proposal (a proposal nobody hears of would only expire).
fn transfer_proposed_mail(
    caller: &Caller,
    to: &crate::model::User,
    t: &OwnershipTransfer,
) -> audit::OutboundMail {
    let org = &caller.org;
    audit::OutboundMail {
        org: Some(org.id),
        to: to.email.to_string(),
        subject: format!(
            "{}{}",
            transfer_proposed_prefix(&caller.user.name),
            org.name
        ),
        body: format!(
            "Hello {name},\n\n{owner} ({owner_email}), the Owner of {org_name}, proposes to hand \
             ownership of the organization to you. Ownership is permanent: you would hold its \
             billing and could transfer or close it, and {owner} would become an Admin.\n\n\
             To accept, sign in and confirm (POST /api/v1/orgs/{org_id}/ownership-transfer/confirm) \
             before {expires} (UTC). To decline, do nothing: the proposal then expires.\n",
            name = to.name,
            owner = caller.user.name,
            owner_email = caller.user.email,
            org_name = org.name,
            org_id = org.id,
            expires = t.expires_at.format("%Y-%m-%d %H:%M"),
        ),
        kind: "ownership_transfer".into(),
    }
}

/// The Owner withdraws the ownership transfer they proposed, before it is confirmed; the member
/// it waited for is told by mail.
///
/// # Errors
/// [`TenancyError::Forbidden`] unless the caller is the Owner, signed in;
/// [`TenancyError::NotFound`] when no unexpired transfer of theirs is pending.
pub async fn withdraw_transfer<S: TenancyStore + MembershipStore + ?Sized>(
    store: &S,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<OwnershipTransfer, TenancyError> {
    caller.check_org(Permission::TransferOwnership)?;
    let t = store
        .pending_transfer(caller.org.id)
        .await?
        .filter(|t| t.from == caller.user.id && now < t.expires_at)
        .ok_or(TenancyError::NotFound("ownership transfer"))?;
    let to = store.get_member(caller.org.id, t.to).await?;
    let name = to.as_ref().map(|m| m.user.name.clone()).unwrap_or_default();
    let mut journal = Journal::record(caller.audit(
        now,
        AuditAction::OwnershipTransferWithdrawn,
        Target::new("member", t.to, name),
    ));
    if let Some(m) = to {
        journal = journal.mail(transfer_withdrawn_mail(caller, &m.user));
    }
    store.withdraw_transfer(&t, journal).await?;
    Ok(t)
}

/// The mail that tells `to` the proposal to make them the Owner was withdrawn (or replaced by
/// one to someone else).
fn transfer_withdrawn_mail(caller: &Caller, to: &crate::model::User) -> audit::OutboundMail {
    audit::OutboundMail {
        org: Some(caller.org.id),
        to: to.email.to_string(),
        subject: format!(
            "{}{}",
            transfer_withdrawn_prefix(&caller.user.name),
            caller.org.name
        ),
        body: format!(
            "Hello {},\n\n{} withdrew the proposal to make you the Owner of {}: there is \
             nothing to confirm any more.\n",
            to.name, caller.user.name, caller.org.name
        ),
        kind: "ownership_transfer".into(),
    }
}

/// The organization's pending ownership transfer, for the Owner who proposed it and the member
/// it waits for, signed in (an API key sees none, as it confirms none); `None` for anyone else,
/// and once it has expired.
///
/// # Errors
/// [`TenancyError::Store`] on storage failure.
pub async fn pending_transfer<S: MembershipStore + ?Sized>(
    store: &S,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Option<OwnershipTransfer>, TenancyError> {
    if caller.api_key.is_some() {
        return Ok(None);
    }
    Ok(store
        .pending_transfer(caller.org.id)
        .await?
        .filter(|t| now < t.expires_at && (t.from == caller.user.id || t.to == caller.user.id)))
}

/// The proposed Owner confirms: they become Owner and the old Owner becomes Admin, atomically.
///
/// # Errors
/// [`TenancyError::NotFound`] when no unexpired transfer to the caller is pending;
/// [`TenancyError::Conflict`] when ownership changed meanwhile.
pub async fn confirm_transfer<S: TenancyStore + MembershipStore + ?Sized>(
    store: &S,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<OwnershipTransfer, TenancyError> {
    if caller.api_key.is_some() {
        return Err(TenancyError::Forbidden(
            rbac_core::DenyReason::InteractiveOnly,
        ));
    }
    let t = store
        .pending_transfer(caller.org.id)
        .await?
        .filter(|t| t.to == caller.user.id && now < t.expires_at)
        .ok_or(TenancyError::NotFound("ownership transfer"))?;
    // The Owner who proposed it is told it happened: one who did not will know at once.
    let previous = store.get_member(caller.org.id, t.from).await?;
    let mut journal = transferred(
        Journal::record(
            caller
                .audit(
                    now,
                    AuditAction::OwnershipTransferred,
                    Target::new("member", caller.user.id, caller.user.name.clone()),
                )
                .with_metadata(Metadata::from_value(json!({ "from": t.from, "to": t.to }))?),
        ),
        &t,
        now,
    );
    if let Some(previous) = previous {
        journal = journal.mail(transfer_completed_mail(caller, &previous.user, now));
    }
    store.complete_transfer(&t, now, journal).await?;
    Ok(t)
}

/// The mail that tells the previous Owner the transfer they proposed was confirmed.
fn transfer_completed_mail(
    caller: &Caller,
    previous: &crate::model::User,
    now: DateTime<Utc>,
) -> audit::OutboundMail {
    let org = &caller.org;
    audit::OutboundMail {
        org: Some(org.id),
        to: previous.email.to_string(),
        subject: format!("You are no longer the Owner of {}", org.name),
        body: format!(
            "Hello {name},\n\n{new} ({new_email}) confirmed the ownership transfer you proposed \
             and became the Owner of {org_name} at {at} (UTC). You are now an Admin.\n\n\
             If you did not propose this transfer, your account may be in someone else's hands: \
             change your password and contact {new} and your account manager.\n",
            name = previous.name,
            new = caller.user.name,
            new_email = caller.user.email,
            org_name = org.name,
            at = now.format("%Y-%m-%d %H:%M"),
        ),
        kind: "ownership_transfer".into(),
    }
}

/// `journal` with the webhook events of a completed ownership transfer: `enterprise.updated`
/// and a `role.changed` for each of the two people.
pub(crate) fn transferred(journal: Journal, t: &OwnershipTransfer, now: DateTime<Utc>) -> Journal {
    journal
        .publish(DomainEvent::new(
            t.org,
            EventKind::EnterpriseUpdated,
            now,
            json!({
                "ownerId": t.to, "previousOwnerId": t.from,
            }),
        ))
        .publish(DomainEvent::new(
            t.org,
            EventKind::RoleChanged,
            now,
            json!({ "change": "role", "userId": t.from, "previousRole": "owner", "role": "admin" }),
        ))
        .publish(DomainEvent::new(
            t.org,
            EventKind::RoleChanged,
            now,
            json!({ "change": "role", "userId": t.to, "role": "owner" }),
        ))
}

/// What happens to a removed member's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Hand them to another active member.
    TransferTo(UserId),
    /// Hand them to the organization's Owner, read before the removal. The store checks, under
    /// the removal's lock, that this person is still the Owner, and refuses with
    /// [`TenancyError::Conflict`] when ownership changed hands meanwhile: the resources never
    /// go to a former Owner because a handover raced the removal.
    TransferToOwner(UserId),
    /// Delete them.
    Delete,
}

impl Disposition {
    /// The member the resources go to, if they are handed over.
    #[must_use]
    pub const fn recipient(self) -> Option<UserId> {
        match self {
            Self::TransferTo(to) | Self::TransferToOwner(to) => Some(to),
            Self::Delete => None,
        }
    }

    /// The audit record's `resources`: `{"transfer_to": id}` or `"delete"`.
    #[must_use]
    pub fn describe(self) -> serde_json::Value {
        match self.recipient() {
            Some(to) => json!({ "transfer_to": to }),
            None => json!("delete"),
        }
    }
}

/// The refusal of a [`Disposition::TransferToOwner`] whose Owner is no longer the Owner.
#[must_use]
pub fn ownership_changed() -> TenancyError {
    TenancyError::Conflict(
        "the organization's ownership changed meanwhile; nothing was removed, try again".into(),
    )
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RemovalReport {
    /// Resources handed over.
    pub transferred: u64,
    /// The member's resources deleted (with `transferred`, every resource they created).
    pub deleted: u64,
    /// Other people's resources inside deleted ones (documents in a deleted knowledge base).
    pub cascaded: u64,
    /// API keys deactivated.
    pub api_keys_deactivated: u64,
    /// SCIM tokens they created, revoked: a token works only while its creator is an active
    /// Owner or Admin, and would otherwise work again should they come back as one.
    pub scim_tokens_revoked: u64,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Deleted documents, whose bytes the caller removes from the blob store after the commit.
    #[serde(skip)]
    pub deleted_documents: Vec<rbac_core::ResourceId>,
}

/// Removes a member: in one transaction their membership ends, their API keys in the
/// organization are deactivated, their sessions end (when this was their only organization),
/// their resources are transferred or deleted, and the audit record is written.
///
/// # Errors
/// [`TenancyError::RoleRule`] (the Owner, yourself); [`TenancyError::NotFound`];
/// [`TenancyError::Invalid`] for a transfer to a non-member, a deactivated member or the
/// removed member; [`TenancyError::Conflict`] for a transfer to a User without a role in a
/// team where the resources are ([`recipient_outside_teams`], checked by the store).
pub async fn remove<S: TenancyStore + MembershipStore + ?Sized>(
    store: &S,
    caller: &Caller,
    target: UserId,
    disposition: Disposition,
    now: DateTime<Utc>,
) -> Result<RemovalReport, TenancyError> {
    caller.check_org(Permission::RemoveMembers)?;
    let member = store
        .get_member(caller.org.id, target)
        .await?
        .ok_or(TenancyError::NotFound("member"))?;
    check_removal(&caller.subject, target, member.role)?;
    if let Some(to) = disposition.recipient()
        && (to == target
            || store
                .get_member(caller.org.id, to)
                .await?
                .is_none_or(|m| m.deactivated_at.is_some()))
    {
        return Err(recipient_refused());
    }
    let journal = Journal::record(
        caller
            .audit(now, AuditAction::MemberRemoved, Target::new("member", target, member.user.name.clone()))
            .with_metadata(Metadata::from_value(json!({
                "role": member.role.as_str(),
                "resources": disposition.describe(),
            }))?),
    )
    .publish(DomainEvent::new(caller.org.id, EventKind::UserDeleted, now, json!({
        "userId": target, "email": member.user.email, "role": member.role.as_str(), "removedBy": caller.user.id,
    })));
    // Each session the removal ends or signs out of the organization is recorded, as a
    // sign-out by the Owner or an Admin is.
    let revoked = caller
        .audit(
            now,
            AuditAction::SessionRevoked,
            Target::new("member", target, member.user.name.clone()),
        )
        .with_metadata(Metadata::from_value(json!({"reason": "member_removed"}))?);
    store
        .remove_member(
            caller.org.id,
            target,
            disposition,
            now,
            Some(caller.user.id),
            journal,
            &|n| crate::each_session(&revoked, n),
        )
        .await
}

/// The refusal of a role change or removal whose author is no longer an active Owner or
/// Admin: their own demotion, removal or deactivation committed after the service checked
/// their rights (the stores check it again under the organization's lock). The role rule
/// `not_an_admin`, as for an invitation by someone demoted meanwhile: 403, audited.
#[must_use]
pub fn acting_role_changed() -> TenancyError {
    TenancyError::RoleRule(rbac_core::RoleRuleError::NotAnAdmin)
}

/// The refusal of a sign-out of the Owner by someone who is not the Owner (an Admin), also
/// when the person became the Owner after the service looked.
#[must_use]
pub fn owner_sign_out_refused(by_role: rbac_core::OrgRole) -> TenancyError {
    TenancyError::Forbidden(rbac_core::DenyReason::RoleLacksPermission { role: by_role })
}

/// Whether `role` (of an active membership) may still change roles or remove members.
#[must_use]
pub fn may_administer(role: Option<OrgRole>) -> bool {
    role.is_some_and(OrgRole::is_admin)
}

/// Who may leave (also with erasure): a person with a session, not an API key or SCIM token,
/// and not the Owner, who hands over ownership first.
///
/// # Errors
/// [`TenancyError::Forbidden`]; [`TenancyError::Conflict`] for the Owner.
pub(crate) fn check_leaving(caller: &Caller) -> Result<(), TenancyError> {
    if caller.api_key.is_some() || caller.scim_token.is_some() {
        return Err(TenancyError::Forbidden(
            rbac_core::DenyReason::InteractiveOnly,
        ));
    }
    if caller.subject.role == OrgRole::Owner {
        return Err(TenancyError::Conflict(
            "the Owner cannot leave: transfer ownership to another member first".into(),
        ));
    }
    Ok(())
}

/// A member leaves the organization of their own accord: as in [`remove`], in one transaction
/// their membership ends, their API keys there are deactivated and their sessions end when it
/// was their only organization; what they created stays with the organization, transferred to
/// the Owner (the workspace is shared: others use it). The Owner hands over ownership first.
///
/// # Errors
/// [`TenancyError::Forbidden`] through an API key or SCIM token (leaving is interactive);
/// [`TenancyError::Conflict`] for the Owner.
pub async fn leave<S: TenancyStore + MembershipStore + ?Sized>(
    store: &S,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<RemovalReport, TenancyError> {
    check_leaving(caller)?;
    let owner = crate::orgs::owner_of(store, caller.org.id).await?;
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::MemberLeft,
                Target::new("organization", caller.org.id, caller.org.name.clone()),
            )
            .with_metadata(Metadata::from_value(json!({
                "role": caller.subject.role.as_str(),
                "resources": Disposition::TransferToOwner(owner.user.id).describe(),
            }))?),
    )
    .publish(DomainEvent::new(
        caller.org.id,
        EventKind::UserDeleted,
        now,
        json!({
            "userId": caller.user.id, "email": caller.user.email, "role": caller.subject.role.as_str(), "removedBy": caller.user.id,
        }),
    ));
    let revoked = caller
        .audit(
            now,
            AuditAction::SessionRevoked,
            Target::new("member", caller.user.id, caller.user.name.clone()),
        )
        .with_metadata(Metadata::from_value(json!({"reason": "member_left"}))?);
    store
        .remove_member(
            caller.org.id,
            caller.user.id,
            Disposition::TransferToOwner(owner.user.id),
            now,
            None,
            journal,
            &|n| crate::each_session(&revoked, n),
        )
        .await
}
