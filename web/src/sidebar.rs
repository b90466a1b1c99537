//! The conversation list with user search, unread counts, presence and a context menu.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::icons::{Icon, Svg};
use sealroom_protocol::ConversationId;

use crate::state::{now, App, Conv, Room};
use crate::text::{last_seen, time_label};

/// Left column.
#[component]
pub fn Sidebar() -> impl IntoView {
    let app = expect_context::<App>();
    let query = RwSignal::new(String::new());
    let menu = RwSignal::new(None::<ConversationId>);
    let new_group = RwSignal::new(false);
    let find_ref = NodeRef::<leptos::html::Input>::new();
    let new_group_ref = NodeRef::<leptos::html::Button>::new();
    // After signing in the cursor waits in "Find people" (unless a chat is open).
    Effect::new(move |_| {
        if let Some(i) = find_ref.get() {
            if app.rooms.active.get_untracked().is_none() {
                let _ = i.focus();
            }
        }
    });
    // Escape closes an open menu first (before any chat panel), then clears the search it is in.
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() != "Escape" || ev.default_prevented() {
            return;
        }
        if menu.try_get_untracked().flatten().is_some() {
            menu.set(None);
            ev.prevent_default();
        } else if new_group.try_get_untracked() == Some(true) && crate::browser::focus_within(".new-group") {
            // "New group" closes, and the cursor goes back to the button that opened it.
            new_group.set(false);
            if let Some(b) = new_group_ref.get_untracked() {
                let _ = b.focus();
            }
            ev.prevent_default();
        } else if crate::browser::focus_within(".search-users, .found") && !query.get_untracked().is_empty() {
            query.set(String::new());
            app.rooms.found.set(Vec::new());
            if let Some(i) = find_ref.get_untracked() {
                let _ = i.focus();
            }
            ev.prevent_default();
        }
    });
    // A click outside an open menu closes it.
    let outside = window_event_listener(leptos::ev::click, move |ev| {
        use wasm_bindgen::JsCast;
        if menu.try_get_untracked().flatten().is_none() {
            return;
        }
        let inside = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.closest(".menu, .menu-btn").ok().flatten())
            .is_some();
        if !inside {
            menu.set(None);
        }
    });
    on_cleanup(move || {
        escape.remove();
        outside.remove();
    });
    let open = move |room: Room| {
        query.set(String::new());
        menu.set(None);
        spawn_local(app.open_room(room));
    };
    // Keyed by conversation id: a row updates in place when its preview, unread count,
    // presence or pin changes, instead of being rebuilt.
    let visible = move || {
        app.rooms
            .convs
            .with(|cs| cs.iter().filter(|c| !c.hidden).map(|c| c.id).collect::<Vec<ConversationId>>())
    };
    view! {
        <aside class="sidebar" aria-label="Conversations">
            <header class="me">
                <span class=move || avatar_class(&app.account.me.get().unwrap_or_default()) aria-hidden="true">{move || initial(&app.account.me.get().unwrap_or_default())}</span>
                <strong class="grow">{move || app.account.me.get().unwrap_or_default()}</strong>
                <button class="icon" aria-label="Toggle dark theme" title="Theme" on:click=move |_| {
                    let next = !app.ui.dark.get_untracked().unwrap_or_else(system_dark);
                    app.ui.dark.set(Some(next));
                    if let Some(s) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
                        let _ = s.set_item("theme", if next { "dark" } else { "light" });
                    }
                }><Svg icon=Icon::Theme/></button>
                <button class="icon" aria-label="Sign out" title="Sign out" on:click=move |_| spawn_local(app.sign_out(false))><Svg icon=Icon::SignOut/></button>
            </header>
            <div class="search-users">
                <label for="find" class="sr-only">"Find people"</label>
                <input id="find" type="search" placeholder="Find people by username…" autocomplete="off" node_ref=find_ref
                    on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "ArrowDown" {
                        ev.prevent_default();
                        crate::browser::move_focus(".found", ".row", 1);
                    }
                    prop:value=move || query.get()
                    on:input=move |ev| {
                        let q = event_target_value(&ev);
                        query.set(q.clone());
                        spawn_local(app.search_users(q));
                    } />
            </div>
            <Show when=move || !query.get().is_empty()>
                <ul class="found" aria-label="People"
                    on:keydown=move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
                        "ArrowDown" => { ev.prevent_default(); crate::browser::move_focus(".found", ".row", 1); }
                        "ArrowUp" => { ev.prevent_default(); crate::browser::move_focus(".found", ".row", -1); }
                        _ => {}
                    }>
                    <For each=move || app.rooms.found.get() key=|u| u.clone() let:user>
                        <li><button class="row" on:click={let u = user.clone(); move |_| open(Room::Direct(u.clone()))}>
                            <span class=avatar_class(&user) aria-hidden="true">{initial(&user)}</span>
                            <span class="grow">{user.clone()}</span>
                            <span class="muted">"Start chat"</span>
                        </button></li>
                    </For>
                    {move || match app.rooms.search_error.get() {
                        Some(e) => Some(view! { <li class="error pad" role="alert">{e}</li> }.into_any()),
                        None if app.rooms.found.with(Vec::is_empty) => Some(view! {
                            <li class="muted pad">"No one by that name among your contacts. To find someone new, type their exact username."</li>
                        }.into_any()),
                        None => None,
                    }}
                </ul>
            </Show>
            <div class="list-actions">
                <button class="link small" node_ref=new_group_ref aria-expanded=move || new_group.get().to_string()
                    on:click=move |_| new_group.update(|o| *o = !*o)>"+ New group"</button>
            </div>
            <Show when=move || new_group.get()>
                <crate::group::NewGroup open=new_group/>
            </Show>
            <ul class="convs" aria-label="Conversations"
                on:keydown=move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
                    "ArrowDown" if !crate::browser::focus_within(".menu") => { ev.prevent_default(); crate::browser::move_focus(".convs", ".row", 1); }
                    "ArrowUp" if !crate::browser::focus_within(".menu") => { ev.prevent_default(); crate::browser::move_focus(".convs", ".row", -1); }
                    _ => {}
                }>
                <For each=visible key=|id| *id let:id>
                    {
                        let conv = Memo::new(move |_| app.rooms.convs.with(|cs| cs.iter().find(|c| c.id == id).cloned()));
                        conv.get_untracked().map(|first| view! { <ConvRow room=first.room conv=conv menu=menu on_open=move |r| open(r) /> })
                    }
                </For>
                <Show when=move || app.rooms.convs.get().iter().all(|c| c.hidden)>
                    <li class="muted pad">"No conversations yet. Find someone above to start one."</li>
                </Show>
            </ul>
            <Account/>
            <button class="link pad" on:click=move |_| spawn_local(app.sign_out(true))>"Sign out everywhere"</button>
        </aside>
    }
}

fn system_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}

/// First letter for the avatar.
pub fn initial(name: &str) -> String {
    name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default()
}

/// The avatar's classes: one of eight hues, the same for a name everywhere.
pub fn avatar_class(name: &str) -> String {
    let hash = name.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("avatar hue-{}", hash % 8)
}

/// One conversation: `room` is which (fixed for the row); everything else follows `conv`.
#[component]
fn ConvRow(
    room: Room,
    conv: Memo<Option<Conv>>,
    menu: RwSignal<Option<ConversationId>>,
    on_open: impl Fn(Room) + Copy + 'static,
) -> impl IntoView {
    let app = expect_context::<App>();
    let field = move |f: fn(&Conv) -> String| move || conv.with(|c| c.as_ref().map(f).unwrap_or_default());
    let id = conv.with_untracked(|c| c.as_ref().map(|c| c.id)).unwrap_or(ConversationId(0));
    let group = room.group().is_some();
    let peer = room.peer().unwrap_or_default().to_owned();
    let title = field(|c| c.title.clone());
    let r = room.clone();
    let is_active = move || app.rooms.active.with(|a| a.as_ref() == Some(&r));
    let press = StoredValue::new(None::<Option<leptos::prelude::TimeoutHandle>>);
    let cancel_press = move || {
        if let Some(Some(h)) = press.get_value() {
            h.clear();
        }
        press.set_value(None);
    };
    let connected = app.account.online;
    let presence = move || {
        if group {
            let n = conv.with(|c| c.as_ref().map_or(0, |c| c.members.len()));
            return if n == 1 { "1 member".to_owned() } else { format!("{n} members") };
        }
        if conv.with(|c| c.as_ref().is_some_and(|c| c.deleted)) {
            return "deleted account".to_owned();
        }
        if !connected.get() {
            return "presence unknown while offline".to_owned();
        }
        field(|c| {
            if c.online {
                "online".to_owned()
            } else {
                c.last_seen.map(|t| last_seen(t, now())).unwrap_or_else(|| "offline".into())
            }
        })()
    };
    let unread = move || conv.with(|c| c.as_ref().map_or(0, |c| c.unread));
    let has_unread = move || unread() > 0;
    // An opened menu takes the focus on its first item (arrow keys move it, Escape closes).
    Effect::new(move |_| {
        if menu.get() == Some(id) {
            request_animation_frame(|| crate::browser::move_focus(".menu", "[role=menuitem]", 1));
        }
    });
    // Presence is only known while connected: offline, no one is shown online.
    let online = move || app.account.online.get() && conv.with(|c| c.as_ref().is_some_and(|c| c.online));
    let pinned = move || conv.with(|c| c.as_ref().is_some_and(|c| c.pinned));
    let time = field(|c| if c.ts > 0.0 { time_label(c.ts) } else { String::new() });
    let preview = field(|c| c.preview.clone());
    let label = move || {
        let n = unread();
        let unread = if n > 0 { format!(", {n} unread") } else { String::new() };
        format!(", {}{unread}, ", presence())
    };
    let avatar = move || if group { "avatar group".to_owned() } else { avatar_class(&title()) };
    let r = room.clone();
    view! {
        <li class="conv" class:active=is_active class:unread=has_unread
            on:contextmenu=move |ev| { ev.prevent_default(); menu.set(Some(id)); }
            on:pointerdown=move |ev| {
                // Long-press (touch) opens the same menu as right-click.
                if ev.pointer_type() == "touch" {
                    press.set_value(Some(leptos::prelude::set_timeout_with_handle(
                        move || menu.set(Some(id)),
                        std::time::Duration::from_millis(550),
                    ).ok()));
                }
            }
            on:pointerup=move |_| cancel_press()
            on:pointerleave=move |_| cancel_press()>
            // The button's name is what it shows (so speech input finds it by what one sees),
            // with presence and the unread count added for screen readers.
            <button class="row" on:click=move |_| on_open(r.clone())>
                <span class=avatar aria-hidden="true">{move || if group { "#".to_owned() } else { initial(&title()) }}
                    {(!group).then(|| view! { <span class="dot" class:on=online title=presence></span> })}
                </span>
                <span class="grow col">
                    <span class="line"><strong class="title">{title}</strong>{move || pinned().then(|| view! {
                            <span class="pin" title="Pinned"><Svg icon=Icon::Pin/><span class="sr-only">" (pinned)"</span></span>
                        })}
                        {let p = peer.clone(); move || (!p.is_empty() && app.rooms.key_alerts.with(|k| k.contains_key(&p))).then(|| view! {
                            <span class="key-changed" title="Security key changed: sending is paused"><Svg icon=Icon::Alert/>" key changed"</span>
                        })}
                        <span class="sr-only">{label}</span>
                        <span class="time muted">{time}</span></span>
                    <span class="line"><span class="preview muted" dir="auto">{preview}</span>
                        {move || has_unread().then(|| view! { <span class="badge" aria-hidden="true">{unread}</span> })}</span>
                </span>
            </button>
            <button class="icon menu-btn" aria-label=move || format!("Options for {}", title()) aria-haspopup="menu"
                on:click=move |_| menu.update(|m| *m = if *m == Some(id) { None } else { Some(id) })><Svg icon=Icon::More/></button>
            <Show when=move || menu.get() == Some(id)>
                <div class="menu" role="menu" aria-label=move || format!("Options for {}", title())
                    on:keydown=move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
                        "ArrowDown" => { ev.prevent_default(); crate::browser::move_focus(".menu", "[role=menuitem]", 1); }
                        "ArrowUp" => { ev.prevent_default(); crate::browser::move_focus(".menu", "[role=menuitem]", -1); }
                        _ => {}
                    }>
                    <button role="menuitem" on:click=move |_| { menu.set(None); spawn_local(app.set_flags(id, Some(!pinned()), None)); }>
                        {move || if pinned() { "Unpin" } else { "Pin to top" }}</button>
                    {(!group).then(|| {
                        let p = peer.clone();
                        let is_blocked = Memo::new(move |_| app.rooms.blocked.with(|b| b.contains(&p)));
                        let p = peer.clone();
                        view! {
                            <button role="menuitem" on:click=move |_| { menu.set(None); spawn_local(app.set_blocked(p.clone(), !is_blocked.get_untracked())); }>
                                {move || if is_blocked.get() { "Unblock" } else { "Block" }}</button>
                        }
                    })}
                    <button role="menuitem" on:click={let r = room.clone(); move |_| {
                        menu.set(None);
                        if app.is_open(&r) { app.rooms.active.set(None); }
                        spawn_local(app.set_flags(id, None, Some(true)));
                    }}>"Close chat"</button>
                    <button role="menuitem" on:click={let r = room.clone(); move |_| {
                        menu.set(None);
                        let ok = web_sys::window().and_then(|w| w.confirm_with_message(&format!("Clear your chat {}? This cannot be undone.", if group { format!("in {}", title()) } else { format!("with {}", title()) })).ok()).unwrap_or(false);
                        if ok {
                            let r = r.clone();
                            spawn_local(async move { app.open_room(r).await; app.clear(false).await; });
                        }
                    }}>"Clear chat for me"</button>
                </div>
            </Show>
        </li>
    }
}

/// Account settings: notifications, change password, devices.
#[component]
fn Account() -> impl IntoView {
    let open = RwSignal::new(false);
    let devices = RwSignal::new(false);
    let invites = RwSignal::new(false);
    let delete = RwSignal::new(false);
    let export = RwSignal::new(false);
    let admin = crate::admin::admin_signal();
    let app = expect_context::<App>();
    spawn_local(app.load_server_info());
    view! {
        {move || app.account.retention_days.get().map(|days| view! {
            <p class="small muted pad retention" id="retention">{format!(
                "This server deletes messages after {days} {}: older history is gone for everyone.",
                if days == 1 { "day" } else { "days" }
            )}</p>
        })}
        <label class="pad notify-setting">"Notifications "
            <select id="notifications" on:change=move |ev| crate::browser::NotifyLevel::parse(&event_target_value(&ev)).store()
                prop:value=crate::browser::NotifyLevel::load().as_str()>
                <option value="off">"Off"</option>
                <option value="name">"Name only"</option>
                <option value="message">"Name and message"</option>
            </select>
        </label>
        <button class="link pad" aria-expanded=move || open.get().to_string() on:click=move |_| open.update(|o| *o = !*o)>"Change password"</button>
        <Show when=move || open.get()>
            <ChangePassword/>
        </Show>
        <button class="link pad" aria-expanded=move || devices.get().to_string() on:click=move |_| devices.update(|o| *o = !*o)>"Devices"</button>
        <Show when=move || devices.get()>
            <DeviceList/>
            <HistorySetting/>
        </Show>
        <button class="link pad" id="export-toggle" aria-expanded=move || export.get().to_string() on:click=move |_| export.update(|o| *o = !*o)>"Export my history"</button>
        <Show when=move || export.get()>
            <crate::export::ExportHistory/>
        </Show>
        <button class="link pad" id="delete-toggle" aria-expanded=move || delete.get().to_string() on:click=move |_| delete.update(|o| *o = !*o)>"Delete account"</button>
        <Show when=move || delete.get()>
            <DeleteAccount/>
        </Show>
        <Show when=move || admin.get()>
            <button class="link pad" id="invites-toggle" aria-expanded=move || invites.get().to_string() on:click=move |_| invites.update(|o| *o = !*o)>"Invites"</button>
            <Show when=move || invites.get()>
                <crate::admin::InvitePanel/>
            </Show>
        </Show>
    }
}

/// This user's devices (this browser, other browsers, the CLI): when each was added and last
/// seen, and removing one (it may no longer act; its groups commit its removal).
#[component]
fn DeviceList() -> impl IntoView {
    let app = expect_context::<App>();
    let list = RwSignal::new(
        None::<Result<(Vec<sealroom_protocol::DeviceInfo>, Option<sealroom_protocol::DeviceId>), String>>,
    );
    let confirming = RwSignal::new(None::<sealroom_protocol::DeviceId>);
    let load = move || spawn_local(async move { list.set(Some(app.devices().await)) });
    load();
    let remove = move |device| {
        spawn_local(async move {
            confirming.set(None);
            match app.remove_device(device).await {
                Ok(()) => app.ui.notice.set(Some("Device removed. It can no longer read or send.".into())),
                Err(e) => app.ui.notice.set(Some(format!("Could not remove the device: {e}"))),
            }
            list.set(Some(app.devices().await));
        })
    };
    view! {
        <section class="devices pad" aria-label="Your devices">
            <p class="small">"Every browser and command-line client you signed in with has its own keys. Remove one you no longer use: it stops receiving messages."</p>
            {move || match list.get() {
                None => view! { <p class="busy" role="status"><span class="spinner" aria-hidden="true"></span>"Loading devices…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Some(Ok((devices, this))) => view! {
                    <ul class="device-list">
                        {devices.into_iter().map(|d| {
                            let id = d.device;
                            let mine = this == Some(id);
                            let hex = id.to_string();
                            let name = if mine { "This browser".to_owned() } else { format!("Device {}", &hex[..8]) };
                            let when = format!(
                                "added {} · {}",
                                crate::text::day_label(d.created_at as f64, now()),
                                last_seen(d.last_seen as f64, now()),
                            );
                            view! {
                                <li class="device" class:this=mine title=hex>
                                    <span class="device-name">{name}</span>
                                    <span class="small device-when">{when}</span>
                                    {(!mine).then(|| view! {
                                        <Show when=move || confirming.get() == Some(id)
                                            fallback=move || view! { <button class="link" on:click=move |_| confirming.set(Some(id))>"Remove"</button> }>
                                            <span class="confirm" role="group" aria-label="Remove this device?">
                                                <button class="danger-btn" on:click=move |_| remove(id)>"Remove for good"</button>
                                                <button class="link" on:click=move |_| confirming.set(None)>"Cancel"</button>
                                            </span>
                                        </Show>
                                    })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </section>
    }
}

/// Deleting the account, with the password.
#[component]
fn DeleteAccount() -> impl IntoView {
    let app = expect_context::<App>();
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let p = password.get_untracked();
        spawn_local(async move {
            if let Err(e) = app.delete_account(p).await {
                error.try_set(Some(e));
            }
        });
    };
    view! {
        <form class="account pad delete-account" on:submit=submit>
            <p class="small">"Deleting your account ends every session and removes your key backup, your devices and your history archive from this server. What you sent stays with the people you sent it to; they see a deleted account. Your name stays taken for a while, so nobody can pass as you to them. There is no undo."</p>
            <label for="delete-password">"Your password"</label>
            <input id="delete-password" type="password" autocomplete="current-password" required
                prop:value=move || password.get() on:input=move |ev| { error.set(None); password.set(event_target_value(&ev)); } />
            {move || app.account.busy.get().map(|b| view! { <p class="busy" role="status"><span class="spinner" aria-hidden="true"></span>{b}</p> })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <button type="submit" class="danger-btn" disabled=move || app.account.busy.get().is_some()>"Delete my account for good"</button>
        </form>
    }
}

/// The change-password form; while it is open, the strength worker runs.
#[component]
fn ChangePassword() -> impl IntoView {
    let app = expect_context::<App>();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let result = RwSignal::new(None::<Result<String, String>>);
    let me = Signal::derive(move || app.account.me.get().unwrap_or_default());
    let check = crate::strength::PasswordCheck::new(new.into(), me, Signal::from(true));
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (c, n) = (current.get_untracked(), new.get_untracked());
        if repeat.get_untracked() != n {
            result.set(Some(Err("The two new passwords are not the same. Type them again.".into())));
            return;
        }
        spawn_local(async move {
            if let Some(why) = crate::auth::refuse_weak(check, app.account.busy).await {
                result.set(Some(Err(why)));
                return;
            }
            let r = app.change_password(c, n).await;
            if r.is_ok() {
                current.set(String::new());
                new.set(String::new());
                repeat.set(String::new());
            }
            result.set(Some(r.map(|()| "Password changed. Your other sessions were signed out.".into())));
        });
    };
    view! {
        <form class="account pad" on:submit=submit>
            <label for="current-password">"Current password"</label>
            <input id="current-password" type="password" autocomplete="current-password" required
                prop:value=move || current.get() on:input=move |ev| current.set(event_target_value(&ev)) />
            <label for="new-password">"New password"</label>
            <input id="new-password" type="password" autocomplete="new-password" required
                prop:value=move || new.get() on:input=move |ev| new.set(event_target_value(&ev)) />
            <crate::auth::StrengthMeter password=new check=check/>
            <label for="repeat-password">"Repeat new password"</label>
            <input id="repeat-password" type="password" autocomplete="new-password" required
                prop:value=move || repeat.get() on:input=move |ev| repeat.set(event_target_value(&ev)) />
            <p class="small notice-reset">{crate::auth::NO_RESET}</p>
            {move || app.account.busy.get().map(|b| view! { <p class="busy" role="status"><span class="spinner" aria-hidden="true"></span>{b}</p> })}
            {move || result.get().map(|r| match r {
                Ok(m) => view! { <p class="ok" role="status">{m}</p> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            })}
            <button type="submit" class="primary" disabled=move || app.account.busy.get().is_some()>"Change password"</button>
        </form>
    }
}

/// Strict forward secrecy: whether this user's devices keep a sealed history archive at the
/// relay, from which a new device (a new browser) reads what was said before it joined.
#[component]
fn HistorySetting() -> impl IntoView {
    let app = expect_context::<App>();
    let on = RwSignal::new(app.archive_on());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let change = move |keep: bool| {
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match app.set_archive(keep).await {
                Ok(()) => on.set(keep),
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="pad history-setting">
            <label class="check"><input type="checkbox" id="keep-history" prop:checked=move || on.get() disabled=move || busy.get()
                on:change=move |ev| change(event_target_checked(&ev)) />" Keep history for new devices"</label>
            <p class="muted small">{move || if on.get() {
                "On: what your devices read in forward-secret chats is also kept at the server, sealed under a key only your password opens, so a new browser shows your history. Someone who later gets your password and the server's data could read it."
            } else {
                "Off (strict forward secrecy): nothing is kept; the server's copy was deleted. A new browser or device starts with no history of forward-secret chats, and a leaked password opens none of it."
            }}</p>
            {move || error.get().map(|e| view! { <p class="error small" role="alert">{e}</p> })}
        </div>
    }
}
