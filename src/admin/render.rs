//! The admin API's answers and how they look on a terminal. Everything here is pure.
//!
//! The answer types are lenient (missing optional fields default) so a server that adds fields
//! or leaves out a nullable one does not turn into an "unreadable answer".

use std::fmt::Write as _;

use serde::Deserialize;

/// Why `--json` output failed: the server's body was not JSON.
pub const PRETTY_UNREADABLE: &str = "the body is not JSON";

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

/// The answer to push, rollback and reload.
#[derive(Debug, Deserialize)]
pub struct Published {
    pub version: u64,
    #[serde(default)]
    pub hash: String,
    pub changed: bool,
}

#[derive(Debug, Deserialize)]
pub struct VersionsPage {
    pub versions: Vec<VersionSummary>,
    #[serde(default)]
    pub next_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct VersionSummary {
    pub version: u64,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
    #[serde(default)]
    pub alias_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct VersionView {
    pub version: u64,
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
    #[serde(default)]
    pub rolled_back_to: Option<u64>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub aliases: Vec<AliasView>,
}

#[derive(Debug, Deserialize)]
pub struct AliasView {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub chain: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct DiffView {
    pub from: u64,
    pub to: u64,
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub changed: Vec<ChangedAlias>,
    #[serde(default)]
    pub default_changed: Option<DefaultChange>,
}

#[derive(Debug, Deserialize)]
pub struct ChangedAlias {
    pub name: String,
    #[serde(default)]
    pub from_chain: Vec<String>,
    #[serde(default)]
    pub to_chain: Vec<String>,
    #[serde(default)]
    pub description_changed: bool,
}

#[derive(Debug, Deserialize)]
pub struct DefaultChange {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    #[serde(default)]
    pub next_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct AuditEvent {
    pub sequence: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub registry_version: Option<u64>,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub to_version: Option<u64>,
    #[serde(default)]
    pub errors: Option<Vec<String>>,
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

/// push / rollback / reload. `restored` is the version a rollback asked for.
pub fn published(answer: &Published, restored: Option<u64>) -> String {
    let hash = short_hash(&answer.hash);
    match (answer.changed, restored) {
        (true, Some(old)) => format!(
            "published version {} (hash {hash}) with the content of version {old}\n",
            answer.version
        ),
        (true, None) => format!("published version {} (hash {hash})\n", answer.version),
        (false, _) => format!(
            "unchanged: version {} already has this content\n",
            answer.version
        ),
    }
}

pub fn versions(page: &VersionsPage) -> String {
    if page.versions.is_empty() {
        return "no registry versions yet\n".to_string();
    }
    let rows: Vec<Vec<String>> = page
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                or_dash(v.source.as_deref()),
                or_dash(v.actor.as_deref()),
                or_dash(v.recorded_at.as_deref().map(tidy_time).as_deref()),
                v.alias_count.map_or("-".to_string(), |n| n.to_string()),
                short_hash(&v.hash).to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "VERSION",
            "SOURCE",
            "ACTOR",
            "RECORDED AT",
            "ALIASES",
            "HASH",
        ],
        &rows,
    );
    if let Some(next) = page.next_after {
        let _ = writeln!(out, "(more versions after {next})");
    }
    out
}

pub fn version(view: &VersionView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "version   {}", view.version);
    let _ = writeln!(out, "hash      {}", or_dash(Some(&view.hash)));
    let _ = write!(
        out,
        "recorded  {} by {} ({})",
        or_dash(view.recorded_at.as_deref().map(tidy_time).as_deref()),
        or_dash(view.actor.as_deref()),
        or_dash(view.source.as_deref()),
    );
    match view.rolled_back_to {
        Some(old) => {
            let _ = writeln!(out, ", restoring version {old}");
        }
        None => out.push('\n'),
    }
    let _ = writeln!(
        out,
        "default   {}",
        view.default.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(out, "aliases   {}", view.aliases.len());
    if !view.aliases.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = view
            .aliases
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    chain(&a.chain),
                    a.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(&["ALIAS", "CHAIN", "DESCRIPTION"], &rows));
    }
    out
}

pub fn audit(page: &AuditPage) -> String {
    if page.events.is_empty() {
        return "no events\n".to_string();
    }
    let rows: Vec<Vec<String>> = page
        .events
        .iter()
        .map(|e| {
            vec![
                e.sequence.to_string(),
                or_dash(e.recorded_at.as_deref().map(tidy_time).as_deref()),
                or_dash(e.actor.as_deref()),
                event_text(e),
            ]
        })
        .collect();
    let mut out = table(&["SEQ", "RECORDED AT", "ACTOR", "EVENT"], &rows);
    if let Some(next) = page.next_after {
        let _ = writeln!(out, "(more: --after {next})");
    }
    out
}

fn event_text(e: &AuditEvent) -> String {
    let version = e
        .registry_version
        .map_or("?".to_string(), |v| v.to_string());
    let hash = e
        .hash
        .as_deref()
        .map(|h| format!(", hash {}", short_hash(h)))
        .unwrap_or_default();
    match e.kind.as_str() {
        "RegistryVersionPublished" => {
            let source = e
                .source
                .as_deref()
                .map(|s| format!(" by {s}"))
                .unwrap_or_default();
            format!("published version {version}{source}{hash}")
        }
        "RegistryRolledBack" => {
            let to = e
                .to_version
                .map(|v| format!(", restoring version {v}"))
                .unwrap_or_default();
            format!("rolled back: version {version}{to}{hash}")
        }
        "RegistryReloadRejected" => match e.errors.as_deref() {
            // One line per event, so the errors are joined; `--json` has them as a list.
            Some(errors) if !errors.is_empty() => {
                format!("reload rejected: {}", errors.join("; "))
            }
            _ => "reload rejected".to_string(),
        },
        other => match e.registry_version {
            Some(v) => format!("{other} (version {v}{hash})"),
            None => other.to_string(),
        },
    }
}

/// `target` is the newer version, when fetched, to show the added aliases' chains.
pub fn diff(diff: &DiffView, target: Option<&VersionView>, style: Style) -> String {
    let mut out = format!("diff version {} → {}\n", diff.from, diff.to);
    let nothing = diff.added.is_empty()
        && diff.removed.is_empty()
        && diff.changed.is_empty()
        && diff.default_changed.is_none();
    if nothing {
        out.push_str("no changes\n");
        return out;
    }
    for name in &diff.added {
        let added_chain = target
            .and_then(|t| t.aliases.iter().find(|a| &a.name == name))
            .map(|a| format!(": {}", chain(&a.chain)))
            .unwrap_or_default();
        out.push_str(&style.paint("32", &format!("+ {name}{added_chain}")));
        out.push('\n');
    }
    for name in &diff.removed {
        out.push_str(&style.paint("31", &format!("- {name}")));
        out.push('\n');
    }
    for c in &diff.changed {
        let line = if c.from_chain == c.to_chain {
            format!("~ {}: description changed", c.name)
        } else {
            let note = if c.description_changed {
                " (description changed)"
            } else {
                ""
            };
            format!(
                "~ {}: {}  ⇒  {}{note}",
                c.name,
                chain(&c.from_chain),
                chain(&c.to_chain)
            )
        };
        out.push_str(&style.paint("33", &line));
        out.push('\n');
    }
    if let Some(d) = &diff.default_changed {
        let _ = writeln!(
            out,
            "default: {} → {}",
            d.from.as_deref().unwrap_or("(none)"),
            d.to.as_deref().unwrap_or("(none)")
        );
    }
    out
}

/// Re-indents JSON text two spaces deep without reordering keys (a `serde_json::Value` would
/// sort them), so `--json` shows the server's answer as it was sent. `None` if not JSON.
pub fn pretty_json(text: &str) -> Option<String> {
    // Validate first: the loop below then only has to handle well-formed input.
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table_aligns_columns_by_characters_and_trims_line_ends() {
        let rows = vec![
            strings(&["1", "push", "alice", ""]),
            strings(&["12", "rollback", "bob", "a → b"]),
        ];
        let text = table(&["VERSION", "SOURCE", "ACTOR", "CHAIN"], &rows);
        assert_eq!(
            text,
            "VERSION  SOURCE    ACTOR  CHAIN\n\
             1        push      alice\n\
             12       rollback  bob    a → b\n"
        );
    }

    #[test]
    fn table_cells_wider_than_the_header_widen_the_column() {
        let rows = vec![strings(&["mana/fast-text", "x"]), strings(&["→→", "y"])];
        let text = table(&["A", "B"], &rows);
        assert_eq!(
            text,
            "A               B\nmana/fast-text  x\n→→              y\n"
        );
    }

    #[test]
    fn table_with_only_a_header() {
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn list_shows_short_hashes_and_tidy_times() {
        let page = VersionsPage {
            versions: vec![VersionSummary {
                version: 3,
                hash: "3fa2c1d9e0ab4f5e6d7c8b9a".to_string(),
                source: Some("push".to_string()),
                actor: Some("admin".to_string()),
                recorded_at: Some("2026-04-01T12:34:56.789Z".to_string()),
                alias_count: Some(5),
            }],
            next_after: None,
        };
        assert_eq!(
            versions(&page),
            "VERSION  SOURCE  ACTOR  RECORDED AT           ALIASES  HASH\n\
             3        push    admin  2026-04-01T12:34:56Z  5        3fa2c1d9e0ab\n"
        );
    }

    #[test]
    fn show_lists_each_alias_with_its_chain() {
        let view = VersionView {
            version: 4,
            hash: "abc".to_string(),
            source: Some("rollback".to_string()),
            actor: Some("admin".to_string()),
            recorded_at: Some("2026-04-01T12:00:00Z".to_string()),
            rolled_back_to: Some(2),
            default: Some("mana/fast".to_string()),
            aliases: vec![AliasView {
                name: "mana/fast".to_string(),
                description: Some("Fast text".to_string()),
                chain: strings(&["ollama/a", "groq/b"]),
            }],
        };
        assert_eq!(
            version(&view),
            "version   4\n\
             hash      abc\n\
             recorded  2026-04-01T12:00:00Z by admin (rollback), restoring version 2\n\
             default   mana/fast\n\
             aliases   1\n\
             \n\
             ALIAS      CHAIN              DESCRIPTION\n\
             mana/fast  ollama/a → groq/b  Fast text\n"
        );
    }

    #[test]
    fn history_is_one_line_per_event() {
        let event = |sequence, kind: &str| AuditEvent {
            sequence,
            kind: kind.to_string(),
            registry_version: Some(2),
            hash: Some("0123456789abcdef".to_string()),
            actor: Some("admin".to_string()),
            recorded_at: Some("2026-04-01T12:00:00Z".to_string()),
            source: Some("push".to_string()),
            to_version: Some(1),
            errors: None,
        };
        let mut rejected = event(3, "RegistryReloadRejected");
        rejected.errors = Some(strings(&["line 2: bad", "line 9: worse"]));
        let page = AuditPage {
            events: vec![
                event(1, "RegistryVersionPublished"),
                event(2, "RegistryRolledBack"),
                rejected,
            ],
            next_after: Some(3),
        };
        let text = audit(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].ends_with("published version 2 by push, hash 0123456789ab"));
        assert!(
            lines[2].ends_with("rolled back: version 2, restoring version 1, hash 0123456789ab")
        );
        assert!(lines[3].ends_with("reload rejected: line 2: bad; line 9: worse"));
        assert_eq!(lines[4], "(more: --after 3)");
    }

    fn sample_diff() -> DiffView {
        DiffView {
            from: 3,
            to: 5,
            added: strings(&["mana/new"]),
            removed: strings(&["mana/old"]),
            changed: vec![
                ChangedAlias {
                    name: "mana/x".to_string(),
                    from_chain: strings(&["a", "b"]),
                    to_chain: strings(&["a", "c"]),
                    description_changed: false,
                },
                ChangedAlias {
                    name: "mana/y".to_string(),
                    from_chain: strings(&["a"]),
                    to_chain: strings(&["a"]),
                    description_changed: true,
                },
            ],
            default_changed: Some(DefaultChange {
                from: Some("mana/x".to_string()),
                to: None,
            }),
        }
    }

    #[test]
    fn diff_without_colour() {
        let target = VersionView {
            version: 5,
            hash: String::new(),
            source: None,
            actor: None,
            recorded_at: None,
            rolled_back_to: None,
            default: None,
            aliases: vec![AliasView {
                name: "mana/new".to_string(),
                description: None,
                chain: strings(&["a", "b"]),
            }],
        };
        assert_eq!(
            diff(&sample_diff(), Some(&target), Style { colour: false }),
            "diff version 3 → 5\n\
             + mana/new: a → b\n\
             - mana/old\n\
             ~ mana/x: a → b  ⇒  a → c\n\
             ~ mana/y: description changed\n\
             default: mana/x → (none)\n"
        );
    }

    #[test]
    fn diff_without_the_target_version_names_added_aliases_only() {
        let text = diff(&sample_diff(), None, Style::default());
        assert!(text.contains("\n+ mana/new\n"), "{text}");
    }

    #[test]
    fn diff_colours_only_when_asked() {
        let text = diff(&sample_diff(), None, Style { colour: true });
        assert!(text.contains("\x1b[32m+ mana/new\x1b[0m\n"));
        assert!(text.contains("\x1b[31m- mana/old\x1b[0m\n"));
        assert!(text.contains("\x1b[33m~ mana/x: a → b  ⇒  a → c\x1b[0m\n"));
        let plain = diff(&sample_diff(), None, Style { colour: false });
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn an_empty_diff_says_so() {
        let empty = DiffView {
            from: 1,
            to: 2,
            added: vec![],
            removed: vec![],
            changed: vec![],
            default_changed: None,
        };
        assert_eq!(
            diff(&empty, None, Style::default()),
            "diff version 1 → 2\nno changes\n"
        );
    }

    #[test]
    fn publish_messages() {
        let answer = |changed| Published {
            version: 4,
            hash: "3fa2c1d9e0ab4f5e".to_string(),
            changed,
        };
        assert_eq!(
            published(&answer(true), None),
            "published version 4 (hash 3fa2c1d9e0ab)\n"
        );
        assert_eq!(
            published(&answer(true), Some(2)),
            "published version 4 (hash 3fa2c1d9e0ab) with the content of version 2\n"
        );
        assert_eq!(
            published(&answer(false), None),
            "unchanged: version 4 already has this content\n"
        );
    }

    #[test]
    fn answers_parse_with_nulls_and_extra_fields() {
        let text = r#"{"version": 2, "hash": "h", "source": "seed", "actor": null,
            "recorded_at": null, "rolled_back_to": null, "default": null, "extra": 1,
            "aliases": [{"name": "mana/a", "description": null, "chain": ["x"]}]}"#;
        let view: Result<VersionView, _> = serde_json::from_str(text);
        assert!(view.is_ok(), "{view:?}");
    }

    #[test]
    fn pretty_json_keeps_key_order_and_strings() {
        let text = r#"{"z":1,"a":[ ],"s":"a,b:{\"c\"}","o":{"k":[1,{"x":null}]},"e":{}}"#;
        assert_eq!(
            pretty_json(text).as_deref(),
            Some(
                "{\n  \"z\": 1,\n  \"a\": [],\n  \"s\": \"a,b:{\\\"c\\\"}\",\n  \"o\": {\n    \"k\": [\n      1,\n      {\n        \"x\": null\n      }\n    ]\n  },\n  \"e\": {}\n}"
            )
        );
        assert_eq!(pretty_json("not json"), None);
        assert_eq!(pretty_json("{\"a\": 1} trailing"), None);
    }

    #[test]
    fn pretty_json_matches_serde_json_for_sorted_input() {
        let text = r#"{"a":[1,2,{"b":"→ ünï"}],"c":{"d":-1.5,"e":true}}"#;
        let value: Result<serde_json::Value, _> = serde_json::from_str(text);
        let expected = value
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok());
        assert_eq!(pretty_json(text), expected);
    }

    #[test]
    fn times_lose_their_fraction_but_keep_their_zone() {
        assert_eq!(
            tidy_time("2026-04-01T12:34:56.789Z"),
            "2026-04-01T12:34:56Z"
        );
        assert_eq!(
            tidy_time("2026-04-01T12:34:56.1+02:00"),
            "2026-04-01T12:34:56+02:00"
        );
        assert_eq!(tidy_time("2026-04-01T12:34:56Z"), "2026-04-01T12:34:56Z");
    }

    #[test]
    fn short_hash_is_twelve_characters() {
        assert_eq!(short_hash("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_hash("abc"), "abc");
    }
}
