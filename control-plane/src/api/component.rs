//! Checks an uploaded edge function before it is stored: valid WebAssembly, a component (not
//! a core module), exporting `wasi:http/incoming-handler@0.2.x`, the interface nodes call.
//! A node compiles it again before running it; this catches what the tenant can fix, with a
//! message saying how, at upload time rather than on every node.

use wasmparser::{Encoding, Parser, Payload, Validator};

use super::error::{ApiError, ErrorKind};

/// The interface a function must export, without its version.
pub const HANDLER: &str = "wasi:http/incoming-handler";
/// The versions nodes serve: WASI 0.2.x.
const HANDLER_VERSIONS: &str = "wasi:http/incoming-handler@0.2.";

/// Checks `bytes`; the error is a 400 saying what is wrong.
pub fn check(bytes: &[u8]) -> Result<(), ApiError> {
    match encoding(bytes)? {
        Encoding::Module => {
            return Err(ApiError::new(
                ErrorKind::NotAComponent,
                "this is a core WebAssembly module, not a component; build for wasm32-wasip2 \
                 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`",
            ));
        }
        Encoding::Component => {}
    }
    Validator::new()
        .validate_all(bytes)
        .map_err(|e| ApiError::new(ErrorKind::InvalidWasm, format!("the component is not valid: {e}")))?;
    let exports = exports(bytes)?;
    if exports.iter().any(|name| name.starts_with(HANDLER_VERSIONS)) {
        return Ok(());
    }
    let listed = if exports.is_empty() { "nothing".to_owned() } else { exports.join(", ") };
    Err(ApiError::new(
        ErrorKind::MissingExport,
        format!("the component does not export {HANDLER}@0.2.x (the wasi:http/proxy world); it exports {listed}"),
    ))
}

/// Whether `bytes` claim to be a module or a component (the header only).
fn encoding(bytes: &[u8]) -> Result<Encoding, ApiError> {
    let invalid = |why: String| ApiError::new(ErrorKind::InvalidWasm, format!("not WebAssembly: {why}"));
    match Parser::new(0).parse_all(bytes).next() {
        Some(Ok(Payload::Version { encoding, .. })) => Ok(encoding),
        Some(Ok(_)) | None => Err(invalid("no header".to_owned())),
        Some(Err(error)) => Err(invalid(error.to_string())),
    }
}

/// The names the outermost component exports (nested modules' and components' exports are
/// not the component's own).
fn exports(bytes: &[u8]) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ApiError::new(ErrorKind::InvalidWasm, e.to_string()))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    let export = export.map_err(|e| ApiError::new(ErrorKind::InvalidWasm, e.to_string()))?;
                    names.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `\0asm`, version 1: an empty core module.
    const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";
    /// `\0asm`, version 0x0d, layer 1: an empty component (valid, exports nothing).
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn code(bytes: &[u8]) -> &'static str {
        check(bytes).err().map_or("ok", |e| e.kind.code())
    }

    #[test]
    fn each_wrong_upload_is_named() {
        let mut truncated = EMPTY_COMPONENT.to_vec();
        // A section id with a length running past the end.
        truncated.extend_from_slice(&[0x07, 0x20]);
        let cases: [(&[u8], &str); 5] = [
            (CORE_MODULE, "not_a_component"),
            (EMPTY_COMPONENT, "missing_export"),
            (b"", "invalid_wasm"),
            (b"MZ\x90\0 not wasm at all", "invalid_wasm"),
            (&truncated, "invalid_wasm"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(code(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn the_messages_say_what_to_do() {
        let module = check(CORE_MODULE).err().map(|e| e.message).unwrap_or_default();
        assert!(module.contains("wasm32-wasip2") && module.contains("wasm-tools component new"), "{module}");
        let empty = check(EMPTY_COMPONENT).err().map(|e| e.message).unwrap_or_default();
        assert!(empty.contains("wasi:http/incoming-handler@0.2.x") && empty.contains("exports nothing"), "{empty}");
    }
}
