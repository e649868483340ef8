//! The `voc` command line: train, eval, predict (and the service commands).

use clap::Parser;

fn main() -> std::process::ExitCode {
    voc::memory::limit_arenas();
    let cli = voc::cli::Cli::parse();
    voc::cli::init_logging(cli.log_json);
    match voc::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
