//! `imagegate audit`: prints and filters the audit log in the store, as text
//! for people, JSON lines for scripts, or CSV for spreadsheets.

use std::io::Write;

use anyhow::bail;
use imagegate_core::pattern::ImagePattern;
use imagegate_server::audit::{DOORS, Record as Row, parse_time, rfc3339};
use imagegate_server::store::AuditFilter;

use crate::EXIT_OK;
use crate::admin::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Events at or after TIME: RFC 3339 (2026-11-23T10:00:00Z) or a duration ago (15m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Events before TIME (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Events of this user (or Kubernetes identity) only.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Events decided under this organisation's policy only.
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// Events at this door only (gateway, admission, imagepolicy, token).
    #[arg(long, value_name = "DOOR")]
    door: Option<String>,
    /// Allowed or refused events only.
    #[arg(long, value_enum)]
    decision: Option<DecisionArg>,
    /// Events whose image matches this pattern (policy rule syntax:
    /// docker.io/someuser/*, ghcr.io/corp/**, nginx).
    #[arg(long, value_name = "GLOB")]
    image: Option<String>,
    /// At most the newest N events.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DecisionArg {
    Allow,
    Deny,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Csv,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX);
    let since_ms = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now_ms).map_err(|e| anyhow::anyhow!("--since {e}")))
        .transpose()?;
    let until_ms = args
        .until
        .as_deref()
        .map(|t| parse_time(t, now_ms).map_err(|e| anyhow::anyhow!("--until {e}")))
        .transpose()?;
    let glob = match &args.image {
        Some(g) => Some(ImagePattern::parse(g).map_err(|e| anyhow::anyhow!("--image {g:?}: {e}"))?),
        None => None,
    };
    if args.limit == Some(0) {
        bail!("--limit 0: give at least 1");
    }
    if let Some(door) = &args.door
        && !DOORS.contains(&door.as_str())
    {
        bail!(
            "--door {door:?} is not a door; the doors are {}",
            DOORS.join(", ")
        );
    }
    let store = args.store.open_existing()?;
    if let Some(org) = &args.org
        && store.org(org)?.is_none()
    {
        let names = store.org_names()?;
        if names.is_empty() {
            bail!("--org {org:?}: no organisation named {org:?}; the store has no organisations");
        }
        bail!(
            "--org {org:?}: no organisation named {org:?}; the organisations are {}",
            names.join(", ")
        );
    }
    let filter = AuditFilter {
        since_ms,
        until_ms,
        user: args.user,
        org: args.org,
        door: args.door,
        decision: args.decision.map(|d| match d {
            DecisionArg::Allow => "allow".to_owned(),
            DecisionArg::Deny => "deny".to_owned(),
        }),
        limit: args.limit,
        offset: None,
    };
    let events = imagegate_server::audit::read(store.as_ref(), &filter, glob.as_ref())?;

    let stdout = std::io::stdout();
    match args.format {
        Format::Json => {
            let mut out = stdout.lock();
            for e in &events {
                serde_json::to_writer(&mut out, &Row::of(e))?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Format::Csv => {
            // csv::Error hides the io::Error it carries, so the writer keeps it.
            let mut out = KeepError {
                inner: stdout.lock(),
                error: None,
            };
            if let Err(e) = imagegate_server::audit::write_csv(&events, &mut out) {
                return Err(match out.error {
                    Some(io) => io.into(),
                    None => e.into(),
                });
            }
        }
        Format::Text => {
            let mut out = anstream::stdout().lock();
            for e in &events {
                let style = if e.decision == "deny" {
                    crate::style::DENY
                } else if e.reason != "allowed" && e.reason != "exempt" {
                    crate::style::WARN
                } else {
                    crate::style::ALLOW
                };
                writeln!(
                    out,
                    "{}  {:<11} {:<12} {style}{:<5}{style:#} {}  {}{}{:#}",
                    rfc3339(e.time_ms),
                    e.door,
                    e.user.as_deref().unwrap_or("-"),
                    e.decision,
                    e.image,
                    crate::style::DIM,
                    e.message,
                    crate::style::DIM,
                )?;
            }
            out.flush()?;
        }
    }
    Ok(EXIT_OK)
}

/// A writer that keeps the last `io::Error` its inner writer gave.
struct KeepError<W> {
    inner: W,
    error: Option<std::io::Error>,
}

impl<W: Write> KeepError<W> {
    fn keep<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        result.map_err(|e| {
            let again = std::io::Error::new(e.kind(), e.to_string());
            self.error = Some(e);
            again
        })
    }
}

impl<W: Write> Write for KeepError<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.keep(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.keep(result)
    }
}
