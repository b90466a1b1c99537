//! Every kind of bad input gets its stable error code, the connection and the server keep
//! working, and nothing already stored is lost or altered.

use std::time::Duration;

use reqwest::Method;
use sealroom_crypto::Payload;
use sealroom_protocol::{ClientFrame, ConversationId, ErrorCode, HistoryQuery, MessageId, ServerFrame};
use sealroom_tests::{raw, TestServer};

const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const SALT: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

/// (what, method, url, body, expected status, expected code)
type Case<B> = (&'static str, Method, String, Option<B>, u16, &'static str);

fn register_body(username: &str, key: &str, kdf_m: u32) -> String {
    serde_json::json!({"username": username, "auth_key": key, "salt": SALT, "kdf": {"m_kib": kdf_m, "t": 3, "p": 1},
                       "identity_key": KEY, "key_backup": "AQID"})
    .to_string()
}

#[tokio::test]
async fn bad_rest_input_gets_stable_codes_and_changes_nothing() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    alice.send_text("bob", "x", false).await.unwrap_err(); // bob does not exist yet
    let _bob = server.register("bob").await;
    alice.send_text("bob", "kept safe", false).await.unwrap();
    let before = alice.history_raw("bob", &HistoryQuery::default()).await.unwrap();
    let u = |p: &str| format!("{}{p}", server.url);
    let json = "application/json";
    let huge_name = "a".repeat(10_000);
    let cases: Vec<Case<String>> = vec![
        ("malformed JSON", Method::POST, u("/api/login"), Some("{nope".into()), 400, "invalid_json"),
        ("empty body", Method::POST, u("/api/login"), Some(String::new()), 400, "invalid_json"),
        (
            "wrong field type",
            Method::POST,
            u("/api/login"),
            Some(r#"{"username":5,"auth_key":"x"}"#.into()),
            400,
            "invalid_field",
        ),
        (
            "missing field",
            Method::POST,
            u("/api/login"),
            Some(r#"{"username":"alice"}"#.into()),
            400,
            "invalid_field",
        ),
        // serde's structs also read an array of their fields; the relay does not (schemathesis).
        ("array body", Method::POST, u("/api/prelogin"), Some(r#"["alice"]"#.into()), 400, "invalid_field"),
        ("scalar body", Method::POST, u("/api/prelogin"), Some("3".into()), 400, "invalid_field"),
        (
            "array nested",
            Method::POST,
            u("/api/register"),
            Some(
                serde_json::json!({"username": "carol", "auth_key": KEY, "salt": SALT, "kdf": [65536, 3, 1],
                                   "identity_key": KEY, "key_backup": "AQID"})
                .to_string(),
            ),
            400,
            "invalid_field",
        ),
        (
            "unknown field",
            Method::POST,
            u("/api/prelogin"),
            Some(r#"{"username":"alice","admin":true}"#.into()),
            400,
            "invalid_field",
        ),
        (
            "invalid base64",
            Method::POST,
            u("/api/login"),
            Some(r#"{"username":"alice","auth_key":"!!!"}"#.into()),
            400,
            "invalid_base64",
        ),
        (
            "short key",
            Method::POST,
            u("/api/login"),
            Some(r#"{"username":"alice","auth_key":"AQID"}"#.into()),
            400,
            "invalid_length",
        ),
        (
            "absurd username",
            Method::POST,
            u("/api/register"),
            Some(register_body(&huge_name, KEY, 65536)),
            400,
            "invalid_username",
        ),
        (
            "username with spaces",
            Method::POST,
            u("/api/register"),
            Some(register_body("al ice", KEY, 65536)),
            400,
            "invalid_username",
        ),
        (
            "taken username",
            Method::POST,
            u("/api/register"),
            Some(register_body("ALICE", KEY, 65536)),
            409,
            "username_taken",
        ),
        (
            "weak KDF",
            Method::POST,
            u("/api/register"),
            Some(register_body("dave", KEY, 1024)),
            400,
            "kdf_params_rejected",
        ),
        (
            "oversize body",
            Method::POST,
            u("/api/register"),
            Some(format!("{{\"username\":\"{}\"}}", "a".repeat(10_000_000))),
            413,
            "payload_too_large",
        ),
        (
            "wrong password",
            Method::POST,
            u("/api/login"),
            Some(format!(r#"{{"username":"alice","auth_key":"{KEY}"}}"#)),
            401,
            "invalid_credentials",
        ),
        (
            "unknown user login",
            Method::POST,
            u("/api/login"),
            Some(format!(r#"{{"username":"nobody","auth_key":"{KEY}"}}"#)),
            401,
            "invalid_credentials",
        ),
        ("no token", Method::GET, u("/api/conversations"), None, 401, "unauthorized"),
        ("unknown endpoint", Method::GET, u("/api/teleport"), None, 404, "not_found"),
    ];
    for (what, method, url, body, status, code) in cases {
        let (s, b, _) = raw(method, &url, None, body.as_deref().map(|b| (json, b))).await;
        assert_eq!((s.as_u16(), b["error"].as_str()), (status, Some(code)), "{what}: {b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{what} has a message");
    }
    let token = alice.token().to_owned();
    let conv = alice.existing_conversation("bob").await.unwrap();
    let authed: Vec<Case<&str>> = vec![
        (
            "conversation id not a number",
            Method::GET,
            u("/api/conversations/A%20B/messages"),
            None,
            404,
            "not_found",
        ),
        (
            "a peer's name for an id",
            Method::GET,
            u("/api/conversations/bob/messages"),
            None,
            404,
            "not_found",
        ),
        (
            "unknown conversation",
            Method::GET,
            u("/api/conversations/999999/messages"),
            None,
            404,
            "not_found",
        ),
        ("block a bad name", Method::PUT, u("/api/blocks/A%20B"), None, 400, "invalid_username"),
        ("block nobody", Method::PUT, u("/api/blocks/nobody"), None, 404, "not_found"),
        ("block oneself", Method::PUT, u("/api/blocks/alice"), None, 400, "invalid_field"),
        (
            "direct conversation with a bad name",
            Method::POST,
            u("/api/conversations/direct"),
            Some(r#"{"peer":"A B"}"#),
            400,
            "invalid_username",
        ),
        (
            "bad query",
            Method::GET,
            u(&format!("/api/conversations/{conv}/messages?limit=lots")),
            None,
            400,
            "invalid_field",
        ),
        (
            "before and after",
            Method::GET,
            u(&format!("/api/conversations/{conv}/messages?before=5&after=1")),
            None,
            400,
            "invalid_field",
        ),
        ("bad search prefix", Method::GET, u("/api/users?prefix=%25%25"), None, 400, "invalid_field"),
        (
            "empty backup",
            Method::PUT,
            u("/api/me/key-backup"),
            Some(r#"{"key_backup":"","expected_version":1}"#),
            400,
            "invalid_length",
        ),
        ("unknown user", Method::GET, u("/api/users/nobody"), None, 404, "not_found"),
        (
            "flags wrong type",
            Method::PUT,
            u(&format!("/api/conversations/{conv}/flags")),
            Some(r#"{"pinned":"yes"}"#),
            400,
            "invalid_field",
        ),
    ];
    for (what, method, url, body, status, code) in authed {
        let (s, b, _) = raw(method, &url, Some(&token), body.map(|b| (json, b))).await;
        assert_eq!((s.as_u16(), b["error"].as_str()), (status, Some(code)), "{what}: {b}");
    }
    // Still serving, nothing lost or altered.
    let (s, _, _) = raw(Method::GET, &u("/healthz"), None, None).await;
    assert_eq!(s, 200);
    assert_eq!(alice.history_raw("bob", &HistoryQuery::default()).await.unwrap(), before);
    server.client().login("alice", "password-of-alice").await.unwrap();
}

#[tokio::test]
async fn bad_websocket_frames_get_error_frames_and_the_connection_lives_on() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let kept = alice.send_text("bob", "kept safe", false).await.unwrap();
    let before = alice.history_raw("bob", &HistoryQuery::default()).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let (cmid, env) =
        alice.encrypt_to(&"bob".parse().unwrap(), &Payload::Text("later".into()), false).await.unwrap();
    let id = serde_json::to_value(cmid).unwrap();
    let conv = alice.conversation_with(&"bob".parse().unwrap()).await.unwrap().0;
    let big_envelope = sealroom_protocol::encode_b64(&vec![7u8; 70_000]);
    let cases: Vec<(&str, String, ErrorCode)> = vec![
        ("malformed JSON", "{\"type\":".into(), ErrorCode::InvalidJson),
        ("not an object", "[1,2,3]".into(), ErrorCode::InvalidField),
        ("unknown frame type", r#"{"type":"teleport"}"#.into(), ErrorCode::UnknownFrame),
        ("wrong field type", r#"{"type":"sync","since":"yesterday"}"#.into(), ErrorCode::InvalidField),
        (
            "invalid base64",
            format!(r#"{{"type":"send","conversation":{conv},"client_msg_id":{id},"envelope":"%%%"}}"#),
            ErrorCode::InvalidBase64,
        ),
        (
            "short client_msg_id",
            format!(r#"{{"type":"send","conversation":{conv},"client_msg_id":"AQID","envelope":"AQID"}}"#),
            ErrorCode::InvalidLength,
        ),
        (
            "empty envelope",
            format!(r#"{{"type":"send","conversation":{conv},"client_msg_id":{id},"envelope":""}}"#),
            ErrorCode::InvalidLength,
        ),
        (
            "oversize envelope",
            format!(
                r#"{{"type":"send","conversation":{conv},"client_msg_id":{id},"envelope":"{big_envelope}"}}"#
            ),
            ErrorCode::InvalidLength,
        ),
        (
            "conversation id that is not a number",
            format!(r#"{{"type":"typing","conversation":"{}"}}"#, "z".repeat(5000)),
            ErrorCode::InvalidField,
        ),
        ("a v1 frame naming a peer", r#"{"type":"typing","to":"bob"}"#.into(), ErrorCode::InvalidField),
        (
            "oversize frame",
            format!(r#"{{"type":"sync","since":1,"pad":"{}"}}"#, "x".repeat(200_000)),
            ErrorCode::FrameTooLarge,
        ),
        ("wrong protocol", r#"{"type":"hello","protocol":99}"#.into(), ErrorCode::UnsupportedProtocol),
        (
            "a log receipt with a negative position",
            format!(r#"{{"type":"group_read","conversation":{conv},"up_to":-1}}"#),
            ErrorCode::InvalidField,
        ),
        (
            "a log receipt without its position",
            format!(r#"{{"type":"group_delivered","conversation":{conv}}}"#),
            ErrorCode::InvalidField,
        ),
        (
            "a log receipt in a conversation not in MLS",
            format!(r#"{{"type":"group_read","conversation":{conv},"up_to":1}}"#),
            ErrorCode::NotFound,
        ),
        (
            "typing into a stranger's conversation",
            format!(r#"{{"type":"typing","conversation":{}}}"#, conv + 1000),
            ErrorCode::NotFound,
        ),
    ];
    for (what, text, code) in cases {
        ws.send_raw(text).await.unwrap();
        match ws.next_within(Duration::from_secs(10)).await {
            Ok(ServerFrame::Error { code: got, message, .. }) => {
                assert_eq!(got, code, "{what}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{what}: expected an error frame, got {other:?}"),
        }
    }
    // An unknown conversation: the error names the client_msg_id it refers to.
    ws.send(&ClientFrame::Send {
        conversation: ConversationId(conv + 1000),
        client_msg_id: cmid,
        envelope: env.clone(),
        blobs: vec![],
    })
    .await
    .unwrap();
    match ws.next_within(Duration::from_secs(10)).await.unwrap() {
        ServerFrame::Error { code: ErrorCode::NotFound, client_msg_id: Some(c), .. } => assert_eq!(c, cmid),
        other => panic!("expected not_found, got {other:?}"),
    }
    // A conversation with an unknown user, or with yourself, is not opened.
    for (peer, code) in [("nobody", ErrorCode::UnknownRecipient), ("alice", ErrorCode::InvalidField)] {
        let err = alice.conversation_with(&peer.parse().unwrap()).await.unwrap_err();
        assert!(matches!(&err, sealroom_client::ClientError::Api(e) if e.error == code), "{peer}: {err}");
    }

    // The same connection still works.
    let new_id = ws.send_and_wait(ConversationId(conv), cmid, env).await.unwrap();
    assert!(new_id > kept);
    ws.send(&ClientFrame::Sync { since: kept }).await.unwrap();
    let mut saw = false;
    loop {
        match ws.next_within(Duration::from_secs(10)).await.unwrap() {
            ServerFrame::Message { message } if message.id == new_id => saw = true,
            ServerFrame::Synced { .. } => break,
            _ => {}
        }
    }
    assert!(saw);
    // Bob was not disturbed: he got exactly the valid message.
    sealroom_tests::expect_frame(
        &mut bob_ws,
        "the valid message",
        |f| matches!(f, ServerFrame::Message { message } if message.id == new_id),
    )
    .await;
    let after =
        alice.history_raw("bob", &HistoryQuery { before: Some(new_id), ..Default::default() }).await.unwrap();
    assert_eq!(after.messages, before.messages, "nothing stored before was altered");
    let _ = MessageId(0);
}

#[tokio::test]
async fn an_abusive_frame_closes_only_that_connection() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut bob_ws = bob.connect().await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    // 2 MiB: past the codec's hard cap, the connection is closed with 1009.
    ws.send_raw("x".repeat(2 << 20)).await.unwrap();
    let err = loop {
        match ws.next_within(Duration::from_secs(10)).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("1009") || err.to_string().contains("closed"), "{err}");
    // Everyone else, and alice on a new connection, carry on.
    let id = alice.send_text("bob", "still here", false).await.unwrap();
    sealroom_tests::expect_frame(
        &mut bob_ws,
        "message",
        |f| matches!(f, ServerFrame::Message { message } if message.id == id),
    )
    .await;
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("sealroom_errors_total{code=\"frame_too_large\"}"), "{metrics}");
    assert!(metrics.contains("sealroom_messages_relayed_total 1"), "{metrics}");
}

/// The relay speaks RFC 6455 itself after the handshake (`wsconn`): a fragmented message with
/// a ping between its fragments is assembled and answered, a text frame that is not UTF-8
/// closes with 1007, and an upgrade to any other path is refused with a JSON 404.
#[tokio::test]
async fn the_websocket_layer_assembles_fragments_and_refuses_what_rfc_6455_forbids() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::{Error, Message};

    let server = TestServer::start();
    let alice = server.register("alice").await;
    let request = |path: &str| {
        let mut req =
            format!("{}{path}", server.url.replacen("http", "ws", 1)).into_client_request().unwrap();
        req.headers_mut().insert("Authorization", format!("Bearer {}", alice.token()).parse().unwrap());
        req
    };
    let next_text = |text: Option<Result<Message, Error>>| match text {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    };

    let (mut ws, _) = tokio_tungstenite::connect_async(request("/ws")).await.unwrap();
    assert_eq!(next_text(ws.next().await)["type"], "hello");
    // `{"type":"sync","since":0}` in three fragments, a ping after the first.
    let parts: [&[u8]; 3] = [b"{\"type\":\"sy", b"nc\",\"since\"", b":0}"];
    ws.send(Message::Frame(Frame::message(parts[0].to_vec(), OpCode::Data(Data::Text), false)))
        .await
        .unwrap();
    ws.send(Message::Ping(b"between".to_vec().into())).await.unwrap();
    ws.send(Message::Frame(Frame::message(parts[1].to_vec(), OpCode::Data(Data::Continue), false)))
        .await
        .unwrap();
    ws.send(Message::Frame(Frame::message(parts[2].to_vec(), OpCode::Data(Data::Continue), true)))
        .await
        .unwrap();
    // (Skipping the relay's own heartbeat pings.)
    let pong = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Ping(_))) => continue,
            other => break other,
        }
    };
    assert!(matches!(pong, Some(Ok(Message::Pong(ref p))) if &p[..] == b"between"), "{pong:?}");
    let synced = next_text(tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap());
    assert_eq!(
        (synced["type"].as_str(), synced["more"].as_bool()),
        (Some("synced"), Some(false)),
        "{synced}"
    );

    // Text that is not UTF-8: closed with 1007 (invalid payload data).
    ws.send(Message::Frame(Frame::message(vec![b'{', 0xff, 0xfe], OpCode::Data(Data::Text), true)))
        .await
        .unwrap();
    let close = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap();
    assert!(matches!(&close, Some(Ok(Message::Close(Some(c)))) if u16::from(c.code) == 1007), "{close:?}");

    // An upgrade anywhere else: a 404 with the usual JSON error, and no connection.
    match tokio_tungstenite::connect_async(request("/api/me")).await {
        Err(Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 404);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"], "not_found", "{body}");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    // A plain GET of /ws (no upgrade) after authentication: the handshake's 400.
    let (status, body, _) = raw(Method::GET, &format!("{}/ws", server.url), Some(alice.token()), None).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_field")), "{body}");
}
