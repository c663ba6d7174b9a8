//! Country rules: blocking requests from some countries, with the addresses placed by a GeoIP2 or
//! GeoLite2 Country (or City) database in MaxMind's format.
//!
//! An organization lists the countries it blocks ([`parse_countries`]); the server places each
//! request's address ([`GeoIp::locate`]) and [`check_country`] decides. An address the database
//! places in no country (private and loopback networks, unallocated space) is not in a blocked
//! country, so it passes. With no database at all nothing can be placed, and a non-empty list
//! refuses everything ([`CountryDecision::Unverifiable`]): a rule the server cannot apply fails
//! closed instead of silently admitting the countries it was meant to keep out.
//!
//! ```
//! use security_policy::{check_country, parse_countries, CountryDecision, Located};
//! let blocked = parse_countries(&["fr".to_string(), "DE".to_string()]).unwrap();
//! let fr = blocked[0];
//! assert_eq!(fr.alpha2(), "FR");
//! assert_eq!(check_country(&blocked, Located::Country(fr)), CountryDecision::Blocked(fr));
//! assert!(check_country(&blocked, Located::Nowhere).is_allowed());
//! assert_eq!(check_country(&blocked, Located::NoDatabase), CountryDecision::Unverifiable);
//! assert!(check_country(&[], Located::NoDatabase).is_allowed());
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::SecurityError;
use crate::ip::normalize;

/// A country, by its ISO 3166-1 alpha-2 code (`FR`, `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country(isocountry::CountryCode);

impl Country {
    /// Parses an ISO 3166-1 alpha-2 code, in either case (`fr`, `FR`).
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] naming the input when it is no such code.
    pub fn parse(s: &str) -> Result<Self, SecurityError> {
        let s = s.trim();
        isocountry::CountryCode::for_alpha2_caseless(s)
            .map(Self)
            .map_err(|_| {
                SecurityError::Invalid(format!(
                    "`{s}` is not an ISO 3166-1 alpha-2 country code (for example `FR` or `US`)"
                ))
            })
    }

    /// The two-letter code, upper case.
    #[must_use]
    pub fn alpha2(self) -> &'static str {
        self.0.alpha2()
    }

    /// The country's English name.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl std::fmt::Display for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.alpha2())
    }
}

impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.alpha2())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a list of blocked countries, rejecting unknown codes and duplicates.
///
/// # Errors
/// [`SecurityError::Invalid`] naming the first bad entry.
pub fn parse_countries(codes: &[String]) -> Result<Vec<Country>, SecurityError> {
    let mut out: Vec<Country> = Vec::with_capacity(codes.len());
    for code in codes {
        let c = Country::parse(code)?;
        if out.contains(&c) {
            return Err(SecurityError::Invalid(format!("`{c}` is listed twice")));
        }
        out.push(c);
    }
    Ok(out)
}

/// Where the server places an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// In this country.
    Country(Country),
    /// The database places it in no country (a private network, loopback, unallocated space).
    Nowhere,
    /// The server has no GeoIP database, so it cannot tell.
    NoDatabase,
}

impl Located {
    /// Places `ip` with `db`, if the server has one.
    #[must_use]
    pub fn with(db: Option<&GeoIp>, ip: IpAddr) -> Self {
        match db {
            None => Self::NoDatabase,
            Some(db) => db.locate(ip).map_or(Self::Nowhere, Self::Country),
        }
    }

    /// The country, when there is one.
    #[must_use]
    pub const fn country(self) -> Option<Country> {
        match self {
            Self::Country(c) => Some(c),
            Self::Nowhere | Self::NoDatabase => None,
        }
    }
}

/// The result of a country check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountryDecision {
    /// No country is blocked.
    AllowedNoList,
    /// Not in a blocked country (or placed in none).
    Allowed,
    /// In this blocked country.
    Blocked(Country),
    /// Countries are blocked but the server has no database to place the address with.
    Unverifiable,
}

impl CountryDecision {
    /// Whether the request may proceed.
    #[must_use]
    pub const fn is_allowed(self) -> bool {
        matches!(self, Self::AllowedNoList | Self::Allowed)
    }
}

/// Checks where a request comes from against the blocked countries; an empty list allows
/// everyone, with or without a database.
#[must_use]
pub fn check_country(blocked: &[Country], at: Located) -> CountryDecision {
    if blocked.is_empty() {
        return CountryDecision::AllowedNoList;
    }
    match at {
        Located::Country(c) if blocked.contains(&c) => CountryDecision::Blocked(c),
        Located::Country(_) | Located::Nowhere => CountryDecision::Allowed,
        Located::NoDatabase => CountryDecision::Unverifiable,
    }
}

/// A GeoIP2 or GeoLite2 Country or City database (MaxMind's `.mmdb` format), held in memory.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.reader.metadata().database_type)
            .field("build_epoch", &self.reader.metadata().build_epoch)
            .finish_non_exhaustive()
    }
}

/// The part of a Country or City record that places an address.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Iso<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Iso<'a>>,
}

#[derive(Deserialize)]
struct Iso<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

impl GeoIp {
    /// Reads a database from its bytes (the contents of a `.mmdb` file).
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] when the bytes are not a MaxMind database.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecurityError> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| {
            SecurityError::Invalid(format!("not a GeoIP database in MaxMind's format: {e}"))
        })?;
        Ok(Self { reader })
    }

    /// The database's type as it names itself (`GeoLite2-Country`).
    #[must_use]
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The country `ip` is in: where the database locates it, else the country its network is
    /// registered in; `None` when it has neither (or the record cannot be read).
    #[must_use]
    pub fn locate(&self, ip: IpAddr) -> Option<Country> {
        let found = self.reader.lookup(normalize(ip)).ok()?;
        let record: Record<'_> = found.decode().ok()??;
        [record.country, record.registered_country]
            .into_iter()
            .flatten()
            .find_map(|c| c.iso_code.and_then(|code| Country::parse(code).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database placing 203.0.113.0/24 and 2001:db8:f::/48 in France, 198.51.100.0/24 in the
    /// United States only by registration, and 192.0.2.0/24 in a record with no country.
    fn database() -> GeoIp {
        use mmdb_writer::ipnet::IpNet;
        use serde_json::json;
        let mut w = mmdb_writer::Writer::new("GeoLite2-Country");
        let fr = json!({ "country": { "iso_code": "FR", "names": { "en": "France" } } });
        w.insert("203.0.113.0/24".parse::<IpNet>().unwrap(), &fr)
            .unwrap();
        w.insert("2001:db8:f::/48".parse::<IpNet>().unwrap(), &fr)
            .unwrap();
        w.insert(
            "198.51.100.0/24".parse::<IpNet>().unwrap(),
            &json!({ "registered_country": { "iso_code": "US" } }),
        )
        .unwrap();
        w.insert(
            "192.0.2.0/24".parse::<IpNet>().unwrap(),
            &json!({ "continent": { "code": "EU" } }),
        )
        .unwrap();
        GeoIp::from_bytes(w.to_bytes().unwrap()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn country(s: &str) -> Country {
        Country::parse(s).unwrap()
    }

    #[test]
    fn codes_are_iso_alpha2_in_either_case_once_each() {
        assert_eq!(country(" fr ").alpha2(), "FR");
        assert_eq!(country("US").name(), "United States of America");
        for bad in ["XX", "FRA", "", "F"] {
            let e = Country::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        let e = parse_countries(&["fr".into(), "FR".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`FR` is listed twice"), "{e}");
        let json = serde_json::to_string(&parse_countries(&["de".into()]).unwrap()).unwrap();
        assert_eq!(json, r#"["DE"]"#);
        assert_eq!(
            serde_json::from_str::<Vec<Country>>(&json).unwrap(),
            vec![country("DE")]
        );
        assert!(serde_json::from_str::<Country>(r#""ZZ""#).is_err());
    }

    #[test]
    fn addresses_are_placed_by_the_database() {
        let db = database();
        assert_eq!(db.database_type(), "GeoLite2-Country");
        assert_eq!(db.locate(ip("203.0.113.9")), Some(country("FR")));
        assert_eq!(db.locate(ip("::ffff:203.0.113.9")), Some(country("FR")));
        assert_eq!(db.locate(ip("2001:db8:f::1")), Some(country("FR")));
        // Located by where the network is registered when nothing better is known.
        assert_eq!(db.locate(ip("198.51.100.7")), Some(country("US")));
        // A record without a country, and an address with no record.
        assert_eq!(db.locate(ip("192.0.2.1")), None);
        assert_eq!(db.locate(ip("10.0.0.1")), None);
        assert_eq!(db.locate(ip("2001:db8:e::1")), None);
        assert!(GeoIp::from_bytes(b"not a database".to_vec()).is_err());
    }

    #[test]
    fn blocked_countries_refuse_their_addresses_and_fail_closed_without_a_database() {
        let db = database();
        let blocked = parse_countries(&["FR".into(), "RU".into()]).unwrap();
        let at = |s: &str| Located::with(Some(&db), ip(s));
        assert_eq!(
            check_country(&blocked, at("203.0.113.9")),
            CountryDecision::Blocked(country("FR"))
        );
        assert_eq!(
            check_country(&blocked, at("198.51.100.7")),
            CountryDecision::Allowed
        );
        assert_eq!(
            check_country(&blocked, at("127.0.0.1")),
            CountryDecision::Allowed,
            "placed nowhere is not in a blocked country"
        );
        assert_eq!(
            check_country(&blocked, Located::with(None, ip("203.0.113.9"))),
            CountryDecision::Unverifiable
        );
        assert!(!CountryDecision::Unverifiable.is_allowed());
        assert_eq!(
            check_country(&[], at("203.0.113.9")),
            CountryDecision::AllowedNoList
        );
        assert_eq!(
            check_country(&[], Located::NoDatabase),
            CountryDecision::AllowedNoList
        );
    }
}
