//! `diff`: what changed between two registry versions, one line per alias.

use std::fmt::Write as _;

use super::{chain, DiffView, Style, VersionView};

/// `target` is the newer version, when fetched, to show the added aliases' chains.
pub fn diff(view: &DiffView, target: Option<&VersionView>, style: Style) -> String {
    let mut out = format!("diff version {} → {}\n", view.from, view.to);
    let diff = &view.diff;
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
