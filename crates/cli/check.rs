//! `imagegate check`: decide image references given as arguments or on stdin.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use imagegate_core::decision::{Decision, Step};
use imagegate_core::{Input, Mode, Policy, decide, decide_explained};
use serde::Serialize;

use crate::{EXIT_DENIED, EXIT_OK, EXIT_USAGE, policy, style};

#[derive(clap::Args)]
pub struct Args {
    /// Policy file (YAML or JSON). Without one, every valid, unambiguous reference is allowed.
    #[arg(long, value_name = "FILE", env = "IMAGEGATE_POLICY")]
    policy: Option<PathBuf>,
    /// Output format: text for people, JSON lines for scripts.
    #[arg(long, visible_alias = "output", value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Show the chain of checks that led to each decision (text output).
    #[arg(long)]
    explain: bool,
    /// Kubernetes namespace, for exemptions.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// User name, for exemptions.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The access request form of your organisation's console
    /// (https://HOST/console/orgs/ORG/access-requests/new): a refusal an
    /// exception can lift then says where to ask for the image (text output).
    #[arg(long, value_name = "URL", env = "IMAGEGATE_REQUEST_ACCESS")]
    request_access: Option<String>,
    /// Image references; `-` reads more, one per line, from standard input.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// One line of `--format json`: exactly these fields, in this order.
#[derive(Serialize)]
pub struct CheckRecord<'a> {
    pub image: &'a str,
    #[serde(flatten)]
    pub decided: Decided<'a>,
}

/// The fields of a decision in `check`'s JSON (after `image`), which `scan`'s
/// JSON carries too.
#[derive(Serialize)]
pub struct Decided<'a> {
    pub valid: bool,
    pub reference: Option<&'a str>,
    pub registry: Option<&'a str>,
    pub repository: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub category: Option<&'static str>,
    pub decision: &'static str,
    pub reason: &'static str,
    pub message: &'a str,
    pub mode: &'static str,
}

impl<'a> Decided<'a> {
    pub fn new(d: &'a Decision) -> Decided<'a> {
        let r = d.reference.as_ref();
        Decided {
            valid: r.is_some(),
            reference: r.map(|r| r.as_str()),
            registry: r.and_then(|r| r.domain()),
            repository: r.map(|r| r.path()),
            tag: r.and_then(|r| r.tag()),
            digest: r.and_then(|r| r.digest()),
            category: d.category.map(|c| c.code()),
            decision: d.verdict.as_str(),
            reason: d.reason.code(),
            message: &d.message,
            mode: d.mode.as_str(),
        }
    }
}

impl<'a> CheckRecord<'a> {
    pub fn new(image: &'a str, d: &'a Decision) -> CheckRecord<'a> {
        CheckRecord {
            image,
            decided: Decided::new(d),
        }
    }
}

/// An image to decide: text, or a stdin line that is not UTF-8.
enum Item {
    Text(String),
    NotUtf8 { shown: String, line: usize },
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let Some(policy) = policy::load_or_default(args.policy.as_deref())? else {
        return Ok(EXIT_USAGE);
    };
    if args.policy.is_none() {
        style::warning(crate::scan::NO_POLICY);
    }
    let mut out = anstream::stdout().lock();
    let mut any_denied = false;
    let mut decided = 0usize;
    let mut decide_one = |item: Item, out: &mut dyn Write| -> anyhow::Result<()> {
        let (image, decision, steps) = match item {
            Item::Text(image) => {
                let input = Input {
                    image: &image,
                    namespace: args.namespace.as_deref(),
                    user: args.user.as_deref(),
                    break_glass: false,
                    owner: false,
                };
                let (decision, steps) = if args.explain {
                    decide_explained(&policy, &input)
                } else {
                    (decide(&policy, &input), Vec::new())
                };
                let decision = with_rego(&policy, &input, decision, "check");
                (image, decision, steps)
            }
            Item::NotUtf8 { shown, line } => {
                let what = format!("not valid UTF-8 (line {line} of standard input)");
                let decision = Decision::unreadable(&shown, &what, policy.mode);
                (shown, decision, Vec::new())
            }
        };
        any_denied |= !decision.is_allowed();
        decided += 1;
        match args.format {
            Format::Json => {
                serde_json::to_writer(&mut *out, &CheckRecord::new(&image, &decision))?;
                writeln!(out)?;
            }
            Format::Text => {
                write_text(out, &image, &decision, &steps)?;
                if let Some(link) = ask_link(args.request_access.as_deref(), &decision) {
                    writeln!(out, "      ask for access: {link}")?;
                }
            }
        }
        Ok(())
    };
    for arg in &args.images {
        if arg == "-" {
            let stdin = std::io::stdin();
            let mut reader = stdin.lock();
            let mut buf = Vec::new();
            let mut line = 0;
            loop {
                buf.clear();
                if reader
                    .read_until(b'\n', &mut buf)
                    .context("reading standard input")?
                    == 0
                {
                    break;
                }
                line += 1;
                let item = match std::str::from_utf8(&buf) {
                    Ok(text) => {
                        let text = text.trim();
                        if text.is_empty() {
                            continue;
                        }
                        Item::Text(text.to_owned())
                    }
                    Err(_) => Item::NotUtf8 {
                        shown: String::from_utf8_lossy(&buf).trim().to_owned(),
                        line,
                    },
                };
                decide_one(item, &mut out)?;
            }
        } else {
            decide_one(Item::Text(arg.clone()), &mut out)?;
        }
    }
    out.flush()?;
    if decided == 0 {
        style::warning("no image references were read from standard input");
    }
    Ok(if any_denied { EXIT_DENIED } else { EXIT_OK })
}

/// Asks the policy's Rego modules about one image at `door` (`check`,
/// `scan`), after the built-in checks:
/// the first Rego refusal replaces an allow (keeping the reference).
#[cfg(feature = "rego")]
pub(crate) fn with_rego(
    policy: &Policy,
    input: &Input<'_>,
    decision: Decision,
    door: &str,
) -> Decision {
    use imagegate_core::Reason;
    if policy.rego.is_none()
        || decision.reference.is_none()
        || decision.reason == Reason::Exempt
        || !decision.is_allowed()
    {
        return decision;
    }
    let rego_input = serde_json::json!({
        "door": door,
        "namespace": input.namespace,
        "user": input.user,
        "images": [imagegate_core::rego::image_entry(input.image, &decision)],
    });
    match imagegate_core::rego_refusals(policy, &rego_input)
        .into_iter()
        .next()
    {
        Some(refusal) if !decision.is_would_be_denial() => Decision {
            reference: decision.reference,
            category: decision.category,
            ..refusal
        },
        _ => decision,
    }
}

#[cfg(not(feature = "rego"))]
pub(crate) fn with_rego(_: &Policy, _: &Input<'_>, decision: Decision, _: &str) -> Decision {
    decision
}

/// Where to ask for a refused image an exception can lift (image access,
/// registry access), given the console's access request form.
fn ask_link(form: Option<&str>, d: &Decision) -> Option<String> {
    let form = form?.trim_end_matches(['?', '/']);
    let reference = d.reference.as_ref()?;
    d.reason
        .is_access_refusal()
        .then(|| format!("{form}?image={}", reference.as_str()))
}

fn write_text(
    out: &mut dyn Write,
    image: &str,
    d: &Decision,
    steps: &[Step],
) -> std::io::Result<()> {
    let would_deny = d.is_would_be_denial();
    let word = match (d.is_allowed(), would_deny, d.mode) {
        (false, _, _) => "DENY ",
        (true, true, Mode::Audit) => "AUDIT",
        (true, true, _) => "WARN ",
        (true, false, _) => "ALLOW",
    };
    let s = style::verdict(d.verdict, would_deny);
    let shown = imagegate_core::reference::quote_input(image);
    let shown = shown.trim_matches('"');
    write!(out, "{s}{word}{s:#} {shown}: {}", d.message)?;
    if would_deny {
        let dim = style::DIM;
        write!(out, " {dim}[{}]{dim:#}", d.reason)?;
        if d.is_allowed() {
            write!(out, " {dim}(allowed in {} mode){dim:#}", d.mode)?;
        }
    }
    writeln!(out)?;
    for step in steps {
        let o = style::outcome(step.outcome);
        writeln!(
            out,
            "      {:<16}{o}{:<6}{o:#}{}",
            step.check.label(),
            step.outcome.label(),
            step.detail
        )?;
    }
    if let Some(path) = d.decided_by.policy_path().filter(|_| !steps.is_empty()) {
        writeln!(out, "      {:<16}{path}", "decided by")?;
    }
    Ok(())
}
