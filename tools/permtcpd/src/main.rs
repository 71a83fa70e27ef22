// SPDX-License-Identifier: GPL-2.0

//! `permtcpd`: the permtcp cluster daemon.
//!
//! Exit status: 0 after SIGTERM/SIGINT, 1 when the cluster declared this node down (restart
//! it: it rejoins with a newer incarnation) or on a runtime error, 2 for a configuration error.

use clap::Parser;
use permtcpd::auth::Keyring;
use permtcpd::config::{next_incarnation, Config};
use permtcpd::daemon::{Control, Daemon};
use permtcpd::log::{self, ERR, WARNING};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::set_level(cli.log_level);
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
        // TODO(issue 9): the netlink Kernel, once permctl's client is a library.
        let kernel = std::sync::Arc::new(Unwired);
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

/// Stands in for the netlink implementation until it is wired: every request fails, so the
/// daemon runs the protocol but changes nothing in the kernel, and says so.
struct Unwired;

impl permtcpd::kernel::Kernel for Unwired {
    fn set_declarations(
        &self,
        _: &[permtcp_logic::decl::Declaration],
    ) -> Result<(), permtcpd::kernel::KernelError> {
        Err(unwired())
    }
    fn takeover(
        &self,
        _: u32,
        _: Option<u32>,
    ) -> Result<permtcpd::kernel::TakeoverResult, permtcpd::kernel::KernelError> {
        Err(unwired())
    }
    fn directive(
        &self,
        _: &permtcp_logic::snoopnl::DirectiveRequest,
    ) -> Result<permtcpd::kernel::DirectiveResult, permtcpd::kernel::KernelError> {
        Err(unwired())
    }
    fn renew_lease(&self, _: std::time::Duration) -> Result<(), permtcpd::kernel::KernelError> {
        Ok(())
    }
}

fn unwired() -> permtcpd::kernel::KernelError {
    permtcpd::kernel::KernelError::Other(
        "the netlink connection to the permtcp module is not wired into permtcpd yet".into(),
    )
}
