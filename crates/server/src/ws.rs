//! `GET /ws`: one WebSocket per tab or device.
//!
//! Authenticated at the handshake (Bearer token for native clients; the session cookie plus
//! an Origin check for browsers). One `select!` loop per connection over client frames, the
//! hub's outbound queue and a heartbeat tick. A bad frame gets an `error` frame and the
//! connection lives on; only abuse (a frame over the hard cap, a flood) closes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use sealroom_protocol::{
    parse_client_frame, ApiError, ClientFrame, ConversationId, ErrorCode, ServerFrame, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;

use crate::auth::{self, AuthUser};
use crate::error::{Result, ServerError};
use crate::hub::{encode, Outbound, Refused, QUEUE};
use crate::{now_ms, service, Relay};

/// How often the server pings.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Frames above this are refused with `frame_too_large` (the connection stays).
const SOFT_FRAME_LIMIT: usize = sealroom_protocol::MAX_FRAME_BYTES;
/// Frames above this close the connection (1009): the codec cannot skip them.
const HARD_FRAME_LIMIT: usize = 1 << 20;
/// Frame budget: a burst of this many, refilled at `FRAME_RATE` per second.
const FRAME_BURST: f64 = 1000.0;
const FRAME_RATE: f64 = 200.0;
/// Refused frames in a row (over the budget) before the connection is closed as a flood.
const FLOOD_CLOSE_AFTER: u32 = 500;
/// Minimum gap between relayed typing notices per peer.
const TYPING_GAP: Duration = Duration::from_millis(1500);

/// The WebSocket handshake.
pub async fn handshake(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<Relay>,
) -> Result<HttpResponse> {
    let token = if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        h.to_str().unwrap_or_default().strip_prefix("Bearer ").map(str::to_owned)
    } else if let Some(c) = req.cookie(auth::COOKIE) {
        auth::check_origin(&req, &state)?;
        Some(c.value().to_owned())
    } else {
        None
    };
    let token = token.ok_or_else(|| ServerError::api(ErrorCode::Unauthorized, "log in first"))?;
    let user = auth::authenticate(&state, &token).await?;
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|e| ServerError::api(ErrorCode::InvalidField, e.to_string()))?;
    let stream = stream
        .max_frame_size(HARD_FRAME_LIMIT)
        .aggregate_continuations()
        .max_continuation_size(HARD_FRAME_LIMIT);
    actix_web::rt::spawn(run(state, user, token, session, stream));
    Ok(response)
}

/// A token bucket: `burst` at most, refilled at `rate` per second.
struct Budget {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
    refused: u32,
    last_refused: Instant,
}

/// A frame accepted this long after the last refusal means the client paused when told to:
/// its refusals are forgiven. A flood is refused every few milliseconds and never gets there.
const CALM_AFTER: Duration = Duration::from_millis(250);

impl Budget {
    fn new(burst: f64, rate: f64) -> Self {
        let now = Instant::now();
        Budget { tokens: burst, burst, rate, at: now, refused: 0, last_refused: now }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    /// Takes one token; counts refusals until the client has calmed down (the bucket back
    /// above half full, or a frame accepted [`CALM_AFTER`] after the last refusal), so a flood
    /// just above the refill rate still adds up while a client that pauses on `rate_limited`
    /// and carries on at the refill rate is never closed (found by the soak run).
    fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if self.tokens > self.burst / 2.0 || self.last_refused.elapsed() >= CALM_AFTER {
                self.refused = 0;
            }
            true
        } else {
            self.refused += 1;
            self.last_refused = Instant::now();
            false
        }
    }

    /// Charges what was used, possibly going below zero, which the next refills pay back.
    fn spend(&mut self, amount: f64) {
        self.tokens -= amount;
    }

    /// How long until some is available again.
    fn until_available(&mut self) -> Duration {
        self.refill();
        if self.tokens > 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-self.tokens + 1.0) / self.rate)
        }
    }
}

/// Sync output per connection: a burst of this many bytes of messages, refilled at
/// `SYNC_BYTES_RATE` per second; past it, the next `sync` is answered only once the budget
/// has refilled (the connection waits; nothing is refused), so a stream of tiny `sync` frames
/// cannot make the relay produce output faster than that.
const SYNC_BYTES_BURST: f64 = 8.0 * 1024.0 * 1024.0;
const SYNC_BYTES_RATE: f64 = 2.0 * 1024.0 * 1024.0;

async fn run(
    state: web::Data<Relay>,
    user: AuthUser,
    token: String,
    mut session: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let (tx, mut rx) = mpsc::channel::<Outbound>(QUEUE);
    let (conn_id, first) = match state.fanout.register(user.id, &user.session_id, tx) {
        Ok(registered) => registered,
        Err(Refused::ShuttingDown) => {
            let _ = session
                .close(Some(CloseReason { code: CloseCode::Away, description: Some("shutting down".into()) }))
                .await;
            return;
        }
        Err(Refused::TooMany) => {
            state.metrics.error(ErrorCode::RateLimited);
            let max = state.config.max_connections_per_user;
            let refusal = ServerFrame::error(
                ApiError::new(
                    ErrorCode::RateLimited,
                    format!("at most {max} connections per user; close one first"),
                ),
                None,
            );
            let _ = session.text(encode(&refusal).to_string()).await;
            let _ = session
                .close(Some(CloseReason {
                    code: CloseCode::Policy,
                    description: Some("too many connections".into()),
                }))
                .await;
            return;
        }
    };
    // A logout, logout-everywhere or password change that ran while this handshake was in
    // flight revoked the session before this connection was registered, so its notice could
    // not reach it: look again now that it is. (Revocations write the store first, then
    // notify registered connections, so one of the two always sees the other.)
    if auth::authenticate(&state, &token).await.is_err() {
        let frame = ServerFrame::SessionRevoked { reason: "the session ended; log in again".into() };
        let _ = session.text(encode(&frame).to_string()).await;
        let _ = session
            .close(Some(CloseReason {
                code: CloseCode::Other(4001),
                description: Some("session revoked".into()),
            }))
            .await;
        state.fanout.unregister(user.id, conn_id);
        return;
    }
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
    let mut close: Option<CloseReason> = None;
    if session.text(encode(&hello).to_string()).await.is_ok() {
        close = serve(&state, &user, conn_id, &mut session, &mut stream, &mut rx).await;
    }
    let _ = session.close(close).await;
    state.metrics.connections(-1);
    tracing::info!(user = user.id.0, conn = conn_id, "websocket closed");
    if state.fanout.unregister(user.id, conn_id) {
        let _ = service::broadcast_presence(&state, user.id, &user.username, false).await;
    }
}

/// The connection's loop; returns how to close.
async fn serve(
    state: &Relay,
    user: &AuthUser,
    conn_id: u64,
    session: &mut actix_ws::Session,
    stream: &mut actix_ws::AggregatedMessageStream,
    rx: &mut mpsc::Receiver<Outbound>,
) -> Option<CloseReason> {
    let idle = Duration::from_secs(state.config.ws_idle_timeout);
    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut budget = Budget::new(FRAME_BURST, FRAME_RATE);
    let mut output = Budget::new(SYNC_BYTES_BURST, SYNC_BYTES_RATE);
    let mut typing: HashMap<ConversationId, Instant> = HashMap::new();
    let flooding = || Some(CloseReason { code: CloseCode::Policy, description: Some("flooding".into()) });
    loop {
        tokio::select! {
            msg = stream.recv() => {
                last_heard = Instant::now();
                let reply = match msg {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        // Every frame is charged, malformed or not: a flood of garbage is a flood.
                        let within = budget.take();
                        if budget.refused > FLOOD_CLOSE_AFTER {
                            return flooding();
                        }
                        if !within {
                            // Over budget: only a `send` is answered (its sender must learn to
                            // resend); anything else is dropped, so a flood earns no output.
                            match parse_client_frame(&text) {
                                Ok(ClientFrame::Send { client_msg_id, .. }) => vec![ServerFrame::error(
                                    ApiError::new(ErrorCode::RateLimited, "too many frames; slow down"), Some(client_msg_id))],
                                _ => vec![],
                            }
                        } else if text.len() > SOFT_FRAME_LIMIT {
                            vec![ServerFrame::error(ApiError::new(ErrorCode::FrameTooLarge,
                                format!("frames are limited to {SOFT_FRAME_LIMIT} bytes")), None)]
                        } else {
                            match parse_client_frame(&text) {
                                Err(e) => vec![ServerFrame::error(e, None)],
                                Ok(frame) => handle(state, user, conn_id, frame, &mut typing, &mut output).await,
                            }
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let within = budget.take();
                        if budget.refused > FLOOD_CLOSE_AFTER {
                            return flooding();
                        }
                        if within {
                            vec![ServerFrame::error(
                                ApiError::new(ErrorCode::InvalidJson, "binary frames are not supported; send JSON text"), None)]
                        } else {
                            vec![]
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() { return None; }
                        vec![]
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => vec![],
                    Some(Ok(AggregatedMessage::Close(_))) | None => return None,
                    Some(Err(actix_ws::ProtocolError::Overflow)) => {
                        state.metrics.error(ErrorCode::FrameTooLarge);
                        return Some(CloseReason { code: CloseCode::Size, description: Some("frame too large".into()) });
                    }
                    Some(Err(_)) => return Some(CloseReason { code: CloseCode::Protocol, description: None }),
                };
                for frame in reply {
                    if let ServerFrame::Error { code, .. } = &frame { state.metrics.error(*code); }
                    if session.text(encode(&frame).to_string()).await.is_err() { return None; }
                }
            }
            out = rx.recv() => match out {
                Some(Outbound::Frame(text)) => {
                    if session.text(text.to_string()).await.is_err() { return None; }
                }
                Some(Outbound::Close(text, code, why)) => {
                    let _ = session.text(text.to_string()).await;
                    return Some(CloseReason { code: CloseCode::Other(code), description: Some(why.into()) });
                }
                // The hub dropped us (too slow, or shutting down without a frame).
                None => return Some(CloseReason { code: CloseCode::Again, description: Some("reconnect".into()) }),
            },
            _ = tick.tick() => {
                if crate::policy::still_live(user, state.clock.now_ms()).is_err() {
                    let frame = ServerFrame::SessionRevoked { reason: "the session expired; log in again".into() };
                    let _ = session.text(encode(&frame).to_string()).await;
                    return Some(CloseReason { code: CloseCode::Other(4001), description: Some("session expired".into()) });
                }
                if last_heard.elapsed() > idle {
                    return Some(CloseReason { code: CloseCode::Away, description: Some("idle timeout".into()) });
                }
                if session.ping(b"").await.is_err() { return None; }
            }
        }
    }
}

/// One client frame → the frames to answer with (on this connection).
async fn handle(
    state: &Relay,
    user: &AuthUser,
    conn_id: u64,
    frame: ClientFrame,
    typing: &mut HashMap<ConversationId, Instant>,
    output: &mut Budget,
) -> Vec<ServerFrame> {
    if let Err(e) = crate::policy::still_live(user, state.clock.now_ms()) {
        return vec![ServerFrame::error(e.sanitized(), None)];
    }
    let result: Result<Vec<ServerFrame>> = match frame {
        ClientFrame::Hello { protocol } if protocol == PROTOCOL_VERSION => Ok(vec![]),
        ClientFrame::Hello { protocol } => Err(ServerError::api(
            ErrorCode::UnsupportedProtocol,
            format!("this server speaks protocol {PROTOCOL_VERSION}, not {protocol}"),
        )),
        ClientFrame::Send { conversation, client_msg_id, envelope, blobs } => {
            match service::send(state, user, conversation, client_msg_id, envelope, blobs, Some(conn_id))
                .await
            {
                Ok(m) => Ok(vec![ServerFrame::Ack { client_msg_id, id: m.id, ts: m.ts }]),
                Err(e) => return vec![ServerFrame::error(e.sanitized(), Some(client_msg_id))],
            }
        }
        ClientFrame::Sync { since } => {
            let wait = output.until_available();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            service::sync(state, user, since).await.map(|(messages, more)| {
                output.spend(messages.iter().map(|m| m.envelope.as_bytes().len() as f64).sum());
                let up_to = messages.last().map_or(since, |m| m.id);
                let mut frames: Vec<ServerFrame> =
                    messages.into_iter().map(|message| ServerFrame::Message { message }).collect();
                frames.push(ServerFrame::Synced { up_to, more });
                frames
            })
        }
        ClientFrame::Typing { conversation } => {
            let now = Instant::now();
            let recent = typing.get(&conversation).is_some_and(|t| now.duration_since(*t) < TYPING_GAP);
            if recent {
                Ok(vec![])
            } else {
                typing.insert(conversation, now);
                if typing.len() > 1000 {
                    typing.retain(|_, t| now.duration_since(*t) < TYPING_GAP);
                }
                service::typing(state, user, conversation).await.map(|()| vec![])
            }
        }
        ClientFrame::Delivered { conversation, up_to } => {
            service::mark(state, user, conversation, up_to, false).await.map(|()| vec![])
        }
        ClientFrame::Read { conversation, up_to } => {
            service::mark(state, user, conversation, up_to, true).await.map(|()| vec![])
        }
    };
    result.unwrap_or_else(|e| vec![ServerFrame::error(e.sanitized(), None)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the soak: a client that pauses when told and carries on at the refill rate
    /// used to pile up refusals until it was closed; now its refusals are forgiven, while a
    /// flood's still add up.
    #[test]
    fn refusals_are_forgiven_after_a_pause_but_a_flood_adds_up() {
        let mut polite = Budget::new(100.0, 20.0);
        for _ in 0..3 {
            while polite.take() {}
            assert!(polite.refused > 0);
            std::thread::sleep(CALM_AFTER + Duration::from_millis(20));
            assert!(polite.take());
            assert_eq!(polite.refused, 0, "a pause forgives");
        }
        let mut flood = Budget::new(100.0, 20.0);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(600) {
            flood.take();
        }
        assert!(flood.refused > 1000, "a flood's refusals add up: {}", flood.refused);
    }
}
