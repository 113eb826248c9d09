//! One renderer per command answer: push / rollback / reload, `list`, `show` and `history`.

use std::fmt::Write as _;

use mana_llm_shared::fleet::WorkerId;
use mana_llm_shared::ContentHash;

use super::{
    chain, or_dash, short_hash, table, tidy_time, AuditEvent, AuditPage, Published, VersionView,
    VersionsPage,
};

/// push / rollback / reload. `restored` is the version a rollback asked for.
pub fn published(answer: &Published, restored: Option<u64>) -> String {
    let hash = short_hash(answer.hash.as_ref().map_or("", ContentHash::as_str));
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
                v.made.version.to_string(),
                or_dash(v.made.source.as_deref()),
                or_dash(v.made.actor.as_deref()),
                or_dash(v.made.recorded_at.as_deref().map(tidy_time).as_deref()),
                v.alias_count.map_or("-".to_string(), |n| n.to_string()),
                short_hash(v.made.hash.as_str()).to_string(),
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
    let _ = writeln!(out, "version   {}", view.made.version);
    let _ = writeln!(out, "hash      {}", or_dash(Some(view.made.hash.as_str())));
    let _ = write!(
        out,
        "recorded  {} by {} ({})",
        or_dash(view.made.recorded_at.as_deref().map(tidy_time).as_deref()),
        or_dash(view.made.actor.as_deref()),
        or_dash(view.made.source.as_deref()),
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
        .as_ref()
        .map(ContentHash::as_str)
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
        "RolloutStarted" => {
            let r = e.rollout.as_ref();
            let stable = r
                .and_then(|r| r.stable_version)
                .map_or("?".to_string(), |v| v.to_string());
            let share = r.and_then(|r| r.share.as_deref()).unwrap_or("?");
            let cohort = r
                .and_then(|r| r.cohort.as_ref())
                .map(|c| {
                    c.iter()
                        .map(WorkerId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("rollout of version {version} started beside stable {stable}: {share} ({cohort}){hash}")
        }
        "RolloutPromoted" | "RolloutAborted" => {
            let r = e.rollout.as_ref();
            let how = if e.kind == "RolloutPromoted" {
                "promoted"
            } else {
                "aborted"
            };
            let by = r.and_then(|r| r.decided_by.as_deref()).unwrap_or("?");
            let reason = r.and_then(|r| r.reason.as_deref()).unwrap_or("");
            format!("rollout of version {version} {how} by {by}: {reason}")
        }
        other => match e.registry_version {
            Some(v) => format!("{other} (version {v}{hash})"),
            None => other.to_string(),
        },
    }
}
