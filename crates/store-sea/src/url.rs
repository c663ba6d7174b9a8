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

    /// The URL with the password replaced by `***`.
    #[must_use]
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let Some((userinfo, host)) = rest.split_once('@') else {
            return self.0.clone();
        };
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => self.0.clone(),
        }
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
        assert!(
            DatabaseUrl::parse("sqlite://data/axie.db?mode=rwc")
                .unwrap()
                .is_sqlite()
        );
    }
}
