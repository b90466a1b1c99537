//! For relay admins (granted by the operator's `sealroom admin grant-admin`): invite codes,
//! made, listed and revoked in the account menu.

use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_protocol::endpoint::{CreateInvite, GetMe, Invites, RevokeInvite};
use sealroom_protocol::{CreateInviteRequest, Endpoint, InviteInfo, InviteState};

use crate::state::{call, human, App};

/// Whether the signed-in user administers the relay (asked once the menu opens).
pub fn admin_signal() -> RwSignal<bool> {
    let admin = RwSignal::new(false);
    spawn_local(async move {
        if let Ok(me) = call::<GetMe>(GetMe::PATH, None).await {
            admin.try_set(me.admin);
        }
    });
    admin
}

/// Invite codes: make one (shown once), list them, revoke one.
#[component]
pub fn InvitePanel() -> impl IntoView {
    let app = expect_context::<App>();
    let uses = RwSignal::new("1".to_owned());
    let expires = RwSignal::new("604800".to_owned());
    let note = RwSignal::new(String::new());
    let created = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let list = RwSignal::new(None::<Result<Vec<InviteInfo>, String>>);
    let load = move || {
        spawn_local(async move {
            list.try_set(Some(
                call::<Invites>(Invites::PATH, None).await.map(|l| l.invites).map_err(|e| human(&e)),
            ));
        })
    };
    load();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        let Ok(max_uses) = uses.get_untracked().trim().parse::<u32>() else {
            error.set(Some("Uses must be a whole number from 1 to 10,000.".into()));
            return;
        };
        let expires_in_secs = expires.get_untracked().parse::<u64>().ok().filter(|s| *s > 0);
        let body = CreateInviteRequest { max_uses, expires_in_secs, note: note.get_untracked() };
        spawn_local(async move {
            match call::<CreateInvite>(CreateInvite::PATH, Some(&body)).await {
                Ok(made) => {
                    created.set(Some(made.code));
                    note.set(String::new());
                    load();
                }
                Err(e) => error.set(Some(human(&e))),
            }
        });
    };
    let revoke = move |id: i64| {
        spawn_local(async move {
            match call::<RevokeInvite>(&RevokeInvite::path(&[&id]), None).await {
                Ok(()) => app.ui.notice.set(Some("Invite revoked: it lets nobody else in.".into())),
                Err(e) => error.set(Some(human(&e))),
            }
            load();
        })
    };
    view! {
        <section class="invites pad" aria-label="Invites">
            <p class="small">"People need an invite code to create an account here. Each code works for the number of sign-ups you choose, until it expires."</p>
            <form class="invite-form" on:submit=submit>
                <label for="invite-uses">"Sign-ups"</label>
                <input id="invite-uses" type="number" min="1" max="10000" required
                    prop:value=move || uses.get() on:input=move |ev| uses.set(event_target_value(&ev)) />
                <label for="invite-expires">"Expires"</label>
                <select id="invite-expires" prop:value=move || expires.get() on:change=move |ev| expires.set(event_target_value(&ev))>
                    <option value="86400">"in a day"</option>
                    <option value="604800">"in a week"</option>
                    <option value="2592000">"in 30 days"</option>
                    <option value="0">"never"</option>
                </select>
                <label for="invite-note">"For whom (only admins see this)"</label>
                <input id="invite-note" type="text" maxlength="200" autocomplete="off"
                    prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev)) />
                <button type="submit" class="primary">"Create invite"</button>
            </form>
            {move || created.get().map(|code| view! {
                <div class="invite-code" role="status">
                    <p class="small">"The new code, shown only now: copy it and send it to them."</p>
                    <code id="new-invite-code">{code}</code>
                </div>
            })}
            {move || error.get().map(|e| view! { <p class="error small" role="alert">{e}</p> })}
            {move || match list.get() {
                None => view! { <p class="busy" role="status"><span class="spinner" aria-hidden="true"></span>"Loading invites…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Some(Ok(invites)) => view! {
                    <ul class="invite-list">
                        {invites.into_iter().map(|i| {
                            let id = i.id;
                            let active = i.state == InviteState::Active;
                            let state = match i.state {
                                InviteState::Active => "active",
                                InviteState::UsedUp => "used up",
                                InviteState::Expired => "expired",
                                InviteState::Revoked => "revoked",
                            };
                            let who = if i.note.is_empty() { format!("Invite {id}") } else { i.note.clone() };
                            let detail = format!("{} of {} used · {state}", i.uses, i.max_uses);
                            view! {
                                <li class="invite" class:inactive=!active>
                                    <span class="invite-note">{who}</span>
                                    <span class="small">{detail}</span>
                                    {active.then(|| view! { <button class="link" on:click=move |_| revoke(id)>"Revoke"</button> })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </section>
    }
}
