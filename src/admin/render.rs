//! The admin API's answers and how they look on a terminal. Everything here is pure.
//!
//! The answer types are lenient (missing optional fields default) so a server that adds fields
//! or leaves out a nullable one does not turn into an "unreadable answer".

mod answers;
mod commands;
mod diff;
mod json;

pub use answers::{AuditEvent, AuditPage, DiffView, Published, VersionView, VersionsPage};
pub use commands::{audit, published, version, versions};
pub use diff::diff;
pub use json::{pretty_json, PRETTY_UNREADABLE};

/// Hashes are SHA-256 hex; 12 characters tell versions apart the way short git hashes do.
const SHORT_HASH: usize = 12;
const ARROW: &str = " → ";

#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// ANSI colours (only on a terminal, and not with NO_COLOR).
    pub colour: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Aligns rows under a header: columns two spaces apart, widths in characters (the chains'
/// arrows are one column wide but three bytes), no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0);
            let pad = pad.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn short_hash(hash: &str) -> &str {
    match hash.char_indices().nth(SHORT_HASH) {
        Some((end, _)) => &hash[..end],
        None => hash,
    }
}

/// `2026-04-01T12:34:56.789012Z` → `2026-04-01T12:34:56Z`: sub-seconds only widen tables.
pub fn tidy_time(time: &str) -> String {
    let Some(dot) = time.find('.') else {
        return time.to_string();
    };
    let rest = &time[dot + 1..];
    let zone = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("{}{zone}", &time[..dot])
}

fn or_dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_string()
}

fn chain(targets: &[String]) -> String {
    if targets.is_empty() {
        "(empty chain)".to_string()
    } else {
        targets.join(ARROW)
    }
}

#[cfg(test)]
mod tests;
