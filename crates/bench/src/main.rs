//! `sealroom-bench`: drives a relay over 127.0.0.1 with real envelopes and checks that what was
//! sent was delivered and stored, exactly once.
//!
//! ```text
//! sealroom-bench throughput --url http://127.0.0.1:8080 --db data/sealroom.db --pairs 50 --messages-per-sender 400 --window 16
//! sealroom-bench latency    --url http://127.0.0.1:8080 --db data/sealroom.db --rate 1000 --duration 10
//! sealroom-bench idle       --url http://127.0.0.1:8080 --server-pid PID --connections 10000 --hold 10
//! sealroom-bench history    --url http://127.0.0.1:8080 --messages 10000
//! sealroom-bench reference  --bind 127.0.0.1:9090 --db /tmp/ref.db      # the minimal reference relay
//! sealroom-bench throughput --url http://127.0.0.1:9090 --db /tmp/ref.db --reference …
//! ```
//!
//! Against Sealroom it registers its users through the client core (a relay started with a
//! generous `--auth-rate-per-ip`); against the reference, users are numbers. Envelopes are real
//! (sealed with the crypto crate, about 200 bytes). Each run prints one JSON line, then a
//! summary for people.

mod reference;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use futures_util::{SinkExt, StreamExt};
use sealroom_crypto::{seal_message, IdentitySecret, MessageHeader, Payload};
use sealroom_protocol::{ClientFrame, ClientMsgId, ConversationId, Envelope, ServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Parser)]
#[command(name = "sealroom-bench", about = "Load generator for a Sealroom relay (loopback only)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Every sender sends as fast as its window allows; delivered messages per second.
    Throughput {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        #[arg(long, default_value_t = 400)]
        messages_per_sender: usize,
        /// Unacknowledged sends per sender.
        #[arg(long, default_value_t = 16)]
        window: usize,
    },
    /// Open loop: `rate` messages per second in all, spread over the pairs, for `duration`
    /// seconds; latency from the scheduled send to the delivery.
    Latency {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        #[arg(long, default_value_t = 200)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// Holds `connections` authenticated WebSockets open for `hold` seconds; the relay's
    /// memory per connection (RSS from /proc, before and after) and its CPU while idle.
    Idle {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        hold: u64,
        /// Connections per user (the relay's `--max-connections-per-user` must allow them).
        #[arg(long, default_value_t = 1000)]
        per_user: usize,
    },
    /// One conversation of `messages` messages sealed to the recipient's real keys; then the
    /// recipient reads the whole history through the client core: fetch (pages of the
    /// protocol's maximum) and decrypt, each timed.
    History {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
    },
    /// Runs the minimal reference relay.
    Reference {
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        #[arg(long)]
        db: String,
    },
}

#[derive(Args, Clone)]
struct Target {
    /// The relay, `http://127.0.0.1:PORT` (loopback only).
    #[arg(long)]
    url: String,
    /// Its database, to count what was stored: the SQLite file, or the `postgres://` URL.
    #[arg(long)]
    db: Option<String>,
    /// The target is the reference relay (`sealroom-bench reference`).
    #[arg(long)]
    reference: bool,
    /// The relay's process id, to report its CPU use (and memory, in `idle`) from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Another relay node of the same deployment (`http://127.0.0.1:PORT`): receivers connect
    /// there, senders to `--url`, so every message crosses from node to node (issue 15).
    #[arg(long)]
    receivers_url: Option<String>,
    /// That node's process id: its CPU time counts with the first's.
    #[arg(long)]
    receivers_pid: Option<u32>,
}

impl Target {
    /// The relay CPU time so far, of every node given.
    fn server_cpu(&self) -> Option<f64> {
        let first = cpu_seconds(self.server_pid);
        match self.receivers_pid {
            Some(pid) => Some(first? + cpu_seconds(Some(pid))?),
            None => first,
        }
    }

    /// The target as the receivers see it.
    fn for_receivers(&self) -> Target {
        let mut t = self.clone();
        if let Some(url) = &self.receivers_url {
            t.url = url.clone();
        }
        t
    }
}

/// CPU time a process has used so far, in seconds, from /proc (utime + stime, in clock ticks
/// of USER_HZ, which Linux fixes at 100 for user space).
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// How a pair's two ends connect.
#[derive(Clone)]
enum End {
    Token(String),
    User(i64),
}

struct Pair {
    conversation: ConversationId,
    sender: End,
    receiver: End,
    envelopes: Vec<Envelope>,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::Reference { bind, db } => {
            // As the relay does at start: room for the idle runs' connections.
            sealroom_server::limits::raise_fd_limit(100_000);
            let conn = reference::open(&db)?;
            let listener = tokio::net::TcpListener::bind(&bind).await?;
            println!("reference relay listening on http://{}", listener.local_addr()?);
            use std::io::Write as _;
            std::io::stdout().flush()?;
            reference::serve(listener, conn).await
        }
        Mode::Throughput { target, pairs, messages_per_sender, window } => {
            let set = setup(&target, pairs, messages_per_sender).await?;
            let result = drive(&target, set, Load::Window(window.max(1))).await?;
            result.report(&target, "throughput", &[("pairs", pairs), ("window", window)])
        }
        Mode::History { target, messages } => history(&target, messages).await,
        Mode::Idle { target, connections, hold, per_user } => {
            idle(&target, connections, hold, per_user).await
        }
        Mode::Latency { target, pairs, rate, duration } => {
            let per_sender = usize::try_from(rate * duration).unwrap_or(usize::MAX).div_ceil(pairs.max(1));
            let set = setup(&target, pairs, per_sender).await?;
            let period = Duration::from_secs_f64(pairs as f64 / rate.max(1) as f64);
            let result = drive(&target, set, Load::Open(period)).await?;
            result.report(&target, "latency", &[("pairs", pairs), ("rate", rate as usize)])
        }
    }
}

/// Refuses any relay but one on this machine: load and chaos stay on 127.0.0.1.
fn loopback_only(target: &Target) -> anyhow::Result<()> {
    let host = url::Url::parse(&target.url)?;
    if !matches!(host.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) {
        bail!("the load generator targets loopback only");
    }
    Ok(())
}

/// Users, conversations and sealed envelopes for `pairs` pairs.
async fn setup(target: &Target, pairs: usize, per_sender: usize) -> anyhow::Result<Vec<Pair>> {
    loopback_only(target)?;
    let run = sealroom_client::now_ms() % 1_000_000;
    let mut set = Vec::with_capacity(pairs);
    let mut registering = Vec::new();
    for i in 0..pairs {
        let envelopes = seal(per_sender, i)?;
        if target.reference {
            let i = i as i64;
            set.push(Pair {
                conversation: ConversationId(i),
                sender: End::User(2 * i),
                receiver: End::User(2 * i + 1),
                envelopes,
            });
            continue;
        }
        let url = target.url.clone();
        registering.push(tokio::spawn(async move {
            let client = sealroom_client::Client::new(&url)?;
            let password = "bench passphrase that is long enough";
            let receiver = client.register(&format!("b{run}r{i}"), password).await?;
            let mut sender = client.register(&format!("b{run}s{i}"), password).await?;
            let conversation = sender.conversation_with(receiver.username()).await?;
            anyhow::Ok(Pair {
                conversation,
                sender: End::Token(sender.token().to_owned()),
                receiver: End::Token(receiver.token().to_owned()),
                envelopes,
            })
        }));
        // A few at a time: each registration is two Argon2id derivations on each side.
        if registering.len() == 4 {
            for r in registering.drain(..) {
                set.push(r.await??);
            }
        }
    }
    for r in registering {
        set.push(r.await??);
    }
    Ok(set)
}

/// `n` real envelopes of about 200 bytes, for pair `i`.
fn seal(n: usize, i: usize) -> anyhow::Result<Vec<Envelope>> {
    let (a, b) = (IdentitySecret::generate()?, IdentitySecret::generate()?);
    let key = a.pair_key(&b.public_key())?;
    (0..n)
        .map(|k| {
            let text = format!("pair {i} message {k}: {}", "lorem ipsum dolor sit amet ".repeat(4));
            let header = MessageHeader::new(sealroom_client::now_ms() as u64)?;
            let sealed = seal_message(&key, &a.public_key(), &b.public_key(), &header, &Payload::Text(text))?;
            Ok(Envelope::new(sealed)?)
        })
        .collect()
}

async fn connect(target: &Target, end: &End) -> anyhow::Result<Ws> {
    connect_from(target, end, None).await
}

/// Connects from `source` (an address of 127.0.0.0/8), or from any.
async fn connect_from(target: &Target, end: &End, source: Option<std::net::IpAddr>) -> anyhow::Result<Ws> {
    let base = target.url.replacen("http", "ws", 1);
    let mut req = match end {
        End::Token(_) => format!("{base}/ws"),
        End::User(n) => format!("{base}/ws?user={n}"),
    }
    .into_client_request()?;
    if let End::Token(token) = end {
        req.headers_mut().insert("Authorization", format!("Bearer {token}").parse()?);
    }
    let (mut ws, _) = match source {
        // Without Nagle, as browsers open WebSockets and as the relay answers.
        None => tokio_tungstenite::connect_async_with_config(req, None, true).await?,
        Some(ip) => {
            let addr = url::Url::parse(&target.url)?
                .socket_addrs(|| None)?
                .into_iter()
                .next()
                .context("the relay's address")?;
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::new(ip, 0))?;
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await?
        }
    };
    match next_frame(&mut ws).await? {
        ServerFrame::Hello { .. } => Ok(ws),
        other => bail!("the relay did not say hello: {other:?}"),
    }
}

async fn next_frame(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> anyhow::Result<ServerFrame> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(Message::Close(c))) => bail!("closed by the relay: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection closed"),
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    /// At most this many unacknowledged sends per sender.
    Window(usize),
    /// One send per sender every period, whatever the answers (open loop).
    Open(Duration),
}

/// A client_msg_id that says which message it is: the pair, this run (so that runs against one
/// relay never reuse an id), and the message's number.
fn msg_id(pair: usize, run: u32, k: usize) -> ClientMsgId {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&(pair as u32).to_be_bytes());
    id[4..8].copy_from_slice(&run.to_be_bytes());
    id[8..].copy_from_slice(&(k as u64).to_be_bytes());
    ClientMsgId(id)
}

fn which(id: &ClientMsgId) -> (usize, usize) {
    let pair = u32::from_be_bytes(id.0[..4].try_into().unwrap_or_default());
    let k = u64::from_be_bytes(id.0[8..].try_into().unwrap_or_default());
    (pair as usize, k as usize)
}

struct Outcome {
    sent: usize,
    acked: usize,
    delivered: usize,
    duplicates: usize,
    errors: usize,
    stored: Option<i64>,
    seconds: f64,
    latencies_ms: Vec<f64>,
    /// The load generator's CPU time over the run, as a share of one core.
    generator_cpu: Option<f64>,
    /// The relay's, when its process id was given.
    server_cpu: Option<f64>,
}

async fn drive(target: &Target, set: Vec<Pair>, load: Load) -> anyhow::Result<Outcome> {
    let stored_before = count_stored(target)?;
    let expected: usize = set.iter().map(|p| p.envelopes.len()).sum();
    // Receivers first, all connected before anyone sends.
    let mut receivers = Vec::new();
    let receiving = target.for_receivers();
    loopback_only(&receiving)?;
    for pair in &set {
        receivers.push(connect(&receiving, &pair.receiver).await?);
    }
    let mut senders = Vec::new();
    for pair in &set {
        senders.push(connect(target, &pair.sender).await?);
    }
    let run = (sealroom_client::now_ms() % i64::from(u32::MAX)) as u32;
    let cpu_before = (cpu_seconds(None), target.server_cpu());
    let start = Instant::now();
    // When each message was (due to be) sent, per pair.
    let due: Arc<Vec<Vec<std::sync::OnceLock<Instant>>>> = Arc::new(
        set.iter().map(|p| (0..p.envelopes.len()).map(|_| std::sync::OnceLock::new()).collect()).collect(),
    );
    let deadline = start + Duration::from_secs(120);
    let mut receiving = Vec::new();
    for (i, (ws, pair)) in receivers.into_iter().zip(&set).enumerate() {
        let (n, due) = (pair.envelopes.len(), due.clone());
        receiving.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut seen = vec![false; n];
            let (mut got, mut duplicates, mut latencies, mut last) = (0, 0, Vec::with_capacity(n), start);
            while got < n {
                let Ok(frame) = tokio::time::timeout_at(deadline.into(), next_frame(&mut ws)).await else {
                    break;
                };
                let ServerFrame::Message { message } = frame? else { continue };
                let (p, k) = which(&message.client_msg_id);
                if p != i || k >= n {
                    bail!("pair {i} received a message of pair {p}");
                }
                if std::mem::replace(&mut seen[k], true) {
                    duplicates += 1;
                    continue;
                }
                got += 1;
                last = Instant::now();
                if let Some(t) = due[i][k].get() {
                    latencies.push(last.duration_since(*t).as_secs_f64() * 1000.0);
                }
            }
            anyhow::Ok((got, duplicates, latencies, last))
        }));
    }
    let mut sending = Vec::new();
    for (i, (ws, pair)) in senders.into_iter().zip(set).enumerate() {
        let due = due.clone();
        // In the open loop each sender starts at its own phase, so the load is spread evenly.
        let phase = match load {
            Load::Open(period) => period.mul_f64(i as f64 / due.len() as f64),
            Load::Window(_) => Duration::ZERO,
        };
        sending.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let window = Arc::new(tokio::sync::Semaphore::new(match load {
                Load::Window(w) => w,
                Load::Open(_) => tokio::sync::Semaphore::MAX_PERMITS,
            }));
            let n = pair.envelopes.len();
            let windowed = matches!(load, Load::Window(_));
            let acks = {
                let window = window.clone();
                tokio::spawn(async move {
                    let (mut acked, mut errors) = (0, 0);
                    while acked + errors < n {
                        let Ok(frame) =
                            tokio::time::timeout_at(deadline.into(), next_frame(&mut stream)).await
                        else {
                            break;
                        };
                        match frame? {
                            ServerFrame::Ack { .. } => acked += 1,
                            ServerFrame::Error { client_msg_id: Some(_), .. } => errors += 1,
                            _ => continue,
                        }
                        if windowed {
                            window.add_permits(1);
                        }
                    }
                    anyhow::Ok((acked, errors))
                })
            };
            for (k, envelope) in pair.envelopes.into_iter().enumerate() {
                let when = match load {
                    Load::Open(period) => {
                        let t = start + phase + period.mul_f64(k as f64);
                        tokio::time::sleep_until(t.into()).await;
                        t
                    }
                    Load::Window(_) => {
                        window.acquire().await?.forget();
                        Instant::now()
                    }
                };
                let _ = due[i][k].set(when);
                let frame = ClientFrame::Send {
                    conversation: pair.conversation,
                    client_msg_id: msg_id(i, run, k),
                    envelope,
                    blobs: vec![],
                };
                sink.send(Message::Text(serde_json::to_string(&frame)?.into())).await?;
            }
            let (acked, errors) = acks.await??;
            let _ = sink.close().await;
            anyhow::Ok((n, acked, errors))
        }));
    }
    let (mut sent, mut acked, mut errors) = (0, 0, 0);
    for s in sending {
        let (n, a, e) = s.await??;
        sent += n;
        acked += a;
        errors += e;
    }
    let (mut delivered, mut duplicates, mut latencies_ms, mut last) = (0, 0, Vec::new(), start);
    for r in receiving {
        let (got, dup, lat, at) = r.await??;
        delivered += got;
        duplicates += dup;
        latencies_ms.extend(lat);
        last = last.max(at);
    }
    let seconds = last.duration_since(start).as_secs_f64();
    // Each process's CPU time over the run, as a share of one core.
    let wall = start.elapsed().as_secs_f64().max(1e-9);
    let share = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / wall);
    let generator_cpu = share(cpu_before.0, cpu_seconds(None));
    let server_cpu = share(cpu_before.1, target.server_cpu());
    let stored = match (stored_before, count_stored(target)?) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    debug_assert_eq!(sent, expected);
    Ok(Outcome {
        sent,
        acked,
        delivered,
        duplicates,
        errors,
        stored,
        seconds,
        latencies_ms,
        generator_cpu,
        server_cpu,
    })
}

/// Rows in the target's `messages` table, when its database was given.
fn count_stored(target: &Target) -> anyhow::Result<Option<i64>> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let Some(db) = &target.db else { return Ok(None) };
    let count = diesel::sql_query("SELECT COUNT(*) AS n FROM messages");
    let rows: Vec<Count> = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        let mut conn = diesel::PgConnection::establish(db).context("opening the PostgreSQL database")?;
        count.load(&mut conn)?
    } else {
        let mut conn = SqliteConnection::establish(db).with_context(|| format!("opening {db}"))?;
        count.load(&mut conn)?
    };
    Ok(rows.first().map(|c| c.n))
}

async fn history(target: &Target, messages: usize) -> anyhow::Result<()> {
    if target.reference {
        bail!("the reference relay keeps no accounts or keys: history runs against Sealroom only");
    }
    loopback_only(target)?;
    let run = sealroom_client::now_ms() % 1_000_000;
    let client = sealroom_client::Client::new(&target.url)?;
    let password = "bench passphrase that is long enough";
    let mut bob = client.register(&format!("h{run}r"), password).await?;
    let mut alice = client.register(&format!("h{run}s"), password).await?;
    let conversation = alice.conversation_with(bob.username()).await?;
    let peer = bob.username().clone();
    let mut frames = Vec::with_capacity(messages);
    for k in 0..messages {
        let text = format!("history message {k}: {}", "lorem ipsum dolor sit amet ".repeat(4));
        // The id is sealed in the envelope's header: the client core's, not one of ours.
        let (client_msg_id, envelope) = alice.encrypt_to(&peer, &Payload::Text(text), false).await?;
        let frame = ClientFrame::Send { conversation, client_msg_id, envelope, blobs: vec![] };
        frames.push(Message::Text(serde_json::to_string(&frame)?.into()));
    }
    // Stored pipelined (the relay reads 64 ahead), the answers read meanwhile.
    let (mut sink, mut stream) = connect(target, &End::Token(alice.token().to_owned())).await?.split();
    let writing = tokio::spawn(async move {
        for frame in frames {
            sink.send(frame).await?;
        }
        anyhow::Ok(sink)
    });
    let mut acked = 0;
    while acked < messages {
        match tokio::time::timeout(Duration::from_secs(120), next_frame(&mut stream)).await?? {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Error { code, message, .. } => bail!("a send was refused: {code:?} {message}"),
            _ => {}
        }
    }
    let _ = writing.await??.close().await;
    // Reading it back: every page, then every message opened.
    let sender = alice.username().as_str().to_owned();
    let started = Instant::now();
    let mut rows = Vec::with_capacity(messages);
    let mut before = None;
    loop {
        let query =
            sealroom_protocol::HistoryQuery { before, after: None, limit: Some(sealroom_protocol::MAX_PAGE) };
        let page = bob.history_raw(&sender, &query).await?;
        let Some(oldest) = page.messages.first().map(|m| m.id) else { break };
        rows.extend(page.messages);
        if !page.has_more {
            break;
        }
        before = Some(oldest);
    }
    let fetch_seconds = started.elapsed().as_secs_f64();
    let decrypting = Instant::now();
    let mut opened = 0usize;
    let mut failure = None;
    for m in &rows {
        match bob.decrypt(m).await {
            Ok(_) => opened += 1,
            Err(e) => failure = failure.or(Some(e.to_string())),
        }
    }
    if let Some(e) = &failure {
        eprintln!("a message did not open: {e}");
    }
    let decrypt_seconds = decrypting.elapsed().as_secs_f64();
    let seconds = started.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "mode": "history",
        "target": "sealroom",
        "messages": messages,
        "fetched": rows.len(),
        "decrypted": opened,
        "lost": messages.saturating_sub(opened),
        "fetch_seconds": fetch_seconds,
        "decrypt_seconds": decrypt_seconds,
        "seconds": seconds,
        "messages_per_s": opened as f64 / seconds.max(1e-9),
    });
    println!("{line}");
    eprintln!(
        "history against Sealroom: {} of {messages} messages fetched in {fetch_seconds:.2} s and {opened} decrypted \
         in {decrypt_seconds:.2} s ({:.0} messages/s in all)",
        rows.len(),
        opened as f64 / seconds.max(1e-9),
    );
    if rows.len() != messages || opened != messages {
        bail!("the history did not come back whole");
    }
    Ok(())
}

/// A process's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/PID/status")
}

/// Connections from one source address at most (the ephemeral ports of 127.0.0.1 are ~28,000).
const PER_SOURCE: usize = 20_000;

async fn idle(target: &Target, connections: usize, hold: u64, per_user: usize) -> anyhow::Result<()> {
    loopback_only(target)?;
    let pid = target.server_pid.context("idle needs --server-pid, to read the relay's memory")?;
    // Each connection is a descriptor here too.
    let want = connections as u64 + 256;
    let have = sealroom_server::limits::raise_fd_limit(want);
    if have < want {
        bail!("{connections} connections need {want} open files, and the limit is {have} (raise it with `ulimit -n`)");
    }
    let users = connections.div_ceil(per_user.max(1));
    let mut ends = Vec::with_capacity(users);
    if target.reference {
        ends.extend((0..users as i64).map(End::User));
    } else {
        let run = sealroom_client::now_ms() % 1_000_000;
        let client = sealroom_client::Client::new(&target.url)?;
        for u in 0..users {
            let session =
                client.register(&format!("i{run}u{u}"), "bench passphrase that is long enough").await?;
            ends.push(End::Token(session.token().to_owned()));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid)?;
    let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let started = Instant::now();
    let mut opened = 0usize;
    let mut failures = Vec::new();
    let mut holders = Vec::with_capacity(connections);
    let limit = Arc::new(tokio::sync::Semaphore::new(128));
    let mut connecting = tokio::task::JoinSet::new();
    for n in 0..connections {
        let permit = limit.clone().acquire_owned().await?;
        let (target, end) = (target.clone(), ends[n / per_user.max(1)].clone());
        // Binding a source address makes the kernel search its ports at every bind (slow by
        // the thousand), so only connections past the first PER_SOURCE have one.
        let source = (n >= PER_SOURCE)
            .then(|| std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1 + (n / PER_SOURCE) as u8)));
        connecting.spawn(async move {
            let ws = connect_from(&target, &end, source).await;
            drop(permit);
            ws
        });
        while let Some(done) = connecting.try_join_next() {
            holders.push(hold_open(done?, &closed, &stop, &mut opened, &mut failures));
        }
    }
    while let Some(done) = connecting.join_next().await {
        holders.push(hold_open(done?, &closed, &stop, &mut opened, &mut failures));
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    // Let the relay settle (its first heartbeat, allocator caches), then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = cpu_seconds(Some(pid));
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let idle_cpu = match (cpu_before, cpu_seconds(Some(pid))) {
        (Some(a), Some(b)) => Some((b - a) / t.elapsed().as_secs_f64()),
        _ => None,
    };
    let rss_after = rss_kib(pid)?;
    let lost = closed.load(std::sync::atomic::Ordering::Relaxed);
    let held = opened.saturating_sub(lost);
    let per_conn = (rss_after.saturating_sub(rss_before)) as f64 / opened.max(1) as f64;
    let _ = stop.send(());
    for h in holders.into_iter().flatten() {
        let _ = h.await;
    }
    let line = serde_json::json!({
        "mode": "idle",
        "target": if target.reference { "reference" } else { "sealroom" },
        "connections": connections,
        "opened": opened,
        "held": held,
        "errors": failures.len() + lost,
        "connect_seconds": connect_seconds,
        "hold_seconds": hold,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_conn_kib": per_conn,
        "server_idle_cpu_share": idle_cpu,
    });
    println!("{line}");
    eprintln!(
        "idle against {}: {held} of {connections} connections held for {hold} s ({} failed to open, {lost} closed); \
         relay RSS {:.1} → {:.1} MiB, {per_conn:.1} KiB per connection; idle CPU {}",
        if target.reference { "the reference relay" } else { "Sealroom" },
        failures.len(),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        idle_cpu.map_or("?".into(), |c| format!("{:.1} %", c * 100.0)),
    );
    if let Some(e) = failures.first() {
        eprintln!("first failure: {e}");
    }
    if held < connections {
        bail!("{} of {connections} connections were not held", connections - held);
    }
    Ok(())
}

/// Keeps one opened connection reading (so it answers the relay's pings) until `stop`.
fn hold_open(
    ws: anyhow::Result<Ws>,
    closed: &Arc<std::sync::atomic::AtomicUsize>,
    stop: &tokio::sync::broadcast::Sender<()>,
    opened: &mut usize,
    failures: &mut Vec<String>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            failures.push(e.to_string());
            return None;
        }
    };
    *opened += 1;
    let (closed, mut stop) = (closed.clone(), stop.subscribe());
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.recv() => return,
                frame = ws.next() => match frame {
                    Some(Ok(_)) => continue,
                    _ => {
                        closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                },
            }
        }
    }))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

impl Outcome {
    /// One JSON line, then a summary; an error if anything was lost or doubled.
    fn report(mut self, target: &Target, mode: &str, params: &[(&str, usize)]) -> anyhow::Result<()> {
        self.latencies_ms.sort_by(f64::total_cmp);
        let lat = &self.latencies_ms;
        let lost = self.sent.saturating_sub(self.delivered);
        let stored_lost = self.stored.map(|s| self.acked as i64 - s);
        let mut line = serde_json::json!({
            "mode": mode,
            "target": if target.reference { "reference" } else { "sealroom" },
            "sent": self.sent,
            "acked": self.acked,
            "errors": self.errors,
            "delivered": self.delivered,
            "stored": self.stored,
            "lost": lost,
            "duplicates": self.duplicates,
            "seconds": self.seconds,
            "delivered_per_s": self.delivered as f64 / self.seconds.max(1e-9),
            "p50_ms": percentile(lat, 50.0),
            "p90_ms": percentile(lat, 90.0),
            "p99_ms": percentile(lat, 99.0),
            "max_ms": lat.last().copied().unwrap_or(f64::NAN),
            "generator_cpu_share": self.generator_cpu,
            "server_cpu_share": self.server_cpu,
        });
        for (k, v) in params {
            line[*k] = serde_json::json!(v);
        }
        println!("{line}");
        eprintln!(
            "{mode} against {}: {} sent, {} acked, {} delivered, {} stored, {lost} lost, {} duplicates, {} errors; \
             {:.0} delivered/s; send→deliver p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            if target.reference { "the reference relay" } else { "Sealroom" },
            self.sent,
            self.acked,
            self.delivered,
            self.stored.map_or("?".into(), |s| s.to_string()),
            self.duplicates,
            self.errors,
            self.delivered as f64 / self.seconds.max(1e-9),
            percentile(lat, 50.0),
            percentile(lat, 99.0),
            lat.last().copied().unwrap_or(f64::NAN),
        );
        if lost > 0 || self.duplicates > 0 || self.errors > 0 || stored_lost.is_some_and(|d| d != 0) {
            bail!("messages were lost, doubled or refused");
        }
        Ok(())
    }
}
