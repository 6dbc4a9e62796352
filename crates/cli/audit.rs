//! `imagegate audit`: prints and filters the audit log in the store, as text
//! for people, JSON lines for scripts, or CSV for spreadsheets.

use std::io::Write;

use anyhow::{Context, bail};
use imagegate_core::Reference;
use imagegate_core::pattern::ImagePattern;
use imagegate_server::store::{AuditEvent, AuditFilter};
use serde::Serialize;

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
    /// Events at this door only (gateway, admission, imagepolicy).
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

/// The printed fields, in order: [`Row`]'s, for a CSV header with no rows.
const FIELDS: [&str; 15] = [
    "time",
    "door",
    "org",
    "user",
    "source",
    "image",
    "input",
    "category",
    "decision",
    "reason",
    "mode",
    "message",
    "namespace",
    "request",
    "path",
];

/// One event as printed: these field names are the JSON and CSV contract.
#[derive(Serialize)]
struct Row<'a> {
    time: String,
    door: &'a str,
    org: Option<&'a str>,
    user: Option<&'a str>,
    source: Option<&'a str>,
    image: &'a str,
    input: &'a str,
    category: Option<&'a str>,
    decision: &'a str,
    reason: &'a str,
    mode: &'a str,
    message: &'a str,
    namespace: Option<&'a str>,
    request: Option<&'a str>,
    path: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn of(e: &'a AuditEvent) -> Row<'a> {
        Row {
            time: rfc3339(e.time_ms),
            door: &e.door,
            org: e.org.as_deref(),
            user: e.user.as_deref(),
            source: e.source.as_deref(),
            image: &e.image,
            input: &e.input,
            category: e.category.as_deref(),
            decision: &e.decision,
            reason: &e.reason,
            mode: &e.mode,
            message: &e.message,
            namespace: e.namespace.as_deref(),
            request: e.request.as_deref(),
            path: e.path.as_deref(),
        }
    }
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Parses `--since`/`--until`: RFC 3339, or `<N>s|m|h|d` ago.
fn parse_time(flag: &str, text: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = text[..text.len() - 1].parse::<i64>()
    {
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => 86_400,
        };
        return Ok(now_ms.saturating_sub(n.saturating_mul(seconds).saturating_mul(1000)));
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("{flag} {text:?}: expected RFC 3339 (2026-11-23T10:00:00Z) or a duration ago (15m, 2h, 7d)")
        })?;
    Ok(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX);
    let since_ms = args
        .since
        .as_deref()
        .map(|t| parse_time("--since", t, now_ms))
        .transpose()?;
    let until_ms = args
        .until
        .as_deref()
        .map(|t| parse_time("--until", t, now_ms))
        .transpose()?;
    let glob = match &args.image {
        Some(g) => Some(ImagePattern::parse(g).map_err(|e| anyhow::anyhow!("--image {g:?}: {e}"))?),
        None => None,
    };
    if args.limit == Some(0) {
        bail!("--limit 0: give at least 1");
    }
    if args.store.database_url.is_none() {
        let db = args
            .store
            .data_dir()
            .join(imagegate_server::store::DATABASE_FILE);
        if !db.exists() {
            // Reading must not create an empty store at a mistyped path.
            bail!(
                "no store at {}: give the --data-dir (or --database-url) that imagegate serve uses",
                db.display()
            );
        }
    }
    let store = args.store.open()?;
    let filter = AuditFilter {
        since_ms,
        until_ms,
        user: args.user,
        door: args.door,
        decision: args.decision.map(|d| match d {
            DecisionArg::Allow => "allow".to_owned(),
            DecisionArg::Deny => "deny".to_owned(),
        }),
        // With an image glob, the limit applies after matching.
        limit: if glob.is_some() { None } else { args.limit },
    };
    let mut events = store.audit_events(&filter)?;
    if let Some(glob) = &glob {
        events.retain(|e| Reference::parse(&e.image).is_ok_and(|r| glob.matches(&r)));
        if let Some(n) = args.limit {
            let skip = events.len().saturating_sub(n);
            events.drain(..skip);
        }
    }

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
            let mut w = csv::Writer::from_writer(stdout.lock());
            if events.is_empty() {
                // The header alone, so an empty export is still a valid table.
                w.write_record(FIELDS)?;
            }
            for e in &events {
                w.serialize(Row::of(e))?;
            }
            w.flush()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_csv_header_is_the_rows_header() {
        let e = AuditEvent::default();
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(Row::of(&e)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next(), Some(FIELDS.join(",").as_str()));
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("--since", "15m", now).unwrap(), now - 900_000);
        assert_eq!(parse_time("--since", "7d", now).unwrap(), now - 604_800_000);
        assert_eq!(
            parse_time("--since", "2026-11-23T10:00:00Z", now).unwrap(),
            1_795_428_000_000
        );
        let e = parse_time("--until", "yesterday", now)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--until \"yesterday\": expected RFC 3339"),
            "{e}"
        );
        assert_eq!(rfc3339(1_795_428_000_123), "2026-11-23T10:00:00.123Z");
    }
}
