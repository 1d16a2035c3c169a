fn main() -> std::process::ExitCode {
    // Before anything else: see its comment.
    latchkey::db::configure_sqlite();
    latchkey::cli::main()
}
