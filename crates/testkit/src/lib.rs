//! Throwaway services for tests, started by the tests themselves on 127.0.0.1 and never ones
//! already running on the machine:
//!
//! - [`postgres`]: one PostgreSQL cluster per test process (Debian's `postgresql`: `initdb` in
//!   a fresh directory, a free port, trust authentication on loopback only), and a fresh
//!   database in it for each caller ([`Postgres::database`]).
//!
//! A service is a child of a thread that lives as long as the test process, and is asked to
//! stop (`PR_SET_PDEATHSIG`) when that process ends, however it ends; its directory is
//! removed by the next test process that starts one.
// A test harness: failing loudly with a message is its job.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked: the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Waits until something accepts TCP connections on `port`, or panics after `within`.
pub fn wait_for_port(port: u16, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawns `program args…` from a thread that lives as long as this process, through
/// util-linux's `setpriv --pdeathsig`, so the service gets `signal` when that thread (so this
/// process) ends, however it ends. A child of a test's own thread would get it when that test
/// ends. `setup` adjusts the command (user, output) before it is spawned.
pub fn spawn_for_process_lifetime(
    program: &Path,
    args: &[String],
    signal: &str,
    setup: impl FnOnce(&mut Command),
) -> Child {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static: this loop, and the thread, never end.
            })
            .expect("the spawner thread starts");
        std::sync::Mutex::new(tx)
    });
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", signal, "--"]).arg(program).args(args);
    setup(&mut cmd);
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap().send((cmd, reply)).expect("the spawner runs");
    answer
        .recv()
        .expect("the spawner answers")
        .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()))
}

/// The user services run as when the tests run as root (PostgreSQL refuses to run as root):
/// Debian's `postgres` system user, which the package creates.
fn unprivileged() -> Option<(u32, u32)> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// Where PostgreSQL's server programs are: `$SEALROOM_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), or `$PATH`.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEALROOM_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_default()
}

/// Removes the directories of earlier test processes' services that are gone.
fn remove_stale(prefix: &str) {
    for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix).and_then(|rest| rest.split('-').next()) else { continue };
        let alive = Path::new("/proc").join(pid).exists();
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A PostgreSQL cluster: the test process's shared one ([`postgres`]), or one of a test's own
/// ([`Postgres::dedicated`]) that it may stop and start again.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    next: AtomicU32,
    server: std::sync::Mutex<Option<Child>>,
}

/// The test process's PostgreSQL cluster, started on first use.
pub fn postgres() -> &'static Postgres {
    static CLUSTER: OnceLock<Postgres> = OnceLock::new();
    CLUSTER.get_or_init(Postgres::dedicated)
}

/// The superuser `initdb` creates.
const SUPERUSER: &str = "sealroom";

/// Makes `cmd` run as [`unprivileged`]'s user, when there is one.
fn as_postgres_user(cmd: &mut Command) {
    if let Some((uid, gid)) = unprivileged() {
        cmd.uid(uid).gid(gid);
    }
}

impl Postgres {
    /// A new cluster of the caller's own: `initdb` in a fresh directory, started on a free
    /// port.
    pub fn dedicated() -> Postgres {
        remove_stale("sealroom-pg-");
        let initdb = pg_bin().join("initdb");
        assert!(
            initdb.exists(),
            "PostgreSQL's initdb is not installed ({}): `cargo xtask test` installs Debian's postgresql",
            initdb.display()
        );
        let dir = std::env::temp_dir().join(format!("sealroom-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if let Some((uid, gid)) = unprivileged() {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the cluster dir");
        }
        let mut init = Command::new(&initdb);
        init.args(["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--username", SUPERUSER, "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null());
        as_postgres_user(&mut init);
        let out = init.output().expect("initdb runs");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        // A free port, tried until the server takes one (another process may take it first).
        for _ in 0..5 {
            let pg = Postgres {
                port: free_port(),
                dir: dir.clone(),
                next: AtomicU32::new(0),
                server: Default::default(),
            };
            if pg.launch() {
                return pg;
            }
        }
        panic!("PostgreSQL did not start: {}", pg_log(&dir));
    }

    /// Starts the server on its port; false if it exited at once (the port was taken).
    fn launch(&self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("log file");
        if let Some((uid, gid)) = unprivileged() {
            let _ = std::os::unix::fs::chown(self.dir.join("server.log"), Some(uid), Some(gid));
        }
        let args: Vec<String> = [
            "-D",
            &self.dir.join("data").to_string_lossy(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &format!("port={}", self.port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=400",
            "-c",
            "shared_buffers=64MB",
            "-c",
            "log_min_messages=warning",
        ]
        .map(str::to_owned)
        .to_vec();
        // SIGINT is PostgreSQL's fast shutdown: it ends its sessions and stops cleanly.
        let mut server = spawn_for_process_lifetime(&pg_bin().join("postgres"), &args, "INT", |cmd| {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
            as_postgres_user(cmd);
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = server.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                *self.server.lock().unwrap() = Some(server);
                self.wait_ready();
                return true;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start: {}", pg_log(&self.dir));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: its sessions end) and waits for it.
    pub fn stop(&self) {
        if let Some(mut server) = self.server.lock().unwrap().take() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(server.id() as i32).expect("a pid"),
                rustix::process::Signal::INT,
            );
            let _ = server.wait();
        }
    }

    /// Starts it again on its port, after [`Postgres::stop`].
    pub fn start(&self) {
        assert!(self.launch(), "PostgreSQL did not start again on port {}: {}", self.port, pg_log(&self.dir));
    }

    /// Waits until the server accepts sessions (it listens before it has finished starting).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(pg_bin().join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL is not ready: {}", pg_log(&self.dir));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` in this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` in `database` with `psql`, and returns the rows, one per line, columns
    /// joined by `|` (`psql -At`).
    pub fn psql(&self, database: &str, sql: &str) -> Vec<String> {
        psql(&self.url(database), sql)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `sql` against the database at `url` with `psql`; the rows, one per line, columns
/// joined by `|`.
pub fn psql(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .or_else(|_| {
            Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
                .output()
        })
        .expect("psql runs");
    assert!(out.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// A `psql` session on `url` reading commands from its piped stdin, its output piped.
pub fn psql_session(url: &str) -> Child {
    Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("psql runs")
}

/// Everything the database at `url` holds, as `pg_dump` writes it (plain SQL).
pub fn pg_dump(url: &str) -> Vec<u8> {
    let out = Command::new(pg_bin().join("pg_dump"))
        .args(["--no-owner", "-d", url])
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn pg_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// A NATS server of this test's own on 127.0.0.1 (Debian's `nats-server`), on a free port that
/// it keeps across [`Nats::stop`] and [`Nats::start`]; stopped when dropped.
#[derive(Debug)]
pub struct Nats {
    port: u16,
    server: Option<Child>,
}

impl Nats {
    /// Starts one on a free port.
    pub fn new() -> Nats {
        let mut nats = Nats { port: free_port(), server: None };
        nats.start();
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port.
    pub fn start(&mut self) {
        assert!(self.server.is_none(), "NATS is running already");
        // Debian installs it in /usr/sbin, which not every user's PATH has.
        let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let args: Vec<String> = ["-a", "127.0.0.1", "-p", &self.port.to_string()].map(str::to_owned).to_vec();
        let server = spawn_for_process_lifetime(&program, &args, "TERM", |cmd| {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        });
        self.server = Some(server);
        wait_for_port(self.port, Duration::from_secs(20), "nats-server");
    }

    /// Stops it at once (SIGKILL: connections drop, nothing is flushed), and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Default for Nats {
    fn default() -> Self {
        Nats::new()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
