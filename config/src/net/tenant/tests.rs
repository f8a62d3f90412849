use super::*;

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| c.parse().unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn origin(url: &str) -> OriginUrl {
    url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn every_refused_network_parses() {
    assert_eq!(NETWORKS.len(), REFUSED.len());
}

#[test]
fn resolved_addresses_are_judged_with_the_ipv4_they_carry() {
    // (address as a resolver returns it, the network named in the refusal or None, the clause)
    let cases = [
        ("127.0.0.1", Some("127.0.0.0/8"), "RFC 6890 §2.2.2: loopback"),
        ("10.9.8.7", Some("10.0.0.0/8"), "RFC 1918 §3"),
        ("169.254.169.254", Some("169.254.0.0/16"), "RFC 3927: link-local, cloud metadata"),
        ("240.0.0.1", Some("240.0.0.0/4"), "RFC 1112 §4: reserved"),
        ("203.0.113.9", None, "public (documentation range, routable for this purpose)"),
        ("::1", Some("::1/128"), "RFC 4291 §2.5.3: loopback"),
        ("::", Some("::/128"), "RFC 4291 §2.5.2: unspecified"),
        ("::ffff:127.0.0.1", Some("127.0.0.0/8"), "RFC 4291 §2.5.5.2: IPv4-mapped"),
        ("::ffff:8.8.8.8", None, "RFC 4291 §2.5.5.2: mapped public address"),
        ("::127.0.0.1", Some("127.0.0.0/8"), "RFC 4291 §2.5.5.1: IPv4-compatible"),
        ("::10.0.0.1", Some("10.0.0.0/8"), "RFC 4291 §2.5.5.1: IPv4-compatible"),
        ("::ffff:0:127.0.0.1", Some("127.0.0.0/8"), "RFC 2765 §2.1: IPv4-translated"),
        ("64:ff9b::127.0.0.1", Some("127.0.0.0/8"), "RFC 6052 §2.1: NAT64 well-known prefix"),
        ("64:ff9b::a9fe:a9fe", Some("169.254.0.0/16"), "RFC 6052 §2.1: NAT64 to metadata"),
        ("64:ff9b::808:808", None, "RFC 6052 §2.1: NAT64 to a public address"),
        ("64:ff9b:1::1", Some("64:ff9b:1::/48"), "RFC 8215: local-use NAT64"),
        ("2002:7f00:1::1", Some("127.0.0.0/8"), "RFC 3056 §2: 6to4 of loopback"),
        ("2002:c0a8:101::", Some("192.168.0.0/16"), "RFC 3056 §2: 6to4 of a private address"),
        ("2002:808:808::1", None, "RFC 3056 §2: 6to4 of a public address"),
        ("2001:0:4136:e378::1", Some("2001::/32"), "RFC 4380: Teredo"),
        ("fd12::1", Some("fc00::/7"), "RFC 4193: unique local"),
        ("fe80::1", Some("fe80::/10"), "RFC 4291 §2.5.6: link-local"),
        ("fec0::1", Some("fec0::/10"), "RFC 3879: site-local"),
        ("100::1", Some("100::/64"), "RFC 6666: discard-only"),
        ("2001:db8::1", None, "public IPv6 (documentation range)"),
        ("2606:4700::1111", None, "public IPv6"),
    ];
    for (addr, network, clause) in cases {
        let got = check_address(ip(addr), &[]).err().map(|f| f.network.to_string());
        assert_eq!(got.as_deref(), network, "{addr} ({clause})");
    }
}

#[test]
fn a_refusal_says_which_ipv4_address_an_ipv6_one_carries() {
    let f = check_address(ip("64:ff9b::7f00:1"), &[]).err().unwrap_or_else(|| panic!("allowed"));
    assert_eq!(
        f.to_string(),
        "64:ff9b::7f00:1 carries 127.0.0.1, which is in 127.0.0.0/8, loopback: the node itself, where its admin listener is"
    );
    let f = check_address(ip("10.0.0.1"), &[]).err().unwrap_or_else(|| panic!("allowed"));
    assert_eq!(f.to_string(), "10.0.0.1 is in 10.0.0.0/8, private (RFC 1918)");
}

#[test]
fn the_allow_list_covers_the_embedded_address_too() {
    let allow = cidrs(&["127.0.0.0/8", "10.20.0.0/16", "fd00:1::/32"]);
    let cases = [
        ("127.0.0.1", true),
        ("::ffff:127.0.0.1", true),
        ("64:ff9b::7f00:1", true),
        ("2002:7f00:1::", true),
        ("10.20.30.40", true),
        ("10.21.0.1", false),
        ("fd00:1::5", true),
        ("fd00:2::5", false),
        ("::1", false),
    ];
    for (addr, allowed) in cases {
        assert_eq!(check_address(ip(addr), &allow).is_ok(), allowed, "{addr}");
    }
}

#[test]
fn written_addresses_of_the_nodes_own_network_are_refused() {
    // (origin, the network named in the refusal, or None when allowed)
    let cases = [
        ("http://127.0.0.1:9901", Some("127.0.0.0/8")),
        ("http://127.8.9.10", Some("127.0.0.0/8")),
        ("http://0.0.0.0:9901", Some("0.0.0.0/8")),
        ("http://10.1.2.3", Some("10.0.0.0/8")),
        ("http://172.16.0.1", Some("172.16.0.0/12")),
        ("http://172.31.255.255", Some("172.16.0.0/12")),
        ("http://172.32.0.1", None),
        ("http://192.168.1.1", Some("192.168.0.0/16")),
        ("http://100.64.0.1", Some("100.64.0.0/10")),
        ("http://100.127.255.254", Some("100.64.0.0/10")),
        ("http://100.128.0.1", None),
        ("http://169.254.169.254", Some("169.254.0.0/16")),
        ("http://224.0.0.1", Some("224.0.0.0/4")),
        ("http://239.255.255.250", Some("224.0.0.0/4")),
        ("http://255.255.255.255", Some("255.255.255.255/32")),
        ("http://[::1]:9901", Some("::1/128")),
        ("http://[::]", Some("::/128")),
        ("http://[::ffff:127.0.0.1]", Some("127.0.0.0/8")),
        ("http://[::ffff:10.0.0.1]", Some("10.0.0.0/8")),
        ("http://[::127.0.0.1]", Some("127.0.0.0/8")),
        ("http://[64:ff9b::127.0.0.1]", Some("127.0.0.0/8")),
        ("http://[2002:7f00:1::1]", Some("127.0.0.0/8")),
        ("http://[fd00::1]", Some("fc00::/7")),
        ("http://[fc00::1]", Some("fc00::/7")),
        ("http://[fe80::1]", Some("fe80::/10")),
        ("http://[ff02::1]", Some("ff00::/8")),
        // Numeric forms getaddrinfo reads as IPv4 addresses.
        ("http://0x7f000001", Some("127.0.0.0/8")),
        ("http://0x7f.0.0.0x1", Some("127.0.0.0/8")),
        ("http://0xa.0x1.0x2.0x3", Some("10.0.0.0/8")),
        // Public addresses and names (names are judged by each node when it resolves them).
        ("https://203.0.113.7", None),
        ("https://8.8.8.8", None),
        ("http://[2001:db8::1]", None),
        ("https://origin.shop.example", None),
        ("https://0xcafe.example", None),
        ("https://localhost.example", None),
    ];
    for (url, network) in cases {
        let refused = refusal(&origin(url), &[]);
        match (network, refused) {
            (None, None) => {}
            (Some(network), Some(message)) => {
                assert!(message.contains(&format!(" is in {network}, ")), "{url}: {message}");
                assert!(message.contains("limits.tenant_upstream_allow"), "{url}: {message}");
            }
            (network, refused) => panic!("{url}: expected {network:?}, got {refused:?}"),
        }
    }
}

#[test]
fn localhost_is_the_node_itself() {
    for url in ["http://localhost:9901", "http://admin.localhost"] {
        let refused = refusal(&origin(url), &[]).unwrap_or_default();
        assert!(refused.contains("is the node itself"), "{url}: {refused}");
    }
    let loopback = cidrs(&["127.0.0.0/8", "::1/128"]);
    assert_eq!(refusal(&origin("http://localhost:9901"), &loopback), None);
    // It may resolve to either family: both must be allowed.
    assert!(refusal(&origin("http://localhost:9901"), &cidrs(&["127.0.0.0/8"])).is_some());
}

#[test]
fn numeric_hosts_read_as_inet_aton_does() {
    let ip = |s: &str| s.parse::<Ipv4Addr>().ok();
    let cases = [
        ("0x7f000001", ip("127.0.0.1")),
        ("2130706433", ip("127.0.0.1")),
        ("127.1", ip("127.0.0.1")),
        ("127.0.1", ip("127.0.0.1")),
        ("0177.0.0.1", ip("127.0.0.1")),
        ("0x7f.1", ip("127.0.0.1")),
        ("10.0x10203", ip("10.1.2.3")),
        ("0x", ip("0.0.0.0")),
        ("0", ip("0.0.0.0")),
        ("255.255.255.255", ip("255.255.255.255")),
        ("4294967295", ip("255.255.255.255")),
        ("4294967296", None),
        ("256.0.0.1", None),
        ("1.2.3.256", None),
        ("1.2.65536", None),
        ("1.2.3.4.5", None),
        ("08", None),
        ("0xg", None),
        ("1..2", None),
        ("", None),
        ("shop.example", None),
        ("0xcafe.example", None),
    ];
    for (host, want) in cases {
        assert_eq!(numeric_ipv4(host), want, "{host}");
    }
}
