//! The tabs of one browser profile: a Web Lock that one tab at a time holds, and a
//! BroadcastChannel the tabs talk over.
//!
//! One user's MLS device may be used by one tab at a time (two tabs encrypting from the same
//! state would use a message key twice and fork the group). The tab that holds the lock owns
//! the device; the browser gives the lock to the next tab waiting for it when the owner closes,
//! reloads or crashes, so the handover needs no timeout and cannot leave two owners.
//!
//! A BroadcastChannel rather than a SharedWorker: the owner is an ordinary tab, with its own
//! WebSocket and the app's code; a SharedWorker would need a second build of the client core
//! for the worker, and Chrome on Android has none.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks` (web-sys has it only behind `web_sys_unstable_apis`).
    type LockManager;
    #[wasm_bindgen(method)]
    fn request(this: &LockManager, name: &str, callback: &JsValue) -> Promise;
}

/// A held Web Lock; released when dropped (or when the tab goes away).
#[derive(Debug)]
pub struct Lock {
    release: Option<Function>,
}

impl Lock {
    /// Waits until this tab holds the lock `name` (at once when no other tab has it).
    pub async fn acquire(name: &str) -> Result<Lock, JsValue> {
        let navigator = web_sys::window().ok_or("no window")?.navigator();
        let locks = Reflect::get(&navigator, &JsValue::from_str("locks"))?;
        if locks.is_undefined() {
            return Err("this browser has no Web Locks".into());
        }
        let locks: LockManager = locks.unchecked_into();
        // The lock is held until `held` settles: its resolve function is the release.
        let mut release = None;
        let held = Promise::new(&mut |resolve, _| release = Some(resolve));
        let mut granted = None;
        let acquired = Promise::new(&mut |resolve, _| granted = Some(resolve));
        let granted = granted.ok_or("no promise")?;
        let callback = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
            let _ = granted.call0(&JsValue::NULL);
            held.into()
        });
        // The request's own promise settles when the lock is released; nothing waits for it.
        let _ = locks.request(name, &callback);
        JsFuture::from(acquired).await?;
        Ok(Lock { release })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::NULL);
        }
    }
}

/// A BroadcastChannel: what one tab posts, every other tab of this origin listening on the same
/// name receives (never the poster itself). Closed when dropped.
pub struct Channel {
    channel: web_sys::BroadcastChannel,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.channel.name()).finish_non_exhaustive()
    }
}

impl Channel {
    /// Listens on `name`; `on_message` gets each text posted by another tab.
    pub fn open(name: &str, on_message: impl Fn(String) + 'static) -> Result<Self, JsValue> {
        let channel = web_sys::BroadcastChannel::new(name)?;
        let on = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            if let Some(text) = ev.data().as_string() {
                on_message(text);
            }
        });
        channel.set_onmessage(Some(on.as_ref().unchecked_ref()));
        Ok(Channel { channel, _on_message: on })
    }

    /// Posts `text` to the other tabs.
    pub fn post(&self, text: &str) {
        let _ = self.channel.post_message(&JsValue::from_str(text));
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
