//! Storage ports of the tenancy crate.
//!
//! Every tenant-scoped method takes the [`OrgId`], so scoping is part of the
//! signature. Every method that changes state takes the [`Journal`] to commit
//! with it, in the same transaction.

use async_trait::async_trait;
use audit::Journal;
use chrono::{DateTime, Utc};
use rbac_core::{
    ApiKeyId, FeatureAccess, InvitationId, OrgId, OrgRole, ResourceId, SessionId, TeamId, TeamRole,
    UserId,
};

use crate::assets::{
    Asset, AssetFilter, AssetKind, AssetTransfer, TeamAssets, TeamStorage, UsageRecord,
};
use crate::bulk::BulkPreview;
use crate::invitations::Invitation;
use crate::members::{Disposition, OwnershipTransfer, RemovalReport};
use crate::teams::TeamMember;

use crate::error::TenancyError;
use crate::model::{
    ApiKey, CallerMembership, CompanyProfile, Email, Member, Membership, Organization,
    SecuritySettings, Session, Team, User,
};

/// Organizations and their members.
#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Creates an organization, its default team and its Owner's membership.
    /// `owner` is created too when `owner_password_hash` is given; otherwise it must exist.
    /// With `max_owned`, an existing `owner` who already owns that many organizations is
    /// refused, counted in the creating transaction under the account's lock, so that
    /// concurrent foundings cannot pass the bound together.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when a new owner's email is taken, or the owner owns
    /// `max_owned` organizations.
    async fn create_org(
        &self,
        org: &Organization,
        default_team: &Team,
        owner: &User,
        owner_password_hash: Option<&str>,
        max_owned: Option<usize>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Adds `user` to `org` with `role` and to `team` with `team_role`, creating the account
    /// first when `new_password_hash` is given, if the member count stays within
    /// `limits` (checked with `billing_limits::check_quota`). The seat check and the insert are atomic.
    ///
    /// # Errors
    /// [`TenancyError::LimitReached`] at the limit;
    /// [`TenancyError::Conflict`] when the person is already a member or a new account's email is taken.
    #[allow(
        clippy::too_many_arguments,
        reason = "one atomic operation; a struct would only rename the arguments"
    )]
    async fn add_member(
        &self,
        org: OrgId,
        user: &User,
        new_password_hash: Option<&str>,
        role: OrgRole,
        team: TeamId,
        team_role: TeamRole,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Number of organizations (to know whether the server must bootstrap one).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn count_orgs(&self) -> Result<u64, TenancyError>;

    /// Deletes `org` and everything of it (members, teams, resources, keys, invitations, SCIM
    /// tokens, webhooks and their deliveries, subscription, invoices, credits, usage, consents,
    /// its audit log and its queued events and mail) if `by` is still its Owner, read under the
    /// organization's lock, in one transaction with `journal` (the notices to its people, about
    /// no organization, so that they outlive it). The people's accounts stay.
    ///
    /// Returns the ids of the deleted documents, whose bytes the caller removes from its blob
    /// store after the commit (as for other deletions).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for an organization that is not there;
    /// [`TenancyError::Conflict`] when `by` is not its Owner; nothing is deleted then.
    async fn delete_org(
        &self,
        org: OrgId,
        by: UserId,
        journal: Journal,
    ) -> Result<Vec<ResourceId>, TenancyError>;

    /// One organization.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when it does not exist.
    async fn get_org(&self, org: OrgId) -> Result<Organization, TenancyError>;

    /// Replaces the company profile if it is still `expected` (compare-and-swap, so two
    /// concurrent partial updates cannot silently drop each other's fields), and with
    /// `rename = Some((expected, name))` the organization's name if it is still `expected`, in
    /// one write, if their author `by` (`None`: the operator) is still an active Owner or
    /// Admin, checked under the organization's lock.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when the organization does not exist;
    /// [`TenancyError::Conflict`] when the profile or the name changed since they were read;
    /// [`TenancyError::RoleRule`] (`members::acting_role_changed`) for the author.
    async fn update_profile(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &CompanyProfile,
        profile: &CompanyProfile,
        rename: Option<(&str, &str)>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Replaces the feature-access settings if they are still `expected` (compare-and-swap, so
    /// that the change's audit record says truly what it replaced) and their author `by` is
    /// still an active Owner or Admin, checked under the organization's lock.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when the organization does not exist;
    /// [`TenancyError::Conflict`] when the settings changed since `expected` was read;
    /// [`TenancyError::RoleRule`] (`members::acting_role_changed`) for the author.
    async fn update_access(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &FeatureAccess,
        access: &FeatureAccess,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Replaces the security settings if they are still `expected` (compare-and-swap, so two
    /// administrators' concurrent changes cannot silently undo each other) and their author
    /// `by` (`None`: the operator) is still an active Owner or Admin, and still the Owner when
    /// the audit retention changes, checked under the organization's lock (a removal or
    /// demotion that committed since the service looked must not be outlived by the change).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when the organization does not exist;
    /// [`TenancyError::Conflict`] when the settings changed since `expected` was read;
    /// [`TenancyError::RoleRule`] (`members::acting_role_changed`) or
    /// [`TenancyError::Forbidden`] (retention, no longer the Owner) for the author.
    async fn update_security(
        &self,
        org: OrgId,
        by: Option<UserId>,
        expected: &SecuritySettings,
        security: &SecuritySettings,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Replaces the organization's negotiated limits (empty: the plan's), as a deal for
    /// `for_plan` (`Organization::limit_overrides_plan`), which must still be the
    /// organization's plan as it is written.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`]; [`TenancyError::Conflict`] when the organization is no
    /// longer on `for_plan` (its plan changed meanwhile); nothing is written then.
    async fn set_limit_overrides(
        &self,
        org: OrgId,
        overrides: &billing_limits::LimitOverrides,
        for_plan: billing_limits::Plan,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// The default team.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when the organization has none.
    async fn default_team(&self, org: OrgId) -> Result<Team, TenancyError>;

    /// Members ordered by user id, after the keyset cursor `after`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_members(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<Member>, TenancyError>;

    /// How many members the organization has (active or deactivated: all hold seats). The
    /// default walks every page of [`Self::list_members`]; a database store counts.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn member_count(&self, org: OrgId) -> Result<u64, TenancyError> {
        let mut n = 0u64;
        let mut after = None;
        loop {
            let page = self.list_members(org, after, 200).await?;
            n += page.len() as u64;
            after = page.last().map(|m| m.user.id);
            if page.len() < 200 {
                return Ok(n);
            }
        }
    }

    /// The organization's Owner and Admins, active or deactivated, in the order of
    /// [`Self::list_members`] (for notices to the people who run it). The default walks every
    /// page of [`Self::list_members`]; a database store reads only those rows.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn admins(&self, org: OrgId) -> Result<Vec<Member>, TenancyError> {
        let mut admins = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_members(org, after, 500).await?;
            let Some(last) = page.last() else {
                return Ok(admins);
            };
            after = Some(last.user.id);
            admins.extend(page.into_iter().filter(|m| m.role.is_admin()));
        }
    }

    /// [`Self::list_members`] narrowed to those an organization User with explicit roles in
    /// `teams` sees: the members with a role in one of `teams`, the Owner and the Admins, the
    /// members with a role in every team, and `me`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_members_seen_by(
        &self,
        org: OrgId,
        me: UserId,
        teams: &[TeamId],
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<Member>, TenancyError>;

    /// One member, `None` when `user` is not in `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn get_member(&self, org: OrgId, user: UserId) -> Result<Option<Member>, TenancyError>;

    /// `user`'s team roles in `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn team_roles(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Vec<(TeamId, TeamRole)>, TenancyError>;

    /// Every organization `user` belongs to.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, TenancyError>;

    /// The organizations `user` belongs to (deactivated memberships included), in id order.
    /// Authentication reads their session policies on every request, so an adapter should
    /// answer this in one query; the default asks [`Self::memberships`] and then each one.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn member_orgs(&self, user: UserId) -> Result<Vec<Organization>, TenancyError> {
        let mut out = Vec::new();
        for m in self.memberships(user).await? {
            out.push(self.get_org(m.org).await?);
        }
        Ok(out)
    }

    /// Every membership of `user` (deactivated ones included) with its organization and the
    /// person's team roles there, in organization id order: what authenticating a session and
    /// resolving it in one organization need (the session policies of all of them, the
    /// membership in one). Every organization-scoped request reads it, so an adapter should
    /// answer it in one query; the default asks [`Self::member_orgs`], then
    /// [`Self::get_member`] and [`Self::team_roles`] for each.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn caller_memberships(
        &self,
        user: UserId,
    ) -> Result<Vec<CallerMembership>, TenancyError> {
        let mut out = Vec::new();
        for org in self.member_orgs(user).await? {
            let Some(member) = self.get_member(org.id, user).await? else {
                continue;
            };
            let mut teams = self.team_roles(org.id, user).await?;
            teams.sort_by_key(|(t, _)| *t);
            out.push(CallerMembership {
                role: member.role,
                joined_at: member.joined_at,
                deactivated_at: member.deactivated_at,
                all_teams: member.all_teams,
                teams,
                org,
            });
        }
        Ok(out)
    }
}

/// People, their passwords and sessions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// A user and their password hash, by email (case-insensitive).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, TenancyError>;

    /// A user by id.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn get_user(&self, user: UserId) -> Result<Option<User>, TenancyError>;

    /// Renames `user` from `expected` to `name` and commits `journal` with it, provided that,
    /// read under the account's lock, they belong to exactly the organizations `orgs` (those
    /// `journal` records the rename in): an organization they joined meanwhile would miss the
    /// record, and one that removed them meanwhile would learn the new name.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for an unknown user; [`TenancyError::Conflict`] when the name
    /// is no longer `expected` (renamed meanwhile, by themselves or by SCIM);
    /// [`TenancyError::Changed`] when their organizations are no longer `orgs` (read them and
    /// try again). Nothing is written then.
    async fn rename_user(
        &self,
        user: UserId,
        expected: &str,
        name: &str,
        orgs: &[OrgId],
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Replaces `user`'s password hash `replacing` with `hash` (the same password hashed
    /// again with current parameters, at login), with `journal`, in one transaction. When the
    /// stored hash is no longer `replacing` (the password was changed or reset meanwhile)
    /// nothing is written and `false` is returned: a rehash never brings an old password back.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for an unknown user.
    async fn set_password_hash(
        &self,
        user: UserId,
        replacing: &str,
        hash: &str,
        journal: Journal,
    ) -> Result<bool, TenancyError>;

    /// Replaces `user`'s password hash, clears their login throttle (failures counted against
    /// the old password no longer lock the new one out), discards their sign-in challenges
    /// (a sign-in begun with the old password) and ends every live session of theirs but
    /// `keep`, with the journal `records` makes from the number of sessions ended, in one
    /// transaction (so a changed or reset password never leaves an old session alive, and all
    /// of it is recorded). Returns how many sessions were ended.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for an unknown user; nothing is changed then.
    async fn change_password_hash(
        &self,
        user: UserId,
        hash: &str,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
        records: SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError>;

    /// Stores a new session under `token_hash` and, in the same transaction, ends
    /// the user's oldest live sessions so at most `max_live` remain (including the new one),
    /// with the journal `records` makes from the sessions it ended (the login and each
    /// eviction are recorded together). Returns the ended sessions. A session opened with
    /// the password alone ([`SessionProof::Password`]) is refused if the person has a second
    /// factor switched on by then: taken under the account's lock, which the activation of a
    /// second factor also takes, so that a sign-in that read the person as having none while
    /// they switched one on either is ended by the activation or refused here.
    ///
    /// # Errors
    /// [`TenancyError::SecondFactorEnabled`] as above; [`TenancyError::Store`] on storage
    /// failure; nothing is written then.
    async fn create_session(
        &self,
        session: &Session,
        token_hash: &str,
        max_live: u32,
        proof: SessionProof,
        records: SessionsEvictedJournal<'_>,
    ) -> Result<Vec<SessionId>, TenancyError>;

    /// A live (not ended) session by token hash.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn find_session(&self, token_hash: &str) -> Result<Option<Session>, TenancyError>;

    /// A live session by token hash with its account: what authenticating a request needs.
    /// An adapter should answer this in one query; the default asks [`Self::find_session`]
    /// and [`Self::get_user`].
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn session_with_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Session, User)>, TenancyError> {
        let Some(session) = self.find_session(token_hash).await? else {
            return Ok(None);
        };
        Ok(self.get_user(session.user).await?.map(|u| (session, u)))
    }

    /// Records activity on a session.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn touch_session(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError>;

    /// Signs `user` out of `org`, in one transaction with the journal `records` makes of how
    /// many sessions it touched (returned). Each live session that stays good in another
    /// organization where the person is active (a membership not deactivated, outside the
    /// session's [`Session::signed_out_of`]) is refused in `org` from now on (`org` added to
    /// that list; one that holds it already is not counted); every other live session ends,
    /// also one signed out of `org` before. The memberships are read in the transaction, under
    /// the account's lock. Joining `org` again does not take it off the lists: signing in
    /// again does. `by` (the Owner or an Admin who asked; `None` for the system) is checked
    /// again under the organization's lock: still an active Owner or Admin, and the Owner when
    /// `user` is the Owner (by a transfer since the service looked, say).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when `user` is not a member of `org` (read under the same
    /// lock); [`TenancyError::RoleRule`] when `by` no longer administers `org`
    /// (`members::acting_role_changed`); [`TenancyError::Forbidden`] when `user` is the Owner
    /// and `by` is not; [`TenancyError::Store`] on storage failure; then no session is changed.
    async fn end_sessions_in(
        &self,
        org: OrgId,
        user: UserId,
        by: Option<UserId>,
        now: DateTime<Utc>,
        records: SessionsEndedJournal<'_>,
    ) -> Result<u64, TenancyError>;

    /// Ends a session of `user`.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when it is not a live session of `user`.
    async fn end_session(
        &self,
        user: UserId,
        session: SessionId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// `user`'s login-throttling state.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn login_throttle(
        &self,
        user: UserId,
    ) -> Result<Option<security_policy::ThrottleState>, TenancyError>;

    /// Replaces (or with `None` clears) `user`'s login-throttling state, with `journal` (the
    /// failed login's record) in the same transaction.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn set_login_throttle(
        &self,
        user: UserId,
        state: Option<&security_policy::ThrottleState>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Counts one more failed login of `user`, committing `journal` (the failure's records)
    /// with it, and returns the new state: [`security_policy::after_failure`] of the state
    /// stored (or, when `from_familiar_address`, [`security_policy::after_familiar_failure`]),
    /// read in the same transaction under a lock on the account, so that failures arriving
    /// at once each count.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn count_login_failure(
        &self,
        user: UserId,
        policy: &security_policy::LoginThrottlePolicy,
        now: DateTime<Utc>,
        from_familiar_address: bool,
        journal: Journal,
    ) -> Result<security_policy::ThrottleState, TenancyError>;

    /// The addresses `user` signed in from since `since`, and since their password last
    /// changed (the client addresses of their sessions created then or later, live or ended),
    /// each once, the latest used first, at most `limit`. A login from one of them is not
    /// refused by a lock that someone elsewhere caused ([`security_policy::admits_familiar`]);
    /// a changed or reset password, which ends an intruder's access, ends their address's
    /// familiarity too. The default knows none, so such a store's locks hold for every
    /// address.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn sign_in_addresses(
        &self,
        user: UserId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, TenancyError> {
        let _ = (user, since, limit);
        Ok(Vec::new())
    }

    /// One keyset page of `user`'s live sessions, newest first (by creation time, then id),
    /// after the session `before` (live or ended) of the previous page.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when `before` is not a session of `user`;
    /// [`TenancyError::Store`] on storage failure.
    async fn list_sessions_page(
        &self,
        user: UserId,
        before: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, TenancyError>;

    /// Every live session of `user`, in the order of [`Self::list_sessions_page`], read a
    /// page at a time.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_sessions(&self, user: UserId) -> Result<Vec<Session>, TenancyError> {
        const PAGE: u32 = 500;
        let mut all: Vec<Session> = Vec::new();
        loop {
            let before = all.last().map(|s| s.id);
            let page = self.list_sessions_page(user, before, PAGE).await?;
            let full = page.len() == PAGE as usize;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// When each of `users` last signed in (their newest session, live or ended). People never
    /// signed in are left out.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn last_sign_in(
        &self,
        users: &[UserId],
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, TenancyError>;
}

/// API keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a key if the organization's active keys stay within `limits`
    /// (checked with `billing_limits::check_quota`), its team is not archived and its creator
    /// is still an active member, atomically with the insert.
    ///
    /// # Errors
    /// [`TenancyError::LimitReached`] when the limit is reached; [`TenancyError::Archived`] for
    /// an archived team;
    /// [`TenancyError::NotFound`] when the creator is no longer an active member (a removal or
    /// deactivation revoked their keys, and must not be outlived by a new one); nothing is
    /// written then.
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &str,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// An active key by secret hash.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn find_api_key(&self, secret_hash: &str) -> Result<Option<ApiKey>, TenancyError>;

    /// One key of `org` (active or not).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn get_api_key(&self, org: OrgId, key: ApiKeyId) -> Result<Option<ApiKey>, TenancyError>;

    /// Keys of `org` ordered by id after the cursor, optionally only `created_by`'s.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_api_keys(
        &self,
        org: OrgId,
        created_by: Option<UserId>,
        after: Option<ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, TenancyError>;

    /// How many keys of `org` are active (not revoked): what the plan's API-key limit counts.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn active_api_key_count(&self, org: OrgId) -> Result<u64, TenancyError>;

    /// [`Self::list_api_keys`] narrowed to the keys `me` created in `own_in` (`None`: in any
    /// team) and every key in `all_in`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_api_keys_seen_by(
        &self,
        org: OrgId,
        me: UserId,
        own_in: Option<&[TeamId]>,
        all_in: &[TeamId],
        after: Option<ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, TenancyError>;

    /// Revokes an active key.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when `org` has no such active key.
    async fn revoke_api_key(
        &self,
        org: OrgId,
        key: ApiKeyId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Records a use of a key.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn touch_api_key(&self, key: ApiKeyId, now: DateTime<Utc>) -> Result<(), TenancyError>;
}

/// Invitations.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores a pending invitation. Atomically refuses an address that is already a member
    /// or has a pending invitation, and refuses when members plus pending invitations
    /// would exceed `limits`.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`], [`TenancyError::LimitReached`].
    async fn create_invitation(
        &self,
        inv: &Invitation,
        token_hash: &str,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// An invitation by token hash (the current token only).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn find_invitation(&self, token_hash: &str) -> Result<Option<Invitation>, TenancyError>;

    /// One invitation of `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn get_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Option<Invitation>, TenancyError>;

    /// Invitations of `org`, newest first, before the keyset cursor `after`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_invitations(
        &self,
        org: OrgId,
        after: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, TenancyError>;

    /// The invitations to `org` that `user` accepted, oldest first: the addresses they joined
    /// with, which a personal-data export lists and an erasure blanks.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn invitations_accepted_by(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<Vec<Invitation>, TenancyError>;

    /// How many of the organization's invitations are pending at `now` (neither accepted,
    /// revoked nor expired): the seats they hold against the member limit. The default walks
    /// every page of [`Self::list_invitations`]; a database store counts.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn pending_invitation_count(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<u64, TenancyError> {
        let mut n = 0u64;
        let mut after = None;
        loop {
            let page = self.list_invitations(org, after, 500).await?;
            n += page
                .iter()
                .filter(|i| i.status(now) == crate::invitations::InvitationStatus::Pending)
                .count() as u64;
            after = page.last().map(|i| i.id);
            if page.len() < 500 {
                return Ok(n);
            }
        }
    }

    /// Replaces the token and the expiry of an unused, unrevoked invitation that has not
    /// expired by `sent_at` (an expired one no longer holds a seat, which may be taken), sent
    /// again by `by`, who must still be an active admin allowed to invite with its role (see
    /// [`crate::invitations::check_inviter`]; a demotion or removal may have committed since
    /// the service checked).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when there is no such invitation; [`TenancyError::RoleRule`]
    /// when `by` may no longer send it.
    #[allow(
        clippy::too_many_arguments,
        reason = "the invitation, its sender and its new token"
    )]
    async fn reissue_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        by: UserId,
        token_hash: &str,
        sent_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Revokes an unused invitation.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when there is no such unused invitation.
    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// In one transaction: marks the invitation accepted if `token_hash` is still its
    /// token and it is pending at `now`, checks the seat limit, creates the account when
    /// `new_password_hash` is given, and adds the membership with `team_role` in `team`.
    ///
    /// # Errors
    /// [`TenancyError::InvitationUnusable`] when it was used, revoked, reissued or expired
    /// (also when two acceptances race); [`TenancyError::LimitReached`]; [`TenancyError::Conflict`],
    /// also ([`crate::invitations::gone_team`]) when `team` no longer exists.
    #[allow(
        clippy::too_many_arguments,
        reason = "one atomic operation; a struct would only rename the arguments"
    )]
    async fn accept_invitation(
        &self,
        inv: &Invitation,
        token_hash: &str,
        user: &User,
        new_password_hash: Option<&str>,
        team: TeamId,
        team_role: TeamRole,
        limits: &billing_limits::PlanLimits,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;
}

/// Bulk invitation previews.
#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Emails of `org`'s members and of its invitations pending at `now`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn member_and_pending_emails(
        &self,
        org: OrgId,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, Vec<String>), TenancyError>;

    /// Stores a preview (not an audited change: nothing happened yet).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn save_preview(&self, preview: &BulkPreview) -> Result<(), TenancyError>;

    /// An unconfirmed preview of `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn get_preview(
        &self,
        org: OrgId,
        id: InvitationId,
    ) -> Result<Option<BulkPreview>, TenancyError>;

    /// In one transaction: consumes the preview (once), checks each address is still neither
    /// a member nor invited, checks the seat limit for the whole batch, inserts every invitation
    /// and commits the journal.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when the preview is gone or used; [`TenancyError::Conflict`];
    /// [`TenancyError::LimitReached`].
    async fn confirm_preview(
        &self,
        org: OrgId,
        id: InvitationId,
        invitations: &[(Invitation, String)],
        limits: &billing_limits::PlanLimits,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;
}

/// Role changes, ownership transfers and removals.
#[async_trait]
pub trait MembershipStore: Send + Sync {
    /// Sets `user`'s role to `to` if it is still `from` (and their default-team role to match).
    /// `by` is the Owner or Admin making the change: read with it, under the organization's
    /// lock, they must still be an active Owner or Admin (a demotion, removal or deactivation
    /// of theirs committed since the service checked them withdraws the right); `None` for a
    /// change nobody in the organization makes.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when the role is no longer `from`;
    /// [`crate::members::acting_role_changed`] (a role rule) when `by` may no longer make it.
    async fn set_role(
        &self,
        org: OrgId,
        user: UserId,
        from: OrgRole,
        to: OrgRole,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Sets `user`'s role in every team of `org` to `to` if it is still `from` (see
    /// [`rbac_core::Subject::all_teams`]); `by` as in [`Self::set_role`].
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for a non-member; [`TenancyError::Conflict`] when the role
    /// is no longer `from`; [`crate::members::acting_role_changed`].
    async fn set_all_teams_role(
        &self,
        org: OrgId,
        user: UserId,
        from: Option<TeamRole>,
        to: Option<TeamRole>,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Stores the organization's pending transfer, replacing an earlier one, if `from` is
    /// still the Owner and `to` still a member (checked with the write, so a removal or
    /// ownership change committed since the service looked is not outlived by the proposal).
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when `from` is not the Owner; [`TenancyError::NotFound`]
    /// when `to` is not a member; [`TenancyError::Store`] on storage failure.
    async fn save_transfer(
        &self,
        transfer: &OwnershipTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// The organization's pending transfer.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn pending_transfer(&self, org: OrgId)
    -> Result<Option<OwnershipTransfer>, TenancyError>;

    /// Atomically: `from` (still Owner) becomes Admin, `to` (still a member) becomes Owner,
    /// the transfer is consumed. There is never zero or two Owners.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when either side changed meanwhile or the transfer was consumed.
    async fn complete_transfer(
        &self,
        transfer: &OwnershipTransfer,
        now: DateTime<Utc>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Withdraws `transfer` (as read) if it is still the organization's pending transfer, and
    /// commits `journal` with that.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when it is no longer pending (confirmed, replaced or
    /// withdrawn meanwhile).
    async fn withdraw_transfer(
        &self,
        transfer: &OwnershipTransfer,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Removes a member as described by [`crate::members::remove`], under a lock that
    /// serializes it with ownership transfers: a handover recipient that is no longer a
    /// member, or the removed member, is [`TenancyError::Invalid`]; a
    /// [`Disposition::TransferToOwner`](crate::members::Disposition::TransferToOwner) whose
    /// person is no longer the Owner is [`crate::members::ownership_changed`].
    ///
    /// `by` is the Owner or Admin removing them, as in [`Self::set_role`] (`None` when the
    /// person leaves). The transaction commits `journal` and the journal `sessions` makes from
    /// the number of sessions the removal ended or signed out of `org` (one
    /// `auth.session_revoked` for each, so each session it closed is on the record).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when they are no longer a member; `Invalid` and `Conflict`
    /// as above, and [`crate::members::acting_role_changed`], with nothing changed.
    #[allow(
        clippy::too_many_arguments,
        reason = "the removal, its author and its two journals"
    )]
    async fn remove_member(
        &self,
        org: OrgId,
        user: UserId,
        disposition: Disposition,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
        sessions: SessionsEndedJournal<'_>,
    ) -> Result<RemovalReport, TenancyError>;
}

/// Teams and workspace resources.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Those of `ids` that are documents, of any organization (what
    /// [`crate::assets::sweep_unreferenced_blobs`] must keep), in any order.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn documents_among(&self, ids: &[ResourceId]) -> Result<Vec<ResourceId>, TenancyError>;

    /// Creates a team.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when the organization has a team of that name.
    async fn create_team(&self, team: &Team, journal: Journal) -> Result<(), TenancyError>;

    /// Teams of `org`, by name.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_teams(&self, org: OrgId) -> Result<Vec<Team>, TenancyError>;

    /// One team of `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn get_team(&self, org: OrgId, team: TeamId) -> Result<Option<Team>, TenancyError>;

    /// Replaces name and archive state if the team is still `before`.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when the name is taken or the team changed meanwhile.
    async fn update_team(
        &self,
        before: &Team,
        after: &Team,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Deletes a non-default team that holds no assets, no active API keys, no credits and no
    /// share of the organization's credit purchases (stores that keep credits) and is no stage
    /// of the organization's pipeline (stores that keep one:
    /// [`crate::pipeline::team_is_a_stage`]), with its
    /// team roles, atomically with those checks; invitations into it still open at `now` are
    /// revoked with it (they would hold seats for a team nobody can join).
    ///
    /// `by`, when given, is whose Owner or Admin rights the deletion is made with (an Admin, a
    /// SCIM token's creator), checked again under the organization's lock as for
    /// [`MembershipStore::set_role`]; `None` where the rights are a team's (a team admin).
    ///
    /// # Errors
    /// [`TenancyError::NotFound`]; [`TenancyError::Conflict`] when it still holds something;
    /// [`crate::members::acting_role_changed`].
    async fn delete_team(
        &self,
        org: OrgId,
        team: TeamId,
        now: DateTime<Utc>,
        by: Option<UserId>,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// One keyset page of the team's members by user id, after `after`: those given a role in
    /// it and those with a role in every team ([`Member::all_teams`]), deactivated ones
    /// included.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn team_members_page(
        &self,
        org: OrgId,
        team: TeamId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<TeamMember>, TenancyError>;

    /// Every member of the team, in the order of [`Self::team_members_page`], read a page at a
    /// time (for the service's own uses: a team's alert recipients, a SCIM group's members).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn team_members(
        &self,
        org: OrgId,
        team: TeamId,
    ) -> Result<Vec<TeamMember>, TenancyError> {
        const PAGE: u32 = 500;
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|m: &TeamMember| m.member.user.id);
            let page = self.team_members_page(org, team, after, PAGE).await?;
            let full = page.len() == PAGE as usize;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Sets (or with `None` removes) `user`'s role in `team`; `user` must be a member of `org`.
    /// An archived team takes no one new (its people may still be given another role or taken
    /// out), read in the write's transaction.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] for a team or person outside `org` (or not in the team, on
    /// removal); [`crate::teams::archived_team`] ([`TenancyError::Archived`]) for someone new in
    /// an archived team (someone with a role in every team is not new there).
    async fn set_team_member(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        role: Option<TeamRole>,
        journal: Journal,
    ) -> Result<(), TenancyError> {
        self.set_team_member_recorded(org, team, user, role, None, &|_| journal.clone())
            .await
    }

    /// [`Self::set_team_member`], committing the journal `journal` makes from the role `user`
    /// had in `team` before (read in the write's transaction, under the organization's lock):
    /// so that what is recorded (an addition, a change of role, a removal) is what the write
    /// did, whatever was written concurrently. `by` is the person making the change: read with
    /// it, under the organization's lock, they must still manage the team's members
    /// ([`crate::teams::may_manage_members`]: an active Owner or Admin, or the team's Admin), so
    /// that a demotion committed since the service checked them withdraws the right; `None`
    /// for a change nobody in the organization makes (SCIM, the system).
    ///
    /// # Errors
    /// As [`Self::set_team_member`]; [`crate::members::acting_role_changed`] (a role rule)
    /// when `by` may no longer make it.
    async fn set_team_member_recorded(
        &self,
        org: OrgId,
        team: TeamId,
        user: UserId,
        role: Option<TeamRole>,
        by: Option<UserId>,
        journal: TeamRoleJournal<'_>,
    ) -> Result<(), TenancyError>;

    /// Inserts an asset after checking, in the same transaction: its team is in the
    /// organization and not archived, its parent (if any) is in the same team, the plan's
    /// limits for its kind (and, for documents, storage) stay within `limits`, and a chat
    /// interface is not made in a later stage of the organization's pipeline
    /// ([`crate::pipeline::check_entry`] on the pipeline as stored, for stores that keep one).
    ///
    /// # Errors
    /// [`TenancyError::LimitReached`], [`TenancyError::NotFound`], [`TenancyError::Conflict`]
    /// (archived team, a domain's host name already added in the organization, a chat
    /// interface in a later stage of the pipeline: the quality gate).
    async fn create_asset(
        &self,
        asset: &Asset,
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// [`WorkspaceStore::create_asset`] for several assets of one organization in one
    /// transaction, in order (a parent before what sits under it): all of them with
    /// `journal`, or, when any check fails, none.
    ///
    /// # Errors
    /// As [`WorkspaceStore::create_asset`]; [`TenancyError::Invalid`] for assets of several
    /// organizations.
    async fn create_assets(
        &self,
        assets: &[Asset],
        limits: &billing_limits::PlanLimits,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// One asset of `org`.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn get_asset(&self, org: OrgId, id: ResourceId) -> Result<Option<Asset>, TenancyError>;

    /// Assets of `org` matching `filter`, ordered by id after the cursor.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn list_assets(
        &self,
        org: OrgId,
        filter: &AssetFilter,
        after: Option<ResourceId>,
        limit: u32,
    ) -> Result<Vec<Asset>, TenancyError>;

    /// Replaces an asset if it is still `before` (same team, name and update time). An edit
    /// (anything but archiving or restoring it) is refused when its team is archived, checked
    /// in the write: a team archived after the service looked is obeyed.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when it changed or moved meanwhile; [`TenancyError::NotFound`];
    /// [`TenancyError::Archived`] ([`crate::teams::archived`]) for an edit in an archived team.
    async fn update_asset(
        &self,
        before: &Asset,
        after: &Asset,
        journal: Journal,
    ) -> Result<(), TenancyError>;

    /// Deletes an asset and everything under it if it is still in `team` (the team the
    /// deletion was allowed in, as the caller read it); returns what was deleted. With
    /// `only_by` (a caller who may delete only what they created), nothing is deleted when
    /// anything under it was created by someone else, as found in the deletion's transaction.
    ///
    /// # Errors
    /// [`TenancyError::NotFound`] when it is already gone; [`TenancyError::Conflict`] when it
    /// moved to another team meanwhile; [`TenancyError::Forbidden`] (`not_creator`) for
    /// someone else's under it with `only_by` (nothing is deleted).
    async fn delete_asset(
        &self,
        org: OrgId,
        id: ResourceId,
        team: TeamId,
        only_by: Option<UserId>,
        journal: Journal,
    ) -> Result<Vec<Asset>, TenancyError>;

    /// Moves an asset and everything under it from `t.from_team` to `t.to_team` (renaming it
    /// to `t.to_name`) if it is still in `t.from_team` and named `t.from_name` (not renamed
    /// since it was read) and the target team exists, is not archived and is in the same
    /// organization, and, for a chat interface, the organization's pipeline as stored lets it
    /// in ([`crate::pipeline::check_entry`], for stores that keep one); keeps `t` in the
    /// history.
    ///
    /// # Errors
    /// [`TenancyError::Conflict`] when it moved or was renamed meanwhile
    /// ([`crate::assets::moved_meanwhile`]), the target is archived, or the pipeline's quality
    /// gate refuses it ([`crate::pipeline::check_entry`]); [`TenancyError::NotFound`].
    async fn transfer_asset(&self, t: &AssetTransfer, journal: Journal)
    -> Result<(), TenancyError>;

    /// The transfers of one asset, oldest first.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn transfers_of(
        &self,
        org: OrgId,
        asset: ResourceId,
    ) -> Result<Vec<AssetTransfer>, TenancyError>;

    /// Adds `usage.count` to the day's counter (not audited: it is metering, not a change).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn record_usage(&self, usage: &UsageRecord, org: OrgId) -> Result<(), TenancyError>;

    /// Daily usage of `org` between two days, inclusive.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn usage(
        &self,
        org: OrgId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<UsageRecord>, TenancyError>;

    /// Documents and bytes per team.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn storage(&self, org: OrgId) -> Result<Vec<TeamStorage>, TenancyError>;

    /// How many assets of each kind each team of `org` holds, archived ones included (what
    /// the plan's limits count), in no particular order; teams and kinds without any are left
    /// out. Read by usage reports, usage alerts and the hourly repair of missed alerts. The
    /// default pages through [`Self::list_assets`]; an adapter should count in the database.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn asset_counts(&self, org: OrgId) -> Result<Vec<TeamAssets>, TenancyError> {
        let mut counts = std::collections::HashMap::new();
        for kind in AssetKind::ALL {
            let filter = AssetFilter {
                kind,
                teams: None,
                parent: None,
                archived: None,
            };
            let mut after = None;
            loop {
                let page = self.list_assets(org, &filter, after, 500).await?;
                for a in &page {
                    *counts.entry((a.team, kind)).or_insert(0u64) += 1;
                }
                after = page.last().map(|a| a.id);
                if page.len() < 500 {
                    break;
                }
            }
        }
        Ok(counts
            .into_iter()
            .map(|((team, kind), count)| TeamAssets { team, kind, count })
            .collect())
    }

    /// Commits a journal that changes no row of its own: a read's record (viewing analytics,
    /// exports), or a record with its mails (a support request).
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn record(&self, journal: Journal) -> Result<(), TenancyError>;
}

/// The journal a write commits, made from how many sessions it ended (or signed out of the
/// organization): see [`TenancyStore::change_password_hash`] and
/// [`MembershipStore::remove_member`].
pub type SessionsEndedJournal<'a> = &'a (dyn Fn(u64) -> Journal + Send + Sync);

/// A journal of `n` copies of one record: the `auth.session_revoked` of each session a write
/// ended, as a [`SessionsEndedJournal`] wants them.
#[must_use]
pub fn each_session(record: &audit::NewAuditEvent, n: u64) -> Journal {
    (0..n).fold(Journal::default(), |j, _| j.and_record(record.clone()))
}

/// The journal a team-role change commits, made from the role the person had in the team
/// before it (`None`: none): see [`WorkspaceStore::set_team_member_recorded`].
pub type TeamRoleJournal<'a> = &'a (dyn Fn(Option<TeamRole>) -> Journal + Send + Sync);

/// What a new session was opened with ([`AccountStore::create_session`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionProof {
    /// The password alone: the person had no second factor when the sign-in looked.
    Password,
    /// The password and a second factor.
    SecondFactor,
}

/// The journal a login commits, made from the older sessions the concurrent-session limit
/// ended: see [`TenancyStore::create_session`].
pub type SessionsEvictedJournal<'a> = &'a (dyn Fn(&[SessionId]) -> Journal + Send + Sync);

/// Everything the tenancy services need, as one handle. Its own methods combine the others
/// and have defaults, so an adapter implements it with an empty `impl` block unless it can
/// answer in fewer reads or write off the request's path.
#[async_trait]
pub trait TenancyStore: OrgStore + AccountStore + ApiKeyStore {
    /// A live session by token hash, its account and every membership of the person (as
    /// [`OrgStore::caller_memberships`]): all that resolving a session in an organization
    /// reads, on every organization-scoped request. An adapter should answer it in one
    /// query; the default asks [`AccountStore::session_with_user`], then
    /// [`OrgStore::caller_memberships`].
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure.
    async fn session_caller(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Session, User, Vec<CallerMembership>)>, TenancyError> {
        let Some((session, user)) = self.session_with_user(token_hash).await? else {
            return Ok(None);
        };
        let memberships = self.caller_memberships(user.id).await?;
        Ok(Some((session, user, memberships)))
    }

    /// Records activity on a session, as [`AccountStore::touch_session`] (the default), except
    /// that an adapter may write it after returning: many sessions' activity gathered into one
    /// write, so that a request does not wait for a write of its own. A crash may then lose the
    /// activity of the last moments, which only makes those sessions look idle a little sooner.
    ///
    /// # Errors
    /// [`TenancyError::Store`] on storage failure (an adapter that writes later logs its
    /// failures instead).
    async fn note_activity(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<(), TenancyError> {
        self.touch_session(session, now).await
    }
}
