//! `sealroom`: the relay binary.

use clap::Parser;
use sealroom_server::config::{Cli, Command};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(other) => {
            // The operator's commands: only warnings and errors are logged (the output is the
            // command's), and a failure is one line, not a backtrace.
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
                .with_writer(std::io::stderr)
                .init();
            if let Err(e) = operator(other).await {
                eprintln!("sealroom: error: {e:#}");
                std::process::exit(1);
            }
            return Ok(());
        }
        None => cli.serve,
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    Ok(sealroom_server::serve(args).await?)
}

async fn operator(command: Command) -> anyhow::Result<()> {
    use sealroom_server::{admin, backup};
    match command {
        Command::Serve(_) => unreachable!("serve runs the relay"),
        Command::Admin(args) => admin::run(args).await,
        Command::Backup(args) => {
            let m = backup::backup(&args.store, &args.to)?;
            let missing = match m.blobs_missing {
                0 => String::new(),
                n => format!("; {n} attachments were deleted while it ran and are not in it"),
            };
            println!(
                "backed up {} ({} attachment files, {}) into {}{missing}",
                admin::utc(m.created_at),
                m.blobs,
                admin::size(m.blob_bytes as i64),
                args.to.display(),
            );
            Ok(())
        }
        Command::Restore(args) => {
            let m = backup::restore(&args.from, &args.store)?;
            println!("{}", backup::restored_words(&m, &args.store));
            Ok(())
        }
    }
}
