//! One request through a function: a fresh store and instance from the template, the host's
//! request headers, the CPU, wall-clock, memory and body limits, and what the client gets when
//! the guest fails. The guest runs in the request's task until it answers; one still running
//! then (streaming its body, say) goes on in a task of its own, so its body keeps streaming after
//! the response head is handed to the pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tracing::Instrument;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use super::bodies::{GuestBody, request_body};
use super::compile::{Function, Limits};
use super::limits::{CpuMeter, MemoryBudget, Metered, Verdict, WallClock, monotonic, thread_cpu};
use super::logs::{self, Pipe, Sink, Stream};
use super::meters::OUTCOMES;
use super::outgoing::{FetchCtx, Outgoing};
use super::state::HostState;
use crate::body::EdgeBody;
use crate::ctx::RequestCtx;
use crate::delivery::Delivery;
use crate::error::{EdgeError, ErrorKind};
use crate::service::CompiledService;

/// Request headers the host adds; a client's own are removed first, so a function can trust them.
pub const CLIENT_IP: HeaderName = HeaderName::from_static("outpost-client-ip");
pub const POP: HeaderName = HeaderName::from_static("outpost-pop");
pub const NODE: HeaderName = HeaderName::from_static("outpost-node");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("outpost-request-id");

/// How the guest's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// `incoming-handler.handle` returned.
    Finished,
    /// The guest trapped (a Rust panic aborts: `unreachable`), or an import failed it.
    Trap(String),
    /// Stopped at an epoch deadline past `cpu_time`.
    CpuTime(Duration),
    /// Still running at `wall_time`.
    WallTime(Duration),
    /// A memory growth past `memory` was refused and the guest then trapped.
    Memory(usize),
    /// The pooling allocator had no free instance slot (`functions.max_instances`).
    Capacity,
}

impl Ending {
    pub(crate) fn is_failure(&self) -> bool {
        *self != Ending::Finished
    }

    /// Index of its label in [`OUTCOMES`].
    fn index(&self) -> usize {
        match self {
            Ending::Finished => 0,
            Ending::Trap(_) => 1,
            Ending::CpuTime(_) => 2,
            Ending::WallTime(_) => 3,
            Ending::Memory(_) => 4,
            Ending::Capacity => 5,
        }
    }

    /// Bounded label for metrics and logs.
    fn label(&self) -> &'static str {
        OUTCOMES[self.index()]
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Ending::Finished => "finished".into(),
            Ending::Trap(why) => why.clone(),
            Ending::CpuTime(limit) => format!("CPU time above cpu_time ({limit:?})"),
            Ending::WallTime(limit) => format!("still running at wall_time ({limit:?})"),
            Ending::Memory(limit) => format!("memory above the limit ({limit} bytes)"),
            Ending::Capacity => "no free instance (functions.max_instances)".into(),
        }
    }

    /// What the client gets when the guest ended this way before answering.
    fn error(&self) -> EdgeError {
        let (kind, told) = match self {
            Ending::Finished => {
                (ErrorKind::FunctionBadResponse, "the edge function returned without a response".into())
            }
            Ending::Trap(_) => (ErrorKind::FunctionTrap, "the edge function failed".into()),
            Ending::CpuTime(limit) => {
                (ErrorKind::FunctionCpuTime, format!("the edge function ran out of CPU time ({limit:?})"))
            }
            Ending::WallTime(limit) => {
                (ErrorKind::FunctionWallTime, format!("the edge function did not answer within {limit:?}"))
            }
            Ending::Memory(limit) => {
                (ErrorKind::FunctionMemory, format!("the edge function ran out of memory ({} MiB)", limit >> 20))
            }
            Ending::Capacity => (ErrorKind::FunctionCapacity, "too many edge functions running; retry later".into()),
        };
        EdgeError::told(kind, told)
    }
}

/// Who a request's log lines and errors name.
struct Names {
    service: Arc<str>,
    version: Arc<str>,
    request_id: Arc<str>,
}

impl Names {
    fn warn(&self, outcome: &str, reason: &str) {
        tracing::warn!(
            service = %self.service,
            function = %self.version,
            request_id = %self.request_id,
            outcome,
            reason,
            "function failed"
        );
    }

    fn error(&self, e: EdgeError, reason: &str) -> EdgeError {
        self.warn(e.kind.as_str(), reason);
        e.within(format!("function {}", self.version)).within(format!("service {}", self.service))
    }
}

impl Function {
    /// Runs the function on `req` (already routed to `svc` for `host`).
    pub async fn serve(
        self: &Arc<Self>,
        delivery: &Arc<Delivery>,
        svc: &Arc<CompiledService>,
        host: &str,
        req: Request<EdgeBody>,
        ctx: &RequestCtx,
    ) -> Result<Response<EdgeBody>, EdgeError> {
        let limits = self.limits;
        let names = Names { service: svc.name.clone(), version: self.version.clone(), request_id: ctx.id.0.clone() };
        let declared = crate::http::content_length(req.headers());
        if declared.is_some_and(|n| n > limits.max_request_body) {
            return Err(too_large(limits.max_request_body));
        }
        let over = Arc::new(AtomicBool::new(false));
        let req = self.host_headers(req, ctx).map(|b| request_body(b, limits.max_request_body, over.clone()));
        let fetch = FetchCtx {
            delivery: delivery.clone(),
            origin: svc.clone(),
            backends: self.backends.clone(),
            client_host: host.into(),
            conn: ctx.conn.clone(),
            protocol: ctx.protocol,
            request_id: ctx.id.clone(),
            max_requests: limits.max_backend_requests,
            max_response: limits.max_backend_response,
        };
        let origin = logs::Origin {
            request_id: names.request_id.clone(),
            service: names.service.clone(),
            version: names.version.clone(),
        };
        let mut store = self.store(Some(Arc::new(fetch)), origin, &limits);
        let meter = Arc::new(CpuMeter::new(limits.cpu_time));
        let check = meter.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(match check.check(monotonic(), thread_cpu()) {
                Verdict::Yield => UpdateDeadline::Yield(1),
                Verdict::Stop => UpdateDeadline::Interrupt,
            })
        });
        let scheme = if ctx.conn.tls { Scheme::Https } else { Scheme::Http };
        let internal = |e: wasmtime::Error| names.error(EdgeError::new(ErrorKind::Internal, format!("{e:#}")), "setup");
        let incoming = store.data_mut().http().new_incoming_request(scheme, req).map_err(internal)?;
        let (resp_tx, mut resp_rx) = oneshot::channel();
        let out = store.data_mut().http().new_response_outparam(resp_tx).map_err(internal)?;
        let (end_tx, mut end_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel::<()>();

        let this = self.clone();
        let task_names = Names {
            service: names.service.clone(),
            version: names.version.clone(),
            request_id: names.request_id.clone(),
        };
        let mut guest = Box::pin(async move {
            let started = Instant::now();
            let result = {
                let run = async {
                    let proxy = this.pre.instantiate_async(&mut store).await?;
                    this.meters.instantiated();
                    proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, out).await
                };
                WallClock::new(limits.wall_time, Metered::new(meter.clone(), run)).await
            };
            let ending = classify(result, &meter, store.data().memory.hit, &limits);
            this.meters.ended(ending.index(), started.elapsed().as_secs_f64());
            let failed = ending.is_failure();
            if failed {
                task_names.warn(ending.label(), &ending.reason());
            }
            let _ = end_tx.send(ending);
            if failed {
                // The store holds the response body's channel: dropping it would end the body
                // as if complete. It goes once the body (or the pipeline) is done with it.
                let _ = release_rx.await;
            }
            drop(store);
        });

        // The guest runs here, in the request's task, until it answers or ends. Most guests do
        // both in their first poll, and then no task is spawned for them (a spawn and the
        // wake-ups between two tasks saved on each request). A guest still running when it
        // answers (streaming its body, say) goes on in a task of its own.
        let step = tokio::select! {
            biased;
            set = &mut resp_rx => Step::Set(set.ok()),
            ending = &mut end_rx => Step::Ended(ending.unwrap_or(Ending::Finished)),
            () = &mut guest => Step::Done,
        };
        let done = matches!(step, Step::Done);
        // The response head, or the end of a guest that set none. The head wins a tie: a guest
        // that answered and then trapped gets its answer served.
        let first = match step {
            Step::Set(set) => First::Set(set),
            Step::Ended(ending) => First::Ended(ending),
            Step::Done => match resp_rx.try_recv() {
                Ok(set) => First::Set(Some(set)),
                Err(_) => First::Ended(end_rx.try_recv().unwrap_or(Ending::Finished)),
            },
        };
        if !done {
            tokio::spawn(guest.in_current_span());
        }
        let response = match first {
            First::Set(Some(Ok(response))) => response,
            First::Set(Some(Err(code))) => {
                let e = EdgeError::told(ErrorKind::FunctionBadResponse, "the edge function answered with an error");
                return Err(names.error(e, &format!("response-outparam set to error {code:?}")));
            }
            // The outparam was dropped unset: the store is gone, so the guest has ended.
            First::Set(None) => {
                let ending = end_rx.await.unwrap_or(Ending::Finished);
                return Err(ending.error());
            }
            First::Ended(ending) => return Err(ending.error()),
        };
        if over.load(Ordering::Relaxed) {
            return Err(names.error(too_large(limits.max_request_body), "request body above max_request_body"));
        }
        let declared = crate::http::content_length(response.headers());
        if declared.is_some_and(|n| n > limits.max_response_body) {
            let e =
                EdgeError::told(ErrorKind::FunctionBadResponse, "the edge function's response is above its size limit");
            return Err(names.error(e, "declared Content-Length above max_response_body"));
        }
        Ok(self.wrap_body(response, end_rx, release_tx, names))
    }

    /// The request as the guest sees it: the host's headers replace any the client sent.
    fn host_headers(&self, mut req: Request<EdgeBody>, ctx: &RequestCtx) -> Request<EdgeBody> {
        let headers = req.headers_mut();
        for name in [&CLIENT_IP, &POP, &NODE, &REQUEST_ID] {
            headers.remove(name);
        }
        if let Ok(ip) = HeaderValue::from_str(&ctx.conn.peer.ip().to_string()) {
            headers.insert(CLIENT_IP, ip);
        }
        headers.insert(POP, self.host.pop.clone());
        headers.insert(NODE, self.host.node.clone());
        if let Ok(id) = HeaderValue::from_str(&ctx.id.0) {
            headers.insert(REQUEST_ID, id);
        }
        req
    }

    /// A fresh store: environment from the config, stdout/stderr into the node's log, no
    /// filesystem (nothing preopened), no sockets (no address allowed).
    fn store(&self, fetch: Option<Arc<FetchCtx>>, origin: logs::Origin, limits: &Limits) -> Store<HostState> {
        let sink = Sink::new(origin, limits.max_log_bytes);
        let wasi: WasiCtx = WasiCtx::builder()
            .envs(&self.env)
            .stdout(Pipe::new(&sink, Stream::Stdout))
            .stderr(Pipe::new(&sink, Stream::Stderr))
            .build();
        let data = HostState {
            wasi,
            http: WasiHttpCtx::new(),
            table: wasmtime::component::ResourceTable::new(),
            memory: MemoryBudget::new(limits.memory),
            hooks: Outgoing::new(fetch),
        };
        let mut store = Store::new(self.pre.engine(), data);
        store.limiter(|s| &mut s.memory);
        store
    }

    fn wrap_body(
        &self,
        response: Response<HyperOutgoingBody>,
        ending: oneshot::Receiver<Ending>,
        release: oneshot::Sender<()>,
        names: Names,
    ) -> Response<EdgeBody> {
        let limit = self.limits.max_response_body;
        let on_over = Box::new(move || names.warn("response_too_large", "response body above max_response_body"));
        response.map(|body| GuestBody::new(body, ending, release, limit, on_over).boxed_unsync())
    }
}

#[cfg(test)]
impl Function {
    /// `runs` fresh instances from the template, each dropped at once: the per-request cost
    /// before the guest runs. Returns the mean.
    pub(crate) async fn time_instantiation(&self, runs: u32) -> wasmtime::Result<Duration> {
        let origin =
            logs::Origin { request_id: "bench".into(), service: "bench".into(), version: self.version.clone() };
        let started = Instant::now();
        for _ in 0..runs {
            let mut store = self.store(None, origin.clone(), &self.limits);
            store.set_epoch_deadline(u64::MAX / 2);
            self.pre.instantiate_async(&mut store).await?;
        }
        Ok(started.elapsed() / runs.max(1))
    }
}

/// What ended the guest's first run in the request's task.
enum Step {
    Set(Option<Result<Response<HyperOutgoingBody>, ErrorCode>>),
    Ended(Ending),
    /// The guest's future finished: it answered (or not) and its store is dropped.
    Done,
}

enum First {
    Set(Option<Result<Response<HyperOutgoingBody>, ErrorCode>>),
    Ended(Ending),
}

fn too_large(limit: u64) -> EdgeError {
    EdgeError::told(ErrorKind::BodyTooLarge, format!("request body above the edge function's limit of {limit} bytes"))
}

fn classify(result: Option<wasmtime::Result<()>>, meter: &CpuMeter, memory_hit: bool, limits: &Limits) -> Ending {
    let error = match result {
        None => return Ending::WallTime(limits.wall_time),
        Some(Ok(())) => return Ending::Finished,
        Some(Err(e)) => e,
    };
    if meter.exceeded() {
        return Ending::CpuTime(meter.limit());
    }
    if memory_hit {
        return Ending::Memory(limits.memory);
    }
    if error.is::<PoolConcurrencyLimitError>() {
        return Ending::Capacity;
    }
    let why = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.to_string(),
    };
    Ending::Trap(why.lines().next().unwrap_or("").to_string())
}
