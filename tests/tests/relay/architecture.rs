//! The architecture says what the threat model says: the relay cannot decrypt, because it
//! does not even link the crypto crate; and the client core is a core — no web framework, no
//! database — so both clients (and, later, anything else) can call it.

use std::process::Command;

/// The normal and build dependencies of `package`, one per line.
fn tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "-p", package, "-e", "normal,build", "--prefix", "none"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(tree.contains("sealroom-protocol"), "the tree was read: {tree}");
    tree
}

#[test]
fn the_relay_does_not_depend_on_the_crypto_crate() {
    let tree = tree("sealroom-server");
    assert!(!tree.contains("sealroom-crypto"), "sealroom-server must not depend on sealroom-crypto:\n{tree}");
    assert!(
        !tree.contains("x25519") && !tree.contains("chacha20poly1305"),
        "no message crypto in the relay:\n{tree}"
    );
}

#[test]
fn the_client_core_depends_on_neither_actix_nor_diesel() {
    let tree = tree("sealroom-session");
    assert!(tree.contains("sealroom-crypto"), "{tree}");
    for forbidden in ["actix", "diesel", "reqwest", "tokio-tungstenite", "leptos"] {
        assert!(!tree.contains(forbidden), "sealroom-session must not depend on {forbidden}:\n{tree}");
    }
}
