//! The `profiledb` binary: everything happens in [`profiledb::cli`].

fn main() -> std::process::ExitCode {
    profiledb::cli::main()
}
