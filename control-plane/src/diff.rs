//! What changed between two registry documents: aliases added, removed and changed, and
//! the default — an explicit diff an admin can read before and after a push or rollback.

use mana_llm_shared::{ChainEntry, RegistryDocument};
use serde::{Deserialize, Serialize};

/// Also the body of the admin API's diff answer ([`crate::contract::DiffView`]), read back by
/// the CLI: every field defaults when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Diff {
    /// Alias names only in the newer document, sorted.
    pub added: Vec<String>,
    /// Alias names only in the older document, sorted.
    pub removed: Vec<String>,
    /// Aliases in both whose chain or description differs, sorted by name.
    pub changed: Vec<ChangedAlias>,
    /// When the default alias differs.
    pub default_changed: Option<DefaultChange>,
    /// Whether the `providers:` section differs.
    pub providers_changed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangedAlias {
    pub name: String,
    pub from_chain: Vec<String>,
    pub to_chain: Vec<String>,
    pub description_changed: bool,
}

/// The default alias before and after (`None`: no default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DefaultChange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Diff {
    /// Whether the two documents are the same content.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.default_changed.is_none()
            && !self.providers_changed
    }
}

/// The changes that turn `from` into `to`.
pub fn diff(from: &RegistryDocument, to: &RegistryDocument) -> Diff {
    let added = to
        .aliases
        .keys()
        .filter(|name| !from.aliases.contains_key(*name))
        .map(|name| name.to_string())
        .collect();
    let removed = from
        .aliases
        .keys()
        .filter(|name| !to.aliases.contains_key(*name))
        .map(|name| name.to_string())
        .collect();
    let changed = from
        .aliases
        .iter()
        .filter_map(|(name, old)| {
            let new = to.aliases.get(name)?;
            let description_changed = old.description != new.description;
            (old.chain != new.chain || description_changed).then(|| ChangedAlias {
                name: name.to_string(),
                from_chain: render(&old.chain),
                to_chain: render(&new.chain),
                description_changed,
            })
        })
        .collect();
    let default_changed = (from.default != to.default).then(|| DefaultChange {
        from: from.default.as_ref().map(|d| d.to_string()),
        to: to.default.as_ref().map(|d| d.to_string()),
    });
    Diff {
        added,
        removed,
        changed,
        default_changed,
        providers_changed: from.providers != to.providers,
    }
}

/// A chain as strings; an entry's first-token timeout is shown so a timeout-only change is
/// visible.
fn render(chain: &[ChainEntry]) -> Vec<String> {
    chain
        .iter()
        .map(|entry| match entry.first_token_timeout {
            Some(t) => format!("{} (first token within {} ms)", entry.target, t.as_millis()),
            None => entry.target.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mana_llm_shared::{Registry, RegistryVersion};

    use super::*;

    fn doc(text: &str) -> RegistryDocument {
        Registry::parse(text, "test", RegistryVersion(1))
            .unwrap()
            .document()
            .clone()
    }

    #[test]
    fn reports_added_removed_changed_and_default() {
        let old = doc("aliases:\n  mana/a: {chain: [ollama/x]}\n  mana/b: {description: one, chain: [ollama/y, groq/z]}\ndefault: mana/a\n");
        let new = doc("aliases:\n  mana/b: {description: two, chain: [groq/z]}\n  mana/c: {chain: [ollama/x]}\ndefault: mana/c\n");
        let d = diff(&old, &new);
        assert_eq!(d.added, vec!["mana/c"]);
        assert_eq!(d.removed, vec!["mana/a"]);
        assert_eq!(
            d.changed,
            vec![ChangedAlias {
                name: "mana/b".to_owned(),
                from_chain: vec!["ollama/y".to_owned(), "groq/z".to_owned()],
                to_chain: vec!["groq/z".to_owned()],
                description_changed: true,
            }]
        );
        assert_eq!(
            d.default_changed,
            Some(DefaultChange {
                from: Some("mana/a".to_owned()),
                to: Some("mana/c".to_owned())
            })
        );
        assert!(!d.providers_changed);
        assert!(!d.is_empty());
    }

    #[test]
    fn equal_documents_have_an_empty_diff() {
        let a = doc("aliases:\n  mana/a: {chain: [ollama/x]}\n");
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn a_timeout_only_change_is_visible() {
        let old = doc("aliases:\n  mana/a: {chain: [ollama/x]}\n");
        let new = doc(
            "aliases:\n  mana/a: {chain: [{target: ollama/x, first_token_timeout_ms: 4000}]}\n",
        );
        let d = diff(&old, &new);
        assert_eq!(
            d.changed[0].to_chain,
            vec!["ollama/x (first token within 4000 ms)"]
        );
        assert!(!d.changed[0].description_changed);
    }
}
