//! `sealroom-cli`: Sealroom from scripts and bots, with real end-to-end encryption.
//!
//! Every command signs in (deriving keys from the password), reusing this device's session
//! from the state dir while the relay accepts it, and does its work; `logout` ends it.
//! Output is for scripts: messages are `ID<TAB>RFC3339-TIME<TAB>SENDER<TAB>TEXT`, one per line.
//! Failures print one line to stderr and exit non-zero.

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sealroom_client::{rfc3339, Client, ClientError, Message, Session};
use sealroom_protocol::{ClientFrame, ServerFrame};

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
    Register,
    /// End this device's session (the next command signs in anew).
    Logout,
    /// End every session of this account, on every device.
    LogoutEverywhere,
    /// Send a text; prints the acknowledged message id.
    Send {
        /// Recipient.
        peer: String,
        /// The text.
        text: String,
        /// Send even though the peer's identity key changed (re-pins the new key).
        #[arg(long)]
        accept_new_key: bool,
    },
    /// Encrypt a file as it uploads and send it; prints the acknowledged message id.
    SendFile {
        /// Recipient.
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
        /// The message's id (as `send-file` or `history` print it).
        message_id: i64,
        /// Where to save it.
        out_path: std::path::PathBuf,
        /// Replace OUT_PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the conversation with PEER, oldest first.
    History {
        /// The other participant.
        peer: String,
        /// How many of the newest messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print incoming messages as they arrive.
    Listen {
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Exit after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// List conversations: PEER<TAB>UNREAD<TAB>ONLINE|LAST-SEEN<TAB>LAST-MESSAGE.
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
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        let line = e.to_string().replace('\n', " ");
        eprintln!("sealroom-cli: error: {line}");
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
    if let Command::Register = cli.command {
        let session = client.register(&cli.user, &password).await?;
        session.save();
        println!("registered {}", session.username());
        return Ok(());
    }
    let mut session = client.sign_in(&cli.user, &password).await?;
    match cli.command {
        Command::Logout => session.logout().await,
        Command::LogoutEverywhere => session.logout_everywhere().await,
        other => command(&mut session, other).await,
    }
}

async fn command(session: &mut Session, command: Command) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| ClientError::Usage(format!("cannot write output: {e}"));
    match command {
        Command::Register | Command::Logout | Command::LogoutEverywhere => {
            return Err(ClientError::Usage("handled before the command runs".into()))
        }
        Command::Send { peer, text, accept_new_key } => {
            let id = session.send_text(&peer, &text, accept_new_key).await?;
            writeln!(out, "{id}").map_err(io)?;
        }
        Command::SendFile { peer, path, accept_new_key } => {
            let id = session.send_file(&peer, &path, accept_new_key).await?;
            writeln!(out, "{id}").map_err(io)?;
        }
        Command::GetFile { message_id, out_path, force } => {
            let file = session.get_file(sealroom_protocol::MessageId(message_id), &out_path, force).await?;
            let name = file.name.replace(['\t', '\n', '\r'], " ");
            writeln!(out, "{name}\t{}\t{}", file.size, file.mime).map_err(io)?;
        }
        Command::History { peer, limit } => {
            for m in session.history(&peer, limit).await? {
                print_message(&mut out, &m).map_err(io)?;
            }
        }
        Command::Listen { count, timeout } => {
            drop(out);
            listen(session, count, timeout).await?;
        }
        Command::Conversations => {
            for c in session.conversations().await? {
                let presence = if c.peer_online {
                    "online".to_owned()
                } else {
                    c.peer_last_seen.map_or_else(|| "offline".to_owned(), rfc3339)
                };
                let last = match &c.last_message {
                    Some(m) => match session.decrypt(m).await {
                        Ok(d) => d.text(),
                        Err(_) => "[cannot decrypt]".into(),
                    },
                    None => String::new(),
                };
                writeln!(out, "{}\t{}\t{}\t{}", c.peer, c.unread, presence, last).map_err(io)?;
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
        Command::Passwd => {
            let current = secret("SEALROOM_PASSWORD", "Current password: ")?;
            let new = secret("SEALROOM_NEW_PASSWORD", "New password: ")?;
            session.change_password(&current, &new).await?;
            writeln!(out, "password changed; other sessions signed out").map_err(io)?;
        }
    }
    Ok(())
}

/// Prints messages addressed to this user as they arrive, acknowledging delivery.
async fn listen(session: &mut Session, count: Option<u64>, timeout: Option<u64>) -> Result<(), ClientError> {
    let mut conn = session.connect().await?;
    eprintln!("listening as {}", session.username());
    let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut seen = 0u64;
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
                    Err(e) => eprintln!("message {id} from {peer}: {e}"),
                }
                conn.send(&ClientFrame::Delivered { conversation: message.conversation, up_to: id }).await?;
                seen += 1;
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
