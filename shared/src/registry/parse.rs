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
//! Duplicate keys are an error (the original silently kept the last one).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::{Alias, AliasName, ChainEntry, ProviderDecl, RegistryDocument};
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

pub(super) fn parse_document(text: &str, source: &str) -> Result<RegistryDocument, RegistryErrors> {
    let root: Value = serde_yaml::from_str(text)
        .map_err(|e| RegistryErrors(vec![format!("failed to parse {source}: {e}")]))?;
    let mut errors = Vec::new();
    let Value::Mapping(root) = root else {
        return Err(RegistryErrors(vec![format!(
            "yaml root must be a mapping, got {}",
            type_name(&root)
        )]));
    };
    let aliases = parse_aliases(&root, &mut errors);
    let default = parse_default(&root, &aliases, &mut errors);
    let providers = parse_providers(&root, &mut errors);
    if errors.is_empty() {
        Ok(RegistryDocument {
            aliases,
            default,
            providers,
        })
    } else {
        Err(RegistryErrors(errors))
    }
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
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errors.push(format!(
                "provider name {} must be a non-empty word (letters, digits, '-', '_')",
                repr(key)
            ));
            continue;
        }
        let base_url = body
            .get("base_url")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            errors.push(format!("provider '{id}': base_url must be an http(s) URL"));
            continue;
        }
        let api_key_env = match body.get("api_key_env") {
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
