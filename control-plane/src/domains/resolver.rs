//! A small stub resolver: one question to the configured recursive resolver
//! (`domains.resolver`) over UDP, again over TCP when the answer comes back truncated
//! (RFC 1035 §4.2; RFC 7766 §5). Messages are hickory's wire types, already in the build for
//! the authoritative server; no resolver crate is added for two record types.
//!
//! The answer's records of the asked type are taken whatever their owner name, so a CNAME
//! chain the resolver followed counts (`_outpost-challenge.www` as a CNAME to a provider's
//! name, the common way to delegate the proof).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest UDP answer read. Without EDNS, a server sends at most 512 bytes and sets TC beyond.
const UDP_MAX: usize = 4096;
/// Largest TCP answer read (the two-byte length allows 65535): bounds one lookup's memory.
const TCP_MAX: usize = 65_535;

/// Why a lookup had no answer: the domain's proof cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("resolver {server}: no answer within {timeout:?}")]
    Timeout { server: SocketAddr, timeout: Duration },
    #[error("resolver {server}: {reason}")]
    Io { server: SocketAddr, reason: String },
    #[error("resolver {server} answered {code} for {name} {rtype}")]
    Failed { server: SocketAddr, name: String, rtype: RecordType, code: ResponseCode },
    #[error("{name} is not a valid DNS name: {reason}")]
    BadName { name: String, reason: String },
}

/// Where lookups go and how long one may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolver {
    pub server: SocketAddr,
    pub timeout: Duration,
}

impl Resolver {
    /// The strings of every TXT record at `name` (each record's character-strings joined, as
    /// RFC 7208 §3.3 reads a long value); empty when the name or the record does not exist.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let records = self.lookup(name, RecordType::TXT).await?;
        let texts = records.into_iter().filter_map(|r| match r {
            RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect::<String>()),
            _ => None,
        });
        Ok(texts.collect())
    }

    /// The addresses of `host` (A, then AAAA); empty when it has none.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        let mut addrs = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            for record in self.lookup(host, rtype).await? {
                match record {
                    RData::A(a) => addrs.push(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => addrs.push(IpAddr::V6(aaaa.0)),
                    _ => {}
                }
            }
        }
        Ok(addrs)
    }

    /// The answer's records of type `rtype`; empty on NXDOMAIN or no data.
    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Vec<RData>, LookupError> {
        let bad = |reason: String| LookupError::BadName { name: name.to_owned(), reason };
        let mut fqdn = Name::from_ascii(name).map_err(|e| bad(e.to_string()))?;
        fqdn.set_fqdn(true);
        let id = random_id().map_err(|reason| LookupError::Io { server: self.server, reason })?;
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(fqdn, rtype));
        let wire = query.to_vec().map_err(|e| bad(e.to_string()))?;
        let answer = tokio::time::timeout(self.timeout, self.exchange(id, &wire))
            .await
            .map_err(|_| LookupError::Timeout { server: self.server, timeout: self.timeout })??;
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => return Err(LookupError::Failed { server: self.server, name: name.to_owned(), rtype, code }),
        }
        Ok(answer.answers.into_iter().filter(|r| r.record_type() == rtype).map(|r| r.data).collect())
    }

    /// UDP first; TCP when the answer is truncated.
    async fn exchange(&self, id: u16, wire: &[u8]) -> Result<Message, LookupError> {
        let io = |e: std::io::Error| LookupError::Io { server: self.server, reason: e.to_string() };
        let local: SocketAddr = if self.server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = tokio::net::UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(self.server).await.map_err(io)?;
        socket.send(wire).await.map_err(io)?;
        let mut buffer = vec![0u8; UDP_MAX];
        let answer = loop {
            let n = socket.recv(&mut buffer).await.map_err(io)?;
            // A stray or forged datagram (another id, not a response) is skipped, not believed.
            match Message::from_vec(&buffer[..n]) {
                Ok(m) if m.metadata.id == id && m.metadata.message_type == MessageType::Response => break m,
                _ => continue,
            }
        };
        if !answer.metadata.truncation {
            return Ok(answer);
        }
        let mut stream = tokio::net::TcpStream::connect(self.server).await.map_err(io)?;
        let length = u16::try_from(wire.len())
            .map_err(|_| LookupError::Io { server: self.server, reason: "query too long".to_owned() })?;
        stream.write_all(&length.to_be_bytes()).await.map_err(io)?;
        stream.write_all(wire).await.map_err(io)?;
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).await.map_err(io)?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(length)).min(TCP_MAX)];
        stream.read_exact(&mut body).await.map_err(io)?;
        let answer = Message::from_vec(&body)
            .map_err(|e| LookupError::Io { server: self.server, reason: format!("bad answer: {e}") })?;
        if answer.metadata.id != id {
            return Err(LookupError::Io { server: self.server, reason: "answer to another query".to_owned() });
        }
        Ok(answer)
    }
}

fn random_id() -> Result<u16, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 2];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| "no randomness from the system".to_owned())?;
    Ok(u16::from_le_bytes(bytes))
}

/// The first `nameserver` of a resolv.conf text (resolv.conf(5)), on port 53; a scoped IPv6
/// address loses its `%zone`.
pub fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver")).then_some(())?;
        let addr = words.next()?;
        let addr = addr.split('%').next().unwrap_or(addr);
        addr.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_nameserver_of_resolv_conf() {
        let cases = [
            ("nameserver 10.0.0.2\nnameserver 10.0.0.3\n", Some("10.0.0.2:53")),
            ("# comment\nsearch example\nnameserver   ::1\n", Some("[::1]:53")),
            ("nameserver fe80::1%eth0\n", Some("[fe80::1]:53")),
            ("nameserver not-an-address\nnameserver 127.0.0.53\n", Some("127.0.0.53:53")),
            ("search example\n", None),
        ];
        for (text, expected) in cases {
            assert_eq!(first_nameserver(text).map(|a| a.to_string()).as_deref(), expected, "{text:?}");
        }
    }

    #[tokio::test]
    async fn a_resolver_that_does_not_answer_is_a_timeout_not_a_hang() {
        // A bound UDP socket that never answers.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let server = silent.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let resolver = Resolver { server, timeout: Duration::from_millis(200) };
        let error = resolver.txt("_outpost-challenge.shop.example").await.err();
        assert_eq!(error, Some(LookupError::Timeout { server, timeout: Duration::from_millis(200) }));
    }
}
