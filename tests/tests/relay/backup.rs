//! `sealroom backup` while clients send, and `sealroom restore` into a fresh data dir.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::time::Duration;

use sealroom_crypto::Payload;
use sealroom_tests::{bin, Database, TestServer};

/// `sealroom COMMAND --FLAG PATH … [--database-url URL]`, as an operator runs it.
fn operator(command: &str, paths: &[(&str, &Path)], database_url: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(bin("sealroom"));
    cmd.arg(command);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    cmd.env_remove("SEALROOM_DATABASE_URL").env_remove("SEALROOM_DATA_DIR").output().expect("sealroom runs")
}

fn words(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn a_backup_taken_while_clients_send_restores_every_message_acknowledged_before_it_began() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob_token = server.register("bob").await.token().to_owned();
    let files = tempfile::tempdir().unwrap();
    let plan = files.path().join("plan.txt");
    std::fs::write(&plan, b"the plan, which the relay only ever sees encrypted").unwrap();
    let with_file = alice.send_file("bob", &plan, false).await.unwrap();

    // Alice keeps sending, one acknowledged message after another, through the backup (the
    // client's futures stay on this thread: both run in this task).
    let stop = Cell::new(false);
    let acked = RefCell::new(Vec::new());
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("monday");
    let sending = async {
        let mut n = 0;
        while !stop.get() {
            let text = format!("message {n}");
            let id = alice.send_text("bob", &text, false).await.unwrap();
            acked.borrow_mut().push(id);
            n += 1;
        }
    };
    let backing_up = async {
        while acked.borrow().len() < 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before: Vec<_> = acked.borrow().clone();
        let (data, to, url) = (server.data_dir(), to.clone(), server.database_url().map(str::to_owned));
        let out = tokio::task::spawn_blocking(move || {
            operator("backup", &[("--data-dir", &data), ("--to", &to)], url.as_deref())
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.set(true);
        (before, out)
    };
    let ((), (before, out)) = tokio::join!(sending, backing_up);
    assert!(out.status.success(), "{}", words(&out));
    assert!(words(&out).contains("backed up"), "{}", words(&out));
    let during = acked.borrow().len() - before.len();
    assert!(during > 0, "alice kept sending while the backup ran");

    // Into the same directory again: refused, nothing touched.
    let again =
        operator("backup", &[("--data-dir", &server.data_dir()), ("--to", &to)], server.database_url());
    assert!(!again.status.success() && words(&again).contains("not empty"), "{}", words(&again));
    // Over the running relay's own data: refused.
    let refused =
        operator("restore", &[("--from", &to), ("--data-dir", &server.data_dir())], server.database_url());
    assert!(!refused.status.success(), "{}", words(&refused));

    // Restore into a fresh data dir (and, on PostgreSQL, an empty database) and start a relay.
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("restored");
    let database_url = match server.database() {
        Database::Sqlite => None,
        Database::Postgres => Some(sealroom_testkit::postgres().database()),
    };
    let out = operator("restore", &[("--from", &to), ("--data-dir", &data)], database_url.as_deref());
    assert!(out.status.success(), "{}", words(&out));
    assert!(words(&out).contains("sealroom serve --data-dir"), "{}", words(&out));
    drop(server);
    let restored = TestServer::start_in(data, database_url, &[]);

    // Every message acknowledged before the backup began is there, and the file opens.
    let mut bob = restored.client().login("bob", "password-of-bob").await.unwrap();
    let history = bob.history("alice", 10_000).await.unwrap();
    let ids: std::collections::HashSet<_> = history.iter().map(|m| m.id).collect();
    for id in before.iter().chain([&with_file]) {
        assert!(ids.contains(id), "message {id} was acknowledged before the backup began and is missing");
    }
    let message = bob.message(with_file).await.unwrap();
    let Payload::File(file) = message.payload else { panic!("a file message") };
    let out = files.path().join("plan-restored.txt");
    bob.download_file(&file, &out, false).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plan).unwrap());
    // bob's session from before the backup still works: its row and the JWT secret came along.
    let me = format!("{}/api/me", restored.url);
    let (status, body, _) = sealroom_tests::raw(reqwest::Method::GET, &me, Some(&bob_token), None).await;
    assert_eq!(status, 200, "{body}");
}
