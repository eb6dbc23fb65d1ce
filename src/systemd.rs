//! systemd integration without a crate: `sd_notify` datagrams and the watchdog interval.
//!
//! Owns the notify socket (`NOTIFY_SOCKET`, a filesystem path or an abstract `@name`) and the
//! decision of when to pet the watchdog (`WATCHDOG_USEC`, honoured only when `WATCHDOG_PID` is
//! unset or is this process). Outside systemd every call is a no-op. Messages: `READY=1` after
//! the listener is bound and the initial scan is done, `STATUS=...` with serving figures,
//! `WATCHDOG=1` from the event loop's tick (so a stuck loop gets restarted), `STOPPING=1` when a
//! drain starts.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog_interval: Option<Duration>,
    last_watchdog: Option<Instant>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` / `WATCHDOG_USEC` / `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let addr = match bytes.first() {
                Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
                Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(&path)),
                _ => {
                    log::warn!("NOTIFY_SOCKET {path:?} is neither a path nor an abstract name; not notifying systemd");
                    return None;
                }
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(s), Ok(a)) => Some((s, a)),
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!("NOTIFY_SOCKET {path:?}: {e}; not notifying systemd");
                    None
                }
            }
        });
        let pid_ok = std::env::var("WATCHDOG_PID").map_or(true, |p| p.trim() == std::process::id().to_string());
        let watchdog_interval = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0 && pid_ok)
            // Pet twice per interval, as sd_watchdog_enabled(3) recommends.
            .map(|us| Duration::from_micros(us / 2));
        Notifier { socket, watchdog_interval, last_watchdog: None }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one notification; failures are logged, never fatal.
    pub fn notify(&self, msg: &str) {
        if let Some((s, addr)) = &self.socket {
            if let Err(e) = s.send_to_addr(msg.as_bytes(), addr) {
                log::warn!("sd_notify {msg:?}: {e}");
            }
        }
    }

    /// When the next watchdog ping is due, if a watchdog is configured.
    pub fn next_watchdog(&self, now: Instant) -> Option<Instant> {
        let every = self.watchdog_interval?;
        Some(self.last_watchdog.map_or(now, |t| t + every))
    }

    /// Pets the watchdog if it is due.
    pub fn tick(&mut self, now: Instant) {
        if self.socket.is_none() {
            return;
        }
        if let Some(due) = self.next_watchdog(now) {
            if now >= due {
                self.notify("WATCHDOG=1");
                self.last_watchdog = Some(now);
            }
        }
    }
}
