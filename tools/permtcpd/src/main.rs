// SPDX-License-Identifier: GPL-2.0

//! `permtcpd`: the permtcp cluster daemon.
//!
//! Exit status: 0 after SIGTERM/SIGINT, 1 when the cluster declared this node down (restart
//! it: it rejoins with a newer incarnation) or on a runtime error, 2 for a configuration error.
//! `--status` prints a running daemon's status from its status socket (exit 1 when none
//! answers).

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
}

/// `permtcpd --status`: reads the daemon's status socket and prints what it says.
fn print_status(cli: &Cli) -> ExitCode {
    use std::io::Read;
    let path = match &cli.socket {
        Some(p) => p.clone(),
        None => match Config::load(&cli.config) {
            Ok(Config {
                status_socket: Some(p),
                ..
            }) => p,
            Ok(_) => {
                permtcpd::log!(ERR, "{}: no status_socket", cli.config.display());
                return ExitCode::from(2);
            }
            Err(e) => {
                permtcpd::log!(ERR, "{e}");
                return ExitCode::from(2);
            }
        },
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
