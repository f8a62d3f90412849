//! Config files: a node's TOML (`outpost_config::parse`, then validation with file and field
//! paths), the control plane's TOML settings, and a service as JSON (what the API accepts and
//! nodes receive), validated alone. Any text must give a config or errors, never a panic;
//! every error names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use outpost_config::{NodeRole, ServiceConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("/etc/outpost/fuzz.toml");
    for role in [None, Some(NodeRole::Edge), Some(NodeRole::Shield)] {
        if let Err(errors) = outpost_config::parse_as(text, file, role) {
            assert!(errors.to_string().contains("fuzz.toml"), "{errors}");
        }
    }
    if let Err(errors) = control_plane::settings::parse(text, file) {
        assert!(errors.to_string().contains("fuzz.toml"), "{errors}");
    }
    if let Ok(service) = serde_json::from_str::<ServiceConfig>(text) {
        let _ = outpost_config::validate_service(&service);
        let _ = outpost_config::validate_service_set(std::slice::from_ref(&service));
    }
});
