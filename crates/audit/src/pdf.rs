//! The audit log as a PDF report: title, organization, the filters used, the period, a table
//! of events and page numbers. Text is set in DejaVu Sans Mono, embedded as a subset of the
//! glyphs the report uses (`fonts/`, under the Bitstream Vera license), with a `ToUnicode` map
//! so that readers can search and copy it: Latin (with Vietnamese), Greek, Cyrillic, Armenian
//! and Georgian letters print as they are. Characters the font lacks (Hebrew, Devanagari,
//! Thai, Chinese, Japanese, Korean, emoji) print as `?`, and so do right-to-left scripts the
//! font has letters for (Arabic): the report neither joins nor reorders them, so they would
//! print as a different word. A report holds at most [`PDF_MAX_ROWS`] events and says so when
//! the filter matched more (CSV and NDJSON have no cap, and keep every character).

use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::model::{AuditEvent, Outcome};

/// The most events one PDF holds.
pub const PDF_MAX_ROWS: usize = 5_000;

/// The newest events matching `query` for a report, done by any of `actors` when there are
/// some ([`crate::search_by_any`]): at most [`PDF_MAX_ROWS`], read page by page from the
/// store, and whether more matched.
///
/// # Errors
/// Storage errors and invalid queries.
pub async fn newest_events(
    store: &dyn crate::AuditStore,
    org: rbac_core::OrgId,
    mut query: crate::AuditQuery,
    actors: &[String],
) -> Result<(Vec<AuditEvent>, bool), crate::AuditError> {
    query.limit = crate::MAX_PAGE;
    let mut events = Vec::new();
    loop {
        let page = crate::search_by_any(store, org, &query, actors).await?;
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
const SIZE: f32 = 7.5;
const LEADING: f32 = 10.0;
/// The width of every glyph of the monospaced font, in em (1233 of 2048 units).
const ADVANCE: f32 = 0.602;
const CHAR_W: f32 = SIZE * ADVANCE;
/// Characters of a heading line that fit between the margins (170 at 7.5 pt); a longer one (a
/// long filter value, an organization's name) is cut and marked `~`, as table cells are.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a small positive width, rounded down"
)]
const LINE_CHARS: usize = ((PAGE_W - 2.0 * MARGIN) / CHAR_W) as usize;

/// DejaVu Sans Mono 2.37 (Bitstream Vera's glyphs, whose license is in `fonts/LICENSE`, and
/// DejaVu's public-domain additions).
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSansMono.ttf");
/// The embedded subset's name: a tag of six capitals, `+`, the font's PostScript name.
const SUBSET_NAME: &[u8] = b"AXIEAU+DejaVuSansMono";
/// The font's PostScript name, for the whole font (should subsetting fail).
const FONT_NAME: &[u8] = b"DejaVuSansMono";

/// Column titles and widths in characters.
const COLUMNS: [(&str, usize); 6] = [
    ("Time (UTC)", 19),
    ("Actor", 24),
    ("Action", 28),
    ("Target", 44),
    ("Outcome", 18),
    ("IP", 15),
];

/// Text in the embedded font. Each character becomes its glyph id in the font, which is also
/// its CID (two bytes, big-endian, the `Identity-H` encoding); the glyphs used are noted, with
/// a character each, for the subset and the `ToUnicode` map. A character the font lacks is
/// written as `?`.
struct Glyphs {
    face: Option<ttf_parser::Face<'static>>,
    used: BTreeMap<u16, char>,
}

impl Glyphs {
    fn new() -> Self {
        Self {
            face: ttf_parser::Face::parse(FONT, 0).ok(),
            used: BTreeMap::new(),
        }
    }

    fn glyph(&self, c: char) -> Option<u16> {
        let face = self.face.as_ref()?;
        // Control characters have no outline, though some fonts map them to a blank one.
        if c.is_control() || right_to_left(c) {
            return None;
        }
        face.glyph_index(c).map(|g| g.0).filter(|g| *g != 0)
    }

    fn encode(&mut self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 * s.len());
        for c in s.chars() {
            let (glyph, c) = match self.glyph(c) {
                Some(g) => (g, c),
                None => (self.glyph('?').unwrap_or(0), '?'),
            };
            self.used.entry(glyph).or_insert(c);
            out.extend_from_slice(&glyph.to_be_bytes());
        }
        out
    }

    /// Writes the font: a `Type0` font at `refs.font` whose descendant is a `CIDFontType2`
    /// holding the subset of the glyphs used (the whole font, should subsetting fail).
    fn write(&self, pdf: &mut Pdf, refs: FontRefs) {
        let system_info = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        // CIDs are the font's own glyph ids; the subset numbers its glyphs afresh, and the
        // CID-to-glyph map says which is which.
        let mut remapper = subsetter::GlyphRemapper::new();
        for glyph in self.used.keys() {
            remapper.remap(*glyph);
        }
        let subset = subsetter::subset(FONT, 0, &remapper).ok();
        let name = if subset.is_some() {
            SUBSET_NAME
        } else {
            FONT_NAME
        };
        pdf.type0_font(refs.font)
            .base_font(Name(name))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(refs.cid_font)
            .to_unicode(refs.to_unicode);
        let mut cid_font = pdf.cid_font(refs.cid_font);
        cid_font
            .subtype(CidFontType::Type2)
            .base_font(Name(name))
            .system_info(system_info)
            .font_descriptor(refs.descriptor)
            .default_width(ADVANCE * 1000.0);
        if subset.is_some() {
            cid_font.cid_to_gid_map_stream(refs.cid_to_gid);
        } else {
            cid_font.cid_to_gid_map_predefined(Name(b"Identity"));
        }
        cid_font.finish();
        if subset.is_some() {
            let last = self.used.keys().next_back().copied().unwrap_or(0);
            let mut map = vec![0_u8; 2 * (usize::from(last) + 1)];
            for glyph in self.used.keys() {
                let at = 2 * usize::from(*glyph);
                let new = remapper.get(*glyph).unwrap_or(0);
                map[at..at + 2].copy_from_slice(&new.to_be_bytes());
            }
            pdf.stream(refs.cid_to_gid, &deflate(&map))
                .filter(Filter::FlateDecode);
        }

        let (mut bbox, mut ascent, mut descent, mut cap_height) =
            (Rect::new(0.0, 0.0, 0.0, 0.0), 0.0, 0.0, 0.0);
        if let Some(face) = &self.face {
            let scale = 1000.0 / f32::from(face.units_per_em());
            let b = face.global_bounding_box();
            bbox = Rect::new(
                f32::from(b.x_min) * scale,
                f32::from(b.y_min) * scale,
                f32::from(b.x_max) * scale,
                f32::from(b.y_max) * scale,
            );
            ascent = f32::from(face.ascender()) * scale;
            descent = f32::from(face.descender()) * scale;
            cap_height = face
                .capital_height()
                .map_or(ascent, |h| f32::from(h) * scale);
        }
        pdf.font_descriptor(refs.descriptor)
            .name(Name(name))
            // Symbolic: its glyphs reach beyond Adobe's standard Latin set.
            .flags(FontFlags::FIXED_PITCH | FontFlags::SYMBOLIC)
            .bbox(bbox)
            .italic_angle(0.0)
            .ascent(ascent)
            .descent(descent)
            .cap_height(cap_height)
            .stem_v(80.0)
            .font_file2(refs.file);
        let file = subset.as_deref().unwrap_or(FONT);
        pdf.stream(refs.file, &deflate(file))
            .filter(Filter::FlateDecode)
            .pair(
                Name(b"Length1"),
                i32::try_from(file.len()).unwrap_or(i32::MAX),
            );

        let mut cmap = UnicodeCmap::new(Name(b"Axie-UTF16"), system_info);
        for (glyph, c) in &self.used {
            cmap.pair(*glyph, *c);
        }
        pdf.cmap(refs.to_unicode, &deflate(&cmap.finish()))
            .filter(Filter::FlateDecode);
    }
}

/// `data` compressed for a stream with the `FlateDecode` filter.
fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

/// Whether `c` belongs to a right-to-left script (Hebrew, Arabic, Syriac, Thaana, N'Ko and
/// the rest of U+0590 to U+08FF, their presentation forms, and the right-to-left marks), which
/// the report would print unjoined and left to right.
fn right_to_left(c: char) -> bool {
    matches!(
        u32::from(c),
        0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF | 0x200F | 0x202B | 0x202E | 0x2067
    )
}

/// Where the embedded font's objects go.
#[derive(Clone, Copy)]
struct FontRefs {
    font: Ref,
    cid_font: Ref,
    descriptor: Ref,
    file: Ref,
    to_unicode: Ref,
    cid_to_gid: Ref,
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
    let fonts_refs = FontRefs {
        font: Ref::new(3),
        cid_font: Ref::new(4),
        descriptor: Ref::new(5),
        file: Ref::new(6),
        to_unicode: Ref::new(7),
        cid_to_gid: Ref::new(8),
    };
    let bold = Ref::new(9);
    let info = Ref::new(10);
    let first_id = 11;
    let page_ids: Vec<Ref> = (0..pages)
        .map(|i| Ref::new(first_id + 2 * i32::try_from(i).unwrap_or(i32::MAX / 4)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(pages).unwrap_or(i32::MAX));
    // The title, which is ASCII, in a standard font; everything else in the embedded one.
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(TextStr(&format!("Audit log: {}", header.organization)))
        .producer(TextStr("Axie Enterprise"));

    let titles: [String; 6] = COLUMNS.map(|(t, _)| t.to_owned());
    let mut glyphs = Glyphs::new();
    let mut rest = events.iter();
    for (i, page_id) in page_ids.iter().enumerate() {
        let content_id = Ref::new(page_id.get() + 1);
        let mut c = Content::new();
        let mut y = PAGE_H - MARGIN;
        let mut line = |c: &mut Content, y: &mut f32, text: &str| {
            c.begin_text();
            c.set_font(Name(b"F1"), SIZE);
            c.next_line(MARGIN, *y);
            let text = if text.chars().count() > LINE_CHARS {
                fit(text, LINE_CHARS)
            } else {
                text.to_owned()
            };
            c.show(Str(&glyphs.encode(&text)));
            c.end_text();
            *y -= LEADING;
        };
        let capacity = if i == 0 {
            c.begin_text();
            c.set_font(Name(b"F2"), 14.0);
            c.next_line(MARGIN, y);
            c.show(Str(b"Audit log report"));
            c.end_text();
            y -= LEADING + 4.0;
            line(
                &mut c,
                &mut y,
                &format!(
                    "Organization: {} ({})",
                    header.organization, header.organization_id
                ),
            );
            line(&mut c, &mut y, &format!("Period: {}", header.period));
            if header.filters.is_empty() {
                line(&mut c, &mut y, "Filters: none");
            } else {
                line(&mut c, &mut y, "Filters:");
                for (k, v) in &header.filters {
                    line(&mut c, &mut y, &format!("  {k} = {v}"));
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
            line(&mut c, &mut y, &shown);
            line(
                &mut c,
                &mut y,
                &format!("Generated: {}", header.generated_at),
            );
            y -= LEADING / 2.0;
            first_page
        } else {
            per_page
        };
        line(&mut c, &mut y, &row(&titles));
        c.set_line_width(0.5);
        c.move_to(MARGIN, y + LEADING - 2.5);
        c.line_to(PAGE_W - MARGIN, y + LEADING - 2.5);
        c.stroke();
        for r in rest.by_ref().take(capacity) {
            line(&mut c, &mut y, &row(&cells(r)));
        }
        if events.is_empty() && i == 0 {
            line(&mut c, &mut y, "No events match these filters.");
        }
        let footer = format!("Page {} of {pages}", i + 1);
        let footer_x = PAGE_W - MARGIN - CHAR_W * footer.len() as f32;
        c.begin_text();
        c.set_font(Name(b"F1"), SIZE);
        c.next_line(footer_x, MARGIN / 2.0);
        c.show(Str(&glyphs.encode(&footer)));
        c.end_text();
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), fonts_refs.font);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &deflate(&c.finish()))
            .filter(Filter::FlateDecode);
    }
    glyphs.write(&mut pdf, fonts_refs);
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

    /// The text of every `Tj` in the page content streams, each decoded through the report's
    /// own `ToUnicode` map (a reader extracts text the same way).
    fn shown(pdf: &[u8]) -> Vec<String> {
        let to_unicode = to_unicode(pdf);
        let mut out = Vec::new();
        for stream in streams(pdf).filter(|s| s.starts_with(b"BT")) {
            let stream = &stream[..];
            let mut i = 0;
            while i < stream.len() {
                let (bytes, next) = match stream[i] {
                    b'(' => literal(stream, i + 1),
                    b'<' => hex(stream, i + 1),
                    _ => {
                        i += 1;
                        continue;
                    }
                };
                i = next;
                if !stream[i..].starts_with(b" Tj") {
                    continue;
                }
                let font = stream[..i]
                    .windows(2)
                    .rposition(|w| w == b"/F")
                    .map(|at| stream[at + 2]);
                if font == Some(b'2') {
                    // The title, in the standard font: one byte a character.
                    out.push(String::from_utf8_lossy(&bytes).into_owned());
                    continue;
                }
                let text: String = bytes
                    .chunks(2)
                    .map(|g| {
                        to_unicode
                            .get(&u16::from_be_bytes([g[0], g[1]]))
                            .copied()
                            .unwrap_or('\u{fffd}')
                    })
                    .collect();
                out.push(text);
            }
        }
        out
    }

    /// Every stream of the report, inflated (each is `FlateDecode`).
    fn streams(pdf: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut rest = pdf;
        std::iter::from_fn(move || {
            let start = find(rest, b"stream\n")? + 7;
            let len = find(&rest[start..], b"\nendstream")?;
            let stream = &rest[start..start + len];
            rest = &rest[start + len + b"\nendstream".len()..];
            Some(miniz_oxide::inflate::decompress_to_vec_zlib(stream).unwrap_or_default())
        })
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// A literal string's bytes from just after its `(`, and the index after its `)`.
    fn literal(s: &[u8], mut i: usize) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut depth = 0;
        while i < s.len() {
            match s[i] {
                b'\\' => {
                    i += 1;
                    match s[i] {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let digits = s[i..]
                                .iter()
                                .take(3)
                                .take_while(|d| (b'0'..=b'7').contains(d))
                                .count();
                            let text = std::str::from_utf8(&s[i..i + digits]).unwrap_or("0");
                            out.push(u8::from_str_radix(text, 8).unwrap_or(0));
                            i += digits - 1;
                        }
                        other => out.push(other),
                    }
                }
                b'(' => {
                    depth += 1;
                    out.push(b'(');
                }
                b')' if depth == 0 => return (out, i + 1),
                b')' => {
                    depth -= 1;
                    out.push(b')');
                }
                b => out.push(b),
            }
            i += 1;
        }
        (out, i)
    }

    /// A hex string's bytes from just after its `<`, and the index after its `>`.
    fn hex(s: &[u8], i: usize) -> (Vec<u8>, usize) {
        let end = i + s[i..]
            .iter()
            .position(|b| *b == b'>')
            .unwrap_or(s.len() - i);
        let digits: Vec<u8> = s[i..end]
            .iter()
            .copied()
            .filter(u8::is_ascii_hexdigit)
            .collect();
        let bytes = digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("0"), 16).unwrap_or(0))
            .collect();
        (bytes, end + 1)
    }

    /// The `bfchar` pairs of the report's `ToUnicode` map.
    fn to_unicode(pdf: &[u8]) -> std::collections::HashMap<u16, char> {
        let cmap = streams(pdf)
            .find(|s| s.starts_with(b"%!PS-Adobe-3.0 Resource-CMap"))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&cmap);
        let mut map = std::collections::HashMap::new();
        for line in text.lines().filter(|l| l.starts_with('<')) {
            let hexes: Vec<&str> = line
                .split(['<', '>', ' '])
                .filter(|h| !h.is_empty())
                .collect();
            if let [glyph, unit] = hexes[..] {
                let glyph = u16::from_str_radix(glyph, 16).unwrap_or(0);
                let units: Vec<u16> = (0..unit.len() / 4)
                    .map(|k| u16::from_str_radix(&unit[4 * k..4 * k + 4], 16).unwrap_or(0))
                    .collect();
                let c = char::decode_utf16(units)
                    .next()
                    .and_then(Result::ok)
                    .unwrap_or('\u{fffd}');
                map.insert(glyph, c);
            }
        }
        map
    }

    fn footers(pdf: &[u8]) -> Vec<String> {
        shown(pdf)
            .into_iter()
            .filter(|t| t.starts_with("Page "))
            .collect()
    }

    fn rows_with(pdf: &[u8], text: &str) -> usize {
        shown(pdf).iter().filter(|t| t.contains(text)).count()
    }

    #[test]
    fn pages_are_numbered_and_the_rows_capped() {
        let one = render_pdf(&header(), &[event(1)], false);
        assert!(one.starts_with(b"%PDF-"));
        assert_eq!(footers(&one), ["Page 1 of 1"]);
        let text = shown(&one);
        assert_eq!(text[0], "Audit log report");
        assert!(
            text.contains(&"Organization: Acme Corp (org_1)".to_owned()),
            "{text:?}"
        );
        // 41 rows fit under the heading, 48 on each further page.
        let many: Vec<AuditEvent> = (0..200).map(event).collect();
        let pdf = render_pdf(&header(), &many, false);
        assert_eq!(
            footers(&pdf),
            (1..=5)
                .map(|i| format!("Page {i} of 5"))
                .collect::<Vec<_>>()
        );
        assert_eq!(rows_with(&pdf, "chat_interface.created"), 200);
        assert_eq!(rows_with(&pdf, "Events: 200, newest first"), 1);
        let capped: Vec<AuditEvent> = (0..(PDF_MAX_ROWS as i64 + 10)).map(event).collect();
        let pdf = render_pdf(&header(), &capped, true);
        assert_eq!(rows_with(&pdf, "chat_interface.created"), PDF_MAX_ROWS);
        assert_eq!(rows_with(&pdf, "export CSV or JSON for all of them"), 1);
    }

    #[test]
    fn heading_lines_are_cut_to_the_page() {
        assert_eq!(LINE_CHARS, 170);
        let mut h = header();
        h.filters = vec![("target_id".into(), "x".repeat(400))];
        let pdf = render_pdf(&h, &[event(1)], false);
        let line = shown(&pdf)
            .into_iter()
            .find(|t| t.starts_with("  target_id = "))
            .unwrap();
        assert_eq!(line.chars().count(), LINE_CHARS, "{line}");
        assert!(line.ends_with('~'), "{line}");
    }

    #[test]
    fn names_in_other_scripts_print_as_they_are() {
        let mut e = event(1);
        e.event.actor.name = "\u{141}ukasz \u{17b}\u{f3}\u{142}\u{107}".into(); // Łukasz Żółć
        e.event.target.name = "\u{41e}\u{442}\u{447}\u{451}\u{442} \u{3a9}".into(); // Отчёт Ω
        let mut h = header();
        h.organization = "\u{395}\u{3bb}\u{3bb}\u{3ac}\u{3c2} \u{9867}\u{5ba2}".into(); // Ελλάς 顧客
        let pdf = render_pdf(&h, &[e], false);
        let text = shown(&pdf).join("\n");
        assert!(text.contains("Actor"), "{text}");
        assert!(
            text.contains("\u{141}ukasz \u{17b}\u{f3}\u{142}\u{107}"),
            "{text}"
        );
        assert!(
            text.contains("\"\u{41e}\u{442}\u{447}\u{451}\u{442} \u{3a9}"),
            "{text}"
        );
        // Right-to-left scripts print as `?` (Arabic, which the font has letters for, too).
        let mut g = Glyphs::new();
        assert_eq!(
            g.encode("\u{645}\u{631}\u{64a}\u{645} \u{5e9}"), // مريم ש
            g.encode("???? ?")
        );
        // The font has no Chinese: those characters print as `?`.
        assert!(
            text.contains("Organization: \u{395}\u{3bb}\u{3bb}\u{3ac}\u{3c2} ?? (org_1)"),
            "{text}"
        );
        assert!(
            !text.contains('\u{fffd}'),
            "every glyph shown has a ToUnicode entry: {text}"
        );
    }

    #[test]
    fn the_font_is_embedded_as_a_subset() {
        let glyphs = Glyphs::new();
        assert!(glyphs.face.is_some(), "the bundled font parses");
        let pdf = render_pdf(&header(), &[event(1)], false);
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("/FontFile2"), "embedded");
        assert!(
            text.contains("/CIDToGIDMap 8 0 R"),
            "subset, with its own glyph numbers"
        );
        assert!(
            pdf.len() < FONT.len() / 4,
            "{} bytes: the subset, not the whole {}-byte font",
            pdf.len(),
            FONT.len()
        );
        // A control character has no glyph of its own.
        let mut g = Glyphs::new();
        assert_eq!(g.encode("a\tb")[2..4], g.encode("?")[..]);
    }

    #[test]
    fn cells_fit_their_columns() {
        assert_eq!(fit("abcdef", 4), "abc~");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(
            row(&cells(&event(1))).chars().count(),
            19 + 24 + 28 + 44 + 18 + 15 + 5
        );
    }
}
