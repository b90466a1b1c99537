//! REST handlers: extract, validate, call a service or storage function, map the result.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use sealroom_protocol::endpoint::{Endpoint, Method};
use sealroom_protocol::{
    ApiError, BlockList, ChangePasswordRequest, ClearRequest, ConversationFlags, ConversationId,
    ConversationsResponse, ErrorCode, Health, HistoryQuery, JsonObject, LoginRequest, MarkReadRequest,
    MessageId, OpenDirectRequest, PreloginRequest, RegisterRequest, UpdateKeyBackupRequest,
    UserSearchResponse, Username,
};
use sealroom_protocol::{
    AppendRequest, ArchiveList, ArchiveQuery, ArchiveStored, ArchiveUpload, ClaimKeyPackagesRequest,
    CreateGroupRequest, DeviceId, GroupList, GroupLogQuery, PublishSigningKeyRequest, RegisterDeviceRequest,
    UploadKeyPackagesRequest, WelcomesTakenRequest,
};
use serde::Deserialize;

use crate::accounts;
use crate::auth::{self, AuthUser};
use crate::error::{Result, ServerError};
use crate::groups;
use crate::service;
use crate::Relay;

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
        e::DeleteAccount => delete_account,
        e::PutKeyBackup => update_key_backup,
        e::SearchUsers => search_users,
        e::GetUser => get_user,
        e::Conversations => conversations,
        e::OpenDirect => open_direct,
        e::History => history,
        e::MarkRead => mark_read,
        e::Clear => clear,
        e::SetFlags => set_flags,
        e::GetMessage => get_message,
        e::Blocks => blocks,
        e::Block => block,
        e::Unblock => unblock,
        e::UploadBlob => crate::blobs::upload,
        e::BlobInfo => crate::blobs::info,
        e::DownloadBlob => crate::blobs::download,
        e::DeleteBlob => crate::blobs::delete,
        e::PublishSigningKey => publish_signing_key,
        e::RegisterDevice => register_device,
        e::Devices => devices,
        e::RemoveDevice => remove_device,
        e::UploadKeyPackages => upload_key_packages,
        e::Welcomes => welcomes,
        e::WelcomesTaken => welcomes_taken,
        e::ClaimKeyPackages => claim_key_packages,
        e::CreateGroup => create_group,
        e::MoveToMls => move_to_mls,
        e::Groups => groups,
        e::GetGroup => get_group,
        e::GetGroupInfo => get_group_info,
        e::AppendToGroup => append_to_group,
        e::LeaveGroup => leave_group,
        e::GroupLog => group_log,
        e::ArchiveMessages => archive_messages,
        e::Archive => archive_list,
        e::ArchivedHistory => archived_history,
        e::DeleteArchive => delete_archive,
        e::GetServerInfo => server_info,
        e::CreateInvite => create_invite,
        e::Invites => invites,
        e::RevokeInvite => revoke_invite,
        e::OpenApiDocument => openapi_document,
    );
    cfg.service(scope.default_service(web::to(|req: HttpRequest| async move {
        // A known path with another method is 405 with `Allow`; anything else is 404.
        let methods = sealroom_protocol::endpoint::methods_at(req.path());
        if methods.is_empty() {
            return Err::<HttpResponse, _>(ServerError::api(ErrorCode::NotFound, "no such endpoint"));
        }
        let allow = methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        let body = ApiError::new(ErrorCode::MethodNotAllowed, format!("this path answers {allow}"));
        Ok(HttpResponse::MethodNotAllowed().insert_header(("Allow", allow)).json(body))
    })));
}

/// Endpoint `E`'s JSON success: 201 Created when it creates something, else 200 (as its
/// declaration says, and the OpenAPI description with it).
fn success<E: Endpoint>(body: &E::Response) -> HttpResponse {
    if E::CREATES {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

fn parse_peer(raw: &str) -> Result<Username> {
    Username::parse(raw).map_err(|e| ServerError::api(ErrorCode::InvalidUsername, e.to_string()))
}

/// A conversation id from a path; a malformed one is answered like an unknown one.
fn parse_conversation(raw: &str) -> Result<ConversationId> {
    raw.parse().map(ConversationId).map_err(|_| ServerError::api(ErrorCode::NotFound, "no such conversation"))
}

fn session_cookie(state: &Relay, token: String, ttl_secs: i64) -> Cookie<'static> {
    Cookie::build(auth::COOKIE, token)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.cookies_secure())
        .path("/")
        .max_age(CookieDuration::seconds(ttl_secs))
        .finish()
}

fn removal_cookie(state: &Relay) -> Cookie<'static> {
    let mut c = session_cookie(state, String::new(), 0);
    c.make_removal();
    c
}

/// A granted session as the cookie (browsers) and the body (native clients).
fn granted(state: &Relay, g: accounts::Granted, created: bool) -> HttpResponse {
    let mut resp = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    resp.cookie(session_cookie(state, g.token, g.ttl_secs)).json(g.body)
}

async fn prelogin(
    state: web::Data<Relay>,
    body: web::Json<JsonObject<PreloginRequest>>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(accounts::prelogin(&state, body.into_inner().into_inner().username).await?))
}

async fn register(
    req: HttpRequest,
    state: web::Data<Relay>,
    body: web::Json<JsonObject<RegisterRequest>>,
) -> Result<HttpResponse> {
    let g =
        accounts::register(&state, &state.proxies.client_of(&req), body.into_inner().into_inner()).await?;
    Ok(granted(&state, g, true))
}

async fn login(
    req: HttpRequest,
    state: web::Data<Relay>,
    body: web::Json<JsonObject<LoginRequest>>,
) -> Result<HttpResponse> {
    let g = accounts::login(&state, &state.proxies.client_of(&req), body.into_inner().into_inner()).await?;
    Ok(granted(&state, g, false))
}

async fn logout(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    accounts::logout(&state, &user).await?;
    Ok(HttpResponse::NoContent().cookie(removal_cookie(&state)).finish())
}

async fn logout_all(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    accounts::logout_all(&state, &user).await?;
    Ok(HttpResponse::NoContent().cookie(removal_cookie(&state)).finish())
}

async fn me(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(accounts::me(&state, &user).await?))
}

async fn change_password(
    req: HttpRequest,
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<ChangePasswordRequest>>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        accounts::change_password(
            &state,
            &state.proxies.client_of(&req),
            &user,
            body.into_inner().into_inner(),
        )
        .await?,
    ))
}

async fn update_key_backup(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<UpdateKeyBackupRequest>>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .json(accounts::update_key_backup(&state, &user, body.into_inner().into_inner()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<u32>,
}

async fn search_users(
    state: web::Data<Relay>,
    user: AuthUser,
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
    let users = accounts::search_users(&state, &user, prefix, limit).await?;
    Ok(HttpResponse::Ok().json(UserSearchResponse { users }))
}

async fn get_user(state: web::Data<Relay>, _user: AuthUser, path: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(accounts::user(&state, parse_peer(&path)?).await?))
}

async fn conversations(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    let conversations = service::conversations(&state, &user).await?;
    let groups = service::group_list(&state, &user).await?;
    Ok(HttpResponse::Ok().json(ConversationsResponse { conversations, groups }))
}

async fn open_direct(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<OpenDirectRequest>>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .json(service::open_direct(&state, &user, body.into_inner().into_inner().peer).await?))
}

async fn history(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    let id = parse_conversation(&path)?;
    Ok(HttpResponse::Ok().json(service::history(&state, &user, id, q.into_inner()).await?))
}

async fn mark_read(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<JsonObject<MarkReadRequest>>,
) -> Result<HttpResponse> {
    let id = parse_conversation(&path)?;
    service::mark(&state, &user, id, body.into_inner().into_inner().up_to, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn clear(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<JsonObject<ClearRequest>>,
) -> Result<HttpResponse> {
    let id = parse_conversation(&path)?;
    let ClearRequest { for_both, up_to } = body.into_inner().into_inner();
    service::clear(&state, &user, id, for_both, up_to).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn set_flags(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<JsonObject<ConversationFlags>>,
) -> Result<HttpResponse> {
    let id = parse_conversation(&path)?;
    service::set_flags(&state, &user, id, body.into_inner().into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn blocks(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(BlockList { users: service::blocks(&state, &user).await? }))
}

async fn block(state: web::Data<Relay>, user: AuthUser, path: web::Path<String>) -> Result<HttpResponse> {
    service::set_blocked(&state, &user, parse_peer(&path)?, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn unblock(state: web::Data<Relay>, user: AuthUser, path: web::Path<String>) -> Result<HttpResponse> {
    service::set_blocked(&state, &user, parse_peer(&path)?, false).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_message(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    // A malformed id is answered like an unknown one.
    let id = MessageId(path.parse().map_err(|_| ServerError::api(ErrorCode::NotFound, "no such message"))?);
    Ok(HttpResponse::Ok().json(service::message(&state, &user, id).await?))
}

/// A device id from a path; a malformed one is answered like an unknown one.
fn parse_device(raw: &str) -> Result<DeviceId> {
    raw.parse().map_err(|_| ServerError::api(ErrorCode::NotFound, "no such device of yours"))
}

async fn publish_signing_key(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<PublishSigningKeyRequest>>,
) -> Result<HttpResponse> {
    groups::publish_signing_key(&state, &user, body.into_inner().into_inner().signing_key).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn register_device(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<RegisterDeviceRequest>>,
) -> Result<HttpResponse> {
    let device = groups::register_device(&state, &user, body.into_inner().into_inner()).await?;
    Ok(success::<sealroom_protocol::endpoint::RegisterDevice>(&device))
}

async fn devices(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(groups::devices(&state, &user).await?))
}

async fn remove_device(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    groups::remove_device(&state, &user, parse_device(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn upload_key_packages(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<JsonObject<UploadKeyPackagesRequest>>,
) -> Result<HttpResponse> {
    let device = parse_device(&path)?;
    Ok(HttpResponse::Ok()
        .json(groups::upload_key_packages(&state, &user, device, body.into_inner().into_inner()).await?))
}

async fn welcomes(state: web::Data<Relay>, user: AuthUser, path: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(groups::welcomes(&state, &user, parse_device(&path)?).await?))
}

async fn welcomes_taken(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<JsonObject<WelcomesTakenRequest>>,
) -> Result<HttpResponse> {
    let device = parse_device(&path)?;
    groups::welcomes_taken(&state, &user, device, body.into_inner().into_inner().up_to).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn claim_key_packages(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<ClaimKeyPackagesRequest>>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok()
        .json(groups::claim_key_packages(&state, &user, body.into_inner().into_inner().users).await?))
}

async fn create_group(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<CreateGroupRequest>>,
) -> Result<HttpResponse> {
    let group = groups::create_group(&state, &user, body.into_inner().into_inner()).await?;
    Ok(success::<sealroom_protocol::endpoint::CreateGroup>(&group))
}

async fn move_to_mls(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<JsonObject<CreateGroupRequest>>,
) -> Result<HttpResponse> {
    let id = parse_conversation(&path)?;
    let group = groups::move_to_mls(&state, &user, id, body.into_inner().into_inner()).await?;
    Ok(success::<sealroom_protocol::endpoint::MoveToMls>(&group))
}

async fn groups(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(GroupList { groups: groups::groups(&state, &user).await? }))
}

async fn get_group(state: web::Data<Relay>, user: AuthUser, path: web::Path<String>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(groups::group(&state, &user, parse_conversation(&path)?).await?))
}

async fn get_group_info(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(groups::group_info(&state, &user, parse_conversation(&path)?).await?))
}

async fn append_to_group(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<JsonObject<AppendRequest>>,
) -> Result<HttpResponse> {
    let id = parse_conversation(&path)?;
    Ok(HttpResponse::Ok()
        .json(groups::append(&state, &user, id, body.into_inner().into_inner(), None).await?))
}

async fn leave_group(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    groups::leave(&state, &user, parse_conversation(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn group_log(
    state: web::Data<Relay>,
    user: AuthUser,
    q: web::Query<GroupLogQuery>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(groups::log(&state, &user, q.into_inner()).await?))
}

async fn archive_messages(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<ArchiveUpload>>,
) -> Result<HttpResponse> {
    let stored = groups::archive_messages(&state, &user, body.into_inner().into_inner()).await?;
    Ok(HttpResponse::Ok().json(ArchiveStored { stored }))
}

async fn archive_list(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(ArchiveList { conversations: groups::archive_list(&state, &user).await? }))
}

async fn archived_history(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
    q: web::Query<ArchiveQuery>,
) -> Result<HttpResponse> {
    let id = parse_conversation(&path)?;
    Ok(HttpResponse::Ok().json(groups::archived_history(&state, &user, id, q.into_inner()).await?))
}

async fn delete_archive(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    groups::delete_archive(&state, &user).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/openapi.json`: the OpenAPI description of this API, generated from the endpoint
/// declarations and the wire types (built once).
async fn delete_account(
    req: HttpRequest,
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<sealroom_protocol::DeleteAccountRequest>>,
) -> Result<HttpResponse> {
    accounts::delete_account(&state, &state.proxies.client_of(&req), &user, body.into_inner().into_inner())
        .await?;
    // The cookie goes with the account.
    Ok(HttpResponse::NoContent().cookie(removal_cookie(&state)).finish())
}

async fn server_info(state: web::Data<Relay>) -> HttpResponse {
    HttpResponse::Ok().json(sealroom_protocol::ServerInfo {
        registration: state.config.registration(),
        retention_days: state.config.retention_days,
    })
}

async fn create_invite(
    state: web::Data<Relay>,
    user: AuthUser,
    body: web::Json<JsonObject<sealroom_protocol::CreateInviteRequest>>,
) -> Result<HttpResponse> {
    let me = user.id;
    state.store.run(move |conn| crate::policy::relay_admin(conn, me)).await?;
    let created =
        crate::invites::create(&state.store, state.clock.now_ms(), Some(me), body.into_inner().into_inner())
            .await?;
    Ok(success::<sealroom_protocol::endpoint::CreateInvite>(&created))
}

async fn invites(state: web::Data<Relay>, user: AuthUser) -> Result<HttpResponse> {
    let me = user.id;
    state.store.run(move |conn| crate::policy::relay_admin(conn, me)).await?;
    Ok(HttpResponse::Ok().json(crate::invites::list(&state.store, state.clock.now_ms()).await?))
}

async fn revoke_invite(
    state: web::Data<Relay>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let me = user.id;
    state.store.run(move |conn| crate::policy::relay_admin(conn, me)).await?;
    let id = path.parse::<i64>().map_err(|_| ServerError::api(ErrorCode::NotFound, "no such invite"))?;
    crate::invites::revoke(&state.store, id, state.clock.now_ms()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn openapi_document() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_string(&sealroom_protocol::openapi::document()).unwrap_or_else(|_| "{}".into())
    });
    HttpResponse::Ok().content_type("application/json").body(body.as_str())
}

/// `GET /healthz`: whether the database answers (within 3 s) and, among several nodes, NATS
/// is connected; 503 when either is not.
pub async fn healthz(state: web::Data<Relay>) -> Result<HttpResponse> {
    let probe = state.store.run(|conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1").execute(&mut **conn).map_err(crate::store::StoreError::from)?;
        Ok(())
    });
    let database = matches!(tokio::time::timeout(std::time::Duration::from_secs(3), probe).await, Ok(Ok(())));
    let nats = state.fanout.bus_connected();
    let word = |up: bool| if up { "ok" } else { "unreachable" }.to_owned();
    let healthy = database && nats != Some(false);
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: word(database),
        nats: nats.map(word),
    };
    Ok(if healthy { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() }.json(body))
}

/// `GET /metrics`: Prometheus text format, for `Authorization: Bearer <--metrics-token>`;
/// without a configured token, only for requests from the relay's own machine (loopback).
pub async fn metrics(req: HttpRequest, state: web::Data<Relay>) -> Result<HttpResponse> {
    crate::policy::metrics(
        state.config.metrics_token.as_deref(),
        req.headers().get(actix_web::http::header::AUTHORIZATION).and_then(|h| h.to_str().ok()),
        state.proxies.client_ip(req.peer_addr().map(|a| a.ip()), req.headers()),
    )?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(state.store.writer_stats(), state.fanout.as_ref())))
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
