//! A format-neutral document tree with source positions.
//!
//! Both front ends (YAML through serde-saphyr, JSON through serde_json) first read a document
//! into this tree. The tree is what lets us (a) reject duplicate keys in every map, including
//! free-form ones like `labels` that a typed `BTreeMap` would silently overwrite, (b) map a field
//! path back to a line and column, and (c) run the typed decoding over one representation.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::path::{FieldPath, Segment};

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    fn from_location(loc: &serde_saphyr::Location) -> Option<Pos> {
        // serde-saphyr reports line 0 for "unknown".
        let line = usize::try_from(loc.line()).ok().filter(|l| *l > 0)?;
        let column = usize::try_from(loc.column()).unwrap_or(0);
        Some(Pos { line, column })
    }
}

/// One node of a document, with where it starts (when the front end knows).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) at: Option<Pos>,
}

/// One map entry; the key keeps its own position so unknown-field errors point at the key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_at: Option<Pos>,
    pub(crate) value: Node,
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

impl Node {
    /// The node at `path`, or the deepest existing ancestor (a defaulted field has no node of
    /// its own; its parent is the best place to point at). Map keys win for the last segment so
    /// an error about a field points at the field's key.
    pub(crate) fn locate(&self, path: &FieldPath) -> Option<Pos> {
        let mut node = self;
        let mut best = self.at;
        for seg in path.segments() {
            match (seg, &node.value) {
                (Segment::Key(k), Value::Map(entries)) => {
                    let Some(e) = entries.iter().find(|e| &e.key == k) else {
                        break;
                    };
                    best = e.key_at.or(e.value.at).or(best);
                    node = &e.value;
                }
                (Segment::Index(i), Value::Seq(items)) => {
                    let Some(item) = items.get(*i) else { break };
                    best = item.at.or(best);
                    node = item;
                }
                _ => break,
            }
        }
        best
    }

    /// The path of the deepest node starting at or before `pos` (used to name the field of a
    /// parser error, which only knows a position).
    ///
    /// With `duplicate` (the key a duplicate-key error names), the answer is that key in the
    /// deepest map on the way that already holds it: the lenient re-read dropped the duplicate
    /// itself, so the position alone would point at its predecessor.
    pub(crate) fn path_at(&self, pos: Pos, duplicate: Option<&str>) -> FieldPath {
        let mut path = FieldPath::root();
        let mut dup_path = None;
        let mut node = self;
        loop {
            match &node.value {
                Value::Map(entries) => {
                    if let Some(k) = duplicate.filter(|k| entries.iter().any(|e| e.key == *k)) {
                        dup_path = Some(path.key(k));
                    }
                    let hit = entries
                        .iter()
                        .rev()
                        .find(|e| e.key_at.is_some_and(|p| p <= pos));
                    let Some(e) = hit else { break };
                    path = path.key(&e.key);
                    node = &e.value;
                }
                Value::Seq(items) => {
                    let hit = items
                        .iter()
                        .enumerate()
                        .rev()
                        .find(|(_, n)| n.at.is_some_and(|p| p <= pos));
                    let Some((i, n)) = hit else { break };
                    path = path.index(i);
                    node = n;
                }
                _ => break,
            }
        }
        dup_path.unwrap_or(path)
    }

    /// Copies positions from `from`, a tree of the same document read by another front end
    /// (JSON is valid YAML, so the YAML reader can supply the lines serde_json does not keep).
    pub(crate) fn adopt_positions(&mut self, from: &Node) {
        self.at = from.at;
        match (&mut self.value, &from.value) {
            (Value::Map(dst), Value::Map(src)) => {
                for e in dst {
                    if let Some(s) = src.iter().find(|s| s.key == e.key) {
                        e.key_at = s.key_at;
                        e.value.adopt_positions(&s.value);
                    }
                }
            }
            (Value::Seq(dst), Value::Seq(src)) => {
                for (d, s) in dst.iter_mut().zip(src) {
                    d.adopt_positions(s);
                }
            }
            _ => {}
        }
    }

    /// Nesting depth: a scalar is 0, `{a: 1}` is 1.
    pub(crate) fn depth(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::depth).max().unwrap_or(0),
            Value::Map(entries) => 1 + entries.iter().map(|e| e.value.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Converts to a JSON value for typed decoding; `Err` names the first non-finite float.
    pub(crate) fn to_json(&self, here: &FieldPath) -> Result<serde_json::Value, FieldPath> {
        use serde_json::Value as J;
        Ok(match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .ok_or_else(|| here.clone())?,
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.to_json(&here.index(i)))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(entries) => {
                let mut m = serde_json::Map::new();
                for e in entries {
                    m.insert(e.key.clone(), e.value.to_json(&here.key(&e.key))?);
                }
                J::Object(m)
            }
        })
    }
}

/// How a front end wraps child nodes: YAML children carry spans, JSON children do not.
trait Child<'de>: Deserialize<'de> {
    type Key: Deserialize<'de>;
    fn into_node(self) -> Node;
    fn into_key(key: Self::Key) -> (String, Option<Pos>);
}

/// A YAML node: serde-saphyr fills in the span.
pub(crate) struct YamlNode(pub(crate) Node);
/// A JSON node: no positions (serde_json's own errors carry line and column).
pub(crate) struct JsonNode(pub(crate) Node);

struct RawValue<C>(Value, PhantomData<C>);
struct Key(String);

impl<'de> Deserialize<'de> for YamlNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<RawValue<YamlNode>>::deserialize(d)?;
        Ok(YamlNode(Node {
            value: s.value.0,
            at: Pos::from_location(&s.referenced),
        }))
    }
}

impl<'de> Child<'de> for YamlNode {
    type Key = Spanned<Key>;
    fn into_node(self) -> Node {
        self.0
    }
    fn into_key(key: Spanned<Key>) -> (String, Option<Pos>) {
        let at = Pos::from_location(&key.referenced);
        (key.value.0, at)
    }
}

impl<'de> Deserialize<'de> for JsonNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawValue::<JsonNode>::deserialize(d)?;
        Ok(JsonNode(Node {
            value: raw.0,
            at: None,
        }))
    }
}

impl<'de> Child<'de> for JsonNode {
    type Key = Key;
    fn into_node(self) -> Node {
        self.0
    }
    fn into_key(key: Key) -> (String, Option<Pos>) {
        (key.0, None)
    }
}

impl<'de, C: Child<'de>> Deserialize<'de> for RawValue<C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor::<C>(PhantomData))
            .map(|v| RawValue(v, PhantomData))
    }
}

struct ValueVisitor<C>(PhantomData<C>);

impl<'de, C: Child<'de>> Visitor<'de> for ValueVisitor<C> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(Value::UInt)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        String::from_utf8(v.to_vec())
            .map(Value::Str)
            .map_err(|_| E::custom("binary data is not valid UTF-8"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(c) = seq.next_element::<C>()? {
            items.push(c.into_node());
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<Entry> = Vec::new();
        while let Some(k) = map.next_key::<C::Key>()? {
            let (key, key_at) = C::into_key(k);
            // The YAML front end already refuses duplicates; JSON needs this check.
            if entries.iter().any(|e| e.key == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value::<C>()?.into_node();
            entries.push(Entry { key, key_at, value });
        }
        Ok(Value::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Ask for a string so a YAML key keeps its spelling (`0x10`, `1.0`, `on` stay as written).
        d.deserialize_str(KeyVisitor)
    }
}

/// Map keys must be scalars; a reader that still hands us a number or boolean gets its text.
struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar map key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Err(E::custom("a map key must not be null"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Node {
        serde_saphyr::from_str::<YamlNode>(text)
            .expect("valid YAML")
            .0
    }

    #[test]
    fn locates_paths_and_falls_back_to_the_nearest_ancestor() {
        let n = yaml("a: 1\nb:\n  - x: 2\n  - y: 3\n");
        let at = |p: &FieldPath| n.locate(p).map(|p| p.line);
        let root = FieldPath::root();
        assert_eq!(at(&root.key("b").index(1).key("y")), Some(4));
        assert_eq!(at(&root.key("b").index(1).key("missing")), Some(4));
        assert_eq!(at(&root.key("a")), Some(1));
    }

    #[test]
    fn maps_a_position_back_to_a_path() {
        let n = yaml("a: 1\nb:\n  - x: 2\n  - z: 3\n");
        let path = n.path_at(Pos { line: 4, column: 5 }, None);
        assert_eq!(path.to_string(), "b[1].z");
        assert_eq!(n.path_at(Pos { line: 1, column: 1 }, None).to_string(), "a");
    }

    #[test]
    fn keys_keep_their_spelling() {
        let n = yaml("0x10: a\n1.0: b\non: c\n");
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["0x10", "1.0", "on"]);
    }

    #[test]
    fn json_refuses_duplicate_keys_and_counts_depth() {
        let dup = serde_json::from_str::<JsonNode>(r#"{"a": {"b": 1, "b": 2}}"#);
        assert!(dup.is_err_and(|e| e.to_string().contains("duplicate key \"b\"")));
        let n = serde_json::from_str::<JsonNode>(r#"{"a": [[1]], "b": 2}"#)
            .expect("valid JSON")
            .0;
        assert_eq!(n.depth(), 3);
    }
}
