//! Group chats: making one, and the members panel (verification, adding, removing, renaming,
//! leaving). Every change is a commit the browser's device makes (`state::mls`); the relay
//! checks who may make it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_protocol::ConversationId;

use crate::state::{App, GroupChange};

/// The names in a list typed by a person: split at commas and spaces, lowercased, each once,
/// without this user.
pub fn names_in(text: &str, me: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in text.split([',', ' ', '\n', ';']).map(|n| n.trim().trim_start_matches('@').to_ascii_lowercase())
    {
        if !n.is_empty() && n != me && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// What is wrong with a group name a person typed, in words (the rule is
/// `sealroom_crypto::check_group_name`'s): `None` when it is fine.
pub fn name_problem(name: &str) -> Option<String> {
    let max = sealroom_crypto::MAX_GROUP_NAME;
    if name.trim().is_empty() {
        Some("Give the group a name.".into())
    } else if name.len() > max {
        Some(format!(
            "That name is too long: a group name has at most {max} bytes, and this one has {}. Accented and non-Latin letters take two to four bytes each.",
            name.len()
        ))
    } else if name.chars().any(char::is_control) {
        Some("A group name cannot contain tabs, line breaks or other control characters.".into())
    } else {
        None
    }
}

/// An error from the device for the form: capitalized, unless it starts with one of `names`
/// (usernames are lowercase, and shown as they are).
fn said(e: &str, names: &[String]) -> String {
    if names.iter().any(|n| e.starts_with(&format!("{n} "))) {
        e.to_owned()
    } else {
        crate::state::capitalize(e)
    }
}

/// "New group": a name and the people in it.
#[component]
pub fn NewGroup(open: RwSignal<bool>) -> impl IntoView {
    let app = expect_context::<App>();
    let name = RwSignal::new(String::new());
    let people = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let name_ref = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(i) = name_ref.get() {
            let _ = i.focus();
        }
    });
    let create = move || {
        let me = app.account.me.get_untracked().unwrap_or_default();
        let members = names_in(&people.get_untracked(), &me);
        let n = name.get_untracked().trim().to_owned();
        if let Some(problem) = name_problem(&n) {
            return error.set(Some(problem));
        }
        if members.is_empty() {
            return error.set(Some("Add at least one person, by username.".into()));
        }
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            match app.create_group(n, members.clone()).await {
                Ok(()) => {
                    open.set(false);
                    name.set(String::new());
                    people.set(String::new());
                }
                Err(e) => error.set(Some(said(&e, &members))),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="panel new-group" aria-label="New group" on:submit=move |ev| { ev.prevent_default(); create(); }>
            <label for="group-name">"Group name"</label>
            <input id="group-name" node_ref=name_ref maxlength="128" autocomplete="off" prop:value=move || name.get()
                on:input=move |ev| { name.set(event_target_value(&ev)); error.set(None); } />
            <label for="group-members">"People (usernames, separated by commas)"</label>
            <input id="group-members" autocomplete="off" placeholder="ana, ben" prop:value=move || people.get()
                on:input=move |ev| { people.set(event_target_value(&ev)); error.set(None); } />
            <p class="muted small">"Everyone's messages in the group are forward-secret (MLS). You will be its admin."</p>
            {move || error.get().map(|e| view! { <p class="error small" role="alert">{e}</p> })}
            <div class="row-buttons">
                <button type="submit" class="primary" disabled=move || busy.get()>{move || if busy.get() { "Creating…" } else { "Create group" }}</button>
                <button type="button" class="link" on:click=move |_| open.set(false)>"Cancel"</button>
            </div>
        </form>
    }
}

/// The open group's members: who is an admin, whose key this user verified (with each one's
/// safety number), and what an admin (or any member) may change.
#[component]
pub fn Members(id: ConversationId, open: RwSignal<bool>) -> impl IntoView {
    let app = expect_context::<App>();
    let me = app.account.me.get_untracked().unwrap_or_default();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(None::<&'static str>);
    let adding = RwSignal::new(String::new());
    let renaming = RwSignal::new(String::new());
    let safety = RwSignal::new(None::<String>);
    let leaving = RwSignal::new(false);
    // Verification is read from the vault when drawn; a change redraws through this.
    let verified_tick = RwSignal::new(0u32);
    let members = Memo::new(move |_| {
        app.rooms.group.with(|g| {
            g.as_ref().map(|g| g.members.iter().map(|m| (m.user.to_string(), m.admin)).collect::<Vec<_>>())
        })
    });
    let me_admin = {
        let me = me.clone();
        Memo::new(move |_| {
            members.with(|ms| ms.as_ref().is_some_and(|ms| ms.iter().any(|(u, a)| *u == me && *a)))
        })
    };
    let run = move |what: &'static str, change: GroupChange| {
        busy.set(Some(what));
        error.set(None);
        let mut names =
            members.with_untracked(|ms| ms.iter().flatten().map(|(u, _)| u.clone()).collect::<Vec<_>>());
        if let GroupChange::Add { users } = &change {
            names.extend(users.iter().cloned());
        }
        spawn_local(async move {
            if let Err(e) = app.change_group(id, change).await {
                error.set(Some(said(&e, &names)));
            }
            busy.set(None);
        });
    };
    let add = move || {
        let me = app.account.me.get_untracked().unwrap_or_default();
        let users = names_in(&adding.get_untracked(), &me);
        if users.is_empty() {
            return;
        }
        adding.set(String::new());
        run("Adding…", GroupChange::Add { users });
    };
    let rename = move || {
        let name = renaming.get_untracked().trim().to_owned();
        if name.is_empty() {
            return;
        }
        if let Some(problem) = name_problem(&name) {
            return error.set(Some(problem));
        }
        renaming.set(String::new());
        run("Renaming…", GroupChange::Rename { name });
    };
    view! {
        <div class="panel members" role="dialog" aria-label="Members">
            <p><strong>"Members"</strong>{move || busy.get().map(|b| view! { <span class="muted small" role="status">" "{b}</span> })}</p>
            {move || members.get().is_none().then(|| view! { <p class="muted small">"Loading…"</p> })}
            <ul class="member-list">
                <For each=move || members.get().unwrap_or_default() key=|m| m.clone() let:m>
                    {
                        let (user, admin) = m;
                        let mine = user == me;
                        let u_safety = user.clone();
                        let u_shown = user.clone();
                        let u_remove = user.clone();
                        let u_verified = user.clone();
                        let u_mark = user.clone();
                        let u_changed = user.clone();
                        let changed = Memo::new(move |_| app.rooms.key_alerts.with(|k| k.contains_key(&u_changed)));
                        let verified = Memo::new(move |_| { verified_tick.get(); !mine && app.is_verified(&u_verified) });
                        view! {
                            <li class="member">
                                <span class=crate::sidebar::avatar_class(&user) aria-hidden="true">{crate::sidebar::initial(&user)}</span>
                                <span class="grow col">
                                    <span class="member-name">{if mine { format!("{user} (you)") } else { user.clone() }}
                                        {admin.then(|| view! { <span class="tag">"admin"</span> })}</span>
                                    {(!mine).then(|| view! {
                                        <span class="small" class:verified=move || verified.get() && !changed.get()
                                            class:key-changed=move || changed.get() class:muted=move || !verified.get() && !changed.get()>
                                            {move || match (changed.get(), verified.get()) {
                                                (true, _) => "security key changed",
                                                (false, true) => "✔ verified",
                                                (false, false) => "not verified",
                                            }}</span>
                                    })}
                                </span>
                                {(!mine).then(|| view! {
                                    <button class="link small" aria-expanded=move || (safety.get().as_deref() == Some(u_shown.as_str())).to_string()
                                        on:click=move |_| safety.update(|s| *s = if s.as_deref() == Some(u_safety.as_str()) { None } else { Some(u_safety.clone()) })>"Safety number"</button>
                                })}
                                {move || (me_admin.get() && !mine).then(|| {
                                    let u = u_remove.clone();
                                    view! {
                                        <button class="link small danger-link" aria-label=format!("Remove {u}")
                                            on:click=move |_| run("Removing…", GroupChange::Remove { users: vec![u.clone()] })>"Remove"</button>
                                    }
                                })}
                            </li>
                            {move || (safety.get().as_deref() == Some(u_mark.as_str())).then(|| {
                                let u = u_mark.clone();
                                let number = app.safety_number(&u).unwrap_or_else(|| "not known yet: it is known once you have read their key".into());
                                view! {
                                    <li class="member-safety">
                                        <p class="small">"Compare this number with the one "<strong>{u.clone()}</strong>" sees."</p>
                                        <p class="safety">{number}</p>
                                        <button class="primary" on:click=move |_| {
                                            let u = u.clone();
                                            spawn_local(async move { app.mark_verified(u).await; verified_tick.update(|t| *t += 1); });
                                            safety.set(None);
                                        }>"Mark as verified"</button>
                                    </li>
                                }
                            })}
                        }
                    }
                </For>
            </ul>
            {move || me_admin.get().then(|| view! {
                <form class="inline-form" on:submit=move |ev| { ev.prevent_default(); add(); }>
                    <label for="add-members" class="sr-only">"Add people"</label>
                    <input id="add-members" autocomplete="off" placeholder="Add people by username…" prop:value=move || adding.get()
                        on:input=move |ev| adding.set(event_target_value(&ev)) />
                    <button type="submit" class="primary" disabled=move || busy.get().is_some()>"Add"</button>
                </form>
            })}
            <form class="inline-form" on:submit=move |ev| { ev.prevent_default(); rename(); }>
                <label for="rename-group" class="sr-only">"New name"</label>
                <input id="rename-group" autocomplete="off" maxlength="128" placeholder="New name for the group…" prop:value=move || renaming.get()
                    on:input=move |ev| renaming.set(event_target_value(&ev)) />
                <button type="submit" class="primary" disabled=move || busy.get().is_some()>"Rename"</button>
            </form>
            {move || error.get().map(|e| view! { <p class="error small" role="alert">{e}</p> })}
            <div class="row-buttons">
                {move || if leaving.get() {
                    view! {
                        <span class="small">"Leave this group? You will no longer receive its messages."</span>
                        <button class="danger-btn" on:click=move |_| { leaving.set(false); run("Leaving…", GroupChange::Leave); }>"Leave"</button>
                        <button class="link" on:click=move |_| leaving.set(false)>"Stay"</button>
                    }.into_any()
                } else {
                    view! {
                        <button class="danger-btn" on:click=move |_| leaving.set(true)>"Leave group"</button>
                        <button class="link" on:click=move |_| open.set(false)>"Close"</button>
                    }.into_any()
                }}
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_list_of_people_is_split_deduplicated_and_leaves_out_oneself() {
        assert_eq!(names_in("Ana, ben ben;@carol\n  ", "dave"), ["ana", "ben", "carol"]);
        assert_eq!(names_in("dave, ana", "dave"), ["ana"]);
        assert!(names_in(" , ;", "dave").is_empty());
    }
}
