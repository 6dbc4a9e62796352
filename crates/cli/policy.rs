//! `imagegate policy validate|test`: keep a policy under test in CI.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use imagegate_core::Policy;
use imagegate_core::policy::PolicyErrors;
use imagegate_core::policy::suite::Suite;

use crate::{EXIT_DENIED, EXIT_OK, EXIT_USAGE, style};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check that a policy file loads; print every problem with its line.
    Validate {
        /// The policy file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Run a test suite (kind ImagePolicyTest) against its policy.
    Test {
        /// The test suite file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The policy to test, instead of the one the suite names.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

/// Reads and compiles a policy (and the Rego files it names). `Err` when the
/// file cannot be read; `Ok(Err)` with a printable report when it does not load.
pub fn load(path: &Path) -> anyhow::Result<Result<Policy, String>> {
    use imagegate_server::state::{PolicyFileError, load_policy};
    match load_policy(path) {
        Ok(policy) => Ok(Ok(policy)),
        Err(err @ PolicyFileError::Read { .. }) => Err(err.into()),
        Err(PolicyFileError::Invalid { path, report }) => {
            Ok(Err(format!("{} does not load:\n{report}", path.display())))
        }
    }
}

/// The policy a command decides with: the file's, or the default (everything
/// valid allowed) without one. `None` when the file does not load, after its
/// problems were printed: the command exits 2.
pub fn load_or_default(path: Option<&Path>) -> anyhow::Result<Option<Policy>> {
    let Some(path) = path else {
        return Ok(Some(Policy::default()));
    };
    match load(path)? {
        Ok(policy) => Ok(Some(policy)),
        Err(report) => {
            style::error(&report);
            Ok(None)
        }
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{what} {} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// `FILE:line:column: path: message`, one problem per line.
fn report(path: &Path, errors: &PolicyErrors) -> String {
    let mut out = format!("{} does not load:", path.display());
    for e in &errors.0 {
        out.push_str(&format!("\n  {}:{e}", path.display()));
    }
    out
}

pub fn run(cmd: Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Validate { file } => validate(&file),
        Command::Test { file, policy } => test(&file, policy.as_deref()),
    }
}

fn validate(file: &Path) -> anyhow::Result<u8> {
    match load(file)? {
        Ok(p) => {
            let mut out = anstream::stdout();
            let ok = style::ALLOW;
            writeln!(
                out,
                "{ok}valid{ok:#} {}: policy {:?}, mode {}, image access {}, registry access {}, {} rules",
                file.display(),
                p.name,
                p.mode,
                if p.image_access.enabled { "on" } else { "off" },
                match &p.registry_access {
                    Some(list) => format!("on ({} registries)", list.scopes().len()),
                    None => "off".to_owned(),
                },
                p.rules.rules().len(),
            )?;
            Ok(EXIT_OK)
        }
        Err(report) => {
            style::error(&report);
            Ok(EXIT_DENIED)
        }
    }
}

fn test(file: &Path, policy_override: Option<&Path>) -> anyhow::Result<u8> {
    let text = read(file, "test suite")?;
    let suite = match Suite::load(&text) {
        Ok(s) => s,
        Err(e) => {
            style::error(&report(file, &e));
            return Ok(EXIT_USAGE);
        }
    };
    let policy_path = match (policy_override, &suite.policy) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => file.parent().unwrap_or(Path::new(".")).join(p),
        (None, None) => anyhow::bail!(
            "{} names no policy: add `policy: FILE` to it or pass --policy FILE",
            file.display()
        ),
    };
    let policy = match load(&policy_path)? {
        Ok(p) => p,
        Err(report) => {
            style::error(&report);
            return Ok(EXIT_USAGE);
        }
    };
    let mut out = anstream::stdout();
    let (mut passed, mut failed) = (0, 0);
    for result in suite.run(&policy) {
        let case = result.case;
        let got = &result.decision;
        if result.passed {
            passed += 1;
            let s = style::ALLOW;
            writeln!(
                out,
                "{s}PASS{s:#} {}: {} ({})",
                case.name, got.verdict, got.reason
            )?;
        } else {
            failed += 1;
            let s = style::DENY;
            let expected = match case.reason {
                Some(r) => format!("{} ({r})", case.decision),
                None => case.decision.to_string(),
            };
            writeln!(
                out,
                "{s}FAIL{s:#} {} ({}:{}): expected {expected}, got {} ({}): {}",
                case.name,
                file.display(),
                case.line,
                got.verdict,
                got.reason,
                got.message
            )?;
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed == 0 { EXIT_OK } else { EXIT_DENIED })
}
