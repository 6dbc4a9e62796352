//! `imagegate scan`'s three outputs: text for people, JSON lines for scripts,
//! SARIF 2.1.0 for code-scanning viewers.

use std::io::Write;
use std::path::PathBuf;

use imagegate_core::Reason;
use imagegate_core::decision::{Decision, Verdict, message};
use imagegate_core::{Mode, Policy};
use serde::Serialize;
use serde_json::json;

use super::files::What;
use super::hint;
use super::{Finding, Totals};
use crate::check::Decided;
use crate::style;

/// How a finding ranks in the text output: refused, then would-be refused
/// (warn or audit mode), then allowed.
fn rank(d: &Decision) -> u8 {
    match (d.verdict, d.is_would_be_denial()) {
        (Verdict::Deny, _) => 0,
        (Verdict::Allow, true) => 1,
        (Verdict::Allow, false) => 2,
    }
}

/// What a finding shows as its image: the value after substitution, the raw
/// text when it could not be substituted, nothing for a parse error.
fn shown_image(what: &What) -> Option<&str> {
    match what {
        What::Image { image, .. } => Some(image),
        What::Unresolved { raw, .. } => Some(raw),
        What::ParseError { .. } => None,
    }
}

fn raw(what: &What) -> Option<&str> {
    match what {
        What::Image { raw, .. } | What::Unresolved { raw, .. } => Some(raw),
        What::ParseError { .. } => None,
    }
}

/// Grouped by file, files with refusals first; in each file the refused
/// findings first, each with its message and a hint (for the reason, the
/// kind of file and `policy`); then a summary.
pub fn text(
    out: &mut dyn Write,
    findings: &[Finding],
    totals: &Totals,
    policy: &Policy,
) -> std::io::Result<()> {
    let mut files: Vec<(&str, Vec<&Finding>)> = Vec::new();
    for f in findings {
        match files.last_mut() {
            Some((file, group)) if *file == f.site.file => group.push(f),
            _ => files.push((&f.site.file, vec![f])),
        }
    }
    for (_, group) in &mut files {
        group.sort_by_key(|f| (rank(&f.decision), f.site.line, f.site.column));
    }
    files.sort_by_key(|(file, group)| (group.first().map_or(2, |f| rank(&f.decision)), *file));
    let bold = anstyle::Style::new().bold();
    let dim = style::DIM;
    for (file, group) in &files {
        writeln!(out, "{bold}{file}{bold:#}")?;
        for f in group {
            let d = &f.decision;
            let would_deny = d.is_would_be_denial();
            let word = match (d.verdict, would_deny, d.mode) {
                (Verdict::Deny, _, _) => "DENY ",
                (Verdict::Allow, true, Mode::Audit) => "AUDIT",
                (Verdict::Allow, true, _) => "WARN ",
                (Verdict::Allow, false, _) => "ALLOW",
            };
            let s = style::verdict(d.verdict, would_deny);
            let pos = format!("{}:{}", f.site.line, f.site.column);
            write!(out, "  {pos:<8} {s}{word}{s:#} ")?;
            match shown_image(&f.site.what) {
                Some(image) if would_deny => write!(out, "{image}: {}", d.message)?,
                Some(image) => write!(out, "{image}")?,
                None => write!(out, "{}", d.message)?,
            }
            if would_deny || d.reason == Reason::Exempt {
                write!(out, " {dim}[{}]{dim:#}", d.reason)?;
            }
            if !f.site.at.is_empty() {
                write!(out, " {dim}({}){dim:#}", f.site.at)?;
            }
            writeln!(out)?;
            let hint = || f.site.hint.clone().or_else(|| hint::decision(policy, d));
            if let Some(hint) = would_deny.then(hint).flatten() {
                writeln!(out, "  {:<8} {dim}hint: {hint}{dim:#}", "")?;
            }
        }
        writeln!(out)?;
    }
    let images = findings.len();
    let count = |r: u8| findings.iter().filter(|f| rank(&f.decision) == r).count();
    let files_word = if totals.files == 1 { "file" } else { "files" };
    if images == 0 {
        writeln!(out, "no images found in {} {files_word}", totals.files)?;
    } else {
        write!(
            out,
            "{} {files_word} scanned, {images} {}: {} refused, ",
            totals.files,
            if images == 1 { "finding" } else { "findings" },
            count(0),
        )?;
        let warned = count(1);
        if warned > 0 {
            write!(out, "{warned} allowed with a warning, ")?;
        }
        writeln!(out, "{} allowed", count(2))?;
    }
    if totals.helm_templates > 0 {
        let n = totals.helm_templates;
        let what = if n == 1 { "template" } else { "templates" };
        writeln!(
            out,
            "{dim}{n} Helm chart {what} skipped: scan them rendered (helm template … | imagegate scan -){dim:#}",
        )?;
    }
    Ok(())
}

/// One line of `--format json`.
#[derive(Serialize)]
struct ScanRecord<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    source: &'static str,
    image: Option<&'a str>,
    raw: Option<&'a str>,
    #[serde(flatten)]
    decided: Decided<'a>,
    at: &'a str,
}

/// One JSON object per finding, in file, line and column order.
pub fn json(out: &mut dyn Write, findings: &[Finding]) -> std::io::Result<()> {
    for f in findings {
        let record = ScanRecord {
            file: &f.site.file,
            line: f.site.line,
            column: f.site.column,
            source: f.site.source.as_str(),
            image: shown_image(&f.site.what),
            raw: raw(&f.site.what),
            decided: Decided::new(&f.decision),
            at: &f.site.at,
        };
        serde_json::to_writer(&mut *out, &record)?;
        writeln!(out)?;
    }
    Ok(())
}

/// The rules of the SARIF log: one per refusal reason, its id the reason code.
fn rule_description(reason: Reason) -> &'static str {
    match reason {
        Reason::InvalidReference => "The image reference does not parse",
        Reason::AmbiguousReference => {
            "The image reference is read differently by different runtimes"
        }
        Reason::RegistryNotAllowed => "The image's registry is not on the allow-list",
        Reason::CategoryNotAllowed => "The image's Docker Hub category is not allowed",
        Reason::RuleDenied => "A rule of the policy refuses the image",
        Reason::DigestRequired => "The policy requires images pinned by digest",
        Reason::SignInRequired => "The registry door requires signing in",
        Reason::RegoDenied => "A Rego policy refuses the image",
        Reason::NotAMember => "The user belongs to no organisation",
        Reason::Unresolved => "The image is named through a variable with no value",
        Reason::ParseError => "The file does not parse, so its images cannot be checked",
        Reason::Allowed | Reason::Exempt | Reason::BreakGlass | Reason::OwnerBypass => "Allowed",
    }
}

/// A SARIF 2.1.0 log: a result for each finding the policy refuses or would
/// refuse (error when refused, warning in warn mode, note in audit mode).
pub fn sarif(out: &mut dyn Write, findings: &[Finding], paths: &[PathBuf]) -> std::io::Result<()> {
    let refusals: Vec<Reason> = Reason::ALL.into_iter().filter(|r| r.is_refusal()).collect();
    let rules: Vec<serde_json::Value> = refusals
        .iter()
        .map(|r| {
            json!({
                "id": r.code(),
                "name": r.code(),
                "shortDescription": {"text": rule_description(*r)},
                "help": {"text": r.hint().unwrap_or_default()},
                "defaultConfiguration": {"level": "error"},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .filter(|f| f.decision.is_would_be_denial())
        .map(|f| {
            let d = &f.decision;
            let level = match (d.verdict, d.mode) {
                (Verdict::Deny, _) => "error",
                (Verdict::Allow, Mode::Audit) => "note",
                (Verdict::Allow, _) => "warning",
            };
            let text = match shown_image(&f.site.what) {
                Some(image) => message::about_image("", image, &d.message),
                None => d.message.to_string(),
            };
            let mut region = serde_json::Map::new();
            if f.site.line > 0 {
                region.insert("startLine".into(), json!(f.site.line));
                if f.site.column > 0 {
                    region.insert("startColumn".into(), json!(f.site.column));
                }
            }
            let mut physical = json!({
                "artifactLocation": {"uri": uri(&f.site.file), "uriBaseId": "%SRCROOT%"},
            });
            if !region.is_empty() {
                physical["region"] = serde_json::Value::Object(region);
            }
            json!({
                "ruleId": d.reason.code(),
                "ruleIndex": refusals.iter().position(|r| *r == d.reason),
                "level": level,
                "message": {"text": text},
                "locations": [{"physicalLocation": physical}],
                "properties": {
                    "source": f.site.source.as_str(),
                    "image": shown_image(&f.site.what),
                    "raw": raw(&f.site.what),
                    "reference": d.reference.as_ref().map(|r| r.as_str()),
                    "category": d.category.map(|c| c.code()),
                    "at": f.site.at,
                },
            })
        })
        .collect();
    let mut run = json!({
        "tool": {"driver": {
            "name": "imagegate",
            "version": env!("CARGO_PKG_VERSION"),
            "informationUri": "https://github.com/imagegate/imagegate",
            "rules": rules,
        }},
        "columnKind": "unicodeCodePoints",
        "results": results,
    });
    if let [root] = paths
        && let Ok(abs) = std::fs::canonicalize(root)
        && abs.is_dir()
    {
        let mut base = uri(&abs.to_string_lossy());
        if !base.ends_with('/') {
            base.push('/');
        }
        run["originalUriBaseIds"] = json!({"%SRCROOT%": {"uri": format!("file://{base}")}});
    }
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    });
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

/// A path as a relative URI reference: `/`-separated, percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_percent_encoded_and_slash_separated() {
        assert_eq!(uri("a dir/Dockerfile"), "a%20dir/Dockerfile");
        assert_eq!(uri("k8s/ü.yaml"), "k8s/%C3%BC.yaml");
        assert_eq!(uri("x#1?.yaml"), "x%231%3F.yaml");
    }
}
