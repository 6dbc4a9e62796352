//! `imagegate scan`: find every image a tree of Dockerfiles, Compose files
//! and Kubernetes manifests names, and decide each with the policy, as every
//! other door does.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::Context;
use imagegate_core::decision::Decision;
use imagegate_core::{Input, Policy, decide};

use crate::{EXIT_DENIED, EXIT_OK, EXIT_USAGE, policy, style};

mod files;
mod hint;
mod report;

use files::{Event, Options, Site, What};

#[derive(clap::Args)]
pub struct Args {
    /// Policy file (YAML or JSON). Without one, every valid, unambiguous reference is allowed.
    #[arg(long, value_name = "FILE", env = "IMAGEGATE_POLICY")]
    policy: Option<PathBuf>,
    /// Output format: text for people, JSON lines for scripts, SARIF 2.1.0 for code scanning.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// A Dockerfile build argument (`NAME=value`, or `NAME` to take it from the environment).
    #[arg(long = "build-arg", value_name = "NAME=VALUE", value_parser = build_arg)]
    build_args: Vec<(String, Option<String>)>,
    /// Variables for Compose interpolation, instead of each Compose file's `.env`.
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Files and directories to scan (default: the current directory); `-` reads
    /// Kubernetes objects or a Compose file from standard input.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

fn build_arg(text: &str) -> Result<(String, Option<String>), String> {
    let (name, value) = match text.split_once('=') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (text, None),
    };
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(format!("{text:?} is not NAME=VALUE"));
    }
    Ok((name.to_owned(), value))
}

/// A site and what the policy said about it.
pub struct Finding {
    pub site: Site,
    pub decision: Decision,
}

/// Counts for the summary.
#[derive(Default)]
pub struct Totals {
    pub files: usize,
    pub bytes: u64,
    pub helm_templates: usize,
    pub walk_warnings: usize,
}

/// Said on stderr by `check` and `scan` when no policy is given, so a CI job
/// that forgot `--policy` does not pass in silence.
pub const NO_POLICY: &str = "no policy given (--policy FILE or IMAGEGATE_POLICY): every valid, unambiguous reference is allowed";

pub fn run(args: Args) -> anyhow::Result<u8> {
    let Some(policy) = policy::load_or_default(args.policy.as_deref())? else {
        return Ok(EXIT_USAGE);
    };
    if args.policy.is_none() {
        style::warning(NO_POLICY);
    }
    let mut env_file = None;
    for path in &args.env_files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the env file {}", path.display()))?;
        env_file
            .get_or_insert_with(Vec::new)
            .extend(imagegate_scan::compose::env_file(&text));
    }
    let options = Options {
        build_args: args
            .build_args
            .iter()
            .filter_map(|(k, v)| {
                let v = v.clone().or_else(|| std::env::var(k).ok())?;
                Some((k.clone(), v))
            })
            .collect(),
        env_file,
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    for path in &paths {
        if path.as_os_str() != "-" && !path.exists() {
            style::error(&format!(
                "cannot scan {}: no such file or directory",
                path.display()
            ));
            return Ok(EXIT_USAGE);
        }
    }
    let (sites, totals) = collect(&paths, &options)?;
    let findings: Vec<Finding> = sites
        .into_iter()
        .map(|site| {
            let decision = decide_site(&policy, &site);
            Finding { site, decision }
        })
        .collect();
    let refused = findings.iter().any(|f| !f.decision.is_allowed());
    // Colour (and anstream's stripping of it) is for the text output only.
    if args.format == Format::Text {
        let mut out = anstream::stdout().lock();
        report::text(&mut out, &findings, &totals, &policy)?;
        out.flush()?;
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        match args.format {
            Format::Sarif => report::sarif(&mut out, &findings, &paths)?,
            _ => report::json(&mut out, &findings)?,
        }
        out.flush()?;
    }
    Ok(if refused { EXIT_DENIED } else { EXIT_OK })
}

/// Every site in every path, sorted by file, line and column, each once.
fn collect(paths: &[PathBuf], options: &Options) -> anyhow::Result<(Vec<Site>, Totals)> {
    let mut totals = Totals::default();
    let mut sites = Vec::new();
    let progress = Progress::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            let scanned = match files::scan_stdin(&text, options) {
                Ok(s) => s,
                Err(why) => anyhow::bail!(why),
            };
            totals.files += 1;
            totals.bytes += scanned.bytes;
            sites.extend(scanned.sites);
        } else if path.is_dir() {
            let (tx, rx) = mpsc::channel();
            let walked = std::thread::scope(|scope| {
                let shown_from = if paths.len() > 1 {
                    Path::new(".")
                } else {
                    path.as_path()
                };
                let walk = scope.spawn(move || files::walk(path, shown_from, options, &tx));
                for event in rx {
                    match event {
                        Event::Scanned(scanned) => {
                            totals.files += 1;
                            totals.bytes += scanned.bytes;
                            sites.extend(scanned.sites);
                            progress.tick(totals.files);
                        }
                        Event::HelmTemplate => totals.helm_templates += 1,
                        Event::Warning(w) => {
                            totals.walk_warnings += 1;
                            progress.suspend(|| style::warning(&w.0));
                        }
                    }
                }
                walk.join()
            });
            match walked {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    progress.finish();
                    anyhow::bail!(why);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        } else if files::is_helm_template(path) {
            // pre-commit passes a chart's templates one by one.
            totals.helm_templates += 1;
        } else {
            let shown = path.to_string_lossy();
            match files::scan_file(path, &shown, options, Path::new(".")) {
                Some(scanned) => {
                    totals.files += 1;
                    totals.bytes += scanned.bytes;
                    sites.extend(scanned.sites);
                }
                None => style::warning(&format!(
                    "{shown} is not a Dockerfile, Compose file or Kubernetes manifest: skipped"
                )),
            }
        }
    }
    progress.finish();
    sites.sort();
    // A Dockerfile scanned on its own and again for a Compose build, with the
    // same result, is one finding.
    sites.dedup_by(|a, b| {
        (&a.file, a.line, a.column, a.source, &a.what)
            == (&b.file, b.line, b.column, b.source, &b.what)
    });
    Ok((sites, totals))
}

fn decide_site(policy: &Policy, site: &Site) -> Decision {
    match &site.what {
        What::Image { image, .. } => {
            let input = Input {
                image,
                namespace: site.namespace.as_deref(),
                user: None,
                break_glass: false,
                owner: false,
            };
            crate::check::with_rego(policy, &input, decide(policy, &input), "scan")
        }
        What::Unresolved { raw, names } => Decision::unresolved(raw, names, policy.mode),
        What::ParseError { what, detail } => Decision::parse_error(what, detail, policy.mode),
    }
}

/// A spinner on stderr for large trees, only when stderr is a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Files scanned before the spinner appears.
    const AFTER: usize = 500;

    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::hidden();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} scanning: {pos} files read in {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        });
        Progress { bar }
    }

    fn tick(&self, files: usize) {
        if let Some(bar) = &self.bar {
            if files == Self::AFTER {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_position(files as u64);
        }
    }

    fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_take_a_name_and_maybe_a_value() {
        assert_eq!(build_arg("A=b=c"), Ok(("A".into(), Some("b=c".into()))));
        assert_eq!(build_arg("A"), Ok(("A".into(), None)));
        assert!(build_arg("=x").is_err());
    }
}
