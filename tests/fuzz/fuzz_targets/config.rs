//! Config files: a node's TOML (`outpost_config::parse_as`, then validation with file and field
//! paths, per role), the control plane's TOML settings, and a service as JSON (what the API
//! accepts and nodes receive), validated alone. Any text must give a config or errors, never a
//! panic; every error names the file.
//!
//! The first byte picks one parser (its value modulo 5; see [`Parser`]) and the rest is the
//! text. One parser per input, not all five: each exec then costs one parse, and the corpus
//! of each parser grows on its own coverage. Seeds carry their selector byte (seeds/config/).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use outpost_config::{NodeRole, ServiceConfig};

/// What the selector byte chooses.
enum Parser {
    Node(Option<NodeRole>),
    ControlPlane,
    ServiceJson,
}

fn parser(selector: u8) -> Parser {
    match selector % 5 {
        0 => Parser::Node(None),
        1 => Parser::Node(Some(NodeRole::Edge)),
        2 => Parser::Node(Some(NodeRole::Shield)),
        3 => Parser::ControlPlane,
        _ => Parser::ServiceJson,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let file = Path::new("/etc/outpost/fuzz.toml");
    match parser(selector) {
        Parser::Node(role) => {
            if let Err(errors) = outpost_config::parse_as(text, file, role) {
                assert!(errors.to_string().contains("fuzz.toml"), "{errors}");
            }
        }
        Parser::ControlPlane => {
            if let Err(errors) = control_plane::settings::parse(text, file) {
                assert!(errors.to_string().contains("fuzz.toml"), "{errors}");
            }
        }
        Parser::ServiceJson => {
            if let Ok(service) = serde_json::from_str::<ServiceConfig>(text) {
                let _ = outpost_config::validate_service(&service);
                let _ = outpost_config::validate_service_set(std::slice::from_ref(&service));
            }
        }
    }
});
