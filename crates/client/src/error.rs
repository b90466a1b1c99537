//! The client's error type.

use sealroom_protocol::ApiError;

/// What can go wrong in the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay refused the request, with a stable code.
    #[error("{}: {}", .0.error, .0.message)]
    Api(ApiError),
    /// The relay could not be reached or the connection failed.
    #[error("cannot reach the server: {0}")]
    Http(reqwest::Error),
    /// The WebSocket failed.
    #[error("connection failed: {0}")]
    WebSocket(String),
    /// Encryption or decryption failed (decryption failures never say why).
    #[error("{0}")]
    Crypto(#[from] sealroom_crypto::Error),
    /// The key backup did not open with this password: a wrong password, or it was altered.
    #[error("the key backup does not open with this password (wrong password, or it was altered)")]
    BackupUnreadable,
    /// A peer's identity key differs from the one pinned for them.
    #[error(
        "{peer}'s identity key has changed. Pinned safety number: {}; new: {new_safety_number}. \
         Compare the new number with {peer} before accepting it (--accept-new-key)",
        old_safety_number.as_deref().unwrap_or("none (your key backup has lost the key you checked; the server may have served an old copy)")
    )]
    KeyChanged {
        /// The peer.
        peer: String,
        /// Safety number with the pinned key; `None` when the pin was lost.
        old_safety_number: Option<String>,
        /// Safety number with the new key.
        new_safety_number: String,
    },
    /// A downloaded attachment failed authentication, its hash or its size: it was altered,
    /// cut short, or is not the file the message names. Nothing was written.
    #[error("the file is corrupted or was tampered with; nothing was saved")]
    FileCorrupted,
    /// Reading or writing a local file failed.
    #[error("{0}")]
    Io(String),
    /// The relay answered something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The caller gave an invalid argument.
    #[error("{0}")]
    Usage(String),
    /// The client core refused: the relay's identity key for this user is not the one in the
    /// backup, a message was addressed to someone else, and the like.
    #[error("{0}")]
    Session(sealroom_session::Error),
    /// Nothing arrived in time.
    #[error("timed out")]
    Timeout,
}

impl From<sealroom_protocol::BytesError> for ClientError {
    fn from(e: sealroom_protocol::BytesError) -> Self {
        ClientError::Usage(e.to_string())
    }
}

impl From<sealroom_session::Error> for ClientError {
    fn from(e: sealroom_session::Error) -> Self {
        use sealroom_session::Error as E;
        match e {
            E::BackupUnreadable => ClientError::BackupUnreadable,
            E::KeyChanged(c) => ClientError::KeyChanged {
                peer: c.peer.to_string(),
                old_safety_number: c.old_safety_number,
                new_safety_number: c.new_safety_number,
            },
            E::Crypto(e) => ClientError::Crypto(e),
            E::Undecryptable => ClientError::Crypto(sealroom_crypto::Error::Decryption),
            E::WeakPassword(why) => ClientError::Usage(format!("choose a stronger password: {why}")),
            other => ClientError::Session(other),
        }
    }
}
