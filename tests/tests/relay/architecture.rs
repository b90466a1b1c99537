//! The architecture says what the threat model says: the relay cannot decrypt, because it
//! does not even link the crypto crate.

use std::process::Command;

#[test]
fn the_relay_does_not_depend_on_the_crypto_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "-p", "sealroom-server", "-e", "normal,build", "--prefix", "none"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("sealroom-protocol"), "the tree was read: {tree}");
    assert!(!tree.contains("sealroom-crypto"), "sealroom-server must not depend on sealroom-crypto:\n{tree}");
    assert!(
        !tree.contains("x25519") && !tree.contains("chacha20poly1305"),
        "no message crypto in the relay:\n{tree}"
    );
}
