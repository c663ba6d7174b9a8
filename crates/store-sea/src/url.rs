//! A database URL whose `Debug` and `Display` never show the password.

/// A database URL (`sqlite://…` or `postgres://…`).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts `sqlite:` and `postgres:`/`postgresql:` URLs.
    ///
    /// # Errors
    /// A message naming the scheme when it is not supported.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("sqlite:")
            || s.starts_with("postgres://")
            || s.starts_with("postgresql://")
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "unsupported database URL `{}`: use sqlite:// or postgres://",
                Self(s.to_owned())
            ))
        }
    }

    /// A SQLite file URL that creates the file if missing.
    #[must_use]
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self(format!("sqlite://{}?mode=rwc", path.display()))
    }

    /// Whether this is SQLite.
    #[must_use]
    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }

    /// The full URL, password included; only for the driver.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`: the one in the user part (after the last
    /// `@` before the host, as the driver reads it, so a password holding `@` is hidden whole)
    /// and a `password` or `sslpassword` query parameter, which PostgreSQL's driver also takes.
    /// A URL that cannot be read at all is not shown.
    #[must_use]
    pub fn redacted(&self) -> String {
        let Ok(mut u) = url::Url::parse(&self.0) else {
            return "<an unreadable database URL>".to_owned();
        };
        if u.password().is_some() {
            // Fails only for URLs that cannot have one, which then have none to hide.
            let _ = u.set_password(Some("***"));
        }
        let secret =
            |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
        if u.query_pairs().any(|(k, _)| secret(&k)) {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret(&k) {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        u.to_string()
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords() {
        let u = DatabaseUrl::parse("postgres://axie:s3cret@db:5432/axie").unwrap();
        assert_eq!(u.to_string(), "postgres://axie:***@db:5432/axie");
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(u.expose(), "postgres://axie:s3cret@db:5432/axie");
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        // A password holding `@` is hidden whole; one in the query too.
        let at = DatabaseUrl::parse("postgres://axie:p@ss@db/axie").unwrap();
        assert!(!at.to_string().contains("ss@"), "{at}");
        assert!(at.to_string().ends_with("@db/axie"), "{at}");
        for q in [
            "postgres://axie@db/axie?password=hunter2",
            "postgres://db/axie?sslmode=require&PASSWORD=hunter2&sslpassword=hunter2",
        ] {
            let u = DatabaseUrl::parse(q).unwrap();
            assert!(!u.to_string().contains("hunter2"), "{u}");
            assert!(!format!("{u:?}").contains("hunter2"));
            assert_eq!(u.expose(), q);
        }
        assert!(
            DatabaseUrl::parse("postgres://db/axie?sslmode=require&password=x")
                .unwrap()
                .to_string()
                .contains("sslmode=require")
        );
        assert!(
            DatabaseUrl::parse("sqlite://data/axie.db?mode=rwc")
                .unwrap()
                .is_sqlite()
        );
    }
}
