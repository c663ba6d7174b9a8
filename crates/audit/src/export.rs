//! CSV (RFC 4180, formula-safe) and NDJSON export of audit records, streamed row by row.

use std::io::Write;

use crate::model::AuditEvent;

/// The CSV header row.
pub const CSV_HEADER: [&str; 17] = [
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
];

/// Neutralises a cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR)
/// by prefixing a single quote, as OWASP recommends.
#[must_use]
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Writes CSV rows to any writer; memory stays bounded by one row.
#[derive(Debug)]
pub struct CsvExporter<W: Write> {
    writer: csv::Writer<W>,
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
        Ok(Self { writer })
    }

    /// Writes one record.
    ///
    /// # Errors
    /// I/O errors of the writer.
    pub fn write(&mut self, r: &AuditEvent) -> Result<(), csv::Error> {
        let e = &r.event;
        let seq = r.seq.to_string();
        let at = e
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let org = e.org.to_string();
        let team = e.team.map(|t| t.to_string()).unwrap_or_default();
        let meta = e.metadata.as_json();
        let cells = [
            seq.as_str(),
            at.as_str(),
            org.as_str(),
            team.as_str(),
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
            meta,
        ];
        self.writer
            .write_record(cells.iter().map(|c| neutralize(c).into_owned()))
    }

    /// Flushes and returns the writer.
    ///
    /// # Errors
    /// I/O errors of the writer.
    pub fn finish(self) -> Result<W, std::io::Error> {
        self.writer.into_inner().map_err(|e| e.into_error())
    }
}

/// One NDJSON line (with the trailing newline).
#[must_use]
pub fn ndjson_line(r: &AuditEvent) -> String {
    let mut s = serde_json::to_string(r).unwrap_or_default();
    s.push('\n');
    s
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
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
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
        let mut x = CsvExporter::new(Vec::new()).unwrap();
        x.write(&seal(e, 1, GENESIS)).unwrap();
        let out = String::from_utf8(x.finish().unwrap()).unwrap();
        assert!(out.starts_with("seq,occurred_at,"));
        assert!(out.contains("\r\n"));
        assert!(out.contains("\"Support, \"\"EU\"\"\""));
        assert!(out.contains("'=cmd"));
        let mut rd = csv::Reader::from_reader(out.as_bytes());
        let row = rd.records().next().unwrap().unwrap();
        assert_eq!(&row[10], "Support, \"EU\"");
    }
}
