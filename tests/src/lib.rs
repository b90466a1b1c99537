//! Test harness: the real `sealroom` binary on `127.0.0.1:0` with a fresh data dir, real
//! native clients, and the real `sealroom-cli`.
//!
//! Binaries are built once per test process with `cargo build --workspace --bins` (a no-op
//! when `cargo xtask test` has just built them), so a test never runs a stale relay.
// A test harness: failing loudly with a message is its job.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sealroom_client::{Client, ClientError, Connection, Session};
use sealroom_crypto::Payload;
use sealroom_protocol::{ClientFrame, ClientMsgId, ConversationId, MessageId, ServerFrame, Username};
use sealroom_session::{Outbox, OutboxEvent};

/// The workspace's `target/debug` (or wherever this test binary lives).
fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec!["build", "--quiet", "--workspace", "--bins"];
        if !cfg!(debug_assertions) {
            // A release test binary (the benchmarks) runs release binaries.
            args.push("--release");
        }
        let status = Command::new(cargo).args(&args).current_dir(&root).status().expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
        let exe = std::env::current_exe().expect("test binary path");
        // target/debug/deps/<test> → target/debug
        exe.parent().and_then(Path::parent).expect("target dir layout").to_path_buf()
    })
    .clone()
}

/// Path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// The database the relays of this test process run on: `SEALROOM_TEST_DATABASE=postgres`
/// gives each relay a fresh database in the process's own PostgreSQL cluster
/// ([`sealroom_testkit::postgres`]); unset or `sqlite`, a file in its data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// The default: `<data-dir>/sealroom.db`.
    Sqlite,
    /// A database of its own in the test cluster.
    Postgres,
}

impl Database {
    /// The database chosen for this test process.
    pub fn chosen() -> Database {
        match std::env::var("SEALROOM_TEST_DATABASE").as_deref() {
            Ok("postgres") => Database::Postgres,
            Ok("sqlite") | Err(_) => Database::Sqlite,
            Ok(other) => panic!("SEALROOM_TEST_DATABASE={other}: say sqlite or postgres"),
        }
    }
}

/// A running relay.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Holds the data dir and the server log.
    pub root: tempfile::TempDir,
    extra: Vec<String>,
    /// The PostgreSQL database's URL, when it runs on one ([`Database::chosen`]).
    database_url: Option<String>,
    /// The data dir, when it is shared with other nodes ([`Cluster`]).
    shared_data: Option<PathBuf>,
}

/// Several relay nodes on one PostgreSQL database and one NATS server, sharing one data dir
/// (blobs, JWT secret), as docs/ARCHITECTURE.md describes scale-out.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, each on its own port.
    pub nodes: Vec<TestServer>,
    /// The NATS server between them (stop and start it to play an outage).
    pub nats: sealroom_testkit::Nats,
    /// The shared database.
    pub database_url: String,
    /// The shared data dir.
    pub data: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes, started one after another.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, &[])
    }

    /// `n` nodes with extra flags each.
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let nats = sealroom_testkit::Nats::new();
        let database_url = sealroom_testkit::postgres().database();
        let data = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster { nodes: Vec::new(), nats, database_url, data };
        for _ in 0..n {
            let node = cluster.node(extra);
            cluster.nodes.push(node);
        }
        cluster
    }

    /// Starts one more node (not added to [`Cluster::nodes`]).
    pub fn node(&self, extra: &[&str]) -> TestServer {
        let mut flags = vec!["--nats-url".to_owned(), self.nats.url()];
        flags.extend(extra.iter().map(|s| s.to_string()));
        let mut s = TestServer {
            child: None,
            url: String::new(),
            root: tempfile::tempdir().expect("temp dir"),
            extra: flags,
            database_url: Some(self.database_url.clone()),
            shared_data: Some(self.data.path().to_path_buf()),
        };
        s.spawn();
        s.wait_healthy();
        s
    }
}

impl TestServer {
    /// A relay with default settings and a fresh data dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A relay on the database at `database_url` (whatever [`Database::chosen`] says).
    pub fn start_on(database_url: &str, extra: &[&str]) -> Self {
        let mut s = TestServer {
            child: None,
            url: String::new(),
            root: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            database_url: Some(database_url.to_owned()),
            shared_data: None,
        };
        s.spawn();
        s
    }

    /// A relay on an existing data dir (and database URL): one restored from a backup.
    pub fn start_in(data_dir: PathBuf, database_url: Option<String>, extra: &[&str]) -> Self {
        let mut s = TestServer {
            child: None,
            url: String::new(),
            root: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            database_url,
            shared_data: Some(data_dir),
        };
        s.spawn();
        s
    }

    /// The database URL this relay was given (`None`: SQLite in its data dir).
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// A relay with extra command-line flags.
    pub fn start_with(extra: &[&str]) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let database_url = match Database::chosen() {
            Database::Sqlite => None,
            Database::Postgres => Some(sealroom_testkit::postgres().database()),
        };
        let mut s = TestServer {
            child: None,
            url: String::new(),
            root,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            database_url,
            shared_data: None,
        };
        s.spawn();
        s
    }

    /// Waits (up to 30 s) until `/healthz` answers 200: a node among several listens before
    /// it has reached NATS, and says so there, as a load balancer would ask.
    pub fn wait_healthy(&self) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://").to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = std::net::TcpStream::connect(&addr).ok().and_then(|mut s| {
                s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
                let mut reply = String::new();
                s.read_to_string(&mut reply).ok()?;
                reply.split_whitespace().nth(1).map(str::to_owned)
            });
            if status.as_deref() == Some("200") {
                return;
            }
            assert!(Instant::now() < deadline, "{} never became healthy (last: {status:?})", self.url);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The relay's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.shared_data.clone().unwrap_or_else(|| self.root.path().join("data"))
    }

    /// The server's log (stderr), all runs appended.
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    fn spawn(&mut self) {
        self.spawn_on("127.0.0.1:0");
    }

    fn spawn_on(&mut self, bind: &str) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        let mut child = Command::new(bin("sealroom"))
            .args(["serve", "--bind", bind, "--data-dir"])
            .arg(self.data_dir())
            .args(["--log", "info,sealroom_server=debug"])
            .args(self.database_url.iter().flat_map(|url| ["--database-url", url]))
            .args(&self.extra)
            .env_remove("SEALROOM_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("sealroom starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        self.url = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            panic!("the relay did not start:\n{log}")
        });
        self.child = Some(child);
    }

    /// Stops the relay with SIGTERM (graceful drain) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the relay with SIGKILL (no drain, no destructors: a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The database this relay runs on.
    pub fn database(&self) -> Database {
        if self.database_url.is_some() {
            Database::Postgres
        } else {
            Database::Sqlite
        }
    }

    /// Where the relay's database is, as `sealroom-bench --db` takes it: the SQLite file, or
    /// the PostgreSQL URL.
    pub fn database_location(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => self.data_dir().join("sealroom.db").display().to_string(),
        }
    }

    /// SQL for a byte column in upper-case hex (`hex(…)` is SQLite's own).
    pub fn hex_sql(&self, column: &str) -> String {
        match self.database() {
            Database::Sqlite => format!("hex({column})"),
            Database::Postgres => format!("upper(encode({column}, 'hex'))"),
        }
    }

    /// A byte string as an SQL literal of the relay's database (`X'…'`, or `'\x…'::bytea`).
    pub fn bytes_sql(&self, bytes: &[u8]) -> String {
        match self.database() {
            Database::Sqlite => format!("X'{}'", hex::encode(bytes)),
            Database::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
        }
    }

    /// Runs a SQL query against the stored database (Python's sqlite3, or `psql`) and returns
    /// the rows, one per line, columns joined by `|`.
    pub fn sql_rows(&self, query: &str) -> Vec<String> {
        if let Some(url) = &self.database_url {
            return sealroom_testkit::psql(url, query);
        }
        let out = self.python_sqlite(
            "import sqlite3,sys\nfor r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print('|'.join(map(str, r)))",
            query,
        );
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
    }

    /// Runs `script` with Python's sqlite3, the database path and `sql` as its arguments.
    fn python_sqlite(&self, script: &str, sql: &str) -> Output {
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(self.data_dir().join("sealroom.db"))
            .arg(sql)
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "sql failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Takes the database's write lock from another process (SQLite's `BEGIN IMMEDIATE`, or
    /// the relay's advisory write lock on PostgreSQL) and holds it until the returned guard is
    /// released or dropped: every write of the relay waits (up to its busy or lock timeout)
    /// while reads go on.
    pub fn hold_write_lock(&self) -> WriteLock {
        use std::io::BufRead;
        if let Some(url) = &self.database_url {
            let mut child = sealroom_testkit::psql_session(url);
            let mut stdin = child.stdin.take().expect("piped");
            std::io::Write::write_all(
                &mut stdin,
                b"BEGIN;\nSELECT 'locked' FROM (SELECT pg_advisory_xact_lock(8315159405413756781)) AS held;\n",
            )
            .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "locked", "the lock holder took the lock");
            return WriteLock { child, stdin: Some((stdin, b"COMMIT;\n")) };
        }
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
            c.execute('BEGIN IMMEDIATE')\n\
            print('locked', flush=True)\n\
            sys.stdin.readline()\n\
            c.execute('COMMIT')\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(self.data_dir().join("sealroom.db"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked", "the lock holder took the lock");
        let stdin = child.stdin.take().expect("piped");
        WriteLock { child, stdin: Some((stdin, b"done\n")) }
    }

    /// Stops and starts again on the same data dir (a new port).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts again (after [`TestServer::stop`]) on the same address, so open pages can
    /// reconnect to their origin.
    pub fn start_again_same_port(&mut self) {
        let bind = self.url.trim_start_matches("http://").to_owned();
        self.spawn_on(&bind);
    }

    /// A client for this relay.
    pub fn client(&self) -> Client {
        Client::new(&self.url).expect("valid URL")
    }

    /// `ws://…/ws`.
    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.url.replacen("http://", "ws://", 1))
    }

    /// Registers a user with the password `password-of-<name>`.
    pub async fn register(&self, name: &str) -> Session {
        self.client().register(name, &format!("password-of-{name}")).await.expect("register")
    }

    /// Every file under the data dir plus the log, as (path, bytes).
    pub fn all_stored_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(b) = std::fs::read(&p) {
                    out.push((p, b));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root.path(), &mut out);
        if let Some(url) = &self.database_url {
            // Everything the database holds, as PostgreSQL would back it up.
            out.push((PathBuf::from("pg_dump"), sealroom_testkit::pg_dump(url)));
        }
        out
    }

    /// Runs `sealroom-cli --server URL --user USER ARGS…` with `SEALROOM_PASSWORD=password`.
    pub fn cli(&self, user: &str, password: &str, args: &[&str]) -> Output {
        self.cli_env(user, password, args, &[])
    }

    /// Like [`TestServer::cli`] with extra environment.
    pub fn cli_env(&self, user: &str, password: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(bin("sealroom-cli"))
            .args(["--server", &self.url, "--user", user])
            .args(args)
            .env("SEALROOM_PASSWORD", password)
            // One "device": the CLI's memory of backup generations lives with the test.
            .env("SEALROOM_STATE_DIR", self.root.path().join("cli-state"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("sealroom-cli runs")
    }

    /// Runs `sealroom admin --data-dir … [--database-url …] ARGS…` on this relay's data, as
    /// its operator would (the relay may be running); panics with its output unless it exits 0.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self.admin_output(args);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "sealroom admin {args:?} failed: {stdout}\n{stderr}");
        stdout.into_owned()
    }

    /// [`TestServer::admin`]'s output, whatever its exit status.
    pub fn admin_output(&self, args: &[&str]) -> Output {
        Command::new(bin("sealroom"))
            .arg("admin")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(self.database_url.iter().flat_map(|url| ["--database-url", url]))
            .args(args)
            .env_remove("SEALROOM_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .expect("sealroom admin runs")
    }

    /// `sealroom admin --json ARGS…`, parsed.
    pub fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.admin(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sealroom admin {args:?}: {e}: {out}"))
    }

    /// Runs a raw SQL statement against the stored database (Python's sqlite3, or `psql`; the
    /// relay should be stopped): how tests play a malicious or broken server.
    pub fn sql(&self, statement: &str) {
        if let Some(url) = &self.database_url {
            sealroom_testkit::psql(url, statement);
            return;
        }
        self.python_sqlite(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
            statement,
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A counter or gauge from the relay's `/metrics` (this machine reads them without a token).
pub async fn metric(base_url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base_url}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The database's write lock, held by another process ([`TestServer::hold_write_lock`]).
#[derive(Debug)]
pub struct WriteLock {
    child: Child,
    /// Its input, and what to write there to let go.
    stdin: Option<(std::process::ChildStdin, &'static [u8])>,
}

impl WriteLock {
    /// Commits the lock holder's empty transaction and waits for it to exit.
    pub fn release(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        use std::io::Write;
        if let Some((mut stdin, release)) = self.stdin.take() {
            let _ = stdin.write_all(release);
        }
        let _ = self.child.wait();
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Reads frames until one matches, failing after 10 s.
pub async fn expect_frame(
    conn: &mut Connection,
    what: &str,
    mut pred: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match conn.next_within(left).await {
            Ok(f) if pred(&f) => return f,
            Ok(_) => continue,
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Asserts no frame matching `pred` arrives within `within`.
pub async fn expect_no_frame(
    conn: &mut Connection,
    within: Duration,
    mut pred: impl FnMut(&ServerFrame) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match conn.next_within(left).await {
            Ok(f) if pred(&f) => panic!("unexpected frame {f:?}"),
            Ok(_) => continue,
            Err(_) => return,
        }
    }
}

/// Plain REST helper for raw requests (bad-input tests).
pub async fn raw(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> (reqwest::StatusCode, serde_json::Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((ctype, text)) = body {
        req = req.header("content-type", ctype).body(text.to_owned());
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null), headers)
}

/// A sending device that resumes by itself: seals each message once (no relay needed), queues
/// it in the client core's outbox, and keeps up to 16 in flight. When the connection drops it reconnects until the relay is back, and the
/// outbox's `on_hello` resends everything unacknowledged (same client_msg_id). It stops
/// queueing new messages once `stop` is set, and returns when the queue is empty.
///
/// Returns what was sent (id and text), the acks (id → message id; a resend acknowledged with
/// another id fails), and how many times it connected. With `typing_every`, it also says it
/// is typing every that many messages.
pub async fn send_until_stopped(
    mut alice: Session,
    bob: Username,
    conversation: ConversationId,
    stop: Arc<AtomicBool>,
    typing_every: Option<usize>,
) -> (Vec<(ClientMsgId, String)>, HashMap<ClientMsgId, MessageId>, usize) {
    let mut outbox = Outbox::default();
    let mut sent = Vec::new();
    let mut acked: HashMap<ClientMsgId, MessageId> = HashMap::new();
    let mut reconnects = 0;
    let mut sealed: Vec<(ClientMsgId, sealroom_protocol::Envelope, String)> = Vec::new();
    let mut deadline = None;
    let mut calm_until = Instant::now();
    'connect: loop {
        // Once told to stop, the queue must drain within two minutes.
        if stop.load(Ordering::SeqCst) {
            let until = *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(120));
            assert!(Instant::now() < until, "the sender never finished: {} queued", outbox.queued().len());
        }
        if stop.load(Ordering::SeqCst) && outbox.queued().is_empty() {
            break;
        }
        let mut conn = match alice.connect().await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        reconnects += 1;
        // Messages the relay asked to resend later (`rate_limited`); on_hello resends them all.
        let mut retry: Vec<ClientMsgId> = Vec::new();
        for frame in outbox.on_hello(|_| false) {
            if conn.send(&frame).await.is_err() {
                continue 'connect;
            }
        }
        loop {
            // After a `rate_limited`, nothing new goes out until the pause is over (a client
            // that keeps sending into refusals is closed by the relay, as it should be), and
            // reading goes on meanwhile (one that stops reading is dropped as too slow).
            if !retry.is_empty() && Instant::now() >= calm_until {
                for id in std::mem::take(&mut retry) {
                    if let Some(f) = outbox.frame(id).cloned() {
                        if conn.send(&f).await.is_err() {
                            continue 'connect;
                        }
                    }
                }
            }
            while outbox.queued().len() < 16
                && !stop.load(Ordering::SeqCst)
                && retry.is_empty()
                && Instant::now() >= calm_until
            {
                if sealed.is_empty() {
                    // Sealing needs no relay; seal a batch ahead so that a crash never stops it.
                    for _ in 0..32 {
                        let text = format!("message {}", sent.len() + sealed.len());
                        let (id, envelope) = alice.seal_offline(&bob, &Payload::Text(text.clone())).unwrap();
                        sealed.push((id, envelope, text));
                    }
                    sealed.reverse();
                }
                let Some((client_msg_id, envelope, text)) = sealed.pop() else { break };
                let frame = ClientFrame::Send { conversation, client_msg_id, envelope, blobs: vec![] };
                outbox.push(bob.clone(), frame.clone());
                sent.push((client_msg_id, text));
                if conn.send(&frame).await.is_err() {
                    continue 'connect;
                }
                if typing_every.is_some_and(|n| sent.len() % n == 0)
                    && conn.send(&ClientFrame::Typing { conversation }).await.is_err()
                {
                    continue 'connect;
                }
            }
            if outbox.queued().is_empty() && stop.load(Ordering::SeqCst) {
                break 'connect;
            }
            let wait = if retry.is_empty() {
                Duration::from_secs(5)
            } else {
                calm_until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
            };
            let frame = match conn.next_within(wait).await {
                Ok(f) => f,
                // A quiet relay is not a dropped connection.
                Err(ClientError::Timeout) => continue,
                Err(e) => {
                    eprintln!("sender {}: connection lost: {e}", alice.username());
                    continue 'connect;
                }
            };
            match outbox.on_frame(&frame) {
                OutboxEvent::Acked { client_msg_id, id, .. } => {
                    if let Some(before) = acked.insert(client_msg_id, id) {
                        assert_eq!(before, id, "a resend was acknowledged with another id");
                    }
                }
                OutboxEvent::Failed { code, message, .. } => panic!("a send was refused: {code:?} {message}"),
                OutboxEvent::RateLimited { client_msg_id } => {
                    if retry.is_empty() {
                        calm_until = Instant::now() + Duration::from_millis(300);
                    }
                    if !retry.contains(&client_msg_id) {
                        retry.push(client_msg_id);
                    }
                }
                OutboxEvent::SyncMore(f) => {
                    if conn.send(&f).await.is_err() {
                        continue 'connect;
                    }
                }
                OutboxEvent::Nothing => {}
            }
        }
    }
    (sent, acked, reconnects)
}

/// A small xorshift generator for tests whose random choices are replayable: the seed comes
/// from an environment variable or the clock, and is printed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn seeded(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The seed in `var`, or one from the clock; printed as `var=seed`, so a failing run can
    /// be replayed.
    pub fn seed_from_env(var: &str) -> u64 {
        let seed = std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        eprintln!("replay with {var}={seed}");
        seed
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Which request a [`LossyProxy`] loses, and how.
type Trap = (Box<dyn Fn(&str) -> bool + Send>, Lose);

/// What a [`LossyProxy`] does to the request it is set to catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lose {
    /// The request never reaches the relay.
    Request,
    /// The relay does it, but its answer never reaches the client.
    Answer,
}

/// A TCP proxy on 127.0.0.1 in front of a relay that passes everything through, except one
/// request it is set to lose (fault injection: the connection drops at the worst moment). The
/// client sees the connection close either way.
pub struct LossyProxy {
    /// `http://127.0.0.1:PORT`, to give a client instead of the relay's.
    pub url: String,
    trap: Arc<std::sync::Mutex<Option<Trap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    /// A proxy to the relay at `relay` (`http://127.0.0.1:PORT`).
    pub async fn start(relay: &str) -> Self {
        let upstream = relay.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let trap: Arc<std::sync::Mutex<Option<Trap>>> = Arc::default();
        let traps = trap.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                tokio::spawn(Self::pipe(client, server, traps.clone()));
            }
        });
        LossyProxy { url, trap, task }
    }

    /// Loses the next request whose first line (`POST /api/… HTTP/1.1`) `matches`, as `how`
    /// says.
    pub fn lose(&self, matches: impl Fn(&str) -> bool + Send + 'static, how: Lose) {
        *self.trap.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Box::new(matches), how));
    }

    /// Whether the trap set by [`lose`](Self::lose) has caught its request.
    pub fn sprung(&self) -> bool {
        self.trap.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none()
    }

    async fn pipe(
        client: tokio::net::TcpStream,
        server: tokio::net::TcpStream,
        trap: Arc<std::sync::Mutex<Option<Trap>>>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_in, mut client_out) = client.into_split();
        let (mut server_in, mut server_out) = server.into_split();
        let mute = Arc::new(AtomicBool::new(false));
        let muted = mute.clone();
        let answers = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match server_in.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if muted.load(Ordering::SeqCst) => {
                        let _ = n;
                        break;
                    }
                    Ok(n) => {
                        if client_out.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping the halves closes the client's connection.
        });
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_in.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned();
            let caught = {
                let mut t = trap.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match t.as_ref() {
                    Some((matches, how)) if matches(&line) => {
                        let how = *how;
                        *t = None;
                        Some(how)
                    }
                    _ => None,
                }
            };
            match caught {
                Some(Lose::Request) => {
                    answers.abort();
                    return;
                }
                Some(Lose::Answer) => {
                    mute.store(true, Ordering::SeqCst);
                    let _ = server_out.write_all(&buf[..n]).await;
                    // The rest of the body, if it came in more reads, then the relay's answer
                    // (which the other half swallows) ends the connection.
                    loop {
                        match tokio::time::timeout(Duration::from_millis(300), client_in.read(&mut buf)).await
                        {
                            Ok(Ok(n)) if n > 0 => {
                                let _ = server_out.write_all(&buf[..n]).await;
                            }
                            _ => break,
                        }
                    }
                    let _ = answers.await;
                    return;
                }
                None => {
                    if server_out.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        answers.abort();
    }
}

impl std::fmt::Debug for LossyProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossyProxy").field("url", &self.url).field("sprung", &self.sprung()).finish()
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP load balancer with failover, as a reverse proxy in front of relay nodes: each new
/// connection goes to the first of its backends (in its order) that accepts one, so clients
/// behind it move to another node when theirs dies.
#[derive(Debug)]
pub struct FailoverProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl FailoverProxy {
    /// Forwards to `backends` (relay URLs, `http://127.0.0.1:PORT`), preferring them in order.
    pub fn start(backends: &[&str]) -> FailoverProxy {
        use std::net::{SocketAddr, TcpListener, TcpStream};
        let backends: Vec<SocketAddr> = backends
            .iter()
            .map(|u| u.trim_start_matches("http://").parse().expect("http://127.0.0.1:PORT"))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Some(server) = backends
                    .iter()
                    .find_map(|b| TcpStream::connect_timeout(b, Duration::from_millis(300)).ok())
                else {
                    continue; // No node: the client sees its connection close.
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { continue };
                pipe(client, server);
                pipe(s2, c2);
            }
        });
        FailoverProxy { url }
    }

    /// A client through this proxy.
    pub fn client(&self) -> Client {
        Client::new(&self.url).expect("valid URL")
    }
}
