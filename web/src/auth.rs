//! Create an account / sign in: two tabs over one form that keeps what was typed, a password
//! confirmation and strength meter for new passwords, and a plain word that there is no reset.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::icons::{Icon, Svg};
use sealroom_protocol::Registration;

use crate::state::{App, Screen};
use crate::strength::PasswordCheck;

/// Said wherever a password is chosen.
pub const NO_RESET: &str = "There is no password reset. Your password is the key to your encrypted \
    history: if you forget it, nobody — not even the server's operator — can recover your messages.";

/// The strength of a password being chosen, as the shared client core judges it: the floor at
/// once, zxcvbn's verdict from the strength worker when it answers (the same rule refuses it on
/// submit, in the browser and the CLI).
#[component]
pub fn StrengthMeter(password: RwSignal<String>, check: PasswordCheck) -> impl IntoView {
    view! {
        <Show when=move || !password.with(String::is_empty)>
            <div class="strength" aria-live="polite" data-full=move || check.verdict().full.to_string()>
                <meter min="0" max="4" low="2" high="3" optimum="4" value=move || check.verdict().score
                    aria-label="Password strength"></meter>
                <span class="small" class:error=move || !check.verdict().acceptable()>
                    {move || {
                        let v = check.verdict();
                        match &v.problem {
                            Some(why) => format!("Password {}: {why}.", v.label()),
                            None if v.full => format!("Password strength: {}.", v.label()),
                            None => format!("Password strength: {} (checking against common patterns…).", v.label()),
                        }
                    }}
                </span>
            </div>
        </Show>
    }
}

/// Refuses a new password the full check refuses, in the form's words; waits for the strength
/// worker's answer while it loads.
pub async fn refuse_weak(check: PasswordCheck, busy: RwSignal<Option<String>>) -> Option<String> {
    let was = busy.get_untracked();
    busy.set(Some("Checking your password…".into()));
    let verdict = check.settled().await;
    busy.try_set(was);
    verdict.problem.map(|why| format!("Choose a stronger password: {why}."))
}

/// The account form.
#[component]
pub fn AuthScreen() -> impl IntoView {
    let app = expect_context::<App>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let invite = RwSignal::new(String::new());
    let signing_up = move || app.account.screen.get() == Screen::SignUp;
    let needs_invite = move || app.account.registration.get() == Registration::Invite;
    let closed = move || signing_up() && app.account.registration.get() == Registration::Closed;
    spawn_local(app.load_server_info());
    let check = PasswordCheck::new(password.into(), username.into(), Signal::derive(signing_up));
    let username_ref = NodeRef::<leptos::html::Input>::new();
    let choose = move |screen: Screen| {
        app.account.auth_error.set(None);
        app.account.screen.set(screen);
        if let Some(i) = username_ref.get_untracked() {
            let _ = i.focus();
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if app.account.busy.get_untracked().is_some() {
            return;
        }
        let (u, p) = (username.get_untracked(), password.get_untracked());
        if app.account.screen.get_untracked() == Screen::SignUp {
            if confirm.get_untracked() != p {
                app.account
                    .auth_error
                    .set(Some("The two passwords are not the same. Type them again.".into()));
                return;
            }
            // The name first: it is checked at once, the password may wait for the worker.
            if sealroom_protocol::Username::parse(&u).is_err() {
                app.account.auth_error.set(Some(crate::state::USERNAME_RULE.into()));
                return;
            }
            let code = Some(invite.get_untracked()).filter(|c| !c.trim().is_empty());
            if needs_invite() && code.is_none() {
                app.account
                    .auth_error
                    .set(Some("This server is invite-only: enter the invite code you were given.".into()));
                return;
            }
            spawn_local(async move {
                if let Some(why) = refuse_weak(check, app.account.busy).await {
                    app.account.auth_error.set(Some(why));
                    return;
                }
                app.sign_up(u, p, code).await;
            });
        } else {
            spawn_local(app.sign_in(u, p));
        }
    };
    let tab = move |screen: Screen, label: &'static str| {
        view! {
            <button type="button" role="tab" id=format!("tab-{}", if screen == Screen::SignUp { "signup" } else { "signin" })
                aria-selected=move || (app.account.screen.get() == screen).to_string()
                class:selected=move || app.account.screen.get() == screen
                on:click=move |_| choose(screen)>{label}</button>
        }
    };
    Effect::new(move |_| {
        if let Some(i) = username_ref.get() {
            let _ = i.focus();
        }
    });
    view! {
        <main class="auth">
            <form class="card" on:submit=submit aria-labelledby="auth-title">
                <h1 id="auth-title"><span class="logo"><Svg icon=Icon::Lock/></span>" Sealroom"</h1>
                <div class="tabs" role="tablist" aria-label="Account">
                    {tab(Screen::SignUp, "Create account")}
                    {tab(Screen::SignIn, "Sign in")}
                </div>
                <p class="muted">
                    {move || if signing_up() {
                        "Your keys are made in this browser; the server never sees your password or your messages."
                    } else {
                        "Your keys are restored from your encrypted backup with your password."
                    }}
                </p>
                <label for="username">"Username"</label>
                <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none"
                    spellcheck="false" required node_ref=username_ref prop:value=move || username.get()
                    on:input=move |ev| { app.account.auth_error.set(None); username.set(event_target_value(&ev)); } />
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" required
                    autocomplete=move || if signing_up() { "new-password" } else { "current-password" }
                    prop:value=move || password.get() on:input=move |ev| { app.account.auth_error.set(None); password.set(event_target_value(&ev)); } />
                <Show when=signing_up>
                    <StrengthMeter password=password check=check/>
                    <label for="confirm">"Repeat password"</label>
                    <input id="confirm" name="confirm" type="password" autocomplete="new-password" required
                        prop:value=move || confirm.get() on:input=move |ev| { app.account.auth_error.set(None); confirm.set(event_target_value(&ev)); } />
                    <Show when=needs_invite>
                        <label for="invite">"Invite code"</label>
                        <input id="invite" name="invite" type="text" autocomplete="off" autocapitalize="characters"
                            spellcheck="false" required placeholder="XXXX-XXXX-XXXX-XXXX" aria-describedby="invite-hint"
                            prop:value=move || invite.get() on:input=move |ev| { app.account.auth_error.set(None); invite.set(event_target_value(&ev)); } />
                        <p class="small muted" id="invite-hint">"This server is invite-only. Its operator or an admin can give you a code."</p>
                    </Show>
                    <p class="small notice-reset">{NO_RESET}</p>
                </Show>
                <Show when=closed>
                    <p class="notice" role="status" id="registration-closed">"This server is not taking new accounts. If you already have one, sign in."</p>
                </Show>
                <label class="check remember">
                    <input type="checkbox" id="shared" prop:checked=move || !app.account.remember.get()
                        on:change=move |ev| app.account.remember.set(!event_target_checked(&ev)) />
                    " This is a shared computer: don't keep me signed in"
                </label>
                {move || app.account.auth_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                {move || app.account.busy.get().map(|b| view! { <p class="busy" role="status"><span class="spinner" aria-hidden="true"></span>{b}</p> })}
                <button type="submit" class="primary" disabled=move || app.account.busy.get().is_some() || closed()>
                    {move || if signing_up() { "Create account" } else { "Sign in" }}
                </button>
            </form>
        </main>
    }
}
