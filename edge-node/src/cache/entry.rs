//! What the store holds, and its on-disk encoding (hand-written `foyer::Code`, versioned, so a
//! format change reads old entries as misses instead of misreading them).
//!
//! One key holds one of:
//! - an [`StoredObject`]: response head, timing, policy, tags, and the body inline or as chunks;
//! - a [`VariantIndex`]: the `Vary` field names; the objects live under secondary keys;
//! - a body chunk of a large object (keyed by the object's random id, so chunks of two versions
//!   of one URL never mix).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::policy::ResponsePolicy;

const FORMAT_VERSION: u8 = 1;
const TAG_OBJECT: u8 = 1;
const TAG_VARIANTS: u8 = 2;
const TAG_CHUNK: u8 = 3;
/// A Vary index with the time and tags of the fetch that wrote it (purges judge it: RFC 9211
/// §2.2 `uri-miss` after a purge of its URL). Tag 2, the index without them, still decodes.
const TAG_VARIANTS_JUDGED: u8 = 4;
/// Guards decoding against corrupt lengths: no field of an entry is larger than this.
const MAX_FIELD: usize = 1 << 30;

#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub status: StatusCode,
    /// Response headers as stored (hop-by-hop removed; CDN-only headers kept for policy).
    pub headers: HeaderMap,
    /// RFC 9111 §4.2.3 request_time / response_time. request_time also orders the object against
    /// purges: a purge recorded after the fetch began applies to it.
    pub request_time: SystemTime,
    pub response_time: SystemTime,
    pub policy: ResponsePolicy,
    pub tags: Vec<String>,
    pub body_len: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyLocation {
    Inline(Bytes),
    Chunked { object_id: u64, chunk_size: u32, chunks: u32 },
}

#[derive(Debug, Clone)]
pub struct StoredObject {
    pub meta: ObjectMeta,
    pub body: BodyLocation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariantIndex {
    pub fields: Vec<HeaderName>,
    /// request_time of the fetch that last wrote the index, which orders it against purges as
    /// an object's does. `None` for an index stored before this was recorded: never judged.
    pub written: Option<SystemTime>,
    /// The tags of the response that last wrote the index, so a purge by tag that removed that
    /// response removes the index with it.
    pub tags: Vec<String>,
}

impl VariantIndex {
    pub fn new(fields: Vec<HeaderName>, written: SystemTime, tags: Vec<String>) -> Self {
        Self { fields, written: Some(written), tags }
    }
}

#[derive(Debug, Clone)]
pub enum Entry {
    Object(Arc<StoredObject>),
    Variants(Arc<VariantIndex>),
    Chunk(Bytes),
}

impl Entry {
    /// Weight for the memory tier's capacity accounting.
    pub fn weight(&self) -> usize {
        match self {
            Entry::Object(o) => {
                let head: usize = o.meta.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 8).sum();
                let body = match &o.body {
                    BodyLocation::Inline(b) => b.len(),
                    BodyLocation::Chunked { .. } => 16,
                };
                256 + head + body
            }
            Entry::Variants(v) => {
                let tags: usize = v.tags.iter().map(|t| t.len() + 4).sum();
                64 + v.fields.iter().map(|f| f.as_str().len()).sum::<usize>() + tags
            }
            Entry::Chunk(b) => 32 + b.len(),
        }
    }
}

impl foyer::Code for Entry {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        let mut e = Enc(Vec::with_capacity(self.weight()));
        e.u8(FORMAT_VERSION);
        match self {
            Entry::Object(o) => {
                e.u8(TAG_OBJECT);
                encode_object(&mut e, o);
            }
            Entry::Variants(v) => {
                e.u8(TAG_VARIANTS_JUDGED);
                e.u32(v.fields.len() as u32);
                for f in &v.fields {
                    e.bytes(f.as_str().as_bytes());
                }
                e.time(v.written.unwrap_or(UNIX_EPOCH));
                encode_tags(&mut e, &v.tags);
            }
            Entry::Chunk(b) => {
                e.u8(TAG_CHUNK);
                e.bytes(b);
            }
        }
        writer.write_all(&e.0).map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut d = Dec(reader);
        let version = d.u8()?;
        if version != FORMAT_VERSION {
            return Err(invalid(format!("entry format {version}, expected {FORMAT_VERSION}")));
        }
        match d.u8()? {
            TAG_OBJECT => Ok(Entry::Object(Arc::new(decode_object(&mut d)?))),
            TAG_VARIANTS => {
                let fields = decode_vary_fields(&mut d)?;
                Ok(Entry::Variants(Arc::new(VariantIndex { fields, written: None, tags: Vec::new() })))
            }
            TAG_VARIANTS_JUDGED => {
                let fields = decode_vary_fields(&mut d)?;
                let written = d.time()?;
                let tags = decode_tags(&mut d)?;
                Ok(Entry::Variants(Arc::new(VariantIndex::new(fields, written, tags))))
            }
            TAG_CHUNK => Ok(Entry::Chunk(Bytes::from(d.bytes()?))),
            tag => Err(invalid(format!("unknown entry tag {tag}"))),
        }
    }

    fn estimated_size(&self) -> usize {
        self.weight()
    }
}

fn encode_object(e: &mut Enc, o: &StoredObject) {
    let m = &o.meta;
    e.u16(m.status.as_u16());
    e.u32(m.headers.len() as u32);
    for (name, value) in &m.headers {
        e.bytes(name.as_str().as_bytes());
        e.bytes(value.as_bytes());
    }
    e.time(m.request_time);
    e.time(m.response_time);
    let p = &m.policy;
    for d in [p.freshness_lifetime, p.corrected_initial_age, p.stale_while_revalidate, p.stale_if_error] {
        e.duration(d);
    }
    let flags = (p.must_revalidate as u8)
        | (p.no_cache as u8) << 1
        | (p.serve_with_authorization as u8) << 2
        | (p.immutable as u8) << 3;
    e.u8(flags);
    encode_tags(e, &m.tags);
    e.u64(m.body_len);
    match &o.body {
        BodyLocation::Inline(b) => {
            e.u8(0);
            e.bytes(b);
        }
        BodyLocation::Chunked { object_id, chunk_size, chunks } => {
            e.u8(1);
            e.u64(*object_id);
            e.u32(*chunk_size);
            e.u32(*chunks);
        }
    }
}

fn decode_object<R: Read>(d: &mut Dec<'_, R>) -> foyer::Result<StoredObject> {
    let status = StatusCode::from_u16(d.u16()?).map_err(|_| invalid("bad status"))?;
    let n = d.u32()? as usize;
    if n > 10_000 {
        return Err(invalid("too many headers"));
    }
    let mut headers = HeaderMap::with_capacity(n);
    for _ in 0..n {
        let name = HeaderName::from_bytes(&d.bytes()?).map_err(|_| invalid("bad header name"))?;
        let value = HeaderValue::from_bytes(&d.bytes()?).map_err(|_| invalid("bad header value"))?;
        headers.append(name, value);
    }
    let request_time = d.time()?;
    let response_time = d.time()?;
    let freshness_lifetime = d.duration()?;
    let corrected_initial_age = d.duration()?;
    let stale_while_revalidate = d.duration()?;
    let stale_if_error = d.duration()?;
    let flags = d.u8()?;
    let policy = ResponsePolicy {
        freshness_lifetime,
        corrected_initial_age,
        stale_while_revalidate,
        stale_if_error,
        must_revalidate: flags & 1 != 0,
        no_cache: flags & 2 != 0,
        serve_with_authorization: flags & 4 != 0,
        immutable: flags & 8 != 0,
    };
    let tags = decode_tags(d)?;
    let body_len = d.u64()?;
    let body = match d.u8()? {
        0 => BodyLocation::Inline(Bytes::from(d.bytes()?)),
        1 => BodyLocation::Chunked { object_id: d.u64()?, chunk_size: d.u32()?, chunks: d.u32()? },
        _ => return Err(invalid("bad body location")),
    };
    let meta = ObjectMeta { status, headers, request_time, response_time, policy, tags, body_len };
    Ok(StoredObject { meta, body })
}

fn encode_tags(e: &mut Enc, tags: &[String]) {
    e.u32(tags.len() as u32);
    for t in tags {
        e.bytes(t.as_bytes());
    }
}

fn decode_tags<R: Read>(d: &mut Dec<'_, R>) -> foyer::Result<Vec<String>> {
    let ntags = d.u32()? as usize;
    if ntags > 10_000 {
        return Err(invalid("too many tags"));
    }
    let mut tags = Vec::with_capacity(ntags);
    for _ in 0..ntags {
        tags.push(String::from_utf8(d.bytes()?).map_err(|_| invalid("bad tag"))?);
    }
    Ok(tags)
}

fn decode_vary_fields<R: Read>(d: &mut Dec<'_, R>) -> foyer::Result<Vec<HeaderName>> {
    let n = d.u32()? as usize;
    if n > 64 {
        return Err(invalid("too many Vary fields"));
    }
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let raw = d.bytes()?;
        fields.push(HeaderName::from_bytes(&raw).map_err(|_| invalid("bad Vary field"))?);
    }
    Ok(fields)
}

fn invalid(msg: impl Into<String>) -> foyer::Error {
    foyer::Error::io_error(io::Error::new(io::ErrorKind::InvalidData, msg.into()))
}

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn duration(&mut self, d: Duration) {
        self.u64(d.as_millis().min(u64::MAX as u128) as u64);
    }
    fn time(&mut self, t: SystemTime) {
        self.duration(t.duration_since(UNIX_EPOCH).unwrap_or_default());
    }
}

struct Dec<'a, R: Read>(&'a mut R);

impl<R: Read> Dec<'_, R> {
    fn array<const N: usize>(&mut self) -> foyer::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.0.read_exact(&mut buf).map_err(foyer::Error::io_error)?;
        Ok(buf)
    }
    fn u8(&mut self) -> foyer::Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> foyer::Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> foyer::Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> foyer::Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> foyer::Result<Vec<u8>> {
        let len = self.u32()? as usize;
        if len > MAX_FIELD {
            return Err(invalid("field too long"));
        }
        let mut buf = vec![0u8; len];
        self.0.read_exact(&mut buf).map_err(foyer::Error::io_error)?;
        Ok(buf)
    }
    fn duration(&mut self) -> foyer::Result<Duration> {
        Ok(Duration::from_millis(self.u64()?))
    }
    fn time(&mut self) -> foyer::Result<SystemTime> {
        Ok(UNIX_EPOCH + self.duration()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use foyer::Code;

    fn object(body: BodyLocation) -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("set-thing", HeaderValue::from_static("a"));
        headers.append("set-thing", HeaderValue::from_static("b"));
        Entry::Object(Arc::new(StoredObject {
            meta: ObjectMeta {
                status: StatusCode::OK,
                headers,
                request_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                response_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_456),
                policy: ResponsePolicy {
                    freshness_lifetime: Duration::from_secs(60),
                    corrected_initial_age: Duration::from_secs(3),
                    stale_while_revalidate: Duration::from_secs(5),
                    stale_if_error: Duration::ZERO,
                    must_revalidate: false,
                    no_cache: true,
                    serve_with_authorization: true,
                    immutable: false,
                },
                tags: vec!["t1".into(), "product-42".into()],
                body_len: 5,
            },
            body,
        }))
    }

    fn roundtrip(e: &Entry) -> Entry {
        let mut buf = Vec::new();
        e.encode(&mut buf).unwrap();
        Entry::decode(&mut &buf[..]).unwrap()
    }

    #[test]
    fn object_roundtrips() {
        for body in [
            BodyLocation::Inline(Bytes::from_static(b"hello")),
            BodyLocation::Chunked { object_id: 7, chunk_size: 1024, chunks: 3 },
        ] {
            let Entry::Object(o) = roundtrip(&object(body.clone())) else { panic!("not an object") };
            assert_eq!(o.body, body);
            assert_eq!(o.meta.status, StatusCode::OK);
            assert_eq!(o.meta.headers.get_all("set-thing").iter().count(), 2);
            assert_eq!(o.meta.tags, vec!["t1", "product-42"]);
            assert_eq!(o.meta.policy.freshness_lifetime, Duration::from_secs(60));
            assert!(o.meta.policy.no_cache && o.meta.policy.serve_with_authorization);
            assert_eq!(o.meta.request_time, UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        }
    }

    #[test]
    fn variants_and_chunks_roundtrip() {
        let written = UNIX_EPOCH + Duration::from_millis(1_700_000_000_789);
        let index = VariantIndex::new(vec![HeaderName::from_static("accept-language")], written, vec!["t1".into()]);
        let Entry::Variants(back) = roundtrip(&Entry::Variants(Arc::new(index.clone()))) else { panic!() };
        assert_eq!(*back, index);
        // An index stored before it carried a time and tags still reads, and is never judged.
        let mut old = vec![FORMAT_VERSION, TAG_VARIANTS, 1, 0, 0, 0, 6, 0, 0, 0];
        old.extend_from_slice(b"accept");
        let Entry::Variants(back) = Entry::decode(&mut &old[..]).unwrap() else { panic!() };
        assert_eq!((back.fields[0].as_str(), back.written), ("accept", None));
        let Entry::Chunk(c) = roundtrip(&Entry::Chunk(Bytes::from_static(b"abc"))) else { panic!() };
        assert_eq!(&c[..], b"abc");
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        object(BodyLocation::Inline(Bytes::from_static(b"hello"))).encode(&mut buf).unwrap();
        for cut in 0..buf.len() {
            assert!(Entry::decode(&mut &buf[..cut]).is_err(), "truncated at {cut}");
        }
        let mut wrong_version = buf.clone();
        wrong_version[0] = 99;
        assert!(Entry::decode(&mut &wrong_version[..]).is_err());
        let mut huge = vec![FORMAT_VERSION, TAG_CHUNK];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Entry::decode(&mut &huge[..]).is_err());
    }
}
