//! A WebSocket connection to the relay, authenticated with the session's Bearer token.

use futures_util::{SinkExt, StreamExt};
use sealroom_protocol::{ClientFrame, ClientMsgId, ConversationId, Envelope, MessageId, ServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{ClientError, Result};

/// One live WebSocket. The first frame (`hello`) has been read when `open` returns.
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `hello` the relay greeted with.
    pub hello: ServerFrame,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("hello", &self.hello).finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `<base>/ws` with a Bearer token and reads the hello.
    pub async fn open(base: &url::Url, token: &str) -> Result<Self> {
        let mut url =
            base.join(sealroom_protocol::endpoint::WS_PATH).map_err(|e| ClientError::Usage(e.to_string()))?;
        let scheme = if base.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| ClientError::Usage("bad server URL".into()))?;
        Self::open_url(url.as_str(), Some(token)).await
    }

    /// Connects to a WebSocket URL, optionally with a Bearer token (tests use it without one).
    pub async fn open_url(url: &str, token: Option<&str>) -> Result<Self> {
        let mut req = url.into_client_request().map_err(|e| ClientError::WebSocket(e.to_string()))?;
        if let Some(t) = token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| ClientError::Usage("token is not a header value".into()))?;
            req.headers_mut().insert("Authorization", value);
        }
        let mut config = WebSocketConfig::default();
        config.read_buffer_size = 16 * 1024;
        config.write_buffer_size = 16 * 1024;
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), false).await.map_err(
            |e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => {
                    let body = resp
                        .body()
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    match serde_json::from_str::<sealroom_protocol::ApiError>(&body) {
                        Ok(api) => ClientError::Api(api),
                        Err(_) => ClientError::WebSocket(format!("HTTP {}", resp.status())),
                    }
                }
                other => ClientError::WebSocket(other.to_string()),
            },
        )?;
        let mut conn = Connection { ws, hello: ServerFrame::Synced { up_to: MessageId(0), more: false } };
        conn.hello = conn.next().await?;
        match &conn.hello {
            ServerFrame::Hello { .. } => {}
            // Refused after the handshake (too many connections, a revoked session): say why.
            ServerFrame::Error { code, message, .. } => {
                return Err(ClientError::Api(sealroom_protocol::ApiError::new(*code, message.clone())))
            }
            ServerFrame::SessionRevoked { reason } => {
                return Err(ClientError::Api(sealroom_protocol::ApiError::new(
                    sealroom_protocol::ErrorCode::Unauthorized,
                    reason.clone(),
                )))
            }
            _ => return Err(ClientError::Protocol("the relay did not say hello".into())),
        }
        Ok(conn)
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        let text = serde_json::to_string(frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.send_raw(text).await
    }

    /// Sends raw text (tests use it for malformed frames).
    pub async fn send_raw(&mut self, text: String) -> Result<()> {
        self.ws.send(WsMessage::Text(text.into())).await.map_err(|e| ClientError::WebSocket(e.to_string()))
    }

    /// The next frame from the relay. A closed connection is an error.
    pub async fn next(&mut self) -> Result<ServerFrame> {
        loop {
            match self.ws.next().await {
                Some(Ok(WsMessage::Text(t))) => {
                    return serde_json::from_str(&t)
                        .map_err(|e| ClientError::Protocol(format!("bad frame: {e}")))
                }
                Some(Ok(WsMessage::Close(c))) => {
                    return Err(ClientError::WebSocket(format!(
                        "closed by the relay{}",
                        c.map(|c| format!(" ({}: {})", u16::from(c.code), c.reason)).unwrap_or_default()
                    )))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::WebSocket(e.to_string())),
                None => return Err(ClientError::WebSocket("connection closed".into())),
            }
        }
    }

    /// The next frame, or `Timeout`.
    pub async fn next_within(&mut self, within: std::time::Duration) -> Result<ServerFrame> {
        tokio::time::timeout(within, self.next()).await.map_err(|_| ClientError::Timeout)?
    }

    /// Sends a message and waits for its `ack` (or its error), skipping other frames. When the
    /// relay says `rate_limited`, backs off and resends: the same client_msg_id makes a resend
    /// safe (it is stored once).
    pub async fn send_and_wait(
        &mut self,
        conversation: ConversationId,
        client_msg_id: ClientMsgId,
        envelope: Envelope,
    ) -> Result<MessageId> {
        self.send_with_blobs_and_wait(conversation, client_msg_id, envelope, Vec::new()).await
    }

    /// [`Connection::send_and_wait`] for a message that references uploaded blobs.
    pub async fn send_with_blobs_and_wait(
        &mut self,
        conversation: ConversationId,
        client_msg_id: ClientMsgId,
        envelope: Envelope,
        blobs: Vec<sealroom_protocol::BlobId>,
    ) -> Result<MessageId> {
        let frame = ClientFrame::Send { conversation, client_msg_id, envelope, blobs };
        for attempt in 0u32..8 {
            self.send(&frame).await?;
            loop {
                match self.next_within(std::time::Duration::from_secs(30)).await? {
                    ServerFrame::Ack { client_msg_id: id, id: mid, .. } if id == client_msg_id => {
                        return Ok(mid)
                    }
                    ServerFrame::Error {
                        code: sealroom_protocol::ErrorCode::RateLimited,
                        client_msg_id: Some(id),
                        ..
                    } if id == client_msg_id => {
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
                        break;
                    }
                    ServerFrame::Error { code, message, client_msg_id: Some(id) } if id == client_msg_id => {
                        return Err(ClientError::Api(sealroom_protocol::ApiError::new(code, message)))
                    }
                    _ => continue,
                }
            }
        }
        Err(ClientError::Api(sealroom_protocol::ApiError::new(
            sealroom_protocol::ErrorCode::RateLimited,
            "the relay kept refusing: too many messages",
        )))
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
