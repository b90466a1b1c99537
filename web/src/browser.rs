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

/// What a notification of a new message shows, as Signal offers it. Kept in this browser's
/// localStorage (a preference, not a secret); off until the user chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyLevel {
    /// No notifications.
    Off,
    /// "Message from alice".
    NameOnly,
    /// "Message from alice" and the first 120 characters.
    NameAndMessage,
}

impl NotifyLevel {
    const KEY: &'static str = "sealroom.notifications";

    /// The stored choice (off when none).
    pub fn load() -> Self {
        match local_storage().and_then(|s| s.get_item(Self::KEY).ok().flatten()).as_deref() {
            Some("name") => NotifyLevel::NameOnly,
            Some("message") => NotifyLevel::NameAndMessage,
            _ => NotifyLevel::Off,
        }
    }

    /// Stores the choice; choosing to be notified asks the browser's permission (only then).
    pub fn store(self) {
        if let Some(s) = local_storage() {
            let _ = s.set_item(Self::KEY, self.as_str());
        }
        if self != NotifyLevel::Off
            && web_sys::Notification::permission() == web_sys::NotificationPermission::Default
        {
            let _ = web_sys::Notification::request_permission();
        }
    }

    /// The stored form, also the `<select>` value.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyLevel::Off => "off",
            NotifyLevel::NameOnly => "name",
            NotifyLevel::NameAndMessage => "message",
        }
    }

    /// From the `<select>` value.
    pub fn parse(v: &str) -> Self {
        match v {
            "name" => NotifyLevel::NameOnly,
            "message" => NotifyLevel::NameAndMessage,
            _ => NotifyLevel::Off,
        }
    }
}

/// Shows a notification of a message from `peer`, as much as the user chose to show.
pub(crate) fn notify(peer: &str, text: &str) {
    let level = NotifyLevel::load();
    if level == NotifyLevel::Off
        || web_sys::Notification::permission() != web_sys::NotificationPermission::Granted
    {
        return;
    }
    let opts = web_sys::NotificationOptions::new();
    if level == NotifyLevel::NameAndMessage {
        let body: String = text.chars().take(120).collect();
        opts.set_body(&body);
    }
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

/// The newest key-backup generation this browser has opened or written for `username`. Not
/// a secret; kept so that an older backup served later is refused (a rollback), even after
/// signing out ("shared computer" included: it says nothing but a counter).
pub(crate) fn seen_generation(username: &str) -> Option<u64> {
    let key = format!("sealroom.backup-generation.{username}");
    local_storage()?.get_item(&key).ok().flatten()?.parse().ok()
}

/// Remembers `generation` for `username` if it is newer than what is remembered.
pub(crate) fn saw_generation(username: &str, generation: u64) {
    if seen_generation(username).is_some_and(|seen| seen >= generation) {
        return;
    }
    if let Some(s) = local_storage() {
        let _ = s.set_item(&format!("sealroom.backup-generation.{username}"), &generation.to_string());
    }
}

pub(crate) fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// Moves the focus among the elements matching `selector` inside the element `container_css`
/// is the closest ancestor of the focused one: `delta` 1 for the next (ArrowDown), -1 for the
/// previous, wrapping. With nothing focused inside, the first one gets it.
pub(crate) fn move_focus(container_css: &str, selector: &str, delta: i32) {
    use wasm_bindgen::JsCast;
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    let Some(container) = doc.query_selector(container_css).ok().flatten() else { return };
    let Ok(list) = container.query_selector_all(selector) else { return };
    let items: Vec<web_sys::HtmlElement> =
        (0..list.length()).filter_map(|i| list.item(i)?.dyn_into::<web_sys::HtmlElement>().ok()).collect();
    if items.is_empty() {
        return;
    }
    let active = doc.active_element();
    let at = items.iter().position(|e| active.as_ref().is_some_and(|a| a.is_same_node(Some(e))));
    let next = match at {
        Some(i) => (i as i32 + delta).rem_euclid(items.len() as i32) as usize,
        None => 0,
    };
    let _ = items[next].focus();
}

/// Whether the focused element is inside one matching `css`.
pub(crate) fn focus_within(css: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
        .and_then(|e| e.closest(css).ok().flatten())
        .is_some()
}

/// This tab's own storage (kept across reloads, gone when the tab closes): the open chat,
/// drafts and scroll positions, so a reload puts the user back where they were.
pub(crate) mod tab {
    fn storage() -> Option<web_sys::Storage> {
        web_sys::window().and_then(|w| w.session_storage().ok().flatten())
    }

    const PREFIX: &str = "sealroom.tab.";

    /// The value stored under `key`.
    pub(crate) fn get(key: &str) -> Option<String> {
        storage()?.get_item(&format!("{PREFIX}{key}")).ok().flatten()
    }

    /// Stores `value` under `key`, or removes it when `None` or empty.
    pub(crate) fn set(key: &str, value: Option<&str>) {
        let Some(s) = storage() else { return };
        let key = format!("{PREFIX}{key}");
        match value {
            Some(v) if !v.is_empty() => {
                let _ = s.set_item(&key, v);
            }
            _ => {
                let _ = s.remove_item(&key);
            }
        }
    }

    /// Forgets everything this tab kept (sign-out).
    pub(crate) fn clear() {
        let Some(s) = storage() else { return };
        let keys: Vec<String> = (0..s.length().unwrap_or(0))
            .filter_map(|i| s.key(i).ok().flatten())
            .filter(|k| k.starts_with(PREFIX))
            .collect();
        for k in keys {
            let _ = s.remove_item(&k);
        }
    }
}
