//! The `logferry` binary: parses the command line and runs the library's command.

#[global_allocator]
static ALLOC: logferry::alloc::GuardedAlloc = logferry::alloc::GuardedAlloc;

fn main() -> std::process::ExitCode {
    logferry::cli::main()
}
