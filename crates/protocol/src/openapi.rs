//! The OpenAPI 3.1 description of the REST API, generated from the endpoint declarations
//! ([`crate::endpoint`]) and the wire types' own schemas (utoipa): nothing about a path, a
//! body or an error is written a second time. The relay serves it at `/api/openapi.json`.

use std::borrow::Cow;

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, KnownFormat, OpenApi, OpenApiBuilder, PathsBuilder,
    RefOr, Required,
};
use utoipa::{PartialSchema, ToSchema};

use crate::endpoint::{Endpoint, Method};
use crate::{ApiError, ErrorCode};

/// A string schema with a description and a pattern.
pub(crate) fn string(description: &str, pattern: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .into()
}

/// A server-assigned id: a positive 64-bit integer.
pub(crate) fn integer_id(what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .description(Some(format!("{what}: an id the relay assigned")))
        .into()
}

/// Standard base64 (padded) of `min..=max` bytes.
pub(crate) fn base64_bytes(what: &str, min: usize, max: usize) -> RefOr<Schema> {
    let chars = |n: usize| n.div_ceil(3) * 4;
    let size = if min == max { format!("{min} bytes") } else { format!("{min} to {max} bytes") };
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!("{what}: {size}, standard base64 with padding")))
        .pattern(Some("^[A-Za-z0-9+/]*={0,2}$"))
        .min_length(Some(chars(min)))
        .max_length(Some(chars(max)))
        .into()
}

/// A request or response body: a JSON schema, or none (`()`).
pub trait Body {
    /// The named schema, if the body is JSON.
    fn schema() -> Option<(Cow<'static, str>, RefOr<Schema>)>;
}

impl Body for () {
    fn schema() -> Option<(Cow<'static, str>, RefOr<Schema>)> {
        None
    }
}

impl Body for serde_json::Value {
    fn schema() -> Option<(Cow<'static, str>, RefOr<Schema>)> {
        Some(("OpenApiDocument".into(), ObjectBuilder::new().schema_type(Type::Object).into()))
    }
}

macro_rules! bodies {
    ($($t:ty),* $(,)?) => {$(
        impl Body for $t {
            fn schema() -> Option<(Cow<'static, str>, RefOr<Schema>)> {
                Some((<$t as ToSchema>::name(), <$t as PartialSchema>::schema()))
            }
        }
    )*};
}

bodies!(
    crate::PublishSigningKeyRequest,
    crate::RegisterDeviceRequest,
    crate::DeviceInfo,
    crate::DeviceList,
    crate::UploadKeyPackagesRequest,
    crate::KeyPackageCount,
    crate::WelcomeList,
    crate::WelcomesTakenRequest,
    crate::ClaimKeyPackagesRequest,
    crate::ClaimedKeyPackages,
    crate::CreateGroupRequest,
    crate::GroupState,
    crate::GroupList,
    crate::GroupInfoResponse,
    crate::AppendRequest,
    crate::AppendedEntry,
    crate::GroupLogResponse,
    crate::ArchiveUpload,
    crate::ArchiveStored,
    crate::ArchivePage,
    crate::ArchiveList,
    crate::PreloginRequest,
    crate::PreloginResponse,
    crate::RegisterRequest,
    crate::LoginRequest,
    crate::SessionResponse,
    crate::ChangePasswordRequest,
    crate::Me,
    crate::UpdateKeyBackupRequest,
    crate::KeyBackupVersion,
    crate::UserSearchResponse,
    crate::UserInfo,
    crate::ConversationsResponse,
    crate::OpenDirectRequest,
    crate::ConversationSummary,
    crate::HistoryResponse,
    crate::MarkReadRequest,
    crate::ClearRequest,
    crate::ConversationFlags,
    crate::BlockList,
    crate::MessageOut,
    crate::UploadResponse,
    crate::StorageInfo,
    crate::ServerInfo,
    crate::DeleteAccountRequest,
    crate::CreateInviteRequest,
    crate::CreatedInvite,
    crate::InviteList,
);

/// One endpoint as an OpenAPI operation.
pub struct Operation {
    name: &'static str,
    method: Method,
    path: &'static str,
    doc: String,
    body: Option<(Cow<'static, str>, RefOr<Schema>)>,
    response: Option<(Cow<'static, str>, RefOr<Schema>)>,
    creates: bool,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Operation({} {} {})", self.name, self.method.as_str(), self.path)
    }
}

impl Operation {
    pub(crate) fn of<E: Endpoint>(name: &'static str, doc: &[&str]) -> Self
    where
        E::Body: Body,
        E::Response: Body,
    {
        let doc = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
        Operation {
            name,
            method: E::METHOD,
            path: E::PATH,
            doc,
            body: E::Body::schema(),
            response: E::Response::schema(),
            creates: E::CREATES,
        }
    }
}

/// Endpoints that need no session.
const PUBLIC: &[&str] = &["Prelogin", "Register", "Login", "GetServerInfo", "OpenApiDocument"];

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

/// Raw bytes (an attachment blob, up or down).
fn binary() -> utoipa::openapi::Content {
    json(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into(),
    )
}

fn json(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// What a path parameter holds, from its name and the path.
fn path_parameter(path: &str, name: &str) -> RefOr<Schema> {
    match name {
        "username" => crate::Username::schema(),
        "id" if path.starts_with("/api/blobs/") => crate::BlobId::schema(),
        "device" => <crate::DeviceId as utoipa::PartialSchema>::schema(),
        _ => integer_id("id"),
    }
}

fn query_parameter(name: &str, schema: RefOr<Schema>, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn uint32() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(u32::MAX)).into()
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut components = ComponentsBuilder::new()
        .schema(ApiError::name(), ApiError::schema())
        .schema(ErrorCode::name(), ErrorCode::schema())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    for (name, schema) in nested_schemas() {
        components = components.schema(name, schema);
    }
    let mut paths = PathsBuilder::new();
    for op in crate::endpoint::operations() {
        if let Some((name, schema)) = &op.body {
            components = components.schema(name.clone(), schema.clone());
        }
        if let Some((name, schema)) = &op.response {
            components = components.schema(name.clone(), schema.clone());
        }
        let mut b = OperationBuilder::new().operation_id(Some(op.name)).summary(Some(op.doc.clone()));
        // Path parameters, in order.
        let mut rest = op.path;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            let name = &rest[start + 1..start + len];
            b = b.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(path_parameter(op.path, name)))
                    .build(),
            );
            rest = &rest[start + len + 1..];
        }
        match op.name {
            "History" => {
                b = b
                    .parameter(query_parameter(
                        "before",
                        integer_id("MessageId"),
                        "only messages older than this id",
                    ))
                    .parameter(query_parameter(
                        "after",
                        integer_id("MessageId"),
                        "only messages newer than this id",
                    ))
                    .parameter(query_parameter(
                        "limit",
                        uint32(),
                        &format!("page size (at most {})", crate::MAX_PAGE),
                    ));
            }
            "GroupLog" => {
                b = b
                    .parameter(query_parameter(
                        "since",
                        integer_id("position"),
                        "only entries after this position",
                    ))
                    .parameter(query_parameter(
                        "device",
                        <crate::DeviceId as utoipa::PartialSchema>::schema(),
                        "the reading device, which has processed everything up to `since`",
                    ))
                    .parameter(query_parameter(
                        "limit",
                        uint32(),
                        &format!("page size (at most {})", crate::MAX_LOG_PAGE),
                    ));
            }
            "ArchivedHistory" => {
                b = b
                    .parameter(query_parameter(
                        "before",
                        integer_id("position"),
                        "only entries at positions below this one",
                    ))
                    .parameter(query_parameter(
                        "limit",
                        uint32(),
                        &format!("page size (at most {})", crate::MAX_ARCHIVE_PAGE),
                    ));
            }
            "SearchUsers" => {
                b = b
                    .parameter(query_parameter(
                        "prefix",
                        string("a name prefix", "^[A-Za-z0-9_]{0,32}$"),
                        "the start of a username",
                    ))
                    .parameter(query_parameter(
                        "limit",
                        uint32(),
                        &format!("how many (at most {})", crate::MAX_SEARCH),
                    ));
            }
            _ => {}
        }
        if let Some((name, _)) = &op.body {
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json(schema_ref(name)))
                    .required(Some(Required::True))
                    .build(),
            ));
        } else if op.name == "UploadBlob" {
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/octet-stream", binary())
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let success = match (op.name, &op.response) {
            (_, Some((name, _))) if op.creates => (
                "201",
                ResponseBuilder::new()
                    .description("created")
                    .content("application/json", json(schema_ref(name)))
                    .build(),
            ),
            ("DownloadBlob", _) => (
                "200",
                ResponseBuilder::new()
                    .description("the encrypted blob")
                    .content("application/octet-stream", binary())
                    .build(),
            ),
            (_, Some((name, _))) => (
                "200",
                ResponseBuilder::new()
                    .description("success")
                    .content("application/json", json(schema_ref(name)))
                    .build(),
            ),
            (_, None) => ("204", ResponseBuilder::new().description("done").build()),
        };
        b = b.response(success.0, success.1);
        for (status, codes) in error_statuses(PUBLIC.contains(&op.name)) {
            b = b.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(format!("an error: {}", codes.join(", ")))
                    .content("application/json", json(schema_ref("ApiError")))
                    .build(),
            );
        }
        if !PUBLIC.contains(&op.name) {
            b = b.security(SecurityRequirement::new::<&str, [&str; 0], &str>("bearer", []));
        }
        let method = match op.method {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Put => HttpMethod::Put,
            Method::Delete => HttpMethod::Delete,
        };
        paths = paths.path(op.path, PathItemBuilder::new().operation(method, b.build()).build());
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Sealroom relay")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The REST API of a Sealroom relay. Every error is `{\"error\": <code>, \"message\": <text>}` \
                     with a stable code; messages travel over the WebSocket at /ws (docs/PROTOCOL.md).",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// Schemas that bodies refer to by name (utoipa derives emit `$ref`s to them).
fn nested_schemas() -> Vec<(Cow<'static, str>, RefOr<Schema>)> {
    fn s<T: ToSchema>() -> (Cow<'static, str>, RefOr<Schema>) {
        (T::name(), T::schema())
    }
    vec![
        s::<crate::KdfParams>(),
        s::<crate::Me>(),
        s::<crate::UserInfo>(),
        s::<crate::MessageOut>(),
        s::<crate::ConversationSummary>(),
        s::<crate::GroupSummary>(),
        s::<crate::ConversationKind>(),
        s::<crate::Username>(),
        s::<crate::BlobId>(),
        s::<crate::ConversationId>(),
        s::<crate::MessageId>(),
        s::<crate::UserId>(),
        s::<crate::AuthKeyBytes>(),
        s::<crate::Salt>(),
        s::<crate::IdentityKey>(),
        s::<crate::ClientMsgId>(),
        s::<crate::Envelope>(),
        s::<crate::SealedBackup>(),
        s::<crate::SigningKey>(),
        s::<crate::GroupId>(),
        s::<crate::MlsBytes>(),
        s::<crate::CertificateBytes>(),
        s::<crate::DeviceId>(),
        s::<crate::DeviceKeyPackage>(),
        s::<crate::UserKeyPackages>(),
        s::<crate::GroupMember>(),
        s::<crate::CommitEffects>(),
        s::<crate::EntryKind>(),
        s::<crate::GroupEntry>(),
        s::<crate::WelcomeOut>(),
        s::<crate::ArchiveBytes>(),
        s::<crate::ArchiveEntryIn>(),
        s::<crate::ArchiveEntry>(),
        s::<crate::ArchivedConversation>(),
        s::<crate::Registration>(),
        s::<crate::InviteInfo>(),
        s::<crate::InviteState>(),
    ]
}

/// The error statuses every operation may answer, with the codes each carries (from
/// [`ErrorCode::http_status`], so the table cannot drift from the relay).
fn error_statuses(public: bool) -> Vec<(u16, Vec<&'static str>)> {
    let mut by_status: std::collections::BTreeMap<u16, Vec<&'static str>> = Default::default();
    for code in ErrorCode::ALL {
        let status = code.http_status();
        if status >= 500 || (public && status == 401 && *code != ErrorCode::InvalidCredentials) {
            continue;
        }
        by_status.entry(status).or_default().push(code.as_str());
    }
    by_status.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_endpoint_is_described_and_every_reference_resolves() {
        let doc = super::document();
        let json = serde_json::to_value(&doc).unwrap();
        let paths = json["paths"].as_object().unwrap();
        for (method, path) in crate::endpoint::ALL {
            let op = &paths[*path][method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {path} is not described", method.as_str());
        }
        let text = json.to_string();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling reference to {name}");
        }
    }
}
