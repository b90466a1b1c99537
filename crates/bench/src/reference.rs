//! The minimal reference relay: the least a relay that stores opaque messages durably must do,
//! written plainly, to measure Sealroom against on the same machine in the same session.
//!
//! It speaks Sealroom's WebSocket frames (`send` → `ack`, `message` to the peer), parsed and
//! written by the same protocol crate, without accounts: `GET /ws?user=N` is user N, and
//! conversation P is the pair of users 2P and 2P+1. Every `send` is appended to SQLite (WAL,
//! `synchronous = FULL`) by one writer thread that takes every send waiting, stores them in one
//! transaction, commits (one fsync) and only then acks and forwards them: Sealroom's
//! durability, nothing more.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Binary};
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use futures_util::{SinkExt, StreamExt};
use sealroom_protocol::{
    parse_client_frame, ClientFrame, ClientMsgId, ConversationId, Envelope, MessageId, MessageOut,
    ServerFrame, Username,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<HashMap<i64, UnboundedSender<Arc<str>>>>>;

struct Send {
    from: i64,
    conversation: ConversationId,
    client_msg_id: ClientMsgId,
    envelope: Envelope,
}

/// The name of user `n` on the wire.
pub fn username(n: i64) -> Username {
    Username::parse(&format!("user{n}")).expect("a valid name")
}

/// Opens (and creates) the reference's SQLite file `db`, schema included: done before the
/// reference says it listens, so a client that counts rows at once finds the table.
pub fn open(db: &str) -> anyhow::Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(db)?;
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, conversation INTEGER NOT NULL,
           sender INTEGER NOT NULL, client_msg_id BLOB NOT NULL, envelope BLOB NOT NULL, created_at INTEGER NOT NULL,
           UNIQUE (sender, client_msg_id));",
    )?;
    Ok(conn)
}

/// Serves on `listener` until the process ends, storing through `conn` (from [`open`]).
pub async fn serve(listener: TcpListener, conn: SqliteConnection) -> anyhow::Result<()> {
    let peers: Peers = Arc::default();
    let (queue, sends) = mpsc::channel::<Send>();
    let writer_peers = peers.clone();
    std::thread::spawn(move || write_batches(conn, &sends, &writer_peers));
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (peers, queue) = (peers.clone(), queue.clone());
        tokio::spawn(async move {
            let mut user = None;
            // The callback's signature (and its large error type) is tungstenite's.
            #[allow(clippy::result_large_err)]
            let pick_user = |req: &Request, resp: Response| {
                user = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("user="))
                    .and_then(|n| n.parse::<i64>().ok());
                Ok(resp)
            };
            let mut config = WebSocketConfig::default();
            config.read_buffer_size = 4096;
            config.write_buffer_size = 0;
            let Ok(ws) =
                tokio_tungstenite::accept_hdr_async_with_config(stream, pick_user, Some(config)).await
            else {
                return;
            };
            let Some(user) = user else { return };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = unbounded_channel::<Arc<str>>();
            let hello = ServerFrame::Hello {
                protocol: sealroom_protocol::PROTOCOL_VERSION,
                user: username(user),
                session_id: String::new(),
                server_time: 0,
            };
            let _ = tx.send(Arc::from(serde_json::to_string(&hello).unwrap_or_default()));
            peers.lock().unwrap_or_else(|p| p.into_inner()).insert(user, tx);
            let writing = tokio::spawn(async move {
                while let Some(text) = rx.recv().await {
                    if sink.send(Message::Text(text.as_ref().into())).await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                if let Ok(ClientFrame::Send { conversation, client_msg_id, envelope, .. }) =
                    parse_client_frame(&text)
                {
                    if queue.send(Send { from: user, conversation, client_msg_id, envelope }).is_err() {
                        break;
                    }
                }
            }
            peers.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
            writing.abort();
        });
    }
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The writer: every waiting send in one transaction, then acks and forwards.
fn write_batches(mut conn: SqliteConnection, sends: &mpsc::Receiver<Send>, peers: &Peers) {
    while let Ok(first) = sends.recv() {
        let mut batch = vec![first];
        batch.extend(sends.try_iter().take(1023));
        let now = sealroom_client::now_ms();
        let stored: Result<Vec<i64>, diesel::result::Error> = conn.immediate_transaction(|conn| {
            batch
                .iter()
                .map(|s| {
                    diesel::sql_query(
                        "INSERT INTO messages (conversation, sender, client_msg_id, envelope, created_at)
                         VALUES (?, ?, ?, ?, ?) RETURNING id",
                    )
                    .bind::<BigInt, _>(s.conversation.0)
                    .bind::<BigInt, _>(s.from)
                    .bind::<Binary, _>(&s.client_msg_id.0[..])
                    .bind::<Binary, _>(s.envelope.as_bytes())
                    .bind::<BigInt, _>(now)
                    .get_result::<Id>(conn)
                    .map(|r| r.id)
                })
                .collect()
        });
        let Ok(ids) = stored else {
            eprintln!("reference relay: a commit failed; nothing of it was acked");
            continue;
        };
        let peers = peers.lock().unwrap_or_else(|p| p.into_inner());
        for (s, id) in batch.into_iter().zip(ids) {
            let to = s.conversation.0 * 2 + (1 - s.from % 2);
            let ack = ServerFrame::Ack { client_msg_id: s.client_msg_id, id: MessageId(id), ts: now };
            if let Some(tx) = peers.get(&s.from) {
                let _ = tx.send(Arc::from(serde_json::to_string(&ack).unwrap_or_default()));
            }
            let message = ServerFrame::Message {
                message: MessageOut {
                    id: MessageId(id),
                    conversation: s.conversation,
                    from: username(s.from),
                    to: username(to),
                    client_msg_id: s.client_msg_id,
                    envelope: s.envelope,
                    ts: now,
                },
            };
            if let Some(tx) = peers.get(&to) {
                let _ = tx.send(Arc::from(serde_json::to_string(&message).unwrap_or_default()));
            }
        }
    }
}
