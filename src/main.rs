//! The `logferry` binary: parses the command line and runs the library's command.

fn main() -> std::process::ExitCode {
    logferry::cli::main()
}
