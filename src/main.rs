//! The `pixelpipe` command: one binary, one subcommand per program of the original recipe.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use figment::value::Value;

use pixelpipe::config::Config;

#[derive(Parser)]
#[command(
    name = "pixelpipe",
    version,
    about = "Real-time pixel tracking: serve a 1x1 GIF, log every hit durably, ship it to Redis exactly once"
)]
struct Cli {
    #[command(flatten)]
    shared: SharedArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand takes. Each overrides the same field of the config file and
/// of the environment.
#[derive(Args)]
struct SharedArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "PIXELPIPE_CONFIG")]
    config: Option<PathBuf>,
    /// Redis URL: redis://[user:pass@]host:port[/db] or rediss://…
    #[arg(long, global = true)]
    redis: Option<String>,
    /// Folder of the local log and shipping state.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address of /healthz, /readyz, /metrics.
    #[arg(long, global = true)]
    admin_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the pixel over HTTP and ship every hit to Redis (replaces nginx's empty_gif + access_log).
    Serve(ServeArgs),
    /// Relay syslog (unix socket, UDP, TCP) to Redis and a file (replaces syslog-ng).
    Relay(RelayArgs),
    /// Print the local log, one record a line (the access log it doubles as).
    Log(LogArgs),
    /// Consume the events from Redis and print them, or feed them to a command (replaces the seed's BRPOP script).
    Tail(pixelpipe::tail::TailArgs),
    /// Live terminal view of the analytics.
    Top(pixelpipe::analytics::top::TopArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the pixel endpoint.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Redis list the records are pushed to.
    #[arg(long)]
    key: Option<String>,
    /// Record template, nginx log_format style (default "$msec,$args").
    #[arg(long)]
    format: Option<String>,
    /// Path of the pixel (default /pixel.gif).
    #[arg(long)]
    path: Option<String>,
    /// Also serve HTTPS on this address (needs --tls-cert and --tls-key).
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS (re-read on SIGHUP).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (re-read on SIGHUP).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The common case of `relay` on the command line: the original routes (facility local3
/// → Redis LPUSH ${PROGRAM} ${MESSAGE}, the rest → --other-file). Sources given here
/// replace those of the configuration file.
#[derive(Args)]
struct RelayArgs {
    /// Receive on a unix datagram socket at PATH (like /dev/log). Repeatable.
    #[arg(long, value_name = "PATH")]
    unix: Vec<PathBuf>,
    /// Receive on UDP. Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    udp: Vec<SocketAddr>,
    /// Receive on TCP (RFC 6587 framing). Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Vec<SocketAddr>,
    /// Append every message that does not go to Redis to this file.
    #[arg(long, value_name = "PATH")]
    other_file: Option<PathBuf>,
}

#[derive(Args)]
struct LogArgs {
    /// Keep printing records as they are written.
    #[arg(long, short)]
    follow: bool,
    /// Print `key<TAB>record` instead of the record alone.
    #[arg(long)]
    with_key: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let mut overrides: Vec<(&'static str, Value)> = Vec::new();
    let mut set = |path: &'static str, value: Option<String>| {
        if let Some(v) = value {
            overrides.push((path, Value::from(v)));
        }
    };
    let shared = &cli.shared;
    set("redis", shared.redis.clone());
    set(
        "data_dir",
        shared.data_dir.as_ref().map(|p| p.display().to_string()),
    );
    set("admin_listen", shared.admin_listen.map(|a| a.to_string()));
    if let Command::Serve(args) = &cli.command {
        set("http.listen", args.listen.map(|a| a.to_string()));
        set("http.key", args.key.clone());
        set("http.format", args.format.clone());
        set("http.path", args.path.clone());
        set("http.tls_listen", args.tls_listen.map(|a| a.to_string()));
        set(
            "http.tls.cert",
            args.tls_cert.as_ref().map(|p| p.display().to_string()),
        );
        set(
            "http.tls.key",
            args.tls_key.as_ref().map(|p| p.display().to_string()),
        );
    }
    if let Command::Relay(args) = &cli.command {
        set(
            "relay.other_file",
            args.other_file.as_ref().map(|p| p.display().to_string()),
        );
        let sources =
            pixelpipe::config::relay::sources_from_flags(&args.unix, &args.udp, &args.tcp);
        if !sources.is_empty() {
            overrides.push(("relay.sources", Value::serialize(sources)?));
        }
    }
    let config = Config::load(shared.config.as_deref(), &overrides)?;
    match cli.command {
        Command::Serve(_) => runtime()?
            .block_on(async { Ok(pixelpipe::app::serve::run(config, shutdown_signal()).await?) }),
        Command::Relay(_) => runtime()?
            .block_on(async { Ok(pixelpipe::app::relay::run(config, shutdown_signal()).await?) }),
        Command::Log(args) => {
            let mut out = std::io::stdout().lock();
            pixelpipe::log::print::print(
                &config.data_dir.join("log"),
                &mut out,
                args.with_key,
                args.follow,
            )
            .context("printing the local log")
        }
        Command::Tail(args) => pixelpipe::tail::run(&config, &args)
            .map(|_| ())
            .context("tail"),
        Command::Top(args) => pixelpipe::analytics::top::run(&config, &args).context("top"),
    }
}

/// The control runtime: shipper, admin listener, signals. The HTTP workers run their own.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Resolves on SIGTERM or SIGINT (or at once, said, if they cannot be handled).
async fn shutdown_signal() {
    if let Err(e) = pixelpipe::app::wait_for_signal().await {
        tracing::error!(error = %e, "cannot handle SIGTERM/SIGINT; stopping");
    }
}
