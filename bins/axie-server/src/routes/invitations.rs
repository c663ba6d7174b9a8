//! Invitations: invite, list, resend, revoke; and the invitee's side: look up, accept, sign up.
//! Tokens travel in request bodies, never in URLs, so they stay out of access logs.

use actix_web::{HttpResponse, web};
use rbac_core::{InvitationId, OrgRole, TeamRole};
use serde::{Deserialize, Serialize};
use tenancy::invitations::{self, Invitation, InvitationSettings, InviteRequest, InvitedTeam};
use utoipa::ToSchema;

use crate::auth::{Authenticated, OrgCaller, audited};
use crate::error::ApiError;
use crate::routes::me::UserResponse;
use crate::routes::{Page, PageQuery};
use crate::state::AppState;

/// Whom to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Email address.
    pub email: String,
    /// `admin` or `user`.
    pub role: String,
    /// The one team the invitee joins instead of the default team (for example a client's
    /// team, whose members see nothing else). Omitted: the default team.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Their role in that team: `admin`, `member` (the default) or `viewer`. Only with `team_id`.
    #[serde(default)]
    pub team_role: Option<String>,
}

/// An invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResponse {
    /// Invitation id.
    pub id: String,
    /// Invited address.
    pub email: String,
    /// Role offered.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// Who invited.
    pub invited_by: String,
    /// When it was (last) sent (RFC 3339).
    pub sent_at: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
    /// The one team the invitee joins, or `null` for the default team.
    pub team_id: Option<String>,
    /// Their role in that team, or `null` for the default team.
    pub team_role: Option<String>,
}

fn response(i: &Invitation, now: chrono::DateTime<chrono::Utc>) -> InvitationResponse {
    InvitationResponse {
        id: i.id.to_string(),
        email: i.email.to_string(),
        role: i.role.as_str().to_owned(),
        status: i.status(now).as_str().to_owned(),
        invited_by: i.invited_by.to_string(),
        sent_at: i.created_at.to_rfc3339(),
        expires_at: i.expires_at.to_rfc3339(),
        team_id: i.team.map(|t| t.id.to_string()),
        team_role: i.team.map(|t| t.role.as_str().to_owned()),
    }
}

/// The team part of an invitation request.
fn invited_team(body: &InviteBody) -> Result<Option<InvitedTeam>, ApiError> {
    let Some(id) = &body.team_id else {
        return match body.team_role {
            Some(_) => Err(ApiError::bad_request("`team_role` goes with `team_id`")),
            None => Ok(None),
        };
    };
    let role = match body.team_role.as_deref() {
        None => TeamRole::Member,
        Some(r) => TeamRole::parse(r).ok_or_else(|| {
            ApiError::bad_request("`team_role` must be `admin`, `member` or `viewer`")
        })?,
    };
    Ok(Some(InvitedTeam {
        id: id
            .parse()
            .map_err(|_| ApiError::bad_request("`team_id` is not a team id"))?,
        role,
    }))
}

/// Invitation settings from configuration.
pub fn settings(st: &AppState) -> InvitationSettings {
    let s = &st.settings;
    InvitationSettings {
        expiry: chrono::Duration::days(i64::from(s.invitations.expiry_days)),
        accept_url: format!(
            "{}{}",
            s.server.public_url.trim_end_matches('/'),
            s.invitations.accept_path
        ),
        sealer: tenancy::mail_secrets::MailSealer::new((*st.cipher).clone()),
    }
}

fn parse_role(s: &str) -> Result<OrgRole, ApiError> {
    match OrgRole::parse(s) {
        Some(r @ (OrgRole::Admin | OrgRole::User)) => Ok(r),
        Some(OrgRole::Owner) => Err(ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "nobody is invited as owner: ownership moves only by transfer",
        )),
        None => Err(ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("unknown role `{s}`; use `admin` or `user`"),
        )),
    }
}

/// Invites someone by email; the email with the link is sent (or kept in the outbox).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/invitations", tag = "invitations",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = InviteBody,
    responses(
        (status = 201, description = "Invited", body = InvitationResponse),
        (status = 403, description = "Not allowed, or the member limit is reached", content_type = "application/problem+json"),
        (status = 409, description = "Already a member or already invited", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn create(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    body: crate::extract::Json<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    let req = InviteRequest {
        email: body.email.clone(),
        role: parse_role(&body.role)?,
        team: invited_team(&body)?,
    };
    let now = st.clock.now();
    match invitations::invite(&*st.store, &caller, req, &settings(&st), now).await {
        Ok((inv, _token)) => Ok(HttpResponse::Created().json(response(&inv, now))),
        Err(e) => Err(audited(&st, &caller, "invite_members", e).await),
    }
}

/// Lists invitations, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/invitations", tag = "invitations",
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses((status = 200, description = "One page", body = inline(Page<InvitationResponse>))),
    security(("bearer" = [])))]
pub async fn list(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let after: Option<InvitationId> = q.cursor()?;
    let now = st.clock.now();
    let items: Vec<_> = invitations::list(&*st.store, &caller, after, limit)
        .await?
        .iter()
        .map(|i| response(i, now))
        .collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |i| i.id.clone())))
}

fn invitation_id(path: &(String, String)) -> Result<InvitationId, ApiError> {
    path.1
        .parse()
        .map_err(|_| ApiError::not_found("invitation"))
}

/// Sends the invitation again with a new link; the old link stops working.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/invitations/{invitation_id}/resend", tag = "invitations",
    params(("org_id" = String, Path, description = "Organization id"), ("invitation_id" = String, Path, description = "Invitation id")),
    responses(
        (status = 200, description = "Sent again", body = InvitationResponse),
        (status = 410, description = "Already accepted or revoked", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn resend(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let now = st.clock.now();
    let (inv, _token) = match invitations::resend(
        &*st.store,
        &caller,
        invitation_id(&path)?,
        &settings(&st),
        now,
    )
    .await
    {
        Ok(sent) => sent,
        Err(e) => return Err(audited(&st, &caller, "resend_invitation", e).await),
    };
    Ok(HttpResponse::Ok().json(response(&inv, now)))
}

/// Revokes a pending invitation.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/invitations/{invitation_id}", tag = "invitations",
    params(("org_id" = String, Path, description = "Organization id"), ("invitation_id" = String, Path, description = "Invitation id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 410, description = "Already accepted or revoked", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn revoke(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    invitations::revoke(&*st.store, &caller, invitation_id(&path)?, st.clock.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An invitation token from the email.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The token from the link (`axi_…`).
    pub token: String,
}

/// What the invitation page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPage {
    /// Organization name.
    pub organization: String,
    /// Invited address.
    pub email: String,
    /// Role offered.
    pub role: String,
    /// The one team offered instead of the default team, by name, or `null`.
    pub team: Option<String>,
    /// The role in that team, or `null`.
    pub team_role: Option<String>,
    /// Status.
    pub status: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
}

/// Shows an invitation by its token (the same answer whether or not the invitee has an account).
#[utoipa::path(post, path = "/api/v1/invitations/lookup", tag = "invitations", request_body = TokenBody,
    responses(
        (status = 200, description = "The invitation", body = InvitationPage),
        (status = 404, description = "Unknown or superseded token", content_type = "application/problem+json"),
    ))]
pub async fn lookup(
    st: web::Data<AppState>,
    body: crate::extract::Json<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let v = invitations::lookup(&*st.store, &body.token, st.clock.now()).await?;
    Ok(HttpResponse::Ok().json(InvitationPage {
        organization: v.org_name,
        email: v.email,
        role: v.role.as_str().to_owned(),
        team: v.team.as_ref().map(|t| t.0.clone()),
        team_role: v.team.map(|t| t.1.as_str().to_owned()),
        status: v.status.as_str().to_owned(),
        expires_at: v.expires_at.to_rfc3339(),
    }))
}

/// The result of accepting.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    /// The organization joined.
    pub org_id: String,
    /// The role.
    pub role: String,
    /// The member.
    pub user: UserResponse,
}

/// Accepts an invitation as the signed-in person (the invitation's email must be theirs).
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "invitations", request_body = TokenBody,
    responses(
        (status = 200, description = "Joined", body = AcceptedResponse),
        (status = 409, description = "Another email, or already a member", content_type = "application/problem+json"),
        (status = 410, description = "Used, revoked or expired", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn accept(
    st: web::Data<AppState>,
    auth: Authenticated,
    body: crate::extract::Json<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require_session(&st).await?;
    let user = auth.principal.user();
    let inv = invitations::accept(&*st.store, user, &body.token, st.clock.now()).await?;
    Ok(HttpResponse::Ok().json(AcceptedResponse {
        org_id: inv.org.to_string(),
        role: inv.role.as_str().to_owned(),
        user: UserResponse::from(user),
    }))
}

/// A new account through an invitation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    /// The token from the link.
    pub token: String,
    /// Display name.
    pub name: String,
    /// Password (the organization's password rules apply).
    pub password: String,
}

/// Creates an account through an invitation and joins the organization.
#[utoipa::path(post, path = "/api/v1/invitations/signup", tag = "invitations", request_body = SignupBody,
    responses(
        (status = 201, description = "Account created and joined", body = AcceptedResponse),
        (status = 409, description = "An account with this email exists", content_type = "application/problem+json"),
        (status = 410, description = "Used, revoked or expired", content_type = "application/problem+json"),
        (status = 422, description = "Weak password or bad name", content_type = "application/problem+json"),
    ))]
pub async fn signup(
    st: web::Data<AppState>,
    body: crate::extract::Json<SignupBody>,
) -> Result<HttpResponse, ApiError> {
    let (inv, user) = invitations::accept_with_new_account(
        &*st.store,
        &st.hasher,
        &body.token,
        &body.name,
        &body.password,
        st.clock.now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(AcceptedResponse {
        org_id: inv.org.to_string(),
        role: inv.role.as_str().to_owned(),
        user: UserResponse::from(&user),
    }))
}

/// A queued email.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailResponse {
    /// Outbox id.
    pub id: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Body: empty once sent over SMTP, and for anyone but the Owner (bodies carry invitation
    /// links, whose tokens would let the reader sign up as the invitee, and billing mail).
    pub body: String,
    /// Kind (`invitation`, …).
    pub kind: String,
    /// Queued at (RFC 3339).
    pub created_at: String,
    /// Handed to SMTP at (RFC 3339).
    pub sent_at: Option<String>,
    /// Delivery attempts.
    pub attempts: u32,
    /// Last delivery error.
    pub last_error: Option<String>,
}

/// The organization's mail outbox (what would be or was sent), newest first. Admins see each
/// mail's recipient, subject and delivery state; only the Owner sees the bodies.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/outbox", tag = "invitations",
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses((status = 200, description = "Queued and sent mail, newest first", body = inline(Page<MailResponse>))),
    security(("bearer" = [])))]
pub async fn outbox(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    q: crate::extract::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let mails =
        tenancy::invitations::outbox(&*st.store, &caller, q.cursor.as_deref(), limit).await?;
    let items: Vec<MailResponse> = mails
        .into_iter()
        .map(|m| MailResponse {
            // The Owner reads what will be (or was) sent: the tokens opened.
            body: tenancy::mail_secrets::open_body_for_display(&st.cipher, &m.to, &m.body),
            id: m.id,
            to: m.to,
            subject: m.subject,
            kind: m.kind,
            created_at: m.created_at.to_rfc3339(),
            sent_at: m.sent_at.map(|t| t.to_rfc3339()),
            attempts: m.attempts,
            last_error: m.last_error,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |m| m.id.clone())))
}

/// One row of a bulk preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkRowResponse {
    /// Line in the file (header = 1).
    pub line: usize,
    /// Email as written.
    pub email: String,
    /// Role as written.
    pub role: String,
    /// Name as written (the invitation mail greets them by it).
    pub name: String,
    /// Team as written (its name or id); empty: the default team.
    pub team: String,
    /// Role in that team as written; empty: `member`.
    pub team_role: String,
    /// The team a valid row joins instead of the default team, `null` for the default team.
    pub team_id: Option<String>,
    /// That team's name as it is (the file may name it by id or in other letters' case).
    pub team_name: Option<String>,
    /// `valid` or `invalid`.
    pub status: String,
    /// Why it is invalid (`bad_email`, `unknown_role`, `owner_not_allowed`, `role_not_allowed`,
    /// `duplicate_in_file`, `already_member`, `already_invited`, `unknown_team_role`,
    /// `team_role_without_team`, `unknown_team`, `ambiguous_team`, `archived_team`).
    pub reason: Option<String>,
    /// For duplicates: the earlier line.
    pub first_line: Option<usize>,
}

/// A bulk preview: nothing has been sent yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkPreviewResponse {
    /// Confirm with this id (once, before `expires_at`).
    pub preview_id: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
    /// Rows that would be invited.
    pub valid: usize,
    /// Rows that would not.
    pub invalid: usize,
    /// Seats left under the plan (absent when unlimited).
    pub seats_available: Option<u64>,
    /// Whether every valid row fits.
    pub fits_limit: bool,
    /// Every row.
    pub rows: Vec<BulkRowResponse>,
}

/// Uploads a CSV (`email,role,name`, and optionally `team,team_role`) and previews it without
/// side effects. A row with a `team` (its name or id) invites the person into that team alone,
/// as a single invitation with `team_id` does; the caller must manage that team's members.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/invitations/bulk", tag = "invitations",
    params(("org_id" = String, Path, description = "Organization id")),
    request_body(content = String, content_type = "text/csv", description = "CSV with header `email,role,name` (optionally `team,team_role`) in any order or case"),
    responses(
        (status = 200, description = "The preview", body = BulkPreviewResponse),
        (status = 413, description = "Larger than the server's body limit (`server.body_limit_bytes`, 1 MiB by default)", content_type = "application/problem+json"),
        (status = 422, description = "Over 1 MiB (where the body limit is higher), too many rows, not UTF-8, or no email/role columns", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn bulk_preview(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    crate::extract::Bytes(body): crate::extract::Bytes,
) -> Result<HttpResponse, ApiError> {
    use tenancy::bulk::RowProblem;
    let p = tenancy::bulk::preview(&*st.store, &caller, &body, st.clock.now()).await?;
    let rows = p
        .rows
        .iter()
        .map(|r| {
            let (reason, first_line) = match &r.problem {
                None => (None, None),
                Some(RowProblem::DuplicateInFile { first_line }) => {
                    (Some("duplicate_in_file"), Some(*first_line))
                }
                Some(RowProblem::BadEmail) => (Some("bad_email"), None),
                Some(RowProblem::UnknownRole { .. }) => (Some("unknown_role"), None),
                Some(RowProblem::OwnerNotAllowed) => (Some("owner_not_allowed"), None),
                Some(RowProblem::RoleNotAllowed) => (Some("role_not_allowed"), None),
                Some(RowProblem::AlreadyMember) => (Some("already_member"), None),
                Some(RowProblem::AlreadyInvited) => (Some("already_invited"), None),
                Some(RowProblem::UnknownTeamRole { .. }) => (Some("unknown_team_role"), None),
                Some(RowProblem::TeamRoleWithoutTeam) => (Some("team_role_without_team"), None),
                Some(RowProblem::UnknownTeam { .. }) => (Some("unknown_team"), None),
                Some(RowProblem::AmbiguousTeam { .. }) => (Some("ambiguous_team"), None),
                Some(RowProblem::ArchivedTeam { .. }) => (Some("archived_team"), None),
            };
            BulkRowResponse {
                line: r.line,
                email: r.email.clone(),
                role: r.role.clone(),
                name: r.name.clone(),
                team: r.team.clone(),
                team_role: r.team_role.clone(),
                team_id: r.joins.map(|t| t.id.to_string()),
                team_name: r.team_name.clone(),
                status: if reason.is_none() { "valid" } else { "invalid" }.to_owned(),
                reason: reason.map(str::to_owned),
                first_line,
            }
        })
        .collect::<Vec<_>>();
    Ok(HttpResponse::Ok().json(BulkPreviewResponse {
        preview_id: p.id.to_string(),
        expires_at: p.expires_at.to_rfc3339(),
        valid: p.valid(),
        invalid: p.rows.len() - p.valid(),
        seats_available: p.seats_available,
        fits_limit: p.fits(),
        rows,
    }))
}

/// The result of a confirmed bulk import.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkConfirmResponse {
    /// Invitations sent.
    pub invited: usize,
}

/// Sends every valid invitation of a preview at once (single use).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/invitations/bulk/{preview_id}/confirm", tag = "invitations",
    params(("org_id" = String, Path, description = "Organization id"), ("preview_id" = String, Path, description = "Preview id")),
    responses(
        (status = 201, description = "Sent", body = BulkConfirmResponse),
        (status = 403, description = "The batch does not fit the member limit", content_type = "application/problem+json"),
        (status = 404, description = "Unknown, expired or already confirmed preview", content_type = "application/problem+json"),
        (status = 409, description = "A row's person became a member or was invited, or a team a row names was deleted or archived, since the preview: nothing is sent", content_type = "application/problem+json"),
    ), security(("bearer" = [])))]
pub async fn bulk_confirm(
    st: web::Data<AppState>,
    OrgCaller(caller): OrgCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: InvitationId = path.1.parse().map_err(|_| ApiError::not_found("preview"))?;
    match tenancy::bulk::confirm(&*st.store, &caller, id, &settings(&st), st.clock.now()).await {
        Ok(invited) => Ok(HttpResponse::Created().json(BulkConfirmResponse { invited })),
        Err(e) => Err(audited(&st, &caller, "bulk_invite", e).await),
    }
}

impl std::fmt::Debug for TokenBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords and invitation tokens never reach logs.
        f.write_str("TokenBody { … }")
    }
}

impl std::fmt::Debug for SignupBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords and invitation tokens never reach logs.
        f.write_str("SignupBody { … }")
    }
}
