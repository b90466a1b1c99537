//! Browser helpers the state needs: the clock, timers, page visibility and notifications.

use std::cell::RefCell;

use leptos::prelude::set_timeout;

/// Unix ms now.
pub fn now() -> f64 {
    js_sys::Date::now()
}

pub(crate) async fn sleep(ms: u64) {
    let (tx, rx) = futures_channel();
    set_timeout(tx, std::time::Duration::from_millis(ms));
    rx.await;
}

/// A one-shot callback → future bridge without extra crates.
pub(crate) fn futures_channel() -> (impl FnOnce(), impl std::future::Future<Output = ()>) {
    let promise_resolve: std::rc::Rc<RefCell<Option<js_sys::Function>>> = Default::default();
    let slot = promise_resolve.clone();
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        *slot.borrow_mut() = Some(resolve);
    });
    let fire = move || {
        if let Some(f) = promise_resolve.borrow_mut().take() {
            let _ = f.call0(&wasm_bindgen::JsValue::NULL);
        }
    };
    (fire, async move {
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    })
}

pub(crate) fn is_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible)
}

pub(crate) fn ask_notification_permission() {
    if web_sys::Notification::permission() == web_sys::NotificationPermission::Default {
        let _ = web_sys::Notification::request_permission();
    }
}

pub(crate) fn notify(peer: &str, text: &str) {
    if web_sys::Notification::permission() != web_sys::NotificationPermission::Granted {
        return;
    }
    let opts = web_sys::NotificationOptions::new();
    let body: String = text.chars().take(120).collect();
    opts.set_body(&body);
    opts.set_tag(peer);
    let _ = web_sys::Notification::new_with_options(&format!("Message from {peer}"), &opts);
}

const RETURNING: &str = "sealroom.returning";

/// Whether someone has signed in on this browser before (a first visit opens on "Create
/// account"). Not a secret: only that the page was used.
pub(crate) fn returning() -> bool {
    local_storage().and_then(|s| s.get_item(RETURNING).ok().flatten()).is_some()
}

/// Notes that someone signed in here.
pub(crate) fn mark_returning() {
    if let Some(s) = local_storage() {
        let _ = s.set_item(RETURNING, "1");
    }
}

pub(crate) fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}
