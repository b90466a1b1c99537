//! The OpenAPI description at `/api/openapi.json`, and schemathesis (a property-based API
//! fuzzer from PyPI) run from it against a real relay: no 5xx, every answer a documented
//! status with a documented body.

use std::path::PathBuf;
use std::process::Command;

use sealroom_protocol::endpoint;
use sealroom_tests::TestServer;

#[tokio::test]
async fn the_description_covers_every_endpoint_and_a_wrong_method_is_405() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let resp = http.get(format!("{}/api/openapi.json", server.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in endpoint::ALL {
        let op = &doc["paths"][*path][method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {path} is not described", method.as_str());
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2')), "{path}: no success response");
        assert!(
            responses.contains_key("400") && responses.contains_key("429"),
            "{path}: errors undocumented"
        );
    }
    // Every error code appears among the documented error responses.
    let text = doc.to_string();
    for code in sealroom_protocol::ErrorCode::ALL {
        if code.http_status() < 500 {
            assert!(text.contains(code.as_str()), "{} is not documented", code.as_str());
        }
    }

    // A known path with another method: 405, `Allow`, and the code; an unknown path: 404.
    let resp =
        http.request(reqwest::Method::PATCH, format!("{}/api/blobs/x", server.url)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, DELETE");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    let resp = http.get(format!("{}/api/nothing-here", server.url)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

fn schemathesis() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/pyvenv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: `cargo xtask test` (or `cargo xtask setup`) installs it",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let server = TestServer::start();
    // Real accounts and a real conversation, so that ids and names exist to be found.
    let mut alice = server.register("alice").await;
    let _bob = server.register("bob").await;
    alice.send_text("bob", "hello", false).await.unwrap();
    let token = alice.token().to_owned();
    let reports = tempfile::tempdir().unwrap();

    let out = tokio::task::spawn_blocking({
        let url = server.url.clone();
        let reports = reports.path().to_owned();
        move || {
            Command::new(schemathesis())
                .args(["run", &format!("{url}/api/openapi.json"), "--url", &url])
                .args(["-H", &format!("Authorization: Bearer {token}")])
                // Every check but two that need what a schema cannot say: that a valid-looking
                // body is also meaningful (`up_to` 960.0 is an integer to JSON Schema, not to
                // the relay; base64 of the right length may not decode; you cannot open a
                // chat with yourself), and that an uploaded blob is readable before a message
                // refers to it (by design it is not).
                .args(["--checks", "all"])
                .args(["--exclude-checks", "positive_data_acceptance,ensure_resource_availability"])
                // Logging out would end the session the run uses; the authorization matrix
                // covers both.
                .args(["--exclude-operation-id", "Logout", "--exclude-operation-id", "LogoutAll"])
                .args(["--max-examples", "25", "--workers", "2", "--request-timeout", "20"])
                .args(["--no-color"])
                .current_dir(&reports)
                .output()
                .expect("schemathesis runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().find(|l| l.contains(" generated, ")).unwrap_or_default().to_owned();
    eprintln!("schemathesis: {summary}");
    assert!(summary.contains("passed"), "no test cases ran:\n{stdout}");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains("panicked"), "the relay panicked:\n{log}");
}
