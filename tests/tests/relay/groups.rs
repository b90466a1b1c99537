//! Group conversations (MLS) end to end: real relay, real native clients with their own
//! devices, real OpenMLS groups.

use std::time::Duration;

use sealroom_client::{EventKind, GroupEvent, Sent, Session};
use sealroom_protocol::{ErrorCode, ServerFrame};
use sealroom_session::Payload;
use sealroom_tests::TestServer;

fn texts(events: &[GroupEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.what {
            EventKind::Message { sender, payload: Payload::Text(t), .. } => Some((sender.clone(), t.clone())),
            _ => None,
        })
        .collect()
}

fn text(s: &str) -> Payload {
    Payload::Text(s.into())
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

fn refused(events: &[GroupEvent]) -> Vec<&GroupEvent> {
    events.iter().filter(|e| matches!(e.what, EventKind::Refused(_) | EventKind::Unreadable(_))).collect()
}

async fn second_device(server: &TestServer, name: &str) -> Session {
    server.client().login(name, &format!("password-of-{name}")).await.unwrap()
}

#[tokio::test]
async fn a_group_adds_sends_removes_and_its_members_read_everything_they_may() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut carol = server.register("carol").await;
    // Bob and carol have devices with key packages before they are added; bob's second device
    // comes later and joins by itself.
    bob.mls_start().await.unwrap();
    carol.mls_start().await.unwrap();

    let group = alice.create_group(&["bob", "carol"]).await.unwrap();
    let state = alice.group(group).await.unwrap();
    let members: Vec<(String, bool)> = state.members.iter().map(|m| (m.user.to_string(), m.admin)).collect();
    assert_eq!(members, [("alice".into(), true), ("bob".into(), false), ("carol".into(), false)]);

    let mut live = bob.connect().await.unwrap();
    alice.send_group(group, &text("hello, both")).await.unwrap();
    let frame = live.next_within(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(&frame, ServerFrame::GroupEntry { entry } if entry.conversation == group), "{frame:?}");

    let b = bob.sync_groups().await.unwrap();
    assert!(b.iter().any(|e| e.what == EventKind::Joined && e.conversation == group), "{b:?}");
    assert_eq!(texts(&b), [pair("alice", "hello, both")]);
    assert!(refused(&b).is_empty(), "{b:?}");
    let c = carol.sync_groups().await.unwrap();
    assert_eq!(texts(&c), [pair("alice", "hello, both")]);

    // Bob's second device was never added: it joins by external commit, then reads what
    // follows (what came before is the history archive's, not MLS's).
    let mut bob2 = second_device(&server, "bob").await;
    let b2 = bob2.sync_groups().await.unwrap();
    assert!(b2.iter().any(|e| e.what == EventKind::Joined), "{b2:?}");
    carol.send_group(group, &text("from carol")).await.unwrap();
    assert_eq!(texts(&bob2.sync_groups().await.unwrap()), [pair("carol", "from carol")]);
    let a = alice.sync_groups().await.unwrap();
    assert_eq!(texts(&a), [pair("carol", "from carol")]);
    assert!(a.iter().any(|e| matches!(&e.what, EventKind::Commit(s) if s.by == "bob")), "{a:?}");
    assert!(refused(&a).is_empty(), "{a:?}");

    // Two members commit at once without reading each other: the relay orders one, the other
    // is told `stale_epoch`, catches up and commits again by itself.
    bob.sync_groups().await.unwrap();
    carol.sync_groups().await.unwrap();
    let (x, y) = tokio::join!(bob.update_keys(group), carol.update_keys(group));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_ne!(x.seq, y.seq);
    assert_eq!(server_epoch(&alice, group).await, alice.group(group).await.unwrap().epoch);
    bob2.send_group(group, &text("after the updates")).await.unwrap();
    for s in [&mut alice, &mut bob, &mut carol] {
        let e = s.sync_groups().await.unwrap();
        assert_eq!(texts(&e), [pair("bob", "after the updates")], "{}", s.username());
        assert!(refused(&e).is_empty(), "{}: {e:?}", s.username());
    }

    // Only admins add: bob's device refuses to make the commit.
    let mut dave = server.register("dave").await;
    dave.mls_start().await.unwrap();
    let err = bob.add_members(group, &["dave"]).await.unwrap_err();
    assert!(err.to_string().contains("admin"), "{err}");

    // Alice removes carol: carol reads the commit that removes her (and only her), forgets
    // the group, and reads nothing sent after.
    alice.remove_members(group, &["carol"]).await.unwrap();
    let c = carol.sync_groups().await.unwrap();
    let removal = c.iter().find_map(|e| match &e.what {
        EventKind::Commit(s) if e.conversation == group && s.self_removed => Some(s),
        _ => None,
    });
    let removal = removal.unwrap_or_else(|| panic!("carol reads her removal: {c:?}"));
    assert!(removal.by == "alice" && removal.removed.iter().all(|(u, _)| u == "carol"), "{removal:?}");
    assert!(!removal.removed.is_empty());
    assert_eq!(carol.group_epoch(group), None);
    alice.send_group(group, &text("without carol")).await.unwrap();
    assert!(texts(&carol.sync_groups().await.unwrap()).is_empty());
    let gone = carol.group(group).await.unwrap_err();
    assert!(
        matches!(&gone, sealroom_client::ClientError::Api(e) if e.error == ErrorCode::NotFound),
        "{gone}"
    );
    let err = carol.send_group(group, &text("still here?")).await.unwrap_err();
    assert!(err.to_string().contains("not in that group"), "{err}");
    for s in [&mut bob, &mut bob2] {
        assert_eq!(texts(&s.sync_groups().await.unwrap()), [pair("alice", "without carol")]);
    }

    // Bob leaves: the relay stops routing to him at once; alice's client commits his removal.
    bob.leave_group(group).await.unwrap();
    assert_eq!(alice.tidy_groups().await.unwrap(), 1);
    assert_eq!(alice.tidy_groups().await.unwrap(), 0, "nothing left to tidy");
    let state = alice.group(group).await.unwrap();
    assert_eq!(state.members.iter().map(|m| m.user.as_str()).collect::<Vec<_>>(), ["alice"]);
    alice.send_group(group, &text("alone now")).await.unwrap();
    let b2 = bob2.sync_groups().await.unwrap();
    assert!(texts(&b2).is_empty(), "{b2:?}");
}

async fn server_epoch(s: &Session, group: sealroom_protocol::ConversationId) -> u64 {
    s.groups().await.unwrap().into_iter().find(|g| g.conversation == group).unwrap().epoch
}

#[tokio::test]
async fn a_removed_device_is_taken_out_of_its_groups() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut bob2 = second_device(&server, "bob").await;
    bob.mls_start().await.unwrap();
    let old = bob2.device_id().await.unwrap();
    let group = alice.create_group(&["bob"]).await.unwrap();
    assert!(bob2.sync_groups().await.unwrap().iter().any(|e| e.what == EventKind::Joined));

    let devices = bob.devices().await.unwrap();
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().all(|d| d.key_packages > 0 && d.revoked_at.is_none()), "{devices:?}");
    bob.remove_device(old).await.unwrap();
    let err = bob2.send_group(group, &text("from a removed device")).await.unwrap_err();
    assert!(
        matches!(&err, sealroom_client::ClientError::Api(e) if e.error == ErrorCode::DeviceRevoked),
        "{err}"
    );

    alice.sync_groups().await.unwrap();
    assert_eq!(alice.group(group).await.unwrap().removed_devices, [old]);
    assert_eq!(alice.tidy_groups().await.unwrap(), 1);
    alice.send_group(group, &text("for bob's remaining device")).await.unwrap();
    assert_eq!(texts(&bob.sync_groups().await.unwrap()), [pair("alice", "for bob's remaining device")]);
}

/// The update rule: after 100 messages, or 7 days after its last commit, a device commits an
/// update by itself (post-compromise security heals), and the others read it as one.
#[tokio::test]
async fn a_device_renews_its_keys_after_100_messages_or_7_days() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    bob.mls_start().await.unwrap();
    let group = alice.create_group(&["bob"]).await.unwrap();
    bob.sync_groups().await.unwrap();
    let start = server_epoch(&alice, group).await;
    for i in 0..99 {
        alice.send_group(group, &text(&format!("message {i}"))).await.unwrap();
    }
    assert_eq!(server_epoch(&alice, group).await, start, "no update before the 100th message");
    alice.send_group(group, &text("message 99")).await.unwrap();
    assert_eq!(server_epoch(&alice, group).await, start + 1, "an update right after it");
    let read = bob.sync_groups().await.unwrap();
    assert_eq!(texts(&read).len(), 100);
    let commits: Vec<_> = read
        .iter()
        .filter_map(|e| match &e.what {
            EventKind::Commit(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(commits.len(), 1, "{read:?}");
    assert!(commits[0].by == "alice" && commits[0].added.is_empty() && commits[0].removed.is_empty());

    // Nothing is owed a day later; a week after the last commit, an update is.
    let now = sealroom_client::now_ms();
    assert_eq!(alice.renew_groups_at(now + 24 * 3600 * 1000).await.unwrap(), 0);
    assert_eq!(server_epoch(&alice, group).await, start + 1);
    assert_eq!(alice.renew_groups_at(now + 8 * 24 * 3600 * 1000).await.unwrap(), 1);
    assert_eq!(server_epoch(&alice, group).await, start + 2);
    alice.send_group(group, &text("after the update")).await.unwrap();
    assert_eq!(texts(&bob.sync_groups().await.unwrap()), [pair("alice", "after the update")]);
}

/// A device unseen for longer than the relay's `--device-idle`, of a user who uses another
/// device, is listed among its groups' removed devices; the next member online takes it out,
/// and when it comes back it joins again by itself. A user whose every device is idle is
/// away, not gone: their devices stay.
#[tokio::test]
async fn idle_devices_are_taken_out_and_come_back_by_themselves() {
    let server = TestServer::start_with(&["--device-idle", "3s"]);
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut carol = server.register("carol").await;
    alice.mls_start().await.unwrap();
    carol.mls_start().await.unwrap();
    let idle_alice = alice.device_id().await.unwrap();
    let idle_bob = bob.device_id().await.unwrap();
    let group = bob.create_group(&["alice", "carol"]).await.unwrap();
    alice.sync_groups().await.unwrap();
    assert!(bob.group(group).await.unwrap().removed_devices.is_empty());
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // New devices of alice's and bob's are seen; their first devices are idle now, and so is
    // carol's only one.
    let mut alice2 = second_device(&server, "alice").await;
    let mut bob2 = second_device(&server, "bob").await;
    assert!(alice2.sync_groups().await.unwrap().iter().any(|e| e.what == EventKind::Joined));
    assert!(bob2.sync_groups().await.unwrap().iter().any(|e| e.what == EventKind::Joined));
    let mut idle = bob2.group(group).await.unwrap().removed_devices;
    idle.sort();
    let mut expected = vec![idle_alice, idle_bob];
    expected.sort();
    assert_eq!(idle, expected, "carol's only device stays");
    assert_eq!(bob2.tidy_groups().await.unwrap(), 1);
    let mut users: Vec<String> = bob2.group_devices(group).into_iter().map(|(u, _)| u).collect();
    users.sort();
    assert_eq!(users, ["alice", "bob", "carol"], "one device each");
    let members = bob2.group(group).await.unwrap().members;
    assert_eq!(members.len(), 3, "taking devices out removes no one: {members:?}");
    bob2.send_group(group, &text("while alice's first device is out")).await.unwrap();

    // Alice's idle device comes back: it learns it was taken out, joins again by itself, and
    // reads what comes next (not what was sent while it was out).
    let mut back = alice.sync_groups().await.unwrap();
    back.extend(alice.sync_groups().await.unwrap());
    assert!(back.iter().any(|e| matches!(&e.what, EventKind::Commit(c) if c.self_removed)), "{back:?}");
    assert!(back.iter().any(|e| e.what == EventKind::Joined), "{back:?}");
    assert!(texts(&back).is_empty(), "{back:?}");
    bob2.send_group(group, &text("welcome back")).await.unwrap();
    assert_eq!(texts(&alice.sync_groups().await.unwrap()), [pair("bob", "welcome back")]);
    let both = texts(&alice2.sync_groups().await.unwrap());
    assert_eq!(both, [pair("bob", "while alice's first device is out"), pair("bob", "welcome back")]);
    assert_eq!(texts(&carol.sync_groups().await.unwrap()).len(), 2, "carol's idle device reads on");
}

/// The relay deletes log entries once every device that needs them has read them: a member
/// device that has not read blocks it; the newest entry stays; nothing anyone needs goes.
#[tokio::test]
async fn log_entries_every_device_has_read_are_deleted() {
    let server = TestServer::start_with(&["--gc-interval", "1s"]);
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    bob.mls_start().await.unwrap();
    let group = alice.create_group(&["bob"]).await.unwrap();
    for i in 0..10 {
        alice.send_group(group, &text(&format!("message {i}"))).await.unwrap();
    }
    let rows = || {
        server
            .sql_rows(&format!("SELECT COUNT(*) FROM group_log WHERE conversation_id = {group}"))
            .concat()
            .parse::<u32>()
            .unwrap()
    };
    let all = rows();
    assert!(all >= 11, "{all}");
    alice.sync_groups().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rows(), all, "bob's device has read none of it");

    assert_eq!(texts(&bob.sync_groups().await.unwrap()).len(), 10);
    alice.sync_groups().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rows(), 1, "everything read is gone but the newest entry");

    // The group goes on: a new device joins by itself, a message after reaches everyone, and
    // the archive still takes what devices read.
    let mut bob2 = second_device(&server, "bob").await;
    assert!(bob2.sync_groups().await.unwrap().iter().any(|e| e.what == EventKind::Joined));
    alice.send_group(group, &text("after the cleanup")).await.unwrap();
    assert_eq!(texts(&bob.sync_groups().await.unwrap()), [pair("alice", "after the cleanup")]);
    assert_eq!(texts(&bob2.sync_groups().await.unwrap()), [pair("alice", "after the cleanup")]);
    let (history, _) = bob2.archived_history(group, None, None).await.unwrap();
    assert_eq!(history.len(), 11, "bob's archive has every message: {history:?}");
}

/// One user cannot drain another's one-use key packages: claims per pair are limited, and
/// the limit is per pair (someone else may still claim).
#[tokio::test]
async fn key_package_claims_are_limited_per_pair() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let carol = server.register("carol").await;
    bob.mls_start().await.unwrap();
    let claim = |s: &Session| {
        let url = format!("{}/api/key-packages/claim", server.url);
        let token = s.token().to_owned();
        async move {
            sealroom_tests::raw(
                reqwest::Method::POST,
                &url,
                Some(&token),
                Some(("application/json", r#"{"users":["bob"]}"#)),
            )
            .await
        }
    };
    for _ in 0..30 {
        assert_eq!(claim(&alice).await.0.as_u16(), 200);
    }
    let (status, body, _) = claim(&alice).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(claim(&carol).await.0.as_u16(), 200, "another claimer is not limited");
    let left = bob.devices().await.unwrap()[0].key_packages;
    assert_eq!(left, 50 - 31, "only the claims that were answered took a package");
}

/// An MLS PrivateMessage's framing (the relay reads no further): group, epoch, content type.
fn framing(group_id: &[u8; 16], epoch: u64, content_type: u8) -> String {
    let mut m = vec![0, 1, 0, 2, 16];
    m.extend_from_slice(group_id);
    m.extend_from_slice(&epoch.to_be_bytes());
    m.extend_from_slice(&[content_type, 0, 0]);
    sealroom_protocol::encode_b64(&m)
}

#[tokio::test]
async fn bad_group_input_gets_stable_codes_and_changes_nothing() {
    use reqwest::Method;
    use sealroom_tests::raw;

    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    bob.mls_start().await.unwrap();
    let group = alice.create_group(&["bob"]).await.unwrap();
    alice.send_group(group, &text("kept safe")).await.unwrap();
    let device = alice.device_id().await.unwrap();
    let state = alice.group(group).await.unwrap();
    let gid = state.group_id.0;
    let b64 = sealroom_protocol::encode_b64;
    let u = |p: String| format!("{}{p}", server.url);
    let id = b64(&[6; 16]);
    let kp = b64(&[0, 1, 0, 3, 9, 9]);
    let info = b64(&[0, 1, 0, 4, 9, 9]);
    let append = |message: String, commit: &str| {
        format!(r#"{{"device":"{device}","client_msg_id":"{id}","message":"{message}"{commit}}}"#)
    };
    let effects = format!(r#","commit":{{"group_info":"{info}"}}"#);
    let many: Vec<String> = (0..101).map(|_| format!("\"{kp}\"")).collect();
    let bob_device = bob.device_id().await.unwrap();
    let blob = "q1w2e3r4t5y6u7i8o9p0-_";
    let blobs = |n: usize| format!(r#","blobs":[{}]"#, vec![format!("\"{blob}\""); n].join(","));
    let entry = |seq: u64, bytes: usize| {
        format!(
            r#"{{"conversation":{group},"seq":{seq},"sender":"alice","sent_ms":1,"entry":"{}"}}"#,
            b64(&vec![1; bytes])
        )
    };
    let archived = || async {
        let url = format!("{}/api/archive", server.url);
        raw(Method::GET, &url, Some(alice.token()), None).await.1
    };
    let archive_before = archived().await;
    assert_eq!(archive_before["conversations"][0]["entries"], 1, "{archive_before}");
    let cases: Vec<(&str, Method, String, String, u16, &str)> = vec![
        (
            "another signing key",
            Method::PUT,
            u("/api/me/signing-key".into()),
            format!(r#"{{"signing_key":"{}"}}"#, b64(&[7; 32])),
            409,
            "conflict",
        ),
        (
            "a device id in capitals",
            Method::POST,
            u("/api/devices".into()),
            format!(r#"{{"device":"{}","certificate":"CQ=="}}"#, "AB".repeat(16)),
            400,
            "invalid_field",
        ),
        (
            "an empty certificate",
            Method::POST,
            u("/api/devices".into()),
            format!(r#"{{"device":"{}","certificate":""}}"#, "ab".repeat(16)),
            400,
            "invalid_length",
        ),
        (
            "not a key package",
            Method::POST,
            u(format!("/api/devices/{device}/key-packages")),
            r#"{"key_packages":["AAE="]}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "no key package at all",
            Method::POST,
            u(format!("/api/devices/{device}/key-packages")),
            r#"{"key_packages":[]}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "too many key packages",
            Method::POST,
            u(format!("/api/devices/{device}/key-packages")),
            format!(r#"{{"key_packages":[{}]}}"#, many.join(",")),
            413,
            "quota_exceeded",
        ),
        (
            "a malformed device in a path",
            Method::GET,
            u("/api/devices/xyz/welcomes".into()),
            String::new(),
            404,
            "not_found",
        ),
        (
            "an unknown device",
            Method::GET,
            u(format!("/api/devices/{}/welcomes", "0".repeat(32))),
            String::new(),
            404,
            "not_found",
        ),
        (
            "a claim for nobody",
            Method::POST,
            u("/api/key-packages/claim".into()),
            r#"{"users":[]}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "a claim for an unknown user",
            Method::POST,
            u("/api/key-packages/claim".into()),
            r#"{"users":["nobody"]}"#.into(),
            404,
            "unknown_recipient",
        ),
        (
            "a group without a GroupInfo",
            Method::POST,
            u("/api/groups".into()),
            format!(r#"{{"group_id":"{id}","device":"{device}","group_info":"AAE="}}"#),
            400,
            "invalid_field",
        ),
        (
            "a group id taken",
            Method::POST,
            u("/api/groups".into()),
            format!(r#"{{"group_id":"{}","device":"{device}","group_info":"{info}"}}"#, b64(&gid)),
            409,
            "conflict",
        ),
        (
            "not an MLS message",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append("AAE=".into(), ""),
            400,
            "invalid_field",
        ),
        (
            "a message with commit effects",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&gid, 1, 1), &effects),
            400,
            "invalid_field",
        ),
        (
            "a commit without them",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&gid, 1, 3), ""),
            400,
            "invalid_field",
        ),
        (
            "a proposal",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&gid, 1, 2), ""),
            400,
            "invalid_field",
        ),
        (
            "another group's message",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&[1; 16], 1, 1), ""),
            400,
            "invalid_field",
        ),
        (
            "a past epoch",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&gid, 0, 1), ""),
            409,
            "stale_epoch",
        ),
        (
            "a Welcome without devices",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(
                framing(&gid, 1, 3),
                &format!(r#","commit":{{"group_info":"{info}","welcome":"{}"}}"#, b64(&[0, 1, 0, 3, 9])),
            ),
            400,
            "invalid_field",
        ),
        (
            "removing oneself",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(
                framing(&gid, 1, 3),
                &format!(r#","commit":{{"group_info":"{info}","removed":["alice"]}}"#),
            ),
            400,
            "invalid_field",
        ),
        (
            "attachments on a commit",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&gid, 1, 3), &format!("{effects}{}", blobs(1))),
            400,
            "invalid_field",
        ),
        (
            "nine attachments",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&gid, 1, 1), &blobs(9)),
            400,
            "invalid_field",
        ),
        (
            "an attachment that is not the sender's upload",
            Method::POST,
            u(format!("/api/groups/{group}/log")),
            append(framing(&gid, 1, 1), &blobs(1)),
            404,
            "unknown_blob",
        ),
        (
            "an empty archive upload",
            Method::POST,
            u("/api/archive".into()),
            r#"{"entries":[]}"#.into(),
            400,
            "invalid_field",
        ),
        (
            "101 archive entries",
            Method::POST,
            u("/api/archive".into()),
            format!(r#"{{"entries":[{}]}}"#, vec![entry(1, 60); 101].join(",")),
            400,
            "invalid_field",
        ),
        (
            "an archive entry past the log (with a good one)",
            Method::POST,
            u("/api/archive".into()),
            format!(r#"{{"entries":[{},{}]}}"#, entry(1, 60), entry(999_999, 60)),
            404,
            "not_found",
        ),
        (
            "an archive entry too large",
            Method::POST,
            u("/api/archive".into()),
            format!(r#"{{"entries":[{}]}}"#, entry(1, sealroom_protocol::MAX_ARCHIVE_ENTRY_BYTES + 1)),
            400,
            "invalid_length",
        ),
        (
            "an archive page before a negative position",
            Method::GET,
            u(format!("/api/archive/{group}?before=-1")),
            String::new(),
            400,
            "invalid_field",
        ),
        (
            "the log read for another user's device",
            Method::GET,
            u(format!("/api/group-log?since=0&device={bob_device}")),
            String::new(),
            404,
            "not_found",
        ),
        (
            "the log from a negative position",
            Method::GET,
            u("/api/group-log?since=-1".into()),
            String::new(),
            400,
            "invalid_field",
        ),
    ];
    for (what, method, url, body, status, code) in cases {
        let body = (!body.is_empty()).then_some(("application/json", body.as_str()));
        let (got, answer, _) = raw(method, &url, Some(alice.token()), body).await;
        assert_eq!((got.as_u16(), answer["error"].as_str()), (status, Some(code)), "{what}: {answer}");
    }

    // Over the WebSocket too: a stale group_send is refused with its id, the connection lives.
    let mut ws = alice.connect().await.unwrap();
    let frame = format!(
        r#"{{"type":"group_send","conversation":{group},"device":"{device}","client_msg_id":"{id}","message":"{}"}}"#,
        framing(&gid, 0, 1)
    );
    ws.send_raw(frame).await.unwrap();
    let answer = ws.next_within(Duration::from_secs(5)).await.unwrap();
    assert!(
        matches!(&answer, ServerFrame::Error { code: ErrorCode::StaleEpoch, client_msg_id: Some(_), .. }),
        "{answer:?}"
    );

    // Nothing stored changed: the group is where it was, alice's archive holds what it held,
    // and bob reads exactly what was sent.
    assert_eq!(alice.group(group).await.unwrap(), state);
    assert_eq!(archived().await, archive_before);
    assert_eq!(texts(&bob.sync_groups().await.unwrap()), [pair("alice", "kept safe")]);
}

/// A direct conversation moves to MLS (issue 13) when both users can: version 1 while the
/// peer has never had an MLS device; then the first message moves it, in the same conversation:
/// the sender's introduction goes as a last version 1 message (so the peer's verified mark
/// carries over to the signing key it introduces), the peer's devices are brought in, and the
/// message and every later one, both ways, go in MLS. A signing key learnt from the directory
/// instead leaves a verified peer unverified. The relay keeps the conversation to its two users.
#[tokio::test]
async fn a_direct_conversation_moves_to_mls_when_both_can() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    alice.mls_start().await.unwrap();
    let sent = alice.send_to("bob", &text("v1 hello"), false).await.unwrap();
    assert!(matches!(sent, Sent::V1(_)), "bob has no MLS device yet: {sent:?}");
    let conversation = alice.existing_conversation("bob").await.unwrap();
    let history = bob.history("alice", 10).await.unwrap();
    assert_eq!(history.iter().map(|m| m.payload.clone()).collect::<Vec<_>>(), [text("v1 hello")]);
    bob.mark_verified("alice").await.unwrap();
    alice.mark_verified("bob").await.unwrap();

    bob.mls_start().await.unwrap();
    let sent = alice.send_to("bob", &text("forward-secret hello"), false).await.unwrap();
    let Sent::Mls(moved, _) = sent else { panic!("both can: {sent:?}") };
    assert_eq!(moved, conversation, "the same conversation, moved");

    // Bob reads the introduction in the version 1 history, where the move happened...
    let history = bob.history("alice", 10).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(matches!(history[1].payload, Payload::Upgrade { .. }), "{history:?}");
    assert_eq!(
        sealroom_client::payload_text(&history[1].payload),
        "[moved to forward-secret encryption (MLS)]"
    );
    let pin = &bob.pins()["alice"];
    assert!(pin.signing_key.is_some() && pin.verified, "introduced, so still verified");
    // ...while alice learnt bob's signing key from the directory: she verifies again.
    let pin = &alice.pins()["bob"];
    assert!(pin.signing_key.is_some() && !pin.verified, "the directory's key is not what she verified");

    // Then the MLS message, and his answer goes in MLS as well.
    let b = bob.sync_groups().await.unwrap();
    assert_eq!(texts(&b), [pair("alice", "forward-secret hello")]);
    assert!(refused(&b).is_empty(), "{b:?}");
    let sent = bob.send_to("alice", &text("and back"), false).await.unwrap();
    assert!(matches!(sent, Sent::Mls(c, _) if c == conversation), "{sent:?}");
    assert_eq!(texts(&alice.sync_groups().await.unwrap()), [pair("bob", "and back")]);
    assert_eq!(bob.history("alice", 10).await.unwrap().len(), 2, "nothing more in version 1");

    // Bob's second device joins by itself.
    let mut bob2 = second_device(&server, "bob").await;
    bob2.sync_groups().await.unwrap();
    alice.send_to("bob", &text("to both of bob's"), false).await.unwrap();
    assert_eq!(texts(&bob2.sync_groups().await.unwrap()), [pair("alice", "to both of bob's")]);

    // The relay keeps it to the two of them, both admins, and neither leaves it.
    let state = alice.group(conversation).await.unwrap();
    assert_eq!(state.kind, sealroom_protocol::ConversationKind::Direct);
    let members: Vec<(String, bool)> = state.members.iter().map(|m| (m.user.to_string(), m.admin)).collect();
    assert_eq!(members, [("alice".into(), true), ("bob".into(), true)]);
    let code = |e: &sealroom_client::ClientError| match e {
        sealroom_client::ClientError::Api(a) => Some(a.error),
        _ => None,
    };
    let mut carol = server.register("carol").await;
    carol.mls_start().await.unwrap();
    let err = alice.add_members(conversation, &["carol"]).await.unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::InvalidField), "{err}");
    let err = bob.leave_group(conversation).await.unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::InvalidField), "{err}");
    assert!(carol.groups().await.unwrap().is_empty());
    // Alice's second device joins it by itself and sends in it.
    let mut alice2 = second_device(&server, "alice").await;
    let sent = alice2.send_to("bob", &text("from alice's second device"), false).await.unwrap();
    assert!(matches!(sent, Sent::Mls(c, _) if c == conversation), "{sent:?}");
    assert_eq!(
        texts(&bob.sync_groups().await.unwrap()).last(),
        Some(&pair("alice", "from alice's second device"))
    );

    // Moving it again is a conflict; carol cannot move it at all, nor a group.
    let device = alice2.device_id().await.unwrap();
    let body = |group_id: &str| {
        format!(r#"{{"group_id":"{group_id}","device":"{device}","group_info":"AAEABA=="}}"#)
    };
    let url = |c: sealroom_protocol::ConversationId| format!("{}/api/conversations/{c}/group", server.url);
    let post = |url: String, token: String, body: String| async move {
        sealroom_tests::raw(reqwest::Method::POST, &url, Some(&token), Some(("application/json", &body)))
            .await
    };
    let (status, v, _) =
        post(url(conversation), alice2.token().into(), body("AAAAAAAAAAAAAAAAAAAAAA==")).await;
    assert_eq!((status.as_u16(), v["error"].as_str()), (409, Some("conflict")), "{v}");
    let not_group_info = body("AgICAgICAgICAgICAgICAg==").replace("AAEABA==", "AAEAAg==");
    let (status, v, _) = post(url(conversation), alice2.token().into(), not_group_info).await;
    assert_eq!((status.as_u16(), v["error"].as_str()), (400, Some("invalid_field")), "{v}");
    let (status, v, _) = post(url(conversation), alice2.token().into(), "{}".into()).await;
    assert_eq!(status.as_u16(), 400, "a body without its fields: {v}");
    let carol_device = carol.device_id().await.unwrap();
    let carol_body = body("AQEBAQEBAQEBAQEBAQEBAQ==").replace(&device.to_string(), &carol_device.to_string());
    let (status, v, _) = post(url(conversation), carol.token().into(), carol_body.clone()).await;
    assert_eq!((status.as_u16(), v["error"].as_str()), (404, Some("not_found")), "{v}");
    let group = carol.create_group(&[]).await.unwrap();
    let (status, v, _) = post(url(group), carol.token().into(), carol_body).await;
    assert_eq!(
        (status.as_u16(), v["error"].as_str()),
        (404, Some("not_found")),
        "a group is not direct: {v}"
    );
    let state = alice.group(conversation).await.unwrap();
    assert_eq!(state.members.len(), 2, "nothing changed");
}

/// "Nothing lost, nothing doubled" where the network fails at the worst moment: a message the
/// relay stored but whose answer never came back, and one that never reached the relay. Each
/// is kept in the device's sealed state, sent again (by the next sync, in a new process, or
/// before the next message), stored once, read once by the other member, and archived once.
#[tokio::test]
async fn a_message_without_an_answer_is_sent_again_once_and_archived() {
    use sealroom_tests::{Lose, LossyProxy};
    let server = TestServer::start();
    server.register("alice").await;
    let mut bob = server.register("bob").await;
    bob.mls_start().await.unwrap();
    let proxy = LossyProxy::start(&server.url).await;
    let dir = tempfile::tempdir().unwrap();
    let client = sealroom_client::Client::new(&proxy.url).unwrap().with_state_dir(dir.path().to_path_buf());
    let mut alice = client.login("alice", "password-of-alice").await.unwrap();
    let group = alice.create_group(&["bob"]).await.unwrap();
    alice.send_group(group, &text("first")).await.unwrap();
    let append = |line: &str| line.starts_with("POST /api/groups/") && line.ends_with("/log HTTP/1.1");

    // Stored, but the answer is lost: the send fails, and the message stays in alice's state.
    proxy.lose(append, Lose::Answer);
    let err = alice.send_group(group, &text("its answer was lost")).await.unwrap_err();
    assert!(proxy.sprung(), "the proxy caught the append");
    assert!(matches!(err, sealroom_client::ClientError::Http(_)), "{err}");
    // alice's process ends here. The next one, on the same state dir, sends it again on its
    // first sync: the relay knows the entry id and stores nothing new.
    drop(alice);
    let mut alice = client.login("alice", "password-of-alice").await.unwrap();
    let events = alice.sync_groups().await.unwrap();
    assert!(refused(&events).is_empty(), "{events:?}");

    // Never reached the relay: the next send delivers it first.
    proxy.lose(append, Lose::Request);
    let err = alice.send_group(group, &text("its request was lost")).await.unwrap_err();
    assert!(proxy.sprung());
    assert!(matches!(err, sealroom_client::ClientError::Http(_)), "{err}");
    alice.send_group(group, &text("after")).await.unwrap();

    let expected = [
        pair("alice", "first"),
        pair("alice", "its answer was lost"),
        pair("alice", "its request was lost"),
        pair("alice", "after"),
    ];
    let b = bob.sync_groups().await.unwrap();
    assert_eq!(texts(&b), expected, "bob reads each once, in order");
    assert!(refused(&b).is_empty(), "{b:?}");
    let archived: Vec<(String, String)> = alice
        .archived_latest(group, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m.payload {
            Ok(Payload::Text(t)) => Some((m.sender, t)),
            _ => None,
        })
        .collect();
    assert_eq!(archived, expected, "alice's archive has each once");
}

/// Receipts and unread counts in a conversation that moved to MLS count log positions, apart
/// from the version 1 markers; they survive the log being pruned; markers never go down or
/// past the log; and only members of a conversation in MLS may raise them.
#[tokio::test]
async fn receipts_and_unread_in_mls_count_log_positions() {
    use sealroom_protocol::ClientFrame;
    let server = TestServer::start_with(&["--gc-interval", "1s"]);
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    alice.mls_start().await.unwrap();
    bob.mls_start().await.unwrap();
    let Sent::Mls(conversation, first) = alice.send_to("bob", &text("one"), false).await.unwrap() else {
        panic!("both can")
    };
    let Sent::Mls(_, second) = alice.send_to("bob", &text("two"), false).await.unwrap() else { panic!() };
    let summary = |s: Vec<sealroom_protocol::ConversationSummary>| {
        s.into_iter().find(|c| c.id == conversation).expect("listed")
    };
    let b = summary(bob.conversations().await.unwrap());
    assert_eq!((b.unread, b.log_read_up_to), (3, 0), "the introduction (version 1) and two in MLS");

    let mut alice_live = alice.connect().await.unwrap();
    let mut bob_live = bob.connect().await.unwrap();
    bob_live.send(&ClientFrame::GroupDelivered { conversation, up_to: first.seq }).await.unwrap();
    assert_eq!(
        receipt(&mut alice_live).await,
        ServerFrame::GroupDelivered { conversation, by: bob.username().clone(), up_to: first.seq }
    );
    // Past the newest position: the marker stops at it.
    bob_live.send(&ClientFrame::GroupRead { conversation, up_to: u64::MAX }).await.unwrap();
    let read = ServerFrame::GroupRead { conversation, by: bob.username().clone(), up_to: second.seq };
    assert_eq!(receipt(&mut alice_live).await, read);
    assert_eq!(receipt(&mut bob_live).await, read, "bob's other tabs");
    // Lower: the marker stays where it is.
    bob_live.send(&ClientFrame::GroupRead { conversation, up_to: first.seq }).await.unwrap();
    assert_eq!(receipt(&mut alice_live).await, read);

    let b = summary(bob.conversations().await.unwrap());
    assert_eq!((b.unread, b.log_read_up_to), (1, second.seq), "the introduction is unread in version 1");
    let a = summary(alice.conversations().await.unwrap());
    assert_eq!((a.peer_log_delivered_up_to, a.peer_log_read_up_to), (second.seq, second.seq));
    assert_eq!((a.peer_read_up_to.0, a.unread), (0, 0), "the version 1 markers are apart");

    // Every device reads the log, which is then pruned: what bob has not read is still unread.
    alice.send_to("bob", &text("three"), false).await.unwrap();
    alice.send_to("bob", &text("four"), false).await.unwrap();
    assert_eq!(texts(&bob.sync_groups().await.unwrap()).len(), 4);
    alice.sync_groups().await.unwrap();
    let log =
        || server.sql_rows(&format!("SELECT COUNT(*) FROM group_log WHERE conversation_id = {conversation}"));
    for _ in 0..50 {
        if log() == ["1"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(log(), ["1"], "pruned to the newest entry");
    assert_eq!(summary(bob.conversations().await.unwrap()).unread, 3, "the introduction, three and four");

    // Only for a member, only in MLS: carol is not in alice and bob's conversation, and hers
    // with dave (who has no MLS device) has not moved.
    let mut carol = server.register("carol").await;
    server.register("dave").await;
    let sent = carol.send_to("dave", &text("version 1"), false).await.unwrap();
    assert!(matches!(sent, Sent::V1(_)), "{sent:?}");
    let v1 = carol.existing_conversation("dave").await.unwrap();
    let mut carol_live = carol.connect().await.unwrap();
    for c in [conversation, v1] {
        carol_live.send(&ClientFrame::GroupRead { conversation: c, up_to: 1 }).await.unwrap();
        let frame = receipt(&mut carol_live).await;
        assert!(matches!(&frame, ServerFrame::Error { code: ErrorCode::NotFound, .. }), "{c}: {frame:?}");
    }
    let a = summary(alice.conversations().await.unwrap());
    assert_eq!(a.peer_log_read_up_to, second.seq, "nothing changed");

    // A member added to a group starts at the commit that added them: nothing said before
    // is unread for them.
    carol.mls_start().await.unwrap();
    let group = alice.create_group(&["bob"]).await.unwrap();
    alice.send_group(group, &text("before carol")).await.unwrap();
    alice.add_members(group, &["carol"]).await.unwrap();
    let markers = server.sql_rows(&format!(
        "SELECT u.username || ':' || m.log_read_up_to FROM members m JOIN users u ON u.id = m.user_id \
         WHERE m.conversation_id = {group} ORDER BY u.username"
    ));
    let log =
        server.sql_rows(&format!("SELECT seq FROM group_log WHERE conversation_id = {group} ORDER BY seq"));
    assert_eq!(log.len(), 3, "bob's addition, a message, carol's addition: {log:?}");
    assert_eq!(markers, ["alice:0".to_owned(), format!("bob:{}", log[0]), format!("carol:{}", log[2])]);
    // The group's state carries every member's markers ("read by 2 of 3").
    let state = alice.group(group).await.unwrap();
    let got: Vec<(String, u64, u64)> =
        state.members.iter().map(|m| (m.user.to_string(), m.delivered_up_to, m.read_up_to)).collect();
    let at = |i: usize| log[i].parse::<u64>().unwrap();
    assert_eq!(got, [("alice".into(), 0, 0), ("bob".into(), at(0), at(0)), ("carol".into(), at(2), at(2))]);
    let state = alice.group(conversation).await.unwrap();
    let bob_read = state.members.iter().find(|m| m.user.as_str() == "bob").map(|m| m.read_up_to);
    assert_eq!(bob_read, Some(second.seq), "as the direct conversation's list said");
}

/// Registers users who each start an MLS device.
async fn with_devices<const N: usize>(server: &TestServer, names: [&str; N]) -> [Session; N] {
    let mut sessions = Vec::with_capacity(N);
    for name in names {
        let mut s = server.register(name).await;
        s.mls_start().await.unwrap();
        sessions.push(s);
    }
    sessions.try_into().unwrap_or_else(|_| unreachable!("one session per name"))
}

/// The next frame that is not about presence.
async fn receipt(conn: &mut sealroom_client::Connection) -> ServerFrame {
    loop {
        let frame = conn.next_within(Duration::from_secs(5)).await.unwrap();
        if !matches!(frame, ServerFrame::Presence { .. }) {
            return frame;
        }
    }
}

/// Presence is shared once both have written, whether in version 1 or in MLS: a reply in MLS
/// makes the conversation mutual at once, and stays so after the log is pruned.
#[tokio::test]
async fn a_reply_in_mls_shares_presence_and_the_pruned_log_keeps_it() {
    let server = TestServer::start_with(&["--gc-interval", "1s"]);
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    alice.mls_start().await.unwrap();
    bob.mls_start().await.unwrap();
    let Sent::Mls(conversation, _) = alice.send_to("bob", &text("hello"), false).await.unwrap() else {
        panic!("both can")
    };
    let mut alice_live = alice.connect().await.unwrap();
    let mut bob_live = bob.connect().await.unwrap();
    let peer_online = |s: Vec<sealroom_protocol::ConversationSummary>| {
        s.into_iter().find(|c| c.id == conversation).map(|c| c.peer_online)
    };
    assert_eq!(peer_online(alice.conversations().await.unwrap()), Some(false), "bob has not written");
    bob.sync_groups().await.unwrap();
    let sent = bob.send_to("alice", &text("hi"), false).await.unwrap();
    assert!(matches!(sent, Sent::Mls(c, _) if c == conversation), "{sent:?}");
    let frame = alice_live.next_within(Duration::from_secs(5)).await.unwrap();
    let online = ServerFrame::Presence { user: bob.username().clone(), online: true, last_seen: None };
    let frame = if matches!(frame, ServerFrame::GroupEntry { .. }) {
        alice_live.next_within(Duration::from_secs(5)).await.unwrap()
    } else {
        frame
    };
    assert_eq!(frame, online, "told at once");
    // Both read everything (every device, every person): log and index are pruned, each
    // sender's newest message staying in the index; they still share presence.
    alice.send_to("bob", &text("more"), false).await.unwrap();
    alice.sync_groups().await.unwrap();
    bob.sync_groups().await.unwrap();
    for conn in [&mut alice_live, &mut bob_live] {
        let read = sealroom_protocol::ClientFrame::GroupRead { conversation, up_to: u64::MAX };
        conn.send(&read).await.unwrap();
    }
    let index = || {
        server.sql_rows(&format!("SELECT COUNT(*) FROM log_messages WHERE conversation_id = {conversation}"))
    };
    let log =
        || server.sql_rows(&format!("SELECT COUNT(*) FROM group_log WHERE conversation_id = {conversation}"));
    for _ in 0..50 {
        if log() == ["1"] && index() == ["2"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((log(), index()), (vec!["1".to_owned()], vec!["2".to_owned()]), "pruned");
    assert_eq!(peer_online(alice.conversations().await.unwrap()), Some(true));
    assert_eq!(peer_online(bob.conversations().await.unwrap()), Some(true));
}

/// Blocking holds in MLS too: what a blocked user sends after the block is acknowledged as
/// usual but withheld from the blocker (not relayed, not in their log, not unread, never
/// released by unblocking), while their commits still reach the blocker's device, which reads
/// on without a gap once unblocked. Other members are not affected.
#[tokio::test]
async fn a_blocked_users_mls_messages_are_withheld_and_the_group_stays_whole() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = with_devices(&server, ["alice", "bob", "carol"]).await;
    let Sent::Mls(direct, _) = bob.send_to("alice", &text("before"), false).await.unwrap() else {
        panic!("both can")
    };
    let group = alice.create_group(&["bob", "carol"]).await.unwrap();
    assert_eq!(texts(&alice.sync_groups().await.unwrap()), [pair("bob", "before")]);
    bob.sync_groups().await.unwrap();
    carol.sync_groups().await.unwrap();
    let unread = |s: Vec<sealroom_protocol::ConversationSummary>| {
        s.into_iter().find(|c| c.id == direct).map(|c| c.unread).unwrap()
    };
    let before = unread(alice.conversations().await.unwrap());

    alice.block("bob").await.unwrap();
    let mut alice_live = alice.connect().await.unwrap();
    let sent = bob.send_to("alice", &text("are you there?"), false).await.unwrap();
    assert!(matches!(sent, Sent::Mls(c, _) if c == direct), "acknowledged as usual: {sent:?}");
    bob.send_group(group, &text("to the group")).await.unwrap();
    // His commit still reaches her device: it must stay in the group.
    bob.update_keys(group).await.unwrap();
    let a = alice.sync_groups().await.unwrap();
    assert!(texts(&a).is_empty(), "withheld: {a:?}");
    assert!(a.iter().any(|e| matches!(&e.what, EventKind::Commit(s) if s.by == "bob")), "{a:?}");
    assert!(refused(&a).is_empty(), "{a:?}");
    assert_eq!(texts(&carol.sync_groups().await.unwrap()), [pair("bob", "to the group")]);
    assert_eq!(unread(alice.conversations().await.unwrap()), before, "not counted as unread");
    let live = alice_live.next_within(Duration::from_millis(1500)).await;
    assert!(
        !matches!(&live, Ok(ServerFrame::GroupEntry { entry }) if entry.sender.as_str() == "bob" && entry.kind == sealroom_protocol::EntryKind::Application),
        "not relayed: {live:?}"
    );

    // Unblocked: what was withheld stays so, and what comes next reads without a gap.
    alice.unblock("bob").await.unwrap();
    bob.send_to("alice", &text("now?"), false).await.unwrap();
    bob.send_group(group, &text("and here?")).await.unwrap();
    let a = alice.sync_groups().await.unwrap();
    let mut got = texts(&a);
    got.sort();
    assert_eq!(got, [pair("bob", "and here?"), pair("bob", "now?")]);
    assert!(refused(&a).is_empty(), "{a:?}");
    let (history, _) = alice.archived_history(direct, None, None).await.unwrap();
    assert!(!format!("{history:?}").contains("are you there"), "never released: {history:?}");
}

/// Groups are in the conversation list: members, unread counts from the log (not one's own,
/// not what one read, not what is withheld), pin and close like a direct conversation, and a
/// new message reopens a closed one. A removed member no longer has it; moved direct
/// conversations are not listed twice.
#[tokio::test]
async fn groups_are_in_the_conversation_list_with_unread_pins_and_reopening() {
    let server = TestServer::start();
    let [mut alice, bob, mut carol] = with_devices(&server, ["alice", "bob", "carol"]).await;
    // A moved direct conversation stays in the direct list only.
    alice.send_to("bob", &text("direct"), false).await.unwrap();
    let group = alice.create_group(&["bob", "carol"]).await.unwrap();
    let one = |list: Vec<sealroom_protocol::GroupSummary>| {
        assert_eq!(list.len(), 1, "{list:?}");
        list.into_iter().next().unwrap()
    };
    let b = one(bob.group_list().await.unwrap());
    assert_eq!(b.id, group);
    let names: Vec<&str> = b.members.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(
        (b.unread, b.pinned, b.hidden),
        (0, false, false),
        "the commit that added bob is not a message"
    );

    alice.send_group(group, &text("one")).await.unwrap();
    let two = alice.send_group(group, &text("two")).await.unwrap();
    carol.sync_groups().await.unwrap();
    carol.send_group(group, &text("three")).await.unwrap();
    let a = one(alice.group_list().await.unwrap());
    assert_eq!(a.unread, 1, "carol's; not alice's own");
    assert!(a.last_activity > 0);
    assert_eq!(one(bob.group_list().await.unwrap()).unread, 3);

    // Bob reads up to "two": carol's is left.
    let mut bob_live = bob.connect().await.unwrap();
    bob_live
        .send(&sealroom_protocol::ClientFrame::GroupRead { conversation: group, up_to: two.seq })
        .await
        .unwrap();
    let b = loop {
        let b = one(bob.group_list().await.unwrap());
        if b.log_read_up_to == two.seq {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(b.unread, 1, "carol's three");

    // Pin and close it, as a direct conversation: the same flags endpoint.
    let flags = |pinned: Option<bool>, hidden: Option<bool>| {
        serde_json::to_string(&sealroom_protocol::ConversationFlags { pinned, hidden }).unwrap()
    };
    for body in [flags(Some(true), None), flags(None, Some(true))] {
        let (status, _, _) = sealroom_tests::raw(
            reqwest::Method::PUT,
            &format!("{}/api/conversations/{group}/flags", server.url),
            Some(bob.token()),
            Some(("application/json", &body)),
        )
        .await;
        assert_eq!(status, 204);
    }
    let b = one(bob.group_list().await.unwrap());
    assert_eq!((b.pinned, b.hidden), (true, true));
    assert!(!one(alice.group_list().await.unwrap()).pinned, "flags are each member's own");
    alice.send_group(group, &text("four")).await.unwrap();
    let b = one(bob.group_list().await.unwrap());
    assert_eq!((b.pinned, b.hidden, b.unread), (true, false, 2), "a new message reopens it");

    // Clearing: for oneself, any member; for everyone, only an admin.
    let clear = |who: &Session, for_both: bool| {
        let body = serde_json::json!({ "for_both": for_both }).to_string();
        let token = who.token().to_owned();
        let url = format!("{}/api/conversations/{group}/clear", server.url);
        async move {
            sealroom_tests::raw(reqwest::Method::POST, &url, Some(&token), Some(("application/json", &body)))
                .await
        }
    };
    let (status, body, _) = clear(&bob, true).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (403, Some("not_admin")), "{body}");
    assert_eq!(clear(&bob, false).await.0, 204);
    assert_eq!(one(bob.group_list().await.unwrap()).unread, 0, "cleared is not unread");
    assert_eq!(one(carol.group_list().await.unwrap()).unread, 3, "bob's clear is his own");
    assert_eq!(clear(&alice, true).await.0, 204);
    assert_eq!(one(carol.group_list().await.unwrap()).unread, 0, "the admin cleared it for everyone");

    // Removed: bob no longer has it; the others see two members.
    alice.remove_members(group, &["bob"]).await.unwrap();
    assert!(bob.group_list().await.unwrap().is_empty());
    let names: Vec<String> =
        one(carol.group_list().await.unwrap()).members.iter().map(|m| m.to_string()).collect();
    assert_eq!(names, ["alice", "carol"]);
    assert_eq!(bob.conversations().await.unwrap().len(), 1, "bob's direct conversation with alice");
}

/// A new device that sends in a group before its first read joined it joins it first (it
/// catches up), and the message goes: it is not refused as "not in that group". A user who is
/// not a member is still refused, and nothing is kept for later.
#[tokio::test]
async fn a_new_device_that_sends_before_joining_joins_first() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = with_devices(&server, ["alice", "bob", "carol"]).await;
    let group = alice.create_group(&["bob"]).await.unwrap();
    bob.sync_groups().await.unwrap();

    let mut bob2 = second_device(&server, "bob").await;
    let sent = bob2.send_group(group, &Payload::Text("from bob's new device".into())).await.unwrap();
    let texts: Vec<String> = alice
        .sync_groups()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.what {
            EventKind::Message { payload: Payload::Text(t), .. } => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["from bob's new device"], "sent at {}", sent.seq);

    let err = carol.send_group(group, &Payload::Text("not a member".into())).await.unwrap_err();
    assert!(err.to_string().contains("not in that group"), "{err}");
    assert!(carol.sync_groups().await.unwrap().is_empty(), "nothing kept to send later");
}
