//! The node protocol's NDJSON stream (`GET /v1/nodes/{id}/stream`) as an edge reads it: body
//! frames cut anywhere, split into lines under `control.max_message_size`, each parsed as a
//! `StreamMessage`, applied to the follower, every service record's config checked as the node
//! would run it, every purge target turned into a log key. Input: 2 bytes of frame cuts, then
//! the body.
#![no_main]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use edge_node::agent::fuzzing::{LineReader, service_config};
use edge_node::agent::{Effects, Follower};
use edge_node::cache::purge::Target;
use futures_util::stream;
use http_body::Frame;
use http_body_util::StreamBody;
use libfuzzer_sys::fuzz_target;
use outpost_config::{NodeRole, StreamMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else { return };
    let step = usize::from(cut).max(1);
    let frames: Vec<Result<Frame<Bytes>, Infallible>> =
        body.chunks(step).map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_time().build() else { return };
    rt.block_on(async {
        let mut reader = LineReader::new(StreamBody::new(stream::iter(frames)), 4096, Duration::from_secs(60));
        let mut follower = Follower::default();
        while let Ok(run) = reader.next_run().await {
            for message in run {
                check_round_trip(&message);
                inspect(&message);
                let mut effects = Effects::default();
                let _ = follower.apply(message, &mut effects);
                for purge in &effects.purges {
                    let _ = Target::from_request(&purge.target);
                }
            }
        }
        for record in follower.records() {
            for role in [NodeRole::Edge, NodeRole::Shield] {
                let _ = service_config(record, role);
            }
        }
    });
});

/// What a node parsed is what the control plane would have sent: serializing it parses back
/// to the same message.
fn check_round_trip(message: &StreamMessage) {
    let text = serde_json::to_string(message).expect("a parsed message serializes");
    let again: StreamMessage = serde_json::from_str(&text).expect("a serialized message parses");
    assert_eq!(&again, message, "{text}");
}

fn inspect(message: &StreamMessage) {
    if let StreamMessage::Snapshot(s) = message {
        for record in &s.services {
            let _ = record.function.as_ref().map(|f| f.label());
        }
    }
}
