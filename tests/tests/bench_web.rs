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
    let v = match c.execute_async(script, vec![]).await {
        Ok(v) => v,
        Err(e) => {
            let shown = c
                .execute(
                    "return [...document.querySelectorAll('.msg, .notice, [role=alert]')].map(m => \
                     m.className + ': ' + m.innerText.replace(/\\s+/g, ' ')).slice(-12) \
                     .concat((window.__warns || []).map(w => 'warning: ' + w)).join('\\n');",
                    vec![],
                )
                .await
                .unwrap_or_default();
            panic!("the timed script failed ({e}); the page shows:\n{}", shown.as_str().unwrap_or_default());
        }
    };
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

    let profile = tempfile::tempdir().unwrap();
    let (c, mut driver) = chromium(profile.path()).await;

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

/// Chromium through chromedriver on a free port, with a fresh profile; the driver is killed
/// when the returned child is.
async fn chromium(profile: &Path) -> (fantoccini::Client, std::process::Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver =
        std::process::Command::new("/usr/bin/chromedriver").arg(format!("--port={port}")).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-background-networking", "--window-size=1200,800",
            format!("--user-data-dir={}", profile.display())]}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    (c, driver)
}

/// Issue 14's benchmark: MLS in the browser. Alice's CLI device has 20 two-person groups holding
/// `SEALROOM_BENCH_ARCHIVED` (default 10,000) archived messages, and a 100-member group. A new
/// browser signs in (its device is new: it joins every group by itself and reads the history
/// from the archive), opens the 100-member group, sends in it, and adds a member at 100.
#[tokio::test]
#[ignore = "benchmark: cargo xtask bench-web"]
async fn mls_groups_in_a_new_browser() {
    let archived: usize =
        std::env::var("SEALROOM_BENCH_ARCHIVED").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
    assert!(dist.join("index.html").exists(), "build web/dist first (cargo xtask bench-web does)");
    // 101 accounts from one address in a minute: over the default registration limit.
    let server = TestServer::start_with(&["--web-dir", dist.to_str().unwrap(), "--auth-rate-per-ip", "1000"]);
    let mut alice = server.register("alice").await;
    alice.mls_start().await.unwrap();
    let started = Instant::now();
    let mut users = Vec::new();
    for i in 0..100 {
        let name = format!("member{i:03}");
        let mut s = server.register(&name).await;
        s.mls_start().await.unwrap();
        users.push(name);
    }
    println!("BENCH seeding: 100 users with MLS devices: {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let per = archived / 20;
    for (g, peer) in users.iter().take(20).enumerate() {
        let group = alice.create_group(&[peer.as_str()]).await.unwrap();
        alice.rename_group(group, &format!("pair {g:02}")).await.unwrap();
        for i in 0..per {
            let text = format!("pair {g:02} message {i}: some ordinary words here");
            alice.send_group(group, &Payload::Text(text)).await.unwrap();
        }
    }
    alice.sync_groups().await.unwrap();
    println!(
        "BENCH seeding: {} archived messages in 20 groups (CLI device, one append at a time): {:.1} s",
        per * 20,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let names: Vec<&str> = users.iter().take(99).map(String::as_str).collect();
    let big = alice.create_group(&names).await.unwrap();
    alice.rename_group(big, "Everyone").await.unwrap();
    alice.send_group(big, &Payload::Text("welcome, all 100 of us".into())).await.unwrap();
    alice.sync_groups().await.unwrap();
    println!(
        "BENCH seeding: a 100-member group (one commit adding 99): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let profile = tempfile::tempdir().unwrap();
    let (c, mut driver) = chromium(profile.path()).await;
    c.goto(&server.url).await.unwrap();
    c.wait().at_most(Duration::from_secs(60)).for_element(Locator::Id("tab-signin")).await.unwrap();
    c.find(Locator::Id("tab-signin")).await.unwrap().click().await.unwrap();
    // What the page warns about (a failed read of the groups) is shown if a step fails.
    c.execute(
        "window.__warns = []; const w = console.warn.bind(console); \
         console.warn = (...a) => { window.__warns.push(a.map(String).join(' ')); w(...a); }; return 1;",
        vec![],
    )
    .await
    .unwrap();
    c.find(Locator::Id("username")).await.unwrap().send_keys("alice").await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys("password-of-alice").await.unwrap();
    let signin = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1]; const t0 = performance.now();
         document.querySelector('form.card').requestSubmit();
         (function poll() { const t = [...document.querySelectorAll('.conv .title')].map(e => e.textContent);
           const p = [...document.querySelectorAll('.conv .preview')].filter(e => e.textContent.includes('message')).length;
           t.length === 21 && t.includes('Everyone') && t.includes('pair 00') && p === 20
             ? requestAnimationFrame(() => done(performance.now() - t0)) : setTimeout(poll, 5); })();",
    )
    .await;
    println!(
        "BENCH sign-in on a new browser to a usable list (21 groups named, 20 previews from {} archived messages): {signin:.0} ms",
        per * 20
    );

    let open = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1]; const t0 = performance.now();
         [...document.querySelectorAll('.conv')].find(e => e.querySelector('.title').textContent === 'Everyone').querySelector('.row').click();
         (function poll() { const h = document.querySelector('.chat-head'); const m = [...document.querySelectorAll('.msg .text')].map(e => e.textContent);
           h && h.textContent.includes('100 members') && m.includes('welcome, all 100 of us')
             ? requestAnimationFrame(() => done(performance.now() - t0)) : setTimeout(poll, 2); })();",
    )
    .await;
    println!("BENCH open the 100-member group (state with 100 members' receipts, history): {open:.0} ms");

    let send = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1];
         const t = document.getElementById('message'); t.value = 'hello, hundred'; t.dispatchEvent(new Event('input'));
         const t0 = performance.now();
         document.querySelector('form.composer').requestSubmit();
         (function poll() { const m = [...document.querySelectorAll('.msg.mine')].find(e => e.textContent.includes('hello, hundred'));
           m && m.querySelector('.state.stored') ? requestAnimationFrame(() => done(performance.now() - t0)) : setTimeout(poll, 2); })();",
    )
    .await;
    println!("BENCH send in the 100-member group (Enter to stored by the relay): {send:.0} ms");

    c.find(Locator::Css("button[aria-label='Members']")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Id("add-members")).await.unwrap();
    let add = time_in_page(
        &c,
        "const done = arguments[arguments.length - 1];
         const i = document.getElementById('add-members'); i.value = 'member099'; i.dispatchEvent(new Event('input'));
         const t0 = performance.now();
         i.form.requestSubmit();
         (function poll() { const h = document.querySelector('.chat-head');
           const line = [...document.querySelectorAll('.msg.system .text')].some(e => e.textContent.includes('added member099'));
           h && h.textContent.includes('101 members') && line ? requestAnimationFrame(() => done(performance.now() - t0)) : setTimeout(poll, 2); })();",
    )
    .await;
    println!("BENCH add a member at 100 members (commit, Welcome, the name again; to the timeline line): {add:.0} ms");
    c.close().await.unwrap();
    let _ = driver.kill();
    let _ = driver.wait();
}
