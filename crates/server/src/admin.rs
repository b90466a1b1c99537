//! `sealroom admin`: the operator's commands, on the relay's own database (`--data-dir` or
//! `--database-url`, as for `serve`), also while relays run on it.
//!
//! Changes are rows like the relay's own, so a running relay sees them at its next request. One
//! thing needs the relay to act: ending the sockets of sessions ended here (disable, revoke).
//! Those sessions are also written to `kicks`; every running relay reads that table every
//! 200 ms ([`watch_kicks`]) and closes their sockets with a `session_revoked` frame.

use std::time::Duration;

use anyhow::{bail, Context};
use sealroom_protocol::{CreateInviteRequest, InviteInfo, UserId, Username};
use serde::Serialize;

use crate::config::{AdminArgs, AdminCommand, InviteCommand};
use crate::error::ServerError;
use crate::store::{self, admin as stored, Store, UserRow};
use crate::Relay;

/// How often a relay looks for sessions ended by `sealroom admin`.
pub const KICK_POLL: Duration = Duration::from_millis(200);
/// How far back a relay looks (kicks older than this were acted on, or their relay was down
/// and the session is refused at its next request anyway).
const KICK_WINDOW_MS: i64 = 60_000;

/// Runs one admin command and prints its result.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let url = args.store.database_url();
    if crate::db::Backend::of(&url) == crate::db::Backend::Sqlite && !std::path::Path::new(&url).exists() {
        bail!("there is no relay database at {url}: give the relay's --data-dir (or --database-url)");
    }
    let store = Store::open(&url).with_context(|| format!("opening {}", crate::db::redacted(&url)))?;
    let now = crate::now_ms();
    let json = args.json;
    match args.command {
        AdminCommand::Users => {
            let rows = store.run(|conn| Ok(stored::overview(conn)?)).await?;
            let users: Vec<UserLine> = rows.iter().map(UserLine::of).collect();
            if json {
                return print_json(&users);
            }
            let mut table =
                vec![["NAME", "CREATED", "LAST SEEN", "DEVICES", "MESSAGES", "FILES", "ADMIN", "DISABLED"]
                    .map(String::from)];
            for u in &users {
                table.push([
                    u.name.clone(),
                    utc(u.created_at),
                    u.last_seen.map(utc).unwrap_or_else(|| "never".into()),
                    u.devices.to_string(),
                    size(u.message_bytes),
                    size(u.file_bytes),
                    if u.admin { "yes" } else { "" }.into(),
                    match (u.deleted, u.disabled_at) {
                        (true, _) => "account deleted".into(),
                        (false, at) => at.map(utc).unwrap_or_default(),
                    },
                ]);
            }
            print_table(&table);
            println!("{} users", users.len());
        }
        AdminCommand::Disable { user } => {
            let row = find(&store, &user).await?;
            let reason = "this account was disabled by the relay's operator";
            let (changed, ended) = store
                .write(move |conn| {
                    let changed = stored::set_disabled(conn, row.id, Some(now))?;
                    let ended = store::revoke_sessions(conn, row.id, None, now)?;
                    stored::insert_kicks(conn, row.id, &ended, reason, now)?;
                    Ok((changed, ended.len()))
                })
                .await?;
            tracing::info!(user = row.id.0, sessions = ended, "disabled by the admin CLI");
            report(json, &Done { user: &user, changed, sessions_ended: ended }, || {
                if changed {
                    format!("disabled {user}; ended {ended} sessions")
                } else {
                    format!("{user} was already disabled; ended {ended} sessions")
                }
            })?;
        }
        AdminCommand::Delete { user, yes } => {
            if !yes {
                bail!("deleting {user}'s account cannot be undone: add --yes to go ahead");
            }
            let row = find(&store, &user).await?;
            let reason = "this account was deleted by the relay's operator";
            let deleted = store
                .write(move |conn| {
                    let deleted = stored::delete_user(conn, row.id, now)?;
                    if let Some(d) = &deleted {
                        stored::insert_kicks(conn, row.id, &d.sessions, reason, now)?;
                    }
                    Ok(deleted)
                })
                .await?;
            let Some(deleted) = deleted else { bail!("{user}'s account was deleted before") };
            // Unsent uploads' files (a running relay's own sweep would remove them too).
            let blobs = crate::blobs::BlobStore::open(&args.store.data_dir, true)?;
            blobs.remove(deleted.blobs.clone()).await;
            tracing::info!(user = row.id.0, "account deleted by the admin CLI");
            report(
                json,
                &Done { user: &user, changed: true, sessions_ended: deleted.sessions.len() },
                || {
                    format!(
                        "deleted {user}: ended {} sessions, left {} groups, removed {} unsent uploads; \
                     what they sent stays with its recipients",
                        deleted.sessions.len(),
                        deleted.groups.len(),
                        deleted.blobs.len()
                    )
                },
            )?;
        }
        AdminCommand::Enable { user } => {
            let row = find(&store, &user).await?;
            let changed = store.write(move |conn| Ok(stored::set_disabled(conn, row.id, None)?)).await?;
            report(json, &Done { user: &user, changed, sessions_ended: 0 }, || {
                if changed {
                    format!("enabled {user}: they may sign in again")
                } else {
                    format!("{user} was not disabled")
                }
            })?;
        }
        AdminCommand::Sessions { user } => {
            let row = find(&store, &user).await?;
            let rows = store.run(move |conn| Ok(stored::sessions_of(conn, row.id)?)).await?;
            let sessions: Vec<SessionLine> = rows
                .iter()
                .map(|s| SessionLine {
                    id: s.id.clone(),
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    revoked_at: s.revoked_at,
                    state: match (s.revoked_at, s.expires_at <= now) {
                        (Some(_), _) => "revoked",
                        (None, true) => "expired",
                        (None, false) => "live",
                    },
                })
                .collect();
            if json {
                return print_json(&sessions);
            }
            let mut table = vec![["SESSION", "STARTED", "EXPIRES", "STATE"].map(String::from)];
            for s in &sessions {
                table.push([s.id.clone(), utc(s.created_at), utc(s.expires_at), s.state.into()]);
            }
            print_table(&table);
            println!(
                "{} sessions, {} live",
                sessions.len(),
                sessions.iter().filter(|s| s.state == "live").count()
            );
        }
        AdminCommand::Revoke { user, session } => {
            let row = find(&store, &user).await?;
            let reason = "signed out by the relay's operator";
            let one = session.clone();
            let ended = store
                .write(move |conn| {
                    let ended = match &one {
                        Some(id) => match store::session(conn, id)? {
                            Some(s) if s.user_id == row.id => {
                                store::revoke_session(conn, id, now)?;
                                if s.revoked_at.is_none() {
                                    vec![id.clone()]
                                } else {
                                    vec![]
                                }
                            }
                            _ => return Err(not_found(format!("{} has no session {id}", row.username))),
                        },
                        None => store::revoke_sessions(conn, row.id, None, now)?,
                    };
                    stored::insert_kicks(conn, row.id, &ended, reason, now)?;
                    Ok(ended.len())
                })
                .await?;
            report(json, &Done { user: &user, changed: ended > 0, sessions_ended: ended }, || {
                format!("ended {ended} sessions of {user}")
            })?;
        }
        AdminCommand::GrantAdmin { user } => set_admin(&store, json, &user, true).await?,
        AdminCommand::RevokeAdmin { user } => set_admin(&store, json, &user, false).await?,
        AdminCommand::Invites(InviteCommand::Create { uses, expires, note }) => {
            let expires_in_secs = match expires.trim() {
                "never" => None,
                text => Some(crate::config::parse_duration(text).map_err(anyhow::Error::msg)?.as_secs()),
            };
            let created = crate::invites::create(
                &store,
                now,
                None,
                CreateInviteRequest { max_uses: uses, expires_in_secs, note },
            )
            .await?;
            if json {
                return print_json(&created);
            }
            println!("{}", invite_line(&created.invite));
            println!("{}", created.code);
        }
        AdminCommand::Invites(InviteCommand::List) => {
            let list = crate::invites::list(&store, now).await?;
            if json {
                return print_json(&list);
            }
            let mut table =
                vec![["ID", "STATE", "USES", "CREATED", "EXPIRES", "BY", "NOTE"].map(String::from)];
            for i in &list.invites {
                table.push([
                    i.id.to_string(),
                    state_word(i).into(),
                    format!("{}/{}", i.uses, i.max_uses),
                    utc(i.created_at),
                    i.expires_at.map(utc).unwrap_or_else(|| "never".into()),
                    i.created_by.as_ref().map(|u| u.to_string()).unwrap_or_else(|| "(admin CLI)".into()),
                    i.note.clone(),
                ]);
            }
            print_table(&table);
            println!("{} invites", list.invites.len());
        }
        AdminCommand::Invites(InviteCommand::Revoke { id }) => {
            let invite = crate::invites::revoke(&store, id, now).await?;
            if json {
                return print_json(&invite);
            }
            println!("revoked {}", invite_line(&invite));
        }
        AdminCommand::Stats => {
            let stats = store.run(move |conn| Ok(stored::stats(conn, now)?)).await?;
            if json {
                return print_json(&stats);
            }
            println!(
                "users        {} ({} disabled, {} admins)\n\
                 messages     {} direct, {} group log entries ({})\n\
                 files        {} ({})\n\
                 archives     {}\n\
                 connections  {} on {} running relays",
                stats.users,
                stats.disabled_users,
                stats.admins,
                stats.messages,
                stats.group_entries,
                size(stats.message_bytes),
                stats.blobs,
                size(stats.blob_bytes),
                size(stats.archive_bytes),
                stats.connections,
                stats.relays,
            );
        }
        AdminCommand::Inspect { user, limit } => {
            let row = find(&store, &user).await?;
            let limit = limit.max(1);
            let found = store.run(move |conn| Ok(stored::inspect(conn, row, limit)?)).await?;
            inspect(json, &found)?;
        }
    }
    Ok(())
}

async fn set_admin(store: &Store, json: bool, user: &str, admin: bool) -> anyhow::Result<()> {
    let row = find(store, user).await?;
    let changed = store.write(move |conn| Ok(stored::set_admin(conn, row.id, admin)?)).await?;
    report(json, &Done { user, changed, sessions_ended: 0 }, || match (admin, changed) {
        (true, true) => format!("{user} is now a relay admin"),
        (true, false) => format!("{user} was already a relay admin"),
        (false, true) => format!("{user} is no longer a relay admin"),
        (false, false) => format!("{user} was not a relay admin"),
    })
}

fn not_found(message: String) -> ServerError {
    ServerError::api(sealroom_protocol::ErrorCode::NotFound, message)
}

async fn find(store: &Store, name: &str) -> anyhow::Result<UserRow> {
    let parsed = Username::parse(name).map_err(|e| anyhow::anyhow!("`{name}`: {e}"))?;
    let row = store.run(move |conn| Ok(store::user_by_name(conn, parsed.as_str())?)).await?;
    row.ok_or_else(|| anyhow::anyhow!("there is no user named {name}"))
}

#[derive(Serialize)]
struct Done<'a> {
    user: &'a str,
    changed: bool,
    sessions_ended: usize,
}

fn report<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        print_json(value)
    } else {
        println!("{}", text());
        Ok(())
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[derive(Serialize)]
struct UserLine {
    name: String,
    id: i64,
    created_at: i64,
    last_seen: Option<i64>,
    devices: i64,
    message_bytes: i64,
    file_bytes: i64,
    admin: bool,
    disabled_at: Option<i64>,
    /// The account was deleted (the row is its tombstone).
    deleted: bool,
}

impl UserLine {
    fn of(o: &stored::UserOverview) -> Self {
        UserLine {
            name: o.user.username.clone(),
            id: o.user.id.0,
            created_at: o.user.created_at,
            last_seen: o.user.last_seen,
            devices: o.devices,
            message_bytes: o.message_bytes,
            file_bytes: o.blob_bytes,
            admin: o.user.is_admin,
            disabled_at: o.user.disabled_at,
            deleted: o.user.auth_hash.is_empty(),
        }
    }
}

#[derive(Serialize)]
struct SessionLine {
    id: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    state: &'static str,
}

fn state_word(i: &InviteInfo) -> &'static str {
    match i.state {
        sealroom_protocol::InviteState::Active => "active",
        sealroom_protocol::InviteState::UsedUp => "used up",
        sealroom_protocol::InviteState::Expired => "expired",
        sealroom_protocol::InviteState::Revoked => "revoked",
    }
}

fn invite_line(i: &InviteInfo) -> String {
    let expiry =
        i.expires_at.map(|at| format!("expires {}", utc(at))).unwrap_or_else(|| "never expires".into());
    let note = if i.note.is_empty() { String::new() } else { format!(" ({})", i.note) };
    format!("invite {}: {} of {} uses, {expiry}{note}", i.id, i.uses, i.max_uses)
}

/// What `inspect` prints.
fn inspect(json: bool, found: &stored::Inspection) -> anyhow::Result<()> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let u = &found.user;
    let value = serde_json::json!({
        "user": {
            "id": u.id.0,
            "username": u.username,
            "created_at": u.created_at,
            "last_seen": u.last_seen,
            "disabled_at": u.disabled_at,
            "admin": u.is_admin,
            "auth_hash": u.auth_hash,
            "kdf": {"salt": b64(&u.kdf_salt), "m_kib": u.kdf_m_kib, "t": u.kdf_t, "p": u.kdf_p},
            "identity_key": b64(&u.identity_key),
            "key_backup": b64(&u.key_backup),
            "key_backup_version": u.key_backup_version,
        },
        "sessions": found.sessions.iter().map(|s| serde_json::json!({
            "id": s.id, "created_at": s.created_at, "expires_at": s.expires_at, "revoked_at": s.revoked_at,
        })).collect::<Vec<_>>(),
        "devices": found.devices.iter().map(|(id, cert, created, seen, removed, packages)| serde_json::json!({
            "id": hex::encode(id), "certificate": b64(cert), "created_at": created, "last_seen": seen,
            "removed_at": removed, "key_packages": packages,
        })).collect::<Vec<_>>(),
        "direct_messages": found.messages.iter().map(|(id, conv, from, to, at, env)| serde_json::json!({
            "id": id, "conversation": conv, "from": from, "to": to, "created_at": at,
            "bytes": env.len(), "envelope": b64(env),
        })).collect::<Vec<_>>(),
        "group_entries": found.group_entries.iter().map(|(seq, conv, epoch, kind, at, data)| serde_json::json!({
            "seq": seq, "conversation": conv, "epoch": epoch, "content_type": kind, "created_at": at,
            "bytes": data.len(), "data": b64(data),
        })).collect::<Vec<_>>(),
        "files": found.blobs.iter().map(|(id, size, at, attached)| serde_json::json!({
            "id": id, "bytes": size, "created_at": at, "attached": attached,
        })).collect::<Vec<_>>(),
        "archive": found.archive.iter().map(|(conv, seq, sender, sent, entry)| serde_json::json!({
            "conversation": conv, "seq": seq, "sender": sender, "sent_at": sent,
            "bytes": entry.len(), "entry": b64(entry),
        })).collect::<Vec<_>>(),
    });
    if json {
        return print_json(&value);
    }
    println!("user {} (id {})", u.username, u.id.0);
    println!("  created          {}", utc(u.created_at));
    println!("  last seen        {}", u.last_seen.map(utc).unwrap_or_else(|| "never".into()));
    println!("  disabled         {}", u.disabled_at.map(utc).unwrap_or_else(|| "no".into()));
    println!("  relay admin      {}", if u.is_admin { "yes" } else { "no" });
    println!("  password         Argon2id hash of a key derived in the client: {}", u.auth_hash);
    println!(
        "  key derivation   salt {} (m={} KiB, t={}, p={})",
        b64(&u.kdf_salt),
        u.kdf_m_kib,
        u.kdf_t,
        u.kdf_p
    );
    println!("  identity key     {} (public)", b64(&u.identity_key));
    println!(
        "  key backup       {} bytes, version {}, sealed under the user's password: {}",
        u.key_backup.len(),
        u.key_backup_version,
        b64(&u.key_backup)
    );
    println!("\nsessions ({})", found.sessions.len());
    for s in &found.sessions {
        let state = s.revoked_at.map(|at| format!("revoked {}", utc(at))).unwrap_or_default();
        println!("  {}  started {}  expires {}  {state}", s.id, utc(s.created_at), utc(s.expires_at));
    }
    println!("\ndevices ({})", found.devices.len());
    for (id, cert, created, seen, removed, packages) in &found.devices {
        let removed = removed.map(|at| format!(", removed {}", utc(at))).unwrap_or_default();
        println!(
            "  {}  added {}  last seen {}{removed}, {packages} key packages waiting; certificate {}",
            hex::encode(id),
            utc(*created),
            utc(*seen),
            b64(cert)
        );
    }
    println!("\ndirect messages, newest first ({} shown)", found.messages.len());
    for (id, conv, from, to, at, env) in &found.messages {
        println!(
            "  #{id} conversation {conv}  {from} -> {to}  {}  {} bytes: {}",
            utc(*at),
            env.len(),
            b64(env)
        );
    }
    println!("\ngroup messages and commits sent, newest first ({} shown)", found.group_entries.len());
    for (seq, conv, epoch, kind, at, data) in &found.group_entries {
        let kind = if *kind == 0 { "application" } else { "handshake" };
        println!(
            "  #{seq} group {conv} epoch {epoch} {kind}  {}  {} bytes: {}",
            utc(*at),
            data.len(),
            b64(data)
        );
    }
    println!("\nfiles uploaded ({} shown; their bytes are encrypted and not printed)", found.blobs.len());
    for (id, size_, at, attached) in &found.blobs {
        let state = if *attached { "sent" } else { "not sent yet" };
        println!("  {id}  {}  {}  {state}", size(*size_), utc(*at));
    }
    println!("\nhistory archive ({} entries shown)", found.archive.len());
    for (conv, seq, sender, sent, entry) in &found.archive {
        println!(
            "  group {conv} #{seq} from {sender}  {}  {} bytes: {}",
            utc(*sent),
            entry.len(),
            b64(entry)
        );
    }
    Ok(())
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let line: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Bytes for people: `512 B`, `3.4 KiB`, `1.2 MiB`, `2.0 GiB`.
pub fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match bytes {
        n if n < 1024 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", b / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
        _ => format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0)),
    }
}

/// Unix milliseconds as `2026-11-25 03:32:05 UTC`.
pub fn utc(ms: i64) -> String {
    format!("{} UTC", sealroom_protocol::time::Civil::from_unix_ms(ms).seconds())
}

/// A running relay's side: every [`KICK_POLL`], the sessions `sealroom admin` ended in the
/// last minute, whose sockets on this relay are closed (once per kick).
pub async fn watch_kicks(relay: actix_web::web::Data<Relay>) {
    let mut seen: std::collections::HashMap<i64, i64> = Default::default();
    let mut tick = tokio::time::interval(KICK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let since = relay.clock.now_ms() - KICK_WINDOW_MS;
        let kicks = match relay.store.run(move |conn| Ok(stored::kicks_since(conn, since)?)).await {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!(error = %e, "reading admin kicks failed");
                continue;
            }
        };
        for kick in kicks {
            if seen.insert(kick.id, kick.at).is_none() {
                relay.fanout.revoke_here(UserId(kick.user_id), &[kick.session_id], &kick.reason);
            }
        }
        seen.retain(|_, at| *at >= since - KICK_WINDOW_MS);
    }
}

/// A running relay's side, with `--retention-days`: deletes what is older, in batches (each its
/// own short write, so sending never waits long behind it).
pub async fn apply_retention(relay: &Relay, days: u32) -> crate::error::Result<()> {
    let before = relay.clock.now_ms() - i64::from(days) * 86_400_000;
    let (mut messages, mut files) = (0, 0);
    loop {
        let (n, freed) =
            relay.store.write(move |conn| Ok(stored::expire_messages(conn, before, 1000)?)).await?;
        files += freed.len();
        relay.blobs.remove(freed).await;
        messages += n;
        if n < 1000 {
            break;
        }
    }
    let archived = relay.store.write(move |conn| Ok(stored::expire_archive(conn, before)?)).await?;
    if messages + archived > 0 {
        tracing::info!(messages, files, archived, days, "deleted what is past the retention period");
    }
    Ok(())
}

/// A running relay's side: its open connections, every 5 s, for `sealroom admin stats`; the
/// row goes when the relay stops.
pub async fn report_connections(relay: actix_web::web::Data<Relay>, node: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let (n, now, node) = (relay.fanout.connection_count() as i64, relay.clock.now_ms(), node.clone());
        if let Err(e) =
            relay.store.write(move |conn| Ok(stored::report_connections(conn, &node, n, now)?)).await
        {
            tracing::debug!(error = %e, "recording the connection count failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_as_people_write_them() {
        assert_eq!(utc(1_764_041_525_000), "2025-11-25 03:32:05 UTC");
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 20), "5.0 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }
}
