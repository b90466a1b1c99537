//! Literal-JSON tests: a change of the wire format is a visible change here.

use serde_json::json;

use crate::*;

fn round_trip<T>(value: &T, literal: serde_json::Value)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_value(value).unwrap(), literal, "serialize");
    assert_eq!(&serde_json::from_value::<T>(literal.clone()).unwrap(), value, "deserialize");
    // A client frame also parses the way the relay reads it (its `type` is a known one).
    if let Ok(frame) = serde_json::from_value::<ClientFrame>(literal.clone()) {
        assert_eq!(crate::parse_client_frame(&literal.to_string()), Ok(frame), "the relay reads {literal}");
    }
}

fn alice() -> Username {
    Username::parse("alice").unwrap()
}
fn bob() -> Username {
    Username::parse("bob").unwrap()
}
const KEY_B64: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const ID_B64: &str = "AgICAgICAgICAgICAgICAg==";
const BLOB: &str = "q1w2e3r4t5y6u7i8o9p0-_";

fn message() -> MessageOut {
    MessageOut {
        id: MessageId(7),
        conversation: ConversationId(3),
        from: alice(),
        to: bob(),
        client_msg_id: ClientMsgId([2; 16]),
        envelope: Envelope::new(vec![1, 2, 3]).unwrap(),
        ts: 1_732_000_000_000,
    }
}

#[test]
fn client_frames() {
    round_trip(
        &ClientFrame::Send {
            conversation: ConversationId(3),
            client_msg_id: ClientMsgId([2; 16]),
            envelope: Envelope::new(vec![0xff, 0]).unwrap(),
            blobs: vec![],
        },
        json!({"type": "send", "conversation": 3, "client_msg_id": ID_B64, "envelope": "/wA="}),
    );
    round_trip(
        &ClientFrame::Send {
            conversation: ConversationId(3),
            client_msg_id: ClientMsgId([2; 16]),
            envelope: Envelope::new(vec![0xff, 0]).unwrap(),
            blobs: vec![BlobId::parse(BLOB).unwrap()],
        },
        json!({"type": "send", "conversation": 3, "client_msg_id": ID_B64, "envelope": "/wA=", "blobs": [BLOB]}),
    );
    round_trip(&ClientFrame::Hello { protocol: 2 }, json!({"type": "hello", "protocol": 2}));
    round_trip(&ClientFrame::Sync { since: MessageId(41) }, json!({"type": "sync", "since": 41}));
    round_trip(
        &ClientFrame::Typing { conversation: ConversationId(3) },
        json!({"type": "typing", "conversation": 3}),
    );
    round_trip(
        &ClientFrame::Delivered { conversation: ConversationId(3), up_to: MessageId(9) },
        json!({"type": "delivered", "conversation": 3, "up_to": 9}),
    );
    round_trip(
        &ClientFrame::Read { conversation: ConversationId(3), up_to: MessageId(9) },
        json!({"type": "read", "conversation": 3, "up_to": 9}),
    );
    // v1 frames that named a peer are refused with a field error, not misread.
    let old = parse_client_frame(r#"{"type":"typing","to":"bob"}"#).unwrap_err();
    assert_eq!(old.error, ErrorCode::InvalidField);
}

#[test]
fn server_frames() {
    round_trip(
        &ServerFrame::Hello { protocol: 2, user: alice(), session_id: "s1".into(), server_time: 5 },
        json!({"type": "hello", "protocol": 2, "user": "alice", "session_id": "s1", "server_time": 5}),
    );
    round_trip(
        &ServerFrame::Ack { client_msg_id: ClientMsgId([2; 16]), id: MessageId(7), ts: 8 },
        json!({"type": "ack", "client_msg_id": ID_B64, "id": 7, "ts": 8}),
    );
    round_trip(
        &ServerFrame::Message { message: message() },
        json!({"type": "message", "message": {"id": 7, "conversation": 3, "from": "alice", "to": "bob", "client_msg_id": ID_B64,
               "envelope": "AQID", "ts": 1_732_000_000_000_i64}}),
    );
    round_trip(
        &ServerFrame::Synced { up_to: MessageId(7), more: false },
        json!({"type": "synced", "up_to": 7, "more": false}),
    );
    round_trip(
        &ServerFrame::Presence { user: bob(), online: false, last_seen: Some(99) },
        json!({"type": "presence", "user": "bob", "online": false, "last_seen": 99}),
    );
    round_trip(
        &ServerFrame::Typing { conversation: ConversationId(3), from: bob() },
        json!({"type": "typing", "conversation": 3, "from": "bob"}),
    );
    round_trip(
        &ServerFrame::Delivered { conversation: ConversationId(3), by: bob(), up_to: MessageId(3) },
        json!({"type": "delivered", "conversation": 3, "by": "bob", "up_to": 3}),
    );
    round_trip(
        &ServerFrame::Read { conversation: ConversationId(3), by: bob(), up_to: MessageId(3) },
        json!({"type": "read", "conversation": 3, "by": "bob", "up_to": 3}),
    );
    round_trip(
        &ServerFrame::ChatCleared {
            conversation: ConversationId(3),
            by: alice(),
            for_both: true,
            up_to: MessageId(7),
        },
        json!({"type": "chat_cleared", "conversation": 3, "by": "alice", "for_both": true, "up_to": 7}),
    );
    round_trip(&ServerFrame::CatchUp { since: MessageId(41) }, json!({"type": "catch_up", "since": 41}));
    round_trip(
        &ServerFrame::SessionRevoked { reason: "logged out".into() },
        json!({"type": "session_revoked", "reason": "logged out"}),
    );
    round_trip(
        &ServerFrame::Error {
            code: ErrorCode::UnknownRecipient,
            message: "no such user".into(),
            client_msg_id: None,
        },
        json!({"type": "error", "code": "unknown_recipient", "message": "no such user"}),
    );
}

#[test]
fn rest_bodies() {
    round_trip(
        &RegisterRequest {
            username: alice(),
            auth_key: AuthKeyBytes([1; 32]),
            salt: Salt([3; 16]),
            kdf: KdfParams { m_kib: 65536, t: 3, p: 1 },
            identity_key: IdentityKey([1; 32]),
            key_backup: SealedBackup::new(vec![9, 9]).unwrap(),
            invite: None,
        },
        json!({"username": "alice", "auth_key": KEY_B64, "salt": "AwMDAwMDAwMDAwMDAwMDAw==",
               "kdf": {"m_kib": 65536, "t": 3, "p": 1}, "identity_key": KEY_B64, "key_backup": "CQk="}),
    );
    round_trip(
        &RegisterRequest {
            username: alice(),
            auth_key: AuthKeyBytes([1; 32]),
            salt: Salt([3; 16]),
            kdf: KdfParams { m_kib: 65536, t: 3, p: 1 },
            identity_key: IdentityKey([1; 32]),
            key_backup: SealedBackup::new(vec![9, 9]).unwrap(),
            invite: Some("7kq2-m9xd-4htr-wb6n".into()),
        },
        json!({"username": "alice", "auth_key": KEY_B64, "salt": "AwMDAwMDAwMDAwMDAwMDAw==",
               "kdf": {"m_kib": 65536, "t": 3, "p": 1}, "identity_key": KEY_B64, "key_backup": "CQk=",
               "invite": "7kq2-m9xd-4htr-wb6n"}),
    );
    round_trip(
        &ServerInfo { registration: Registration::Invite, retention_days: None },
        json!({"registration": "invite"}),
    );
    round_trip(
        &ServerInfo { registration: Registration::Open, retention_days: Some(30) },
        json!({"registration": "open", "retention_days": 30}),
    );
    round_trip(&DeleteAccountRequest { auth_key: AuthKeyBytes([1; 32]) }, json!({"auth_key": KEY_B64}));
    round_trip(
        &UserInfo { username: bob(), identity_key: IdentityKey([1; 32]), signing_key: None, deleted: true },
        json!({"username": "bob", "identity_key": KEY_B64, "deleted": true}),
    );
    round_trip(
        &UserInfo { username: bob(), identity_key: IdentityKey([1; 32]), signing_key: None, deleted: false },
        json!({"username": "bob", "identity_key": KEY_B64}),
    );
    round_trip(
        &ServerInfo { registration: Registration::Open, retention_days: None },
        json!({"registration": "open"}),
    );
    round_trip(
        &ServerInfo { registration: Registration::Closed, retention_days: None },
        json!({"registration": "closed"}),
    );
    round_trip(
        &CreateInviteRequest { max_uses: 5, expires_in_secs: Some(86_400), note: "the Smiths".into() },
        json!({"max_uses": 5, "expires_in_secs": 86400, "note": "the Smiths"}),
    );
    let invite = InviteInfo {
        id: 3,
        note: "the Smiths".into(),
        max_uses: 5,
        uses: 1,
        created_at: 1000,
        expires_at: Some(2000),
        created_by: Some(alice()),
        state: InviteState::Active,
    };
    round_trip(
        &CreatedInvite { code: "7KQ2-M9XD-4HTR-WB6N".into(), invite: invite.clone() },
        json!({"code": "7KQ2-M9XD-4HTR-WB6N", "invite": {"id": 3, "note": "the Smiths", "max_uses": 5,
               "uses": 1, "created_at": 1000, "expires_at": 2000, "created_by": "alice", "state": "active"}}),
    );
    round_trip(
        &InviteList {
            invites: vec![InviteInfo {
                created_by: None,
                expires_at: None,
                state: InviteState::UsedUp,
                ..invite
            }],
        },
        json!({"invites": [{"id": 3, "note": "the Smiths", "max_uses": 5, "uses": 1, "created_at": 1000,
               "expires_at": null, "created_by": null, "state": "used_up"}]}),
    );
    round_trip(
        &PreloginResponse { salt: Salt([3; 16]), kdf: KdfParams { m_kib: 65536, t: 3, p: 1 } },
        json!({"salt": "AwMDAwMDAwMDAwMDAwMDAw==", "kdf": {"m_kib": 65536, "t": 3, "p": 1}}),
    );
    round_trip(
        &LoginRequest { username: alice(), auth_key: AuthKeyBytes([1; 32]) },
        json!({"username": "alice", "auth_key": KEY_B64}),
    );
    round_trip(&ClearRequest { for_both: true, up_to: None }, json!({"for_both": true}));
    round_trip(
        &ClearRequest { for_both: true, up_to: Some(MessageId(41)) },
        json!({"for_both": true, "up_to": 41}),
    );
    round_trip(
        &ConversationFlags { pinned: Some(true), hidden: None },
        json!({"pinned": true, "hidden": null}),
    );
    round_trip(
        &UpdateKeyBackupRequest { key_backup: SealedBackup::new(vec![1]).unwrap(), expected_version: 3 },
        json!({"key_backup": "AQ==", "expected_version": 3}),
    );
    round_trip(
        &UploadResponse { blob_id: BlobId::parse(BLOB).unwrap(), size: 16 },
        json!({"blob_id": BLOB, "size": 16}),
    );
    round_trip(
        &StorageInfo { used: 1, quota: 2, max_file_size: 3, max_blob_size: 19, unattached_ttl_secs: 4 },
        json!({"used": 1, "quota": 2, "max_file_size": 3, "max_blob_size": 19, "unattached_ttl_secs": 4}),
    );
    round_trip(&OpenDirectRequest { peer: bob() }, json!({"peer": "bob"}));
    round_trip(&BlockList { users: vec![bob()] }, json!({"users": ["bob"]}));
    round_trip(
        &ApiError::new(ErrorCode::QuotaExceeded, "over quota"),
        json!({"error": "quota_exceeded", "message": "over quota"}),
    );
    round_trip(
        &ApiError::new(ErrorCode::UsernameTaken, "that name is taken"),
        json!({"error": "username_taken", "message": "that name is taken"}),
    );
    round_trip(
        &ConversationSummary {
            id: ConversationId(3),
            kind: ConversationKind::Direct,
            members: vec![alice(), bob()],
            peer: bob(),
            peer_identity_key: IdentityKey([1; 32]),
            last_message: Some(message()),
            unread: 2,
            peer_online: true,
            peer_last_seen: None,
            peer_delivered_up_to: MessageId(7),
            peer_read_up_to: MessageId(6),
            read_up_to: MessageId(5),
            log_read_up_to: 14,
            peer_log_delivered_up_to: 16,
            peer_log_read_up_to: 15,
            pinned: false,
            hidden: false,
            last_activity: 10,
            peer_deleted: false,
        },
        json!({"id": 3, "kind": "direct", "members": ["alice", "bob"],
               "peer": "bob", "peer_identity_key": KEY_B64, "last_message": {"id": 7, "conversation": 3, "from": "alice", "to": "bob",
               "client_msg_id": ID_B64, "envelope": "AQID", "ts": 1_732_000_000_000_i64}, "unread": 2,
               "peer_online": true, "peer_last_seen": null, "peer_delivered_up_to": 7, "peer_read_up_to": 6,
               "read_up_to": 5, "log_read_up_to": 14, "peer_log_delivered_up_to": 16, "peer_log_read_up_to": 15,
               "pinned": false, "hidden": false, "last_activity": 10}),
    );
    // A peer who deleted their account: `peer_deleted` appears only then.
    let summary: ConversationSummary = serde_json::from_value(json!({"id": 3, "kind": "direct",
        "members": ["alice", "bob"], "peer": "bob", "peer_identity_key": KEY_B64, "last_message": null,
        "unread": 0, "peer_online": false, "peer_last_seen": null, "peer_delivered_up_to": 0,
        "peer_read_up_to": 0, "read_up_to": 0, "log_read_up_to": 0, "peer_log_delivered_up_to": 0,
        "peer_log_read_up_to": 0, "pinned": false, "hidden": false, "last_activity": 10, "peer_deleted": true}))
    .unwrap();
    assert!(summary.peer_deleted);
    assert_eq!(serde_json::to_value(&summary).unwrap()["peer_deleted"], json!(true));
    let group = GroupSummary {
        id: ConversationId(6),
        members: vec![alice(), bob()],
        unread: 3,
        log_read_up_to: 40,
        pinned: true,
        hidden: false,
        last_activity: 11,
    };
    round_trip(
        &ConversationsResponse { conversations: vec![], groups: vec![group] },
        json!({"conversations": [], "groups": [{"id": 6, "members": ["alice", "bob"], "unread": 3,
               "log_read_up_to": 40, "pinned": true, "hidden": false, "last_activity": 11}]}),
    );
    // A relay from before groups were listed leaves `groups` out.
    let old: ConversationsResponse = serde_json::from_value(json!({"conversations": []})).unwrap();
    assert!(old.groups.is_empty());
    // `/healthz`: a single relay says nothing of NATS; a node among several does.
    let single = Health { status: "ok".into(), version: "0.1.0".into(), database: "ok".into(), nats: None };
    round_trip(&single, json!({"status": "ok", "version": "0.1.0", "database": "ok"}));
    let node = Health {
        status: "unavailable".into(),
        version: "0.1.0".into(),
        database: "ok".into(),
        nats: Some("unreachable".into()),
    };
    round_trip(
        &node,
        json!({"status": "unavailable", "version": "0.1.0", "database": "ok", "nats": "unreachable"}),
    );
}

#[test]
fn every_error_code_has_its_wire_name_and_a_status() {
    use ErrorCode::*;
    let every = [
        InvalidJson,
        UnknownFrame,
        InvalidField,
        InvalidBase64,
        InvalidLength,
        InvalidUsername,
        UsernameTaken,
        InvalidCredentials,
        Unauthorized,
        SessionRevoked,
        TokenExpired,
        BadOrigin,
        NotFound,
        UnknownRecipient,
        FrameTooLarge,
        EnvelopeTooLarge,
        PayloadTooLarge,
        QuotaExceeded,
        UnknownBlob,
        RateLimited,
        MethodNotAllowed,
        StaleBackupVersion,
        InviteRequired,
        InviteInvalid,
        RegistrationClosed,
        AccountDisabled,
        KdfParamsRejected,
        UnsupportedProtocol,
        StaleEpoch,
        NotAdmin,
        GroupFull,
        DeviceRevoked,
        Conflict,
        Unavailable,
        Internal,
    ];
    for code in every {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        assert!((400..600).contains(&code.http_status()));
        assert!(ErrorCode::ALL.contains(&code), "{code} is missing from ErrorCode::ALL");
    }
    assert_eq!(ErrorCode::ALL.len(), every.len());
    assert_eq!(serde_json::to_value(MethodNotAllowed).unwrap(), json!("method_not_allowed"));
    assert_eq!(MethodNotAllowed.http_status(), 405);
    assert_eq!(StaleEpoch.as_str(), "stale_epoch");
    assert_eq!(StaleEpoch.http_status(), 409);
    assert_eq!(serde_json::to_value(Unavailable).unwrap(), json!("unavailable"));
    assert_eq!(Unavailable.http_status(), 503);
    assert_eq!(serde_json::to_value(InviteRequired).unwrap(), json!("invite_required"));
    assert_eq!(serde_json::to_value(InviteInvalid).unwrap(), json!("invite_invalid"));
    assert_eq!(serde_json::to_value(RegistrationClosed).unwrap(), json!("registration_closed"));
    assert_eq!(serde_json::to_value(AccountDisabled).unwrap(), json!("account_disabled"));
    assert_eq!(RegistrationClosed.http_status(), 403);
}

#[test]
fn bad_frames_get_specific_codes() {
    let code = |text: &str| parse_client_frame(text).unwrap_err().error;
    assert_eq!(code("{not json"), ErrorCode::InvalidJson);
    assert_eq!(code(""), ErrorCode::InvalidJson);
    assert_eq!(code(r#"{"type":"teleport"}"#), ErrorCode::UnknownFrame);
    assert_eq!(code(r#"{"kind":"send"}"#), ErrorCode::InvalidField);
    assert_eq!(code(r#"{"type":5}"#), ErrorCode::InvalidField);
    assert_eq!(code(r#"[1,2]"#), ErrorCode::InvalidField);
    assert_eq!(code(r#"{"type":"sync","since":"yesterday"}"#), ErrorCode::InvalidField);
    assert_eq!(code(r#"{"type":"sync"}"#), ErrorCode::InvalidField);
    let send = |conversation: &str, id: &str, env: &str| {
        format!(
            r#"{{"type":"send","conversation":{conversation},"client_msg_id":"{id}","envelope":"{env}"}}"#
        )
    };
    assert!(parse_client_frame(&send("3", ID_B64, "AQID")).is_ok());
    assert_eq!(code(&send("3", ID_B64, "@@@")), ErrorCode::InvalidBase64);
    assert_eq!(code(&send("3", "AQID", "AQID")), ErrorCode::InvalidLength);
    assert_eq!(code(&send(r#""bob""#, ID_B64, "AQID")), ErrorCode::InvalidField);
    assert_eq!(code(&send("1.5", ID_B64, "AQID")), ErrorCode::InvalidField);
    assert_eq!(code(&send("3", ID_B64, &"A".repeat(200_000))), ErrorCode::InvalidLength);
    assert_eq!(code(&send("3", ID_B64, "")), ErrorCode::InvalidLength, "an empty envelope");
    // A client cannot name a sender: unknown fields are refused, not ignored.
    let spoof = format!(
        r#"{{"type":"send","from":"alice","conversation":3,"client_msg_id":"{ID_B64}","envelope":"AQID"}}"#
    );
    assert_eq!(code(&spoof), ErrorCode::InvalidField);
    assert_eq!(code(r#"{"type":"typing","conversation":3,"username":"x"}"#), ErrorCode::InvalidField);
}

#[test]
fn usernames() {
    assert_eq!(Username::parse("Alice_01").unwrap().as_str(), "alice_01");
    for bad in ["", "ab", "1abc", "_abc", "al ice", "alice!", "ålice", &"a".repeat(33), "alice\0"] {
        assert!(Username::parse(bad).is_err(), "{bad:?}");
    }
    assert!(Username::parse(&"a".repeat(32)).is_ok());
}

#[test]
fn byte_newtypes_check_lengths() {
    assert!(IdentityKey::from_b64(KEY_B64).is_ok());
    assert!(matches!(IdentityKey::from_b64("AQID"), Err(BytesError::Length { expected: 32, actual: 3, .. })));
    assert!(matches!(IdentityKey::from_b64("%%%"), Err(BytesError::Base64 { .. })));
    assert!(Envelope::new(vec![0; MAX_ENVELOPE_BYTES]).is_ok());
    assert!(Envelope::new(vec![0; MAX_ENVELOPE_BYTES + 1]).is_err());
    assert_eq!(format!("{:?}", Envelope::new(vec![7; 10]).unwrap()), "Envelope(10 bytes)");
}

#[test]
fn blob_ids() {
    assert!(BlobId::parse(BLOB).is_ok());
    for bad in ["", "short", "q1w2e3r4t5y6u7i8o9p0-_x", "q1w2e3r4t5y6u7i8o9p0+/", "../../../../etc/passwd.."]
    {
        assert!(BlobId::parse(bad).is_err(), "{bad}");
    }
    let frame = |blobs: &str| {
        format!(
            r#"{{"type":"send","conversation":3,"client_msg_id":"{ID_B64}","envelope":"AQID","blobs":{blobs}}}"#
        )
    };
    assert!(parse_client_frame(&frame(&format!(r#"["{BLOB}"]"#))).is_ok());
    assert_eq!(parse_client_frame(&frame(r#"["../x"]"#)).unwrap_err().error, ErrorCode::InvalidField);
    assert_eq!(parse_client_frame(&frame(r#""one""#)).unwrap_err().error, ErrorCode::InvalidField);
}

#[test]
fn storage_info_says_what_the_relay_would_refuse() {
    let info = StorageInfo {
        used: 100,
        quota: 1000,
        max_file_size: 500,
        max_blob_size: 516,
        unattached_ttl_secs: 1,
    };
    assert_eq!(info.refusal(500), None);
    assert_eq!(info.refusal(501), Some(ErrorCode::PayloadTooLarge));
    let full = StorageInfo { used: 600, ..info };
    assert_eq!(full.refusal(384), None, "600 + 384 + 16 = 1000");
    assert_eq!(full.refusal(385), Some(ErrorCode::QuotaExceeded));
}

#[test]
fn blob_sizes_follow_the_chunking() {
    assert_eq!(blob_size_for(0), 16);
    assert_eq!(blob_size_for(1), 17);
    assert_eq!(blob_size_for(65_536), 65_552);
    assert_eq!(blob_size_for(65_537), 65_569);
    assert_eq!(blob_size_for(100 << 20), (100 << 20) + 16 * 1600);
}

const DEVICE: &str = "0303030303030303030303030303030303";

fn device() -> DeviceId {
    DeviceId([3; 16])
}

#[test]
fn group_frames() {
    let device_hex = &DEVICE[..32];
    round_trip(
        &ClientFrame::GroupSend {
            conversation: ConversationId(6),
            device: device(),
            client_msg_id: ClientMsgId([2; 16]),
            message: MlsBytes::new(vec![0, 1]).unwrap(),
        },
        json!({"type": "group_send", "conversation": 6, "device": device_hex, "client_msg_id": ID_B64, "message": "AAE="}),
    );
    round_trip(
        &ClientFrame::GroupDelivered { conversation: ConversationId(6), up_to: 12 },
        json!({"type": "group_delivered", "conversation": 6, "up_to": 12}),
    );
    round_trip(
        &ClientFrame::GroupRead { conversation: ConversationId(6), up_to: 12 },
        json!({"type": "group_read", "conversation": 6, "up_to": 12}),
    );
    round_trip(
        &ServerFrame::GroupDelivered { conversation: ConversationId(6), by: bob(), up_to: 12 },
        json!({"type": "group_delivered", "conversation": 6, "by": "bob", "up_to": 12}),
    );
    round_trip(
        &ServerFrame::GroupRead { conversation: ConversationId(6), by: bob(), up_to: 11 },
        json!({"type": "group_read", "conversation": 6, "by": "bob", "up_to": 11}),
    );
    round_trip(
        &ServerFrame::GroupAck { client_msg_id: ClientMsgId([2; 16]), seq: 12, ts: 8 },
        json!({"type": "group_ack", "client_msg_id": ID_B64, "seq": 12, "ts": 8}),
    );
    round_trip(
        &ServerFrame::GroupEntry {
            entry: GroupEntry {
                seq: 12,
                conversation: ConversationId(6),
                sender: alice(),
                device: device(),
                epoch: 4,
                kind: EntryKind::Commit,
                message: MlsBytes::new(vec![0, 1]).unwrap(),
                ts: 8,
            },
        },
        json!({"type": "group_entry", "entry": {"seq": 12, "conversation": 6, "sender": "alice", "device": device_hex,
               "epoch": 4, "kind": "commit", "message": "AAE=", "ts": 8}}),
    );
    round_trip(
        &ServerFrame::Welcome { conversation: ConversationId(6), device: device() },
        json!({"type": "welcome", "conversation": 6, "device": device_hex}),
    );
    round_trip(
        &ServerFrame::Left { conversation: ConversationId(6), user: bob() },
        json!({"type": "left", "conversation": 6, "user": "bob"}),
    );
    let stale = ServerFrame::error(
        ApiError::new(ErrorCode::StaleEpoch, "epoch 4 is over"),
        Some(ClientMsgId([2; 16])),
    );
    round_trip(
        &stale,
        json!({"type": "error", "code": "stale_epoch", "message": "epoch 4 is over", "client_msg_id": ID_B64}),
    );
}

#[test]
fn group_bodies() {
    let device_hex = &DEVICE[..32];
    round_trip(
        &PublishSigningKeyRequest { signing_key: SigningKey([1; 32]) },
        json!({"signing_key": KEY_B64}),
    );
    round_trip(
        &UserInfo {
            username: bob(),
            identity_key: IdentityKey([1; 32]),
            signing_key: Some(SigningKey([1; 32])),
            deleted: false,
        },
        json!({"username": "bob", "identity_key": KEY_B64, "signing_key": KEY_B64}),
    );
    round_trip(
        &UserInfo { username: bob(), identity_key: IdentityKey([1; 32]), signing_key: None, deleted: false },
        json!({"username": "bob", "identity_key": KEY_B64}),
    );
    round_trip(
        &RegisterDeviceRequest { device: device(), certificate: CertificateBytes::new(vec![9]).unwrap() },
        json!({"device": device_hex, "certificate": "CQ=="}),
    );
    round_trip(
        &DeviceList {
            devices: vec![DeviceInfo {
                device: device(),
                certificate: CertificateBytes::new(vec![9]).unwrap(),
                created_at: 1,
                last_seen: 2,
                revoked_at: None,
                key_packages: 5,
            }],
        },
        json!({"devices": [{"device": device_hex, "certificate": "CQ==", "created_at": 1, "last_seen": 2,
                            "revoked_at": null, "key_packages": 5}]}),
    );
    round_trip(
        &UploadKeyPackagesRequest {
            key_packages: vec![MlsBytes::new(vec![0, 1]).unwrap()],
            last_resort: None,
        },
        json!({"key_packages": ["AAE="]}),
    );
    round_trip(&KeyPackageCount { left: 7 }, json!({"left": 7}));
    round_trip(&ClaimKeyPackagesRequest { users: vec![bob()] }, json!({"users": ["bob"]}));
    round_trip(
        &ClaimedKeyPackages {
            users: vec![UserKeyPackages {
                user: bob(),
                key_packages: vec![DeviceKeyPackage {
                    device: device(),
                    key_package: MlsBytes::new(vec![0, 1]).unwrap(),
                }],
            }],
        },
        json!({"users": [{"user": "bob", "key_packages": [{"device": device_hex, "key_package": "AAE="}]}]}),
    );
    round_trip(
        &CreateGroupRequest {
            group_id: GroupId([2; 16]),
            device: device(),
            group_info: MlsBytes::new(vec![0, 1]).unwrap(),
        },
        json!({"group_id": ID_B64, "device": device_hex, "group_info": "AAE="}),
    );
    round_trip(
        &GroupState {
            conversation: ConversationId(6),
            kind: ConversationKind::Group,
            group_id: GroupId([2; 16]),
            epoch: 3,
            members: vec![
                GroupMember { user: alice(), admin: true, delivered_up_to: 40, read_up_to: 40 },
                GroupMember { user: bob(), admin: false, delivered_up_to: 39, read_up_to: 12 },
            ],
            removed_devices: vec![device()],
        },
        json!({"conversation": 6, "kind": "group", "group_id": ID_B64, "epoch": 3,
               "members": [{"user": "alice", "admin": true, "delivered_up_to": 40, "read_up_to": 40},
                           {"user": "bob", "admin": false, "delivered_up_to": 39, "read_up_to": 12}],
               "removed_devices": [device_hex]}),
    );
    round_trip(
        &GroupInfoResponse { epoch: 3, seq: 40, group_info: MlsBytes::new(vec![0, 1]).unwrap() },
        json!({"epoch": 3, "seq": 40, "group_info": "AAE="}),
    );
    round_trip(
        &AppendRequest {
            device: device(),
            client_msg_id: ClientMsgId([2; 16]),
            message: MlsBytes::new(vec![0, 1]).unwrap(),
            commit: Some(CommitEffects {
                group_info: MlsBytes::new(vec![2]).unwrap(),
                welcome: Some(MlsBytes::new(vec![3]).unwrap()),
                welcome_devices: vec![device()],
                added: vec![bob()],
                removed: vec![],
                admins: None,
            }),
            blobs: vec![],
        },
        json!({"device": device_hex, "client_msg_id": ID_B64, "message": "AAE=",
               "commit": {"group_info": "Ag==", "welcome": "Aw==", "welcome_devices": [device_hex], "added": ["bob"]}}),
    );
    let blob = BlobId::parse(BLOB).unwrap();
    round_trip(
        &AppendRequest {
            device: device(),
            client_msg_id: ClientMsgId([2; 16]),
            message: MlsBytes::new(vec![0, 1]).unwrap(),
            commit: None,
            blobs: vec![blob.clone()],
        },
        json!({"device": device_hex, "client_msg_id": ID_B64, "message": "AAE=", "blobs": [blob.as_str()]}),
    );
    round_trip(&AppendedEntry { seq: 12, ts: 8 }, json!({"seq": 12, "ts": 8}));
    assert_eq!(GroupLogQuery { since: 5, limit: None, device: None }.to_query(), "?since=5");
    let q = GroupLogQuery { since: 5, limit: Some(9), device: Some(device()) };
    assert_eq!(q.to_query(), format!("?since=5&limit=9&device={device_hex}"));
    round_trip(
        &WelcomeList {
            welcomes: vec![WelcomeOut {
                id: 1,
                conversation: ConversationId(6),
                seq: 12,
                welcome: MlsBytes::new(vec![3]).unwrap(),
            }],
        },
        json!({"welcomes": [{"id": 1, "conversation": 6, "seq": 12, "welcome": "Aw=="}]}),
    );
    round_trip(&WelcomesTakenRequest { up_to: 1 }, json!({"up_to": 1}));
    round_trip(
        &ArchiveUpload {
            entries: vec![ArchiveEntryIn {
                conversation: ConversationId(6),
                seq: 12,
                sender: bob(),
                sent_ms: 1_700_000_000_000,
                entry: ArchiveBytes::new(vec![1, 2]).unwrap(),
            }],
        },
        json!({"entries": [{"conversation": 6, "seq": 12, "sender": "bob", "sent_ms": 1_700_000_000_000u64, "entry": "AQI="}]}),
    );
    round_trip(&ArchiveStored { stored: 1 }, json!({"stored": 1}));
    round_trip(
        &ArchivePage {
            entries: vec![ArchiveEntry {
                seq: 12,
                sender: bob(),
                sent_ms: 5,
                entry: ArchiveBytes::new(vec![1]).unwrap(),
            }],
            more: false,
        },
        json!({"entries": [{"seq": 12, "sender": "bob", "sent_ms": 5, "entry": "AQ=="}], "more": false}),
    );
    round_trip(
        &ArchiveList {
            conversations: vec![ArchivedConversation {
                conversation: ConversationId(6),
                entries: 3,
                last_seq: 12,
            }],
        },
        json!({"conversations": [{"conversation": 6, "entries": 3, "last_seq": 12}]}),
    );
    assert_eq!(ArchiveQuery::default().to_query(), "");
    assert_eq!(ArchiveQuery { before: Some(9), limit: Some(2) }.to_query(), "?before=9&limit=2");
    assert_eq!(ArchiveQuery { before: None, limit: Some(2) }.to_query(), "?limit=2");
    let too_big = ArchiveBytes::new(vec![0; MAX_ARCHIVE_ENTRY_BYTES + 1]).unwrap_err();
    assert!(too_big.to_string().contains("archive_entry"), "{too_big}");
    // A device id in any other spelling is refused with a field error.
    let bad = format!(
        r#"{{"type":"group_send","conversation":6,"device":"{}","client_msg_id":"{ID_B64}","message":"AAE="}}"#,
        "AB".repeat(16)
    );
    assert_eq!(parse_client_frame(&bad).unwrap_err().error, ErrorCode::InvalidField);
}

/// Every variable-length byte field needs at least one byte (the OpenAPI description's
/// `minLength: 1`), refused once, where it is decoded, with `invalid_length`.
#[test]
fn empty_byte_fields_are_refused_where_they_are_decoded() {
    fn both<T: serde::de::DeserializeOwned + std::fmt::Debug>(
        new: fn(Vec<u8>) -> Result<T, BytesError>,
        what: &str,
    ) {
        let err = new(Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), format!("{what}: expected 1 or more bytes, got 0"));
        assert_eq!(ApiError::from(err).error, ErrorCode::InvalidLength);
        let e = serde_json::from_str::<T>(r#""""#).unwrap_err();
        assert_eq!(classify_json_error(&e).error, ErrorCode::InvalidLength, "{what}: {e}");
        assert!(new(vec![0]).is_ok());
        assert!(serde_json::from_str::<T>(r#""AA==""#).is_ok());
    }
    both(Envelope::new, "envelope");
    both(SealedBackup::new, "key_backup");
    both(MlsBytes::new, "mls");
    both(ArchiveBytes::new, "archive_entry");
    both(CertificateBytes::new, "certificate");
}
