//! `sealroom-cli`: Sealroom from scripts and bots, with real end-to-end encryption.
//!
//! Every command signs in (deriving keys from the password), reusing this device's session
//! from the state dir while the relay accepts it, and does its work; `logout` ends it.
//! Output is for scripts: messages are `ID<TAB>RFC3339-TIME<TAB>SENDER<TAB>TEXT`, one per line,
//! where ID is a direct message's id or, in a group, `#CONVERSATION/POSITION`. Where a command
//! takes a peer, `#ID` names a group conversation instead. Failures print one line to stderr
//! and exit non-zero.

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sealroom_client::{
    payload_text, rfc3339, ArchivedMessage, Client, ClientError, DirectMessage, EventKind, GroupEvent,
    Message, Sent, Session,
};
use sealroom_crypto::Payload;
use sealroom_protocol::{ClientFrame, ConversationId, DeviceId, ServerFrame};

#[derive(Debug, Parser)]
#[command(
    name = "sealroom-cli",
    version,
    about = "End-to-end encrypted Sealroom messaging from the command line"
)]
struct Cli {
    /// The relay's URL.
    #[arg(long, env = "SEALROOM_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Your username. The password comes from SEALROOM_PASSWORD, or a prompt on a terminal.
    #[arg(long, env = "SEALROOM_USER")]
    user: String,
    /// Where this device remembers, per relay and account, the newest key-backup generation it
    /// has seen (so an older backup served later is refused) and its session token (mode 0600,
    /// reused by the next command until `logout` or expiry). Default: $XDG_STATE_HOME/sealroom
    /// or ~/.local/state/sealroom.
    #[arg(long, env = "SEALROOM_STATE_DIR")]
    state_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the account (keys are made here; the server sees only public and sealed data).
    Register {
        /// An invite code, for a relay whose registration is invite-only.
        #[arg(long, env = "SEALROOM_INVITE")]
        invite: Option<String>,
    },
    /// End this device's session (the next command signs in anew).
    Logout,
    /// End every session of this account, on every device.
    LogoutEverywhere,
    /// Delete this account for good (password required): every session ends; your key backup,
    /// devices and history archive go; what you sent stays with its recipients, who see a
    /// deleted user. Asks for --yes.
    DeleteAccount {
        /// Yes, delete it (there is no undo).
        #[arg(long)]
        yes: bool,
    },
    /// Send a text; prints the acknowledged message id (in a group, `#ID/POSITION`).
    Send {
        /// Recipient: a username, or `#ID` for a group.
        peer: String,
        /// The text.
        text: String,
        /// Send even though the peer's identity key changed (re-pins the new key).
        #[arg(long)]
        accept_new_key: bool,
    },
    /// Encrypt a file as it uploads and send it; prints the acknowledged message id.
    SendFile {
        /// Recipient: a username, or `#ID` for a group.
        peer: String,
        /// The file.
        path: std::path::PathBuf,
        /// Send even though the peer's identity key changed (re-pins the new key).
        #[arg(long)]
        accept_new_key: bool,
    },
    /// Download and decrypt the file of message MESSAGE_ID into OUT_PATH. The file is written
    /// only if it authenticates completely; prints NAME<TAB>SIZE<TAB>MIME.
    GetFile {
        /// The message's id (as `send-file` or `history` print it: a number, or `#ID/POSITION`
        /// in a group).
        message_id: String,
        /// Where to save it.
        out_path: std::path::PathBuf,
        /// Replace OUT_PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the conversation with PEER (or group `#ID`, from your history archive), oldest
    /// first.
    History {
        /// The other participant, or `#ID` for a group.
        peer: String,
        /// How many of the newest messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Export your whole history, decrypted here, into DIR: sealroom-export.json (every message)
    /// and sealroom-export.html (one page that opens in any browser). Progress on stderr.
    Export {
        /// The directory to write into (made if missing; existing exports are not overwritten).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Print incoming messages as they arrive (a group's first: everything this device has not
    /// read yet). Group events (joins, membership changes) go to stderr.
    Listen {
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Exit after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// List conversations: PEER<TAB>UNREAD<TAB>ONLINE|LAST-SEEN<TAB>LAST-MESSAGE (UNREAD counts
    /// version 1 messages; LAST-MESSAGE is the newest of either kind).
    Conversations,
    /// Search users by name prefix.
    Users {
        /// The prefix (empty: everyone).
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Show the safety number with PEER (compare it with them out of band).
    SafetyNumber {
        /// The other participant.
        peer: String,
        /// Also mark PEER's key as verified.
        #[arg(long)]
        verify: bool,
    },
    /// Clear the conversation with PEER.
    Clear {
        /// The other participant.
        peer: String,
        /// Also for PEER.
        #[arg(long)]
        for_both: bool,
    },
    /// Change your password (the new one from SEALROOM_NEW_PASSWORD, or a prompt).
    Passwd,
    /// Block USER: the relay withholds what they send you from now on; they are not told.
    Block {
        /// Who.
        user: String,
    },
    /// Unblock USER (what was withheld stays withheld).
    Unblock {
        /// Who.
        user: String,
    },
    /// List the users you have blocked.
    Blocked,
    /// Group conversations (MLS).
    #[command(subcommand)]
    Group(GroupCommand),
    /// List your devices: ID<TAB>CREATED<TAB>LAST-SEEN<TAB>this|active|removed; `devices remove
    /// ID` removes one (it is taken out of every group).
    Devices {
        #[command(subcommand)]
        command: Option<DevicesCommand>,
    },
    /// The history archive (on by default): every group message your devices send or read is
    /// kept sealed at the relay under a key only your password opens, so a new device reads the
    /// history. `archive off` deletes it and keeps none (strict forward secrecy); `archive on`
    /// keeps it again from then on; without an argument, prints on or off.
    Archive {
        /// on or off.
        state: Option<OnOff>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group named NAME with you as its admin; prints `#ID` as its last line.
    Create {
        /// Its name (only members read it).
        name: String,
        /// Users to add (every device of theirs).
        #[arg(long = "member", value_name = "USER")]
        members: Vec<String>,
    },
    /// Add users to group `#ID` (admins only).
    Add {
        /// The group.
        group: String,
        /// Who.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove users from group `#ID` (admins only): they read nothing sent after.
    Remove {
        /// The group.
        group: String,
        /// Who.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Leave group `#ID` (on every device of yours).
    Leave {
        /// The group.
        group: String,
    },
    /// Rename group `#ID` (any member).
    Rename {
        /// The group.
        group: String,
        /// The new name.
        name: String,
    },
    /// Make exactly these users the admins of group `#ID` (admins only).
    Admins {
        /// The group.
        group: String,
        /// The new admins (members).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// List group `#ID`'s members: USER<TAB>admin|member<TAB>DEVICES.
    Members {
        /// The group.
        group: String,
    },
    /// List your groups: #ID<TAB>NAME<TAB>MEMBERS.
    List,
    /// Read everything new in your groups (joining those this device is not in yet), print
    /// the messages as `listen` does, and exit.
    Sync,
    /// Give this device fresh keys in group `#ID` (post-compromise security).
    Update {
        /// The group.
        group: String,
    },
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    /// Remove device ID: it may no longer act, and the other members take it out of every
    /// group.
    Remove {
        /// The device's id (32 hex digits, as `devices` prints it).
        id: String,
    },
}

/// Where a message goes: a user (direct) or a group conversation.
enum Target {
    Peer(String),
    Group(ConversationId),
}

/// A line for people on stderr. A closed stderr (whoever read it went away) is not worth
/// dying for, as `eprintln!` would.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn target(s: &str) -> Result<Target, ClientError> {
    match s.strip_prefix('#') {
        Some(_) => Ok(Target::Group(group_id(s)?)),
        None => Ok(Target::Peer(s.to_owned())),
    }
}

/// A group conversation written `#ID`.
fn group_id(s: &str) -> Result<ConversationId, ClientError> {
    s.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()).filter(|n| *n > 0).map(ConversationId).ok_or_else(
        || {
            ClientError::Usage(format!(
                "{s:?} is not a group conversation (write it #ID, as `group list` prints it)"
            ))
        },
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        let line = e.to_string().replace('\n', " ");
        note!("sealroom-cli: error: {line}");
        std::process::exit(match e {
            ClientError::Usage(_) => 2,
            _ => 1,
        });
    }
}

fn secret(var: &str, prompt: &str) -> Result<String, ClientError> {
    if let Ok(v) = std::env::var(var) {
        return Ok(v);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return rpassword::prompt_password(prompt)
            .map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")));
    }
    Err(ClientError::Usage(format!("set {var} or run on a terminal to be asked")))
}

/// `id  sent_at  from  text`: the sender's authenticated time; when the relay's receipt time
/// disagrees by more than 10 minutes, it follows in brackets.
fn print_message(out: &mut impl Write, m: &Message) -> std::io::Result<()> {
    let sent = i64::try_from(m.sent_at_ms).unwrap_or(i64::MAX);
    let when = if sealroom_session::clock_disagrees(m.sent_at_ms, m.ts) {
        format!("{} (server: {})", rfc3339(sent), rfc3339(m.ts))
    } else {
        rfc3339(sent)
    };
    writeln!(out, "{}\t{}\t{}\t{}", m.id, when, m.from, m.text())
}

/// A send that failed without the relay's answer, said as it is: the message is kept (see
/// `Session::unanswered_sends`) and goes with the next command that reads or sends.
fn kept_if_unanswered(session: &Session, sent: Result<Sent, ClientError>) -> Result<Sent, ClientError> {
    sent.map_err(|e| match e {
        ClientError::Http(_) if session.unanswered_sends() > 0 => ClientError::Usage(format!(
            "{e}; the message is kept on this device and is sent (once) by your next command"
        )),
        e => e,
    })
}

/// How a sent message is named: its id, or `#CONVERSATION/POSITION` in a group's log.
fn sent_id(sent: Sent) -> String {
    match sent {
        Sent::V1(id) => id.to_string(),
        Sent::Mls(group, at) => format!("#{group}/{}", at.seq),
    }
}

/// One message of the history archive: `#CONVERSATION/POSITION  time  sender  text`.
fn print_archived(out: &mut impl Write, group: ConversationId, m: &ArchivedMessage) -> std::io::Result<()> {
    let text = match &m.payload {
        Ok(p) => payload_text(p),
        Err(e) => format!("[cannot decrypt: {e}]"),
    };
    let when = rfc3339(i64::try_from(m.sent_ms).unwrap_or(i64::MAX));
    writeln!(out, "#{group}/{}\t{when}\t{}\t{text}", m.seq, m.sender)
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    let state_dir = cli.state_dir.clone().or_else(|| {
        std::env::var_os("XDG_STATE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state")))
            .map(|base| base.join("sealroom"))
    });
    let client = match state_dir {
        Some(dir) => Client::new(&cli.server)?.with_state_dir(dir),
        None => Client::new(&cli.server)?,
    };
    let password = secret("SEALROOM_PASSWORD", "Password: ")?;
    if let Command::Register { invite } = &cli.command {
        let mut session = client.register_invited(&cli.user, &password, invite.as_deref()).await?;
        session.save();
        // This state dir becomes a device others can add to groups at once.
        session.mls_start().await?;
        println!("registered {}", session.username());
        return Ok(());
    }
    if let Command::DeleteAccount { yes: false } = cli.command {
        return Err(ClientError::Usage("deleting an account cannot be undone: add --yes to go ahead".into()));
    }
    let mut session = client.sign_in(&cli.user, &password).await?;
    match cli.command {
        Command::Logout => session.logout().await,
        Command::LogoutEverywhere => session.logout_everywhere().await,
        Command::DeleteAccount { yes: true } => {
            let name = session.username().to_owned();
            session.delete_account(&password).await?;
            println!("deleted the account {name}");
            Ok(())
        }
        other => command(&mut session, other).await,
    }
}

/// `export`: everything this user can read, decrypted here (the shared client core's
/// [`sealroom_session::export::collect`], as in the web client).
async fn export(session: &mut Session, dir: &std::path::Path) -> Result<(), ClientError> {
    let io = |e: std::io::Error| ClientError::Usage(format!("cannot write the export: {e}"));
    let (json_path, html_path) = (dir.join("sealroom-export.json"), dir.join("sealroom-export.html"));
    if json_path.exists() || html_path.exists() {
        return Err(ClientError::Usage(format!("{} already holds an export", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    if session.archive_on() {
        // This device's own reading goes to the archive first.
        report(session.sync_groups().await?);
    } else {
        note!("archive off: forward-secret messages are not kept, so only version 1 messages are exported");
    }
    let mut shown = 0;
    let export = session
        .export(|n| {
            if n >= shown + 500 {
                shown = n;
                note!("{n} messages…");
            }
        })
        .await?;
    std::fs::write(&json_path, export.to_json()).map_err(io)?;
    std::fs::write(&html_path, export.to_html()).map_err(io)?;
    println!(
        "exported {} messages in {} conversations to {} and {}",
        export.message_count(),
        export.conversations.len(),
        json_path.display(),
        html_path.display()
    );
    Ok(())
}

async fn command(session: &mut Session, command: Command) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| ClientError::Usage(format!("cannot write output: {e}"));
    match command {
        Command::Register { .. }
        | Command::Logout
        | Command::LogoutEverywhere
        | Command::DeleteAccount { .. } => {
            return Err(ClientError::Usage("handled before the command runs".into()))
        }
        Command::Send { peer, text, accept_new_key } => {
            let sent = async {
                Ok(match target(&peer)? {
                    Target::Peer(peer) => {
                        catch_up(session).await?;
                        session.send_to(&peer, &Payload::Text(text), accept_new_key).await?
                    }
                    Target::Group(group) => {
                        catch_up(session).await?;
                        Sent::Mls(group, session.send_group(group, &Payload::Text(text)).await?)
                    }
                })
            }
            .await;
            writeln!(out, "{}", sent_id(kept_if_unanswered(session, sent)?)).map_err(io)?;
        }
        Command::SendFile { peer, path, accept_new_key } => {
            let sent = async {
                catch_up(session).await?;
                Ok(match target(&peer)? {
                    Target::Peer(peer) => session.send_file_to(&peer, &path, accept_new_key).await?,
                    Target::Group(group) => Sent::Mls(group, session.send_group_file(group, &path).await?),
                })
            }
            .await;
            writeln!(out, "{}", sent_id(kept_if_unanswered(session, sent)?)).map_err(io)?;
        }
        Command::GetFile { message_id, out_path, force } => {
            let file = match message_id.split_once('/') {
                Some((group, seq)) => {
                    let seq = seq.parse::<u64>().map_err(|_| {
                        ClientError::Usage(format!("{message_id:?}: a group message is #ID/POSITION"))
                    })?;
                    // This device's own reading goes to the archive first.
                    report(session.sync_groups().await?);
                    session.get_group_file(group_id(group)?, seq, &out_path, force).await?
                }
                None => {
                    let id = message_id.parse::<i64>().map_err(|_| {
                        ClientError::Usage(format!("{message_id:?} is not a message id (or #ID/POSITION)"))
                    })?;
                    session.get_file(sealroom_protocol::MessageId(id), &out_path, force).await?
                }
            };
            let name = file.name.replace(['\t', '\n', '\r'], " ");
            writeln!(out, "{name}\t{}\t{}", file.size, file.mime).map_err(io)?;
        }
        Command::History { peer, limit } => {
            if let Some(days) = session.server_info().await.ok().and_then(|i| i.retention_days) {
                let unit = if days == 1 { "day" } else { "days" };
                note!("this server deletes messages after {days} {unit}: older history is gone");
            }
            match target(&peer)? {
                Target::Peer(peer) => {
                    if !session.archive_on() && session.direct_moved(&peer).await? {
                        note!("archive off: this conversation's forward-secret messages are not kept");
                    }
                    for m in session.direct_history(&peer, limit).await? {
                        match m {
                            DirectMessage::V1(m) => print_message(&mut out, &m),
                            DirectMessage::Mls(group, m) => print_archived(&mut out, group, &m),
                        }
                        .map_err(io)?;
                    }
                }
                Target::Group(group) => {
                    // This device's own reading goes to the archive first.
                    report(session.sync_groups().await?);
                    for m in session.archived_latest(group, limit).await? {
                        print_archived(&mut out, group, &m).map_err(io)?;
                    }
                }
            }
        }
        Command::Listen { count, timeout } => {
            drop(out);
            listen(session, count, timeout).await?;
        }
        Command::Export { out: dir } => {
            drop(out);
            export(session, &dir).await?;
        }
        Command::Conversations => {
            // Conversations in MLS: their newest message may be in the history archive.
            let moved: Vec<ConversationId> = if session.archive_on() {
                session.groups().await?.into_iter().map(|g| g.conversation).collect()
            } else {
                Vec::new()
            };
            for c in session.conversations().await? {
                let presence = if c.peer_online {
                    "online".to_owned()
                } else {
                    c.peer_last_seen.map_or_else(|| "offline".to_owned(), rfc3339)
                };
                let mut introduction = false;
                let mut last = match &c.last_message {
                    Some(m) => match session.decrypt(m).await {
                        Ok(d) => {
                            introduction = d.from == c.peer && matches!(d.payload, Payload::Upgrade { .. });
                            (d.sent_at_ms, d.text())
                        }
                        Err(_) => (0, "[cannot decrypt]".into()),
                    },
                    None => (0, String::new()),
                };
                if moved.contains(&c.id) {
                    if let Some(m) = session.archived_latest(c.id, 1).await?.pop() {
                        if m.sent_ms >= last.0 {
                            last = (
                                m.sent_ms,
                                m.payload
                                    .as_ref()
                                    .map_or_else(|e| format!("[cannot decrypt: {e}]"), payload_text),
                            );
                        }
                    }
                }
                let last = last.1;
                let unread = sealroom_session::unread_shown(&c, introduction);
                writeln!(out, "{}\t{}\t{}\t{}", c.peer, unread, presence, last).map_err(io)?;
            }
        }
        Command::Users { prefix } => {
            for u in session.users(&prefix).await? {
                writeln!(out, "{}", u.username).map_err(io)?;
            }
        }
        Command::SafetyNumber { peer, verify } => {
            let number = session.safety_number(&peer).await?;
            if verify {
                session.mark_verified(&peer).await?;
            }
            let verified = session.pins().get(&peer.to_ascii_lowercase()).is_some_and(|p| p.verified);
            writeln!(out, "{number}{}", if verified { "\t(verified)" } else { "" }).map_err(io)?;
        }
        Command::Clear { peer, for_both } => {
            session.clear(&peer, for_both).await?;
            writeln!(out, "cleared").map_err(io)?;
        }
        Command::Block { user } => {
            session.block(&user).await?;
            writeln!(out, "blocked {}", user.to_ascii_lowercase()).map_err(io)?;
        }
        Command::Unblock { user } => {
            session.unblock(&user).await?;
            writeln!(out, "unblocked {}", user.to_ascii_lowercase()).map_err(io)?;
        }
        Command::Blocked => {
            for u in session.blocked().await? {
                writeln!(out, "{u}").map_err(io)?;
            }
        }
        Command::Group(g) => group_command(session, g, &mut out).await?,
        Command::Devices { command: None } => {
            let me = session.device_id().await?;
            for d in session.devices().await? {
                let state = match (d.device == me, d.revoked_at) {
                    (_, Some(_)) => "removed",
                    (true, None) => "this",
                    (false, None) => "active",
                };
                writeln!(out, "{}\t{}\t{}\t{state}", d.device, rfc3339(d.created_at), rfc3339(d.last_seen))
                    .map_err(io)?;
            }
        }
        Command::Devices { command: Some(DevicesCommand::Remove { id }) } => {
            let device: DeviceId = id.parse().map_err(|e| ClientError::Usage(format!("{id:?}: {e}")))?;
            session.remove_device(device).await?;
            writeln!(out, "removed {device}").map_err(io)?;
        }
        Command::Archive { state: None } => {
            writeln!(out, "{}", if session.archive_on() { "on" } else { "off" }).map_err(io)?;
        }
        Command::Archive { state: Some(state) } => {
            session.set_archive(state == OnOff::On).await?;
            let said = match state {
                OnOff::On => "archive on: your devices keep group history sealed at the relay",
                OnOff::Off => "archive off: deleted at the relay; a new device starts with no group history",
            };
            writeln!(out, "{said}").map_err(io)?;
        }
        Command::Passwd => {
            let current = secret("SEALROOM_PASSWORD", "Current password: ")?;
            let new = secret("SEALROOM_NEW_PASSWORD", "New password: ")?;
            session.change_password(&current, &new).await?;
            writeln!(out, "password changed; other sessions signed out").map_err(io)?;
        }
    }
    Ok(())
}

/// Group events other than messages, for people: on stderr.
fn report(events: Vec<GroupEvent>) {
    for e in events {
        if let Some(line) = event_line(&e) {
            note!("{line}");
        }
    }
}

fn event_line(e: &GroupEvent) -> Option<String> {
    let c = e.conversation;
    Some(match &e.what {
        EventKind::Message { .. } => return None,
        EventKind::Joined => format!("#{c}: joined"),
        EventKind::Commit(s) => {
            let names = |list: &[(String, sealroom_session::mls::DeviceId)]| {
                let mut users: Vec<&str> = list.iter().map(|(u, _)| u.as_str()).collect();
                users.dedup();
                users.join(",")
            };
            let mut what = Vec::new();
            if !s.added.is_empty() {
                what.push(format!("added {}", names(&s.added)));
            }
            if !s.removed.is_empty() {
                what.push(format!("removed {}", names(&s.removed)));
            }
            if s.admins_changed {
                what.push("changed the admins".into());
            }
            if what.is_empty() {
                what.push("updated keys".into());
            }
            format!("#{c}/{}: {} {} (epoch {})", e.seq, s.by, what.join(", "), s.epoch)
        }
        EventKind::Removed => format!("#{c}: you are no longer a member"),
        EventKind::Unreadable(why) => format!("#{c}/{}: cannot read this entry: {why}", e.seq),
        EventKind::Refused(why) => format!("#{c}/{}: refused: {why}", e.seq),
        EventKind::Unconfirmed(why) => format!("#{c}: {why}"),
        EventKind::Resent { .. } => format!("#{c}/{}: sent a message kept from before", e.seq),
    })
}

/// Prints a group's messages; returns how many.
fn print_group_messages(events: &[GroupEvent]) -> Result<u64, ClientError> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| ClientError::Usage(format!("cannot write output: {e}"));
    let mut n = 0;
    for e in events {
        match &e.what {
            EventKind::Message { sender, sent_ms, payload, .. } => {
                let when = rfc3339(i64::try_from(*sent_ms).unwrap_or(i64::MAX));
                writeln!(out, "#{}/{}\t{when}\t{sender}\t{}", e.conversation, e.seq, payload_text(payload))
                    .map_err(io)?;
                n += 1;
            }
            _ => {
                if let Some(line) = event_line(e) {
                    note!("{line}");
                }
            }
        }
    }
    out.flush().map_err(io)?;
    Ok(n)
}

/// Prints what the groups said and acknowledges its delivery (as `listen` does for version
/// 1 messages).
async fn ack_group_messages(
    conn: &mut sealroom_client::Connection,
    session: &Session,
    events: &[GroupEvent],
) -> Result<u64, ClientError> {
    let n = print_group_messages(events)?;
    for frame in sealroom_session::groups::delivered_receipts(events, session.username().as_str()) {
        conn.send(&frame).await?;
    }
    Ok(n)
}

/// Reads every group's news (reported on stderr), then commits what is left to tidy (users who
/// left, removed and idle devices) and the updates this device owes.
async fn catch_up(session: &mut Session) -> Result<(), ClientError> {
    report(maintain(session).await?);
    Ok(())
}

/// [`catch_up`], returning what was read (what failed after the first read is noted: what was
/// read is never dropped for it).
async fn maintain(session: &mut Session) -> Result<Vec<GroupEvent>, ClientError> {
    let done = session.maintain_groups().await?;
    if let Some(e) = done.failed {
        note!("tidying or renewing the groups failed (tried again next time): {e}");
    }
    Ok(done.events)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

async fn group_command(
    session: &mut Session,
    command: GroupCommand,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let io = |e: std::io::Error| ClientError::Usage(format!("cannot write output: {e}"));
    if let GroupCommand::Sync = command {
        print_group_messages(&maintain(session).await?)?;
        return Ok(());
    }
    // Every group command starts from the group's current state, with users who left and
    // removed devices taken out.
    catch_up(session).await?;
    match command {
        GroupCommand::Create { name, members } => {
            sealroom_crypto::check_group_name(&name)
                .map_err(|e| ClientError::Usage(format!("not a group name: {e}")))?;
            let id = session.create_group(&strs(&members)).await?;
            session.rename_group(id, &name).await?;
            writeln!(out, "#{id}").map_err(io)?;
        }
        GroupCommand::Add { group, users } => {
            let at = session.add_members(group_id(&group)?, &strs(&users)).await?;
            writeln!(out, "added at #{}/{}", group_id(&group)?, at.seq).map_err(io)?;
        }
        GroupCommand::Remove { group, users } => {
            let at = session.remove_members(group_id(&group)?, &strs(&users)).await?;
            writeln!(out, "removed at #{}/{}", group_id(&group)?, at.seq).map_err(io)?;
        }
        GroupCommand::Leave { group } => {
            session.leave_group(group_id(&group)?).await?;
            writeln!(out, "left {group}").map_err(io)?;
        }
        GroupCommand::Rename { group, name } => {
            let at = session.rename_group(group_id(&group)?, &name).await?;
            writeln!(out, "#{}/{}", group_id(&group)?, at.seq).map_err(io)?;
        }
        GroupCommand::Admins { group, users } => {
            let at = session.set_admins(group_id(&group)?, &strs(&users)).await?;
            writeln!(out, "admins changed at #{}/{}", group_id(&group)?, at.seq).map_err(io)?;
        }
        GroupCommand::Update { group } => {
            let at = session.update_keys(group_id(&group)?).await?;
            writeln!(out, "keys updated at #{}/{}", group_id(&group)?, at.seq).map_err(io)?;
        }
        GroupCommand::Members { group } => {
            let id = group_id(&group)?;
            let state = session.group(id).await?;
            let devices = session.group_devices(id);
            for m in state.members {
                let n = devices.iter().filter(|(u, _)| u == m.user.as_str()).count();
                let role = if m.admin { "admin" } else { "member" };
                writeln!(out, "{}\t{role}\t{n}", m.user).map_err(io)?;
            }
        }
        GroupCommand::Sync => {}
        GroupCommand::List => {
            for g in session.groups().await? {
                let name = session.group_name(g.conversation).await?.unwrap_or_default();
                let members: Vec<String> = g.members.iter().map(|m| m.user.to_string()).collect();
                let name = name.replace(['\t', '\n', '\r'], " ");
                writeln!(out, "#{}\t{name}\t{}", g.conversation, members.join(",")).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Prints messages addressed to this user as they arrive, acknowledging delivery.
async fn listen(session: &mut Session, count: Option<u64>, timeout: Option<u64>) -> Result<(), ClientError> {
    let mut conn = session.connect().await?;
    note!("listening as {}", session.username());
    let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    // What the groups said while this device was away, first.
    let events = maintain(session).await?;
    let mut seen = ack_group_messages(&mut conn, session, &events).await?;
    while count.is_none_or(|c| seen < c) {
        let frame = match deadline {
            Some(d) => match tokio::time::timeout_at(d, conn.next()).await {
                Ok(f) => f?,
                Err(_) => break,
            },
            None => conn.next().await?,
        };
        match frame {
            ServerFrame::Message { message } if &message.to == session.username() => {
                let peer = message.from.clone();
                let id = message.id;
                match session.decrypt(&message).await {
                    Ok(m) => {
                        let mut out = std::io::stdout().lock();
                        print_message(&mut out, &m).map_err(|e| ClientError::Usage(e.to_string()))?;
                        out.flush().map_err(|e| ClientError::Usage(e.to_string()))?;
                    }
                    Err(e) => note!("message {id} from {peer}: {e}"),
                }
                conn.send(&ClientFrame::Delivered { conversation: message.conversation, up_to: id }).await?;
                seen += 1;
            }
            ServerFrame::GroupEntry { .. } | ServerFrame::Welcome { .. } => {
                let events = session.sync_groups().await?;
                seen += ack_group_messages(&mut conn, session, &events).await?;
            }
            ServerFrame::Left { .. } => {
                // Whoever is online first commits the removal of who left.
                session.tidy_groups().await?;
                let events = session.sync_groups().await?;
                seen += ack_group_messages(&mut conn, session, &events).await?;
            }
            ServerFrame::SessionRevoked { reason } => {
                return Err(ClientError::Protocol(format!("session revoked: {reason}")))
            }
            _ => {}
        }
    }
    conn.close().await;
    Ok(())
}
