//! Attachments: encrypt a file as it streams to the relay, and stream a blob back through
//! decryption into a file, never holding either whole in memory.
//!
//! Sending: a random [`FileKey`], the STREAM construction chunk by chunk while the request
//! body is being sent, then a `File` payload (blob id, key, ciphertext SHA-256, size, name,
//! MIME type) in an ordinary end-to-end envelope. Receiving: the blob is decrypted into a part
//! file next to the destination; only when every chunk authenticated, the hash matched and the
//! size is the one the message states is the part file renamed into place.

use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use sealroom_crypto::{FileDecryptor, FileKey, FileRef, Payload, StreamEncryptor};
use sealroom_protocol::{blob_size_for, ApiError, BlobId, ErrorCode, MessageId, StorageInfo, UploadResponse};
use tokio::io::AsyncWriteExt as _;

use sealroom_protocol::endpoint::{BlobInfo, DeleteBlob, DownloadBlob, Endpoint, UploadBlob};

use crate::{parse, ClientError, Message, Result, Session};

/// Plaintext read from disk per step while encrypting.
const READ_STEP: usize = 1 << 20;

/// An uploaded, not yet sent attachment.
#[derive(Debug)]
pub struct Upload {
    /// What goes into the message payload.
    pub file: FileRef,
    /// The relay's id (the same as `file.blob_id`).
    pub blob_id: BlobId,
}

/// A MIME type from a file name's extension (the relay never sees it; the recipient's client
/// uses it to decide how to show the file).
pub fn guess_mime(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        _ => "application/octet-stream",
    }
}

/// A file name that fits the payload: the last path component, at most 1,024 bytes.
fn payload_name(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let mut end = name.len().min(sealroom_crypto::MAX_FILE_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ClientError {
    ClientError::Io(format!("{what} {}: {e}", path.display()))
}

/// The error the relay would give, raised before sending a byte.
pub fn check_limits(info: &StorageInfo, file_size: u64) -> Result<()> {
    let Some(code) = info.refusal(file_size) else { return Ok(()) };
    let message = if code == ErrorCode::PayloadTooLarge {
        format!("the file is too large: the limit is {} bytes", info.max_file_size)
    } else {
        format!(
            "this upload would exceed your attachment storage quota of {} bytes ({} in use)",
            info.quota, info.used
        )
    };
    Err(ClientError::Api(ApiError::new(code, message)))
}

impl Session {
    /// This user's attachment storage and the relay's limits.
    pub async fn storage(&self) -> Result<StorageInfo> {
        self.get::<BlobInfo>(BlobInfo::PATH).await
    }

    /// Encrypts the file at `path` while streaming it to the relay.
    pub async fn upload_file(&self, path: &Path) -> Result<Upload> {
        let meta = tokio::fs::metadata(path).await.map_err(|e| io("cannot read", path, e))?;
        if !meta.is_file() {
            return Err(ClientError::Usage(format!("{} is not a file", path.display())));
        }
        let size = meta.len();
        check_limits(&self.storage().await?, size)?;

        let key = FileKey::generate()?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        let reader_path = path.to_path_buf();
        let reader_key = key.clone();
        // Read and encrypt on a blocking thread; the request body pulls from the channel, so at
        // most a few steps of ciphertext are in memory at once.
        let producer =
            tokio::task::spawn_blocking(move || encrypt_file(&reader_path, &reader_key, size, &tx));
        let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let url = self.client.url(UploadBlob::PATH)?;
        let sent = self
            .client
            .http
            .post(url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, blob_size_for(size))
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await;
        let hash = producer.await.map_err(|e| ClientError::Io(format!("encrypting failed: {e}")))?;
        let resp: UploadResponse = self.client.read_response(sent.map_err(ClientError::Http)?).await?;
        let hash = hash?;
        if resp.size != blob_size_for(size) {
            return Err(ClientError::Protocol(format!(
                "the relay stored {} bytes of a {}-byte blob",
                resp.size,
                blob_size_for(size)
            )));
        }
        let name = payload_name(path);
        let mime = guess_mime(&name).to_owned();
        Ok(Upload {
            file: FileRef {
                blob_id: resp.blob_id.to_string(),
                file_key: key,
                ciphertext_sha256: hash,
                size,
                name,
                mime,
            },
            blob_id: resp.blob_id,
        })
    }

    /// Uploads the file at `path` and sends it to `peer`; returns the message id.
    pub async fn send_file(&mut self, peer: &str, path: &Path, accept_new_key: bool) -> Result<MessageId> {
        let peer = parse(peer)?;
        // Check the key first, so a changed key does not leave an upload behind.
        self.peer_key(&peer, accept_new_key).await?;
        let conversation = self.conversation_with(&peer).await?;
        let upload = self.upload_file(path).await?;
        let payload = Payload::File(upload.file);
        let sent = async {
            let (client_msg_id, envelope) = self.seal_to(&peer, &payload, crate::now_ms() as u64)?;
            let mut conn = self.connect().await?;
            let id = conn
                .send_with_blobs_and_wait(conversation, client_msg_id, envelope, vec![upload.blob_id.clone()])
                .await?;
            conn.close().await;
            Ok(id)
        }
        .await;
        if sent.is_err() {
            // Withdraw the upload rather than leave it to expire.
            let _ = self.delete_upload(&upload.blob_id).await;
        }
        sent
    }

    /// Withdraws an uploaded blob that no message references.
    pub async fn delete_upload(&self, blob_id: &BlobId) -> Result<()> {
        self.client.call::<DeleteBlob>(&DeleteBlob::path(&[blob_id]), Some(&self.token), None).await
    }

    /// One stored message, decrypted (404 unless it is in one of this user's conversations and
    /// not cleared).
    pub async fn message(&mut self, id: MessageId) -> Result<Message> {
        let raw = self.message_raw(id).await?;
        self.decrypt(&raw).await
    }

    /// Downloads and decrypts the attachment of message `id` into `out`; returns what the
    /// message says about the file. `out` is written only if the whole file checks out.
    pub async fn get_file(&mut self, id: MessageId, out: &Path, overwrite: bool) -> Result<FileRef> {
        let message = self.message(id).await?;
        let Payload::File(file) = message.payload else {
            return Err(ClientError::Usage(format!("message {id} is not a file")));
        };
        self.download_file(&file, out, overwrite).await?;
        Ok(file)
    }

    /// Streams the blob of `file` through decryption into `out` (via a part file).
    pub async fn download_file(&self, file: &FileRef, out: &Path, overwrite: bool) -> Result<()> {
        if !overwrite && tokio::fs::try_exists(out).await.unwrap_or(false) {
            return Err(ClientError::Usage(format!("{} exists (use --force to replace it)", out.display())));
        }
        let blob_id = BlobId::parse(&file.blob_id).map_err(|_| ClientError::FileCorrupted)?;
        let part = part_path(out);
        let result = self.download_into(file, &blob_id, &part).await;
        match result {
            Ok(()) => tokio::fs::rename(&part, out).await.map_err(|e| {
                let _ = std::fs::remove_file(&part);
                io("cannot write", out, e)
            }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                Err(e)
            }
        }
    }

    async fn download_into(&self, file: &FileRef, blob_id: &BlobId, part: &Path) -> Result<()> {
        let url = self.client.url(&DownloadBlob::path(&[blob_id]))?;
        let resp =
            self.client.http.get(url).bearer_auth(&self.token).send().await.map_err(ClientError::Http)?;
        if !resp.status().is_success() {
            return self.client.read_response::<()>(resp).await;
        }
        let mut dest = tokio::fs::File::create(part).await.map_err(|e| io("cannot create", part, e))?;
        let mut dec = FileDecryptor::new(file);
        let mut plain = Vec::with_capacity(READ_STEP + 65_536);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ClientError::Http)?;
            dec.push(&chunk, &mut plain).map_err(|_| ClientError::FileCorrupted)?;
            if plain.len() >= READ_STEP {
                dest.write_all(&plain).await.map_err(|e| io("cannot write", part, e))?;
                plain.clear();
            }
        }
        dec.finish(&mut plain).map_err(|_| ClientError::FileCorrupted)?;
        dest.write_all(&plain).await.map_err(|e| io("cannot write", part, e))?;
        dest.sync_all().await.map_err(|e| io("cannot write", part, e))?;
        Ok(())
    }
}

/// `dir/.name.sealroom-part`: next to the destination, so the final rename stays on one
/// file system.
fn part_path(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "download".into());
    out.with_file_name(format!(".{name}.sealroom-part"))
}

/// Reads exactly `size` bytes of `path`, encrypting them into the channel; returns the
/// ciphertext hash. A file that changes size while being read is an error.
fn encrypt_file(
    path: &Path,
    key: &FileKey,
    size: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
) -> Result<[u8; 32]> {
    use std::io::Read as _;
    let fail = |e: ClientError| {
        let _ = tx.blocking_send(Err(std::io::Error::other("the upload was abandoned")));
        e
    };
    let mut f = std::fs::File::open(path).map_err(|e| fail(io("cannot read", path, e)))?;
    let mut enc = StreamEncryptor::new(key);
    let mut buf = vec![0u8; READ_STEP];
    let mut left = size;
    while left > 0 {
        let want = (left.min(READ_STEP as u64)) as usize;
        let n = f.read(&mut buf[..want]).map_err(|e| fail(io("cannot read", path, e)))?;
        if n == 0 {
            return Err(fail(ClientError::Io(format!("{} shrank while being sent", path.display()))));
        }
        left -= n as u64;
        let mut out = Vec::with_capacity(n + 64);
        enc.push(&buf[..n], &mut out).map_err(|e| fail(e.into()))?;
        if !out.is_empty() && tx.blocking_send(Ok(out)).is_err() {
            return Err(ClientError::Io("the upload was cut off".into()));
        }
    }
    let mut extra = [0u8; 1];
    if f.read(&mut extra).map_err(|e| fail(io("cannot read", path, e)))? != 0 {
        return Err(fail(ClientError::Io(format!("{} grew while being sent", path.display()))));
    }
    let mut out = Vec::with_capacity(65_552);
    let hash = enc.finish(&mut out).map_err(|e| fail(e.into()))?;
    if tx.blocking_send(Ok(out)).is_err() {
        return Err(ClientError::Io("the upload was cut off".into()));
    }
    Ok(hash)
}
