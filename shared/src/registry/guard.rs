//! Bounds on a registry document before it is parsed: size, nesting and YAML alias
//! expansion.
//!
//! A registry document comes from an admin push, a file or Redis, and the YAML parser
//! expands aliases (`*a`) in full: an 88 KB "billion laughs" document of nested aliases
//! asked serde_yaml for gigabytes, and 200 KB of nesting cost seconds of CPU before the
//! error. So the text is first walked as a stream of events (linear time, no tree built),
//! counting the nodes the document would have once every alias is expanded and the depth
//! of nesting, and refused early past either bound. Only a document that passes is given
//! to the real parser.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// The bounds a registry document must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of mappings and sequences (a registry needs five).
    pub max_depth: usize,
    /// Most nodes after every YAML alias is expanded.
    pub max_nodes: u64,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 32,
            max_nodes: 200_000,
        }
    }
}

/// Checks `text` against `limits`; the error is one message an admin can read.
pub fn check(text: &str, limits: &DocumentLimits) -> Result<(), String> {
    if text.len() > limits.max_bytes {
        return Err(format!(
            "the document is {} bytes; the limit is {} bytes",
            text.len(),
            limits.max_bytes
        ));
    }
    let mut walk = Walk::default();
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(()),
            Ok((event, _)) => walk.step(event, limits)?,
            // Reported here, not left to the real parser: this scanner stops at its own
            // recursion limit in microseconds where serde_yaml spent seconds.
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The state of the event walk.
#[derive(Default)]
struct Walk {
    /// Open collections: each one's anchor id (0 = none) and its expanded size so far.
    open: Vec<(usize, u64)>,
    /// Expanded size of every anchored node seen, by anchor id.
    anchored: HashMap<usize, u64>,
    /// Nodes of the whole document once expanded.
    total: u64,
}

impl Walk {
    fn step(&mut self, event: Event, limits: &DocumentLimits) -> Result<(), String> {
        match event {
            Event::Scalar(_, _, anchor, _) => {
                if anchor != 0 {
                    self.anchored.insert(anchor, 1);
                }
                self.add(1, limits)
            }
            Event::Alias(anchor) => {
                let size = self.anchored.get(&anchor).copied().unwrap_or(1);
                self.add(size, limits)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.add(1, limits)?;
                self.open.push((anchor, 1));
                if self.open.len() > limits.max_depth {
                    return Err(format!(
                        "the document nests deeper than {} levels",
                        limits.max_depth
                    ));
                }
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, size)) = self.open.pop() {
                    if anchor != 0 {
                        self.anchored.insert(anchor, size);
                    }
                    // The collection's own node was counted at its start; its children were
                    // counted as they came. Only the parent's running size grows here.
                    if let Some(parent) = self.open.last_mut() {
                        parent.1 = parent.1.saturating_add(size - 1);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Counts `size` more nodes in the innermost open collection and in the total.
    fn add(&mut self, size: u64, limits: &DocumentLimits) -> Result<(), String> {
        self.total = self.total.saturating_add(size);
        if let Some(parent) = self.open.last_mut() {
            parent.1 = parent.1.saturating_add(size);
        }
        if self.total > limits.max_nodes {
            return Err(format!(
                "the document expands to more than {} nodes (YAML aliases are expanded in full)",
                limits.max_nodes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DocumentLimits {
        DocumentLimits {
            max_bytes: 10_000,
            max_depth: 8,
            max_nodes: 1_000,
        }
    }

    /// A "billion laughs": each level refers to the one below `fan` times.
    fn laughs(levels: usize, fan: usize) -> String {
        let mut doc = String::from("a0: &a0 [x, x]\n");
        for i in 1..levels {
            let refs = vec![format!("*a{}", i - 1); fan].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        doc
    }

    #[test]
    fn an_ordinary_registry_passes() {
        let doc = "aliases:\n  mana/a:\n    chain: [ollama/x, {target: groq/y, first_token_timeout_ms: 5}]\ndefault: mana/a\n";
        assert_eq!(check(doc, &small()), Ok(()));
    }

    #[test]
    fn size_is_bounded() {
        let doc = format!("# {}\naliases: {{}}\n", "x".repeat(20_000));
        let e = check(&doc, &small()).unwrap_err();
        assert!(e.contains("limit is 10000 bytes"), "{e}");
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(8), "]".repeat(8));
        assert_eq!(check(&ok, &small()), Ok(()));
        let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
        let e = check(&deep, &small()).unwrap_err();
        assert!(e.contains("deeper than 8 levels"), "{e}");
    }

    #[test]
    fn alias_expansion_is_bounded() {
        // 2 * 3^4 = 162 leaves plus the collections: fits.
        assert_eq!(check(&laughs(5, 3), &small()), Ok(()));
        // 2 * 3^7 = 4374 leaves: refused, though the text is tiny.
        let e = check(&laughs(8, 3), &small()).unwrap_err();
        assert!(e.contains("more than 1000 nodes"), "{e}");
    }

    #[test]
    fn merge_keys_count_what_they_merge() {
        let mut doc = String::from("b0: &b0 {k: v, l: w}\n");
        for i in 1..12 {
            doc.push_str(&format!(
                "b{i}: &b{i} {{x: *b{p}, y: *b{p}, <<: *b{p}}}\n",
                p = i - 1
            ));
        }
        assert!(check(&doc, &small()).is_err());
    }

    #[test]
    fn many_plain_nodes_count_too() {
        let doc = format!("[{}]", vec!["x"; 1_001].join(","));
        assert!(check(&doc, &small()).is_err());
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(check("aliases: [unclosed", &small()).is_err());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(check(&deep, &DocumentLimits::default()).is_err());
    }

    /// The exact count: `a: &x [[1]]` is 5 nodes (x itself 3), and `b: [*x, *x]` adds the key,
    /// the list and each expansion, 13 in all. A limit of 13 passes, 12 does not.
    #[test]
    fn expansion_is_counted_exactly() {
        let doc = "a: &x [[1]]\nb: [*x, *x]\n";
        let at = |max_nodes| DocumentLimits {
            max_nodes,
            ..small()
        };
        assert_eq!(check(doc, &at(13)), Ok(()));
        assert!(check(doc, &at(12)).is_err());
    }

    #[test]
    fn a_document_of_exactly_the_byte_limit_passes() {
        let limits = small();
        let doc = format!("a: {}", "x".repeat(limits.max_bytes - 3));
        assert_eq!(doc.len(), limits.max_bytes);
        assert_eq!(check(&doc, &limits), Ok(()));
        assert!(check(&format!("{doc}x"), &limits).is_err());
    }
}
