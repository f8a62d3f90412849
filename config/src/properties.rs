//! Properties of the config and node-protocol parsers on generated input, in every test run
//! (the `config` and `ndjson` fuzz targets in `tests/fuzz` feed them arbitrary bytes):
//! any text gives a config or errors that name the file, never a panic, and every
//! node-protocol message a control plane can send parses back to itself.

use std::path::Path;

use proptest::prelude::*;

use crate::{
    Change, Event, PurgeId, PurgeRecord, PurgeTarget, Seq, ServiceId, ServiceRecord, Snapshot, StreamMessage, TenantId,
    Timestamp,
};

const EXAMPLE: &str = include_str!("../examples/edge.toml");

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// TOML values of every type a field may be given, valid or not for that field.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
        "[0-9]{1,20}(B|KiB|MiB|GiB|TiB|KB|MB|GB|ms|s|m|h|d){0,2}".prop_map(|s| format!("\"{s}\"")),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("[\"\", \"*\", \"*.x\"]".to_owned()),
    ]
}

/// The example file with some `key = value` lines given another value, or cut short.
fn mutated_example() -> impl Strategy<Value = String> {
    let lines = EXAMPLE.lines().count();
    (prop::collection::vec((0..lines, toml_value()), 1..6), 0..=EXAMPLE.len()).prop_map(move |(edits, cut)| {
        let mut out: Vec<String> = EXAMPLE.lines().map(str::to_owned).collect();
        for (i, value) in edits {
            let key = out[i].trim_start_matches("# ").split_once(" = ").map(|(key, _)| key.to_owned());
            if let Some(key) = key {
                out[i] = format!("{key} = {value}");
            }
        }
        let text = out.join("\n");
        let cut = (0..=cut.min(text.len())).rev().find(|&c| text.is_char_boundary(c)).unwrap_or(0);
        if cut % 3 == 0 { text[..cut].to_owned() } else { text }
    })
}

proptest! {
    #![proptest_config(config(96))]

    /// A node config with any field given any value: parsed and validated, or rejected with
    /// errors that each name the file (conventions: "file + field path").
    #[test]
    fn any_node_config_parses_or_names_the_file(text in mutated_example()) {
        let file = Path::new("/etc/outpost/edge.toml");
        if let Err(errors) = crate::parse(&text, file) {
            for error in &errors.0 {
                prop_assert!(error.to_string().contains("edge.toml"), "{error}");
            }
        }
    }

    /// Arbitrary JSON for a service: a config or an error, and validation never panics.
    #[test]
    fn any_service_json_parses_or_fails(text in r#"\{("(name|hosts|origin|cache|images|shields)": ("[a-z.:/0-9]{0,12}"|\[\]|[0-9]{1,3}|\{\}|null),? ?){0,5}\}"#) {
        if let Ok(service) = serde_json::from_str::<crate::ServiceConfig>(&text) {
            let _ = crate::validate_service(&service);
        }
    }
}

fn id(s: &str) -> ServiceId {
    ServiceId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn message() -> impl Strategy<Value = StreamMessage> {
    let name = "[a-z][a-z0-9_-]{0,10}";
    // Timestamps a control plane writes: RFC 3339 years 1970 to 9999 (what `Timestamp::parse` reads).
    let time = 0u64..253_402_300_800_000;
    let record = (name, any::<u64>(), time.clone(), "[ -~]{0,16}").prop_map(|(n, v, at, host)| ServiceRecord {
        id: id(&n),
        tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
        version: Seq(v),
        updated_at: Timestamp(at),
        config: serde_json::json!({ "name": n, "hosts": [host.clone()] }),
        function: None,
        verified_hosts: (v % 2 == 0).then(|| vec![host]),
    });
    let target = prop_oneof![
        "[ -~]{0,24}".prop_map(|url| PurgeTarget::Url { url }),
        "[ -~]{0,24}".prop_map(|prefix| PurgeTarget::Prefix { prefix }),
        "[ -~]{0,24}".prop_map(|tag| PurgeTarget::Tag { tag }),
        Just(PurgeTarget::All),
    ];
    let purge = (name, any::<u64>(), any::<bool>(), prop::collection::vec(target, 0..3), "[ -~]{1,12}").prop_map(
        |(n, seq, soft, targets, pid)| PurgeRecord {
            id: PurgeId(pid),
            service: id(&n),
            tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            seq: Seq(seq),
            soft,
            targets,
            created_at: Timestamp(0),
        },
    );
    prop_oneof![
        any::<u64>().prop_map(|h| StreamMessage::Heartbeat { head: Seq(h) }),
        (any::<u64>(), prop::collection::vec(record.clone(), 0..3), any::<bool>()).prop_map(
            |(seq, services, resync)| StreamMessage::Snapshot(Snapshot {
                seq: Seq(seq),
                services,
                resync,
                acme_challenges: Vec::new(),
                certificates: vec![]
            })
        ),
        (any::<u64>(), time, record).prop_map(|(seq, at, service)| StreamMessage::Event(Event {
            seq: Seq(seq),
            at: Timestamp(at),
            change: Change::ServicePut { service }
        })),
        (any::<u64>(), purge).prop_map(|(seq, purge)| StreamMessage::Event(Event {
            seq: Seq(seq),
            at: Timestamp(0),
            change: Change::Purge { purge }
        })),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Every message the control plane can write is one NDJSON line that parses to itself.
    #[test]
    fn stream_messages_round_trip(m in message()) {
        let line = serde_json::to_string(&m).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(!line.contains('\n'), "one line: {}", line);
        let back: StreamMessage = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        prop_assert_eq!(back, m);
    }

    /// Any line is a message or an error.
    #[test]
    fn any_line_parses_or_fails(line in r#"\{"(snapshot|event|heartbeat)":\{("[a-z_]{1,8}":([0-9]{1,25}|"[ -~]{0,8}"|true|\[\]|\{\}),?){0,4}\}\}"#) {
        let _ = serde_json::from_str::<StreamMessage>(&line);
    }
}
