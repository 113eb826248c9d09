//! Parsing and validating `aliases.yaml`, with the original service's rules and messages,
//! every error collected in one pass.
//!
//! ```yaml
//! aliases:                 # non-empty mapping
//!   mana/<class>:          # exactly one segment after `mana/`
//!     description: "…"     # optional string
//!     chain:               # non-empty list of `provider/model` strings, or
//!       - ollama/qwen2.5:7b
//!       - {target: groq/llama-3.1-8b-instant, first_token_timeout_ms: 4000}
//! default: mana/<class>    # optional; must name a defined alias
//! providers:               # optional: extra OpenAI-compatible providers
//!   lmstudio: {base_url: "http://localhost:1234/v1", api_key_env: LMSTUDIO_API_KEY}
//! ```
//! Duplicate keys are an error (the original silently kept the last one), and so are unknown
//! keys at the top level and in a provider (a typo would otherwise be silently ignored).
//! Before any of this the text is checked against the policy's size, nesting and alias
//! expansion bounds ([`guard`]), and after it against the operator's rules for providers
//! ([`RegistryPolicy`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::guard;
use super::{
    Alias, AliasName, ChainEntry, DocumentFormat, ProviderDecl, RegistryDocument, RegistryPolicy,
};
use crate::target::{ProviderId, Target, ALIAS_PREFIX};

/// Every problem found in one registry document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryErrors(pub Vec<String>);

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for RegistryErrors {}

/// Python's name for a YAML value's type, as the original's messages use it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "dict",
        Value::Tagged(_) => "tagged",
    }
}

/// Python's `repr` of a YAML scalar, for messages about bad chain entries.
fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_owned(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        other => type_name(other).to_owned(),
    }
}

/// The keys a registry document may have at its top level.
const TOP_LEVEL_KEYS: [&str; 3] = ["aliases", "default", "providers"];

/// The keys of one `providers:` entry.
const PROVIDER_KEYS: [&str; 2] = ["base_url", "api_key_env"];

pub(super) fn parse_document(
    text: &str,
    format: DocumentFormat,
    source: &str,
    policy: &RegistryPolicy,
) -> Result<RegistryDocument, RegistryErrors> {
    guard::check(text, &policy.limits)
        .map_err(|e| RegistryErrors(vec![format!("failed to parse {source}: {e}")]))?;
    let root: Value = match format {
        DocumentFormat::Yaml => serde_yaml::from_str(text)
            .map_err(|e| RegistryErrors(vec![format!("failed to parse {source}: {e}")]))?,
        // JSON is parsed as JSON (serde_json bounds its own nesting), then read with the same
        // rules as YAML.
        DocumentFormat::Json => serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("failed to parse {source} as JSON: {e}"))
            .and_then(|json| serde_yaml::to_value(json).map_err(|e| e.to_string()))
            .map_err(|e| RegistryErrors(vec![e]))?,
    };
    let mut errors = Vec::new();
    let Value::Mapping(root) = root else {
        return Err(RegistryErrors(vec![format!(
            "yaml root must be a mapping, got {}",
            type_name(&root)
        )]));
    };
    unknown_keys(&root, &TOP_LEVEL_KEYS, "the document", &mut errors);
    let aliases = parse_aliases(&root, &mut errors);
    let default = parse_default(&root, &aliases, &mut errors);
    let providers = parse_providers(&root, &mut errors);
    if !errors.is_empty() {
        return Err(RegistryErrors(errors));
    }
    let document = RegistryDocument {
        aliases,
        default,
        providers,
    };
    let violations = policy.violations(&document);
    if violations.is_empty() {
        Ok(document)
    } else {
        Err(RegistryErrors(violations))
    }
}

/// Reports every key of `map` not in `known` (a typo would otherwise be silently ignored).
fn unknown_keys(map: &Mapping, known: &[&str], owner: &str, errors: &mut Vec<String>) {
    for key in map.keys() {
        if !key.as_str().is_some_and(|k| known.contains(&k)) {
            errors.push(format!(
                "{owner} has an unknown key {} (known: {})",
                repr(key),
                known.join(", ")
            ));
        }
    }
}

/// Checks a document that did not come through [`parse_document`] (one read from Redis or
/// an admin API answer) against every rule a parsed one obeys.
pub(super) fn validate_document(
    document: &RegistryDocument,
    policy: &RegistryPolicy,
) -> Result<(), RegistryErrors> {
    let mut errors = Vec::new();
    if document.aliases.is_empty() {
        errors.push("`aliases` is empty — at least one alias is required".to_owned());
    }
    for (key, alias) in &document.aliases {
        let name = key.as_str();
        if alias.name != *key {
            errors.push(format!("alias '{name}' is stored under another name"));
        }
        match name.strip_prefix(ALIAS_PREFIX) {
            None => errors.push(format!(
                "alias name '{name}' must start with 'mana/' (the reserved namespace)"
            )),
            Some(class) if class.is_empty() || class.contains('/') || class.trim() != class => {
                errors.push(format!(
                    "alias name '{name}' must have exactly one segment after 'mana/'"
                ))
            }
            Some(_) => {}
        }
        if alias.chain.is_empty() {
            errors.push(format!("alias '{name}': chain must not be empty"));
        }
        for (i, entry) in alias.chain.iter().enumerate() {
            let provider = entry.target.provider.as_str();
            if provider.is_empty() || entry.target.model.trim().is_empty() {
                errors.push(format!(
                    "alias '{name}': chain[{i}] = '{}' must be provider/model",
                    entry.target
                ));
            }
            if entry.first_token_timeout.is_some_and(|t| t.is_zero()) {
                errors.push(format!(
                    "alias '{name}': chain[{i}].first_token_timeout_ms must be a positive integer"
                ));
            }
        }
    }
    if let Some(default) = &document.default {
        if !document.aliases.contains_key(default) {
            errors.push(format!("`default` references unknown alias '{default}'"));
        }
    }
    for (key, decl) in &document.providers {
        if decl.id != *key || !is_word(key.as_str()) {
            errors.push(format!(
                "provider name '{key}' must be a non-empty word (letters, digits, '-', '_')"
            ));
        }
    }
    errors.extend(policy.violations(document));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryErrors(errors))
    }
}

/// A provider name: letters, digits, `-` and `_`.
fn is_word(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_aliases(root: &Mapping, errors: &mut Vec<String>) -> BTreeMap<AliasName, Alias> {
    let mut out = BTreeMap::new();
    let aliases = match root.get("aliases") {
        None | Some(Value::Null) => {
            errors.push("`aliases` is empty — at least one alias is required".to_owned());
            return out;
        }
        Some(Value::Mapping(m)) => m,
        Some(other) => {
            errors.push(format!(
                "`aliases` must be a mapping, got {}",
                type_name(other)
            ));
            return out;
        }
    };
    if aliases.is_empty() {
        errors.push("`aliases` is empty — at least one alias is required".to_owned());
    }
    for (key, body) in aliases {
        let name = match key {
            Value::String(s) => s.trim().to_owned(),
            other => repr(other),
        };
        let Some(class) = name.strip_prefix(ALIAS_PREFIX) else {
            errors.push(format!(
                "alias name '{name}' must start with 'mana/' (the reserved namespace)"
            ));
            continue;
        };
        if class.is_empty() || class.contains('/') {
            errors.push(format!(
                "alias name '{name}' must have exactly one segment after 'mana/'"
            ));
            continue;
        }
        if let Some(alias) = parse_alias(&name, body, errors) {
            out.insert(alias.name.clone(), alias);
        }
    }
    out
}

fn parse_alias(name: &str, body: &Value, errors: &mut Vec<String>) -> Option<Alias> {
    let Value::Mapping(body) = body else {
        errors.push(format!(
            "alias '{name}': body must be a mapping, got {}",
            type_name(body)
        ));
        return None;
    };
    let before = errors.len();
    let description = match body.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(_) => {
            errors.push(format!("alias '{name}': description must be a string"));
            String::new()
        }
    };
    let chain = match body.get("chain") {
        Some(Value::Sequence(items)) if items.is_empty() => {
            errors.push(format!("alias '{name}': chain must not be empty"));
            Vec::new()
        }
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| parse_entry(name, i, item, errors))
            .collect(),
        Some(other) => {
            errors.push(format!(
                "alias '{name}': chain must be a list, got {}",
                type_name(other)
            ));
            Vec::new()
        }
        None => {
            errors.push(format!(
                "alias '{name}': chain must be a list, got NoneType"
            ));
            Vec::new()
        }
    };
    (errors.len() == before).then(|| Alias {
        name: AliasName(name.to_owned()),
        description,
        chain,
    })
}

fn parse_entry(name: &str, i: usize, item: &Value, errors: &mut Vec<String>) -> Option<ChainEntry> {
    let (text, timeout) = match item {
        Value::String(s) if !s.trim().is_empty() => (s.trim().to_owned(), None),
        // The extended form: {target: provider/model, first_token_timeout_ms: N}.
        Value::Mapping(m) => {
            let target = m
                .get("target")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let Some(target) = target else {
                errors.push(format!(
                    "alias '{name}': chain[{i}].target must be a non-empty string"
                ));
                return None;
            };
            let timeout = match m.get("first_token_timeout_ms") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64().filter(|ms| *ms > 0) {
                    Some(ms) => Some(Duration::from_millis(ms)),
                    None => {
                        errors.push(format!(
                            "alias '{name}': chain[{i}].first_token_timeout_ms must be a positive integer, got {}",
                            repr(v)
                        ));
                        return None;
                    }
                },
            };
            (target.to_owned(), timeout)
        }
        other => {
            errors.push(format!(
                "alias '{name}': chain[{i}] must be a non-empty string, got {}",
                repr(other)
            ));
            return None;
        }
    };
    if !text.contains('/') {
        errors.push(format!(
            "alias '{name}': chain[{i}] = '{text}' must include a provider prefix (e.g. 'ollama/...', 'groq/...')"
        ));
        return None;
    }
    Some(ChainEntry {
        target: Target::parse(&text),
        first_token_timeout: timeout,
    })
}

fn parse_default(
    root: &Mapping,
    aliases: &BTreeMap<AliasName, Alias>,
    errors: &mut Vec<String>,
) -> Option<AliasName> {
    match root.get("default") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => {
            let d = d.trim();
            let known = aliases.keys().any(|k| k.as_str() == d);
            // Only complain when the aliases themselves parsed; otherwise the message would lie.
            if !known && !aliases.is_empty() {
                let names: Vec<String> = aliases.keys().map(|k| format!("'{k}'")).collect();
                errors.push(format!(
                    "`default` references unknown alias '{d}' (known: [{}])",
                    names.join(", ")
                ));
            }
            known.then(|| AliasName(d.to_owned()))
        }
        Some(other) => {
            errors.push(format!(
                "`default` must be a string, got {}",
                type_name(other)
            ));
            None
        }
    }
}

fn parse_providers(root: &Mapping, errors: &mut Vec<String>) -> BTreeMap<ProviderId, ProviderDecl> {
    let mut out = BTreeMap::new();
    let providers = match root.get("providers") {
        None | Some(Value::Null) => return out,
        Some(Value::Mapping(m)) => m,
        Some(other) => {
            errors.push(format!(
                "`providers` must be a mapping, got {}",
                type_name(other)
            ));
            return out;
        }
    };
    for (key, body) in providers {
        let id = key.as_str().map(str::trim).unwrap_or_default();
        if !is_word(id) {
            errors.push(format!(
                "provider name {} must be a non-empty word (letters, digits, '-', '_')",
                repr(key)
            ));
            continue;
        }
        let Value::Mapping(fields) = body else {
            errors.push(format!(
                "provider '{id}': body must be a mapping, got {}",
                type_name(body)
            ));
            continue;
        };
        unknown_keys(fields, &PROVIDER_KEYS, &format!("provider '{id}'"), errors);
        let base_url = fields
            .get("base_url")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            errors.push(format!("provider '{id}': base_url must be an http(s) URL"));
            continue;
        }
        let api_key_env = match fields.get("api_key_env") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(_) => {
                errors.push(format!(
                    "provider '{id}': api_key_env must be the name of an environment variable"
                ));
                continue;
            }
        };
        let id = ProviderId::new(id);
        out.insert(
            id.clone(),
            ProviderDecl {
                id,
                base_url: base_url.to_owned(),
                api_key_env,
            },
        );
    }
    out
}
