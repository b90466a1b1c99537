//! Delivering the web client: content-hashed assets cached for a year and immutable,
//! `index.html` and the loader revalidated, precompressed files served as they are to
//! browsers that accept them, `HEAD` answered like `GET` without a body.

use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, VARY};
use reqwest::{Client, Method, StatusCode};
use sealroom_tests::TestServer;

const WASM: &str = "sealroom-web-0123456789abcdef_bg.wasm";

async fn fetch(method: Method, url: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = Client::new().request(method, url);
    if let Some(a) = accept {
        req = req.header(ACCEPT_ENCODING, a);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn hashed_assets_are_immutable_precompressed_and_head_works() {
    let dist = tempfile::tempdir().unwrap();
    let d = dist.path();
    std::fs::write(
        d.join("index.html"),
        "<!doctype html><html><body><script type=\"module\">boot()</script></body></html>",
    )
    .unwrap();
    std::fs::write(d.join(WASM), b"raw wasm bytes").unwrap();
    std::fs::write(d.join(format!("{WASM}.br")), b"brotli bytes").unwrap();
    std::fs::write(d.join(format!("{WASM}.gz")), b"gzip bytes!").unwrap();
    std::fs::write(d.join("style.css"), b"body{}").unwrap();
    let server = TestServer::start_with(&["--web-dir", d.to_str().unwrap()]);
    let url = |p: &str| format!("{}{p}", server.url);

    // The page and the loader: revalidated on every load, not stored away.
    for path in ["/", "/index.html", "/sealroom-boot.js", "/some/client/route"] {
        let r = fetch(Method::GET, &url(path), None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, CACHE_CONTROL), "no-cache", "{path}");
    }
    let head = fetch(Method::HEAD, &url("/"), None).await;
    assert_eq!(head.status(), StatusCode::OK, "HEAD / works");
    assert!(header(&head, CONTENT_TYPE).starts_with("text/html"));
    assert!(head.bytes().await.unwrap().is_empty());

    // The hashed wasm: a year, immutable; the encoding the browser prefers, as stored.
    for (accept, body, encoding) in [
        (Some("gzip, deflate, br, zstd"), &b"brotli bytes"[..], "br"),
        (Some("gzip"), &b"gzip bytes!"[..], "gzip"),
        (Some("br;q=1.0, gzip;q=0.8"), &b"brotli bytes"[..], "br"),
        (None, &b"raw wasm bytes"[..], ""),
        (Some("identity"), &b"raw wasm bytes"[..], ""),
    ] {
        let r = fetch(Method::GET, &url(&format!("/{WASM}")), accept).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, CACHE_CONTROL), "public, max-age=31536000, immutable");
        assert_eq!(header(&r, CONTENT_TYPE), "application/wasm");
        assert_eq!(header(&r, CONTENT_ENCODING), encoding, "{accept:?}");
        assert!(header(&r, VARY).contains("Accept-Encoding"));
        assert_eq!(&r.bytes().await.unwrap()[..], body, "{accept:?}");
    }
    let head = fetch(Method::HEAD, &url(&format!("/{WASM}")), Some("br")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, CONTENT_LENGTH), "12", "the length of what GET would send");
    assert!(head.bytes().await.unwrap().is_empty());

    // A file without a content hash can change: revalidated. Dot files and escapes are not
    // files of the client.
    let css = fetch(Method::GET, &url("/style.css"), None).await;
    assert_eq!(header(&css, CACHE_CONTROL), "no-cache");
    for path in ["/.hidden", "/%2e%2e/secret", "/sealroom-web-0123456789abcdef_bg.wasm.br/.."] {
        let r = fetch(Method::GET, &url(path), None).await;
        assert!(header(&r, CONTENT_TYPE).starts_with("text/html"), "{path} falls back to the page");
    }
}
