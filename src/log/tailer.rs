//! Following the log directories while a broker writes them.
//!
//! Owns the inotify instance (non-blocking; its descriptor goes into the server's mio loop) and
//! the decision of what to refresh when: an event in a partition directory refreshes that
//! partition, an event in a log dir's root re-lists the dir (new or removed partitions, new
//! checkpoints), an overflowed queue or a watch that could not be added falls back to a full
//! rescan, and [`Tailer::tick`] runs a full rescan every `rescan_interval_ms` as the safety net
//! when events are lost. The model itself is [`LogView`]; this module only schedules its work and
//! passes on its [`LogEvent`]s.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::{LogError, LogEvent, LogView, TopicPartition};

/// Default period of the full rescan that backs up inotify.
pub const RESCAN_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Partitions a periodic rescan refreshes per loop turn (about 40 µs each), so a rescan of
/// many partitions is spread over turns instead of stalling the loop.
pub const RESCAN_PARTITIONS_PER_TURN: usize = 32;

/// What an event in a log dir's root is about.
enum RootEvent {
    /// A checkpoint file was replaced (the broker writes `X.tmp` and renames it to `X`).
    Checkpoint,
    /// A partition directory appeared, went, or was renamed.
    Partitions,
    Ignore,
}

fn root_event(name: &str) -> RootEvent {
    match name {
        "replication-offset-checkpoint" | "log-start-offset-checkpoint" => RootEvent::Checkpoint,
        n if n.ends_with(".tmp") || n.ends_with("-checkpoint") || n == "meta.properties" || n == ".lock" => {
            RootEvent::Ignore
        }
        n if n.starts_with('.') || n == "bootstrap.checkpoint" => RootEvent::Ignore,
        // Anything else may be a partition directory (live or renamed): re-list.
        _ => RootEvent::Partitions,
    }
}

/// What a watch descriptor watches.
#[derive(Clone, Debug)]
enum Watched {
    Root,
    Partition(TopicPartition),
    /// The KRaft metadata log's directory ([`crate::cluster::MetadataLog`]).
    Metadata,
}

pub struct Tailer {
    pub view: LogView,
    inotify: Option<Inotify>,
    watches: HashMap<WatchDescriptor, Watched>,
    watched_partitions: HashMap<TopicPartition, WatchDescriptor>,
    rescan_interval: Duration,
    last_rescan: Instant,
    /// Set when events may have been lost (queue overflow, watch limit): next tick rescans.
    rescan_due: bool,
}

fn dir_flags() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

impl Tailer {
    /// Wraps an opened view. `use_inotify = false` (tests, simulation) relies on explicit
    /// [`Tailer::rescan`] and [`Tailer::tick`] only.
    pub fn new(view: LogView, use_inotify: bool, rescan_interval_ms: u64, now: Instant) -> Self {
        let inotify = if use_inotify {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(i) => Some(i),
                Err(e) => {
                    log::warn!(
                        "inotify unavailable ({e}); following the log dirs by rescanning every {rescan_interval_ms} ms"
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut t = Tailer {
            view,
            inotify,
            watches: HashMap::new(),
            watched_partitions: HashMap::new(),
            rescan_interval: Duration::from_millis(rescan_interval_ms.max(1)),
            last_rescan: now,
            rescan_due: false,
        };
        t.sync_watches();
        t
    }

    /// The inotify descriptor to register for readability, if inotify is in use.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.inotify.as_ref().map(|i| i.as_fd().as_raw_fd())
    }

    /// When [`Tailer::tick`] next has work to do.
    pub fn next_deadline(&self) -> Instant {
        if self.view.rescan_in_progress() {
            // More slices of a periodic rescan to do: at once (the next turn).
            return self.last_rescan;
        }
        self.last_rescan + self.rescan_interval
    }

    /// Adds watches for new partitions and log dirs, drops those of removed partitions.
    fn sync_watches(&mut self) {
        let Some(inotify) = &self.inotify else { return };
        if let Some(c) = &self.view.cluster {
            if !self.watches.values().any(|w| matches!(w, Watched::Metadata)) {
                match inotify.add_watch(&c.dir, dir_flags()) {
                    Ok(wd) => {
                        self.watches.insert(wd, Watched::Metadata);
                    }
                    Err(e) => log::warn!("{}: cannot watch ({e}); followed by rescans only", c.dir.display()),
                }
            }
        }
        if self.watches.values().all(|w| !matches!(w, Watched::Root)) {
            for d in &self.view.dirs {
                match inotify.add_watch(&d.path, dir_flags()) {
                    Ok(wd) => {
                        self.watches.insert(wd, Watched::Root);
                    }
                    Err(e) => {
                        log::warn!("{}: cannot watch ({e}); relying on periodic rescans", d.path.display());
                    }
                }
            }
        }
        let current: BTreeSet<&TopicPartition> = self.view.partitions.keys().collect();
        let stale: Vec<TopicPartition> =
            self.watched_partitions.keys().filter(|tp| !current.contains(tp)).cloned().collect();
        for tp in stale {
            if let Some(wd) = self.watched_partitions.remove(&tp) {
                self.watches.remove(&wd);
                // The directory may already be gone, which removes the watch by itself.
                let _ = inotify.rm_watch(wd);
            }
        }
        for (tp, p) in &self.view.partitions {
            if self.watched_partitions.contains_key(tp) {
                continue;
            }
            match inotify.add_watch(&p.dir, dir_flags()) {
                Ok(wd) => {
                    self.watches.insert(wd, Watched::Partition(tp.clone()));
                    self.watched_partitions.insert(tp.clone(), wd);
                }
                Err(Errno::ENOSPC) => {
                    log::warn!(
                        "inotify watch limit reached at {}; that partition is followed by rescans only",
                        p.dir.display()
                    );
                    break;
                }
                Err(e) => log::warn!("{}: cannot watch ({e})", p.dir.display()),
            }
        }
    }

    /// Drains inotify and refreshes what the events name. Call when the descriptor is readable.
    pub fn on_readable(&mut self) -> Result<Vec<LogEvent>, LogError> {
        // Partitions needing a full refresh, and partitions whose only news is writes to a
        // `.log` file (the common case: the broker appending), refreshed without a listing.
        let mut dirty: BTreeSet<TopicPartition> = BTreeSet::new();
        let mut appended: BTreeSet<(TopicPartition, String)> = BTreeSet::new();
        let mut root_changed = false;
        let mut checkpoints_changed = false;
        let mut metadata_changed = false;
        if let Some(inotify) = &self.inotify {
            loop {
                match inotify.read_events() {
                    Ok(events) => {
                        for e in events {
                            if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                                self.rescan_due = true;
                                continue;
                            }
                            let name = e.name.as_ref().and_then(|n| n.to_str()).unwrap_or("");
                            match self.watches.get(&e.wd) {
                                Some(Watched::Root) => match root_event(name) {
                                    RootEvent::Checkpoint => checkpoints_changed = true,
                                    RootEvent::Partitions => root_changed = true,
                                    RootEvent::Ignore => {}
                                },
                                Some(Watched::Partition(tp)) => {
                                    if e.mask.intersects(
                                        AddWatchFlags::IN_DELETE_SELF
                                            | AddWatchFlags::IN_MOVE_SELF
                                            | AddWatchFlags::IN_IGNORED,
                                    ) {
                                        root_changed = true;
                                    }
                                    let only_write = e.mask & !AddWatchFlags::IN_ISDIR == AddWatchFlags::IN_MODIFY;
                                    if only_write && name.ends_with(".log") {
                                        appended.insert((tp.clone(), name.to_string()));
                                    } else if only_write && !name.ends_with(".log") {
                                        // Index files, snapshots: nothing the model reads eagerly.
                                    } else {
                                        dirty.insert(tp.clone());
                                    }
                                }
                                // Appends to the log, a new snapshot, a truncation; not
                                // the index files the broker rewrites beside them.
                                Some(Watched::Metadata)
                                    if name.ends_with(".log") || name.ends_with(".checkpoint") || name.is_empty() =>
                                {
                                    metadata_changed = true;
                                }
                                Some(Watched::Metadata) => {}
                                None => {}
                            }
                        }
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        log::warn!("inotify read failed ({e}); rescanning");
                        self.rescan_due = true;
                        break;
                    }
                }
            }
        }
        if metadata_changed {
            self.refresh_metadata();
        }
        if root_changed || self.rescan_due {
            return self.rescan_now();
        }
        if checkpoints_changed {
            self.view.reload_checkpoints();
        }
        let mut out = Vec::new();
        for (tp, name) in appended {
            if !dirty.contains(&tp) {
                out.extend(self.view.refresh_active(&tp, &name)?);
            }
        }
        for tp in dirty {
            out.extend(self.view.refresh(&tp)?);
        }
        Ok(out)
    }

    /// Timer work: the periodic full rescan (or an overdue one after lost events).
    pub fn tick(&mut self, now: Instant) -> Result<Vec<LogEvent>, LogError> {
        if self.rescan_due {
            self.last_rescan = now;
            return self.rescan_now();
        }
        if self.view.rescan_in_progress() || now >= self.next_deadline() {
            if !self.view.rescan_in_progress() {
                self.last_rescan = now;
            }
            let (events, done) = self.view.rescan_step(RESCAN_PARTITIONS_PER_TURN)?;
            if done {
                self.refresh_metadata();
            }
            if done || events.iter().any(|e| matches!(e, LogEvent::PartitionAdded(_) | LogEvent::PartitionRemoved(_))) {
                self.sync_watches();
            }
            return Ok(events);
        }
        Ok(Vec::new())
    }

    /// A full rescan now (SIGHUP, tests).
    pub fn rescan(&mut self, now: Instant) -> Result<Vec<LogEvent>, LogError> {
        self.last_rescan = now;
        self.rescan_now()
    }

    /// Reads what the metadata log gained; a failure is logged and the image kept.
    pub fn refresh_metadata(&mut self) {
        if let Some(c) = &mut self.view.cluster {
            if let Err(e) = c.refresh() {
                log::warn!("metadata log: {e}; keeping the image at offset {}", c.next_offset);
            }
        }
    }

    fn rescan_now(&mut self) -> Result<Vec<LogEvent>, LogError> {
        self.rescan_due = false;
        self.refresh_metadata();
        let events = self.view.rescan()?;
        self.sync_watches();
        Ok(events)
    }

    /// Paths of the log directories followed.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.view.dirs.iter().map(|d| d.path.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_events_are_classified() {
        assert!(matches!(root_event("replication-offset-checkpoint"), RootEvent::Checkpoint));
        assert!(matches!(root_event("log-start-offset-checkpoint"), RootEvent::Checkpoint));
        assert!(matches!(root_event("replication-offset-checkpoint.tmp"), RootEvent::Ignore));
        assert!(matches!(root_event("recovery-point-offset-checkpoint"), RootEvent::Ignore));
        assert!(matches!(root_event(".kafka_cleanshutdown"), RootEvent::Ignore));
        assert!(matches!(root_event("meta.properties"), RootEvent::Ignore));
        assert!(matches!(root_event("orders-3"), RootEvent::Partitions));
        assert!(matches!(root_event("orders-3.0123abcd-delete"), RootEvent::Partitions));
    }
}
