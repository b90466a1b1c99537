//! The authorization matrix: every authenticated REST endpoint and every WebSocket frame, tried
//! with no token, an expired token, a revoked session, another user's session and the right
//! user's session. Each answer's status and code is checked, and no answer to another user
//! carries the right user's data.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use sealroom_crypto::Payload;
use sealroom_protocol::endpoint::{self, Endpoint, Method as EndpointMethod};
use sealroom_protocol::{ClientFrame, ErrorCode, HistoryQuery, MessageId, ServerFrame};
use sealroom_tests::{raw, TestServer};

/// Who makes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NoToken,
    Expired,
    Revoked,
    OtherUser,
    RightUser,
}

const CALLERS: [Caller; 5] =
    [Caller::NoToken, Caller::Expired, Caller::Revoked, Caller::OtherUser, Caller::RightUser];

/// One call that alice is entitled to make.
struct Probe {
    /// The endpoint's declared method and pattern (ties the probe to `endpoint::ALL`).
    endpoint: (EndpointMethod, &'static str),
    /// The concrete path.
    path: String,
    body: Option<(&'static str, String)>,
    /// What another user (carol, who shares nothing with alice) gets: status and error code.
    other: (u16, Option<&'static str>),
    /// What alice gets.
    right: (u16, Option<&'static str>),
    /// Alice's call ends her session: run it with a session of its own.
    ends_session: bool,
}

fn probe<E: Endpoint>(path: String, body: Option<(&'static str, String)>) -> Probe {
    Probe {
        endpoint: (E::METHOD, E::PATH),
        path,
        body,
        other: (200, None),
        right: (200, None),
        ends_session: false,
    }
}

impl Probe {
    fn other(mut self, status: u16, code: Option<&'static str>) -> Self {
        self.other = (status, code);
        self
    }
    fn right(mut self, status: u16, code: Option<&'static str>) -> Self {
        self.right = (status, code);
        self
    }
    fn ends_session(mut self) -> Self {
        self.ends_session = true;
        self
    }
}

fn method(m: EndpointMethod) -> Method {
    match m {
        EndpointMethod::Get => Method::GET,
        EndpointMethod::Post => Method::POST,
        EndpointMethod::Put => Method::PUT,
        EndpointMethod::Delete => Method::DELETE,
    }
}

/// An HS256 token for a real session that expired a minute ago, signed with the relay's own
/// secret (read from its data dir, as an attacker with an old token would hold one).
fn expired_token(server: &TestServer, user_id: i64, username: &str, session_id: &str) -> String {
    let hex_secret = std::fs::read_to_string(server.data_dir().join("jwt_secret")).unwrap();
    let secret = hex::decode(hex_secret.trim()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = serde_json::json!({
        "sub": user_id.to_string(), "usr": username, "sid": session_id, "iat": now - 3600, "exp": now - 60
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap()
}

#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller_as_it_should() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    server.register("bob").await;
    let carol = server.register("carol").await;

    // Alice's data that nobody else may reach: a message to bob with an attachment, and an
    // upload she has not sent yet.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret-plan.txt");
    std::fs::write(&file, b"the plan").unwrap();
    let sent = alice.send_file("bob", &file, false).await.unwrap();
    let attached = alice.message(sent).await.unwrap();
    let Payload::File(attached) = attached.payload else { panic!("a file message") };
    let unsent = alice.upload_file(&file).await.unwrap();
    let text_id = alice.send_text("bob", "for bob only", false).await.unwrap();
    let page = alice.history_raw("bob", &HistoryQuery::default()).await.unwrap();
    let conversation = alice.existing_conversation("bob").await.unwrap();
    let secrets: Vec<String> = page
        .messages
        .iter()
        .flat_map(|m| [m.client_msg_id.to_b64(), sealroom_protocol::encode_b64(m.envelope.as_bytes())])
        .chain([attached.blob_id.clone(), unsent.blob_id.to_string(), "for bob only".into()])
        .collect();

    let me: serde_json::Value =
        raw(Method::GET, &format!("{}/api/me", server.url), Some(alice.token()), None).await.1;
    let alice_id = me["id"].as_i64().unwrap();
    let revoked = server.client().login("alice", "password-of-alice").await.unwrap();
    let revoked_token = revoked.token().to_owned();
    revoked.logout().await.unwrap();
    let expired = expired_token(&server, alice_id, "alice", alice.session_id());

    // Alice's device and group (version 2).
    let device = alice.device_id().await.unwrap();
    let group = alice.create_group(&[]).await.unwrap();
    let group_id = alice.group(group).await.unwrap().group_id;
    let in_log = alice.send_group(group, &Payload::Text("to myself".into())).await.unwrap().seq;
    let b64 = sealroom_protocol::encode_b64;
    // An application message's framing for her group at epoch 0 (the relay reads no further).
    let mut framing = vec![0, 1, 0, 2, 16];
    framing.extend_from_slice(&group_id.0);
    framing.extend_from_slice(&[0; 8]);
    framing.extend_from_slice(&[1, 0, 0]);
    let mut new_group_info = vec![0, 1, 0, 4];
    new_group_info.extend_from_slice(&[5; 20]);

    // Alice administers the relay (granted by its operator while it runs); one invite to revoke.
    server.admin(&["grant-admin", "alice"]);
    server.admin(&["invites", "create"]);

    let json = |text: String| Some(("application/json", text));
    let fake_key = sealroom_protocol::encode_b64(&[7u8; 32]);
    let fake_salt = sealroom_protocol::encode_b64(&[7u8; 16]);
    let backup = me["key_backup"].as_str().unwrap().to_owned();
    use endpoint::{
        AppendToGroup, Archive, ArchiveMessages, ArchivedHistory, ClaimKeyPackages, CreateGroup,
        DeleteArchive, Devices, GetGroup, GetGroupInfo, GroupLog, Groups, LeaveGroup, MoveToMls,
        PublishSigningKey, RegisterDevice, RemoveDevice, UploadKeyPackages, Welcomes, WelcomesTaken,
    };
    use endpoint::{
        BlobInfo, Block, Blocks, ChangePassword, Clear, Conversations, DeleteBlob, DownloadBlob, GetMe,
        GetMessage, GetUser, History, Login, Logout, LogoutAll, MarkRead, OpenApiDocument, OpenDirect,
        Prelogin, PutKeyBackup, Register, SearchUsers, SetFlags, Unblock, UploadBlob,
    };
    use endpoint::{CreateInvite, DeleteAccount, GetServerInfo, Invites, RevokeInvite};
    let probes = vec![
        probe::<GetMe>(GetMe::path(&[]), None),
        probe::<PutKeyBackup>(
            PutKeyBackup::path(&[]),
            json(format!(r#"{{"key_backup":"{backup}","expected_version":0}}"#)),
        )
        .other(409, Some("stale_backup_version"))
        .right(409, Some("stale_backup_version")),
        probe::<SearchUsers>(format!("{}?prefix=bo", SearchUsers::PATH), None),
        probe::<GetUser>(GetUser::path(&[&"bob"]), None),
        probe::<Conversations>(Conversations::path(&[]), None),
        probe::<OpenDirect>(OpenDirect::path(&[]), json(r#"{"peer":"bob"}"#.into())),
        probe::<History>(History::path(&[&conversation]), None).other(404, Some("not_found")),
        probe::<GetMessage>(GetMessage::path(&[&text_id]), None).other(404, Some("not_found")),
        probe::<Blocks>(Blocks::path(&[]), None),
        probe::<Block>(Block::path(&[&"bob"]), None).other(204, None).right(204, None),
        probe::<Unblock>(Unblock::path(&[&"bob"]), None).other(204, None).right(204, None),
        probe::<BlobInfo>(BlobInfo::path(&[]), None),
        probe::<DownloadBlob>(DownloadBlob::path(&[&attached.blob_id]), None).other(404, Some("not_found")),
        probe::<UploadBlob>(UploadBlob::path(&[]), Some(("application/octet-stream", "x".repeat(40))))
            .other(201, None)
            .right(201, None),
        probe::<DeleteBlob>(DeleteBlob::path(&[&unsent.blob_id]), None)
            .other(404, Some("not_found"))
            .right(204, None),
        probe::<MarkRead>(MarkRead::path(&[&conversation]), json(format!(r#"{{"up_to":{text_id}}}"#)))
            .other(404, Some("not_found"))
            .right(204, None),
        probe::<SetFlags>(SetFlags::path(&[&conversation]), json(r#"{"pinned":true}"#.into()))
            .other(404, Some("not_found"))
            .right(204, None),
        probe::<ChangePassword>(
            ChangePassword::path(&[]),
            json(format!(
                r#"{{"auth_key":"{fake_key}","new_auth_key":"{fake_key}","new_salt":"{fake_salt}",
                    "new_kdf":{{"m_kib":65536,"t":3,"p":1}},"new_key_backup":"{backup}"}}"#
            )),
        )
        .other(401, Some("invalid_credentials"))
        .right(401, Some("invalid_credentials")),
        probe::<Clear>(Clear::path(&[&conversation]), json(r#"{"for_both":false}"#.into()))
            .other(404, Some("not_found"))
            .right(204, None),
        probe::<PublishSigningKey>(
            PublishSigningKey::path(&[]),
            json(format!(r#"{{"signing_key":"{fake_key}"}}"#)),
        )
        .other(204, None)
        .right(409, Some("conflict")),
        probe::<RegisterDevice>(
            RegisterDevice::path(&[]),
            json(format!(r#"{{"device":"{device}","certificate":"CQ=="}}"#)),
        )
        .other(409, Some("conflict"))
        .right(409, Some("conflict")),
        probe::<Devices>(Devices::path(&[]), None),
        probe::<UploadKeyPackages>(
            UploadKeyPackages::path(&[&device]),
            json(format!(r#"{{"key_packages":["{}"]}}"#, b64(&[0, 1, 0, 3, 9, 9]))),
        )
        .other(404, Some("not_found")),
        probe::<Welcomes>(Welcomes::path(&[&device]), None).other(404, Some("not_found")),
        probe::<WelcomesTaken>(WelcomesTaken::path(&[&device]), json(r#"{"up_to":1}"#.into()))
            .other(404, Some("not_found"))
            .right(204, None),
        probe::<ClaimKeyPackages>(ClaimKeyPackages::path(&[]), json(r#"{"users":["bob"]}"#.into())),
        probe::<CreateGroup>(
            CreateGroup::path(&[]),
            json(format!(
                r#"{{"group_id":"{}","device":"{device}","group_info":"{}"}}"#,
                b64(&[9; 16]),
                b64(&new_group_info)
            )),
        )
        .other(404, Some("not_found"))
        .right(201, None),
        probe::<MoveToMls>(
            MoveToMls::path(&[&conversation]),
            json(format!(
                r#"{{"group_id":"{}","device":"{device}","group_info":"{}"}}"#,
                b64(&[8; 16]),
                b64(&new_group_info)
            )),
        )
        .other(404, Some("not_found"))
        .right(201, None),
        probe::<Groups>(Groups::path(&[]), None),
        probe::<GetGroup>(GetGroup::path(&[&group]), None).other(404, Some("not_found")),
        probe::<GetGroupInfo>(GetGroupInfo::path(&[&group]), None).other(404, Some("not_found")),
        probe::<AppendToGroup>(
            AppendToGroup::path(&[&group]),
            json(format!(
                r#"{{"device":"{device}","client_msg_id":"{}","message":"{}"}}"#,
                b64(&[4; 16]),
                b64(&framing)
            )),
        )
        .other(404, Some("not_found")),
        probe::<GroupLog>(format!("{}?since=0", GroupLog::PATH), None),
        probe::<ArchiveMessages>(
            ArchiveMessages::path(&[]),
            json(format!(
                r#"{{"entries":[{{"conversation":{group},"seq":{in_log},"sender":"alice","sent_ms":1,"entry":"{}"}}]}}"#,
                b64(&[1; 60])
            )),
        )
        .other(404, Some("not_found")),
        probe::<Archive>(Archive::path(&[]), None),
        probe::<ArchivedHistory>(ArchivedHistory::path(&[&group]), None),
        probe::<DeleteArchive>(DeleteArchive::path(&[]), None).other(204, None).right(204, None),
        probe::<LeaveGroup>(LeaveGroup::path(&[&group]), None).other(404, Some("not_found")).right(204, None),
        probe::<RemoveDevice>(RemoveDevice::path(&[&device]), None)
            .other(404, Some("not_found"))
            .right(204, None),
        // A wrong password: nobody's account is deleted here (tests/tests/relay/admin.rs does).
        probe::<DeleteAccount>(DeleteAccount::path(&[]), json(format!(r#"{{"auth_key":"{fake_key}"}}"#)))
            .other(401, Some("invalid_credentials"))
            .right(401, Some("invalid_credentials")),
        probe::<CreateInvite>(CreateInvite::path(&[]), json(r#"{"max_uses":3,"note":"for dave"}"#.into()))
            .other(403, Some("not_admin"))
            .right(201, None),
        probe::<Invites>(Invites::path(&[]), None).other(403, Some("not_admin")),
        probe::<RevokeInvite>(RevokeInvite::path(&[&1]), None).other(403, Some("not_admin")).right(204, None),
        probe::<Logout>(Logout::path(&[]), None).other(204, None).right(204, None).ends_session(),
        probe::<LogoutAll>(LogoutAll::path(&[]), None).other(204, None).right(204, None).ends_session(),
    ];

    // Every endpoint that needs a session is probed; the three that start one, who may
    // register, and the API's description are public.
    let public: BTreeSet<_> =
        [Prelogin::PATH, Register::PATH, Login::PATH, GetServerInfo::PATH, OpenApiDocument::PATH].into();
    let probed: BTreeSet<_> = probes.iter().map(|p| p.endpoint).collect();
    for e in endpoint::ALL.iter().filter(|e| !public.contains(e.1)) {
        assert!(probed.contains(e), "endpoint {:?} {} is not in the authorization matrix", e.0, e.1);
    }

    for p in &probes {
        for caller in CALLERS {
            let fresh;
            let token: Option<&str> = match caller {
                Caller::NoToken => None,
                Caller::Expired => Some(&expired),
                Caller::Revoked => Some(&revoked_token),
                Caller::OtherUser if p.ends_session => {
                    fresh = server.client().login("carol", "password-of-carol").await.unwrap();
                    Some(fresh.token())
                }
                Caller::OtherUser => Some(carol.token()),
                Caller::RightUser if p.ends_session => {
                    fresh = server.client().login("alice", "password-of-alice").await.unwrap();
                    Some(fresh.token())
                }
                Caller::RightUser => Some(alice.token()),
            };
            let url = format!("{}{}", server.url, p.path);
            let body = p.body.as_ref().map(|(t, b)| (*t, b.as_str()));
            let (status, answer, _) = raw(method(p.endpoint.0), &url, token, body).await;
            let expected = match caller {
                Caller::NoToken => (401, Some("unauthorized")),
                Caller::Expired => (401, Some("token_expired")),
                Caller::Revoked => (401, Some("session_revoked")),
                Caller::OtherUser => p.other,
                Caller::RightUser => p.right,
            };
            assert_eq!(
                (status.as_u16(), answer["error"].as_str()),
                expected,
                "{caller:?} {:?} {}: {answer}",
                p.endpoint.0,
                p.path
            );
            if caller != Caller::RightUser {
                let text = answer.to_string();
                for s in &secrets {
                    assert!(!text.contains(s.as_str()), "{caller:?} {} reveals alice's data: {text}", p.path);
                }
                assert!(!text.contains("alice"), "{caller:?} {} names alice: {text}", p.path);
            }
        }
    }
}

#[tokio::test]
async fn every_frame_answers_each_kind_of_caller_as_it_should() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut carol = server.register("carol").await;
    let id = alice.send_text("bob", "for bob only", false).await.unwrap();
    // A group of alice's and bob's, and an application message's framing for it (the relay
    // reads no further).
    bob.mls_start().await.unwrap();
    let group = alice.create_group(&["bob"]).await.unwrap();
    let state = alice.group(group).await.unwrap();
    let mut framing = vec![0, 1, 0, 2, 16];
    framing.extend_from_slice(&state.group_id.0);
    framing.extend_from_slice(&state.epoch.to_be_bytes());
    framing.extend_from_slice(&[1, 0, 0]);
    let group_send = |device| ClientFrame::GroupSend {
        conversation: group,
        device,
        client_msg_id: sealroom_protocol::ClientMsgId([7; 16]),
        message: sealroom_protocol::MlsBytes::new(framing.clone()).unwrap(),
    };
    let alice_device = alice.device_id().await.unwrap();
    let carol_device = carol.device_id().await.unwrap();
    let me: serde_json::Value =
        raw(Method::GET, &format!("{}/api/me", server.url), Some(alice.token()), None).await.1;
    let revoked = server.client().login("alice", "password-of-alice").await.unwrap();
    let revoked_token = revoked.token().to_owned();
    revoked.logout().await.unwrap();
    let expired = expired_token(&server, me["id"].as_i64().unwrap(), "alice", alice.session_id());

    // The handshake: only a live session connects.
    for (token, code) in [
        (None, ErrorCode::Unauthorized),
        (Some(expired.as_str()), ErrorCode::TokenExpired),
        (Some(revoked_token.as_str()), ErrorCode::SessionRevoked),
    ] {
        let err = sealroom_client::Connection::open_url(&server.ws_url(), token).await.unwrap_err();
        assert!(matches!(&err, sealroom_client::ClientError::Api(e) if e.error == code), "{token:?}: {err}");
    }

    let conversation = alice.existing_conversation("bob").await.unwrap();
    let (client_msg_id, envelope) =
        alice.encrypt_to(&"bob".parse().unwrap(), &Payload::Text("second".into()), false).await.unwrap();
    let frames_about_bob = [
        ClientFrame::Send { conversation, client_msg_id, envelope, blobs: vec![] },
        ClientFrame::Delivered { conversation, up_to: id },
        ClientFrame::Read { conversation, up_to: id },
        ClientFrame::Typing { conversation },
    ];
    // Another user: every frame about a conversation she is not in is refused as not_found.
    let mut ws = carol.connect().await.unwrap();
    for f in &frames_about_bob {
        ws.send(f).await.unwrap();
        let answer = ws.next_within(Duration::from_secs(5)).await.unwrap();
        assert!(
            matches!(&answer, ServerFrame::Error { code: ErrorCode::NotFound, .. }),
            "carol {f:?}: {answer:?}"
        );
        assert!(!format!("{answer:?}").contains("alice"), "{answer:?}");
    }
    // Nor may she append to their group, with alice's device or her own.
    for device in [alice_device, carol_device] {
        ws.send(&group_send(device)).await.unwrap();
        let answer = ws.next_within(Duration::from_secs(5)).await.unwrap();
        assert!(
            matches!(&answer, ServerFrame::Error { code: ErrorCode::NotFound, .. }),
            "carol group_send with {device}: {answer:?}"
        );
        assert!(!format!("{answer:?}").contains("alice"), "{answer:?}");
    }
    ws.send(&ClientFrame::Sync { since: MessageId(0) }).await.unwrap();
    assert_eq!(
        ws.next_within(Duration::from_secs(5)).await.unwrap(),
        ServerFrame::Synced { up_to: MessageId(0), more: false },
        "carol's sync carries nothing of alice and bob"
    );
    // Bob is told nothing by carol's refused frames.
    let mut bob_ws = bob.connect().await.unwrap();
    assert!(bob_ws.next_within(Duration::from_millis(500)).await.is_err(), "bob got nothing from carol");

    // The right user: the same frames are accepted silently and reach bob.
    let mut ws = alice.connect().await.unwrap();
    for f in &frames_about_bob {
        ws.send(f).await.unwrap();
    }
    ws.send(&group_send(alice_device)).await.unwrap();
    let mut acked = false;
    while let Ok(f) = ws.next_within(Duration::from_secs(2)).await {
        acked |= matches!(f, ServerFrame::GroupAck { .. });
    }
    assert!(acked, "alice's group_send is acknowledged");
    let mut seen = Vec::new();
    while let Ok(f) = bob_ws.next_within(Duration::from_secs(2)).await {
        seen.push(f);
    }
    assert!(seen.iter().any(|f| matches!(f, ServerFrame::Delivered { .. })), "{seen:?}");
    assert!(seen.iter().any(|f| matches!(f, ServerFrame::Typing { .. })), "{seen:?}");
    assert!(seen.iter().any(|f| matches!(f, ServerFrame::Message { .. })), "{seen:?}");
    assert!(seen.iter().any(|f| matches!(f, ServerFrame::GroupEntry { .. })), "{seen:?}");
    let h = bob.history("alice", 10).await.unwrap();
    assert_eq!(h.len(), 2, "the first message and alice's send; nothing from carol");
}
