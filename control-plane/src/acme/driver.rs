//! The driver: every `acme.interval`, looks at each `tls = "auto"` service, decides with
//! `schedule` whether an order is due, takes the lease on it, and runs it (at most
//! `acme.max_concurrent_orders` at once on this replica). What an order ends with is written
//! to the service's state (the API and metrics read it there): the certificate's dates and no
//! failures, or the failure, counted, with the time of the next try.
//!
//! A service whose hosts changed orders at once for the new set. A service deleted or no
//! longer `tls = "auto"` has its state and challenges removed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use outpost_config::{
    CertificateName, CertificateSource, HostPattern, ServiceConfig, ServiceRecord, Timestamp, TlsMode,
};
use tokio::sync::Semaphore;

use super::AcmeSettings;
use super::lease::Held;
use super::order::{self, Failed, Issued, OrderCtx, millis};
use super::schedule::{self, Jitter, Plan, Standing};
use crate::api::AppState;
use crate::store::{AcmeState, AcmeStatus, IssuedDates, ServiceQuery, Store};

/// The name ACME's certificate has among the service's certificates.
pub const CERTIFICATE_NAME: &str = "acme";

/// Hands an obtained certificate to the certificate store (`certs::install`: checked against
/// the service's hosts, key sealed, a `certificate_put` event every node applies, swapping it
/// in without a restart); returns its dates.
async fn install(app: &AppState, service: &ServiceRecord, issued: &Issued) -> Result<IssuedDates, Failed> {
    let name = CertificateName::parse(CERTIFICATE_NAME).map_err(|e| Failed::new("install", e))?;
    let at = now();
    let install = crate::certs::Install {
        service,
        name,
        chain_pem: &issued.chain_pem,
        key_pem: &issued.key_pem,
        hosts: None,
        source: CertificateSource::Acme,
    };
    let record = crate::certs::install(app, install, at).await.map_err(|e| Failed::new("install", e.message))?;
    Ok(IssuedDates { not_before: record.not_before, not_after: record.not_after, issued_at: at })
}

/// How long a lease outlives its order's timeout: time to write the outcome.
const LEASE_MARGIN_MS: u64 = 5_000;

pub struct Driver {
    app: AppState,
    settings: AcmeSettings,
    /// This replica's name on leases: random, made at start.
    holder: String,
    orders: Arc<Semaphore>,
    /// Services whose order runs on this replica now: a round never starts a second one.
    running: std::sync::Mutex<BTreeSet<outpost_config::ServiceId>>,
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// The hosts an order is for: the service's exact hosts that nodes serve (verified: a CA is
/// never asked about a host whose control the tenant has not proven here), sorted. A wildcard
/// needs DNS-01 (RFC 8555 §7.1.3), which the edges cannot answer: it is left out, with an
/// error in the state if nothing else is left.
pub fn order_hosts(record: &ServiceRecord, config: &ServiceConfig) -> Vec<String> {
    let hosts: BTreeSet<String> = config
        .hosts
        .iter()
        .filter_map(|h| match h {
            HostPattern::Exact(host) if record.serves(host) => Some(host.clone()),
            HostPattern::Exact(_) | HostPattern::Wildcard(_) => None,
        })
        .collect();
    hosts.into_iter().collect()
}

impl Driver {
    pub fn new(app: AppState, settings: AcmeSettings) -> Self {
        let holder = format!("{:016x}", super::random_id());
        let orders = Arc::new(Semaphore::new(settings.max_concurrent_orders));
        Self { app, settings, holder, orders, running: std::sync::Mutex::default() }
    }

    /// Runs rounds every `acme.interval` until aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let driver = Arc::new(self);
        tokio::spawn(async move {
            tracing::info!(directory = %driver.settings.directory, holder = %driver.holder, "ACME driver started");
            loop {
                if let Err(e) = driver.clone().round().await {
                    tracing::warn!(error = %e, "ACME round failed; next round as usual");
                }
                tokio::time::sleep(driver.settings.interval).await;
            }
        })
    }

    async fn round(self: Arc<Self>) -> Result<(), crate::store::StoreError> {
        let store = self.app.store.clone();
        let mut after = None;
        let mut auto = BTreeSet::new();
        loop {
            let page = store.services(ServiceQuery { tenant: None, after: after.clone(), limit: 500 }).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for record in page {
                let Ok(config) = serde_json::from_value::<ServiceConfig>(record.config.clone()) else { continue };
                if config.tls != TlsMode::Auto {
                    continue;
                }
                auto.insert(record.id.clone());
                let hosts = order_hosts(&record, &config);
                self.clone().consider(record, hosts).await?;
            }
        }
        // Services gone or no longer automatic: forget their state (and answers in flight).
        for state in store.acme_states().await? {
            if !auto.contains(&state.service) && state.leasable(&self.holder, now()) {
                withdraw(&store, &self.app, &state.tokens).await;
                store.delete_acme_state(&state.service).await?;
            }
        }
        Ok(())
    }

    /// Starts an order for `record` if one is due and the lease can be had.
    async fn consider(
        self: Arc<Self>,
        record: ServiceRecord,
        hosts: Vec<String>,
    ) -> Result<(), crate::store::StoreError> {
        let store = &self.app.store;
        let at = now();
        if self.running.lock().unwrap_or_else(|e| e.into_inner()).contains(&record.id) {
            return Ok(());
        }
        let state = match store.acme_state(&record.id).await? {
            Some(state) => state,
            None => AcmeState::new(record.id.clone(), record.tenant.clone(), at),
        };
        if !state.leasable(&self.holder, at) {
            return Ok(());
        }
        let resume = state.status == AcmeStatus::Ordering;
        let due = resume || state.hosts != hosts || matches!(self.plan(&state, at), Plan::Order);
        if !due {
            return Ok(());
        }
        if hosts.is_empty() || hosts.len() > self.settings.max_hosts {
            let why = if hosts.is_empty() {
                "no host to order for: wildcard hosts need DNS-01, which is not offered".to_owned()
            } else {
                format!(
                    "{} hosts; one certificate holds at most acme.max_hosts = {}",
                    hosts.len(),
                    self.settings.max_hosts
                )
            };
            if state.last_error.as_ref().map(|e| e.message.as_str()) != Some(why.as_str()) {
                let failure = Failed::new("hosts", why);
                let mut next = state;
                next.hosts = hosts;
                next.status = AcmeStatus::Failed;
                next.last_error = Some(failure.at(at));
                let _ = store.put_acme_state(next).await?;
            }
            return Ok(());
        }
        let Ok(permit) = self.orders.clone().try_acquire_owned() else { return Ok(()) };
        // The order is cut off at order_timeout; the margin covers recording its outcome. A
        // replica that died holding it leaves it to another (or to itself, restarted) then.
        let until = Timestamp(at.as_millis() + millis(self.settings.order_timeout) + LEASE_MARGIN_MS);
        let same_hosts = state.hosts == hosts;
        let taken = Held::take(store, state, &self.holder, until, |s| {
            if !same_hosts {
                // Another host set: the order in flight (if any) is for the old one.
                s.order_url = None;
            }
            s.hosts = hosts;
            s.status = AcmeStatus::Ordering;
            s.updated_at = at;
        })
        .await;
        let held = match taken {
            Ok(Some(held)) => held,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(service = %record.id, error = %e.message, "taking the ACME lease");
                return Ok(());
            }
        };
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(record.id.clone());
        tokio::spawn(async move {
            let id = record.id.clone();
            self.order(record, held).await;
            self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            drop(permit);
        });
        Ok(())
    }

    fn plan(&self, state: &AcmeState, at: Timestamp) -> Plan {
        let standing = Standing {
            certificate: state.certificate.map(|c| (c.not_before, c.not_after)),
            failures: state.failures,
            failed_at: state.last_error.as_ref().map(|e| e.at),
        };
        let jitter = Jitter { renew: state.renew_jitter, retry: state.retry_jitter };
        schedule::plan(standing, at, self.settings.retry_min, self.settings.retry_max, jitter)
    }

    /// Runs one order under its lease and records how it ended.
    async fn order(&self, record: ServiceRecord, mut held: Held) {
        let service = record.id.clone();
        let hosts = held.state.hosts.join(",");
        tracing::info!(%service, %hosts, "ACME order starting");
        let ctx =
            OrderCtx { settings: &self.settings, store: &self.app.store, nodes: &self.app.nodes, service: &service };
        let limit = self.settings.order_timeout;
        let outcome = tokio::time::timeout(limit, async {
            let account = super::client::account(&self.settings, &self.app.store, &self.app.keyring)
                .await
                .map_err(|e| Failed::new("account", e))?;
            let issued = order::run(&ctx, &account, &mut held).await?;
            install(&self.app, &record, &issued).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(Failed::new("timeout", format!("the order took longer than acme.order_timeout ({limit:?})")))
        });
        let tokens = std::mem::take(&mut held.state.tokens);
        withdraw(&self.app.store, &self.app, &tokens).await;
        let at = now();
        let result = match &outcome {
            Ok(dates) => {
                self.app.counters.acme_order(true);
                tracing::info!(%service, %hosts, not_after = %dates.not_after, "ACME certificate obtained and installed");
                held.save(&self.app.store, |s| {
                    s.status = AcmeStatus::Valid;
                    s.certificate = Some(*dates);
                    s.failures = 0;
                    s.last_error = None;
                    s.order_url = None;
                    s.renew_jitter = super::jitter();
                    s.lease = None;
                })
                .await
            }
            Err(failure) => {
                self.app.counters.acme_order(false);
                tracing::warn!(%service, %hosts, code = failure.code, error = %failure.message, "ACME order failed");
                if failure.code == order::ACCOUNT_GONE_CODE
                    && let Err(e) = self.app.store.delete_acme_account(&self.settings.directory).await
                {
                    tracing::warn!(error = %e, "forgetting the ACME account the CA no longer knows");
                }
                let lost = failure.code == "lease";
                let keep_order = matches!(failure.code, "timeout" | "store");
                held.save(&self.app.store, |s| {
                    s.status = AcmeStatus::Failed;
                    s.failures = s.failures.saturating_add(1);
                    s.last_error = Some(failure.at(at));
                    s.retry_jitter = super::jitter();
                    if !keep_order {
                        s.order_url = None;
                    }
                    if !lost {
                        s.lease = None;
                    }
                })
                .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(%service, error = %e.message, "recording the ACME order's outcome");
        }
    }
}

/// Withdraws published challenge answers (the order ended): an event each.
async fn withdraw(store: &Arc<dyn Store>, app: &AppState, tokens: &[String]) {
    for token in tokens {
        match store.delete_challenge(token, now()).await {
            Ok(Some(event)) => app.nodes.appended(event.seq),
            Ok(None) => {}
            Err(e) => tracing::warn!(%token, error = %e, "withdrawing an ACME challenge; it expires by itself"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_for_the_exact_hosts_sorted_without_wildcards() {
        let config: ServiceConfig = serde_json::from_value(serde_json::json!({
            "name": "shop",
            "hosts": ["www.example.test", "*.example.test", "example.test"],
            "origin": "http://o.example",
            "tls": "auto",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.tls, TlsMode::Auto);
        // RFC 8555 §7.1.3: a wildcard identifier is validated by DNS-01 only, which edges do
        // not answer.
        let mut record = ServiceRecord {
            id: outpost_config::ServiceId::parse("shop").unwrap_or_else(|e| panic!("{e}")),
            tenant: outpost_config::TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            version: outpost_config::Seq(1),
            updated_at: Timestamp(0),
            config: serde_json::Value::Null,
            function: None,
            verified_hosts: None,
        };
        assert_eq!(order_hosts(&record, &config), ["example.test", "www.example.test"]);
        // Only verified hosts: `www` still pending is not ordered.
        record.verified_hosts = Some(vec!["example.test".to_owned(), "*.example.test".to_owned()]);
        assert_eq!(order_hosts(&record, &config), ["example.test"]);
    }
}
