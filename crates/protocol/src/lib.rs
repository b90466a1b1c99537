//! Sealroom's wire protocol: the types the relay and every client agree on.
//!
//! REST bodies ([`api`]), WebSocket frames ([`ws`]), ID newtypes, byte newtypes that travel
//! as base64 and check their length while decoding, usernames, limits, and the stable error
//! codes. It has no cryptography (the relay must not) and builds for wasm32.
//! `docs/PROTOCOL.md` documents every endpoint and frame.
//!
//! # Example
//!
//! ```
//! use sealroom_protocol::{parse_client_frame, ClientFrame, ErrorCode};
//!
//! let frame = parse_client_frame(r#"{"type":"sync","since":42}"#).unwrap();
//! assert!(matches!(frame, ClientFrame::Sync { .. }));
//! let err = parse_client_frame(r#"{"type":"teleport"}"#).unwrap_err();
//! assert_eq!(err.error, ErrorCode::UnknownFrame);
//! ```
#![deny(missing_docs)]

pub mod api;
mod blob;
mod bytes;
pub mod endpoint;
mod error;
pub mod groups;
mod ids;
pub mod limits;
pub mod mls;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod time;
mod username;
pub mod ws;

pub use api::*;
pub use blob::{BlobId, BlobIdError, BLOB_ID_LEN};
pub use bytes::{
    decode_b64, encode_b64, ArchiveBytes, AuthKeyBytes, BytesError, CertificateBytes, ClientMsgId, Envelope,
    GroupId, IdentityKey, MlsBytes, Salt, SealedBackup, SigningKey,
};
pub use endpoint::{Endpoint, Method};
pub use error::{classify_json_error, ApiError, ErrorCode};
pub use groups::*;
pub use ids::{ConversationId, MessageId, UserId};
pub use limits::*;
pub use username::{Username, UsernameError};
pub use ws::{parse_client_frame, ClientFrame, ServerFrame};

#[cfg(test)]
mod tests;
