//! This browser in IndexedDB (database `sealroom`).
//!
//! "Remember this browser" (store `device`): the backup key, encrypted under a non-extractable
//! WebCrypto AES-GCM key. Script can use that key but never read its bytes, so a copy of the
//! IndexedDB files alone does not reveal the backup key, and nothing secret is ever in
//! localStorage. Together with the HttpOnly session cookie it reopens the app without the
//! password until the session expires; signing out deletes the record.
//!
//! This browser's MLS device (store `mls`, one record per user): the bytes the CLI keeps in
//! its `.mls` file ([`MlsDevice::stored`]), sealed under a key derived from the user's identity
//! signing seed, which only the key backup holds. Every save replaces the record whole, so a
//! secret OpenMLS deleted (a used message key, a past epoch) is gone from it.

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use sealroom_crypto::SigningSecret;
use sealroom_session::groups::{DeviceCell, GroupEvent};
use sealroom_session::mls::MlsDevice;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

const DB: &str = "sealroom";
const STORE: &str = "device";
const RECORD: &str = "keys";
const MLS_STORE: &str = "mls";

/// What a remembered browser keeps (after decryption).
#[derive(Debug)]
pub struct Remembered {
    /// Whose keys.
    pub username: String,
    /// The backup key (32 bytes); zeroized by the caller's `BackupKey`.
    pub backup_key: [u8; 32],
}

fn set(obj: &Object, key: &str, value: &JsValue) -> Result<(), JsValue> {
    Reflect::set(obj, &JsValue::from_str(key), value).map(|_| ())
}

fn get(obj: &JsValue, key: &str) -> Result<JsValue, JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
}

/// Awaits an IDBRequest.
async fn done(req: &web_sys::IdbRequest) -> Result<JsValue, JsValue> {
    let req2 = req.clone();
    let promise = Promise::new(&mut |resolve, reject| {
        let ok_req = req2.clone();
        let ok = Closure::once_into_js(move || {
            let _ = resolve.call1(&JsValue::NULL, &ok_req.result().unwrap_or(JsValue::UNDEFINED));
        });
        let err = Closure::once_into_js(move || {
            let _ = reject.call1(&JsValue::NULL, &JsValue::from_str("IndexedDB request failed"));
        });
        req2.set_onsuccess(Some(ok.unchecked_ref()));
        req2.set_onerror(Some(err.unchecked_ref()));
    });
    JsFuture::from(promise).await
}

async fn open() -> Result<web_sys::IdbDatabase, JsValue> {
    let factory = web_sys::window().ok_or("no window")?.indexed_db()?.ok_or("no IndexedDB")?;
    // Version 2 added the `mls` store; a store that exists already is left as it is.
    let req = factory.open_with_u32(DB, 2)?;
    let upgrade = Closure::once_into_js(move |ev: web_sys::Event| {
        let db = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::IdbOpenDbRequest>().ok())
            .and_then(|r| r.result().ok())
            .and_then(|r| r.dyn_into::<web_sys::IdbDatabase>().ok());
        if let Some(db) = db {
            for name in [STORE, MLS_STORE] {
                if !db.object_store_names().contains(name) {
                    let _ = db.create_object_store(name);
                }
            }
        }
    });
    req.set_onupgradeneeded(Some(upgrade.unchecked_ref()));
    done(&req).await?.dyn_into::<web_sys::IdbDatabase>()
}

async fn store(mode: web_sys::IdbTransactionMode) -> Result<web_sys::IdbObjectStore, JsValue> {
    open().await?.transaction_with_str_and_mode(STORE, mode)?.object_store(STORE)
}

fn subtle() -> Result<web_sys::SubtleCrypto, JsValue> {
    Ok(web_sys::window().ok_or("no window")?.crypto()?.subtle())
}

fn aes_gcm(iv: Option<&[u8]>) -> Result<Object, JsValue> {
    let alg = Object::new();
    set(&alg, "name", &JsValue::from_str("AES-GCM"))?;
    if let Some(iv) = iv {
        set(&alg, "iv", &Uint8Array::from(iv))?;
    } else {
        set(&alg, "length", &JsValue::from_f64(256.0))?;
    }
    Ok(alg)
}

/// Saves the backup key for `username`, and asks the browser to keep this storage.
pub async fn remember(username: &str, backup_key: &[u8; 32]) -> Result<(), JsValue> {
    if let Some(storage) = web_sys::window().map(|w| w.navigator().storage()) {
        if let Ok(p) = storage.persist() {
            let _ = JsFuture::from(p).await;
        }
    }
    let usages = Array::of2(&JsValue::from_str("encrypt"), &JsValue::from_str("decrypt"));
    let key = JsFuture::from(subtle()?.generate_key_with_object(&aes_gcm(None)?, false, &usages)?).await?;
    let key: web_sys::CryptoKey = key.dyn_into()?;
    let mut iv = [0u8; 12];
    getrandom::getrandom(&mut iv).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let mut plain = backup_key.to_vec();
    let ct =
        JsFuture::from(subtle()?.encrypt_with_object_and_u8_array(&aes_gcm(Some(&iv))?, &key, &plain)?)
            .await?;
    plain.iter_mut().for_each(|b| *b = 0);
    let record = Object::new();
    set(&record, "username", &JsValue::from_str(username))?;
    set(&record, "key", &key)?;
    set(&record, "iv", &Uint8Array::from(&iv[..]))?;
    set(&record, "ct", &ct)?;
    let store = store(web_sys::IdbTransactionMode::Readwrite).await?;
    done(&store.put_with_key(&record, &JsValue::from_str(RECORD))?).await?;
    Ok(())
}

/// The remembered keys, if this browser has them.
pub async fn recall() -> Option<Remembered> {
    let store = store(web_sys::IdbTransactionMode::Readonly).await.ok()?;
    let record = done(&store.get(&JsValue::from_str(RECORD)).ok()?).await.ok()?;
    if record.is_undefined() || record.is_null() {
        return None;
    }
    let username = get(&record, "username").ok()?.as_string()?;
    let key: web_sys::CryptoKey = get(&record, "key").ok()?.dyn_into().ok()?;
    let iv = Uint8Array::new(&get(&record, "iv").ok()?).to_vec();
    let ct: js_sys::ArrayBuffer = get(&record, "ct").ok()?.dyn_into().ok()?;
    let alg = aes_gcm(Some(&iv)).ok()?;
    let plain = JsFuture::from(subtle().ok()?.decrypt_with_object_and_buffer_source(&alg, &key, &ct).ok()?)
        .await
        .ok()?;
    let bytes = Uint8Array::new(&plain).to_vec();
    let backup_key: [u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(Remembered { username, backup_key })
}

/// Forgets this browser's keys.
pub async fn forget() {
    if let Ok(store) = store(web_sys::IdbTransactionMode::Readwrite).await {
        if let Ok(req) = store.delete(&JsValue::from_str(RECORD)) {
            let _ = done(&req).await;
        }
    }
}

/// This browser's MLS device of one user, kept in IndexedDB (the `mls` store) and written whole
/// after every change. The group flows of the client core run on it
/// ([`sealroom_session::groups::DeviceCell`]).
pub struct BrowserDevice {
    device: std::cell::RefCell<MlsDevice>,
    stashed: std::cell::RefCell<Vec<GroupEvent>>,
    identity: SigningSecret,
    username: String,
    db: web_sys::IdbDatabase,
}

impl std::fmt::Debug for BrowserDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserDevice").field("username", &self.username).finish_non_exhaustive()
    }
}

fn js(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

impl BrowserDevice {
    /// `username`'s device in this browser: as stored, else a new one (stored at once).
    /// `identity` is the user's signing key (from the key backup); a stored state that does
    /// not open under it is an error, never replaced silently.
    pub async fn load(identity: &SigningSecret, username: &str, now_ms: u64) -> Result<Self, JsValue> {
        let db = open().await?;
        let stored = Self::stored(username).await?;
        let new = stored.is_none();
        let device = match stored {
            Some(bytes) => MlsDevice::from_stored(identity, username, &bytes)
                .map_err(|e| js(format!("this browser's device state does not open: {e}")))?,
            None => MlsDevice::new(identity, username, now_ms).map_err(js)?,
        };
        let this = BrowserDevice {
            device: std::cell::RefCell::new(device),
            stashed: std::cell::RefCell::default(),
            identity: identity.clone(),
            username: username.to_owned(),
            db,
        };
        if new {
            this.save().await.map_err(js)?;
        }
        Ok(this)
    }

    /// The record of `username`'s device as IndexedDB holds it (device id, then the sealed
    /// state), if there is one.
    pub async fn stored(username: &str) -> Result<Option<Vec<u8>>, JsValue> {
        let store = open().await?.transaction_with_str(MLS_STORE)?.object_store(MLS_STORE)?;
        let value = done(&store.get(&JsValue::from_str(username))?).await?;
        Ok(value.dyn_into::<Uint8Array>().ok().map(|a| a.to_vec()))
    }

    /// The id of `username`'s device in this browser, if it has one (any tab may ask: the id
    /// is stored unsealed before the state).
    pub async fn id_of(username: &str) -> Option<sealroom_protocol::DeviceId> {
        let bytes = Self::stored(username).await.ok()??;
        MlsDevice::stored_device_id(&bytes).map(sealroom_protocol::DeviceId)
    }

    /// Deletes `username`'s device from this browser.
    pub async fn forget(username: &str) -> Result<(), JsValue> {
        let store = open()
            .await?
            .transaction_with_str_and_mode(MLS_STORE, web_sys::IdbTransactionMode::Readwrite)?
            .object_store(MLS_STORE)?;
        done(&store.delete(&JsValue::from_str(username))?).await.map(|_| ())
    }
}

impl DeviceCell for BrowserDevice {
    fn with<R>(&self, f: impl FnOnce(&mut MlsDevice) -> R) -> R {
        f(&mut self.device.borrow_mut())
    }

    /// Seals the state, starts its write at once and returns when IndexedDB has it (writes
    /// made in order commit in order, so a save whose caller went away still lands).
    async fn save(&self) -> Result<(), sealroom_session::Error> {
        let failed = |e: JsValue| {
            sealroom_session::Error::DeviceStorage(format!(
                "could not save this browser's device state: {}",
                e.as_string().unwrap_or_else(|| "IndexedDB refused it".into())
            ))
        };
        let bytes = self.with(|d| d.stored(&self.identity))?;
        let store = self
            .db
            .transaction_with_str_and_mode(MLS_STORE, web_sys::IdbTransactionMode::Readwrite)
            .and_then(|t| t.object_store(MLS_STORE))
            .map_err(failed)?;
        let req = store
            .put_with_key(&Uint8Array::from(bytes.as_slice()), &JsValue::from_str(&self.username))
            .map_err(failed)?;
        done(&req).await.map(|_| ()).map_err(failed)
    }

    fn stash(&self, events: Vec<GroupEvent>) {
        self.stashed.borrow_mut().extend(events);
    }

    fn take_stashed(&self) -> Vec<GroupEvent> {
        std::mem::take(&mut *self.stashed.borrow_mut())
    }
}
