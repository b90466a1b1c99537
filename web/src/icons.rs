//! Inline SVG icons: no icon font and no emoji needed, and allowed by the CSP (no styles).

use leptos::prelude::*;

/// The icons the UI uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    /// Magnifier.
    Search,
    /// Shield (safety number).
    Shield,
    /// Bin (clear chat).
    Trash,
    /// Half-filled circle (theme).
    Theme,
    /// Door with arrow (sign out).
    SignOut,
    /// Left arrow.
    Back,
    /// Three dots.
    More,
    /// Lock (the logo).
    Lock,
    /// Up chevron.
    Up,
    /// Down chevron.
    Down,
    /// Paper clip (attach).
    Clip,
    /// Document (a file card).
    File,
    /// Pin (a pinned chat).
    Pin,
    /// Clock (sending).
    Clock,
    /// One tick (stored by the relay).
    Check,
    /// Two ticks (delivered, read).
    CheckCheck,
    /// Exclamation in a circle (not sent).
    Alert,
    /// A cross (close).
    Close,
}

impl Icon {
    fn path(self) -> &'static str {
        match self {
            Icon::Search => "M10.5 4a6.5 6.5 0 1 0 4.04 11.6l4.43 4.43 1.41-1.41-4.43-4.43A6.5 6.5 0 0 0 10.5 4zm0 2a4.5 4.5 0 1 1 0 9 4.5 4.5 0 0 1 0-9z",
            Icon::Shield => "M12 2 4 5v6c0 5 3.4 9.3 8 11 4.6-1.7 8-6 8-11V5l-8-3zm0 2.2 6 2.2V11c0 3.9-2.5 7.4-6 8.9-3.5-1.5-6-5-6-8.9V6.4l6-2.2zm-1 10.4-2.3-2.3-1.4 1.4 3.7 3.7 5.7-5.7-1.4-1.4L11 14.6z",
            Icon::Trash => "M9 3h6l1 2h4v2H4V5h4l1-2zm-3 6h12l-1 12H7L6 9zm3 2v8h2v-8H9zm4 0v8h2v-8h-2z",
            Icon::Theme => "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zm0 2v14a7 7 0 0 1 0-14z",
            Icon::SignOut => "M5 3h8v2H7v14h6v2H5V3zm11.6 4.6L21 12l-4.4 4.4-1.4-1.4 2-2H10v-2h7.2l-2-2 1.4-1.4z",
            Icon::Back => "M20 11H7.8l5.6-5.6L12 4l-8 8 8 8 1.4-1.4L7.8 13H20v-2z",
            Icon::More => "M5 10a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm7 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm7 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4z",
            Icon::Lock => "M12 2a5 5 0 0 0-5 5v3H5v12h14V10h-2V7a5 5 0 0 0-5-5zm0 2a3 3 0 0 1 3 3v3H9V7a3 3 0 0 1 3-3zm0 9a2 2 0 0 1 1 3.7V19h-2v-2.3A2 2 0 0 1 12 13z",
            Icon::Up => "M12 7.6 5.3 14.3l1.4 1.4L12 10.4l5.3 5.3 1.4-1.4L12 7.6z",
            Icon::Down => "M12 16.4 5.3 9.7l1.4-1.4L12 13.6l5.3-5.3 1.4 1.4L12 16.4z",
            Icon::Clip => "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10h-1.5z",
            Icon::File => "M6 2h8l6 6v14H6V2zm7 1.5V9h5.5L13 3.5zM8 4v16h10V11h-7V4H8z",
            Icon::Pin => "M14 2l8 8-1.4 1.4-1.1-1.1-3.9 3.9.7 4.2-1.4 1.4-4.2-4.2L5.4 21 4 19.6l5.3-5.3-4.2-4.2 1.4-1.4 4.2.7 3.9-3.9-1.1-1.1L14 2z",
            Icon::Clock => "M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 2a8 8 0 1 1 0 16 8 8 0 0 1 0-16zm-1 3v6l5 3 1-1.7-4-2.4V7h-2z",
            Icon::Check => "M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4L9 16.2z",
            Icon::CheckCheck => "M.4 13.4 6 19l1.4-1.4L1.8 12 .4 13.4zm21.8-7.8L12 15.8 8.2 12l-1.4 1.4 5.2 5.2 11.6-11.6-1.4-1.4zm-4.2 0-1.4-1.4L10 10.8l1.4 1.4L18 5.6z",
            Icon::Alert => "M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm-1 5h2v7h-2V7zm0 9h2v2h-2v-2z",
            Icon::Close => "M6.4 5 5 6.4l5.6 5.6L5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6 6.4 5z",
        }
    }
}

/// An icon, decorative (the button around it carries the accessible name).
#[component]
pub fn Svg(icon: Icon) -> impl IntoView {
    view! {
        <svg class="svg-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
            <path d=icon.path() fill="currentColor"></path>
        </svg>
    }
}
