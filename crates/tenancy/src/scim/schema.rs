//! The SCIM schemas this service provider supports (RFC 7643 §7), declared once: the same
//! declaration answers `/Schemas` and checks every incoming resource (types, required and
//! read-only attributes, attribute-name case), so what is advertised is what is enforced.

use serde_json::{Map, Value, json};

/// `urn:ietf:params:scim:schemas:core:2.0:User`.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// `urn:ietf:params:scim:schemas:core:2.0:Group`.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// An attribute's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `string`.
    String,
    /// `boolean` (the strings "True"/"False" are accepted, as Entra sends them).
    Boolean,
    /// `complex`.
    Complex,
    /// `reference`.
    Reference,
    /// `dateTime`.
    DateTime,
}

impl Type {
    const fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::Complex => "complex",
            Type::Reference => "reference",
            Type::DateTime => "dateTime",
        }
    }
}

/// Who may write an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Client-writable.
    ReadWrite,
    /// Server-managed: ignored on input.
    ReadOnly,
    /// Set on creation, never changed.
    Immutable,
    /// Accepted, never returned (`password`).
    WriteOnly,
}

impl Mutability {
    const fn name(self) -> &'static str {
        match self {
            Mutability::ReadWrite => "readWrite",
            Mutability::ReadOnly => "readOnly",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// One attribute of a schema.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Whether it holds a list.
    pub multi: bool,
    /// Whether a resource must have it.
    pub required: bool,
    /// Whether strings compare with case.
    pub case_exact: bool,
    /// Who writes it.
    pub mutability: Mutability,
    /// `none` or `server`.
    pub uniqueness: &'static str,
    /// Sub-attributes of a complex attribute.
    pub sub: &'static [Attr],
    /// Suggested values (`type` of an email, …).
    pub canonical: &'static [&'static str],
    /// What it means.
    pub description: &'static str,
    /// Reference types of a `reference` attribute.
    pub reference_types: &'static [&'static str],
}

const fn attr(name: &'static str, ty: Type, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        uniqueness: "none",
        sub: &[],
        canonical: &[],
        description,
        reference_types: &[],
    }
}

const NAME_SUB: &[Attr] = &[
    attr(
        "formatted",
        Type::String,
        "The full name, formatted for display.",
    ),
    attr("familyName", Type::String, "The family name."),
    attr("givenName", Type::String, "The given name."),
    attr("middleName", Type::String, "The middle name(s)."),
    attr(
        "honorificPrefix",
        Type::String,
        "Honorific prefix, for example Ms.",
    ),
    attr(
        "honorificSuffix",
        Type::String,
        "Honorific suffix, for example III.",
    ),
];

const EMAIL_SUB: &[Attr] = &[
    attr("value", Type::String, "The email address."),
    attr("display", Type::String, "A display label."),
    Attr {
        canonical: &["work", "home", "other"],
        ..attr("type", Type::String, "work, home or other.")
    },
    attr(
        "primary",
        Type::Boolean,
        "The primary address (the login email).",
    ),
];

const ROLE_SUB: &[Attr] = &[
    Attr {
        canonical: &["admin", "user"],
        ..attr(
            "value",
            Type::String,
            "admin makes the member an Admin; otherwise a User.",
        )
    },
    attr("display", Type::String, "A display label."),
    attr("type", Type::String, "A label for the role's function."),
    attr("primary", Type::Boolean, "The primary role."),
];

/// The User attributes.
pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        uniqueness: "server",
        ..attr(
            "userName",
            Type::String,
            "Unique within the organization, compared without case. Becomes the login email when it is an email address and no primary email is given.",
        )
    },
    Attr {
        sub: NAME_SUB,
        ..attr("name", Type::Complex, "The person's name.")
    },
    attr(
        "displayName",
        Type::String,
        "The name shown in the product.",
    ),
    attr("nickName", Type::String, "A casual name."),
    attr("title", Type::String, "Job title."),
    attr(
        "preferredLanguage",
        Type::String,
        "Preferred language, for example en-US.",
    ),
    attr("locale", Type::String, "Locale, for example en-US."),
    attr(
        "timezone",
        Type::String,
        "Time zone, for example Europe/Berlin.",
    ),
    attr(
        "active",
        Type::Boolean,
        "false deactivates the member (sessions ended, API keys deactivated, resources kept); true restores.",
    ),
    Attr {
        mutability: Mutability::WriteOnly,
        case_exact: true,
        ..attr(
            "password",
            Type::String,
            "Sets the login password (checked against the password policy); never returned.",
        )
    },
    Attr {
        multi: true,
        sub: EMAIL_SUB,
        ..attr(
            "emails",
            Type::Complex,
            "Email addresses; the primary one is the login email.",
        )
    },
    Attr {
        multi: true,
        sub: ROLE_SUB,
        ..attr(
            "roles",
            Type::Complex,
            "The enterprise role: a value admin makes the member an Admin, other values a User; without roles the role stays as it is (the Owner's never changes through SCIM).",
        )
    },
];

const MEMBER_SUB: &[Attr] = &[
    Attr {
        mutability: Mutability::Immutable,
        case_exact: true,
        ..attr("value", Type::String, "The member's user id.")
    },
    Attr {
        mutability: Mutability::Immutable,
        reference_types: &["User", "Group"],
        ..attr("$ref", Type::Reference, "The member's URI.")
    },
    attr("display", Type::String, "The member's display name."),
    Attr {
        mutability: Mutability::Immutable,
        canonical: &["User", "Group"],
        ..attr(
            "type",
            Type::String,
            "User (nested groups are not supported).",
        )
    },
];

/// The Group (team) attributes.
pub const GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        uniqueness: "server",
        ..attr(
            "displayName",
            Type::String,
            "The team's name, unique within the organization.",
        )
    },
    Attr {
        multi: true,
        sub: MEMBER_SUB,
        ..attr(
            "members",
            Type::Complex,
            "The team's members (organization members only).",
        )
    },
];

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.ty.name(),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability.name(),
        "returned": match a.mutability {
            Mutability::WriteOnly => "never",
            _ if a.name == "userName" => "always",
            _ => "default",
        },
        "uniqueness": a.uniqueness,
    });
    if !a.sub.is_empty() {
        v["subAttributes"] = a.sub.iter().map(attr_json).collect();
    }
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    if a.ty == Type::Reference {
        v["referenceTypes"] = json!(a.reference_types);
    }
    v
}

/// A schema resource as `/Schemas` returns it.
#[must_use]
pub fn schema_resource(id: &str, base: &str) -> Value {
    let (name, description, attrs) = if id == USER_SCHEMA {
        ("User", "An organization member", USER_ATTRS)
    } else {
        ("Group", "A team of the organization", GROUP_ATTRS)
    };
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

/// A resource that breaks its schema; `scim_type` is `invalidValue` or `invalidSyntax`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct SchemaError {
    /// RFC 7644's `scimType`.
    pub scim_type: &'static str,
    /// What was wrong.
    pub detail: String,
}

fn invalid(detail: String) -> SchemaError {
    SchemaError {
        scim_type: "invalidValue",
        detail,
    }
}

/// Checks `input` against `attrs` and returns its writable attributes under their canonical
/// names: attribute names are matched without case, read-only ones (and `id`, `meta`,
/// `schemas`) dropped, unknown ones ignored, booleans given as "True"/"False" turned into
/// booleans, types checked.
///
/// # Errors
/// [`SchemaError`] for a wrong type or a missing required attribute.
pub fn canonicalize(input: &Value, attrs: &[Attr]) -> Result<Map<String, Value>, SchemaError> {
    let obj = input.as_object().ok_or_else(|| SchemaError {
        scim_type: "invalidSyntax",
        detail: "the body must be a JSON object".into(),
    })?;
    let mut out = Map::new();
    // Attributes may also be sent qualified by their schema (`urn:…:User:userName`).
    let unqualified = obj.iter().map(|(k, v)| {
        let lower = k.to_ascii_lowercase();
        let k = if lower.starts_with(&USER_SCHEMA.to_ascii_lowercase())
            || lower.starts_with(&GROUP_SCHEMA.to_ascii_lowercase())
        {
            k.rsplit(':').next().unwrap_or(k)
        } else {
            k.as_str()
        };
        (k, v)
    });
    for (k, v) in unqualified {
        let Some(a) = attrs.iter().find(|a| a.name.eq_ignore_ascii_case(k)) else {
            continue;
        };
        if matches!(a.mutability, Mutability::ReadOnly) || v.is_null() {
            continue;
        }
        out.insert(a.name.to_owned(), check(a, v)?);
    }
    for a in attrs.iter().filter(|a| a.required) {
        let missing = match out.get(a.name) {
            None => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        if missing {
            return Err(invalid(format!("`{}` is required", a.name)));
        }
    }
    Ok(out)
}

fn check(a: &Attr, v: &Value) -> Result<Value, SchemaError> {
    if a.multi {
        let items = match v {
            Value::Array(items) => items.clone(),
            // A single value where a list is expected is taken as a list of one.
            other => vec![other.clone()],
        };
        let single = Attr { multi: false, ..*a };
        return items
            .iter()
            .filter(|i| !i.is_null())
            .map(|i| check(&single, i))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    match (a.ty, v) {
        (Type::String | Type::Reference | Type::DateTime, Value::String(_)) => Ok(v.clone()),
        (Type::Boolean, Value::Bool(_)) => Ok(v.clone()),
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
            Ok(Value::Bool(true))
        }
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
            Ok(Value::Bool(false))
        }
        (Type::Complex, Value::Object(o)) => {
            let mut out = Map::new();
            for (k, sv) in o {
                let Some(sa) = a.sub.iter().find(|s| s.name.eq_ignore_ascii_case(k)) else {
                    continue;
                };
                if matches!(sa.mutability, Mutability::ReadOnly) || sv.is_null() {
                    continue;
                }
                out.insert(sa.name.to_owned(), check(sa, sv)?);
            }
            Ok(Value::Object(out))
        }
        _ => Err(invalid(format!(
            "`{}` must be of type {}",
            a.name,
            a.ty.name()
        ))),
    }
}
