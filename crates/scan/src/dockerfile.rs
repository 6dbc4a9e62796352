//! Where images live in a Dockerfile: every `FROM`, and every `COPY --from`
//! and `RUN --mount=…,from=` that names an image rather than an earlier
//! stage. Follows BuildKit's Dockerfile frontend: parser directives
//! (`# escape=`), line continuations, comments, heredocs, and `ARG`s declared
//! before the first `FROM` substituted into `FROM` (`$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`), with
//! `--build-arg` values overriding their defaults. A value that cannot be
//! resolved is reported as such with its raw text, never guessed.
//!
//! ```
//! use imagegate_scan::dockerfile::{images, Value};
//! let found = images("ARG V=1.25\nFROM nginx:${V} AS web\nFROM web\nCOPY --from=busybox /bin/sh /sh\n", &[]);
//! assert_eq!(found.len(), 2);
//! assert_eq!(found[0].value, Value::Image("nginx:1.25".into()));
//! assert_eq!((found[0].line, found[0].column), (2, 6));
//! assert_eq!(found[1].value, Value::Image("busybox".into()));
//! ```

use std::collections::HashMap;

/// Where a Dockerfile names an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// `FROM image`.
    From,
    /// `COPY --from=image`.
    CopyFrom,
    /// `RUN --mount=…,from=image`.
    MountFrom,
}

pub use crate::Value;

/// One image found in a Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line of the value's first character.
    pub line: usize,
    /// 1-based column (in characters) of the value's first character.
    pub column: usize,
    /// The value as written.
    pub raw: String,
    /// The value after substitution.
    pub value: Value,
    /// Which instruction.
    pub site: Site,
}

/// One character of a logical line and where it was written.
#[derive(Clone, Copy)]
struct Located {
    c: char,
    line: usize,
    column: usize,
}

/// A logical line: an instruction with its continuations joined.
struct Logical {
    chars: Vec<Located>,
}

/// The images of a Dockerfile. `build_args` are `--build-arg K=V` values.
pub fn images(text: &str, build_args: &[(String, String)]) -> Vec<Finding> {
    let lines: Vec<&str> = text.lines().collect();
    let escape = escape_directive(&lines);
    let logical = logical_lines(&lines, escape);

    let overrides: HashMap<&str, &str> = build_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut globals: HashMap<String, Option<String>> = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut seen_from = false;
    let mut found = Vec::new();
    for l in &logical {
        let words = split_words(&l.chars);
        let Some((keyword, rest)) = words.split_first() else {
            continue;
        };
        match keyword.text().to_ascii_uppercase().as_str() {
            "ARG" if !seen_from => {
                for w in rest {
                    let t = w.text();
                    let (name, default) = match t.split_once('=') {
                        Some((n, d)) => (n.to_owned(), Some(unquote(d))),
                        None => (t, None),
                    };
                    let value = overrides
                        .get(name.as_str())
                        .map(|v| (*v).to_owned())
                        .or_else(|| default.map(|d| substitute(&d, &globals, escape).0));
                    globals.insert(name, value);
                }
            }
            "FROM" => {
                seen_from = true;
                let operands: Vec<&Word> = rest
                    .iter()
                    .filter(|w| !w.text().starts_with("--"))
                    .collect();
                let Some(image) = operands.first() else {
                    continue;
                };
                let raw = image.text();
                let (value, missing) = substitute(&raw, &globals, escape);
                let is_stage =
                    missing.is_empty() && stages.iter().any(|s| s.eq_ignore_ascii_case(&value));
                if let (Some(a), Some(name)) = (operands.get(1), operands.get(2))
                    && a.text().eq_ignore_ascii_case("as")
                {
                    stages.push(name.text());
                }
                if is_stage || (missing.is_empty() && value.eq_ignore_ascii_case("scratch")) {
                    continue;
                }
                found.push(finding(image, raw, value, missing, Site::From));
            }
            "COPY" | "ADD" => {
                for w in rest.iter().take_while(|w| w.text().starts_with("--")) {
                    let text = w.text();
                    if let Some(v) = text.strip_prefix("--from=") {
                        let offset = "--from=".chars().count();
                        if let Some(f) =
                            external(v, offset, w, &stages, &globals, escape, Site::CopyFrom)
                        {
                            found.push(f);
                        }
                    }
                }
            }
            "RUN" => {
                for w in rest.iter().take_while(|w| w.text().starts_with("--")) {
                    let text = w.text();
                    let Some(spec) = text.strip_prefix("--mount=") else {
                        continue;
                    };
                    let mut offset = "--mount=".chars().count();
                    for field in spec.split(',') {
                        if let Some(v) = field.strip_prefix("from=")
                            && let Some(f) = external(
                                v,
                                offset + 5,
                                w,
                                &stages,
                                &globals,
                                escape,
                                Site::MountFrom,
                            )
                        {
                            found.push(f);
                        }
                        offset += field.chars().count() + 1;
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The names of the `ARG`s declared before the first `FROM`: the only ones
/// `FROM` (and `--from`) can use, whether or not they have a value.
///
/// ```
/// use imagegate_scan::dockerfile::global_args;
/// assert_eq!(global_args("ARG A=1 B\nFROM x\nARG C\n"), ["A", "B"]);
/// ```
pub fn global_args(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut names = Vec::new();
    for l in logical_lines(&lines, escape_directive(&lines)) {
        let words = split_words(&l.chars);
        let Some((keyword, rest)) = words.split_first() else {
            continue;
        };
        match keyword.text().to_ascii_uppercase().as_str() {
            "FROM" => break,
            "ARG" => names.extend(rest.iter().map(|w| match w.text().split_once('=') {
                Some((name, _)) => name.to_owned(),
                None => w.text(),
            })),
            _ => {}
        }
    }
    names
}

/// A `--from` value naming an image (not a stage name or index), as a finding.
fn external(
    value: &str,
    offset: usize,
    word: &Word,
    stages: &[String],
    globals: &HashMap<String, Option<String>>,
    escape: char,
    site: Site,
) -> Option<Finding> {
    let (resolved, missing) = substitute(value, globals, escape);
    if missing.is_empty()
        && (resolved.parse::<usize>().is_ok()
            || stages.iter().any(|s| s.eq_ignore_ascii_case(&resolved)))
    {
        return None;
    }
    let at = word.chars.get(offset).or(word.chars.first())?;
    Some(Finding {
        line: at.line,
        column: at.column,
        raw: value.to_owned(),
        value: if missing.is_empty() {
            Value::Image(resolved)
        } else {
            Value::Unresolved(missing)
        },
        site,
    })
}

fn finding(word: &Word, raw: String, value: String, missing: Vec<String>, site: Site) -> Finding {
    let (line, column) = word.chars.first().map_or((0, 0), |c| (c.line, c.column));
    Finding {
        line,
        column,
        raw,
        value: if missing.is_empty() {
            Value::Image(value)
        } else {
            Value::Unresolved(missing)
        },
        site,
    }
}

/// The escape character: `\` unless a parser directive at the top says `` ` ``.
fn escape_directive(lines: &[&str]) -> char {
    for line in lines {
        let Some(rest) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim();
        if key.eq_ignore_ascii_case("escape") {
            return if value.trim() == "`" { '`' } else { '\\' };
        }
        if !key.eq_ignore_ascii_case("syntax") && !key.eq_ignore_ascii_case("check") {
            break;
        }
    }
    '\\'
}

/// Joins continuations, drops comments and blank lines, skips heredoc bodies.
fn logical_lines(lines: &[&str], escape: char) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut current: Vec<Located> = Vec::new();
    let mut heredocs: Vec<(String, bool)> = Vec::new();
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        i += 1;
        let number = i;
        if let Some((word, strip_tabs)) = heredocs.first().cloned() {
            let candidate = if strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if candidate == word {
                heredocs.remove(0);
            }
            continue;
        }
        let trimmed = line.trim_start();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if !current.is_empty() && trimmed.starts_with('#') {
            continue; // a comment inside a continuation
        }
        let body = line.trim_end();
        let continued = body.ends_with(escape);
        let content = if continued {
            body.strip_suffix(escape).unwrap_or(body)
        } else {
            body
        };
        current.extend(content.chars().enumerate().map(|(j, c)| Located {
            c,
            line: number,
            column: j + 1,
        }));
        if continued {
            continue;
        }
        let text: String = current.iter().map(|l| l.c).collect();
        heredocs.extend(heredoc_words(&text));
        out.push(Logical {
            chars: std::mem::take(&mut current),
        });
    }
    if !current.is_empty() {
        out.push(Logical { chars: current });
    }
    out
}

/// The terminators of the heredocs an instruction opens (`<<EOF`, `<<-"EOF"`).
fn heredoc_words(text: &str) -> Vec<(String, bool)> {
    let upper = text.trim_start().to_ascii_uppercase();
    if !["RUN", "COPY", "ADD"].iter().any(|k| upper.starts_with(k)) {
        return Vec::new();
    }
    let mut words = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<<") {
        rest = rest.get(at + 2..).unwrap_or_default();
        let (strip_tabs, r) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let word: String = r
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() {
            words.push((word, strip_tabs));
        }
    }
    words
}

/// A whitespace-separated word of a logical line, quotes kept.
struct Word {
    chars: Vec<Located>,
}

impl Word {
    fn text(&self) -> String {
        self.chars.iter().map(|l| l.c).collect()
    }
}

fn split_words(chars: &[Located]) -> Vec<Word> {
    let mut words = Vec::new();
    let mut current = Vec::new();
    let mut quote: Option<char> = None;
    for l in chars {
        match (quote, l.c) {
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() {
                    words.push(Word {
                        chars: std::mem::take(&mut current),
                    });
                }
            }
            (None, '"' | '\'') => {
                quote = Some(l.c);
                current.push(*l);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(*l);
            }
            _ => current.push(*l),
        }
    }
    if !current.is_empty() {
        words.push(Word { chars: current });
    }
    words
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = t.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    t.to_owned()
}

/// Substitutes `$VAR` forms; returns the result and the names that had no value.
fn substitute(
    text: &str,
    vars: &HashMap<String, Option<String>>,
    escape: char,
) -> (String, Vec<String>) {
    let text = unquote(text);
    let mut out = String::new();
    let mut missing = Vec::new();
    let mut chars = text.chars().peekable();
    let lookup = |name: &str| vars.get(name).cloned().flatten();
    while let Some(c) = chars.next() {
        if c == escape && chars.peek() == Some(&'$') {
            out.push('$');
            chars.next();
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut inner = String::new();
            let mut closed = false;
            for d in chars.by_ref() {
                if d == '}' {
                    closed = true;
                    break;
                }
                inner.push(d);
            }
            if !closed {
                missing.push(inner);
                continue;
            }
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_end);
            let value = lookup(name);
            let set = value.as_deref().is_some_and(|v| !v.is_empty());
            match op {
                "" => match value {
                    Some(v) => out.push_str(&v),
                    None => missing.push(name.to_owned()),
                },
                _ if op.starts_with(":-") => match value.filter(|_| set) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(op.get(2..).unwrap_or_default()),
                },
                _ if op.starts_with('-') => match value {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(op.get(1..).unwrap_or_default()),
                },
                _ if op.starts_with(":+") => {
                    if set {
                        out.push_str(op.get(2..).unwrap_or_default());
                    }
                }
                _ if op.starts_with('+') => {
                    if value.is_some() {
                        out.push_str(op.get(1..).unwrap_or_default());
                    }
                }
                _ => missing.push(name.to_owned()),
            }
        } else {
            let mut name = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' {
                    name.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
            } else {
                match lookup(&name) {
                    Some(v) => out.push_str(&v),
                    None => missing.push(name),
                }
            }
        }
    }
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, args: &[(&str, &str)]) -> Vec<(usize, usize, Value, Site)> {
        let args: Vec<(String, String)> = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        images(text, &args)
            .into_iter()
            .map(|f| (f.line, f.column, f.value, f.site))
            .collect()
    }

    fn image(s: &str) -> Value {
        Value::Image(s.to_owned())
    }

    #[test]
    fn case_stages_are_not_images_and_external_copy_sources_are() {
        let text = "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nRUN go build\nFROM build AS test\nFROM alpine:3.20\nCOPY --from=build /out /out\nCOPY --from=0 /a /a\nCOPY --chown=1:1 --from=ghcr.io/corp/tools:1 /t /t\nRUN --mount=type=cache,target=/c --mount=type=bind,from=someuser/x:1,target=/x make\nFROM scratch\n";
        assert_eq!(
            values(text, &[]),
            vec![
                (1, 32, image("golang:1.22"), Site::From),
                (4, 6, image("alpine:3.20"), Site::From),
                (7, 25, image("ghcr.io/corp/tools:1"), Site::CopyFrom),
                (8, 57, image("someuser/x:1"), Site::MountFrom),
            ]
        );
    }

    #[test]
    fn case_a_stage_named_like_an_image_shadows_it() {
        let text = "FROM node:20 AS nginx\nFROM nginx\n";
        assert_eq!(
            values(text, &[]),
            vec![(1, 6, image("node:20"), Site::From)]
        );
    }

    #[test]
    fn case_args_before_from_substitute_with_defaults_and_build_arg_overrides() {
        let text = "ARG REG=docker.io\nARG TAG\nARG BASE=\"${REG}/library/nginx\"\nFROM ${BASE}:${TAG:-1.25}\nFROM $REG/alpine:${TAG-3}\nFROM ${REG:+ghcr.io}/x:1\nFROM $REG/busybox:$TAG\n";
        assert_eq!(
            values(text, &[]),
            vec![
                (4, 6, image("docker.io/library/nginx:1.25"), Site::From),
                // An ARG declared without a value is unset: `-` takes the default.
                (5, 6, image("docker.io/alpine:3"), Site::From),
                (6, 6, image("ghcr.io/x:1"), Site::From),
                (7, 6, Value::Unresolved(vec!["TAG".into()]), Site::From),
            ]
        );
        assert_eq!(
            values(text, &[("TAG", "9"), ("REG", "mirror.corp")])[0].2,
            image("mirror.corp/library/nginx:9")
        );
    }

    #[test]
    fn case_unresolved_values_keep_their_raw_text() {
        let f = images("FROM ${BASE}\n", &[]);
        assert_eq!(f[0].raw, "${BASE}");
        assert_eq!(f[0].value, Value::Unresolved(vec!["BASE".into()]));
    }

    #[test]
    fn case_continuations_comments_heredocs_and_the_escape_directive() {
        let text = "# syntax=docker/dockerfile:1\n# escape=`\nFROM `\n  # a comment inside\n  nginx:1.25 `\n  AS web\nRUN <<EOF\nFROM evil/one\nEOF\nRUN <<-\"END\" cat\n\tFROM evil/two\n\tEND\nFROM web\n# FROM evil/three\nfrom Alpine:3\n";
        assert_eq!(
            values(text, &[]),
            vec![
                (5, 3, image("nginx:1.25"), Site::From),
                (15, 6, image("Alpine:3"), Site::From),
            ]
        );
    }

    #[test]
    fn case_garbage_never_panics() {
        for text in [
            "FROM",
            "FROM ${",
            "ARG =\nFROM $",
            "RUN <<",
            "COPY --from=",
            "RUN --mount=from=",
            "\\\n\\",
            "FROM \"unterminated",
        ] {
            let _ = images(text, &[]);
        }
    }
}
