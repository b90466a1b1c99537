//! Serving the built web client under the strict CSP.
//!
//! trunk writes its wasm loader as an inline `<script type="module">`, which
//! `script-src 'self'` forbids (and its build-time "nonce" is no nonce at all). At startup the
//! relay moves inline scripts into a same-origin `/sealroom-boot.js` and serves the rewritten
//! `index.html`, so the CSP stays strict whatever built the bundle.
//!
//! Assets: a file whose name carries trunk's content hash never changes, so it is served with a
//! year of `immutable` caching; `index.html` and the loader are revalidated every time
//! (`no-cache`). When the build left `<file>.br` or `<file>.gz` beside an asset (`cargo xtask`
//! precompresses release builds), a browser that accepts it gets that, as it is. `HEAD` works
//! for all of them.

use std::path::{Path, PathBuf};

use actix_web::http::header::{ContentEncoding, HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, VARY};
use actix_web::{web, HttpRequest, HttpResponse};

/// Path the extracted loader is served at.
pub const BOOT_PATH: &str = "/sealroom-boot.js";

/// The web client, prepared for serving.
#[derive(Debug, Clone)]
pub struct WebApp {
    /// Directory of static files.
    pub dir: PathBuf,
    /// `index.html` with inline scripts moved out.
    pub index: String,
    /// The moved scripts, as one module.
    pub boot: String,
}

impl WebApp {
    /// Reads and rewrites `<dir>/index.html`.
    pub fn load(dir: &Path) -> Result<Self, crate::error::StartError> {
        let html = std::fs::read_to_string(dir.join("index.html"))
            .map_err(crate::error::StartError::io(format!("cannot read {}/index.html", dir.display())))?;
        let (index, boot) = externalize_scripts(&html);
        Ok(WebApp { dir: dir.to_path_buf(), index, boot })
    }
}

/// Moves every inline `<script>` (one without `src`) into one module, referenced by a single
/// `<script type="module" src="/sealroom-boot.js">` where the first one stood. Strips `nonce`
/// attributes, which a static file cannot use safely.
pub fn externalize_scripts(html: &str) -> (String, String) {
    let mut out = String::with_capacity(html.len());
    let mut boot = String::new();
    let mut rest = html;
    let mut placed = false;
    while let Some(start) = rest.find("<script") {
        let Some(tag_end) = rest[start..].find('>').map(|i| start + i + 1) else { break };
        let Some(close) = rest[tag_end..].find("</script>").map(|i| tag_end + i) else { break };
        let tag = &rest[start..tag_end];
        out.push_str(&rest[..start]);
        if tag.contains(" src=") {
            out.push_str(&rest[start..close + "</script>".len()]);
        } else {
            boot.push_str(rest[tag_end..close].trim());
            boot.push('\n');
            if !placed {
                out.push_str(&format!("<script type=\"module\" src=\"{BOOT_PATH}\"></script>"));
                placed = true;
            }
        }
        rest = &rest[close + "</script>".len()..];
    }
    out.push_str(rest);
    (strip_nonces(&out), boot)
}

fn strip_nonces(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(" nonce=\"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " nonce=\"".len()..];
        rest = after.find('"').map_or("", |j| &after[j + 1..]);
    }
    out.push_str(rest);
    out
}

/// Caching of what may change with a new build (revalidated on every load).
const REVALIDATE: &str = "no-cache";
/// Caching of a content-hashed file (its name changes when it does).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `GET /sealroom-boot.js`.
pub async fn boot(app: web::Data<WebApp>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, REVALIDATE))
        .body(app.boot.clone())
}

/// `index.html` for `/` and for any unknown path (client-side routes).
pub async fn index(app: web::Data<WebApp>, _req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, REVALIDATE))
        .body(app.index.clone())
}

/// Whether a file name carries trunk's content hash: `-`, then a 64-bit hash in lowercase hex
/// (12 to 16 digits: trunk does not pad it), then `.` or `_`, e.g.
/// `sealroom-web-b02585b1b86e880a_bg.wasm` or `sealroom-web-f92a1a6ed33ec96.js`.
pub fn is_content_hashed(name: &str) -> bool {
    name.match_indices('-').any(|(i, _)| {
        let after = &name.as_bytes()[i + 1..];
        let digits = after.iter().take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(*b)).count();
        (12..=16).contains(&digits) && matches!(after.get(digits), Some(b'.' | b'_'))
    })
}

/// A static file of the web client, precompressed when the browser accepts it; `index.html`
/// for anything that is not a file (client-side routes).
pub async fn asset(app: web::Data<WebApp>, req: HttpRequest) -> HttpResponse {
    let rel = req.match_info().query("file").to_owned();
    let safe = !rel.is_empty() && rel.split('/').all(|s| !s.is_empty() && !s.starts_with('.'));
    let path = app.dir.join(&rel);
    if !safe || !path.is_file() {
        return index(app, req).await;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let accepts = |coding: &str| {
        req.headers()
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|c| c.split(';').next().unwrap_or_default().trim() == coding))
    };
    let encoded = [("br", ContentEncoding::Brotli), ("gzip", ContentEncoding::Gzip)]
        .into_iter()
        .filter(|(coding, _)| accepts(coding))
        .map(|(coding, encoding)| {
            let suffix = if coding == "gzip" { "gz" } else { coding };
            (PathBuf::from(format!("{}.{suffix}", path.display())), encoding)
        })
        .find(|(p, _)| p.is_file());
    let (file, encoding) = match encoded {
        Some((p, e)) => (p, Some(e)),
        None => (path.clone(), None),
    };
    let Ok(named) = actix_files::NamedFile::open_async(&file).await else {
        return index(app, req).await;
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let mut named =
        named.set_content_type(actix_files::file_extension_to_mime(ext)).disable_content_disposition();
    if let Some(e) = encoding {
        named = named.set_content_encoding(e);
    }
    let mut resp = named.into_response(&req);
    let caching = if is_content_hashed(&name) { IMMUTABLE } else { REVALIDATE };
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(caching));
    resp.headers_mut().insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hashes_are_recognised_in_trunks_names_only() {
        assert!(is_content_hashed("sealroom-web-b02585b1b86e880a_bg.wasm"));
        assert!(is_content_hashed("sealroom-web-b02585b1b86e880a.js"));
        assert!(is_content_hashed("style-0123456789abcdef.css"));
        assert!(!is_content_hashed("style.css"));
        assert!(!is_content_hashed("index.html"));
        assert!(is_content_hashed("sealroom-web-f92a1a6ed33ec96.js"), "trunk does not pad the hash");
        assert!(!is_content_hashed("sealroom-web-b02585b1.js"), "too short for a 64-bit hash");
        assert!(!is_content_hashed("sealroom-web-b02585b1b86e880a0.js"), "too long");
        assert!(!is_content_hashed("notes-0123456789abcdefx.txt"), "not followed by . or _");
        assert!(!is_content_hashed("photo-0123456789ABCDEF.png"), "not trunk's lowercase hex");
    }

    #[test]
    fn inline_loader_moves_out_and_src_scripts_stay() {
        let html = "<html><head><script src=\"/a.js\"></script>\
            <script type=\"module\" nonce=\"abc\">import init from '/x.js';\nawait init();</script>\
            <link rel=\"modulepreload\" href=\"/x.js\" nonce=\"abc\"></head><body></body></html>";
        let (index, boot) = externalize_scripts(html);
        assert!(index.contains("<script src=\"/a.js\"></script>"));
        assert!(index.contains("<script type=\"module\" src=\"/sealroom-boot.js\"></script>"));
        assert!(!index.contains("import init"));
        assert!(!index.contains("nonce"));
        assert_eq!(boot, "import init from '/x.js';\nawait init();\n");
    }

    #[test]
    fn html_without_scripts_is_unchanged() {
        let (index, boot) = externalize_scripts("<p>hi</p>");
        assert_eq!((index.as_str(), boot.as_str()), ("<p>hi</p>", ""));
    }
}
