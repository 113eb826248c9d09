//! The original service's registry checklist, plus what we added (duplicates, extended
//! entries, providers, hashes).

use super::*;

const FIXTURE: &str = "
aliases:
  mana/fast-text:
    description: fast
    chain: [ollama/qwen2.5:7b, groq/llama-3.1-8b-instant]
  mana/long-form:
    description: long
    chain:
      - ollama/gemma3:12b
      - groq/llama-3.3-70b-versatile
default: mana/fast-text
";

fn load(text: &str) -> Result<Registry, RegistryErrors> {
    Registry::parse(text, "aliases.yaml", RegistryVersion(1))
}

fn errors(text: &str) -> Vec<String> {
    load(text).unwrap_err().0
}

fn has(errors: &[String], fragment: &str) -> bool {
    errors.iter().any(|e| e.contains(fragment))
}

#[test]
fn loads_valid_yaml() {
    let r = load(FIXTURE).unwrap();
    assert_eq!(r.default_alias().unwrap().as_str(), "mana/fast-text");
    assert_eq!(r.version(), RegistryVersion(1));
    let long = r.resolve("mana/long-form").unwrap();
    assert_eq!(long.description, "long");
    let chain: Vec<String> = long.chain.iter().map(|e| e.target.to_string()).collect();
    assert_eq!(chain, ["ollama/gemma3:12b", "groq/llama-3.3-70b-versatile"]);
}

#[test]
fn aliases_are_listed_sorted() {
    let r = load(FIXTURE).unwrap();
    let names: Vec<&str> = r.aliases().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["mana/fast-text", "mana/long-form"]);
}

#[test]
fn unknown_alias_names_itself_and_the_known_ones() {
    let e = load(FIXTURE).unwrap().resolve("mana/nope").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown alias 'mana/nope' (known: ['mana/fast-text', 'mana/long-form'])"
    );
}

#[test]
fn default_is_optional() {
    let r = load("aliases:\n  mana/a:\n    chain: [ollama/x]\n").unwrap();
    assert!(r.default_alias().is_none());
    assert_eq!(r.resolve("mana/a").unwrap().description, "");
}

#[test]
fn invalid_yaml() {
    assert!(has(
        &errors("aliases: [unclosed"),
        "failed to parse aliases.yaml"
    ));
}

#[test]
fn root_must_be_a_mapping() {
    assert_eq!(
        errors("- a\n- b\n"),
        ["yaml root must be a mapping, got list"]
    );
}

#[test]
fn aliases_must_be_a_non_empty_mapping() {
    assert!(has(
        &errors("aliases: [a]\n"),
        "`aliases` must be a mapping, got list"
    ));
    assert!(has(&errors("aliases: {}\n"), "`aliases` is empty"));
    assert!(has(&errors("default: mana/x\n"), "`aliases` is empty"));
}

#[test]
fn names_live_in_the_mana_namespace_with_one_segment() {
    let e = errors("aliases:\n  fast-text: {chain: [ollama/x]}\n  mana/foo/bar: {chain: [ollama/x]}\n  mana/: {chain: [ollama/x]}\n");
    assert!(has(&e, "alias name 'fast-text' must start with 'mana/'"));
    assert!(has(
        &e,
        "alias name 'mana/foo/bar' must have exactly one segment after 'mana/'"
    ));
    assert!(has(&e, "alias name 'mana/' must have exactly one segment"));
}

#[test]
fn body_description_and_chain_shapes() {
    let e = errors(
        "aliases:\n  mana/a: 5\n  mana/b: {description: 3, chain: [ollama/x]}\n  mana/c: {chain: ollama/x}\n  mana/d: {chain: []}\n  mana/e: {}\n",
    );
    assert!(has(&e, "alias 'mana/a': body must be a mapping, got int"));
    assert!(has(&e, "alias 'mana/b': description must be a string"));
    assert!(has(&e, "alias 'mana/c': chain must be a list, got str"));
    assert!(has(&e, "alias 'mana/d': chain must not be empty"));
    assert!(has(
        &e,
        "alias 'mana/e': chain must be a list, got NoneType"
    ));
    assert_eq!(e.len(), 5, "every error reported in one pass: {e:?}");
}

#[test]
fn chain_entries_need_a_provider_prefix_and_must_be_strings() {
    let e = errors("aliases:\n  mana/a:\n    chain: [gemma3:4b, 42, '', ~]\n");
    assert!(has(
        &e,
        "alias 'mana/a': chain[0] = 'gemma3:4b' must include a provider prefix"
    ));
    assert!(has(
        &e,
        "alias 'mana/a': chain[1] must be a non-empty string, got 42"
    ));
    assert!(has(
        &e,
        "alias 'mana/a': chain[2] must be a non-empty string, got ''"
    ));
    assert!(has(
        &e,
        "alias 'mana/a': chain[3] must be a non-empty string, got None"
    ));
}

#[test]
fn default_must_name_a_defined_alias() {
    let e = errors("aliases:\n  mana/a: {chain: [ollama/x]}\ndefault: mana/b\n");
    assert_eq!(
        e,
        ["`default` references unknown alias 'mana/b' (known: ['mana/a'])"]
    );
    assert!(has(
        &errors("aliases:\n  mana/a: {chain: [ollama/x]}\ndefault: 3\n"),
        "`default` must be a string, got int"
    ));
}

#[test]
fn duplicate_keys_are_an_error() {
    let e = errors("aliases:\n  mana/a: {chain: [ollama/x]}\n  mana/a: {chain: [groq/y]}\n");
    assert!(has(&e, "duplicate entry with key"), "{e:?}");
}

#[test]
fn extended_entries_and_providers() {
    let r = load(
        "aliases:\n  mana/a:\n    chain:\n      - {target: groq/y, first_token_timeout_ms: 4000}\n      - lmstudio/qwen\nproviders:\n  lmstudio: {base_url: 'http://127.0.0.1:1234/v1', api_key_env: LMSTUDIO_API_KEY}\n",
    )
    .unwrap();
    let chain = &r.resolve("mana/a").unwrap().chain;
    assert_eq!(chain[0].first_token_timeout, Some(Duration::from_secs(4)));
    assert_eq!(chain[1].target.provider.as_str(), "lmstudio");
    let p: Vec<_> = r.providers().collect();
    assert_eq!(p[0].base_url, "http://127.0.0.1:1234/v1");
    assert_eq!(p[0].api_key_env.as_deref(), Some("LMSTUDIO_API_KEY"));
    let e = errors("aliases:\n  mana/a: {chain: [{target: groq/y, first_token_timeout_ms: -1}]}\nproviders:\n  x: {base_url: ftp://nope}\n");
    assert!(has(&e, "first_token_timeout_ms must be a positive integer"));
    assert!(has(&e, "provider 'x': base_url must be an http(s) URL"));
}

#[test]
fn equal_content_has_equal_hash_whatever_the_formatting() {
    let a = load(FIXTURE).unwrap();
    let reordered = "default: mana/fast-text\naliases:\n  mana/long-form: {description: long, chain: [ollama/gemma3:12b, groq/llama-3.3-70b-versatile]}\n  mana/fast-text: {description: fast, chain: [ollama/qwen2.5:7b, groq/llama-3.1-8b-instant]}\n";
    let b = load(reordered).unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    let c = load(&FIXTURE.replace("gemma3:12b", "gemma3:27b")).unwrap();
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn the_shipped_file_loads_with_the_five_classes() {
    let text = include_str!("../../../aliases.yaml");
    let r = load(text).unwrap();
    let names: Vec<&str> = r.aliases().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mana/fast-text",
            "mana/long-form",
            "mana/reasoning",
            "mana/structured",
            "mana/vision"
        ]
    );
    assert_eq!(r.default_alias().unwrap().as_str(), "mana/fast-text");
    let long = r.resolve("mana/long-form").unwrap();
    assert!(long.chain.len() >= 2);
    assert!(r.mentions("groq/llama-3.1-8b-instant"));
}

#[test]
fn the_content_hash_is_pinned() {
    // A known answer, computed outside this code: SHA-256 of the hand-written canonical JSON
    // {"aliases":{"mana/fast-text":{"name":"mana/fast-text","description":"fast","chain":
    // [{"target":"ollama/qwen2.5:7b"},{"target":"groq/llama-3.1-8b-instant"}]},"mana/long-form":
    // {…"gemma3:12b"…"llama-3.3-70b-versatile"…}},"default":"mana/fast-text"} (Python's
    // hashlib). Every version hash and cache key depends on the canonical form, so changing
    // it must be a decision, not an accident.
    assert_eq!(
        load(FIXTURE).unwrap().hash(),
        "fcf96f848e8db3e30e12f0058d075998db8d3c7e1df3316f9dac5711b44774fe"
    );
}

#[test]
fn unknown_keys_are_errors() {
    let e = errors("aliases:\n  mana/a: {chain: [ollama/x]}\ndefualt: mana/a\n");
    assert_eq!(
        e,
        ["the document has an unknown key 'defualt' (known: aliases, default, providers)"]
    );
    let e = errors("aliases:\n  mana/a: {chain: [ollama/x]}\nproviders:\n  lm: {base_url: 'http://h/v1', api_key: X_API_KEY}\n");
    assert!(
        has(&e, "provider 'lm' has an unknown key 'api_key'"),
        "{e:?}"
    );
}

#[test]
fn a_declared_provider_may_name_only_allowed_key_variables() {
    for env in [
        "HOME",
        "AWS_SECRET_ACCESS_KEY",
        "MANA_LLM_ADMIN_TOKEN",
        "REDIS_URL",
        "OPENAI_API_KEY",
        "GPU_API_KEY",
    ] {
        let e = errors(&format!("aliases:\n  mana/a: {{chain: [lm/x]}}\nproviders:\n  lm: {{base_url: 'http://h/v1', api_key_env: {env}}}\n"));
        assert!(
            has(
                &e,
                &format!("api_key_env '{env}' is not an allowed key variable")
            ),
            "{e:?}"
        );
    }
    let text = "aliases:\n  mana/a: {chain: [lm/x]}\nproviders:\n  lm: {base_url: 'http://h/v1', api_key_env: OPENAI_API_KEY}\n";
    let policy = RegistryPolicy::default().with_key_envs(&["OPENAI_API_KEY"]);
    assert!(
        Registry::parse_with(text, DocumentFormat::Yaml, "t", RegistryVersion(1), &policy).is_ok()
    );
}

#[test]
fn a_declared_provider_cannot_shadow_a_built_in_or_carry_credentials() {
    let e = errors(
        "aliases:\n  mana/a: {chain: [groq/x]}\nproviders:\n  groq: {base_url: 'http://h/v1'}\n",
    );
    assert!(
        has(
            &e,
            "provider 'groq': the name of a built-in provider cannot be redeclared"
        ),
        "{e:?}"
    );
    let e = errors(
        "aliases:\n  mana/a: {chain: [lm/x]}\nproviders:\n  lm: {base_url: 'http://u:p@h/v1'}\n",
    );
    assert!(
        has(&e, "provider 'lm': base_url must not carry credentials"),
        "{e:?}"
    );
    let e = errors(
        "aliases:\n  mana/a: {chain: [lm/x]}\nproviders:\n  lm: {base_url: 'http://h/v1?k=1'}\n",
    );
    assert!(has(&e, "must not have a query or a fragment"), "{e:?}");
    let policy = RegistryPolicy::default().with_hosts(&["llm.internal"]);
    let e = Registry::parse_with("aliases:\n  mana/a: {chain: [lm/x]}\nproviders:\n  lm: {base_url: 'http://evil.example/v1'}\n", DocumentFormat::Yaml, "t", RegistryVersion(1), &policy).unwrap_err();
    assert!(has(&e.0, "host 'evil.example'"), "{e:?}");
}

#[test]
fn json_is_read_as_json_with_the_same_rules() {
    let json = r#"{"aliases": {"mana/a": {"chain": ["ollama/x"]}}, "default": "mana/a"}"#;
    let r = Registry::parse_with(
        json,
        DocumentFormat::Json,
        "t",
        RegistryVersion(1),
        &RegistryPolicy::default(),
    )
    .unwrap();
    assert_eq!(
        r.hash(),
        load("aliases:\n  mana/a: {chain: [ollama/x]}\ndefault: mana/a\n")
            .unwrap()
            .hash()
    );
    let e = Registry::parse_with(
        "aliases: {}",
        DocumentFormat::Json,
        "t",
        RegistryVersion(1),
        &RegistryPolicy::default(),
    )
    .unwrap_err();
    assert!(has(&e.0, "failed to parse t as JSON"), "{e:?}");
}

#[test]
fn expensive_documents_are_refused_before_parsing() {
    let mut bomb = String::from("b0: &b0 {k: v, l: w}\n");
    for i in 1..30 {
        bomb.push_str(&format!(
            "b{i}: &b{i} {{x: *b{p}, y: *b{p}, <<: *b{p}}}\n",
            p = i - 1
        ));
    }
    assert!(has(
        &errors(&bomb),
        "nodes (YAML aliases are expanded in full)"
    ));
    let nested = format!("aliases: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(has(
        &errors(&nested),
        "failed to parse aliases.yaml: recursion limit exceeded"
    ));
    let nested = format!("aliases: {}{}", "[".repeat(40), "]".repeat(40));
    assert!(has(&errors(&nested), "nests deeper than 32 levels"));
    let huge = format!("# {}\n{FIXTURE}", "x".repeat(1024 * 1024));
    assert!(has(&errors(&huge), "the limit is 1048576 bytes"));
}

#[test]
fn a_structured_document_is_checked_like_a_parsed_one() {
    let good = load(FIXTURE).unwrap();
    let policy = RegistryPolicy::default();
    let ok = Registry::verified(
        good.document().clone(),
        RegistryVersion(7),
        good.hash(),
        &policy,
    )
    .unwrap();
    assert_eq!((ok.version(), ok.hash()), (RegistryVersion(7), good.hash()));

    let e = Registry::verified(good.document().clone(), RegistryVersion(7), "0000", &policy)
        .unwrap_err();
    assert!(has(&e.0, "does not match the claimed 0000"), "{e:?}");
    assert!(Registry::verified(
        good.document().clone(),
        RegistryVersion(0),
        good.hash(),
        &policy
    )
    .is_err());

    // Documents no parser would produce, as someone writing Redis directly could.
    let mut doc: RegistryDocument = serde_json::from_value(serde_json::json!({
        "aliases": {
            "openai/x": {"name": "openai/x", "description": "", "chain": []},
            "mana/a": {"name": "mana/b", "description": "", "chain": [{"target": "ollama/x"}]}
        },
        "default": "mana/zzz",
        "providers": {"evil": {"id": "evil", "base_url": "ftp://evil/", "api_key_env": "HOME"}}
    }))
    .unwrap();
    let hash = doc.content_hash();
    let e = Registry::verified(doc.clone(), RegistryVersion(2), &hash, &policy)
        .unwrap_err()
        .0;
    for fragment in [
        "alias name 'openai/x' must start with 'mana/'",
        "alias 'openai/x': chain must not be empty",
        "alias 'mana/a' is stored under another name",
        "`default` references unknown alias 'mana/zzz'",
        "provider 'evil': base_url must be an http(s) URL",
        "provider 'evil': api_key_env 'HOME' is not an allowed key variable",
    ] {
        assert!(has(&e, fragment), "{fragment}: {e:?}");
    }
    doc.aliases.clear();
    let hash = doc.content_hash();
    let e = Registry::verified(doc, RegistryVersion(2), &hash, &policy)
        .unwrap_err()
        .0;
    assert!(has(&e, "`aliases` is empty"), "{e:?}");
}

// --- Pinned by mutation testing (scripts/mutants registry): each test kills survivors. ---

#[test]
fn versions_count_up_and_print_as_numbers() {
    assert_eq!(RegistryVersion(4).next(), RegistryVersion(5));
    assert_eq!(RegistryVersion(0).next(), RegistryVersion(1));
    assert_eq!(RegistryVersion(12).to_string(), "12");
}

#[test]
fn errors_print_joined() {
    let e = RegistryErrors(vec!["one".to_owned(), "two".to_owned()]);
    assert_eq!(e.to_string(), "one; two");
}

#[test]
fn mentions_needs_both_the_provider_and_the_model() {
    let r = load(FIXTURE).unwrap();
    assert!(r.mentions("ollama/qwen2.5:7b"));
    assert!(r.mentions_target("groq", "llama-3.3-70b-versatile"));
    assert!(!r.mentions("groq/qwen2.5:7b"), "model of another provider");
    assert!(!r.mentions("ollama/llama-3.3-70b-versatile"), "same");
    assert!(!r.mentions("ollama/unknown"));
    assert!(!r.mentions("no-slash"));
    assert!(!r.mentions_target("nobody", "qwen2.5:7b"));
}

#[test]
fn a_first_token_deadline_survives_a_round_trip_through_json() {
    let r = load("aliases:\n  mana/a:\n    chain: [{target: ollama/x, first_token_timeout_ms: 300}, groq/y]\n").unwrap();
    let json = serde_json::to_string(r.document()).unwrap();
    let back: RegistryDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, r.document());
    let chain = &back.aliases.values().next().unwrap().chain;
    assert_eq!(
        chain[0].first_token_timeout,
        Some(Duration::from_millis(300))
    );
    assert_eq!(chain[1].first_token_timeout, None);
}

#[test]
fn type_names_follow_python() {
    assert!(has(&errors("aliases: 1.5\n"), "got float"));
    assert!(has(&errors("aliases: 2\n"), "got int"));
    assert!(has(&errors("aliases: [a]\n"), "got list"));
}

#[test]
fn a_zero_first_token_deadline_is_refused_with_the_value() {
    let e =
        errors("aliases:\n  mana/a:\n    chain: [{target: ollama/x, first_token_timeout_ms: 0}]\n");
    assert!(
        has(
            &e,
            "first_token_timeout_ms must be a positive integer, got 0"
        ),
        "{e:?}"
    );
}

#[test]
fn a_blank_api_key_env_is_refused() {
    let e = errors("aliases:\n  mana/a: {chain: [lm/x]}\nproviders:\n  lm: {base_url: 'http://h:1/v1', api_key_env: '  '}\n");
    assert!(
        has(
            &e,
            "api_key_env must be the name of an environment variable"
        ),
        "{e:?}"
    );
}

#[test]
fn a_forbidden_key_variable_says_which_are_allowed() {
    let doc = "aliases:\n  mana/a: {chain: [lm/x]}\nproviders:\n  lm: {base_url: 'http://h:1/v1', api_key_env: SECRET_TOKEN}\n";
    let e = errors(doc);
    assert!(
        has(&e, "allowed by default: names ending in _API_KEY"),
        "{e:?}"
    );
    let policy = RegistryPolicy::default().with_key_envs(&["LM_*"]);
    let e = Registry::parse_with(doc, DocumentFormat::Yaml, "t", RegistryVersion(1), &policy)
        .unwrap_err()
        .0;
    assert!(has(&e, "MANA_LLM_PROVIDER_KEY_ENVS allows LM_*"), "{e:?}");
}

/// A structured document (as from Redis) gets every rule a parsed one gets.
mod verified_documents {
    use super::*;

    const GOOD: &str = "aliases:\n  mana/a: {chain: [ollama/x]}\nproviders:\n  lm-1_b: {base_url: 'http://h:1/v1'}\n";

    fn good() -> serde_json::Value {
        serde_json::to_value(load(GOOD).unwrap().document()).unwrap()
    }

    fn verify(doc: serde_json::Value) -> Result<Registry, RegistryErrors> {
        let doc: RegistryDocument = serde_json::from_value(doc).unwrap();
        let hash = doc.content_hash();
        Registry::verified(doc, RegistryVersion(2), &hash, &RegistryPolicy::default())
    }

    fn refused(doc: serde_json::Value, fragment: &str) {
        let e = verify(doc).unwrap_err().0;
        assert!(has(&e, fragment), "{e:?}");
    }

    fn renamed_alias(name: &str) -> serde_json::Value {
        let mut doc = good();
        let mut alias = doc["aliases"]["mana/a"].take();
        alias["name"] = name.into();
        doc["aliases"] = serde_json::json!({ name: alias });
        doc
    }

    #[test]
    fn the_good_document_passes() {
        assert!(verify(good()).is_ok());
    }

    #[test]
    fn alias_names_need_exactly_one_segment() {
        for name in ["mana/", "mana/a/b", "mana/ a", "mana/a "] {
            refused(renamed_alias(name), "exactly one segment after 'mana/'");
        }
        assert!(verify(renamed_alias("mana/b")).is_ok());
    }

    #[test]
    fn a_target_needs_a_model() {
        let mut doc = good();
        doc["aliases"]["mana/a"]["chain"][0]["target"] = "ollama/ ".into();
        refused(doc, "must be provider/model");
    }

    #[test]
    fn provider_names_are_words_under_their_own_key() {
        for key in ["", "a b", "a/b", "a.b"] {
            let mut doc = good();
            let mut decl = doc["providers"]["lm-1_b"].take();
            decl["id"] = key.into();
            doc["providers"] = serde_json::json!({ key: decl });
            refused(doc, "must be a non-empty word");
        }
        let mut doc = good();
        doc["providers"]["lm-1_b"]["id"] = "other".into();
        refused(doc, "must be a non-empty word");
    }
}
