//! Web client performance, measured in headless Chromium against a real relay holding a
//! 10,000-message conversation. Prints numbers for docs/BENCHMARKS.md; asserts only that the
//! UI did what was timed. Run with `cargo xtask bench-web` (release build of the client).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)] // benchmark code

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use sealroom_crypto::Payload;
use sealroom_tests::TestServer;

fn messages() -> usize {
    std::env::var("SEALROOM_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Runs an async script that times something in the page and returns milliseconds.
async fn time_in_page(c: &fantoccini::Client, script: &str) -> f64 {
    c.update_timeouts(fantoccini::wd::TimeoutConfiguration::new(Some(Duration::from_secs(120)), None, None))
        .await
        .unwrap();
    let v = c.execute_async(script, vec![]).await.unwrap();
    v.as_f64().unwrap_or_else(|| panic!("script returned {v}"))
}

#[tokio::test]
#[ignore = "benchmark: cargo xtask bench-web"]
async fn web_client_with_a_10000_message_conversation() {
    #[allow(non_snake_case)]
    let MESSAGES = messages();
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
    assert!(dist.join("index.html").exists(), "build web/dist first (cargo xtask bench-web does)");
    let wasm: u64 = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .map(|e| {
            let raw = std::fs::read(e.path()).unwrap();
            let out = std::process::Command::new("gzip").args(["-9", "-c"]).arg(e.path()).output().unwrap();
            println!(
                "BENCH wasm {}: {} KiB raw, {} KiB gzipped",
                e.file_name().to_string_lossy(),
                raw.len() / 1024,
                out.stdout.len() / 1024
            );
            out.stdout.len() as u64
        })
        .sum();
    assert!(wasm > 0);

    let server = TestServer::start_with(&["--web-dir", dist.to_str().unwrap()]);
    let mut alice = server.register("alice").await;
    let bob_native = server.client().register("bob", "pw-bob-long").await.unwrap();
    drop(bob_native);
    let started = Instant::now();
    let mut ws = alice.connect().await.unwrap();
    let bob = "bob".parse().unwrap();
    let conversation = alice.conversation_with(&bob).await.unwrap();
    for i in 0..MESSAGES {
        let text = if i == MESSAGES / 2 {
            "the needle in the haystack".to_owned()
        } else {
            format!("message {i}: some ordinary words here")
        };
        let (cmid, env) = alice.encrypt_to(&bob, &Payload::Text(text), false).await.unwrap();
        ws.send_and_wait(conversation, cmid, env).await.unwrap();
    }
    println!("BENCH seeding {MESSAGES} messages through the relay: {:.1} s", started.elapsed().as_secs_f64());

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut driver =
        std::process::Command::new("/usr/bin/chromedriver").arg(format!("--port={port}")).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-background-networking", "--window-size=1200,800",
            format!("--user-data-dir={}", profile.path().display())]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();

    // Cold page load: navigation start to an interactive sign-in form (wasm fetched, compiled,
    // mounted).
    c.goto(&server.url).await.unwrap();
    let load = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1];
         (function poll() { document.querySelector('form.card button.primary') ? done(performance.now()) : requestAnimationFrame(poll); })();",
    )
    .await;
    println!("BENCH page load to interactive sign-in form: {load:.0} ms");

    // Sign in (production Argon2id in the page) to a usable conversation list.
    c.find(Locator::Id("tab-signin")).await.unwrap().click().await.unwrap();
    c.find(Locator::Id("username")).await.unwrap().send_keys("bob").await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys("pw-bob-long").await.unwrap();
    let signin = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1]; const t0 = performance.now();
         document.querySelector('form.card').requestSubmit();
         (function poll() { const p = document.querySelector('.conv .preview');
           p && p.textContent.includes('message') ? requestAnimationFrame(() => done(performance.now() - t0)) : setTimeout(poll, 5); })();",
    )
    .await;
    println!(
        "BENCH sign-in (Argon2id + unseal + list with decrypted previews) to usable list: {signin:.0} ms"
    );

    // Open the conversation: click to first paint of the newest page.
    let open_script =         "const done = arguments[arguments.length - 1]; const t0 = performance.now();
         document.querySelector('.conv .row').click();
         (function poll() { const m = document.querySelectorAll('.msg.theirs .text');
           m.length && m[m.length - 1].textContent.includes('message LAST:') ? requestAnimationFrame(() => done(performance.now() - t0)) : setTimeout(poll, 2); })();"
        .replace("LAST", &(MESSAGES - 1).to_string());
    let open = time_in_page(&c, &open_script).await;
    println!("BENCH open a {MESSAGES}-message conversation to first paint of the newest page: {open:.0} ms");

    // Search: first the whole history is fetched and decrypted (once), then each query.
    c.find(Locator::Css("button[aria-label='Search in chat']")).await.unwrap().click().await.unwrap();
    let first = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1]; const t0 = performance.now();
         const i = document.getElementById('chat-search'); i.value = 'needle'; i.dispatchEvent(new Event('input'));
         (function poll() { const m = document.querySelector('.msg mark'); const c = document.querySelector('.searchbar .count');
           m && m.textContent === 'needle' && c && c.textContent.includes('1 of 1') ? requestAnimationFrame(() => done(performance.now() - t0)) : setTimeout(poll, 5); })();",
    )
    .await;
    println!(
        "BENCH first search: fetch + decrypt the remaining history, match, show the newest hit: {first:.0} ms"
    );
    let again = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1]; const t0 = performance.now();
         const i = document.getElementById('chat-search'); i.value = 'message 77'; i.dispatchEvent(new Event('input'));
         (function poll() { const c = document.querySelector('.searchbar .count'); const m = document.querySelector('.msg.current mark');
           if (c && /^1 of \\d+$/.test(c.textContent) && c.textContent !== '1 of 1' && m) { requestAnimationFrame(() => done(performance.now() - t0)); }
           else if (performance.now() - t0 > 20000) { done('timeout: count=' + (c && c.textContent) + ' msgs=' + document.querySelectorAll('.msg').length + ' current=' + document.querySelectorAll('.msg.current').length + ' marks=' + document.querySelectorAll('mark').length); }
           else setTimeout(poll, 1); })();",
    )
    .await;
    println!("BENCH search all {MESSAGES} decrypted messages (query to highlighted, counted result): {again:.0} ms");
    c.close().await.unwrap();
    let _ = driver.kill();
    let _ = driver.wait();
}
