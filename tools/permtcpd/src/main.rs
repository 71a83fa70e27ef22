// SPDX-License-Identifier: GPL-2.0

//! `permtcpd`: the permtcp cluster daemon.
//!
//! Exit status: 0 after SIGTERM/SIGINT, 1 when the cluster declared this node down (restart
//! it: it rejoins with a newer incarnation) or on a runtime error, 2 for a configuration error.
//! `--status` prints a running daemon's status from its status socket (exit 1 when none
//! answers). `--handoff ADDR:PORT --to NODE` asks the running daemon, on its control socket,
//! for a planned handoff of the binding's established connections to peer NODE and prints
//! its JSON summary (exit 1 when it failed or no daemon answers).

use clap::Parser;
use permtcpd::auth::Keyring;
use permtcpd::config::{next_incarnation, Config};
use permtcpd::daemon::{Control, Daemon};
use permtcpd::log::{self, ERR, WARNING};
use permtcpd::netlink::NetlinkKernel;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(name = "permtcpd", version, about = "permtcp cluster daemon")]
struct Cli {
    /// Configuration file.
    #[arg(long, default_value = "/etc/permtcpd/permtcpd.toml")]
    config: PathBuf,
    /// Stay in the foreground (as under systemd); otherwise detach.
    #[arg(long)]
    foreground: bool,
    /// Check the configuration and the key file, then exit.
    #[arg(long)]
    check: bool,
    /// Log level: 3 errors, 4 warnings, 5 notable events, 6 info (default), 7 debug.
    #[arg(long, default_value_t = log::INFO)]
    log_level: u8,
    /// Print the running daemon's status (JSON: view, quorum, declarations, takeovers,
    /// directives, datagrams accepted and dropped by reason, kernel errors) and exit.
    #[arg(long)]
    status: bool,
    /// The status socket to read with --status (default: the configuration's
    /// status_socket).
    #[arg(long, requires = "status")]
    socket: Option<PathBuf>,
    /// Planned handoff (Documentation/handoff.rst): the running daemon moves the
    /// established connections of this binding, ADDR:PORT (one of this node's), to the
    /// peer given with --to, and prints a JSON summary: held, taken, refused by reason,
    /// aborted, and the times in microseconds.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        requires = "to",
        conflicts_with = "status"
    )]
    handoff: Option<std::net::SocketAddr>,
    /// The peer taking the connections (--handoff).
    #[arg(long, value_name = "NODE", requires = "handoff")]
    to: Option<u32>,
    /// The control socket --handoff talks to (default: the configuration's
    /// control_socket).
    #[arg(long, requires = "handoff")]
    control_socket: Option<PathBuf>,
}

/// The socket given on the command line, or the configuration's (`key`, read by `pick`);
/// exit status 2 when there is none.
fn socket_path(
    given: Option<&PathBuf>,
    config: &std::path::Path,
    key: &str,
    pick: impl FnOnce(Config) -> Option<PathBuf>,
) -> Result<PathBuf, ExitCode> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    match Config::load(config).map(pick) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => {
            permtcpd::log!(ERR, "{}: no {key}", config.display());
            Err(ExitCode::from(2))
        }
        Err(e) => {
            permtcpd::log!(ERR, "{e}");
            Err(ExitCode::from(2))
        }
    }
}

/// `permtcpd --handoff ADDR:PORT --to NODE`: asks the daemon on its control socket and
/// prints its answer.
fn request_handoff(cli: &Cli, binding: std::net::SocketAddr, to: u32) -> ExitCode {
    use std::io::{Read, Write};
    let path = match socket_path(
        cli.control_socket.as_ref(),
        &cli.config,
        "control_socket",
        |c| c.control_socket,
    ) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut conn = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(c) => c,
        Err(e) => {
            permtcpd::log!(ERR, "{}: {e} (is permtcpd running?)", path.display());
            return ExitCode::from(1);
        }
    };
    let req = serde_json::json!({ "handoff": binding.to_string(), "to": to }).to_string() + "\n";
    let mut text = String::new();
    let r = conn
        .write_all(req.as_bytes())
        .and_then(|()| conn.shutdown(std::net::Shutdown::Write))
        .and_then(|()| conn.read_to_string(&mut text));
    if let Err(e) = r {
        permtcpd::log!(ERR, "{}: {e}", path.display());
        return ExitCode::from(1);
    }
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
    if v.get("held").is_some() {
        print!("{text}");
    }
    match v.get("error").and_then(|e| e.as_str()) {
        Some(e) => {
            permtcpd::log!(ERR, "handoff of {binding} to node {to}: {e}");
            ExitCode::from(1)
        }
        None if v.get("held").is_some() => ExitCode::SUCCESS,
        None => {
            permtcpd::log!(ERR, "{}: no answer ({text:?})", path.display());
            ExitCode::from(1)
        }
    }
}

/// `permtcpd --status`: reads the daemon's status socket and prints what it says.
fn print_status(cli: &Cli) -> ExitCode {
    use std::io::Read;
    let path = match socket_path(cli.socket.as_ref(), &cli.config, "status_socket", |c| {
        c.status_socket
    }) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut text = String::new();
    match std::os::unix::net::UnixStream::connect(&path)
        .and_then(|mut s| s.read_to_string(&mut text))
    {
        Ok(_) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            permtcpd::log!(ERR, "{}: {e} (is permtcpd running?)", path.display());
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::set_level(cli.log_level);
    if cli.status {
        return print_status(&cli);
    }
    if let (Some(binding), Some(to)) = (cli.handoff, cli.to) {
        return request_handoff(&cli, binding, to);
    }
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            permtcpd::log!(ERR, "{e}");
            return ExitCode::from(2);
        }
    };
    for w in cfg.warnings() {
        permtcpd::log!(WARNING, "{w}");
    }
    let keys = match Keyring::load(&cfg.key_file) {
        Ok(k) if k.has(cfg.send_key_id) => k,
        Ok(_) => {
            permtcpd::log!(
                ERR,
                "{}: no key with send_key_id {}",
                cfg.key_file.display(),
                cfg.send_key_id
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            permtcpd::log!(ERR, "{e}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}: configuration and keys are fine", cli.config.display());
        return ExitCode::SUCCESS;
    }
    if !cli.foreground {
        // Detach, keeping stderr for the log. Before any thread exists.
        // SAFETY: no other thread runs yet.
        if unsafe { libc::daemon(0, 1) } != 0 {
            permtcpd::log!(ERR, "detaching: {}", std::io::Error::last_os_error());
            return ExitCode::from(1);
        }
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let incarnation = match next_incarnation(&cfg.incarnation_file, now_ms) {
        Ok(i) => i,
        Err(e) => {
            permtcpd::log!(ERR, "{e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            permtcpd::log!(ERR, "runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let config_path = cli.config.clone();
    let result = rt.block_on(async move {
        let kernel = std::sync::Arc::new(NetlinkKernel::new(cfg.peers.iter().map(|p| p.node_id)));
        let (daemon, _handle) = Daemon::new(cfg, keys, incarnation, kernel)?;
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // Key rotation: the key file and send_key_id are read again.
                match Config::load(&config_path)
                    .and_then(|c| Keyring::load(&c.key_file).map(|k| (k, c.send_key_id)))
                {
                    Ok((k, id)) => {
                        let _ = control.send(Control::Keys(k, id));
                    }
                    Err(e) => permtcpd::log!(ERR, "SIGHUP: {e}"),
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        daemon.run(shutdown, control_rx).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            permtcpd::log!(ERR, "{e}");
            ExitCode::from(1)
        }
    }
}
