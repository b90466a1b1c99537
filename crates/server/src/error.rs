//! The server's error type: API errors go to the client as they are; everything else is
//! logged and becomes a bare `internal` error, so database and I/O details never leak.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sealroom_protocol::{ApiError, ErrorCode};

/// Any failure of a handler or service.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A failure the client caused or must know about, with its stable code.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Too many attempts: retry after this many seconds.
    #[error("rate limited for {0} s")]
    RateLimited(u64),
    /// Too many passwords are being checked at once: retry after this many seconds.
    #[error("password hashing busy for {0} s")]
    Busy(u64),
    /// A blocking task was cancelled.
    #[error("blocking task failed")]
    Blocking,
    /// Hashing a credential failed.
    #[error("argon2: {0}")]
    Argon2(argon2::password_hash::Error),
    /// Signing a session token failed.
    #[error("jwt: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// Reading or writing an attachment file failed.
    #[error("blob storage: {0}")]
    BlobIo(#[from] std::io::Error),
    /// A handler ran without the relay registered as app data (a wiring mistake).
    #[error("the relay is not registered with the web app")]
    NoRelay,
}

impl From<actix_web::error::BlockingError> for ServerError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        ServerError::Blocking
    }
}

impl ServerError {
    /// Shorthand for an API error.
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerError::Api(ApiError::new(code, message))
    }

    /// What the client sees.
    pub fn sanitized(&self) -> ApiError {
        match self {
            ServerError::Api(e) => e.clone(),
            ServerError::RateLimited(secs) => {
                ApiError::new(ErrorCode::RateLimited, format!("too many attempts; try again in {secs} s"))
            }
            ServerError::Busy(secs) => ApiError::new(
                ErrorCode::RateLimited,
                format!("the server is busy checking passwords; try again in {secs} s"),
            ),
            ServerError::Store(e) if e.is_unreachable() => {
                tracing::warn!(error = %e, "the database is unreachable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the relay cannot reach its database; try again shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

impl ResponseError for ServerError {
    fn status_code(&self) -> StatusCode {
        match self {
            ServerError::Api(e) => {
                StatusCode::from_u16(e.error.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ServerError::RateLimited(_) | ServerError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ServerError::Store(e) if e.is_unreachable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = self.sanitized();
        let mut resp = HttpResponse::build(self.status_code());
        // Counted by the relay's metrics middleware, which has the relay at hand.
        resp.extensions_mut().insert(body.error);
        if let ServerError::RateLimited(secs) | ServerError::Busy(secs) = self {
            resp.insert_header(("Retry-After", secs.to_string()));
        }
        resp.json(body)
    }
}

/// Result alias.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// Why the relay could not start: an unusable data dir, secret, web client or database.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file or directory could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value the relay was given or found is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl StartError {
    /// An I/O failure while doing `context`.
    pub fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> StartError {
        let context = context.to_string();
        move |source| StartError::Io { context, source }
    }
}

impl From<std::io::Error> for StartError {
    fn from(source: std::io::Error) -> Self {
        StartError::Io { context: "i/o".into(), source }
    }
}
