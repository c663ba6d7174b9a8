//! SCIM filters (RFC 7644 §3.4.2.2): parsed into a [`Filter`] tree and evaluated against a
//! resource's JSON representation.
//!
//! Attribute names compare case-insensitively and may carry their schema URN
//! (`urn:ietf:params:scim:schemas:core:2.0:User:userName`). On a multi-valued attribute a
//! comparison holds when any value satisfies it. String comparisons ignore case except on
//! attributes declared case-exact (`id`, `externalId`, `meta.version`).

use serde_json::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

/// An attribute path: `name`, `name.sub`, optionally prefixed by a schema URN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN, when given.
    pub urn: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name.
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses `urn:…:name.sub`, `name.sub` or `name`.
    ///
    /// # Errors
    /// [`FilterError`] when the path is empty or malformed.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let (urn, rest) = split_urn(s);
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !valid(name) || sub.is_some_and(|s| !valid(s)) {
            return Err(FilterError(format!("`{s}` is not an attribute path")));
        }
        Ok(Self {
            urn: urn.map(str::to_owned),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// The values this path reaches in `resource` (flattened over multi-valued attributes).
    #[must_use]
    pub fn values<'a>(&self, resource: &'a Value) -> Vec<&'a Value> {
        let base = match &self.urn {
            Some(urn) if !is_core(urn) => match get_ci(resource, urn) {
                Some(ext) => ext,
                None => return Vec::new(),
            },
            _ => resource,
        };
        let Some(v) = get_ci(base, &self.name) else {
            return Vec::new();
        };
        let top: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        match &self.sub {
            None => top,
            Some(sub) => top
                .into_iter()
                .filter_map(|item| get_ci(item, sub))
                .flat_map(|v| match v {
                    Value::Array(items) => items.iter().collect::<Vec<_>>(),
                    other => vec![other],
                })
                .collect(),
        }
    }

    /// Whether the attribute is a `dateTime` (`meta.created`, `meta.lastModified`), compared
    /// as instants.
    fn is_instant(&self) -> bool {
        self.name.eq_ignore_ascii_case("meta")
            && self.sub.as_deref().is_some_and(|s| {
                s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified")
            })
    }

    fn case_exact(&self) -> bool {
        let n = self.name.to_ascii_lowercase();
        let s = self.sub.as_deref().map(str::to_ascii_lowercase);
        matches!(
            (n.as_str(), s.as_deref()),
            ("id" | "externalid", None) | ("meta", Some("version"))
        )
    }
}

/// The core schemas, whose attributes sit at the top of a resource.
fn is_core(urn: &str) -> bool {
    urn.eq_ignore_ascii_case("urn:ietf:params:scim:schemas:core:2.0:User")
        || urn.eq_ignore_ascii_case("urn:ietf:params:scim:schemas:core:2.0:Group")
}

/// Splits a schema URN prefix off an attribute path (`urn:…:User:name.givenName`).
pub(crate) fn split_urn(s: &str) -> (Option<&str>, &str) {
    // `get`: byte 4 may fall inside a character of a name that is not ASCII.
    if s.len() > 4 && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        match s.rfind(':') {
            Some(i) => (Some(&s[..i]), &s[i + 1..]),
            None => (None, s),
        }
    } else {
        (None, s)
    }
}

/// An object member by case-insensitive key.
#[must_use]
pub fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr pr`.
    Present(AttrPath),
    /// `attr op value`.
    Compare(AttrPath, CompareOp, Value),
    /// `attr[filter]`: some value of the multi-valued `attr` satisfies `filter`.
    ValuePath(AttrPath, Box<Filter>),
    /// Both.
    And(Box<Filter>, Box<Filter>),
    /// Either.
    Or(Box<Filter>, Box<Filter>),
    /// Negation.
    Not(Box<Filter>),
}

/// A filter that does not parse; answered with `scimType` `invalidFilter`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

impl Filter {
    /// The attribute values a new entry needs to match this filter, when it is one equality or
    /// several joined by `and` (`type eq "work"`); `None` for any other filter.
    #[must_use]
    pub fn equalities(&self) -> Option<Vec<(String, Value)>> {
        match self {
            Self::Compare(path, CompareOp::Eq, v) if path.sub.is_none() && path.urn.is_none() => {
                Some(vec![(path.name.clone(), v.clone())])
            }
            Self::And(a, b) => {
                let mut all = a.equalities()?;
                all.extend(b.equalities()?);
                Some(all)
            }
            _ => None,
        }
    }

    /// Parses a filter expression.
    ///
    /// # Errors
    /// [`FilterError`] describing the first problem.
    pub fn parse(input: &str) -> Result<Self, FilterError> {
        if input.len() > 4096 {
            return Err(FilterError("longer than 4096 characters".into()));
        }
        let tokens = tokenize(input)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let f = p.or()?;
        if p.pos != p.tokens.len() {
            return Err(FilterError(format!(
                "unexpected `{}`",
                p.tokens[p.pos].text()
            )));
        }
        Ok(f)
    }

    /// Whether `resource` satisfies the filter.
    #[must_use]
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::Present(path) => path.values(resource).iter().any(|v| present(v)),
            Filter::Compare(path, op, want) => {
                let values = path.values(resource);
                if *op == CompareOp::Ne {
                    // `ne` holds when no value equals (including when there is none).
                    return !values.iter().any(|v| compare(v, CompareOp::Eq, want, path));
                }
                if want.is_null() && *op == CompareOp::Eq {
                    return values.iter().all(|v| !present(v));
                }
                values.iter().any(|v| compare(v, *op, want, path))
            }
            Filter::ValuePath(path, inner) => path
                .values(resource)
                .into_iter()
                .any(|item| inner.matches(item)),
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(f) => !f.matches(resource),
        }
    }

    /// The value `userName` must equal for the filter to hold, when the filter is exactly
    /// `userName eq "…"` (the identity providers' look-up, answered from an index).
    #[must_use]
    pub fn user_name_eq(&self) -> Option<&str> {
        match self {
            Filter::Compare(path, CompareOp::Eq, Value::String(s))
                if path.sub.is_none() && path.name.eq_ignore_ascii_case("userName") =>
            {
                Some(s)
            }
            _ => None,
        }
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(have: &Value, op: CompareOp, want: &Value, path: &AttrPath) -> bool {
    use std::cmp::Ordering;
    let case_exact = path.case_exact();
    match (have, want) {
        // Instants (`meta.lastModified gt "…"`) are ordered as instants, whatever their
        // fractions of a second or offsets: as text, "…34.500Z" sorts before "…34Z".
        (Value::String(h), Value::String(w))
            if path.is_instant()
                && matches!(
                    op,
                    CompareOp::Eq
                        | CompareOp::Ne
                        | CompareOp::Gt
                        | CompareOp::Ge
                        | CompareOp::Lt
                        | CompareOp::Le
                )
                && let (Ok(h), Ok(w)) = (
                    chrono::DateTime::parse_from_rfc3339(h),
                    chrono::DateTime::parse_from_rfc3339(w),
                ) =>
        {
            let order = h.cmp(&w);
            match op {
                CompareOp::Eq => order == Ordering::Equal,
                CompareOp::Ne => order != Ordering::Equal,
                CompareOp::Gt => order == Ordering::Greater,
                CompareOp::Ge => order != Ordering::Less,
                CompareOp::Lt => order == Ordering::Less,
                _ => order != Ordering::Greater,
            }
        }
        (Value::String(h), Value::String(w)) => {
            let (h, w) = if case_exact {
                (h.clone(), w.clone())
            } else {
                (h.to_lowercase(), w.to_lowercase())
            };
            match op {
                CompareOp::Eq => h == w,
                CompareOp::Ne => h != w,
                CompareOp::Co => h.contains(&w),
                CompareOp::Sw => h.starts_with(&w),
                CompareOp::Ew => h.ends_with(&w),
                CompareOp::Gt => h > w,
                CompareOp::Ge => h >= w,
                CompareOp::Lt => h < w,
                CompareOp::Le => h <= w,
            }
        }
        (Value::Bool(h), Value::Bool(w)) => match op {
            CompareOp::Eq => h == w,
            CompareOp::Ne => h != w,
            _ => false,
        },
        // Booleans sent as strings ("True") by some identity providers.
        (Value::Bool(h), Value::String(w)) => {
            let w = w.eq_ignore_ascii_case("true");
            match op {
                CompareOp::Eq => *h == w,
                CompareOp::Ne => *h != w,
                _ => false,
            }
        }
        (Value::Number(h), Value::Number(w)) => {
            let (Some(h), Some(w)) = (h.as_f64(), w.as_f64()) else {
                return false;
            };
            let ord = h.partial_cmp(&w);
            match op {
                CompareOp::Eq => ord == Some(Ordering::Equal),
                CompareOp::Ne => ord != Some(Ordering::Equal),
                CompareOp::Gt => ord == Some(Ordering::Greater),
                CompareOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                CompareOp::Lt => ord == Some(Ordering::Less),
                CompareOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
            }
        }
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Str(s) => format!("\"{s}\""),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::OpenBracket => "[".into(),
            Token::CloseBracket => "]".into(),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '[' => {
                out.push(Token::OpenBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::CloseBracket);
                i += 1;
            }
            '"' => {
                // A JSON string literal, escapes included.
                let start = i;
                i += 1;
                let mut escaped = false;
                while i < chars.len() && (escaped || chars[i] != '"') {
                    escaped = !escaped && chars[i] == '\\';
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(FilterError("unterminated string".into()));
                }
                let lit: String = chars[start..=i].iter().collect();
                let s: String = serde_json::from_str(&lit)
                    .map_err(|_| FilterError(format!("bad string literal {lit}")))?;
                out.push(Token::Str(s));
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !matches!(
                        chars[i],
                        ' ' | '\t' | '\n' | '\r' | '(' | ')' | '[' | ']' | '"'
                    )
                {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn nested(&mut self, close: &Token) -> Result<Filter, FilterError> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(FilterError("nested more than 32 levels".into()));
        }
        let f = self.or()?;
        self.depth -= 1;
        match self.next() {
            Some(t) if &t == close => Ok(f),
            _ => Err(FilterError(format!("missing `{}`", close.text()))),
        }
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.peek_word("not") && self.tokens.get(self.pos + 1) == Some(&Token::Open) {
            self.pos += 2;
            return Ok(Filter::Not(Box::new(self.nested(&Token::Close)?)));
        }
        match self.next() {
            Some(Token::Open) => self.nested(&Token::Close),
            Some(Token::Word(w)) => {
                let path = AttrPath::parse(&w)?;
                if self.tokens.get(self.pos) == Some(&Token::OpenBracket) {
                    self.pos += 1;
                    let inner = self.nested(&Token::CloseBracket)?;
                    return Ok(Filter::ValuePath(path, Box::new(inner)));
                }
                match self.next() {
                    Some(Token::Word(op)) if op.eq_ignore_ascii_case("pr") => {
                        Ok(Filter::Present(path))
                    }
                    Some(Token::Word(op)) => {
                        let op = CompareOp::parse(&op)
                            .ok_or_else(|| FilterError(format!("unknown operator `{op}`")))?;
                        let value = match self.next() {
                            Some(Token::Str(s)) => Value::String(s),
                            Some(Token::Word(v)) => match v.to_ascii_lowercase().as_str() {
                                "true" => Value::Bool(true),
                                "false" => Value::Bool(false),
                                "null" => Value::Null,
                                _ => serde_json::from_str::<serde_json::Number>(&v)
                                    .map(Value::Number)
                                    .map_err(|_| {
                                        FilterError(format!("`{v}` is not a comparison value"))
                                    })?,
                            },
                            _ => return Err(FilterError("missing comparison value".into())),
                        };
                        Ok(Filter::Compare(path, op, value))
                    }
                    _ => Err(FilterError(format!("missing operator after `{w}`"))),
                }
            }
            Some(t) => Err(FilterError(format!("unexpected `{}`", t.text()))),
            None => Err(FilterError("unexpected end".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "usr_1",
            "userName": "Bjensen@Example.com",
            "externalId": "00uXYZ",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs Jensen",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@home.example", "type": "home"}
            ],
            "meta": {"lastModified": "2026-11-28T10:00:00.500Z"}
        })
    }

    fn holds(f: &str) -> bool {
        Filter::parse(f)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .matches(&user())
    }

    #[test]
    fn operators_on_single_and_multi_valued_attributes() {
        assert!(holds(r#"userName eq "bjensen@example.com""#));
        assert!(holds(r#"USERNAME Eq "BJENSEN@EXAMPLE.COM""#));
        assert!(holds(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bjen""#
        ));
        assert!(holds(r#"name.familyName co "ens""#));
        assert!(holds(r#"emails.value ew "home.example""#));
        assert!(holds(
            r#"emails[type eq "work" and value co "@example.com"]"#
        ));
        assert!(!holds(
            r#"emails[type eq "home" and value co "@example.com"]"#
        ));
        assert!(holds("externalId pr"));
        assert!(!holds("nickName pr"));
        assert!(holds(r#"externalId eq "00uXYZ""#));
        assert!(
            !holds(r#"externalId eq "00uxyz""#),
            "externalId is case-exact"
        );
        assert!(holds("active eq true"));
        assert!(holds(r#"active eq "True""#));
        assert!(holds(r#"meta.lastModified gt "2026-11-01T00:00:00Z""#));
        // As instants, not as text: half a second past the second, and the same instant
        // written with another offset.
        assert!(holds(r#"meta.lastModified gt "2026-11-28T10:00:00Z""#));
        assert!(holds(
            r#"meta.lastModified eq "2026-11-28T11:00:00.5+01:00""#
        ));
        assert!(!holds(
            r#"meta.lastModified lt "2026-11-28T09:30:00-00:30""#
        ));
        assert!(holds(r#"meta.lastModified lt "2026-11-28T10:00:00.6Z""#));
        // Other attributes compare as text, as the indexed `userName eq` look-up does.
        assert!(
            !Filter::parse(r#"userName eq "2026-11-28T11:00:00+01:00""#)
                .unwrap()
                .matches(&serde_json::json!({"userName": "2026-11-28T10:00:00Z"}))
        );
        assert!(holds(r#"nickName ne "x""#));
        assert!(!holds(r#"displayName ne "babs jensen""#));
    }

    #[test]
    fn logic_precedence_and_grouping() {
        assert!(holds(r#"userName eq "nope" or displayName sw "Babs""#));
        assert!(!holds(r#"userName eq "nope" and displayName sw "Babs""#));
        // and binds tighter than or.
        assert!(holds(
            r#"displayName sw "Babs" or userName eq "x" and active eq false"#
        ));
        assert!(!holds(
            r#"(displayName sw "Babs" or userName eq "x") and active eq false"#
        ));
        assert!(holds(r#"not (userName eq "nope")"#));
    }

    #[test]
    fn malformed_filters_are_errors() {
        for f in [
            "",
            "userName",
            "userName eq",
            r#"userName zz "x""#,
            r#"(userName eq "x""#,
            r#"userName eq "x" and"#,
            r#"userName eq "unterminated"#,
            r#"emails[type eq "work""#,
            "userName eq bare",
        ] {
            assert!(Filter::parse(f).is_err(), "{f:?} should not parse");
        }
        let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
        assert!(Filter::parse(&deep).is_err());
        // Names that are not ASCII, whose fourth byte is inside a character: no panic.
        for name in ["aéé", "aé", "ééé", "urné:x"] {
            assert_eq!(split_urn(name), (None, name));
            let _ = Filter::parse(&format!("{name} pr"));
        }
    }

    #[test]
    fn the_identity_provider_lookup_is_recognised() {
        let f = Filter::parse(r#"userName eq "a@b.c""#).unwrap();
        assert_eq!(f.user_name_eq(), Some("a@b.c"));
        let f = Filter::parse(r#"userName eq "a@b.c" and active eq true"#).unwrap();
        assert_eq!(f.user_name_eq(), None);
    }
}
