//! Sign in and sign up.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::icons::{Icon, Svg};
use crate::state::{App, Screen};

/// The sign-in / sign-up form.
#[component]
pub fn AuthScreen() -> impl IntoView {
    let app = expect_context::<App>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let signing_up = move || app.account.screen.get() == Screen::SignUp;
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if app.account.busy.get_untracked().is_some() {
            return;
        }
        let (u, p) = (username.get_untracked(), password.get_untracked());
        if app.account.screen.get_untracked() == Screen::SignUp {
            spawn_local(app.sign_up(u, p));
        } else {
            spawn_local(app.sign_in(u, p));
        }
    };
    view! {
        <main class="auth">
            <form class="card" on:submit=submit>
                <h1><span class="logo"><Svg icon=Icon::Lock/></span>" Sealroom"</h1>
                <p class="muted">
                    {move || if signing_up() {
                        "Create an account. Your keys are made in this browser; the server never sees your password or your messages."
                    } else {
                        "Sign in. Your keys are restored from your encrypted backup with your password."
                    }}
                </p>
                <label for="username">"Username"</label>
                <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none"
                    spellcheck="false" required prop:value=move || username.get()
                    on:input=move |ev| username.set(event_target_value(&ev)) />
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" required
                    autocomplete=move || if signing_up() { "new-password" } else { "current-password" }
                    prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev)) />
                <label class="check remember">
                    <input type="checkbox" id="remember" prop:checked=move || app.account.remember.get()
                        on:change=move |ev| app.account.remember.set(event_target_checked(&ev)) />
                    " Remember this browser"
                </label>
                {move || app.account.auth_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                {move || app.account.busy.get().map(|b| view! { <p class="busy" role="status"><span class="spinner" aria-hidden="true"></span>{b}</p> })}
                <button type="submit" class="primary" disabled=move || app.account.busy.get().is_some()>
                    {move || if signing_up() { "Create account" } else { "Sign in" }}
                </button>
                <button type="button" class="link" on:click=move |_| {
                    app.account.auth_error.set(None);
                    app.account.screen.set(if signing_up() { Screen::SignIn } else { Screen::SignUp });
                }>
                    {move || if signing_up() { "I already have an account" } else { "Create an account" }}
                </button>
            </form>
        </main>
    }
}
