//! `bidder`: command-line entry point of the simulated DSP; parsing only, the work is in the library.

use clap::Parser;
use rtb_bidder::cli::{self, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli::init_tracing();
    cli::run(cli).await
}
