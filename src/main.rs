use clap::Parser;

fn main() {
    let cli = mixscope::cli::Cli::parse();
    if mixscope::cli::exits_on_broken_pipe(&cli) {
        // Rust ignores SIGPIPE, so `mixscope ls | head` would panic on its next print.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let code = match mixscope::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            mixscope::error::exit_code(&e)
        }
    };
    std::process::exit(code);
}
