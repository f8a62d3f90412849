//! The interim origin over HTTP/2, with prior knowledge (h2c, RFC 9113 §3.3) or over TLS with
//! ALPN h2: the same scripts, each written step read back as the head (and
//! body) it spells in HTTP/1.1 and sent as HEADERS (a 1xx through h2's `send_informational`)
//! and DATA. Connection-specific fields are left out: HTTP/2 forbids them (§8.2.2).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{State, Step, answer};
use crate::raw_origin::RawRequest;

/// Serves one h2c connection: every stream gets its path's scripted answer.
pub(super) async fn serve<T>(io: T, conn: usize, state: Arc<Mutex<State>>, max_streams: Option<u32>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut builder = h2::server::Builder::new();
    if let Some(max) = max_streams {
        builder.max_concurrent_streams(max);
    }
    let Ok(mut h2) = builder.handshake::<_, Bytes>(io).await else { return };
    while let Some(Ok((req, respond))) = h2.accept().await {
        tokio::spawn(answer_stream(req, respond, conn, state.clone()));
    }
}

async fn answer_stream(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    conn: usize,
    state: Arc<Mutex<State>>,
) {
    let (parts, mut body) = req.into_parts();
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(authority) = parts.uri.authority() {
        headers.push(("host".into(), authority.to_string()));
    }
    for (n, v) in &parts.headers {
        headers.push((n.as_str().to_string(), v.to_str().unwrap_or("?").to_string()));
    }
    let target = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let raw = RawRequest { conn, method: parts.method.to_string(), target, headers };
    let steps = answer(&state, raw);
    // The request body is read and dropped, as the HTTP/1.1 origin discards it. A script that
    // refuses the stream reads the whole body first: the node replays a refused request only
    // when it holds all of its body, and on a loaded machine a refusal sent on the HEADERS
    // alone can overtake the node's sending of the body (a gap the node's note records).
    let drain = async move {
        while let Some(Ok(data)) = body.data().await {
            let _ = body.flow_control().release_capacity(data.len());
        }
    };
    if matches!(steps.first(), Some(Step::Refuse)) {
        drain.await;
    } else {
        tokio::spawn(drain);
    }
    for step in steps {
        match step {
            Step::Wait(hold) => hold.wait().await,
            Step::Refuse => {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
                return;
            }
            Step::Write(bytes) => {
                if send(&mut respond, &bytes).is_none() {
                    return;
                }
            }
        }
    }
}

/// Sends the head (and body) `wire` spells; `None` when the stream is gone or it is no head.
fn send(respond: &mut h2::server::SendResponse<Bytes>, wire: &[u8]) -> Option<()> {
    let (status, fields, body) = parse(wire)?;
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    for (name, value) in fields {
        let forbidden = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];
        if forbidden.contains(&name.as_str()) || (status.is_informational() && name == "content-length") {
            continue;
        }
        resp.headers_mut().append(name, value);
    }
    if status.is_informational() {
        return respond.send_informational(resp).ok();
    }
    let mut stream = respond.send_response(resp, body.is_empty()).ok()?;
    if !body.is_empty() {
        stream.send_data(body, true).ok()?;
    }
    Some(())
}

/// A head and body as a script writes them.
type Message = (StatusCode, Vec<(HeaderName, HeaderValue)>, Bytes);

/// `HTTP/1.1 <status> <reason>`, its fields, an empty line, and the body after it.
fn parse(wire: &[u8]) -> Option<Message> {
    let text = std::str::from_utf8(wire).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse::<u16>().ok()?;
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(n, v)| {
            let name = HeaderName::from_bytes(n.trim().to_ascii_lowercase().as_bytes()).ok()?;
            Some((name, HeaderValue::from_str(v.trim()).ok()?))
        })
        .collect();
    Some((StatusCode::from_u16(status).ok()?, fields, Bytes::copy_from_slice(body.as_bytes())))
}
