//! Country rules: blocking requests from some countries, with the addresses placed by a GeoIP2 or
//! GeoLite2 Country (or City) database in MaxMind's format.
//!
//! An organization lists the countries it blocks ([`parse_countries`]); the server places each
//! request's address ([`Located::with`]) and [`check_country`] decides. An address the database
//! places in no country (private and loopback networks, unallocated space) is not in a blocked
//! country, so it passes. When the server cannot place an address (it has no database, the
//! lookup fails, or the address is the unspecified one a server takes for a client address it
//! could not read), a non-empty list refuses it ([`CountryDecision::Unverifiable`]): a rule the
//! server cannot apply fails closed instead of silently admitting the countries it was meant to
//! keep out.
//!
//! ```
//! use security_policy::{check_country, parse_countries, CountryDecision, Located};
//! let blocked = parse_countries(&["fr".to_string(), "DE".to_string()]).unwrap();
//! let fr = blocked[0];
//! assert_eq!(fr.alpha2(), "FR");
//! assert_eq!(check_country(&blocked, Located::Country(fr)), CountryDecision::Blocked(fr));
//! assert!(check_country(&blocked, Located::Nowhere).is_allowed());
//! assert_eq!(check_country(&blocked, Located::Unknown), CountryDecision::Unverifiable);
//! assert!(check_country(&[], Located::Unknown).is_allowed());
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::SecurityError;
use crate::ip::normalize;

/// A country, by its ISO 3166-1 alpha-2 code (`FR`, `US`; also `XK`, Kosovo, which GeoIP
/// databases use although ISO 3166-1 has not assigned it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country([u8; 2]);

/// Kosovo's user-assigned code, used by MaxMind's databases.
const KOSOVO: &str = "XK";

impl Country {
    /// Parses an ISO 3166-1 alpha-2 code (or `XK`), in either case (`fr`, `FR`).
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] naming the input when it is no such code.
    pub fn parse(s: &str) -> Result<Self, SecurityError> {
        let s = s.trim();
        let known = s.eq_ignore_ascii_case(KOSOVO)
            || isocountry::CountryCode::for_alpha2_caseless(s).is_ok();
        match (known, Self::letters(s)) {
            (true, Some(c)) => Ok(c),
            _ => Err(SecurityError::Invalid(format!(
                "`{s}` is not an ISO 3166-1 alpha-2 country code (for example `FR` or `US`)"
            ))),
        }
    }

    /// Two ASCII letters, upper-cased; `None` for anything else.
    fn letters(s: &str) -> Option<Self> {
        match s.as_bytes() {
            &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The two-letter code, upper case.
    #[must_use]
    pub fn alpha2(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The country's English name (the code itself for one this build does not know).
    #[must_use]
    pub fn name(&self) -> &str {
        if self.alpha2() == KOSOVO {
            return "Kosovo";
        }
        isocountry::CountryCode::for_alpha2(self.alpha2())
            .map_or_else(|_| self.alpha2(), |c| c.name())
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

/// Reads any two letters: stored lists were checked when they were saved, and a code that a
/// later list of countries no longer knows must not make the organization unreadable (it still
/// blocks the addresses a database places there).
impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::letters(s.trim()).ok_or_else(|| {
            serde::de::Error::custom(format!("`{s}` is not a two-letter country code"))
        })
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
    /// The server cannot tell: it has no GeoIP database, or its database could not look the
    /// address up.
    Unknown,
}

impl Located {
    /// Places `ip` with `db`, if the server has one. The unspecified address (`0.0.0.0`, `::`),
    /// which is what a server makes of a client address it could not read, is
    /// [`Located::Unknown`]: refused where countries are blocked, not let through as placed
    /// nowhere.
    #[must_use]
    pub fn with(db: Option<&GeoIp>, ip: IpAddr) -> Self {
        if ip.is_unspecified() {
            return Self::Unknown;
        }
        match db.map(|db| db.locate(ip)) {
            None | Some(Err(_)) => Self::Unknown,
            Some(Ok(None)) => Self::Nowhere,
            Some(Ok(Some(c))) => Self::Country(c),
        }
    }

    /// The country, when there is one.
    #[must_use]
    pub const fn country(self) -> Option<Country> {
        match self {
            Self::Country(c) => Some(c),
            Self::Nowhere | Self::Unknown => None,
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
    /// Countries are blocked but the server cannot place the address ([`Located::Unknown`]).
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
        Located::Unknown => CountryDecision::Unverifiable,
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
    /// Reads a database from its bytes (the contents of a `.mmdb` file): a Country, City or
    /// Enterprise database that holds IPv6 as well as IPv4 networks, as MaxMind's are.
    ///
    /// # Errors
    /// [`SecurityError::Invalid`] when the bytes are not such a database: an IPv4-only one
    /// could not place IPv6 clients, and another kind (ASN, anonymous IP) places no address in
    /// a country, so either would leave blocked countries unenforced without a word.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecurityError> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| {
            SecurityError::Invalid(format!("not a GeoIP database in MaxMind's format: {e}"))
        })?;
        let meta = reader.metadata();
        let kind = &meta.database_type;
        if !["Country", "City", "Enterprise"]
            .iter()
            .any(|k| kind.contains(k))
        {
            return Err(SecurityError::Invalid(format!(
                "a `{kind}` database does not place addresses in countries; use a GeoIP2 or GeoLite2 Country or City database"
            )));
        }
        if meta.ip_version != 6 {
            return Err(SecurityError::Invalid(format!(
                "the `{kind}` database holds IPv4 networks only and could not place IPv6 clients"
            )));
        }
        Ok(Self { reader })
    }

    /// The database's type as it names itself (`GeoLite2-Country`).
    #[must_use]
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The country `ip` is in: where the database locates it, else the country its network is
    /// registered in; `None` when it has neither.
    ///
    /// # Errors
    /// [`SecurityError::Corrupt`] when the database cannot look the address up or read its
    /// record.
    pub fn locate(&self, ip: IpAddr) -> Result<Option<Country>, SecurityError> {
        let found = self
            .reader
            .lookup(normalize(ip))
            .map_err(|_| SecurityError::Corrupt)?;
        let Some(record) = found
            .decode::<Record<'_>>()
            .map_err(|_| SecurityError::Corrupt)?
        else {
            return Ok(None);
        };
        Ok([record.country, record.registered_country]
            .into_iter()
            .flatten()
            .find_map(|c| c.iso_code.and_then(Country::letters)))
    }
}

#[cfg(test)]
mod tests {
    use mmdb_writer::ipnet::IpNet;
    use serde_json::json;

    use super::*;

    /// A database placing 203.0.113.0/24 and 2001:db8:f::/48 in France, 198.51.100.0/24 in the
    /// United States only by registration, 192.0.2.0/24 in a record with no country, and
    /// 100.64.0.0/24 in Kosovo.
    fn database() -> GeoIp {
        let mut w = mmdb_writer::Writer::new("GeoLite2-Country");
        let fr = json!({ "country": { "iso_code": "FR", "names": { "en": "France" } } });
        for (net, record) in [
            ("203.0.113.0/24", fr.clone()),
            ("2001:db8:f::/48", fr),
            (
                "198.51.100.0/24",
                json!({ "registered_country": { "iso_code": "US" } }),
            ),
            ("192.0.2.0/24", json!({ "continent": { "code": "EU" } })),
            ("100.64.0.0/24", json!({ "country": { "iso_code": "XK" } })),
        ] {
            w.insert(net.parse::<IpNet>().unwrap(), &record).unwrap();
        }
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
        assert_eq!(country("xk").name(), "Kosovo");
        for bad in ["XX", "FRA", "", "F", "F1", "ÉÉ"] {
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
        // A stored code this build does not know still reads (and names itself).
        let unknown: Country = serde_json::from_str(r#""ZZ""#).unwrap();
        assert_eq!((unknown.alpha2(), unknown.name()), ("ZZ", "ZZ"));
        assert!(serde_json::from_str::<Country>(r#""ZZZ""#).is_err());
    }

    #[test]
    fn addresses_are_placed_by_the_database() {
        let db = database();
        assert_eq!(db.database_type(), "GeoLite2-Country");
        let at = |s: &str| db.locate(ip(s)).unwrap();
        assert_eq!(at("203.0.113.9"), Some(country("FR")));
        // The same address as IPv4-mapped, 6to4 (2002:cb00:7109::) and native IPv6.
        assert_eq!(at("::ffff:203.0.113.9"), Some(country("FR")));
        assert_eq!(at("2002:cb00:7109::1"), Some(country("FR")));
        assert_eq!(at("2001:db8:f::1"), Some(country("FR")));
        assert_eq!(at("100.64.0.1"), Some(country("XK")));
        // Located by where the network is registered when nothing better is known.
        assert_eq!(at("198.51.100.7"), Some(country("US")));
        // A record without a country, and addresses with no record.
        assert_eq!(at("192.0.2.1"), None);
        assert_eq!(at("10.0.0.1"), None);
        assert_eq!(at("2001:db8:e::1"), None);
    }

    #[test]
    fn only_country_databases_for_both_address_families_are_taken() {
        assert!(GeoIp::from_bytes(b"not a database".to_vec()).is_err());
        let asn = mmdb_writer::Writer::new("GeoLite2-ASN");
        let e = GeoIp::from_bytes(asn.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("`GeoLite2-ASN`"), "{e}");
        let mut v4 = mmdb_writer::Writer::builder("GeoLite2-Country")
            .ip_version(mmdb_writer::IpVersion::V4)
            .build();
        v4.insert(
            "203.0.113.0/24".parse::<IpNet>().unwrap(),
            &json!({ "country": { "iso_code": "FR" } }),
        )
        .unwrap();
        let e = GeoIp::from_bytes(v4.to_bytes().unwrap()).unwrap_err();
        assert!(e.to_string().contains("IPv4 networks only"), "{e}");
    }

    #[test]
    fn blocked_countries_refuse_their_addresses_and_fail_closed_when_unplaced() {
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
        assert_eq!(Located::with(None, ip("203.0.113.9")), Located::Unknown);
        // An address the server could not read is not "nowhere".
        for unread in ["0.0.0.0", "::"] {
            assert_eq!(at(unread), Located::Unknown, "{unread}");
            assert_eq!(
                check_country(&blocked, at(unread)),
                CountryDecision::Unverifiable
            );
        }
        assert_eq!(
            check_country(&blocked, Located::Unknown),
            CountryDecision::Unverifiable
        );
        assert!(!CountryDecision::Unverifiable.is_allowed());
        assert_eq!(
            check_country(&[], at("203.0.113.9")),
            CountryDecision::AllowedNoList
        );
        assert_eq!(
            check_country(&[], Located::Unknown),
            CountryDecision::AllowedNoList
        );
    }
}
