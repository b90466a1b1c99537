//! Mounts the app; everything else lives in the library.

fn main() {
    console_error_panic_hook::set_once();
    // index.html shows "Loading Sealroom…" until the WebAssembly runs: the app takes over here.
    if let Some(splash) =
        web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot-splash"))
    {
        splash.remove();
    }
    leptos::mount::mount_to_body(sealroom_web::App);
}
