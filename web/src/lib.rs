//! Sealroom's web client: a Leptos CSR app. Keys are made and used here, in the browser;
//! the relay sees only public keys, sealed backups and envelopes.
#![deny(missing_docs)]

mod admin;
pub mod api;
mod auth;
mod browser;
mod chat;
pub mod device;
mod export;
pub mod files;
mod group;
mod icons;
mod sidebar;
pub mod state;
mod strength;
pub mod tabs;
pub mod text;

use leptos::prelude::*;

pub use state::App as AppState;

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    let app = state::App::new();
    app.provide();
    // Theme: follow the system unless the user chose; the choice is kept locally (not secret).
    let stored = web_sys::window()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item("theme").ok().flatten());
    app.ui.dark.set(stored.map(|t| t == "dark"));
    Effect::new(move |_| {
        let theme = match app.ui.dark.get() {
            Some(true) => "dark",
            Some(false) => "light",
            None => "system",
        };
        if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
            let _ = root.set_attribute("data-theme", theme);
        }
    });
    // This tab remembers the open chat across a reload (restored when signing in).
    Effect::new(move |_| {
        let active = app.rooms.active.get();
        if app.account.me.get_untracked().is_some() {
            browser::tab::set("active", active.map(|r| r.slug()).as_deref());
        }
    });
    // A notice goes away by itself after a while (or when replaced, or dismissed).
    Effect::new(move |_| {
        if let Some(shown) = app.ui.notice.get() {
            set_timeout(
                move || {
                    if app.ui.notice.try_get_untracked().flatten().as_deref() == Some(shown.as_str()) {
                        app.ui.notice.set(None);
                    }
                },
                std::time::Duration::from_secs(10),
            );
        }
    });
    // The tab's title carries the total of unread messages.
    Effect::new(move |_| {
        let n: u32 = app.rooms.convs.with(|cs| cs.iter().map(|c| c.unread).sum());
        if let Some(d) = web_sys::window().and_then(|w| w.document()) {
            d.set_title(&if n > 0 { format!("({n}) Sealroom") } else { "Sealroom".into() });
        }
    });
    let on_visible = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
        let visible = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
        if visible && app.account.me.get_untracked().is_some() {
            app.on_visible();
        }
    });
    if let Some(d) = web_sys::window().and_then(|w| w.document()) {
        use wasm_bindgen::JsCast;
        let _ = d.add_event_listener_with_callback("visibilitychange", on_visible.as_ref().unchecked_ref());
    }
    on_visible.forget();
    // The network came back (the socket may not have noticed it went): what waits goes now.
    let on_online = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
        if app.account.me.get_untracked().is_some() {
            app.on_network_back();
        }
    });
    if let Some(w) = web_sys::window() {
        use wasm_bindgen::JsCast;
        let _ = w.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
    }
    on_online.forget();
    leptos::task::spawn_local(app.resume());

    // Switching between "Create account" and "Sign in" keeps the form (and what was typed):
    // only signing in or out swaps the screen.
    let signed_in = Memo::new(move |_| app.account.screen.get() == state::Screen::Chats);
    view! {
        {move || if signed_in.get() {
            view! { <Messenger/> }.into_any()
        } else {
            view! { <auth::AuthScreen/> }.into_any()
        }}
    }
}

/// The signed-in layout: conversation list beside the open chat.
#[component]
fn Messenger() -> impl IntoView {
    let app = expect_context::<state::App>();
    view! {
        <div class="shell" class:chat-open=move || app.rooms.active.get().is_some()>
            <Show when=move || !app.account.online.get()>
                <div class="banner offline" role="status">"Offline — reconnecting… Messages you write are queued."</div>
            </Show>
            {move || (app.ui.misaddressed.get() > 0).then(|| view! {
                <div class="banner danger misaddressed" role="alert">
                    {move || match app.ui.misaddressed.get() {
                        1 => "1 message the server sent you was addressed to someone else; it was not shown. The server may be misbehaving.".to_owned(),
                        n => format!("{n} messages the server sent you were addressed to someone else; they were not shown. The server may be misbehaving."),
                    }}
                </div>
            })}
            {move || app.ui.connection_notice.get().map(|n| view! {
                <div class="banner notice" role="status"><span>{n}</span></div>
            })}
            {move || app.ui.notice.get().map(|n| view! {
                <div class="banner notice" role="alert">
                    <span>{n}</span>
                    <button class="link" on:click=move |_| app.ui.notice.set(None) aria-label="Dismiss">"✕"</button>
                </div>
            })}
            <div class="sr-only" id="announcer" role="status" aria-live="polite">{move || app.ui.announcement.get()}</div>
            <sidebar::Sidebar/>
            <chat::ChatPane/>
        </div>
    }
}
