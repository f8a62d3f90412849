//! Checks of `[services.compression]`: levels in range, each coding preferred at most once,
//! something to compress when enabled, and the decode bound.

use super::Report;
use crate::compression::{CompressionConfig, ContentCoding, Levels};
use crate::units::ByteSize;

/// Every check of the compression table whose paths start with `at` (`services[2].compression.`).
pub(super) fn check(report: &mut Report<'_>, at: &str, compression: &CompressionConfig) {
    for (j, coding) in compression.prefer.iter().enumerate() {
        if let Some(first) = compression.prefer[..j].iter().position(|c| c == coding) {
            report.error(
                format!("{at}prefer[{j}]"),
                format!("\"{coding}\" is already {at}prefer[{first}]; list each coding once"),
            );
        }
    }
    if compression.enabled && compression.prefer.is_empty() {
        report.error(
            format!("{at}prefer"),
            "empty; list the codings to produce, e.g. [\"br\", \"zstd\", \"gzip\"], or set enabled = false",
        );
    }
    if compression.enabled && compression.types.is_empty() {
        report.error(
            format!("{at}types"),
            "empty; list the media types to compress, e.g. [\"text/*\", \"application/json\"], or set \
             enabled = false",
        );
    }
    check_levels(report, &format!("{at}cached_level."), &compression.cached_level);
    check_levels(report, &format!("{at}pass_level."), &compression.pass_level);
    report.size(
        &format!("{at}max_decoded_size"),
        compression.max_decoded_size,
        ByteSize::mib(1),
        Some(ByteSize::gib(16)),
    );
}

fn check_levels(report: &mut Report<'_>, at: &str, levels: &Levels) {
    let ranges = [
        (ContentCoding::Br, 0, Levels::MAX_BR),
        (ContentCoding::Zstd, 1, Levels::MAX_ZSTD),
        (ContentCoding::Gzip, 1, Levels::MAX_GZIP),
    ];
    for (coding, min, max) in ranges {
        let level = levels.get(coding);
        if !(min..=max).contains(&level) {
            report.error(format!("{at}{coding}"), format!("{level} is out of range; use {min} to {max}"));
        }
    }
}

#[cfg(test)]
mod tests {
    const BASE: &str = "[node]\nname = \"edge-1\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[[services]]\nname = \"shop\"\n\
                        hosts = [\"shop.example\"]\norigin = \"http://o\"\n[services.compression]\n";

    fn problems(table: &str) -> Vec<(String, String)> {
        match crate::parse(&format!("{BASE}{table}"), std::path::Path::new("edge.toml")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn each_check_names_its_field_and_what_is_valid() {
        let cases = [
            (
                "prefer = [\"br\", \"lz4\"]\n",
                "services[0].compression.prefer",
                "unknown content coding \"lz4\"; use \"br\", \"zstd\" or \"gzip\"",
            ),
            ("prefer = [\"identity\"]\n", "services[0].compression.prefer", "unknown content coding \"identity\""),
            ("prefer = \"br\"\n", "services[0].compression.prefer", "expected an array"),
            (
                "prefer = [\"gzip\", \"br\", \"GZIP\"]\n",
                "services[0].compression.prefer[2]",
                "\"gzip\" is already services[0].compression.prefer[0]",
            ),
            ("prefer = []\n", "services[0].compression.prefer", "empty; list the codings"),
            ("types = []\n", "services[0].compression.types", "empty; list the media types"),
            ("types = [\"text/*\", \"image\"]\n", "services[0].compression.types", "\"image\" is not a media type"),
            ("types = [\"*/*\"]\n", "services[0].compression.types", "would compress images"),
            (
                "cached_level = { br = 12 }\n",
                "services[0].compression.cached_level.br",
                "12 is out of range; use 0 to 11",
            ),
            ("cached_level = { zstd = 20 }\n", "services[0].compression.cached_level.zstd", "use 1 to 19"),
            ("cached_level = { zstd = 0 }\n", "services[0].compression.cached_level.zstd", "use 1 to 19"),
            ("pass_level = { gzip = 0 }\n", "services[0].compression.pass_level.gzip", "0 is out of range; use 1 to 9"),
            ("pass_level = { gzip = 10 }\n", "services[0].compression.pass_level.gzip", "use 1 to 9"),
            ("pass_level = { gzip = -1 }\n", "services[0].compression.pass_level.gzip", "invalid value"),
            ("pass_level = { lz4 = 1 }\n", "services[0].compression.pass_level.lz4", "unknown field `lz4`"),
            ("max_decoded_size = \"512KiB\"\n", "services[0].compression.max_decoded_size", "use at least 1MiB"),
            ("max_decoded_size = \"17GiB\"\n", "services[0].compression.max_decoded_size", "use at most 16GiB"),
            ("min_size = \"lots\"\n", "services[0].compression.min_size", "\"lots\""),
            ("level = 5\n", "services[0].compression.level", "unknown field `level`"),
        ];
        for (table, path, fragment) in cases {
            let found = problems(table);
            assert_eq!(found.len(), 1, "{table}\n{found:#?}");
            assert_eq!(found[0].0, path, "{table}");
            assert!(found[0].1.contains(fragment), "{table}\n{}", found[0].1);
        }
    }

    #[test]
    fn accepts_valid_edges() {
        let cases = [
            "",
            "enabled = false\nprefer = []\ntypes = []\n",
            "prefer = [\"gzip\"]\ntypes = [\"*+json\"]\n",
            "cached_level = { br = 11, zstd = 19, gzip = 9 }\npass_level = { br = 0, zstd = 1, gzip = 1 }\n",
            "min_size = 0\nmax_decoded_size = \"1MiB\"\n",
            "max_decoded_size = \"16GiB\"\n",
        ];
        for table in cases {
            assert_eq!(problems(table), Vec::new(), "{table}");
        }
    }

    #[test]
    fn reports_every_problem_of_the_table() {
        let table = "prefer = [\"br\", \"br\"]\ncached_level = { br = 20, gzip = 0 }\nmax_decoded_size = 1\n";
        let paths: Vec<String> = problems(table).into_iter().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            [
                "services[0].compression.prefer[1]",
                "services[0].compression.cached_level.br",
                "services[0].compression.cached_level.gzip",
                "services[0].compression.max_decoded_size",
            ]
        );
    }
}
