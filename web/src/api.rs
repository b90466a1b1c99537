//! Talking to the relay from the browser: `fetch` with the session cookie for REST, and one
//! WebSocket with reconnect and backoff.

use std::cell::RefCell;
use std::rc::Rc;

use sealroom_protocol::{ApiError, ClientFrame, ErrorCode, ServerFrame};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// A REST call. The browser sends the HttpOnly session cookie itself.
pub async fn call<B: Serialize, T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<&B>,
) -> Result<T, ApiError> {
    let unreachable = |what: &str| ApiError::new(ErrorCode::Internal, format!("server unreachable ({what})"));
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().map_err(|_| unreachable("headers"))?;
    if let Some(b) = body {
        let text =
            serde_json::to_string(b).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
        headers.set("content-type", "application/json").map_err(|_| unreachable("headers"))?;
        init.set_body(&JsValue::from_str(&text));
    }
    init.set_headers(&headers);
    let req = web_sys::Request::new_with_str_and_init(path, &init).map_err(|_| unreachable("request"))?;
    let window = web_sys::window().ok_or_else(|| unreachable("window"))?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|_| unreachable("network"))?
        .dyn_into()
        .map_err(|_| unreachable("response"))?;
    let text = JsFuture::from(resp.text().map_err(|_| unreachable("body"))?)
        .await
        .map_err(|_| unreachable("body"))?
        .as_string()
        .unwrap_or_default();
    if resp.ok() {
        let text = if text.is_empty() { "null" } else { &text };
        return serde_json::from_str(text)
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("bad response: {e}")));
    }
    Err(serde_json::from_str::<ApiError>(&text).unwrap_or_else(|_| {
        ApiError::new(ErrorCode::Internal, format!("the server answered HTTP {}", resp.status()))
    }))
}

/// Shorthand for a body-less call.
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    call::<(), T>("GET", path, None).await
}

type FrameHandler = Rc<dyn Fn(ServerFrame)>;
type StateHandler = Rc<dyn Fn(bool)>;

struct Inner {
    ws: Option<web_sys::WebSocket>,
    on_frame: FrameHandler,
    on_state: StateHandler,
    attempt: u32,
    stopped: bool,
    // Closures must outlive the socket that calls them.
    _keep: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// The app's single WebSocket. Reconnects with exponential backoff (1 s … 30 s) until stopped.
#[derive(Clone)]
pub struct Socket(Rc<RefCell<Inner>>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("attempt", &self.0.borrow().attempt).finish_non_exhaustive()
    }
}

impl Socket {
    /// Connects to `/ws` on this origin; `on_state(true)` after each (re)connect.
    pub fn connect(on_frame: impl Fn(ServerFrame) + 'static, on_state: impl Fn(bool) + 'static) -> Self {
        let s = Socket(Rc::new(RefCell::new(Inner {
            ws: None,
            on_frame: Rc::new(on_frame),
            on_state: Rc::new(on_state),
            attempt: 0,
            stopped: false,
            _keep: Vec::new(),
        })));
        s.open();
        s
    }

    fn url() -> Option<String> {
        let loc = web_sys::window()?.location();
        let scheme = if loc.protocol().ok()? == "https:" { "wss" } else { "ws" };
        Some(format!("{scheme}://{}/ws", loc.host().ok()?))
    }

    fn open(&self) {
        let Some(url) = Self::url() else { return };
        let Ok(ws) = web_sys::WebSocket::new(&url) else {
            self.retry();
            return;
        };
        let me = self.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            let cb = {
                let mut inner = me.0.borrow_mut();
                inner.attempt = 0;
                inner.on_state.clone()
            };
            cb(true);
        });
        let me = self.clone();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
            let Some(text) = ev.dyn_ref::<web_sys::MessageEvent>().and_then(|m| m.data().as_string()) else {
                return;
            };
            if let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) {
                let cb = me.0.borrow().on_frame.clone();
                cb(frame);
            }
        });
        let me = self.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            let (cb, stopped) = {
                let inner = me.0.borrow();
                (inner.on_state.clone(), inner.stopped)
            };
            cb(false);
            if !stopped {
                me.retry();
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let mut inner = self.0.borrow_mut();
        inner._keep = vec![on_open, on_message, on_close];
        inner.ws = Some(ws);
    }

    fn retry(&self) {
        let delay = {
            let mut inner = self.0.borrow_mut();
            inner.attempt = (inner.attempt + 1).min(6);
            1000u64 << (inner.attempt - 1).min(5)
        };
        let me = self.clone();
        leptos::prelude::set_timeout(
            move || {
                if !me.0.borrow().stopped {
                    me.open();
                }
            },
            std::time::Duration::from_millis(delay.min(30_000)),
        );
    }

    /// Sends a frame; false if not connected (the caller keeps it queued).
    pub fn send(&self, frame: &ClientFrame) -> bool {
        let inner = self.0.borrow();
        let Some(ws) = inner.ws.as_ref() else { return false };
        if ws.ready_state() != web_sys::WebSocket::OPEN {
            return false;
        }
        let Ok(text) = serde_json::to_string(frame) else { return false };
        ws.send_with_str(&text).is_ok()
    }

    /// Closes for good (sign-out).
    pub fn stop(&self) {
        let mut inner = self.0.borrow_mut();
        inner.stopped = true;
        if let Some(ws) = inner.ws.take() {
            let _ = ws.close();
        }
    }

    /// Drops the current connection so it reconnects now (a tab waking up).
    pub fn reconnect_now(&self) {
        let ws = self.0.borrow_mut().ws.take();
        if let Some(ws) = ws {
            let _ = ws.close();
        } else {
            self.open();
        }
    }
}
