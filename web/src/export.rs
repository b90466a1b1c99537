//! "Export my history" in the account menu.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::state::App;

/// "Export my history": decrypted in this browser by the shared client core
/// ([`sealroom_session::export::collect`]), offered as two files to keep.
#[component]
pub fn ExportHistory() -> impl IntoView {
    let app = expect_context::<App>();
    let progress = RwSignal::new(None::<usize>);
    let done = RwSignal::new(None::<Result<(String, String, String), String>>);
    let start = move |_| {
        done.set(None);
        progress.set(Some(0));
        spawn_local(async move {
            let result = app.export_history(progress).await.and_then(|export| {
                let summary = format!(
                    "{} messages in {} conversations, decrypted in this browser.",
                    export.message_count(),
                    export.conversations.len()
                );
                Ok((
                    summary,
                    object_url(&export.to_json(), "application/json")?,
                    object_url(&export.to_html(), "application/octet-stream")?,
                ))
            });
            progress.try_set(None);
            done.try_set(Some(result));
        });
    };
    view! {
        <section class="export pad" aria-label="Export my history">
            <p class="small">"Your history, decrypted here, as a file you keep: JSON with every message, and a page that opens in any browser without Sealroom. Nothing decrypted goes to the server."</p>
            <button type="button" class="primary" id="export-start" disabled=move || progress.get().is_some() on:click=start>"Export my history"</button>
            {move || progress.get().map(|n| view! {
                <p class="busy" role="status"><span class="spinner" aria-hidden="true"></span>{format!("Decrypting… {n} messages so far")}</p>
            })}
            {move || done.get().map(|r| match r {
                Ok((summary, json, html)) => view! {
                    <div class="export-done" role="status">
                        <p class="small">{summary}</p>
                        <a id="export-json" href=json download="sealroom-export.json">"Download JSON"</a>
                        " · "
                        <a id="export-html" href=html download="sealroom-export.html">"Download page (HTML)"</a>
                    </div>
                }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            })}
        </section>
    }
}

/// A `blob:` URL holding `text`. The page is offered as opaque bytes: it is downloaded, never
/// rendered at this origin (it carries what other people wrote, escaped, with no script).
fn object_url(text: &str, mime: &str) -> Result<String, String> {
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let bag = web_sys::BlobPropertyBag::new();
    bag.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &bag)
        .map_err(|_| "Could not build the file.".to_owned())?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| "Could not offer the file.".to_owned())
}
