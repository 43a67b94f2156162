//! The network edge: listeners (IPv4 and IPv6), a hand-written accept loop bounded in concurrent
//! connections, one request per connection read with size limits and timeouts, the pure
//! [`crate::handle`] called, and the response written — with the socket's IP TTL / IPv6 hop limit
//! set to `HttpPutResponseHopLimit` first when the response is an AWS token PUT's.
//!
//! Every response says `Connection: close` (as the real services do) and the connection ends after
//! it, so a hop-limited socket never carries another response: nothing needs restoring.

use crate::core::State;
use crate::http::{parse_head, reason, Meta, ParseError, Parsed, Provider, Request, Response, MAX_BODY_BYTES, MAX_HEAD_BYTES};
use crate::log::{LogLine, RequestLog};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Resource bounds that make the mock safe to leave running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed to receive a complete request.
    pub read_timeout: Duration,
    /// Time allowed to write the response and see the client close.
    pub write_timeout: Duration,
    /// Wait this long after reading a request before answering it (zero: answer at once). Attack
    /// simulations use it to keep each client's connection open while a sensor looks up its
    /// owner, the way a slow real service would.
    pub response_delay: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 512, read_timeout: Duration::from_secs(10), write_timeout: Duration::from_secs(10), response_delay: Duration::ZERO }
    }
}

/// Bound listeners, ready to serve.
pub struct Server {
    listeners: Vec<TcpListener>,
    state: Arc<State>,
    log: RequestLog,
    limits: Limits,
}

/// Creates a listening socket (`SO_REUSEADDR`; IPv6 sockets are IPv6-only so `[::]` and `0.0.0.0`
/// can both be given).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(std::net::TcpListener::from(socket))
}

impl Server {
    /// Binds every address (must be called inside a tokio runtime).
    pub fn bind(addrs: &[SocketAddr], state: Arc<State>, log: RequestLog, limits: Limits) -> io::Result<Server> {
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listen address given"));
        }
        let mut listeners = Vec::with_capacity(addrs.len());
        for a in addrs {
            let l = listen(*a).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
            listeners.push(l);
        }
        Ok(Server { listeners, state, log, limits })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    pub fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for listener in self.listeners {
            let (state, log, permits, limits) = (self.state.clone(), self.log.clone(), permits.clone(), self.limits);
            tasks.spawn(accept_loop(listener, state, log, permits, limits));
        }
        shutdown.await;
        tasks.abort_all();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, log: RequestLog, permits: Arc<Semaphore>, limits: Limits) {
    let local = listener.local_addr().ok();
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of descriptors or a client that vanished: back off briefly, keep serving.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (state, log) = (state.clone(), log.clone());
        tokio::spawn(async move {
            serve_connection(stream, peer, local, &state, &log, limits).await;
            drop(permit);
        });
    }
}

fn refusal(status: u16, outcome: &'static str) -> Response {
    let body = format!("{status} {}\n", reason(status)).into_bytes();
    Response {
        status,
        reason: reason(status),
        headers: vec![
            ("Content-Type", "text/plain".to_string()),
            ("Content-Length", body.len().to_string()),
            ("Connection", "close".to_string()),
        ],
        body,
        hop_limit: None,
        head_only: false,
        http10: false,
        meta: Meta { provider: Provider::None, outcome, ..Meta::default() },
    }
}

enum ReadOutcome {
    Request(Request),
    Refused(Response),
    Closed,
}

async fn read_request(stream: &mut TcpStream) -> io::Result<ReadOutcome> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (request, head_len, body_len) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(ReadOutcome::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Ok(Parsed::Partial) => continue,
            Ok(Parsed::Complete { request, head_len, body_len }) => break (request, head_len, body_len),
            Err(ParseError::HeadTooLarge) => return Ok(ReadOutcome::Refused(refusal(400, "head_too_large"))),
            Err(ParseError::BodyTooLarge) => return Ok(ReadOutcome::Refused(refusal(413, "body_too_large"))),
            Err(ParseError::Chunked) => return Ok(ReadOutcome::Refused(refusal(400, "chunked_refused"))),
            Err(ParseError::Malformed(_)) => return Ok(ReadOutcome::Refused(refusal(400, "malformed"))),
        }
    };
    // Read (and discard) the body so closing does not reset the connection.
    let want = head_len + body_len.min(MAX_BODY_BYTES);
    while buf.len() < want {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD_BYTES + MAX_BODY_BYTES {
            break;
        }
    }
    Ok(ReadOutcome::Request(request))
}

/// Sets the IP TTL (IPv4) or unicast hop limit (IPv6) of this connection's outgoing packets.
pub fn set_hop_limit(stream: &TcpStream, hops: u8) -> io::Result<()> {
    let sock = SockRef::from(stream);
    match stream.local_addr()? {
        SocketAddr::V4(_) => sock.set_ttl_v4(u32::from(hops)),
        SocketAddr::V6(_) => {
            // IPv4-mapped peers on an IPv6 socket use the IPv4 TTL; set both.
            let _ = sock.set_ttl_v4(u32::from(hops));
            sock.set_unicast_hops_v6(u32::from(hops))
        }
    }
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, local: Option<SocketAddr>, state: &State, log: &RequestLog, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let read = tokio::time::timeout(limits.read_timeout, read_request(&mut stream)).await;
    let (req, mut resp) = match read {
        Ok(Ok(ReadOutcome::Request(mut req))) => {
            req.peer = Some(peer);
            let resp = crate::core::handle(state, &req);
            (Some(req), resp)
        }
        Ok(Ok(ReadOutcome::Refused(resp))) => (None, resp),
        Ok(Ok(ReadOutcome::Closed)) | Ok(Err(_)) => return,
        Err(_) => (None, refusal(408, "read_timeout")),
    };
    if !limits.response_delay.is_zero() {
        tokio::time::sleep(limits.response_delay).await;
    }
    if let Some(hops) = resp.hop_limit {
        if set_hop_limit(&stream, hops).is_err() {
            // Never hand out a token without its hop limit.
            resp = refusal(500, "hop_limit_failed");
        }
    }
    let mut line = LogLine::new(state.now(), req.as_ref(), &resp, local);
    if line.peer.is_none() {
        line.peer = Some(peer.to_string());
    }
    log.write(&line);
    let bytes = resp.to_bytes();
    let written = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    // Wait (briefly, bounded) for the client to close, so bytes it sent after its request never
    // turn our close into a reset that could destroy the response before it is read.
    let _ = tokio::time::timeout(LINGER.min(limits.write_timeout), async {
        let mut sink = [0u8; 1024];
        let mut drained = 0usize;
        loop {
            let n = stream.read(&mut sink).await?;
            drained += n;
            if n == 0 || drained > 64 * 1024 {
                break;
            }
        }
        Ok::<(), io::Error>(())
    })
    .await;
}

/// How long a connection is kept after its response, waiting for the client to close.
const LINGER: Duration = Duration::from_secs(2);

/// A server running on its own thread and runtime (tests, benchmarks, embedding).
pub struct Background {
    addrs: Vec<SocketAddr>,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Binds `addrs` and serves on a new thread with a `workers`-thread runtime.
    pub fn start(addrs: &[SocketAddr], state: Arc<State>, log: RequestLog, limits: Limits, workers: usize) -> io::Result<Background> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers.max(1)).enable_all().build()?;
        let server = {
            let _guard = rt.enter();
            Server::bind(addrs, state.clone(), log, limits)?
        };
        let bound = server.local_addrs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("imds-mock".into()).spawn(move || {
            rt.block_on(server.run(async {
                let _ = rx.await;
            }));
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        Ok(Background { addrs: bound, state, stop: Some(tx), thread: Some(thread) })
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first bound address (there is always one: [`Server::bind`] refuses an empty list).
    pub fn addr(&self) -> SocketAddr {
        self.addrs.first().copied().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The shared state: change `HttpTokens`, `HttpEndpoint` or the hop limit while serving.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shutdown();
    }
}
