//! What the fuzz targets share: fixed keys (so that seeds sealed by `seeds` open in the
//! targets) and the checks every JSON decoder must pass.

use std::fmt::Debug;
use std::sync::OnceLock;

use sealroom_crypto::{BackupKey, FileKey, IdentitySecret, PairKey, PublicKey};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The sender of every seeded envelope.
pub fn alice() -> IdentitySecret {
    IdentitySecret::from_bytes([0x11; 32])
}

/// The recipient of every seeded envelope.
pub fn bob() -> IdentitySecret {
    IdentitySecret::from_bytes([0x22; 32])
}

/// Alice's and Bob's public keys and their pair key (computed once: X25519 would otherwise
/// dominate every run of the envelope target).
pub fn pair() -> &'static (PublicKey, PublicKey, PairKey) {
    static PAIR: OnceLock<(PublicKey, PublicKey, PairKey)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let (a, b) = (alice(), bob());
        let pair = a.pair_key(&b.public_key()).expect("fixed keys agree");
        (a.public_key(), b.public_key(), pair)
    })
}

/// The key of every seeded key backup.
pub fn backup_key() -> BackupKey {
    BackupKey::from_bytes([0x33; 32])
}

/// The owner of every seeded key backup.
pub const BACKUP_OWNER: &str = "alice";

/// The key of every seeded attachment.
pub fn file_key() -> FileKey {
    FileKey::from_bytes([0x44; 32])
}

/// A body the relay reads with serde: either it decodes, and then writing it out and reading
/// it back gives the same value, or the error classifies as a documented client error (4xx),
/// never a server error.
pub fn json_body<T>(bytes: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) => {
            let written = serde_json::to_vec(&value).expect("a decoded value serializes");
            let back: T = serde_json::from_slice(&written).expect("a value reads back what it wrote");
            assert_eq!(back, value, "round trip changed the value");
        }
        Err(e) => {
            let api = sealroom_protocol::classify_json_error(&e);
            let status = api.error.http_status();
            assert!((400..500).contains(&status), "bad input classified as {status}");
        }
    }
}

/// A request body as the relay reads it (only a JSON object: [`sealroom_protocol::JsonObject`]):
/// it decodes and round-trips, or the error is a documented 4xx code.
pub fn request<T>(bytes: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    use sealroom_protocol::JsonObject;
    match serde_json::from_slice::<JsonObject<T>>(bytes) {
        Ok(JsonObject(value)) => {
            let written = serde_json::to_vec(&value).expect("a decoded value serializes");
            let back: JsonObject<T> =
                serde_json::from_slice(&written).expect("a body reads back what it wrote");
            assert_eq!(back.0, value, "round trip changed the body");
            assert!(written.starts_with(b"{"), "a body is an object");
        }
        Err(e) => {
            let status = sealroom_protocol::classify_json_error(&e).error.http_status();
            assert!((400..500).contains(&status), "bad body classified as {status}");
        }
    }
}

/// A query string the relay reads (actix-web's `Query` is serde_urlencoded): no panic, and
/// what decodes round-trips.
pub fn query<T>(bytes: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(value) = serde_urlencoded::from_str::<T>(text) {
        let written = serde_urlencoded::to_string(&value).expect("a decoded query serializes");
        let back: T = serde_urlencoded::from_str(&written).expect("a query reads back what it wrote");
        assert_eq!(back, value, "round trip changed the query");
    }
}
