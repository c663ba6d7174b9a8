//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON representation.
//!
//! The server renders the stored resource, applies the operations here, then validates the
//! result exactly as a PUT body, so a PATCH can never produce a resource a PUT could not.

use serde_json::{Map, Value};

use super::filter::{Filter, get_ci, split_urn};

/// A PATCH that cannot be applied; `scim_type` is RFC 7644's `scimType`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct PatchError {
    /// `invalidPath`, `noTarget`, `invalidValue`, `invalidSyntax` or `invalidFilter`.
    pub scim_type: &'static str,
    /// What was wrong.
    pub detail: String,
}

fn err(scim_type: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError {
        scim_type,
        detail: detail.into(),
    }
}

/// One operation's kind (names compare case-insensitively: Entra sends `Replace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

/// A parsed PATCH path: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`, with an
/// optional schema URN before `attr`.
#[derive(Debug)]
struct Path {
    /// The extension object holding `attr` (None: top level of the resource).
    urn: Option<String>,
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn parse_path(raw: &str) -> Result<Path, PatchError> {
    let raw = raw.trim();
    let (head, filter, tail) = match raw.find('[') {
        Some(open) => {
            let close = raw
                .rfind(']')
                .filter(|c| *c > open)
                .ok_or_else(|| err("invalidPath", format!("`{raw}` has an unclosed `[`")))?;
            let inner = &raw[open + 1..close];
            let f = Filter::parse(inner).map_err(|e| err("invalidFilter", e.to_string()))?;
            let rest = &raw[close + 1..];
            let tail = match rest.strip_prefix('.') {
                Some(sub) => Some(sub.to_owned()),
                None if rest.is_empty() => None,
                None => return Err(err("invalidPath", format!("`{raw}` is not a path"))),
            };
            (&raw[..open], Some(f), tail)
        }
        None => (raw, None, None),
    };
    let (urn, name) = split_urn(head);
    let urn = urn.filter(|u| {
        !u.eq_ignore_ascii_case("urn:ietf:params:scim:schemas:core:2.0:User")
            && !u.eq_ignore_ascii_case("urn:ietf:params:scim:schemas:core:2.0:Group")
    });
    let (attr, sub) = match (name.split_once('.'), tail) {
        (Some(_), Some(_)) => return Err(err("invalidPath", format!("`{raw}` is not a path"))),
        (Some((a, s)), None) => (a.to_owned(), Some(s.to_owned())),
        (None, t) => (name.to_owned(), t),
    };
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !ok(&attr) || sub.as_deref().is_some_and(|s| !ok(s)) {
        return Err(err("invalidPath", format!("`{raw}` is not a path")));
    }
    Ok(Path {
        urn: urn.map(str::to_owned),
        attr,
        filter,
        sub,
    })
}

/// The actual key of `key` in `obj` (case-insensitive), or `key` itself when absent.
fn key_ci(obj: &Map<String, Value>, key: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

fn container<'a>(
    resource: &'a mut Map<String, Value>,
    urn: Option<&str>,
) -> Result<&'a mut Map<String, Value>, PatchError> {
    match urn {
        None => Ok(resource),
        Some(u) => {
            let k = key_ci(resource, u);
            let entry = resource
                .entry(k)
                .or_insert_with(|| Value::Object(Map::new()));
            entry
                .as_object_mut()
                .ok_or_else(|| err("invalidPath", format!("`{u}` is not an extension object")))
        }
    }
}

/// Applies the `Operations` of a `PatchOp` body to `resource`.
///
/// # Errors
/// [`PatchError`] for a malformed body, path or value, or a filter that selects nothing where
/// a target is required.
pub fn apply(resource: &mut Value, body: &Value) -> Result<(), PatchError> {
    let schemas = get_ci(body, "schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| {
        s.iter().any(|v| {
            v.as_str().is_some_and(|v| {
                v.eq_ignore_ascii_case("urn:ietf:params:scim:api:messages:2.0:PatchOp")
            })
        })
    }) {
        return Err(err(
            "invalidSyntax",
            "a PATCH body must list the schema urn:ietf:params:scim:api:messages:2.0:PatchOp",
        ));
    }
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| err("invalidSyntax", "a PATCH body needs an `Operations` array"))?;
    if ops.is_empty() {
        return Err(err("invalidSyntax", "`Operations` is empty"));
    }
    let obj = resource
        .as_object_mut()
        .ok_or_else(|| err("invalidSyntax", "resource is not an object"))?;
    for op in ops {
        let before = obj.clone();
        apply_one(obj, op)?;
        one_primary(&before, obj);
    }
    Ok(())
}

/// RFC 7644 §3.5.2: an operation that makes a value of a multi-valued attribute `primary`
/// takes `primary` from the values that had it before (an `add` of a new primary email to a
/// user who has one leaves one primary, the new one).
fn one_primary(before: &Map<String, Value>, after: &mut Map<String, Value>) {
    let primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    for (key, items) in after.iter_mut() {
        let Value::Array(items) = items else { continue };
        let was: Vec<&Value> = before
            .get(key)
            .and_then(Value::as_array)
            .map(|b| b.iter().filter(|v| primary(v)).collect())
            .unwrap_or_default();
        let was_primary = |v: &Value| was.iter().any(|w| w.get("value") == v.get("value"));
        if !items.iter().any(|v| primary(v) && !was_primary(v)) {
            continue;
        }
        for item in items.iter_mut().filter(|v| primary(v) && was_primary(v)) {
            if let Some(o) = item.as_object_mut() {
                o.insert("primary".to_owned(), Value::Bool(false));
            }
        }
    }
}

/// Applies one operation of a `PatchOp` body to `obj`.
fn apply_one(obj: &mut Map<String, Value>, op: &Value) -> Result<(), PatchError> {
    {
        let name = get_ci(op, "op")
            .and_then(Value::as_str)
            .ok_or_else(|| err("invalidSyntax", "an operation needs `op`"))?;
        let kind = match name.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "remove" => Op::Remove,
            "replace" => Op::Replace,
            other => return Err(err("invalidSyntax", format!("unknown op `{other}`"))),
        };
        let path = get_ci(op, "path").and_then(Value::as_str);
        let value = get_ci(op, "value");
        match (path, kind) {
            (None, Op::Remove) => return Err(err("noTarget", "`remove` needs a `path`")),
            (None, _) => {
                let Some(Value::Object(values)) = value else {
                    return Err(err(
                        "invalidValue",
                        "without `path` the value must be an object of attributes",
                    ));
                };
                for (k, v) in values {
                    if v.is_object() && is_extension_urn(k) {
                        // `"urn:…:extension:…:User": {…}` names a whole extension object.
                        let ext = container(obj, Some(k))?;
                        for (ek, ev) in v.as_object().into_iter().flatten() {
                            let p = parse_path(ek)?;
                            at_path(ext, &p, kind, Some(ev))?;
                        }
                    } else {
                        let p = parse_path(k)?;
                        let target = container(obj, p.urn.as_deref())?;
                        at_path(target, &p, kind, Some(v))?;
                    }
                }
            }
            (Some(raw), _) => {
                let p = parse_path(raw)?;
                if kind != Op::Remove && value.is_none() {
                    return Err(err("invalidValue", format!("`{name}` needs a `value`")));
                }
                let target = container(obj, p.urn.as_deref())?;
                at_path(target, &p, kind, value)?;
            }
        }
    }
    Ok(())
}

/// A full extension schema URN (as opposed to `urn:…:User:attr`).
fn is_extension_urn(k: &str) -> bool {
    let lower = k.to_ascii_lowercase();
    lower.starts_with("urn:")
        && !lower.contains(":core:")
        && (lower.ends_with(":user") || lower.ends_with(":group"))
}

fn at_path(
    obj: &mut Map<String, Value>,
    p: &Path,
    kind: Op,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let key = key_ci(obj, &p.attr);
    match (&p.filter, &p.sub) {
        (None, None) => {
            match kind {
                Op::Remove => match (obj.get_mut(&key), value) {
                    // `remove` with a value takes those values out of a multi-valued attribute
                    // (Entra removes group members this way).
                    (Some(Value::Array(items)), Some(v)) => {
                        let drop: Vec<Value> = match v {
                            Value::Array(a) => a.clone(),
                            other => vec![other.clone()],
                        };
                        items.retain(|item| !drop.iter().any(|d| same_value(item, d)));
                    }
                    _ => {
                        obj.remove(&key);
                    }
                },
                Op::Add => {
                    let v = value.cloned().unwrap_or(Value::Null);
                    match (obj.get_mut(&key), v) {
                        (Some(Value::Array(items)), Value::Array(new)) => {
                            for n in new {
                                if !items.iter().any(|i| same_value(i, &n)) {
                                    items.push(n);
                                }
                            }
                        }
                        (Some(Value::Array(items)), n @ Value::Object(_)) => {
                            if !items.iter().any(|i| same_value(i, &n)) {
                                items.push(n);
                            }
                        }
                        (Some(Value::Object(have)), Value::Object(new)) => {
                            for (k, v) in new {
                                let k2 = key_ci(have, &k);
                                have.insert(k2, v);
                            }
                        }
                        (_, v) => {
                            obj.insert(key, v);
                        }
                    }
                }
                Op::Replace => {
                    let v = value.cloned().unwrap_or(Value::Null);
                    match (obj.get_mut(&key), v) {
                        // Replacing a complex attribute replaces the sub-attributes given.
                        (Some(Value::Object(have)), Value::Object(new)) => {
                            for (k, v) in new {
                                let k2 = key_ci(have, &k);
                                have.insert(k2, v);
                            }
                        }
                        (_, v) => {
                            obj.insert(key, v);
                        }
                    }
                }
            }
            Ok(())
        }
        (None, Some(sub)) => {
            let entry = obj.entry(key.clone());
            let target = entry.or_insert_with(|| {
                if kind == Op::Remove {
                    Value::Null
                } else {
                    Value::Object(Map::new())
                }
            });
            match target {
                Value::Object(inner) => {
                    let sk = key_ci(inner, sub);
                    if kind == Op::Remove {
                        inner.remove(&sk);
                    } else {
                        inner.insert(sk, value.cloned().unwrap_or(Value::Null));
                    }
                }
                Value::Array(items) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        let sk = key_ci(item, sub);
                        if kind == Op::Remove {
                            item.remove(&sk);
                        } else {
                            item.insert(sk, value.cloned().unwrap_or(Value::Null));
                        }
                    }
                }
                Value::Null if kind == Op::Remove => {
                    obj.remove(&key);
                }
                _ => {
                    return Err(err(
                        "invalidPath",
                        format!("`{}` has no sub-attributes", p.attr),
                    ));
                }
            }
            Ok(())
        }
        (Some(filter), sub) => {
            // A replace of an attribute the resource does not have is an add (RFC 7644
            // 3.5.2.3): Entra replaces `emails[type eq "work"].value` of a user with no emails.
            let absent = matches!(obj.get(&key), None | Some(Value::Null));
            let kind = if absent && kind == Op::Replace {
                Op::Add
            } else {
                kind
            };
            let items = match obj.get_mut(&key) {
                Some(Value::Array(items)) => items,
                _ if kind == Op::Add => {
                    obj.insert(key.clone(), Value::Array(Vec::new()));
                    match obj.get_mut(&key) {
                        Some(Value::Array(items)) => items,
                        _ => return Err(err("noTarget", "no such attribute")),
                    }
                }
                // Removing what is not there leaves the resource as the operation wants it
                // (Okta removes a group member this way even when the member has left the
                // team already).
                _ if kind == Op::Remove => return Ok(()),
                _ => {
                    return Err(err(
                        "noTarget",
                        format!("`{}` has no value matching the filter", p.attr),
                    ));
                }
            };
            let matching: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, v)| filter.matches(v))
                .map(|(i, _)| i)
                .collect();
            if matching.is_empty() && kind == Op::Remove {
                return Ok(());
            }
            if matching.is_empty() && kind != Op::Add {
                return Err(err(
                    "noTarget",
                    format!("`{}` has no value matching the filter", p.attr),
                ));
            }
            match (kind, sub) {
                (Op::Remove, None) => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !matching.contains(&i);
                        i += 1;
                        keep
                    });
                }
                (Op::Remove, Some(sub)) => {
                    for i in matching {
                        if let Some(o) = items.get_mut(i).and_then(Value::as_object_mut) {
                            let sk = key_ci(o, sub);
                            o.remove(&sk);
                        }
                    }
                }
                (_, Some(sub)) if matching.is_empty() => {
                    // An add to a sub-attribute of a value that does not exist yet (Entra's
                    // `emails[type eq "work"].value` for a user with no work address): a new
                    // value that the filter matches, carrying the sub-attribute.
                    let Some(terms) = filter.equalities() else {
                        return Err(err(
                            "noTarget",
                            format!(
                                "`{}` has no value matching the filter, and the filter does not say what a new one would hold",
                                p.attr
                            ),
                        ));
                    };
                    let mut entry = Map::new();
                    for (k, v) in terms {
                        entry.insert(k, v);
                    }
                    entry.insert(sub.to_owned(), value.cloned().unwrap_or(Value::Null));
                    items.push(Value::Object(entry));
                }
                (_, Some(sub)) => {
                    for i in matching {
                        if let Some(o) = items.get_mut(i).and_then(Value::as_object_mut) {
                            let sk = key_ci(o, sub);
                            o.insert(sk, value.cloned().unwrap_or(Value::Null));
                        }
                    }
                }
                (_, None) => {
                    let v = value.cloned().unwrap_or(Value::Null);
                    if matching.is_empty() {
                        items.push(v);
                    } else {
                        for i in matching {
                            if let (Some(Value::Object(o)), Value::Object(new)) =
                                (items.get_mut(i), &v)
                            {
                                for (k, nv) in new {
                                    let k2 = key_ci(o, k);
                                    o.insert(k2, nv.clone());
                                }
                            } else if let Some(slot) = items.get_mut(i) {
                                *slot = v.clone();
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Two values of a multi-valued attribute are the same when their `value`s are (or, without
/// `value`, when they are equal).
fn same_value(a: &Value, b: &Value) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(resource: Value, ops: Value) -> Result<Value, PatchError> {
        let mut r = resource;
        apply(
            &mut r,
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
        )?;
        Ok(r)
    }

    fn user() -> Value {
        json!({
            "userName": "bjensen",
            "active": true,
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}]
        })
    }

    #[test]
    fn a_new_primary_value_takes_primary_from_the_old_one() {
        // RFC 7644 §3.5.2: adding a primary email to a user who has one leaves one primary.
        let r = patch(
            user(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "new@example.com", "primary": true}]}]),
        )
        .unwrap();
        assert_eq!(
            r["emails"],
            json!([
                {"value": "b@example.com", "type": "work", "primary": false},
                {"value": "new@example.com", "primary": true}
            ])
        );
        // Through a filter too; a value that stays primary keeps it, and others are untouched.
        let r = patch(
            r,
            json!([{"op": "replace", "path": "emails[value eq \"b@example.com\"].primary", "value": true}]),
        )
        .unwrap();
        assert_eq!(
            r["emails"],
            json!([
                {"value": "b@example.com", "type": "work", "primary": true},
                {"value": "new@example.com", "primary": false}
            ])
        );
        let same = patch(
            r.clone(),
            json!([{"op": "replace", "path": "displayName", "value": "B"}]),
        )
        .unwrap();
        assert_eq!(same["emails"], r["emails"]);
    }

    #[test]
    fn an_add_to_a_missing_filtered_value_creates_it() {
        let r = patch(
            user(),
            json!([{"op": "add", "path": "emails[type eq \"home\"].value", "value": "b@home.example"}]),
        )
        .unwrap();
        assert_eq!(
            r["emails"],
            json!([
                {"value": "b@example.com", "type": "work", "primary": true},
                {"type": "home", "value": "b@home.example"}
            ])
        );
        // Also where the attribute has no values at all, with an `and` of equalities.
        let r = patch(
            json!({"userName": "x"}),
            json!([{"op": "add", "path": "phoneNumbers[type eq \"work\" and primary eq true].value", "value": "+1 555"}]),
        )
        .unwrap();
        assert_eq!(
            r["phoneNumbers"],
            json!([{"type": "work", "primary": true, "value": "+1 555"}])
        );
        // Removing a value that is not there changes nothing and is no error.
        let r = patch(
            user(),
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        )
        .unwrap();
        assert_eq!(r, user());
        let r = patch(
            json!({"userName": "x"}),
            json!([{"op": "remove", "path": "emails[type eq \"home\"].value"}]),
        )
        .unwrap();
        assert_eq!(r, json!({"userName": "x"}));
        // A replace finds nothing to replace (RFC 7644 3.5.2.3), and a filter that does not
        // say what a new value would hold cannot create one.
        let e = patch(
            user(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, "noTarget");
        let e = patch(
            user(),
            json!([{"op": "add", "path": "emails[type ne \"work\"].value", "value": "h"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, "noTarget");
        // Of an attribute the resource does not have, a replace is an add (RFC 7644 3.5.2.3).
        let r = patch(
            json!({"userName": "x"}),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "x@w.example"}]),
        )
        .unwrap();
        assert_eq!(
            r,
            json!({"userName": "x", "emails": [{"type": "work", "value": "x@w.example"}]})
        );
    }

    #[test]
    fn entra_style_capitalised_ops_without_path() {
        let r = patch(
            user(),
            json!([{"op": "Replace", "value": {"active": "False", "name.givenName": "Babs"}}]),
        )
        .unwrap();
        assert_eq!(r["active"], "False");
        assert_eq!(r["name"]["givenName"], "Babs");
        assert_eq!(r["name"]["familyName"], "Jensen");
    }

    #[test]
    fn paths_with_filters_and_sub_attributes() {
        let r = patch(
            user(),
            json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
                {"op": "add", "path": "emails", "value": [{"value": "h@example.com", "type": "home"}]},
                {"op": "replace", "path": "name.familyName", "value": "J"},
                {"op": "remove", "path": "urn:ietf:params:scim:schemas:core:2.0:User:active"}
            ]),
        )
        .unwrap();
        assert_eq!(r["emails"][0]["value"], "new@example.com");
        assert_eq!(r["emails"][1]["value"], "h@example.com");
        assert_eq!(r["name"]["familyName"], "J");
        assert!(r.get("active").is_none());
        let r = patch(
            r,
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        )
        .unwrap();
        assert_eq!(r["emails"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn group_members_added_and_removed() {
        let g = json!({"displayName": "Eng", "members": [{"value": "usr_a"}]});
        let g = patch(
            g,
            json!([{"op": "add", "path": "members", "value": [{"value": "usr_b"}, {"value": "usr_a"}]}]),
        )
        .unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 2);
        let g = patch(
            g,
            json!([{"op": "remove", "path": "members[value eq \"usr_a\"]"}]),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "usr_b"}]));
        let g = patch(
            g,
            json!([{"op": "Remove", "path": "members", "value": [{"value": "usr_b"}]}]),
        )
        .unwrap();
        assert_eq!(g["members"], json!([]));
    }

    #[test]
    fn bad_patches_are_refused_with_their_scim_type() {
        let no_schema = {
            let mut r = user();
            apply(
                &mut r,
                &json!({"Operations": [{"op": "add", "path": "x", "value": 1}]}),
            )
        };
        assert_eq!(no_schema.unwrap_err().scim_type, "invalidSyntax");
        let cases = [
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "frobnicate", "path": "a", "value": 1}]),
                "invalidSyntax",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq \"none\"].value", "value": "x"}]),
                "noTarget",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq]", "value": "x"}]),
                "invalidFilter",
            ),
            (
                json!([{"op": "replace", "path": "bad path!", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "add", "value": "not an object"}]),
                "invalidValue",
            ),
            (json!([]), "invalidSyntax"),
        ];
        for (ops, want) in cases {
            assert_eq!(
                patch(user(), ops.clone()).unwrap_err().scim_type,
                want,
                "{ops}"
            );
        }
    }
}
