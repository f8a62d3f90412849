//! One HTTP/2 request stream: the pipeline, the interim responses it queues (each a HEADERS
//! frame with a 1xx, RFC 9113 §8.1), the final HEADERS, then DATA with flow control and
//! trailers. A client's RST_STREAM at any point drops the pipeline's future, so an upstream
//! request in progress is cancelled with it.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::sync::Notify;

use super::ConnCtx;
use super::body::H2Body;
use crate::body::EdgeBody;
use crate::interim::{self, InterimReceiver};
use crate::listen::TrackedBody;
use crate::listen::conns::Busy;
use crate::listen::{Handler, informational};

pub(super) async fn serve<H: Handler>(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ctx: Arc<ConnCtx<H>>,
    busy: Busy,
) {
    let (mut parts, recv) = req.into_parts();
    let (tx, rx) = interim::channel();
    parts.extensions.insert(tx);
    let declared = crate::http::declared_length(&parts.headers);
    // RFC 9110 §10.1.1: the node answers `Expect: 100-continue` itself, when the pipeline first
    // reads the body (so a request refused on its head gets its final status and no 100), and
    // the next hop never sees the expectation.
    let continues = (informational::expects_continue(&parts.headers) && !recv.is_end_stream()).then(Continue::default);
    parts.headers.remove(header::EXPECT);
    let body = if parts.method == Method::CONNECT {
        // As hyper's glue: a CONNECT with content is reset; one without reaches the pipeline
        // with no body (RFC 9113 §8.5).
        if declared.is_some_and(|n| n > 0) {
            return respond.send_reset(Reason::INTERNAL_ERROR);
        }
        H2Body::tunnel(recv)
    } else {
        H2Body::new(recv, declared, continues.clone())
    };
    let req = Request::from_parts(parts, body);
    let handled = ctx.handler.handle(ctx.conn.clone(), req);
    let Some(mut resp) = with_interim(handled, rx, continues, &mut respond).await else { return };
    if let Some(v) = &ctx.alt_svc {
        resp.headers_mut().insert(header::ALT_SVC, v.clone());
    }
    let (head, body) = resp.into_parts();
    let body = TrackedBody::new(body, busy);
    if let Err(e) = send_final(&mut respond, head, body).await {
        tracing::debug!(peer = %ctx.conn.peer, error = %e, "HTTP/2 response not completed");
    }
}

/// Runs the pipeline while writing the interim heads it queues, in order, ahead of the final
/// response; `None` when the client reset the stream first. The receiver is dropped once the
/// final response is ready, so a hint sent after that is refused, never written late.
async fn with_interim(
    handled: impl Future<Output = Response<EdgeBody>>,
    mut rx: InterimReceiver,
    mut continues: Option<Continue>,
    respond: &mut SendResponse<Bytes>,
) -> Option<Response<EdgeBody>> {
    tokio::pin!(handled);
    let mut open = true;
    let resp = loop {
        tokio::select! {
            biased;
            reset = poll_fn(|cx| respond.poll_reset(cx)) => {
                tracing::debug!(?reset, "HTTP/2 stream reset by the client before its response");
                return None;
            }
            () = Continue::wanted(continues.as_ref()), if continues.is_some() => {
                continues = None;
                let head = interim::InterimHead { status: StatusCode::CONTINUE, headers: http::HeaderMap::new() };
                send_interim(respond, &head);
            }
            head = rx.recv(), if open => match head {
                Some(head) => open = send_interim(respond, &head),
                None => open = false,
            },
            resp = &mut handled => break resp,
        }
    };
    // Hints queued in the same instant as the final response still go first.
    while open && let Ok(head) = rx.try_recv() {
        open = send_interim(respond, &head);
    }
    Some(resp)
}

/// The body's first read asks for `100 Continue`; the stream's task sends it.
#[derive(Clone, Default)]
pub(super) struct Continue(Arc<Notify>);

impl Continue {
    pub(super) fn ask(&self) {
        self.0.notify_one();
    }

    async fn wanted(this: Option<&Continue>) {
        match this {
            Some(c) => c.0.notified().await,
            None => std::future::pending().await,
        }
    }
}

fn send_interim(respond: &mut SendResponse<Bytes>, head: &interim::InterimHead) -> bool {
    match respond.send_informational(informational::to_response(head)) {
        Ok(()) => {
            metrics::counter!(crate::metrics::INTERIM_SENT, "protocol" => "h2").increment(1);
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, status = %head.status, "HTTP/2 interim response not sent");
            false
        }
    }
}

/// The final head as hyper's glue sent it: connection-specific fields removed (RFC 9113
/// §8.2.2), `Date` when missing (RFC 9110 §6.6.1: an origin server with a clock MUST send
/// one; hyper added it), `Content-Length` when the body's length is known.
fn strip_for_h2(head: &mut http::response::Parts, exact_len: Option<u64>, empty: bool) {
    informational::strip_connection_fields(&mut head.headers);
    if !head.headers.contains_key(header::DATE)
        && let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
    {
        head.headers.insert(header::DATE, v);
    }
    if !empty
        && let Some(len) = exact_len
        && !head.headers.contains_key(header::CONTENT_LENGTH)
    {
        head.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

async fn send_final(
    respond: &mut SendResponse<Bytes>,
    mut head: http::response::Parts,
    body: TrackedBody,
) -> Result<(), h2::Error> {
    let empty = body.is_end_stream();
    strip_for_h2(&mut head, body.size_hint().exact(), empty);
    let sent = respond.send_response(Response::from_parts(head, ()), empty);
    let send = match sent {
        Ok(s) => s,
        Err(e) => {
            respond.send_reset(Reason::INTERNAL_ERROR);
            return Err(e);
        }
    };
    if empty {
        return Ok(());
    }
    send_body(send, body).await
}

/// DATA frames as the client's window allows (RFC 9113 §6.9): each chunk waits for capacity,
/// so a client that stops reading holds at most the send buffer, never the whole body.
/// Trailers go as a final HEADERS frame (RFC 9113 §8.1); a body error resets the stream, so
/// the client never takes a cut-short body for a whole one.
async fn send_body(mut send: SendStream<Bytes>, mut body: TrackedBody) -> Result<(), h2::Error> {
    loop {
        let frame = tokio::select! {
            biased;
            reset = poll_fn(|cx| send.poll_reset(cx)) => return reset.map(|_| ()),
            frame = body.frame() => frame,
        };
        let frame = match frame {
            None => return send.send_data(Bytes::new(), true),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed; resetting the stream");
                send.send_reset(Reason::INTERNAL_ERROR);
                return Ok(());
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                let eos = body.is_end_stream();
                send_data(&mut send, data, eos).await?;
                if eos {
                    return Ok(());
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return send.send_trailers(trailers);
                }
            }
        }
    }
}

/// One chunk, cut to the capacity h2 grants (stream and connection windows, send buffer).
async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes, eos: bool) -> Result<(), h2::Error> {
    if data.is_empty() {
        return if eos { send.send_data(data, true) } else { Ok(()) };
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        while send.capacity() == 0 {
            match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                // The stream left the sending state: reset by the client.
                None => return Err(h2::Error::from(Reason::CANCEL)),
            }
        }
        let n = send.capacity().min(data.len());
        let chunk = data.split_to(n);
        send.send_data(chunk, eos && data.is_empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&str, &str)]) -> http::response::Parts {
        let mut resp = Response::new(());
        for (n, v) in fields {
            resp.headers_mut()
                .append(http::HeaderName::try_from(*n).expect("name"), HeaderValue::try_from(*v).expect("value"));
        }
        resp.into_parts().0
    }

    #[test]
    fn the_final_head_is_made_fit_for_h2() {
        // (case, fields, exact body length, empty body, field, want value)
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            Option<u64>,
            bool,
            &'static str,
            Option<&'static str>,
        );
        let cases: [Case; 7] = [
            ("RFC 9113 §8.2.2: Connection removed", &[("connection", "close")], None, true, "connection", None),
            (
                "RFC 9113 §8.2.2: Transfer-Encoding removed",
                &[("transfer-encoding", "chunked")],
                Some(3),
                false,
                "transfer-encoding",
                None,
            ),
            ("RFC 9113 §8.2.2: Keep-Alive removed", &[("keep-alive", "timeout=5")], None, true, "keep-alive", None),
            (
                "RFC 9110 §8.6: Content-Length from the known body size",
                &[],
                Some(3),
                false,
                "content-length",
                Some("3"),
            ),
            (
                "RFC 9110 §8.6: a Content-Length already there is kept",
                &[("content-length", "10")],
                Some(0),
                true,
                "content-length",
                Some("10"),
            ),
            ("an empty body (HEAD, 204) gets no invented length", &[], Some(0), true, "content-length", None),
            (
                "RFC 9110 §6.6.1: a Date already there is kept",
                &[("date", "Mon, 07 Dec 2026 00:00:00 GMT")],
                None,
                true,
                "date",
                Some("Mon, 07 Dec 2026 00:00:00 GMT"),
            ),
        ];
        for (case, fields, len, empty, field, want) in cases {
            let mut h = head(fields);
            strip_for_h2(&mut h, len, empty);
            assert_eq!(h.headers.get(field).and_then(|v| v.to_str().ok()), want, "{case}");
        }
        let mut h = head(&[]);
        strip_for_h2(&mut h, None, true);
        assert!(h.headers.contains_key(header::DATE), "RFC 9110 §6.6.1: Date added when missing");
    }
}
