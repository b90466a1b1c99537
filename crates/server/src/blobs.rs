//! Attachment blobs: opaque, client-encrypted files, streamed to and from `<data-dir>/blobs`.
//!
//! An upload streams into `blobs/tmp/<random>.part` (never whole in memory), is fsynced,
//! renamed to `blobs/<id>`, and only then recorded in the database; a failed or cut-off upload
//! deletes its part file, and the start-up sweep removes any that a crash left behind (and any
//! blob file without a row). A download streams the file back to the members of a conversation
//! with a visible message that references it; anyone else gets 404, as for an unknown id.

use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_web::http::header::{ContentDisposition, DispositionType, CONTENT_LENGTH};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::StreamExt as _;
use rand_core::{OsRng, RngCore};
use sealroom_protocol::{blob_size_for, BlobId, ErrorCode, StorageInfo, UploadResponse};
use tokio::io::AsyncWriteExt as _;

use crate::auth::AuthUser;
use crate::error::{Result, ServerError, StartError};
use crate::relay::blocking;
use crate::store;
use crate::{now_ms, Relay};

/// Bytes gathered from the request before each write to the part file.
const WRITE_BUFFER: usize = 1 << 20;

/// This upload's bytes in the relay's per-user in-flight count, given back when it ends
/// (committed or not).
struct InFlight<'a> {
    relay: &'a Relay,
    user: sealroom_protocol::UserId,
    bytes: u64,
}

impl InFlight<'_> {
    /// Adds `n` bytes; returns every in-flight byte of this user (this upload's included).
    fn add(&mut self, n: u64) -> u64 {
        self.bytes += n;
        let mut map = self.relay.uploads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = map.entry(self.user).or_default();
        *total += n;
        *total
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.relay.uploads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(total) = map.get_mut(&self.user) {
            *total = total.saturating_sub(self.bytes);
            if *total == 0 {
                map.remove(&self.user);
            }
        }
    }
}

/// Where blobs live on disk.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
    /// Shared with other relay nodes.
    shared: bool,
}

impl BlobStore {
    /// Opens (creating) `<data_dir>/blobs` and empties its `tmp` folder: a part file there is
    /// an upload that never finished.
    ///
    /// `shared`: the directory is shared with other relay nodes, which may be uploading right
    /// now; only what has not changed for [`SHARED_GRACE`] is another node's leftover.
    pub fn open(data_dir: &Path, shared: bool) -> Result<Self, StartError> {
        let dir = data_dir.join("blobs");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(StartError::io(format!("cannot create blob dir {}", tmp.display())))?;
        let mut removed = 0usize;
        for entry in std::fs::read_dir(&tmp)
            .map_err(StartError::io(format!("cannot read {}", tmp.display())))?
            .flatten()
        {
            if (!shared || settled(&entry.path())) && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed unfinished uploads");
        }
        Ok(BlobStore { dir, tmp, shared })
    }

    /// The file of blob `id` (the id is validated, so it is a plain file name).
    pub fn path(&self, id: &BlobId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// Removes the files of deleted blobs (after their rows were deleted and committed), on
    /// the blocking pool. Returns how many files it removed.
    pub async fn remove(&self, ids: Vec<String>) -> u64 {
        if ids.is_empty() {
            return 0;
        }
        let store = self.clone();
        blocking(move || store.remove_now(&ids)).await.unwrap_or_else(|_| {
            tracing::warn!("removing blob files was cancelled; the start-up sweep will finish it");
            0
        })
    }

    fn remove_now(&self, ids: &[String]) -> u64 {
        let mut removed = 0;
        for id in ids {
            let Ok(id) = BlobId::parse(id) else { continue };
            match std::fs::remove_file(self.path(&id)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(blob = %id, error = %e, "cannot remove blob file"),
            }
        }
        removed
    }

    /// Blob files with no database row (a crash between rename and insert, or a failed
    /// removal): deletes them. Runs at start.
    pub fn sweep_orphans(&self, conn: &mut store::DbConn) -> Result<usize, StartError> {
        let mut removed = 0;
        let listing = std::fs::read_dir(&self.dir)
            .map_err(StartError::io(format!("cannot read {}", self.dir.display())))?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| BlobId::parse(n).ok()) else { continue };
            // Another node may be between its rename and its insert right now.
            if self.shared && !settled(&entry.path()) {
                continue;
            }
            if !store::blob_exists(conn, id.as_str())? {
                std::fs::remove_file(entry.path())
                    .map_err(StartError::io(format!("cannot remove {}", entry.path().display())))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// How long a file in a blob directory shared by several nodes must have been left alone
/// before a starting node may take it for a leftover: an upload in progress writes far more
/// often (`--upload-idle-timeout`), and a rename is followed by its insert within a commit.
pub const SHARED_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `path` was last modified over [`SHARED_GRACE`] ago.
fn settled(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > SHARED_GRACE)
}

/// A part file that deletes itself unless the upload commits.
struct PartFile {
    path: PathBuf,
    committed: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn new_blob_id() -> Result<BlobId> {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    // 16 bytes in unpadded base64url are always 22 valid characters.
    Ok(BlobId::parse(&URL_SAFE_NO_PAD.encode(bytes)).expect("16 bytes encode to a valid blob id"))
}

fn too_large(max_file: u64) -> ServerError {
    ServerError::api(
        ErrorCode::PayloadTooLarge,
        format!("the file is too large: the limit is {} bytes", max_file),
    )
}

fn over_quota(quota: u64) -> ServerError {
    ServerError::api(
        ErrorCode::QuotaExceeded,
        format!("this upload would exceed your attachment storage quota of {quota} bytes"),
    )
}

/// `POST /api/blobs`: the body is the encrypted file, streamed to disk.
pub async fn upload(
    req: HttpRequest,
    state: web::Data<Relay>,
    user: AuthUser,
    mut body: web::Payload,
) -> Result<HttpResponse> {
    let config = &state.config;
    let max_blob = blob_size_for(config.max_upload);
    let quota = config.user_quota;
    let owner = user.id;
    // Everything this user has stored or is uploading right now counts: parallel uploads can
    // no longer each pass a quota that only the commit enforced.
    let mut in_flight = InFlight { relay: &state, user: owner, bytes: 0 };
    let mut used = stored_bytes(&state, owner).await?;
    // Refuse early what the declared length already rules out.
    if let Some(len) = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
        if len > max_blob {
            return Err(too_large(config.max_upload));
        }
        if used.saturating_add(in_flight.add(0)).saturating_add(len) > quota {
            return Err(over_quota(quota));
        }
    }

    let store = &state.blobs;
    let id = new_blob_id()?;
    let mut part = PartFile { path: store.tmp.join(format!("{id}.part")), committed: false };
    let mut file = tokio::fs::File::create(&part.path).await.map_err(io_error)?;
    let mut buffer: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let mut size: u64 = 0;
    loop {
        // An upload that sends nothing for a while is dropped (its part file deleted).
        let idle = config.upload_idle_timeout;
        let next =
            tokio::time::timeout(std::time::Duration::from_secs(idle), body.next()).await.map_err(|_| {
                ServerError::api(
                    ErrorCode::InvalidField,
                    format!("the upload stalled: nothing arrived for {idle} s"),
                )
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            ServerError::api(ErrorCode::InvalidField, format!("the upload was interrupted: {e}"))
        })?;
        size += chunk.len() as u64;
        if size > max_blob {
            return Err(too_large(config.max_upload));
        }
        if used.saturating_add(in_flight.add(chunk.len() as u64)) > quota {
            return Err(over_quota(quota));
        }
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= WRITE_BUFFER {
            file.write_all(&buffer).await.map_err(io_error)?;
            buffer.clear();
            // Others' uploads may have committed (moving their bytes from in flight to stored).
            used = stored_bytes(&state, owner).await?;
        }
    }
    if size == 0 {
        return Err(ServerError::api(ErrorCode::InvalidLength, "the upload is empty"));
    }
    file.write_all(&buffer).await.map_err(io_error)?;
    drop(buffer);
    file.sync_all().await.map_err(io_error)?;
    drop(file);

    let final_path = store.path(&id);
    tokio::fs::rename(&part.path, &final_path).await.map_err(io_error)?;
    part.path = final_path;
    let row_id = id.to_string();
    let stored = state
        .store
        .write(move |conn| Ok(store::insert_blob(conn, &row_id, owner, size as i64, quota as i64, now_ms())?))
        .await?;
    if !stored {
        return Err(over_quota(quota));
    }
    part.committed = true;
    state.metrics.blob_uploaded(size);
    tracing::info!(user = owner.0, blob = %id, size, "blob stored");
    Ok(HttpResponse::Created().json(UploadResponse { blob_id: id, size }))
}

/// Bytes of blobs `owner` has stored.
async fn stored_bytes(state: &Relay, owner: sealroom_protocol::UserId) -> Result<u64> {
    Ok(state.store.run(move |conn| Ok(store::blob_usage(conn, owner)?)).await?.max(0) as u64)
}

fn io_error(e: std::io::Error) -> ServerError {
    ServerError::BlobIo(e)
}

fn no_blob() -> ServerError {
    ServerError::api(ErrorCode::NotFound, "no such attachment")
}

/// `GET /api/blobs/{id}`: streams the blob to a member of a conversation that references it.
pub async fn download(
    req: HttpRequest,
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = BlobId::parse(&path).map_err(|_| no_blob())?;
    let me = user.id;
    let lookup = id.clone();
    state.store.run(move |conn| crate::policy::download(conn, me, &lookup)).await?;
    let file = NamedFile::open_async(state.blobs.path(&id)).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            // Deleted between the check and the open (a clear for both).
            no_blob()
        } else {
            io_error(e)
        }
    })?;
    state.metrics.blob_downloaded();
    Ok(file
        .set_content_type(actix_web::mime::APPLICATION_OCTET_STREAM)
        .set_content_disposition(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![],
        })
        .use_last_modified(false)
        .into_response(&req))
}

/// `DELETE /api/blobs/{id}`: the uploader withdraws a blob no message references yet.
pub async fn delete(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = BlobId::parse(&path).map_err(|_| no_blob())?;
    let me = user.id;
    let lookup = id.clone();
    state.store.write(move |conn| crate::policy::withdraw(conn, me, &lookup)).await?;
    let removed = state.blobs.remove(vec![id.to_string()]).await;
    state.metrics.blobs_deleted(removed);
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/blobs`: this user's usage and the limits.
pub async fn info(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    let me = user.id;
    let used = state.store.run(move |conn| Ok(store::blob_usage(conn, me)?)).await?;
    let c = &state.config;
    Ok(HttpResponse::Ok().json(StorageInfo {
        used: used.max(0) as u64,
        quota: c.user_quota,
        max_file_size: c.max_upload,
        max_blob_size: blob_size_for(c.max_upload),
        unattached_ttl_secs: c.unattached_ttl.as_secs(),
    }))
}

/// Deletes uploads that no message referenced within the TTL; runs at start and then every
/// few minutes.
pub async fn expire(state: &Relay) -> Result<usize> {
    let before = now_ms() - state.config.unattached_ttl.as_millis() as i64;
    let ids = state.store.write(move |conn| Ok(store::expire_unattached_blobs(conn, before)?)).await?;
    let n = ids.len();
    if n > 0 {
        let removed = state.blobs.remove(ids).await;
        state.metrics.blobs_deleted(removed);
        tracing::info!(expired = n, "expired unsent attachments");
    }
    Ok(n)
}
