//! Audit records: who did what to which target, when, from where, with what outcome.

use chrono::{DateTime, Utc};
use rbac_core::{OrgId, TeamId};
use serde::{Deserialize, Serialize};

use crate::action::AuditAction;
use crate::error::AuditError;

/// The current version of the record schema, stored with every record.
pub const SCHEMA_VERSION: u16 = 1;

/// Upper bound on the serialized size of [`Metadata`], in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person, through a session.
    User,
    /// An API key (its id is the actor id).
    ApiKey,
    /// The server itself (workers, bootstrap).
    System,
    /// A SCIM provisioning token (its id is the actor id).
    ScimToken,
}

impl ActorKind {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::System => "system",
            ActorKind::ScimToken => "scim_token",
        }
    }

    /// Parses the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            ActorKind::User,
            ActorKind::ApiKey,
            ActorKind::System,
            ActorKind::ScimToken,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The acting party, with its display name at the time of the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// What kind of party acted.
    pub kind: ActorKind,
    /// The pseudonymous id (`usr_…`, `key_…`), empty for the system or an unknown user.
    pub id: String,
    /// Display name at the time; personal data, kept out of the hash chain so it can be erased.
    pub name: String,
}

impl Actor {
    /// The server itself.
    #[must_use]
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: String::new(),
            name: "system".to_owned(),
        }
    }

    /// A person.
    #[must_use]
    pub fn user(id: impl ToString, name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::User,
            id: id.to_string(),
            name: name.into(),
        }
    }
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Target {
    /// The kind of target, for example `chat_interface`, `member`, `api_key`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its name at the time (may be personal data; kept out of the hash chain).
    pub name: String,
}

impl Target {
    /// Builds a target.
    #[must_use]
    pub fn new(kind: &str, id: impl ToString, name: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.to_string(),
            name: name.into(),
        }
    }
}

/// Where the request came from; personal data, kept out of the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RequestContext {
    /// Client IP address.
    pub ip: String,
    /// Client user agent, truncated.
    pub user_agent: String,
    /// The server's request id.
    pub request_id: String,
}

/// Whether the action happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was refused; `reason` is the authorization reason code.
    Denied {
        /// Stable reason code, for example `role_lacks_permission`.
        reason: String,
    },
    /// It was attempted and failed (for example a failed login).
    Failure {
        /// Stable reason code, for example `bad_credentials`.
        reason: String,
    },
}

impl Outcome {
    /// `success`, `denied` or `failure`.
    #[must_use]
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied { .. } => "denied",
            Outcome::Failure { .. } => "failure",
        }
    }

    /// The reason code, empty on success.
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Success => "",
            Outcome::Denied { reason } | Outcome::Failure { reason } => reason,
        }
    }

    /// Rebuilds an outcome from its stored status and reason.
    #[must_use]
    pub fn from_parts(status: &str, reason: &str) -> Option<Self> {
        match status {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied {
                reason: reason.to_owned(),
            }),
            "failure" => Some(Outcome::Failure {
                reason: reason.to_owned(),
            }),
            _ => None,
        }
    }
}

/// Bounded JSON metadata: an object of at most [`MAX_METADATA_BYTES`] serialized, kept as its
/// JSON text.
///
/// Built from a value, the text is canonical (keys sorted, as `serde_json::Map` is a
/// `BTreeMap`, no whitespace); read back from storage ([`Metadata::from_json`]) it is kept
/// byte for byte as stored. The hash chain covers that text, so checking a stored record
/// neither parses nor re-serializes it, and a stored record whose text was edited in any way,
/// even into equivalent JSON, no longer verifies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Metadata(String);

impl Default for Metadata {
    fn default() -> Self {
        Self("{}".to_owned())
    }
}

impl Metadata {
    /// Validates the bound.
    ///
    /// # Errors
    /// [`AuditError::Invalid`] when the serialized object is larger than [`MAX_METADATA_BYTES`].
    pub fn new(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, AuditError> {
        let text = serde_json::to_string(&map)
            .map_err(|e| AuditError::Invalid(format!("metadata does not serialize: {e}")))?;
        Self::bounded(text)
    }

    fn bounded(text: String) -> Result<Self, AuditError> {
        if text.len() > MAX_METADATA_BYTES {
            return Err(AuditError::Invalid(format!(
                "metadata is {} bytes, more than the {MAX_METADATA_BYTES} allowed",
                text.len()
            )));
        }
        Ok(Self(text))
    }

    /// Builds metadata from a `serde_json::json!({...})` object, truncating nothing.
    ///
    /// # Errors
    /// [`AuditError::Invalid`] when the value is not an object or is too large.
    pub fn from_value(value: serde_json::Value) -> Result<Self, AuditError> {
        match value {
            serde_json::Value::Object(map) => Self::new(map),
            serde_json::Value::Null => Ok(Self::default()),
            _ => Err(AuditError::Invalid(
                "metadata must be a JSON object".to_owned(),
            )),
        }
    }

    /// Metadata as a store kept it: `text` must be a JSON object within the bound, and is kept
    /// as it is (not re-serialized), so the chain hashes exactly what was stored.
    ///
    /// # Errors
    /// [`AuditError::Invalid`] when `text` is not a JSON object or is too large.
    pub fn from_json(text: String) -> Result<Self, AuditError> {
        if !text.trim_start().starts_with('{') {
            return Err(AuditError::Invalid(
                "metadata must be a JSON object".to_owned(),
            ));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| AuditError::Invalid(format!("metadata is not JSON: {e}")))?;
        Self::bounded(text)
    }

    /// The object, parsed.
    #[must_use]
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The JSON text: canonical when built from a value, as stored when read back.
    #[must_use]
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::deserialize(deserializer)?;
        Self::new(map).map_err(serde::de::Error::custom)
    }
}

/// A record about to be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// The organization whose chain receives the record.
    pub org: OrgId,
    /// The team concerned, if any.
    pub team: Option<TeamId>,
    /// When it happened (UTC, microsecond precision is kept).
    pub occurred_at: DateTime<Utc>,
    /// Who acted.
    pub actor: Actor,
    /// What they did.
    pub action: AuditAction,
    /// What they did it to.
    pub target: Target,
    /// Where the request came from.
    pub context: RequestContext,
    /// Whether it happened.
    pub outcome: Outcome,
    /// Extra facts.
    pub metadata: Metadata,
}

impl NewAuditEvent {
    /// A successful action with empty context and metadata.
    #[must_use]
    pub fn new(
        org: OrgId,
        occurred_at: DateTime<Utc>,
        actor: Actor,
        action: AuditAction,
        target: Target,
    ) -> Self {
        Self {
            org,
            team: None,
            occurred_at: truncate_to_micros(occurred_at),
            actor,
            action,
            target,
            context: RequestContext::default(),
            outcome: Outcome::Success,
            metadata: Metadata::default(),
        }
    }

    /// Sets the team.
    #[must_use]
    pub fn in_team(mut self, team: TeamId) -> Self {
        self.team = Some(team);
        self
    }

    /// Sets the request context.
    #[must_use]
    pub fn with_context(mut self, context: RequestContext) -> Self {
        self.context = context;
        self
    }

    /// Sets the outcome.
    #[must_use]
    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Drops sub-microsecond precision, which the stores do not keep.
#[must_use]
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A stored record: the new event plus its place in the organization's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the organization's chain, starting at 1.
    pub seq: i64,
    /// The record as appended.
    #[serde(flatten)]
    pub event: NewAuditEvent,
    /// Schema version of the record.
    pub schema_version: u16,
    /// Hash of the previous record (all zeros for the first).
    #[serde(with = "crate::chain::hex_bytes")]
    pub prev_hash: [u8; 32],
    /// This record's chain hash.
    #[serde(with = "crate::chain::hex_bytes")]
    pub hash: [u8; 32],
}

impl AuditEvent {
    /// The public id of the record, `<org id>-<seq>`: unique and stable.
    #[must_use]
    pub fn id(&self) -> String {
        format!("{}-{}", self.event.org, self.seq)
    }
}

/// What erased annotations are replaced with.
pub const ERASED: &str = "[erased]";

/// Blanks the personal annotations of `e` that concern `subject_id`.
pub fn erase_annotations(e: &mut NewAuditEvent, subject_id: &str) {
    erase_annotations_of(e, |id| id == subject_id);
}

/// Blanks the personal annotations of `e` that concern anyone `erased` names: the actor's
/// name, address and user agent when the actor is, the target's name when the target is.
pub fn erase_annotations_of(e: &mut NewAuditEvent, erased: impl Fn(&str) -> bool) {
    if erased(&e.actor.id) {
        e.actor.name = ERASED.to_owned();
        e.context.ip = String::new();
        e.context.user_agent = String::new();
    }
    if erased(&e.target.id) {
        e.target.name = ERASED.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_canonical_when_built_and_verbatim_when_stored() {
        let built =
            Metadata::from_value(serde_json::json!({ "to": "admin", "from": "user" })).unwrap();
        assert_eq!(built.as_json(), r#"{"from":"user","to":"admin"}"#);
        assert_eq!(Metadata::default().as_json(), "{}");
        // Serialized as the object it is, and read back through serde into the same text.
        let v = serde_json::to_value(&built).unwrap();
        assert_eq!(v, serde_json::json!({ "from": "user", "to": "admin" }));
        let back: Metadata = serde_json::from_str(r#"{ "to" : "admin", "from":"user" }"#).unwrap();
        assert_eq!(back, built, "deserialized metadata is canonical");

        let stored = Metadata::from_json(r#"{ "to": "admin" }"#.to_owned()).unwrap();
        assert_eq!(
            stored.as_json(),
            r#"{ "to": "admin" }"#,
            "kept byte for byte"
        );
        assert_eq!(stored.to_map()["to"], "admin");
        for bad in ["[1]", "\"x\"", "{\"open\":", "", "null"] {
            assert!(Metadata::from_json(bad.to_owned()).is_err(), "{bad}");
        }
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_METADATA_BYTES));
        assert!(Metadata::from_json(big).is_err());
        let mut too_big = serde_json::Map::new();
        too_big.insert("x".into(), "a".repeat(MAX_METADATA_BYTES).into());
        assert!(Metadata::new(too_big).is_err());
    }
}
