//! Group conversations from the command line (issue 13): five users with two devices each
//! (a device is a CLI state directory), against a real relay. Adding, removing, leaving and
//! renaming; attachments; a new device that joins by itself and reads the whole history from
//! the archive; and strict forward secrecy, where a new device starts empty.

use std::path::PathBuf;
use std::process::Output;

use sealroom_tests::TestServer;

const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

fn password(user: &str) -> String {
    format!("pass-phrase-of-{user}")
}

struct Devices<'a> {
    server: &'a TestServer,
    root: tempfile::TempDir,
}

impl Devices<'_> {
    fn dir(&self, user: &str, device: char) -> PathBuf {
        self.root.path().join(format!("{user}-{device}"))
    }

    /// `sealroom-cli` as `user` on their device `device` (its own state directory).
    fn run(&self, user: &str, device: char, args: &[&str]) -> Output {
        let dir = self.dir(user, device);
        self.server.cli_env(user, &password(user), args, &[("SEALROOM_STATE_DIR", dir.to_str().unwrap())])
    }

    fn ok(&self, user: &str, device: char, args: &[&str]) -> String {
        let out = self.run(user, device, args);
        assert!(
            out.status.success(),
            "{user}-{device} {args:?}: exit {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, user: &str, device: char, args: &[&str], needle: &str) {
        let out = self.run(user, device, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{user}-{device} {args:?} should fail");
        assert!(err.contains(needle), "{user}-{device} {args:?}: expected {needle:?} in {err}");
    }

    /// The texts of the messages a device reads now (`group sync`), in log order.
    fn read(&self, user: &str, device: char) -> Vec<String> {
        texts(&self.ok(user, device, &["group", "sync"]))
    }

    /// The texts of a group's history as a device reads it from the archive.
    fn history(&self, user: &str, device: char, group: &str) -> Vec<String> {
        texts(&self.ok(user, device, &["history", group, "--limit", "1000"]))
    }
}

/// The last column of every `#ID/POSITION  TIME  SENDER  TEXT` line.
fn texts(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 4, "a message line: {l:?}");
            assert!(cols[0].starts_with('#') && cols[0].contains('/'), "a group message id: {l:?}");
            cols[3].to_owned()
        })
        .collect()
}

fn has(list: &[String], text: &str) -> bool {
    list.iter().any(|t| t == text)
}

#[test]
fn five_users_with_two_devices_each_share_a_group_from_the_cli() {
    let server = TestServer::start();
    let d = Devices { server: &server, root: tempfile::tempdir().unwrap() };
    for user in USERS {
        assert_eq!(d.ok(user, 'a', &["register"]).trim(), format!("registered {user}"));
        // A second device: a state directory of its own, registered on first use.
        let listed = d.ok(user, 'b', &["devices"]);
        assert_eq!(listed.lines().count(), 2, "{user}: {listed}");
        assert_eq!(listed.lines().filter(|l| l.ends_with("\tthis")).count(), 1, "{listed}");
    }

    // Alice makes the group; its id is the last line.
    let created = d.ok(
        "alice",
        'a',
        &["group", "create", "Five of us", "--member", "bob", "--member", "carol", "--member", "dave"],
    );
    let group = created.lines().last().unwrap().to_owned();
    assert!(group.starts_with('#') && group[1..].parse::<i64>().is_ok(), "{created}");
    let g = group.as_str();
    d.ok("alice", 'a', &["send", g, "hello from alice-a"]);
    // Every member device reads it (bob's, carol's and dave's joined by their Welcome)...
    for user in ["bob", "carol", "dave"] {
        for device in ['a', 'b'] {
            let read = d.read(user, device);
            assert!(has(&read, "hello from alice-a"), "{user}-{device}: {read:?}");
            assert!(has(&read, "[named the group: Five of us]"), "{user}-{device}: {read:?}");
        }
    }
    // ...but alice's other device, which joins by itself now, after it was sent: forward
    // secrecy hides it from that device, and the archive shows it.
    assert!(d.read("alice", 'b').is_empty());
    assert_eq!(d.history("alice", 'b', g), ["[named the group: Five of us]", "hello from alice-a"]);
    let members = d.ok("bob", 'a', &["group", "members", g]);
    let mut lines: Vec<&str> = members.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["alice\tadmin\t2", "bob\tmember\t2", "carol\tmember\t2", "dave\tmember\t2"]);
    d.ok("dave", 'b', &["send", g, "dave-b says hi"]);

    // Only admins add.
    d.fails("bob", 'a', &["group", "add", g, "erin"], "not an admin");
    d.ok("alice", 'b', &["group", "add", g, "erin"]);
    for device in ['a', 'b'] {
        let read = d.read("erin", device);
        assert!(has(&read, "[named the group: Five of us]"), "the name follows an add: {read:?}");
        assert!(!has(&read, "hello from alice-a"), "nothing from before erin was added: {read:?}");
    }
    assert_eq!(
        d.ok("erin", 'a', &["group", "list"]).trim(),
        format!("{g}\tFive of us\talice,bob,carol,dave,erin")
    );

    // An attachment, readable by members.
    let file = d.root.path().join("plan.txt");
    std::fs::write(&file, b"the plan, in a file").unwrap();
    let sent = d.ok("carol", 'a', &["send-file", g, file.to_str().unwrap()]);
    let file_id = sent.trim().to_owned();
    let out = d.root.path().join("plan-for-erin.txt");
    d.ok("erin", 'b', &["group", "sync"]);
    d.ok("erin", 'b', &["get-file", &file_id, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), b"the plan, in a file");

    // Carol is removed: neither of her devices reads what is sent after, nor can fetch a file
    // sent after.
    d.fails("bob", 'b', &["group", "remove", g, "carol"], "not an admin");
    d.ok("alice", 'a', &["group", "remove", g, "carol"]);
    d.ok("bob", 'b', &["send", g, "after carol"]);
    let later = d.ok("bob", 'b', &["send-file", g, file.to_str().unwrap()]);
    for device in ['a', 'b'] {
        // What was sent while carol was in (her other device's file included), she reads;
        // nothing after.
        let read = d.read("carol", device);
        assert!(!has(&read, "after carol"), "carol-{device}: {read:?}");
        let files = read.iter().filter(|t| t.starts_with("[file")).count();
        assert_eq!(files, usize::from(device == 'b'), "carol-{device}: {read:?}");
        d.fails("carol", device, &["send", g, "am I in?"], "not in that group");
    }
    let carols = d.history("carol", 'a', g);
    assert!(has(&carols, "hello from alice-a") && has(&carols, "dave-b says hi"), "{carols:?}");
    assert!(!has(&carols, "after carol"), "{carols:?}");
    let to = d.root.path().join("not-for-carol.txt");
    d.fails("carol", 'a', &["get-file", later.trim(), to.to_str().unwrap()], "no message");

    // Dave leaves (from one device, for both); the next member online commits his removal.
    d.ok("dave", 'a', &["group", "leave", g]);
    d.ok("erin", 'a', &["send", g, "after dave"]);
    for device in ['a', 'b'] {
        assert!(!has(&d.read("dave", device), "after dave"), "dave-{device}");
    }
    let members = d.ok("erin", 'b', &["group", "members", g]);
    assert!(!members.contains("dave") && !members.contains("carol"), "{members}");

    // Any member renames.
    d.ok("erin", 'b', &["group", "rename", g, "Four of us"]);
    let listed = d.ok("bob", 'a', &["group", "list"]);
    assert_eq!(listed.trim(), format!("{g}\tFour of us\talice,bob,erin"));

    // Every current member device has read every message sent while it was a member.
    let everything = [
        "hello from alice-a",
        "dave-b says hi",
        "after carol",
        "after dave",
        "[named the group: Four of us]",
    ];
    for user in ["alice", "bob"] {
        for device in ['a', 'b'] {
            d.read(user, device);
        }
    }

    // A new device of bob's joins by itself and reads the whole history from the archive,
    // from before it existed.
    let before = d.history("bob", 'a', g);
    for text in everything {
        assert!(has(&before, text), "bob-a's history has {text:?}: {before:?}");
    }
    assert_eq!(d.history("bob", 'c', g), before, "a new device reads the same history");
    d.ok("bob", 'c', &["send", g, "from bob's new device"]);
    assert!(has(&d.read("alice", 'b'), "from bob's new device"));
    let members = d.ok("alice", 'a', &["group", "members", g]);
    assert!(members.lines().any(|l| l == "bob\tmember\t3"), "{members}");

    // Strict forward secrecy: erin turns the archive off; it is deleted, and her new device
    // starts with no history.
    assert_eq!(d.ok("erin", 'a', &["archive"]).trim(), "on");
    d.ok("erin", 'a', &["archive", "off"]);
    assert_eq!(d.ok("erin", 'b', &["archive"]).trim(), "off");
    d.fails("erin", 'c', &["history", g], "archive is off");
    d.ok("alice", 'a', &["send", g, "after strict"]);
    assert!(has(&d.read("erin", 'c'), "after strict"), "a new device still reads what comes");
    d.fails("erin", 'a', &["history", g], "archive is off");
    d.ok("erin", 'a', &["archive", "on"]);
    assert!(d.history("erin", 'a', g).is_empty(), "nothing kept from before");
}

/// The one file named `name` under `dir` (the CLI keeps `<state dir>/<relay>/<user>.mls`).
fn find_file(dir: &std::path::Path, name: &str) -> PathBuf {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "one {name} under {}: {found:?}", dir.display());
    found.remove(0)
}

/// Forward secrecy shown on the CLI's own file: once bob's device has read a message, its
/// `.mls` file as stored on disk no longer decrypts that message, even for someone who also
/// has bob's password and the relay's whole database. A copy of the file from before the read
/// still does, so the test can fail.
#[test]
fn a_device_file_on_disk_cannot_decrypt_a_message_it_has_already_read() {
    let server = TestServer::start();
    let d = Devices { server: &server, root: tempfile::tempdir().unwrap() };
    for user in ["alice", "bob"] {
        d.ok(user, 'a', &["register"]);
    }
    let created = d.ok("alice", 'a', &["group", "create", "Short-lived", "--member", "bob"]);
    let g = created.lines().last().unwrap().to_owned();
    let conversation = sealroom_protocol::ConversationId(g[1..].parse().unwrap());
    assert!(has(&d.read("bob", 'a'), "[named the group: Short-lived]"));
    let file = find_file(&d.dir("bob", 'a'), "bob.mls");
    let before = std::fs::read(&file).unwrap();

    d.ok("alice", 'a', &["send", &g, "read once, then gone"]);
    // The message as the relay stores it: the newest application message of the group.
    let rows = server.sql_rows(&format!(
        "SELECT {} FROM group_log WHERE conversation_id = {} AND content_type = 1 \
         ORDER BY seq DESC LIMIT 1",
        server.hex_sql("data"),
        conversation.0
    ));
    let entry = hex::decode(&rows[0]).unwrap();
    assert_eq!(d.read("bob", 'a'), ["read once, then gone"]);
    let after = std::fs::read(&file).unwrap();
    assert!(!after.windows(b"read once".len()).any(|w| w == b"read once"), "no plaintext in the device file");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let thief = rt.block_on(server.client().login("bob", &password("bob"))).unwrap();
    let read = |bytes: &[u8]| thief.read_with_device_file(bytes, conversation, &entry).unwrap();
    assert_eq!(
        read(&before),
        Some(sealroom_session::Payload::Text("read once, then gone".into())),
        "the state from before the read decrypts it"
    );
    assert_eq!(read(&after), None, "the state after the read keeps no key for it");

    // Nor after the epoch moves on (bob's device updates its keys).
    d.ok("bob", 'a', &["group", "update", &g]);
    d.read("alice", 'a');
    assert_eq!(read(&std::fs::read(&file).unwrap()), None);
}
