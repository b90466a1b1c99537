//! "Export my history": what a user's client decrypted, as files the user keeps — JSON with
//! every message, and one HTML page that opens in any browser without Sealroom. Built on the
//! user's own device from what it decrypted; nothing decrypted passes through the relay.

use sealroom_crypto::Payload;
use serde::{Deserialize, Serialize};

/// The export's format name; a reader checks it.
pub const FORMAT: &str = "sealroom-export/1";

/// A whole export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// [`FORMAT`].
    pub format: String,
    /// Whose history.
    pub user: String,
    /// The relay it came from.
    pub server: String,
    /// When it was made (Unix ms).
    pub exported_at_ms: i64,
    /// Every conversation, direct ones first (by peer), then groups (by id).
    pub conversations: Vec<Conversation>,
}

/// One conversation's messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// `direct` or `group`.
    pub kind: String,
    /// What to call it: the peer's name, or the group's name (or its members).
    pub title: String,
    /// The relay's id for it.
    pub id: i64,
    /// The messages.
    pub messages: Vec<Message>,
}

/// One message, as its sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who sent it.
    pub from: String,
    /// The sender's clock (Unix ms), authenticated.
    pub sent_ms: u64,
    /// A text message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An attachment (its description; the file itself stays at the relay, encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    /// Anything else: a group renamed, the conversation moving to MLS, a message that did not
    /// open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// An attachment's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its type.
    pub mime: String,
}

impl Message {
    /// A decrypted message (or why it did not open).
    pub fn of(from: &str, sent_ms: u64, payload: Result<&Payload, &str>) -> Self {
        let mut m = Message { from: from.to_owned(), sent_ms, text: None, file: None, event: None };
        match payload {
            Ok(Payload::Text(t)) => m.text = Some(t.clone()),
            Ok(Payload::File(f)) => {
                m.file = Some(File { name: f.name.clone(), size: f.size, mime: f.mime.clone() })
            }
            Ok(Payload::GroupName(n)) => m.event = Some(format!("named the group \u{201c}{n}\u{201d}")),
            Ok(Payload::Upgrade { .. }) => {
                m.event = Some("moved the conversation to forward secrecy (MLS)".into())
            }
            Ok(_) => m.event = Some("a kind of message this version cannot show".into()),
            Err(why) => m.event = Some(format!("a message that could not be read: {why}")),
        }
        m
    }
}

impl Export {
    /// An empty export of `user`'s history at `server`.
    pub fn new(user: &str, server: &str, now_ms: i64) -> Self {
        Export {
            format: FORMAT.into(),
            user: user.into(),
            server: server.into(),
            exported_at_ms: now_ms,
            conversations: Vec::new(),
        }
    }

    /// Messages in the whole export.
    pub fn message_count(&self) -> usize {
        self.conversations.iter().map(|c| c.messages.len()).sum()
    }

    /// The JSON file.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The HTML page: self-contained (no script, no request), every text escaped.
    pub fn to_html(&self) -> String {
        let mut out = String::with_capacity(4096 + self.message_count() * 160);
        out.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
        out.push_str(&format!("<title>Sealroom history of {}</title>\n", escape(&self.user)));
        out.push_str(
            "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2430}\
             h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #e3e6eb}\
             .m{margin:.35rem 0;padding:.35rem .6rem;border-radius:10px;background:#f1f3f6;white-space:pre-wrap;overflow-wrap:anywhere}\
             .mine{background:#dce8fb}.meta{color:#667085;font-size:.8rem}.event{font-style:italic;color:#667085}\
             @media (prefers-color-scheme:dark){body{background:#0f1318;color:#e6e9ee}.m{background:#171c23}.mine{background:#1d3357}}</style>\n",
        );
        out.push_str("</head><body>\n");
        out.push_str(&format!(
            "<h1>Sealroom history of {}</h1>\n<p class=\"meta\">From {}, exported {} (UTC). {}, {}. \
             Decrypted on your device; attachments are listed by name (the files stay encrypted on the server).</p>\n",
            escape(&self.user),
            escape(&self.server),
            utc(self.exported_at_ms),
            count(self.conversations.len(), "conversation"),
            count(self.message_count(), "message")
        ));
        for c in &self.conversations {
            let kind = if c.kind == "group" { "Group" } else { "With" };
            out.push_str(&format!("<section><h2>{kind} {}</h2>\n", escape(&c.title)));
            for m in &c.messages {
                let mine = if m.from == self.user { " mine" } else { "" };
                let body = match (&m.text, &m.file, &m.event) {
                    (Some(t), _, _) => escape(t),
                    (None, Some(f), _) => format!(
                        "\u{1f4ce} {} <span class=\"meta\">({}, {} bytes)</span>",
                        escape(&f.name),
                        escape(&f.mime),
                        f.size
                    ),
                    (None, None, Some(e)) => format!("<span class=\"event\">{}</span>", escape(e)),
                    (None, None, None) => String::new(),
                };
                out.push_str(&format!(
                    "<div class=\"m{mine}\"><div class=\"meta\">{} · {}</div>{body}</div>\n",
                    escape(&m.from),
                    utc(m.sent_ms as i64)
                ));
            }
            out.push_str("</section>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// Everything `vault`'s user can read, decrypted here: each direct conversation (its version 1
/// messages and, once it moved to MLS, what this user's archive holds of it) and each group
/// (from the archive), oldest first. `progress` hears the number of messages so far after
/// each page. With the archive off, forward-secret messages are not kept anywhere, so only
/// version 1 messages are in it.
#[cfg(feature = "mls")]
pub async fn collect<T: crate::Transport, V: crate::VaultCell>(
    t: &T,
    vault: &V,
    server: &str,
    now_ms: i64,
    mut progress: impl FnMut(usize),
) -> Result<Export, T::Error> {
    use sealroom_protocol::endpoint::{Conversations, History};
    use sealroom_protocol::{Endpoint, HistoryQuery};
    let (me, archive) = vault
        .with(|v| (v.username().to_string(), v.archive_key().is_some()))
        .ok_or(crate::Error::SignedOut)?;
    let mut export = Export::new(&me, server, now_ms);
    let list = t.call::<Conversations>(Conversations::PATH, None).await?;
    let mut direct = list.conversations;
    direct.sort_by(|a, b| a.peer.cmp(&b.peer));
    let mut count = 0;
    for c in direct {
        let mut messages = Vec::new();
        let mut before = None;
        loop {
            let q = HistoryQuery { before, after: None, limit: Some(sealroom_protocol::MAX_PAGE) };
            let page = t.call::<History>(&(History::path(&[&c.id]) + &q.to_query()), None).await?;
            for m in &page.messages {
                if m.from.as_str() != me && m.to.as_str() != me {
                    continue; // addressed to someone else: never shown, not this user's history
                }
                messages.push(match crate::flows::open(t, vault, m).await {
                    Ok(o) => Message::of(m.from.as_str(), o.sent_at_ms, Ok(&o.payload)),
                    Err(_) => Message::of(m.from.as_str(), m.ts.max(0) as u64, Err("it does not decrypt")),
                });
            }
            count += page.messages.len();
            progress(count);
            before = page.messages.first().map(|m| m.id);
            if !page.has_more || before.is_none() {
                break;
            }
        }
        if archive {
            count += archived(t, vault, c.id, &mut messages, &mut count_and(&mut progress, count)).await?.0;
        }
        messages.sort_by_key(|m| m.sent_ms);
        export.conversations.push(Conversation {
            kind: "direct".into(),
            title: c.peer.to_string(),
            id: c.id.0,
            messages,
        });
    }
    if archive {
        for g in list.groups {
            let mut messages = Vec::new();
            let (n, named) =
                archived(t, vault, g.id, &mut messages, &mut count_and(&mut progress, count)).await?;
            count += n;
            let title = match named {
                Some(n) => n,
                None => g.members.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(", "),
            };
            export.conversations.push(Conversation { kind: "group".into(), title, id: g.id.0, messages });
        }
    }
    Ok(export)
}

/// `progress`, told `base` plus what a conversation added so far.
#[cfg(feature = "mls")]
fn count_and(progress: &mut impl FnMut(usize), base: usize) -> impl FnMut(usize) + '_ {
    move |n| progress(base + n)
}

/// Adds what the archive holds of `conversation`, oldest first; returns how many, and the
/// group's newest name among them.
#[cfg(feature = "mls")]
async fn archived<T: crate::Transport, V: crate::VaultCell>(
    t: &T,
    vault: &V,
    conversation: sealroom_protocol::ConversationId,
    into: &mut Vec<Message>,
    progress: &mut impl FnMut(usize),
) -> Result<(usize, Option<String>), T::Error> {
    let mut before = None;
    let mut pages = Vec::new();
    let mut n = 0;
    loop {
        let (page, more) = crate::groups::archived(
            t,
            vault,
            conversation,
            before,
            Some(sealroom_protocol::MAX_ARCHIVE_PAGE),
        )
        .await?;
        before = page.first().map(|m| m.seq);
        n += page.len();
        progress(n);
        let done = !more || page.is_empty();
        pages.push(page);
        if done {
            break;
        }
    }
    let mut name = None;
    for m in pages.into_iter().rev().flatten() {
        if let Ok(Payload::GroupName(n)) = &m.payload {
            name = Some(n.clone());
        }
        into.push(Message::of(&m.sender, m.sent_ms, m.payload.as_ref().map_err(String::as_str)));
    }
    Ok((n, name))
}

/// `1 message`, `3 messages`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Text for HTML: `& < > " '` as entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn utc(ms: i64) -> String {
    sealroom_protocol::time::Civil::from_unix_ms(ms).minutes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_everything_people_wrote_and_the_json_reads_back() {
        let mut e = Export::new("alice", "https://chat.example.org", 1_764_041_525_000);
        e.conversations.push(Conversation {
            kind: "direct".into(),
            title: "bob <b>".into(),
            id: 3,
            messages: vec![
                Message::of(
                    "bob",
                    1_764_041_000_000,
                    Ok(&Payload::Text("<script>alert('x')</script> & \"so\"".into())),
                ),
                Message::of("alice", 1_764_041_100_000, Err("altered at the relay")),
            ],
        });
        let html = e.to_html();
        assert!(!html.contains("<script>") && !html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;so&quot;"));
        assert!(html.contains("2025-11-25 03:32"), "{html}");
        assert!(html.contains("could not be read: altered at the relay"));
        assert!(html.contains("default-src 'none'"), "the page loads nothing");
        let back: Export = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.message_count(), 2);
        assert_eq!(utc(0), "1970-01-01 00:00");
    }
}
