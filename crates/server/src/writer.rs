//! Group commit: one thread with one connection does the relay's hot writes (messages,
//! receipts, clears), many at a time in one transaction and one fsync.
//!
//! A write is queued the moment [`Writer::write`] is called (not when its future is first
//! polled), so writes queued one after another by one connection are stored in that order. The
//! thread takes every write waiting when it is free (at most [`MAX_BATCH`]), runs each in its
//! own savepoint (one that fails or panics is rolled back alone and gets its error), commits
//! once, and only then answers them all: nothing is acknowledged or relayed before it is on
//! disk, as with a transaction per write, but the fsync is shared. There is no waiting for a
//! batch to fill: while one commit is on its way to the disk, the next batch gathers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use crate::db::DbConn;
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::result::Error as DieselError;
use tokio::sync::oneshot;

use crate::error::{Result, ServerError};
use crate::store::StoreError;

/// Writes in one transaction at most.
pub const MAX_BATCH: usize = 512;

/// How often committed pages are copied from the WAL into the database file.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What the writer is asked to do: run in a savepoint, then hear how the commit went.
trait Job: Send {
    /// Runs the write inside the batch's transaction, keeping its outcome.
    fn run(&mut self, conn: &mut DbConn);
    /// Answers the caller: its outcome if the batch committed, else the commit's error.
    fn answer(self: Box<Self>, commit: std::result::Result<(), &str>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &mut DbConn) {
        if let Some(work) = self.work.take() {
            self.outcome = Some(in_savepoint(conn, work));
        }
    }

    fn answer(self: Box<Self>, commit: std::result::Result<(), &str>) {
        let outcome = match (self.outcome, commit) {
            // A refusal stands whatever became of the batch.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(why)) => Err(StoreError::Commit(why.to_owned()).into()),
            (None, Err(why)) => Err(StoreError::Commit(why.to_owned()).into()),
            (None, Ok(())) => Err(StoreError::Commit("the write never ran".into()).into()),
        };
        // The caller may have gone (its connection closed); the write stands regardless.
        let _ = self.reply.send(outcome);
    }
}

/// Runs `work` in a savepoint: kept if it succeeds, rolled back alone if it fails or panics.
fn in_savepoint<T>(conn: &mut DbConn, work: impl FnOnce(&mut DbConn) -> Result<T>) -> Result<T> {
    let mut outcome = None;
    let savepoint = crate::store::savepoint::<(), DieselError, _>(conn, |conn| {
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Commit("a write panicked".into()).into()));
        let failed = result.is_err();
        outcome = Some(result);
        if failed {
            Err(DieselError::RollbackTransaction)
        } else {
            Ok(())
        }
    });
    match (outcome, savepoint) {
        (Some(Err(e)), _) => Err(e),
        (Some(Ok(value)), Ok(())) => Ok(value),
        (_, Err(e)) => Err(StoreError::from(e).into()),
        (None, Ok(())) => Err(StoreError::Commit("the write never ran".into()).into()),
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed (or tried).
    pub commits: AtomicU64,
    /// Writes run in them.
    pub writes: AtomicU64,
}

/// The handle to the writer thread; cloned freely. The thread ends once every handle is gone,
/// after answering what was queued.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    stats: Arc<WriterStats>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread; `connect` opens (and reopens, after a failed commit) its
    /// connection.
    ///
    /// The writer's commits never checkpoint the WAL themselves (that would stall every write
    /// queued behind one commit): a second thread with its own connection checkpoints
    /// passively every [`CHECKPOINT_EVERY`], which copies committed pages into the database
    /// file without blocking the writer or readers.
    pub fn start(
        connect: impl Fn() -> std::result::Result<DbConn, StoreError> + Send + 'static,
    ) -> std::result::Result<Self, StoreError> {
        let conn = without_autocheckpoint(connect()?)?;
        // On PostgreSQL the server itself checkpoints: no thread for it here.
        let checkpointer = if conn.is_sqlite() { Some(connect()?) } else { None };
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let stats = Arc::new(WriterStats::default());
        let counts = stats.clone();
        let alive = Arc::downgrade(&stats);
        std::thread::Builder::new()
            .name("sealroom-writer".into())
            .spawn(move || run(conn, || without_autocheckpoint(connect()?), &jobs, &counts))
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        let Some(mut checkpointer) = checkpointer else { return Ok(Writer { queue, stats }) };
        std::thread::Builder::new()
            .name("sealroom-checkpoint".into())
            .spawn(move || {
                // Until the writer's last handle is gone.
                while alive.upgrade().is_some() {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if let Err(e) = checkpointer.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "a WAL checkpoint failed; the next one will retry");
                    }
                }
            })
            .map_err(|e| StoreError::Open(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Writer { queue, stats })
    }

    /// Queues `work` now; the future resolves once its batch is on disk (or failed). Writes
    /// queued in order are stored in that order.
    pub fn write<T, F>(&self, work: F) -> impl std::future::Future<Output = Result<T>> + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue.send(Box::new(Pending { work: Some(work), outcome: None, reply })).is_ok();
        async move {
            if !queued {
                return Err(ServerError::Blocking);
            }
            answer.await.map_err(|_| ServerError::Blocking)?
        }
    }

    /// Commits and writes so far.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

fn run(
    mut conn: DbConn,
    connect: impl Fn() -> std::result::Result<DbConn, StoreError>,
    jobs: &mpsc::Receiver<Box<dyn Job>>,
    stats: &WriterStats,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = crate::db::write_transaction::<(), DieselError, _>(&mut conn, |conn| {
            for job in &mut batch {
                job.run(conn);
            }
            Ok(())
        });
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let failure = committed.as_ref().err().map(ToString::to_string);
        if let Some(why) = &failure {
            tracing::error!(error = %why, writes = batch.len(), "a group commit failed; nothing of it was acknowledged");
        }
        let commit = failure.as_deref().map_or(Ok(()), Err);
        for job in batch {
            job.answer(commit);
        }
        // After a failed commit the connection may be left inside a broken transaction: start
        // afresh rather than fail every later batch.
        if failure.is_some()
            || <DbConn as diesel::Connection>::TransactionManager::transaction_manager_status_mut(&mut conn)
                .transaction_depth()
                .is_err()
        {
            match connect() {
                Ok(fresh) => conn = fresh,
                Err(e) => tracing::error!(error = %e, "cannot reopen the writer's connection"),
            }
        }
    }
    // Leave the WAL tidy for whoever opens the file next.
    if conn.is_sqlite() {
        let _ = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);");
    }
}

/// The writer's SQLite connection leaves checkpoints to the checkpoint thread.
fn without_autocheckpoint(mut conn: DbConn) -> std::result::Result<DbConn, StoreError> {
    if conn.is_sqlite() {
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0;")?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::BigInt;
    use diesel::Connection;
    use diesel::RunQueryDsl;

    fn open(path: &std::path::Path) -> std::result::Result<DbConn, StoreError> {
        let mut conn =
            DbConn::establish(&path.display().to_string()).map_err(|e| StoreError::Open(e.to_string()))?;
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (v INTEGER NOT NULL UNIQUE);",
        )?;
        Ok(conn)
    }

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Many writes queued at once share commits; each failing or panicking write is rolled
    /// back alone and gets its own error, and the rest are stored in the order queued.
    #[tokio::test]
    async fn writes_share_commits_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let connect_path = path.clone();
        let writer = Writer::start(move || open(&connect_path)).unwrap();
        let mut pending = Vec::new();
        for i in 0..2000_i64 {
            pending.push(writer.write(move |conn| {
                if i % 100 == 7 {
                    // A duplicate: the UNIQUE constraint refuses it, after a row was written.
                    diesel::sql_query(format!("INSERT INTO t (v) VALUES ({})", 1_000_000 + i))
                        .execute(conn)
                        .map_err(StoreError::from)?;
                    diesel::sql_query(format!("INSERT INTO t (v) VALUES ({})", i - 1))
                        .execute(conn)
                        .map_err(StoreError::from)?;
                }
                if i % 100 == 8 {
                    panic!("a bug in one write");
                }
                diesel::sql_query(format!("INSERT INTO t (v) VALUES ({i})"))
                    .execute(conn)
                    .map_err(StoreError::from)?;
                Ok(i)
            }));
        }
        let mut stored = Vec::new();
        for (i, write) in pending.into_iter().enumerate() {
            match write.await {
                Ok(v) => stored.push(v),
                Err(_) => assert!(i % 100 == 7 || i % 100 == 8, "write {i} failed"),
            }
        }
        assert_eq!(stored.len(), 2000 - 40);
        let stats = writer.stats();
        assert_eq!(stats.writes.load(Ordering::Relaxed), 2000);
        assert!(stats.commits.load(Ordering::Relaxed) < 2000, "writes queued together share commits");
        drop(writer);
        let mut conn = open(&path).unwrap();
        let rows: Vec<Count> =
            diesel::sql_query("SELECT v AS n FROM t ORDER BY rowid").load(&mut conn).unwrap();
        let rows: Vec<i64> = rows.into_iter().map(|r| r.n).collect();
        assert_eq!(
            rows, stored,
            "exactly the acknowledged writes, in the order queued; nothing of a failed one"
        );
    }
}
