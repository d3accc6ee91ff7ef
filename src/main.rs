//! Entry point: parse, dispatch, print the error once, map it to the exit code.

use clap::Parser;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    // The probe as the interpreter of a host script (`#!PROBE exec-proof:SECRET`).
    if let Some(arg) = std::env::args().nth(1) {
        if let Some(secret) = arg.strip_prefix(lasagna::probe::EXEC_PROOF) {
            std::process::exit(lasagna::probe::exec_proof(secret));
        }
    }
    let cli = lasagna::cli::Cli::parse();
    if cli.only_prints() {
        lasagna::sys::default_sigpipe();
    }
    let code = match lasagna::cli::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lasagna: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
