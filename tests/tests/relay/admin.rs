//! Running a relay for other people: the registration policy against every state an invite can
//! be in, and `sealroom admin` against a running relay whose users are connected.

use std::time::{Duration, Instant};

use reqwest::Method;
use sealroom_protocol::ServerFrame;
use sealroom_tests::{expect_frame, raw, TestServer};

/// Registers `name` through the CLI with `invite`; the CLI's exit status and its words.
fn cli_register(server: &TestServer, name: &str, invite: Option<&str>) -> (bool, String) {
    let mut args = vec!["register"];
    if let Some(code) = invite {
        args.extend(["--invite", code]);
    }
    let out = server.cli(name, &format!("password-of-{name}"), &args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `sealroom admin invites create ARGS…`: the code, which is its last line.
fn new_invite(server: &TestServer, args: &[&str]) -> String {
    let mut all = vec!["invites", "create"];
    all.extend_from_slice(args);
    let out = server.admin(&all);
    let code = out.lines().last().expect("a last line").trim().to_owned();
    assert_eq!(code.len(), 19, "the code is the last line: {out}");
    code
}

async fn registration(server: &TestServer) -> String {
    let (status, body, _) = raw(Method::GET, &format!("{}/api/server", server.url), None, None).await;
    assert_eq!(status, 200, "{body}");
    body["registration"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn invite_only_registration_takes_live_codes_and_refuses_each_other_kind_with_a_clear_error() {
    let server = TestServer::start_with(&["--registration", "invite"]);
    assert_eq!(registration(&server).await, "invite");

    // No code, or one that cannot be a code.
    let (ok, said) = cli_register(&server, "alice", None);
    assert!(!ok && said.contains("invite_required"), "{said}");
    let (ok, said) = cli_register(&server, "alice", Some("not-a-code"));
    assert!(!ok && said.contains("invite_invalid"), "{said}");
    let (status, body, _) = raw(
        Method::POST,
        &format!("{}/api/register", server.url),
        None,
        Some(("application/json", r#"{"username":"zed"}"#)),
    )
    .await;
    assert_eq!(status, 400, "a malformed body is still a malformed body: {body}");

    // A code for two: typed as people type it, twice; then it is used up.
    let two = new_invite(&server, &["--uses", "2", "--note", "the Smiths"]);
    let (ok, said) = cli_register(&server, "alice", Some(&two.to_lowercase()));
    assert!(ok, "{said}");
    let (ok, said) = cli_register(&server, "bob", Some(&two.replace('-', " ")));
    assert!(ok, "{said}");
    let (ok, said) = cli_register(&server, "carol", Some(&two));
    assert!(!ok && said.contains("invite_invalid") && said.contains("used up"), "{said}");

    // A sign-up that fails for another reason gives its use back.
    let one = new_invite(&server, &["--uses", "1"]);
    let (ok, said) = cli_register(&server, "alice", Some(&one));
    assert!(!ok && said.contains("username_taken"), "{said}");
    let (ok, said) = cli_register(&server, "carol", Some(&one));
    assert!(ok, "the failed sign-up did not use the code up: {said}");

    // Expired.
    let short = new_invite(&server, &["--expires", "1s"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, said) = cli_register(&server, "dave", Some(&short));
    assert!(!ok && said.contains("invite_invalid"), "{said}");

    // Revoked.
    let revoked = new_invite(&server, &["--uses", "5", "--expires", "never"]);
    let list = server.admin_json(&["invites", "list"]);
    let id = list["invites"][0]["id"].as_i64().unwrap();
    assert_eq!(list["invites"][0]["expires_at"], serde_json::Value::Null);
    assert!(server.admin(&["invites", "revoke", &id.to_string()]).contains("revoked invite"));
    let (ok, said) = cli_register(&server, "dave", Some(&revoked));
    assert!(!ok && said.contains("invite_invalid"), "{said}");

    // What the operator sees: each invite's state and uses; never a code.
    let list = server.admin_json(&["invites", "list"]);
    let states: Vec<(&str, u64)> = list["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["state"].as_str().unwrap(), i["uses"].as_u64().unwrap()))
        .collect();
    assert_eq!(states, [("revoked", 0), ("expired", 0), ("used_up", 1), ("used_up", 2)]);
    assert_eq!(list["invites"][3]["note"], "the Smiths");
    let text = server.admin(&["invites", "list"]);
    for code in [&two, &one, &short, &revoked] {
        assert!(!text.contains(code.as_str()) && !list.to_string().contains(code.as_str()), "{text}");
    }
    // The database does not hold the codes either.
    for (path, bytes) in server.all_stored_bytes() {
        for code in [&two, &one, &short, &revoked] {
            let plain = code.replace('-', "");
            let found = bytes.windows(plain.len()).any(|w| w == plain.as_bytes());
            assert!(!found, "{} holds an invite code", path.display());
        }
    }
    // A live one still works, through the client library too.
    let fresh = new_invite(&server, &[]);
    server.client().register_invited("erin", "password-of-erin", Some(&fresh)).await.unwrap();

    // A bad invite request from the operator is refused before anything is stored.
    let out = server.admin_output(&["invites", "create", "--uses", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_uses"), "{out:?}");
}

#[tokio::test]
async fn closed_registration_refuses_everyone_and_open_ignores_codes() {
    let closed = TestServer::start_with(&["--registration", "closed"]);
    assert_eq!(registration(&closed).await, "closed");
    let code = new_invite(&closed, &[]);
    let (ok, said) = cli_register(&closed, "alice", Some(&code));
    assert!(!ok && said.contains("registration_closed"), "{said}");
    let (ok, said) = cli_register(&closed, "alice", None);
    assert!(!ok && said.contains("registration_closed"), "{said}");

    // On loopback the default is open: anyone, with or without a code (even a wrong one).
    let open = TestServer::start();
    assert_eq!(registration(&open).await, "open");
    assert!(cli_register(&open, "alice", None).0);
    assert!(cli_register(&open, "bob", Some("whatever")).0);
}

#[tokio::test]
async fn admin_commands_reach_a_running_relay_and_its_live_sockets() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let bob_phone = server.client().login("bob", "password-of-bob").await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut phone_ws = bob_phone.connect().await.unwrap();
    let said = "meet at the old mill at nine";
    let first = alice.send_text("bob", said, false).await.unwrap();
    expect_frame(
        &mut bob_ws,
        "message",
        |f| matches!(f, ServerFrame::Message { message } if message.id == first),
    )
    .await;

    // users, stats: what is stored and who is connected (reported every few seconds).
    let users = server.admin_json(&["users"]);
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(users[0]["message_bytes"].as_i64().unwrap() > 0, "{users}");
    assert_eq!(users[1]["devices"], 0, "the library makes no MLS device until it is asked to");
    let stats = server.admin_json(&["stats"]);
    assert_eq!((stats["users"].as_i64(), stats["messages"].as_i64()), (Some(2), Some(1)), "{stats}");
    assert!(stats["message_bytes"].as_i64().unwrap() > said.len() as i64);
    // bob's two connections (the relay reports its count every few seconds).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = server.admin_json(&["stats"]);
        if stats["connections"] == 2 && stats["relays"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "stats never counted bob's two connections: {stats}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // sessions and revoke: one of bob's sessions ends, with its socket; the other stays.
    let sessions = server.admin_json(&["sessions", "bob"]);
    assert_eq!(sessions.as_array().unwrap().len(), 2);
    assert!(sessions.as_array().unwrap().iter().all(|s| s["state"] == "live"), "{sessions}");
    let started = Instant::now();
    let done = server.admin_json(&["revoke", "bob", bob_phone.session_id()]);
    assert_eq!(done["sessions_ended"], 1);
    let f = expect_frame(&mut phone_ws, "revoked", |f| matches!(f, ServerFrame::SessionRevoked { .. })).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the socket ended {:?} later", started.elapsed());
    let ServerFrame::SessionRevoked { reason } = f else { unreachable!() };
    assert!(reason.contains("operator"), "{reason}");
    let (status, _, _) =
        raw(Method::GET, &format!("{}/api/me", server.url), Some(bob_phone.token()), None).await;
    assert_eq!(status, 401);
    let (status, _, _) = raw(Method::GET, &format!("{}/api/me", server.url), Some(bob.token()), None).await;
    assert_eq!(status, 200, "bob's other session is untouched");
    let unknown = server.admin_output(&["revoke", "bob", "no-such-session"]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("no session"));

    // disable mid-chat: bob's socket ends at once, his token stops working, and he may not
    // sign in again (told so only with the right password).
    let started = Instant::now();
    let done = server.admin_json(&["disable", "bob"]);
    assert_eq!((done["changed"].as_bool(), done["sessions_ended"].as_i64()), (Some(true), Some(1)));
    let f = expect_frame(&mut bob_ws, "revoked", |f| matches!(f, ServerFrame::SessionRevoked { .. })).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the socket ended {:?} later", started.elapsed());
    let ServerFrame::SessionRevoked { reason } = f else { unreachable!() };
    assert!(reason.contains("disabled"), "{reason}");
    let (status, body, _) =
        raw(Method::GET, &format!("{}/api/me", server.url), Some(bob.token()), None).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (401, Some("session_revoked")));
    let err = server.client().login("bob", "password-of-bob").await.unwrap_err().to_string();
    assert!(err.contains("account_disabled"), "{err}");
    let err = server.client().login("bob", "a wrong password").await.unwrap_err().to_string();
    assert!(err.contains("invalid_credentials"), "a wrong password learns nothing: {err}");
    let out = server.cli("bob", "password-of-bob", &["conversations"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("disabled by the relay's operator"), "{out:?}");
    assert!(server.admin_json(&["users"])[1]["disabled_at"].is_i64());
    // What is sent to him meanwhile is kept for him.
    let second = alice.send_text("bob", "are you there?", false).await.unwrap();

    // enable: he signs in again and reads everything.
    assert_eq!(server.admin_json(&["enable", "bob"])["changed"], true);
    let mut bob = server.client().login("bob", "password-of-bob").await.unwrap();
    let history = bob.history("alice", 10).await.unwrap();
    assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), [first, second]);

    // grant-admin: alice may manage invites in the web client from her next request on.
    let me = |token: String| {
        let url = format!("{}/api/me", server.url);
        async move { raw(Method::GET, &url, Some(&token), None).await.1 }
    };
    assert_eq!(me(alice.token().to_owned()).await["admin"], false);
    server.admin(&["grant-admin", "alice"]);
    assert_eq!(me(alice.token().to_owned()).await["admin"], true);
    let url = format!("{}/api/admin/invites", server.url);
    let (status, body, _) =
        raw(Method::POST, &url, Some(alice.token()), Some(("application/json", r#"{"max_uses":2}"#))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["invite"]["created_by"], "alice");
    let list = server.admin_json(&["invites", "list"]);
    assert_eq!(list["invites"][0]["created_by"], "alice");
    server.admin(&["revoke-admin", "alice"]);
    let (status, body, _) = raw(Method::GET, &url, Some(alice.token()), None).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (403, Some("not_admin")));

    // inspect: names, times, sizes and base64 ciphertext; never the words.
    let text = server.admin(&["inspect", "alice"]);
    assert!(text.contains("user alice") && text.contains("direct messages"), "{text}");
    assert!(!text.contains(said) && !text.contains("are you there"), "{text}");
    let inspected = server.admin_json(&["inspect", "bob"]);
    let messages = inspected["direct_messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let stored = bob.history_raw("alice", &Default::default()).await.unwrap();
    for m in &stored.messages {
        let b64 = sealroom_protocol::encode_b64(m.envelope.as_bytes());
        assert!(
            messages.iter().any(|x| x["envelope"] == b64.as_str()),
            "the stored ciphertext is shown as it is"
        );
    }
    assert!(!inspected.to_string().contains(said));

    // Mistakes get clear words and change nothing.
    for (args, words) in [
        (&["disable", "nobody"][..], "no user named nobody"),
        (&["inspect", "Not A Name"][..], "Not A Name"),
        (&["invites", "revoke", "999"][..], "no invite 999"),
    ] {
        let out = server.admin_output(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(words), "{args:?}: {out:?}");
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(sealroom_tests::bin("sealroom"))
        .args(["admin", "--data-dir"])
        .arg(elsewhere.path().join("nothing-here"))
        .arg("users")
        .env_remove("SEALROOM_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no relay database"));
    assert!(!elsewhere.path().join("nothing-here").exists(), "no database is made where there was none");
}

#[tokio::test]
async fn a_deleted_account_ends_at_once_keeps_its_peers_history_and_holds_its_name_for_a_while() {
    let server = TestServer::start_with(&["--deleted-name-hold", "3s", "--gc-interval", "1s"]);
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let to_bob = alice.send_text("bob", "hi bob", false).await.unwrap();
    let to_alice = bob.send_text("alice", "hi alice", false).await.unwrap();
    let bob_phone = server.client().login("bob", "password-of-bob").await.unwrap();
    let mut phone_ws = bob_phone.connect().await.unwrap();
    let bob_key = bob.identity_key();

    // A wrong password deletes nothing.
    let api = |path: &str| format!("{}{path}", server.url);
    let err = server.client().login("bob", "password-of-bob").await.unwrap().delete_account("wrong").await;
    assert!(err.unwrap_err().to_string().contains("invalid_credentials"));
    server.client().login("bob", "password-of-bob").await.unwrap();

    // The right one: every session and socket ends at once.
    bob.delete_account("password-of-bob").await.unwrap();
    let f = expect_frame(&mut phone_ws, "revoked", |f| matches!(f, ServerFrame::SessionRevoked { .. })).await;
    let ServerFrame::SessionRevoked { reason } = f else { unreachable!() };
    assert!(reason.contains("deleted"), "{reason}");
    let (status, _, _) = raw(Method::GET, &api("/api/me"), Some(bob_phone.token()), None).await;
    assert_eq!(status, 401);
    let err = server.client().login("bob", "password-of-bob").await.unwrap_err().to_string();
    assert!(err.contains("invalid_credentials"), "{err}");
    // Nobody can take the name while it is held.
    let err = server.client().register("bob", "password-of-the-new-bob").await.unwrap_err().to_string();
    assert!(err.contains("username_taken"), "{err}");

    // alice keeps her history, sees a deleted user, and cannot write to them.
    let history = alice.history("bob", 10).await.unwrap();
    assert_eq!(history.iter().map(|m| m.id).collect::<Vec<_>>(), [to_bob, to_alice]);
    let (_, list, _) = raw(Method::GET, &api("/api/conversations"), Some(alice.token()), None).await;
    assert_eq!(list["conversations"][0]["peer"], "bob");
    assert_eq!(list["conversations"][0]["peer_deleted"], true, "{list}");
    let (_, info, _) = raw(Method::GET, &api("/api/users/bob"), Some(alice.token()), None).await;
    assert_eq!(info["deleted"], true, "{info}");
    let (_, found, _) = raw(Method::GET, &api("/api/users?prefix=bo"), Some(alice.token()), None).await;
    assert_eq!(found["users"], serde_json::json!([]), "not in the directory");
    let err = alice.send_text("bob", "are you there?", false).await.unwrap_err().to_string();
    assert!(err.contains("unknown_recipient") && err.contains("deleted"), "{err}");
    // What the relay still holds of bob: the tombstone, no credential, no key backup.
    let inspected = server.admin_json(&["inspect", "bob"]);
    assert_eq!(inspected["user"]["auth_hash"], "");
    assert_eq!(inspected["user"]["key_backup"], "AA==");
    assert_eq!(
        inspected["sessions"].as_array().unwrap().iter().filter(|s| s["revoked_at"].is_null()).count(),
        0
    );

    // Once the hold is over, the name is free; the old conversation still shows a deleted user.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let new_bob = loop {
        match server.client().register("bob", "password-of-the-new-bob").await {
            Ok(s) => break s,
            Err(e) => assert!(
                e.to_string().contains("username_taken") && std::time::Instant::now() < deadline,
                "{e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_ne!(new_bob.identity_key(), bob_key, "a new person, with new keys");
    let (_, list, _) = raw(Method::GET, &api("/api/conversations"), Some(alice.token()), None).await;
    let old = &list["conversations"][0];
    assert!(old["peer"].as_str().unwrap().starts_with("deleted_"), "{list}");
    assert_eq!(old["peer_deleted"], true);
    let err = server.client().register("deleted_1_abc", "some long password").await.unwrap_err().to_string();
    assert!(err.contains("invalid_username"), "{err}");

    // The operator deletes an account the same way, with its sockets; the CLI user their own.
    let carol = server.register("carol").await;
    let mut carol_ws = carol.connect().await.unwrap();
    let refused = server.admin_output(&["delete", "carol"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(server.admin(&["delete", "carol", "--yes"]).contains("deleted carol"));
    let f = expect_frame(&mut carol_ws, "revoked", |f| matches!(f, ServerFrame::SessionRevoked { .. })).await;
    let ServerFrame::SessionRevoked { reason } = f else { unreachable!() };
    assert!(reason.contains("operator"), "{reason}");
    let out = server.cli("dave", "password of dave", &["register"]);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli("dave", "password of dave", &["delete-account"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--yes"), "{out:?}");
    let out = server.cli("dave", "password of dave", &["delete-account", "--yes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted the account dave"), "{out:?}");
    let users = server.admin_json(&["users"]);
    let dave = users.as_array().unwrap().iter().find(|u| u["name"] == "dave").expect("dave's tombstone");
    assert_eq!(dave["deleted"], true, "{users}");
}

#[tokio::test]
async fn retention_deletes_what_is_older_refunds_its_quota_and_clients_are_told() {
    let mut server = TestServer::start_with(&["--retention-days", "1", "--gc-interval", "1s"]);
    let (status, info, _) = raw(Method::GET, &format!("{}/api/server", server.url), None, None).await;
    assert_eq!((status.as_u16(), &info["retention_days"]), (200, &serde_json::json!(1)));
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let old = alice.send_text("bob", "from the day before yesterday", false).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("old.txt");
    std::fs::write(&path, b"an old file").unwrap();
    let old_file = alice.send_file("bob", &path, false).await.unwrap();
    let file = match bob.message(old_file).await.unwrap().payload {
        sealroom_crypto::Payload::File(f) => f,
        other => panic!("a file message, not {other:?}"),
    };
    let new = alice.send_text("bob", "from today", false).await.unwrap();
    let bytes_before = server.admin_json(&["users"])[0]["message_bytes"].as_i64().unwrap();

    // Two of them were written two days ago (as far as the relay's records go).
    server.stop();
    server.sql(&format!(
        "UPDATE messages SET created_at = created_at - 2 * 86400000 WHERE id IN ({}, {})",
        old.0, old_file.0
    ));
    server.restart();
    let mut bob = server.client().login("bob", "password-of-bob").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ids: Vec<_> = bob.history("alice", 10).await.unwrap().iter().map(|m| m.id).collect();
        if ids == [new] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still there: {ids:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The old file went with its message; alice's quota got its bytes back.
    let out = files.path().join("again.txt");
    let err = bob.download_file(&file, &out, false).await.unwrap_err().to_string();
    assert!(err.contains("not_found"), "{err}");
    let blobs = std::fs::read_dir(server.data_dir().join("blobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .count();
    assert_eq!(blobs, 0, "the attachment's file is gone too");
    let bytes_after = server.admin_json(&["users"])[0]["message_bytes"].as_i64().unwrap();
    assert!(bytes_after < bytes_before && bytes_after > 0, "{bytes_before} -> {bytes_after}");
    // The CLI says history is limited.
    let out = server.cli("bob", "password-of-bob", &["history", "alice"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("deletes messages after 1 day:"), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("from today"), "{out:?}");
}
