//! Webhooks are a feature of the plan: which events go out to an organization's endpoints.

use audit::{DomainEvent, EventKind};
use billing_limits::Plan;

/// Whether `plan` (a stored plan name) includes webhooks.
fn plan_has_webhooks(plan: &str) -> bool {
    Plan::parse(plan).is_some_and(|p| p.features().webhooks)
}

/// Whether `event` goes out to its organization's endpoints, given the organization's `plan`
/// (its stored name) as the transaction that publishes the event sees it. An organization that
/// leaves a plan with webhooks keeps its endpoints, inert (and out of its reach, as
/// `manage_webhooks` is gated the same way), until it returns; the events of the change that
/// leaves it (`subscription.updated`, `enterprise.updated`, naming a `previousPlan` with
/// webhooks), which see the new plan already, still go out, so that integrations hear of it.
#[must_use]
pub fn goes_out(plan: Option<&str>, event: &DomainEvent) -> bool {
    plan.is_some_and(plan_has_webhooks)
        || (matches!(
            event.kind,
            EventKind::SubscriptionUpdated | EventKind::EnterpriseUpdated
        ) && event
            .data
            .get("previousPlan")
            .and_then(serde_json::Value::as_str)
            .is_some_and(plan_has_webhooks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbac_core::OrgId;
    use serde_json::json;

    fn event(kind: EventKind, data: serde_json::Value) -> DomainEvent {
        let at = chrono::DateTime::from_timestamp(1_764_547_200, 0).unwrap_or_default();
        DomainEvent::new(OrgId::new(), kind, at, data)
    }

    #[test]
    fn events_go_out_under_a_plan_with_webhooks_and_the_downgrade_announces_itself() {
        let created = event(EventKind::ChatInterfaceCreated, json!({"name": "Bot"}));
        assert!(goes_out(Some("enterprise"), &created));
        assert!(!goes_out(Some("pro"), &created));
        assert!(!goes_out(Some("free"), &created));
        assert!(!goes_out(None, &created), "an organization gone");
        assert!(!goes_out(Some("gold"), &created), "an unknown plan");
        // The downgrade's own events see the new plan and still go out, once.
        let down = json!({"plan": "pro", "previousPlan": "enterprise"});
        for kind in [EventKind::SubscriptionUpdated, EventKind::EnterpriseUpdated] {
            assert!(goes_out(Some("pro"), &event(kind, down.clone())));
            let between = json!({"plan": "free", "previousPlan": "pro"});
            assert!(!goes_out(Some("free"), &event(kind, between)));
        }
        // Only those two kinds: a previous plan named elsewhere changes nothing.
        assert!(!goes_out(Some("pro"), &event(EventKind::RoleChanged, down)));
    }
}
