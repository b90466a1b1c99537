//! `sealroom backup` and `sealroom restore`: a consistent copy of a running relay's data, and
//! the way back into a fresh data directory.
//!
//! A backup directory holds the database (`sealroom.db`, made by SQLite's `VACUUM INTO`, or
//! `sealroom.pgdump`, made by `pg_dump --format=custom`), the attachment files (`blobs/`), the
//! JWT secret (`jwt_secret`, unless the relay takes it from `SEALROOM_JWT_SECRET`) and
//! `MANIFEST.json`, written last: a directory without it is not a finished backup.
//!
//! Both database copies are one transaction's snapshot, taken while clients keep sending. The
//! attachment files are copied before and after it: a file is renamed into `blobs/` before its
//! row is written, so every row in the snapshot has its file in one of the two passes (unless
//! it was deleted in between, which is counted and said). Files copied that the snapshot has
//! no row for are removed by the restored relay's start-up sweep.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::StoreArgs;
use crate::db::Backend;

/// What `MANIFEST.json` says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// `sealroom-backup/1`.
    pub format: String,
    /// When the database snapshot was taken (Unix ms).
    pub created_at: i64,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Attachment files in the backup.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Attachments the snapshot has a row for whose file was deleted while the backup ran.
    pub blobs_missing: u64,
    /// Whether `jwt_secret` is in the backup (not when the relay reads `SEALROOM_JWT_SECRET`).
    pub jwt_secret: bool,
}

const FORMAT: &str = "sealroom-backup/1";
const SQLITE_FILE: &str = "sealroom.db";
const PG_FILE: &str = "sealroom.pgdump";

/// `sealroom backup --to DIR`.
pub fn backup(store: &StoreArgs, to: &Path) -> anyhow::Result<Manifest> {
    let url = store.database_url();
    let backend = Backend::of(&url);
    if backend == Backend::Sqlite && !Path::new(&url).exists() {
        bail!("there is no relay database at {url}: give the relay's --data-dir (or --database-url)");
    }
    if to.exists() && std::fs::read_dir(to).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} is not empty: back up into a new directory", to.display());
    }
    create_private_dir(to)?;
    let from_blobs = store.data_dir.join("blobs");
    let to_blobs = to.join("blobs");
    std::fs::create_dir_all(&to_blobs).with_context(|| format!("creating {}", to_blobs.display()))?;

    // Files first, then the snapshot, then the files that appeared meanwhile.
    copy_blobs(&from_blobs, &to_blobs)?;
    let created_at = crate::now_ms();
    match backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(&url).with_context(|| format!("opening {url}"))?;
            diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut conn)?;
            let target = to.join(SQLITE_FILE);
            diesel::sql_query("VACUUM INTO ?")
                .bind::<diesel::sql_types::Text, _>(target.to_string_lossy().as_ref())
                .execute(&mut conn)
                .context("copying the database (VACUUM INTO)")?;
        }
        Backend::Postgres => {
            let target = to.join(PG_FILE);
            run(postgres_tool("pg_dump", &url)
                .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
                .arg(&target))
            .context("copying the database (pg_dump)")?;
        }
    }
    copy_blobs(&from_blobs, &to_blobs)?;

    // Which of the snapshot's attachments have no file (deleted while the backup ran).
    let blobs_missing = match backend {
        Backend::Sqlite => {
            let mut copy = SqliteConnection::establish(&to.join(SQLITE_FILE).to_string_lossy())?;
            let ids: Vec<String> =
                crate::schema::blobs::table.select(crate::schema::blobs::id).load(&mut copy)?;
            ids.iter().filter(|id| !to_blobs.join(id).exists()).count() as u64
        }
        Backend::Postgres => 0,
    };
    let secret = store.data_dir.join("jwt_secret");
    let jwt_secret = secret.exists() && std::env::var_os("SEALROOM_JWT_SECRET").is_none();
    if jwt_secret {
        copy_file(&secret, &to.join("jwt_secret"))?;
    }
    let (blobs, blob_bytes) = count_files(&to_blobs)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at,
        database: match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .into(),
        blobs,
        blob_bytes,
        blobs_missing,
        jwt_secret,
    };
    write_synced(&to.join("MANIFEST.json"), serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    Ok(manifest)
}

/// `sealroom restore --from DIR` into a data directory (and, for PostgreSQL, an empty
/// database) that holds no relay yet.
pub fn restore(from: &Path, store: &StoreArgs) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(from.join("MANIFEST.json")).with_context(|| {
        format!("{} has no MANIFEST.json: it is not a finished Sealroom backup", from.display())
    })?;
    let manifest: Manifest = serde_json::from_str(&text).context("reading MANIFEST.json")?;
    if manifest.format != FORMAT {
        bail!("{} is a backup of format {}, which this relay does not read", from.display(), manifest.format);
    }
    let url = store.database_url();
    let backend = Backend::of(&url);
    match (manifest.database.as_str(), backend) {
        ("sqlite", Backend::Sqlite) | ("postgres", Backend::Postgres) => {}
        (made, _) => bail!(
            "the backup holds a {made} database; restore it into the same kind (--database-url for PostgreSQL)"
        ),
    }
    let dir = &store.data_dir;
    for existing in [dir.join("jwt_secret"), dir.join("sealroom.db")] {
        if existing.exists() {
            bail!(
                "{} exists: restore into a new data directory, never over a relay's data",
                existing.display()
            );
        }
    }
    let to_blobs = dir.join("blobs");
    if std::fs::read_dir(&to_blobs)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name() != "tmp")))
        .unwrap_or(false)
    {
        bail!("{} holds files: restore into a new data directory", to_blobs.display());
    }
    create_private_dir(dir)?;
    match backend {
        Backend::Sqlite => {
            if Path::new(&url).exists() {
                bail!("{url} exists: restore into a new database file");
            }
            copy_file(&from.join(SQLITE_FILE), Path::new(&url))?;
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&url)
                .with_context(|| format!("connecting to {}", crate::db::redacted(&url)))?;
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let tables = diesel::sql_query(
                "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .get_result::<Count>(&mut conn)?
            .n;
            if tables > 0 {
                bail!(
                    "the database {} has tables: restore into an empty database",
                    crate::db::redacted(&url)
                );
            }
            run(postgres_tool("pg_restore", &url)
                .args(["--no-owner", "--no-privileges", "--exit-on-error"])
                .arg(from.join(PG_FILE)))
            .context("restoring the database (pg_restore)")?;
        }
    }
    std::fs::create_dir_all(&to_blobs)?;
    copy_blobs(&from.join("blobs"), &to_blobs)?;
    if manifest.jwt_secret {
        copy_file(&from.join("jwt_secret"), &dir.join("jwt_secret"))?;
    }
    Ok(manifest)
}

/// Copies every finished attachment file in `from` that `to` lacks (never `tmp/`).
fn copy_blobs(from: &Path, to: &Path) -> anyhow::Result<()> {
    let listing = match std::fs::read_dir(from) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().filter(|n| sealroom_protocol::BlobId::parse(n).is_ok()) else {
            continue;
        };
        let target = to.join(id);
        if target.exists() {
            continue;
        }
        match copy_file(&entry.path(), &target) {
            Ok(()) => {}
            // Deleted since it was listed: the snapshot decides whether it was still needed.
            Err(_) if !entry.path().exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies through a temporary name and fsyncs, so a file in the backup is always whole.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).with_context(|| format!("copying {}", from.display()))?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, to).with_context(|| format!("writing {}", to.display()))?;
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn count_files(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let mut n = (0, 0);
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            n.0 += 1;
            n.1 += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    Ok(n)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// `pg_dump` or `pg_restore` on the database `url` names; its password goes in the child's
/// environment (`PGPASSWORD`), never in its arguments, which every user of the machine can read.
fn postgres_tool(program: &str, url: &str) -> Command {
    let (url, password) = crate::db::split_password(url);
    let mut cmd = Command::new(program);
    cmd.arg("--dbname").arg(url);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        // Its own words, which name no password (libpq never prints one).
        bail!("{program} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Where a restored relay's data went, for the closing words.
pub fn restored_words(m: &Manifest, store: &StoreArgs) -> String {
    let dir: PathBuf = store.data_dir.clone();
    format!(
        "restored the backup of {} ({} attachment files) into {}{}; start it with: sealroom serve --data-dir {}{}",
        crate::admin::utc(m.created_at),
        m.blobs,
        dir.display(),
        if m.jwt_secret { "" } else { " (the JWT secret was not in it: give the relay SEALROOM_JWT_SECRET)" },
        dir.display(),
        store.database_url.as_ref().map(|u| format!(" --database-url {}", crate::db::redacted(u))).unwrap_or_default(),
    )
}
