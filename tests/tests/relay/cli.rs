//! The `sealroom-cli` session of the README, against a real relay.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sealroom_tests::{bin, TestServer};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "should fail: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
}

#[test]
fn the_cli_session_works_end_to_end() {
    let server = TestServer::start();
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a", &["register"])).trim(), "registered alice");
    ok(&server.cli("bob", "pass-phrase-b", &["register"]));
    fails(&server.cli("alice", "pass-phrase-a", &["register"]), "username_taken");
    // The client core refuses a weak password before making any key; nothing is registered.
    fails(&server.cli("carol", "short", &["register"]), "at least 8 characters");
    fails(&server.cli("carol", "password1", &["register"]), "one of the most common passwords");
    // zxcvbn, linked into the native client: a common word with a year and a symbol.
    fails(&server.cli("carol", "Summer2024!", &["register"]), "common password with small changes");
    fails(&server.cli("carol", "pass-phrase-c", &["history", "bob"]), "invalid_credentials");
    // Blocking from the command line.
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a", &["block", "bob"])).trim(), "blocked bob");
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a", &["blocked"])).trim(), "bob");
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a", &["unblock", "bob"])).trim(), "unblocked bob");
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a", &["blocked"])).trim(), "");

    // bob listens. Both users speak MLS, so alice's first message moves their conversation
    // there: the introduction goes as a last version 1 message, then her messages go in the
    // group (each named `#CONVERSATION/POSITION`), which bob's device joins by its Welcome.
    let mut listener = Command::new(bin("sealroom-cli"))
        .args(["--server", &server.url, "--user", "bob", "listen", "--count", "3", "--timeout", "30"])
        .env("SEALROOM_PASSWORD", "pass-phrase-b")
        .env("SEALROOM_STATE_DIR", server.root.path().join("cli-state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(listener.stderr.take().unwrap());
    let mut ready = String::new();
    said.read_line(&mut ready).unwrap();
    assert!(ready.starts_with("listening as bob"), "{ready}");

    let position = |sent: String| -> (String, u64) {
        let (group, seq) =
            sent.trim().strip_prefix('#').and_then(|s| s.split_once('/')).unwrap_or_else(|| {
                panic!("a message in the conversation's MLS group is named #ID/POSITION: {sent}")
            });
        (group.to_owned(), seq.parse().unwrap())
    };
    let (group, seq1) =
        position(ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "hello bob — grüße 👋"])));
    let (group2, seq2) =
        position(ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "tab\there\nnewline"])));
    assert_eq!(group, group2, "one conversation");
    assert!(seq2 > seq1);
    let out = listener.wait_with_output().unwrap();
    let heard = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = heard.lines().map(|l| l.split('\t').collect()).collect();
    let mut events = String::new();
    std::io::Read::read_to_string(&mut said, &mut events).unwrap();
    assert_eq!(lines.len(), 3, "{heard}\n{events}");
    assert_eq!(events.trim(), format!("#{group}: joined"), "by the Welcome");
    assert_eq!(
        (lines[0][2], lines[0][3]),
        ("alice", "[moved to forward-secret encryption (MLS)]"),
        "{heard}"
    );
    assert!(lines[0][0].parse::<u64>().is_ok(), "the introduction is a version 1 message: {heard}");
    assert_eq!(lines[1][0], format!("#{group}/{seq1}"));
    assert!(lines[1][1].ends_with('Z') && lines[1][1].contains('T'), "RFC 3339: {}", lines[1][1]);
    assert_eq!((lines[1][2], lines[1][3]), ("alice", "hello bob — grüße 👋"));
    assert_eq!(lines[2][0], format!("#{group}/{seq2}"));
    assert_eq!(lines[2][3], "tab\\there\\nnewline", "one message per line");
    // What bob's listener printed it acknowledged, up to the newest position it read.
    let delivered = || {
        server.sql_rows(&format!(
            "SELECT m.log_delivered_up_to FROM members m JOIN users u ON u.id = m.user_id \
             WHERE u.username = 'bob' AND m.conversation_id = {group}"
        ))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while delivered() != [seq2.to_string()] && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(delivered(), [seq2.to_string()], "bob's device acknowledged what it printed");

    // bob's device is in the group: his reply goes there too.
    let (group3, _) = position(ok(&server.cli("bob", "pass-phrase-b", &["send", "alice", "hi alice"])));
    assert_eq!(group3, group);
    // The history: the version 1 part (the introduction marks the move), then the archive's.
    let history = ok(&server.cli("alice", "pass-phrase-a", &["history", "bob"]));
    let rows: Vec<Vec<&str>> = history.lines().map(|l| l.split('\t').collect()).collect();
    let senders: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    assert_eq!(senders, ["alice", "alice", "alice", "bob"], "{history}");
    assert_eq!(rows[0][3], "[moved to forward-secret encryption (MLS)]");
    assert_eq!((rows[1][0], rows[3][3]), (format!("#{group}/{seq1}").as_str(), "hi alice"));
    assert_eq!(
        ok(&server.cli("alice", "pass-phrase-a", &["history", "bob", "--limit", "1"])).trim(),
        rows[3].join("\t"),
        "the newest"
    );
    // A file goes in the group too, and comes back whole from its position.
    let file = server.root.path().join("note.txt");
    std::fs::write(&file, "a file for bob").unwrap();
    let (_, fseq) =
        position(ok(&server.cli("alice", "pass-phrase-a", &["send-file", "bob", file.to_str().unwrap()])));
    let got = server.root.path().join("got.txt");
    let at = format!("#{group}/{fseq}");
    assert_eq!(
        ok(&server.cli("bob", "pass-phrase-b", &["get-file", &at, got.to_str().unwrap()])).trim(),
        "note.txt\t14\ttext/plain"
    );
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "a file for bob");

    // The unread count is of both kinds: alice's three in MLS (her introduction is a line of
    // the history, not a message to read, as in the browser's list); the last message is the
    // newest of either kind.
    let convs = ok(&server.cli("bob", "pass-phrase-b", &["conversations"]));
    assert!(convs.starts_with("alice\t3\t"), "the listener acknowledged delivery, not reading: {convs}");
    assert!(convs.trim_end().ends_with("[file note.txt (14 bytes, text/plain)]"), "{convs}");
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a", &["users", "b"])).trim(), "bob");

    let sn_a = ok(&server.cli("alice", "pass-phrase-a", &["safety-number", "bob"]));
    let sn_b = ok(&server.cli("bob", "pass-phrase-b", &["safety-number", "alice", "--verify"]));
    assert_eq!(sn_a.trim(), sn_b.trim().trim_end_matches("\t(verified)"));
    assert_eq!(sn_a.split_whitespace().count(), 12);
    assert!(sn_b.contains("(verified)"));
    assert!(
        ok(&server.cli("bob", "pass-phrase-b", &["safety-number", "alice"])).contains("(verified)"),
        "kept in the backup"
    );

    fails(&server.cli("alice", "wrong", &["history", "bob"]), "invalid_credentials");
    fails(&server.cli("alice", "pass-phrase-a", &["send", "nobody", "hi"]), "nobody");
    fails(&server.cli("alice", "pass-phrase-a", &["history", "B A D"]), "invalid username");

    ok(&server.cli_env(
        "alice",
        "pass-phrase-a",
        &["passwd"],
        &[("SEALROOM_NEW_PASSWORD", "pass-phrase-a2")],
    ));
    fails(&server.cli("alice", "pass-phrase-a", &["history", "bob"]), "invalid_credentials");
    // The archive key survives the new password.
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a2", &["history", "bob"])).lines().count(), 5);

    // Clearing for both clears the archive too, and bob's device, which reads the last
    // message only after the clear, does not archive it again.
    let (_, last) = position(ok(&server.cli("alice", "pass-phrase-a2", &["send", "bob", "before clearing"])));
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a2", &["clear", "bob", "--for-both"])).trim(), "cleared");
    assert_eq!(ok(&server.cli("bob", "pass-phrase-b", &["history", "alice"])), "");
    assert_eq!(ok(&server.cli("alice", "pass-phrase-a2", &["history", "bob"])), "");
    assert_eq!(
        server.sql_rows(&format!("SELECT count(*) FROM archive WHERE seq <= {last}"))[0],
        "0",
        "no archived entry of the conversation is left"
    );
    // After the clear, the conversation goes on.
    ok(&server.cli("alice", "pass-phrase-a2", &["send", "bob", "after clearing"]));
    let after = ok(&server.cli("bob", "pass-phrase-b", &["history", "alice"]));
    assert_eq!(after.lines().count(), 1, "{after}");
    assert!(after.contains("after clearing"), "{after}");
}

#[test]
fn the_cli_refuses_a_changed_peer_key_until_accepted() {
    let mut server = TestServer::start();
    ok(&server.cli("alice", "pass-phrase-a", &["register"]));
    // bob has never had a device that speaks MLS (a browser before issue 14), so alice's
    // messages go as version 1, sealed to his identity key.
    tokio::runtime::Runtime::new().unwrap().block_on(server.register("bob"));
    let first = ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "first"])); // pins bob's key
    assert!(first.trim().parse::<u64>().is_ok(), "version 1: {first}");
    // Play a malicious relay: swap bob's identity key in the directory.
    server.stop();
    let key = server.bytes_sql(&{
        let mut k = [0; 32];
        k[0] = 9;
        k
    });
    server.sql(&format!("UPDATE users SET identity_key = {key} WHERE username = 'bob'"));
    server.restart();
    let out = server.cli("alice", "pass-phrase-a", &["send", "bob", "second"]);
    fails(&out, "identity key has changed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--accept-new-key"));
    assert_eq!(
        ok(&server.cli("alice", "pass-phrase-a", &["history", "bob"])).lines().count(),
        1,
        "nothing was sent"
    );
    ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "second", "--accept-new-key"]));
    // Re-pinned: the next send needs no flag.
    ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "third"]));
    std::thread::sleep(Duration::from_millis(10));
}

/// Issue 12, reproduced end to end with the CLI: the relay serves alice an older backup (from
/// before she pinned bob) and mallory's key as bob's. Her device, which saw the newer backup,
/// refuses to sign in; a fresh device signs in but will not send to bob, because she has
/// written to him and the pin is gone: it shows the key change instead.
#[test]
fn a_rolled_back_backup_is_refused_and_the_lost_pin_shows_as_a_key_change() {
    let mut server = TestServer::start();
    ok(&server.cli("alice", "pass-phrase-a", &["register"]));
    // bob without an MLS device: alice writes to him in version 1, sealed to his identity key.
    tokio::runtime::Runtime::new().unwrap().block_on(server.register("bob"));
    ok(&server.cli("mallory", "pass-phrase-m", &["register"]));
    server.stop();
    server.sql("CREATE TABLE saved AS SELECT key_backup FROM users WHERE username = 'alice'");
    server.sql("CREATE TABLE bobs AS SELECT identity_key FROM users WHERE username = 'bob'");
    server.start_again_same_port();
    ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "before the rollback"]));

    server.stop();
    server.sql("UPDATE users SET key_backup = (SELECT key_backup FROM saved), key_backup_version = 1 WHERE username = 'alice'");
    server.sql(
        "UPDATE users SET identity_key = (SELECT identity_key FROM users WHERE username = 'mallory') \
         WHERE username = 'bob'",
    );
    server.start_again_same_port();
    fails(&server.cli("alice", "pass-phrase-a", &["conversations"]), "older copy of your key backup");

    let fresh = server.root.path().join("fresh-device");
    let fresh = fresh.to_str().unwrap();
    let out = server.cli_env(
        "alice",
        "pass-phrase-a",
        &["send", "bob", "to mallory?"],
        &[("SEALROOM_STATE_DIR", fresh)],
    );
    fails(&out, "identity key has changed");
    fails(&out, "lost the key you checked");
    // Nothing reached the relay for bob after the rollback (his own key back in place).
    server.stop();
    server.sql("UPDATE users SET identity_key = (SELECT identity_key FROM bobs) WHERE username = 'bob'");
    server.start_again_same_port();
    let history = ok(&server.cli("bob", "password-of-bob", &["history", "alice"]));
    assert!(history.contains("before the rollback") && !history.contains("to mallory?"), "{history}");
}

/// Issue 12: clients showed the relay's timestamp, so a back-dated message went unnoticed.
/// They show the sender's authenticated `sent_at`, and the relay's time beside it when the two
/// disagree by more than 10 minutes.
#[tokio::test]
async fn history_shows_the_authenticated_time_and_flags_a_disagreeing_clock() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    server.register("bob").await;
    let bob: sealroom_protocol::Username = "bob".parse().unwrap();
    let conv = alice.conversation_with(&bob).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let three_hours_ago =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
            - 3 * 3600 * 1000;
    let (cmid, env) = alice
        .encrypt_to_with_clock(&bob, &sealroom_crypto::Payload::Text("back-dated".into()), three_hours_ago)
        .await
        .unwrap();
    ws.send_and_wait(conv, cmid, env).await.unwrap();
    let (cmid, env) =
        alice.encrypt_to(&bob, &sealroom_crypto::Payload::Text("on time".into()), false).await.unwrap();
    ws.send_and_wait(conv, cmid, env).await.unwrap();
    let out = ok(&server.cli("bob", "password-of-bob", &["history", "alice"]));
    let line =
        |needle: &str| out.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{out}")).to_owned();
    let late = line("back-dated");
    assert!(late.contains("(server: "), "flagged: {late}");
    // `id  2026-…THH:…Z (server: 2026-…THH:…Z)  alice  text`: three hours apart.
    let when = late.split('\t').nth(1).unwrap();
    let hour =
        |t: &str| t.get(11..13).and_then(|h| h.parse::<i32>().ok()).unwrap_or_else(|| panic!("{late}"));
    let server = when.split("(server: ").nth(1).unwrap();
    assert_eq!((hour(server) - hour(when)).rem_euclid(24), 3, "{late}");
    assert!(!line("on time").contains("(server: "), "{out}");
}

/// The CLI keeps its session in the state dir: commands reuse it (no new session row, no
/// password hash on the relay), a wrong password still fails, a revoked session is replaced
/// by a fresh login without a word, and `logout` ends it and forgets it.
#[test]
fn the_cli_reuses_its_session_until_logout() {
    let server = TestServer::start();
    let live = |name: &str| {
        server.sql_rows(&format!(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE u.username = '{name}' AND s.revoked_at IS NULL"
        ))[0]
            .clone()
    };
    ok(&server.cli("alice", "pass-phrase-a", &["register"]));
    ok(&server.cli("bob", "pass-phrase-b", &["register"]));
    ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "one"]));
    ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", "two"]));
    ok(&server.cli("alice", "pass-phrase-a", &["conversations"]));
    assert_eq!(live("alice"), "1", "every command used the session made at registration");
    let file = std::fs::read_dir(server.root.path().join("cli-state"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("alice.session"))
        .find(|p| p.exists())
        .expect("the session is saved");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // The saved token does not stand in for the password.
    fails(&server.cli("alice", "not-her-password", &["conversations"]), "invalid_credentials");
    assert_eq!(live("alice"), "1");

    // Revoked elsewhere (logout everywhere from another device): the next command signs in anew.
    ok(&server.cli_env(
        "alice",
        "pass-phrase-a",
        &["logout-everywhere"],
        &[("SEALROOM_STATE_DIR", "/nonexistent/x")],
    ));
    assert_eq!(live("alice"), "0");
    let out = ok(&server.cli("alice", "pass-phrase-a", &["history", "bob"]));
    assert!(out.contains("one") && out.contains("two"), "{out}");
    assert_eq!(live("alice"), "1");

    // logout ends it on the relay and here.
    ok(&server.cli("alice", "pass-phrase-a", &["logout"]));
    assert_eq!(live("alice"), "0");
    assert!(!file.exists(), "the saved session is forgotten");
}

#[test]
fn export_writes_the_whole_decrypted_history_as_json_and_a_page_that_opens_anywhere() {
    let server = TestServer::start();
    ok(&server.cli("alice", "pass-phrase-a", &["register"]));
    ok(&server.cli("bob", "pass-phrase-b", &["register"]));
    ok(&server.cli("carol", "pass-phrase-c", &["register"]));
    let said = ["hello bob", "<b>bold</b> & \"quoted\"", "line one\nline two"];
    for text in said {
        ok(&server.cli("alice", "pass-phrase-a", &["send", "bob", text]));
    }
    ok(&server.cli("bob", "pass-phrase-b", &["send", "alice", "hi alice"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"some notes").unwrap();
    ok(&server.cli("alice", "pass-phrase-a", &["send-file", "bob", file.to_str().unwrap()]));
    let created =
        ok(&server.cli("alice", "pass-phrase-a", &["group", "create", "Book club", "--member", "carol"]));
    let group = created.split_whitespace().find(|w| w.starts_with('#')).expect("the group's #ID").to_owned();
    ok(&server.cli("carol", "pass-phrase-c", &["group", "sync"]));
    ok(&server.cli("carol", "pass-phrase-c", &["send", &group, "chapter three tonight"]));

    let out = dir.path().join("export");
    let done = ok(&server.cli("alice", "pass-phrase-a", &["export", "--out", out.to_str().unwrap()]));
    assert!(done.contains("exported"), "{done}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sealroom-export.json")).unwrap()).unwrap();
    assert_eq!(json["format"], "sealroom-export/1");
    assert_eq!(json["user"], "alice");
    // The conversation with bob is the history, in order.
    let with_bob = json["conversations"].as_array().unwrap().iter().find(|c| c["title"] == "bob").unwrap();
    let texts: Vec<&str> =
        with_bob["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["hello bob", "<b>bold</b> & \"quoted\"", "line one\nline two", "hi alice"]);
    // One entry for each line `history` prints (the move to MLS included), nothing left out.
    let history = ok(&server.cli("alice", "pass-phrase-a", &["history", "bob"]));
    assert_eq!(
        history.lines().count(),
        with_bob["messages"].as_array().unwrap().len(),
        "{history}\n{with_bob}"
    );
    let files: Vec<&serde_json::Value> =
        with_bob["messages"].as_array().unwrap().iter().filter(|m| m["file"].is_object()).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0]["file"]["name"].as_str(), files[0]["file"]["size"].as_u64()),
        (Some("notes.txt"), Some(10))
    );
    // The group, from alice's archive, under its name.
    let club =
        json["conversations"].as_array().unwrap().iter().find(|c| c["kind"] == "group").expect("the group");
    assert_eq!(club["title"], "Book club");
    assert!(
        club["messages"].as_array().unwrap().iter().any(|m| m["text"] == "chapter three tonight"),
        "{club}"
    );
    // The page: everything escaped, nothing loaded from anywhere.
    let html = std::fs::read_to_string(out.join("sealroom-export.html")).unwrap();
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"), "{html}");
    assert!(!html.contains("<b>bold"), "{html}");
    assert!(html.contains("chapter three tonight") && html.contains("notes.txt"));
    assert!(!html.contains("src=") && !html.contains("<script"), "the page loads nothing");
    // Never over an earlier export.
    fails(
        &server.cli("alice", "pass-phrase-a", &["export", "--out", out.to_str().unwrap()]),
        "already holds an export",
    );
}
