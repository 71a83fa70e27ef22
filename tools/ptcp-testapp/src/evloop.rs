// SPDX-License-Identifier: GPL-2.0

//! The echo protocol of `echo-serve` served from one event loop (tokio's current-thread
//! runtime: one thread, epoll), as event-driven servers (nginx, memcached's workers) serve
//! many connections, instead of a thread per connection.
//!
//! The takeover benchmark runs its applications this way (`echo-serve --event-loop`,
//! `restore --event-loop`): with a thread per connection, the first answer of a thousand
//! taken-over connections measured mostly the creation of a thousand threads under TCG
//! (0.4-0.6 ms each), the same in every mode, not the takeover.

use crate::bulk::{self, Resume};
use std::io::{Error, ErrorKind, Result};
use tokio::net::{TcpListener, TcpStream};

/// Fills `buf` from `s`, or fails (`UnexpectedEof` when the client closed first).
async fn read_exact(s: &TcpStream, buf: &mut [u8]) -> Result<()> {
    let mut n = 0;
    while n < buf.len() {
        s.readable().await?;
        match s.try_read(&mut buf[n..]) {
            Ok(0) => return Err(Error::from(ErrorKind::UnexpectedEof)),
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` to `s`.
async fn write_all(s: &TcpStream, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(k) => buf = &buf[k..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Answers `s`'s requests until it closes; a taken-over connection from where `r` says it
/// stands (a partly delivered request's remainder skipped, an answer the dead server had
/// partly sent continued), as the threaded server's `echo_resume`.
async fn echo(s: TcpStream, r: Option<Resume>) -> Result<()> {
    let (recv, sent) = r.map_or((0, 0), |r| (r.recv, r.sent));
    let mut skip = vec![0u8; ((8 - recv % 8) % 8) as usize];
    read_exact(&s, &mut skip).await?;
    let mut round = recv.div_ceil(8);
    let mut req = [0u8; 8];
    loop {
        read_exact(&s, &mut req).await?;
        let (start, end) = (round * 1000, (round + 1) * 1000);
        if end > sent {
            let a = crate::answer(u64::from_be_bytes(req));
            write_all(&s, &a[sent.saturating_sub(start) as usize..]).await?;
        }
        round += 1;
    }
}

/// A runtime of one thread with the I/O driver.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime")
}

/// Accepts connections on `l` forever and answers each from the loop; with `resume`, a
/// taken-over connection continues where `permtcp-resume` says it stands.
pub fn serve(l: std::net::TcpListener, resume: bool) {
    l.set_nonblocking(true).expect("non-blocking listener");
    runtime().block_on(async move {
        let l = TcpListener::from_std(l).expect("listener into the loop");
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let r = if resume {
                bulk::taken_over_fd(&s, || Ok((s.local_addr()?, s.peer_addr()?)))
            } else {
                None
            };
            tokio::spawn(echo(s, r));
        }
    })
}

/// Answers every stream of `socks` (restored, their unacknowledged bytes already resent)
/// from the loop, until all are closed.
pub fn serve_all(socks: Vec<std::net::TcpStream>) {
    runtime().block_on(async move {
        let mut tasks = Vec::with_capacity(socks.len());
        for s in socks {
            s.set_nonblocking(true).expect("non-blocking stream");
            let s = TcpStream::from_std(s).expect("stream into the loop");
            tasks.push(tokio::spawn(echo(s, None)));
        }
        for t in tasks {
            let _ = t.await;
        }
    })
}
