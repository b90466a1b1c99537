//! Serving the built web client under the strict CSP.
//!
//! trunk writes its wasm loader as an inline `<script type="module">`, which
//! `script-src 'self'` forbids (and its build-time "nonce" is no nonce at all). At startup the
//! relay moves inline scripts into a same-origin `/sealroom-boot.js` and serves the rewritten
//! `index.html`, so the CSP stays strict whatever built the bundle.

use std::path::{Path, PathBuf};

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

/// `GET /sealroom-boot.js`.
pub async fn boot(app: web::Data<WebApp>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(app.boot.clone())
}

/// `index.html` for `/` and for any unknown path (client-side routes).
pub async fn index(app: web::Data<WebApp>, _req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(app.index.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

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
