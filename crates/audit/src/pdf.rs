//! The audit log as a PDF report: title, organization, the filters used, the period, a table
//! of events and page numbers. Text uses the PDF standard fonts (nothing embedded); characters
//! outside their Latin-1 range print as `?`. A report holds at most [`PDF_MAX_ROWS`] events and
//! says so when the filter matched more (CSV and NDJSON have no cap).

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::model::{AuditEvent, Outcome};

/// The most events one PDF holds.
pub const PDF_MAX_ROWS: usize = 5_000;

/// The newest events matching `query` for a report: at most [`PDF_MAX_ROWS`], read page by
/// page from the store, and whether more matched.
///
/// # Errors
/// Storage errors and invalid queries.
pub async fn newest_events(
    store: &dyn crate::AuditStore,
    org: rbac_core::OrgId,
    mut query: crate::AuditQuery,
) -> Result<(Vec<AuditEvent>, bool), crate::AuditError> {
    query.limit = crate::MAX_PAGE;
    let mut events = Vec::new();
    loop {
        let page = store.search(org, &query).await?;
        let full = page.len() == query.limit as usize;
        query.before_seq = page.last().map(|r| r.seq);
        events.extend(page);
        if events.len() > PDF_MAX_ROWS {
            events.truncate(PDF_MAX_ROWS);
            return Ok((events, true));
        }
        if !full {
            return Ok((events, false));
        }
    }
}

/// What the report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportHeader {
    /// The organization's name.
    pub organization: String,
    /// The organization's id.
    pub organization_id: String,
    /// The filters used, as (name, value).
    pub filters: Vec<(String, String)>,
    /// The period covered, for example `2026-11-01 00:00 to 2026-11-28 12:00 UTC`.
    pub period: String,
    /// When the report was made, already formatted.
    pub generated_at: String,
}

const PAGE_W: f32 = 842.0; // A4 landscape, points
const PAGE_H: f32 = 595.0;
const MARGIN: f32 = 36.0;
const SIZE: f32 = 7.5; // Courier: every glyph is 0.6 em wide
const LEADING: f32 = 10.0;
const CHAR_W: f32 = SIZE * 0.6;

/// Column titles and widths in characters.
const COLUMNS: [(&str, usize); 6] = [
    ("Time (UTC)", 19),
    ("Actor", 24),
    ("Action", 28),
    ("Target", 44),
    ("Outcome", 18),
    ("IP", 15),
];

/// Latin-1 bytes for the standard fonts' WinAnsi encoding; anything else becomes `?`.
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match u32::from(c) {
            0x20..=0x7e | 0xa0..=0xff => u8::try_from(u32::from(c)).unwrap_or(b'?'),
            _ => b'?',
        })
        .collect()
}

/// Cuts `s` to `width` characters, marking a cut with `~`.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        format!("{s:<width$}")
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('~');
        out
    }
}

fn cells(r: &AuditEvent) -> [String; 6] {
    let e = &r.event;
    let actor = if e.actor.name.is_empty() {
        e.actor.id.clone()
    } else {
        e.actor.name.clone()
    };
    let target = match (e.target.kind.is_empty(), e.target.name.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("{} {}", e.target.kind, e.target.id),
        (false, false) => format!("{} \"{}\"", e.target.kind, e.target.name),
    };
    let outcome = match &e.outcome {
        Outcome::Success => "success".to_owned(),
        Outcome::Denied { reason, .. } => format!("denied: {reason}"),
        Outcome::Failure { reason } => format!("failed: {reason}"),
    };
    [
        e.occurred_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        actor,
        e.action.as_str().to_owned(),
        target,
        outcome,
        e.context.ip.clone(),
    ]
}

fn row(values: &[String; 6]) -> String {
    COLUMNS
        .iter()
        .zip(values)
        .map(|((_, w), v)| fit(v, *w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders the report. `more` says the filter matched more than the events given.
#[must_use]
pub fn render_pdf(header: &ReportHeader, events: &[AuditEvent], more: bool) -> Vec<u8> {
    let events = &events[..events.len().min(PDF_MAX_ROWS)];
    // The first page carries the heading block; the others only the column titles.
    let usable = PAGE_H - 2.0 * MARGIN - 2.0 * LEADING;
    let heading_lines = 5 + header.filters.len().max(1);
    let per_page = ((usable / LEADING) as usize).saturating_sub(2);
    let first_page = per_page.saturating_sub(heading_lines + 1).max(1);
    let pages = if events.len() <= first_page {
        1
    } else {
        1 + (events.len() - first_page).div_ceil(per_page)
    };

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_id = 6;
    let page_ids: Vec<Ref> = (0..pages)
        .map(|i| Ref::new(first_id + 2 * i32::try_from(i).unwrap_or(i32::MAX / 4)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(pages).unwrap_or(i32::MAX));
    pdf.type1_font(font)
        .base_font(Name(b"Courier"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(TextStr(&format!("Audit log: {}", header.organization)))
        .producer(TextStr("Axie Enterprise"));

    let titles: [String; 6] = COLUMNS.map(|(t, _)| t.to_owned());
    let mut rest = events.iter();
    for (i, page_id) in page_ids.iter().enumerate() {
        let content_id = Ref::new(page_id.get() + 1);
        let mut c = Content::new();
        let mut y = PAGE_H - MARGIN;
        let line = |c: &mut Content, y: &mut f32, font_name: &[u8], size: f32, text: &str| {
            c.begin_text();
            c.set_font(Name(font_name), size);
            c.next_line(MARGIN, *y);
            c.show(Str(&latin1(text)));
            c.end_text();
            *y -= LEADING;
        };
        let capacity = if i == 0 {
            line(&mut c, &mut y, b"F2", 14.0, "Audit log report");
            y -= 4.0;
            line(
                &mut c,
                &mut y,
                b"F1",
                SIZE,
                &format!(
                    "Organization: {} ({})",
                    header.organization, header.organization_id
                ),
            );
            line(
                &mut c,
                &mut y,
                b"F1",
                SIZE,
                &format!("Period: {}", header.period),
            );
            if header.filters.is_empty() {
                line(&mut c, &mut y, b"F1", SIZE, "Filters: none");
            } else {
                line(&mut c, &mut y, b"F1", SIZE, "Filters:");
                for (k, v) in &header.filters {
                    line(&mut c, &mut y, b"F1", SIZE, &format!("  {k} = {v}"));
                }
            }
            let shown = if more {
                format!(
                    "Events: the newest {} of more matching events (a PDF holds at most {PDF_MAX_ROWS}; export CSV or JSON for all of them)",
                    events.len()
                )
            } else {
                format!("Events: {}, newest first", events.len())
            };
            line(&mut c, &mut y, b"F1", SIZE, &shown);
            line(
                &mut c,
                &mut y,
                b"F1",
                SIZE,
                &format!("Generated: {}", header.generated_at),
            );
            y -= LEADING / 2.0;
            first_page
        } else {
            per_page
        };
        line(&mut c, &mut y, b"F2", SIZE, &row(&titles));
        c.set_line_width(0.5);
        c.move_to(MARGIN, y + LEADING - 2.5);
        c.line_to(PAGE_W - MARGIN, y + LEADING - 2.5);
        c.stroke();
        for r in rest.by_ref().take(capacity) {
            line(&mut c, &mut y, b"F1", SIZE, &row(&cells(r)));
        }
        if events.is_empty() && i == 0 {
            line(
                &mut c,
                &mut y,
                b"F1",
                SIZE,
                "No events match these filters.",
            );
        }
        let footer = format!("Page {} of {pages}", i + 1);
        let footer_x = PAGE_W - MARGIN - CHAR_W * footer.len() as f32;
        c.begin_text();
        c.set_font(Name(b"F1"), SIZE);
        c.next_line(footer_x, MARGIN / 2.0);
        c.show(Str(footer.as_bytes()));
        c.end_text();
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), font);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &c.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Actor, NewAuditEvent, Target};
    use crate::{AuditAction, SCHEMA_VERSION};

    fn event(i: i64) -> AuditEvent {
        let mut e = NewAuditEvent::new(
            rbac_core::OrgId::new(),
            chrono::DateTime::from_timestamp(1_763_893_815 + i, 0).unwrap_or_default(),
            Actor::user(rbac_core::UserId::new(), "Sarah"),
            AuditAction::ChatInterfaceCreated,
            Target::new(
                "chat_interface",
                "res_1",
                "Customer Support (a very long name that will not fit the column)",
            ),
        );
        e.context.ip = "203.0.113.7".into();
        AuditEvent {
            seq: i,
            event: e,
            prev_hash: [0; 32],
            hash: [0; 32],
            schema_version: SCHEMA_VERSION,
        }
    }

    fn header() -> ReportHeader {
        ReportHeader {
            organization: "Acme Corp".into(),
            organization_id: "org_1".into(),
            filters: vec![("action".into(), "chat_interface.*".into())],
            period: "last 7 days".into(),
            generated_at: "2026-11-28 12:00 UTC".into(),
        }
    }

    /// The page footers, read from the (uncompressed) content streams.
    fn footers(pdf: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(pdf);
        text.match_indices("(Page ")
            .map(|(i, _)| text[i + 1..].split(')').next().unwrap_or("").to_owned())
            .collect()
    }

    #[test]
    fn pages_are_numbered_and_the_rows_capped() {
        let one = render_pdf(&header(), &[event(1)], false);
        assert!(one.starts_with(b"%PDF-"));
        assert_eq!(footers(&one), ["Page 1 of 1"]);
        // 41 rows fit under the heading, 48 on each further page.
        let many: Vec<AuditEvent> = (0..200).map(event).collect();
        let pdf = render_pdf(&header(), &many, false);
        assert_eq!(
            footers(&pdf),
            (1..=5)
                .map(|i| format!("Page {i} of 5"))
                .collect::<Vec<_>>()
        );
        let text = String::from_utf8_lossy(&pdf);
        assert_eq!(text.matches("chat_interface.created").count(), 200);
        assert!(text.contains("Events: 200, newest first"));
        let capped: Vec<AuditEvent> = (0..(PDF_MAX_ROWS as i64 + 10)).map(event).collect();
        let pdf = render_pdf(&header(), &capped, true);
        let text = String::from_utf8_lossy(&pdf);
        assert_eq!(text.matches("chat_interface.created").count(), PDF_MAX_ROWS);
        assert!(text.contains("export CSV or JSON for all of them"));
    }

    #[test]
    fn cells_fit_their_columns_in_latin1() {
        assert_eq!(latin1("Zo\u{eb} \u{2192} ok"), b"Zo\xeb ? ok".to_vec());
        assert_eq!(fit("abcdef", 4), "abc~");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(
            row(&cells(&event(1))).chars().count(),
            19 + 24 + 28 + 44 + 18 + 15 + 5
        );
    }
}
