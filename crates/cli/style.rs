//! Terminal styling: colour only when the stream is a terminal and `NO_COLOR`
//! is unset (anstream strips the escapes otherwise).

use std::io::Write;

use anstyle::{AnsiColor, Style};
use imagegate_core::decision::{StepOutcome, Verdict};

pub const ALLOW: Style = AnsiColor::Green.on_default().bold();
pub const DENY: Style = AnsiColor::Red.on_default().bold();
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
pub const DIM: Style = Style::new().dimmed();

/// The style of a verdict, yellow for an allowed would-be denial.
pub fn verdict(verdict: Verdict, would_deny: bool) -> Style {
    match (verdict, would_deny) {
        (Verdict::Deny, _) => DENY,
        (Verdict::Allow, true) => WARN,
        (Verdict::Allow, false) => ALLOW,
    }
}

/// The style of an explain step's outcome.
pub fn outcome(outcome: StepOutcome) -> Style {
    match outcome {
        StepOutcome::Deny => DENY,
        StepOutcome::Allow => ALLOW,
        StepOutcome::Pass => Style::new(),
        StepOutcome::Skip => DIM,
    }
}

/// Prints `error: <message>` on stderr.
pub fn error(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{DENY}error{DENY:#}: {message}");
}

/// Prints `warning: <message>` on stderr.
pub fn warning(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{WARN}warning{WARN:#}: {message}");
}

/// Prints `note: <message>` on stderr.
pub fn note(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{DIM}note{DIM:#}: {message}");
}
