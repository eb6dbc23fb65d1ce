//! A client connection's bytes: plain TCP, or a TLS session over it (rustls). Owns the choice,
//! per connection, of how a response's file ranges go out.
//!
//! - Plain: the response's [`WritePlan`] goes out as it is, memory by `writev` and file ranges
//!   by `sendfile` from the page cache.
//! - TLS: bytes must be encrypted in user space, so the plan is copied: the next bytes (memory
//!   chunks and `pread`s of file ranges) into the loop's bounded scratch buffer, from there
//!   into the session, which seals them into records, and out with `write_tls`. Record bytes
//!   are copied, never decompressed or re-framed: the frame sizes were fixed when the plan was
//!   made. More is copied only once the session's output is flushed, so a connection holds at
//!   most one scratch's worth of ciphertext.
//!
//! Kernel TLS would slot in here as a third variant: after the handshake, hand the session's
//! keys to the socket (`setsockopt(SOL_TLS)`) and send plans as Plain does. This machine's
//! kernel has no `tls` ULP, so that variant is not built (it could not be tested here).
//!
//! "Would block" and "closed" are values of [`ReadOutcome`]; errors are the socket's or the
//! TLS session's ([`TransportError`]).
//!
//! ```text
//!   socket ──read_tls──▶ rustls ──reader──▶ request bytes
//!   WritePlan ──copy_next (memcpy / pread)──▶ scratch ──writer──▶ rustls ──write_tls──▶ socket
//! ```

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use crate::auth::sasl::ANONYMOUS;
use crate::send::{Copied, Sent, WritePlan, WriteStatus};

/// Bytes of ciphertext the session may hold unsent (a little over one scratch).
const TLS_BUFFERED_BYTES_MAX: usize = 160 << 10;

/// A connection's byte stream.
pub enum Transport {
    Plain,
    Tls(Box<Tls>),
}

/// A TLS session and what its handshake established.
pub struct Tls {
    session: ServerConnection,
    established: bool,
    /// `User:<subject>` of a verified client certificate; `User:ANONYMOUS` without one.
    principal: String,
    /// Set when the handshake finishes, until [`Transport::take_established`].
    just_established: Option<Established>,
}

/// What a read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Bytes(usize),
    /// The peer closed (TCP end, or a TLS `close_notify`).
    Closed,
    WouldBlock,
}

#[derive(Debug)]
pub enum TransportError {
    Io(io::Error),
    /// The TLS session failed (garbage, plaintext on a TLS port, a bad certificate, ...).
    Tls(rustls::Error),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Io(e) => write!(f, "{e}"),
            TransportError::Tls(e) => write!(f, "TLS: {e}{}", tls_hint(e)),
        }
    }
}

/// What an operator can do about a TLS failure, where the error alone does not say.
pub fn tls_hint(e: &rustls::Error) -> &'static str {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))
            if format!("{o:?}").contains("UnsupportedCertVersion") =>
        {
            " (the client certificate is X.509 v1, which logferry's verifier refuses where the broker \
             accepts it; reissue it as v3, e.g. openssl x509 -req ... -extfile with extendedKeyUsage=clientAuth)"
        }
        rustls::Error::InvalidMessage(_) => " (not TLS: a plaintext client on a TLS listener?)",
        _ => "",
    }
}

/// The handshake just finished (reported once).
#[derive(Debug)]
pub struct Established {
    pub version: String,
    pub suite: String,
    pub principal: String,
}

impl Transport {
    /// A new server-side TLS session.
    pub fn tls(config: &Arc<ServerConfig>) -> Result<Transport, rustls::Error> {
        let mut session = ServerConnection::new(Arc::clone(config))?;
        session.set_buffer_limit(Some(TLS_BUFFERED_BYTES_MAX));
        Ok(Transport::Tls(Box::new(Tls {
            session,
            established: false,
            principal: ANONYMOUS.to_string(),
            just_established: None,
        })))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Whether a TLS handshake has yet to finish.
    pub fn handshaking(&self) -> bool {
        match self {
            Transport::Plain => false,
            Transport::Tls(t) => !t.established,
        }
    }

    /// The client certificate's principal (TLS with a certificate), else `None`.
    pub fn principal(&self) -> Option<&str> {
        match self {
            Transport::Plain => None,
            Transport::Tls(t) => Some(&t.principal),
        }
    }

    /// The handshake's outcome, once, after the read that finished it.
    pub fn take_established(&mut self) -> Option<Established> {
        match self {
            Transport::Plain => None,
            Transport::Tls(t) => t.just_established.take(),
        }
    }

    /// Reads request bytes into `buf`.
    pub fn read<S: Read + Write>(&mut self, stream: &mut S, buf: &mut [u8]) -> Result<ReadOutcome, TransportError> {
        let t = match self {
            Transport::Plain => loop {
                return match stream.read(buf) {
                    Ok(0) => Ok(ReadOutcome::Closed),
                    Ok(n) => Ok(ReadOutcome::Bytes(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(TransportError::Io(e)),
                };
            },
            Transport::Tls(t) => t,
        };
        loop {
            match t.session.reader().read(buf) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => return Ok(ReadOutcome::Bytes(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadOutcome::Closed),
                Err(e) => return Err(TransportError::Io(e)),
            }
            // Handshake messages (or an alert) may be waiting to go out.
            flush(&mut t.session, stream).map_err(TransportError::Io)?;
            match t.session.read_tls(stream) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(_) => {
                    if let Err(e) = t.session.process_new_packets() {
                        // Send the alert rustls queued, if the socket takes it.
                        let _ = flush(&mut t.session, stream);
                        return Err(TransportError::Tls(e));
                    }
                    if !t.established && !t.session.is_handshaking() {
                        t.established = true;
                        if let Some(cert) = t.session.peer_certificates().and_then(|c| c.first()) {
                            match crate::auth::tls::principal_of(cert) {
                                Ok(p) => t.principal = p,
                                Err(e) => log::warn!("{e}; the connection is User:ANONYMOUS"),
                            }
                        }
                        t.just_established = Some(Established {
                            version: t.session.protocol_version().map_or("-".into(), |v| format!("{v:?}")),
                            suite: t
                                .session
                                .negotiated_cipher_suite()
                                .map_or("-".into(), |s| format!("{:?}", s.suite())),
                            principal: t.principal.clone(),
                        });
                    }
                    flush(&mut t.session, stream).map_err(TransportError::Io)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TransportError::Io(e)),
            }
        }
    }

    /// Writes as much of `plan` as the socket takes, up to `budget_bytes` of the plan.
    /// `scratch` bounds one copy under TLS.
    pub fn write_plan<S: Read + Write + AsFd>(
        &mut self,
        plan: &mut WritePlan,
        stream: &mut S,
        budget_bytes: u64,
        sent: &mut Sent,
        scratch: &mut [u8],
    ) -> io::Result<WriteStatus> {
        let t = match self {
            Transport::Plain => return plan.write_to(stream.as_fd(), budget_bytes, sent),
            Transport::Tls(t) => t,
        };
        let mut budget = budget_bytes;
        loop {
            if !flush(&mut t.session, stream)? {
                return Ok(WriteStatus::Blocked);
            }
            if plan.is_done() {
                return Ok(WriteStatus::Done);
            }
            if budget == 0 {
                return Ok(WriteStatus::Blocked);
            }
            let want = (scratch.len() as u64).min(budget) as usize;
            match plan.copy_next(&mut scratch[..want])? {
                Copied::FileShrunk => return Ok(WriteStatus::FileShrunk),
                Copied::Bytes(0) => return Ok(WriteStatus::Done),
                Copied::Bytes(n) => {
                    let k = t.session.writer().write(&scratch[..n])?;
                    if k == 0 {
                        // The session's buffer is full although flushed: cannot happen with
                        // a scratch below its limit; do not spin.
                        return Ok(WriteStatus::Blocked);
                    }
                    plan.consume(k as u64);
                    sent.tls_bytes += k as u64;
                    budget = budget.saturating_sub(k as u64);
                }
            }
        }
    }

    /// Ends a TLS session politely (best effort: the socket closes next).
    pub fn close<S: Write>(&mut self, stream: &mut S) {
        if let Transport::Tls(t) = self {
            t.session.send_close_notify();
            let _ = t.session.write_tls(stream);
        }
    }
}

/// Writes the session's pending ciphertext; true when none is left.
fn flush<S: Write>(session: &mut ServerConnection, stream: &mut S) -> io::Result<bool> {
    while session.wants_write() {
        match session.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A socket double for fuzzing: reads hand out the input in the chunks it is cut into, then
/// "would block"; writes are taken whole and counted.
pub(crate) struct FuzzStream<'a> {
    chunks: std::collections::VecDeque<&'a [u8]>,
    written: usize,
}

impl<'a> FuzzStream<'a> {
    /// The reads `data` describes: each a big-endian u16 length and that many bytes.
    pub(crate) fn of(data: &'a [u8]) -> FuzzStream<'a> {
        let mut chunks = std::collections::VecDeque::new();
        let mut rest = data;
        while rest.len() >= 2 {
            let n = (usize::from(u16::from_be_bytes([rest[0], rest[1]]))).min(rest.len() - 2);
            chunks.push_back(&rest[2..2 + n]);
            rest = &rest[2 + n..];
        }
        FuzzStream { chunks, written: 0 }
    }

    pub(crate) fn drained(&self) -> bool {
        self.chunks.is_empty()
    }
}

impl Read for FuzzStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(chunk) = self.chunks.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = chunk.len().min(buf.len());
        if n < chunk.len() {
            self.chunks.push_front(&chunk[n..]);
        }
        buf[..n].copy_from_slice(&chunk[..n]);
        Ok(n)
    }
}

impl Write for FuzzStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds `data` to a server-side TLS session as the loop would: cut into reads at each
/// big-endian u16 length prefix, read until the session blocks, closes or fails. Returns the
/// plaintext bytes the session produced (a handshake cannot finish without the server's own
/// randomness, so for fuzzed input this is almost always 0). Must never panic or spin.
pub fn fuzz_records(config: &Arc<ServerConfig>, data: &[u8]) -> usize {
    let Ok(mut t) = Transport::tls(config) else { return 0 };
    let mut stream = FuzzStream::of(data);
    let mut buf = [0u8; 4096];
    let mut plaintext = 0;
    // Each read consumes input or ends: bounded by the input length.
    for _ in 0..=data.len() + 1 {
        match t.read(&mut stream, &mut buf) {
            Ok(ReadOutcome::Bytes(n)) => plaintext += n,
            Ok(ReadOutcome::WouldBlock) if stream.chunks.is_empty() => break,
            Ok(ReadOutcome::WouldBlock) => {}
            Ok(ReadOutcome::Closed) | Err(_) => break,
        }
    }
    t.close(&mut stream);
    plaintext
}
