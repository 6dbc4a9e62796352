//! Prometheus metrics: decisions by door, reason and mode; request latency by
//! door; policy reloads; break-glass use. Served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use imagegate_core::Decision;

/// Labels of one decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `admission`, `imagepolicy`, ...
    pub door: &'static str,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The reason code.
    pub reason: &'static str,
    /// The policy's mode.
    pub mode: &'static str,
}

/// Labels naming a door.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DoorLabels {
    /// The door.
    pub door: &'static str,
}

/// Labels of a policy reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels of one request the gateway sent upstream.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The upstream's registry host.
    pub upstream: String,
    /// `manifest`, `blob` or `tags`.
    pub kind: &'static str,
    /// `GET` or `HEAD`.
    pub method: &'static str,
}

/// Labels of a registry token check.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenCheckLabels {
    /// `cached` (no signature check needed) or `verified`.
    pub result: &'static str,
}

/// Labels of audit events by what became of them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabels {
    /// `written`, `dropped_overflow` or `dropped_error`.
    pub result: &'static str,
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    latency: Family<DoorLabels, Histogram>,
    reloads: Family<ReloadLabels, Counter>,
    break_glass: Family<DoorLabels, Counter>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    token_checks: Family<TokenCheckLabels, Counter>,
    audit_events: Family<AuditLabels, Counter>,
    audit_store_up: Gauge,
    audit_store_failures: Counter,
    audit_transactions: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers the metrics.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("imagegate");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Image decisions by door, verdict, reason and mode",
            decisions.clone(),
        );
        let latency = Family::<DoorLabels, Histogram>::new_with_constructor(|| {
            // 50 us to 2.5 s: a review is microseconds, a slow client is not.
            Histogram::new([
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
            ])
        });
        registry.register(
            "request_duration_seconds",
            "Time to answer a review, by door",
            latency.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy file reloads by result",
            reloads.clone(),
        );
        let break_glass = Family::<DoorLabels, Counter>::default();
        registry.register(
            "break_glass",
            "Refusals overridden by break-glass, by door",
            break_glass.clone(),
        );
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Requests the registry gateway sent to upstream registries, by upstream, kind and method",
            upstream_requests.clone(),
        );
        let token_checks = Family::<TokenCheckLabels, Counter>::default();
        registry.register(
            "gateway_token_checks",
            "Bearer tokens presented to the registry gateway, by whether the signature check was cached",
            token_checks.clone(),
        );
        let audit_events = Family::<AuditLabels, Counter>::default();
        // Present at zero from the start, so an alert on drops has a series.
        for result in ["written", "dropped_overflow", "dropped_error"] {
            let _ = audit_events.get_or_create(&AuditLabels { result });
        }
        registry.register(
            "audit_events",
            "Audit events by what became of them (written to the store, or dropped)",
            audit_events.clone(),
        );
        let audit_store_up = Gauge::default();
        audit_store_up.set(1);
        registry.register(
            "audit_store_up",
            "1 while the audit log is being written, 0 while the store refuses it or is not the database opened",
            audit_store_up.clone(),
        );
        let audit_store_failures = Counter::default();
        registry.register(
            "audit_store_failures",
            "Failed audit writes and store probes (write errors, a database file removed or replaced)",
            audit_store_failures.clone(),
        );
        let audit_transactions = Counter::default();
        registry.register(
            "audit_transactions",
            "Transactions the audit writer committed (each holds every event that was waiting)",
            audit_transactions.clone(),
        );
        Metrics {
            audit_transactions,
            audit_events,
            audit_store_up,
            audit_store_failures,
            upstream_requests,
            token_checks,
            registry,
            decisions,
            latency,
            reloads,
            break_glass,
        }
    }

    /// Counts one decision.
    pub fn decision(&self, door: &'static str, d: &Decision) {
        self.decisions
            .get_or_create(&DecisionLabels {
                door,
                decision: d.verdict.as_str(),
                reason: d.reason.code(),
                mode: d.mode.as_str(),
            })
            .inc();
        if d.reason == imagegate_core::Reason::BreakGlass {
            self.break_glass.get_or_create(&DoorLabels { door }).inc();
        }
    }

    /// Records how long a request took.
    pub fn latency(&self, door: &'static str, seconds: f64) {
        self.latency
            .get_or_create(&DoorLabels { door })
            .observe(seconds);
    }

    /// Counts one upstream request.
    pub fn upstream_request(&self, upstream: &str, kind: &'static str, method: &'static str) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
                kind,
                method,
            })
            .inc();
    }

    /// Counts one token check at the gateway.
    pub fn token_check(&self, cached: bool) {
        self.token_checks
            .get_or_create(&TokenCheckLabels {
                result: if cached { "cached" } else { "verified" },
            })
            .inc();
    }

    /// Counts `n` audit events with `result`.
    pub fn audit_events(&self, result: &'static str, n: u64) {
        self.audit_events
            .get_or_create(&AuditLabels { result })
            .inc_by(n);
    }

    /// Counts one audit transaction committed.
    pub fn audit_transaction(&self) {
        self.audit_transactions.inc();
    }

    /// Counts a failed audit write or store probe; the store is down.
    pub fn audit_store_failure(&self) {
        self.audit_store_failures.inc();
        self.audit_store_up.set(0);
    }

    /// The audit store takes writes again.
    pub fn audit_store_recovered(&self) {
        self.audit_store_up.set(1);
    }

    /// Counts a policy reload.
    pub fn policy_reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
