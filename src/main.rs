//! The `a2a-bench` binary: everything lives in the library; this only runs the command line.

fn main() -> std::process::ExitCode {
    a2a_bench::cli::main()
}
