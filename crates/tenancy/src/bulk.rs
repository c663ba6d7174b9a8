//! Bulk invitations from a CSV file `email,role,name` (and optionally `team,team_role`): a
//! side-effect-free preview, then a single-use confirmation that sends every invitation in one
//! transaction.

use std::collections::{HashMap, HashSet};

use audit::{AuditAction, Journal, Metadata, Target};
use billing_limits::Limit;
use chrono::{DateTime, Duration, Utc};
use rbac_core::{
    InvitationId, OrgId, OrgRole, Permission, Resource, TeamId, TeamRole, UserId, check_invite_role,
};
use security_policy::{MintedToken, mint};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::caller::Caller;
use crate::error::TenancyError;
use crate::invitations::{INVITATION_PREFIX, Invitation, InvitationSettings, InvitedTeam};
use crate::model::{Email, Team};
use crate::store::{BulkStore, InvitationStore, TenancyStore, WorkspaceStore};

/// Largest file accepted, in bytes.
pub const MAX_BYTES: usize = 1024 * 1024;
/// Most data rows accepted.
pub const MAX_ROWS: usize = 10_000;
/// How long a preview can be confirmed.
pub const PREVIEW_TTL_MINUTES: i64 = 30;

/// Why a row cannot be invited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RowProblem {
    /// The email is missing or malformed.
    BadEmail,
    /// The role is not `admin` or `user`.
    UnknownRole {
        /// What was given.
        role: String,
    },
    /// `owner` cannot be invited.
    OwnerNotAllowed,
    /// The caller may not grant this role.
    RoleNotAllowed,
    /// The same email appears earlier in the file.
    DuplicateInFile {
        /// The earlier line.
        first_line: usize,
    },
    /// Already a member.
    AlreadyMember,
    /// Already has a pending invitation.
    AlreadyInvited,
    /// `team_role` is not `admin`, `member` or `viewer`.
    UnknownTeamRole {
        /// What was given.
        team_role: String,
    },
    /// A `team_role` without a `team`.
    TeamRoleWithoutTeam,
    /// No team of the organization whose members the caller manages has this name or id
    /// (a team they cannot see answers the same way).
    UnknownTeam {
        /// What was given.
        team: String,
    },
    /// The name matches more than one of those teams when case is ignored, and none exactly.
    AmbiguousTeam {
        /// What was given.
        team: String,
    },
    /// The team is archived: nobody joins it.
    ArchivedTeam {
        /// What was given.
        team: String,
    },
}

/// One parsed row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Line number in the file (the header is line 1).
    pub line: usize,
    /// The email as written.
    pub email: String,
    /// The role as written.
    pub role: String,
    /// The name as written.
    pub name: String,
    /// The team as written (its name or id; empty: the default team).
    #[serde(default)]
    pub team: String,
    /// The role in that team as written (empty: `member`).
    #[serde(default)]
    pub team_role: String,
    /// The team the invitee joins instead of the default team, found by [`preview`].
    #[serde(default)]
    pub joins: Option<InvitedTeam>,
    /// That team's name, as found (the file may have named it in other letters' case, or by id).
    #[serde(default)]
    pub team_name: Option<String>,
    /// `None` when the row is valid.
    pub problem: Option<RowProblem>,
}

/// Parses the CSV: header in any order and case, optional UTF-8 BOM, extra columns ignored.
/// Checks each row on its own and against earlier rows; not against the organization (so a
/// row's `team` is not looked up here: [`preview`] does).
///
/// # Errors
/// [`TenancyError::Invalid`] for a file over [`MAX_BYTES`], more than [`MAX_ROWS`] rows,
/// invalid UTF-8 (naming the line), a missing `email` or `role` column, or broken CSV.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, TenancyError> {
    if bytes.len() > MAX_BYTES {
        return Err(TenancyError::Invalid(format!(
            "the file is {} bytes; the limit is {MAX_BYTES}",
            bytes.len()
        )));
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        return Err(TenancyError::Invalid(format!(
            "the file is not UTF-8: line {line} has invalid bytes"
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = rd
        .headers()
        .map_err(|e| TenancyError::Invalid(format!("the header cannot be read: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(ei), Some(ri)) = (col("email"), col("role")) else {
        return Err(TenancyError::Invalid(
            "the header must name the columns `email` and `role` (and optionally `name`, `team` \
             and `team_role`)"
                .into(),
        ));
    };
    let (ni, ti, tri) = (col("name"), col("team"), col("team_role"));
    let mut rows = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for rec in rd.records() {
        // The line the row starts on in the file (blank lines are skipped, and a quoted field
        // may span lines), as a spreadsheet or an editor numbers it.
        let rec = rec.map_err(|e| {
            let at = e
                .position()
                .map_or_else(String::new, |p| format!("line {}: ", p.line()));
            TenancyError::Invalid(format!("{at}{e}"))
        })?;
        // (The reader's position is where it began reading the row, before the blank lines
        // it skipped.)
        let line = rec.position().map_or(0, |p| {
            let start = usize::try_from(p.byte()).unwrap_or(usize::MAX);
            let blank = bytes
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .filter(|b| **b == b'\n')
                .count();
            usize::try_from(p.line()).unwrap_or(0) + blank
        });
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(TenancyError::Invalid(format!(
                "the file has more than {MAX_ROWS} rows"
            )));
        }
        let field = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").to_owned();
        let (email, role, name) = (field(Some(ei)), field(Some(ri)), field(ni));
        let (team, team_role) = (field(ti), field(tri));
        let problem = match (Email::parse(&email), OrgRole::parse(&role)) {
            (Err(_), _) => Some(RowProblem::BadEmail),
            (_, None) => Some(RowProblem::UnknownRole { role: role.clone() }),
            (_, Some(OrgRole::Owner)) => Some(RowProblem::OwnerNotAllowed),
            _ if !team_role.is_empty() && TeamRole::parse(&team_role).is_none() => {
                Some(RowProblem::UnknownTeamRole {
                    team_role: team_role.clone(),
                })
            }
            _ if team.is_empty() && !team_role.is_empty() => Some(RowProblem::TeamRoleWithoutTeam),
            (Ok(e), Some(_)) => match seen.get(e.as_str()) {
                Some(&first_line) => Some(RowProblem::DuplicateInFile { first_line }),
                None => {
                    seen.insert(e.as_str().to_owned(), line);
                    None
                }
            },
        };
        rows.push(Row {
            line,
            email,
            role,
            name,
            team,
            team_role,
            joins: None,
            team_name: None,
            problem,
        });
    }
    Ok(rows)
}

/// A stored preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkPreview {
    /// Its id, used to confirm.
    pub id: InvitationId,
    /// The organization.
    pub org: OrgId,
    /// Who uploaded it.
    pub created_by: UserId,
    /// Confirmable strictly before this.
    pub expires_at: DateTime<Utc>,
    /// Every row with its verdict.
    pub rows: Vec<Row>,
    /// Seats left (members plus pending invitations against the plan), `None` = unlimited.
    pub seats_available: Option<u64>,
}

impl BulkPreview {
    /// Whether a row of the sheet is `email` (as written, in any case): what an erasure of
    /// that person removes.
    #[must_use]
    pub fn names(&self, email: &str) -> bool {
        self.rows
            .iter()
            .any(|r| r.email.trim().eq_ignore_ascii_case(email))
    }

    /// Rows that would be invited.
    #[must_use]
    pub fn valid(&self) -> usize {
        self.rows.iter().filter(|r| r.problem.is_none()).count()
    }

    /// Whether all valid rows fit the member limit.
    #[must_use]
    pub fn fits(&self) -> bool {
        self.seats_available
            .is_none_or(|s| self.valid() as u64 <= s)
    }
}

/// Checks a file against the organization and stores the preview; nothing is sent.
///
/// # Errors
/// [`TenancyError::Forbidden`] without the invite permission; file errors from [`parse`].
pub async fn preview<S: TenancyStore + InvitationStore + WorkspaceStore + BulkStore + ?Sized>(
    store: &S,
    caller: &Caller,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<BulkPreview, TenancyError> {
    caller.check_org(Permission::InviteMembers)?;
    let mut rows = parse(bytes)?;
    let (members, pending) = store.member_and_pending_emails(caller.org.id, now).await?;
    let members: HashSet<String> = members.into_iter().collect();
    let pending: HashSet<String> = pending.into_iter().collect();
    let teams = if rows.iter().any(|r| !r.team.is_empty()) {
        joinable_teams(store, caller).await?
    } else {
        Vec::new()
    };
    for r in rows.iter_mut().filter(|r| r.problem.is_none()) {
        let email = Email::parse(&r.email)?.to_string();
        let role = OrgRole::parse(&r.role).unwrap_or(OrgRole::User);
        let team = (!r.team.is_empty()).then(|| find_team(&teams, &r.team));
        r.problem = if members.contains(&email) {
            Some(RowProblem::AlreadyMember)
        } else if pending.contains(&email) {
            Some(RowProblem::AlreadyInvited)
        } else if check_invite_role(&caller.subject, role).is_err() {
            Some(RowProblem::RoleNotAllowed)
        } else {
            match team {
                None => None,
                Some(Err(problem)) => Some(problem),
                Some(Ok(t)) => {
                    r.joins = Some(InvitedTeam {
                        id: t.id,
                        role: TeamRole::parse(&r.team_role).unwrap_or(TeamRole::Member),
                    });
                    r.team_name = Some(t.name.clone());
                    None
                }
            }
        };
    }
    let limits = caller.org.limits();
    let used = (members.len() + pending.len()) as u64;
    let seats_available = limits.get(Limit::Members).map(|m| m.saturating_sub(used));
    let p = BulkPreview {
        id: InvitationId::new(),
        org: caller.org.id,
        created_by: caller.user.id,
        expires_at: now + Duration::minutes(PREVIEW_TTL_MINUTES),
        rows,
        seats_available,
    };
    store.save_preview(&p).await?;
    Ok(p)
}

/// The teams a row may name: the organization's teams whose members the caller manages
/// (archived ones included, to say so). Others are left out, so that a row naming a team the
/// caller cannot see reads as naming no team at all.
async fn joinable_teams<S: WorkspaceStore + ?Sized>(
    store: &S,
    caller: &Caller,
) -> Result<Vec<Team>, TenancyError> {
    Ok(store
        .list_teams(caller.org.id)
        .await?
        .into_iter()
        .filter(|t| {
            caller
                .decide(Permission::ManageTeamMembers, &Resource::team(t.org, t.id))
                .is_allowed()
        })
        .collect())
}

/// The team a row names, by id or by name: its exact name, else the one name equal to it when
/// case is ignored.
fn find_team<'a>(teams: &'a [Team], given: &str) -> Result<&'a Team, RowProblem> {
    let by_id = given.parse::<TeamId>().ok();
    let found = teams
        .iter()
        .find(|t| Some(t.id) == by_id || t.name == given)
        .map_or_else(
            || {
                let lower = given.to_lowercase();
                let mut folded = teams.iter().filter(|t| t.name.to_lowercase() == lower);
                match (folded.next(), folded.next()) {
                    (Some(t), None) => Ok(t),
                    (None, _) => Err(RowProblem::UnknownTeam {
                        team: given.to_owned(),
                    }),
                    (Some(_), Some(_)) => Err(RowProblem::AmbiguousTeam {
                        team: given.to_owned(),
                    }),
                }
            },
            Ok,
        )?;
    if found.archived_at.is_some() {
        return Err(RowProblem::ArchivedTeam {
            team: given.to_owned(),
        });
    }
    Ok(found)
}

/// Sends every valid row's invitation in one transaction and consumes the preview.
///
/// # Errors
/// [`TenancyError::NotFound`] for an unknown, expired or already confirmed preview;
/// [`TenancyError::LimitReached`] when the batch does not fit; [`TenancyError::Conflict`] when
/// a row became a member or was invited since the preview (nothing is sent then).
pub async fn confirm<
    S: TenancyStore
        + InvitationStore
        + WorkspaceStore
        + BulkStore
        + crate::metering::MeteringStore
        + ?Sized,
>(
    store: &S,
    caller: &Caller,
    id: InvitationId,
    settings: &InvitationSettings,
    now: DateTime<Utc>,
) -> Result<usize, TenancyError> {
    caller.check_org(Permission::InviteMembers)?;
    let p = store
        .get_preview(caller.org.id, id)
        .await?
        .filter(|p| now < p.expires_at && p.created_by == caller.user.id)
        .ok_or(TenancyError::NotFound("preview"))?;
    let mut batch: Vec<(Invitation, MintedToken)> = Vec::new();
    let mut journal = Journal::default();
    // Each team a row joins, as it is now (a rename since the preview is fine: the mail names
    // it as it is): deleted, archived or out of the caller's hands since, the whole batch is
    // refused (the store checks again, in its transaction, that it exists and is not archived).
    let mut teams: HashMap<TeamId, Team> = HashMap::new();
    for t in p.rows.iter().filter_map(|r| r.joins) {
        if let std::collections::hash_map::Entry::Vacant(slot) = teams.entry(t.id) {
            let team = crate::invitations::invitable_team(store, caller, t.id)
                .await
                .map_err(|e| match e {
                    TenancyError::Store(_) => e,
                    _ => TenancyError::Conflict(format!(
                        "a team the file names changed since the preview ({e}); upload the file again"
                    )),
                })?;
            slot.insert(team);
        }
    }
    for r in p.rows.iter().filter(|r| r.problem.is_none()) {
        let role = OrgRole::parse(&r.role).unwrap_or(OrgRole::User);
        check_invite_role(&caller.subject, role)?;
        let team = r.joins.and_then(|j| teams.get(&j.id));
        let token = mint(INVITATION_PREFIX, 32);
        let inv = Invitation {
            id: InvitationId::new(),
            org: caller.org.id,
            email: Email::parse(&r.email)?,
            role,
            invited_by: caller.user.id,
            created_at: now,
            expires_at: now + settings.expiry,
            accepted_at: None,
            revoked_at: None,
            team: r.joins,
        };
        let mut meta = json!({ "role": role.as_str(), "bulk_preview": p.id });
        if let (Some(t), Some(joins)) = (team, r.joins) {
            meta["team"] = json!({ "id": t.id, "name": t.name, "role": joins.role.as_str() });
        }
        journal = journal
            .and_record(
                caller
                    .audit(
                        now,
                        AuditAction::MemberInvited,
                        Target::new("invitation", inv.id, inv.email.to_string()),
                    )
                    .with_metadata(Metadata::from_value(meta)?),
            )
            .mail(crate::invitations::invitation_mail(
                caller,
                &inv,
                team.map(|t| t.name.as_str()),
                Some(&r.name),
                &token,
                settings,
            ));
        batch.push((inv, token));
    }
    let n = batch.len();
    let hashed: Vec<(Invitation, String)> = batch.into_iter().map(|(i, t)| (i, t.hash)).collect();
    store
        .confirm_preview(
            caller.org.id,
            id,
            &hashed,
            &caller.org.limits(),
            now,
            journal,
        )
        .await?;
    if n > 0 {
        crate::metering::alert_on_seats(store, &caller.org, now).await;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(csv: &str) -> Vec<(usize, Option<RowProblem>)> {
        parse(csv.as_bytes())
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.problem))
            .collect()
    }

    #[test]
    fn guide_example_parses() {
        let csv = "email,role,name\njohn@company.com,user,John Smith\nsarah@company.com,admin,Sarah Johnson\nmike@company.com,user,Mike Davis\n";
        let rows = parse(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.problem.is_none()));
        assert_eq!(rows[1].name, "Sarah Johnson");
    }

    #[test]
    fn header_any_order_and_case_with_bom() {
        let csv = "\u{feff}Name,ROLE,Email\nJohn,User,John@Company.com\n";
        let rows = parse(csv.as_bytes()).unwrap();
        assert_eq!(rows[0].email, "John@Company.com");
        assert_eq!(rows[0].problem, None);
    }

    #[test]
    fn row_problems() {
        let csv = "email,role\nnot-an-email,user\na@b.example,boss\nc@d.example,owner\ne@f.example,user\nE@F.example,admin\n,,\n";
        assert_eq!(
            problems(csv),
            vec![
                (2, Some(RowProblem::BadEmail)),
                (
                    3,
                    Some(RowProblem::UnknownRole {
                        role: "boss".into()
                    })
                ),
                (4, Some(RowProblem::OwnerNotAllowed)),
                (5, None),
                (6, Some(RowProblem::DuplicateInFile { first_line: 5 })),
            ]
        );
    }

    #[test]
    fn rows_are_numbered_by_the_line_they_start_on() {
        // A blank line, and a quoted name over two lines, before the rows.
        let csv =
            "email,role,name\n\nbad,user,x\na@b.example,user,\"Ann\nSmith\"\nA@B.example,user,y\n";
        assert_eq!(
            problems(csv),
            vec![
                (3, Some(RowProblem::BadEmail)),
                (4, None),
                (6, Some(RowProblem::DuplicateInFile { first_line: 4 })),
            ]
        );
    }

    #[test]
    fn team_columns_are_checked_on_their_own() {
        let csv = "email,role,team,team_role\n\
                   a@b.example,user,Sales,\n\
                   c@d.example,user,Sales,Viewer\n\
                   e@f.example,user,Sales,boss\n\
                   g@h.example,user,,admin\n\
                   i@j.example,user,,\n";
        let rows = parse(csv.as_bytes()).unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.team.as_str(), r.team_role.as_str(), r.problem.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Sales", "", None),
                ("Sales", "Viewer", None),
                (
                    "Sales",
                    "boss",
                    Some(RowProblem::UnknownTeamRole {
                        team_role: "boss".into()
                    })
                ),
                ("", "admin", Some(RowProblem::TeamRoleWithoutTeam)),
                ("", "", None),
            ]
        );
        assert!(
            rows.iter().all(|r| r.joins.is_none()),
            "found by the preview"
        );
    }

    #[test]
    fn a_row_names_a_team_by_id_exact_name_or_its_one_case_insensitive_match() {
        let org = OrgId::new();
        let team = |name: &str, archived: bool| Team {
            id: TeamId::new(),
            org,
            name: name.into(),
            is_default: false,
            created_at: Utc::now(),
            archived_at: archived.then(Utc::now),
        };
        let teams = vec![
            team("Sales", false),
            team("Client A", false),
            team("client a", false),
            team("Old", true),
        ];
        let found = |given: &str| find_team(&teams, given).map(|t| t.name.clone());
        assert_eq!(found("Sales"), Ok("Sales".into()));
        assert_eq!(found("SALES"), Ok("Sales".into()));
        assert_eq!(found(&teams[2].id.to_string()), Ok("client a".into()));
        assert_eq!(found("client a"), Ok("client a".into()), "exact first");
        assert_eq!(
            found("CLIENT A"),
            Err(RowProblem::AmbiguousTeam {
                team: "CLIENT A".into()
            })
        );
        assert_eq!(
            found("old"),
            Err(RowProblem::ArchivedTeam { team: "old".into() })
        );
        let other = TeamId::new().to_string();
        assert_eq!(
            found(&other),
            Err(RowProblem::UnknownTeam {
                team: other.clone()
            }),
            "another id is no team"
        );
        assert_eq!(
            found("Marketing"),
            Err(RowProblem::UnknownTeam {
                team: "Marketing".into()
            })
        );
    }

    #[test]
    fn file_errors_are_clear() {
        let err = parse(b"email,role\na@b.example,user\nc@d.ex\xffample,user\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(
            parse(b"mail,role\nx,y\n")
                .unwrap_err()
                .to_string()
                .contains("`email`")
        );
        let big = format!("email,role\n{}", "a@b.example,user\n".repeat(MAX_ROWS + 1));
        assert!(
            parse(big.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
        assert!(
            parse(&vec![b'a'; MAX_BYTES + 1])
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }
}
