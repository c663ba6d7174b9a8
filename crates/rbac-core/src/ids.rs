//! Typed, prefixed identifiers (`org_…`, `usr_…`) shared by every Axie crate.
//!
//! Each entity has its own id type so an `OrgId` can never be passed where a
//! `TeamId` is expected. Ids are UUIDv7 (time ordered, so keyset pagination by
//! id follows creation order) rendered with a short readable prefix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Error returned when a string is not a valid id of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id")]
pub struct IdParseError {
    /// The id type that was expected, for example `org`.
    pub kind: &'static str,
    /// The rejected input, truncated to 64 characters.
    pub value: String,
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The textual prefix of this id type, without the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered random id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || IdParseError {
                    kind: $prefix,
                    value: s.chars().take(64).collect(),
                };
                let rest = s
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or_else(err)?;
                if rest.len() != 32 {
                    return Err(err());
                }
                Uuid::try_parse(rest).map(Self).map_err(|_| err())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Identifies an organization (an enterprise account).
    OrgId, "org"
);
id_type!(
    /// Identifies a team (an isolated workspace inside an organization).
    TeamId, "team"
);
id_type!(
    /// Identifies a person with an account.
    UserId, "usr"
);
id_type!(
    /// Identifies an API key.
    ApiKeyId, "key"
);
id_type!(
    /// Identifies a login session.
    SessionId, "ses"
);
id_type!(
    /// Identifies an invitation.
    InvitationId, "inv"
);
id_type!(
    /// Identifies a workspace resource (chat interface, knowledge base, document, domain).
    ResourceId, "res"
);
id_type!(
    /// Identifies a webhook endpoint.
    EndpointId, "whe"
);
id_type!(
    /// Identifies an outgoing event (the same on every delivery attempt).
    EventId, "evt"
);
id_type!(
    /// Identifies a SCIM provisioning token.
    ScimTokenId, "stk"
);
id_type!(
    /// Identifies one operation on team credits (its ledger entries share it).
    CreditOperationId, "cop"
);
id_type!(
    /// Identifies one consent decision (a grant or a withdrawal).
    ConsentId, "cns"
);

impl ConsentId {
    /// A new id greater than `newest` (a person's newest decision), so that the order of one
    /// person's decisions is the order they were made in whatever the clocks of the servers
    /// that made them: a fresh time-ordered id, or, when that is not greater (a clock behind,
    /// or two ids in one millisecond), the one right after `newest`.
    #[must_use]
    pub fn next_after(newest: Option<Self>) -> Self {
        let id = Self::new();
        match newest {
            Some(n) if id <= n => Self(Uuid::from_u128(n.0.as_u128().wrapping_add(1))),
            _ => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consent_id_follows_the_newest_whatever_the_clock() {
        let far = ConsentId::from_uuid(Uuid::from_u128(u128::MAX - 7));
        let next = ConsentId::next_after(Some(far));
        assert!(next > far);
        assert_eq!(next.as_uuid().as_u128(), u128::MAX - 6);
        let old = ConsentId::from_uuid(Uuid::from_u128(1));
        assert!(ConsentId::next_after(Some(old)) > old);
        assert!(ConsentId::next_after(None) > old);
    }

    #[test]
    fn round_trips_through_display_and_parse() {
        let id = OrgId::new();
        let text = id.to_string();
        assert!(text.starts_with("org_"));
        assert_eq!(text.parse::<OrgId>(), Ok(id));
    }

    #[test]
    fn rejects_wrong_prefix_and_garbage() {
        let team = TeamId::new().to_string();
        assert!(team.parse::<OrgId>().is_err());
        assert!("org_".parse::<OrgId>().is_err());
        assert!("org_zz".parse::<OrgId>().is_err());
        assert!("".parse::<OrgId>().is_err());
        let hyphenated = format!("org_{}", uuid::Uuid::now_v7());
        assert!(
            hyphenated.parse::<OrgId>().is_err(),
            "only the simple form is accepted"
        );
    }

    #[test]
    fn serde_uses_the_prefixed_string() {
        let id = UserId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        assert!(
            serde_json::from_str::<UserId>("\"org_00000000000000000000000000000000\"").is_err()
        );
    }
}
