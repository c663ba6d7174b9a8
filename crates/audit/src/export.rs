//! CSV (RFC 4180, formula-safe) and NDJSON export of audit records, streamed row by row.

use std::io::Write;

use crate::model::AuditEvent;

/// The CSV header row. A record's id is `<org_id>-<seq>`.
pub const CSV_HEADER: [&str; 18] = [
    "seq",
    "occurred_at",
    "org_id",
    "team_id",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "target_name",
    "outcome",
    "reason",
    "ip",
    "user_agent",
    "request_id",
    "metadata",
    "schema_version",
];

/// Neutralises a cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR)
/// by prefixing a single quote, as OWASP recommends.
#[must_use]
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    if runs_as_formula(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Whether a spreadsheet would run `cell` as a formula.
fn runs_as_formula(cell: &str) -> bool {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => true,
        // A spreadsheet that trims cells on import (or reads full-width signs as their ASCII
        // forms) runs `  =…`, `\n=…` or `＝…` too: look past leading white space and control
        // characters, and at the full-width forms. Plain text is untouched: only a cell whose
        // first visible character is such a sign is.
        Some(_) => cell
            .trim_start_matches(|c: char| c.is_whitespace() || c.is_control())
            .chars()
            .next()
            .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '＝' | '＋' | '－' | '＠')),
        None => false,
    }
}

/// Writes CSV rows to any writer; memory stays bounded by one row.
#[derive(Debug)]
pub struct CsvExporter<W: Write> {
    writer: csv::Writer<W>,
    /// The cells made for a record (its position, time and ids), reused from row to row.
    made: String,
}

impl<W: Write> CsvExporter<W> {
    /// Starts an export and writes the header.
    ///
    /// # Errors
    /// I/O errors of the writer.
    pub fn new(out: W) -> Result<Self, csv::Error> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        writer.write_record(CSV_HEADER)?;
        Ok(Self {
            writer,
            made: String::with_capacity(128),
        })
    }

    /// Writes one record.
    ///
    /// # Errors
    /// I/O errors of the writer.
    pub fn write(&mut self, r: &AuditEvent) -> Result<(), csv::Error> {
        use std::fmt::Write as _;
        let e = &r.event;
        // Writing into a `String` cannot fail.
        self.made.clear();
        let _ = write!(self.made, "{}", r.seq);
        let seq = self.made.len();
        self.made.push_str(
            &e.occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
        let at = self.made.len();
        let _ = write!(self.made, "{}", e.org);
        let org = self.made.len();
        if let Some(t) = e.team {
            let _ = write!(self.made, "{t}");
        }
        let team = self.made.len();
        let _ = write!(self.made, "{}", r.schema_version);
        let made = self.made.as_str();
        let cells = [
            made.get(..seq).unwrap_or_default(),
            made.get(seq..at).unwrap_or_default(),
            made.get(at..org).unwrap_or_default(),
            made.get(org..team).unwrap_or_default(),
            e.actor.kind.as_str(),
            e.actor.id.as_str(),
            e.actor.name.as_str(),
            e.action.as_str(),
            e.target.kind.as_str(),
            e.target.id.as_str(),
            e.target.name.as_str(),
            e.outcome.status(),
            e.outcome.reason(),
            e.context.ip.as_str(),
            e.context.user_agent.as_str(),
            e.context.request_id.as_str(),
            e.metadata.as_json(),
            made.get(team..).unwrap_or_default(),
        ];
        for cell in cells {
            // A cell a spreadsheet would run gets its quote prefix without a copy of its own.
            if runs_as_formula(cell) {
                self.writer.write_field(neutralize(cell).as_bytes())?;
            } else {
                self.writer.write_field(cell)?;
            }
        }
        self.writer.write_record(None::<&[u8]>)
    }

    /// Flushes and returns the writer.
    ///
    /// # Errors
    /// I/O errors of the writer.
    pub fn finish(self) -> Result<W, std::io::Error> {
        self.writer.into_inner().map_err(|e| e.into_error())
    }
}

/// One NDJSON line (with the trailing newline): the record as [`AuditEvent`] serializes, with
/// its public id ([`AuditEvent::id`]) first.
///
/// # Errors
/// A record `serde_json` cannot write (none today: metadata is a JSON object, whose keys are
/// strings); an export stops there rather than write a line that is not the record.
pub fn ndjson_line(r: &AuditEvent) -> Result<String, serde_json::Error> {
    let mut s = record_json(r)?;
    s.push('\n');
    Ok(s)
}

/// The record as one JSON object, its public id first.
fn record_json(r: &AuditEvent) -> Result<String, serde_json::Error> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        id: String,
        #[serde(flatten)]
        record: &'a AuditEvent,
    }
    serde_json::to_string(&Line {
        id: r.id(),
        record: r,
    })
}

/// Writes records as one JSON array, page by page, with memory bounded by a page: the opening
/// bracket comes with the first page, a comma before every record but the first, one record
/// (as its [`ndjson_line`] has it) per line; [`JsonArrayExporter::finish`] gives the closing
/// bracket, which a caller sends only when every record is in the array, so that an export
/// cut short is not valid JSON and cannot pass for a whole one. An empty export is `[]`.
#[derive(Debug, Default)]
pub struct JsonArrayExporter {
    opened: bool,
    any: bool,
}

impl JsonArrayExporter {
    /// A new array, nothing written yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The text of a page of records (the first page's with the opening bracket).
    ///
    /// # Errors
    /// As [`ndjson_line`]: nothing of the page is given then.
    pub fn page(&mut self, records: &[AuditEvent]) -> Result<String, serde_json::Error> {
        let mut out = String::new();
        if !self.opened {
            out.push('[');
        }
        let mut any = self.any;
        for r in records {
            if any {
                out.push(',');
            }
            out.push('\n');
            out.push_str(&record_json(r)?);
            any = true;
        }
        self.opened = true;
        self.any = any;
        Ok(out)
    }

    /// The end of the array: its closing bracket (with the opening one if no page came).
    #[must_use]
    pub fn finish(self) -> &'static str {
        match (self.opened, self.any) {
            (false, _) => "[]\n",
            (true, false) => "]\n",
            (true, true) => "\n]\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rbac_core::OrgId;

    use super::*;
    use crate::action::AuditAction;
    use crate::chain::{GENESIS, seal};
    use crate::model::{Actor, NewAuditEvent, Target};

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            " =HYPERLINK(\"x\")",
            "\n+1",
            "\u{a0}@x",
            "＝1+1",
        ] {
            assert!(neutralize(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralize("Customer Support"), "Customer Support");
        assert_eq!(neutralize(""), "");
    }

    #[test]
    fn writes_rfc4180_with_quotes_and_crlf() {
        let e = NewAuditEvent::new(
            OrgId::new(),
            Utc::now(),
            Actor::user("usr_1", "=cmd|' /C calc'!A0"),
            AuditAction::ChatInterfaceCreated,
            Target::new("chat_interface", "res_1", "Support, \"EU\""),
        );
        let team = rbac_core::TeamId::new();
        let in_team = e
            .clone()
            .in_team(team)
            .with_outcome(crate::model::Outcome::Denied {
                reason: "-reason".into(),
            });
        let mut x = CsvExporter::new(Vec::new()).unwrap();
        x.write(&seal(e.clone(), 1, GENESIS)).unwrap();
        x.write(&seal(in_team, 12_345, GENESIS)).unwrap();
        let out = String::from_utf8(x.finish().unwrap()).unwrap();
        assert!(out.starts_with("seq,occurred_at,"));
        assert!(out.contains("\r\n"));
        assert!(out.contains("\"Support, \"\"EU\"\"\""));
        assert!(out.contains("'=cmd"));
        let mut rd = csv::Reader::from_reader(out.as_bytes());
        let rows: Vec<_> = rd.records().map(Result::unwrap).collect();
        assert_eq!(&rows[0][10], "Support, \"EU\"");
        let at = e
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let org = e.org.to_string();
        assert_eq!(
            rows[0].iter().take(8).collect::<Vec<_>>(),
            [
                "1",
                &at,
                &org,
                "",
                "user",
                "usr_1",
                "'=cmd|' /C calc'!A0",
                "chat_interface.created"
            ]
        );
        assert_eq!(
            rows[1].iter().take(4).collect::<Vec<_>>(),
            ["12345", &at, &org, &team.to_string()]
        );
        assert_eq!(&rows[1][11], "denied");
        assert_eq!(&rows[1][12], "'-reason");
        assert_eq!(&rows[1][16], "{}");
        assert_eq!(&rows[1][17], crate::SCHEMA_VERSION.to_string());
        assert_eq!(rows[1].len(), CSV_HEADER.len());
    }

    #[test]
    fn an_ndjson_line_is_one_object_with_the_record_id() {
        let e = NewAuditEvent::new(
            OrgId::new(),
            Utc::now(),
            Actor::user("usr_1", "Sarah"),
            AuditAction::ChatInterfaceCreated,
            Target::new("chat_interface", "res_1", "Support\nEU"),
        );
        let r = seal(e, 7, GENESIS);
        let line = ndjson_line(&r).unwrap();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], format!("{}-7", r.event.org));
        assert_eq!(v["seq"], 7);
        assert_eq!(v["action"], "chat_interface.created");
        assert_eq!(v["schema_version"], crate::SCHEMA_VERSION);
        assert_eq!(v["hash"], hex::encode(r.hash));
    }

    #[test]
    fn a_json_array_holds_every_page_s_records_once_and_closes_at_the_end() {
        let org = OrgId::new();
        let mut prev = GENESIS;
        let records: Vec<_> = (1..=5)
            .map(|seq| {
                let e = NewAuditEvent::new(
                    org,
                    Utc::now(),
                    Actor::user("usr_1", "Sarah"),
                    AuditAction::ChatInterfaceCreated,
                    Target::new("chat_interface", format!("res_{seq}"), "Support"),
                );
                let r = seal(e, seq, prev);
                prev = r.hash;
                r
            })
            .collect();
        // Pages of 2, 0 (an empty page) and 3 records.
        let mut a = JsonArrayExporter::new();
        let mut text = a.page(&records[..2]).unwrap();
        text.push_str(&a.page(&[]).unwrap());
        text.push_str(&a.page(&records[2..]).unwrap());
        let cut_short = text.clone();
        text.push_str(a.finish());
        let v: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let seqs: Vec<_> = v.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        for (r, line) in records.iter().zip(&v) {
            let ndjson: serde_json::Value = serde_json::from_str(&ndjson_line(r).unwrap()).unwrap();
            assert_eq!(*line, ndjson);
        }
        assert!(serde_json::from_str::<serde_json::Value>(&cut_short).is_err());
        // Nothing at all, or only empty pages: an empty array.
        assert_eq!(JsonArrayExporter::new().finish(), "[]\n");
        let mut empty = JsonArrayExporter::new();
        let t = format!("{}{}", empty.page(&[]).unwrap(), empty.finish());
        assert_eq!(
            serde_json::from_str::<Vec<serde_json::Value>>(&t).unwrap(),
            Vec::<serde_json::Value>::new()
        );
    }
}
