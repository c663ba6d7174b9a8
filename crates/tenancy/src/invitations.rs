//! Invitations: invite by email with a role, resend, revoke, look up, accept.
//!
//! Tokens carry 256 bits of randomness, are stored only as SHA-256 hashes and work
//! once. The email with the link is queued in the same transaction as the invitation.
//!
//! An invitation brings its invitee into the default team, or, when it names a team, into
//! that team alone (the guide's client stakeholders: "Member (their team only)"): they never
//! see the default team's resources, not even between accepting and an admin's clean-up.

use audit::{AuditAction, DomainEvent, EventKind, Journal, Metadata, OutboundMail, Target};

use chrono::{DateTime, Duration, Utc};
use rbac_core::{
    InvitationId, OrgId, OrgRole, Permission, Resource, TeamId, TeamRole, UserId, check_invite_role,
};
use security_policy::{
    MintedToken, PasswordHasher, check_password, context_words, hash_token, mint,
};
use serde::Serialize;
use serde_json::json;

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::model::{Email, User, valid_name};
use crate::store::{InvitationStore, TenancyStore, WorkspaceStore};

/// The kind of an invitation's mail in the outbox. A store deletes the unsent one when its
/// invitation is revoked or sent again (its link no longer works).
pub const INVITATION_MAIL: &str = "invitation";

/// Token prefix of invitation links.
pub const INVITATION_PREFIX: &str = "axi";

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Waiting for the invitee.
    Pending,
    /// Used.
    Accepted,
    /// Withdrawn by an admin.
    Revoked,
    /// Not used in time.
    Expired,
}

impl InvitationStatus {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }
}

/// An invitation (its token is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The organization.
    pub org: OrgId,
    /// The invited address.
    pub email: Email,
    /// The role they join with.
    pub role: OrgRole,
    /// Who invited them.
    pub invited_by: UserId,
    /// When it was (last) sent.
    pub created_at: DateTime<Utc>,
    /// Valid strictly before this instant.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The one team the invitee joins instead of the default team.
    pub team: Option<InvitedTeam>,
}

/// The team an invitation is for, and the invitee's role in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InvitedTeam {
    /// The team.
    pub id: TeamId,
    /// Their role in it.
    pub role: TeamRole,
}

impl Invitation {
    /// The status at `now`.
    #[must_use]
    pub fn status(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.accepted_at.is_some() {
            InvitationStatus::Accepted
        } else if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        }
    }

    /// `Ok` when the invitation can be used at `now`.
    ///
    /// # Errors
    /// [`TenancyError::InvitationUnusable`] with the status.
    pub fn usable(&self, now: DateTime<Utc>) -> Result<(), TenancyError> {
        match self.status(now) {
            InvitationStatus::Pending => Ok(()),
            other => Err(TenancyError::InvitationUnusable(other)),
        }
    }
}

/// Deployment settings for invitations.
#[derive(Debug, Clone)]
pub struct InvitationSettings {
    /// How long a link stays valid (default 7 days).
    pub expiry: Duration,
    /// The page that accepts invitations; the token is appended as `#token=…`.
    pub accept_url: String,
    /// Seals the token in the queued mail ([`crate::mail_secrets`]).
    pub sealer: crate::mail_secrets::MailSealer,
}

/// An invitation request.
#[derive(Debug, Clone)]
pub struct InviteRequest {
    /// Address to invite.
    pub email: String,
    /// Role (Admin or User).
    pub role: OrgRole,
    /// The one team they join instead of the default team.
    pub team: Option<InvitedTeam>,
}

/// How an invitation email's subject begins: it names the inviter (erasure finds their
/// invitations by it, `PrivacyStore::erase_member`).
#[must_use]
pub fn subject_prefix(inviter: &str) -> String {
    format!("{inviter} invited you to ")
}

/// The first line of an invitation mail: `Hello <name>,` with a name from an uploaded sheet
/// kept to one line of at most 100 characters that reads in its order (control characters,
/// line and paragraph separators and bidirectional controls become spaces), else `Hello,`.
fn greeting(invitee: Option<&str>) -> String {
    let shown = |c: char| {
        !(c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
            )
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c))
    };
    invitee
        .map(|n| {
            n.chars()
                .map(|c| if shown(c) { c } else { ' ' })
                .take(100)
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .filter(|n| !n.is_empty())
        .map_or_else(|| "Hello,".to_owned(), |n| format!("Hello {n},"))
}

/// The invitation email with its one-time link; `invitee` is the name a bulk file gave the
/// person (the greeting uses it: it is kept nowhere else).
pub(crate) fn invitation_mail(
    caller: &Caller,
    inv: &Invitation,
    team: Option<&str>,
    invitee: Option<&str>,
    token: &MintedToken,
    settings: &InvitationSettings,
) -> OutboundMail {
    let greeting = greeting(invitee);
    let to = inv.email.to_string();
    // The token as the queued mail keeps it: sealed, when the server has a key.
    let sealed = settings.sealer.token(&to, &token.secret);
    let link = format!("{}#token={sealed}", settings.accept_url);
    let place = match (team, inv.team) {
        (Some(name), Some(t)) => format!(
            "{} as {}, in the team {name} as {}",
            caller.org.name,
            inv.role.as_str(),
            t.role.as_str()
        ),
        _ => format!("{} as {}", caller.org.name, inv.role.as_str()),
    };
    OutboundMail {
        org: Some(inv.org),
        to,
        subject: format!(
            "{}{} on Axie Studio",
            subject_prefix(&caller.user.name),
            caller.org.name
        ),
        body: format!(
            "{greeting}\n\n{inviter} ({inviter_email}) invited you to join {place}.\n\n\
             Accept the invitation:\n{link}\n\n\
             Your invitation token: {token}\n\n\
             The link works once and expires on {expires} (UTC).\n\
             If you did not expect this, ignore this email.\n",
            inviter = caller.user.name,
            inviter_email = caller.user.email,
            token = sealed,
            expires = inv.expires_at.format("%Y-%m-%d %H:%M"),
        ),
        kind: INVITATION_MAIL.into(),
    }
}

/// Invites someone; the email with the one-time link is queued in the same transaction.
/// With a team in the request, the invitee joins that team alone (not the default team);
/// the caller must be able to manage that team's members.
///
/// # Errors
/// [`TenancyError::Forbidden`] / [`TenancyError::RoleRule`] for callers who may not invite
/// with that role; [`TenancyError::Conflict`] for members and pending invitees;
/// [`TenancyError::LimitReached`] when members plus pending invitations fill the plan;
/// [`TenancyError::NotFound`] for a team the caller cannot see; [`TenancyError::Invalid`] for
/// an archived team.
pub async fn invite<
    S: TenancyStore + InvitationStore + WorkspaceStore + crate::metering::MeteringStore + ?Sized,
>(
    store: &S,
    caller: &Caller,
    req: InviteRequest,
    settings: &InvitationSettings,
    now: DateTime<Utc>,
) -> Result<(Invitation, MintedToken), TenancyError> {
    caller.check_org(Permission::InviteMembers)?;
    check_invite_role(&caller.subject, req.role)?;
    let email = Email::parse(&req.email)?;
    let team = match req.team {
        Some(t) => Some(invitable_team(store, caller, t.id).await?),
        None => None,
    };
    let token = mint(INVITATION_PREFIX, 32);
    let inv = Invitation {
        id: InvitationId::new(),
        org: caller.org.id,
        email,
        role: req.role,
        invited_by: caller.user.id,
        created_at: now,
        expires_at: now + settings.expiry,
        accepted_at: None,
        revoked_at: None,
        team: req.team,
    };
    let mut meta = json!({ "role": inv.role.as_str() });
    if let (Some(t), Some(invited)) = (&team, inv.team) {
        meta["team"] = json!({ "id": t.id, "name": t.name, "role": invited.role.as_str() });
    }
    let journal = Journal::record(
        caller
            .audit(
                now,
                AuditAction::MemberInvited,
                Target::new("invitation", inv.id, inv.email.to_string()),
            )
            .with_metadata(Metadata::from_value(meta)?),
    )
    .mail(invitation_mail(
        caller,
        &inv,
        team.as_ref().map(|t| t.name.as_str()),
        None,
        &token,
        settings,
    ));
    store
        .create_invitation(&inv, &token.hash, &caller.org.limits(), journal)
        .await?;
    crate::metering::alert_on_seats(store, &caller.org, now).await;
    Ok((inv, token))
}

/// The team an invitation may name: one of the organization's, not archived, whose members
/// the caller manages. Another organization's team answers as unknown.
pub(crate) async fn invitable_team<S: WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: TeamId,
) -> Result<crate::model::Team, TenancyError> {
    let team = store
        .get_team(caller.org.id, id)
        .await?
        .ok_or(TenancyError::NotFound("team"))?;
    caller
        .check(
            Permission::ManageTeamMembers,
            &Resource::team(team.org, team.id),
        )
        .map_err(|e| e.not_found_as("team"))?;
    if team.archived_at.is_some() {
        return Err(TenancyError::Invalid(format!(
            "the team `{}` is archived; nobody joins it",
            team.name
        )));
    }
    Ok(team)
}

/// The name of the team an invitation names, if it still exists.
async fn team_name<S: WorkspaceStore + ?Sized>(
    store: &S,
    inv: &Invitation,
) -> Result<Option<String>, TenancyError> {
    match inv.team {
        Some(t) => Ok(store.get_team(inv.org, t.id).await?.map(|t| t.name)),
        None => Ok(None),
    }
}

/// Sends a pending invitation again with a new token (the old link stops working) and a new expiry.
///
/// # Errors
/// [`TenancyError::NotFound`]; [`TenancyError::InvitationUnusable`] for accepted or revoked ones.
pub async fn resend<S: TenancyStore + InvitationStore + WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: InvitationId,
    settings: &InvitationSettings,
    now: DateTime<Utc>,
) -> Result<(Invitation, MintedToken), TenancyError> {
    caller.check_org(Permission::InviteMembers)?;
    let mut inv = store
        .get_invitation(caller.org.id, id)
        .await?
        .ok_or(TenancyError::NotFound("invitation"))?;
    check_invite_role(&caller.subject, inv.role)?;
    // An expired invitation no longer holds a seat; reviving it would skip the seat and
    // duplicate checks, so it is invited anew instead.
    if let s
    @ (InvitationStatus::Accepted | InvitationStatus::Revoked | InvitationStatus::Expired) =
        inv.status(now)
    {
        return Err(TenancyError::InvitationUnusable(s));
    }
    // A team deleted or archived since: its link could not be used (accepting refuses it).
    let team = match inv.team {
        Some(t) => match store.get_team(inv.org, t.id).await? {
            Some(team) if team.archived_at.is_none() => Some(team.name),
            _ => return Err(gone_team()),
        },
        None => None,
    };
    let token = mint(INVITATION_PREFIX, 32);
    inv.created_at = now;
    inv.expires_at = now + settings.expiry;
    let journal = Journal::record(caller.audit(
        now,
        AuditAction::InvitationResent,
        Target::new("invitation", inv.id, inv.email.to_string()),
    ))
    .mail(invitation_mail(
        caller,
        &inv,
        team.as_deref(),
        None,
        &token,
        settings,
    ));
    store
        .reissue_invitation(
            caller.org.id,
            id,
            caller.user.id,
            &token.hash,
            now,
            inv.expires_at,
            journal,
        )
        .await?;
    Ok((inv, token))
}

/// Withdraws a pending invitation.
///
/// # Errors
/// [`TenancyError::NotFound`]; [`TenancyError::InvitationUnusable`] when already used or revoked.
pub async fn revoke<S: TenancyStore + InvitationStore + ?Sized>(
    store: &S,
    caller: &Caller,
    id: InvitationId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    caller.check_org(Permission::InviteMembers)?;
    let inv = store
        .get_invitation(caller.org.id, id)
        .await?
        .ok_or(TenancyError::NotFound("invitation"))?;
    if let s @ (InvitationStatus::Accepted | InvitationStatus::Revoked) = inv.status(now) {
        return Err(TenancyError::InvitationUnusable(s));
    }
    let journal = Journal::record(caller.audit(
        now,
        AuditAction::InvitationRevoked,
        Target::new("invitation", inv.id, inv.email.to_string()),
    ));
    store
        .revoke_invitation(caller.org.id, id, now, journal)
        .await
}

/// What the invitation page shows. It is the same whether or not the invitee has an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitationView {
    /// The organization's name.
    pub org_name: String,
    /// The invited address.
    pub email: String,
    /// The role offered.
    pub role: OrgRole,
    /// The one team offered instead of the default team, by name, and the role in it.
    pub team: Option<(String, TeamRole)>,
    /// Status now.
    pub status: InvitationStatus,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

async fn by_token<S: TenancyStore + InvitationStore + ?Sized>(
    store: &S,
    token: &str,
) -> Result<Invitation, TenancyError> {
    if !token.starts_with(INVITATION_PREFIX) || token.len() > 200 {
        return Err(TenancyError::NotFound("invitation"));
    }
    store
        .find_invitation(&hash_token(token))
        .await?
        .ok_or(TenancyError::NotFound("invitation"))
}

/// Looks an invitation up by its token.
///
/// # Errors
/// [`TenancyError::NotFound`] for unknown (or superseded) tokens.
pub async fn lookup<S: TenancyStore + InvitationStore + WorkspaceStore + ?Sized>(
    store: &S,
    token: &str,
    now: DateTime<Utc>,
) -> Result<InvitationView, TenancyError> {
    let inv = by_token(store, token).await?;
    let org = store.get_org(inv.org).await?;
    let team = team_name(store, &inv).await?.zip(inv.team.map(|t| t.role));
    Ok(InvitationView {
        org_name: org.name,
        email: inv.email.to_string(),
        role: inv.role,
        team,
        status: inv.status(now),
        expires_at: inv.expires_at,
    })
}

/// The journal of an acceptance: `member.added`, and `user.created` in the guide's shape, whose
/// `invitedBy` is the inviter's email (`invitedById` their id; both null when the inviter's
/// account is gone).
fn accepted_journal(
    inv: &Invitation,
    user: &User,
    inviter: Option<&User>,
    now: DateTime<Utc>,
) -> Result<Journal, TenancyError> {
    Ok(Journal::record(
        audit::NewAuditEvent::new(inv.org, now, audit::Actor::user(user.id, user.name.clone()), AuditAction::MemberAdded, Target::new("member", user.id, user.name.clone()))
            .with_metadata(Metadata::from_value(json!({ "role": inv.role.as_str(), "invitation": inv.id, "invited_by": inv.invited_by, "team": inv.team.map(|t| t.id) }))?),
    )
    .publish(DomainEvent::new(inv.org, EventKind::UserCreated, now, json!({
        "userId": user.id, "email": user.email, "role": inv.role.as_str(),
        "invitedBy": inviter.map(|u| u.email.as_str()), "invitedById": inviter.map(|u| u.id),
    }))))
}

fn team_role_for(role: OrgRole) -> TeamRole {
    if role.is_admin() {
        TeamRole::Admin
    } else {
        TeamRole::Member
    }
}

/// The team an accepted invitation joins, and the role in it: the one it names, or the
/// default team. The store checks again, in the acceptance's transaction, that the team exists.
async fn joining<S: TenancyStore + WorkspaceStore + ?Sized>(
    store: &S,
    inv: &Invitation,
) -> Result<(TeamId, TeamRole), TenancyError> {
    match inv.team {
        Some(t) => {
            match store.get_team(inv.org, t.id).await? {
                Some(team) if team.archived_at.is_none() => {}
                _ => return Err(gone_team()),
            }
            Ok((t.id, t.role))
        }
        None => Ok((
            store.default_team(inv.org).await?.id,
            team_role_for(inv.role),
        )),
    }
}

/// The check a store makes when it writes an invitation: the inviter's role in the
/// organization as it is now (`None` when they are no longer an active member) still lets them
/// invite with `role` ([`rbac_core::check_invite_role_of`]). A demotion or removal withdraws
/// the person's pending invitations; one being written at the same moment must not outlive it.
///
/// # Errors
/// [`TenancyError::RoleRule`].
pub fn check_inviter(inviter: Option<OrgRole>, role: OrgRole) -> Result<(), TenancyError> {
    let inviter = inviter.ok_or(rbac_core::RoleRuleError::NotAnAdmin)?;
    Ok(rbac_core::check_invite_role_of(inviter, role)?)
}

/// The refusal of an existing account joining an organization by an address it no longer has:
/// a change of its email committed after the service matched it (the stores check it again
/// under the account's lock).
#[must_use]
pub fn joining_address_changed() -> TenancyError {
    TenancyError::Changed("the account's email address changed meanwhile; try again".into())
}

/// The refusal of an invitation whose team was deleted or archived after it was sent.
#[must_use]
pub fn gone_team() -> TenancyError {
    TenancyError::Conflict(
        "the team this invitation was for no longer exists or is archived; ask for a new invitation"
            .into(),
    )
}

/// A signed-in person accepts an invitation addressed to their email (case-insensitive).
///
/// # Errors
/// [`TenancyError::NotFound`]; [`TenancyError::InvitationUnusable`] (used, revoked, expired, also
/// when two acceptances race); [`TenancyError::Forbidden`]-like [`TenancyError::Conflict`] when the
/// email differs or they are already a member; [`TenancyError::LimitReached`] when the plan is full.
pub async fn accept<
    S: TenancyStore
        + InvitationStore
        + crate::WorkspaceStore
        + crate::metering::MeteringStore
        + ?Sized,
>(
    store: &S,
    user: &User,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Invitation, TenancyError> {
    let inv = by_token(store, token).await?;
    inv.usable(now)?;
    if inv.email != user.email {
        return Err(TenancyError::Conflict(
            "this invitation was sent to another email address".into(),
        ));
    }
    let org = store.get_org(inv.org).await?;
    let (team, team_role) = joining(store, &inv).await?;
    let inviter = store.get_user(inv.invited_by).await?;
    let journal = accepted_journal(&inv, user, inviter.as_ref(), now)?;
    store
        .accept_invitation(
            &inv,
            &hash_token(token),
            user,
            None,
            team,
            team_role,
            &org.limits(),
            now,
            journal,
        )
        .await?;
    crate::metering::alert_on_seats(store, &org, now).await;
    Ok(inv)
}

/// Someone without an account creates it through the link, under the organization's password rules.
///
/// # Errors
/// As [`accept`], plus [`TenancyError::Password`] and [`TenancyError::Conflict`] when an account
/// with the address exists (they sign in and accept instead).
pub async fn accept_with_new_account<
    S: TenancyStore
        + InvitationStore
        + crate::WorkspaceStore
        + crate::metering::MeteringStore
        + ?Sized,
>(
    store: &S,
    hasher: &PasswordHasher,
    token: &str,
    name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<(Invitation, User), TenancyError> {
    let inv = by_token(store, token).await?;
    inv.usable(now)?;
    let name = valid_name("name", name)?;
    let org = store.get_org(inv.org).await?;
    check_password(
        &org.security.passwords,
        password,
        &context_words(inv.email.as_str(), &org.name),
        false,
    )?;
    let hash = hasher
        .hash_off_thread(password)
        .await
        .map_err(|e| TenancyError::Invalid(e.to_string()))?;
    let user = User {
        id: UserId::new(),
        email: inv.email.clone(),
        name,
        created_at: now,
    };
    let (team, team_role) = joining(store, &inv).await?;
    let inviter = store.get_user(inv.invited_by).await?;
    let journal = accepted_journal(&inv, &user, inviter.as_ref(), now)?;
    store
        .accept_invitation(
            &inv,
            &hash_token(token),
            &user,
            Some(&hash),
            team,
            team_role,
            &org.limits(),
            now,
            journal,
        )
        .await?;
    crate::metering::alert_on_seats(store, &org, now).await;
    Ok((inv, user))
}

/// The organization's mail outbox (what would be or was sent), newest first, a page of
/// `limit` before the cursor `before`. The Owner sees each mail whole; everyone else who may
/// invite sees recipients, subjects and delivery state with the bodies emptied: an
/// invitation's link would let its reader sign up as the invitee, and billing mail is the
/// Owner's: its subject (which names invoices and failed payments) is withheld too.
///
/// # Errors
/// [`TenancyError::Forbidden`] without `invite_members`; storage errors.
pub async fn outbox<S: audit::MailOutbox + ?Sized>(
    store: &S,
    caller: &Caller,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<audit::QueuedMail>, TenancyError> {
    caller.check_org(Permission::InviteMembers)?;
    let mut mails = store.list_mails(Some(caller.org.id), before, limit).await?;
    if caller.subject.role != OrgRole::Owner {
        for m in &mut mails {
            m.body.clear();
            if crate::billing::BILLING_MAIL_KINDS.contains(&m.kind.as_str()) {
                "billing mail for the Owner".clone_into(&mut m.subject);
            }
        }
    }
    Ok(mails)
}

/// The organization's invitations, newest first by id.
///
/// # Errors
/// [`TenancyError::Forbidden`] without the invite permission.
pub async fn list<S: TenancyStore + InvitationStore + ?Sized>(
    store: &S,
    caller: &Caller,
    after: Option<InvitationId>,
    limit: u32,
) -> Result<Vec<Invitation>, TenancyError> {
    caller.check_org(Permission::InviteMembers)?;
    store.list_invitations(caller.org.id, after, limit).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheets_name_greets_on_one_line_in_its_order() {
        assert_eq!(greeting(Some("Ann Archer")), "Hello Ann Archer,");
        assert_eq!(greeting(None), "Hello,");
        assert_eq!(greeting(Some(" \t ")), "Hello,");
        assert_eq!(
            greeting(Some("Ann\nBcc: x\u{2028}Lee\u{202E}gnp.exe\u{2066}")),
            "Hello Ann Bcc: x Lee gnp.exe,"
        );
        assert_eq!(
            greeting(Some(&"é".repeat(300))),
            format!("Hello {},", "é".repeat(100))
        );
    }

    fn inv(expires_in: i64) -> (Invitation, DateTime<Utc>) {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let i = Invitation {
            id: InvitationId::new(),
            org: OrgId::new(),
            email: Email::parse("a@b.example").unwrap(),
            role: OrgRole::User,
            invited_by: UserId::new(),
            created_at: now,
            expires_at: now + Duration::seconds(expires_in),
            accepted_at: None,
            revoked_at: None,
            team: None,
        };
        (i, now)
    }

    #[test]
    fn expiry_boundary() {
        let (i, now) = inv(10);
        assert_eq!(
            i.status(now + Duration::seconds(9)),
            InvitationStatus::Pending
        );
        assert_eq!(
            i.status(now + Duration::seconds(10)),
            InvitationStatus::Expired
        );
        assert!(i.usable(now + Duration::milliseconds(9_999)).is_ok());
    }

    #[test]
    fn accepted_and_revoked_win_over_expiry() {
        let (mut i, now) = inv(10);
        i.revoked_at = Some(now);
        assert_eq!(
            i.status(now + Duration::days(30)),
            InvitationStatus::Revoked
        );
        i.accepted_at = Some(now);
        assert_eq!(i.status(now), InvitationStatus::Accepted);
    }
}
