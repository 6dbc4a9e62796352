//! YAML (and JSON) documents with the line and column of every value, so a
//! finding can point at the image it names. Duplicate keys are errors: a
//! second `image:` in one container would otherwise let the scanner read one
//! value while the cluster or compose uses the other.
//!
//! ```
//! use imagegate_scan::yaml::documents;
//! let docs = documents("kind: Pod\n---\nimage: \"nginx:1.27\"\n").unwrap();
//! let image = docs[1].get("image").unwrap();
//! assert_eq!(image.as_str(), Some("nginx:1.27"));
//! assert_eq!((image.line, image.column), (3, 8));
//! ```

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A value and where it starts (1-based line and column, in characters).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// 1-based line of the value's first character.
    pub line: usize,
    /// 1-based column of the value's first character.
    pub column: usize,
}

/// A YAML value. Mappings keep their keys' order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys as text.
    Map(Vec<(String, Node)>),
}

/// A document that does not parse: where, and the parser's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line (0 when the parser gave none).
    pub line: usize,
    /// 1-based column (0 when the parser gave none).
    pub column: usize,
    /// The parser's message.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Every document of a YAML stream (JSON is a YAML document), skipping empty
/// ones. The first syntax error ends the stream.
pub fn documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        // YAML 1.2's core schema, as Compose and kubectl read it: `y`, `on`
        // and `no` are text, not booleans.
        strict_booleans: true,
    };
    match serde_saphyr::from_multiple_with_options::<Spanned<Node>>(text, options) {
        Ok(docs) => Ok(docs.into_iter().map(located).collect()),
        Err(err) => {
            use serde_saphyr::MessageFormatter;
            // One line, whatever the input held: control characters escaped.
            let message: String = serde_saphyr::UserMessageFormatter
                .format_message(&err)
                .chars()
                .flat_map(|c| {
                    let escaped: Vec<char> = if c.is_control() {
                        c.escape_default().collect()
                    } else {
                        vec![c]
                    };
                    escaped
                })
                .collect();
            let (line, column) = err.location().map_or((0, 0), |l| {
                (
                    usize::try_from(l.line()).unwrap_or(0),
                    usize::try_from(l.column()).unwrap_or(0),
                )
            });
            Err(SyntaxError {
                line,
                column,
                message,
            })
        }
    }
}

/// Every document of a YAML stream, each read on its own, in stream order: a
/// document that does not parse is an `Err` at its own line and column, and
/// the documents around it are still read (a rendered Helm chart with one
/// broken template still has every other object checked). Empty documents
/// are skipped.
///
/// Documents are told apart by their marker lines: `---` and `...` at the
/// start of a line, which YAML never lets a scalar hold. When the whole
/// stream parses this is [`documents`]; when it does not, and yet no part on
/// its own fails, the stream's own error is returned too, so a syntax error
/// is never lost.
///
/// ```
/// use imagegate_scan::yaml::each_document;
/// let docs = each_document("image: a\n---\nx: [\n---\nimage: c\n");
/// assert_eq!(docs.len(), 3);
/// assert_eq!(docs[0].as_ref().unwrap().get("image").unwrap().as_str(), Some("a"));
/// assert_eq!(docs[1].as_ref().unwrap_err().line, 3);
/// let c = docs[2].as_ref().unwrap().get("image").unwrap();
/// assert_eq!((c.as_str(), c.line, c.column), (Some("c"), 5, 8));
/// ```
pub fn each_document(text: &str) -> Vec<Result<Node, SyntaxError>> {
    let whole = match documents(text) {
        Ok(docs) => return docs.into_iter().map(Ok).collect(),
        Err(e) => e,
    };
    let mut out = Vec::new();
    for (first_line, part) in split_documents(text) {
        let before = first_line.saturating_sub(1);
        match documents(part) {
            Ok(docs) => out.extend(docs.into_iter().map(|mut doc| {
                shift_lines(&mut doc, before);
                Ok(doc)
            })),
            Err(mut e) => {
                if e.line > 0 {
                    e.line += before;
                }
                out.push(Err(e));
            }
        }
    }
    if !out.iter().any(Result::is_err) {
        out.push(Err(whole));
    }
    out
}

/// The documents of a stream as text, each with its 1-based first line. A
/// part begins at a `---` line (its directives and comments before it
/// included) or after a `...` line.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let marker = |line: &str, m: &str| {
        line.strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
    };
    let mut parts = Vec::new();
    let (mut start, mut start_line) = (0usize, 1usize);
    let mut started = false;
    let mut ended = false;
    let mut offset = 0usize;
    for (i, line) in lines(text).enumerate() {
        let number = i + 1;
        if ended {
            parts.push((start_line, text.get(start..offset).unwrap_or_default()));
            (start, start_line, started, ended) = (offset, number, false, false);
        }
        if marker(line, "---") {
            if started {
                parts.push((start_line, text.get(start..offset).unwrap_or_default()));
                (start, start_line) = (offset, number);
            }
            started = true;
        } else if marker(line, "...") {
            ended = true;
        } else {
            let t = line.trim();
            let prolog = t.is_empty() || t.starts_with('#') || (!started && line.starts_with('%'));
            started |= !prolog;
        }
        offset += line.len();
    }
    parts.push((start_line, text.get(start..).unwrap_or_default()));
    parts
}

/// The lines of a YAML text, each with its line break: YAML ends a line at
/// `\n`, `\r\n` or a lone `\r` (YAML 1.2, 5.4).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\n', '\r']) {
            None => rest.len(),
            Some(at) if rest.get(at..).is_some_and(|r| r.starts_with("\r\n")) => at + 2,
            Some(at) => at + 1,
        };
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
}

/// Moves a node read from a part of a stream to its line in the stream.
fn shift_lines(node: &mut Node, by: usize) {
    if node.line > 0 {
        node.line += by;
    }
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| shift_lines(n, by)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, n)| shift_lines(n, by)),
        _ => {}
    }
}

fn located(spanned: Spanned<Node>) -> Node {
    let at = spanned.referenced;
    let mut node = spanned.value;
    node.line = usize::try_from(at.line()).unwrap_or(0);
    node.column = usize::try_from(at.column()).unwrap_or(0);
    node
}

impl Node {
    fn at(value: Value) -> Node {
        Node {
            value,
            line: 0,
            column: 0,
        }
    }

    /// The value under `key`, when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The deepest node on a path such as `spec.containers[1].image`: the
    /// node itself when the whole path exists, else the last one that does
    /// (to point an error at).
    pub fn locate(&self, path: &str) -> &Node {
        let mut node = self;
        for segment in path.split('.').filter(|s| !s.is_empty()) {
            let (key, indices) = match segment.find('[') {
                Some(at) => segment.split_at(at),
                None => (segment, ""),
            };
            if !key.is_empty() {
                match node.get(key) {
                    Some(next) => node = next,
                    None => return node,
                }
            }
            for index in indices
                .split(['[', ']'])
                .filter_map(|i| i.parse::<usize>().ok())
            {
                match &node.value {
                    Value::Seq(items) => match items.get(index) {
                        Some(next) => node = next,
                        None => return node,
                    },
                    _ => return node,
                }
            }
        }
        node
    }

    /// The same value as JSON (locations dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Number(n.clone()),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::at(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::at(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::at(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
        Ok(Node::at(Value::Number(n.into())))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
        Ok(Node::at(Value::Number(n.into())))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Node, E> {
        // Non-finite numbers (.inf, .nan) have no JSON form: kept as text.
        Ok(Node::at(match serde_json::Number::from_f64(n) {
            Some(n) => Value::Number(n),
            None => Value::String(n.to_string()),
        }))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::at(Value::String(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::at(Value::String(s)))
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Node, E> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Node::at(Value::String(s.to_owned()))),
            Err(_) => Err(E::custom("binary values are not text")),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(located(item));
        }
        Ok(Node::at(Value::Seq(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Node>>()? {
            let key = match key.value.value {
                Value::String(s) => s,
                Value::Null => "null".to_owned(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Seq(_) | Value::Map(_) => {
                    return Err(de::Error::custom("mapping keys must be scalars"));
                }
            };
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, located(value)));
        }
        Ok(Node::at(Value::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_values_carry_their_own_line_and_column() {
        let docs = documents("a:\n  - x: 1\n    y: 'two'\n").unwrap();
        let y = docs[0].locate("a[0].y");
        assert_eq!((y.as_str(), y.line, y.column), (Some("two"), 3, 8));
        assert_eq!(docs[0].locate("a[0].x").to_json(), serde_json::json!(1));
    }

    #[test]
    fn case_locate_stops_at_the_deepest_node_that_exists() {
        let docs = documents("spec:\n  containers:\n    - name: a\n").unwrap();
        let n = docs[0].locate("spec.containers[0].image");
        assert_eq!((n.line, n.column), (3, 7));
        let n = docs[0].locate("spec.containers[5].image");
        assert_eq!(n.line, 3);
    }

    #[test]
    fn case_duplicate_keys_are_syntax_errors() {
        let e = documents("image: a\nimage: b\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("duplicate"), "{e}");
    }

    #[test]
    fn case_syntax_errors_say_where() {
        let e = documents("a: b\n  c: d\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        assert_eq!(e.message, "mapping values are not allowed in this context");
    }

    #[test]
    fn case_json_documents_and_empty_documents() {
        let docs =
            documents("---\n---\n{\"kind\": \"Pod\", \"n\": [1, 2.5, true, null]}\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            docs[0].to_json(),
            serde_json::json!({"kind": "Pod", "n": [1, 2.5, true, null]})
        );
    }

    #[test]
    fn case_a_broken_document_hides_none_of_the_others() {
        let text = "---\n# Source: a.yaml\nkind: StatefulSet\nimage: postgres:16\n---\n# Source: b.yaml\nkind: ConfigMap\ndata:\n  a: b\n   c: d\n---\nkind: Pod\nimage: busybox\n";
        let docs = each_document(text);
        assert_eq!(docs.len(), 3, "{docs:?}");
        let first = docs[0].as_ref().unwrap().get("image").unwrap();
        assert_eq!(
            (first.as_str(), first.line, first.column),
            (Some("postgres:16"), 4, 8)
        );
        let e = docs[1].as_ref().unwrap_err();
        assert_eq!((e.line, e.column), (10, 5), "{e}");
        let last = docs[2].as_ref().unwrap().get("image").unwrap();
        assert_eq!((last.as_str(), last.line), (Some("busybox"), 13));
    }

    #[test]
    fn case_a_stream_that_parses_is_read_as_documents_reads_it() {
        let text = "%YAML 1.2\n---\na: 1\n...\n---\nb: |\n  ---x\n";
        let docs: Vec<Node> = each_document(text)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs, documents(text).unwrap());
    }

    #[test]
    fn case_lines_end_as_yaml_ends_them() {
        let text = "a: [\r---\r\nb: 1\r\n---\nc: 2";
        assert_eq!(
            lines(text).collect::<Vec<_>>(),
            ["a: [\r", "---\r\n", "b: 1\r\n", "---\n", "c: 2"]
        );
        let docs = each_document(text);
        assert_eq!(docs.len(), 3, "{docs:?}");
        assert_eq!(docs[1].as_ref().unwrap().get("b").unwrap().line, 3);
        assert_eq!(docs[2].as_ref().unwrap().get("c").unwrap().line, 5);
    }

    #[test]
    fn case_every_document_of_a_broken_stream_points_into_the_text() {
        // Every stream of four of these pieces: nothing panics, every value
        // read lies on a line of the text, and a stream that does not parse
        // always yields an error.
        const PIECES: [&str; 9] = [
            "---\n",
            "...\n",
            "a: [\n",
            "b: 1\n",
            "\r",
            "%YAML 1.2\n",
            "# c\n",
            "  c: d\n",
            "- x\n",
        ];
        fn deepest(node: &Node) -> usize {
            let inner = match &node.value {
                Value::Seq(items) => items.iter().map(deepest).max(),
                Value::Map(entries) => entries.iter().map(|(_, n)| deepest(n)).max(),
                _ => None,
            };
            inner.unwrap_or(0).max(node.line)
        }
        for n in 0..PIECES.len().pow(4) {
            let text: String = (0..4)
                .map(|i| PIECES[n / PIECES.len().pow(i) % PIECES.len()])
                .collect();
            let count = lines(&text).count().max(1);
            let docs = each_document(&text);
            for doc in docs.iter().flatten() {
                assert!(deepest(doc) <= count, "{text:?}: {doc:?}");
            }
            if documents(&text).is_err() {
                assert!(docs.iter().any(Result::is_err), "{text:?}");
            }
        }
    }

    #[test]
    fn case_end_markers_and_directives_start_a_new_part() {
        let text = "a: [\n...\n%YAML 1.2\n---\nb: 2\n";
        let docs = each_document(text);
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert!(docs[0].is_err());
        let b = docs[1].as_ref().unwrap().get("b").unwrap();
        assert_eq!(b.line, 5);
    }

    #[test]
    fn case_aliases_resolve_to_their_anchors_value() {
        let docs = documents("base: &img nginx:1\nother: *img\n").unwrap();
        assert_eq!(docs[0].get("other").unwrap().as_str(), Some("nginx:1"));
    }
}
