//! Checks of `[services.function]` (the component file, env, backends, limits) and of the
//! node's `[functions]` engine section.

use std::time::Duration;

use super::{Report, Scope};
use crate::function::{
    FunctionConfig, FunctionsConfig, MAX_BACKENDS, MAX_ENV_VALUE, MAX_ENV_VARS, ORIGIN_BACKEND, component_problem,
    is_env_name,
};
use crate::service::is_service_name;
use crate::units::ByteSize;

/// Every check of one service's function whose paths start with `at` (`services[2].function.`).
pub(super) fn check(report: &mut Report<'_>, at: &str, function: &FunctionConfig) {
    check_wasm(report, at, function);
    check_env(report, at, function);
    check_backends(report, at, function);
    check_limits(report, at, function);
}

fn check_wasm(report: &mut Report<'_>, at: &str, function: &FunctionConfig) {
    let path = format!("{at}wasm");
    if function.wasm.as_os_str().is_empty() {
        report.error(path, "empty; give the component's path, e.g. \"functions/shop.wasm\"");
        return;
    }
    // Away from the node (the control plane) the file is not there: the node checks it.
    if let Scope::Node { .. } = report.scope
        && let Some(problem) = component_problem(&function.wasm)
    {
        report.error(path, problem);
    }
}

fn check_env(report: &mut Report<'_>, at: &str, function: &FunctionConfig) {
    if function.env.len() > MAX_ENV_VARS {
        report.error(format!("{at}env"), format!("{} variables; use at most {MAX_ENV_VARS}", function.env.len()));
    }
    for (name, value) in &function.env {
        if !is_env_name(name) {
            report.error(
                format!("{at}env.{name}"),
                "not a valid variable name; use 1 to 128 of A-Z a-z 0-9 _, not starting with a digit",
            );
        }
        if value.len() > MAX_ENV_VALUE {
            report.error(
                format!("{at}env.{name}"),
                format!("{} bytes; a value may hold at most {MAX_ENV_VALUE} bytes", value.len()),
            );
        }
    }
}

fn check_backends(report: &mut Report<'_>, at: &str, function: &FunctionConfig) {
    if function.backends.len() > MAX_BACKENDS {
        report.error(
            format!("{at}backends"),
            format!("{} backends; use at most {MAX_BACKENDS}", function.backends.len()),
        );
    }
    for name in function.backends.keys() {
        if name == ORIGIN_BACKEND {
            report.error(
                format!("{at}backends.{name}"),
                "\"origin\" always names the service's own upstream; give this backend another name",
            );
        } else if !is_service_name(name) {
            report.error(format!("{at}backends.{name}"), "not a valid backend name; use 1 to 64 of a-z 0-9 _ -");
        }
    }
}

fn check_limits(report: &mut Report<'_>, at: &str, f: &FunctionConfig) {
    let (min_cpu, max_cpu) = (Duration::from_millis(1), Duration::from_secs(60));
    if !(min_cpu..=max_cpu).contains(&f.cpu_time) {
        report.error(format!("{at}cpu_time"), "out of range; use 1ms to 60s, e.g. \"50ms\"");
    }
    if f.wall_time < f.cpu_time || f.wall_time > Duration::from_secs(600) {
        report.error(format!("{at}wall_time"), "out of range; use at least cpu_time and at most 10m, e.g. \"60s\"");
    }
    report.size(&format!("{at}memory"), f.memory, ByteSize::mib(1), None);
    if let Scope::Node { functions, .. } = report.scope
        && f.memory > functions.max_memory
    {
        report.error(
            format!("{at}memory"),
            format!(
                "{} is above functions.max_memory ({}); use at most that, or raise functions.max_memory",
                f.memory, functions.max_memory
            ),
        );
    }
    report.size(&format!("{at}max_request_body"), f.max_request_body, ByteSize(0), Some(ByteSize::gib(1)));
    report.size(&format!("{at}max_response_body"), f.max_response_body, ByteSize(0), Some(ByteSize::gib(4)));
    report.count(&format!("{at}max_backend_requests"), f.max_backend_requests as usize, 0, 1000);
    report.size(&format!("{at}max_backend_response"), f.max_backend_response, ByteSize::kib(1), Some(ByteSize::gib(4)));
    report.size(&format!("{at}max_log_bytes"), f.max_log_bytes, ByteSize(0), Some(ByteSize::mib(1)));
}

/// `[functions]`.
pub(super) fn check_engine(report: &mut Report<'_>, functions: &FunctionsConfig) {
    report.count("functions.max_instances", functions.max_instances as usize, 1, 100_000);
    report.size("functions.max_memory", functions.max_memory, ByteSize::mib(1), Some(ByteSize::gib(4)));
    let (min, max) = (Duration::from_millis(1), Duration::from_secs(1));
    if !(min..=max).contains(&functions.epoch_tick) {
        report.error("functions.epoch_tick", "out of range; use 1ms to 1s, e.g. \"10ms\"");
    }
    if functions.cache_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        report.error("functions.cache_dir", "empty; give a directory, e.g. \"/var/cache/outpost-functions\"");
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// A directory holding a component header, a core module header and a text file.
    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("outpost-config-fn-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            std::fs::write(dir.join("ok.wasm"), b"\0asm\x0d\x00\x01\x00rest").expect("write");
            std::fs::write(dir.join("core.wasm"), b"\0asm\x01\x00\x00\x00rest").expect("write");
            std::fs::write(dir.join("text.wasm"), b"hello world").expect("write");
            Self { dir }
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn problems(files: &Files, function: &str, engine: &str) -> Vec<(String, String)> {
        let text = format!(
            "[node]\nname = \"e1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n{engine}\n[[services]]\nname = \"shop\"\n\
             hosts = [\"shop.example\"]\norigin = \"http://127.0.0.1:1\"\n[services.function]\n{function}\n"
        );
        match crate::parse(&text, &files.dir.join("edge.toml")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn each_function_check_names_its_field() {
        let files = Files::new("checks");
        let long = "v".repeat(5121);
        let cases: Vec<(String, &str, &str)> = vec![
            ("wasm = \"missing.wasm\"".into(), "services[0].function.wasm", "cannot read"),
            ("wasm = \"core.wasm\"".into(), "services[0].function.wasm", "core WebAssembly module, not a component"),
            ("wasm = \"text.wasm\"".into(), "services[0].function.wasm", "not a WebAssembly component"),
            ("wasm = \"\"".into(), "services[0].function.wasm", "empty"),
            ("wasm = \"ok.wasm\"\ncpu_time = \"0s\"".into(), "services[0].function.cpu_time", "use 1ms to 60s"),
            (
                "wasm = \"ok.wasm\"\ncpu_time = \"2s\"\nwall_time = \"1s\"".into(),
                "services[0].function.wall_time",
                "at least cpu_time",
            ),
            ("wasm = \"ok.wasm\"\nmemory = \"512KiB\"".into(), "services[0].function.memory", "at least 1MiB"),
            (
                "wasm = \"ok.wasm\"\nmemory = \"256MiB\"".into(),
                "services[0].function.memory",
                "above functions.max_memory (128MiB)",
            ),
            (
                "wasm = \"ok.wasm\"\nmax_backend_requests = 1001".into(),
                "services[0].function.max_backend_requests",
                "use 0 to 1000",
            ),
            (
                "wasm = \"ok.wasm\"\nmax_log_bytes = \"2MiB\"".into(),
                "services[0].function.max_log_bytes",
                "at most 1MiB",
            ),
            (
                "wasm = \"ok.wasm\"\nenv = { 1X = \"a\" }".into(),
                "services[0].function.env.1X",
                "not a valid variable name",
            ),
            (
                format!("wasm = \"ok.wasm\"\nenv = {{ K = \"{long}\" }}"),
                "services[0].function.env.K",
                "at most 5120 bytes",
            ),
            (
                "wasm = \"ok.wasm\"\nbackends = { origin = \"http://127.0.0.1:2\" }".into(),
                "services[0].function.backends.origin",
                "always names the service's own upstream",
            ),
            (
                "wasm = \"ok.wasm\"\nbackends = { API = \"http://127.0.0.1:2\" }".into(),
                "services[0].function.backends.API",
                "not a valid backend name",
            ),
            ("wasm = \"ok.wasm\"\nbogus = 1".into(), "services[0].function.bogus", "unknown field"),
        ];
        for (function, path, fragment) in cases {
            let found = problems(&files, &function, "");
            assert_eq!(found.len(), 1, "{function}\n{found:#?}");
            assert_eq!(found[0].0, path, "{function}");
            assert!(found[0].1.contains(fragment), "{function}\n{}", found[0].1);
        }
    }

    #[test]
    fn engine_checks_name_their_field() {
        let files = Files::new("engine");
        let cases = [
            ("[functions]\nmax_instances = 0", "functions.max_instances", "use 1 to 100000"),
            ("[functions]\nmax_memory = \"8GiB\"", "functions.max_memory", "at most 4GiB"),
            ("[functions]\nepoch_tick = \"0s\"", "functions.epoch_tick", "use 1ms to 1s"),
            ("[functions]\ncache_dir = \"\"", "functions.cache_dir", "empty"),
        ];
        for (engine, path, fragment) in cases {
            let found = problems(&files, "wasm = \"ok.wasm\"", engine);
            assert_eq!(found.len(), 1, "{engine}\n{found:#?}");
            assert_eq!(found[0].0, path, "{engine}");
            assert!(found[0].1.contains(fragment), "{engine}\n{}", found[0].1);
        }
    }

    #[test]
    fn defaults_and_paths() {
        let files = Files::new("defaults");
        let text = "[node]\nname = \"e1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[cache]\ndisk_path = \"cache\"\n\
                    [[services]]\nname = \"shop\"\nhosts = [\"shop.example\"]\norigin = \"http://127.0.0.1:1\"\n\
                    [services.function]\nwasm = \"ok.wasm\"\n";
        let config = crate::parse(text, &files.dir.join("edge.toml")).expect("valid");
        let f = config.services[0].function.as_ref().expect("function");
        assert_eq!(f.wasm, files.dir.join("ok.wasm"));
        assert_eq!(f.cpu_time, std::time::Duration::from_millis(50));
        assert_eq!(f.wall_time, std::time::Duration::from_secs(60));
        assert_eq!(f.memory, crate::ByteSize::mib(128));
        assert_eq!(f.max_request_body, crate::ByteSize::mib(16));
        assert_eq!(f.max_response_body, crate::ByteSize::mib(64));
        assert_eq!(f.max_backend_requests, 32);
        assert_eq!(f.max_backend_response, crate::ByteSize::mib(64));
        assert_eq!(f.max_log_bytes, crate::ByteSize::kib(16));
        assert!(f.env.is_empty() && f.backends.is_empty());
        let engine = &config.functions;
        assert_eq!(engine.cache_dir.as_deref(), Some(files.dir.join("cache-functions").as_path()));
        assert_eq!(engine.max_instances, 1000);
        assert_eq!(engine.max_memory, crate::ByteSize::mib(128));
        assert_eq!(engine.epoch_tick, std::time::Duration::from_millis(10));
        // The default sits beside the default cache directory.
        let bare = text.replace("[cache]\ndisk_path = \"cache\"\n", "");
        let config = crate::parse(&bare, &files.dir.join("edge.toml")).expect("valid");
        assert_eq!(config.functions.cache_dir.as_deref(), Some(Path::new("/var/cache/outpost-functions")));
    }

    #[test]
    fn a_standalone_service_leaves_the_file_to_the_node() {
        let service: crate::ServiceConfig = serde_json::from_value(serde_json::json!({
            "name": "shop", "hosts": ["shop.example"], "origin": "https://o.example",
            "function": {"wasm": "/nonexistent.wasm", "cpu_time": "0s"}
        }))
        .expect("service");
        let errors = crate::validate_service(&service).expect_err("cpu_time");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["function.cpu_time"]);
    }
}
