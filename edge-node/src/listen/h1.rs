//! Interim (1xx) responses on HTTP/1.1, beside hyper's h1 server, which cannot write one (its
//! `role.rs` turns a 1xx from the service into a 500).
//!
//! HTTP/1.1 is serial: while a request's service future is pending, hyper has written and
//! flushed the previous response and writes nothing until this one's final head. So the
//! connection's IO is shared between hyper ([`InterimIo`]) and the service ([`InterimWriter`]):
//! the writer puts a 1xx head on the wire only when hyper has nothing unflushed (the tail of
//! the previous response may still sit in hyper's buffer when the socket was full), and hyper's
//! next write first finishes any 1xx bytes left. Both ends run in the connection's task
//! (hyper polls the service future inline), so the lock is never contended nor held across
//! an await.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::informational;
use crate::interim::{InterimHead, InterimReceiver};

struct Shared<T> {
    io: T,
    /// 1xx bytes not yet written: written before anything of hyper's.
    interim: BytesMut,
    /// hyper wrote since its last completed flush: its buffer may hold more of a response.
    hyper_unflushed: bool,
    /// A writer waiting for hyper's flush.
    waiting: Option<Waker>,
}

impl<T: AsyncWrite + Unpin> Shared<T> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.interim.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.interim) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.interim.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    // A panic while holding it cannot leave the bytes half-updated in a way that matters more
    // than losing the connection would; carry on with what is there.
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// hyper's end of the connection.
pub struct InterimIo<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// The service's end: writes 1xx heads between hyper's responses.
pub struct InterimWriter<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> Clone for InterimWriter<T> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

/// Splits a connection into hyper's IO and the 1xx writer.
pub fn split<T>(io: T) -> (InterimIo<T>, InterimWriter<T>) {
    let shared = Arc::new(Mutex::new(Shared { io, interim: BytesMut::new(), hyper_unflushed: false, waiting: None }));
    (InterimIo { shared: shared.clone() }, InterimWriter { shared })
}

impl<T: AsyncWrite + Unpin> InterimWriter<T> {
    /// Writes one interim head once hyper's previous response is all flushed.
    async fn write(&self, head: &InterimHead) -> io::Result<()> {
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            if s.hyper_unflushed {
                s.waiting = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(())
        })
        .await;
        let fields = informational::interim_fields(head);
        lock(&self.shared).interim.extend_from_slice(&informational::encode_h1(head.status, &fields));
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            std::task::ready!(s.poll_drain(cx))?;
            Pin::new(&mut s.io).poll_flush(cx)
        })
        .await
    }

    /// Runs the pipeline while writing the 1xx heads it queues, in order, ahead of the final
    /// response; the receiver is dropped once the final response is ready.
    pub async fn around<R>(&self, handled: impl Future<Output = R>, mut rx: InterimReceiver) -> R {
        tokio::pin!(handled);
        let mut open = true;
        let resp = loop {
            tokio::select! {
                biased;
                head = rx.recv(), if open => match head {
                    Some(head) => open = self.send(&head).await,
                    None => open = false,
                },
                resp = &mut handled => break resp,
            }
        };
        while open && let Ok(head) = rx.try_recv() {
            open = self.send(&head).await;
        }
        resp
    }

    async fn send(&self, head: &InterimHead) -> bool {
        match self.write(head).await {
            Ok(()) => {
                metrics::counter!(crate::metrics::INTERIM_SENT, "protocol" => "h1").increment(1);
                true
            }
            Err(e) => {
                // The final write will fail the same way; hyper reports it.
                tracing::debug!(error = %e, status = %head.status, "HTTP/1.1 interim response not sent");
                false
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for InterimIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InterimIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.shared);
        std::task::ready!(s.poll_drain(cx))?;
        s.hyper_unflushed = true;
        Pin::new(&mut s.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.shared);
        std::task::ready!(s.poll_drain(cx))?;
        s.hyper_unflushed = true;
        Pin::new(&mut s.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        lock(&self.shared).io.is_write_vectored()
    }

    /// hyper flushes after writing all it buffered: from here its response is on the wire and
    /// a waiting 1xx may go.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        std::task::ready!(s.poll_drain(cx))?;
        std::task::ready!(Pin::new(&mut s.io).poll_flush(cx))?;
        s.hyper_unflushed = false;
        if let Some(w) = s.waiting.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        std::task::ready!(s.poll_drain(cx))?;
        Pin::new(&mut s.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn hint() -> InterimHead {
        let mut headers = HeaderMap::new();
        headers.insert("link", HeaderValue::from_static("</a.css>; rel=preload"));
        InterimHead { status: StatusCode::EARLY_HINTS, headers }
    }

    #[tokio::test]
    async fn a_hint_waits_for_hypers_unflushed_response_then_goes_before_the_next() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut io, writer) = split(server);
        // hyper wrote the previous response but has not flushed it yet.
        io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.expect("write");
        let (tx, rx) = crate::interim::channel();
        tx.send(hint()).expect("queued");
        let final_after_hint = async {
            // The pipeline finishes only after hyper's flush below.
            tokio::task::yield_now().await;
            "final"
        };
        let around = writer.around(final_after_hint, rx);
        let flush = async {
            tokio::task::yield_now().await;
            io.flush().await.expect("flush");
        };
        let (resp, ()) = tokio::join!(around, flush);
        assert_eq!(resp, "final");
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.expect("write");
        drop(io);
        drop(writer);
        let mut wire = Vec::new();
        client.read_to_end(&mut wire).await.expect("read");
        let text = String::from_utf8_lossy(&wire);
        let want = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n\
                    HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n\
                    HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(text, want, "RFC 9110 §15.2: the 1xx after the previous response, before the final one");
    }
}
