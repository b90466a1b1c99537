//! Attachment streams: a file encrypted in fixed 64 KiB chunks with the STREAM construction.
//!
//! ```text
//! chunk i  = ChaCha20-Poly1305(file_key, nonce_i, "sealroom/v1/attachment", plaintext chunk i)
//! nonce_i  = i as 11-byte big-endian | last flag (0x01 on the final chunk, else 0x00)
//! blob     = chunk 0 | chunk 1 | … (each chunk's plaintext is 65,536 bytes, the last 0..=65,536;
//!            the last is empty only when the whole file is)
//! ```
//! Truncation at a chunk boundary fails (the new final chunk was not sealed as final), so do
//! reordering, duplication, appending and any altered byte. Both directions hash the
//! ciphertext with SHA-256 as it passes, so the message can pin the exact blob.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::ChaCha20Poly1305;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::kdf::chacha_cipher;
use crate::payload::{FileKey, FileRef};
use crate::{Error, Result};

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Ciphertext bytes per full chunk.
pub const ENCRYPTED_CHUNK_SIZE: usize = CHUNK_SIZE + 16;
/// AAD of every chunk.
pub const AAD_ATTACHMENT: &[u8] = b"sealroom/v1/attachment";

/// Size of the blob for a file of `plaintext_len` bytes.
pub fn encrypted_size(plaintext_len: u64) -> u64 {
    let chunks = plaintext_len.div_ceil(CHUNK_SIZE as u64).max(1);
    plaintext_len + 16 * chunks
}

/// The nonce of chunk `counter`.
pub fn chunk_nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// Encrypts a file chunk by chunk without holding it whole.
pub struct StreamEncryptor {
    cipher: ChaCha20Poly1305,
    counter: u64,
    buf: Zeroizing<Vec<u8>>,
    hash: Sha256,
    chunk_size: usize,
}

impl std::fmt::Debug for StreamEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncryptor").field("counter", &self.counter).finish_non_exhaustive()
    }
}

impl StreamEncryptor {
    /// A new stream under `key`.
    pub fn new(key: &FileKey) -> Self {
        Self::with_chunk_size(key, CHUNK_SIZE)
    }

    /// A stream with small chunks, so that the fuzzer reaches the multi-chunk paths with small
    /// inputs. Only in fuzz builds: the format fixes [`CHUNK_SIZE`].
    #[cfg(fuzzing)]
    #[doc(hidden)]
    pub fn with_chunk_size_for_fuzzing(key: &FileKey, chunk_size: usize) -> Self {
        Self::with_chunk_size(key, chunk_size.max(1))
    }

    pub(crate) fn with_chunk_size(key: &FileKey, chunk_size: usize) -> Self {
        StreamEncryptor {
            cipher: chacha_cipher(&key.0),
            counter: 0,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + 16)),
            hash: Sha256::new(),
            chunk_size,
        }
    }

    /// Feeds plaintext; appends the ciphertext of every chunk that is now known not to be the
    /// last one to `out`. Holds back at most one chunk.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() {
            if self.buf.len() == self.chunk_size {
                // More data follows, so the buffered chunk is not the last.
                self.seal_buffered(false, out)?;
            }
            let take = (self.chunk_size - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        Ok(())
    }

    /// Seals the final chunk into `out` and returns the SHA-256 of the whole ciphertext.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<[u8; 32]> {
        self.seal_buffered(true, out)?;
        Ok(self.hash.finalize().into())
    }

    fn seal_buffered(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let nonce = chunk_nonce(self.counter, last);
        let start = out.len();
        out.extend_from_slice(&self.buf);
        let tag = self
            .cipher
            .encrypt_in_place_detached((&nonce).into(), AAD_ATTACHMENT, &mut out[start..])
            .map_err(|_| Error::TooLarge {
            what: "chunk",
            max: self.chunk_size,
            actual: self.buf.len(),
        })?;
        out.extend_from_slice(&tag);
        self.hash.update(&out[start..]);
        self.buf.clear();
        self.counter = self.counter.checked_add(1).ok_or(Error::TooLarge {
            what: "attachment (chunks)",
            max: usize::MAX,
            actual: usize::MAX,
        })?;
        Ok(())
    }
}

/// Decrypts a blob chunk by chunk, detecting truncation, reordering and tampering.
pub struct StreamDecryptor {
    cipher: ChaCha20Poly1305,
    counter: u64,
    buf: Vec<u8>,
    hash: Sha256,
    chunk_size: usize,
    failed: bool,
}

impl std::fmt::Debug for StreamDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecryptor").field("counter", &self.counter).finish_non_exhaustive()
    }
}

impl StreamDecryptor {
    /// A new stream under `key`.
    pub fn new(key: &FileKey) -> Self {
        Self::with_chunk_size(key, CHUNK_SIZE)
    }

    /// The decryptor of [`StreamEncryptor::with_chunk_size_for_fuzzing`]. Only in fuzz builds.
    #[cfg(fuzzing)]
    #[doc(hidden)]
    pub fn with_chunk_size_for_fuzzing(key: &FileKey, chunk_size: usize) -> Self {
        Self::with_chunk_size(key, chunk_size.max(1))
    }

    pub(crate) fn with_chunk_size(key: &FileKey, chunk_size: usize) -> Self {
        StreamDecryptor {
            cipher: chacha_cipher(&key.0),
            counter: 0,
            buf: Vec::with_capacity(chunk_size + 16),
            hash: Sha256::new(),
            chunk_size,
            failed: false,
        }
    }

    /// Feeds ciphertext; appends the plaintext of every chunk now known not to be the last to
    /// `out`. After an error the stream refuses further input.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::StreamFinished);
        }
        let full = self.chunk_size + 16;
        self.hash.update(input);
        while !input.is_empty() {
            if self.buf.len() == full {
                if let Err(e) = self.open_buffered(false, out) {
                    self.failed = true;
                    return Err(e);
                }
            }
            let take = (full - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        Ok(())
    }

    /// Opens the final chunk into `out`; returns the SHA-256 of the whole ciphertext.
    ///
    /// With `expected_sha256`, a blob whose hash differs is refused as [`Error::Decryption`].
    pub fn finish(mut self, expected_sha256: Option<&[u8; 32]>, out: &mut Vec<u8>) -> Result<[u8; 32]> {
        if self.failed {
            return Err(Error::StreamFinished);
        }
        let hash: [u8; 32] = self.hash.clone().finalize().into();
        if let Some(expected) = expected_sha256 {
            if !bool::from(hash.ct_eq(expected)) {
                return Err(Error::Decryption);
            }
        }
        // A final chunk shorter than a tag means the blob was cut inside a chunk.
        if self.buf.len() < 16 {
            return Err(Error::Decryption);
        }
        self.open_buffered(true, out)?;
        Ok(hash)
    }

    fn open_buffered(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let nonce = chunk_nonce(self.counter, last);
        let body_len = self.buf.len() - 16;
        let (body, tag) = self.buf.split_at(body_len);
        let start = out.len();
        out.extend_from_slice(body);
        if self
            .cipher
            .decrypt_in_place_detached((&nonce).into(), AAD_ATTACHMENT, &mut out[start..], tag.into())
            .is_err()
        {
            out.truncate(start);
            return Err(Error::Decryption);
        }
        // An empty final chunk is only valid as the sole chunk of an empty file.
        if last && body_len == 0 && self.counter != 0 {
            return Err(Error::Decryption);
        }
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }
}

/// Decrypts the blob a [`FileRef`] names, holding it to everything the message states: every
/// chunk authenticates, the ciphertext hashes to `ciphertext_sha256`, and the plaintext is
/// exactly `size` bytes (a longer one is refused as soon as it passes `size`). Any failure is
/// [`Error::Decryption`]; callers must discard what they were given.
pub struct FileDecryptor {
    inner: StreamDecryptor,
    sha256: [u8; 32],
    size: u64,
    written: u64,
}

impl std::fmt::Debug for FileDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDecryptor")
            .field("size", &self.size)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl FileDecryptor {
    /// A decryptor for `file`'s blob.
    pub fn new(file: &FileRef) -> Self {
        FileDecryptor {
            inner: StreamDecryptor::new(&file.file_key),
            sha256: file.ciphertext_sha256,
            size: file.size,
            written: 0,
        }
    }

    /// Feeds ciphertext; appends the plaintext known so far to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let before = out.len();
        self.inner.push(input, out)?;
        self.written += (out.len() - before) as u64;
        if self.written > self.size {
            return Err(Error::Decryption);
        }
        Ok(())
    }

    /// Opens the final chunk into `out` and checks the hash and the size.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<()> {
        let before = out.len();
        self.inner.finish(Some(&self.sha256), out)?;
        if self.written + (out.len() - before) as u64 != self.size {
            return Err(Error::Decryption);
        }
        Ok(())
    }
}

/// Encrypts a whole in-memory file; returns (blob, SHA-256 of the blob).
pub fn encrypt_attachment(key: &FileKey, plaintext: &[u8]) -> Result<(Vec<u8>, [u8; 32])> {
    let mut enc = StreamEncryptor::new(key);
    let mut out = Vec::with_capacity(encrypted_size(plaintext.len() as u64) as usize);
    enc.push(plaintext, &mut out)?;
    let hash = enc.finish(&mut out)?;
    Ok((out, hash))
}

/// Decrypts a whole in-memory blob, checking its hash when one is given.
pub fn decrypt_attachment(key: &FileKey, blob: &[u8], expected_sha256: Option<&[u8; 32]>) -> Result<Vec<u8>> {
    let mut dec = StreamDecryptor::new(key);
    let mut out = Vec::with_capacity(blob.len());
    dec.push(blob, &mut out)?;
    dec.finish(expected_sha256, &mut out)?;
    Ok(out)
}
