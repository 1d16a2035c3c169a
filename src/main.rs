use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = latchkey::config::Cli::parse();
    latchkey::cli::run(cli)
}
