//! Which handed-over socket serves which listener: the successor's config names the listeners
//! it wants (and their addresses); the running process offered the sockets it has. A socket is
//! reused when it is the same listener on the same address, or on any address when the config
//! asks for port 0 (the address the running process was given then is the one clients know).
//! A listener with no match is bound afresh; an offered socket nobody wants is closed.

use std::net::SocketAddr;

use super::message::{Listener, SocketSpec};

/// What to do for one wanted listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The offered socket at this index.
    Reuse(usize),
    /// Bind `addr` afresh (a new listener, or one whose address changed).
    Bind(SocketAddr),
}

/// The plan for every wanted listener, plus the offered sockets left over (closed: their
/// queued connections are lost, which the log says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub sources: Vec<(Listener, Source)>,
    pub unused: Vec<usize>,
}

/// Matches `wanted` (each listener once, with its configured address) against `offered`.
pub fn plan(wanted: &[(Listener, SocketAddr)], offered: &[SocketSpec]) -> Plan {
    let mut taken = vec![false; offered.len()];
    let sources = wanted
        .iter()
        .map(|&(listener, addr)| {
            let found = offered
                .iter()
                .enumerate()
                .position(|(i, spec)| !taken[i] && spec.listener == listener && same_address(addr, spec.addr));
            match found {
                Some(i) => {
                    taken[i] = true;
                    (listener, Source::Reuse(i))
                }
                None => (listener, Source::Bind(addr)),
            }
        })
        .collect();
    let unused = taken.iter().enumerate().filter(|(_, t)| !**t).map(|(i, _)| i).collect();
    Plan { sources, unused }
}

/// Whether a socket bound to `bound` serves a config asking for `configured`: the same IP, and
/// the same port unless the config leaves the port to the system (0).
fn same_address(configured: SocketAddr, bound: SocketAddr) -> bool {
    configured.ip() == bound.ip() && (configured.port() == 0 || configured.port() == bound.port())
}

/// Checks that the descriptors received match the offer, one per socket.
pub fn check_count(offered: &[SocketSpec], received: usize) -> Result<(), String> {
    if offered.len() == received {
        Ok(())
    } else {
        Err(format!("offer lists {} sockets but {received} descriptors arrived", offered.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn spec(listener: Listener, addr: &str) -> SocketSpec {
        SocketSpec { listener, addr: a(addr) }
    }

    #[test]
    fn plans() {
        use Listener::*;
        let offered = [
            spec(Http, "0.0.0.0:80"),
            spec(Https, "0.0.0.0:443"),
            spec(Quic, "0.0.0.0:443"),
            spec(Admin, "127.0.0.1:9090"),
        ];
        // (name, wanted, expected sources, expected unused)
        type Case = (&'static str, Vec<(Listener, &'static str)>, Vec<(Listener, Source)>, Vec<usize>);
        let cases: &[Case] = &[
            (
                "the same config reuses every socket",
                vec![(Http, "0.0.0.0:80"), (Https, "0.0.0.0:443"), (Quic, "0.0.0.0:443"), (Admin, "127.0.0.1:9090")],
                vec![
                    (Http, Source::Reuse(0)),
                    (Https, Source::Reuse(1)),
                    (Quic, Source::Reuse(2)),
                    (Admin, Source::Reuse(3)),
                ],
                vec![],
            ),
            (
                "port 0 takes the port the running process was given",
                vec![(Http, "0.0.0.0:0"), (Admin, "127.0.0.1:0")],
                vec![(Http, Source::Reuse(0)), (Admin, Source::Reuse(3))],
                vec![1, 2],
            ),
            (
                "a changed port is bound afresh and the old socket closed",
                vec![(Http, "0.0.0.0:8080"), (Https, "0.0.0.0:443"), (Quic, "0.0.0.0:443"), (Admin, "127.0.0.1:9090")],
                vec![
                    (Http, Source::Bind(a("0.0.0.0:8080"))),
                    (Https, Source::Reuse(1)),
                    (Quic, Source::Reuse(2)),
                    (Admin, Source::Reuse(3)),
                ],
                vec![0],
            ),
            (
                "a changed IP is bound afresh",
                vec![(Admin, "10.0.0.1:9090")],
                vec![(Admin, Source::Bind(a("10.0.0.1:9090")))],
                vec![0, 1, 2, 3],
            ),
            (
                "HTTP/3 newly on: its UDP socket is bound, TCP reused",
                vec![(Https, "0.0.0.0:443"), (Quic, "0.0.0.0:443")],
                vec![(Https, Source::Reuse(1)), (Quic, Source::Reuse(2))],
                vec![0, 3],
            ),
            (
                "a TCP socket never serves the UDP listener of the same address",
                vec![(Quic, "0.0.0.0:80")],
                vec![(Quic, Source::Bind(a("0.0.0.0:80")))],
                vec![0, 1, 2, 3],
            ),
        ];
        for (name, wanted, sources, unused) in cases {
            let wanted: Vec<_> = wanted.iter().map(|(l, s)| (*l, a(s))).collect();
            let got = plan(&wanted, &offered);
            assert_eq!(&got.sources, sources, "{name}");
            assert_eq!(&got.unused, unused, "{name}");
        }
    }

    #[test]
    fn each_offered_socket_serves_one_listener_at_most() {
        let offered = [spec(Listener::Http, "127.0.0.1:80")];
        let wanted = [(Listener::Http, a("127.0.0.1:0")), (Listener::Http, a("127.0.0.1:0"))];
        let got = plan(&wanted, &offered);
        assert_eq!(got.sources[0].1, Source::Reuse(0));
        assert_eq!(got.sources[1].1, Source::Bind(a("127.0.0.1:0")));
    }

    #[test]
    fn descriptors_must_match_the_offer() {
        let offered = [spec(Listener::Http, "127.0.0.1:80"), spec(Listener::Admin, "127.0.0.1:81")];
        assert!(check_count(&offered, 2).is_ok());
        assert_eq!(check_count(&offered, 1), Err("offer lists 2 sockets but 1 descriptors arrived".into()));
    }
}
