//! The web client's password-strength worker.
//!
//! zxcvbn's dictionaries make it about a megabyte of wasm: too much for the client's main bundle,
//! which must reach the sign-up form fast. The page starts this worker only on the screens where
//! a password is chosen, shows the shared core's floor verdict at once, and this worker's verdict
//! (the same [`sealroom_session::password::strength`] with zxcvbn built in) when it answers.
//!
//! Messages: the page posts `[id, password, username]`; the worker answers
//! `[id, score, problem or null]`. It posts `"ready"` once, when it can answer: messages sent
//! before that would be dropped, so the page holds them until then.

#[cfg(target_arch = "wasm32")]
fn main() {
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;

    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let replies = scope.clone();
    let on_message = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let request = js_sys::Array::from(&event.data());
        let (id, password, username) = (request.get(0), request.get(1), request.get(2));
        let (Some(password), Some(username)) = (password.as_string(), username.as_string()) else {
            return;
        };
        let verdict = sealroom_session::password::strength(&password, &username);
        let problem = verdict.problem.map_or(JsValue::NULL, JsValue::from_str);
        // Posting fails only once the page has terminated this worker.
        let _ = replies.post_message(&js_sys::Array::of3(&id, &JsValue::from(verdict.score), &problem));
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    let _ = scope.post_message(&JsValue::from_str("ready"));
}

/// Natively there is nothing to run: the native client links the estimator directly.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("sealroom-strength runs in the browser as a Web Worker; trunk builds it with the web client.");
}
