//! Message templates: an endpoint that posts to a chat tool (Slack's or Microsoft Teams'
//! incoming webhooks) gets `{"text": "<the template, filled in>"}` instead of the event document,
//! as in the guide's example: `"🎉 New chat interface created by {{user}}: {{name}}"`.
//!
//! A placeholder is `{{key}}`: `event` (the event type), `timestamp` (RFC 3339), `user` (who
//! acted: the event's `byName`, else its `by`), or a key of the event's `data` whose value is
//! text, a number or a boolean. Anything else is left empty, so a template never fails at
//! delivery time; [`check`] refuses what cannot be a placeholder when the template is saved.
//!
//! Values are members' input (a chat interface's name), so they are escaped as Slack's message
//! format requires (`&`, `<`, `>`): a name cannot ping `<!channel>` or hide a link as
//! `<https://…|text>`. Microsoft Teams reads the text as Markdown, where a link hides as
//! `[text](https://…)`: a value's `](` gets a zero-width space between the two, which ends the
//! link syntax in Markdown and shows nothing in either tool (a backslash would show in Slack).
//! The template's own text is the Owner's or an Admin's, and is sent as written.

use audit::DomainEvent;
use serde_json::Value;

use crate::error::WebhookError;

/// The longest template accepted, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 2_000;

/// Checks a template before it is stored: not empty, at most [`MAX_TEMPLATE_CHARS`], and every
/// `{{` opens a placeholder of letters, digits and underscores closed by `}}`.
///
/// # Errors
/// [`WebhookError::Invalid`] naming the problem.
pub fn check(template: &str) -> Result<(), WebhookError> {
    if template.trim().is_empty() {
        return Err(WebhookError::Invalid(
            "the message template is empty".into(),
        ));
    }
    if template.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(WebhookError::Invalid(format!(
            "the message template is longer than {MAX_TEMPLATE_CHARS} characters"
        )));
    }
    if template.contains('\0') {
        return Err(WebhookError::Invalid(
            "the message template must not contain a NUL character (U+0000)".into(),
        ));
    }
    for piece in pieces(template) {
        if let Piece::Bad(at) = piece {
            return Err(WebhookError::Invalid(format!(
                "the message template has an unfinished or malformed placeholder at `{at}` \
                 (placeholders are like {{{{user}}}} or {{{{name}}}})"
            )));
        }
    }
    Ok(())
}

/// The longest message a template renders, in characters (Slack's own limit for a message's
/// text): a template that repeats a long value (a transfer's note, say) many times is cut there,
/// ending in `…`, rather than stored and sent at any length.
pub const MAX_RENDERED_CHARS: usize = 40_000;

/// The template filled in from `event`, at most [`MAX_RENDERED_CHARS`] characters.
#[must_use]
pub fn render(template: &str, event: &DomainEvent) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) | Piece::Bad(t) => out.push_str(t),
            Piece::Key(k) => escape_into(&mut out, &value_of(k, event).replace("](", "]\u{200b}(")),
        }
        if out.len() > MAX_RENDERED_CHARS * 4 {
            // Far past the limit in bytes, so past it in characters: stop filling in.
            break;
        }
    }
    if out.chars().count() > MAX_RENDERED_CHARS {
        out = out.chars().take(MAX_RENDERED_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// The request body for a templated endpoint.
#[must_use]
pub fn body(template: &str, event: &DomainEvent) -> String {
    serde_json::json!({ "text": render(template, event) }).to_string()
}

/// Appends `value` with Slack's three control characters escaped.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn value_of(key: &str, event: &DomainEvent) -> String {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match key {
        "event" => event.kind.as_str().to_owned(),
        "timestamp" => event
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "user" => ["byName", "by"]
            .iter()
            .find_map(|k| event.data.get(k).and_then(scalar))
            .unwrap_or_default(),
        k => event.data.get(k).and_then(scalar).unwrap_or_default(),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Key(&'a str),
    Bad(&'a str),
}

/// The template cut into text and placeholders, in order.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 2..];
        let key_end = after.find("}}").filter(|&end| {
            let k = after[..end].trim();
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        match key_end {
            Some(end) => {
                out.push(Piece::Key(after[..end].trim()));
                rest = &after[end + 2..];
            }
            None => {
                out.push(Piece::Bad(&rest[open..open + 2]));
                rest = after;
            }
        }
    }
    out.push(Piece::Text(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::EventKind;
    use serde_json::json;

    fn created() -> DomainEvent {
        DomainEvent::new(
            rbac_core::OrgId::new(),
            EventKind::ChatInterfaceCreated,
            chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default(),
            json!({"chatInterfaceId": "res_1", "name": "Customer Support", "by": "usr_1",
                "byName": "Sarah", "teamId": "team_1", "sizeBytes": 12, "nested": {"a": 1}}),
        )
    }

    #[test]
    fn a_long_value_repeated_is_cut_at_the_limit() {
        let event = DomainEvent::new(
            rbac_core::OrgId::new(),
            EventKind::AssetTransferred,
            chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default(),
            json!({"note": "&".repeat(2_000)}),
        );
        let t = "{{note}}".repeat(250);
        let out = render(&t, &event);
        assert_eq!(out.chars().count(), MAX_RENDERED_CHARS);
        assert!(out.ends_with('…') && out.starts_with("&amp;&amp;"));
        // Below the limit, nothing is cut.
        assert_eq!(render("{{note}}", &event).chars().count(), 10_000);
    }

    #[test]
    fn the_guides_example_renders() {
        let t = "🎉 New chat interface created by {{user}}: {{name}}";
        assert!(check(t).is_ok());
        assert_eq!(
            render(t, &created()),
            "🎉 New chat interface created by Sarah: Customer Support"
        );
        let body: Value = serde_json::from_str(&body(t, &created())).unwrap_or_default();
        assert_eq!(
            body,
            json!({"text": "🎉 New chat interface created by Sarah: Customer Support"})
        );
    }

    #[test]
    fn placeholders_read_the_event_and_unknown_ones_stay_empty() {
        let t = "{{event}} at {{timestamp}}: {{ sizeBytes }} bytes, [{{nested}}] [{{missing}}]";
        assert_eq!(
            render(t, &created()),
            "chat_interface.created at 2025-11-24T16:00:00Z: 12 bytes, [] []"
        );
        let mut e = created();
        e.data = json!({"by": "usr_9"});
        assert_eq!(
            render("by {{user}}", &e),
            "by usr_9",
            "the id without a name"
        );
    }

    #[test]
    fn values_cannot_ping_the_channel_or_disguise_a_link() {
        let mut e = created();
        e.data = json!({"name": "<!channel> <https://evil.example|Reset password> & co", "byName": "M<a>x"});
        assert_eq!(
            render("<!here> {{user}} made {{name}}", &e),
            "<!here> M&lt;a&gt;x made &lt;!channel&gt; &lt;https://evil.example|Reset password&gt; &amp; co"
        );
    }

    /// Teams reads Markdown: a name cannot be a link whose text hides where it goes.
    #[test]
    fn values_cannot_hide_a_markdown_link() {
        let mut e = created();
        e.data = json!({"name": "[Reset your password](https://evil.example) ![x](https://evil.example/i.png)"});
        let out = render("New: {{name}}", &e);
        assert!(!out.contains("]("), "{out}");
        assert_eq!(
            out.replace('\u{200b}', ""),
            "New: [Reset your password](https://evil.example) ![x](https://evil.example/i.png)",
            "nothing else changes"
        );
        // The template's own text is sent as written.
        assert_eq!(
            render("[docs](https://docs.example)", &e),
            "[docs](https://docs.example)"
        );
    }

    #[test]
    fn malformed_templates_are_refused_when_saved() {
        for bad in [
            "",
            "   ",
            "hi {{user",
            "hi {{}}",
            "{{a-b}}",
            "{{ two words }}",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"x".repeat(MAX_TEMPLATE_CHARS + 1)).is_err());
        assert!(check("{{user}} edited\0 {{name}}").is_err());
        assert!(check("plain text, no placeholders } {").is_ok());
        // Rendering never fails: a bad brace is kept as text.
        assert_eq!(render("a {{ b", &created()), "a {{ b");
    }
}
