//! The `fwverify` binary: all work happens in the library; see `fwverify::cli`.

fn main() -> std::process::ExitCode {
    fwverify::cli::main()
}
