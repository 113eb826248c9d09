use mana_llm_shared::{ContentHash, RegistryVersion};

use super::answers::{AliasView, ChangedAlias, DefaultChange, Diff, Made, VersionSummary};
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
            made: Made {
                version: RegistryVersion(3),
                hash: ContentHash::from("3fa2c1d9e0ab4f5e6d7c8b9a".to_string()),
                source: Some("push".to_string()),
                actor: Some("admin".to_string()),
                recorded_at: Some("2026-04-01T12:34:56.789Z".to_string()),
                ..Made::default()
            },
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
        made: Made {
            version: RegistryVersion(4),
            hash: ContentHash::from("abc".to_string()),
            source: Some("rollback".to_string()),
            actor: Some("admin".to_string()),
            recorded_at: Some("2026-04-01T12:00:00Z".to_string()),
            ..Made::default()
        },
        rolled_back_to: Some(RegistryVersion(2)),
        default: Some("mana/fast".to_string()),
        aliases: vec![AliasView {
            name: "mana/fast".to_string(),
            description: Some("Fast text".to_string()),
            chain: strings(&["ollama/a", "groq/b"]),
        }],
        ..VersionView::default()
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
        registry_version: Some(RegistryVersion(2)),
        hash: Some(ContentHash::from("0123456789abcdef".to_string())),
        actor: Some("admin".to_string()),
        recorded_at: Some("2026-04-01T12:00:00Z".to_string()),
        source: Some("push".to_string()),
        to_version: Some(RegistryVersion(1)),
        errors: None,
        rollout: None,
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
    assert!(lines[2].ends_with("rolled back: version 2, restoring version 1, hash 0123456789ab"));
    assert!(lines[3].ends_with("reload rejected: line 2: bad; line 9: worse"));
    assert_eq!(lines[4], "(more: --after 3)");
}

fn sample_diff() -> DiffView {
    DiffView {
        from: RegistryVersion(3),
        to: RegistryVersion(5),
        diff: Diff {
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
            providers_changed: false,
        },
    }
}

#[test]
fn diff_without_colour() {
    let target = VersionView {
        made: Made {
            version: RegistryVersion(5),
            hash: ContentHash::default(),
            source: None,
            actor: None,
            recorded_at: None,
            ..Made::default()
        },
        rolled_back_to: None,
        default: None,
        aliases: vec![AliasView {
            name: "mana/new".to_string(),
            description: None,
            chain: strings(&["a", "b"]),
        }],
        ..VersionView::default()
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
        from: RegistryVersion(1),
        to: RegistryVersion(2),
        diff: Diff {
            added: vec![],
            removed: vec![],
            changed: vec![],
            default_changed: None,
            providers_changed: false,
        },
    };
    assert_eq!(
        diff(&empty, None, Style::default()),
        "diff version 1 → 2\nno changes\n"
    );
}

#[test]
fn publish_messages() {
    let answer = |changed| Published {
        version: RegistryVersion(4),
        hash: Some(ContentHash::from("3fa2c1d9e0ab4f5e".to_string())),
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
