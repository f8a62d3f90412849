//! `GET /metrics`: the control plane in the Prometheus text format (0.0.4), for the operator's
//! token (Prometheus sends it with `authorization: {credentials: ...}`).
//!
//! Counters live here ([`Counters`]: API answers by status class, purges accepted); gauges are
//! read from the state at scrape time: the log's head, each node's acknowledged number (what an
//! alert on a node falling behind wants: `outpost_cp_head_seq - outpost_cp_node_acked_seq`),
//! PoP health and drains, DNS answers, domains by status (checks by outcome are counted in
//! `domains::Domains`), and each certificate's time left
//! (`outpost_tls_certificate_expiry_seconds{service,name}`). Every label is bounded: status
//! classes, DNS outcomes, domain statuses and check outcomes are fixed sets, nodes and PoPs are
//! the registered ones, certificates at most `limits.max_certificates_per_service` a service.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use super::AppState;
use super::error::{ApiError, ErrorKind};
use super::extract::Auth;
use crate::auth::Principal;

/// Counters the API keeps itself.
#[derive(Debug, Default)]
pub struct Counters {
    /// Answers by status class: 1xx to 5xx.
    answers: [AtomicU64; 5],
    purges: AtomicU64,
    /// Stream or registration claims refused because another connection held the node id.
    node_id_conflicts: AtomicU64,
    /// ACME orders ended on this replica: obtained and installed, failed.
    acme_orders: [AtomicU64; 2],
}

impl Counters {
    pub fn answered(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(counter) = self.answers.get(class) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn purge_accepted(&self) {
        self.purges.fetch_add(1, Ordering::Relaxed);
    }

    /// An ACME order ended.
    pub fn acme_order(&self, ok: bool) {
        self.acme_orders[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn node_id_conflict(&self) {
        self.node_id_conflicts.fetch_add(1, Ordering::Relaxed);
    }
}

/// `GET /metrics`.
pub async fn get(State(app): State<AppState>, Auth(principal): Auth) -> Result<Response, ApiError> {
    if principal != Principal::Operator {
        return Err(ApiError::new(ErrorKind::Forbidden, "the metrics are for operator tokens"));
    }
    let head = app.store.last_seq().await?;
    let mut text = Text::default();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);

    text.family("outpost_cp_api_responses_total", "counter", "API answers by status class.");
    for (i, counter) in app.counters.answers.iter().enumerate() {
        text.sample("outpost_cp_api_responses_total", &[("class", &format!("{}xx", i + 1))], load(counter));
    }
    text.family("outpost_cp_purges_total", "counter", "Purges accepted (every API shape).");
    text.sample("outpost_cp_purges_total", &[], load(&app.counters.purges));
    text.family(
        "outpost_cp_node_id_conflicts_total",
        "counter",
        "Registrations and streams refused because another connection held the node id.",
    );
    text.sample("outpost_cp_node_id_conflicts_total", &[], load(&app.counters.node_id_conflicts));
    text.family("outpost_cp_acme_orders_total", "counter", "ACME orders this replica ended, by outcome.");
    for (outcome, counter) in ["ok", "failed"].into_iter().zip(&app.counters.acme_orders) {
        text.sample("outpost_cp_acme_orders_total", &[("outcome", outcome)], load(counter));
    }
    let acme = app.store.acme_states().await?;
    text.family(
        "outpost_cp_acme_failures",
        "gauge",
        "Failed ACME orders in a row per tls = \"auto\" service (0 after a success): alert above 0 for long.",
    );
    for state in &acme {
        text.sample("outpost_cp_acme_failures", &[("service", state.service.as_str())], u64::from(state.failures));
    }
    text.family(
        "outpost_cp_acme_certificate_not_after_seconds",
        "gauge",
        "When each tls = \"auto\" service's ACME certificate expires, Unix seconds.",
    );
    for state in &acme {
        if let Some(certificate) = state.certificate {
            let at = certificate.not_after.as_millis() / 1000;
            text.sample("outpost_cp_acme_certificate_not_after_seconds", &[("service", state.service.as_str())], at);
        }
    }
    text.family("outpost_cp_head_seq", "gauge", "The event log's last sequence number.");
    text.sample("outpost_cp_head_seq", &[], head.0);

    let nodes = app.nodes.list(Instant::now());
    text.family("outpost_cp_nodes", "gauge", "Registered nodes by state (live: streaming or within grace).");
    let count = |f: fn(&crate::nodes::NodeView) -> bool| nodes.iter().filter(|n| f(n)).count() as u64;
    text.sample("outpost_cp_nodes", &[("state", "registered")], nodes.len() as u64);
    text.sample("outpost_cp_nodes", &[("state", "live")], count(|n| n.live));
    text.sample("outpost_cp_nodes", &[("state", "connected")], count(|n| n.connected));
    text.sample("outpost_cp_nodes", &[("state", "offline")], count(|n| !n.expected));
    text.sample("outpost_cp_nodes", &[("state", "drained")], count(|n| n.drained_at.is_some()));
    text.family("outpost_cp_node_acked_seq", "gauge", "The last sequence number each node acknowledged.");
    for node in &nodes {
        let pop = node.node.registration.pop.as_deref().unwrap_or("");
        text.sample("outpost_cp_node_acked_seq", &[("node", node.node.id.as_str()), ("pop", pop)], node.acked.0);
    }

    let pops = app.pops.list();
    text.family("outpost_cp_pop_healthy", "gauge", "1 while a PoP has a healthy edge, else 0.");
    for pop in &pops {
        text.sample("outpost_cp_pop_healthy", &[("pop", &pop.pop)], u64::from(pop.healthy));
    }
    text.family("outpost_cp_pop_drained", "gauge", "1 while an operator has drained a PoP, else 0.");
    for pop in &pops {
        text.sample("outpost_cp_pop_drained", &[("pop", &pop.pop)], u64::from(pop.drained));
    }

    let dns = app.dns_stats.view();
    text.family("outpost_cp_dns_queries_total", "counter", "DNS queries by outcome.");
    for (outcome, count) in &dns.queries {
        text.sample("outpost_cp_dns_queries_total", &[("outcome", outcome)], *count);
    }
    text.family("outpost_cp_dns_answers_total", "counter", "Service answers by PoP.");
    for (pop, count) in &dns.pops {
        text.sample("outpost_cp_dns_answers_total", &[("pop", pop)], *count);
    }
    let domains = app.store.domains(crate::store::DomainQuery::all(crate::domains::MAX_SCAN)).await?;
    text.family("outpost_cp_domains", "gauge", "Domains (host patterns of services) by status.");
    for status in crate::domains::DomainStatus::ALL {
        let n = domains.iter().filter(|d| d.status == status).count() as u64;
        text.sample("outpost_cp_domains", &[("status", status.as_str())], n);
    }
    text.family(
        "outpost_cp_domain_checks_total",
        "counter",
        "Domain checks by outcome (collided: proven, but another tenant's claim covers it).",
    );
    for (outcome, n) in crate::domains::CHECK_OUTCOMES.iter().zip(app.domains.check_counts()) {
        text.sample("outpost_cp_domain_checks_total", &[("outcome", outcome)], n);
    }
    // Bounded: at most limits.max_certificates_per_service per service.
    let certificates = app.store.certificates(None, usize::MAX).await?;
    let now = outpost_config::Timestamp::from_system(std::time::SystemTime::now());
    text.family(
        "outpost_tls_certificate_expiry_seconds",
        "gauge",
        "Seconds until each certificate's notAfter (negative once expired).",
    );
    for c in &certificates {
        let left = i128::from(c.record.not_after.0) - i128::from(now.0);
        let seconds = i64::try_from(left / 1000).unwrap_or(i64::MIN);
        let labels = [("service", c.record.service.as_str()), ("name", c.record.name.as_str())];
        text.sample_signed("outpost_tls_certificate_expiry_seconds", &labels, seconds);
    }
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], text.0).into_response())
}

/// The exposition text being written.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.labelled(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn sample_signed(&mut self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.labelled(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn labelled(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
    }
}

/// A label value as the text format quotes it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_in_the_text_format() {
        let mut text = Text::default();
        text.family("x_total", "counter", "Things.");
        text.sample("x_total", &[], 3);
        text.sample("x_total", &[("node", "edge-1"), ("pop", "a\"b\\c\nd")], 4);
        assert_eq!(
            text.0,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\nx_total{node=\"edge-1\",pop=\"a\\\"b\\\\c\\nd\"} 4\n"
        );
    }

    #[test]
    fn answers_count_by_status_class() {
        let counters = Counters::default();
        for status in [200, 204, 404, 429, 500, 101] {
            counters.answered(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
        }
        let classes: Vec<u64> = counters.answers.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(classes, [1, 2, 0, 2, 1]);
    }
}
