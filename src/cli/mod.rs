//! The command line: flag definitions (argh), logging set-up and dispatch to the subcommands.
//!
//! Owns what a user types and what the process exits with: 0 for success, 1 when a check found
//! problems (`verify`), 2 for bad flags or an unusable path, each with a message naming the
//! flag or path. Subcommands live in their own modules and return an [`ExitCode`].

pub mod dump;
pub mod generate;
pub mod security;
pub mod serve;
pub mod tail;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use argh::{ArgsInfo, FromArgs};

/// logferry: a read-only Kafka read replica. It tails the segment files of a broker's log
/// directories (or a copy of them) and serves them to Kafka consumers.
#[derive(FromArgs, ArgsInfo, Debug)]
pub struct Cli {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,

    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
// Parsed once at start-up; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Serve(ServeArgs),
    Dump(DumpArgs),
    Tail(TailArgs),
    Verify(VerifyArgs),
    Generate(GenerateArgs),
}

/// Serve Kafka consumers from log directories: Metadata, ListOffsets, OffsetForLeaderEpoch and
/// Fetch (records sent with sendfile, long polling). Read-only: writes are refused.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// a Kafka log directory to serve (repeat for several log.dirs entries)
    #[argh(option)]
    pub log_dir: Vec<PathBuf>,

    /// the broker's server.properties: its log.dirs (or log.dir) become the log directories and
    /// its node.id the default node id, so the common set-up is this one flag
    #[argh(option)]
    pub broker_config: Option<PathBuf>,

    /// serve Prometheus metrics on http://HOST:PORT/metrics and a health check on /healthz
    #[argh(option)]
    pub metrics_listen: Option<String>,

    /// do not use inotify; follow the log dirs by periodic rescans (and SIGHUP) only
    #[argh(switch)]
    pub no_inotify: bool,

    /// address to listen on, [PROTOCOL://]HOST:PORT with PROTOCOL PLAINTEXT (the default) or
    /// SASL_PLAINTEXT; repeat for several listeners (default 127.0.0.1:9192)
    #[argh(option)]
    pub listen: Vec<String>,

    /// address the clients of a listener are told to connect to, HOST:PORT (the n-th for the
    /// n-th --listen; default: that listener's address)
    #[argh(option)]
    pub advertised_listener: Vec<String>,

    /// SASL/PLAIN users for the SASL listeners, NAME=PASSWORD per line (default: the user_NAME
    /// entries of the broker's PLAIN JAAS config in --broker-config)
    #[argh(option)]
    pub sasl_plain_users: Option<PathBuf>,

    /// PEM certificate chain for the SSL and SASL_SSL listeners (default: the keystore of the
    /// broker's listener of that protocol in --broker-config)
    #[argh(option)]
    pub tls_cert: Option<PathBuf>,

    /// PEM PKCS#8 private key for --tls-cert
    #[argh(option)]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates client certificates must chain to (default: the broker's truststore)
    #[argh(option)]
    pub tls_client_ca: Option<PathBuf>,

    /// client certificates: none, requested or required (default: the broker's ssl.client.auth)
    #[argh(option)]
    pub tls_client_auth: Option<String>,

    /// close a TLS connection whose handshake is not done this long after accept, in
    /// milliseconds (default 10000)
    #[argh(option, default = "10_000")]
    pub tls_handshake_ms_max: u64,

    /// close a connection whose request has not fully arrived this long after its first byte,
    /// in milliseconds (slow senders; default 30000, the clients' own request.timeout.ms)
    #[argh(option, default = "crate::server::REQUEST_MS_MAX_DEFAULT")]
    pub request_ms_max: u64,

    /// node id to present (default: node.id from meta.properties, else 0)
    #[argh(option)]
    pub node_id: Option<i32>,

    /// what consumers may see: log-end (every complete batch), checkpoint (up to the broker's
    /// replication-offset-checkpoint high watermark), upstream (up to the --upstream broker's
    /// current high watermark, the checkpoint while it is unreachable) or auto (upstream with
    /// --upstream, else checkpoint when the log dir has one, else log-end; the default)
    #[argh(option, default = "String::from(\"auto\")")]
    pub visibility: String,

    /// the co-located broker (HOST:PORT of one of its listeners): logferry follows its high
    /// watermarks in real time over one connection and, with --groups upstream, relays the
    /// consumer group APIs to it
    #[argh(option)]
    pub upstream: Option<String>,

    /// a Kafka client properties file for the --upstream connection, as the Kafka tools'
    /// --command-config reads them: security.protocol (PLAINTEXT, SSL, SASL_PLAINTEXT,
    /// SASL_SSL), sasl.mechanism (PLAIN, SCRAM-SHA-256/512) and sasl.jaas.config with
    /// logferry's own username and password, ssl.truststore.*, ssl.keystore.* (default:
    /// PLAINTEXT)
    #[argh(option)]
    pub upstream_config: Option<PathBuf>,

    /// the directory holding the KRaft metadata log (__cluster_metadata-0), followed for the
    /// fleet presentation: every topic and partition of the cluster, led by the logferry beside
    /// its Kafka leader (default: metadata.log.dir from --broker-config, else the log dir that
    /// holds one; "none" turns it off)
    #[argh(option)]
    pub metadata_log_dir: Option<PathBuf>,

    /// NODE_ID=HOST:PORT: where the logferry beside broker NODE_ID listens (repeat per broker)
    #[argh(option)]
    pub peer: Vec<String>,

    /// the port every other logferry of the fleet listens on, at the host of its broker's
    /// registered listener (--peer-listener); --peer entries take precedence
    #[argh(option)]
    pub peer_port: Option<u16>,

    /// the broker listener whose host --peer-port uses (default: inter.broker.listener.name
    /// from --broker-config, else each broker's first listener)
    #[argh(option)]
    pub peer_listener: Option<String>,

    /// whose consumer groups: upstream (the cluster's: the group APIs are relayed to the
    /// --upstream broker, offsets in its __consumer_offsets; the default with --upstream) or
    /// local (logferry coordinates them, offsets in --state-dir; the default without)
    #[argh(option)]
    pub groups: Option<String>,

    /// most connections open at once; more wait in the listen backlog (default 10000)
    #[argh(option, default = "10_000")]
    pub connections_max: usize,

    /// largest request accepted, in bytes; a larger declared size closes the connection
    /// (default 8388608)
    #[argh(option, default = "8 << 20")]
    pub request_bytes_max: u32,

    /// request bytes held for all connections together, in bytes; connections whose request
    /// does not fit now are not read until memory is released (default 67108864; at least 8/7
    /// of --request-bytes-max)
    #[argh(option, default = "crate::server::BUFFERED_REQUEST_BYTES_MAX_DEFAULT")]
    pub buffered_request_bytes_max: usize,

    /// largest Fetch response, in bytes (the client's max_bytes when smaller; default 57671680)
    #[argh(option, default = "57_671_680")]
    pub response_bytes_max: u64,

    /// longest a Fetch may wait for data, in milliseconds (the client's max_wait_ms when
    /// smaller; default 30000)
    #[argh(option, default = "30_000")]
    pub fetch_wait_ms_max: u64,

    /// most partitions in one request (default 20000)
    #[argh(option, default = "20_000")]
    pub partitions_per_request_max: usize,

    /// incremental fetch sessions kept (KIP-227), as the broker's
    /// max.incremental.fetch.session.cache.slots; 0 hands out none (default 1000)
    #[argh(option, default = "crate::protocol::fetch_session::SESSION_CACHE_SLOTS_DEFAULT")]
    pub fetch_sessions_max: usize,

    /// close connections idle this long, in milliseconds (default 600000)
    #[argh(option, default = "600_000")]
    pub idle_timeout_ms: u64,

    /// most .log files kept open by the log model (default 4096)
    #[argh(option, default = "crate::log::SEGMENTS_OPEN_MAX_DEFAULT")]
    pub segments_open_max: usize,

    /// period of the full rescan behind inotify, in milliseconds (default 5000)
    #[argh(option, default = "crate::log::tailer::RESCAN_INTERVAL_MS_DEFAULT")]
    pub rescan_ms: u64,

    /// directory for logferry's own state (committed offsets of consumer groups); never inside
    /// a log dir (default: $STATE_DIRECTORY under systemd, else $XDG_STATE_HOME/logferry, else
    /// ~/.local/state/logferry)
    #[argh(option)]
    pub state_dir: Option<PathBuf>,

    /// most consumer groups (with members, or with committed offsets; default 10000)
    #[argh(option, default = "10_000")]
    pub groups_max: usize,

    /// most members in one group; more get GROUP_MAX_SIZE_REACHED (default 1000)
    #[argh(option, default = "1_000")]
    pub group_members_max: usize,

    /// largest metadata string of one committed offset, in bytes (default 4096)
    #[argh(option, default = "4096")]
    pub offset_metadata_bytes_max: usize,

    /// how long a new group waits for more members before its first generation, in
    /// milliseconds (Kafka's group.initial.rebalance.delay.ms; default 3000)
    #[argh(option, default = "3_000")]
    pub group_initial_rebalance_delay_ms: u64,

    /// smallest session timeout a member may ask for, in milliseconds (default 6000)
    #[argh(option, default = "6_000")]
    pub group_session_timeout_ms_min: i32,

    /// largest session timeout a member may ask for, in milliseconds (default 1800000)
    #[argh(option, default = "1_800_000")]
    pub group_session_timeout_ms_max: i32,

    /// session timeout of KIP-848 (group.protocol=consumer) members, in milliseconds (Kafka's
    /// group.consumer.session.timeout.ms; default 45000)
    #[argh(option, default = "45_000")]
    pub group_consumer_session_timeout_ms: u64,

    /// heartbeat interval given to KIP-848 members, in milliseconds (Kafka's
    /// group.consumer.heartbeat.interval.ms; default 5000)
    #[argh(option, default = "5_000")]
    pub group_consumer_heartbeat_interval_ms: u64,

    /// committed offsets of groups without members are deleted this long after their last
    /// commit, in milliseconds (Kafka's offsets.retention.minutes; default 604800000, 7 days)
    #[argh(option, default = "604_800_000")]
    pub offsets_retention_ms: u64,
}

/// Print .log, .index, .timeindex and .txnindex files the way Kafka's kafka-dump-log.sh
/// (DumpLogSegments) does, without needing Java. Reads only.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "dump")]
pub struct DumpArgs {
    /// also print one line per record (offset, timestamp, key and value sizes, sequence,
    /// header keys, transaction markers), decompressing batches as needed
    #[argh(switch)]
    pub deep: bool,

    /// segment files to print, in order
    #[argh(positional)]
    pub files: Vec<PathBuf>,
}

/// Check every partition of every given log directory (CRCs, offsets increasing across batches
/// and segments, index entries at batch boundaries, segment names against their contents, torn
/// tails, checkpoint files). Prints one line per problem as `path: where: what` and exits 0 when
/// clean, 1 when problems were found, 2 when a directory cannot be read. Never modifies anything.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "verify")]
pub struct VerifyArgs {
    /// log directories to check (a broker's log.dirs entries, or copies of them)
    #[argh(positional)]
    pub dirs: Vec<PathBuf>,
}

/// Follow log directories and print one line per change the tailer sees: partitions added and
/// removed, exposed ends advanced or truncated, segments added and removed. Uses inotify with a
/// periodic rescan as the safety net, exactly as the server does.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "tail")]
pub struct TailArgs {
    /// period of the full rescan behind inotify, in milliseconds (default 5000)
    #[argh(option, default = "crate::log::tailer::RESCAN_INTERVAL_MS_DEFAULT")]
    pub rescan_ms: u64,

    /// stop after this many milliseconds (default: run until killed)
    #[argh(option)]
    pub duration_ms: Option<u64>,

    /// log directories to follow
    #[argh(positional)]
    pub dirs: Vec<std::path::PathBuf>,
}

/// Print the manual page (roff) or a shell completion script for logferry, generated from the
/// same flag definitions as --help, to standard output.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "generate")]
pub struct GenerateArgs {
    /// what to print: man, bash, zsh or fish
    #[argh(positional)]
    pub what: String,
}

/// Sets up logging: `RUST_LOG` (default `info`). Under systemd (`JOURNAL_STREAM` set), no
/// timestamps (journald adds them) and a `<N>` syslog priority prefix per line so journald keeps
/// the levels (`sd-daemon(3)`).
pub fn init_logging() {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        b.format(|buf, record| {
            use std::io::Write;
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}: {}", record.target(), record.args())
        });
    }
    // A second init (tests) is harmless.
    let _ = b.try_init();
}

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = strs
        .first()
        .map(|s| std::path::Path::new(s).file_name().and_then(|n| n.to_str()).unwrap_or(s))
        .unwrap_or("logferry");
    let cli = match Cli::from_args(&[cmd], strs.get(1..).unwrap_or(&[])) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    print!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprint!("{}", early.output);
                    ExitCode::from(2)
                }
            };
        }
    };
    run(cli)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    if cli.version {
        println!("logferry {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Generate(a)) = &cli.command {
        return generate::run(a);
    }
    init_logging();
    match cli.command {
        Some(Command::Serve(a)) => serve::run(&a),
        Some(Command::Dump(a)) => dump::run(&a),
        Some(Command::Tail(a)) => tail::run(&a),
        Some(Command::Verify(a)) => verify::run(&a),
        Some(Command::Generate(a)) => generate::run(&a),
        None => {
            eprintln!("logferry: no command given; see 'logferry --help'");
            ExitCode::from(2)
        }
    }
}
