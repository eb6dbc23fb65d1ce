//! The descriptor budget: fits `connections_max` and `segments_open_max` into the process's
//! `RLIMIT_NOFILE`.
//!
//! Every client connection costs a descriptor (two with `--groups upstream`, whose relay is a
//! second socket), every `.log` the model keeps open costs one, and a fixed reserve covers the
//! rest (listeners, epoll, signalfd, inotify, the state files, the metadata log, metrics
//! connections, the short-lived opens of a refresh). At start-up the soft limit is raised to the
//! hard one (what systemd's `LimitNOFILE=` or `ulimit -Hn` allows); if the configured limits
//! still do not fit, both are lowered to what does (a quarter of the room for segments, the rest
//! for connections) and one warning says so, instead of failing later with EMFILE at a random
//! place. Connections beyond the lowered cap wait in the listen backlog; segments beyond it are
//! reopened on demand (`FileCache`). [`fit`] is the sans-io decision; [`raise_nofile`] the syscalls.
//!
//! What the budget cannot bound (a response in flight holds the files of its partitions, which
//! may have left the cache) is handled where descriptors run out: `FileCache` sheds what no
//! response holds and retries, a Fetch answers the partitions it cannot open without records
//! (like a full response; the client fetches them again), accepting backs off until a
//! descriptor frees. Each exhaustion counts in `logferry_descriptor_exhaustions_total`.

use std::io;

/// Descriptors kept for everything that is neither a client connection nor a cached `.log`.
pub const RESERVED_DESCRIPTORS: u64 = 64;
/// Fewest descriptors logferry starts with: the reserve and room for 16 connections and 16 segments.
pub const DESCRIPTORS_MIN: u64 = RESERVED_DESCRIPTORS + 32;

/// The limits as they fit the descriptor limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fit {
    pub connections_max: usize,
    pub segments_open_max: usize,
    /// Set when a limit was lowered: the warning to log, naming the flags and the numbers.
    pub lowered: Option<String>,
}

/// Why logferry cannot start with the descriptors it has.
#[derive(Debug, PartialEq, Eq)]
pub struct TooFew {
    pub nofile: u64,
}

impl std::fmt::Display for TooFew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the open-files limit (RLIMIT_NOFILE) is {}; logferry needs at least {DESCRIPTORS_MIN} (raise it with ulimit -n or LimitNOFILE=)",
            self.nofile
        )
    }
}

/// Fits the configured limits into `nofile` descriptors; `per_connection` is 1, or 2 when each
/// connection may have a relay socket.
pub fn fit(nofile: u64, connections_max: usize, segments_open_max: usize, per_connection: u64) -> Result<Fit, TooFew> {
    if nofile < DESCRIPTORS_MIN {
        return Err(TooFew { nofile });
    }
    let per_connection = per_connection.max(1);
    let room = nofile - RESERVED_DESCRIPTORS;
    let need = (connections_max as u64).saturating_mul(per_connection).saturating_add(segments_open_max as u64);
    if need <= room {
        return Ok(Fit { connections_max, segments_open_max, lowered: None });
    }
    // A quarter for segments (they are reopened on demand), the rest for connections; a limit
    // already below its share keeps its value and leaves the rest to the other.
    let segments_share = (room / 4).max(16);
    let segments = (segments_open_max as u64).min(segments_share);
    let connections = ((room - segments) / per_connection).min(connections_max as u64);
    let segments = (room - connections * per_connection).min(segments_open_max as u64);
    let lowered = format!(
        "the open-files limit (RLIMIT_NOFILE) is {nofile}: --connections-max {connections_max} and --segments-open-max {segments_open_max} need {} descriptors; serving with at most {connections} connections (more wait in the listen backlog) and {segments} open segments (raise the limit with ulimit -n or LimitNOFILE= to lift this)",
        need.saturating_add(RESERVED_DESCRIPTORS)
    );
    Ok(Fit { connections_max: connections as usize, segments_open_max: segments as usize, lowered: Some(lowered) })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force.
pub fn raise_nofile() -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft >= hard {
        return Ok(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Ok(hard),
        Err(e) => {
            log::warn!("could not raise the open-files limit from {soft} to {hard}: {e}");
            Ok(soft)
        }
    }
}

/// True for the errors that mean "no descriptor left" (process or system table full).
pub fn is_exhaustion(e: &io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|n| n == Errno::EMFILE as i32 || n == Errno::ENFILE as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_fit_are_kept() {
        let f = fit(1 << 20, 10_000, 4096, 2).unwrap();
        assert_eq!((f.connections_max, f.segments_open_max, f.lowered), (10_000, 4096, None));
    }

    #[test]
    fn a_small_limit_lowers_both_and_says_so() {
        let f = fit(256, 10_000, 4096, 1).unwrap();
        assert_eq!((f.connections_max, f.segments_open_max), (144, 48));
        assert!(f.connections_max as u64 + f.segments_open_max as u64 + RESERVED_DESCRIPTORS <= 256);
        let w = f.lowered.unwrap();
        assert!(
            w.contains("RLIMIT_NOFILE) is 256") && w.contains("144 connections") && w.contains("48 open segments"),
            "{w}"
        );
        // Relayed connections cost two descriptors each.
        let f = fit(256, 10_000, 4096, 2).unwrap();
        assert_eq!((f.connections_max, f.segments_open_max), (72, 48));
    }

    #[test]
    fn a_limit_below_its_share_leaves_the_room_to_the_other() {
        let f = fit(1024, 50, 4096, 1).unwrap();
        assert_eq!((f.connections_max, f.segments_open_max), (50, 910));
        let f = fit(1024, 10_000, 20, 1).unwrap();
        assert_eq!((f.connections_max, f.segments_open_max), (940, 20));
    }

    #[test]
    fn too_few_descriptors_is_a_clear_error() {
        let e = fit(50, 10, 10, 1).unwrap_err();
        assert_eq!(e, TooFew { nofile: 50 });
        assert!(e.to_string().contains("is 50; logferry needs at least 96"));
    }

    #[test]
    fn exhaustion_errors_are_recognised() {
        assert!(is_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(23)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(2)));
    }
}
