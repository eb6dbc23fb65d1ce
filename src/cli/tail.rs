//! `logferry tail`: follows log directories and prints what the tailer sees, one line per event.
//!
//! Owns nothing but the printing: it drives the same [`Tailer`] the server uses (inotify plus the
//! periodic rescan), so operators can watch what logferry would serve and tests can check the
//! tailer against a live broker. Lines: `added T-P end=O start=S`, `removed T-P`,
//! `advanced T-P end=O`, `truncated T-P end=O`, `segment-added T-P base=B`,
//! `segment-removed T-P base=B`.

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::log::tailer::Tailer;
use crate::log::{LogEvent, LogView, SEGMENTS_OPEN_MAX_DEFAULT};

use super::TailArgs;

pub fn run(args: &TailArgs) -> ExitCode {
    if args.dirs.is_empty() {
        eprintln!("logferry tail: no directories given; see 'logferry tail --help'");
        return ExitCode::from(2);
    }
    let view = match LogView::open(&args.dirs, SEGMENTS_OPEN_MAX_DEFAULT) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("logferry tail: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let mut tailer = Tailer::new(view, true, args.rescan_ms, start);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (tp, p) in &tailer.view.partitions {
        let _ = writeln!(out, "added {tp} end={} start={}", p.log_end_offset(), p.log_start_offset());
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let stop = args.duration_ms.map(|ms| start + Duration::from_millis(ms));
    loop {
        let now = Instant::now();
        if stop.is_some_and(|s| now >= s) {
            return ExitCode::SUCCESS;
        }
        let mut deadline = tailer.next_deadline();
        if let Some(s) = stop {
            deadline = deadline.min(s);
        }
        let wait_ms = deadline.saturating_duration_since(now).as_millis().min(60_000) as u16;
        let readable = match tailer.raw_fd() {
            Some(fd) => {
                // SAFETY: the descriptor belongs to the tailer's inotify instance, which outlives this call.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(wait_ms)) {
                    Ok(n) => n > 0,
                    Err(nix::errno::Errno::EINTR) => false,
                    Err(e) => {
                        eprintln!("logferry tail: poll failed: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            None => {
                std::thread::sleep(Duration::from_millis(u64::from(wait_ms)));
                false
            }
        };
        let result = if readable { tailer.on_readable() } else { tailer.tick(Instant::now()) };
        match result {
            Ok(events) => {
                for e in events {
                    let line = match &e {
                        LogEvent::PartitionAdded(tp) => {
                            let p = &tailer.view.partitions[tp];
                            format!("added {tp} end={} start={}", p.log_end_offset(), p.log_start_offset())
                        }
                        LogEvent::PartitionRemoved(tp) => format!("removed {tp}"),
                        LogEvent::Advanced { tp, end_offset } => format!("advanced {tp} end={end_offset}"),
                        LogEvent::Truncated { tp, end_offset } => format!("truncated {tp} end={end_offset}"),
                        LogEvent::SegmentAdded { tp, base_offset } => format!("segment-added {tp} base={base_offset}"),
                        LogEvent::SegmentRemoved { tp, base_offset } => {
                            format!("segment-removed {tp} base={base_offset}")
                        }
                    };
                    if writeln!(out, "{line}").is_err() {
                        return ExitCode::SUCCESS;
                    }
                }
                let _ = out.flush();
            }
            Err(e) => log::warn!("{e}"),
        }
    }
}
