//! The web client's pieces in headless Chromium: pure helpers, then the real app mounted
//! into the page and driven through its DOM.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test code

use sealroom_web::files::{human_size, is_inline_image};
use sealroom_web::text::{divider_positions, highlight, Matcher, SearchMode};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn plain_search_is_case_insensitive_and_highlights_every_match() {
    let m = Matcher::new("sEe", SearchMode::Plain).unwrap();
    let segs = highlight("See you, see?", &m);
    assert_eq!(
        segs,
        vec![("See".into(), true), (" you, ".into(), false), ("see".into(), true), ("?".into(), false)]
    );
    assert!(!m.is_match("nothing here"));
    assert_eq!(
        highlight("Grüße 👋", &Matcher::new("üß", SearchMode::Plain).unwrap())[1],
        ("üß".to_string(), true)
    );
}

#[wasm_bindgen_test]
fn regex_search_and_invalid_patterns() {
    let m = Matcher::new(r"\d{2}:\d{2}", SearchMode::Regex).unwrap();
    assert_eq!(m.ranges("at 17:30 or 18:00"), vec![(3, 8), (12, 17)]);
    assert!(Matcher::new("(unclosed", SearchMode::Regex).is_err());
    // An empty-matching pattern highlights nothing rather than looping.
    assert!(Matcher::new("x*", SearchMode::Regex).unwrap().ranges("abc").is_empty());
}

#[wasm_bindgen_test]
fn date_dividers_go_before_each_new_local_day() {
    let day = 86_400_000.0;
    let noon = js_sys::Date::new_with_year_month_day_hr_min_sec(2026, 10, 20, 12, 0, 0).get_time();
    let times = [noon, noon + 60_000.0, noon + day, noon + day + 5.0, noon + 3.0 * day];
    assert_eq!(divider_positions(&times), vec![0, 2, 4]);
    assert_eq!(sealroom_web::text::day_label(noon + 3.0 * day, noon + 3.0 * day), "Today");
    assert_eq!(sealroom_web::text::day_label(noon + 2.0 * day, noon + 3.0 * day), "Yesterday");
}

fn by_text(root: &web_sys::Element, selector: &str, text: &str) -> Option<web_sys::HtmlElement> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
        .find(|e| e.text_content().unwrap_or_default().trim() == text)
}

#[wasm_bindgen_test]
async fn the_app_mounts_on_create_account_with_labelled_fields_and_keeps_what_was_typed() {
    let doc = web_sys::window().unwrap().document().unwrap();
    let host: web_sys::HtmlElement = doc.create_element("div").unwrap().dyn_into().unwrap();
    doc.body().unwrap().append_child(&host).unwrap();
    let _mounted = leptos::mount::mount_to(host.clone(), sealroom_web::App);
    leptos::task::tick().await;

    // A first visit opens on "Create account"; every field has a label.
    let user_label = by_text(&host, "label", "Username").expect("a Username label");
    assert_eq!(user_label.get_attribute("for").as_deref(), Some("username"));
    assert!(by_text(&host, "label", "Password").is_some());
    assert!(by_text(&host, "label", "Repeat password").is_some());
    let primary = || host.query_selector("form button.primary").unwrap().unwrap().text_content().unwrap();
    assert_eq!(primary(), "Create account");
    let input = |id: &str| -> web_sys::HtmlInputElement {
        host.query_selector(&format!("#{id}")).unwrap().unwrap().dyn_into().unwrap()
    };
    let pw = input("password");
    assert_eq!(pw.get_attribute("autocomplete").as_deref(), Some("new-password"));
    let typed = |el: &web_sys::HtmlInputElement, v: &str| {
        el.set_value(v);
        el.dispatch_event(&web_sys::Event::new("input").unwrap()).unwrap();
    };
    typed(&input("username"), "x");
    typed(&pw, "long enough password");

    // "Sign in" switches the form and keeps what was typed; so does coming back.
    by_text(&host, "button", "Sign in").unwrap().click();
    leptos::task::tick().await;
    assert_eq!(primary(), "Sign in");
    assert_eq!(input("password").get_attribute("autocomplete").as_deref(), Some("current-password"));
    assert_eq!(input("username").value(), "x");
    assert_eq!(input("password").value(), "long enough password");
    by_text(&host, "button", "Create account").unwrap().click();
    leptos::task::tick().await;
    assert_eq!(primary(), "Create account");
    assert_eq!(input("username").value(), "x");

    // An invalid username is refused inline, in a sentence, before any key is derived.
    typed(&input("confirm"), "long enough password");
    let form: web_sys::HtmlFormElement = host.query_selector("form").unwrap().unwrap().dyn_into().unwrap();
    form.request_submit().unwrap();
    for _ in 0..20 {
        leptos::task::tick().await;
    }
    let error = host.query_selector("p.error").unwrap().expect("an inline error");
    assert!(error.text_content().unwrap().contains("3–32 letters"), "{:?}", error.text_content());
}

#[wasm_bindgen_test]
fn file_sizes_read_like_the_relays_limits_and_only_raster_images_go_inline() {
    assert_eq!(human_size(0), "0 B");
    assert_eq!(human_size(1023), "1023 B");
    assert_eq!(human_size(9000), "8.8 KB");
    assert_eq!(human_size(2 << 20), "2.0 MB");
    assert_eq!(human_size(100 << 20), "100 MB");
    assert_eq!(human_size(3 << 30), "3.0 GB");
    for t in ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"] {
        assert!(is_inline_image(t), "{t}");
    }
    for t in ["image/svg+xml", "text/html", "application/pdf", "", "IMAGE/PNG"] {
        assert!(!is_inline_image(t), "{t}");
    }
}

/// Issue 14's storage, on its own: this browser's MLS device lives in IndexedDB, opens again
/// from the database alone (a reload), and once it has read a message its stored state no
/// longer decrypts it (forward secrecy in the browser's storage, not only in memory).
#[wasm_bindgen_test]
async fn the_browsers_mls_device_survives_a_reload_and_forgets_what_it_read() {
    use sealroom_crypto::{Payload, SigningSecret};
    use sealroom_session::groups::DeviceCell;
    use sealroom_session::mls::{Changes, Invitee, MlsDevice, Processed};
    use sealroom_web::device::BrowserDevice;
    const NOW: u64 = 1_700_000_000_000;
    let user = format!("bob{}", (js_sys::Math::random() * 1e9) as u64);
    let (alice, bob) = (SigningSecret::generate().unwrap(), SigningSecret::generate().unwrap());
    let pins = |u: &str| match u {
        "alice" => Some(alice.public_key()),
        u if u == user => Some(bob.public_key()),
        _ => None,
    };
    assert_eq!(BrowserDevice::stored(&user).await.unwrap(), None);
    let b = BrowserDevice::load(&bob, &user, NOW).await.unwrap();
    assert!(BrowserDevice::stored(&user).await.unwrap().is_some(), "a new device is stored at once");
    let key_packages = b.with(|d| d.key_packages(1)).unwrap();
    b.save().await.unwrap();

    let mut a = MlsDevice::new(&alice, "alice", NOW).unwrap();
    let (g, _) = a.create_group(&["alice".into()]).unwrap();
    let add = Changes { add: vec![Invitee { user: user.clone(), key_packages }], ..Changes::default() };
    let commit = a.commit(&g, &add, 1000, &pins).unwrap();
    a.commit_accepted(&g).unwrap();
    assert_eq!(b.with(|d| d.join(&commit.welcome.unwrap(), &pins)).unwrap(), g);
    b.save().await.unwrap();

    let message = a.encrypt(&g, NOW, &Payload::Text("read once".into())).unwrap();
    let before = BrowserDevice::stored(&user).await.unwrap().unwrap();
    let read = b.with(|d| d.process(&g, 2, false, &message, &pins)).unwrap();
    assert!(matches!(read, Processed::Message { payload: Payload::Text(ref t), .. } if t == "read once"));
    b.save().await.unwrap();
    let after = BrowserDevice::stored(&user).await.unwrap().unwrap();
    assert!(!after.windows(9).any(|w| w == b"read once"), "sealed");

    // A reload: the same device, in the same group, from IndexedDB alone.
    let reloaded = BrowserDevice::load(&bob, &user, NOW).await.unwrap();
    assert_eq!(reloaded.with(|d| d.device_id()), b.with(|d| d.device_id()));
    assert_eq!(reloaded.with(|d| d.epoch(&g)).unwrap(), a.epoch(&g).unwrap());

    // Whoever copies the stored record and learns the identity key, and ignores the cursor:
    // the record from before the read decrypts the message (so this test can fail), the one
    // stored after it does not.
    let decrypts = |bytes: &[u8]| {
        let mut d = MlsDevice::from_stored(&bob, &user, bytes).unwrap();
        matches!(d.process(&g, u64::MAX, false, &message, &pins), Ok(Processed::Message { .. }))
    };
    assert!(decrypts(&before));
    assert!(!decrypts(&after));
    // Another user's key does not open it; forgetting deletes it.
    assert!(MlsDevice::from_stored(&alice, &user, &after).is_err());
    BrowserDevice::forget(&user).await.unwrap();
    assert_eq!(BrowserDevice::stored(&user).await.unwrap(), None);
}

/// Waits `ms` milliseconds.
async fn pause(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap();
}

#[wasm_bindgen_test]
async fn one_holder_of_the_device_lock_at_a_time_and_the_next_waiter_gets_it_on_release() {
    use sealroom_web::tabs::{Channel, Lock};
    use std::cell::RefCell;
    use std::rc::Rc;
    let name = format!("test-lock-{}", js_sys::Math::random());
    let first = Lock::acquire(&name).await.unwrap();
    let second: Rc<RefCell<Option<Lock>>> = Rc::default();
    let slot = second.clone();
    let name2 = name.clone();
    wasm_bindgen_futures::spawn_local(async move {
        *slot.borrow_mut() = Some(Lock::acquire(&name2).await.unwrap());
    });
    pause(100).await;
    assert!(second.borrow().is_none(), "a second holder while the first holds it");
    drop(first);
    pause(100).await;
    assert!(second.borrow().is_some(), "the waiting tab gets the lock when the holder lets go");

    // Two channels of one name: each hears the other, never itself.
    let heard: Rc<RefCell<Vec<(u8, String)>>> = Rc::default();
    let (h1, h2) = (heard.clone(), heard.clone());
    let channel = format!("test-channel-{}", js_sys::Math::random());
    let one = Channel::open(&channel, move |t| h1.borrow_mut().push((1, t))).unwrap();
    let two = Channel::open(&channel, move |t| h2.borrow_mut().push((2, t))).unwrap();
    one.post("from one");
    two.post("from two");
    pause(100).await;
    let mut got = heard.borrow().clone();
    got.sort();
    assert_eq!(got, vec![(1, "from two".to_string()), (2, "from one".to_string())]);
}
