//! REST handlers: extract, validate, call a service or storage function, map the result.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use sealroom_protocol::endpoint::{Endpoint, Method};
use sealroom_protocol::{
    ApiError, ChangePasswordRequest, ClearRequest, ConversationFlags, ConversationsResponse, ErrorCode,
    Health, HistoryQuery, IdentityKey, KdfParams, KeyBackupVersion, LoginRequest, MarkReadRequest, Me,
    PreloginRequest, PreloginResponse, RegisterRequest, Salt, SealedBackup, SessionResponse,
    UpdateKeyBackupRequest, UserId, UserInfo, UserSearchResponse, Username,
};
use serde::Deserialize;

use crate::auth::{self, AuthUser};
use crate::db::{self, NewUser};
use crate::error::{Result, ServerError};
use crate::metrics::METRICS;
use crate::service::{self, with_db};
use crate::{now_ms, AppState};

/// The prefix every REST endpoint shares; its scope answers `not_found` for unknown paths.
const API: &str = "/api";

/// The route for endpoint `E`: its method, at its path inside the `/api` scope.
fn at<E: Endpoint>() -> (&'static str, actix_web::Route) {
    let route = match E::METHOD {
        Method::Get => web::get(),
        Method::Post => web::post(),
        Method::Put => web::put(),
        Method::Delete => web::delete(),
    };
    (E::PATH.strip_prefix(API).unwrap_or(E::PATH), route)
}

/// Mounts handlers at their endpoints' declared method and path.
macro_rules! mount {
    ($scope:expr, $($endpoint:ty => $handler:expr),* $(,)?) => {{
        let mut scope = $scope;
        $(
            let (path, route) = at::<$endpoint>();
            scope = scope.route(path, route.to($handler));
        )*
        scope
    }};
}

/// Mounts every `/api` route, each at the method and path declared in
/// [`sealroom_protocol::endpoint`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    use sealroom_protocol::endpoint as e;
    let scope = mount!(web::scope(API),
        e::Prelogin => prelogin,
        e::Register => register,
        e::Login => login,
        e::Logout => logout,
        e::LogoutAll => logout_all,
        e::ChangePassword => change_password,
        e::GetMe => me,
        e::PutKeyBackup => update_key_backup,
        e::SearchUsers => search_users,
        e::GetUser => get_user,
        e::Conversations => conversations,
        e::History => history,
        e::MarkRead => mark_read,
        e::Clear => clear,
        e::SetFlags => set_flags,
        e::GetMessage => get_message,
        e::UploadBlob => crate::blobs::upload,
        e::BlobInfo => crate::blobs::info,
        e::DownloadBlob => crate::blobs::download,
        e::DeleteBlob => crate::blobs::delete,
    );
    cfg.service(scope.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ServerError::api(ErrorCode::NotFound, "no such endpoint"))
    })));
}

/// Client-side KDF parameters the server accepts: the same range clients enforce.
fn check_kdf(k: &KdfParams) -> Result<()> {
    let ok = (65_536..=1 << 20).contains(&k.m_kib) && (3..=16).contains(&k.t) && (1..=8).contains(&k.p);
    if ok {
        Ok(())
    } else {
        Err(ServerError::api(
            ErrorCode::KdfParamsRejected,
            "Argon2id parameters must be at least m=65536 KiB, t=3, p=1 (and at most 1 GiB, 16, 8)",
        ))
    }
}

fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

fn limit(limiter: &crate::ratelimit::RateLimiter, key: &str) -> Result<()> {
    limiter.check(key).map_err(ServerError::RateLimited)
}

fn parse_peer(raw: &str) -> Result<Username> {
    Username::parse(raw).map_err(|e| ServerError::api(ErrorCode::InvalidUsername, e.to_string()))
}

fn me_of(row: &db::UserRow) -> Result<Me> {
    let bad = |what: &str| ServerError::Internal(format!("stored {what} is invalid"));
    Ok(Me {
        id: UserId(row.id),
        username: Username::parse(&row.username).map_err(|_| bad("username"))?,
        identity_key: IdentityKey::from_slice(&row.identity_key).map_err(|_| bad("identity key"))?,
        key_backup: SealedBackup::new(row.key_backup.clone()).map_err(|_| bad("key backup"))?,
        key_backup_version: row.key_backup_version,
        created_at: row.created_at,
    })
}

fn session_cookie(state: &AppState, token: String, ttl_secs: i64) -> Cookie<'static> {
    Cookie::build(auth::COOKIE, token)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies)
        .path("/")
        .max_age(CookieDuration::seconds(ttl_secs))
        .finish()
}

fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = session_cookie(state, String::new(), 0);
    c.make_removal();
    c
}

/// Creates a session for `user` (revoking the others in single-session mode) and answers with
/// the token in the body and in the cookie.
async fn start_session(
    state: &web::Data<AppState>,
    user: db::UserRow,
    created: bool,
) -> Result<HttpResponse> {
    let ttl = state.config.token_ttl.as_secs() as i64;
    let now = now_ms();
    let session = db::SessionRow {
        id: auth::new_session_id(),
        user_id: user.id,
        created_at: now,
        expires_at: now + ttl * 1000,
        revoked_at: None,
    };
    let single = state.config.single_session;
    let row = session.clone();
    let revoked = with_db(state, move |conn| {
        db::insert_session(conn, &row)?;
        if single {
            Ok(db::revoke_sessions(conn, row.user_id, Some(&row.id), now)?)
        } else {
            Ok(vec![])
        }
    })
    .await?;
    if !revoked.is_empty() {
        state.hub.revoke_sessions(user.id, &revoked, "signed in elsewhere (single-session mode)");
    }
    let token = auth::issue_token(&state.secret, user.id, &user.username, &session.id, session.expires_at)?;
    METRICS.login();
    let body = SessionResponse {
        token: token.clone(),
        session_id: session.id,
        expires_at: session.expires_at,
        user: me_of(&user)?,
    };
    let mut resp = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(resp.cookie(session_cookie(state, token, ttl)).json(body))
}

async fn prelogin(state: web::Data<AppState>, body: web::Json<PreloginRequest>) -> Result<HttpResponse> {
    let name = body.into_inner().username;
    let lookup = name.clone();
    let row = with_db(&state, move |conn| Ok(db::user_by_name(conn, lookup.as_str())?)).await?;
    let resp = match row {
        Some(u) => PreloginResponse {
            salt: Salt::from_slice(&u.kdf_salt)
                .map_err(|_| ServerError::Internal("stored salt invalid".into()))?,
            kdf: KdfParams { m_kib: u.kdf_m_kib as u32, t: u.kdf_t as u32, p: u.kdf_p as u32 },
        },
        None => PreloginResponse {
            salt: Salt(state.secret.fake_salt(name.as_str())),
            kdf: KdfParams { m_kib: 65_536, t: 3, p: 1 },
        },
    };
    Ok(HttpResponse::Ok().json(resp))
}

async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse> {
    let ip = client_ip(&req);
    limit(&state.auth_ip_total, &ip)?;
    limit(&state.auth_ip_limit, &ip)?;
    let body = body.into_inner();
    check_kdf(&body.kdf)?;
    if body.key_backup.as_bytes().is_empty() {
        return Err(ServerError::api(ErrorCode::InvalidLength, "key_backup is empty"));
    }
    let auth_key = body.auth_key;
    let hash = web::block(move || auth::hash_auth_key(&auth_key.0)).await??;
    let user = with_db(&state, move |conn| {
        let new = NewUser {
            username: body.username.as_str(),
            auth_hash: &hash,
            kdf_salt: &body.salt.0,
            kdf_m_kib: body.kdf.m_kib as i32,
            kdf_t: body.kdf.t as i32,
            kdf_p: body.kdf.p as i32,
            identity_key: &body.identity_key.0,
            key_backup: body.key_backup.as_bytes(),
            created_at: now_ms(),
        };
        db::insert_user(conn, &new).map_err(|e| {
            if db::is_unique_violation(&e) {
                ServerError::api(ErrorCode::UsernameTaken, format!("the name {} is taken", body.username))
            } else {
                e.into()
            }
        })
    })
    .await?;
    tracing::info!(user = user.id, "registered");
    start_session(&state, user, true).await
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let ip = client_ip(&req);
    limit(&state.auth_ip_total, &ip)?;
    state.auth_ip_limit.limited(&ip).map_err(ServerError::RateLimited)?;
    state.auth_user_limit.limited(body.username.as_str()).map_err(ServerError::RateLimited)?;
    let name = body.username.clone();
    let row = with_db(&state, move |conn| Ok(db::user_by_name(conn, name.as_str())?)).await?;
    let stored = row.as_ref().map(|u| u.auth_hash.clone());
    let ok = web::block(move || auth::verify_auth_key(&body.auth_key.0, stored.as_deref())).await?;
    match row {
        Some(user) if ok => start_session(&state, user, false).await,
        _ => {
            state.auth_ip_limit.hit(&ip);
            state.auth_user_limit.hit(body.username.as_str());
            Err(ServerError::api(ErrorCode::InvalidCredentials, "wrong username or password"))
        }
    }
}

async fn logout(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse> {
    let sid = user.session_id.clone();
    with_db(&state, move |conn| Ok(db::revoke_session(conn, &sid, now_ms())?)).await?;
    state.hub.revoke_sessions(user.id, &[user.session_id], "logged out");
    Ok(HttpResponse::NoContent().cookie(removal_cookie(&state)).finish())
}

async fn logout_all(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse> {
    let id = user.id;
    let revoked = with_db(&state, move |conn| Ok(db::revoke_sessions(conn, id, None, now_ms())?)).await?;
    state.hub.revoke_sessions(user.id, &revoked, "logged out everywhere");
    Ok(HttpResponse::NoContent().cookie(removal_cookie(&state)).finish())
}

async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse> {
    let id = user.id;
    let row = with_db(&state, move |conn| Ok(db::user_by_id(conn, id)?)).await?;
    let row = row.ok_or_else(|| ServerError::api(ErrorCode::Unauthorized, "the account no longer exists"))?;
    Ok(HttpResponse::Ok().json(me_of(&row)?))
}

async fn change_password(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse> {
    state.auth_user_limit.limited(user.username.as_str()).map_err(ServerError::RateLimited)?;
    let body = body.into_inner();
    check_kdf(&body.new_kdf)?;
    if body.new_key_backup.as_bytes().is_empty() {
        return Err(ServerError::api(ErrorCode::InvalidLength, "new_key_backup is empty"));
    }
    let id = user.id;
    let row = with_db(&state, move |conn| Ok(db::user_by_id(conn, id)?)).await?;
    let stored = row.map(|u| u.auth_hash);
    let current = body.auth_key;
    let new_key = body.new_auth_key;
    let (ok, new_hash) = web::block(move || {
        let ok = auth::verify_auth_key(&current.0, stored.as_deref());
        (ok, if ok { auth::hash_auth_key(&new_key.0).ok() } else { None })
    })
    .await?;
    if !ok {
        state.auth_user_limit.hit(user.username.as_str());
        return Err(ServerError::api(ErrorCode::InvalidCredentials, "the current password is wrong"));
    }
    let new_hash = new_hash.ok_or_else(|| ServerError::Internal("hashing failed".into()))?;
    let sid = user.session_id.clone();
    let (row, revoked) = with_db(&state, move |conn| {
        conn.immediate_transaction(|conn| {
            let k = body.new_kdf;
            db::change_password(
                conn,
                id,
                &new_hash,
                &body.new_salt.0,
                (k.m_kib as i32, k.t as i32, k.p as i32),
                body.new_key_backup.as_bytes(),
            )?;
            let revoked = db::revoke_sessions(conn, id, Some(&sid), now_ms())?;
            let row = db::user_by_id(conn, id)?.ok_or(diesel::result::Error::NotFound)?;
            Ok::<_, diesel::result::Error>((row, revoked))
        })
        .map_err(ServerError::from)
    })
    .await?;
    state.hub.revoke_sessions(user.id, &revoked, "password changed");
    tracing::info!(user = user.id, revoked = revoked.len(), "password changed");
    Ok(HttpResponse::Ok().json(me_of(&row)?))
}

async fn update_key_backup(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<UpdateKeyBackupRequest>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    if body.key_backup.as_bytes().is_empty() {
        return Err(ServerError::api(ErrorCode::InvalidLength, "key_backup is empty"));
    }
    let id = user.id;
    let version = with_db(&state, move |conn| {
        Ok(db::update_key_backup(conn, id, body.key_backup.as_bytes(), body.expected_version)?)
    })
    .await?;
    match version {
        Some(v) => Ok(HttpResponse::Ok().json(KeyBackupVersion { key_backup_version: v })),
        None => Err(ServerError::api(
            ErrorCode::StaleBackupVersion,
            "the key backup changed since you read it; fetch /api/me, merge, and retry",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<u32>,
}

async fn search_users(
    state: web::Data<AppState>,
    _user: AuthUser,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse> {
    let q = q.into_inner();
    let prefix = q.prefix.to_ascii_lowercase();
    if prefix.len() > sealroom_protocol::USERNAME_MAX
        || !prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ServerError::api(ErrorCode::InvalidField, "prefix: up to 32 of a-z, 0-9 and _"));
    }
    let limit = i64::from(q.limit.unwrap_or(20).clamp(1, sealroom_protocol::MAX_SEARCH));
    let rows = with_db(&state, move |conn| Ok(db::search_users(conn, &prefix, limit)?)).await?;
    let users = rows
        .into_iter()
        .filter_map(|(name, key)| {
            Some(UserInfo {
                username: Username::parse(&name).ok()?,
                identity_key: IdentityKey::from_slice(&key).ok()?,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(UserSearchResponse { users }))
}

async fn get_user(
    state: web::Data<AppState>,
    _user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = parse_peer(&path)?;
    let lookup = name.clone();
    let row = with_db(&state, move |conn| Ok(db::user_by_name(conn, lookup.as_str())?)).await?;
    let row = row.ok_or_else(|| ServerError::api(ErrorCode::NotFound, format!("no user named {name}")))?;
    let identity_key = IdentityKey::from_slice(&row.identity_key)
        .map_err(|_| ServerError::Internal("stored key invalid".into()))?;
    Ok(HttpResponse::Ok().json(UserInfo { username: name, identity_key }))
}

async fn conversations(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse> {
    let conversations = service::conversations(&state, &user).await?;
    Ok(HttpResponse::Ok().json(ConversationsResponse { conversations }))
}

async fn history(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    let peer = parse_peer(&path)?;
    Ok(HttpResponse::Ok().json(service::history(&state, &user, peer, q.into_inner()).await?))
}

async fn mark_read(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<MarkReadRequest>,
) -> Result<HttpResponse> {
    let peer = parse_peer(&path)?;
    service::mark(&state, &user, peer, body.up_to, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn clear(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<ClearRequest>,
) -> Result<HttpResponse> {
    let peer = parse_peer(&path)?;
    service::clear(&state, &user, peer, body.for_both).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn set_flags(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<ConversationFlags>,
) -> Result<HttpResponse> {
    let peer = parse_peer(&path)?;
    service::set_flags(&state, &user, peer, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_message(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let not_found = || ServerError::api(ErrorCode::NotFound, "no such message");
    let id: i64 = path.parse().map_err(|_| not_found())?;
    let me = user.id;
    let message = with_db(&state, move |conn| {
        let row = db::visible_message(conn, me, id)?.ok_or_else(not_found)?;
        service::to_wire(conn, vec![row])?.pop().ok_or_else(not_found)
    })
    .await?;
    Ok(HttpResponse::Ok().json(message))
}

/// `GET /healthz`: the database answers.
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse> {
    with_db(&state, |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1").execute(&mut **conn)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() }))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(METRICS.render())
}

/// JSON, query and path extractor errors as API errors with stable codes.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::Deserialize(e) => sealroom_protocol::classify_json_error(e),
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
        }
        J::ContentType => ApiError::new(ErrorCode::InvalidJson, "expected Content-Type: application/json"),
        _ => ApiError::new(ErrorCode::InvalidJson, "could not read the JSON body"),
    };
    ServerError::Api(api).into()
}

/// Query-string errors.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ServerError::api(ErrorCode::InvalidField, format!("invalid query: {err}")).into()
}
