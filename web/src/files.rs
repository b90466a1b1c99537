//! Attachments in the browser: encrypt a file slice by slice into a ciphertext blob, upload it
//! with progress, send the `File` payload; fetch a blob as a stream, decrypt it chunk by chunk,
//! and hand the file to the user only when all of it authenticated and matched the message.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_crypto::{FileDecryptor, FileKey, FileRef, MessageHeader, Payload, StreamEncryptor};
use sealroom_protocol::endpoint::{BlobInfo, DeleteBlob, DownloadBlob, Endpoint, UploadBlob};
use sealroom_protocol::{blob_size_for, ApiError, ClientMsgId, ErrorCode, UploadResponse};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::state::{futures_channel, next_event, now, App, Delivery, FileMeta, Msg, Room};

/// Plaintext read from the file per step while encrypting (also the progress granularity).
const SLICE: f64 = 1024.0 * 1024.0;
/// Plaintext gathered before it becomes one part of the decrypted `Blob`.
const PART: usize = 1 << 20;
/// Images up to this size are fetched and shown inline without asking.
pub const INLINE_IMAGE_MAX: u64 = 25 << 20;
/// What the user sees for a blob that fails authentication.
pub const CORRUPTED: &str = "File corrupted or tampered with — not opened.";

/// Raster image types shown inline (never SVG: it is a document, not a picture).
pub fn is_inline_image(mime: &str) -> bool {
    matches!(mime, "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif")
}

/// "1.5 MB" and the like, in binary multiples (as the relay's limits are set: 100M = 100 MB).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1023.95 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// A transfer the user can stop.
#[derive(Default)]
struct Cancel {
    stopped: Cell<bool>,
    upload: bool,
    xhr: RefCell<Option<web_sys::XmlHttpRequest>>,
}

thread_local! {
    static CANCELS: RefCell<HashMap<String, Rc<Cancel>>> = RefCell::new(HashMap::new());
}

fn register_cancel(key: &str, upload: bool) -> Rc<Cancel> {
    let c = Rc::new(Cancel { upload, ..Cancel::default() });
    CANCELS.with(|m| m.borrow_mut().insert(key.to_owned(), c.clone()));
    c
}

fn unregister_cancel(key: &str) {
    CANCELS.with(|m| m.borrow_mut().remove(key));
}

/// Stops the transfer of message `key` (an upload also removes its message).
pub fn cancel(app: App, key: &str) {
    if let Some(c) = CANCELS.with(|m| m.borrow_mut().remove(key)) {
        c.stopped.set(true);
        if let Some(x) = c.xhr.borrow_mut().take() {
            let _ = x.abort();
        }
    }
    app.transfers.progress.update(|p| {
        p.remove(key);
    });
}

/// Forgets every decrypted file (revoking its object URL) and stops downloads: the chat changed.
/// Uploads go on (their message is sent when they finish) unless `everything` (signing out).
pub fn drop_all(app: App, everything: bool) {
    let keys: Vec<String> = CANCELS.with(|m| {
        m.borrow().iter().filter(|(_, c)| everything || !c.upload).map(|(k, _)| k.clone()).collect()
    });
    for k in keys {
        cancel(app, &k);
    }
    let old = app.transfers.files.try_update(std::mem::take).unwrap_or_default();
    for url in old.into_values().flatten() {
        let _ = web_sys::Url::revoke_object_url(&url);
    }
    let uploading: Vec<String> = CANCELS.with(|m| m.borrow().keys().cloned().collect());
    app.transfers.progress.update(|p| p.retain(|k, _| uploading.contains(k)));
}

fn set_progress(app: App, key: &str, what: &str, fraction: f64) {
    let key = key.to_owned();
    let what = what.to_owned();
    app.transfers.progress.update(move |p| {
        p.insert(key, (what, fraction.clamp(0.0, 1.0)));
    });
}

fn clear_progress(app: App, key: &str) {
    app.transfers.progress.update(|p| {
        p.remove(key);
    });
}

fn fail_msg(app: App, key: &str, why: String) {
    app.timeline.msgs.update(|ms| {
        if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
            m.state = Delivery::Failed(why);
        }
    });
}

fn js_err(what: &str) -> String {
    format!("{what} failed in this browser")
}

impl App {
    /// Sends each file to the open chat (attach button, drop or paste).
    pub fn send_files(self, files: Vec<web_sys::File>) {
        for f in files {
            spawn_local(self.send_file(f));
        }
    }

    async fn send_file(self, file: web_sys::File) {
        let Some(room) = self.rooms.active.get_untracked() else { return };
        if self.rooms.paused.get_untracked() {
            return;
        }
        let name = file.name();
        let size = file.size() as u64;
        // The relay would refuse these; say so before encrypting anything.
        let info = match crate::state::call::<BlobInfo>(BlobInfo::PATH, None).await {
            Ok(i) => i,
            Err(e) => return self.ui.notice.set(Some(crate::state::human(&e))),
        };
        match info.refusal(size) {
            None => {}
            Some(ErrorCode::PayloadTooLarge) => {
                return self.ui.notice.set(Some(format!(
                    "“{name}” is too large to send: the limit is {}.",
                    human_size(info.max_file_size)
                )))
            }
            Some(_) => {
                return self.ui.notice.set(Some(format!(
                "“{name}” does not fit in your storage quota ({} of {} used). Clearing chats frees space.",
                human_size(info.used),
                human_size(info.quota)
            )))
            }
        }
        let header = match MessageHeader::new(now() as u64) {
            Ok(h) => h,
            Err(e) => return self.ui.notice.set(Some(e.to_string())),
        };
        let key = ClientMsgId(header.client_msg_id).to_b64();
        let mime = {
            let t = file.type_();
            if t.is_empty() || t.len() > sealroom_crypto::MAX_MIME || !t.is_ascii() {
                "application/octet-stream".to_owned()
            } else {
                t
            }
        };
        let mut payload_name = name.clone();
        while payload_name.len() > sealroom_crypto::MAX_FILE_NAME {
            payload_name.pop();
        }
        // Show it at once; an image previews from the local file while it uploads.
        if is_inline_image(&mime) {
            if let Ok(url) = web_sys::Url::create_object_url_with_blob(&file) {
                let k = key.clone();
                self.transfers.files.update(|f| {
                    f.insert(k, Ok(url));
                });
            }
        }
        self.timeline.msgs.update(|ms| {
            ms.push(Msg {
                folded: format!("File: {payload_name}").to_lowercase(),
                key: key.clone(),
                id: None,
                mine: true,
                text: format!("File: {payload_name}"),
                ts: now(),
                relay_ts: None,
                state: Delivery::Sending,
                envelope: String::new(),
                undecryptable: false,
                file: Some(FileMeta { name: payload_name.clone(), size, mime: mime.clone(), stored: None }),
                seq: None,
                sender: None,
                system: false,
            })
        });
        let cancel = register_cancel(&key, true);
        let uploaded = self.encrypt_and_upload(&key, &file, &cancel).await;
        unregister_cancel(&key);
        clear_progress(self, &key);
        if cancel.stopped.get() {
            self.timeline.msgs.update(|ms| ms.retain(|m| m.key != key));
            if let Ok((resp, _, _)) = uploaded {
                let _ = crate::state::call::<DeleteBlob>(&DeleteBlob::path(&[&resp.blob_id]), None).await;
            }
            return;
        }
        let (resp, file_key, sha) = match uploaded {
            Ok(x) => x,
            Err(why) => return fail_msg(self, &key, why),
        };
        let stored = FileRef {
            blob_id: resp.blob_id.to_string(),
            file_key,
            ciphertext_sha256: sha,
            size,
            name: payload_name.clone(),
            mime: mime.clone(),
        };
        let payload = Payload::File(stored.clone());
        // In a conversation in MLS, the file goes there too (as a text does).
        let route = match &room {
            Room::Group(id) => Some(*id),
            Room::Direct(peer) => match self.mls_route(peer).await {
                Ok(route) => route,
                Err(e) => return fail_msg(self, &key, e.human()),
            },
        };
        if let Some(conversation) = route {
            self.timeline.msgs.update(|ms| {
                if let Some(f) = ms.iter_mut().find(|m| m.key == key).and_then(|m| m.file.as_mut()) {
                    f.stored = Some(stored.clone());
                }
            });
            self.touch_conv(&room, format!("You: File: {payload_name}"), now(), false, next_event());
            let sent_ms = header.sent_at_ms;
            return self
                .send_shown(&room, conversation, header.client_msg_id, &payload, vec![resp.blob_id], sent_ms)
                .await;
        }
        let Room::Direct(peer) = room else { return };
        let Some((frame, envelope)) = self.seal(&peer, &header, &payload, vec![resp.blob_id]).await else {
            return fail_msg(self, &key, "could not encrypt the message".into());
        };
        self.timeline.msgs.update(|ms| {
            if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                m.envelope = envelope;
                if let Some(f) = m.file.as_mut() {
                    f.stored = Some(stored);
                }
            }
        });
        self.touch_conv(
            &Room::Direct(peer.clone()),
            format!("You: File: {payload_name}"),
            now(),
            false,
            next_event(),
        );
        self.enqueue(peer, frame);
    }

    /// Encrypts `file` slice by slice into a ciphertext `Blob`, then uploads it.
    async fn encrypt_and_upload(
        self,
        key: &str,
        file: &web_sys::File,
        cancel: &Rc<Cancel>,
    ) -> Result<(UploadResponse, FileKey, [u8; 32]), String> {
        let file_key = FileKey::generate().map_err(|e| e.to_string())?;
        let mut enc = StreamEncryptor::new(&file_key);
        let parts = js_sys::Array::new();
        let total = file.size();
        let mut offset = 0.0;
        let mut out = Vec::with_capacity(SLICE as usize + 65_536);
        set_progress(self, key, "Encrypting", 0.0);
        while offset < total {
            if cancel.stopped.get() {
                return Err("cancelled".into());
            }
            let end = (offset + SLICE).min(total);
            let slice = file.slice_with_f64_and_f64(offset, end).map_err(|_| js_err("reading the file"))?;
            let buf = JsFuture::from(slice.array_buffer()).await.map_err(|_| js_err("reading the file"))?;
            let bytes = js_sys::Uint8Array::new(&buf).to_vec();
            out.clear();
            enc.push(&bytes, &mut out).map_err(|e| e.to_string())?;
            if !out.is_empty() {
                parts.push(&js_sys::Uint8Array::from(out.as_slice()));
            }
            offset = end;
            set_progress(self, key, "Encrypting", offset / total.max(1.0));
        }
        out.clear();
        let sha = enc.finish(&mut out).map_err(|e| e.to_string())?;
        parts.push(&js_sys::Uint8Array::from(out.as_slice()));
        let blob =
            web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(|_| js_err("building the upload"))?;
        set_progress(self, key, "Uploading", 0.0);
        let resp = self.upload(key, &blob, cancel).await?;
        Ok((resp, file_key, sha))
    }

    /// POSTs the ciphertext with XMLHttpRequest (fetch cannot report upload progress).
    async fn upload(
        self,
        key: &str,
        blob: &web_sys::Blob,
        cancel: &Rc<Cancel>,
    ) -> Result<UploadResponse, String> {
        let xhr = web_sys::XmlHttpRequest::new().map_err(|_| js_err("uploading"))?;
        xhr.open_with_async(UploadBlob::METHOD.as_str(), UploadBlob::PATH, true)
            .map_err(|_| js_err("uploading"))?;
        xhr.set_request_header("content-type", "application/octet-stream")
            .map_err(|_| js_err("uploading"))?;
        let k = key.to_owned();
        let on_progress =
            Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |ev: web_sys::ProgressEvent| {
                if ev.length_computable() && ev.total() > 0.0 {
                    set_progress(self, &k, "Uploading", ev.loaded() / ev.total());
                }
            });
        if let Ok(up) = xhr.upload() {
            up.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
        }
        let (fire, done) = futures_channel();
        let fire = Rc::new(RefCell::new(Some(fire)));
        let on_end = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(f) = fire.borrow_mut().take() {
                f();
            }
        });
        xhr.set_onloadend(Some(on_end.as_ref().unchecked_ref()));
        *cancel.xhr.borrow_mut() = Some(xhr.clone());
        xhr.send_with_opt_blob(Some(blob)).map_err(|_| js_err("uploading"))?;
        done.await;
        drop((on_progress, on_end));
        cancel.xhr.borrow_mut().take();
        if cancel.stopped.get() {
            return Err("cancelled".into());
        }
        let status = xhr.status().unwrap_or(0);
        let text = xhr.response_text().ok().flatten().unwrap_or_default();
        if status == 0 {
            return Err("the upload was interrupted (are you offline?)".into());
        }
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| format!("bad response from the server: {e}"));
        }
        Err(match serde_json::from_str::<ApiError>(&text) {
            Ok(e) if e.error == ErrorCode::PayloadTooLarge => "the file is too large for this server".into(),
            Ok(e) if e.error == ErrorCode::QuotaExceeded => "your attachment storage quota is full".into(),
            Ok(e) => crate::state::human(&e),
            Err(_) => format!("the server answered HTTP {status}"),
        })
    }

    /// Fetches and decrypts the attachment of message `key`; with `save`, then offers it as a
    /// download. Images land in `files` as an object URL.
    pub fn open_file(self, key: String, file: FileRef, save: bool) {
        if CANCELS.with(|m| m.borrow().contains_key(&key)) {
            return;
        }
        if let Some(Ok(url)) = self.transfers.files.with_untracked(|f| f.get(&key).cloned()) {
            if save {
                save_url(&url, &file.name);
            }
            return;
        }
        spawn_local(async move {
            let cancel = register_cancel(&key, false);
            set_progress(self, &key, "Downloading", 0.0);
            let result = self.fetch_and_decrypt(&key, &file, &cancel).await;
            unregister_cancel(&key);
            clear_progress(self, &key);
            if cancel.stopped.get() {
                return;
            }
            let entry = result.and_then(|blob| {
                web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| js_err("showing the file"))
            });
            if let (Ok(url), true) = (&entry, save) {
                save_url(url, &file.name);
            }
            // The chat may have changed meanwhile: only keep it if the message is still shown.
            if self.timeline.msgs.with_untracked(|ms| ms.iter().any(|m| m.key == key)) {
                self.transfers.files.update(|f| {
                    f.insert(key, entry);
                });
            } else if let Ok(url) = entry {
                let _ = web_sys::Url::revoke_object_url(&url);
            }
        });
    }

    async fn fetch_and_decrypt(
        self,
        key: &str,
        file: &FileRef,
        cancel: &Rc<Cancel>,
    ) -> Result<web_sys::Blob, String> {
        let init = web_sys::RequestInit::new();
        init.set_method("GET");
        init.set_credentials(web_sys::RequestCredentials::SameOrigin);
        let window = web_sys::window().ok_or_else(|| js_err("downloading"))?;
        let resp: web_sys::Response =
            JsFuture::from(window.fetch_with_str_and_init(&DownloadBlob::path(&[&file.blob_id]), &init))
                .await
                .map_err(|_| "the download was interrupted (are you offline?)".to_owned())?
                .dyn_into()
                .map_err(|_| js_err("downloading"))?;
        if resp.status() == 404 {
            return Err("This file is no longer on the server.".into());
        }
        if !resp.ok() {
            return Err(format!("The server answered HTTP {}.", resp.status()));
        }
        let body = resp.body().ok_or_else(|| js_err("downloading"))?;
        let reader: web_sys::ReadableStreamDefaultReader =
            body.get_reader().dyn_into().map_err(|_| js_err("downloading"))?;
        let expected = blob_size_for(file.size) as f64;
        let mut dec = FileDecryptor::new(file);
        let parts = js_sys::Array::new();
        let mut plain: Vec<u8> = Vec::with_capacity(PART + 65_536);
        let mut received = 0.0;
        loop {
            if cancel.stopped.get() {
                let _ = reader.cancel();
                return Err("cancelled".into());
            }
            let step = JsFuture::from(reader.read())
                .await
                .map_err(|_| "the download was interrupted (are you offline?)".to_owned())?;
            if js_sys::Reflect::get(&step, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
                break;
            }
            let Ok(chunk) =
                js_sys::Reflect::get(&step, &"value".into()).and_then(|v| v.dyn_into::<js_sys::Uint8Array>())
            else {
                return Err(js_err("downloading"));
            };
            let bytes = chunk.to_vec();
            received += bytes.len() as f64;
            dec.push(&bytes, &mut plain).map_err(|_| CORRUPTED.to_owned())?;
            if plain.len() >= PART {
                parts.push(&js_sys::Uint8Array::from(plain.as_slice()));
                plain.clear();
            }
            set_progress(self, key, "Downloading", received / expected.max(1.0));
        }
        dec.finish(&mut plain).map_err(|_| CORRUPTED.to_owned())?;
        parts.push(&js_sys::Uint8Array::from(plain.as_slice()));
        // Only raster images keep their type (to be shown in <img>); everything else is opaque
        // bytes, so a sender's "text/html" can never render as a page of this origin.
        let bag = web_sys::BlobPropertyBag::new();
        bag.set_type(if is_inline_image(&file.mime) { &file.mime } else { "application/octet-stream" });
        web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &bag)
            .map_err(|_| js_err("assembling the file"))
    }
}

/// Saves an object URL under `name` through a temporary `<a download>`.
fn save_url(url: &str, name: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    let Ok(a) = doc.create_element("a") else { return };
    let Ok(a) = a.dyn_into::<web_sys::HtmlAnchorElement>() else { return };
    a.set_href(url);
    a.set_download(name);
    a.set_class_name("sr-only");
    if let Some(body) = doc.body() {
        let _ = body.append_child(&a);
        a.click();
        let _ = body.remove_child(&a);
    }
}

/// The files of a `FileList` (from an input, a drop or a paste).
pub fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}
