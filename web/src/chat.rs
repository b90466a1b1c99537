//! The open conversation: bubbles, date dividers, delivery state, typing, search, clear,
//! safety numbers, ciphertext view and the composer.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::icons::{Icon, Svg};
use crate::state::{now, App, Delivery, Msg};
use crate::text::{day_label, divider_positions, highlight, last_seen, time_label, Matcher, SearchMode};

/// Right column.
#[component]
pub fn ChatPane() -> impl IntoView {
    let app = expect_context::<App>();
    view! {
        <section class="chat" aria-label="Chat">
            {move || match app.active.get() {
                None => view! { <div class="empty muted"><p>"Pick a conversation, or find someone to start one."</p>
                    <p class="small">"Messages are end-to-end encrypted: only you and the person you write to can read them."</p></div> }.into_any(),
                Some(peer) => view! { <Conversation peer=peer/> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn Conversation(peer: String) -> impl IntoView {
    let app = expect_context::<App>();
    let search_open = RwSignal::new(false);
    let query = RwSignal::new(String::new());
    let regex = RwSignal::new(false);
    let current = RwSignal::new(0usize);
    let show_safety = RwSignal::new(false);
    let clear_open = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let list_ref = NodeRef::<leptos::html::Div>::new();
    let input_ref = NodeRef::<leptos::html::Textarea>::new();

    let matcher = Memo::new(move |_| {
        let mode = if regex.get() { SearchMode::Regex } else { SearchMode::Plain };
        Matcher::new(&query.get(), mode)
    });
    // Keys of messages that match, in order.
    let hits = Memo::new(move |_| match matcher.get() {
        Ok(m) if !matches!(m, Matcher::None) => app
            .msgs
            .with(|ms| ms.iter().filter(|x| m.is_match(&x.text)).map(|x| x.key.clone()).collect::<Vec<_>>()),
        _ => Vec::new(),
    });
    // Search covers the whole decrypted history: fetch what is not loaded yet.
    Effect::new(move |_| {
        if search_open.get() && !query.get().is_empty() && app.has_more.get_untracked() {
            spawn_local(app.load_all());
        }
    });
    let current_key = move || hits.with(|h| h.get(current.get().min(h.len().saturating_sub(1))).cloned());
    // Scroll the current hit into view; otherwise stick to the bottom when new messages come.
    Effect::new(move |_| {
        let count = app.msgs.with(Vec::len);
        let target = current_key();
        request_animation_frame(move || {
            let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
            if let Some(key) = target {
                if let Some(el) = doc.get_element_by_id(&format!("m-{key}")) {
                    el.scroll_into_view_with_bool(false);
                }
            } else if let Some(list) = list_ref.get_untracked() {
                let _ = count;
                list.set_scroll_top(list.scroll_height());
            }
        });
    });

    let peer_for_header = peer.clone();
    let conv = Memo::new(move |_| app.convs.get().into_iter().find(|c| c.peer == peer_for_header));
    let status = move || {
        if app.typing_until.get() > now() {
            return "typing…".to_owned();
        }
        match conv.get() {
            Some(c) if c.online => "online".into(),
            Some(c) => c.last_seen.map(|t| last_seen(t, now())).unwrap_or_default(),
            None => String::new(),
        }
    };
    let send = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        draft.set(String::new());
        spawn_local(app.send(text));
        if let Some(i) = input_ref.get_untracked() {
            let _ = i.focus();
        }
    };
    let peer_v = peer.clone();
    let peer_s = peer.clone();
    let peer_b = peer.clone();
    view! {
        <header class="chat-head">
            <button class="icon back" aria-label="Back to conversations" on:click=move |_| app.active.set(None)><Svg icon=Icon::Back/></button>
            <span class="avatar" aria-hidden="true">{crate::sidebar::initial(&peer)}</span>
            <div class="grow col">
                <strong>{peer.clone()}{move || app.is_verified(&peer_v).then_some(" ✔")}</strong>
                <span class="muted small" aria-live="polite">{status}</span>
            </div>
            <button class="icon" aria-label="Search in chat" aria-pressed=move || search_open.get().to_string()
                on:click=move |_| { search_open.update(|s| *s = !*s); query.set(String::new()); }><Svg icon=Icon::Search/></button>
            <button class="icon" aria-label="Safety number" on:click=move |_| show_safety.update(|s| *s = !*s)><Svg icon=Icon::Shield/></button>
            <button class="icon" aria-label="Clear chat" on:click=move |_| clear_open.update(|s| *s = !*s)><Svg icon=Icon::Trash/></button>
        </header>

        {move || app.key_alert.get().map(|alert| view! {
            <div class="banner danger" role="alert">
                <p><strong>{format!("{}'s security key has changed.", alert.peer)}</strong>
                    " Sending is paused. Compare this new safety number with them (in person or another channel) before you continue:"</p>
                <p class="safety">{alert.safety_number.clone()}</p>
                <button class="primary" on:click=move |_| spawn_local(app.accept_new_key())>"I compared it — accept the new key"</button>
            </div>
        })}

        <Show when=move || show_safety.get()>
            <div class="panel" role="dialog" aria-label="Safety number">
                <p>"Compare this number with the one "<strong>{peer_s.clone()}</strong>" sees. If they match, nobody is in between."</p>
                <p class="safety">{let p = peer_s.clone(); move || app.safety_number(&p).unwrap_or_else(|| "unavailable".into())}</p>
                <button class="primary" on:click={let p = peer_s.clone(); move |_| { show_safety.set(false); spawn_local(app.mark_verified(p.clone())); }}>"Mark as verified"</button>
                <button class="link" on:click=move |_| show_safety.set(false)>"Close"</button>
            </div>
        </Show>

        <Show when=move || clear_open.get()>
            <div class="panel" role="dialog" aria-label="Clear chat">
                <p>"Clear this chat? This cannot be undone."</p>
                <button class="danger-btn" on:click=move |_| { clear_open.set(false); spawn_local(app.clear(false)); }>"Clear for me"</button>
                <button class="danger-btn" on:click=move |_| { clear_open.set(false); spawn_local(app.clear(true)); }>{format!("Clear for me and {peer_b}")}</button>
                <button class="link" on:click=move |_| clear_open.set(false)>"Cancel"</button>
            </div>
        </Show>

        <Show when=move || search_open.get()>
            <div class="searchbar" role="search">
                <label for="chat-search" class="sr-only">"Search messages"</label>
                <input id="chat-search" type="search" placeholder="Search messages…" prop:value=move || query.get()
                    on:input=move |ev| { query.set(event_target_value(&ev)); current.set(0); }
                    on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" {
                        let n = hits.with(Vec::len).max(1);
                        current.update(|c| *c = if ev.shift_key() { (*c + n - 1) % n } else { (*c + 1) % n });
                    } />
                <label class="check"><input type="checkbox" prop:checked=move || regex.get()
                    on:change=move |ev| regex.set(event_target_checked(&ev)) />" Regex"</label>
                <span class="muted small count" aria-live="polite">{move || match matcher.get() {
                    Err(e) => format!("invalid pattern: {}", e.lines().last().unwrap_or_default()),
                    Ok(Matcher::None) => String::new(),
                    Ok(_) => {
                        let n = hits.with(Vec::len);
                        if n == 0 { "no matches".into() } else { format!("{} of {n}", current.get().min(n - 1) + 1) }
                    }
                }}</span>
                <button class="icon" aria-label="Previous match" on:click=move |_| { let n = hits.with(Vec::len).max(1); current.update(|c| *c = (*c + n - 1) % n); }><Svg icon=Icon::Up/></button>
                <button class="icon" aria-label="Next match" on:click=move |_| { let n = hits.with(Vec::len).max(1); current.update(|c| *c = (*c + 1) % n); }><Svg icon=Icon::Down/></button>
            </div>
        </Show>

        <div class="messages" node_ref=list_ref role="log" aria-label="Messages"
            on:scroll=move |_| {
                if let Some(list) = list_ref.get_untracked() {
                    if list.scroll_top() < 40 && app.has_more.get_untracked() {
                        spawn_local(app.load_older());
                    }
                }
            }>
            <Show when=move || app.has_more.get()>
                <button class="link center" on:click=move |_| spawn_local(app.load_older())>"Load older messages"</button>
            </Show>
            {move || {
                let msgs = app.msgs.get();
                let times: Vec<f64> = msgs.iter().map(|m| m.ts).collect();
                let dividers = divider_positions(&times);
                let m = matcher.get().unwrap_or(Matcher::None);
                let cur = current_key();
                let unread_from = first_unread(&msgs, conv.get().map_or(0, |c| c.unread));
                msgs.into_iter().enumerate().map(|(i, msg)| {
                    let divider = dividers.contains(&i).then(|| view! { <div class="divider" role="separator"><span>{day_label(msg.ts, now())}</span></div> });
                    let marker = (Some(i) == unread_from).then(|| view! { <div class="divider unread-marker" role="separator"><span>"Unread messages"</span></div> });
                    let is_current = cur.as_deref() == Some(msg.key.as_str());
                    view! { {divider}{marker}<Bubble msg=msg matcher=m.clone() current=is_current/> }
                }).collect_view()
            }}
            <Show when=move || app.msgs.with(Vec::is_empty)>
                <p class="muted center">"No messages yet. Say hello — it will be end-to-end encrypted."</p>
            </Show>
        </div>

        <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
            <label for="message" class="sr-only">"Message"</label>
            <textarea id="message" node_ref=input_ref rows="1" placeholder="Write a message…" aria-label="Message"
                disabled=move || app.key_alert.get().is_some()
                prop:value=move || draft.get()
                on:input=move |ev| { draft.set(event_target_value(&ev)); app.typing(); }
                on:keydown=move |ev: web_sys::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    }
                }></textarea>
            <button type="submit" class="primary" aria-label="Send" disabled=move || app.key_alert.get().is_some()>"Send"</button>
        </form>
    }
}

fn first_unread(msgs: &[Msg], unread: u32) -> Option<usize> {
    if unread == 0 {
        return None;
    }
    let theirs: Vec<usize> = msgs.iter().enumerate().filter(|(_, m)| !m.mine).map(|(i, _)| i).collect();
    theirs.len().checked_sub(unread as usize).and_then(|k| theirs.get(k).copied())
}

#[component]
fn Bubble(msg: Msg, matcher: Matcher, current: bool) -> impl IntoView {
    let show_cipher = RwSignal::new(false);
    let segments = highlight(&msg.text, &matcher);
    let state = match &msg.state {
        _ if !msg.mine => String::new(),
        Delivery::Sending => "🕓 sending".into(),
        Delivery::Sent => "✓ sent".into(),
        Delivery::Delivered => "✓✓ delivered".into(),
        Delivery::Read => "✓✓ read".into(),
        Delivery::Failed(why) => format!("⚠ not sent: {why}"),
    };
    let envelope = msg.envelope.clone();
    view! {
        <div class="msg" class:mine=msg.mine class:theirs=!msg.mine class:current=current class:failed=matches!(msg.state, Delivery::Failed(_))
            class:undecryptable=msg.undecryptable id=format!("m-{}", msg.key)>
            <div class="bubble">
                <p class="text">{segments.into_iter().map(|(t, hit)| if hit {
                    view! { <mark>{t}</mark> }.into_any()
                } else {
                    view! { <span>{t}</span> }.into_any()
                }).collect_view()}</p>
                <p class="meta small">
                    <span>{time_label(msg.ts)}</span>
                    <span class="state" class:read=msg.state == Delivery::Read>{state}</span>
                    <button class="link small" aria-expanded=move || show_cipher.get().to_string()
                        on:click=move |_| show_cipher.update(|s| *s = !*s)>
                        {move || if show_cipher.get() { "Hide ciphertext" } else { "Show ciphertext" }}</button>
                </p>
                <Show when=move || show_cipher.get()>
                    <pre class="cipher" aria-label="Envelope as stored by the server"><code>{envelope.clone()}</code></pre>
                </Show>
            </div>
        </div>
    }
}
