//! The hub: who is connected, and fan-out of frames to their live connections.
//!
//! Actor-less: a map behind a mutex, held only for map operations (never across an await).
//! Each connection has a bounded outbound queue; a client too slow to drain it is dropped (it
//! reconnects and syncs, losing nothing, since every message is stored before it is relayed).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use sealroom_protocol::{ServerFrame, UserId};
use tokio::sync::mpsc;

/// Outbound queue length per connection.
pub const QUEUE: usize = 512;

/// Something for a connection's writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A serialized frame.
    Frame(Arc<str>),
    /// Send this frame, then close with the given close code and reason. (Boxed: every
    /// connection's queue holds a block of 32 of these from the start, sized by the largest.)
    Close(Box<(Arc<str>, u16, &'static str)>),
}

/// How the hub reaches one connection: its queue, and where its client is to catch up from
/// when the hub drops it for that ([`Hub::catch_up_all`]). The second is kept apart from the
/// queue so that it reaches the client even when the queue is too full for one more frame:
/// the connection's writer says it once the queue runs dry ([`Mailbox::open`]).
#[derive(Debug, Clone)]
pub struct Mailbox {
    tx: mpsc::Sender<Outbound>,
    catch_up: Arc<AtomicI64>,
}

/// No catch-up asked for.
const NO_CATCH_UP: i64 = i64::MAX;

impl Mailbox {
    /// A connection's mailbox (for the hub) and its receiving end (for its writer), with room
    /// for `queue` frames.
    pub fn open(queue: usize) -> (Mailbox, Inbox) {
        let (tx, rx) = mpsc::channel(queue);
        let catch_up = Arc::new(AtomicI64::new(NO_CATCH_UP));
        (Mailbox { tx, catch_up: catch_up.clone() }, Inbox { rx, catch_up })
    }
}

/// What a connection's writer reads: frames, then (once the hub let go) whether to tell the
/// client to catch up.
#[derive(Debug)]
pub struct Inbox {
    /// The frames, in order; closed when the hub drops the connection.
    pub rx: mpsc::Receiver<Outbound>,
    catch_up: Arc<AtomicI64>,
}

impl Inbox {
    /// Where the client is to catch up from, if the hub dropped the connection for that.
    pub fn catch_up(&self) -> Option<sealroom_protocol::MessageId> {
        let since = self.catch_up.load(Ordering::SeqCst);
        (since != NO_CATCH_UP).then_some(sealroom_protocol::MessageId(since))
    }
}

#[derive(Debug)]
struct Conn {
    id: u64,
    session_id: String,
    mailbox: Mailbox,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserId, Vec<Conn>>,
    next_id: u64,
    closing: bool,
}

/// Live connections by user.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    /// Connections one user may hold at once.
    max_per_user: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(DEFAULT_MAX_CONNECTIONS_PER_USER)
    }
}

/// Connections per user unless configured (`--max-connections-per-user`).
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 32;
/// Connections in all unless configured (`--max-connections`) or the descriptor limit is lower.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

/// The WebSockets this node holds, against `--max-connections`: each is a file descriptor,
/// which the limit raised at start must cover ([`crate::limits`]).
#[derive(Debug)]
pub struct Slots {
    live: Arc<std::sync::atomic::AtomicUsize>,
    max: usize,
}

/// One held slot, given back when dropped (however the connection ends).
#[derive(Debug)]
pub struct Slot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Slots {
    /// Room for `max` connections.
    pub fn new(max: usize) -> Self {
        Slots { live: Arc::default(), max }
    }

    /// A slot, unless all `max` are held.
    pub fn take(&self) -> Option<Slot> {
        use std::sync::atomic::Ordering;
        self.live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Slot(self.live.clone()))
    }

    /// The most connections held at once.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Why a connection was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The relay is shutting down.
    ShuttingDown,
    /// The user already holds the most connections allowed.
    TooMany,
    /// The node cannot fan out right now (it lost NATS): the client should retry shortly.
    Unavailable,
}

/// Serializes a frame once for any number of recipients.
pub fn encode(frame: &ServerFrame) -> Arc<str> {
    // Serializing our own enum of strings, integers and byte newtypes cannot fail.
    Arc::from(
        serde_json::to_string(frame).unwrap_or_else(|_| {
            String::from(r#"{"type":"error","code":"internal","message":"internal error"}"#)
        }),
    )
}

/// How the relay reaches live connections: register and drop them, deliver frames to a user's
/// connections, revoke sessions, and answer who is online. The in-process [`Hub`] is the one
/// implementation on a single node; a broker-backed one serves several nodes.
pub trait Fanout: Send + Sync + std::fmt::Debug {
    /// Adds a connection; its id and whether the user just came online. Refused while closing
    /// and past the per-user cap.
    fn register(&self, user: UserId, session_id: &str, mailbox: Mailbox) -> Result<(u64, bool), Refused>;
    /// Removes a connection; whether the user now has none.
    fn unregister(&self, user: UserId, conn: u64) -> bool;
    /// Whether the user has a live connection (presence is asked of the fanout).
    fn is_online(&self, user: UserId) -> bool;
    /// Delivers `frame` to every connection of `user` except `except`.
    fn send_to_user(&self, user: UserId, frame: &Arc<str>, except: Option<u64>);
    /// Tells these sessions' connections they were revoked, and closes them.
    fn revoke_sessions(&self, user: UserId, session_ids: &[String], reason: &str);
    /// The same for this node's connections only: for sessions ended by `sealroom admin`,
    /// which every node reads for itself ([`crate::admin::watch_kicks`]).
    fn revoke_here(&self, user: UserId, session_ids: &[String], reason: &str) {
        self.revoke_sessions(user, session_ids, reason)
    }
    /// Shutdown: refuses new connections and asks every open one to reconnect later.
    fn close_all(&self);
    /// Open connections.
    fn connection_count(&self) -> usize;
    /// Whether the message bus between nodes is up; `None` on a single node, which has none.
    fn bus_connected(&self) -> Option<bool> {
        None
    }
    /// Times this node dropped its connections so that they catch up (a bus outage or gap).
    fn resyncs(&self) -> u64 {
        0
    }
    /// Users whose every connection was on another node that died or shut down, for this
    /// node to announce offline to their peers (taken once, by the relay at start). `None` on
    /// a single relay, where a user's last connection closing says so.
    fn take_departures(&self) -> Option<mpsc::UnboundedReceiver<UserId>> {
        None
    }
}

impl Fanout for Hub {
    fn register(&self, user: UserId, session_id: &str, mailbox: Mailbox) -> Result<(u64, bool), Refused> {
        Hub::register(self, user, session_id, mailbox)
    }
    fn unregister(&self, user: UserId, conn: u64) -> bool {
        Hub::unregister(self, user, conn)
    }
    fn is_online(&self, user: UserId) -> bool {
        Hub::is_online(self, user)
    }
    fn send_to_user(&self, user: UserId, frame: &Arc<str>, except: Option<u64>) {
        Hub::send_to_user(self, user, frame, except)
    }
    fn revoke_sessions(&self, user: UserId, session_ids: &[String], reason: &str) {
        Hub::revoke_sessions(self, user, session_ids, reason)
    }
    fn close_all(&self) {
        Hub::close_all(self)
    }
    fn connection_count(&self) -> usize {
        Hub::connection_count(self)
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation
        // is a single insert/remove), so recover from poisoning rather than fail every call.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A hub allowing `max_per_user` connections per user.
    pub fn new(max_per_user: usize) -> Self {
        Hub { inner: Mutex::default(), max_per_user }
    }

    /// Adds a connection; returns its id and whether the user just came online. Refused while
    /// the server is shutting down, or when the user holds `max_per_user` connections already
    /// (checked and added under one lock, so parallel handshakes cannot pass it together).
    pub fn register(&self, user: UserId, session_id: &str, mailbox: Mailbox) -> Result<(u64, bool), Refused> {
        let mut inner = self.lock();
        if inner.closing {
            return Err(Refused::ShuttingDown);
        }
        if inner.users.get(&user).is_some_and(|c| c.len() >= self.max_per_user) {
            return Err(Refused::TooMany);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let conns = inner.users.entry(user).or_default();
        let first = conns.is_empty();
        conns.push(Conn { id, session_id: session_id.to_owned(), mailbox });
        Ok((id, first))
    }

    /// Removes a connection; returns whether the user now has no connection at all (also when
    /// the hub had already dropped this one).
    pub fn unregister(&self, user: UserId, conn: u64) -> bool {
        let mut inner = self.lock();
        let Some(conns) = inner.users.get_mut(&user) else { return true };
        conns.retain(|c| c.id != conn);
        if conns.is_empty() {
            inner.users.remove(&user);
            return true;
        }
        false
    }

    /// Whether the user has a live connection.
    pub fn is_online(&self, user: UserId) -> bool {
        self.lock().users.get(&user).is_some_and(|c| !c.is_empty())
    }

    /// Sends to every connection of `user` except `except`. A full queue drops that connection.
    pub fn send_to_user(&self, user: UserId, frame: &Arc<str>, except: Option<u64>) {
        let mut inner = self.lock();
        let Some(conns) = inner.users.get_mut(&user) else { return };
        conns.retain(|c| {
            if Some(c.id) == except {
                return true;
            }
            match c.mailbox.tx.try_send(Outbound::Frame(frame.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(user = user.0, conn = c.id, "dropping a connection that does not keep up");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Sends `session_revoked` to every connection of these sessions, then closes them.
    pub fn revoke_sessions(&self, user: UserId, session_ids: &[String], reason: &str) {
        let frame = encode(&ServerFrame::SessionRevoked { reason: reason.to_owned() });
        let mut inner = self.lock();
        let Some(conns) = inner.users.get_mut(&user) else { return };
        conns.retain(|c| {
            if session_ids.contains(&c.session_id) {
                let _ = c.mailbox.tx.try_send(Outbound::Close(Box::new((
                    frame.clone(),
                    4001,
                    "session revoked",
                ))));
                false
            } else {
                true
            }
        });
        if conns.is_empty() {
            inner.users.remove(&user);
        }
    }

    /// Shutdown: refuses new connections and tells every open one to go away (1001), so
    /// clients reconnect (to this server once it is back, or another).
    pub fn close_all(&self) {
        let mut inner = self.lock();
        inner.closing = true;
        let frame = encode(&ServerFrame::Error {
            code: sealroom_protocol::ErrorCode::Internal,
            message: "server shutting down; reconnect shortly".into(),
            client_msg_id: None,
        });
        for conns in inner.users.values() {
            for c in conns {
                let _ = c.mailbox.tx.try_send(Outbound::Close(Box::new((
                    frame.clone(),
                    1001,
                    "server shutting down",
                ))));
            }
        }
        inner.users.clear();
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.lock().users.values().map(Vec::len).sum()
    }

    /// The users with a connection here.
    pub fn users(&self) -> Vec<UserId> {
        self.lock().users.keys().copied().collect()
    }

    /// Tells every connection to sync from `since` when it is back ([`ServerFrame::CatchUp`])
    /// and closes it (1013, "catch up"); returns how many there were.
    pub fn catch_up_all(&self, since: sealroom_protocol::MessageId) -> usize {
        let frame = encode(&ServerFrame::CatchUp { since });
        let mut inner = self.lock();
        let mut n = 0;
        for conns in inner.users.values() {
            for c in conns {
                n += 1;
                // Said in the queue when there is room; else by the connection's writer once
                // it has sent what is queued (the hub lets go of the queue here).
                c.mailbox.catch_up.fetch_min(since.0, Ordering::SeqCst);
                let _ = c.mailbox.tx.try_send(Outbound::Close(Box::new((frame.clone(), 1013, "catch up"))));
            }
        }
        inner.users.clear();
        n
    }
}
