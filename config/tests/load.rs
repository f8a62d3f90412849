//! `load` against real files: the shipped example, and files that cannot be read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_config::{
    AccessLog, Balance, ByteSize, HealthConfig, HostHeader, HostPattern, NodeRole, OriginProtocol, PassiveConfig,
    RetryConfig, Scheme, load, parse,
};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/edge.toml")
}

#[test]
fn the_example_loads() {
    let config = load(&example()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.node.name, "edge-1");
    assert_eq!(config.listen.http, Some("127.0.0.1:8080".parse().unwrap_or_else(|e| panic!("{e}"))));
    assert_eq!(config.listen.https, None);
    assert_eq!(config.cache.memory, ByteSize::mib(256));
    assert_eq!(config.limits.max_header_bytes, ByteSize::kib(32));
    assert_eq!(config.log.access, AccessLog::Stdout);

    let [shop, blog, video] = config.services.as_slice() else {
        panic!("expected three services, got {:?}", config.services);
    };
    assert_eq!(shop.hosts, [HostPattern::Exact("shop.example".into()), HostPattern::Wildcard(".shop.example".into())]);
    let shop_origin = shop.origin.as_ref().unwrap_or_else(|| panic!("shop has one origin"));
    assert_eq!(shop_origin.scheme, Scheme::Https);
    assert_eq!(shop_origin.authority(), "origin.shop.example:443");
    assert_eq!(shop.origin_protocol, OriginProtocol::Auto);
    assert_eq!(shop.default_ttl, Some(Duration::from_secs(60)));
    assert_eq!(shop.max_object_size, Some(ByteSize::mib(16)));
    assert_eq!(shop.connect_timeout, Some(Duration::from_secs(2)));
    assert_eq!(blog.origin_list()[0].url.to_string(), "http://127.0.0.1:8081");
    assert_eq!(blog.host_header, HostHeader::Origin);
    assert_eq!(video.origin, None);
    let origins: Vec<_> = video.origin_list().iter().map(|o| (o.url.authority(), o.group, o.weight)).collect();
    assert_eq!(
        origins,
        [
            ("origin-a.video.example:443".to_owned(), 0, 2),
            ("origin-b.video.example:443".to_owned(), 0, 1),
            ("backup.video.example:443".to_owned(), 1, 1),
        ]
    );
    assert_eq!(video.balance, Balance::ConsistentHash);
    let pops: Vec<&str> = video.shields.iter().map(|s| s.pop.as_str()).collect();
    assert_eq!(pops, ["fra", "ams"]);
    assert!(video.active_health_checks());
    assert!(!shop.active_health_checks());
}

/// Every value the example writes out is the documented default, except where a comment says
/// it is an example (listen.http, the services).
#[test]
fn the_example_shows_the_defaults() {
    let config = load(&example()).unwrap_or_else(|e| panic!("{e}"));
    let bare = parse("[node]\nname = \"edge-1\"\n[listen]\nhttp = \"127.0.0.1:8080\"\n", &example())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen, bare.listen);
    assert_eq!(config.tls, bare.tls);
    assert_eq!(config.cache, bare.cache);
    assert_eq!(config.limits, bare.limits);
    assert_eq!(config.upstream, bare.upstream);
    assert_eq!(config.log, bare.log);
    assert_eq!(config.node.role, NodeRole::Edge);
    let shop = &config.services[0];
    assert_eq!(shop.balance, Balance::RoundRobin);
    assert!(shop.origin_when_shields_down);
    assert_eq!(shop.health, HealthConfig::default());
    assert_eq!(shop.passive, PassiveConfig::default());
    assert_eq!(shop.retry, RetryConfig::default());
}

#[test]
fn unreadable_files_are_one_error_naming_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (dir.join("no-such-file.toml"), "cannot read the config file: No such file"),
        (dir.join("src"), "cannot read the config file: not a regular file"),
    ];
    for (path, fragment) in cases {
        let errors = load(&path).expect_err("must fail");
        assert_eq!(errors.len(), 1, "{errors}");
        let error = &errors.0[0];
        assert_eq!(error.file, path);
        assert_eq!(error.path, "");
        assert!(error.message.contains(fragment), "{error}");
        assert!(errors.to_string().starts_with(&format!("{}: cannot read", path.display())));
    }
}

/// Hostile input: prefixes of the example and a batch of byte-level mutations parse to a
/// config or to errors, never a panic, and every error has a message.
#[test]
fn damaged_files_never_panic() {
    let text = std::fs::read_to_string(example()).unwrap_or_else(|e| panic!("{e}"));
    let file = example();
    let check = |candidate: &str| {
        if let Err(errors) = parse(candidate, &file) {
            assert!(!errors.is_empty());
            assert!(errors.iter().all(|e| !e.message.is_empty()), "{errors}");
        }
    };
    for (i, _) in text.char_indices().step_by(3) {
        check(&text[..i]);
    }
    // A fixed-seed linear congruential generator: reproducible, no dependency.
    let mut state: u64 = 0x0dd_b1a5e;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap_or(0)
    };
    let replacements = ["", "\"", "=", "[", "]", "\n", "0", "-", "[[services]]\n", "x", "{", "#"];
    for _ in 0..1000 {
        let mut mutated = text.clone();
        for _ in 0..3 {
            let mut at = next() % mutated.len().max(1);
            while !mutated.is_char_boundary(at) {
                at -= 1;
            }
            let end = (at + next() % 4).min(mutated.len());
            let end = (end..=mutated.len()).find(|&e| mutated.is_char_boundary(e)).unwrap_or(mutated.len());
            mutated.replace_range(at..end, replacements[next() % replacements.len()]);
        }
        check(&mutated);
    }
}
