//! Role-management rules: who may change whose role, remove whom, and hand over ownership.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::model::{OrgRole, Subject};

/// Why a role change, removal or ownership transfer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RoleRuleError {
    /// Only the Owner and Admins manage members, settings and provisioning tokens (also the
    /// refusal of one whose own role changed while their request was under way).
    #[error("only the Owner and Admins may do this")]
    NotAnAdmin,
    /// Nobody changes their own role.
    #[error("you cannot change your own role")]
    OwnRole,
    /// The Owner role moves only through an ownership transfer.
    #[error("the owner role can only be handed over by an ownership transfer")]
    OwnerViaTransferOnly,
    /// Admins never modify or remove the Owner.
    #[error("the owner cannot be changed or removed")]
    TargetIsOwner,
    /// Nobody grants a role above their own.
    #[error("you cannot grant a role above your own")]
    AboveOwnRole,
    /// Nobody removes themselves through member removal.
    #[error("you cannot remove yourself")]
    RemoveSelf,
    /// Only the Owner proposes an ownership transfer.
    #[error("only the owner can transfer ownership")]
    NotOwner,
    /// Ownership goes to another member.
    #[error("ownership must go to another member")]
    TransferToSelf,
}

impl RoleRuleError {
    /// A stable machine-readable code (its serialized name), stored in the audit log.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            RoleRuleError::NotAnAdmin => "not_an_admin",
            RoleRuleError::OwnRole => "own_role",
            RoleRuleError::OwnerViaTransferOnly => "owner_via_transfer_only",
            RoleRuleError::TargetIsOwner => "target_is_owner",
            RoleRuleError::AboveOwnRole => "above_own_role",
            RoleRuleError::RemoveSelf => "remove_self",
            RoleRuleError::NotOwner => "not_owner",
            RoleRuleError::TransferToSelf => "transfer_to_self",
        }
    }
}

/// Checks that `actor` may change `target` (currently `current`) to `new_role`.
///
/// # Errors
/// Returns the first rule the change breaks.
pub fn check_role_change(
    actor: &Subject,
    target: UserId,
    current: OrgRole,
    new_role: OrgRole,
) -> Result<(), RoleRuleError> {
    if !actor.role.is_admin() {
        return Err(RoleRuleError::NotAnAdmin);
    }
    if actor.user == target {
        return Err(RoleRuleError::OwnRole);
    }
    if current == OrgRole::Owner {
        return Err(RoleRuleError::TargetIsOwner);
    }
    if new_role == OrgRole::Owner {
        return Err(RoleRuleError::OwnerViaTransferOnly);
    }
    if new_role > actor.role {
        return Err(RoleRuleError::AboveOwnRole);
    }
    Ok(())
}

/// Checks that `actor` may invite someone with `role`.
///
/// # Errors
/// Returns the rule the invitation breaks.
pub fn check_invite_role(actor: &Subject, role: OrgRole) -> Result<(), RoleRuleError> {
    check_invite_role_of(actor.role, role)
}

/// [`check_invite_role`] for an inviter known by their organization role only (what a store
/// reads again when it writes the invitation).
///
/// # Errors
/// Returns the first rule the invitation breaks.
pub fn check_invite_role_of(inviter: OrgRole, role: OrgRole) -> Result<(), RoleRuleError> {
    if !inviter.is_admin() {
        return Err(RoleRuleError::NotAnAdmin);
    }
    if role == OrgRole::Owner {
        return Err(RoleRuleError::OwnerViaTransferOnly);
    }
    if role > inviter {
        return Err(RoleRuleError::AboveOwnRole);
    }
    Ok(())
}

/// Checks that `actor` may remove `target` (currently `role`).
///
/// # Errors
/// Returns the rule the removal breaks.
pub fn check_removal(actor: &Subject, target: UserId, role: OrgRole) -> Result<(), RoleRuleError> {
    check_removal_by(actor.user, actor.role, target, role)
}

/// [`check_removal`] for an actor known by id and role (`actor_role`) alone, as a store reads
/// them again under lock; also the rules of what is as grave as a removal (an administrator's
/// reset of someone's second factor).
///
/// # Errors
/// Returns the rule the removal breaks.
pub fn check_removal_by(
    actor: UserId,
    actor_role: OrgRole,
    target: UserId,
    role: OrgRole,
) -> Result<(), RoleRuleError> {
    if !actor_role.is_admin() {
        return Err(RoleRuleError::NotAnAdmin);
    }
    if actor == target {
        return Err(RoleRuleError::RemoveSelf);
    }
    if role == OrgRole::Owner {
        return Err(RoleRuleError::TargetIsOwner);
    }
    Ok(())
}

/// Checks that `actor` may propose handing ownership to `target`.
///
/// # Errors
/// Returns the rule the proposal breaks.
pub fn check_ownership_transfer(actor: &Subject, target: UserId) -> Result<(), RoleRuleError> {
    if actor.role != OrgRole::Owner {
        return Err(RoleRuleError::NotOwner);
    }
    if actor.user == target {
        return Err(RoleRuleError::TransferToSelf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OrgId;
    use crate::model::Credential;

    fn subject(role: OrgRole) -> Subject {
        Subject {
            user: UserId::new(),
            org: OrgId::new(),
            role,
            teams: vec![],
            all_teams: None,
            credential: Credential::Session,
        }
    }

    #[test]
    fn codes_are_the_serialized_names() {
        use RoleRuleError::*;
        for e in [
            NotAnAdmin,
            OwnRole,
            OwnerViaTransferOnly,
            TargetIsOwner,
            AboveOwnRole,
            RemoveSelf,
            NotOwner,
            TransferToSelf,
        ] {
            assert_eq!(serde_json::to_value(e).unwrap(), e.code());
        }
    }

    #[test]
    fn role_change_table() {
        use OrgRole::*;
        let check = |actor: OrgRole,
                     current: OrgRole,
                     new: OrgRole,
                     expected: Result<(), RoleRuleError>| {
            let a = subject(actor);
            assert_eq!(
                check_role_change(&a, UserId::new(), current, new),
                expected,
                "{actor:?} changing {current:?} to {new:?}"
            );
        };
        check(Owner, User, Admin, Ok(()));
        check(Owner, Admin, User, Ok(()));
        check(Admin, User, Admin, Ok(()));
        check(Admin, Admin, User, Ok(()));
        check(Admin, Owner, User, Err(RoleRuleError::TargetIsOwner));
        check(Owner, User, Owner, Err(RoleRuleError::OwnerViaTransferOnly));
        check(Admin, User, Owner, Err(RoleRuleError::OwnerViaTransferOnly));
        check(User, User, Admin, Err(RoleRuleError::NotAnAdmin));
    }

    #[test]
    fn nobody_changes_their_own_role() {
        let a = subject(OrgRole::Admin);
        assert_eq!(
            check_role_change(&a, a.user, OrgRole::Admin, OrgRole::User),
            Err(RoleRuleError::OwnRole)
        );
    }

    #[test]
    fn removal_rules() {
        let owner = subject(OrgRole::Owner);
        let admin = subject(OrgRole::Admin);
        assert_eq!(
            check_removal(&admin, owner.user, OrgRole::Owner),
            Err(RoleRuleError::TargetIsOwner)
        );
        assert_eq!(
            check_removal(&admin, admin.user, OrgRole::Admin),
            Err(RoleRuleError::RemoveSelf)
        );
        assert_eq!(check_removal(&owner, admin.user, OrgRole::Admin), Ok(()));
        assert_eq!(
            check_removal(&subject(OrgRole::User), UserId::new(), OrgRole::User),
            Err(RoleRuleError::NotAnAdmin)
        );
    }

    #[test]
    fn only_owner_transfers_to_someone_else() {
        let owner = subject(OrgRole::Owner);
        assert_eq!(check_ownership_transfer(&owner, UserId::new()), Ok(()));
        assert_eq!(
            check_ownership_transfer(&owner, owner.user),
            Err(RoleRuleError::TransferToSelf)
        );
        assert_eq!(
            check_ownership_transfer(&subject(OrgRole::Admin), UserId::new()),
            Err(RoleRuleError::NotOwner)
        );
    }

    #[test]
    fn invitations_never_create_owners() {
        assert_eq!(
            check_invite_role(&subject(OrgRole::Owner), OrgRole::Owner),
            Err(RoleRuleError::OwnerViaTransferOnly)
        );
        assert_eq!(
            check_invite_role(&subject(OrgRole::Admin), OrgRole::Admin),
            Ok(())
        );
        assert_eq!(
            check_invite_role(&subject(OrgRole::User), OrgRole::User),
            Err(RoleRuleError::NotAnAdmin)
        );
    }
}
