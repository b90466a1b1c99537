//! Pure helpers for the views: search highlighting, date dividers, time labels. Tested in
//! headless Chromium with wasm-bindgen-test.

/// One piece of a message for rendering: `(text, is_match)`.
pub type Segment = (String, bool);

/// How to search the decrypted history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// Case-insensitive plain text.
    Plain,
    /// A regular expression.
    Regex,
}

/// A compiled search, or why the pattern is invalid.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Nothing to search for.
    None,
    /// Lowercased needle.
    Plain(String),
    /// A regex.
    Regex(regex_lite::Regex),
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::None, Matcher::None) => true,
            (Matcher::Plain(a), Matcher::Plain(b)) => a == b,
            (Matcher::Regex(a), Matcher::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Matcher {
    /// Compiles a query.
    pub fn new(query: &str, mode: SearchMode) -> Result<Self, String> {
        if query.is_empty() {
            return Ok(Matcher::None);
        }
        match mode {
            SearchMode::Plain => Ok(Matcher::Plain(query.to_lowercase())),
            SearchMode::Regex => regex_lite::RegexBuilder::new(query)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map(Matcher::Regex)
                .map_err(|e| e.to_string()),
        }
    }

    /// Byte ranges of the matches in `text`.
    pub fn ranges(&self, text: &str) -> Vec<(usize, usize)> {
        match self {
            Matcher::None => vec![],
            Matcher::Plain(needle) => {
                let hay: String = text.to_lowercase();
                if hay.len() != text.len() {
                    // Lowercasing changed byte offsets (rare scripts): match the exact case.
                    return text.match_indices(needle.as_str()).map(|(i, m)| (i, i + m.len())).collect();
                }
                hay.match_indices(needle.as_str()).map(|(i, m)| (i, i + m.len())).collect()
            }
            Matcher::Regex(re) => {
                re.find_iter(text).filter(|m| m.end() > m.start()).map(|m| (m.start(), m.end())).collect()
            }
        }
    }

    /// Whether the text matches, given its lowercase form computed once (plain search then
    /// needs no allocation per message).
    pub fn is_match_folded(&self, text: &str, folded: &str) -> bool {
        match self {
            Matcher::None => false,
            Matcher::Plain(needle) => folded.contains(needle.as_str()),
            Matcher::Regex(re) => re.find_iter(text).any(|m| m.end() > m.start()),
        }
    }

    /// Whether the text matches at all.
    pub fn is_match(&self, text: &str) -> bool {
        !self.ranges(text).is_empty()
    }
}

/// Splits `text` into plain and highlighted segments.
pub fn highlight(text: &str, matcher: &Matcher) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut at = 0;
    for (start, end) in matcher.ranges(text) {
        if start > at {
            out.push((text[at..start].to_owned(), false));
        }
        out.push((text[start..end].to_owned(), true));
        at = end;
    }
    if at < text.len() || out.is_empty() {
        out.push((text[at..].to_owned(), false));
    }
    out
}

/// Local calendar day of a Unix-ms time, as (year, month 1-12, day).
pub fn local_day(ms: f64) -> (u32, u32, u32) {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    (d.get_full_year(), d.get_month() + 1, d.get_date())
}

/// "Today", "Yesterday" or a date such as "Mon, 3 Nov 2026" for a divider.
pub fn day_label(ms: f64, now_ms: f64) -> String {
    let day = local_day(ms);
    if day == local_day(now_ms) {
        return "Today".into();
    }
    if day == local_day(now_ms - 86_400_000.0) {
        return "Yesterday".into();
    }
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {} {} {}",
        DAYS[d.get_day() as usize % 7],
        d.get_date(),
        MONTHS[d.get_month() as usize % 12],
        d.get_full_year()
    )
}

/// "14:05" in local time.
pub fn time_label(ms: f64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// A short "last seen" phrase.
pub fn last_seen(ms: f64, now_ms: f64) -> String {
    let mins = ((now_ms - ms) / 60_000.0).max(0.0) as u64;
    match mins {
        0 => "last seen just now".into(),
        1..=59 => format!("last seen {mins} min ago"),
        60..=1439 => format!("last seen {} h ago", mins / 60),
        _ => format!("last seen {}", day_label(ms, now_ms)),
    }
}

/// Indices in a list of message times before which a date divider goes.
pub fn divider_positions(times_ms: &[f64]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev = None;
    for (i, t) in times_ms.iter().enumerate() {
        let day = local_day(*t);
        if prev != Some(day) {
            out.push(i);
            prev = Some(day);
        }
    }
    out
}

/// Splits `text` into plain runs and web links (`http://` or `https://` up to the next space,
/// without trailing punctuation), in order: `(run, is_link)`.
pub fn linkify(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = ["https://", "http://"].iter().filter_map(|p| rest.find(p)).min() {
        let tail = &rest[start..];
        let mut end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        while end > 0 && tail[..end].ends_with(['.', ',', ';', ':', '!', '?', ')', '\'', '"']) {
            end -= 1;
        }
        let link = &tail[..end];
        if link.len() <= "https://".len() {
            out.push((rest[..start + end.max(1)].to_owned(), false));
            rest = &rest[start + end.max(1)..];
            continue;
        }
        if start > 0 {
            out.push((rest[..start].to_owned(), false));
        }
        out.push((link.to_owned(), true));
        rest = &tail[end..];
    }
    if !rest.is_empty() {
        out.push((rest.to_owned(), false));
    }
    out
}

#[cfg(test)]
mod link_tests {
    use super::linkify;

    #[test]
    fn links_are_found_without_their_trailing_punctuation() {
        let l = |s: &str| {
            linkify(s)
                .into_iter()
                .map(|(t, link)| format!("{}{t}", if link { "@" } else { "" }))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            l("see https://example.org/a?b=1, then"),
            ["see ", "@https://example.org/a?b=1", ", then"]
        );
        assert_eq!(l("(http://x.y)"), ["(", "@http://x.y", ")"]);
        assert_eq!(l("no links here"), ["no links here"]);
        assert_eq!(l("https:// alone"), ["https://", " alone"]);
        assert_eq!(l("two https://a.b https://c.d."), ["two ", "@https://a.b", " ", "@https://c.d", "."]);
        assert_eq!(l("javascript:alert(1) ftp://x"), ["javascript:alert(1) ftp://x"]);
    }
}
