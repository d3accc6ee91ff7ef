//! Entry point: parse, dispatch, print the error once, map it to the exit code.

use clap::Parser;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    let cli = lasagna::cli::Cli::parse();
    let code = match lasagna::cli::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lasagna: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
