//! Prometheus metrics (served by `web::metrics` on `--metrics-bind`).
//!
//! One set per process, like a logger: the places that count — the
//! security log, the second-factor check, the database lanes, the hashing
//! queue, the request middleware — call the functions here, which only
//! touch atomics (a label set's counter is found under a read lock). A
//! leaf module: it imports nothing from the rest of the crate, so any layer
//! may count. The two gauges that describe the database (users with 2FA on,
//! live sessions) are read from it when Prometheus scrapes.
//!
//! Names follow Prometheus' conventions: `latchkey_` prefix, base units
//! (seconds), `_total` on counters (added by the OpenMetrics encoder).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FactorLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LockoutLabels {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: &'static str,
}

struct Metrics {
    registry: Registry,
    sign_ins: Family<OutcomeLabels, Counter>,
    second_factor_checks: Family<FactorLabels, Counter>,
    lockouts: Family<LockoutLabels, Counter>,
    security_events: Family<EventLabels, Counter>,
    users_with_mfa: Gauge,
    active_sessions: Gauge,
    request_seconds: Family<RequestLabels, Histogram>,
    db_wait_seconds: Family<LaneLabels, Histogram>,
    db_busy: Family<LaneLabels, Counter>,
    hash_queue: Gauge,
    mail: Family<OutcomeLabels, Counter>,
}

fn request_histogram() -> Histogram {
    // 100 µs to 2.4 s: page requests take well under a millisecond, a
    // password check about a quarter of a second at bcrypt cost 12.
    Histogram::new(exponential_buckets(0.0001, 2.5, 12))
}

fn wait_histogram() -> Histogram {
    // 10 µs to 2.6 s; a call gives up after 5 s (`db::CONNECTION_TIMEOUT`).
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("latchkey");
    let m = Metrics {
        registry: Registry::default(),
        sign_ins: Family::default(),
        second_factor_checks: Family::default(),
        lockouts: Family::default(),
        security_events: Family::default(),
        users_with_mfa: Gauge::default(),
        active_sessions: Gauge::default(),
        request_seconds: Family::new_with_constructor(request_histogram),
        db_wait_seconds: Family::new_with_constructor(wait_histogram),
        db_busy: Family::default(),
        hash_queue: Gauge::default(),
        mail: Family::default(),
    };
    registry.register(
        "sign_ins",
        "Sign-in attempts by outcome: success, wrong_password, throttled, too_many_codes",
        m.sign_ins.clone(),
    );
    registry.register(
        "second_factor_checks",
        "Second factors checked, by kind (totp, recovery_code, security_key) and outcome (accepted, wrong, replayed, throttled)",
        m.second_factor_checks.clone(),
    );
    registry.register(
        "lockouts",
        "Accounts locked after failed attempts, by step (password, second_factor)",
        m.lockouts.clone(),
    );
    registry.register(
        "security_events",
        "Entries written to the security log, by kind",
        m.security_events.clone(),
    );
    registry.register(
        "users_with_two_factor",
        "Users with two-factor authentication on",
        m.users_with_mfa.clone(),
    );
    registry.register(
        "active_sessions",
        "Signed-in sessions that have not expired",
        m.active_sessions.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time to answer a request, by route pattern and method",
        m.request_seconds.clone(),
    );
    registry.register(
        "db_wait_seconds",
        "Time a database call waited for its connection, by lane (writer, reader, pool)",
        m.db_wait_seconds.clone(),
    );
    registry.register(
        "db_busy",
        "Database calls refused because no connection became free in time, by lane",
        m.db_busy.clone(),
    );
    registry.register(
        "password_hash_queue_depth",
        "Password hashing jobs waiting for a hashing thread",
        m.hash_queue.clone(),
    );
    registry.register(
        "emails",
        "Attempts to send an email notification, by outcome: sent, temporary_failure, permanent_failure",
        m.mail.clone(),
    );
    // Every known label set starts at zero, so that rates and alerts work
    // from the first scrape rather than from the first event.
    for outcome in ["success", "wrong_password", "throttled", "too_many_codes"] {
        let _ = m.sign_ins.get_or_create(&OutcomeLabels { outcome });
    }
    for kind in ["totp", "recovery_code", "security_key"] {
        for outcome in ["accepted", "wrong", "replayed", "throttled"] {
            let _ = m.second_factor_checks.get_or_create(&FactorLabels { kind, outcome });
        }
    }
    for step in ["password", "second_factor"] {
        let _ = m.lockouts.get_or_create(&LockoutLabels { step });
    }
    for outcome in ["sent", "temporary_failure", "permanent_failure"] {
        let _ = m.mail.get_or_create(&OutcomeLabels { outcome });
    }
    Metrics { registry, ..m }
});

/// Count one security-log entry: its kind, and the sign-in outcomes and
/// lockouts among them. `kind` is the event's stored name.
pub fn security_event(kind: &'static str) {
    let m = &*METRICS;
    m.security_events.get_or_create(&EventLabels { kind }).inc();
    let outcome = match kind {
        "login_succeeded" => Some("success"),
        "login_failed" => Some("wrong_password"),
        "login_throttled" => Some("throttled"),
        "sign_in_abandoned" => Some("too_many_codes"),
        _ => None,
    };
    if let Some(outcome) = outcome {
        m.sign_ins.get_or_create(&OutcomeLabels { outcome }).inc();
    }
    let step = match kind {
        "password_locked" => Some("password"),
        "second_factor_locked" => Some("second_factor"),
        _ => None,
    };
    if let Some(step) = step {
        m.lockouts.get_or_create(&LockoutLabels { step }).inc();
    }
}

/// Count one attempt to send an email.
pub fn mail(outcome: &'static str) {
    METRICS.mail.get_or_create(&OutcomeLabels { outcome }).inc();
}

/// Count one second-factor check.
pub fn second_factor_check(kind: &'static str, outcome: &'static str) {
    METRICS
        .second_factor_checks
        .get_or_create(&FactorLabels { kind, outcome })
        .inc();
}

/// Observe one answered request under its route pattern.
pub fn observe_request(route: String, method: &str, elapsed: Duration) {
    let method = match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        _ => "other",
    };
    METRICS
        .request_seconds
        .get_or_create(&RequestLabels { route, method })
        .observe(elapsed.as_secs_f64());
}

/// A database call got its connection after waiting `waited`.
pub fn db_waited(lane: &'static str, waited: Duration) {
    METRICS
        .db_wait_seconds
        .get_or_create(&LaneLabels { lane })
        .observe(waited.as_secs_f64());
}

/// A database call gave up waiting for a connection.
pub fn db_busy(lane: &'static str) {
    METRICS.db_busy.get_or_create(&LaneLabels { lane }).inc();
}

/// A password hashing job joined the queue.
pub fn hash_queued() {
    METRICS.hash_queue.inc();
}

/// A password hashing job left the queue (a thread took it, or it was never sent).
pub fn hash_dequeued() {
    METRICS.hash_queue.dec();
}

/// Set the gauges read from the database at scrape time.
pub fn set_database_gauges(users_with_mfa: i64, active_sessions: i64) {
    METRICS.users_with_mfa.set(users_with_mfa);
    METRICS.active_sessions.set(active_sessions);
}

/// Everything, in the OpenMetrics text format (what Prometheus asks for).
pub fn encode() -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &METRICS.registry).expect("writing to a String cannot fail");
    out
}

/// Everything, in Prometheus' classic text format (0.0.4), for clients that
/// do not ask for OpenMetrics (`curl`, `promtool check metrics`).
///
/// prometheus-client writes OpenMetrics only, and the two differ, for what
/// this registry holds, in three places: a counter's `# HELP`/`# TYPE` name
/// the family (`x`) where the classic format names the sample (`x_total`);
/// `# UNIT` lines; and the closing `# EOF`. Rewritten by hand for that.
pub fn encode_classic() -> String {
    classic(&encode())
}

fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(meta.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn classic_text_names_counters_by_their_samples() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{k=\"v\"} 1\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 2\n# EOF\n";
        assert_eq!(
            super::classic(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{k=\"v\"} 1\n# HELP g A gauge.\n# TYPE g gauge\ng 2\n"
        );
    }
}
