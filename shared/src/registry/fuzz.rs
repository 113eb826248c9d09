//! Property tests that stay: whatever text arrives (an admin push, a file, Redis), parsing
//! answers `Ok` or a list of errors, never a panic, a hang or unbounded work; and whatever
//! parses is accepted again when it comes back structured (from Redis).
//!
//! Run with the rest of the suite (a few hundred cases each, in well under a second);
//! `PROPTEST_CASES=100000 cargo test -p mana-llm-shared fuzz` runs a long session. A failing
//! case found here is kept below as a regression test.

use proptest::prelude::*;

use super::*;

/// YAML-looking text: the characters and tokens the grammar cares about, in any order.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("aliases:".to_owned()),
        Just("mana/a:".to_owned()),
        Just("chain:".to_owned()),
        Just("default:".to_owned()),
        Just("providers:".to_owned()),
        Just("base_url:".to_owned()),
        Just("api_key_env:".to_owned()),
        Just("- ".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("<<: ".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(", ".to_owned()),
        Just("ollama/x".to_owned()),
        Just("http://h/v1".to_owned()),
        "[a-zA-Z0-9_:/.-]{0,12}",
    ];
    proptest::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

/// A well-formed registry with arbitrary names and targets.
fn registry_text() -> impl Strategy<Value = String> {
    (
        proptest::collection::btree_map(
            "[a-z][a-z0-9-]{0,8}",
            proptest::collection::vec("[a-z]{1,6}/[a-z0-9:.-]{1,10}", 1..4),
            1..5,
        ),
        any::<bool>(),
    )
        .prop_map(|(aliases, with_default)| {
            let mut text = String::from("aliases:\n");
            for (name, chain) in &aliases {
                text.push_str(&format!(
                    "  mana/{name}:\n    chain: [{}]\n",
                    chain.join(", ")
                ));
            }
            if with_default {
                if let Some(first) = aliases.keys().next() {
                    text.push_str(&format!("default: mana/{first}\n"));
                }
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,400}") {
        let _ = Registry::parse(&text, "fuzz", RegistryVersion(1));
        let policy = RegistryPolicy::default();
        let _ = Registry::parse_with(&text, DocumentFormat::Json, "fuzz", RegistryVersion(1), &policy);
    }

    #[test]
    fn yaml_shaped_text_parses_or_is_refused_without_panicking(text in yamlish()) {
        let _ = Registry::parse(&text, "fuzz", RegistryVersion(1));
    }

    #[test]
    fn whatever_parses_is_accepted_again_from_redis(text in registry_text()) {
        if let Ok(registry) = Registry::parse(&text, "fuzz", RegistryVersion(3)) {
            let again = Registry::verified(
                registry.document().clone(),
                RegistryVersion(3),
                registry.hash(),
                &RegistryPolicy::default(),
            );
            prop_assert_eq!(again.as_ref().map(Registry::hash), Ok(registry.hash()));
        }
    }
}
