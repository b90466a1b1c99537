//! Fan-out between relay nodes over NATS (`--nats-url`): each node holds its own live
//! connections in a [`Hub`] and tells the others, through one NATS subject, what their
//! connections must hear.
//!
//! **The database stays the record; NATS only says "look now".** A node commits a message
//! (or receipt, clear, …) and only then publishes it, so a lost NATS notification can cost
//! latency but never a message: whenever a node may have missed one, it drops its own live
//! connections (close 1013, "reconnect"), and every client reconnects (to it or another node)
//! and catches up from the database, after the last message id it has, which the database
//! assigns strictly increasing in commit order (docs/ARCHITECTURE.md, "Storage"). A node may
//! have missed one when:
//!
//! - its NATS connection dropped and came back (what was published meanwhile is gone: NATS core
//!   keeps nothing);
//! - NATS dropped messages for it (a slow consumer);
//! - another node's events arrive with a gap in that node's sequence (a publish it could not
//!   make, or one lost on the way);
//! - another node went silent for [`NODE_TIMEOUT`] without saying goodbye: it died, perhaps
//!   between committing a message and publishing it.
//!
//! No frame reaches a connection twice: the node where an event starts delivers it to its own
//! connections and publishes it; the others (`no_echo`: never the publisher) deliver it to
//! theirs, and each connection lives on exactly one node.
//!
//! **Presence across nodes.** Each node publishes when a user's first connection on it opens
//! and their last one closes, and every [`HEARTBEAT`] the whole set of users it holds, so a
//! node that starts (or comes back) learns who is online elsewhere within one heartbeat, and a
//! node that dies is forgotten after [`NODE_TIMEOUT`]. A user is online if any node holds one
//! of their connections; "came online" and "went offline" are announced when the first
//! connection anywhere opens and the last one anywhere closes.
//!
//! **While NATS is unreachable** the node says so in `/healthz` and refuses new WebSocket
//! connections (`unavailable`), which clients retry; NATS's client reconnects by itself, and
//! the node then drops its connections so that they catch up.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use sealroom_protocol::{MessageId, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::hub::{Fanout, Hub, Mailbox, Refused};

/// The one subject every node publishes on and listens to.
pub const SUBJECT: &str = "sealroom.fanout";
/// How often a node says whom it holds.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is gone: its users count as offline there, and every
/// other node makes its connections catch up (it may have committed messages it never
/// published).
pub const NODE_TIMEOUT: Duration = Duration::from_secs(4);
/// How far before trouble began the connections are told to sync from: events are relayed
/// within milliseconds, so what was committed this long before was certainly passed on.
pub const MARGIN: Duration = Duration::from_secs(5);
/// How long a publish may wait for NATS before it is given up.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);
/// How long the samples of the newest message id are kept.
const SAMPLES: Duration = Duration::from_secs(120);

/// Reads the newest message id from the database (on a blocking thread).
pub type NewestId = Box<dyn Fn() -> Option<i64> + Send + Sync>;

/// Events waiting to be published; past it, events are dropped and the other nodes see the gap
/// in this node's sequence (and catch up).
const OUTBOX: usize = 65_536;

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Event {
    /// Deliver the frame that follows the header to every connection of `user`.
    Deliver { user: i64 },
    /// End these sessions' connections with `session_revoked` (logout, logout everywhere,
    /// password change, single-session sign-in).
    Revoke { user: i64, sessions: Vec<String>, reason: String },
    /// `user`'s first connection on the node opened (`online`), or their last one closed.
    Presence { user: i64, online: bool },
    /// Every user the node holds a connection of.
    Heartbeat { online: Vec<i64> },
    /// The node is shutting down cleanly, having published all it committed: forget it.
    Goodbye,
}

/// An event's header: who sent it, its place in that node's sequence, and when that node
/// queued it (ms since the Unix epoch, by its clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    node: u64,
    seq: u64,
    /// What the message behind a lost event was committed before (give or take the time
    /// between a commit and its relaying): a gap is caught up from before the last event
    /// heard in order was queued, not from when the gap is noticed, which may be much later
    /// when the sender's events waited out a NATS outage in its queue.
    #[serde(default)]
    at: i64,
    #[serde(flatten)]
    event: Event,
}

/// A NATS message: the JSON header, a newline, and for `deliver` the frame as it goes to the
/// client (kept as it is: no second encoding of a large envelope).
fn encode(header: &Header, frame: Option<&str>) -> Bytes {
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.push(b'\n');
    if let Some(frame) = frame {
        out.extend_from_slice(frame.as_bytes());
    }
    Bytes::from(out)
}

fn decode(payload: &[u8]) -> Option<(Header, &str)> {
    let split = payload.iter().position(|b| *b == b'\n')?;
    let header = serde_json::from_slice(&payload[..split]).ok()?;
    let frame = std::str::from_utf8(&payload[split + 1..]).ok()?;
    Some((header, frame))
}

/// What this node knows of the others.
#[derive(Debug, Default)]
struct Others {
    /// Per node: when it was last heard from, the last sequence number seen, its users.
    nodes: HashMap<u64, Node>,
}

#[derive(Debug)]
struct Node {
    seen: Instant,
    /// When the last event in order was queued: the earlier of its `at` and when it arrived
    /// here (ms), so that a sender's clock ahead of ours never moves a catch-up later.
    last: i64,
    seq: u64,
    online: HashSet<UserId>,
}

impl Others {
    fn online(&self, user: UserId) -> bool {
        self.nodes.values().any(|n| n.seen.elapsed() < NODE_TIMEOUT && n.online.contains(&user))
    }
}

/// The [`Fanout`] of a node among several.
#[derive(Debug)]
pub struct NatsFanout {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    node: u64,
    hub: Hub,
    others: Mutex<Others>,
    /// Whether the NATS connection is up (and this node's subscription with it).
    connected: AtomicBool,
    /// Whether the subscription was made once (NATS's client remakes it on every reconnect).
    subscribed: AtomicBool,
    /// The next sequence number, and the queue to the publisher (in sequence order).
    outbox: Mutex<(u64, mpsc::Sender<Bytes>)>,
    /// Gaps seen, NATS reconnects and slow-consumer drops: times this node made its
    /// connections catch up.
    resyncs: std::sync::atomic::AtomicU64,
    /// The newest message id, sampled every [`HEARTBEAT`] (stamped in ms since the epoch):
    /// where a catch-up starts.
    samples: Mutex<VecDeque<(i64, i64)>>,
    /// When the NATS connection was lost (ms since the epoch; until it is back).
    lost_at: Mutex<Option<i64>>,
    /// Users left offline everywhere by a node that went away ([`Fanout::take_departures`]).
    departures: mpsc::UnboundedSender<UserId>,
    /// Its receiving end, until the relay takes it.
    departed: Mutex<Option<mpsc::UnboundedReceiver<UserId>>>,
}

impl Shared {
    fn others(&self) -> std::sync::MutexGuard<'_, Others> {
        self.others.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event for the other nodes, numbered in the order queued. A full queue drops
    /// it, and the number with it: the others see the gap.
    fn publish(&self, event: Event, frame: Option<&str>) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        outbox.0 += 1;
        let header = Header { node: self.node, seq: outbox.0, at: crate::now_ms(), event };
        if outbox.1.try_send(encode(&header, frame)).is_err() {
            tracing::warn!("the NATS outbox is full: an event is dropped, and the other nodes will catch up");
        }
    }

    /// The newest message id committed before `at`, as sampled (each sample is stamped once
    /// its read has returned, so everything committed after the stamp has a higher id); 0 when
    /// there is no sample that old (a node younger than the trouble: sync everything).
    fn floor(&self, at: i64) -> MessageId {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let before = samples.iter().rev().find(|(when, _)| *when <= at);
        MessageId(before.map_or(0, |(_, id)| *id))
    }

    /// Tells every connection this node holds to sync from before `trouble` began (ms since
    /// the epoch), and closes them: each reconnects (to this node or another) and catches up
    /// from the database.
    fn resync(&self, why: &str, trouble: i64) {
        let since = self.floor(trouble - MARGIN.as_millis() as i64);
        let dropped = self.hub.catch_up_all(since);
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            connections = dropped,
            since = since.0,
            trouble_ms_ago = crate::now_ms() - trouble,
            why,
            "dropping this node's connections so that they catch up"
        );
    }

    /// Another node went away (silent, or said goodbye) holding connections of `held`: those
    /// of them now connected nowhere are announced offline to their peers. By one node only,
    /// the lowest-numbered of those left, so that peers hear it once.
    fn departed(&self, held: HashSet<UserId>) {
        let users: Vec<UserId> = {
            let others = self.others();
            if held.is_empty() || others.nodes.keys().any(|n| *n < self.node) {
                return;
            }
            held.into_iter().filter(|u| !others.online(*u)).collect()
        };
        for user in users {
            if !self.hub.is_online(user) {
                let _ = self.departures.send(user);
            }
        }
    }

    fn local_users(&self) -> Vec<i64> {
        self.hub.users().into_iter().map(|u| u.0).collect()
    }

    /// Applies an event from another node.
    fn receive(&self, header: Header, frame: &str) {
        if header.node == self.node {
            return; // `no_echo` keeps our own away; this is a node with our id.
        }
        let now = crate::now_ms();
        // An event from a node without a clock stamp (an older version) counts as queued now.
        let queued = if header.at > 0 { header.at.min(now) } else { now };
        let (gap, last_in_order, gone) = {
            let mut others = self.others();
            let node = others.nodes.entry(header.node).or_insert_with(|| Node {
                seen: Instant::now(),
                last: queued,
                seq: header.seq.saturating_sub(1),
                online: HashSet::new(),
            });
            let gap = header.seq != node.seq.wrapping_add(1);
            let last_in_order = node.last;
            node.seq = header.seq;
            node.seen = Instant::now();
            node.last = queued;
            match &header.event {
                Event::Presence { user, online: true } => {
                    node.online.insert(UserId(*user));
                }
                Event::Presence { user, online: false } => {
                    node.online.remove(&UserId(*user));
                }
                Event::Heartbeat { online } => node.online = online.iter().copied().map(UserId).collect(),
                Event::Deliver { .. } | Event::Revoke { .. } | Event::Goodbye => {}
            }
            let gone = if header.event == Event::Goodbye {
                others.nodes.remove(&header.node).map(|n| n.online)
            } else {
                None
            };
            (gap, last_in_order, gone)
        };
        if let Some(held) = gone {
            self.departed(held);
        }
        // First the catch-up, then what came: a connection that this frame would drop as too
        // slow (its queue full) must still hear where to catch up from.
        if gap {
            self.resync("a gap in another node's events", last_in_order);
        }
        match header.event {
            Event::Deliver { user } => self.hub.send_to_user(UserId(user), &Arc::from(frame), None),
            Event::Revoke { user, sessions, reason } => {
                self.hub.revoke_sessions(UserId(user), &sessions, &reason)
            }
            Event::Presence { .. } | Event::Heartbeat { .. } | Event::Goodbye => {}
        }
    }
}

/// The servers `--nats-url` names: comma-separated, each `nats://host:port` (or `host:port`,
/// or `tls://…`), checked before the node starts.
fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, crate::error::StartError> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>().map_err(|e| {
                crate::error::StartError::Invalid(format!("--nats-url {}: {e}", crate::db::redacted(s)))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(crate::error::StartError::Invalid("--nats-url names no NATS server".into()));
    }
    Ok(servers)
}

impl NatsFanout {
    /// Starts fan-out through the NATS server(s) at `url` (several comma-separated), on a
    /// thread of its own with its own runtime. Returns at once: the connection is made (and
    /// remade) in the background, and [`Fanout::bus_connected`] says whether it is up. A URL
    /// that names no NATS server is refused here, saying which part (without its password).
    pub fn start(url: &str, hub: Hub, newest: NewestId) -> Result<NatsFanout, crate::error::StartError> {
        let servers = servers(url)?;
        let node = {
            use rand_core::RngCore;
            rand_core::OsRng.next_u64()
        };
        let (tx, rx) = mpsc::channel(OUTBOX);
        let (departures, departed) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            node,
            hub,
            others: Mutex::default(),
            connected: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            outbox: Mutex::new((0, tx)),
            resyncs: Default::default(),
            samples: Mutex::default(),
            lost_at: Mutex::default(),
            departures,
            departed: Mutex::new(Some(departed)),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sealroom-nats")
            .enable_all()
            .build()
            .map_err(|e| crate::error::StartError::io("cannot start the NATS runtime")(e))?;
        let options = {
            let events = Arc::downgrade(&shared);
            async_nats::ConnectOptions::new()
                .name(format!("sealroom-{node:016x}"))
                .no_echo()
                .retry_on_initial_connect()
                .max_reconnects(None)
                .connection_timeout(Duration::from_secs(2))
                .ping_interval(Duration::from_secs(2))
                .reconnect_delay_callback(|attempts| {
                    Duration::from_millis((attempts as u64 * 100).min(1_000))
                })
                .event_callback(move |event| {
                    let shared = events.upgrade();
                    async move {
                        if let Some(shared) = shared {
                            on_event(&shared, event);
                        }
                    }
                })
        };
        let task = shared.clone();
        std::thread::Builder::new()
            .name("sealroom-nats".into())
            .spawn(move || runtime.block_on(run(task, options, servers, rx, newest)))
            .map_err(crate::error::StartError::io("cannot start the NATS thread"))?;
        Ok(NatsFanout { shared })
    }

    /// This node's id on the bus.
    pub fn node(&self) -> u64 {
        self.shared.node
    }
}

/// NATS's connection events: up, down, and dropped messages.
fn on_event(shared: &Shared, event: async_nats::Event) {
    match event {
        async_nats::Event::Connected => {
            if !shared.subscribed.load(Ordering::SeqCst) {
                return; // The first connection: up once subscribed (`run`).
            }
            let was = shared.connected.swap(true, Ordering::SeqCst);
            tracing::info!("connected to NATS");
            if !was {
                // What the others published while we were away is gone: our connections catch
                // up from before we lost it. (Each node's sequence is kept: a gap in what the
                // others buffered meanwhile is a gap still.)
                let lost = shared.lost_at.lock().unwrap_or_else(|p| p.into_inner()).take();
                shared.resync("NATS is back", lost.unwrap_or_else(crate::now_ms));
                shared.publish(Event::Heartbeat { online: shared.local_users() }, None);
            }
        }
        async_nats::Event::Disconnected => {
            shared.connected.store(false, Ordering::SeqCst);
            shared.lost_at.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(crate::now_ms);
            tracing::warn!("lost the connection to NATS; refusing new connections until it is back");
        }
        async_nats::Event::SlowConsumer(_) => {
            shared.resync("NATS dropped messages for this node", crate::now_ms())
        }
        other => tracing::warn!(event = %other, "NATS"),
    }
}

/// The node's NATS loop: connect, then publish what is queued, apply what arrives, and say
/// whom it holds every [`HEARTBEAT`].
async fn run(
    shared: Arc<Shared>,
    options: async_nats::ConnectOptions,
    servers: Vec<async_nats::ServerAddr>,
    mut outbox: mpsc::Receiver<Bytes>,
    newest: NewestId,
) {
    let newest: Arc<NewestId> = Arc::new(newest);
    let client = match options.connect(servers).await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the NATS URL; this node fans out to no other");
            return;
        }
    };
    let mut subscription = loop {
        match client.subscribe(SUBJECT).await {
            // Flushed: the server has the subscription before this node takes connections.
            Ok(s) if client.flush().await.is_ok() => break s,
            Ok(_) => tracing::warn!("cannot reach NATS yet; retrying"),
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to NATS yet; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    shared.subscribed.store(true, Ordering::SeqCst);
    shared.connected.store(true, Ordering::SeqCst);
    tracing::info!(node = format_args!("{:016x}", shared.node), "fanning out through NATS");
    shared.publish(Event::Heartbeat { online: shared.local_users() }, None);
    // Publishing runs apart, so that a publish waiting on NATS never holds up what arrives or
    // the heartbeat's checks. One that cannot go out within PUBLISH_WAIT is given up: the
    // others see the gap in this node's sequence, and catch up.
    let publisher = client.clone();
    tokio::spawn(async move {
        while let Some(payload) = outbox.recv().await {
            match tokio::time::timeout(PUBLISH_WAIT, publisher.publish(SUBJECT, payload)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "a NATS publish failed"),
                Err(_) => tracing::warn!("a NATS publish waited too long and was dropped"),
            }
        }
    });
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { break };
                match decode(&message.payload) {
                    Some((header, frame)) => shared.receive(header, frame),
                    None => tracing::warn!(bytes = message.payload.len(), "an event on the bus that is not ours"),
                }
            }
            _ = heartbeat.tick() => {
                shared.publish(Event::Heartbeat { online: shared.local_users() }, None);
                let (read, samples) = (newest.clone(), shared.clone());
                tokio::task::spawn_blocking(move || {
                    if let Some(id) = read() {
                        let mut s = samples.samples.lock().unwrap_or_else(|p| p.into_inner());
                        let now = crate::now_ms();
                        s.push_back((now, id));
                        while s.front().is_some_and(|(t, _)| now - t > SAMPLES.as_millis() as i64) {
                            s.pop_front();
                        }
                    }
                });
                // A node that stopped speaking without a goodbye died (or lost NATS): what it
                // committed last may never have been published. Forget it, and catch up.
                let (silent, held) = {
                    let mut others = shared.others();
                    let last = others.nodes.values().filter(|n| n.seen.elapsed() >= NODE_TIMEOUT).map(|n| n.last).min();
                    let mut held = HashSet::new();
                    others.nodes.retain(|_, n| {
                        let alive = n.seen.elapsed() < NODE_TIMEOUT;
                        if !alive {
                            held.extend(n.online.drain());
                        }
                        alive
                    });
                    (last, held)
                };
                if let (Some(last), true) = (silent, shared.connected.load(Ordering::SeqCst)) {
                    shared.resync("another node went silent", last);
                    shared.departed(held);
                }
            }
        }
    }
}

impl Fanout for NatsFanout {
    fn register(&self, user: UserId, session_id: &str, mailbox: Mailbox) -> Result<(u64, bool), Refused> {
        if !self.shared.connected.load(Ordering::SeqCst) {
            return Err(Refused::Unavailable);
        }
        let (id, first_here) = self.shared.hub.register(user, session_id, mailbox)?;
        if first_here {
            self.shared.publish(Event::Presence { user: user.0, online: true }, None);
        }
        Ok((id, first_here && !self.shared.others().online(user)))
    }

    fn unregister(&self, user: UserId, conn: u64) -> bool {
        let none_here = self.shared.hub.unregister(user, conn);
        if none_here {
            self.shared.publish(Event::Presence { user: user.0, online: false }, None);
        }
        none_here && !self.shared.others().online(user)
    }

    fn is_online(&self, user: UserId) -> bool {
        self.shared.hub.is_online(user) || self.shared.others().online(user)
    }

    fn send_to_user(&self, user: UserId, frame: &Arc<str>, except: Option<u64>) {
        self.shared.hub.send_to_user(user, frame, except);
        self.shared.publish(Event::Deliver { user: user.0 }, Some(frame));
    }

    fn revoke_sessions(&self, user: UserId, session_ids: &[String], reason: &str) {
        self.shared.hub.revoke_sessions(user, session_ids, reason);
        self.shared.publish(
            Event::Revoke { user: user.0, sessions: session_ids.to_vec(), reason: reason.to_owned() },
            None,
        );
    }

    fn revoke_here(&self, user: UserId, session_ids: &[String], reason: &str) {
        self.shared.hub.revoke_sessions(user, session_ids, reason);
    }

    fn close_all(&self) {
        self.shared.hub.close_all();
        self.shared.publish(Event::Goodbye, None);
    }

    fn connection_count(&self) -> usize {
        self.shared.hub.connection_count()
    }

    fn bus_connected(&self) -> Option<bool> {
        Some(self.shared.connected.load(Ordering::SeqCst))
    }

    fn resyncs(&self) -> u64 {
        self.shared.resyncs.load(Ordering::Relaxed)
    }

    fn take_departures(&self) -> Option<mpsc::UnboundedReceiver<UserId>> {
        self.shared.departed.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Outbound;

    #[test]
    fn events_keep_their_frame_as_it_was() {
        let frame = r#"{"type":"message","envelope":"AAEC\n"}"#;
        let header = Header { node: 7, seq: 42, at: 1_764_000_000_123, event: Event::Deliver { user: 3 } };
        let bytes = encode(&header, Some(frame));
        assert!(
            bytes.starts_with(br#"{"node":7,"seq":42,"at":1764000000123,"t":"deliver","user":3}"#),
            "{bytes:?}"
        );
        let (back, text) = decode(&bytes).unwrap();
        assert_eq!((back, text), (header, frame));
        let beat =
            Header { node: 1, seq: 1, at: 1_700_000_000_000, event: Event::Heartbeat { online: vec![1, 2] } };
        assert_eq!(decode(&encode(&beat, None)).unwrap(), (beat, ""));
        assert!(decode(b"no newline").is_none());
        assert!(decode(b"{\"node\":1}\n").is_none(), "an incomplete header is not ours");
        // A node of the version before `at` is understood (as if it queued its events now).
        let (old, _) = decode(b"{\"node\":7,\"seq\":1,\"t\":\"goodbye\"}\n").unwrap();
        assert_eq!(old, Header { node: 7, seq: 1, at: 0, event: Event::Goodbye });
    }

    fn shared() -> (Arc<Shared>, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(8);
        let (departures, departed) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            node: 1,
            hub: Hub::default(),
            others: Mutex::default(),
            connected: AtomicBool::new(true),
            subscribed: AtomicBool::new(true),
            outbox: Mutex::new((0, tx)),
            resyncs: Default::default(),
            samples: Mutex::default(),
            lost_at: Mutex::default(),
            departures,
            departed: Mutex::new(Some(departed)),
        });
        (shared, rx)
    }

    #[test]
    fn a_gap_in_another_nodes_sequence_makes_this_nodes_connections_catch_up_from_before_it() {
        let (shared, _outbox) = shared();
        let now = crate::now_ms();
        let secs = |n: i64| n * 1000;
        {
            let mut samples = shared.samples.lock().unwrap();
            samples.push_back((now - secs(20), 5));
            samples.push_back((now - secs(10), 7));
            samples.push_back((now - secs(1), 9));
        }
        let (mailbox, mut inbox) = Mailbox::open(8);
        shared.hub.register(UserId(5), "s", mailbox).unwrap();
        let deliver = |seq, at| Header { node: 2, seq, at, event: Event::Deliver { user: 5 } };
        // Events that waited 8 s in the other node's queue (it had lost NATS) arrive in order.
        shared.receive(deliver(10, now - secs(8)), "first");
        shared.receive(deliver(11, now - secs(8)), "second");
        assert!(matches!(inbox.rx.try_recv(), Ok(Outbound::Frame(f)) if &*f == "first"));
        assert!(matches!(inbox.rx.try_recv(), Ok(Outbound::Frame(f)) if &*f == "second"));
        assert_eq!(shared.resyncs.load(Ordering::Relaxed), 0, "in order: nothing missed");
        // Then one is missing. What it carried may have been committed right after the last
        // event in order was queued, 8 s ago: the catch-up starts from the newest id sampled
        // MARGIN before that (5, sampled 20 s ago), not from before the gap was noticed (7).
        shared.receive(deliver(13, now), "after a gap");
        assert_eq!(shared.resyncs.load(Ordering::Relaxed), 1);
        match inbox.rx.try_recv() {
            Ok(Outbound::Close(closing)) => {
                assert_eq!(&*closing.0, r#"{"type":"catch_up","since":5}"#);
                assert_eq!(closing.1, 1013);
            }
            other => panic!("expected the catch-up and close, got {other:?}"),
        }
        assert!(
            matches!(inbox.rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)),
            "the frame after the gap goes to the connections that catch up from the database"
        );
        assert_eq!(inbox.catch_up(), Some(MessageId(5)));

        // A connection whose queue is too full for the catch-up frame still hears it: the hub
        // lets go of its queue, and its writer says where to catch up from once the queued
        // frames are out.
        let (mailbox, mut inbox) = Mailbox::open(1);
        shared.hub.register(UserId(5), "s", mailbox).unwrap();
        shared.receive(deliver(14, now), "fills the queue");
        assert_eq!(inbox.catch_up(), None);
        shared.receive(deliver(16, now), "after another gap");
        assert_eq!(shared.resyncs.load(Ordering::Relaxed), 2);
        assert!(matches!(inbox.rx.try_recv(), Ok(Outbound::Frame(f)) if &*f == "fills the queue"));
        assert!(matches!(inbox.rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        assert_eq!(
            inbox.catch_up(),
            Some(MessageId(7)),
            "the newest id sampled MARGIN before the last in order"
        );
    }

    #[test]
    fn the_users_a_departed_node_held_alone_are_announced_offline_by_the_lowest_node_left() {
        let (shared, _outbox) = shared();
        let mut departures = shared.departed.lock().unwrap().take().unwrap();
        let beat =
            |node, seq, online: Vec<i64>| Header { node, seq, at: 0, event: Event::Heartbeat { online } };
        // Node 2 holds users 5 and 6; 6 has a connection here too.
        let (mailbox, _inbox) = Mailbox::open(8);
        shared.hub.register(UserId(6), "s", mailbox).unwrap();
        shared.receive(beat(2, 1, vec![5, 6]), "");
        shared.receive(Header { node: 2, seq: 2, at: 0, event: Event::Goodbye }, "");
        assert_eq!(departures.try_recv().ok(), Some(UserId(5)));
        assert!(departures.try_recv().is_err(), "6 is still online, here");
        // With a lower-numbered node left (0), that one announces, not this one.
        shared.receive(beat(0, 1, vec![]), "");
        shared.receive(beat(3, 1, vec![7]), "");
        shared.receive(Header { node: 3, seq: 2, at: 0, event: Event::Goodbye }, "");
        assert!(departures.try_recv().is_err());
    }

    #[test]
    fn presence_counts_every_node_and_forgets_one_that_stops_speaking() {
        let (shared, _outbox) = shared();
        let alice = UserId(1);
        assert!(!shared.others().online(alice));
        shared
            .receive(Header { node: 2, seq: 1, at: 0, event: Event::Presence { user: 1, online: true } }, "");
        assert!(shared.others().online(alice));
        shared.receive(Header { node: 2, seq: 2, at: 0, event: Event::Heartbeat { online: vec![] } }, "");
        assert!(!shared.others().online(alice), "the heartbeat is the whole set");
        shared.receive(Header { node: 3, seq: 1, at: 0, event: Event::Heartbeat { online: vec![1] } }, "");
        assert!(shared.others().online(alice));
        shared.others().nodes.get_mut(&3).unwrap().seen = Instant::now() - NODE_TIMEOUT;
        assert!(!shared.others().online(alice), "a node not heard from is gone");
    }
}
