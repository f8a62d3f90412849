//! Cleartext protocol detection: HTTP/2 with prior knowledge starts with the 24-byte connection
//! preface (RFC 9113 §3.4), anything else is HTTP/1.x. The bytes read to decide are replayed
//! to whichever server takes the connection. The watchdog of [`super::conns`] bounds how long a
//! client may take to send them (`header_read_timeout` from accept).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// RFC 9113 §3.4: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a cleartext connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// The whole preface arrived.
    H2,
    /// A byte differs from the preface, or the client closed before sending all of it.
    H1,
    /// Every byte so far matches the preface: read more.
    Undecided,
}

/// Decides from the bytes read so far. Pure, for the table test.
pub fn classify(read: &[u8]) -> Detected {
    let n = read.len().min(PREFACE.len());
    if read[..n] != PREFACE[..n] {
        Detected::H1
    } else if n == PREFACE.len() {
        Detected::H2
    } else {
        Detected::Undecided
    }
}

/// Reads until the preface is seen or ruled out; returns the decision and the connection with
/// the bytes read put back in front.
pub async fn detect<T: AsyncRead + Unpin>(mut io: T) -> io::Result<(Detected, Prefixed<T>)> {
    let mut head = [0u8; PREFACE.len()];
    let mut filled = 0;
    let decided = loop {
        let n = io.read(&mut head[filled..]).await?;
        filled += n;
        match classify(&head[..filled]) {
            Detected::Undecided if n > 0 => continue,
            // EOF before the whole preface: HTTP/1.1 sees what there was and closes.
            Detected::Undecided => break Detected::H1,
            decided => break decided,
        }
    };
    let prefix = bytes::Bytes::copy_from_slice(&head[..filled]);
    Ok((decided, Prefixed { prefix, io }))
}

/// A connection whose first bytes were already read: they are read again first.
pub struct Prefixed<T> {
    prefix: bytes::Bytes,
    io: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_decides() {
        // (bytes read, decision): RFC 9113 §3.4 (prior knowledge starts with the preface);
        // RFC 9112 §3 (an HTTP/1.1 request line starts with a method).
        let table: [(&[u8], Detected); 7] = [
            (b"", Detected::Undecided),
            (b"PRI * HTTP/2.0\r\n", Detected::Undecided),
            (PREFACE, Detected::H2),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", Detected::H2),
            (b"GET / HTTP/1.1\r\n", Detected::H1),
            (b"PRI * HTTP/1.1\r\n", Detected::H1),
            (b"P", Detected::Undecided),
        ];
        for (read, want) in table {
            assert_eq!(classify(read), want, "{:?}", String::from_utf8_lossy(read));
        }
    }

    #[tokio::test]
    async fn the_bytes_read_are_replayed() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
        let (decided, mut io) = detect(server).await.expect("detect");
        assert_eq!(decided, Detected::H1);
        let mut got = vec![0u8; 18];
        io.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");

        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, PREFACE).await.expect("write");
        let (decided, mut io) = detect(server).await.expect("detect");
        assert_eq!(decided, Detected::H2);
        let mut got = [0u8; 24];
        io.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, PREFACE);
    }
}
