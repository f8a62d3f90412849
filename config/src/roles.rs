//! Defaults that depend on the node's role. A shield holds the long tail for many edges, so it
//! gets a larger disk tier by default; a value the file sets always wins.
//!
//! | field | edge default | shield default |
//! |---|---|---|
//! | `cache.disk` | 1GiB | 16GiB |
//! | `cache.max_retention` | 30d | 90d |

use std::time::Duration;

use crate::{ByteSize, NodeConfig, NodeRole};

pub const SHIELD_DISK: ByteSize = ByteSize(16 << 30);
pub const SHIELD_MAX_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Apply the role's defaults to the fields `text` (the config file) leaves unset.
pub(crate) fn apply_defaults(config: &mut NodeConfig, text: &str) {
    if config.node.role != NodeRole::Shield {
        return;
    }
    // The file already parsed once; this second, plain parse only asks which keys it has.
    let table = text.parse::<toml::Table>().unwrap_or_default();
    let cache = table.get("cache").and_then(|c| c.as_table());
    let set = |key: &str| cache.is_some_and(|c| c.contains_key(key));
    if !set("disk") {
        config.cache.disk = SHIELD_DISK;
    }
    if !set("max_retention") {
        config.cache.max_retention = SHIELD_MAX_RETENTION;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = "[node]\nname = \"s1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[[services]]\nname = \"a\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\n";

    #[test]
    fn shields_get_shield_defaults_unless_the_file_sets_them() {
        let file = Path::new("/tmp/x.toml");
        let edge = crate::parse(BASE, file).unwrap();
        assert_eq!(edge.cache.disk, ByteSize::gib(1));
        let shield = crate::parse_as(BASE, file, Some(NodeRole::Shield)).unwrap();
        assert_eq!(shield.node.role, NodeRole::Shield);
        assert_eq!(shield.cache.disk, SHIELD_DISK);
        assert_eq!(shield.cache.max_retention, SHIELD_MAX_RETENTION);
        let by_file = BASE.replace("[node]\n", "[node]\nrole = \"shield\"\n");
        assert_eq!(crate::parse(&by_file, file).unwrap().cache.disk, SHIELD_DISK);
        let set = format!("{BASE}[cache]\ndisk = \"2GiB\"\n");
        let shield = crate::parse_as(&set, file, Some(NodeRole::Shield)).unwrap();
        assert_eq!(shield.cache.disk, ByteSize::gib(2), "the file wins");
    }
}
