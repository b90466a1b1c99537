//! A server-side WebSocket connection (RFC 6455) that holds no buffer while it is idle.
//!
//! After the handshake the relay takes the socket out of actix's HTTP/1 dispatcher, which
//! would otherwise keep an 8 KiB read and an 8 KiB write buffer per connection for its whole
//! life: most of what an idle connection cost. Here the socket is read through one scratch
//! buffer per worker thread, and bytes are kept per connection only while a frame is
//! incomplete or an answer is being written; an idle connection owns none.
//!
//! Frames are parsed and built by actix-http's WebSocket codec (the same code actix-ws runs);
//! this module adds the buffering policy, continuation assembly with a size cap, UTF-8
//! checking of text, a write-stall limit and a lingering close.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_codec::Decoder;
use actix_http::ws::{CloseReason, Codec, Frame, Item, OpCode, Parser, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::poll_fn;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A write that makes no progress for this long ends the connection: the client stopped
/// reading (its outbound queue at the hub is bounded too, see `hub::QUEUE`).
pub const WRITE_STALL: Duration = Duration::from_secs(30);
/// After the relay's close frame, how long the client has to answer before the socket goes.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Bytes read from a socket at once, into the worker thread's scratch buffer.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    /// Reads land here first and are copied into the connection only when they bring bytes:
    /// a read that would block leaves nothing behind.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// A message from the client.
#[derive(Debug)]
pub enum Incoming {
    /// A text message (all its fragments), valid UTF-8.
    Text(String),
    /// A binary message (all its fragments).
    Binary(Bytes),
    /// A ping, to be answered with a pong carrying the same bytes.
    Ping(Bytes),
    /// A pong (the answer to the relay's heartbeat).
    Pong,
    /// The client is closing.
    Close(Option<CloseReason>),
}

/// Why reading or writing failed.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// A message (or its fragments together) over the size cap.
    #[error("a message over {0} bytes")]
    TooLarge(usize),
    /// A text message that is not UTF-8 (RFC 6455 closes with 1007).
    #[error("a text message that is not UTF-8")]
    NotUtf8,
    /// Framing the protocol does not allow.
    #[error("websocket protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// A write made no progress for [`WRITE_STALL`].
    #[error("the client stopped reading")]
    Stalled,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One WebSocket over `T` (a TCP or TLS stream).
pub struct WsConn<T> {
    io: T,
    codec: Codec,
    /// Bytes read but not yet parsed; empty, with no allocation, between frames.
    inbound: BytesMut,
    /// A fragmented message being assembled: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
    /// Frames waiting to be written; empty, with no allocation, once flushed.
    outbound: BytesMut,
    max_size: usize,
}

impl<T> std::fmt::Debug for WsConn<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn")
            .field("inbound", &self.inbound.len())
            .field("outbound", &self.outbound.len())
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WsConn<T> {
    /// Takes over `io` after the handshake; `read` holds bytes the HTTP layer had already
    /// read past the request (normally none). Messages over `max_size` bytes are refused.
    pub fn new(io: T, read: BytesMut, max_size: usize) -> Self {
        WsConn {
            io,
            codec: Codec::new().max_size(max_size),
            // The HTTP layer's buffer is 8 KiB even when empty.
            inbound: if read.is_empty() { BytesMut::new() } else { BytesMut::from(&read[..]) },
            partial: None,
            outbound: BytesMut::new(),
            max_size,
        }
    }

    /// The next message; `None` once the client has gone. Cancel-safe: everything read is
    /// kept in the connection, not in the future.
    pub async fn recv(&mut self) -> Option<Result<Incoming, WsError>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, WsError>>> {
        loop {
            match self.decode() {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            if self.inbound.is_empty() {
                // Hand the last frame's allocation back.
                self.inbound = BytesMut::new();
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(None),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    /// Reads what the socket has through the thread's scratch buffer.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let (io, inbound) = (&mut self.io, &mut self.inbound);
        SCRATCH_BUF.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut buf = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(io).poll_read(cx, &mut buf))?;
            inbound.extend_from_slice(buf.filled());
            Poll::Ready(Ok(buf.filled().len()))
        })
    }

    /// One whole message from the bytes read so far, if they hold one.
    fn decode(&mut self) -> Result<Option<Incoming>, WsError> {
        loop {
            // A frame that announces more than the cap is refused from its header, before
            // its bytes are buffered (the codec would wait for all of them first).
            if let Some(len) = announced_length(&self.inbound) {
                if len > self.max_size as u64 {
                    return Err(WsError::TooLarge(self.max_size));
                }
            }
            let Some(frame) = self.codec.decode(&mut self.inbound)? else { return Ok(None) };
            let whole = match frame {
                Frame::Text(bytes) => (true, bytes),
                Frame::Binary(bytes) => (false, bytes),
                Frame::Ping(bytes) => return Ok(Some(Incoming::Ping(bytes))),
                Frame::Pong(_) => return Ok(Some(Incoming::Pong)),
                Frame::Close(reason) => return Ok(Some(Incoming::Close(reason))),
                Frame::Continuation(item) => {
                    let (first, bytes, last) = match item {
                        Item::FirstText(b) => (Some(true), b, false),
                        Item::FirstBinary(b) => (Some(false), b, false),
                        Item::Continue(b) => (None, b, false),
                        Item::Last(b) => (None, b, true),
                    };
                    if let Some(text) = first {
                        self.partial = Some((text, BytesMut::new()));
                    }
                    let Some((text, so_far)) = self.partial.as_mut() else {
                        return Err(ProtocolError::ContinuationNotStarted.into());
                    };
                    if so_far.len() + bytes.len() > self.max_size {
                        return Err(WsError::TooLarge(self.max_size));
                    }
                    so_far.extend_from_slice(&bytes);
                    if !last {
                        continue;
                    }
                    let text = *text;
                    let (_, whole) = self.partial.take().unwrap_or_default();
                    (text, whole.freeze())
                }
            };
            return Ok(Some(match whole {
                (true, bytes) => {
                    Incoming::Text(String::from_utf8(bytes.into()).map_err(|_| WsError::NotUtf8)?)
                }
                (false, bytes) => Incoming::Binary(bytes),
            }));
        }
    }

    /// Queues a text message; [`WsConn::flush`] writes it.
    pub fn queue_text(&mut self, text: &str) {
        Parser::write_message(&mut self.outbound, text.as_bytes(), OpCode::Text, true, false);
    }

    /// Writes a text message now.
    pub async fn text(&mut self, text: &str) -> Result<(), WsError> {
        self.queue_text(text);
        self.flush().await
    }

    /// Sends a ping now (the heartbeat).
    pub async fn ping(&mut self) -> Result<(), WsError> {
        Parser::write_message(&mut self.outbound, b"", OpCode::Ping, true, false);
        self.flush().await
    }

    /// Answers a ping now.
    pub async fn pong(&mut self, payload: &[u8]) -> Result<(), WsError> {
        Parser::write_message(&mut self.outbound, payload, OpCode::Pong, true, false);
        self.flush().await
    }

    /// Writes everything queued. A write that makes no progress for [`WRITE_STALL`] fails.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        while !self.outbound.is_empty() {
            let (io, out) = (&mut self.io, &self.outbound);
            let written =
                tokio::time::timeout(WRITE_STALL, poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, out)))
                    .await
                    .map_err(|_| WsError::Stalled)??;
            if written == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            self.outbound.advance(written);
        }
        self.outbound = BytesMut::new();
        let io = &mut self.io;
        tokio::time::timeout(WRITE_STALL, poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)))
            .await
            .map_err(|_| WsError::Stalled)??;
        Ok(())
    }

    /// Sends a close frame, ends the relay's side of the stream and gives the client
    /// [`CLOSE_LINGER`] to answer: closing a socket with unread bytes in it makes the kernel
    /// reset the connection, and a reset can make the client drop the frames just sent.
    pub async fn close(mut self, reason: Option<CloseReason>) {
        Parser::write_close(&mut self.outbound, reason, false);
        if self.flush().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            let io = &mut self.io;
            let _ = poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)).await;
            // Until the client's close frame, or the end of its stream.
            loop {
                match self.recv().await {
                    Some(Ok(Incoming::Close(_))) | None => return,
                    Some(Ok(_)) => {}
                    // What follows cannot be parsed (the rest of a refused frame): read it
                    // and drop it, so that the client's writes still succeed and it reads
                    // the close frame.
                    Some(Err(_)) => {
                        self.inbound = BytesMut::new();
                        while let Ok(n) = poll_fn(|cx| self.poll_fill(cx)).await {
                            self.inbound = BytesMut::new();
                            if n == 0 {
                                return;
                            }
                        }
                        return;
                    }
                }
            }
        })
        .await;
    }
}

/// The payload length a frame header announces, once the header's length bytes are there.
fn announced_length(buf: &[u8]) -> Option<u64> {
    let short = buf.get(1)? & 0x7f;
    match short {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        n => Some(u64::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::ws::CloseCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client frame (masked, as clients must).
    fn client_frame(op: OpCode, fin: bool, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        Parser::write_message(&mut out, payload, op, fin, true);
        out
    }

    #[tokio::test]
    async fn messages_arrive_whole_and_the_connection_keeps_no_buffer_between_them() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut conn = WsConn::new(server, BytesMut::new(), 1024);
        // A fragmented text message with a ping in the middle, as RFC 6455 allows.
        let mut bytes = client_frame(OpCode::Text, false, b"hel");
        bytes.extend_from_slice(&client_frame(OpCode::Ping, true, b"p"));
        bytes.extend_from_slice(&client_frame(OpCode::Continue, true, "lo ✓".as_bytes()));
        bytes.extend_from_slice(&client_frame(OpCode::Binary, true, &[0, 1]));
        client.write_all(&bytes).await.unwrap();
        assert!(matches!(conn.recv().await, Some(Ok(Incoming::Ping(p))) if &p[..] == b"p"));
        assert!(matches!(conn.recv().await, Some(Ok(Incoming::Text(t))) if t == "hello ✓"));
        assert!(matches!(conn.recv().await, Some(Ok(Incoming::Binary(b))) if b[..] == [0, 1]));
        // Nothing half-read: the connection holds no buffer while it waits.
        let waiting = tokio::time::timeout(Duration::from_millis(20), conn.recv()).await;
        assert!(waiting.is_err());
        assert_eq!((conn.inbound.capacity(), conn.outbound.capacity()), (0, 0));

        conn.text("{\"type\":\"hello\"}").await.unwrap();
        assert_eq!(conn.outbound.capacity(), 0);
        let mut head = [0u8; 18];
        client.read_exact(&mut head).await.unwrap();
        assert_eq!(head[..2], [0x81, 16]);
        assert_eq!(&head[2..], b"{\"type\":\"hello\"}");

        client.write_all(&client_frame(OpCode::Close, true, &1000u16.to_be_bytes())).await.unwrap();
        assert!(matches!(
            conn.recv().await,
            Some(Ok(Incoming::Close(Some(CloseReason { code: CloseCode::Normal, .. }))))
        ));
        drop(client);
        assert!(conn.recv().await.is_none());
    }

    #[tokio::test]
    async fn oversized_and_malformed_messages_are_refused() {
        // Announced over the cap: refused from the header alone.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = WsConn::new(server, BytesMut::new(), 1000);
        client.write_all(&[0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]).await.unwrap();
        // (Without the header check the codec would wait for all 4 GiB: the timeout says so.)
        let refused =
            tokio::time::timeout(Duration::from_secs(5), conn.recv()).await.expect("refused at once");
        assert!(matches!(refused, Some(Err(WsError::TooLarge(1000)))));

        // Fragments that add up to more than the cap.
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut conn = WsConn::new(server, BytesMut::new(), 1000);
        client.write_all(&client_frame(OpCode::Text, false, &[b'a'; 600])).await.unwrap();
        client.write_all(&client_frame(OpCode::Continue, true, &[b'a'; 600])).await.unwrap();
        assert!(matches!(conn.recv().await, Some(Err(WsError::TooLarge(1000)))));

        // Text that is not UTF-8; a continuation with nothing to continue; an unmasked frame.
        for (bytes, what) in [
            (client_frame(OpCode::Text, true, &[0xff, 0xfe]), "not utf-8"),
            (client_frame(OpCode::Continue, true, b"x"), "no start"),
            (BytesMut::from(&[0x81u8, 1, b'x'][..]), "unmasked"),
        ] {
            let (mut client, server) = tokio::io::duplex(1024);
            let mut conn = WsConn::new(server, BytesMut::new(), 1000);
            client.write_all(&bytes).await.unwrap();
            assert!(matches!(conn.recv().await, Some(Err(_))), "{what}");
        }
    }

    /// The slow-consumer policy: a client that stops reading fails the relay's write after
    /// [`WRITE_STALL`] without progress, rather than holding the connection's task forever.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_ends_the_write_after_the_stall_limit() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut conn = WsConn::new(server, BytesMut::new(), 1 << 20);
        let started = tokio::time::Instant::now();
        // Far more than the pipe holds, and nobody reads the other end.
        let result = conn.text(&"x".repeat(64 * 1024)).await;
        assert!(matches!(result, Err(WsError::Stalled)), "{result:?}");
        assert!(started.elapsed() >= WRITE_STALL);
    }

    #[tokio::test]
    async fn close_sends_the_reason_and_waits_for_the_client() {
        let (mut client, server) = tokio::io::duplex(1024);
        let conn = WsConn::new(server, BytesMut::new(), 1000);
        let closing = tokio::spawn(
            conn.close(Some(CloseReason { code: CloseCode::Policy, description: Some("flooding".into()) })),
        );
        let mut frame = [0u8; 12];
        client.read_exact(&mut frame).await.unwrap();
        assert_eq!(frame[..4], [0x88, 10, 0x03, 0xf0]);
        assert_eq!(&frame[4..], b"flooding");
        // The relay ended its side; the client's answer lets it go.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        client.write_all(&client_frame(OpCode::Close, true, &[])).await.unwrap();
        drop(client);
        closing.await.unwrap();
    }
}
