//! Credentials and sessions: Argon2id over the client's `auth_key`, HS256 JWTs bound to a
//! session row (so logout takes effect at once), and the `AuthUser` extractor.

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm as JwtAlg, DecodingKey, EncodingKey, Header, Validation,
};
use rand_core::{OsRng, RngCore};
use sealroom_protocol::{ErrorCode, UserId, Username};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Result, ServerError, StartError};
use crate::{now_ms, store, Relay};

/// Name of the browser session cookie.
pub const COOKIE: &str = "sealroom_session";

/// The server's secret: signs JWTs and derives fake prelogin salts. Never logged.
pub struct ServerSecret(Vec<u8>);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl ServerSecret {
    /// From `SEALROOM_JWT_SECRET` if set (at least 32 bytes), else from `<data_dir>/jwt_secret`,
    /// generating that file (mode 0600) on first start. Relay nodes share it through a shared
    /// data dir, or are each given the same `SEALROOM_JWT_SECRET`.
    pub fn load(data_dir: &Path) -> Result<Self, StartError> {
        if let Ok(s) = std::env::var("SEALROOM_JWT_SECRET") {
            if s.len() < 32 {
                return Err(StartError::Invalid("SEALROOM_JWT_SECRET must be at least 32 characters".into()));
            }
            return Ok(ServerSecret(s.into_bytes()));
        }
        let path = data_dir.join("jwt_secret");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| {
                    StartError::Invalid(format!(
                        "{} is not hex; delete it to generate a new one",
                        path.display()
                    ))
                })?;
                if bytes.len() < 32 {
                    return Err(StartError::Invalid(format!("{} is too short", path.display())));
                }
                Ok(ServerSecret(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; 64];
                OsRng.fill_bytes(&mut bytes);
                // Written whole beside it, then linked into place, which fails if it exists:
                // relay nodes sharing the directory and starting together agree on one secret.
                let fresh = data_dir.join(format!(".jwt_secret.{}.new", std::process::id()));
                let _ = std::fs::remove_file(&fresh);
                write_private(&fresh, hex::encode(&bytes).as_bytes())?;
                let linked = std::fs::hard_link(&fresh, &path);
                let _ = std::fs::remove_file(&fresh);
                match linked {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "generated a new JWT secret");
                        Ok(ServerSecret(bytes))
                    }
                    // Another node generated it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(data_dir),
                    Err(e) => Err(StartError::io(format!("cannot create {}", path.display()))(e)),
                }
            }
            Err(e) => Err(StartError::io(format!("cannot read {}", path.display()))(e)),
        }
    }

    /// A stable fake salt for a username that has no account, so `prelogin` does not reveal
    /// which names exist.
    pub fn fake_salt(&self, username: &str) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"sealroom prelogin fake salt\0");
        mac.update(username.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&out[..16]);
        salt
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> Result<(), StartError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(StartError::io(format!("cannot create {}", path.display())))?;
    f.write_all(contents).map_err(StartError::io(format!("cannot write {}", path.display())))?;
    f.sync_all().map_err(StartError::io(format!("cannot write {}", path.display())))?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> Result<(), StartError> {
    std::fs::write(path, contents).map_err(StartError::io(format!("cannot create {}", path.display())))
}

/// Argon2id for the stored credential. `auth_key` is already a 256-bit key from the client's
/// production Argon2id, so these parameters only need to make a dump useless, not slow
/// guessing of a low-entropy secret: OWASP's minimum (19 MiB, t=2) keeps logins cheap.
/// The relay's Argon2id parameters for stored credentials: 19 MiB, 2 passes (OWASP's
/// minimum; the client already stretched the password with 64 MiB).
fn params() -> Params {
    Params::new(19_456, 2, 1, None).expect("constant Argon2 parameters are valid")
}

thread_local! {
    /// Argon2id's working memory, kept by each hashing thread ([`crate::ratelimit::HashGate`])
    /// and reused: allocating 19 MiB per hash left the allocator holding another 19 MiB after
    /// many of them (the relay grew without bound under a login burst).
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Argon2id of `secret` into `out` with these `params`, in this thread's reused memory, which
/// is wiped afterwards.
fn argon2id(secret: &[u8], salt: &[u8], params: Params, out: &mut [u8]) -> Result<(), argon2::Error> {
    use zeroize::Zeroize;
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let blocks = params.block_count();
        if memory.len() != blocks {
            *memory = vec![argon2::Block::default(); blocks];
        }
        let result = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into_with_memory(
            secret,
            salt,
            out,
            &mut memory[..],
        );
        memory.iter_mut().for_each(Zeroize::zeroize);
        result
    })
}

/// PHC string of Argon2id(auth_key) with a fresh salt.
pub fn hash_auth_key(auth_key: &[u8]) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut raw_salt).map_err(ServerError::Argon2)?;
    let mut out = [0u8; 32];
    let params = params();
    argon2id(auth_key, raw_salt, params.clone(), &mut out)
        .map_err(|e| ServerError::Argon2(argon2::password_hash::Error::from(e)))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(ServerError::Argon2)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(ServerError::Argon2)?),
    };
    Ok(phc.to_string())
}

/// Whether `auth_key` matches the PHC string `stored` (compared in constant time).
fn matches(auth_key: &[u8], stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else { return false };
    if phc.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&phc), phc.salt, phc.hash) else {
        return false;
    };
    let mut raw_salt = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut raw_salt) else { return false };
    let mut out = vec![0u8; expected.len()];
    if argon2id(auth_key, raw_salt, params, &mut out).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Checks `auth_key` against a stored hash; with `None` it burns the same time and fails, so
/// an unknown username answers as slowly as a wrong password.
pub fn verify_auth_key(auth_key: &[u8], stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_auth_key(&[0u8; 32]).unwrap_or_default());
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    matches(auth_key, hash) && real
}

/// JWT claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id (a string, as JWT's `sub` is).
    pub sub: String,
    /// Username.
    pub usr: String,
    /// Session id.
    pub sid: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires (seconds).
    pub exp: i64,
}

/// A new random session id.
pub fn new_session_id() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Signs a token for a session.
pub fn issue_token(
    secret: &ServerSecret,
    user: UserId,
    username: &str,
    sid: &str,
    expires_at_ms: i64,
) -> Result<String> {
    let claims = Claims {
        sub: user.to_string(),
        usr: username.to_owned(),
        sid: sid.to_owned(),
        iat: now_ms() / 1000,
        exp: expires_at_ms / 1000,
    };
    Ok(encode(&Header::new(JwtAlg::HS256), &claims, &EncodingKey::from_secret(&secret.0))?)
}

/// Verifies signature and expiry.
pub fn decode_token(secret: &ServerSecret, token: &str) -> Result<Claims> {
    let mut v = Validation::new(JwtAlg::HS256);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "sub"]);
    decode::<Claims>(token, &DecodingKey::from_secret(&secret.0), &v).map(|d| d.claims).map_err(|e| {
        match e.kind() {
            ErrorKind::ExpiredSignature => {
                ServerError::api(ErrorCode::TokenExpired, "the session has expired; log in again")
            }
            _ => ServerError::api(ErrorCode::Unauthorized, "invalid session token"),
        }
    })
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: UserId,
    /// Name.
    pub username: Username,
    /// Session id.
    pub session_id: String,
    /// When the session expires (ms).
    pub expires_at: i64,
}

/// Where the token came from: native clients send `Authorization: Bearer`, browsers the
/// session cookie, and must then pass the Origin check. For REST requests and the WebSocket
/// handshake alike.
pub fn token_of(headers: &HeaderMap, peer: Option<IpAddr>, state: &Relay) -> Result<String> {
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let text = h.to_str().unwrap_or_default();
        return text.strip_prefix("Bearer ").map(|t| t.trim().to_owned()).ok_or_else(|| {
            ServerError::api(ErrorCode::Unauthorized, "Authorization must be `Bearer <token>`")
        });
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';').map(str::trim))
        // As actix-web's `HttpRequest::cookie` reads them (percent-decoded).
        .filter_map(|c| actix_web::cookie::Cookie::parse_encoded(c).ok())
        .find(|c| c.name() == COOKIE);
    if let Some(c) = cookie {
        check_origin(headers, peer, state)?;
        return Ok(c.value().to_owned());
    }
    Err(ServerError::api(ErrorCode::Unauthorized, "log in first"))
}

/// A cookie-authenticated request must come from the relay's own origin (or a configured
/// one): SameSite=Strict already keeps other sites' requests cookie-less; this also refuses
/// cross-origin WebSockets, which SameSite does not cover everywhere.
fn check_origin(headers: &HeaderMap, peer: Option<IpAddr>, state: &Relay) -> Result<()> {
    let origin = headers.get(header::ORIGIN).map(|o| o.to_str().unwrap_or_default());
    crate::policy::origin(origin, state.proxies.host(peer, headers), &state.config.allowed_origins)
}

/// Resolves a token to its live session.
pub async fn authenticate(state: &Relay, token: &str) -> Result<AuthUser> {
    let claims = decode_token(&state.secret, token)?;
    let sid = claims.sid.clone();
    let session = state.store.run(move |conn| Ok(store::session(conn, &sid)?)).await?;
    crate::policy::session(claims, session, state.clock.now_ms())
}

impl FromRequest for AuthUser {
    type Error = ServerError;
    type Future = Pin<Box<dyn Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req.app_data::<web::Data<Relay>>().cloned().ok_or(ServerError::NoRelay)?;
            let token = token_of(req.headers(), req.peer_addr().map(|a| a.ip()), &state)?;
            authenticate(&state, &token).await
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_verify_including_those_argon2_wrote_itself() {
        let ours = hash_auth_key(&[2u8; 32]).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(verify_auth_key(&[2u8; 32], Some(&ours)));
        assert!(!verify_auth_key(&[3u8; 32], Some(&ours)));
        // A credential stored before the memory was reused (argon2's own PHC writer).
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(&[4u8; 32], &salt)
            .unwrap()
            .to_string();
        assert!(verify_auth_key(&[4u8; 32], Some(&theirs)));
        assert!(!verify_auth_key(&[5u8; 32], Some(&theirs)));
        // Unknown users and garbage never match.
        assert!(!verify_auth_key(&[0u8; 32], None));
        assert!(!verify_auth_key(&[2u8; 32], Some("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")));
        assert!(!verify_auth_key(&[2u8; 32], Some("not a phc string")));
        // The working memory stays with the thread, wiped.
        MEMORY.with(|m| {
            let m = m.borrow();
            assert_eq!(m.len(), 19_456);
            assert!(m.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        });
    }
}
