//! Writes the seed corpora (`fuzz/corpus/<target>/seed-*`): valid inputs of every kind, so
//! the fuzzer starts from what real clients and relays send. Deterministic: fixed keys and
//! nonces, so running it again changes nothing. `cargo xtask fuzz --seeds` runs it.

use std::path::Path;

use sealroom_crypto::{
    seal_backup_with_nonce, seal_message_with_nonce, BackupContents, FileRef, MessageHeader, Payload, Pin,
};
use sealroom_fuzz::{alice, backup_key, bob, file_key, pair, BACKUP_OWNER};
use sealroom_protocol::*;
use serde::Serialize;

fn mls(bytes: &[u8]) -> MlsBytes {
    MlsBytes::new(bytes.to_vec()).expect("mls bytes")
}

fn group_entry() -> GroupEntry {
    GroupEntry {
        seq: 12,
        conversation: ConversationId(3),
        sender: name("alice"),
        device: DeviceId([5; 16]),
        epoch: 2,
        kind: EntryKind::Commit,
        message: mls(&[0, 1, 0, 1]),
        ts: 2,
    }
}

fn write(target: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).expect("seed written");
    }
}

fn js<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("json")
}

fn tagged<T: Serialize>(tag: u8, value: &T) -> Vec<u8> {
    [vec![tag], js(value)].concat()
}

fn raw(tag: u8, text: &str) -> Vec<u8> {
    [&[tag][..], text.as_bytes()].concat()
}

const BLOB: &str = "q1w2e3r4t5y6u7i8o9p0-_";

fn name(s: &str) -> Username {
    Username::parse(s).expect("valid name")
}

fn message() -> MessageOut {
    MessageOut {
        id: MessageId(7),
        conversation: ConversationId(3),
        from: name("alice"),
        to: name("bob"),
        client_msg_id: ClientMsgId([2; 16]),
        envelope: Envelope::new(vec![1; 300]).expect("envelope"),
        ts: 1_732_000_000_000,
    }
}

fn me() -> Me {
    Me {
        id: UserId(1),
        username: name("alice"),
        identity_key: IdentityKey([1; 32]),
        key_backup: SealedBackup::new(vec![2; 80]).expect("backup"),
        key_backup_version: 4,
        created_at: 1_732_000_000_000,
        admin: false,
    }
}

fn invite() -> InviteInfo {
    InviteInfo {
        id: 3,
        note: "the Smiths".into(),
        max_uses: 5,
        uses: 1,
        created_at: 1_732_000_000_000,
        expires_at: Some(1_732_086_400_000),
        created_by: Some(name("alice")),
        state: InviteState::Active,
    }
}

fn payloads() -> Vec<Payload> {
    vec![
        Payload::Text(String::new()),
        Payload::Text("hello, Bob 👋".into()),
        Payload::Text("x".repeat(300)),
        Payload::File(FileRef {
            blob_id: BLOB.into(),
            file_key: file_key(),
            ciphertext_sha256: [9; 32],
            size: 123_456,
            name: "holiday photo.jpg".into(),
            mime: "image/jpeg".into(),
        }),
        Payload::GroupName("Ünïcode team ✓".into()),
        Payload::Upgrade {
            signing_key: sealroom_crypto::SigningSecret::from_seed([9; 32]).public_key(),
            group_id: [0xab; 16],
        },
    ]
}

fn main() {
    let kdf = KdfParams { m_kib: 65536, t: 3, p: 1 };
    let conv = ConversationId(3);
    let id = ClientMsgId([2; 16]);
    let envelope = Envelope::new(vec![0xff; 300]).expect("envelope");
    let blob = BlobId::parse(BLOB).expect("blob id");
    write(
        "client_frame",
        &[
            ClientFrame::Hello { protocol: PROTOCOL_VERSION },
            ClientFrame::Send {
                conversation: conv,
                client_msg_id: id,
                envelope: envelope.clone(),
                blobs: vec![],
            },
            ClientFrame::Send { conversation: conv, client_msg_id: id, envelope, blobs: vec![blob.clone()] },
            ClientFrame::Sync { since: MessageId(41) },
            ClientFrame::Typing { conversation: conv },
            ClientFrame::Delivered { conversation: conv, up_to: MessageId(9) },
            ClientFrame::Read { conversation: conv, up_to: MessageId(9) },
            ClientFrame::GroupDelivered { conversation: conv, up_to: 12 },
            ClientFrame::GroupRead { conversation: conv, up_to: 12 },
            ClientFrame::GroupSend {
                conversation: conv,
                device: DeviceId([5; 16]),
                client_msg_id: id,
                message: MlsBytes::new(vec![0, 1, 0, 2, 16]).expect("mls"),
            },
        ]
        .iter()
        .map(js)
        .collect::<Vec<_>>(),
    );
    write(
        "server_frame",
        &[
            ServerFrame::Hello {
                protocol: PROTOCOL_VERSION,
                user: name("alice"),
                session_id: "s1".into(),
                server_time: 1,
            },
            ServerFrame::Ack { client_msg_id: id, id: MessageId(7), ts: 2 },
            ServerFrame::Message { message: message() },
            ServerFrame::Synced { up_to: MessageId(7), more: true },
            ServerFrame::Presence { user: name("bob"), online: false, last_seen: Some(3) },
            ServerFrame::Typing { conversation: conv, from: name("bob") },
            ServerFrame::Delivered { conversation: conv, by: name("bob"), up_to: MessageId(7) },
            ServerFrame::Read { conversation: conv, by: name("bob"), up_to: MessageId(7) },
            ServerFrame::ChatCleared {
                conversation: conv,
                by: name("bob"),
                for_both: true,
                up_to: MessageId(7),
            },
            ServerFrame::CatchUp { since: MessageId(41) },
            ServerFrame::SessionRevoked { reason: "logged out".into() },
            ServerFrame::GroupAck { client_msg_id: id, seq: 12, ts: 2 },
            ServerFrame::GroupDelivered { conversation: conv, by: name("bob"), up_to: 12 },
            ServerFrame::GroupRead { conversation: conv, by: name("bob"), up_to: 11 },
            ServerFrame::GroupEntry { entry: group_entry() },
            ServerFrame::Welcome { conversation: conv, device: DeviceId([5; 16]) },
            ServerFrame::Left { conversation: conv, user: name("bob") },
            ServerFrame::error(ApiError::new(ErrorCode::RateLimited, "slow down"), Some(id)),
        ]
        .iter()
        .map(js)
        .collect::<Vec<_>>(),
    );
    let key = || AuthKeyBytes([1; 32]);
    let backup = || SealedBackup::new(vec![2; 80]).expect("backup");
    let summary = ConversationSummary {
        id: conv,
        kind: ConversationKind::Direct,
        members: vec![name("alice"), name("bob")],
        peer: name("bob"),
        peer_identity_key: IdentityKey([3; 32]),
        last_message: Some(message()),
        unread: 1,
        peer_online: true,
        peer_last_seen: None,
        peer_delivered_up_to: MessageId(7),
        peer_read_up_to: MessageId(6),
        read_up_to: MessageId(7),
        log_read_up_to: 3,
        peer_log_delivered_up_to: 4,
        peer_log_read_up_to: 3,
        pinned: false,
        hidden: false,
        last_activity: 4,
        peer_deleted: false,
    };
    write(
        "rest_body",
        &[
            tagged(0, &PreloginRequest { username: name("alice") }),
            tagged(
                1,
                &RegisterRequest {
                    username: name("alice"),
                    auth_key: key(),
                    salt: Salt([4; 16]),
                    kdf,
                    identity_key: IdentityKey([1; 32]),
                    key_backup: backup(),
                    invite: Some("7kq2-m9xd-4htr-wb6n".into()),
                },
            ),
            tagged(2, &LoginRequest { username: name("alice"), auth_key: key() }),
            tagged(
                3,
                &ChangePasswordRequest {
                    auth_key: key(),
                    new_auth_key: key(),
                    new_salt: Salt([5; 16]),
                    new_kdf: kdf,
                    new_key_backup: backup(),
                },
            ),
            tagged(4, &UpdateKeyBackupRequest { key_backup: backup(), expected_version: 3 }),
            tagged(5, &OpenDirectRequest { peer: name("bob") }),
            tagged(6, &MarkReadRequest { up_to: MessageId(9) }),
            tagged(7, &ClearRequest { for_both: true, up_to: Some(MessageId(9)) }),
            tagged(8, &ConversationFlags { pinned: Some(true), hidden: None }),
            raw(9, "before=10&limit=50"),
            raw(10, BLOB),
            raw(10, "alice_01"),
            raw(10, "12"),
            tagged(11, &PreloginResponse { salt: Salt([4; 16]), kdf }),
            tagged(
                12,
                &SessionResponse { token: "t".into(), session_id: "s".into(), expires_at: 5, user: me() },
            ),
            tagged(13, &me()),
            tagged(14, &KeyBackupVersion { key_backup_version: 5 }),
            tagged(
                15,
                &UserInfo {
                    username: name("bob"),
                    identity_key: IdentityKey([3; 32]),
                    signing_key: Some(SigningKey([4; 32])),
                    deleted: true,
                },
            ),
            tagged(
                16,
                &UserSearchResponse {
                    users: vec![UserInfo {
                        username: name("bob"),
                        identity_key: IdentityKey([3; 32]),
                        signing_key: None,
                        deleted: false,
                    }],
                },
            ),
            tagged(
                17,
                &ConversationsResponse {
                    conversations: vec![summary.clone()],
                    groups: vec![GroupSummary {
                        id: ConversationId(6),
                        members: vec![name("alice"), name("bob")],
                        unread: 1,
                        log_read_up_to: 4,
                        pinned: false,
                        hidden: false,
                        last_activity: 9,
                    }],
                },
            ),
            tagged(
                18,
                &HistoryResponse {
                    messages: vec![message()],
                    has_more: true,
                    peer_delivered_up_to: MessageId(7),
                    peer_read_up_to: MessageId(7),
                },
            ),
            tagged(19, &BlockList { users: vec![name("mallory")] }),
            tagged(
                20,
                &Health {
                    status: "ok".into(),
                    version: "0.1.0".into(),
                    database: "ok".into(),
                    nats: Some("ok".into()),
                },
            ),
            tagged(21, &UploadResponse { blob_id: blob, size: 100 }),
            tagged(
                22,
                &StorageInfo {
                    used: 1,
                    quota: 2,
                    max_file_size: 3,
                    max_blob_size: 4,
                    unattached_ttl_secs: 5,
                },
            ),
            tagged(23, &ApiError::new(ErrorCode::InvalidField, "no")),
            tagged(24, &summary),
            tagged(25, &message()),
            tagged(26, &PublishSigningKeyRequest { signing_key: SigningKey([4; 32]) }),
            tagged(
                27,
                &RegisterDeviceRequest {
                    device: DeviceId([5; 16]),
                    certificate: CertificateBytes::new(vec![1; 150]).expect("certificate"),
                },
            ),
            tagged(
                28,
                &UploadKeyPackagesRequest {
                    key_packages: vec![mls(&[0, 1, 0, 3, 9])],
                    last_resort: Some(mls(&[0, 1, 0, 3])),
                },
            ),
            tagged(29, &ClaimKeyPackagesRequest { users: vec![name("bob")] }),
            tagged(
                30,
                &CreateGroupRequest {
                    group_id: GroupId([6; 16]),
                    device: DeviceId([5; 16]),
                    group_info: mls(&[0, 1, 0, 4]),
                },
            ),
            tagged(
                31,
                &AppendRequest {
                    device: DeviceId([5; 16]),
                    client_msg_id: id,
                    message: mls(&[0, 1, 0, 1]),
                    commit: Some(CommitEffects {
                        group_info: mls(&[0, 1, 0, 4]),
                        welcome: Some(mls(&[0, 1, 0, 3])),
                        welcome_devices: vec![DeviceId([5; 16])],
                        added: vec![name("bob")],
                        removed: vec![name("carol")],
                        admins: Some(vec![name("alice")]),
                    }),
                    blobs: vec![],
                },
            ),
            tagged(
                31,
                &AppendRequest {
                    device: DeviceId([5; 16]),
                    client_msg_id: id,
                    message: mls(&[0, 1, 0, 2]),
                    commit: None,
                    blobs: vec![BlobId::parse(BLOB).expect("blob id")],
                },
            ),
            tagged(32, &WelcomesTakenRequest { up_to: 3 }),
            raw(33, "since=12&limit=50"),
            tagged(
                34,
                &DeviceList {
                    devices: vec![DeviceInfo {
                        device: DeviceId([5; 16]),
                        certificate: CertificateBytes::new(vec![1; 150]).expect("certificate"),
                        created_at: 1,
                        last_seen: 2,
                        revoked_at: Some(3),
                        key_packages: 4,
                    }],
                },
            ),
            tagged(
                35,
                &ClaimedKeyPackages {
                    users: vec![UserKeyPackages {
                        user: name("bob"),
                        key_packages: vec![DeviceKeyPackage {
                            device: DeviceId([5; 16]),
                            key_package: mls(&[0, 1, 0, 3]),
                        }],
                    }],
                },
            ),
            tagged(
                36,
                &GroupState {
                    conversation: conv,
                    kind: sealroom_protocol::ConversationKind::Direct,
                    group_id: GroupId([6; 16]),
                    epoch: 2,
                    members: vec![GroupMember { user: name("alice"), admin: true, delivered_up_to: 3, read_up_to: 2 }],
                    removed_devices: vec![DeviceId([5; 16])],
                },
            ),
            tagged(37, &GroupLogResponse { entries: vec![group_entry()], more: true }),
            tagged(
                38,
                &WelcomeList {
                    welcomes: vec![WelcomeOut {
                        id: 1,
                        conversation: conv,
                        seq: 12,
                        welcome: mls(&[0, 1, 0, 3]),
                    }],
                },
            ),
            tagged(
                39,
                &ArchiveUpload {
                    entries: vec![ArchiveEntryIn {
                        conversation: conv,
                        seq: 12,
                        sender: name("bob"),
                        sent_ms: 1_732_000_000_000,
                        entry: ArchiveBytes::new(vec![1; 300]).expect("entry"),
                    }],
                },
            ),
            raw(40, "before=40&limit=20"),
            tagged(
                41,
                &ArchivePage {
                    entries: vec![ArchiveEntry {
                        seq: 12,
                        sender: name("bob"),
                        sent_ms: 1_732_000_000_000,
                        entry: ArchiveBytes::new(vec![1; 300]).expect("entry"),
                    }],
                    more: true,
                },
            ),
            tagged(
                42,
                &ArchiveList {
                    conversations: vec![ArchivedConversation { conversation: conv, entries: 3, last_seq: 12 }],
                },
            ),
            // Running a relay: invites, and who may register.
            tagged(43, &CreateInviteRequest { max_uses: 5, expires_in_secs: Some(86_400), note: "the Smiths".into() }),
            tagged(44, &ServerInfo { registration: Registration::Invite, retention_days: Some(30) }),
            tagged(45, &CreatedInvite { code: "7KQ2-M9XD-4HTR-WB6N".into(), invite: invite() }),
            tagged(46, &InviteList { invites: vec![invite()] }),
            tagged(47, &DeleteAccountRequest { auth_key: key() }),
        ],
    );

    let (a, b, pair_key) = pair();
    let (a, b) = (*a, *b);
    let envelopes: Vec<Vec<u8>> = payloads()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let header =
                MessageHeader { client_msg_id: [i as u8; 16], sent_at_ms: 1_732_000_000_000 + i as u64 };
            seal_message_with_nonce(pair_key, &a, &b, &header, p, &[i as u8 + 1; 24]).expect("seals")
        })
        .collect();
    write("envelope", &envelopes);

    let mut plain: Vec<Vec<u8>> = payloads().iter().map(|p| p.encode().expect("encodes")).collect();
    plain.push(sealroom_crypto::pad(&plain[1]).expect("pads"));
    write("payload", &plain);

    let mut contents = BackupContents::new(alice());
    contents.pins.insert(
        "bob".into(),
        Pin { public_key: bob().public_key(), signing_key: None, verified: true, other_flags: 0 },
    );
    contents.settings = Some(r#"{"theme":"dark"}"#.into());
    contents.unknown.push((0x7f, vec![1, 2, 3]));
    contents.generation = 7;
    let encoded = contents.encode().expect("encodes").to_vec();
    let sealed = seal_backup_with_nonce(&backup_key(), BACKUP_OWNER, &contents, &[5; 24]).expect("seals");
    write("key_backup", &[encoded, sealed]);

    // Attachment seeds are files (the target encrypts them itself): chunk size, cut, bytes.
    write(
        "attachment",
        &[
            vec![15, 3],
            [&[15u8, 20][..], &[0x61; 40]].concat(),
            [&[63u8, 100][..], &[0xaa; 200]].concat(),
            [&[0u8, 7][..], b"abc"].concat(),
        ],
    );
}
