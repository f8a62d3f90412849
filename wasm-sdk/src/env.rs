//! Environment variables from the service's config (`wasi:cli/environment`).
//!
//! The node gives each function exactly the variables its service lists, nothing of the node's
//! own environment. They are read from the host once per instance (one request) and kept.

use std::sync::OnceLock;

fn all_vars() -> &'static [(String, String)] {
    static VARS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    VARS.get_or_init(wasi::cli::environment::get_environment)
}

/// The value of variable `name`, if the service sets it.
pub fn var(name: &str) -> Option<&'static str> {
    all_vars().iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Every variable the service sets, in its order.
pub fn vars() -> impl Iterator<Item = (&'static str, &'static str)> {
    all_vars().iter().map(|(k, v)| (k.as_str(), v.as_str()))
}
