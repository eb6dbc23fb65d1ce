//! `logferry serve`: builds the log view, the tailer and the server from flags, prints one
//! start-up line and runs the loop until SIGTERM/SIGINT.
//!
//! Owns flag validation (a bad flag or an unusable directory is a non-zero exit with a message
//! naming it) and the defaults: listen on loopback port 9192 (not the broker's 9092), advertise
//! the listen address, visibility `auto` (the broker's high-watermark checkpoint when a log dir
//! has one, else the log end).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::groups::{GroupConfig, Groups, OffsetLimits};
use crate::log::tailer::Tailer;
use crate::log::LogView;
use crate::protocol::{ServeConfig, Visibility};
use crate::server::listeners::{parse_listener, Security, SecurityProtocol};
use crate::server::{Limits, Server};

use super::ServeArgs;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("logferry serve: {msg}");
    ExitCode::from(2)
}

/// Splits `HOST:PORT` (an IPv6 host in brackets).
fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// What logferry takes from a broker's server.properties.
#[derive(Debug, Default)]
pub struct BrokerConfig {
    /// `log.dirs` (or `log.dir`).
    pub log_dirs: Vec<PathBuf>,
    /// `node.id` (or `broker.id`).
    pub node_id: Option<i32>,
    /// `metadata.log.dir`.
    pub metadata_log_dir: Option<PathBuf>,
    /// `inter.broker.listener.name`.
    pub inter_broker_listener: Option<String>,
    /// Every property, for the security settings ([`super::security`]).
    pub props: std::collections::BTreeMap<String, String>,
}

pub fn read_broker_config(path: &Path) -> Result<BrokerConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--broker-config {}: {e}", path.display()))?;
    let props = crate::log::meta::parse_properties(&text);
    let log_dirs = props
        .get("log.dirs")
        .or_else(|| props.get("log.dir"))
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect::<Vec<_>>())
        .unwrap_or_default();
    if log_dirs.is_empty() {
        return Err(format!("--broker-config {}: no log.dirs or log.dir", path.display()));
    }
    let node_id = match props.get("node.id").or_else(|| props.get("broker.id")) {
        Some(v) => Some(
            v.parse::<i32>()
                .map_err(|_| format!("--broker-config {}: node.id {v:?} is not a number", path.display()))?,
        ),
        None => None,
    };
    let metadata_log_dir =
        props.get("metadata.log.dir").filter(|v| !v.trim().is_empty()).map(|v| PathBuf::from(v.trim()));
    let inter_broker_listener = props.get("inter.broker.listener.name").map(|v| v.trim().to_string());
    super::security::from_properties(&props).map_err(|e| format!("--broker-config {}: {e}", path.display()))?;
    Ok(BrokerConfig { log_dirs, node_id, metadata_log_dir, inter_broker_listener, props })
}

/// `--peer NODE_ID=HOST:PORT` entries.
fn parse_peers(entries: &[String]) -> Result<std::collections::BTreeMap<i32, (String, u16)>, String> {
    let mut out = std::collections::BTreeMap::new();
    for e in entries {
        let parsed = e.split_once('=').and_then(|(id, addr)| Some((id.trim().parse::<i32>().ok()?, host_port(addr)?)));
        let Some((id, addr)) = parsed.filter(|(id, _)| *id >= 0) else {
            return Err(format!("--peer {e:?} is not NODE_ID=HOST:PORT"));
        };
        if out.insert(id, addr).is_some() {
            return Err(format!("--peer: node {id} given twice"));
        }
    }
    Ok(out)
}

/// The state directory: the flag, else systemd's `$STATE_DIRECTORY`, else the XDG state home.
/// Refused when it is inside one of the log dirs (logferry never writes there).
pub fn resolve_state_dir(flag: Option<&Path>, log_dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let dir = match flag {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("STATE_DIRECTORY").filter(|s| !s.is_empty()) {
            // systemd may pass several, colon-separated; the first is ours.
            Some(s) => PathBuf::from(s.to_string_lossy().split(':').next().unwrap_or_default()),
            None => match (std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()), std::env::var_os("HOME")) {
                (Some(x), _) => PathBuf::from(x).join("logferry"),
                (None, Some(h)) => PathBuf::from(h).join(".local/state/logferry"),
                (None, None) => return Err("no --state-dir given and neither STATE_DIRECTORY nor HOME is set".into()),
            },
        },
    };
    // Resolve through the deepest existing ancestor, so nothing is created before the check.
    let absolute = if dir.is_absolute() {
        dir.clone()
    } else {
        std::env::current_dir().map_err(|e| format!("--state-dir: cannot read the working directory: {e}"))?.join(&dir)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(name)) => {
                rest.push(name.to_os_string());
                existing = p;
            }
            _ => break,
        }
    }
    let mut canon = existing.canonicalize().map_err(|e| format!("--state-dir {}: {e}", dir.display()))?;
    for name in rest.iter().rev() {
        canon.push(name);
    }
    for l in log_dirs {
        if let Ok(lc) = l.canonicalize() {
            if canon.starts_with(&lc) {
                return Err(format!(
                    "--state-dir {} is inside the log dir {}; logferry never writes into a Kafka log dir",
                    dir.display(),
                    l.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(&canon).map_err(|e| format!("--state-dir {}: cannot create it: {e}", dir.display()))?;
    Ok(canon)
}

/// The `--upstream-config` file: Kafka client properties (it holds a password: warn when others
/// may read it).
fn read_upstream_config(path: &Path, upstream: &str) -> Result<crate::auth::client::UpstreamSecurity, String> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
        log::warn!("--upstream-config {}: readable by every user; chmod 600 it (it holds a password)", path.display());
    }
    let props = crate::log::meta::parse_properties(&text);
    let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    crate::auth::client::UpstreamSecurity::from_properties(&props, host)
}

/// Asks the upstream broker for its cluster id (5 s at most; an unreachable broker is not an
/// error here: logferry starts and falls back to the checkpoint). Err only for a broker of
/// another cluster than the log dir's `meta.properties`, or a login it refuses.
fn probe_upstream(
    addr: SocketAddr,
    cluster_id: Option<&str>,
    security: &crate::auth::client::UpstreamSecurity,
) -> Result<(), String> {
    use crate::server::upstream::{complete_frame, Phase, UpstreamError, Watcher};
    use crate::server::upstream_conn::UpstreamConn;
    let timeout = std::time::Duration::from_secs(5);
    let deadline = Instant::now() + timeout;
    let Ok(s) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        log::warn!("--upstream {addr} does not answer now; starting with the checkpoint bound and retrying");
        return Ok(());
    };
    if s.set_nonblocking(true).is_err() {
        return Ok(());
    }
    let mut conn = UpstreamConn::new(s, security)?;
    let now = Instant::now();
    let mut w = Watcher::new(cluster_id.map(str::to_string), now);
    w.on_connected();
    let mut buf = Vec::new();
    while w.phase != Phase::Watching {
        let Some(req) = w.next_request(&[], now) else { return Ok(()) };
        let mut at = 0;
        let n = loop {
            match complete_frame(&buf, 1 << 20) {
                Ok(Some(n)) if at == req.len() => break n,
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
            if Instant::now() >= deadline {
                log::warn!("--upstream {addr}: no answer within {timeout:?}; starting with the checkpoint bound");
                return Ok(());
            }
            match conn.pump(&req, &mut at, &mut buf, Instant::now()) {
                Ok(true) => {}
                Ok(false) => std::thread::sleep(std::time::Duration::from_millis(2)),
                // A refused login is the operator's to fix: say so at start.
                Err(e) if e.contains("SASL") || e.contains("TLS") => return Err(e),
                Err(e) => {
                    log::warn!("--upstream {addr}: {e}; starting with the checkpoint bound and retrying");
                    return Ok(());
                }
            }
        };
        let body = bytes::Bytes::copy_from_slice(&buf[4..n]);
        buf.drain(..n);
        match w.on_response(body, now) {
            Ok(_) => {}
            Err(e @ UpstreamError::ClusterIdMismatch { .. }) => return Err(e.to_string()),
            Err(e) => {
                log::warn!("--upstream {addr}: {e}; starting with the checkpoint bound and retrying");
                return Ok(());
            }
        }
    }
    Ok(())
}

pub fn run(args: &ServeArgs) -> ExitCode {
    let mut log_dirs = args.log_dir.clone();
    let mut broker = BrokerConfig::default();
    if let Some(path) = &args.broker_config {
        match read_broker_config(path) {
            Ok(b) => {
                if log_dirs.is_empty() {
                    log_dirs = b.log_dirs.clone();
                }
                broker = b;
            }
            Err(e) => return fail(e),
        }
    }
    let config_node = broker.node_id;
    let peers = match parse_peers(&args.peer) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if log_dirs.is_empty() {
        return fail("at least one --log-dir (or --broker-config) is required");
    }
    let metrics_addr: Option<SocketAddr> = match &args.metrics_listen {
        None => None,
        Some(m) => match m.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => Some(a),
            _ => return fail(format!("--metrics-listen {m:?} is not a HOST:PORT that resolves")),
        },
    };
    let specs = if args.listen.is_empty() { vec![String::from("127.0.0.1:9192")] } else { args.listen.clone() };
    let mut listen: Vec<(SocketAddr, SecurityProtocol)> = Vec::with_capacity(specs.len());
    for spec in &specs {
        let l = match parse_listener(spec) {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        if host_port(&l.address).is_none() {
            return fail(format!("--listen {spec:?} is not [PROTOCOL://]HOST:PORT"));
        }
        match l.address.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => listen.push((a, l.protocol)),
            _ => return fail(format!("--listen {spec:?} does not resolve to an address")),
        }
    }
    if args.advertised_listener.len() > listen.len() {
        return fail(format!(
            "{} --advertised-listener for {} --listen: give one per listener, in the same order",
            args.advertised_listener.len(),
            listen.len()
        ));
    }
    let mut advertised = Vec::with_capacity(args.advertised_listener.len());
    for a in &args.advertised_listener {
        match host_port(a) {
            Some(hp) => advertised.push(hp),
            None => return fail(format!("--advertised-listener {a:?} is not HOST:PORT")),
        }
    }
    let upstream: Option<SocketAddr> = match &args.upstream {
        None => None,
        Some(u) => match (host_port(u), u.to_socket_addrs().map(|mut a| a.next())) {
            (Some(_), Ok(Some(a))) => Some(a),
            _ => return fail(format!("--upstream {u:?} is not a HOST:PORT that resolves")),
        },
    };
    let upstream_security = match (&args.upstream_config, &args.upstream) {
        (None, _) => crate::auth::client::UpstreamSecurity::plaintext(),
        (Some(_), None) => return fail("--upstream-config needs --upstream HOST:PORT"),
        (Some(path), Some(u)) => match read_upstream_config(path, u) {
            Ok(s) => s,
            Err(e) => return fail(format!("--upstream-config {}: {e}", path.display())),
        },
    };
    let groups_upstream = match (args.groups.as_deref(), upstream) {
        (None, u) => u.is_some(),
        (Some("local"), _) => false,
        (Some("upstream"), Some(_)) => true,
        (Some("upstream"), None) => return fail("--groups upstream needs --upstream HOST:PORT"),
        (Some(other), _) => return fail(format!("--groups {other:?} must be local or upstream")),
    };
    let visibility = match args.visibility.as_str() {
        "log-end" => Visibility::LogEnd,
        "checkpoint" => Visibility::Checkpoint,
        "upstream" if upstream.is_none() => return fail("--visibility upstream needs --upstream HOST:PORT"),
        "upstream" => Visibility::Upstream,
        "auto" if upstream.is_some() => Visibility::Upstream,
        "auto" => {
            if log_dirs.iter().any(|d| Path::new(d).join("replication-offset-checkpoint").exists()) {
                Visibility::Checkpoint
            } else {
                Visibility::LogEnd
            }
        }
        other => return fail(format!("--visibility {other:?} must be log-end, checkpoint, upstream or auto")),
    };
    for (name, v) in [
        ("--connections-max", args.connections_max as u64),
        ("--request-bytes-max", u64::from(args.request_bytes_max)),
        ("--segments-open-max", args.segments_open_max as u64),
    ] {
        if v == 0 {
            return fail(format!("{name} must be at least 1"));
        }
    }
    let largest_frame = crate::server::RequestMemory::new(args.buffered_request_bytes_max).large_frame_bytes_max();
    if args.request_bytes_max as usize + 4 > largest_frame {
        return fail(format!(
            "--request-bytes-max {} does not fit --buffered-request-bytes-max {} (a request may use at most {largest_frame} bytes of it; the rest is kept for small requests)",
            args.request_bytes_max, args.buffered_request_bytes_max
        ));
    }
    let nofile = match crate::descriptors::raise_nofile() {
        Ok(n) => n,
        Err(e) => return fail(format!("cannot read the open-files limit: {e}")),
    };
    let per_connection = if groups_upstream { 2 } else { 1 };
    let fit = match crate::descriptors::fit(nofile, args.connections_max, args.segments_open_max, per_connection) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    if let Some(w) = &fit.lowered {
        log::warn!("{w}");
    }
    let mut view = match LogView::open(&log_dirs, fit.segments_open_max) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let metadata_flag = args.metadata_log_dir.as_deref().filter(|d| *d != Path::new("none"));
    let metadata_dir = if args.metadata_log_dir.as_deref() == Some(Path::new("none")) {
        None
    } else {
        crate::cluster::locate(metadata_flag, broker.metadata_log_dir.as_deref(), &log_dirs)
    };
    let mut fleet_note = String::from(", no metadata log (one-broker presentation)");
    if let Some(dir) = metadata_dir {
        match crate::cluster::MetadataLog::open(&dir) {
            Ok(m) => {
                fleet_note = format!(
                    ", metadata log {} at offset {} ({} brokers, {} topics, {} partitions)",
                    dir.display(),
                    m.next_offset,
                    m.image.brokers.len(),
                    m.image.topics.len(),
                    m.image.partition_count()
                );
                view.cluster = Some(m);
            }
            Err(e) => return fail(format!("--metadata-log-dir: {e}")),
        }
    }
    let state_dir = match resolve_state_dir(args.state_dir.as_deref(), &log_dirs) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    if args.group_session_timeout_ms_min <= 0 || args.group_session_timeout_ms_min > args.group_session_timeout_ms_max {
        return fail("--group-session-timeout-ms-min must be positive and at most --group-session-timeout-ms-max");
    }
    for (name, v) in [("--groups-max", args.groups_max), ("--group-members-max", args.group_members_max)] {
        if v == 0 {
            return fail(format!("{name} must be at least 1"));
        }
    }
    let (hb_ms, session_ms) = (args.group_consumer_heartbeat_interval_ms, args.group_consumer_session_timeout_ms);
    if hb_ms == 0 || hb_ms >= session_ms || session_ms > i32::MAX as u64 {
        return fail(format!(
            "--group-consumer-heartbeat-interval-ms ({hb_ms}) must be positive and below \
             --group-consumer-session-timeout-ms ({session_ms})"
        ));
    }
    let group_config = GroupConfig {
        consumer_session_timeout_ms: session_ms,
        consumer_heartbeat_interval_ms: hb_ms,
        groups_max: args.groups_max,
        members_per_group_max: args.group_members_max,
        session_timeout_ms_min: args.group_session_timeout_ms_min,
        session_timeout_ms_max: args.group_session_timeout_ms_max,
        initial_rebalance_delay_ms: args.group_initial_rebalance_delay_ms,
    };
    let offset_limits = OffsetLimits {
        metadata_bytes_max: args.offset_metadata_bytes_max,
        retention_ms: args.offsets_retention_ms,
        groups_max: args.groups_max,
    };
    let groups = match Groups::open(&state_dir, group_config, offset_limits, Instant::now()) {
        Ok(g) => g,
        Err(e) => return fail(format!("--state-dir: {e}")),
    };
    let cluster_id = view.cluster_id().map(str::to_string).unwrap_or_else(|| "logferry".to_string());
    if let Some(addr) = upstream {
        // A broker of another cluster is refused at start (when it answers now; later it is
        // refused by the watcher and never used).
        if let Err(e) = probe_upstream(addr, view.cluster_id(), &upstream_security) {
            return fail(format!("--upstream {addr}: {e}"));
        }
    }
    let has_metadata_log = view.cluster.is_some();
    let node_id = args.node_id.or(config_node).or(view.node_id()).unwrap_or(0);
    let tailer = Tailer::new(view, !args.no_inotify, args.rescan_ms, Instant::now());
    let config = ServeConfig {
        node_id,
        advertised_host: String::new(),
        advertised_port: 0,
        cluster_id,
        visibility,
        fetch_wait_ms_max: args.fetch_wait_ms_max,
        response_bytes_max: args.response_bytes_max,
        partitions_per_request_max: args.partitions_per_request_max,
        groups_upstream,
        upstream_api_ranges: Vec::new(),
        broker_properties: std::sync::Arc::new(broker.props.clone()),
        fleet: crate::cluster::fleet::FleetConfig {
            peers,
            peer_port: args.peer_port,
            peer_listener: args.peer_listener.clone().or(broker.inter_broker_listener.clone()),
        },
    };
    let limits = Limits {
        connections_max: fit.connections_max,
        request_bytes_max: args.request_bytes_max,
        idle_timeout_ms: args.idle_timeout_ms,
        buffered_request_bytes_max: args.buffered_request_bytes_max,
        tls_handshake_ms_max: args.tls_handshake_ms_max,
        request_ms_max: args.request_ms_max,
        fetch_sessions_max: args.fetch_sessions_max,
        descriptors_max: nofile,
        ..Limits::default()
    };
    let security = match security(args, &broker, &listen, has_metadata_log) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut server = match Server::bind(&listen, tailer, groups, config, limits) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot listen on {e}")),
    };
    server.set_security(security);
    if let Some(addr) = upstream {
        log::info!("upstream {addr}: {upstream_security:?}");
        server.set_upstream(addr, upstream_security);
    }
    let bound = match server.bound() {
        Ok(a) => a,
        Err(e) => return fail(format!("cannot read the listening address: {e}")),
    };
    // Without --advertised-listener, clients are told the address actually bound (so port 0
    // works); a wildcard address is no use to a client, so the host name is advertised then.
    let mut listening = Vec::with_capacity(bound.len());
    for (k, b) in bound.iter().enumerate() {
        let local = b.addr;
        let (adv_host, adv_port) = advertised.get(k).cloned().unwrap_or_else(|| {
            let host = if local.ip().is_unspecified() {
                nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
            } else {
                local.ip().to_string()
            };
            (host, local.port())
        });
        // PLAINTEXT bare, as before listeners had protocols (scripts read the first address).
        let scheme = match b.protocol {
            SecurityProtocol::Plaintext => String::new(),
            p => format!("{}://", p.name()),
        };
        listening.push(format!("{scheme}{local} (advertised {adv_host}:{adv_port})"));
        server.set_advertised(k, adv_host, i32::from(adv_port));
    }
    let config = server.config().clone();
    let metrics_note = match metrics_addr {
        Some(a) => match server.listen_metrics(a) {
            Ok(bound) => format!(", metrics on http://{bound}/metrics"),
            Err(e) => return fail(format!("cannot listen on --metrics-listen {a}: {e}")),
        },
        None => String::new(),
    };
    let dirs: Vec<String> = log_dirs.iter().map(|d| d.display().to_string()).collect();
    log::info!(
        "logferry {} serving on {}; node {}, cluster {}, log dirs {}, {} partitions, visibility {}, groups {}, state dir {}{metrics_note}{fleet_note}",
        env!("CARGO_PKG_VERSION"),
        listening.join(", "),
        config.node_id,
        config.cluster_id,
        dirs.join(","),
        server.partition_count(),
        visibility.name(),
        if groups_upstream { "upstream" } else { "local" },
        state_dir.display()
    );
    match server.run() {
        Ok(_) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// The listeners' security: SASL mechanisms and users, and the authorizer, from the broker's
/// properties and `--sasl-plain-users`. Refused: a SASL listener with nothing to offer, and an
/// authorizer without the metadata log that holds the ACLs.
fn security(
    args: &ServeArgs,
    broker: &BrokerConfig,
    listen: &[(SocketAddr, SecurityProtocol)],
    has_metadata_log: bool,
) -> Result<Security, String> {
    let from_broker = super::security::from_properties(&broker.props)?;
    let mut sasl = from_broker.sasl;
    let sasl_listener = listen.iter().any(|(_, p)| p.is_sasl());
    if let Some(path) = &args.sasl_plain_users {
        sasl.plain_users = super::security::read_plain_users(path)?;
    }
    if sasl.mechanisms.is_empty() && sasl_listener {
        // No broker SASL listener to mirror: offer what logferry has credentials for.
        if !sasl.plain_users.is_empty() {
            sasl.mechanisms.push("PLAIN".into());
        }
        if has_metadata_log {
            sasl.mechanisms.extend(["SCRAM-SHA-256".to_string(), "SCRAM-SHA-512".to_string()]);
        }
    }
    if sasl_listener {
        if sasl.mechanisms.is_empty() {
            return Err(format!(
                "a SASL --listen has no mechanism to offer: the broker enables {} (logferry serves {}); \
                 give --sasl-plain-users FILE, or a metadata log for SCRAM",
                if from_broker.skipped_mechanisms.is_empty() {
                    "none".to_string()
                } else {
                    from_broker.skipped_mechanisms.join(",")
                },
                super::security::MECHANISMS.join(", ")
            ));
        }
        if !from_broker.skipped_mechanisms.is_empty() {
            log::warn!(
                "the broker also enables {}, which logferry cannot serve; clients using it cannot authenticate here",
                from_broker.skipped_mechanisms.join(",")
            );
        }
        if sasl.mechanisms.iter().any(|m| m.starts_with("SCRAM")) && !has_metadata_log {
            return Err("SCRAM needs the credentials of the KRaft metadata log: give --metadata-log-dir".into());
        }
        if sasl.mechanisms.iter().any(|m| m == "PLAIN") && sasl.plain_users.is_empty() {
            log::warn!("PLAIN is enabled but no user is known (no user_NAME in the broker's JAAS config, no --sasl-plain-users)");
        }
    }
    if from_broker.authorizer.is_some() && !has_metadata_log {
        return Err(
            "the broker's StandardAuthorizer keeps its ACLs in the KRaft metadata log: give --metadata-log-dir".into(),
        );
    }
    let flags = crate::auth::tls::TlsFlags {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
        client_ca: args.tls_client_ca.clone(),
        client_auth: args.tls_client_auth.clone(),
    };
    let mut tls = [None, None];
    for (slot, protocol) in [(0, SecurityProtocol::Ssl), (1, SecurityProtocol::SaslSsl)] {
        if !listen.iter().any(|(_, p)| *p == protocol) {
            continue;
        }
        let Some(settings) = crate::auth::tls::settings(&broker.props, protocol.name(), &flags)? else {
            return Err(format!(
                "a {} --listen needs a certificate and key: the broker's ssl.keystore.* in --broker-config \
                 (from its {} listener), or --tls-cert and --tls-key",
                protocol.name(),
                protocol.name()
            ));
        };
        log::info!(
            "{} listeners: key and certificate from {}, client certificates {:?}",
            protocol.name(),
            settings.source,
            settings.client_auth
        );
        tls[slot] = Some(crate::auth::tls::server_config(&settings)?);
    }
    let [ssl, sasl_ssl] = tls;
    Ok(Security { sasl, authorizer: from_broker.authorizer, ssl, sasl_ssl })
}
