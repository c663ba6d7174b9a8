//! The event catalogue: every event type with its description and the JSON Schema of its payload.

use audit::EventKind;
use serde::Serialize;
use serde_json::{Value, json};

/// One event type as documented to customers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventType {
    /// Dotted name, the `event` field and the `X-Webhook-Event` header.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
    /// Whether the product emits it today (the rest are reserved for resources still to come).
    pub emitted: bool,
    /// JSON Schema (draft 2020-12) of the whole request body.
    pub schema: Value,
}

fn string(desc: &str) -> Value {
    json!({"type": "string", "description": desc})
}

fn chat_props() -> Value {
    json!({"chatInterfaceId": string("the chat interface"), "name": string("its name"), "teamId": string("its team"), "by": string("who acted"), "byName": string("their display name"),
        "archived": {"type": "boolean", "description": "on an update that archived (true) or unarchived (false) it; absent on edits"}})
}

fn document_props() -> Value {
    json!({"documentId": string("the document"), "name": string("its name"), "teamId": string("its team"), "by": string("who acted"), "byName": string("their display name"),
        "knowledgeBaseId": string("its knowledge base"), "sizeBytes": {"type": "integer", "minimum": 0}})
}

fn data_of(kind: EventKind) -> (&'static str, bool, Value, &'static [&'static str]) {
    let id = |d: &str| string(d);
    let role = json!({"type": "string", "enum": ["owner", "admin", "user"]});
    match kind {
        EventKind::UserCreated => (
            "New team member added",
            true,
            json!({"userId": id("the member"), "email": string("their email"), "role": role, "invitedBy": {"type": ["string", "null"], "description": "email of the inviter (null when added without an invitation, or the inviter's account is gone)"}, "invitedById": {"type": ["string", "null"], "description": "user id of the inviter"}}),
            &["userId", "email", "role"],
        ),
        EventKind::UserUpdated => (
            "Team member profile updated (through SCIM: name, email, role, active; or by the member: their name)",
            true,
            json!({"userId": id("the member"), "email": string("their email"), "role": role,
                "active": {"type": "boolean"},
                "changed": {"type": "array", "items": {"type": "string"}, "description": "which of name, email, password changed"},
                "via": {"type": "string", "enum": ["scim", "self"], "description": "`scim`: the identity provider; `self`: the member renamed themselves"}}),
            &["userId", "email", "role", "active", "changed"],
        ),
        EventKind::UserDeleted => (
            "Team member removed",
            true,
            json!({"userId": id("the member"), "email": string("their email"), "role": role, "removedBy": id("who removed them")}),
            &["userId", "role", "removedBy"],
        ),
        EventKind::EnterpriseCreated => (
            "Enterprise account created (published with the founding itself, before the new \
             organization can have a webhook endpoint: no endpoint of its own receives it)",
            true,
            json!({"enterpriseId": id("the organization"), "name": string("its name"), "plan": {"type": "string", "enum": ["free", "pro", "enterprise"]}, "ownerId": id("the Owner")}),
            &["enterpriseId", "name", "plan", "ownerId"],
        ),
        EventKind::EnterpriseUpdated => (
            "Enterprise changed (ownership, plan or name)",
            true,
            json!({"ownerId": id("the Owner (the new one after a transfer; not sent for a rename)"), "previousOwnerId": id("the previous Owner"),
                   "plan": string("the plan after a plan change"), "previousPlan": string("the plan before"),
                   "auditArchived": {"type": "boolean", "description": "whether the audit log is archived (read-only) after the change"},
                   "name": string("the organization's name after a rename"), "previousName": string("its name before"),
                   "updatedBy": id("who renamed it")}),
            &[],
        ),
        EventKind::RoleChanged => (
            "Team member role modified",
            true,
            json!({"userId": id("the member"), "email": string("their email"), "previousRole": role, "role": role, "changedBy": id("who changed it"),
                   "change": {"type": "string", "enum": ["role", "all_teams_role"], "description": "what changed: the organization role, or the role in every team"},
                   "via": {"type": "string", "enum": ["scim"], "description": "set when the identity provider made the change"},
                   "allTeamsRole": {"type": ["string", "null"], "enum": ["viewer", "member", "admin", null], "description": "the role in every team after the change (all_teams_role changes)"},
                   "previousAllTeamsRole": {"type": ["string", "null"], "enum": ["viewer", "member", "admin", null], "description": "the role in every team before"}}),
            &["userId", "role"],
        ),
        EventKind::SettingsUpdated => (
            "Enterprise settings updated",
            true,
            json!({"fields": {"type": "array", "items": {"type": "string"}}, "featureAccess": {"type": "object"}, "updatedBy": {"type": ["string", "null"], "description": "user id of who changed them (null: the server's operator)"}}),
            &["updatedBy"],
        ),
        EventKind::ApiKeyCreated => (
            "API key created",
            true,
            json!({"apiKeyId": id("the key"), "name": string("its name"), "teamId": id("its team"), "createdBy": id("its creator"), "prefix": string("visible prefix of the secret"),
                   "scope": {"type": "string", "enum": ["organization", "team"], "description": "what the key reaches: the organization (created in the default team) or its team"}}),
            &["apiKeyId", "name", "teamId", "createdBy", "prefix"],
        ),
        EventKind::ApiKeyRevoked => (
            "API key revoked",
            true,
            json!({"apiKeyId": id("the key"), "name": string("its name"), "revokedBy": id("who revoked it")}),
            &["apiKeyId", "revokedBy"],
        ),
        EventKind::WebhookTest => (
            "A test event sent on request",
            true,
            json!({"endpointId": id("the endpoint"), "message": string("a fixed text")}),
            &["endpointId", "message"],
        ),
        EventKind::ChatInterfaceCreated => (
            "Chat interface created",
            true,
            chat_props(),
            &["chatInterfaceId", "name", "teamId", "by"],
        ),
        EventKind::ChatInterfaceUpdated => (
            "Chat interface edited",
            true,
            chat_props(),
            &["chatInterfaceId", "name", "teamId", "by"],
        ),
        EventKind::ChatInterfaceDeleted => (
            "Chat interface deleted (with its knowledge bases and documents)",
            true,
            chat_props(),
            &["chatInterfaceId", "name", "teamId", "by"],
        ),
        EventKind::DocumentUploaded => (
            "Document uploaded to a knowledge base",
            true,
            document_props(),
            &[
                "documentId",
                "name",
                "teamId",
                "by",
                "knowledgeBaseId",
                "sizeBytes",
            ],
        ),
        EventKind::DocumentDeleted => (
            "Document deleted",
            true,
            document_props(),
            &["documentId", "name", "teamId", "by"],
        ),
        EventKind::TeamCreated => (
            "Team created",
            true,
            json!({"teamId": id("the team"), "name": string("its name"), "createdBy": id("who created it")}),
            &["teamId", "name", "createdBy"],
        ),
        EventKind::TeamUpdated => (
            "Team renamed, archived or restored, or a member's team role changed",
            true,
            json!({"teamId": id("the team"), "name": string("its name"), "previousName": string("the name before"),
                "archived": {"type": "boolean"}, "userId": id("the member whose team role changed"),
                "teamRole": {"type": ["string", "null"], "enum": ["admin", "member", "viewer", null], "description": "null when they left the team"}}),
            &["teamId"],
        ),
        EventKind::TeamDeleted => (
            "Team deleted",
            true,
            json!({"teamId": id("the team"), "name": string("its name"), "deletedBy": id("who deleted it")}),
            &["teamId", "name", "deletedBy"],
        ),
        EventKind::AssetTransferred => (
            "A resource moved to another team (with everything under it)",
            true,
            json!({"assetId": id("the resource"), "kind": {"type": "string", "enum": ["chat_interface", "knowledge_base", "domain"]},
                "fromTeamId": id("the team it left"), "toTeamId": id("the team it joined"), "name": string("its name now"),
                "previousName": string("its name before"), "transferredBy": id("who moved it"),
                "note": {"type": ["string", "null"], "maxLength": 2000, "description": "what the mover wrote about it (test results, what changed); null when nothing"}}),
            &[
                "assetId",
                "kind",
                "fromTeamId",
                "toTeamId",
                "name",
                "transferredBy",
            ],
        ),
        EventKind::UsageThresholdReached => (
            "Usage reached an alert threshold of a plan limit (80 % and 100 % unless the deployment sets others; once per threshold, month and value of the limit)",
            true,
            json!({"limit": string("which limit, for example api_calls_per_month"), "threshold": {"type": "integer", "minimum": 1, "maximum": 100, "description": "percent of the limit"},
                "used": {"type": "integer", "minimum": 0}, "max": {"type": "integer", "minimum": 0}, "period": string("YYYY-MM, UTC")}),
            &["limit", "threshold", "used", "max", "period"],
        ),
        EventKind::SubscriptionUpdated => (
            "The subscription changed: plan or billing cycle, a paid plan cancelled (in force until its period ends) or its cancellation withdrawn, Enterprise trial started or ended, renewal, a renewal left unpaid past its grace period (back to Free), or the end of a cancelled plan's period (back to Free)",
            true,
            json!({"change": {"type": "string", "enum": ["subscribe", "trial_started", "trial_ended", "renewed", "lapsed", "cancellation_ended"]},
                "plan": {"type": "string", "enum": ["free", "pro", "enterprise"]},
                "previousPlan": {"type": "string", "enum": ["free", "pro", "enterprise"]},
                "status": {"type": "string", "enum": ["active", "trialing"]},
                "cycle": {"type": ["string", "null"], "enum": ["monthly", "annual", null]},
                "periodEnd": {"type": ["string", "null"], "format": "date-time"},
                "trialEndsAt": {"type": ["string", "null"], "format": "date-time"},
                "invoice": {"type": ["object", "null"], "description": "the invoice issued for the change, if any; its amount is in the billing API, for the Owner (Admins, who manage webhooks, do not see billing)",
                    "properties": {"number": string("invoice number"), "status": {"type": "string", "enum": ["open", "paid"]}},
                    "additionalProperties": false},
                "by": {"type": ["string", "null"], "description": "who changed it (null: the system, for trial ends, renewals and lapses)"},
                "cancelAtPeriodEnd": {"type": "boolean", "description": "whether the paid plan is cancelled: it stays in force until `periodEnd`, then Free"}}),
            &["change", "plan", "previousPlan", "status"],
        ),
        EventKind::CreditsPurchased => (
            "Credits were bought into the pool (and allocated) or into a team's account",
            true,
            json!({"account": string("`pool` or the team id"), "amount": {"type": "integer", "minimum": 1},
                "allocated": {"type": "object", "description": "credits each team received from the allocation",
                    "additionalProperties": {"type": "integer"}},
                "invoice": string("the invoice number"), "by": id("who bought them")}),
            &["account", "amount"],
        ),
        EventKind::CreditsLow => (
            "A team's credit balance fell below its low-credit threshold (once per fall)",
            true,
            json!({"teamId": id("the team"), "balance": {"type": "integer"}, "threshold": {"type": "integer"}}),
            &["teamId", "balance", "threshold"],
        ),
        _ => ("Reserved", false, json!({}), &[]),
    }
}

/// The catalogue, in `EventKind::ALL` order.
#[must_use]
pub fn event_types() -> Vec<EventType> {
    EventKind::ALL
        .iter()
        .map(|&kind| {
            let (description, emitted, props, required) = data_of(kind);
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": kind.as_str(),
                "type": "object",
                "required": ["event", "timestamp", "enterpriseId", "data"],
                "additionalProperties": false,
                "properties": {
                    "event": {"const": kind.as_str()},
                    "timestamp": {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"},
                    "enterpriseId": {"type": "string", "pattern": "^org_[0-9a-f]{32}$"},
                    "data": {"type": "object", "properties": props, "required": required},
                },
            });
            EventType { name: kind.as_str(), description, emitted, schema }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_documented_and_payloads_have_the_schema_keys() {
        let types = event_types();
        assert_eq!(types.len(), EventKind::ALL.len());
        for t in &types {
            assert_ne!(t.description, "Reserved", "{} is undocumented", t.name);
        }
        let e = audit::DomainEvent::new(
            rbac_core::OrgId::new(),
            EventKind::ApiKeyCreated,
            chrono::Utc::now(),
            json!({"apiKeyId": "key_1", "name": "x", "teamId": "team_1", "createdBy": "usr_1", "prefix": "axk_1"}),
        );
        let body: Value = serde_json::from_str(&crate::payload(&e)).unwrap();
        let schema = &types
            .iter()
            .find(|t| t.name == "api_key.created")
            .unwrap()
            .schema;
        for key in schema["required"].as_array().unwrap() {
            assert!(body.get(key.as_str().unwrap()).is_some(), "{key} missing");
        }
        for key in schema["properties"]["data"]["required"].as_array().unwrap() {
            assert!(
                body["data"].get(key.as_str().unwrap()).is_some(),
                "data.{key} missing"
            );
        }
    }
}
