//! Stable error codes: every error a user or a hostile client can cause has one.

use serde::{Deserialize, Serialize};

/// A stable, snake_case error code. Clients match on these; the text that goes with them is
/// for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body or frame is not valid JSON.
    InvalidJson,
    /// A WebSocket frame has an unknown `type`.
    UnknownFrame,
    /// A field is missing, has the wrong type, or an invalid value.
    InvalidField,
    /// A byte field is not valid base64.
    InvalidBase64,
    /// A byte field has the wrong length.
    InvalidLength,
    /// A username breaks the username rules.
    InvalidUsername,
    /// Registration: the name is taken.
    UsernameTaken,
    /// Login or password change: wrong username or password.
    InvalidCredentials,
    /// No valid session token was presented.
    Unauthorized,
    /// The session was logged out or revoked.
    SessionRevoked,
    /// The session token expired.
    TokenExpired,
    /// A browser request came from another origin.
    BadOrigin,
    /// No such user, conversation or resource (for this user).
    NotFound,
    /// `send`: the recipient does not exist.
    UnknownRecipient,
    /// A WebSocket frame exceeds the frame limit.
    FrameTooLarge,
    /// An envelope exceeds the envelope limit (or is empty).
    EnvelopeTooLarge,
    /// A request body exceeds its limit.
    PayloadTooLarge,
    /// An upload would take the user's stored attachments over their quota.
    QuotaExceeded,
    /// `send`: a referenced blob does not exist, is not the sender's, or has expired.
    UnknownBlob,
    /// Too many attempts; retry after the `Retry-After` seconds.
    RateLimited,
    /// The path exists but not with this method (`Allow` lists the ones it has).
    MethodNotAllowed,
    /// A key backup update was based on an older version than the stored one.
    StaleBackupVersion,
    /// Registration needs an invite code here and none was given.
    InviteRequired,
    /// The invite code is wrong, used up, expired or revoked.
    InviteInvalid,
    /// This relay takes no new accounts.
    RegistrationClosed,
    /// The operator disabled this account: it may not sign in.
    AccountDisabled,
    /// Key derivation parameters outside the accepted range.
    KdfParamsRejected,
    /// The client speaks a protocol version the server does not.
    UnsupportedProtocol,
    /// A group entry was made in an epoch other than the group's current one (a concurrent
    /// commit won): process the log up to the current epoch, then retry.
    StaleEpoch,
    /// Only a group's admins may add members, remove others or change the admins; only the
    /// relay's admins may manage invites.
    NotAdmin,
    /// The group would have more members than the relay allows.
    GroupFull,
    /// This device was removed from its user's devices: it may no longer act.
    DeviceRevoked,
    /// The user's signing key is set and cannot be replaced, or a device id is taken.
    Conflict,
    /// The relay cannot do this now: it lost its database or, among several nodes, its message
    /// bus. It recovers by itself; retry shortly (another node may answer at once).
    Unavailable,
    /// Something failed on the server; details are in its log, not here.
    Internal,
}

impl ErrorCode {
    /// Every code (the OpenAPI description lists them per status).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::UnknownFrame,
        ErrorCode::InvalidField,
        ErrorCode::InvalidBase64,
        ErrorCode::InvalidLength,
        ErrorCode::InvalidUsername,
        ErrorCode::UsernameTaken,
        ErrorCode::InvalidCredentials,
        ErrorCode::Unauthorized,
        ErrorCode::SessionRevoked,
        ErrorCode::TokenExpired,
        ErrorCode::BadOrigin,
        ErrorCode::NotFound,
        ErrorCode::UnknownRecipient,
        ErrorCode::FrameTooLarge,
        ErrorCode::EnvelopeTooLarge,
        ErrorCode::PayloadTooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::UnknownBlob,
        ErrorCode::RateLimited,
        ErrorCode::MethodNotAllowed,
        ErrorCode::StaleBackupVersion,
        ErrorCode::InviteRequired,
        ErrorCode::InviteInvalid,
        ErrorCode::RegistrationClosed,
        ErrorCode::AccountDisabled,
        ErrorCode::KdfParamsRejected,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::StaleEpoch,
        ErrorCode::NotAdmin,
        ErrorCode::GroupFull,
        ErrorCode::DeviceRevoked,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The HTTP status a REST response with this code carries.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson | UnknownFrame | InvalidField | InvalidBase64 | InvalidLength | InvalidUsername
            | KdfParamsRejected | UnsupportedProtocol => 400,
            Unauthorized | SessionRevoked | TokenExpired | InvalidCredentials => 401,
            BadOrigin | NotAdmin | DeviceRevoked | InviteRequired | InviteInvalid | RegistrationClosed
            | AccountDisabled => 403,
            NotFound | UnknownRecipient | UnknownBlob => 404,
            UsernameTaken | StaleBackupVersion | StaleEpoch | GroupFull | Conflict => 409,
            FrameTooLarge | EnvelopeTooLarge | PayloadTooLarge | QuotaExceeded => 413,
            MethodNotAllowed => 405,
            RateLimited => 429,
            Internal => 500,
            Unavailable => 503,
        }
    }

    /// The code as its wire string.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            UnknownFrame => "unknown_frame",
            InvalidField => "invalid_field",
            InvalidBase64 => "invalid_base64",
            InvalidLength => "invalid_length",
            InvalidUsername => "invalid_username",
            UsernameTaken => "username_taken",
            InvalidCredentials => "invalid_credentials",
            Unauthorized => "unauthorized",
            SessionRevoked => "session_revoked",
            TokenExpired => "token_expired",
            BadOrigin => "bad_origin",
            NotFound => "not_found",
            UnknownRecipient => "unknown_recipient",
            FrameTooLarge => "frame_too_large",
            EnvelopeTooLarge => "envelope_too_large",
            PayloadTooLarge => "payload_too_large",
            QuotaExceeded => "quota_exceeded",
            UnknownBlob => "unknown_blob",
            RateLimited => "rate_limited",
            MethodNotAllowed => "method_not_allowed",
            StaleBackupVersion => "stale_backup_version",
            InviteRequired => "invite_required",
            InviteInvalid => "invite_invalid",
            RegistrationClosed => "registration_closed",
            AccountDisabled => "account_disabled",
            KdfParamsRejected => "kdf_params_rejected",
            UnsupportedProtocol => "unsupported_protocol",
            StaleEpoch => "stale_epoch",
            NotAdmin => "not_admin",
            GroupFull => "group_full",
            DeviceRevoked => "device_revoked",
            Conflict => "conflict",
            Unavailable => "unavailable",
            Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every REST error response: `{"error": "<code>", "message": "<text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{error}: {message}")]
pub struct ApiError {
    /// The stable code.
    pub error: ErrorCode,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// An error with a message.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { error, message: message.into() }
    }
}

impl From<crate::BytesError> for ApiError {
    fn from(e: crate::BytesError) -> Self {
        let code = match e {
            crate::BytesError::Base64 { .. } => ErrorCode::InvalidBase64,
            crate::BytesError::Length { .. } | crate::BytesError::Empty { .. } => ErrorCode::InvalidLength,
        };
        ApiError::new(code, e.to_string())
    }
}

/// Classifies a serde_json error into the most specific code, and keeps its text (which names
/// the field but never echoes a value).
pub fn classify_json_error(e: &serde_json::Error) -> ApiError {
    let text = e.to_string();
    let code = if e.is_syntax() || e.is_eof() {
        ErrorCode::InvalidJson
    } else if text.contains("invalid base64") {
        ErrorCode::InvalidBase64
    } else if text.contains("expected") && text.contains("bytes, got") {
        ErrorCode::InvalidLength
    } else if text.starts_with("invalid username") {
        ErrorCode::InvalidUsername
    } else {
        ErrorCode::InvalidField
    };
    ApiError::new(code, text)
}
