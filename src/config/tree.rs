//! Where each field of the YAML text is: a structure-only parse of the document into field
//! paths (`upstreams.payments.retry.attempts`, `...endpoints[1]`) and their line:column, used
//! to name the path of a serde error and to place semantic errors.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::FieldError;

/// A (line, column) pair, both 1-based.
pub(crate) type Position = (usize, usize);

/// The field paths of a document with the positions of their keys and values.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    /// Value position by path.
    values: HashMap<String, Position>,
    /// (position, path) of every value and key, in document order, for reverse look-ups.
    by_value: Vec<(Position, String)>,
    by_key: Vec<(Position, String)>,
    /// The document is empty or only comments (`null`): every field takes its default.
    empty: bool,
}

impl SourceMap {
    /// Builds the map; `None` when the text is not YAML (the typed parse reports why).
    pub(crate) fn build(text: &str, mut options: serde_saphyr::Options) -> Option<Self> {
        // Keep repeated keys so the typed parse's duplicate-key error can be placed.
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
        let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options).ok()?;
        let mut map = Self {
            empty: matches!(root.value, Node::Null),
            ..Self::default()
        };
        map.walk(String::new(), &root);
        Some(map)
    }

    fn walk(&mut self, path: String, node: &Spanned<Node>) {
        let pos = (
            node.referenced.line() as usize,
            node.referenced.column() as usize,
        );
        self.values.insert(path.clone(), pos);
        self.by_value.push((pos, path.clone()));
        match &node.value {
            Node::Map(entries) => {
                for (key, value) in entries {
                    let child = join(&path, &key.value);
                    let kpos = (
                        key.referenced.line() as usize,
                        key.referenced.column() as usize,
                    );
                    self.by_key.push((kpos, child.clone()));
                    self.walk(child, value);
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(format!("{path}[{i}]"), item);
                }
            }
            Node::Scalar | Node::Null => {}
        }
    }

    /// Where the value of this path starts, if the file sets it.
    pub(crate) fn position(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// True when the file sets this path.
    pub(crate) fn has(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }

    /// The path of the value starting exactly at `pos`, else of the key there, else of the
    /// last value that starts before it.
    pub(crate) fn path_at(&self, pos: Position) -> Option<&str> {
        fn exact(list: &[(Position, String)], pos: Position) -> Option<&str> {
            list.iter()
                .rev()
                .find(|(p, _)| *p == pos)
                .map(|(_, path)| path.as_str())
        }
        exact(&self.by_value, pos)
            .or_else(|| exact(&self.by_key, pos))
            .or_else(|| {
                let before = self.by_value.iter().filter(|(p, _)| *p <= pos);
                before
                    .max_by_key(|(p, _)| *p)
                    .map(|(_, path)| path.as_str())
            })
    }

    /// True for an empty (or comment-only) document.
    pub(crate) fn is_empty_document(&self) -> bool {
        self.empty
    }

    /// The path of the mapping or scalar value starting exactly at `pos` (not keys).
    pub(crate) fn value_path_at(&self, pos: Position) -> Option<&str> {
        self.by_value
            .iter()
            .rev()
            .find(|(p, _)| *p == pos)
            .map(|(_, path)| path.as_str())
    }
}

/// Turns the first parse/type error into a [`FieldError`] with the field path it is about.
pub(crate) fn syntax_error(error: &serde_saphyr::Error, map: &SourceMap) -> FieldError {
    let error = error.without_snippet();
    let position = error
        .location()
        .map(|l| (l.line() as usize, l.column() as usize));
    let mut message = error.to_string();
    if let Some((line, column)) = position {
        let suffix = format!(" at line {line}, column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    let field = |prefix: &str| {
        let rest = message.strip_prefix(prefix)?;
        Some(rest.split('`').next()?.to_string())
    };
    let path = match position {
        None => String::new(),
        Some(pos) => {
            if let Some(name) = field("missing field `") {
                join(map.value_path_at(pos).unwrap_or_default(), &name)
            } else if message.starts_with("unknown field") || message.starts_with("duplicate") {
                let key = map.by_key.iter().rev().find(|(p, _)| *p == pos);
                key.map(|(_, path)| path.clone())
                    .or_else(|| map.path_at(pos).map(String::from))
                    .unwrap_or_default()
            } else {
                map.path_at(pos).unwrap_or_default().to_string()
            }
        }
    };
    if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key);
        message = format!("duplicate key \"{key}\"");
    }
    if message.starts_with("invalid u") || message.starts_with("invalid i") {
        message = "expected a non-negative whole number".to_string();
    }
    FieldError {
        path,
        message,
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
    }
}

/// Joins a parent path and a key with a dot.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A YAML node with structure only.
#[derive(Debug)]
enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
    Null,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value()?;
            let key = Spanned {
                value: key.value.0,
                referenced: key.referenced,
                defined: key.defined,
            };
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text, whatever its scalar type.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}
