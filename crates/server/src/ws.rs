//! `GET /ws`: one WebSocket per tab or device.
//!
//! Authenticated at the handshake (Bearer token for native clients; the session cookie plus
//! an Origin check for browsers). One `select!` loop per connection over client frames, the
//! hub's outbound queue and a heartbeat tick. A bad frame gets an `error` frame and the
//! connection lives on; only abuse (a frame over the hard cap, a flood) closes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_codec::{AsyncRead, AsyncWrite, Framed, FramedParts};
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1;
use actix_http::ws::{CloseCode, CloseReason};
use actix_http::Request;
use actix_service::{fn_service, ServiceFactory};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::{FutureExt, LocalBoxFuture};
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::SinkExt;
use sealroom_protocol::{
    parse_client_frame, ApiError, ClientFrame, ConversationId, ErrorCode, ServerFrame, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;

use crate::auth::{self, AuthUser};
use crate::error::{Result, ServerError};
use crate::hub::{encode, Inbox, Mailbox, Outbound, Refused, QUEUE};
use crate::wsconn::{Incoming, WsConn, WsError};
use crate::{now_ms, service, Relay};

/// How often the server pings.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Frames above this are refused with `frame_too_large` (the connection stays).
const SOFT_FRAME_LIMIT: usize = sealroom_protocol::MAX_FRAME_BYTES;
/// Frames above this close the connection (1009): the codec cannot skip them.
const HARD_FRAME_LIMIT: usize = 1 << 20;
/// Frame budget: a burst of this many, refilled at `FRAME_RATE` per second. Past it the relay
/// simply reads no further from the connection until the budget has refilled (TCP pushes back
/// on the client): nothing is refused, so a pipelining client's sends are never reordered by a
/// refusal and resend. 2,000 frames/s is far above any person's client and above what one
/// connection gets through the group commit on our 2-core machine, so a well-behaved
/// pipelining client is limited by the disk, not by the budget; a flood of cheap frames
/// (typing, sync, garbage) is paced to it.
const FRAME_BURST: f64 = 2000.0;
const FRAME_RATE: f64 = 2000.0;
/// Malformed frames in a row before the connection is closed as a flood (1008).
const FLOOD_CLOSE_AFTER: u32 = 500;
/// Minimum gap between relayed typing notices per peer.
const TYPING_GAP: Duration = Duration::from_millis(1500);
/// Frames from the hub's queue written together (one write) when several are waiting.
const OUTBOUND_BATCH: usize = 64;

/// The upgrade service: every request that asks to upgrade its connection comes here rather
/// than to the app, with the connection itself. Only `GET /ws` may; the socket is then served
/// by [`WsConn`], outside actix's HTTP/1 dispatcher (whose buffers an idle WebSocket would
/// otherwise keep: see `wsconn`).
pub fn upgrader<T>(
    state: web::Data<Relay>,
) -> impl ServiceFactory<
    (Request, Framed<T, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn_service(move |(req, framed): (Request, Framed<T, h1::Codec>)| upgrade(state.clone(), req, framed))
}

/// One upgraded connection, for as long as it lasts. Its future is what an idle connection
/// costs, so the handshake's (large, short-lived) future is boxed and gone before the session
/// starts.
async fn upgrade<T>(
    state: web::Data<Relay>,
    req: Request,
    framed: Framed<T, h1::Codec>,
) -> actix_web::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    if let Some((user, token, conn)) = Box::pin(accept(&state, req, framed)).await? {
        run(state, user, token, conn).await;
    }
    Ok(())
}

/// Answers the handshake: 101 and the connection, or the error the app would have answered.
async fn accept<T>(
    state: &Relay,
    req: Request,
    mut framed: Framed<T, h1::Codec>,
) -> actix_web::Result<Option<(AuthUser, String, WsConn<T>)>>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let admitted = async {
        if req.path() != sealroom_protocol::endpoint::WS_PATH {
            return Err(ServerError::api(ErrorCode::NotFound, "only /ws takes a connection upgrade"));
        }
        let (user, token) = admit(state, &req.head().headers, req.peer_addr()).await?;
        let response = actix_http::ws::handshake(req.head()).map_err(handshake_error)?.finish();
        Ok((user, token, response))
    }
    .await;
    // The request's headers share the HTTP read buffer's allocation: neither may outlive the
    // handshake (they were 15 KiB of every idle connection).
    drop(req);
    match admitted {
        Ok((user, token, response)) => {
            framed.send(h1::Message::Item((response.drop_body(), BodySize::None))).await?;
            let FramedParts { io, read_buf, .. } = framed.into_parts();
            Ok(Some((user, token, WsConn::new(io, read_buf, HARD_FRAME_LIMIT))))
        }
        Err(e) => {
            // As the app would have answered: the JSON error, its headers, the error counted.
            let mut response = e.error_response();
            if let Some(code) = response.extensions().get::<ErrorCode>() {
                state.metrics.error(*code);
            }
            for (name, value) in crate::SECURITY_HEADERS {
                response.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            let (head, body) = actix_http::Response::from(response).into_parts();
            let body = body.try_into_bytes().unwrap_or_default();
            // One write: a WebSocket client reads the body only from what came with the head.
            framed.feed(h1::Message::Item((head, BodySize::Sized(body.len() as u64)))).await?;
            framed.feed(h1::Message::Chunk(Some(body))).await?;
            framed.send(h1::Message::Chunk(None)).await?;
            Ok(None)
        }
    }
}

/// `GET /ws` without a connection upgrade (the app's route): answered as the handshake
/// would be, so a client learns first that it must log in, then that it must upgrade.
pub async fn not_upgraded(req: HttpRequest, state: web::Data<Relay>) -> Result<HttpResponse> {
    admit(&state, &req.head().headers, req.peer_addr()).await?;
    Err(actix_http::ws::handshake(req.head()).err().map_or_else(
        || ServerError::api(ErrorCode::InvalidField, "the connection must be upgraded to a WebSocket"),
        handshake_error,
    ))
}

fn handshake_error(e: actix_http::ws::HandshakeError) -> ServerError {
    ServerError::api(ErrorCode::InvalidField, e.to_string())
}

/// Authenticates a handshake: its token (Bearer, or the cookie from an allowed origin) must
/// name a live session.
async fn admit(
    state: &Relay,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
) -> Result<(AuthUser, String)> {
    let token = auth::token_of(headers, peer.map(|a| a.ip()), state)?;
    let user = auth::authenticate(state, &token).await?;
    Ok((user, token))
}

/// A token bucket: `burst` at most, refilled at `rate` per second.
struct Budget {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
}

impl Budget {
    fn new(burst: f64, rate: f64) -> Self {
        Budget { tokens: burst, burst, rate, at: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    /// Charges what was used, possibly going below zero, which the next refills pay back.
    fn spend(&mut self, amount: f64) {
        self.tokens -= amount;
    }

    /// How long until some is available again.
    fn until_available(&mut self) -> Duration {
        self.refill();
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// Sync output per connection: a burst of this many bytes of messages, refilled at
/// `SYNC_BYTES_RATE` per second; past it, the next `sync` is answered only once the budget
/// has refilled (the connection waits; nothing is refused), so a stream of tiny `sync` frames
/// cannot make the relay produce output faster than that.
const SYNC_BYTES_BURST: f64 = 8.0 * 1024.0 * 1024.0;
const SYNC_BYTES_RATE: f64 = 2.0 * 1024.0 * 1024.0;

async fn run<T: AsyncRead + AsyncWrite + Unpin>(
    state: web::Data<Relay>,
    user: AuthUser,
    token: String,
    mut conn: WsConn<T>,
) {
    // Held until this connection ends, however it ends.
    let Some(_slot) = state.slots.take() else {
        let max = state.slots.max();
        let why = format!("this relay holds at most {max} connections; try again later");
        return Box::pin(refuse_connection(
            &state,
            conn,
            ErrorCode::RateLimited,
            why,
            CloseCode::Again,
            "relay full",
        ))
        .await;
    };
    let (mailbox, mut inbox) = Mailbox::open(QUEUE);
    let (conn_id, first) = match state.fanout.register(user.id, &user.session_id, mailbox) {
        Ok(registered) => registered,
        Err(Refused::ShuttingDown) => {
            let reason = CloseReason { code: CloseCode::Away, description: Some("shutting down".into()) };
            return Box::pin(conn.close(Some(reason))).await;
        }
        Err(Refused::TooMany) => {
            let max = state.config.max_connections_per_user;
            let why = format!("at most {max} connections per user; close one first");
            let refusal = refuse_connection(
                &state,
                conn,
                ErrorCode::RateLimited,
                why,
                CloseCode::Policy,
                "too many connections",
            );
            return Box::pin(refusal).await;
        }
        Err(Refused::Unavailable) => {
            let why = "this relay node has lost its message bus; reconnect shortly".to_owned();
            let refusal =
                refuse_connection(&state, conn, ErrorCode::Unavailable, why, CloseCode::Again, "unavailable");
            return Box::pin(refusal).await;
        }
    };
    // A logout, logout-everywhere or password change that ran while this handshake was in
    // flight revoked the session before this connection was registered, so its notice could
    // not reach it: look again now that it is. (Revocations write the store first, then
    // notify registered connections, so one of the two always sees the other.)
    if auth::authenticate(&state, &token).await.is_err() {
        state.fanout.unregister(user.id, conn_id);
        let frame = ServerFrame::SessionRevoked { reason: "the session ended; log in again".into() };
        conn.queue_text(&encode(&frame));
        let reason =
            CloseReason { code: CloseCode::Other(4001), description: Some("session revoked".into()) };
        return Box::pin(conn.close(Some(reason))).await;
    }
    drop(token);
    state.metrics.connections(1);
    tracing::info!(user = user.id.0, conn = conn_id, "websocket connected");
    if first {
        let _ = service::broadcast_presence(&state, user.id, &user.username, true).await;
    }
    let hello = ServerFrame::Hello {
        protocol: PROTOCOL_VERSION,
        user: user.username.clone(),
        session_id: user.session_id.clone(),
        server_time: now_ms(),
    };
    let end = match conn.text(&encode(&hello)).await {
        Ok(()) => serve(&state, &user, conn_id, &mut conn, &mut inbox).await,
        Err(_) => End::Gone,
    };
    // (The close, like the refusals above, is boxed: the future of every connection would
    // otherwise be as large as the largest of them for its whole life.)
    if let End::Close(reason) = end {
        Box::pin(conn.close(reason)).await;
    }
    state.metrics.connections(-1);
    tracing::info!(user = user.id.0, conn = conn_id, "websocket closed");
    if state.fanout.unregister(user.id, conn_id) {
        let _ = service::broadcast_presence(&state, user.id, &user.username, false).await;
    }
}

/// Turns a connection away past a connection limit (`rate_limited`) or while the node cannot
/// fan out (`unavailable`): an error frame saying why, then the close.
async fn refuse_connection<T: AsyncRead + AsyncWrite + Unpin>(
    state: &Relay,
    mut conn: WsConn<T>,
    error: ErrorCode,
    why: String,
    code: CloseCode,
    reason: &str,
) {
    state.metrics.error(error);
    let refusal = ServerFrame::error(ApiError::new(error, why), None);
    conn.queue_text(&encode(&refusal));
    conn.close(Some(CloseReason { code, description: Some(reason.into()) })).await;
}

/// How a connection's loop ended.
enum End {
    /// Close with this reason (none: a plain close frame).
    Close(Option<CloseReason>),
    /// The socket failed or the client stopped reading: nothing more can be written.
    Gone,
}

/// Frames of one connection being handled at once. A connection's sends are queued for the
/// group commit as they arrive (in order) and acknowledged in order as their commits land, so
/// a client that pipelines is not held to one message per commit; past this many unanswered
/// frames, the relay stops reading from the connection until some are answered.
const PIPELINE: usize = 64;

/// The answer to one frame, once it is ready.
struct Answer {
    frames: Vec<ServerFrame>,
    /// Sync output reserved for a page but not used (handed back to the budget).
    unused_output: f64,
}

impl Answer {
    fn now(frames: Vec<ServerFrame>) -> LocalBoxFuture<'static, Answer> {
        std::future::ready(Answer { frames, unused_output: 0.0 }).boxed_local()
    }
}

/// The connection's loop; returns how it ends.
async fn serve<T: AsyncRead + AsyncWrite + Unpin>(
    state: &web::Data<Relay>,
    user: &AuthUser,
    conn_id: u64,
    conn: &mut WsConn<T>,
    inbox: &mut Inbox,
) -> End {
    let idle = Duration::from_secs(state.config.ws_idle_timeout);
    let mut last_heard = Instant::now();
    // The first ping one period after connecting (not at once: the hello has just gone out).
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut budget = Budget::new(FRAME_BURST, FRAME_RATE);
    let mut output = Budget::new(SYNC_BYTES_BURST, SYNC_BYTES_RATE);
    let mut typing: HashMap<ConversationId, Instant> = HashMap::new();
    let mut pending: FuturesOrdered<LocalBoxFuture<'_, Answer>> = FuturesOrdered::new();
    // Over the frame budget: read nothing more until then.
    let mut paused: Option<Instant> = None;
    // Malformed frames in a row.
    let mut garbage = 0u32;
    let close =
        |code: CloseCode, why: &str| End::Close(Some(CloseReason { code, description: Some(why.into()) }));
    let gone = |_: WsError| End::Gone;
    loop {
        tokio::select! {
            msg = conn.recv(), if pending.len() < PIPELINE && paused.is_none() => {
                last_heard = Instant::now();
                if matches!(msg, Some(Ok(Incoming::Text(_) | Incoming::Binary(_)))) {
                    // Every frame is charged, malformed or not.
                    budget.spend(1.0);
                    let wait = budget.until_available();
                    if !wait.is_zero() {
                        paused = Some(Instant::now() + wait);
                    }
                }
                let answer = match msg {
                    Some(Ok(Incoming::Text(text))) => {
                        let parsed = if text.len() > SOFT_FRAME_LIMIT {
                            Err(ApiError::new(ErrorCode::FrameTooLarge, format!("frames are limited to {SOFT_FRAME_LIMIT} bytes")))
                        } else {
                            parse_client_frame(&text)
                        };
                        match parsed {
                            Ok(frame) => {
                                garbage = 0;
                                handle(state, user, conn_id, frame, &mut typing, &mut output)
                            }
                            Err(e) => {
                                garbage += 1;
                                if garbage > FLOOD_CLOSE_AFTER {
                                    return close(CloseCode::Policy, "flooding");
                                }
                                Answer::now(vec![ServerFrame::error(e, None)])
                            }
                        }
                    }
                    Some(Ok(Incoming::Binary(_))) => {
                        garbage += 1;
                        if garbage > FLOOD_CLOSE_AFTER {
                            return close(CloseCode::Policy, "flooding");
                        }
                        Answer::now(vec![ServerFrame::error(
                            ApiError::new(ErrorCode::InvalidJson, "binary frames are not supported; send JSON text"), None)])
                    }
                    Some(Ok(Incoming::Ping(bytes))) => {
                        if let Err(e) = conn.pong(&bytes).await { return gone(e); }
                        continue;
                    }
                    Some(Ok(Incoming::Pong)) => continue,
                    Some(Ok(Incoming::Close(_))) => return End::Close(None),
                    None => return End::Gone,
                    Some(Err(WsError::TooLarge(_))) => {
                        state.metrics.error(ErrorCode::FrameTooLarge);
                        return close(CloseCode::Size, "frame too large");
                    }
                    Some(Err(WsError::NotUtf8)) => return close(CloseCode::Invalid, "text must be UTF-8"),
                    Some(Err(WsError::Protocol(_))) => return End::Close(Some(CloseCode::Protocol.into())),
                    Some(Err(e)) => return gone(e),
                };
                pending.push_back(answer);
            }
            Some(answer) = pending.next(), if !pending.is_empty() => {
                output.spend(-answer.unused_output);
                for frame in answer.frames {
                    if let ServerFrame::Error { code, .. } = &frame { state.metrics.error(*code); }
                    conn.queue_text(&encode(&frame));
                }
                if let Err(e) = conn.flush().await { return gone(e); }
            }
            out = inbox.rx.recv() => {
                // Whatever else the hub has queued goes out in the same write.
                let mut next = out;
                for _ in 0..OUTBOUND_BATCH {
                    match next {
                        Some(Outbound::Frame(text)) => conn.queue_text(&text),
                        Some(Outbound::Close(closing)) => {
                            let (text, code, why) = *closing;
                            conn.queue_text(&text);
                            return close(CloseCode::Other(code), why);
                        }
                        // The hub dropped us: to catch up (its frame saying so did not fit in
                        // the queue), or too slow, or shutting down without a frame.
                        None => {
                            if let Some(since) = inbox.catch_up() {
                                conn.queue_text(&encode(&ServerFrame::CatchUp { since }));
                            }
                            return close(CloseCode::Again, "reconnect");
                        }
                    }
                    match inbox.rx.try_recv() {
                        Ok(more) => next = Some(more),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => next = None,
                    }
                }
                if let Err(e) = conn.flush().await { return gone(e); }
            },
            _ = tokio::time::sleep_until(paused.unwrap_or_else(Instant::now).into()), if paused.is_some() => {
                paused = None;
            }
            _ = tick.tick() => {
                if crate::policy::still_live(user, state.clock.now_ms()).is_err() {
                    let frame = ServerFrame::SessionRevoked { reason: "the session expired; log in again".into() };
                    conn.queue_text(&encode(&frame));
                    return close(CloseCode::Other(4001), "session expired");
                }
                if last_heard.elapsed() > idle {
                    return close(CloseCode::Away, "idle timeout");
                }
                if let Err(e) = conn.ping().await { return gone(e); }
            }
        }
    }
}

/// An error answer to a frame.
fn failed(e: ServerError) -> Vec<ServerFrame> {
    vec![ServerFrame::error(e.sanitized(), None)]
}

/// The answer to a frame that is answered only when it fails.
fn done(result: Result<()>) -> Answer {
    Answer { frames: result.err().map(failed).unwrap_or_default(), unused_output: 0.0 }
}

/// One client frame → the frames to answer with (on this connection), once ready. Writes are
/// queued here, in the order the frames came; what waits (a commit, a sync's output budget)
/// waits in the returned future, while the connection goes on reading and relaying.
fn handle<'a>(
    state: &'a web::Data<Relay>,
    user: &'a AuthUser,
    conn_id: u64,
    frame: ClientFrame,
    typing: &mut HashMap<ConversationId, Instant>,
    output: &mut Budget,
) -> LocalBoxFuture<'a, Answer> {
    if let Err(e) = crate::policy::still_live(user, state.clock.now_ms()) {
        return Answer::now(vec![ServerFrame::error(e.sanitized(), None)]);
    }
    match frame {
        ClientFrame::Hello { protocol } if protocol == PROTOCOL_VERSION => Answer::now(vec![]),
        ClientFrame::Hello { protocol } => Answer::now(failed(ServerError::api(
            ErrorCode::UnsupportedProtocol,
            format!("this server speaks protocol {PROTOCOL_VERSION}, not {protocol}"),
        ))),
        ClientFrame::Send { conversation, client_msg_id, envelope, blobs } => {
            let sent = service::send(
                state.clone(),
                user.clone(),
                conversation,
                client_msg_id,
                envelope,
                blobs,
                Some(conn_id),
            );
            async move {
                let frame = match sent.await {
                    Ok(m) => ServerFrame::Ack { client_msg_id, id: m.id, ts: m.ts },
                    Err(e) => ServerFrame::error(e.sanitized(), Some(client_msg_id)),
                };
                Answer { frames: vec![frame], unused_output: 0.0 }
            }
            .boxed_local()
        }
        ClientFrame::Sync { since } => {
            // Reserve a whole page now, so pipelined syncs cannot pass the budget together;
            // what the page did not use goes back when it is answered.
            let wait = output.until_available();
            let reserved = service::SYNC_PAGE_BYTES as f64;
            output.spend(reserved);
            async move {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                match service::sync(state, user, since).await {
                    Ok((messages, more)) => {
                        let used: f64 = messages.iter().map(|m| m.envelope.as_bytes().len() as f64).sum();
                        let up_to = messages.last().map_or(since, |m| m.id);
                        let mut frames: Vec<ServerFrame> =
                            messages.into_iter().map(|message| ServerFrame::Message { message }).collect();
                        frames.push(ServerFrame::Synced { up_to, more });
                        Answer { frames, unused_output: reserved - used }
                    }
                    Err(e) => Answer { frames: failed(e), unused_output: reserved },
                }
            }
            .boxed_local()
        }
        ClientFrame::Typing { conversation } => {
            let now = Instant::now();
            let recent = typing.get(&conversation).is_some_and(|t| now.duration_since(*t) < TYPING_GAP);
            if recent {
                return Answer::now(vec![]);
            }
            typing.insert(conversation, now);
            if typing.len() > 1000 {
                typing.retain(|_, t| now.duration_since(*t) < TYPING_GAP);
            }
            service::typing(state, user, conversation).map(done).boxed_local()
        }
        ClientFrame::Delivered { conversation, up_to } => {
            service::mark(state, user, conversation, up_to, false).map(done).boxed_local()
        }
        ClientFrame::Read { conversation, up_to } => {
            service::mark(state, user, conversation, up_to, true).map(done).boxed_local()
        }
        ClientFrame::GroupDelivered { conversation, up_to } => {
            service::mark_log(state, user, conversation, up_to, false).map(done).boxed_local()
        }
        ClientFrame::GroupRead { conversation, up_to } => {
            service::mark_log(state, user, conversation, up_to, true).map(done).boxed_local()
        }
        ClientFrame::GroupSend { conversation, device, client_msg_id, message } => {
            let req = sealroom_protocol::AppendRequest {
                device,
                client_msg_id,
                message,
                commit: None,
                blobs: Vec::new(),
            };
            let appended = crate::groups::append(state, user, conversation, req, Some(conn_id));
            async move {
                let frame = match appended.await {
                    Ok(a) => ServerFrame::GroupAck { client_msg_id, seq: a.seq, ts: a.ts },
                    Err(e) => ServerFrame::error(e.sanitized(), Some(client_msg_id)),
                };
                Answer { frames: vec![frame], unused_output: 0.0 }
            }
            .boxed_local()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget runs into debt and says how long until a frame may be read again; a client
    /// that waits that long is never refused anything.
    #[test]
    fn the_budget_paces_rather_than_refuses() {
        let mut budget = Budget::new(10.0, 100.0);
        for _ in 0..10 {
            budget.spend(1.0);
        }
        let wait = budget.until_available();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(11), "{wait:?}");
        std::thread::sleep(wait);
        assert_eq!(budget.until_available(), Duration::ZERO, "available again after the wait");
    }
}
