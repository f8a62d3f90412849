//! [`FunctionHost`]: the one wasmtime engine a node's functions share, made on first use (a node
//! without functions reserves nothing): the pooling allocator sized by `[functions]`, epoch
//! interruption driven by a ticker thread, the on-disk cache of compiled code, and the linker
//! with the WASI interfaces a function may import.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use http::HeaderValue;
use outpost_config::{FunctionsConfig, NodeSection};
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::state::HostState;

/// Where a function's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    /// Compiled now (and written to the cache directory).
    Compiled,
    /// Loaded from the cache directory: same component, same engine settings.
    Cache,
}

impl CodeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeSource::Compiled => "compiled",
            CodeSource::Cache => "cache",
        }
    }
}

/// The node's function engine, shared by every service and config version.
pub struct FunctionHost {
    config: FunctionsConfig,
    /// `Outpost-Node` and `Outpost-PoP` as every function request carries them.
    pub(super) node: HeaderValue,
    pub(super) pop: HeaderValue,
    runtime: OnceLock<Result<Runtime, EngineError>>,
}

/// Why the function engine could not run a component. The text is wasmtime's error chain
/// (`{:#}`), kept whole: it is what an operator needs, and the config error quotes it.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum EngineError {
    /// The engine did not start (its pooling allocator, its code cache directory).
    #[error("{0}")]
    Start(String),
    /// The component did not compile or load.
    #[error("{0}")]
    Compile(String),
}

/// What exists once the first function is compiled.
pub(super) struct Runtime {
    pub(super) engine: Engine,
    pub(super) linker: Linker<HostState>,
    cache: Cache,
    /// One compile at a time, so the cache's hit counter tells which compile hit.
    compiling: Mutex<()>,
}

impl FunctionHost {
    pub fn new(config: &FunctionsConfig, node: &NodeSection) -> Self {
        let header = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("unknown"));
        Self {
            config: config.clone(),
            node: header(&node.name),
            pop: header(node.pop.as_deref().unwrap_or(&node.name)),
            runtime: OnceLock::new(),
        }
    }

    pub(super) fn runtime(&self) -> Result<&Runtime, EngineError> {
        self.runtime
            .get_or_init(|| Runtime::start(&self.config).map_err(|e| EngineError::Start(format!("{e:#}"))))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Compiles `wasm`, or loads its machine code from the cache directory when this engine
    /// compiled the same bytes before. wasmtime's cache keys each entry by a SHA-256 of the
    /// component and of the engine's compilation settings (`precompile_compatibility_hash`),
    /// writes it to a temporary file renamed into place, and compiles again when an entry does
    /// not decompress or load: a foreign or corrupt file is never run.
    pub(super) fn compile(&self, wasm: &[u8]) -> Result<(Component, CodeSource), EngineError> {
        let runtime = self.runtime()?;
        let _one_at_a_time = runtime.compiling.lock().unwrap_or_else(|e| e.into_inner());
        let hits = runtime.cache.cache_hits();
        let component =
            Component::from_binary(&runtime.engine, wasm).map_err(|e| EngineError::Compile(format!("{e:#}")))?;
        let source = if runtime.cache.cache_hits() > hits { CodeSource::Cache } else { CodeSource::Compiled };
        Ok((component, source))
    }
}

/// Bytes of a slot's linear memory reset in place rather than decommitted.
const KEEP_RESIDENT_MEMORY: usize = 16 << 20;
/// Bytes of a slot's tables reset in place.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

impl Runtime {
    fn start(config: &FunctionsConfig) -> wasmtime::Result<Self> {
        let instances = config.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        // One instance per request in flight. A component holds several core instances (the
        // guest's module and the shims `wit-component` adds) and tables, usually one memory.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(8))
            .total_tables(instances.saturating_mul(8))
            .total_memories(instances.saturating_mul(2))
            .total_stacks(instances)
            .max_memory_size(config.max_memory.as_usize())
            .max_memories_per_module(2)
            // A slot's memory is reset for its next request. By default that is an madvise of
            // the whole memory, and the next guest page-faults every page it touches again (a
            // quarter of a small function's CPU in a profile). Instead, find the pages written
            // (Linux's PAGEMAP_SCAN, 6.7+; else the lowest bytes) and copy the image back over
            // them, up to these sizes; they stay resident for the next request. RSS stays
            // bounded: at most max_unused_warm_slots (100) idle slots keep pages this way.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE);
        // decommit_batch_size stays 1: wasmtime queues a (zero-length) decommit for every memory
        // and table even when the reset above left nothing to decommit, and a queued slot is not
        // reused until the queue is flushed, so batching hands each request a colder slot. One
        // flush per request measured 1.5-2% less CPU per request than batches of 16.
        // Clones of a `Cache` share its hit counter: the engine gets one, we read the other.
        let cache = Cache::new(cache_config(config)?)?;
        let mut wasm = Config::new();
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .cache(Some(cache.clone()));
        let engine = Engine::new(&wasm)?;
        spawn_ticker(&engine, config.epoch_tick)?;
        let mut linker = Linker::new(&engine);
        // Ordinary guests (Rust std, JavaScript, Python) import wasi:cli and friends beside
        // wasi:http; the proxy-only linker would fail to instantiate them. Filesystem and sockets
        // are linked but closed: no preopened directory, no socket address allowed.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        Ok(Self { engine, linker, cache, compiling: Mutex::new(()) })
    }
}

fn cache_config(config: &FunctionsConfig) -> wasmtime::Result<CacheConfig> {
    let dir = cache_dir(config)?;
    std::fs::create_dir_all(&dir).map_err(|e| wasmtime::format_err!("functions.cache_dir {}: {e}", dir.display()))?;
    let mut cache = CacheConfig::new();
    cache.with_directory(dir);
    Ok(cache)
}

/// wasmtime wants an absolute cache directory.
fn cache_dir(config: &FunctionsConfig) -> wasmtime::Result<PathBuf> {
    let dir = config.cache_dir.clone().unwrap_or_else(|| PathBuf::from("outpost-functions"));
    std::path::absolute(&dir).map_err(|e| wasmtime::format_err!("functions.cache_dir {}: {e}", dir.display()))
}

/// A plain thread advances the engine's epoch every `tick`; each running function checks its
/// CPU time when its deadline (one tick ahead) passes. The thread ends with the engine.
fn spawn_ticker(engine: &Engine, tick: Duration) -> wasmtime::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("function-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map_err(|e| wasmtime::format_err!("starting the epoch ticker: {e}"))?;
    Ok(())
}
