//! In-memory implementations of the tenancy ports, for embedders' unit tests.
//!
//! Journals go to an inner [`MemoryAuditStore`], so audit records and domain
//! events can be inspected. Each change happens under one lock, and its journal is
//! committed only when the change succeeded.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use audit::{AuditStore, Journal, MemoryAuditStore};
use chrono::{DateTime, Utc};
use rbac_core::{
    ApiKeyId, FeatureAccess, InvitationId, OrgId, OrgRole, ResourceId, SessionId, TeamId, TeamRole,
    UserId,
};

use crate::assets::{Asset, AssetFilter, AssetKind, AssetTransfer, TeamStorage, UsageRecord};
use crate::bulk::BulkPreview;
use crate::error::{StoreError, TenancyError};
use crate::invitations::{Invitation, InvitationStatus};
use crate::members::{Disposition, OwnershipTransfer, RemovalReport};
use crate::mfa::{MfaRecord, MfaStore};
use crate::model::{
    ApiKey, CompanyProfile, Email, Member, Membership, Organization, SecuritySettings, Session,
    Team, User,
};
use crate::store::{
    AccountStore, ApiKeyStore, BulkStore, InvitationStore, MembershipStore, OrgStore, TenancyStore,
    WorkspaceStore,
};
use crate::teams::TeamMember;

mod billing;

#[derive(Debug, Default)]
struct State {
    orgs: HashMap<OrgId, Organization>,
    users: HashMap<UserId, (User, Option<String>)>,
    members: Vec<(OrgId, UserId, OrgRole, DateTime<Utc>)>,
    deactivated: HashMap<(OrgId, UserId), DateTime<Utc>>,
    all_teams: HashMap<(OrgId, UserId), TeamRole>,
    teams: Vec<Team>,
    team_members: Vec<(TeamId, UserId, OrgId, TeamRole)>,
    sessions: Vec<(Session, String, Option<DateTime<Utc>>)>,
    keys: Vec<(ApiKey, String)>,
    invitations: Vec<(Invitation, String)>,
    /// Who accepted each accepted invitation (SeaStore's `invitations.accepted_by`).
    accepted_by: HashMap<rbac_core::InvitationId, UserId>,
    previews: Vec<(BulkPreview, bool)>,
    transfers: HashMap<OrgId, OwnershipTransfer>,
    throttles: HashMap<UserId, security_policy::ThrottleState>,
    /// When each person's password last changed (`AccountStore::sign_in_addresses` looks no
    /// further back).
    credential_changes: HashMap<UserId, DateTime<Utc>>,
    assets: Vec<Asset>,
    asset_transfers: Vec<AssetTransfer>,
    usage: Vec<(OrgId, UsageRecord)>,
    mfa: HashMap<UserId, MfaRow>,
    monthly: HashMap<(OrgId, String, String), u64>,
    alerts: std::collections::HashSet<(OrgId, String, String, u64)>,
    challenges: HashMap<String, (UserId, DateTime<Utc>)>,
    scim_tokens: Vec<(crate::scim::ScimToken, String)>,
    scim_users: HashMap<(OrgId, UserId), crate::scim::UserRecord>,
    scim_groups: HashMap<(OrgId, TeamId), crate::scim::GroupRecord>,
    consents: Vec<crate::privacy::ConsentRecord>,
    resets: Vec<crate::password_reset::PasswordReset>,
    billing: billing::BillingState,
    /// Addresses of invitations revoked by a change (a team deleted, their sender no longer an
    /// admin), whose unsent invitation mail goes when the change commits (as `SeaStore` drops
    /// it in the change's transaction).
    revoked_mail: Vec<(OrgId, String)>,
    pipelines: HashMap<OrgId, crate::pipeline::Pipeline>,
    uptime: Vec<crate::uptime::UptimeSpan>,
    outages: Vec<crate::uptime::DeclaredOutage>,
}

impl State {
    /// The organization's pipeline stages (empty without one).
    fn stages(&self, org: OrgId) -> Vec<TeamId> {
        self.pipelines
            .get(&org)
            .map(|p| p.stages.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct MfaRow {
    record: MfaRecord,
    recovery: Vec<String>,
}

impl State {
    fn pending(&self, org: OrgId, now: DateTime<Utc>) -> impl Iterator<Item = &Invitation> {
        self.invitations
            .iter()
            .map(|i| &i.0)
            .filter(move |i| i.org == org && i.status(now) == InvitationStatus::Pending)
    }

    /// Marks `user`'s pending invitations to `org` accepted: they joined another way (an
    /// admin's direct add, SCIM), so the invitation holds no seat any more.
    fn settle_invitations(&mut self, org: OrgId, user: &User) {
        let now = user.created_at;
        for (i, _) in &mut self.invitations {
            if i.org == org && i.email == user.email && i.status(now) == InvitationStatus::Pending {
                i.accepted_at = Some(now);
                self.accepted_by.insert(i.id, user.id);
            }
        }
    }

    /// `user`'s addresses in `org` ([`crate::privacy::addresses_to_erase`]).
    fn addresses_in(&self, org: OrgId, user: UserId) -> Vec<String> {
        let Some((account, _)) = self.users.get(&user) else {
            return Vec::new();
        };
        let in_org = || {
            self.invitations
                .iter()
                .map(|(i, _)| i)
                .filter(|i| i.org == org)
        };
        let theirs = |i: &Invitation| self.accepted_by.get(&i.id) == Some(&user);
        let accepted: Vec<(String, Option<DateTime<Utc>>)> = in_org()
            .filter(|i| theirs(i) && i.email != account.email)
            .map(|i| (i.email.as_str().to_owned(), i.accepted_at))
            .collect();
        let others: Vec<(String, DateTime<Utc>)> = in_org()
            .filter(|i| !theirs(i) && accepted.iter().any(|(a, _)| a == i.email.as_str()))
            .map(|i| (i.email.as_str().to_owned(), i.created_at))
            .collect();
        let held: Vec<String> = accepted
            .iter()
            .filter(|(a, _)| {
                self.users
                    .values()
                    .any(|(u, _)| u.email.as_str() == a && u.id != user)
            })
            .map(|(a, _)| a.clone())
            .collect();
        crate::privacy::addresses_to_erase(account.email.as_str(), &accepted, &others, &held)
    }

    fn is_member_email(&self, org: OrgId, email: &Email) -> bool {
        self.members
            .iter()
            .any(|m| m.0 == org && self.users.get(&m.1).is_some_and(|(u, _)| &u.email == email))
    }

    /// The author of a role change or removal must still be an active Owner or Admin.
    fn check_acting(&self, org: OrgId, by: Option<UserId>) -> Result<(), TenancyError> {
        match by {
            Some(u) if !crate::members::may_administer(self.active_role(org, u)) => {
                Err(crate::members::acting_role_changed())
            }
            _ => Ok(()),
        }
    }

    /// `user`'s role in `org`, unless absent or deactivated.
    fn active_role(&self, org: OrgId, user: UserId) -> Option<OrgRole> {
        self.members
            .iter()
            .find(|m| m.0 == org && m.1 == user)
            .filter(|m| !self.deactivated.contains_key(&(m.0, m.1)))
            .map(|m| m.2)
    }

    /// The limits to check a count against: the tightest of `given` (read by the caller at the
    /// start of its request) and the organization's as stored now, so that a downgrade since
    /// then is obeyed (as `SeaStore` does under the organization's lock).
    fn limits_in_force(
        &self,
        org: OrgId,
        given: &billing_limits::PlanLimits,
    ) -> billing_limits::PlanLimits {
        self.orgs
            .get(&org)
            .map_or(*given, |o| given.tightest(&o.limits()))
    }

    /// The checks and insert of one invitation (see [`InvitationStore::create_invitation`]).
    fn insert_invitation(
        &mut self,
        inv: &Invitation,
        hash: &str,
        limits: &billing_limits::PlanLimits,
    ) -> Result<(), TenancyError> {
        crate::invitations::check_inviter(self.active_role(inv.org, inv.invited_by), inv.role)?;
        if let Some(t) = inv.team
            && !self
                .teams
                .iter()
                .any(|x| x.org == inv.org && x.id == t.id && x.archived_at.is_none())
        {
            return Err(TenancyError::NotFound("team"));
        }
        if self.is_member_email(inv.org, &inv.email) {
            return Err(TenancyError::Conflict(format!(
                "`{}` is already a member",
                inv.email
            )));
        }
        if self
            .pending(inv.org, inv.created_at)
            .any(|p| p.email == inv.email)
        {
            return Err(TenancyError::Conflict(format!(
                "`{}` already has a pending invitation",
                inv.email
            )));
        }
        let used = (self.members.iter().filter(|m| m.0 == inv.org).count()
            + self.pending(inv.org, inv.created_at).count()) as u64;
        crate::enforce_quota(billing_limits::check_quota(
            &self.limits_in_force(inv.org, limits),
            billing_limits::Limit::Members,
            used,
            1,
        ))?;
        self.invitations.push((inv.clone(), hash.to_owned()));
        Ok(())
    }
}

/// All tenancy ports in memory.
#[derive(Debug, Default)]
pub struct MemoryTenancyStore {
    state: Mutex<State>,
    audit: MemoryAuditStore,
}

impl MemoryTenancyStore {
    /// One keyset page of `org`'s API keys that `keep`, by id.
    fn keys_page(
        &self,
        org: OrgId,
        after: Option<ApiKeyId>,
        limit: u32,
        keep: impl Fn(&ApiKey) -> bool,
    ) -> Result<Vec<ApiKey>, TenancyError> {
        let mut out: Vec<ApiKey> = self
            .lock()?
            .keys
            .iter()
            .map(|k| &k.0)
            .filter(|k| {
                k.org == org && after.is_none_or(|a| k.id.to_string() > a.to_string()) && keep(k)
            })
            .cloned()
            .collect();
        out.sort_by_key(|k| k.id.to_string());
        out.truncate(limit as usize);
        Ok(out)
    }

    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The audit store that receives every journal.
    #[must_use]
    pub fn audit(&self) -> &MemoryAuditStore {
        &self.audit
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, TenancyError> {
        self.state
            .lock()
            .map_err(|_| TenancyError::Store(StoreError::msg("memory store poisoned")))
    }

    /// Deletes the unsent invitation mail to `email` in `org`, as `SeaStore` does when the
    /// invitation is revoked or sent again.
    fn drop_unsent_invitation_mail(&self, org: OrgId, email: &str) -> Result<(), TenancyError> {
        self.audit.with_mails(|mails| {
            mails.retain(|(m, _)| {
                m.org != Some(org)
                    || m.to != email
                    || m.kind != crate::invitations::INVITATION_MAIL
                    || m.sent_at.is_some()
            });
        })?;
        Ok(())
    }

    /// Commits a journal after a change succeeded; a refused change commits nothing.
    async fn commit(&self, journal: Journal) -> Result<(), TenancyError> {
        let revoked = std::mem::take(&mut self.lock()?.revoked_mail);
        for (org, email) in revoked {
            self.drop_unsent_invitation_mail(org, &email)?;
        }
        self.audit.append(journal).await?;
        Ok(())
    }
}

/// Notes that `user`'s password changed at `now`: the addresses they signed in from before no
/// longer pass a lock as familiar ones, and the failures counted against the old password are
/// forgotten.
fn note_credential_change(s: &mut State, user: UserId, now: DateTime<Utc>) {
    s.throttles.remove(&user);
    s.credential_changes.insert(user, now);
}

/// Replaces `user`'s password hash, clears their login throttle and ends every live session of
/// theirs but `keep`; returns how many sessions it ended. `NotFound` for an unknown user,
/// before anything changes.
fn replace_password(
    s: &mut State,
    user: UserId,
    hash: &str,
    keep: Option<SessionId>,
    now: DateTime<Utc>,
) -> Result<u64, TenancyError> {
    s.users
        .get_mut(&user)
        .ok_or(TenancyError::NotFound("user"))?
        .1 = Some(hash.to_owned());
    note_credential_change(s, user, now);
    // A sign-in half done with the old password (waiting for its second factor) ends too.
    s.challenges.retain(|_, (u, _)| *u != user);
    // A new password retires every open reset link of theirs.
    retire_links(s, user, now);
    Ok(end_sessions_but(s, user, keep, now))
}

/// Ends every live session of `user` but `keep`; returns how many.
fn end_sessions_but(
    s: &mut State,
    user: UserId,
    keep: Option<SessionId>,
    now: DateTime<Utc>,
) -> u64 {
    let mut ended = 0;
    for row in s
        .sessions
        .iter_mut()
        .filter(|r| r.0.user == user && r.2.is_none() && Some(r.0.id) != keep)
    {
        row.2 = Some(now);
        ended += 1;
    }
    ended
}

#[async_trait]
impl audit::MailOutbox for MemoryTenancyStore {
    async fn claim_mails(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<audit::QueuedMail>, audit::AuditError> {
        self.audit.claim_mails(now, lease_until, limit).await
    }
    async fn mark_mail_sent(&self, id: &str, now: DateTime<Utc>) -> Result<(), audit::AuditError> {
        self.audit.mark_mail_sent(id, now).await
    }
    async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), audit::AuditError> {
        self.audit.mark_mail_failed(id, error, retry_at).await
    }
    async fn list_mails(
        &self,
        org: Option<OrgId>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<audit::QueuedMail>, audit::AuditError> {
        self.audit.list_mails(org, before, limit).await
    }
}

#[async_trait]
impl AuditStore for MemoryTenancyStore {
    async fn append(&self, journal: Journal) -> Result<Vec<audit::AuditEvent>, audit::AuditError> {
        self.audit.append(journal).await
    }
    async fn search(
        &self,
        org: OrgId,
        q: &audit::AuditQuery,
    ) -> Result<Vec<audit::AuditEvent>, audit::AuditError> {
        self.audit.search(org, q).await
    }
    async fn anchor(&self, org: OrgId) -> Result<Option<audit::Anchor>, audit::AuditError> {
        self.audit.anchor(org).await
    }
    async fn prune(
        &self,
        anchor: &audit::Anchor,
        journal: audit::PruneJournal<'_>,
    ) -> Result<u64, audit::AuditError> {
        self.audit.prune(anchor, journal).await
    }
    async fn chain_page(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<audit::AuditEvent>, audit::AuditError> {
        self.audit.chain_page(org, after, limit).await
    }
    async fn head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, audit::AuditError> {
        self.audit.head(org).await
    }
    async fn save_checkpoint(
        &self,
        cp: &audit::Checkpoint,
        journal: Journal,
    ) -> Result<(), audit::AuditError> {
        self.audit.save_checkpoint(cp, journal).await
    }
    async fn latest_checkpoint(
        &self,
        org: OrgId,
    ) -> Result<Option<audit::Checkpoint>, audit::AuditError> {
        self.audit.latest_checkpoint(org).await
    }
    async fn save_rotated_checkpoint(
        &self,
        cp: &audit::Checkpoint,
        anchor: Option<(&audit::Anchor, &audit::Anchor)>,
    ) -> Result<(), audit::AuditError> {
        self.audit.save_rotated_checkpoint(cp, anchor).await
    }
    async fn erase_personal_data(
        &self,
        org: OrgId,
        subject: &str,
        journal: Journal,
    ) -> Result<u64, audit::AuditError> {
        self.audit.erase_personal_data(org, subject, journal).await
    }
    async fn organizations(&self) -> Result<Vec<OrgId>, audit::AuditError> {
        self.audit.organizations().await
    }
}

/// An existing account joining an organization must still exist and not have been erased
/// since the service read it (its email is then its erased address), and still have the
/// address the service matched it by.
fn joining_account(s: &State, user: &User) -> Result<(), TenancyError> {
    match s.users.get(&user.id) {
        Some((u, _)) if u.email.as_str() == crate::privacy::erased_address(user.id) => {
            Err(TenancyError::NotFound("account"))
        }
        Some((u, _)) if u.email != user.email => Err(crate::invitations::joining_address_changed()),
        Some(_) => Ok(()),
        None => Err(TenancyError::NotFound("account")),
    }
}

fn email_taken(s: &State, email: &Email) -> bool {
    s.users.values().any(|(u, _)| &u.email == email)
}

#[async_trait]
impl OrgStore for MemoryTenancyStore {
    async fn create_org(
        &self,
        org: &Organization,
        team: &Team,
        owner: &User,
        hash: Option<&str>,
        max_owned: Option<usize>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let owned = s
                .members
                .iter()
                .filter(|m| m.1 == owner.id && m.2 == OrgRole::Owner)
                .count();
            if max_owned.is_some_and(|max| owned >= max) {
                return Err(crate::orgs::too_many_owned(owned));
            }
            if let Some(h) = hash {
                if email_taken(&s, &owner.email) {
                    return Err(TenancyError::Conflict(format!(
                        "an account with the email `{}` exists",
                        owner.email
                    )));
                }
                s.users
                    .insert(owner.id, (owner.clone(), Some(h.to_owned())));
            } else if !s.users.contains_key(&owner.id) {
                return Err(TenancyError::NotFound("user"));
            }
            s.orgs.insert(org.id, org.clone());
            s.teams.push(team.clone());
            s.members
                .push((org.id, owner.id, OrgRole::Owner, org.created_at));
            s.team_members
                .push((team.id, owner.id, org.id, TeamRole::Admin));
        }
        self.commit(journal).await
    }

    async fn add_member(
        &self,
        org: OrgId,
        user: &User,
        hash: Option<&str>,
        role: OrgRole,
        team: TeamId,
        team_role: TeamRole,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            if hash.is_none() {
                joining_account(&s, user)?;
            }
            if !s.orgs.contains_key(&org) {
                return Err(TenancyError::NotFound("organization"));
            }
            let used = (s.members.iter().filter(|m| m.0 == org).count()
                + s.pending(org, user.created_at)
                    .filter(|i| i.email != user.email)
                    .count()) as u64;
            crate::enforce_quota(billing_limits::check_quota(
                &s.limits_in_force(org, limits),
                billing_limits::Limit::Members,
                used,
                1,
            ))?;
            if !s.teams.iter().any(|t| t.id == team && t.org == org) {
                return Err(TenancyError::NotFound("team"));
            }
            if s.members.iter().any(|m| {
                m.0 == org && (m.1 == user.id || (role == OrgRole::Owner && m.2 == OrgRole::Owner))
            }) {
                return Err(TenancyError::Conflict(format!(
                    "`{}` is already a member, or the organization already has an owner",
                    user.email
                )));
            }
            if let Some(h) = hash {
                if email_taken(&s, &user.email) {
                    return Err(TenancyError::Conflict(format!(
                        "an account with the email `{}` exists",
                        user.email
                    )));
                }
                s.users.insert(user.id, (user.clone(), Some(h.to_owned())));
            }
            s.members.push((org, user.id, role, user.created_at));
            s.team_members.push((team, user.id, org, team_role));
            s.settle_invitations(org, user);
        }
        self.audit.readmit(org, &user.id.to_string())?;
        self.commit(journal).await
    }

    async fn count_orgs(&self) -> Result<u64, TenancyError> {
        Ok(self.lock()?.orgs.len() as u64)
    }

    async fn delete_org(
        &self,
        org: OrgId,
        by: UserId,
        journal: Journal,
    ) -> Result<Vec<ResourceId>, TenancyError> {
        let documents = {
            let mut s = self.lock()?;
            if !s.orgs.contains_key(&org) {
                return Err(TenancyError::NotFound("organization"));
            }
            if !s
                .members
                .iter()
                .any(|m| m.0 == org && m.1 == by && m.2 == OrgRole::Owner)
            {
                return Err(TenancyError::Conflict(
                    "only the Owner deletes the organization".into(),
                ));
            }
            let documents: Vec<ResourceId> = s
                .assets
                .iter()
                .filter(|a| a.org == org && a.kind() == crate::assets::AssetKind::Document)
                .map(|a| a.id)
                .collect();
            s.orgs.remove(&org);
            s.pipelines.remove(&org);
            s.members.retain(|m| m.0 != org);
            s.deactivated.retain(|(o, _), _| *o != org);
            s.all_teams.retain(|(o, _), _| *o != org);
            s.teams.retain(|t| t.org != org);
            s.team_members.retain(|t| t.2 != org);
            s.keys.retain(|(k, _)| k.org != org);
            let gone: Vec<rbac_core::InvitationId> = s
                .invitations
                .iter()
                .filter(|(i, _)| i.org == org)
                .map(|(i, _)| i.id)
                .collect();
            s.invitations.retain(|(i, _)| i.org != org);
            s.accepted_by.retain(|i, _| !gone.contains(i));
            s.previews.retain(|(p, _)| p.org != org);
            s.transfers.remove(&org);
            s.assets.retain(|a| a.org != org);
            s.asset_transfers.retain(|t| t.org != org);
            s.usage.retain(|(o, _)| *o != org);
            s.monthly.retain(|(o, _, _), _| *o != org);
            s.alerts.retain(|(o, _, _, _)| *o != org);
            s.scim_tokens.retain(|(t, _)| t.org != org);
            s.scim_users.retain(|(o, _), _| *o != org);
            s.scim_groups.retain(|(o, _), _| *o != org);
            s.consents.retain(|c| c.org != org);
            s.billing.forget_org(org);
            documents
        };
        self.audit.forget_org(org)?;
        self.commit(journal).await?;
        Ok(documents)
    }

    async fn get_org(&self, org: OrgId) -> Result<Organization, TenancyError> {
        self.lock()?
            .orgs
            .get(&org)
            .cloned()
            .ok_or(TenancyError::NotFound("organization"))
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
        {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            let o = s
                .orgs
                .get_mut(&org)
                .ok_or(TenancyError::NotFound("organization"))?;
            if &o.profile != expected || rename.is_some_and(|(was, _)| o.name != was) {
                return Err(TenancyError::Conflict(
                    "the company profile changed meanwhile; reload and try again".into(),
                ));
            }
            o.profile = profile.clone();
            if let Some((_, name)) = rename {
                name.clone_into(&mut o.name);
            }
        }
        self.commit(journal).await
    }

    async fn update_access(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &FeatureAccess,
        access: &FeatureAccess,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            let o = s
                .orgs
                .get_mut(&org)
                .ok_or(TenancyError::NotFound("organization"))?;
            if o.access != *expected {
                return Err(TenancyError::Conflict(
                    "the feature-access settings changed meanwhile; reload and try again".into(),
                ));
            }
            o.access = *access;
        }
        self.commit(journal).await
    }

    async fn update_security(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &SecuritySettings,
        security: &SecuritySettings,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            if let Some(by) = by
                && security.audit_retention_days != expected.audit_retention_days
            {
                let role = s.active_role(org, by);
                if role != Some(OrgRole::Owner) {
                    return Err(crate::security::retention_refused(role));
                }
            }
            let o = s
                .orgs
                .get_mut(&org)
                .ok_or(TenancyError::NotFound("organization"))?;
            if o.security != *expected {
                return Err(TenancyError::Conflict(
                    "the security settings changed meanwhile; reload and try again".into(),
                ));
            }
            o.security = security.clone();
        }
        self.commit(journal).await
    }

    async fn set_limit_overrides(
        &self,
        org: OrgId,
        overrides: &billing_limits::LimitOverrides,
        for_plan: billing_limits::Plan,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let o = s
                .orgs
                .get_mut(&org)
                .ok_or(TenancyError::NotFound("organization"))?;
            if o.plan != for_plan {
                return Err(crate::orgs::plan_changed_under_deal());
            }
            o.limit_overrides = overrides.clone();
            o.limit_overrides_plan = (!overrides.0.is_empty()).then_some(for_plan);
        }
        self.commit(journal).await
    }

    async fn default_team(&self, org: OrgId) -> Result<Team, TenancyError> {
        self.lock()?
            .teams
            .iter()
            .find(|t| t.org == org && t.is_default)
            .cloned()
            .ok_or(TenancyError::NotFound("team"))
    }

    async fn list_members(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<Member>, TenancyError> {
        let s = self.lock()?;
        let mut out: Vec<Member> = s
            .members
            .iter()
            .filter(|m| m.0 == org && after.is_none_or(|a| m.1.to_string() > a.to_string()))
            .filter_map(|m| {
                s.users.get(&m.1).map(|(u, _)| Member {
                    org,
                    user: u.clone(),
                    role: m.2,
                    joined_at: m.3,
                    deactivated_at: s.deactivated.get(&(org, m.1)).copied(),
                    all_teams: s.all_teams.get(&(org, m.1)).copied(),
                })
            })
            .collect();
        out.sort_by_key(|m| m.user.id.to_string());
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn list_members_seen_by(
        &self,
        org: OrgId,
        me: UserId,
        teams: &[TeamId],
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<Member>, TenancyError> {
        let seen: Vec<UserId> = {
            let s = self.lock()?;
            s.members
                .iter()
                .filter(|m| m.0 == org)
                .filter(|m| {
                    m.1 == me
                        || m.2.is_admin()
                        || s.all_teams.contains_key(&(org, m.1))
                        || s.team_members
                            .iter()
                            .any(|t| t.1 == m.1 && t.2 == org && teams.contains(&t.0))
                })
                .map(|m| m.1)
                .collect()
        };
        // Read page after page of everyone, keeping those seen, until the page is full.
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let page = self.list_members(org, cursor, limit).await?;
            let full = page.len() == limit as usize;
            cursor = page.last().map(|m| m.user.id);
            out.extend(page.into_iter().filter(|m| seen.contains(&m.user.id)));
            if !full || out.len() >= limit as usize {
                out.truncate(limit as usize);
                return Ok(out);
            }
        }
    }

    async fn get_member(&self, org: OrgId, user: UserId) -> Result<Option<Member>, TenancyError> {
        let s = self.lock()?;
        Ok(s.members
            .iter()
            .find(|m| m.0 == org && m.1 == user)
            .and_then(|m| {
                s.users.get(&user).map(|(u, _)| Member {
                    org,
                    user: u.clone(),
                    role: m.2,
                    joined_at: m.3,
                    deactivated_at: s.deactivated.get(&(org, m.1)).copied(),
                    all_teams: s.all_teams.get(&(org, m.1)).copied(),
                })
            }))
    }

    async fn team_roles(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Vec<(TeamId, TeamRole)>, TenancyError> {
        Ok(self
            .lock()?
            .team_members
            .iter()
            .filter(|t| t.2 == org && t.1 == user)
            .map(|t| (t.0, t.3))
            .collect())
    }

    async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, TenancyError> {
        let s = self.lock()?;
        let mut out: Vec<Membership> = s
            .members
            .iter()
            .filter(|m| m.1 == user)
            .map(|m| Membership {
                org: m.0,
                org_name: s.orgs.get(&m.0).map(|o| o.name.clone()).unwrap_or_default(),
                role: m.2,
                teams: s
                    .team_members
                    .iter()
                    .filter(|t| t.2 == m.0 && t.1 == user)
                    .map(|t| (t.0, t.3))
                    .collect(),
                all_teams: s.all_teams.get(&(m.0, user)).copied(),
                active: !s.deactivated.contains_key(&(m.0, user)),
            })
            .collect();
        out.sort_by_key(|m| m.org.to_string());
        Ok(out)
    }
}

/// The default: the session with its account, then the memberships (two reads of the maps).
impl TenancyStore for MemoryTenancyStore {}

#[async_trait]
impl AccountStore for MemoryTenancyStore {
    async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, TenancyError> {
        Ok(self
            .lock()?
            .users
            .values()
            .find(|(u, _)| &u.email == email)
            .cloned())
    }

    async fn get_user(&self, user: UserId) -> Result<Option<User>, TenancyError> {
        Ok(self.lock()?.users.get(&user).map(|(u, _)| u.clone()))
    }

    async fn rename_user(
        &self,
        user: UserId,
        expected: &str,
        name: &str,
        orgs: &[OrgId],
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            match s.users.get(&user) {
                None => return Err(TenancyError::NotFound("user")),
                Some((u, _)) if u.name != expected => {
                    return Err(TenancyError::Conflict(
                        "the name changed meanwhile; reload and try again".into(),
                    ));
                }
                Some(_) => {}
            }
            let mut now_in: Vec<OrgId> = s
                .members
                .iter()
                .filter(|m| m.1 == user)
                .map(|m| m.0)
                .collect();
            if !same_orgs(&mut now_in, orgs) {
                return Err(crate::me::organizations_changed());
            }
            let u = &mut s
                .users
                .get_mut(&user)
                .ok_or(TenancyError::NotFound("user"))?
                .0;
            name.clone_into(&mut u.name);
        }
        self.commit(journal).await
    }

    async fn set_password_hash(
        &self,
        user: UserId,
        replacing: &str,
        hash: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        {
            let mut s = self.lock()?;
            let stored = &mut s
                .users
                .get_mut(&user)
                .ok_or(TenancyError::NotFound("user"))?
                .1;
            if stored.as_deref() != Some(replacing) {
                return Ok(false);
            }
            *stored = Some(hash.to_owned());
        }
        self.commit(journal).await?;
        Ok(true)
    }

    async fn change_password_hash(
        &self,
        user: UserId,
        hash: &str,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
        records: crate::SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let ended = replace_password(&mut *self.lock()?, user, hash, keep, now)?;
        self.commit(records(ended)).await?;
        Ok(ended)
    }

    async fn end_sessions_in(
        &self,
        org: OrgId,
        user: UserId,
        by: Option<UserId>,
        now: DateTime<Utc>,
        records: crate::SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let n = {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            let Some(target) = s.members.iter().find(|m| m.0 == org && m.1 == user) else {
                return Err(TenancyError::NotFound("member"));
            };
            if let Some(by) = by
                && by != user
                && target.2 == OrgRole::Owner
            {
                return Err(crate::members::owner_sign_out_refused(OrgRole::Admin));
            }
            sign_out_in(&mut s, org, user, now).0
        };
        self.commit(records(n)).await?;
        Ok(n)
    }

    async fn create_session(
        &self,
        session: &Session,
        token_hash: &str,
        max_live: u32,
        proof: crate::SessionProof,
        records: crate::SessionsEvictedJournal<'_>,
    ) -> Result<Vec<SessionId>, TenancyError> {
        let ended = {
            let mut s = self.lock()?;
            if proof == crate::SessionProof::Password
                && s.mfa
                    .get(&session.user)
                    .is_some_and(|m| m.record.enabled_at.is_some())
            {
                return Err(TenancyError::SecondFactorEnabled);
            }
            let mut live: Vec<usize> = (0..s.sessions.len())
                .filter(|&i| s.sessions[i].0.user == session.user && s.sessions[i].2.is_none())
                .collect();
            live.sort_by_key(|&i| (s.sessions[i].0.created_at, s.sessions[i].0.id));
            let policy = security_policy::SessionPolicy {
                max_concurrent: max_live,
                ..Default::default()
            };
            let evict = security_policy::sessions_to_evict(&policy, live.len());
            let mut ended = Vec::new();
            for &i in live.iter().take(evict) {
                s.sessions[i].2 = Some(session.created_at);
                ended.push(s.sessions[i].0.id);
            }
            s.sessions
                .push((session.clone(), token_hash.to_owned(), None));
            ended
        };
        self.commit(records(&ended)).await?;
        Ok(ended)
    }

    async fn find_session(&self, token_hash: &str) -> Result<Option<Session>, TenancyError> {
        Ok(self
            .lock()?
            .sessions
            .iter()
            .find(|s| s.1 == token_hash && s.2.is_none())
            .map(|s| s.0.clone()))
    }

    async fn touch_session(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        if let Some(s) = self.lock()?.sessions.iter_mut().find(|s| s.0.id == session) {
            s.0.last_seen_at = now;
        }
        Ok(())
    }

    async fn end_session(
        &self,
        user: UserId,
        session: SessionId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let row = s
                .sessions
                .iter_mut()
                .find(|s| s.0.id == session && s.0.user == user && s.2.is_none())
                .ok_or(TenancyError::NotFound("session"))?;
            row.2 = Some(now);
        }
        self.commit(journal).await
    }

    async fn login_throttle(
        &self,
        user: UserId,
    ) -> Result<Option<security_policy::ThrottleState>, TenancyError> {
        Ok(self.lock()?.throttles.get(&user).copied())
    }

    async fn set_login_throttle(
        &self,
        user: UserId,
        state: Option<&security_policy::ThrottleState>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            match state {
                Some(t) => s.throttles.insert(user, *t),
                None => s.throttles.remove(&user),
            };
        }
        self.commit(journal).await
    }

    async fn count_login_failure(
        &self,
        user: UserId,
        policy: &security_policy::LoginThrottlePolicy,
        now: DateTime<Utc>,
        from_familiar_address: bool,
        journal: Journal,
    ) -> Result<security_policy::ThrottleState, TenancyError> {
        let next = {
            let mut s = self.lock()?;
            let next = security_policy::after_failure_from(
                policy,
                s.throttles.get(&user),
                now,
                from_familiar_address,
            );
            s.throttles.insert(user, next);
            next
        };
        self.commit(journal).await?;
        Ok(next)
    }

    async fn last_sign_in(
        &self,
        users: &[UserId],
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, TenancyError> {
        let s = self.lock()?;
        Ok(users
            .iter()
            .filter_map(|u| {
                s.sessions
                    .iter()
                    .filter(|x| x.0.user == *u)
                    .map(|x| x.0.created_at)
                    .max()
                    .map(|t| (*u, t))
            })
            .collect())
    }

    async fn sign_in_addresses(
        &self,
        user: UserId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, TenancyError> {
        let s = self.lock()?;
        let since = s
            .credential_changes
            .get(&user)
            .map_or(since, |c| since.max(*c));
        let mut latest: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for x in s.sessions.iter().map(|x| &x.0) {
            if x.user == user && x.created_at >= since {
                let at = latest.entry(x.ip.as_str()).or_insert(x.created_at);
                *at = (*at).max(x.created_at);
            }
        }
        let mut mine: Vec<(&str, DateTime<Utc>)> = latest.into_iter().collect();
        mine.sort_by_key(|(ip, at)| (std::cmp::Reverse(*at), *ip));
        Ok(mine
            .into_iter()
            .take(limit as usize)
            .map(|(ip, _)| ip.to_owned())
            .collect())
    }

    async fn list_sessions_page(
        &self,
        user: UserId,
        before: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, TenancyError> {
        let s = self.lock()?;
        let key = |x: &Session| std::cmp::Reverse((x.created_at, x.id));
        let after = match before {
            None => None,
            Some(id) => Some(
                s.sessions
                    .iter()
                    .find(|x| x.0.id == id && x.0.user == user)
                    .map(|x| key(&x.0))
                    .ok_or(TenancyError::NotFound("session"))?,
            ),
        };
        let mut out: Vec<Session> = s
            .sessions
            .iter()
            .filter(|x| x.0.user == user && x.2.is_none())
            .filter(|x| after.is_none_or(|a| key(&x.0) > a))
            .map(|x| x.0.clone())
            .collect();
        out.sort_by_key(key);
        out.truncate(limit as usize);
        Ok(out)
    }
}

#[async_trait]
impl ApiKeyStore for MemoryTenancyStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        hash: &str,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            if !s.orgs.contains_key(&key.org) {
                return Err(TenancyError::NotFound("organization"));
            }
            let used = s
                .keys
                .iter()
                .filter(|k| k.0.org == key.org && k.0.revoked_at.is_none())
                .count() as u64;
            crate::enforce_quota(billing_limits::check_quota(
                &s.limits_in_force(key.org, limits),
                billing_limits::Limit::ApiKeys,
                used,
                1,
            ))?;
            match s
                .teams
                .iter()
                .find(|t| t.id == key.team && t.org == key.org)
            {
                None => return Err(TenancyError::NotFound("team")),
                Some(t) if t.archived_at.is_some() => {
                    return Err(crate::teams::archived(
                        &t.name,
                        "no new API key is made for it",
                    ));
                }
                Some(_) => {}
            }
            // Its creator is still an active member (a removal revokes the keys it finds).
            if !s
                .members
                .iter()
                .any(|m| m.0 == key.org && m.1 == key.created_by)
                || s.deactivated.contains_key(&(key.org, key.created_by))
            {
                return Err(TenancyError::NotFound("member"));
            }
            s.keys.push((key.clone(), hash.to_owned()));
        }
        self.commit(journal).await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, TenancyError> {
        Ok(self
            .lock()?
            .keys
            .iter()
            .find(|k| k.1 == hash && k.0.revoked_at.is_none())
            .map(|k| k.0.clone()))
    }

    async fn get_api_key(&self, org: OrgId, key: ApiKeyId) -> Result<Option<ApiKey>, TenancyError> {
        Ok(self
            .lock()?
            .keys
            .iter()
            .find(|k| k.0.org == org && k.0.id == key)
            .map(|k| k.0.clone()))
    }

    async fn list_api_keys(
        &self,
        org: OrgId,
        created_by: Option<UserId>,
        after: Option<ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, TenancyError> {
        self.keys_page(org, after, limit, |k| {
            created_by.is_none_or(|c| k.created_by == c)
        })
    }

    async fn active_api_key_count(&self, org: OrgId) -> Result<u64, TenancyError> {
        Ok(self
            .lock()?
            .keys
            .iter()
            .filter(|k| k.0.org == org && k.0.revoked_at.is_none())
            .count() as u64)
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
        self.keys_page(org, after, limit, |k| {
            (k.created_by == me && own_in.is_none_or(|t| t.contains(&k.team)))
                || all_in.contains(&k.team)
        })
    }

    async fn revoke_api_key(
        &self,
        org: OrgId,
        key: ApiKeyId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let k = s
                .keys
                .iter_mut()
                .find(|k| k.0.org == org && k.0.id == key && k.0.revoked_at.is_none())
                .ok_or(TenancyError::NotFound("API key"))?;
            k.0.revoked_at = Some(now);
        }
        self.commit(journal).await
    }

    async fn touch_api_key(&self, key: ApiKeyId, now: DateTime<Utc>) -> Result<(), TenancyError> {
        if let Some(k) = self.lock()?.keys.iter_mut().find(|k| k.0.id == key) {
            k.0.last_used_at = Some(now);
        }
        Ok(())
    }
}

#[async_trait]
impl InvitationStore for MemoryTenancyStore {
    async fn create_invitation(
        &self,
        inv: &Invitation,
        hash: &str,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        self.lock()?.insert_invitation(inv, hash, limits)?;
        self.commit(journal).await
    }

    async fn find_invitation(&self, hash: &str) -> Result<Option<Invitation>, TenancyError> {
        Ok(self
            .lock()?
            .invitations
            .iter()
            .find(|i| i.1 == hash)
            .map(|i| i.0.clone()))
    }

    async fn get_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, TenancyError> {
        Ok(self
            .lock()?
            .invitations
            .iter()
            .find(|i| i.0.org == org && i.0.id == id)
            .map(|i| i.0.clone()))
    }

    async fn list_invitations(
        &self,
        org: OrgId,
        after: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, TenancyError> {
        let mut out: Vec<Invitation> = self
            .lock()?
            .invitations
            .iter()
            .map(|i| i.0.clone())
            .filter(|i| i.org == org && after.is_none_or(|a| i.id.to_string() < a.to_string()))
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.id.to_string()));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn invitations_accepted_by(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Vec<Invitation>, TenancyError> {
        let s = self.lock()?;
        let mut out: Vec<Invitation> = s
            .invitations
            .iter()
            .map(|i| &i.0)
            .filter(|i| i.org == org && s.accepted_by.get(&i.id) == Some(&user))
            .cloned()
            .collect();
        out.sort_by_key(|i| (i.created_at, i.id.to_string()));
        Ok(out)
    }

    async fn reissue_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        by: UserId,
        hash: &str,
        sent_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let email = {
            let mut s = self.lock()?;
            let role = s
                .invitations
                .iter()
                .find(|i| i.0.org == org && i.0.id == id)
                .map(|i| i.0.role)
                .ok_or(TenancyError::NotFound("invitation"))?;
            crate::invitations::check_inviter(s.active_role(org, by), role)?;
            let row = s
                .invitations
                .iter_mut()
                .find(|i| {
                    i.0.org == org
                        && i.0.id == id
                        && i.0.accepted_at.is_none()
                        && i.0.revoked_at.is_none()
                        && i.0.expires_at > sent_at
                })
                .ok_or(TenancyError::NotFound("invitation"))?;
            row.0.created_at = sent_at;
            row.0.expires_at = expires_at;
            row.1 = hash.to_owned();
            row.0.email.to_string()
        };
        // Pending until now (a stale one is refused above): the address's queued mail is its.
        self.drop_unsent_invitation_mail(org, &email)?;
        self.commit(journal).await
    }

    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        let email = {
            let mut s = self.lock()?;
            let row = s
                .invitations
                .iter_mut()
                .find(|i| {
                    i.0.org == org
                        && i.0.id == id
                        && i.0.accepted_at.is_none()
                        && i.0.revoked_at.is_none()
                })
                .ok_or(TenancyError::NotFound("invitation"))?;
            row.0.revoked_at = Some(now);
            (row.0.email.to_string(), row.0.expires_at > now)
        };
        // An expired invitation's revocation leaves the mail of a newer one to the address.
        if let (email, true) = email {
            self.drop_unsent_invitation_mail(org, &email)?;
        }
        self.commit(journal).await
    }

    async fn accept_invitation(
        &self,
        inv: &Invitation,
        hash: &str,
        user: &User,
        new_password_hash: Option<&str>,
        team: TeamId,
        team_role: TeamRole,
        limits: &billing_limits::PlanLimits,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            if new_password_hash.is_none() {
                joining_account(&s, user)?;
            }
            let Some(pos) = s
                .invitations
                .iter()
                .position(|i| i.0.id == inv.id && i.1 == hash)
            else {
                return Err(TenancyError::NotFound("invitation"));
            };
            match s.invitations[pos].0.status(now) {
                InvitationStatus::Pending => {}
                other => return Err(TenancyError::InvitationUnusable(other)),
            }
            // Members and the other pending invitations: this one's seat becomes the member's.
            let used = (s.members.iter().filter(|m| m.0 == inv.org).count()
                + s.pending(inv.org, now).count().saturating_sub(1)) as u64;
            crate::enforce_quota(billing_limits::check_quota(
                &s.limits_in_force(inv.org, limits),
                billing_limits::Limit::Members,
                used,
                1,
            ))?;
            if new_password_hash.is_some() && email_taken(&s, &user.email) {
                return Err(TenancyError::Conflict(format!(
                    "an account with the email `{}` exists: sign in and accept the invitation",
                    user.email
                )));
            }
            if s.members.iter().any(|m| m.0 == inv.org && m.1 == user.id) {
                return Err(TenancyError::Conflict(format!(
                    "`{}` is already a member",
                    user.email
                )));
            }
            if !s
                .teams
                .iter()
                .any(|t| t.org == inv.org && t.id == team && t.archived_at.is_none())
            {
                return Err(crate::invitations::gone_team());
            }
            if let Some(h) = new_password_hash {
                s.users.insert(user.id, (user.clone(), Some(h.to_owned())));
            }
            s.invitations[pos].0.accepted_at = Some(now);
            s.accepted_by.insert(inv.id, user.id);
            s.members.push((inv.org, user.id, inv.role, now));
            s.team_members.push((team, user.id, inv.org, team_role));
        }
        self.audit.readmit(inv.org, &user.id.to_string())?;
        self.commit(journal).await
    }
}

#[async_trait]
impl BulkStore for MemoryTenancyStore {
    async fn member_and_pending_emails(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, Vec<String>), TenancyError> {
        let s = self.lock()?;
        let members = s
            .members
            .iter()
            .filter(|m| m.0 == org)
            .filter_map(|m| s.users.get(&m.1).map(|(u, _)| u.email.to_string()))
            .collect();
        let pending = s.pending(org, now).map(|i| i.email.to_string()).collect();
        Ok((members, pending))
    }

    async fn save_preview(&self, preview: &BulkPreview) -> Result<(), TenancyError> {
        self.lock()?.previews.push((preview.clone(), false));
        Ok(())
    }

    async fn get_preview(
        &self,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Option<BulkPreview>, TenancyError> {
        Ok(self
            .lock()?
            .previews
            .iter()
            .find(|p| p.0.org == org && p.0.id == id && !p.1)
            .map(|p| p.0.clone()))
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
        {
            let mut s = self.lock()?;
            let Some(pos) = s
                .previews
                .iter()
                .position(|p| p.0.org == org && p.0.id == id && !p.1 && now < p.0.expires_at)
            else {
                return Err(TenancyError::NotFound("preview"));
            };
            // All or nothing: on the first refused row, drop the rows this batch added.
            let before = s.invitations.len();
            for (inv, hash) in invitations {
                if let Err(e) = s.insert_invitation(inv, hash, limits) {
                    s.invitations.truncate(before);
                    return Err(e);
                }
            }
            s.previews[pos].1 = true;
        }
        self.commit(journal).await
    }
}

#[async_trait]
impl MembershipStore for MemoryTenancyStore {
    async fn set_all_teams_role(
        &self,
        org: OrgId,
        user: UserId,
        from: Option<TeamRole>,
        to: Option<TeamRole>,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            if !s.members.iter().any(|m| m.0 == org && m.1 == user) {
                return Err(TenancyError::NotFound("member"));
            }
            if to.is_some()
                && s.members
                    .iter()
                    .any(|m| m.0 == org && m.1 == user && m.2.is_admin())
            {
                return Err(crate::members::all_teams_for_users_only());
            }
            if s.all_teams.get(&(org, user)).copied() != from {
                return Err(crate::members::all_teams_changed());
            }
            match to {
                Some(role) => s.all_teams.insert((org, user), role),
                None => s.all_teams.remove(&(org, user)),
            };
        }
        self.commit(journal).await
    }

    async fn set_role(
        &self,
        org: OrgId,
        user: UserId,
        from: OrgRole,
        to: OrgRole,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            let m = s
                .members
                .iter_mut()
                .find(|m| m.0 == org && m.1 == user && m.2 == from)
                .ok_or_else(|| {
                    TenancyError::Conflict(
                        "the member's role changed meanwhile; reload and try again".into(),
                    )
                })?;
            m.2 = to;
            set_default_team_role(&mut s, org, user, to);
            if !to.is_admin() {
                revoke_invitations_by(&mut s, org, user, Utc::now());
                revoke_scim_tokens(&mut s, org, user, Utc::now());
                lower_team_admin_roles(&mut s, org, user);
            }
        }
        self.commit(journal).await
    }

    async fn save_transfer(
        &self,
        t: &OwnershipTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let role_of = |user: UserId| {
                s.members
                    .iter()
                    .find(|m| m.0 == t.org && m.1 == user)
                    .map(|m| m.2)
            };
            if role_of(t.from) != Some(OrgRole::Owner) {
                return Err(TenancyError::Conflict(
                    "ownership changed meanwhile; the transfer was not proposed".into(),
                ));
            }
            if role_of(t.to).is_none() {
                return Err(TenancyError::NotFound("member"));
            }
            if s.deactivated.contains_key(&(t.org, t.to)) {
                return Err(crate::members::transfer_to_deactivated());
            }
            s.transfers.insert(t.org, t.clone());
        }
        self.commit(journal).await
    }

    async fn pending_transfer(
        &self,
        org: OrgId,
    ) -> Result<Option<OwnershipTransfer>, TenancyError> {
        Ok(self.lock()?.transfers.get(&org).cloned())
    }

    async fn withdraw_transfer(
        &self,
        t: &OwnershipTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            if s.transfers.get(&t.org) != Some(t) {
                return Err(TenancyError::NotFound("ownership transfer"));
            }
            s.transfers.remove(&t.org);
        }
        self.commit(journal).await
    }

    async fn complete_transfer(
        &self,
        t: &OwnershipTransfer,
        _now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let conflict = || {
                TenancyError::Conflict(
                    "ownership changed meanwhile; the transfer was not applied".into(),
                )
            };
            if s.transfers.get(&t.org) != Some(t) {
                return Err(conflict());
            }
            let owner = s
                .members
                .iter()
                .position(|m| m.0 == t.org && m.1 == t.from && m.2 == OrgRole::Owner)
                .ok_or_else(conflict)?;
            let target = s
                .members
                .iter()
                .position(|m| m.0 == t.org && m.1 == t.to)
                .ok_or_else(conflict)?;
            s.members[owner].2 = OrgRole::Admin;
            s.members[target].2 = OrgRole::Owner;
            s.transfers.remove(&t.org);
            set_default_team_role(&mut s, t.org, t.from, OrgRole::Admin);
            set_default_team_role(&mut s, t.org, t.to, OrgRole::Owner);
        }
        self.commit(journal).await
    }

    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        disposition: Disposition,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
        sessions: crate::SessionsEndedJournal<'_>,
    ) -> Result<RemovalReport, TenancyError> {
        let (report, touched) =
            {
                let mut s = self.lock()?;
                s.check_acting(org, by)?;
                if let Some(to) = disposition.recipient() {
                    let role = s
                        .members
                        .iter()
                        .find(|m| m.0 == org && m.1 == to)
                        .map(|m| m.2);
                    if to == user || role.is_none() || s.deactivated.contains_key(&(org, to)) {
                        return Err(crate::members::recipient_refused());
                    }
                    if matches!(disposition, Disposition::TransferToOwner(_))
                        && role != Some(OrgRole::Owner)
                    {
                        return Err(crate::members::ownership_changed());
                    }
                    if let Some(role) = role
                        && !crate::members::reaches_every_team(
                            role,
                            s.all_teams.contains_key(&(org, to)),
                        )
                    {
                        let mut missing: Vec<String> = s
                            .teams
                            .iter()
                            .filter(|t| {
                                t.org == org
                                    && s.assets.iter().any(|a| {
                                        a.org == org && a.created_by == user && a.team == t.id
                                    })
                                    && !s.team_members.iter().any(|m| m.0 == t.id && m.1 == to)
                            })
                            .map(|t| t.name.clone())
                            .collect();
                        if !missing.is_empty() {
                            missing.sort();
                            return Err(crate::members::recipient_outside_teams(&missing));
                        }
                    }
                }
                let Some(pos) = s
                    .members
                    .iter()
                    .position(|m| m.0 == org && m.1 == user && m.2 != OrgRole::Owner)
                else {
                    return Err(TenancyError::NotFound("member"));
                };
                s.members.remove(pos);
                s.deactivated.remove(&(org, user));
                s.all_teams.remove(&(org, user));
                s.scim_users.remove(&(org, user));
                s.team_members.retain(|t| !(t.2 == org && t.1 == user));
                withdraw_grants(&mut s, org, user, now);
                let mut keys = 0;
                for k in s.keys.iter_mut().filter(|k| {
                    k.0.org == org && k.0.created_by == user && k.0.revoked_at.is_none()
                }) {
                    k.0.revoked_at = Some(now);
                    keys += 1;
                }
                let scim_tokens = revoke_scim_tokens(&mut s, org, user, now);
                let (transferred, deleted) = dispose_assets(&mut s, org, user, disposition);
                let (touched, ended) = sign_out_in(&mut s, org, user, now);
                let report = RemovalReport {
                    transferred: transferred.len() as u64,
                    deleted: deleted.iter().filter(|a| a.created_by == user).count() as u64,
                    cascaded: deleted.iter().filter(|a| a.created_by != user).count() as u64,
                    api_keys_deactivated: keys,
                    scim_tokens_revoked: scim_tokens,
                    sessions_ended: ended,
                    deleted_documents: deleted
                        .iter()
                        .filter(|a| a.kind() == AssetKind::Document)
                        .map(|a| a.id)
                        .collect(),
                };
                (report, touched)
            };
        let mut journal = journal;
        journal.absorb(sessions(touched));
        self.commit(journal).await?;
        Ok(report)
    }
}

/// A demotion's: `user`'s Admin roles in the teams of `org` become Member roles (as
/// `SeaStore`'s `change_role`).
fn lower_team_admin_roles(s: &mut State, org: OrgId, user: UserId) {
    for t in s
        .team_members
        .iter_mut()
        .filter(|t| t.2 == org && t.1 == user && t.3 == TeamRole::Admin)
    {
        t.3 = TeamRole::Member;
    }
}

fn set_default_team_role(s: &mut State, org: OrgId, user: UserId, role: OrgRole) {
    // With every role change: a role in every team is a User's, and one kept through a
    // promotion would come back with a later demotion.
    if role.is_admin() {
        s.all_teams.remove(&(org, user));
    }
    let Some(default) = s
        .teams
        .iter()
        .find(|t| t.org == org && t.is_default)
        .map(|t| t.id)
    else {
        return;
    };
    let team_role = if role.is_admin() {
        TeamRole::Admin
    } else {
        TeamRole::Member
    };
    for t in s
        .team_members
        .iter_mut()
        .filter(|t| t.0 == default && t.1 == user)
    {
        t.3 = team_role;
    }
}

/// Revokes the invitations the person sent that are still pending: on losing admin rights
/// (a transfer of ownership addressed to them stays: the Owner proposed it to a member, of any
/// role, and only the Owner withdraws it).
fn revoke_invitations_by(s: &mut State, org: OrgId, user: UserId, now: DateTime<Utc>) {
    let mut revoked = Vec::new();
    for (inv, _) in s.invitations.iter_mut().filter(|(i, _)| {
        i.org == org && i.invited_by == user && i.accepted_at.is_none() && i.revoked_at.is_none()
    }) {
        if inv.expires_at > now {
            revoked.push((org, inv.email.to_string()));
        }
        inv.revoked_at = Some(now);
    }
    s.revoked_mail.extend(revoked);
}

/// Revokes the person's pending invitations and drops transfers addressed to them: on leaving
/// the organization or being deactivated.
/// Signs `user` out of `org` (as `TenancyStore::end_sessions_in` does): each live session
/// still good in another organization where they are active is refused in `org`, every other
/// ends. How many sessions it touched, and how many of those it ended.
fn sign_out_in(s: &mut State, org: OrgId, user: UserId, now: DateTime<Utc>) -> (u64, u64) {
    let elsewhere: Vec<OrgId> = s
        .members
        .iter()
        .filter(|m| m.1 == user && m.0 != org && !s.deactivated.contains_key(&(m.0, user)))
        .map(|m| m.0)
        .collect();
    let (mut touched, mut ended) = (0, 0);
    for x in s
        .sessions
        .iter_mut()
        .filter(|x| x.0.user == user && x.2.is_none())
    {
        match x.0.sign_out_of(org, &elsewhere) {
            crate::SignOut::End => {
                x.2 = Some(now);
                ended += 1;
            }
            crate::SignOut::Refuse => x.0.signed_out_of.push(org),
            crate::SignOut::Already => continue,
        }
        touched += 1;
    }
    (touched, ended)
}

/// Revokes the SCIM tokens `user` created in `org` that are still live; how many.
fn revoke_scim_tokens(s: &mut State, org: OrgId, user: UserId, now: DateTime<Utc>) -> u64 {
    let mut n = 0;
    for (t, _) in s
        .scim_tokens
        .iter_mut()
        .filter(|(t, _)| t.org == org && t.created_by == user && t.revoked_at.is_none())
    {
        t.revoked_at = Some(now);
        n += 1;
    }
    n
}

fn withdraw_grants(s: &mut State, org: OrgId, user: UserId, now: DateTime<Utc>) {
    revoke_invitations_by(s, org, user, now);
    if s.transfers.get(&org).is_some_and(|t| t.to == user) {
        s.transfers.remove(&org);
    }
}

/// Ids of `root` and everything under it.
fn subtree(s: &State, org: OrgId, root: ResourceId) -> Vec<ResourceId> {
    let mut ids = vec![root];
    // Assets nest at most two levels (chat interface → knowledge base → document).
    for _ in 0..2 {
        let more: Vec<ResourceId> = s
            .assets
            .iter()
            .filter(|a| {
                a.org == org && a.parent.is_some_and(|p| ids.contains(&p)) && !ids.contains(&a.id)
            })
            .map(|a| a.id)
            .collect();
        ids.extend(more);
    }
    ids
}

/// Hands a removed member's assets to another member, or deletes them with what is under them.
fn dispose_assets(
    s: &mut State,
    org: OrgId,
    user: UserId,
    disposition: Disposition,
) -> (Vec<ResourceId>, Vec<Asset>) {
    let theirs: Vec<ResourceId> = s
        .assets
        .iter()
        .filter(|a| a.org == org && a.created_by == user)
        .map(|a| a.id)
        .collect();
    match disposition.recipient() {
        Some(to) => {
            for a in s.assets.iter_mut().filter(|a| theirs.contains(&a.id)) {
                a.created_by = to;
            }
            (theirs, Vec::new())
        }
        None => {
            let mut doomed: Vec<ResourceId> = Vec::new();
            for root in theirs {
                for id in subtree(s, org, root) {
                    if !doomed.contains(&id) {
                        doomed.push(id);
                    }
                }
            }
            let (gone, kept): (Vec<Asset>, Vec<Asset>) = std::mem::take(&mut s.assets)
                .into_iter()
                .partition(|a| doomed.contains(&a.id));
            s.assets = kept;
            (Vec::new(), gone)
        }
    }
}

fn quota_use(s: &State, org: OrgId, kind: AssetKind) -> u64 {
    s.assets
        .iter()
        .filter(|a| a.org == org && a.kind() == kind)
        .count() as u64
}

/// Adds `asset` after the checks `WorkspaceStore::create_asset` names.
fn insert_asset_checked(
    s: &mut State,
    asset: &Asset,
    limits: &billing_limits::PlanLimits,
) -> Result<(), TenancyError> {
    let Some(team) = s
        .teams
        .iter()
        .find(|t| t.org == asset.org && t.id == asset.team)
    else {
        return Err(TenancyError::NotFound("team"));
    };
    if team.archived_at.is_some() {
        return Err(TenancyError::Conflict(format!(
            "the team `{}` is archived",
            team.name
        )));
    }
    // Its creator is still an active member, as `SeaStore` checks under the lock.
    if s.active_role(asset.org, asset.created_by).is_none() {
        return Err(TenancyError::NotFound("member"));
    }
    if let Some(p) = asset.parent {
        match s
            .assets
            .iter()
            .find(|a| a.id == p && a.org == asset.org && a.team == asset.team)
        {
            None => return Err(TenancyError::NotFound("parent")),
            Some(parent) if parent.archived_at.is_some() => {
                return Err(TenancyError::Conflict(format!(
                    "`{}` is archived; unarchive it first",
                    parent.name
                )));
            }
            Some(_) => {}
        }
    }
    let kind = asset.kind();
    crate::enforce_quota(billing_limits::check_quota(
        &s.limits_in_force(asset.org, limits),
        kind.limit(),
        quota_use(s, asset.org, kind),
        1,
    ))?;
    if asset.size_bytes > 0 {
        let used: u64 = s
            .assets
            .iter()
            .filter(|a| a.org == asset.org)
            .map(|a| a.size_bytes)
            .sum();
        crate::enforce_quota(billing_limits::check_quota(
            &s.limits_in_force(asset.org, limits),
            billing_limits::Limit::StorageBytes,
            used,
            asset.size_bytes,
        ))?;
    }
    if let crate::assets::AssetDetails::Domain { hostname, .. } = &asset.details
            && s.assets.iter().any(|a| {
                a.org == asset.org
                    && matches!(&a.details, crate::assets::AssetDetails::Domain { hostname: h, .. } if h == hostname)
            })
        {
            return Err(TenancyError::Conflict(format!("`{hostname}` is already added")));
        }
    s.assets.push(asset.clone());
    Ok(())
}

#[async_trait]
impl WorkspaceStore for MemoryTenancyStore {
    async fn documents_among(&self, ids: &[ResourceId]) -> Result<Vec<ResourceId>, TenancyError> {
        let s = self.lock()?;
        Ok(ids
            .iter()
            .filter(|id| {
                s.assets
                    .iter()
                    .any(|a| a.id == **id && a.kind() == crate::assets::AssetKind::Document)
            })
            .copied()
            .collect())
    }

    async fn create_team(&self, team: &Team, journal: Journal) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            if !s.orgs.contains_key(&team.org) {
                return Err(TenancyError::NotFound("organization"));
            }
            if s.teams
                .iter()
                .any(|t| t.org == team.org && t.name == team.name)
            {
                return Err(TenancyError::Conflict(format!(
                    "a team named `{}` exists",
                    team.name
                )));
            }
            s.teams.push(team.clone());
        }
        self.commit(journal).await
    }

    async fn list_teams(&self, org: OrgId) -> Result<Vec<Team>, TenancyError> {
        let mut teams: Vec<Team> = self
            .lock()?
            .teams
            .iter()
            .filter(|t| t.org == org)
            .cloned()
            .collect();
        teams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(teams)
    }

    async fn get_team(&self, org: OrgId, team: TeamId) -> Result<Option<Team>, TenancyError> {
        Ok(self
            .lock()?
            .teams
            .iter()
            .find(|t| t.org == org && t.id == team)
            .cloned())
    }

    async fn update_team(
        &self,
        before: &Team,
        after: &Team,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            if s.teams
                .iter()
                .any(|t| t.org == after.org && t.id != after.id && t.name == after.name)
            {
                return Err(TenancyError::Conflict(format!(
                    "a team named `{}` exists",
                    after.name
                )));
            }
            let Some(t) = s.teams.iter_mut().find(|t| *t == before) else {
                return Err(TenancyError::Conflict("the team changed meanwhile".into()));
            };
            // The editable fields only, as a database store writes them.
            t.name.clone_from(&after.name);
            t.archived_at = after.archived_at;
        }
        self.commit(journal).await
    }

    async fn delete_team(
        &self,
        org: OrgId,
        team: TeamId,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            let Some(pos) = s
                .teams
                .iter()
                .position(|t| t.org == org && t.id == team && !t.is_default)
            else {
                return Err(TenancyError::NotFound("team"));
            };
            if s.stages(org).contains(&team) {
                return Err(crate::pipeline::team_is_a_stage());
            }
            let assets = s.assets.iter().filter(|a| a.team == team).count();
            let keys = s
                .keys
                .iter()
                .filter(|k| k.0.team == team && k.0.revoked_at.is_none())
                .count();
            if assets + keys > 0 {
                return Err(TenancyError::Conflict(format!(
                    "the team still holds {assets} resources and {keys} active API keys; transfer or delete them first"
                )));
            }
            if let Some((balance, percent)) = s.billing.team_account_in_use(org, team) {
                return Err(crate::teams::holds_credits(balance, percent));
            }
            s.billing.drop_team_account(org, team);
            s.teams.remove(pos);
            s.team_members.retain(|t| t.0 != team);
            s.scim_groups.remove(&(org, team));
            let mut revoked = Vec::new();
            for (i, _) in &mut s.invitations {
                if i.org == org
                    && i.team.is_some_and(|t| t.id == team)
                    && i.status(now) == InvitationStatus::Pending
                {
                    i.revoked_at = Some(now);
                    revoked.push((org, i.email.to_string()));
                }
            }
            s.revoked_mail.extend(revoked);
        }
        self.commit(journal).await
    }

    async fn team_members_page(
        &self,
        org: OrgId,
        team: TeamId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<TeamMember>, TenancyError> {
        let s = self.lock()?;
        // A role in every team counts only for a team of this organization.
        let team_of_org = s.teams.iter().any(|t| t.id == team && t.org == org);
        let mut out: Vec<TeamMember> = s
            .members
            .iter()
            .filter(|m| m.0 == org && after.is_none_or(|a| m.1 > a))
            .filter_map(|m| {
                let given = s
                    .team_members
                    .iter()
                    .find(|t| t.0 == team && t.1 == m.1 && t.2 == org)
                    .map(|t| t.3);
                let all_teams = s.all_teams.get(&(org, m.1)).copied();
                let role = given.max(all_teams.filter(|_| team_of_org))?;
                let (user, _) = s.users.get(&m.1)?;
                Some(TeamMember {
                    member: Member {
                        org,
                        user: user.clone(),
                        role: m.2,
                        joined_at: m.3,
                        deactivated_at: s.deactivated.get(&(org, m.1)).copied(),
                        all_teams,
                    },
                    role,
                    assigned: given,
                })
            })
            .collect();
        out.sort_by_key(|m| m.member.user.id);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn set_team_member_recorded(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        role: Option<TeamRole>,
        by: Option<UserId>,
        journal: crate::store::TeamRoleJournal<'_>,
    ) -> Result<(), TenancyError> {
        let journal = {
            let mut s = self.lock()?;
            let Some(t) = s.teams.iter().find(|t| t.org == org && t.id == team) else {
                return Err(TenancyError::NotFound("team"));
            };
            if let Some(by) = by {
                let in_team = s
                    .team_members
                    .iter()
                    .find(|m| m.0 == team && m.1 == by)
                    .map(|m| m.3);
                let all_teams = s.all_teams.get(&(org, by)).copied();
                if !crate::teams::may_manage_members(s.active_role(org, by), all_teams, in_team) {
                    return Err(crate::members::acting_role_changed());
                }
            }
            let archived = t.archived_at.is_some().then(|| t.name.clone());
            if !s.members.iter().any(|m| m.0 == org && m.1 == user) {
                return Err(TenancyError::NotFound("member"));
            }
            let pos = s
                .team_members
                .iter()
                .position(|t| t.0 == team && t.1 == user);
            // Someone with a role in every team is in it already.
            if let (Some(name), None, Some(_)) = (&archived, pos, role)
                && !s.all_teams.contains_key(&(org, user))
            {
                return Err(crate::teams::archived_team(name));
            }
            let before = pos.map(|i| s.team_members[i].3);
            match (pos, role) {
                (Some(i), Some(r)) => s.team_members[i].3 = r,
                (None, Some(r)) => s.team_members.push((team, user, org, r)),
                (Some(i), None) => {
                    s.team_members.remove(i);
                }
                (None, None) => return Err(TenancyError::NotFound("team member")),
            }
            journal(before)
        };
        self.commit(journal).await
    }

    async fn create_asset(
        &self,
        asset: &Asset,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        self.create_assets(std::slice::from_ref(asset), limits, journal)
            .await
    }

    async fn create_assets(
        &self,
        assets: &[Asset],
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        if assets.is_empty() {
            return Err(TenancyError::Invalid("no assets to create".into()));
        }
        if assets.windows(2).any(|w| w[0].org != w[1].org) {
            return Err(TenancyError::Invalid(
                "assets created together belong to one organization".into(),
            ));
        }
        {
            let mut s = self.lock()?;
            let stages = s.stages(assets[0].org);
            for a in assets {
                crate::pipeline::check_entry(&stages, a.kind(), None, a.team)?;
            }
            let before = s.assets.len();
            for a in assets {
                if let Err(e) = insert_asset_checked(&mut s, a, limits) {
                    s.assets.truncate(before);
                    return Err(e);
                }
            }
        }
        self.commit(journal).await
    }

    async fn get_asset(&self, org: OrgId, id: ResourceId) -> Result<Option<Asset>, TenancyError> {
        Ok(self
            .lock()?
            .assets
            .iter()
            .find(|a| a.org == org && a.id == id)
            .cloned())
    }

    async fn list_assets(
        &self,
        org: OrgId,
        filter: &AssetFilter,
        after: Option<ResourceId>,
        limit: u32,
    ) -> Result<Vec<Asset>, TenancyError> {
        let s = self.lock()?;
        let mut out: Vec<Asset> = s
            .assets
            .iter()
            .filter(|a| a.org == org && a.kind() == filter.kind)
            .filter(|a| filter.teams.as_ref().is_none_or(|t| t.contains(&a.team)))
            .filter(|a| filter.parent.is_none_or(|p| a.parent == Some(p)))
            .filter(|a| {
                filter
                    .archived
                    .is_none_or(|archived| a.archived_at.is_some() == archived)
            })
            .filter(|a| after.is_none_or(|c| a.id > c))
            .cloned()
            .collect();
        out.sort_by_key(|a| a.id);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn update_asset(
        &self,
        before: &Asset,
        after: &Asset,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            if before.archived_at == after.archived_at
                && let Some(t) = s
                    .teams
                    .iter()
                    .find(|t| t.org == before.org && t.id == before.team && t.archived_at.is_some())
            {
                return Err(crate::assets::team_archived(&t.name));
            }
            let Some(a) = s
                .assets
                .iter_mut()
                .find(|a| a.org == before.org && a.id == before.id)
            else {
                return Err(TenancyError::NotFound(before.kind().label()));
            };
            if a.team != before.team || a.name != before.name || a.updated_at != before.updated_at {
                return Err(TenancyError::Conflict(format!(
                    "the {} changed meanwhile",
                    before.kind().label()
                )));
            }
            // The editable fields only, as a database store writes them.
            a.name.clone_from(&after.name);
            a.updated_at = after.updated_at;
            a.details = after.details.clone();
            a.archived_at = after.archived_at;
        }
        self.commit(journal).await
    }

    async fn delete_asset(
        &self,
        org: OrgId,
        id: ResourceId,
        team: TeamId,
        only_by: Option<UserId>,
        journal: Journal,
    ) -> Result<Vec<Asset>, TenancyError> {
        let gone = {
            let mut s = self.lock()?;
            match s.assets.iter().find(|a| a.org == org && a.id == id) {
                None => return Err(TenancyError::NotFound("asset")),
                Some(a) if a.team != team => return Err(crate::assets::moved_meanwhile()),
                Some(_) => {}
            }
            let ids = subtree(&s, org, id);
            if let Some(creator) = only_by
                && s.assets
                    .iter()
                    .any(|a| a.org == org && ids.contains(&a.id) && a.created_by != creator)
            {
                return Err(crate::assets::others_under_it());
            }
            let (gone, kept): (Vec<Asset>, Vec<Asset>) = std::mem::take(&mut s.assets)
                .into_iter()
                .partition(|a| ids.contains(&a.id));
            s.assets = kept;
            gone
        };
        self.commit(journal).await?;
        Ok(gone)
    }

    async fn transfer_asset(
        &self,
        t: &AssetTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            match s.teams.iter().find(|x| x.org == t.org && x.id == t.to_team) {
                None => return Err(TenancyError::NotFound("team")),
                Some(x) if x.archived_at.is_some() => {
                    return Err(TenancyError::Conflict(format!(
                        "the team `{}` is archived",
                        x.name
                    )));
                }
                Some(_) => {}
            }
            let Some(kind) = s
                .assets
                .iter()
                .find(|a| {
                    a.org == t.org
                        && a.id == t.asset
                        && a.team == t.from_team
                        && a.name == t.from_name
                })
                .map(Asset::kind)
            else {
                return Err(crate::assets::moved_meanwhile());
            };
            crate::pipeline::check_entry(&s.stages(t.org), kind, Some(t.from_team), t.to_team)?;
            let ids = subtree(&s, t.org, t.asset);
            for a in s.assets.iter_mut().filter(|a| ids.contains(&a.id)) {
                a.team = t.to_team;
                if a.id == t.asset {
                    a.name.clone_from(&t.to_name);
                    a.updated_at = t.at;
                }
            }
            s.asset_transfers.push(t.clone());
        }
        self.commit(journal).await
    }

    async fn transfers_of(
        &self,
        org: OrgId,
        asset: ResourceId,
    ) -> Result<Vec<AssetTransfer>, TenancyError> {
        Ok(self
            .lock()?
            .asset_transfers
            .iter()
            .filter(|t| t.org == org && t.asset == asset)
            .cloned()
            .collect())
    }

    async fn record_usage(&self, usage: &UsageRecord, org: OrgId) -> Result<(), TenancyError> {
        let mut s = self.lock()?;
        match s.usage.iter_mut().find(|(o, u)| {
            *o == org
                && u.team == usage.team
                && u.asset == usage.asset
                && u.metric == usage.metric
                && u.day == usage.day
        }) {
            Some((_, u)) => u.count += usage.count,
            None => s.usage.push((org, usage.clone())),
        }
        Ok(())
    }

    async fn usage(
        &self,
        org: OrgId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<UsageRecord>, TenancyError> {
        let mut out: Vec<UsageRecord> = self
            .lock()?
            .usage
            .iter()
            .filter(|(o, u)| *o == org && u.day >= from && u.day <= to)
            .map(|(_, u)| u.clone())
            .collect();
        out.sort_by(|a, b| {
            (a.day, a.team, a.asset, &a.metric).cmp(&(b.day, b.team, b.asset, &b.metric))
        });
        Ok(out)
    }

    async fn storage(&self, org: OrgId) -> Result<Vec<TeamStorage>, TenancyError> {
        let s = self.lock()?;
        let mut out: Vec<TeamStorage> = Vec::new();
        for a in s
            .assets
            .iter()
            .filter(|a| a.org == org && a.kind() == AssetKind::Document)
        {
            match out.iter_mut().find(|t| t.team == a.team) {
                Some(t) => {
                    t.documents += 1;
                    t.bytes += a.size_bytes;
                }
                None => out.push(TeamStorage {
                    team: a.team,
                    documents: 1,
                    bytes: a.size_bytes,
                }),
            }
        }
        out.sort_by_key(|t| t.team);
        Ok(out)
    }

    async fn record(&self, journal: Journal) -> Result<(), TenancyError> {
        self.commit(journal).await
    }
}

impl State {
    fn active_mfa(&mut self, user: UserId) -> Result<&mut MfaRow, TenancyError> {
        self.mfa
            .get_mut(&user)
            .filter(|r| r.record.enabled_at.is_some())
            .ok_or(TenancyError::NotFound("second factor"))
    }
}

#[async_trait]
impl crate::uptime::UptimeStore for MemoryTenancyStore {
    async fn note_up(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        tolerance: chrono::Duration,
    ) -> Result<(), TenancyError> {
        let mut s = self.lock()?;
        let latest = s
            .uptime
            .iter_mut()
            .filter(|x| x.instance == instance && x.started_at <= now)
            .max_by_key(|x| (x.started_at, x.last_seen));
        match latest {
            Some(x) if x.last_seen <= now && now - x.last_seen <= tolerance => x.last_seen = now,
            _ => s.uptime.push(crate::uptime::UptimeSpan {
                instance: instance.to_owned(),
                started_at: now,
                last_seen: now,
            }),
        }
        Ok(())
    }

    async fn declare_outage(
        &self,
        reference: &str,
        at: DateTime<Utc>,
        ended: bool,
    ) -> Result<(), TenancyError> {
        let mut s = self.lock()?;
        let found = s.outages.iter_mut().find(|o| o.reference == reference);
        match (found, ended) {
            (Some(o), false) if o.ended_at.is_some() => {
                return Err(crate::uptime::over_already(reference));
            }
            (Some(_), false) => {}
            (None, false) => s.outages.push(crate::uptime::DeclaredOutage {
                reference: reference.to_owned(),
                started_at: at,
                ended_at: None,
            }),
            (None, true) => return Err(TenancyError::NotFound("declared outage")),
            (Some(o), true) => {
                if o.ended_at.is_none() {
                    if at < o.started_at {
                        return Err(crate::uptime::ends_before_it_began(reference));
                    }
                    o.ended_at = Some(at);
                }
            }
        }
        Ok(())
    }

    async fn declared_outages(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::uptime::DeclaredOutage>, TenancyError> {
        let mut out: Vec<_> = self
            .lock()?
            .outages
            .iter()
            .filter(|o| o.started_at < to && o.ended_at.is_none_or(|e| e >= from))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.started_at, &a.reference).cmp(&(b.started_at, &b.reference)));
        Ok(out)
    }

    async fn uptime_spans(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::uptime::UptimeSpan>, TenancyError> {
        let s = self.lock()?;
        let key = |x: &&crate::uptime::UptimeSpan| (x.started_at, x.instance.clone(), x.last_seen);
        let before = s
            .uptime
            .iter()
            .filter(|x| x.last_seen < from)
            .max_by_key(|x| (x.last_seen, x.started_at, x.instance.clone()));
        let after = s
            .uptime
            .iter()
            .filter(|x| x.started_at >= to)
            .min_by_key(key);
        let mut out: Vec<_> = before
            .into_iter()
            .chain(
                s.uptime
                    .iter()
                    .filter(|x| x.last_seen >= from && x.started_at < to),
            )
            .chain(after)
            .cloned()
            .collect();
        out.sort_by_key(|x| (x.started_at, x.instance.clone(), x.last_seen));
        Ok(out)
    }
}

#[async_trait]
impl crate::pipeline::PipelineStore for MemoryTenancyStore {
    async fn pipeline(
        &self,
        org: OrgId,
    ) -> Result<Option<crate::pipeline::Pipeline>, TenancyError> {
        Ok(self.lock()?.pipelines.get(&org).cloned())
    }

    async fn set_pipeline(
        &self,
        org: OrgId,
        pipeline: Option<&crate::pipeline::Pipeline>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            match pipeline {
                Some(p) => {
                    for t in &p.stages {
                        match s.teams.iter().find(|x| x.org == org && x.id == *t) {
                            None => return Err(TenancyError::NotFound("team")),
                            Some(x) if x.archived_at.is_some() => {
                                return Err(crate::teams::archived(
                                    &x.name,
                                    "it cannot be a stage",
                                ));
                            }
                            Some(_) => {}
                        }
                    }
                    s.pipelines.insert(org, p.clone());
                }
                None => {
                    if s.pipelines.remove(&org).is_none() {
                        return Err(TenancyError::NotFound("pipeline"));
                    }
                }
            }
        }
        self.commit(journal).await
    }
}

#[async_trait]
impl MfaStore for MemoryTenancyStore {
    async fn mfa(&self, user: UserId) -> Result<Option<MfaRecord>, TenancyError> {
        Ok(self.lock()?.mfa.get(&user).map(|r| MfaRecord {
            recovery_codes_left: r.recovery.len() as u32,
            ..r.record.clone()
        }))
    }

    async fn start_totp(&self, user: UserId, secret_enc: &str) -> Result<(), TenancyError> {
        let mut s = self.lock()?;
        if s.mfa
            .get(&user)
            .is_some_and(|r| r.record.enabled_at.is_some())
        {
            return Err(TenancyError::Conflict(
                "two-factor authentication is already on".into(),
            ));
        }
        s.mfa.insert(
            user,
            MfaRow {
                record: MfaRecord {
                    user,
                    secret_enc: secret_enc.to_owned(),
                    enabled_at: None,
                    last_step: None,
                    phone: None,
                    sms: None,
                    throttle: None,
                    recovery_codes_left: 0,
                },
                recovery: Vec::new(),
            },
        );
        Ok(())
    }

    async fn activate_totp(
        &self,
        user: UserId,
        secret_enc: &str,
        step: i64,
        recovery_hashes: &[String],
        keep: Option<SessionId>,
        now: DateTime<Utc>,
        records: crate::SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let ended = {
            let mut s = self.lock()?;
            let Some(r) = s.mfa.get_mut(&user).filter(|r| {
                r.record.enabled_at.is_none()
                    && r.record.secret_enc == secret_enc
                    && r.record.last_step.is_none_or(|l| l < step)
            }) else {
                return Err(TenancyError::Conflict(
                    "the enrolment changed meanwhile".into(),
                ));
            };
            r.record.enabled_at = Some(now);
            r.record.last_step = Some(step);
            r.record.throttle = None;
            r.recovery = recovery_hashes.to_vec();
            end_sessions_but(&mut s, user, keep, now)
        };
        self.commit(records(ended)).await?;
        Ok(ended)
    }

    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, TenancyError> {
        let mut s = self.lock()?;
        Ok(match s.mfa.get_mut(&user) {
            Some(r) if r.record.last_step.is_none_or(|l| l < step) => {
                r.record.last_step = Some(step);
                true
            }
            _ => false,
        })
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        let used = {
            let mut s = self.lock()?;
            let Some(r) = s.mfa.get_mut(&user) else {
                return Ok(false);
            };
            let before = r.recovery.len();
            r.recovery.retain(|h| h != hash);
            r.recovery.len() < before
        };
        if used {
            self.commit(journal).await?;
        }
        Ok(used)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[String],
        journal: Journal,
    ) -> Result<(), TenancyError> {
        self.lock()?.active_mfa(user)?.recovery = hashes.to_vec();
        self.commit(journal).await
    }

    async fn set_phone(
        &self,
        user: UserId,
        phone: Option<&str>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        self.lock()?.active_mfa(user)?.record.phone = phone.map(str::to_owned);
        self.commit(journal).await
    }

    async fn replace_sms_challenge(
        &self,
        user: UserId,
        replacing: Option<DateTime<Utc>>,
        challenge: &security_policy::SmsChallenge,
    ) -> Result<bool, TenancyError> {
        Ok(match self.lock()?.mfa.get_mut(&user) {
            Some(r) if r.record.sms.as_ref().map(|s| s.expires_at) == replacing => {
                r.record.sms = Some(challenge.clone());
                true
            }
            _ => false,
        })
    }

    async fn take_sms_challenge(
        &self,
        user: UserId,
        code_hash: &str,
    ) -> Result<bool, TenancyError> {
        let mut s = self.lock()?;
        Ok(match s.mfa.get_mut(&user) {
            Some(r)
                if r.record
                    .sms
                    .as_ref()
                    .is_some_and(|c| c.code_hash == code_hash) =>
            {
                r.record.sms = None;
                true
            }
            _ => false,
        })
    }

    async fn reserve_mfa_attempt(
        &self,
        user: UserId,
        policy: &security_policy::LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        let mut s = self.lock()?;
        let r = s
            .mfa
            .get_mut(&user)
            .ok_or(TenancyError::NotFound("second factor"))?;
        if let Some(until) = security_policy::locked_until(r.record.throttle.as_ref(), now) {
            return Err(TenancyError::Throttled(until));
        }
        r.record.throttle = Some(security_policy::after_failure(
            policy,
            r.record.throttle.as_ref(),
            now,
        ));
        Ok(())
    }

    async fn count_mfa_failure(
        &self,
        user: UserId,
        policy: &security_policy::LoginThrottlePolicy,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<security_policy::ThrottleState, TenancyError> {
        let next = {
            let mut s = self.lock()?;
            let r = s
                .mfa
                .get_mut(&user)
                .ok_or(TenancyError::NotFound("second factor"))?;
            let next = security_policy::after_failure(policy, r.record.throttle.as_ref(), now);
            r.record.throttle = Some(next);
            next
        };
        self.commit(journal).await?;
        Ok(next)
    }

    async fn set_mfa_throttle(
        &self,
        user: UserId,
        state: Option<&security_policy::ThrottleState>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        if let Some(r) = self.lock()?.mfa.get_mut(&user) {
            r.record.throttle = state.copied();
        }
        self.commit(journal).await
    }

    async fn disable_mfa(&self, user: UserId, journal: Journal) -> Result<(), TenancyError> {
        if self.lock()?.mfa.remove(&user).is_none() {
            return Err(TenancyError::NotFound("second factor"));
        }
        self.commit(journal).await
    }

    async fn reset_access(
        &self,
        user: UserId,
        hash: &str,
        by: Option<crate::mfa::MemberReset>,
        now: DateTime<Utc>,
        records: crate::mfa::AccessResetJournal<'_>,
    ) -> Result<crate::mfa::AccessReset, TenancyError> {
        let done = {
            let mut s = self.lock()?;
            if let Some(reset) = &by {
                let standing = crate::mfa::ResetStanding {
                    by_role: s.active_role(reset.org, reset.by),
                    member: s
                        .members
                        .iter()
                        .find(|m| m.0 == reset.org && m.1 == user)
                        .map(|m| (m.2, !s.deactivated.contains_key(&(m.0, m.1)))),
                    elsewhere: s.members.iter().any(|m| m.1 == user && m.0 != reset.org),
                    enrolled: s
                        .mfa
                        .get(&user)
                        .is_some_and(|r| r.record.enabled_at.is_some()),
                    address_unchanged: s
                        .users
                        .get(&user)
                        .is_some_and(|(u, _)| u.email.as_str() == reset.email),
                };
                crate::mfa::check_member_reset(reset, user, &standing)?;
            }
            crate::mfa::AccessReset {
                sessions_ended: replace_password(&mut s, user, hash, None, now)?,
                second_factor_removed: s.mfa.remove(&user).is_some(),
            }
        };
        self.commit(records(done)).await?;
        Ok(done)
    }

    async fn save_login_challenge(
        &self,
        hash: &str,
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        self.lock()?
            .challenges
            .insert(hash.to_owned(), (user, expires_at));
        Ok(())
    }

    async fn login_challenge(
        &self,
        hash: &str,
    ) -> Result<Option<(UserId, DateTime<Utc>)>, TenancyError> {
        Ok(self.lock()?.challenges.get(hash).copied())
    }

    async fn consume_login_challenge(&self, hash: &str) -> Result<bool, TenancyError> {
        Ok(self.lock()?.challenges.remove(hash).is_some())
    }
}

#[async_trait]
impl crate::metering::MeteringStore for MemoryTenancyStore {
    async fn reserve_within(
        &self,
        org: OrgId,
        metric: &str,
        month: &str,
        want: u64,
        limit: Option<u64>,
    ) -> Result<(u64, u64), TenancyError> {
        let mut s = self.lock()?;
        let n = s
            .monthly
            .entry((org, month.to_owned(), metric.to_owned()))
            .or_insert(0);
        let fits = |k: u64| limit.is_none_or(|l| n.saturating_add(k) <= l);
        let granted = if fits(want.max(1)) {
            want.max(1)
        } else if fits(1) {
            1
        } else {
            0
        };
        *n += granted;
        Ok((granted, *n))
    }

    async fn record_alert(
        &self,
        org: OrgId,
        limit: &str,
        period: &str,
        threshold: u64,
        journal: Journal,
    ) -> Result<bool, TenancyError> {
        let fresh =
            self.lock()?
                .alerts
                .insert((org, limit.to_owned(), period.to_owned(), threshold));
        if fresh {
            self.commit(journal).await?;
        }
        Ok(fresh)
    }

    async fn alert_periods(
        &self,
        org: OrgId,
        limit: &str,
        threshold: u64,
    ) -> Result<Vec<String>, TenancyError> {
        Ok(self
            .lock()?
            .alerts
            .iter()
            .filter(|(o, l, _, t)| *o == org && l == limit && *t == threshold)
            .map(|(_, _, period, _)| period.clone())
            .collect())
    }

    async fn monthly(&self, org: OrgId, metric: &str, month: &str) -> Result<u64, TenancyError> {
        Ok(self
            .lock()?
            .monthly
            .get(&(org, month.to_owned(), metric.to_owned()))
            .copied()
            .unwrap_or(0))
    }
}

#[async_trait]
impl crate::scim::ScimStore for MemoryTenancyStore {
    async fn create_scim_token(
        &self,
        token: &crate::scim::ScimToken,
        secret_hash: &str,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            s.check_acting(token.org, Some(token.created_by))?;
            s.scim_tokens.push((token.clone(), secret_hash.to_owned()));
        }
        self.commit(journal).await
    }

    async fn find_scim_token(
        &self,
        secret_hash: &str,
    ) -> Result<Option<crate::scim::ScimToken>, TenancyError> {
        Ok(self
            .lock()?
            .scim_tokens
            .iter()
            .find(|(t, h)| h == secret_hash && t.revoked_at.is_none())
            .map(|(t, _)| t.clone()))
    }

    async fn list_scim_tokens(
        &self,
        org: OrgId,
    ) -> Result<Vec<crate::scim::ScimToken>, TenancyError> {
        let mut out: Vec<_> = self
            .lock()?
            .scim_tokens
            .iter()
            .filter(|(t, _)| t.org == org)
            .map(|(t, _)| t.clone())
            .collect();
        out.sort_by_key(|t| t.id.to_string());
        Ok(out)
    }

    async fn revoke_scim_token(
        &self,
        org: OrgId,
        token: rbac_core::ScimTokenId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let t = s
                .scim_tokens
                .iter_mut()
                .find(|(t, _)| t.id == token && t.org == org && t.revoked_at.is_none())
                .ok_or(TenancyError::NotFound("SCIM token"))?;
            t.0.revoked_at = Some(now);
        }
        self.commit(journal).await
    }

    async fn touch_scim_token(
        &self,
        token: rbac_core::ScimTokenId,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        if let Some(t) = self
            .lock()?
            .scim_tokens
            .iter_mut()
            .find(|(t, _)| t.id == token)
        {
            t.0.last_used_at = Some(now);
        }
        Ok(())
    }

    async fn user_records(&self, org: OrgId) -> Result<Vec<crate::scim::UserRecord>, TenancyError> {
        Ok(self
            .lock()?
            .scim_users
            .iter()
            .filter(|((o, _), _)| *o == org)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn user_record(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Option<crate::scim::UserRecord>, TenancyError> {
        Ok(self.lock()?.scim_users.get(&(org, user)).cloned())
    }

    async fn provision_member(
        &self,
        org: OrgId,
        user: &User,
        password_hash: Option<&str>,
        record: &crate::scim::UserRecord,
        role: OrgRole,
        active: bool,
        team: TeamId,
        limits: &billing_limits::PlanLimits,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            s.check_acting(org, by)?;
            let used = (s.members.iter().filter(|m| m.0 == org).count()
                + s.pending(org, user.created_at)
                    .filter(|i| i.email != user.email)
                    .count()) as u64;
            crate::enforce_quota(billing_limits::check_quota(
                &s.limits_in_force(org, limits),
                billing_limits::Limit::Members,
                used,
                1,
            ))?;
            if email_taken(&s, &user.email) {
                return Err(TenancyError::Conflict(format!(
                    "an account with the email `{}` exists",
                    user.email
                )));
            }
            let key = record.user_name.to_lowercase();
            if s.scim_users
                .iter()
                .any(|((o, _), r)| *o == org && r.user_name.to_lowercase() == key)
            {
                return Err(TenancyError::Conflict(format!(
                    "userName `{}` is already in use",
                    record.user_name
                )));
            }
            if !s.teams.iter().any(|t| t.id == team && t.org == org) {
                return Err(TenancyError::NotFound("team"));
            }
            s.users
                .insert(user.id, (user.clone(), password_hash.map(str::to_owned)));
            s.members.push((org, user.id, role, user.created_at));
            s.team_members.push((team, user.id, org, TeamRole::Member));
            s.settle_invitations(org, user);
            if !active {
                s.deactivated.insert((org, user.id), user.created_at);
            }
            s.scim_users.insert((org, user.id), record.clone());
        }
        self.audit.readmit(org, &user.id.to_string())?;
        self.commit(journal).await
    }

    async fn write_member(
        &self,
        w: &crate::scim::MemberWrite,
        journal: Journal,
        ended: crate::SessionsEndedJournal<'_>,
    ) -> Result<crate::scim::MemberWriteReport, TenancyError> {
        let mut report = crate::scim::MemberWriteReport::default();
        // The sessions the write ends or signs out of the organization, each recorded.
        let mut revoked = 0;
        {
            let mut s = self.lock()?;
            let Some(pos) = s.members.iter().position(|m| m.0 == w.org && m.1 == w.user) else {
                return Err(TenancyError::NotFound("User"));
            };
            s.check_acting(w.org, w.by)?;
            let current = s.scim_users.get(&(w.org, w.user)).map(|r| r.version);
            if current != w.expected_version {
                return Err(TenancyError::Changed(
                    "the member changed meanwhile; read it again".into(),
                ));
            }
            if let Some((from, to)) = w.role {
                if from == OrgRole::Owner || to == OrgRole::Owner {
                    return Err(TenancyError::RoleRule(
                        rbac_core::RoleRuleError::OwnerViaTransferOnly,
                    ));
                }
                if s.members[pos].2 != from {
                    return Err(TenancyError::Changed(
                        "the member's role changed meanwhile; reload and try again".into(),
                    ));
                }
            }
            // The Owner is never deactivated, whatever role the service read.
            if w.active == Some(false) && s.members[pos].2 == OrgRole::Owner {
                return Err(TenancyError::Changed(
                    "the person became the Owner meanwhile, and the Owner is not deactivated"
                        .into(),
                ));
            }
            let old = s
                .users
                .get(&w.user)
                .map(|(u, _)| (&u.email, u.name.as_str()));
            if (old != Some((&w.email, w.name.as_str())) || w.password_hash.is_some())
                && (s.members[pos].2 == OrgRole::Owner
                    || s.members.iter().any(|m| m.1 == w.user && m.0 != w.org))
            {
                return Err(crate::scim::credentials_changed_hands());
            }
            let key = w.record.user_name.to_lowercase();
            if s.scim_users
                .iter()
                .any(|((o, u), r)| *o == w.org && *u != w.user && r.user_name.to_lowercase() == key)
            {
                return Err(TenancyError::Conflict(format!(
                    "userName `{}` is already in use",
                    w.record.user_name
                )));
            }
            if s.users
                .values()
                .any(|(u, _)| u.id != w.user && u.email == w.email)
            {
                return Err(TenancyError::Conflict(format!(
                    "the email `{}` belongs to another account",
                    w.email
                )));
            }
            let mut retire = w.password_hash.is_some();
            if let Some((u, h)) = s.users.get_mut(&w.user) {
                u.name.clone_from(&w.name);
                retire |= u.email != w.email;
                u.email = w.email.clone();
                if let Some(new) = &w.password_hash {
                    *h = Some(new.clone());
                }
            }
            // A password the identity provider sets is a credential change, as a reset is.
            if w.password_hash.is_some() {
                note_credential_change(&mut s, w.user, w.now);
            }
            // A new password or a new address retires the reset links sent before.
            if retire {
                retire_links(&mut s, w.user, w.now);
            }
            if let Some((_, to)) = w.role {
                s.members[pos].2 = to;
                set_default_team_role(&mut s, w.org, w.user, to);
                if !to.is_admin() {
                    revoke_invitations_by(&mut s, w.org, w.user, w.now);
                    report.scim_tokens_revoked += revoke_scim_tokens(&mut s, w.org, w.user, w.now);
                    lower_team_admin_roles(&mut s, w.org, w.user);
                }
            }
            if w.password_hash.is_some() {
                s.challenges.retain(|_, (u, _)| *u != w.user);
                for sess in s
                    .sessions
                    .iter_mut()
                    .filter(|x| x.0.user == w.user && x.2.is_none())
                {
                    sess.2 = Some(w.now);
                    report.sessions_ended += 1;
                    revoked += 1;
                }
            }
            match w.active {
                Some(false) if !s.deactivated.contains_key(&(w.org, w.user)) => {
                    s.deactivated.insert((w.org, w.user), w.now);
                    withdraw_grants(&mut s, w.org, w.user, w.now);
                    for k in s.keys.iter_mut().filter(|k| {
                        k.0.org == w.org && k.0.created_by == w.user && k.0.revoked_at.is_none()
                    }) {
                        k.0.revoked_at = Some(w.now);
                        report.api_keys_deactivated += 1;
                    }
                    report.scim_tokens_revoked += revoke_scim_tokens(&mut s, w.org, w.user, w.now);
                    let (touched, gone) = sign_out_in(&mut s, w.org, w.user, w.now);
                    report.sessions_ended += gone;
                    revoked += touched;
                }
                Some(true) => {
                    s.deactivated.remove(&(w.org, w.user));
                }
                _ => {}
            }
            s.scim_users.insert((w.org, w.user), w.record.clone());
        }
        let mut journal = journal;
        journal.absorb(ended(revoked));
        self.commit(journal).await?;
        Ok(report)
    }

    async fn group_records(
        &self,
        org: OrgId,
    ) -> Result<Vec<crate::scim::GroupRecord>, TenancyError> {
        Ok(self
            .lock()?
            .scim_groups
            .iter()
            .filter(|((o, _), _)| *o == org)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn write_group(
        &self,
        w: &crate::scim::GroupWrite,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        {
            let mut s = self.lock()?;
            let t = &w.team;
            s.check_acting(t.org, w.by)?;
            if s.teams
                .iter()
                .any(|x| x.org == t.org && x.id != t.id && x.name == t.name)
            {
                return Err(TenancyError::Conflict(format!(
                    "a team named `{}` exists",
                    t.name
                )));
            }
            let current = s.scim_groups.get(&(t.org, t.id)).map(|r| r.version);
            if current != w.expected_version {
                return Err(TenancyError::Changed(
                    "the group changed meanwhile; read it again".into(),
                ));
            }
            // Members added who are not in the team already (someone with a role in every
            // team, or a role in this team, is).
            let newcomers = w.add.iter().any(|u| {
                s.members.iter().any(|m| m.0 == t.org && m.1 == *u)
                    && !s.all_teams.contains_key(&(t.org, *u))
                    && !s.team_members.iter().any(|x| x.0 == t.id && x.1 == *u)
            });
            if w.create {
                s.teams.push(t.clone());
            } else {
                let existing = s
                    .teams
                    .iter_mut()
                    .find(|x| x.org == t.org && x.id == t.id)
                    .ok_or(TenancyError::NotFound("Group"))?;
                if existing.archived_at.is_some() && newcomers {
                    return Err(crate::teams::archived_team(&existing.name));
                }
                existing.name.clone_from(&t.name);
            }
            for u in &w.add {
                if s.members.iter().any(|m| m.0 == t.org && m.1 == *u)
                    && !s.team_members.iter().any(|x| x.0 == t.id && x.1 == *u)
                {
                    s.team_members.push((t.id, *u, t.org, TeamRole::Member));
                }
            }
            s.team_members
                .retain(|x| !(x.0 == t.id && w.remove.contains(&x.1)));
            s.scim_groups.insert((t.org, t.id), w.record.clone());
        }
        self.commit(journal).await
    }
}

#[async_trait]
impl crate::privacy::PrivacyStore for MemoryTenancyStore {
    async fn record_consent(
        &self,
        consent: &crate::privacy::ConsentDecision,
        journal: Journal,
    ) -> Result<crate::privacy::Recorded, TenancyError> {
        let kept = {
            let mut s = self.lock()?;
            let theirs: Vec<&crate::privacy::ConsentRecord> = s
                .consents
                .iter()
                .filter(|c| c.org == consent.org && c.user == consent.user)
                .collect();
            let newest = theirs
                .iter()
                .filter(|c| c.purpose == consent.purpose)
                .max_by_key(|c| c.id)
                .copied();
            if let Some(newest) = newest.filter(|n| crate::privacy::restates(Some(n), consent)) {
                return Ok(crate::privacy::Recorded::Unchanged(newest.clone()));
            }
            let purposes: BTreeSet<&str> = theirs.iter().map(|c| c.purpose.as_str()).collect();
            if newest.is_none() && purposes.len() >= crate::privacy::MAX_CONSENT_PURPOSES {
                return Err(crate::privacy::too_many_purposes());
            }
            let id = rbac_core::ConsentId::next_after(theirs.iter().map(|c| c.id).max());
            let kept = consent.kept_as(id);
            s.consents.push(kept.clone());
            kept
        };
        self.commit(journal).await?;
        Ok(crate::privacy::Recorded::Appended(kept))
    }

    async fn consents(
        &self,
        org: OrgId,
        user: Option<UserId>,
        after: Option<rbac_core::ConsentId>,
        limit: usize,
    ) -> Result<Vec<crate::privacy::ConsentRecord>, TenancyError> {
        let mut page: Vec<crate::privacy::ConsentRecord> = self
            .lock()?
            .consents
            .iter()
            .filter(|c| c.org == org && user.is_none_or(|u| c.user == u))
            .filter(|c| after.is_none_or(|a| c.id > a))
            .cloned()
            .collect();
        page.sort_by_key(|c| c.id);
        page.truncate(limit);
        Ok(page)
    }

    async fn erase_member(
        &self,
        org: OrgId,
        user: UserId,
        disposition: Option<Disposition>,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
        sessions: crate::SessionsEndedJournal<'_>,
    ) -> Result<crate::privacy::ErasureReport, TenancyError> {
        // Who they were, for the events that name them (the account is anonymized below): their
        // addresses here and their name; and whether someone else in the organization has
        // their name.
        let (identity, namesakes) = {
            let s = self.lock()?;
            let identity = s
                .users
                .get(&user)
                .map(|(u, _)| (s.addresses_in(org, user), u.name.clone()));
            let namesakes = identity.as_ref().is_some_and(|(_, name)| {
                s.members.iter().any(|m| {
                    m.0 == org
                        && m.1 != user
                        && s.users.get(&m.1).is_some_and(|(u, _)| &u.name == name)
                })
            });
            (identity, namesakes)
        };
        let removal = match disposition {
            Some(d) => {
                self.remove_member(org, user, d, now, by, Journal::default(), sessions)
                    .await?
            }
            None => {
                let s = self.lock()?;
                s.check_acting(org, by)?;
                if s.members.iter().any(|m| m.0 == org && m.1 == user) {
                    return Err(TenancyError::Conflict(
                        "they are a member of the organization again; erase them as a member"
                            .into(),
                    ));
                }
                crate::members::RemovalReport::default()
            }
        };
        // Their keys' names, which they chose and which may name them: the keys stay, revoked
        // by the removal and known by id and prefix.
        for k in self
            .lock()?
            .keys
            .iter_mut()
            .filter(|k| k.0.org == org && k.0.created_by == user)
        {
            k.0.name = audit::ERASED.into();
        }
        let addresses: Vec<String> = identity
            .as_ref()
            .map(|(addresses, _)| addresses.clone())
            .unwrap_or_default();
        let theirs = |to: &str| addresses.iter().any(|a| a == to);
        // Mail to them in this organization, and mail about them (one of their addresses in
        // the body; invitations they sent, by the subject, while nobody else here has their
        // name), as SeaStore does: what is queued goes, what went keeps no name or address.
        if let Some((_, name)) = &identity {
            let prefixes = crate::privacy::subjects_naming(name);
            self.audit.with_mails(|mails| {
                let about = |m: &audit::QueuedMail| {
                    addresses
                        .iter()
                        .any(|a| crate::privacy::mentions_address(&m.body, a))
                        || (!namesakes && prefixes.iter().any(|p| m.subject.starts_with(p)))
                };
                mails.retain(|(m, _)| {
                    m.org != Some(org) || m.sent_at.is_some() || (!theirs(&m.to) && !about(m))
                });
                for (m, _) in mails.iter_mut().filter(|(m, _)| m.org == Some(org)) {
                    if about(m) {
                        audit::ERASED.clone_into(&mut m.subject);
                        m.body.clear();
                    }
                    if theirs(&m.to) {
                        audit::ERASED.clone_into(&mut m.to);
                        m.body.clear();
                    }
                }
            })?;
        }
        // The queued events that carry one of their addresses, or their name beside their id.
        let event_bodies_erased = match &identity {
            Some((_, name)) => self.audit.with_outbox(|events| {
                let mut n = 0;
                for e in events.iter_mut().filter(|e| e.org == org) {
                    let before = e.data.to_string();
                    let mut body = before.clone();
                    let mut theirs = addresses.clone();
                    for a in crate::privacy::addresses_given_by_id(&before, user) {
                        if !theirs.contains(&a) {
                            theirs.push(a);
                        }
                    }
                    // Their name now, and the names the body gives them (renamed since).
                    let mut names = vec![name.clone()];
                    for n in crate::privacy::names_given_by_id(&before, user) {
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                    for address in &theirs {
                        for n in &names {
                            if let Some(s) =
                                crate::privacy::scrub_event_json(&body, user, address, n)
                            {
                                body = s.body;
                            }
                        }
                    }
                    if body != before
                        && let Ok(data) = serde_json::from_str(&body)
                    {
                        e.data = data;
                        n += 1;
                    }
                }
                n
            })?,
            None => 0,
        };
        // They, and their API keys, which acted in their name; each record counted once.
        let mut subjects: Vec<String> = self
            .lock()?
            .keys
            .iter()
            .filter(|k| k.0.org == org && k.0.created_by == user)
            .map(|k| k.0.id.to_string())
            .collect();
        subjects.push(user.to_string());
        // Listed first, so a record appended meanwhile is either blanked below or as it goes in.
        self.audit.mark_erased(org, &subjects)?;
        // Records naming them by id, or by their address as the target's name (an invitation's);
        // each record counted once, if it had anything left to blank.
        let audit_records_erased = self.audit.with_chain(org, |chain| {
            let mut n = 0;
            for r in chain.iter_mut() {
                let e = &mut r.event;
                let before = e.clone();
                audit::erase_annotations_of(e, |id| subjects.iter().any(|s| s == id));
                if theirs(&e.target.name) {
                    audit::ERASED.clone_into(&mut e.target.name);
                }
                n += u64::from(*e != before);
            }
            n
        })?;
        let account_anonymized = {
            let mut s = self.lock()?;
            s.billing.erase_actors(org, &subjects);
            // Invitations to them in this organization keep no address.
            let accepted: Vec<rbac_core::InvitationId> = s
                .accepted_by
                .iter()
                .filter(|(_, u)| **u == user)
                .map(|(i, _)| *i)
                .collect();
            for (i, _) in &mut s.invitations {
                if i.org == org && (theirs(i.email.as_str()) || accepted.contains(&i.id)) {
                    i.email = Email::parse(&format!(
                        "erased-{}@erased.invalid",
                        i.id.as_uuid().simple()
                    ))?;
                }
            }
            s.previews
                .retain(|(p, _)| p.org != org || !addresses.iter().any(|a| p.names(a)));
            // The identity provider's group entries that name them.
            for ((o, _), g) in &mut s.scim_groups {
                if *o == org
                    && let Some(kept) = crate::privacy::group_members_without(&g.members, user)
                {
                    g.members = kept;
                    g.version += 1;
                    g.updated_at = now;
                }
            }
            // A former member's account is no longer the organization's to anonymize.
            let elsewhere = s.members.iter().any(|m| m.1 == user) || disposition.is_none();
            if !elsewhere {
                if let Some((u, hash)) = s.users.get_mut(&user) {
                    u.email = Email::parse(&crate::privacy::erased_address(user))?;
                    audit::ERASED.clone_into(&mut u.name);
                    *hash = None;
                }
                // Mail about the account itself (password resets).
                self.audit.with_mails(|mails| {
                    mails.retain(|(m, _)| m.org.is_some() || !theirs(&m.to));
                })?;
                s.mfa.remove(&user);
                s.throttles.remove(&user);
                s.credential_changes.remove(&user);
                s.resets.retain(|r| r.user != user);
                s.sessions.retain(|(session, ..)| session.user != user);
                s.challenges.retain(|_, (u, _)| *u != user);
            }
            !elsewhere
        };
        self.commit(journal).await?;
        Ok(crate::privacy::ErasureReport {
            removal,
            audit_records_erased,
            account_anonymized,
            event_bodies_erased,
        })
    }
}

/// Marks every open reset link of `user` used at `now`.
fn retire_links(s: &mut State, user: UserId, now: DateTime<Utc>) {
    for r in s
        .resets
        .iter_mut()
        .filter(|r| r.user == user && r.used_at.is_none())
    {
        r.used_at = Some(now);
    }
}

/// The organizations `user` belongs to.
fn orgs_of(s: &State, user: UserId) -> Vec<OrgId> {
    s.members
        .iter()
        .filter(|m| m.1 == user)
        .map(|m| m.0)
        .collect()
}

#[async_trait]
impl crate::password_reset::PasswordResetStore for MemoryTenancyStore {
    async fn create_password_reset(
        &self,
        reset: &crate::password_reset::PasswordReset,
        email: &Email,
        since: DateTime<Utc>,
        max_recent: u32,
        journal: crate::password_reset::ResetJournal<'_>,
    ) -> Result<bool, TenancyError> {
        let orgs = {
            let mut s = self.lock()?;
            if s.users.get(&reset.user).map(|u| &u.0.email) != Some(email) {
                return Ok(false);
            }
            let recent = s
                .resets
                .iter()
                .filter(|r| r.user == reset.user && r.created_at > since)
                .count();
            if recent >= max_recent as usize {
                return Ok(false);
            }
            s.resets.push(reset.clone());
            orgs_of(&s, reset.user)
        };
        self.commit(journal(&orgs, 0)).await?;
        Ok(true)
    }

    async fn find_password_reset(
        &self,
        token_hash: &str,
    ) -> Result<Option<crate::password_reset::PasswordReset>, TenancyError> {
        Ok(self
            .lock()?
            .resets
            .iter()
            .find(|r| r.token_hash == token_hash)
            .cloned())
    }

    async fn complete_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
        records: crate::password_reset::ResetJournal<'_>,
    ) -> Result<u64, TenancyError> {
        let (orgs, ended) = {
            let mut s = self.lock()?;
            let user = s
                .resets
                .iter()
                .find(|r| r.token_hash == token_hash && r.usable(now))
                .map(|r| r.user)
                .ok_or_else(crate::password_reset::unusable)?;
            // Uses this link and retires the others with it.
            let ended = replace_password(&mut s, user, password_hash, None, now)?;
            (orgs_of(&s, user), ended)
        };
        self.commit(records(&orgs, ended)).await?;
        Ok(ended)
    }
}

#[async_trait]
impl crate::housekeeping::HousekeepingStore for MemoryTenancyStore {
    /// Sessions, reset links, sign-in challenges and mail, as SeaStore removes them. This store
    /// keeps no SMS outbox and no webhook deliveries (the webhooks crate's memory store does),
    /// and leaves its outbox events alone, since it cannot tell which of them a delivery
    /// elsewhere still comes from.
    async fn prune_stale(
        &self,
        c: &crate::housekeeping::Cutoffs,
    ) -> Result<crate::housekeeping::HousekeepingReport, TenancyError> {
        let mut report = crate::housekeeping::HousekeepingReport::default();
        {
            let mut s = self.lock()?;
            // Each person's newest session stays: their last sign-in.
            let mut newest: HashMap<UserId, DateTime<Utc>> = HashMap::new();
            for (session, ..) in &s.sessions {
                let at = newest.entry(session.user).or_insert(session.created_at);
                *at = (*at).max(session.created_at);
            }
            let before = s.sessions.len();
            s.sessions.retain(|(session, ..)| {
                session.created_at >= c.sessions_created_before
                    || newest.get(&session.user) == Some(&session.created_at)
            });
            report.sessions = (before - s.sessions.len()) as u64;
            let before = s.resets.len();
            s.resets.retain(|r| r.expires_at >= c.tokens_expired_before);
            report.password_resets = (before - s.resets.len()) as u64;
            let before = s.challenges.len();
            s.challenges
                .retain(|_, (_, expires)| *expires >= c.tokens_expired_before);
            report.login_challenges = (before - s.challenges.len()) as u64;
            let before = s.previews.len();
            s.previews
                .retain(|(p, _)| p.expires_at >= c.tokens_expired_before);
            report.bulk_previews = (before - s.previews.len()) as u64;
        }
        report.mails = self.audit.prune_mail(c.mail_before)?;
        Ok(report)
    }
}

/// For the crate's unit tests.
#[cfg(test)]
impl MemoryTenancyStore {
    /// A store holding one Enterprise organization called `name`, created now through the
    /// service, and its Owner.
    pub(crate) async fn with_org(name: &str) -> (Self, Organization, User) {
        Self::with_org_created(name, Utc::now()).await
    }

    /// [`Self::with_org`], created at `at`.
    pub(crate) async fn with_org_created(
        name: &str,
        at: chrono::DateTime<Utc>,
    ) -> (Self, Organization, User) {
        let store = Self::new();
        let hasher =
            security_policy::PasswordHasher::new(security_policy::HashParams::default()).unwrap();
        let (org, owner) = crate::orgs::create_with_new_owner(
            &store,
            &hasher,
            crate::orgs::CreateOrgRequest {
                name: name.to_owned(),
                plan: billing_limits::Plan::Enterprise,
                owner_email: format!("owner@{}.example", name.to_lowercase()),
                owner_name: "Owner".into(),
                owner_password: "tilted windmill at sunrise".into(),
            },
            at,
        )
        .await
        .unwrap();
        (store, org, owner)
    }

    /// The mails of `org` of one kind (at most the 200 newest), newest first.
    #[cfg(test)]
    pub(crate) async fn mails_of_kind(&self, org: OrgId, kind: &str) -> Vec<audit::QueuedMail> {
        use audit::MailOutbox as _;
        self.audit()
            .list_mails(Some(org), None, 200)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.kind == kind)
            .collect()
    }

    /// `user` signed in to `org` (a session), as the server resolves callers.
    pub(crate) async fn session_caller_in(&self, org: OrgId, user: User) -> crate::Caller {
        crate::Caller::load(
            self,
            &crate::Principal::Session {
                user,
                session: rbac_core::SessionId::new(),
            },
            org,
            audit::RequestContext::default(),
        )
        .await
        .unwrap()
    }
}

/// Whether `now_in` (sorted here) holds the same organizations as `expected`.
fn same_orgs(now_in: &mut [OrgId], expected: &[OrgId]) -> bool {
    let mut expected = expected.to_vec();
    now_in.sort_by_key(ToString::to_string);
    expected.sort_by_key(ToString::to_string);
    *now_in == expected[..]
}

#[cfg(test)]
mod tests {
    /// The in-memory store keeps the same contract as the database stores.
    #[tokio::test]
    async fn the_memory_store_keeps_the_store_contract() {
        crate::contract::run(&super::MemoryTenancyStore::new()).await;
    }
}
