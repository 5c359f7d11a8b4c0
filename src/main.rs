use clap::Parser;

fn main() {
    let cli = mixscope::cli::Cli::parse();
    let code = match mixscope::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            mixscope::error::exit_code(&e)
        }
    };
    std::process::exit(code);
}
