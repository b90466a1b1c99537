//! The open conversation: bubbles, date dividers, delivery state, typing, search, clear,
//! safety numbers, ciphertext view and the composer.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::files::{files_of, human_size, is_inline_image, INLINE_IMAGE_MAX};
use crate::icons::{Icon, Svg};
use crate::state::{now, App, Delivery, FileMeta, Msg, Room};
use crate::text::{
    day_label, divider_positions, highlight, last_seen, linkify, time_label, Matcher, SearchMode,
};

/// Right column.
#[component]
pub fn ChatPane() -> impl IntoView {
    let app = expect_context::<App>();
    view! {
        <section class="chat" aria-label="Chat">
            {move || match app.rooms.active.get() {
                None => view! { <div class="empty muted"><p>"Pick a conversation, or find someone to start one."</p>
                    <p class="small">"Messages are end-to-end encrypted: only you and the person you write to can read them."</p></div> }.into_any(),
                Some(room) => view! { <Conversation room=room/> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn Conversation(room: Room) -> impl IntoView {
    let app = expect_context::<App>();
    // A direct chat has a peer; a group, members (and no single person to name).
    let group = room.group();
    let peer = room.peer().unwrap_or_default().to_owned();
    let slug = room.slug();
    let members_open = RwSignal::new(false);
    let search_open = RwSignal::new(false);
    let query = RwSignal::new(String::new());
    let regex = RwSignal::new(false);
    let current = RwSignal::new(0usize);
    let show_safety = RwSignal::new(false);
    let clear_open = RwSignal::new(false);
    // The draft survives a reload of this tab (kept per chat in the tab's own storage).
    let draft_key = format!("draft.{slug}");
    let draft = RwSignal::new(crate::browser::tab::get(&draft_key).unwrap_or_default());
    Effect::new(move |_| draft.with(|d| crate::browser::tab::set(&draft_key, Some(d))));
    let list_ref = NodeRef::<leptos::html::Div>::new();
    // How many of the newest messages are in the DOM. Search runs over all of them in memory;
    // the DOM holds a window, so a query re-highlights only what is rendered.
    let shown = RwSignal::new(WINDOW);
    // While searching, the window can sit around a match instead of at the bottom: (start, end).
    let anchor = RwSignal::new(None::<(usize, usize)>);
    let input_ref = NodeRef::<leptos::html::Textarea>::new();
    let attach_ref = NodeRef::<leptos::html::Input>::new();
    let dragging = RwSignal::new(false);
    let search_ref = NodeRef::<leptos::html::Input>::new();
    let focus_composer = move || {
        if let Some(i) = input_ref.try_get_untracked().flatten() {
            let _ = i.focus();
        }
    };
    // Opening a chat puts the cursor where one types next; opening search, in its field.
    Effect::new(move |_| {
        if input_ref.get().is_some() {
            focus_composer();
        }
    });
    Effect::new(move |_| {
        if search_open.get() {
            if let Some(i) = search_ref.get() {
                let _ = i.focus();
            }
        }
    });
    // Ctrl+F (⌘F) searches the chat. Escape closes the topmost panel of the chat: search,
    // then the safety number, then "clear", and returns to the composer.
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key().eq_ignore_ascii_case("f") && (ev.ctrl_key() || ev.meta_key()) && !ev.alt_key() {
            ev.prevent_default();
            if search_open.try_get_untracked() == Some(true) {
                if let Some(i) = search_ref.try_get_untracked().flatten() {
                    let _ = i.focus();
                }
            } else {
                search_open.set(true);
            }
            return;
        }
        if ev.key() != "Escape" || ev.default_prevented() {
            return;
        }
        let closed = if search_open.try_get_untracked() == Some(true) {
            search_open.set(false);
            query.set(String::new());
            true
        } else if show_safety.try_get_untracked() == Some(true) {
            show_safety.set(false);
            true
        } else if clear_open.try_get_untracked() == Some(true) {
            clear_open.set(false);
            true
        } else if members_open.try_get_untracked() == Some(true) {
            members_open.set(false);
            true
        } else {
            false
        };
        if closed {
            ev.prevent_default();
            focus_composer();
        }
    });
    on_cleanup(move || escape.remove());

    let matcher = Memo::new(move |_| {
        let mode = if regex.get() { SearchMode::Regex } else { SearchMode::Plain };
        Matcher::new(&query.get(), mode)
    });
    // Keys of messages that match, newest first (search starts at the latest match).
    let hits = Memo::new(move |_| match matcher.get() {
        Ok(m) if !matches!(m, Matcher::None) => app.timeline.msgs.with(|ms| {
            ms.iter()
                .rev()
                .filter(|x| m.is_match_folded(&x.text, &x.folded))
                .map(|x| x.key.clone())
                .collect::<Vec<_>>()
        }),
        _ => Vec::new(),
    });
    // Search covers the whole decrypted history: fetch what is not loaded yet.
    Effect::new(move |_| {
        if search_open.get() && !query.get().is_empty() && app.timeline.has_more.get_untracked() {
            spawn_local(app.load_all());
        }
    });
    let current_key = move || hits.with(|h| h.get(current.get().min(h.len().saturating_sub(1))).cloned());
    // A match outside the rendered window moves the window to it.
    Effect::new(move |_| {
        let Some(key) = current_key() else { return };
        let (index, len) =
            app.timeline.msgs.with_untracked(|ms| (ms.iter().position(|m| m.key == key), ms.len()));
        let Some(i) = index else { return };
        let (start, end) = anchor.get_untracked().unwrap_or((len.saturating_sub(shown.get_untracked()), len));
        if i < start || i >= end {
            anchor.set(Some((i.saturating_sub(HIT_CONTEXT), (i + HIT_CONTEXT).min(len))));
        }
    });
    // Closing the search returns to the latest messages.
    Effect::new(move |_| {
        if !search_open.get() {
            anchor.set(None);
        }
    });
    // Where the reader was, as a distance from the bottom, kept across a reload of this tab;
    // restored once, when the history first shows.
    let scroll_key = format!("scroll.{slug}");
    let restore = StoredValue::new(
        crate::browser::tab::get(&scroll_key).and_then(|d| d.parse::<i32>().ok()).filter(|d| *d > 0),
    );
    // Scroll the current hit into view; otherwise stick to the bottom when a newer message comes
    // (not when older history is prepended).
    Effect::new(move |_| {
        let newest = app.timeline.msgs.with(|m| m.last().map(|x| x.key.clone()));
        let target = current_key();
        request_animation_frame(move || {
            request_animation_frame(move || {
                let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
                if let Some(key) = target {
                    if let Some(el) = doc.get_element_by_id(&format!("m-{key}")) {
                        el.scroll_into_view_with_bool(false);
                    }
                } else if let Some(list) = list_ref.try_get_untracked().flatten() {
                    let from_bottom = match newest {
                        Some(_) => restore.try_update_value(Option::take).flatten().unwrap_or(0),
                        None => 0,
                    };
                    list.set_scroll_top(list.scroll_height() - list.client_height() - from_bottom);
                }
            })
        });
    });

    let room_for_header = room.clone();
    let conv =
        Memo::new(move |_| app.rooms.convs.with(|cs| cs.iter().find(|c| c.room == room_for_header).cloned()));
    let title = move || conv.with(|c| c.as_ref().map(|c| c.title.clone())).unwrap_or_default();
    // A group this user is no longer in (removed, or left elsewhere): read-only.
    let room_in_list = room.clone();
    let not_member = Memo::new(move |_| {
        group.is_some()
            && app.rooms.convs.with(|cs| !cs.is_empty() && !cs.iter().any(|c| c.room == room_in_list))
    });
    // A peer who deleted their account: their history stays, nothing can be sent to them.
    let peer_deleted = Memo::new(move |_| conv.with(|c| c.as_ref().is_some_and(|c| c.deleted)));
    let paused = move || app.rooms.paused.get() || not_member.get() || peer_deleted.get();
    // The unread divider marks what was unread when the chat was opened (opening it marks
    // everything read at once, so the live count is 0 by the time the history shows).
    let unread_on_open = conv.with_untracked(|c| c.as_ref().map_or(0, |c| c.unread));
    let rows = Memo::new(move |_| {
        let unread = unread_on_open;
        app.timeline.msgs.with(|ms| {
            let (start, end) = match anchor.get() {
                Some((s, e)) => (s.min(ms.len()), e.min(ms.len())),
                None => (ms.len().saturating_sub(shown.get()), ms.len()),
            };
            let window = &ms[start..end];
            let times: Vec<f64> = window.iter().map(|m| m.ts).collect();
            let dividers = divider_positions(&times);
            let unread_from = first_unread(window, unread);
            window
                .iter()
                .enumerate()
                .map(|(i, m)| Row {
                    msg: m.clone(),
                    divider: dividers.contains(&i).then(|| day_label(m.ts, now())),
                    unread_marker: Some(i) == unread_from,
                })
                .collect::<Vec<_>>()
        })
    });
    let older = move || {
        let total = app.timeline.msgs.with_untracked(Vec::len);
        let height = list_ref.get_untracked().map_or(0, |l| l.scroll_height());
        if let Some((start, end)) = anchor.get_untracked() {
            if start == 0 {
                return;
            }
            anchor.set(Some((start.saturating_sub(WINDOW), end)));
        } else if shown.get_untracked() < total {
            shown.update(|s| *s += WINDOW);
        } else if app.timeline.has_more.get_untracked() {
            shown.update(|s| *s += 50);
            spawn_local(app.load_older());
            return;
        } else {
            return;
        }
        // Keep the reader's place while rows appear above.
        request_animation_frame(move || {
            if let Some(l) = list_ref.try_get_untracked().flatten() {
                l.set_scroll_top(l.scroll_top() + l.scroll_height() - height);
            }
        });
    };
    let status = move || {
        if app.timeline.typing_until.get() > now() {
            return match group {
                Some(_) => format!("{} is typing…", app.timeline.typing_who.get()),
                None => "typing…".to_owned(),
            };
        }
        if group.is_some() {
            let n = app.rooms.group.with(|g| g.as_ref().map(|g| g.members.len()));
            return n
                .map(|n| if n == 1 { "1 member".to_owned() } else { format!("{n} members") })
                .unwrap_or_default();
        }
        if !app.account.online.get() {
            return String::new(); // presence is unknown while this client is offline
        }
        match conv.get() {
            Some(c) if c.online => "online".into(),
            Some(c) => c.last_seen.map(|t| last_seen(t, now())).unwrap_or_default(),
            None => String::new(),
        }
    };
    let send = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() || not_member.get_untracked() {
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
    let head_avatar = {
        let peer = peer.clone();
        move || {
            match group {
            Some(_) => view! { <span class="avatar group" aria-hidden="true">"#"</span> }.into_any(),
            None => view! { <span class=crate::sidebar::avatar_class(&peer) aria-hidden="true">{crate::sidebar::initial(&peer)}</span> }.into_any(),
        }
        }
    };
    let head_title = {
        let peer = peer.clone();
        move || match group {
            Some(_) => title(),
            None => peer.clone(),
        }
    };
    view! {
        <header class="chat-head">
            <button class="icon back" aria-label="Back to conversations" on:click=move |_| app.rooms.active.set(None)><Svg icon=Icon::Back/></button>
            {head_avatar}
            <div class="grow col">
                <strong class="chat-title">{head_title}{move || (group.is_none() && app.is_verified(&peer_v)).then_some(" ✔")}</strong>
                <span class="muted small" aria-live="polite">{status}</span>
                {move || app.timeline.forward_secret.get().map(|fs| if fs {
                    view! { <span class="enc small fs" title="Messages here use MLS (RFC 9420): a key that leaks later does not open what was already read, and keys renew as people write.">"Forward-secret (MLS)"</span> }
                } else {
                    view! { <span class="enc small v1" title="Messages here are end-to-end encrypted with your two identity keys (version 1): not forward-secret. The conversation moves to MLS once both of you have a device that speaks it.">"Encrypted (version 1)"</span> }
                })}
            </div>
            <button class="icon" aria-label="Search in chat" title="Search (Ctrl+F)" aria-pressed=move || search_open.get().to_string()
                on:click=move |_| { search_open.update(|s| *s = !*s); query.set(String::new()); }><Svg icon=Icon::Search/></button>
            {match group {
                Some(_) => view! {
                    <button class="icon" aria-label="Members" title="Members" aria-pressed=move || members_open.get().to_string()
                        on:click=move |_| members_open.update(|s| *s = !*s)><Svg icon=Icon::Shield/></button>
                }.into_any(),
                None => view! {
                    <button class="icon" aria-label="Safety number" on:click=move |_| show_safety.update(|s| *s = !*s)><Svg icon=Icon::Shield/></button>
                }.into_any(),
            }}
            <button class="icon" aria-label="Clear chat" on:click=move |_| clear_open.update(|s| *s = !*s)><Svg icon=Icon::Trash/></button>
        </header>

        {move || peer_deleted.get().then(|| view! {
            <div class="banner notice deleted-peer" role="status">{format!("{} deleted their account. Your history with them stays here; nothing can be sent to them.", title())}</div>
        })}
        {move || not_member.get().then(|| view! {
            <div class="banner notice" role="status">"You are no longer in this group: nothing sent to it from now on reaches you."</div>
        })}
        {move || group.filter(|_| members_open.get()).map(|id| view! { <crate::group::Members id=id open=members_open/> })}
        {let p = peer.clone(); move || (!p.is_empty() && app.rooms.blocked.with(|b| b.contains(&p))).then(|| {
            let p = p.clone();
            view! {
                <div class="banner notice blocked" role="status">
                    <span>{format!("You blocked {p}: their messages do not reach you, and you cannot write to them.")}</span>
                    <button class="link" on:click=move |_| spawn_local(app.set_blocked(p.clone(), false))>"Unblock"</button>
                </div>
            }
        })}
        {move || app.rooms.key_alert.get().map(|alert| view! {
            <div class="banner danger" role="alert">
                <p><strong>{if alert.pin_lost {
                        format!("Your key backup no longer has the security key you used with {}.", alert.peer)
                    } else {
                        format!("{}'s security key has changed.", alert.peer)
                    }}</strong>
                    {alert.pin_lost.then_some(" The server may have given you an older copy of your backup.")}
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
                <button class="danger-btn" on:click=move |_| { clear_open.set(false); spawn_local(app.clear(true)); }>{match group {
                    Some(_) => "Clear for everyone (admins)".to_owned(),
                    None => format!("Clear for me and {peer_b}"),
                }}</button>
                <button class="link" on:click=move |_| clear_open.set(false)>"Cancel"</button>
            </div>
        </Show>

        <Show when=move || search_open.get()>
            <div class="searchbar" role="search">
                <label for="chat-search" class="sr-only">"Search messages"</label>
                <input id="chat-search" type="search" placeholder="Search messages…" node_ref=search_ref prop:value=move || query.get()
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
                <button class="icon" aria-label="Older match" on:click=move |_| { let n = hits.with(Vec::len).max(1); current.update(|c| *c = (*c + 1) % n); }><Svg icon=Icon::Up/></button>
                <button class="icon" aria-label="Newer match" on:click=move |_| { let n = hits.with(Vec::len).max(1); current.update(|c| *c = (*c + n - 1) % n); }><Svg icon=Icon::Down/></button>
            </div>
        </Show>

        <div class="messages" node_ref=list_ref role="log" aria-label=move || if group.is_some() { format!("Messages in {}", title()) } else { format!("Messages with {peer}") } class:dragging=move || dragging.get()
            on:dragover=move |ev: web_sys::DragEvent| {
                if !paused() {
                    ev.prevent_default();
                    dragging.set(true);
                }
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=move |ev: web_sys::DragEvent| {
                ev.prevent_default();
                dragging.set(false);
                if !paused() {
                    app.send_files(files_of(ev.data_transfer().and_then(|d| d.files())));
                }
            }
            on:scroll=move |_| {
                let Some(list) = list_ref.get_untracked() else { return };
                let from_bottom = list.scroll_height() - list.client_height() - list.scroll_top();
                crate::browser::tab::set(&scroll_key, Some(&from_bottom.max(0).to_string()));
                if list.scroll_top() < 40 {
                    older();
                }
            }>
            <Show when=move || app.timeline.has_more.get() || shown.get() < app.timeline.msgs.with(Vec::len)>
                <button class="link center" on:click=move |_| older()>"Load older messages"</button>
            </Show>
            // Keyed by the message's identity (its client_msg_id): a row updates in place when
            // its delivery state, time, attachment or divider changes, instead of being rebuilt.
            <For each=move || rows.with(|rs| rs.iter().map(|r| r.msg.key.clone()).collect::<Vec<_>>())
                key=|k: &String| k.clone()
                let:k>
                <MessageRow row=Memo::new(move |_| rows.with(|rs| rs.iter().find(|r| r.msg.key == k).cloned()))
                    matcher=matcher current=Signal::derive(current_key)/>
            </For>
            {move || group.map(|_| view! { <MemberKeyChanges/> })}
            <Show when=move || anchor.get().is_some()>
                <button class="link center" on:click=move |_| anchor.set(None)>"Back to latest messages"</button>
            </Show>
            <Show when=move || app.timeline.msgs.with(Vec::is_empty)>
                <p class="muted center">"No messages yet. Say hello — it will be end-to-end encrypted."</p>
            </Show>
            <Show when=move || dragging.get()>
                <div class="drop-hint" aria-hidden="true">"Drop files to send them end-to-end encrypted"</div>
            </Show>
        </div>

        <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
            <input id="attach" type="file" multiple class="sr-only" tabindex="-1" aria-hidden="true" node_ref=attach_ref
                on:change=move |ev| {
                    let input: web_sys::HtmlInputElement = event_target(&ev);
                    app.send_files(files_of(input.files()));
                    input.set_value("");
                } />
            <button type="button" class="icon attach" aria-label="Attach files" disabled=paused
                on:click=move |_| if let Some(i) = attach_ref.get_untracked() { i.click(); }><Svg icon=Icon::Clip/></button>
            <label for="message" class="sr-only">"Message"</label>
            <textarea id="message" node_ref=input_ref rows="1" placeholder="Write a message…" aria-label="Write a message"
                disabled=paused
                prop:value=move || draft.get()
                on:input=move |ev| { draft.set(event_target_value(&ev)); app.typing(); }
                on:paste=move |ev: web_sys::ClipboardEvent| {
                    let files = files_of(ev.clipboard_data().and_then(|d| d.files()));
                    if !files.is_empty() {
                        ev.prevent_default();
                        app.send_files(files);
                    }
                }
                on:keydown=move |ev: web_sys::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    }
                }></textarea>
            <button type="submit" class="primary" aria-label="Send" disabled=paused>"Send"</button>
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

/// One rendered row: a message and what goes before it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    msg: Msg,
    divider: Option<String>,
    unread_marker: bool,
}

/// Messages rendered at first, and added per scroll-up.
const WINDOW: usize = 100;
/// Messages rendered on each side of a search hit outside the window.
const HIT_CONTEXT: usize = 25;

/// One message row: its day divider, the unread marker, and the bubble, all following `row`.
#[component]
fn MessageRow(
    row: Memo<Option<Row>>,
    matcher: Memo<Result<Matcher, String>>,
    current: Signal<Option<String>>,
) -> impl IntoView {
    let divider = move || row.with(|r| r.as_ref().and_then(|r| r.divider.clone()));
    let marker = move || row.with(|r| r.as_ref().is_some_and(|r| r.unread_marker));
    let live = Memo::new(move |_| row.with(|r| r.as_ref().map(|r| r.msg.clone())));
    view! {
        {move || divider().map(|d| view! { <div class="divider" role="separator"><span>{d}</span></div> })}
        {move || marker().then(|| view! { <div class="divider unread-marker" role="separator"><span>"Unread messages"</span></div> })}
        {live.get_untracked().map(|msg| view! { <Bubble msg=msg live=live matcher=matcher current=current/> })}
    }
}

/// Where this user's message is, as an icon and words (nothing for the peer's messages).
fn delivery(msg: &Msg) -> Option<(Icon, String)> {
    if !msg.mine {
        return None;
    }
    Some(match &msg.state {
        Delivery::Sending => (Icon::Clock, "sending".into()),
        Delivery::Sent => (Icon::Check, "sent".into()),
        Delivery::Delivered => (Icon::CheckCheck, "delivered".into()),
        Delivery::Read => (Icon::CheckCheck, "read".into()),
        Delivery::Failed(why) => (Icon::Alert, format!("not sent: {why}")),
    })
}

/// What a version 1 message's ciphertext view shows.
const ENVELOPE_LABEL: &str = "Envelope as stored by the server";

/// A message's bubble. What a message is (its text, sender side, envelope) never changes;
/// its delivery state, time and attachment follow `live`.
#[component]
fn Bubble(
    msg: Msg,
    live: Memo<Option<Msg>>,
    matcher: Memo<Result<Matcher, String>>,
    current: Signal<Option<String>>,
) -> impl IntoView {
    let show_cipher = RwSignal::new(false);
    let text = msg.text.clone();
    let segments = move || matcher.with(|m| highlight(&text, m.as_ref().unwrap_or(&Matcher::None)));
    let key = msg.key.clone();
    let is_current = move || current.with(|c| c.as_deref() == Some(key.as_str()));
    let app = expect_context::<App>();
    // In a group, how many of the others have it: "read by 2 of 3".
    let is_line = msg.system;
    let state = move || {
        if is_line {
            return None; // a line of the timeline has no delivery to tell
        }
        let seq = live.with(|m| m.as_ref().filter(|m| m.mine).and_then(|m| m.seq));
        let me = app.account.me.get_untracked().unwrap_or_default();
        let counted = seq.and_then(|seq| {
            app.rooms.group.with(|g| g.as_ref().map(|g| crate::state::group_receipt(g, &me, seq)))
        });
        let shown = match (live.with(|m| m.as_ref().and_then(delivery)), counted) {
            (Some((_, _)), Some((read, delivered, total))) if total > 0 && (read > 0 || delivered > 0) => {
                let words = if read == total {
                    "read by everyone".to_owned()
                } else if read > 0 {
                    format!("read by {read} of {total}")
                } else if delivered == total {
                    "delivered to everyone".to_owned()
                } else {
                    format!("delivered to {delivered} of {total}")
                };
                let icon = if delivered > 0 { Icon::CheckCheck } else { Icon::Check };
                Some((icon, words))
            }
            (d, _) => d,
        };
        shown.map(|(icon, words)| view! { <Svg icon=icon/><span>{words}</span> })
    };
    let menu_open = RwSignal::new(false);
    let read = move || live.with(|m| m.as_ref().is_some_and(|m| m.state == Delivery::Read));
    let stored = move || {
        live.with(|m| {
            m.as_ref()
                .is_some_and(|m| matches!(m.state, Delivery::Sent | Delivery::Delivered | Delivery::Read))
        })
    };
    let failed = move || live.with(|m| m.as_ref().is_some_and(|m| matches!(m.state, Delivery::Failed(_))));
    let ts = move || live.with(|m| m.as_ref().map_or(msg.ts, |m| m.ts));
    let relay_ts = move || live.with(|m| m.as_ref().and_then(|m| m.relay_ts));
    // What the relay stores: a version 1 message's envelope is at hand; an MLS message's is
    // asked of the relay when first shown (the log's copy, or the archive's once the log is
    // pruned).
    let cipher =
        RwSignal::new((!msg.envelope.is_empty()).then(|| (ENVELOPE_LABEL.to_owned(), msg.envelope.clone())));
    let toggle_cipher = move || {
        show_cipher.update(|s| *s = !*s);
        let seq = live.with_untracked(|m| m.as_ref().and_then(|m| m.seq));
        if let (true, None, Some(seq)) = (show_cipher.get_untracked(), cipher.get_untracked(), seq) {
            spawn_local(async move { cipher.set(Some(app.stored_copy(seq).await)) });
        }
    };
    let meta = Memo::new(move |_| live.with(|m| m.as_ref().and_then(|m| m.file.clone())));
    let file_key = msg.key.clone();
    let file = move || meta.get().map(|meta| view! { <FileCard msg_key=file_key.clone() meta=meta/> });
    let is_file = msg.file.is_some();
    // The introduction that moved the conversation to MLS, a rename, someone added or gone:
    // lines of the timeline.
    let system = msg.system;
    let sender = msg.sender.clone().filter(|_| !system);
    view! {
        <div class="msg" class:mine=msg.mine class:theirs=!msg.mine class:system=system class:current=is_current class:failed=failed
            class:undecryptable=msg.undecryptable id=format!("m-{}", msg.key)>
            <div class="bubble">
                {sender.map(|s| view! { <p class="sender small">{s}</p> })}
                {file}
                <p class="text" class:sr-only=is_file dir="auto">{move || segments().into_iter().map(|(t, hit)| if hit {
                    view! { <mark>{t}</mark> }.into_any()
                } else {
                    linkify(&t).into_iter().map(|(run, link)| if link {
                        let href = run.clone();
                        view! { <a href=href target="_blank" rel="noopener noreferrer nofollow">{run}</a> }.into_any()
                    } else {
                        view! { <span>{run}</span> }.into_any()
                    }).collect_view().into_any()
                }).collect_view()}</p>
                <p class="meta small">
                    <span>{move || time_label(ts())}</span>
                    {move || relay_ts().map(|r| view! {
                        <span class="clock-skew" title="The sender's clock and the server's disagree: the message may have been held back or back-dated.">
                            {format!("· server got it {} {}", day_label(r, now()), time_label(r))}</span>
                    })}
                    <span class="state" class:read=read class:stored=stored>{state}</span>
                    <span class="msg-menu">
                        <button class="icon msg-more" aria-label="Message options" aria-haspopup="menu"
                            aria-expanded=move || menu_open.get().to_string()
                            on:click=move |_| menu_open.update(|o| *o = !*o)><Svg icon=Icon::More/></button>
                        <Show when=move || menu_open.get()>
                            <span class="menu" role="menu" aria-label="Message options">
                                <button role="menuitem" on:click=move |_| { menu_open.set(false); toggle_cipher(); }>
                                    {move || if show_cipher.get() { "Hide ciphertext" } else { "Show ciphertext" }}</button>
                            </span>
                        </Show>
                    </span>
                </p>
                <Show when=move || show_cipher.get()>
                    {move || match cipher.get() {
                        Some((label, text)) => {
                            let empty = text.is_empty();
                            view! {
                                <p class="cipher-label small">{label.clone()}</p>
                                {(!empty).then(|| view! { <pre class="cipher" aria-label=label><code>{text}</code></pre> })}
                            }.into_any()
                        }
                        None => view! { <p class="cipher small" role="status">"Asking the server what it stores…"</p> }.into_any(),
                    }}
                </Show>
            </div>
        </div>
    }
}

/// An attachment in a bubble: an inline image, or a card with name, size and a save button;
/// progress and cancel while it moves; a clear error when it cannot be opened.
#[component]
fn FileCard(msg_key: String, meta: FileMeta) -> impl IntoView {
    let app = expect_context::<App>();
    let image = is_inline_image(&meta.mime);
    let k = msg_key.clone();
    let progress = Memo::new(move |_| app.transfers.progress.with(|p| p.get(&k).cloned()));
    let k = msg_key.clone();
    let entry = Memo::new(move |_| app.transfers.files.with(|f| f.get(&k).cloned()));
    if image && meta.size <= INLINE_IMAGE_MAX {
        if let Some(stored) = meta.stored.clone() {
            if app.transfers.files.with_untracked(|f| !f.contains_key(&msg_key)) {
                app.open_file(msg_key.clone(), stored, false);
            }
        }
    }
    let name = meta.name.clone();
    let alt = meta.name.clone();
    let stored = meta.stored.clone();
    let save_key = msg_key.clone();
    let cancel_key = msg_key.clone();
    let save_label = format!("Save {}", meta.name);
    // A picture opens large in an overlay; Escape or a click closes it.
    let large = RwSignal::new(false);
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" && large.try_get_untracked() == Some(true) {
            ev.prevent_default();
            large.set(false);
        }
    });
    on_cleanup(move || escape.remove());
    let large_alt = meta.name.clone();
    view! {
        <div class="file" class:image=image>
            {move || match entry.get() {
                Some(Ok(url)) if image => Some(view! {
                    <button type="button" class="thumb-btn" aria-label=format!("Open {} large", alt) on:click=move |_| large.set(true)>
                        <img class="thumb" src=url alt=alt.clone()/>
                    </button>
                }.into_any()),
                _ if image && progress.with(Option::is_some) => Some(view! { <div class="thumb placeholder" aria-hidden="true"></div> }.into_any()),
                _ => None,
            }}
            <div class="file-row">
                <Svg icon=Icon::File/>
                <div class="col grow">
                    <span class="file-name">{name}</span>
                    <span class="muted small">{human_size(meta.size)}</span>
                </div>
                {stored.map(|f| {
                    let download_name = f.name.clone();
                    move || match entry.get() {
                        // Decrypted and checked: a plain link to the file in memory.
                        Some(Ok(url)) => view! {
                            <a class="small save" href=url download=download_name.clone() aria-label=save_label.clone()>"Save"</a>
                        }.into_any(),
                        _ => {
                            let (k, f) = (save_key.clone(), f.clone());
                            view! {
                                <button type="button" class="link small save" aria-label=save_label.clone()
                                    on:click=move |_| app.open_file(k.clone(), f.clone(), true)>"Save"</button>
                            }.into_any()
                        }
                    }
                })}
            </div>
            {move || progress.get().map(|(what, done)| {
                let key = cancel_key.clone();
                view! {
                    <div class="progress-row">
                        <progress max="1" value=done aria-label=what.clone()></progress>
                        <span class="small muted">{format!("{what} {:.0}%", done * 100.0)}</span>
                        <button type="button" class="link small" on:click=move |_| crate::files::cancel(app, &key)>"Cancel"</button>
                    </div>
                }
            })}
            {move || match (large.get(), entry.get()) {
                (true, Some(Ok(url))) => Some(view! {
                    <div class="lightbox" role="dialog" aria-modal="true" aria-label=large_alt.clone() on:click=move |_| large.set(false)>
                        <img src=url alt=large_alt.clone()/>
                        <button type="button" class="icon close" aria-label="Close picture" on:click=move |_| large.set(false)><Svg icon=Icon::Close/></button>
                    </div>
                }),
                _ => None,
            }}
            {move || match entry.get() {
                Some(Err(e)) => Some(view! { <p class="file-error" role="alert"><Svg icon=Icon::Alert/>{e}</p> }),
                _ => None,
            }}
        </div>
    }
}

/// Lines at the end of a group's timeline for members whose security key changed: the new
/// safety number, what it means for the group, and the way to their direct chat, where the new
/// key is compared and accepted.
#[component]
fn MemberKeyChanges() -> impl IntoView {
    let app = expect_context::<App>();
    let changed = Memo::new(move |_| {
        let members = app.rooms.group.with(crate::state::member_names);
        app.rooms
            .key_alerts
            .with(|alerts| members.iter().filter_map(|m| alerts.get(m).cloned()).collect::<Vec<_>>())
    });
    move || {
        changed
            .get()
            .into_iter()
            .map(|alert| {
                let peer = alert.peer.clone();
                let to_chat = peer.clone();
                view! {
                    <div class="msg system key-change" role="status">
                        <div class="bubble">
                            <p class="text">{format!("{peer}'s security key has changed. The new safety number:")}</p>
                            <p class="safety">{alert.safety_number.clone()}</p>
                            <p class="small">{format!(
                                "This group goes on with the devices of {peer}'s you already had; one signed with a new key of theirs is let in only after you accept it. Writing to {peer} directly is paused until you compare the number with them and accept it there."
                            )}</p>
                            <button class="link" on:click=move |_| spawn_local(app.open_chat(to_chat.clone()))>
                                {format!("Open the chat with {peer}")}</button>
                        </div>
                    </div>
                }
            })
            .collect_view()
    }
}
