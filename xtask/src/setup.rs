//! Installs the toolchain the project needs, skipping whatever is already there.
//!
//! Versions are the tested recipe for these machines: wasm-bindgen-cli must equal the
//! `wasm-bindgen` in Cargo.lock; Chromium, chromedriver, PostgreSQL and NATS come from Debian's
//! packages.

use std::path::PathBuf;
use std::process::Command;

use crate::{cmd, root, step, Result};

/// Everything the tests need.
pub fn ensure_all() -> Result {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    ensure_chromium()?;
    ensure_services()?;
    ensure_web_tools()?;
    ensure_axe()?;
    Ok(())
}

/// axe-core, the accessibility checker the browser tests run in every screen.
const AXE_NPM: &str = "4.14.1";

/// axe-core from npm into .tools (the browser tests read `.tools/node_modules/axe-core/axe.min.js`).
pub fn ensure_axe() -> Result {
    let package = root().join(".tools/node_modules/axe-core/package.json");
    let have = std::fs::read_to_string(&package).unwrap_or_default();
    if have.contains(&format!("\"version\": \"{AXE_NPM}\"")) {
        return Ok(());
    }
    step(&format!("installing axe-core {AXE_NPM} into .tools from npm (accessibility checks)"));
    npm_install(&format!("axe-core@{AXE_NPM}"))
}

/// `npm install` of one package into `.tools` (Debian's npm first, on a machine without it).
fn npm_install(package: &str) -> Result {
    if output("npm", &["--version"]).is_none() {
        step("installing npm from Debian's packages");
        apt_install(&["npm"])?;
    }
    let prefix = root().join(".tools");
    cmd(
        "npm",
        &["install", "--prefix", &prefix.to_string_lossy(), "--no-audit", "--no-fund", "--silent", package],
    )
}

/// trunk's version: 0.22 needs a newer rustc than these machines have.
const TRUNK_VERSION: &str = "0.21.14";
/// wasm-opt from npm's binaryen 132 (Debian's binaryen 108 breaks the module in the browser).
const BINARYEN_NPM: &str = "132.0.0";

fn tools_bin() -> PathBuf {
    root().join(".tools").join("node_modules").join(".bin")
}

/// trunk and wasm-opt, for building the web client.
pub fn ensure_web_tools() -> Result {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    let trunk = cargo_bin("trunk");
    let have = output(&trunk.to_string_lossy(), &["--version"]).unwrap_or_default();
    if have.trim() != format!("trunk {TRUNK_VERSION}") {
        step(&format!("installing trunk {TRUNK_VERSION} (7-13 minutes on 2 cores, once)"));
        cmd("cargo", &["install", "trunk", "--version", TRUNK_VERSION, "--locked"])?;
    }
    let wasm_opt = tools_bin().join("wasm-opt");
    let have = output(&wasm_opt.to_string_lossy(), &["--version"]).unwrap_or_default();
    if !have.contains("version 132") {
        step(&format!("installing wasm-opt (binaryen {BINARYEN_NPM}) into .tools from npm"));
        npm_install(&format!("binaryen@{BINARYEN_NPM}"))?;
    }
    Ok(())
}

/// Builds web/ into web/dist with trunk (release: optimized and wasm-opt'ed).
pub fn build_web(release: bool) -> Result {
    ensure_web_tools()?;
    step(&format!("building the web client with trunk ({})", if release { "release" } else { "debug" }));
    let path = format!(
        "{}:{}:{}",
        tools_bin().display(),
        cargo_bin("").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut args = vec!["build"];
    if release {
        args.push("--release");
    }
    let status = Command::new(cargo_bin("trunk"))
        .args(&args)
        .current_dir(root())
        .env("PATH", path)
        .env("TRUNK_SKIP_VERSION_CHECK", "true")
        .env("NO_COLOR", "true")
        .status()
        .map_err(|e| format!("could not start trunk: {e}"))?;
    status.success().then_some(()).ok_or_else(|| "trunk build failed".to_owned())?;
    if release {
        precompress(&root().join("web/dist"))?;
    }
    Ok(())
}

/// Writes `<file>.br` (brotli, quality 11) and `<file>.gz` (gzip, level 9) beside every text or
/// wasm asset of the built client; the relay serves them to browsers that accept them.
pub fn precompress(dist: &std::path::Path) -> Result {
    use std::io::Write;
    step("precompressing the web client (brotli and gzip)");
    let entries = std::fs::read_dir(dist).map_err(|e| format!("cannot read {}: {e}", dist.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if !["wasm", "js", "css", "html", "svg", "json"].contains(&ext) {
            continue;
        }
        let raw = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut br = Vec::new();
        let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
        brotli::BrotliCompress(&mut raw.as_slice(), &mut br, &params)
            .map_err(|e| format!("brotli {}: {e}", path.display()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).map_err(|e| format!("gzip {}: {e}", path.display()))?;
        let gz = gz.finish().map_err(|e| format!("gzip {}: {e}", path.display()))?;
        for (suffix, bytes) in [("br", br), ("gz", gz)] {
            let out = std::path::PathBuf::from(format!("{}.{suffix}", path.display()));
            std::fs::write(&out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        }
        let size =
            |suffix: &str| std::fs::metadata(format!("{}.{suffix}", path.display())).map_or(0, |m| m.len());
        println!(
            "    {}: {} KiB, {} KiB gzip, {} KiB brotli",
            path.file_name().unwrap_or_default().to_string_lossy(),
            raw.len() / 1024,
            size("gz") / 1024,
            size("br") / 1024
        );
    }
    Ok(())
}

pub(crate) fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join(name)
}

pub fn ensure_wasm_target() -> Result {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        return Ok(());
    }
    step("installing the wasm32-unknown-unknown target");
    cmd("rustup", &["target", "add", "wasm32-unknown-unknown"])
}

/// The wasm-bindgen version pinned in Cargo.lock.
fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

pub fn ensure_wasm_bindgen() -> Result {
    let version = locked_wasm_bindgen()?;
    let bin = cargo_bin("wasm-bindgen");
    let have = output(&bin.to_string_lossy(), &["--version"]).unwrap_or_default();
    if have.trim() == format!("wasm-bindgen {version}") && cargo_bin("wasm-bindgen-test-runner").exists() {
        return Ok(());
    }
    step(&format!("installing wasm-bindgen-cli {version} (about 2 minutes)"));
    if cmd("cargo", &["install", "wasm-bindgen-cli", "--version", &version, "--locked"]).is_ok() {
        return Ok(());
    }
    // wasm-bindgen-cli 0.2.130's own lock file pins webpki-roots 1.0.11, which the registry
    // here does not serve. Unpack the downloaded .crate, re-lock that one crate, install.
    step("retrying wasm-bindgen-cli with webpki-roots re-locked to a served version");
    let cache = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| cargo_bin("").parent().map(PathBuf::from).unwrap_or_default())
        .join("registry")
        .join("cache");
    let file = format!("wasm-bindgen-cli-{version}.crate");
    let krate = std::fs::read_dir(&cache)
        .map_err(|e| format!("{}: {e}", cache.display()))?
        .filter_map(|d| d.ok())
        .map(|d| d.path().join(&file))
        .find(|p| p.exists())
        .ok_or_else(|| format!("{file} was not downloaded"))?;
    let tmp = std::env::temp_dir().join(format!("sealroom-wbg-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let unpack = |args: &[&str], dir: &PathBuf| -> Result {
        let status =
            Command::new(args[0]).args(&args[1..]).current_dir(dir).status().map_err(|e| e.to_string())?;
        status.success().then_some(()).ok_or_else(|| format!("`{}` failed", args.join(" ")))
    };
    unpack(&["tar", "xzf", &krate.to_string_lossy()], &tmp)?;
    let src = tmp.join(format!("wasm-bindgen-cli-{version}"));
    unpack(&["cargo", "update", "-p", "webpki-roots", "--precise", "1.0.10"], &src)?;
    unpack(&["cargo", "install", "--path", ".", "--locked"], &src)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

pub fn ensure_chromium() -> Result {
    let have = |p: &str| std::path::Path::new(p).exists();
    if have("/usr/bin/chromium") && have("/usr/bin/chromedriver") && have("/usr/bin/openssl") {
        return Ok(());
    }
    // openssl makes the throwaway certificate of the TLS test.
    step("installing chromium, chromium-driver and openssl from Debian's packages");
    apt_install(&["chromium", "chromium-driver", "openssl"])
}

/// PostgreSQL (its server programs, `psql` and libpq, which the relay links) and NATS, for
/// the scale-out tests. The tests start their own throwaway cluster and NATS servers on free
/// ports (crates/testkit); a service the package starts on the machine is never used.
pub fn ensure_services() -> Result {
    let have = |p: &str| std::path::Path::new(p).exists();
    let postgres = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|v| v.path().join("bin/initdb").exists());
    let libpq = have("/usr/include/postgresql/libpq-fe.h");
    if postgres && libpq && (have("/usr/sbin/nats-server") || have("/usr/bin/nats-server")) {
        return Ok(());
    }
    step("installing postgresql, libpq-dev and nats-server from Debian's packages");
    apt_install(&["postgresql", "libpq-dev", "nats-server"])
}

/// Installs Debian packages (through sudo when not root).
fn apt_install(packages: &[&str]) -> Result {
    let sudo: &[&str] =
        if output("id", &["-u"]).map(|s| s.trim() == "0").unwrap_or(false) { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| -> Result {
        let mut full: Vec<&str> = sudo.to_vec();
        full.push("apt-get");
        full.extend_from_slice(args);
        let status = Command::new(full[0])
            .args(&full[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("apt-get: {e}"))?;
        status.success().then_some(()).ok_or_else(|| format!("apt-get {} failed", args.join(" ")))
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    apt(&install)
}

/// A project-local Python venv with the independent crypto implementations that
/// `docs/verify_vectors.py` checks the vectors with, and schemathesis for the relay's API
/// fuzzing test. Returns the venv's python.
pub fn ensure_python_venv() -> Result<String> {
    let venv = root().join(".tools").join("pyvenv");
    let python = venv.join("bin").join("python");
    let python_s = python.to_string_lossy().into_owned();
    let ready = output(&python_s, &["-c", "import argon2, nacl, cryptography, schemathesis"]).is_some();
    if ready {
        return Ok(python_s);
    }
    step("creating .tools/pyvenv with argon2-cffi, pynacl, cryptography, schemathesis (from PyPI)");
    cmd("python3", &["-m", "venv", &venv.to_string_lossy()])?;
    cmd(
        &python_s,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "argon2-cffi",
            "pynacl",
            "cryptography",
            // The property-based API fuzzer the relay tests run against /api/openapi.json.
            "schemathesis==4.32.5",
        ],
    )?;
    Ok(python_s)
}
