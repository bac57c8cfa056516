//! A TCP proxy the tests control, put between a field client and the server to break the link
//! on purpose: pass bytes through, black-hole them, reset every connection, or add latency.
//!
//! A black hole accepts bytes and forwards nothing, answers nothing and passes no close on, like
//! a cable cut somewhere in the middle. Bytes it swallowed are gone, so the TLS stream of a
//! connection that lost any cannot carry on: when the link heals such a connection is reset
//! (as a router that lost its state would) and the client connects again. Connections that lost
//! nothing simply resume.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep_until, Instant};

/// What the proxy does with the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything both ways.
    Pass,
    /// Accept connections and bytes, forward nothing, send nothing.
    BlackHole,
    /// Drop every connection with a TCP reset, and reset new ones at once.
    Reset,
    /// Forward everything, each chunk (and each close) this much later, in order.
    Latency(Duration),
}

/// Counters of what the proxy did, to prove a fault was really applied.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    resets: AtomicU64,
    swallowed_bytes: AtomicU64,
    forwarded_bytes: AtomicU64,
}

impl Stats {
    /// Connections accepted from clients.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections dropped with a reset.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// Bytes a black hole swallowed.
    pub fn swallowed_bytes(&self) -> u64 {
        self.swallowed_bytes.load(Ordering::Relaxed)
    }

    /// Bytes forwarded in either direction.
    pub fn forwarded_bytes(&self) -> u64 {
        self.forwarded_bytes.load(Ordering::Relaxed)
    }
}

/// A running proxy on 127.0.0.1; dropping it closes the listener and every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`, starting in [`Mode::Pass`].
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept_loop(listener, upstream, mode_rx, stats.clone()));
        Ok(Self {
            addr,
            mode,
            stats,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://` URL of the proxy, for a client's `server_url`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Switches the mode; connections already open follow at once.
    pub fn set(&self, mode: Mode) {
        log(&format!("proxy mode: {mode:?}"));
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Test output without a logging dependency: shown by `cargo test` only for failing tests.
fn log(line: &str) {
    eprintln!("[proxy] {line}");
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    stats: Arc<Stats>,
) {
    // Aborting this task drops the set, which aborts every connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                connections.spawn(connection(client, upstream, mode.clone(), stats.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Drops the socket with a TCP reset instead of an orderly close.
fn reset(stream: &TcpStream, stats: &Stats) {
    let _ = stream.set_zero_linger();
    stats.resets.fetch_add(1, Ordering::Relaxed);
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    stats: Arc<Stats>,
) {
    let _ = client.set_nodelay(true);
    let initial = *mode.borrow_and_update();
    match initial {
        Mode::Reset => return reset(&client, &stats),
        Mode::BlackHole => {
            // Nothing reaches the server; when the link heals this connection is reset.
            let mut client = client;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                tokio::select! {
                    read = client.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            stats.swallowed_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    },
                    changed = mode.changed() => {
                        if changed.is_err() || *mode.borrow_and_update() != Mode::BlackHole {
                            return reset(&client, &stats);
                        }
                    }
                }
            }
        }
        Mode::Pass | Mode::Latency(_) => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(&client, &stats);
    };
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let poisoned = AtomicBool::new(false);
    let heal_reset = Notify::new();
    let must_reset = {
        let up = pump(
            &mut client_read,
            &mut server_write,
            mode.clone(),
            &poisoned,
            &heal_reset,
            &stats,
        );
        let down = pump(
            &mut server_read,
            &mut client_write,
            mode.clone(),
            &poisoned,
            &heal_reset,
            &stats,
        );
        tokio::select! {
            _ = async { tokio::join!(up, down) } => false,
            () = until_reset(&mut mode, &poisoned) => true,
            () = heal_reset.notified() => true,
        }
    };
    if must_reset {
        // Dropping a write half would send a FIN first; the reunited socket resets at once.
        if let Ok(client) = client_read.reunite(client_write) {
            reset(&client, &stats);
        }
        if let Ok(server) = server_read.reunite(server_write) {
            let _ = server.set_zero_linger();
        }
    }
}

/// Returns when the connection must be reset: the mode became [`Mode::Reset`], or the link
/// healed after this connection lost bytes to a black hole.
async fn until_reset(mode: &mut watch::Receiver<Mode>, poisoned: &AtomicBool) {
    loop {
        if mode.changed().await.is_err() {
            return std::future::pending().await;
        }
        match *mode.borrow_and_update() {
            Mode::Reset => return,
            Mode::Pass | Mode::Latency(_) if poisoned.load(Ordering::SeqCst) => return,
            _ => {}
        }
    }
}

/// Copies one direction, applying the mode to every chunk read; a close is passed on like a
/// chunk (delayed by latency, swallowed by a black hole).
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
    poisoned: &AtomicBool,
    heal_reset: &Notify,
    stats: &Stats,
) {
    let (queue, mut due) = mpsc::unbounded_channel::<(Instant, Option<Vec<u8>>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let chunk = match from.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            };
            let at = match *mode.borrow() {
                Mode::Pass => Instant::now(),
                Mode::Latency(d) => Instant::now() + d,
                Mode::BlackHole | Mode::Reset => {
                    if let Some(bytes) = &chunk {
                        poisoned.store(true, Ordering::SeqCst);
                        stats
                            .swallowed_bytes
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                    if chunk.is_none() {
                        return;
                    }
                    continue;
                }
            };
            if poisoned.load(Ordering::SeqCst) {
                // The stream lost bytes earlier: it cannot be healed.
                heal_reset.notify_one();
                return;
            }
            let end = chunk.is_none();
            if queue.send((at, chunk)).is_err() || end {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            sleep_until(at).await;
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                    stats
                        .forwarded_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that answers every chunk with the same bytes.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn is_reset(read: &std::io::Result<usize>) -> bool {
        matches!(read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }

    async fn round_trip(s: &mut TcpStream, text: &[u8]) -> Vec<u8> {
        s.write_all(text).await.unwrap();
        let mut buf = vec![0u8; text.len()];
        s.read_exact(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn modes_pass_black_hole_reset_and_delay_traffic() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"hello").await, b"hello");

        proxy.set(Mode::Latency(Duration::from_millis(50)));
        assert_eq!(round_trip(&mut s, b"later").await, b"later");

        proxy.set(Mode::BlackHole);
        s.write_all(b"lost").await.unwrap();
        let mut buf = [0u8; 4];
        let answer = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
        assert!(answer.is_err(), "a black hole answered: {answer:?}");
        crate::within("bytes swallowed", async {
            while proxy.stats().swallowed_bytes() < 4 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;

        // Healing resets the connection that lost bytes; a new one works.
        proxy.set(Mode::Pass);
        let read = crate::within("reset after healing", s.read(&mut buf)).await;
        assert!(is_reset(&read), "{read:?}");
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"again").await, b"again");

        proxy.set(Mode::Reset);
        let read = crate::within("reset", s.read(&mut buf)).await;
        assert!(is_reset(&read), "{read:?}");
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        let read = crate::within("reset of a new connection", fresh.read(&mut buf)).await;
        assert!(is_reset(&read), "{read:?}");
        assert!(proxy.stats().resets() >= 3, "{:?}", proxy.stats());
    }
}
