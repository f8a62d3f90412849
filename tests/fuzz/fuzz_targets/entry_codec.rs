//! The cache entry codec (`cache/entry.rs`): what the disk tier hands back after a crash, a
//! torn write or a format change. Decoding arbitrary bytes must fail cleanly or yield an entry
//! that encodes to bytes which decode to the same entry.
#![no_main]

use edge_node::cache::entry::{BodyLocation, Entry};
use foyer::Code;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = Entry::decode(&mut &data[..]) else { return };
    let mut once = Vec::new();
    entry.encode(&mut once).expect("an entry that decoded encodes");
    let again = Entry::decode(&mut &once[..]).expect("an encoded entry decodes");
    let mut twice = Vec::new();
    again.encode(&mut twice).expect("an entry that decoded encodes");
    // Encoding is canonical: the second round trip is byte for byte the first.
    assert_eq!(once, twice);
    match (&entry, &again) {
        (Entry::Object(a), Entry::Object(b)) => {
            assert_eq!(a.meta.status, b.meta.status);
            assert_eq!(a.meta.headers, b.meta.headers);
            assert_eq!(a.meta.policy, b.meta.policy);
            assert_eq!(a.meta.tags, b.meta.tags);
            assert_eq!(a.meta.body_len, b.meta.body_len);
            assert_eq!(a.body, b.body);
            if let BodyLocation::Inline(body) = &a.body {
                let _ = body.len();
            }
        }
        (Entry::Variants(a), Entry::Variants(b)) => assert_eq!(a, b),
        (Entry::Chunk(a), Entry::Chunk(b)) => assert_eq!(a, b),
        _ => panic!("the entry changed kind in a round trip"),
    }
    let _ = entry.weight();
});
