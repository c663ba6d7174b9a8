//! The typed, dotted catalogue of audited actions.

use serde::{Deserialize, Serialize};

macro_rules! actions {
    ($( $(#[$m:meta])* $variant:ident => $name:literal, $verb:literal; )*) => {
        /// Every audited action. The wire form is the dotted name, for example `member.invited`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum AuditAction {
            $( $(#[$m])* $variant, )*
        }

        impl AuditAction {
            /// Every action in the catalogue.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The dotted name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $name,)* }
            }

            /// The past-tense verb used in the human-readable rendering.
            #[must_use]
            pub const fn verb(self) -> &'static str {
                match self { $(AuditAction::$variant => $verb,)* }
            }

            /// Parses the dotted name.
            #[must_use]
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(AuditAction::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    /// A successful login.
    Login => "auth.login", "Logged in";
    /// A logout.
    Logout => "auth.logout", "Logged out";
    /// A failed login (bad password, unknown account or throttled).
    LoginFailed => "auth.login_failed", "Failed to log in";
    /// A session ended by someone else or by policy.
    SessionRevoked => "auth.session_revoked", "Ended session";
    /// A second factor was turned on.
    MfaEnabled => "auth.mfa_enabled", "Turned on two-factor authentication";
    /// A second factor was turned off.
    MfaDisabled => "auth.mfa_disabled", "Turned off two-factor authentication";
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated => "auth.recovery_codes_regenerated", "Regenerated recovery codes";
    /// A recovery code was used to sign in.
    RecoveryCodeUsed => "auth.recovery_code_used", "Signed in with a recovery code";
    /// The SMS backup number was set or removed.
    MfaPhoneChanged => "auth.mfa_phone_changed", "Changed the SMS backup number";
    /// A password was changed.
    PasswordChanged => "auth.password_changed", "Changed password";
    /// A person asked for a password reset link by email.
    PasswordResetRequested => "auth.password_reset_requested", "Asked for a password reset";
    /// A person set a new password through a reset link.
    PasswordReset => "auth.password_reset", "Reset password";
    /// An operator reset the Owner's access from the command line.
    OwnerAccessReset => "auth.owner_access_reset", "Reset the Owner's access of";
    /// A usage alert went out (80 % or 100 % of a plan limit).
    UsageAlertSent => "usage.alert_sent", "Sent a usage alert for";
    /// This month's API calls, at the recent rate, would reach the plan's limit before the
    /// counters start again: the Owner was told, once a month.
    UsageForecastSent => "usage.forecast_sent", "Sent a usage forecast for";
    /// The operator declared an incident of the service, or its end: the Owner and Admins of
    /// an Enterprise organization were mailed (`notify-incident`).
    IncidentNotified => "service.incident_notified", "Sent a notice of";
    /// A month was over: the Owner and Admins of an Enterprise organization were mailed the
    /// service's uptime report of it (`tenancy::uptime`).
    UptimeReported => "service.uptime_reported", "Sent the report of";
    /// The Owner or an Admin wrote to the support desk (its reference and priority).
    SupportRequested => "support.requested", "Asked support about";
    /// The organization was created.
    OrgCreated => "org.created", "Created organization";
    /// The Owner asked to delete the organization (recorded only when the confirmation fails:
    /// a deletion takes the organization's log with it).
    OrgDeleted => "org.deleted", "Deleted organization";
    /// Company information changed.
    SettingsUpdated => "settings.updated", "Updated the settings of";
    /// Security policy changed.
    SecurityPolicyUpdated => "security_policy.updated", "Updated the security policy of";
    /// Feature-access settings changed.
    FeatureAccessUpdated => "feature_access.updated", "Updated the feature access of";
    /// A member was invited.
    MemberInvited => "member.invited", "Invited";
    /// An invitation was sent again with a new token.
    InvitationResent => "invitation.resent", "Resent invitation to";
    /// An invitation was revoked.
    InvitationRevoked => "invitation.revoked", "Revoked invitation of";
    /// A member joined.
    MemberAdded => "member.added", "Added member";
    /// A member was removed.
    MemberRemoved => "member.removed", "Removed member";
    /// A member left the organization of their own accord.
    MemberLeft => "member.left", "Left";
    /// A member's role changed.
    RoleChanged => "member.role_changed", "Changed role of";
    /// The Owner proposed handing over ownership.
    OwnershipTransferProposed => "ownership.transfer_proposed", "Proposed ownership transfer to";
    /// Ownership moved.
    OwnershipTransferred => "ownership.transferred", "Transferred ownership to";
    /// The Owner withdrew a proposed ownership transfer before it was confirmed.
    OwnershipTransferWithdrawn => "ownership.transfer_withdrawn", "Withdrew the ownership transfer to";
    /// An API key was created.
    ApiKeyCreated => "api_key.created", "Created API key";
    /// An API key was revoked or deleted.
    ApiKeyRevoked => "api_key.revoked", "Revoked API key";
    /// A chat interface was created.
    ChatInterfaceCreated => "chat_interface.created", "Created chat interface";
    /// A chat interface was edited.
    ChatInterfaceUpdated => "chat_interface.updated", "Edited chat interface";
    /// A chat interface was archived.
    ChatInterfaceArchived => "chat_interface.archived", "Archived chat interface";
    /// An archived chat interface was brought back.
    ChatInterfaceUnarchived => "chat_interface.unarchived", "Unarchived chat interface";
    /// A chat interface was deleted.
    ChatInterfaceDeleted => "chat_interface.deleted", "Deleted chat interface";
    /// A knowledge base was created.
    KnowledgeBaseCreated => "knowledge_base.created", "Created knowledge base";
    /// A knowledge base was renamed or edited.
    KnowledgeBaseUpdated => "knowledge_base.updated", "Edited knowledge base";
    /// A knowledge base was archived.
    KnowledgeBaseArchived => "knowledge_base.archived", "Archived knowledge base";
    /// An archived knowledge base was brought back.
    KnowledgeBaseUnarchived => "knowledge_base.unarchived", "Unarchived knowledge base";
    /// A knowledge base and its documents were deleted.
    KnowledgeBaseDeleted => "knowledge_base.deleted", "Deleted knowledge base";
    /// A custom domain was added.
    DomainAdded => "domain.added", "Added custom domain";
    /// A custom domain's verification was checked.
    DomainVerified => "domain.verified", "Verified custom domain";
    /// A custom domain was removed.
    DomainRemoved => "domain.removed", "Removed custom domain";
    /// A document was uploaded.
    DocumentUploaded => "document.uploaded", "Uploaded document";
    /// A document was deleted.
    DocumentDeleted => "document.deleted", "Deleted document";
    /// A document's content was downloaded (the guide's GDPR "audit trail: track all data access").
    DocumentDownloaded => "document.downloaded", "Downloaded document";
    /// Analytics were viewed.
    AnalyticsViewed => "analytics.viewed", "Viewed analytics dashboard";
    /// The audit log (or other data) was exported.
    DataExported => "data.exported", "Exported";
    /// The audit chain was verified.
    AuditVerified => "audit.verified", "Verified audit log";
    /// An operator accepted the database's log after a restore: the witness's newer
    /// checkpoint was set aside (`axie-server accept-restored-audit`).
    AuditWitnessReset => "audit.witness_reset", "Accepted the restored audit log of";
    /// Someone had the chain head signed (a checkpoint on demand).
    AuditCheckpointed => "audit.checkpointed", "Signed a checkpoint of";
    /// A team was created.
    TeamCreated => "team.created", "Created team";
    /// A team was changed (renamed, archived, its members changed through SCIM).
    TeamUpdated => "team.updated", "Updated team";
    /// The Owner or an Admin set the organization's pipeline of teams (quality gates).
    PipelineSet => "team.pipeline_set", "Set the pipeline of";
    /// The Owner or an Admin removed the organization's pipeline of teams.
    PipelineRemoved => "team.pipeline_removed", "Removed the pipeline of";
    /// An organization member was given a role in a team.
    TeamMemberAdded => "team.member_added", "Added to a team:";
    /// A member's role in a team changed.
    TeamMemberRoleChanged => "team.member_role_changed", "Changed the team role of";
    /// A member was taken out of a team.
    TeamMemberRemoved => "team.member_removed", "Took out of a team:";
    /// A team was deleted.
    TeamDeleted => "team.deleted", "Deleted team";
    /// An asset moved between teams.
    AssetTransferred => "asset.transferred", "Transferred";
    /// A webhook endpoint was created, changed or removed.
    WebhookEndpointChanged => "webhook.endpoint_changed", "Changed webhook endpoint";
    /// An attempt on a protected route was refused.
    AccessDenied => "access.denied", "Was denied";
    /// Consent was granted or withdrawn: what records written before consent's two actions
    /// below carry (no longer written; kept so that those records still read).
    ConsentChanged => "privacy.consent_changed", "Changed consent";
    /// A person gave their consent to a purpose.
    ConsentGranted => "privacy.consent_granted", "Gave consent to";
    /// A person withdrew their consent to a purpose.
    ConsentWithdrawn => "privacy.consent_withdrawn", "Withdrew consent to";
    /// A person's personal data was exported or erased.
    PersonalDataProcessed => "privacy.personal_data", "Processed personal data of";
    /// A member's profile (name, email, identity-provider attributes) changed.
    MemberUpdated => "member.updated", "Updated member";
    /// A member was deactivated: sessions ended, API keys deactivated, resources kept.
    MemberDeactivated => "member.deactivated", "Deactivated member";
    /// A deactivated member was restored.
    MemberReactivated => "member.reactivated", "Reactivated member";
    /// A SCIM provisioning token was created.
    ScimTokenCreated => "scim.token_created", "Created SCIM token";
    /// A SCIM provisioning token was revoked.
    ScimTokenRevoked => "scim.token_revoked", "Revoked SCIM token";
    /// The weekly usage report went to the Owner.
    UsageReportSent => "usage.report_sent", "Sent the weekly usage report of";
    /// The organization's negotiated limits changed.
    LimitsChanged => "billing.limits_changed", "Changed the negotiated limits of";
    /// The subscription plan changed.
    PlanChanged => "billing.plan_changed", "Changed the plan of";
    /// The subscription renewed for another period (an invoice was issued).
    SubscriptionRenewed => "billing.renewed", "Renewed the subscription of";
    /// A renewal could not be charged; it is tried again later (the Owner is told by mail).
    RenewalFailed => "billing.renewal_failed", "Could not charge the renewal of";
    /// A paid plan whose renewal could not be charged within the grace period went back to Free.
    SubscriptionLapsed => "billing.lapsed", "Ended the unpaid subscription of";
    /// The Owner cancelled the paid plan: it stays in force until its period ends.
    SubscriptionCancelled => "billing.cancelled", "Cancelled, at the end of its period, the subscription of";
    /// The Owner withdrew a cancellation before the period ended: the plan renews.
    CancellationWithdrawn => "billing.cancellation_withdrawn", "Withdrew the cancellation of the subscription of";
    /// A cancelled paid plan's period ended and Free took over.
    SubscriptionEnded => "billing.ended", "Ended the cancelled subscription of";
    /// The operator recorded that an open invoice was paid (`mark-invoice-paid`).
    InvoicePaid => "billing.invoice_paid", "Recorded the payment of an invoice of";
    /// The operator agreed a monthly price for a paid plan with the organization, or took it
    /// back (`set-price`).
    PriceAgreed => "billing.price_agreed", "Agreed the price of a plan of";
    /// An open invoice passed its due date unpaid: the Owner was reminded by mail (when it
    /// fell due, a week later and two weeks later).
    InvoiceOverdue => "billing.invoice_overdue", "Reminded the Owner of an overdue invoice of";
    /// The 14-day Enterprise trial started.
    TrialStarted => "billing.trial_started", "Started the Enterprise trial of";
    /// The Enterprise trial ended and the plan before it returned.
    TrialEnded => "billing.trial_ended", "Ended the Enterprise trial of";
    /// Credits were bought into the pool or a team's account.
    CreditsPurchased => "credits.purchased", "Bought credits for";
    /// A team used credits.
    CreditsConsumed => "credits.consumed", "Used credits of";
    /// Credits moved between accounts.
    CreditsTransferred => "credits.transferred", "Transferred credits from";
    /// A credit operation was cancelled by compensating entries.
    CreditsReversed => "credits.reversed", "Reversed credit operation";
    /// The allocation of purchased credits across teams changed.
    CreditAllocationChanged => "credits.allocation_changed", "Changed the credit allocation of";
    /// A credit account's overdraft or low-credit threshold changed.
    CreditAccountUpdated => "credits.account_updated", "Changed the credit settings of";
    /// A team's balance fell below its low-credit threshold and the alert went out.
    CreditsLow => "credits.low", "Sent a low-credit alert for";
    /// Records older than the retention period were removed.
    AuditPruned => "audit.pruned", "Removed audit records older than the retention period of";
}

impl AuditAction {
    /// Whether the name matches `filter`: exact, or a prefix ending in `.` or `*` (`member.` / `member.*`).
    #[must_use]
    pub fn matches(self, filter: &str) -> bool {
        let name = self.as_str();
        match filter.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None if filter.ends_with('.') => name.starts_with(filter),
            None => name == filter,
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        AuditAction::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown audit action `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_dotted_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(a.as_str().contains('.'), "{a} is not dotted");
            assert!(seen.insert(a.as_str()), "{a} is duplicated");
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
    }

    #[test]
    fn prefix_filters() {
        assert!(AuditAction::MemberInvited.matches("member.invited"));
        assert!(AuditAction::MemberInvited.matches("member."));
        assert!(AuditAction::MemberInvited.matches("member.*"));
        assert!(!AuditAction::MemberInvited.matches("member"));
        assert!(!AuditAction::Login.matches("member.*"));
    }
}
