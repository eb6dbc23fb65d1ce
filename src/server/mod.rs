//! The event loop: one thread, one mio `Poll`, every socket non-blocking.
//!
//! Owns the listener, the connection slots, the tailer's inotify descriptor, the signal
//! descriptor and the timers (parked-fetch deadlines, idle timeouts, the tailer's rescan), and
//! the order of work in one turn: dispatch readiness events → tailer events wake parked fetches →
//! expired deadlines answer their fetches → connections with leftover budget work get another
//! turn. Each connection is a small state machine ([`ConnState`]):
//!
//! ```text
//!            frame complete                   plan written
//!  Reading ─────────────────▶ (handle) ──▶ Writing ──────────────▶ Reading
//!     ▲                          │
//!     │                          │ fewer than min_bytes
//!     │                          ▼
//!     │        data or deadline  Parked ──▶ Writing
//!     └───────────────────────────────────────┘
//! ```
//!
//! Two more states serve the group coordinator: `GroupWait` (a JoinGroup/SyncGroup the
//! coordinator completes when the other members arrive or a timer fires; matched by a serial
//! number so a late answer never reaches a reused slot) and `AfterSync` (an OffsetCommit
//! response held until the offsets store has written and fsynced the turn's commits; one sync
//! per turn covers every commit in it). The coordinator's timers run from the loop every
//! `groups::TICK_INTERVAL`. The sync runs on the loop thread; its time is exported as
//! `offsets_sync_seconds`.
//!
//! Listeners: one or more (`--listen`), each PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
//! ([`listeners`]). A connection's bytes go through its [`transport::Transport`]: plain (file
//! ranges by `sendfile`) or a TLS session (file ranges copied through the loop's one scratch
//! buffer and encrypted); a TLS handshake not finished within `tls_handshake_ms_max` closes the
//! connection. A connection of a SASL listener gives every frame to its [`Session`] first (sans-io, in
//! `crate::auth::sasl`): until it authenticates only the exchange is answered and frames are
//! capped at 512 KiB; a failed exchange waits in `AuthDelay` for
//! `connection.failed.authentication.delay.ms`, writes its answer and closes. The handlers see
//! the principal and the client address as [`Auth`] when the broker's authorizer is on. Each
//! listener has its own copy of the configuration so Metadata advertises the listener the client
//! came in on.
//!
//! One request is in flight per connection (like a broker's muted channel): nothing more is
//! read until the response is written. Sockets are registered once for both directions
//! (edge-triggered); work continues until `WouldBlock` or until the turn's budget runs out, in
//! which case the connection goes on the ready list and the next poll does not sleep. Slots
//! freed while a batch of events is being dispatched are only reused after the batch.
//! Limits: `connections_max` (accepting pauses at the cap and resumes when a slot frees),
//! `request_bytes_max` (checked from the 4-byte size before buffering), `idle_timeout_ms`,
//! `buffered_request_bytes_max` (the sum of request bytes held for all connections, see
//! [`request_memory`]: a connection whose request does not fit now is not read until memory is
//! released) and `recv_bytes_per_turn_max` (a connection feeding a large request yields to the
//! others after that many bytes, like the write budget).

pub mod listeners;
mod request_memory;
pub mod transport;
pub mod upstream;
pub mod upstream_conn;

use listeners::{Bound, Security, SecurityProtocol};

use request_memory::Grant;
pub use request_memory::{RequestMemory, BUFFERED_REQUEST_BYTES_MAX_DEFAULT, SMALL_REQUEST_BYTES};

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::auth::sasl::{Decision, Session, ANONYMOUS};
use crate::groups::{Groups, Waiter};
use crate::log::tailer::Tailer;
use crate::metrics::{self, HttpAsk, Metrics};
use crate::protocol::{self, fetch, Auth, Context, Origin, Outcome, RequestMeta, ServeConfig};
use crate::send::{Sent, WritePlan, WriteStatus};
use crate::systemd::Notifier;
use transport::{ReadOutcome, Transport, TransportError};

const INOTIFY: Token = Token(1);
const SIGNALS: Token = Token(2);
const METRICS_LISTENER: Token = Token(3);
const UPSTREAM: Token = Token(4);
const FIRST_CONN: usize = 8;
/// Metrics connections use tokens from here up (client connections stay far below it).
const FIRST_METRICS_CONN: usize = 1 << 40;
/// The relay connection of client slot `i` (`--groups upstream`) has token `FIRST_RELAY + i`.
const FIRST_RELAY: usize = 1 << 39;
/// Client listener `k` has token `FIRST_LISTENER + k`.
const FIRST_LISTENER: usize = 1 << 38;
/// Largest relayed response accepted from the broker.
const RELAY_FRAME_BYTES_MAX: usize = 64 << 20;
/// How often STATUS= is sent to systemd.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// Loop limits, each with its unit in the name.
#[derive(Clone, Debug)]
pub struct Limits {
    pub connections_max: usize,
    pub request_bytes_max: u32,
    pub idle_timeout_ms: u64,
    /// Bytes one connection may write per turn before others get theirs.
    pub send_bytes_per_turn_max: u64,
    /// Requests one connection may have handled per turn.
    pub requests_per_turn_max: usize,
    /// How long SIGTERM waits for in-flight responses before exiting.
    pub drain_ms_max: u64,
    /// Request bytes held for all connections together.
    pub buffered_request_bytes_max: usize,
    /// Request bytes one connection may read per turn before others get theirs.
    pub recv_bytes_per_turn_max: usize,
    /// How long a TLS handshake may take from accept (a stalled one closes; checked each second).
    pub tls_handshake_ms_max: u64,
    /// How long a request may take to arrive, from its first byte (or from when the connection
    /// went back to reading, for bytes that came early) to its last; a slower one closes the
    /// connection (slowloris; checked each second). The clients' own `request.timeout.ms`
    /// default is 30 s: no client waits longer for an answer.
    pub request_ms_max: u64,
    /// Incremental fetch sessions kept (KIP-227; Kafka's
    /// `max.incremental.fetch.session.cache.slots`); 0 hands out none.
    pub fetch_sessions_max: usize,
    /// The open-files limit the process runs with (for the metric; 0 when unknown).
    pub descriptors_max: u64,
}

/// A seed for fetch session ids: the clock and the process id (ids must be unique, not secret).
fn session_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 10_000,
            request_bytes_max: 8 << 20,
            idle_timeout_ms: 600_000,
            send_bytes_per_turn_max: 4 << 20,
            requests_per_turn_max: 16,
            drain_ms_max: 10_000,
            buffered_request_bytes_max: BUFFERED_REQUEST_BYTES_MAX_DEFAULT,
            recv_bytes_per_turn_max: 1 << 20,
            tls_handshake_ms_max: 10_000,
            request_ms_max: REQUEST_MS_MAX_DEFAULT,
            fetch_sessions_max: crate::protocol::fetch_session::SESSION_CACHE_SLOTS_DEFAULT,
            descriptors_max: 0,
        }
    }
}

enum ConnState {
    Reading,
    Writing(WritePlan),
    Parked(Box<fetch::Parked>),
    /// A JoinGroup/SyncGroup the coordinator will complete (matched by `serial`).
    GroupWait {
        serial: u64,
        meta: RequestMeta,
    },
    /// A response held until the offsets store has synced this turn's commits.
    AfterSync(WritePlan),
    /// A group request relayed to the upstream broker, waiting for its answer.
    Relaying(RequestMeta),
    /// A failed SASL authentication: its answer (if any) is written at `until`
    /// (`connection.failed.authentication.delay.ms`), then the connection closes.
    AuthDelay {
        until: Instant,
        plan: Option<WritePlan>,
    },
}

/// A client connection's own connection to the upstream broker, for its relayed group
/// requests (one request in flight, like the client's): a JoinGroup that waits for a rebalance
/// holds only this connection, never the high-watermark watch or another client's requests.
struct Relay {
    stream: upstream_conn::UpstreamConn<TcpStream>,
    connected: bool,
    out: Vec<u8>,
    out_at: usize,
    rbuf: Vec<u8>,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    rbuf: Vec<u8>,
    /// Bytes of `rbuf` capacity accounted in the request memory.
    held: usize,
    state: ConnState,
    last_progress: Instant,
    client_id: Option<String>,
    /// When the request in flight was read, and whether it is a Fetch (for latency metrics).
    request_at: Instant,
    ready_at: Instant,
    fetch_in_flight: bool,
    relay: Option<Relay>,
    /// The listener it came in on.
    listener: usize,
    /// The SASL state on a SASL listener.
    sasl: Option<Box<Session>>,
    /// Close once the response being written is out (why, for the log line).
    close_after_write: Option<String>,
    /// Plain TCP or a TLS session.
    transport: Transport,
    accepted_at: Instant,
    /// When the partial request in `rbuf` started counting against `request_ms_max` (None when
    /// `rbuf` is empty).
    request_started: Option<Instant>,
}

/// A connection to the metrics endpoint: read one request, write one response, close.
struct MetricsConn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    out: Option<(Vec<u8>, usize)>,
}

/// Counters, exported by the metrics issue; kept here so tests can read them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub connections_accepted: u64,
    pub connections_closed: u64,
    pub requests: u64,
    pub protocol_errors: u64,
    pub sent: Sent,
    pub file_shrunk: u64,
    /// Times a connection had to wait for request memory.
    pub request_memory_waits: u64,
    /// Connections closed because their request could never fit the request memory.
    pub requests_refused_memory: u64,
}

/// The fleet's shown nodes, for rewriting a relayed FindCoordinator (other requests: none).
fn fleet_nodes(
    tailer: &Tailer,
    config: &ServeConfig,
    meta: &protocol::RequestMeta,
) -> Option<std::collections::BTreeMap<i32, crate::cluster::fleet::Node>> {
    if meta.api_key != kafka_protocol::messages::ApiKey::FindCoordinator {
        return None;
    }
    crate::cluster::fleet::Fleet::of(tailer.view.cluster.as_ref(), config).map(|f| f.nodes)
}

/// A client listener.
struct Listener {
    socket: TcpListener,
    protocol: SecurityProtocol,
}

pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    /// The configuration as each listener's clients see it (its advertised address); index 0 is
    /// `config` itself, the others are copies refreshed by `sync_listener_configs`.
    listener_configs: Vec<ServeConfig>,
    security: Security,
    /// Slots of the connections in `AuthDelay`.
    auth_delayed: Vec<usize>,
    tailer: Tailer,
    signals: Option<SignalFd>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    to_close: Vec<(usize, String, bool)>,
    ready: VecDeque<usize>,
    accept_paused: bool,
    config: ServeConfig,
    limits: Limits,
    stopping: Option<Instant>,
    pub counters: Counters,
    pub metrics: Metrics,
    notifier: Notifier,
    last_status: Option<Instant>,
    metrics_listener: Option<TcpListener>,
    metrics_conns: Vec<Option<MetricsConn>>,
    /// Connections open (kept as a count: per-turn work must not scan every slot).
    open: usize,
    /// Slots of the connections whose Fetch is parked.
    parked: Vec<usize>,
    last_idle_check: Instant,
    /// Connections closed by `request_ms_max` not yet in a log line, and when the last went out.
    slow_closed_unlogged: u64,
    slow_logged_at: Option<Instant>,
    groups: Groups,
    /// Serial numbers of requests that wait for the group coordinator.
    next_serial: u64,
    /// Slots of the connections whose response waits for the offsets store's sync.
    after_sync: Vec<usize>,
    /// The bound on request bytes held for all connections.
    memory: RequestMemory,
    /// KIP-227 fetch sessions, shared by all connections as the broker's are.
    fetch_sessions: crate::protocol::fetch_session::FetchSessions,
    /// Evictions and opened sessions already added to the metrics.
    counted_evictions: u64,
    /// `FileCache::exhaustions` already added to the metric.
    counted_exhaustions: u64,
    /// When an accept that failed for want of a descriptor was last logged (at most every 10 s).
    accept_starved_at: Option<Instant>,
    counted_opened: u64,
    /// The connection to the co-located broker (`--upstream`).
    upstream: Option<UpstreamLink>,
    /// The one buffer TLS connections copy response bytes through (`transport`).
    tls_scratch: Vec<u8>,
}

/// The loop's side of the upstream watcher: the socket and its buffers.
struct UpstreamLink {
    addr: SocketAddr,
    watcher: upstream::Watcher,
    /// How to reach it (`--upstream-config`): TLS, SASL.
    security: crate::auth::client::UpstreamSecurity,
    stream: Option<upstream_conn::UpstreamConn<TcpStream>>,
    out: Vec<u8>,
    out_at: usize,
    rbuf: Vec<u8>,
    /// Whether the last transition was logged as down (log once per outage).
    down_logged: bool,
    /// The watcher's `api_ranges_epoch` last copied into the config.
    api_ranges_epoch: u64,
    /// The socket reported readiness since the last pump (edge-triggered: no syscall is made
    /// on a turn without it, unless a new request was queued).
    readiness: bool,
}

/// Largest upstream response accepted (watch answers are small; a full-session answer names
/// every partition).
const UPSTREAM_FRAME_BYTES_MAX: usize = 64 << 20;

/// Default of [`Limits::request_ms_max`].
pub const REQUEST_MS_MAX_DEFAULT: u64 = 30_000;

/// How often idle connections are looked for.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The scratch buffer TLS connections copy response bytes through (eight TLS records).
const TLS_SCRATCH_BYTES: usize = 128 << 10;

/// Why the loop ended.
#[derive(Debug)]
pub enum Exit {
    /// SIGTERM/SIGINT, drained.
    Signal,
}

macro_rules! conn_log {
    ($lvl:ident, $conn:expr, $token:expr, $($arg:tt)*) => {
        log::$lvl!("conn={} peer={} client={}: {}", $token, $conn.peer, $conn.client_id.as_deref().unwrap_or("-"), format_args!($($arg)*))
    };
}

impl Server {
    /// Binds each listener (backlog 1024, SO_REUSEADDR) and registers everything with one Poll.
    pub fn bind(
        listen: &[(SocketAddr, SecurityProtocol)],
        tailer: Tailer,
        groups: Groups,
        config: ServeConfig,
        limits: Limits,
    ) -> io::Result<Self> {
        let session_partitions_max = config.partitions_per_request_max;
        let poll = Poll::new()?;
        let mut listeners = Vec::with_capacity(listen.len());
        for (k, &(addr, protocol)) in listen.iter().enumerate() {
            let mut socket = bind_listener(addr).map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?;
            poll.registry().register(&mut socket, Token(FIRST_LISTENER + k), Interest::READABLE)?;
            listeners.push(Listener { socket, protocol });
        }
        if let Some(fd) = tailer.raw_fd() {
            poll.registry().register(&mut SourceFd(&fd), INOTIFY, Interest::READABLE)?;
        }
        let signals = Self::signal_fd();
        if let Some(s) = &signals {
            poll.registry().register(&mut SourceFd(&s.as_fd().as_raw_fd()), SIGNALS, Interest::READABLE)?;
        }
        Ok(Server {
            poll,
            listener_configs: vec![config.clone(); listeners.len()],
            listeners,
            security: Security::default(),
            auth_delayed: Vec::new(),
            tailer,
            signals,
            conns: Vec::new(),
            free: Vec::new(),
            to_close: Vec::new(),
            ready: VecDeque::new(),
            accept_paused: false,
            config,
            stopping: None,
            counters: Counters::default(),
            metrics: {
                let m = Metrics::new();
                m.descriptors_max.set(limits.descriptors_max as i64);
                m
            },
            notifier: Notifier::from_env(),
            last_status: None,
            metrics_listener: None,
            metrics_conns: Vec::new(),
            open: 0,
            parked: Vec::new(),
            last_idle_check: Instant::now(),
            slow_closed_unlogged: 0,
            slow_logged_at: None,
            groups,
            next_serial: 0,
            after_sync: Vec::new(),
            memory: RequestMemory::new(limits.buffered_request_bytes_max),
            fetch_sessions: crate::protocol::fetch_session::FetchSessions::new(
                limits.fetch_sessions_max,
                session_partitions_max,
                session_seed(),
            ),
            counted_evictions: 0,
            counted_exhaustions: 0,
            accept_starved_at: None,
            counted_opened: 0,
            limits,
            upstream: None,
            tls_scratch: Vec::new(),
        })
    }

    /// Serves `/metrics` and `/healthz` on `addr` from the same loop.
    pub fn listen_metrics(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let mut l = bind_listener(addr)?;
        self.poll.registry().register(&mut l, METRICS_LISTENER, Interest::READABLE)?;
        let local = l.local_addr()?;
        self.metrics_listener = Some(l);
        Ok(local)
    }

    /// SIGTERM, SIGINT and SIGHUP as a descriptor in the loop (blocked for normal delivery).
    fn signal_fd() -> Option<SignalFd> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGHUP);
        if let Err(e) = mask.thread_block() {
            log::warn!("cannot block signals ({e}); SIGTERM will end the process without draining");
            return None;
        }
        match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("signalfd failed ({e}); SIGTERM will end the process without draining");
                None
            }
        }
    }

    /// Follows the high watermarks of the broker at `addr` (see [`upstream`]).
    pub fn set_upstream(&mut self, addr: SocketAddr, security: crate::auth::client::UpstreamSecurity) {
        let cluster = Some(self.config.cluster_id.clone());
        let mut watcher = upstream::Watcher::new(cluster, Instant::now());
        // With a metadata log followed, its committed offset comes from the broker too.
        watcher.track_quorum = self.tailer.view.cluster.is_some();
        self.upstream = Some(UpstreamLink {
            addr,
            watcher,
            security,
            stream: None,
            out: Vec::new(),
            out_at: 0,
            rbuf: Vec::new(),
            down_logged: false,
            api_ranges_epoch: 0,
            readiness: false,
        });
    }

    /// Sets the address Metadata tells the clients of listener `k` to connect to (listener 0's
    /// is also the one the fleet and FindCoordinator name).
    pub fn set_advertised(&mut self, k: usize, host: String, port: i32) {
        if k == 0 {
            self.config.advertised_host = host.clone();
            self.config.advertised_port = port;
        }
        if let Some(c) = self.listener_configs.get_mut(k) {
            c.advertised_host = host;
            c.advertised_port = port;
        }
        self.sync_listener_configs();
    }

    /// What SASL listeners authenticate with and every listener authorizes with.
    pub fn set_security(&mut self, security: Security) {
        self.security = security;
    }

    /// Copies `config` into every listener's, keeping each one's advertised address.
    fn sync_listener_configs(&mut self) {
        for c in &mut self.listener_configs {
            let (host, port) = (std::mem::take(&mut c.advertised_host), c.advertised_port);
            *c = self.config.clone();
            c.advertised_host = host;
            c.advertised_port = port;
        }
    }

    /// The bound listeners, in `--listen` order.
    pub fn bound(&self) -> io::Result<Vec<Bound>> {
        self.listeners.iter().map(|l| Ok(Bound { addr: l.socket.local_addr()?, protocol: l.protocol })).collect()
    }

    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// The first listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.listeners.first() {
            Some(l) => l.socket.local_addr(),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no listener")),
        }
    }

    pub fn partition_count(&self) -> usize {
        self.tailer.view.partitions.len()
    }

    pub fn open_connections(&self) -> usize {
        self.open
    }

    /// Runs until SIGTERM/SIGINT and a drain.
    pub fn run(&mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(1024);
        self.notifier.notify("READY=1");
        self.send_status(Instant::now());
        loop {
            let now = Instant::now();
            if let Some(since) = self.stopping {
                let busy = self.conns.iter().flatten().any(|c| matches!(c.state, ConnState::Writing(_)));
                if !busy || now >= since + Duration::from_millis(self.limits.drain_ms_max) {
                    return Ok(Exit::Signal);
                }
            }
            let timeout = if self.ready.is_empty() { Some(self.next_timeout(now)) } else { Some(Duration::ZERO) };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let turn_start = Instant::now();
            let mut tailer_readable = false;
            for ev in events.iter() {
                match ev.token() {
                    INOTIFY => tailer_readable = true,
                    SIGNALS => self.on_signal(),
                    METRICS_LISTENER => self.accept_metrics(),
                    UPSTREAM => {
                        if let Some(u) = self.upstream.as_mut() {
                            u.readiness = true;
                        }
                    }
                    Token(t) if t >= FIRST_METRICS_CONN => self.drive_metrics(t - FIRST_METRICS_CONN),
                    Token(t) if t >= FIRST_RELAY => self.drive_relay(t - FIRST_RELAY),
                    Token(t) if t >= FIRST_LISTENER => self.accept(t - FIRST_LISTENER),
                    Token(t) => self.drive(t - FIRST_CONN),
                }
            }
            let now = Instant::now();
            // inotify news first; the timer work (periodic rescan slices) every turn regardless,
            // so a broker that writes all the time cannot starve it.
            let mut woke = tailer_readable;
            if tailer_readable {
                match self.tailer.on_readable() {
                    Ok(_) => {}
                    Err(e) => log::warn!("following the log dirs: {e}"),
                }
            }
            match self.tailer.tick(now) {
                Ok(ev) => woke |= !ev.is_empty(),
                Err(e) => log::warn!("following the log dirs: {e}"),
            }
            woke |= self.drive_upstream(now);
            if woke {
                self.fetch_sessions.view_changed();
                self.wake_parked(now, false);
            }
            self.wake_parked(now, true);
            self.release_auth_delays(now);
            self.groups.tick(now);
            self.finish_group_work();
            if now >= self.last_idle_check + IDLE_CHECK_INTERVAL {
                self.last_idle_check = now;
                self.check_idle(now);
            }
            let ready: Vec<usize> = self.ready.drain(..).collect();
            for i in ready {
                self.drive(i);
            }
            self.finish_group_work();
            self.finish_closes();
            self.notifier.tick(now);
            if self.last_status.is_none_or(|t| now >= t + STATUS_INTERVAL) {
                self.send_status(now);
            }
            self.metrics.connections.set(self.open_connections() as i64);
            self.metrics.parked_fetches.set(self.parked.len() as i64);
            self.metrics.fetch_sessions.set(self.fetch_sessions.len() as i64);
            let evicted = self.fetch_sessions.evictions;
            self.metrics.fetch_session_evictions.inc_by(evicted.saturating_sub(self.counted_evictions));
            self.counted_evictions = evicted;
            let exhausted = self.tailer.view.cache.exhaustions;
            self.metrics.descriptor_exhaustions.inc_by(exhausted.saturating_sub(self.counted_exhaustions));
            self.counted_exhaustions = exhausted;
            let opened = self.fetch_sessions.opened;
            self.metrics.fetch_sessions_opened.inc_by(opened.saturating_sub(self.counted_opened));
            self.counted_opened = opened;
            self.metrics.buffered_request_bytes.set(self.memory.used_bytes() as i64);
            self.metrics.loop_iteration_seconds.observe(turn_start.elapsed().as_secs_f64());
            // Resume accepting a little below the cap, so accepting does not flap at the limit.
            let resume_at = self.limits.connections_max - (self.limits.connections_max / 10).max(1);
            if self.accept_paused && self.open_connections() <= resume_at {
                self.accept_paused = false;
                for k in 0..self.listeners.len() {
                    self.accept(k);
                }
            }
        }
    }

    fn send_status(&mut self, now: Instant) {
        self.last_status = Some(now);
        if self.notifier.enabled() {
            self.notifier.notify(&format!(
                "STATUS=serving {} partitions to {} connections; {} requests, {} bytes by sendfile",
                self.tailer.view.partitions.len(),
                self.open_connections(),
                self.counters.requests,
                self.counters.sent.file_bytes
            ));
        }
    }

    fn next_timeout(&self, now: Instant) -> Duration {
        let mut next = self.tailer.next_deadline().min(now + Duration::from_secs(1));
        if let Some(w) = self.notifier.next_watchdog(now) {
            next = next.min(w);
        }
        if let Some(g) = self.groups.next_deadline() {
            next = next.min(g);
        }
        if let Some(u) = self.upstream.as_ref().and_then(|u| u.watcher.next_deadline()) {
            next = next.min(u);
        }
        for &i in &self.parked {
            if let Some(Some(Conn { state: ConnState::Parked(p), .. })) = self.conns.get(i) {
                next = next.min(p.deadline);
            }
        }
        for &i in &self.auth_delayed {
            if let Some(Some(Conn { state: ConnState::AuthDelay { until, .. }, .. })) = self.conns.get(i) {
                next = next.min(*until);
            }
        }
        next.saturating_duration_since(now)
    }

    fn on_signal(&mut self) {
        let Some(sfd) = &self.signals else { return };
        while let Ok(Some(info)) = sfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => {
                    log::info!("SIGHUP: rescanning the log dirs");
                    if let Err(e) = self.tailer.rescan(Instant::now()) {
                        log::warn!("rescan: {e}");
                    }
                }
                Ok(sig) => {
                    log::info!("{sig}: no longer accepting; finishing in-flight responses");
                    self.notifier.notify("STOPPING=1");
                    self.stopping = Some(Instant::now());
                    for l in &mut self.listeners {
                        let _ = self.poll.registry().deregister(&mut l.socket);
                    }
                }
                Err(_) => {}
            }
        }
    }

    fn accept(&mut self, k: usize) {
        if self.stopping.is_some() {
            return;
        }
        let Some(protocol) = self.listeners.get(k).map(|l| l.protocol) else { return };
        loop {
            if self.open_connections() >= self.limits.connections_max {
                if !self.accept_paused {
                    log::warn!(
                        "connections_max ({}) reached; new connections wait in the backlog",
                        self.limits.connections_max
                    );
                }
                self.accept_paused = true;
                return;
            }
            let Some(l) = self.listeners.get(k) else { return };
            match l.socket.accept() {
                Ok((mut stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let i = match self.free.pop() {
                        Some(i) => i,
                        None => {
                            self.conns.push(None);
                            self.conns.len() - 1
                        }
                    };
                    let transport = match self.security.tls_for(protocol) {
                        None => Transport::Plain,
                        Some(config) => match Transport::tls(config) {
                            Ok(t) => t,
                            Err(e) => {
                                log::warn!("peer={peer}: TLS session: {e}");
                                continue;
                            }
                        },
                    };
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(i + FIRST_CONN),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("register {peer}: {e}");
                        self.free.push(i);
                        continue;
                    }
                    self.conns[i] = Some(Conn {
                        stream,
                        peer,
                        rbuf: Vec::new(),
                        held: 0,
                        state: ConnState::Reading,
                        last_progress: Instant::now(),
                        client_id: None,
                        request_at: Instant::now(),
                        ready_at: Instant::now(),
                        fetch_in_flight: false,
                        relay: None,
                        listener: k,
                        sasl: protocol.is_sasl().then(|| Box::new(Session::new())),
                        close_after_write: None,
                        transport,
                        accepted_at: Instant::now(),
                        request_started: None,
                    });
                    self.open += 1;
                    self.counters.connections_accepted += 1;
                    self.metrics.connections_accepted.inc();
                    log::debug!("conn={} peer={peer}: accepted", i + FIRST_CONN);
                    // Data may already be waiting; edge-triggered readiness will not repeat it.
                    self.ready.push_back(i);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if crate::descriptors::is_exhaustion(&e) => {
                    // Out of descriptors: the connection stays in the backlog; accepting is
                    // retried each turn (at least once a second), logged at most every 10 s.
                    self.metrics.descriptor_exhaustions.inc();
                    let now = Instant::now();
                    if self.accept_starved_at.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                        self.accept_starved_at = Some(now);
                        log::warn!(
                            "accept: {e}; new connections wait in the listen backlog until descriptors free up ({} connections open)",
                            self.open_connections()
                        );
                    }
                    self.accept_paused = true;
                    return;
                }
                Err(e) => {
                    log::warn!("accept: {e}");
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }

    /// Schedules a close after the current batch of events.
    fn close(&mut self, i: usize, why: String, warn: bool) {
        if !self.to_close.iter().any(|(j, _, _)| *j == i) {
            self.to_close.push((i, why, warn));
        }
    }

    fn finish_closes(&mut self) {
        for (i, why, warn) in std::mem::take(&mut self.to_close) {
            if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
                let token = i + FIRST_CONN;
                if warn {
                    conn_log!(warn, c, token, "closing: {why}");
                } else {
                    conn_log!(debug, c, token, "closing: {why}");
                }
                c.transport.close(&mut c.stream);
                let _ = self.poll.registry().deregister(&mut c.stream);
                if let Some(mut r) = c.relay.take() {
                    let _ = self.poll.registry().deregister(&mut r.stream.tcp);
                }
                self.counters.connections_closed += 1;
                self.open -= 1;
                self.memory.forget(i);
                if self.memory.resized(c.held, 0) {
                    self.wake_memory_waiters();
                }
                self.parked.retain(|&p| p != i);
                self.auth_delayed.retain(|&p| p != i);
                self.free.push(i);
            }
        }
    }

    /// Does all the work a connection can do now, within its turn budget.
    fn drive(&mut self, i: usize) {
        if self.to_close.iter().any(|(j, _, _)| *j == i) {
            return;
        }
        let mut requests = 0;
        let mut read_bytes = 0usize;
        let mut budget = self.limits.send_bytes_per_turn_max;
        loop {
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
            match &mut c.state {
                ConnState::Parked(_)
                | ConnState::GroupWait { .. }
                | ConnState::AfterSync(_)
                | ConnState::Relaying(_)
                | ConnState::AuthDelay { .. } => return,
                ConnState::Writing(plan) => {
                    let before = plan.remaining();
                    let mut sent = Sent::default();
                    let status = if c.transport.is_tls() {
                        if self.tls_scratch.is_empty() {
                            self.tls_scratch = vec![0; TLS_SCRATCH_BYTES];
                        }
                        c.transport.write_plan(plan, &mut c.stream, budget, &mut sent, &mut self.tls_scratch)
                    } else {
                        plan.write_to(c.stream.as_fd(), budget, &mut sent)
                    };
                    let progressed = before - plan.remaining();
                    self.counters.sent.mem_bytes += sent.mem_bytes;
                    self.counters.sent.file_bytes += sent.file_bytes;
                    self.counters.sent.tls_bytes += sent.tls_bytes;
                    self.metrics.sent(sent);
                    if progressed > 0 {
                        c.last_progress = Instant::now();
                    }
                    budget = budget.saturating_sub(progressed);
                    match status {
                        Ok(WriteStatus::Done) => {
                            if c.fetch_in_flight {
                                self.metrics.fetch_send_seconds.observe(c.ready_at.elapsed().as_secs_f64());
                            }
                            c.state = ConnState::Reading;
                            // Bytes read early (a pipelined request) count from now on.
                            c.request_started = (!c.rbuf.is_empty()).then(Instant::now);
                            if let Some(why) = c.close_after_write.take() {
                                self.close(i, why, false);
                                return;
                            }
                        }
                        Ok(WriteStatus::Blocked) => {
                            if budget == 0 {
                                self.ready.push_back(i);
                            }
                            return;
                        }
                        Ok(WriteStatus::FileShrunk) => {
                            self.counters.file_shrunk += 1;
                            self.metrics.file_shrunk.inc();
                            self.close(i, "a segment file shrank while its bytes were being sent".into(), true);
                            return;
                        }
                        Err(e) => {
                            self.close(i, format!("write failed: {e}"), false);
                            return;
                        }
                    }
                }
                ConnState::Reading => {
                    if requests >= self.limits.requests_per_turn_max {
                        self.ready.push_back(i);
                        return;
                    }
                    let checked = match c.sasl.as_deref() {
                        None => protocol::check_frame(&c.rbuf, self.limits.request_bytes_max),
                        Some(s) => {
                            let max = s.receive_bytes_max(self.limits.request_bytes_max as usize) as u32;
                            if s.expects_raw_token() {
                                protocol::check_token_frame(&c.rbuf, max)
                            } else {
                                protocol::check_frame(&c.rbuf, max)
                            }
                        }
                    };
                    match checked {
                        Err(e) => {
                            self.counters.protocol_errors += 1;
                            self.metrics.protocol_violations.inc();
                            self.close(i, e.to_string(), true);
                            return;
                        }
                        Ok(Some(n)) => {
                            let frame = if n == c.rbuf.len() {
                                // The buffer is exactly this frame: hand it over without a copy.
                                Bytes::from(std::mem::take(&mut c.rbuf)).slice(4..n)
                            } else {
                                let f = Bytes::copy_from_slice(&c.rbuf[4..n]);
                                c.rbuf.drain(..n);
                                f
                            };
                            trim_request_buffer(&mut c.rbuf);
                            c.last_progress = Instant::now();
                            c.request_started = (!c.rbuf.is_empty()).then_some(c.last_progress);
                            requests += 1;
                            self.account(i);
                            self.handle(i, frame);
                        }
                        Ok(None) => {
                            if read_bytes >= self.limits.recv_bytes_per_turn_max {
                                self.ready.push_back(i);
                                return;
                            }
                            let len = c.rbuf.len();
                            let want = match declared_frame_bytes(&c.rbuf) {
                                Some(total) if total > SMALL_REQUEST_BYTES => {
                                    if c.rbuf.capacity() < total {
                                        match self.memory.admit_large(c.held, total) {
                                            Grant::Granted => {
                                                c.rbuf.reserve_exact(total - len);
                                                c.held = c.held.max(total);
                                            }
                                            Grant::Wait => {
                                                self.wait_for_memory(i);
                                                return;
                                            }
                                            Grant::Never => {
                                                self.counters.requests_refused_memory += 1;
                                                self.metrics.requests_refused_memory.inc();
                                                self.close(
                                                    i,
                                                    format!(
                                                        "request of {total} bytes can never fit buffered_request_bytes_max {}",
                                                        self.memory.bytes_max()
                                                    ),
                                                    true,
                                                );
                                                return;
                                            }
                                        }
                                    }
                                    // Up to the frame's end: what follows is read as a new request.
                                    total - len
                                }
                                _ => self.memory.small_room(),
                            };
                            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
                            let mut chunk = [0u8; 64 << 10];
                            let want = want.min(chunk.len());
                            if want == 0 {
                                self.wait_for_memory(i);
                                return;
                            }
                            let outcome = c.transport.read(&mut c.stream, &mut chunk[..want]);
                            if let Some(est) = c.transport.take_established() {
                                self.metrics.tls_handshakes.inc();
                                conn_log!(
                                    debug,
                                    c,
                                    i + FIRST_CONN,
                                    "TLS {} {} established, principal {}",
                                    est.version,
                                    est.suite,
                                    est.principal
                                );
                            }
                            match outcome {
                                Ok(ReadOutcome::Closed) => {
                                    let why = if c.transport.handshaking() {
                                        self.metrics.tls_handshake_failures.inc();
                                        "peer closed during the TLS handshake"
                                    } else if c.rbuf.is_empty() {
                                        "peer closed"
                                    } else {
                                        "peer closed mid-request"
                                    };
                                    self.close(i, why.into(), false);
                                    return;
                                }
                                Ok(ReadOutcome::Bytes(n)) => {
                                    c.rbuf.reserve_exact(n);
                                    c.rbuf.extend_from_slice(&chunk[..n]);
                                    c.last_progress = Instant::now();
                                    c.request_started.get_or_insert(c.last_progress);
                                    read_bytes += n;
                                    self.account(i);
                                }
                                Ok(ReadOutcome::WouldBlock) => return,
                                Err(e @ TransportError::Tls(_)) => {
                                    self.metrics.tls_handshake_failures.inc();
                                    self.close(i, e.to_string(), true);
                                    return;
                                }
                                Err(TransportError::Io(e)) => {
                                    self.close(i, format!("read failed: {e}"), false);
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Works the upstream connection: (re)connect when due, finish a connect, write the next
    /// request, read answers. Every turn (it is cheap when idle), so no readiness edge is
    /// missed. Returns true when a high watermark moved (parked fetches should look again).
    fn drive_upstream(&mut self, now: Instant) -> bool {
        let Some(u) = self.upstream.as_mut() else { return false };
        let mut moved_any = false;
        let mut failure: Option<String> = None;
        if u.stream.is_none() && u.watcher.connect_due(now) {
            match TcpStream::connect(u.addr) {
                Ok(mut s) => {
                    let _ = s.set_nodelay(true);
                    match self.poll.registry().register(&mut s, UPSTREAM, Interest::READABLE | Interest::WRITABLE) {
                        Ok(()) => match upstream_conn::UpstreamConn::new(s, &u.security) {
                            Ok(conn) => {
                                u.stream = Some(conn);
                                u.watcher.on_connecting();
                            }
                            Err(e) => failure = Some(e),
                        },
                        Err(e) => failure = Some(format!("register: {e}")),
                    }
                }
                Err(e) => failure = Some(format!("connect: {e}")),
            }
        }
        if failure.is_none() {
            if let Some(s) = u.stream.as_mut() {
                if u.watcher.phase == upstream::Phase::Connecting {
                    match s.tcp.take_error() {
                        Ok(Some(e)) | Err(e) => failure = Some(format!("connect: {e}")),
                        Ok(None) => {
                            if s.tcp.peer_addr().is_ok() {
                                u.watcher.on_connected();
                            }
                        }
                    }
                }
            }
        }
        if failure.is_none() && u.watcher.timed_out(now) {
            failure = Some(match u.stream.as_ref() {
                Some(s) if s.logging_in() => "the TLS handshake or SASL login did not finish in time".into(),
                _ => "no answer in time (slow or stuck broker)".into(),
            });
        }
        if failure.is_none() && u.stream.as_ref().is_some_and(|s| s.session_over(now) && !s.logging_in()) {
            failure = Some("the SASL session ended before logferry could log in again".into());
        }
        let mut io_due = std::mem::take(&mut u.readiness);
        while failure.is_none() && u.stream.is_some() && u.watcher.phase != upstream::Phase::Connecting {
            let Some(s) = u.stream.as_mut() else { break };
            if u.out_at == u.out.len() && u.watcher.request_due() {
                if s.reauth_due(now + u.watcher.hold()) {
                    // KIP-368: between two requests, and early enough that the next watch
                    // Fetch (held by the broker) cannot run past the broker's session.
                    s.begin_login();
                }
                // The partition list is built only when a watch Fetch is actually sent.
                let watched: Vec<upstream::Watched> = if u.watcher.phase == upstream::Phase::Watching {
                    self.tailer
                        .view
                        .partitions
                        .values()
                        .map(|p| upstream::Watched {
                            tp: p.tp.clone(),
                            start: p
                                .high_watermark_checkpoint
                                .unwrap_or(p.log_start_offset())
                                .max(p.log_start_offset()),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                if let Some(req) = u.watcher.next_request(&watched, now) {
                    u.out = req;
                    u.out_at = 0;
                    io_due = true;
                }
            }
            if !io_due {
                break;
            }
            let mut progressed = match s.pump(&u.out, &mut u.out_at, &mut u.rbuf, now) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            };
            while failure.is_none() {
                match upstream::complete_frame(&u.rbuf, UPSTREAM_FRAME_BYTES_MAX) {
                    Ok(Some(n)) => {
                        let body = Bytes::copy_from_slice(&u.rbuf[4..n]);
                        u.rbuf.drain(..n);
                        self.metrics.upstream_responses.inc();
                        match u.watcher.on_response(body, now) {
                            Ok(moved) => {
                                for tp in moved {
                                    if let (Some(p), Some(m)) =
                                        (self.tailer.view.partitions.get_mut(&tp), u.watcher.marks.get(&tp))
                                    {
                                        p.upstream_high_watermark = Some(m.high_watermark);
                                        moved_any = true;
                                    }
                                }
                                progressed = true;
                            }
                            Err(e) => failure = Some(e.to_string()),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            if !progressed {
                break;
            }
        }
        if u.api_ranges_epoch != u.watcher.api_ranges_epoch {
            u.api_ranges_epoch = u.watcher.api_ranges_epoch;
            let mut ranges: Vec<(i16, i16, i16)> =
                u.watcher.api_ranges.iter().map(|(&k, &(lo, hi))| (k, lo, hi)).collect();
            ranges.sort_unstable();
            self.config.upstream_api_ranges = ranges;
            for c in &mut self.listener_configs {
                c.upstream_api_ranges = self.config.upstream_api_ranges.clone();
            }
        }
        let live = u.watcher.live();
        if live && u.down_logged {
            log::info!("upstream {}: watching high watermarks again (visibility upstream)", u.addr);
            u.down_logged = false;
        }
        if let Some(why) = failure {
            let was_live = u.watcher.live();
            if let Some(mut s) = u.stream.take() {
                let _ = self.poll.registry().deregister(&mut s.tcp);
            }
            u.out.clear();
            u.out_at = 0;
            u.rbuf.clear();
            u.watcher.on_disconnected(now);
            self.metrics.upstream_reconnects.inc();
            if let Some(refused) = &u.watcher.refused {
                log::error!("upstream {}: {refused}; not using it (visibility stays at the checkpoint)", u.addr);
            } else if !u.down_logged {
                log::warn!(
                    "upstream {}: {why}; serving up to the checkpointed high watermark until it is back (retrying)",
                    u.addr
                );
                u.down_logged = true;
            }
            if was_live {
                self.metrics.upstream_fallbacks.inc();
            }
        }
        self.metrics.upstream_connected.set(i64::from(u.watcher.live()));
        // The metadata log is applied up to the quorum's high watermark while the broker says
        // it; when it cannot (down, refused), up to its complete batches.
        let bound = if u.watcher.live() { u.watcher.metadata_high_watermark } else { None };
        if let Some(c) = self.tailer.view.cluster.as_mut() {
            if c.commit_bound != bound {
                c.commit_bound = bound;
                self.tailer.refresh_metadata();
            }
        }
        moved_any
    }

    /// Brings the request memory's account of connection `i` up to its buffer's capacity.
    fn account(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        let cap = c.rbuf.capacity();
        let released = self.memory.resized(c.held, cap);
        c.held = cap;
        if released {
            self.wake_memory_waiters();
        }
    }

    /// Stops reading connection `i` until request memory is released.
    fn wait_for_memory(&mut self, i: usize) {
        if self.memory.wait(i) {
            self.counters.request_memory_waits += 1;
            self.metrics.request_memory_waits.inc();
        }
    }

    /// Puts the connections that may fit now back on the ready list.
    fn wake_memory_waiters(&mut self) {
        if self.memory.waiting() == 0 {
            return;
        }
        let conns = &self.conns;
        let woken = self.memory.wake(|j| {
            conns
                .get(j)
                .and_then(Option::as_ref)
                .and_then(|c| declared_frame_bytes(&c.rbuf))
                .unwrap_or(SMALL_REQUEST_BYTES)
        });
        self.ready.extend(woken);
    }

    /// Gives a frame to the connection's SASL session first; true when the handlers should
    /// serve it.
    fn authenticate(&mut self, i: usize, frame: &Bytes, now: Instant) -> bool {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return false };
        let Some(session) = c.sasl.as_mut() else { return true };
        let scram = self.tailer.view.cluster.as_ref().map(|m| &m.image.scram);
        let token = i + FIRST_CONN;
        match session.on_frame(frame, &self.security.sasl, scram, now) {
            Decision::Serve => true,
            Decision::Respond { frame, authenticated } => {
                if let Some(user) = authenticated {
                    conn_log!(info, c, token, "authenticated as User:{user}");
                    self.metrics.authentications.inc();
                }
                let mut plan = WritePlan::new();
                plan.push_mem(frame);
                c.state = ConnState::Writing(plan);
                false
            }
            Decision::Fail { frame, delay, reason, user } => {
                conn_log!(
                    warn,
                    c,
                    token,
                    "SASL authentication failed for user {}: {reason}",
                    user.as_deref().unwrap_or("-")
                );
                self.metrics.authentication_failures.inc();
                self.metrics.error(protocol::error_code::SASL_AUTHENTICATION_FAILED);
                let plan = frame.map(|f| {
                    let mut p = WritePlan::new();
                    p.push_mem(f);
                    p
                });
                c.state = ConnState::AuthDelay { until: now + delay, plan };
                c.close_after_write = Some("authentication failed".into());
                self.auth_delayed.push(i);
                false
            }
            Decision::Close(why) => {
                self.counters.protocol_errors += 1;
                self.metrics.protocol_violations.inc();
                self.close(i, why, true);
                false
            }
        }
    }

    /// Writes the answers of failed authentications whose delay is over (then they close).
    fn release_auth_delays(&mut self, now: Instant) {
        if self.auth_delayed.is_empty() {
            return;
        }
        let mut still = Vec::new();
        for i in std::mem::take(&mut self.auth_delayed) {
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { continue };
            let ConnState::AuthDelay { until, plan } = &mut c.state else { continue };
            if now < *until {
                still.push(i);
                continue;
            }
            match plan.take() {
                Some(plan) => {
                    c.state = ConnState::Writing(plan);
                    self.ready.push_back(i);
                }
                None => self.close(i, "authentication failed".into(), false),
            }
        }
        self.auth_delayed = still;
    }

    fn handle(&mut self, i: usize, frame: Bytes) {
        self.counters.requests += 1;
        let now = Instant::now();
        if !self.authenticate(i, &frame, now) {
            return;
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        let Some(conn) = self.conns.get(i).and_then(Option::as_ref) else { return };
        let client_host = conn.peer.ip().to_string();
        let auth = self.security.authorizer.as_ref().map(|config| Auth {
            config,
            principal: principal_of(conn),
            host: conn.peer.ip(),
        });
        let mut ctx = Context {
            view: &mut self.tailer.view,
            config: self.listener_configs.get(conn.listener).unwrap_or(&self.config),
            groups: &mut self.groups,
            origin: Origin { waiter: Waiter { conn: i, serial }, client_host: format!("/{client_host}") },
            errors: Vec::new(),
            auth,
            sessions: &mut self.fetch_sessions,
        };
        // Decoding is done by a third-party codec; a panic there must cost one connection only.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| protocol::handle_request(frame, &mut ctx, now)));
        let (meta, outcome) = match result {
            Ok(r) => r,
            Err(_) => (None, Outcome::Close("request handling panicked (malformed request?)".into())),
        };
        for code in std::mem::take(&mut ctx.errors) {
            self.metrics.error(code);
        }
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        c.request_at = now;
        c.ready_at = now;
        c.fetch_in_flight = false;
        if let Some(m) = &meta {
            if c.client_id.is_none() {
                c.client_id = m.client_id.clone();
            }
            self.metrics.request(&format!("{:?}", m.api_key), m.api_version);
            c.fetch_in_flight = m.api_key == kafka_protocol::messages::ApiKey::Fetch;
        }
        match outcome {
            Outcome::Respond(plan) => {
                if c.fetch_in_flight {
                    self.metrics.fetch_wait_seconds.observe(0.0);
                }
                c.state = ConnState::Writing(plan);
            }
            Outcome::Park(p) => {
                c.state = ConnState::Parked(p);
                self.parked.push(i);
            }
            Outcome::Close(why) => {
                self.counters.protocol_errors += 1;
                self.metrics.protocol_violations.inc();
                self.close(i, why, true);
            }
            Outcome::AwaitGroup => match meta {
                Some(meta) => c.state = ConnState::GroupWait { serial, meta },
                None => self.close(i, "internal: a group wait without a request".into(), true),
            },
            Outcome::RespondAfterSync(plan) => {
                c.state = ConnState::AfterSync(plan);
                self.after_sync.push(i);
            }
            Outcome::Relay(frame) => match meta {
                Some(meta) => self.start_relay(i, meta, frame),
                None => self.close(i, "internal: a relay without a request".into(), true),
            },
        }
    }

    /// Sends a client's group request to the upstream broker on that client's relay
    /// connection (opened on first use).
    fn start_relay(&mut self, i: usize, meta: RequestMeta, frame: Bytes) {
        let Some((addr, security)) = self.upstream.as_ref().map(|u| (u.addr, u.security.clone())) else {
            self.close(i, "internal: --groups upstream without an upstream".into(), true);
            return;
        };
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        let now = Instant::now();
        if c.relay.as_ref().is_some_and(|r| r.stream.session_over(now)) {
            // The broker ended this relay's SASL session while it was idle: a new connection.
            if let Some(mut r) = c.relay.take() {
                let _ = self.poll.registry().deregister(&mut r.stream.tcp);
            }
        }
        if let Some(r) = c.relay.as_mut() {
            if r.stream.reauth_due(now) {
                r.stream.begin_login();
            }
        }
        if c.relay.is_none() {
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    let _ = stream.set_nodelay(true);
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(FIRST_RELAY + i),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.close(i, format!("upstream relay: register: {e}"), true);
                        return;
                    }
                    let stream = match upstream_conn::UpstreamConn::new(stream, &security) {
                        Ok(s) => s,
                        Err(e) => {
                            self.close(i, format!("upstream relay to {addr}: {e}"), true);
                            return;
                        }
                    };
                    c.relay = Some(Relay { stream, connected: false, out: Vec::new(), out_at: 0, rbuf: Vec::new() });
                }
                Err(e) => {
                    self.close(i, format!("upstream relay to {addr}: {e}"), true);
                    return;
                }
            }
        }
        if let Some(r) = c.relay.as_mut() {
            r.out.clear();
            r.out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
            r.out.extend_from_slice(&frame);
            r.out_at = 0;
        }
        c.state = ConnState::Relaying(meta);
        self.drive_relay(i);
    }

    /// Moves a relayed request and its answer between the broker and the client.
    fn drive_relay(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { return };
        let Some(r) = c.relay.as_mut() else { return };
        let mut failure = None;
        if !r.connected {
            match r.stream.tcp.take_error() {
                Ok(Some(e)) | Err(e) => failure = Some(format!("connect: {e}")),
                Ok(None) => r.connected = r.stream.tcp.peer_addr().is_ok(),
            }
        }
        if r.connected && failure.is_none() {
            if let Err(e) = r.stream.pump(&r.out, &mut r.out_at, &mut r.rbuf, Instant::now()) {
                failure = Some(e);
            }
        }
        if failure.is_none() {
            match upstream::complete_frame(&r.rbuf, RELAY_FRAME_BYTES_MAX) {
                Ok(Some(n)) => {
                    let mut body = Bytes::copy_from_slice(&r.rbuf[4..n]);
                    r.rbuf.drain(..n);
                    // The broker listed every group to logferry's connection: keep the caller's.
                    if let (ConnState::Relaying(meta), Some(config)) = (&c.state, self.security.authorizer.as_ref()) {
                        if meta.api_key == kafka_protocol::messages::ApiKey::ListGroups {
                            use crate::auth::acl::{authorize, Caller, Operation, Resource, CLUSTER_NAME};
                            let caller = Caller { principal: principal_of(c), host: c.peer.ip() };
                            let image = self.tailer.view.cluster.as_ref().map(|m| &m.image);
                            let allowed = |kind, name: &str| {
                                let acls = image.map(|i| i.acl_index.candidates(&i.acls, kind, name));
                                authorize(acls.into_iter().flatten(), config, &caller, Operation::Describe, kind, name)
                            };
                            if !allowed(Resource::Cluster, CLUSTER_NAME) {
                                match protocol::list_groups::filter_relayed(meta, body.clone(), |g| {
                                    allowed(Resource::Group, g)
                                }) {
                                    Ok(b) => body = b,
                                    Err(e) => failure = Some(e),
                                }
                            }
                        }
                    }
                    match std::mem::replace(&mut c.state, ConnState::Reading) {
                        ConnState::Relaying(meta) => match protocol::relayed_response(
                            &meta,
                            body,
                            self.listener_configs.get(c.listener).unwrap_or(&self.config),
                            fleet_nodes(&self.tailer, &self.config, &meta).as_ref(),
                        ) {
                            Ok(body) => {
                                let mut framed = BytesMut::with_capacity(body.len() + 4);
                                framed.put_i32(body.len() as i32);
                                framed.put_slice(&body);
                                let mut plan = WritePlan::new();
                                plan.push_mem(framed.freeze());
                                c.state = ConnState::Writing(plan);
                                c.last_progress = Instant::now();
                                self.ready.push_back(i);
                            }
                            Err(e) => failure = Some(e),
                        },
                        other => {
                            c.state = other;
                            failure = Some("an answer with no relayed request in flight".into());
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => failure = Some(e.to_string()),
            }
        }
        if let Some(why) = failure {
            self.close(i, format!("upstream relay: {why}"), true);
        }
    }

    /// Delivers the coordinator's late JoinGroup/SyncGroup answers, then syncs the offsets
    /// store once for every commit of this turn and releases the responses that waited for it.
    fn finish_group_work(&mut self) {
        for (waiter, completion) in self.groups.coordinator.take_completions() {
            let Some(c) = self.conns.get_mut(waiter.conn).and_then(Option::as_mut) else { continue };
            let ConnState::GroupWait { serial, meta } = &c.state else { continue };
            if *serial != waiter.serial {
                continue;
            }
            let meta = meta.clone();
            match protocol::encode_completion(&meta, completion) {
                Outcome::Respond(plan) => {
                    c.state = ConnState::Writing(plan);
                    c.last_progress = Instant::now();
                    self.ready.push_back(waiter.conn);
                }
                Outcome::Close(why) => self.close(waiter.conn, why, true),
                _ => self.close(waiter.conn, "internal: unexpected group completion".into(), true),
            }
        }
        if self.after_sync.is_empty() && !self.groups.store.is_dirty() {
            return;
        }
        let sync_start = Instant::now();
        let synced = self.groups.store.sync();
        self.metrics.offsets_sync_seconds.observe(sync_start.elapsed().as_secs_f64());
        self.metrics.offsets_store_bytes.set(self.groups.store.file_bytes() as i64);
        if let Err(e) = &synced {
            log::error!("committed offsets could not be made durable: {e}; the commits are not acknowledged");
        }
        for i in std::mem::take(&mut self.after_sync) {
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { continue };
            let ConnState::AfterSync(plan) = std::mem::replace(&mut c.state, ConnState::Reading) else { continue };
            if synced.is_ok() {
                c.state = ConnState::Writing(plan);
                self.ready.push_back(i);
            } else {
                self.close(i, "the offsets store failed to sync; closing instead of acknowledging".into(), true);
            }
        }
    }

    /// Re-plans parked fetches: all of them after log events (`only_expired = false`), or only
    /// those whose deadline has passed.
    fn wake_parked(&mut self, now: Instant, only_expired: bool) {
        let mut still = Vec::with_capacity(self.parked.len());
        for i in std::mem::take(&mut self.parked) {
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else { continue };
            let ConnState::Parked(p) = &c.state else { continue };
            if only_expired && now < p.deadline {
                still.push(i);
                continue;
            }
            let auth = self.security.authorizer.as_ref().map(|config| Auth {
                config,
                principal: c.sasl.as_deref().map_or(ANONYMOUS, Session::principal),
                host: c.peer.ip(),
            });
            let mut ctx = Context {
                view: &mut self.tailer.view,
                config: self.listener_configs.get(c.listener).unwrap_or(&self.config),
                groups: &mut self.groups,
                origin: Origin { waiter: Waiter { conn: i, serial: 0 }, client_host: String::new() },
                errors: Vec::new(),
                auth,
                sessions: &mut self.fetch_sessions,
            };
            match fetch::retry(p, &mut ctx, now) {
                Some(plan) => {
                    for code in ctx.errors {
                        self.metrics.error(code);
                    }
                    self.metrics.fetch_wait_seconds.observe(now.duration_since(c.request_at).as_secs_f64());
                    c.ready_at = now;
                    c.state = ConnState::Writing(plan);
                    self.ready.push_back(i);
                }
                None => still.push(i),
            }
        }
        self.parked = still;
    }

    fn accept_metrics(&mut self) {
        loop {
            let Some(l) = &self.metrics_listener else { return };
            match l.accept() {
                Ok((mut stream, _)) => {
                    let Some(i) = (0..metrics::METRICS_CONNECTIONS_MAX)
                        .find(|&i| self.metrics_conns.get(i).is_none_or(|c| c.is_none()))
                    else {
                        // At the cap: refuse by closing at once (scrapers retry).
                        continue;
                    };
                    if self.metrics_conns.len() <= i {
                        self.metrics_conns.resize_with(i + 1, || None);
                    }
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(FIRST_METRICS_CONN + i), Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.metrics_conns[i] = Some(MetricsConn { stream, rbuf: Vec::new(), out: None });
                    self.drive_metrics(i);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("metrics accept: {e}");
                    return;
                }
            }
        }
    }

    fn drive_metrics(&mut self, i: usize) {
        let visibility = self.config.visibility;
        let done = loop {
            let Some(Some(c)) = self.metrics_conns.get_mut(i) else { return };
            if let Some((out, at)) = &mut c.out {
                match io::Write::write(&mut c.stream, &out[*at..]) {
                    Ok(n) => {
                        *at += n;
                        if *at == out.len() {
                            break true;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
                continue;
            }
            let mut chunk = [0u8; 1024];
            match c.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => c.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            }
            // Counted at scrape time: per-turn work must not walk every group.
            let groups = self.groups.coordinator.group_count() + self.groups.consumer.group_count();
            let members = self.groups.coordinator.member_count() + self.groups.consumer.member_count();
            self.metrics.groups.set(groups as i64);
            self.metrics.group_members.set(members as i64);
            let Some(Some(c)) = self.metrics_conns.get_mut(i) else { return };
            let response = match metrics::parse_http(&c.rbuf) {
                HttpAsk::Incomplete => continue,
                HttpAsk::Metrics => metrics::http_response(
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    &self.metrics.render(&self.tailer.view, visibility),
                ),
                HttpAsk::Health => metrics::http_response("200 OK", "text/plain", "ok\n"),
                HttpAsk::NotFound => {
                    metrics::http_response("404 Not Found", "text/plain", "try /metrics or /healthz\n")
                }
                HttpAsk::Bad => metrics::http_response("400 Bad Request", "text/plain", "bad request\n"),
            };
            if let Some(Some(c)) = self.metrics_conns.get_mut(i) {
                c.out = Some((response, 0));
            }
        };
        if done {
            if let Some(mut c) = self.metrics_conns.get_mut(i).and_then(Option::take) {
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
        }
    }

    fn check_idle(&mut self, now: Instant) {
        let idle = Duration::from_millis(self.limits.idle_timeout_ms);
        let mut slow = 0u64;
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_ref() else { continue };
            if matches!(
                c.state,
                ConnState::Parked(_)
                    | ConnState::GroupWait { .. }
                    | ConnState::Relaying(_)
                    | ConnState::AuthDelay { .. }
            ) {
                continue;
            }
            if c.transport.handshaking()
                && now.duration_since(c.accepted_at) >= Duration::from_millis(self.limits.tls_handshake_ms_max)
            {
                self.metrics.tls_handshake_failures.inc();
                self.close(i, format!("TLS handshake not done within {} ms", self.limits.tls_handshake_ms_max), true);
                continue;
            }
            if let (ConnState::Reading, Some(t)) = (&c.state, c.request_started) {
                if now.duration_since(t) >= Duration::from_millis(self.limits.request_ms_max) {
                    self.metrics.request_timeouts.inc();
                    let why = format!(
                        "request not complete within request_ms_max {} ms ({} bytes of it arrived)",
                        self.limits.request_ms_max,
                        c.rbuf.len()
                    );
                    self.close(i, why, false);
                    slow += 1;
                    continue;
                }
            }
            if now.duration_since(c.last_progress) >= idle {
                self.close(i, format!("idle for {} ms", self.limits.idle_timeout_ms), false);
            }
        }
        // One line per connection would flood the log under a slowloris: a summary every 10 s.
        self.slow_closed_unlogged += slow;
        if self.slow_closed_unlogged > 0
            && self.slow_logged_at.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            log::warn!(
                "closed {} connections whose request did not arrive within request_ms_max {} ms (slow senders)",
                self.slow_closed_unlogged,
                self.limits.request_ms_max
            );
            self.slow_closed_unlogged = 0;
            self.slow_logged_at = Some(now);
        }
    }
}

/// The principal the handlers authorize: SASL's on a SASL listener (also SASL_SSL, whatever the
/// certificate), else the client certificate's, else `User:ANONYMOUS` (`DefaultKafkaPrincipalBuilder`).
fn principal_of(c: &Conn) -> &str {
    match c.sasl.as_deref() {
        Some(s) => s.principal(),
        None => c.transport.principal().unwrap_or(ANONYMOUS),
    }
}

/// The whole frame size (size prefix included) once the 4-byte size has arrived.
fn declared_frame_bytes(rbuf: &[u8]) -> Option<usize> {
    let size: [u8; 4] = rbuf.get(..4)?.try_into().ok()?;
    usize::try_from(i32::from_be_bytes(size)).ok().map(|n| n + 4)
}

/// Gives back what a request buffer no longer needs: all of it when empty, or the excess over
/// what it holds once that is more than a small request.
fn trim_request_buffer(rbuf: &mut Vec<u8>) {
    if rbuf.is_empty() {
        if rbuf.capacity() > 4096 {
            *rbuf = Vec::new();
        }
    } else if rbuf.capacity() > SMALL_REQUEST_BYTES && rbuf.capacity() > 2 * rbuf.len() {
        rbuf.shrink_to(rbuf.len());
    }
}

/// A non-blocking listener with SO_REUSEADDR and a backlog of 1024.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(TcpListener::from_std(sock.into()))
}
