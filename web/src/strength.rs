//! Judging a new password: the shared core's floor at once, then the full verdict (the same
//! rule with zxcvbn) from the strength worker, a separate wasm module started only on the screens
//! where a password is chosen (see `web/strength`). If the worker cannot start or load, the floor
//! stands: it is the rule the session flows apply anyway.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_session::Strength;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Where trunk puts the worker's loader (worker file names carry no content hash).
pub const WORKER_URL: &str = "/sealroom-strength_loader.js";

/// What the page says about a password being chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 0 (refused) … 4 (strong), as [`Strength::score`].
    pub score: u8,
    /// Why it is refused, for people; `None` when accepted.
    pub problem: Option<String>,
    /// Whether zxcvbn has judged it (otherwise this is the floor's verdict alone).
    pub full: bool,
}

impl Verdict {
    /// Whether the page accepts it.
    pub fn acceptable(&self) -> bool {
        self.problem.is_none()
    }

    /// The score in a word.
    pub fn label(&self) -> &'static str {
        Strength { score: self.score, problem: None }.label()
    }

    fn floor(password: &str, username: &str) -> Self {
        let s = sealroom_session::strength(password, username);
        Verdict { score: s.score, problem: s.problem.map(str::to_owned), full: false }
    }
}

#[derive(Default)]
struct Shared {
    ready: bool,
    failed: bool,
    next_id: u32,
    /// Requests made before the worker said it was ready.
    held: Vec<js_sys::Array>,
    waiting: HashMap<u32, oneshot::Sender<Verdict>>,
}

/// A running strength worker; terminated when dropped.
struct StrengthWorker {
    worker: web_sys::Worker,
    shared: Rc<RefCell<Shared>>,
    _on_message: Closure<dyn Fn(web_sys::MessageEvent)>,
    _on_error: Closure<dyn Fn(web_sys::Event)>,
}

impl std::fmt::Debug for StrengthWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrengthWorker").finish_non_exhaustive()
    }
}

impl StrengthWorker {
    /// Starts the worker; `None` if the browser refuses to.
    fn start() -> Option<Self> {
        let worker = web_sys::Worker::new(WORKER_URL).ok()?;
        let shared = Rc::new(RefCell::new(Shared::default()));
        let on_message = {
            let (shared, worker) = (shared.clone(), worker.clone());
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
                let data = event.data();
                let mut s = shared.borrow_mut();
                if data.as_string().as_deref() == Some("ready") {
                    s.ready = true;
                    for request in std::mem::take(&mut s.held) {
                        let _ = worker.post_message(&request);
                    }
                    return;
                }
                let reply = js_sys::Array::from(&data);
                let Some(id) = reply.get(0).as_f64().map(|id| id as u32) else { return };
                let score = reply.get(1).as_f64().map_or(0, |n| n.clamp(0.0, 4.0) as u8);
                let verdict = Verdict { score, problem: reply.get(2).as_string(), full: true };
                if let Some(tx) = s.waiting.remove(&id) {
                    let _ = tx.send(verdict);
                }
            })
        };
        let on_error = {
            let shared = shared.clone();
            Closure::<dyn Fn(web_sys::Event)>::new(move |_event: web_sys::Event| {
                let mut s = shared.borrow_mut();
                s.failed = true;
                s.held.clear();
                // Dropping the senders lets every waiting judgement fall back to the floor.
                s.waiting.clear();
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Some(StrengthWorker { worker, shared, _on_message: on_message, _on_error: on_error })
    }

    /// The full verdict on a password the floor accepts; the floor's if the worker failed.
    fn judge(&self, password: &str, username: &str) -> impl std::future::Future<Output = Option<Verdict>> {
        let rx = {
            let mut s = self.shared.borrow_mut();
            if s.failed {
                None
            } else {
                let id = s.next_id;
                s.next_id = s.next_id.wrapping_add(1);
                let (tx, rx) = oneshot::channel();
                s.waiting.insert(id, tx);
                let request = js_sys::Array::of3(
                    &JsValue::from(id),
                    &JsValue::from_str(password),
                    &JsValue::from_str(username),
                );
                if s.ready {
                    let _ = self.worker.post_message(&request);
                } else {
                    s.held.push(request);
                }
                Some(rx)
            }
        };
        async move { rx?.await.ok() }
    }
}

impl Drop for StrengthWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

/// The verdict on a password as it is typed, for a form that chooses one. The worker starts
/// the first time the form is `choosing` a password and ends with the form.
#[derive(Debug, Clone, Copy)]
pub struct PasswordCheck {
    password: Signal<String>,
    username: Signal<String>,
    verdict: RwSignal<Verdict>,
    worker: StoredValue<Option<Rc<StrengthWorker>>, LocalStorage>,
}

impl PasswordCheck {
    /// Judges `password` for `username` while either changes and `choosing` holds.
    pub fn new(password: Signal<String>, username: Signal<String>, choosing: Signal<bool>) -> Self {
        let worker = StoredValue::new_local(None::<Rc<StrengthWorker>>);
        let verdict = RwSignal::new(Verdict::floor("", ""));
        let check = PasswordCheck { password, username, verdict, worker };
        let mut started = false;
        Effect::new(move |_| {
            if !choosing.get() {
                return;
            }
            if !started {
                started = true;
                worker.set_value(StrengthWorker::start().map(Rc::new));
            }
            let (p, u) = (password.get(), username.get());
            let floor = Verdict::floor(&p, &u);
            let refused = !floor.acceptable();
            verdict.set(floor);
            if refused {
                return;
            }
            let Some(worker) = worker.get_value() else { return };
            spawn_local(async move {
                let Some(full) = worker.judge(&p, &u).await else { return };
                // A verdict on what is no longer typed is dropped.
                let current = password.try_with_untracked(|now| *now == p).unwrap_or(false)
                    && username.try_with_untracked(|now| *now == u).unwrap_or(false);
                if current {
                    verdict.try_set(full);
                }
            });
        });
        check
    }

    /// The verdict on what is typed now (the floor's until the worker answers).
    pub fn verdict(&self) -> Verdict {
        self.verdict.get()
    }

    /// The verdict to submit by: waits for the worker's answer on what is typed now.
    pub async fn settled(self) -> Verdict {
        let (p, u) = (self.password.get_untracked(), self.username.get_untracked());
        let floor = Verdict::floor(&p, &u);
        if !floor.acceptable() {
            return floor;
        }
        let Some(worker) = self.worker.try_get_value().flatten() else { return floor };
        worker.judge(&p, &u).await.unwrap_or(floor)
    }
}
