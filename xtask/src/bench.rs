//! `cargo xtask bench`: the benchmarks behind BENCHMARKS.md. Not written yet; the command
//! exists so the CLI, the README and CI can already name it.

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A short run with small numbers, meant for CI (once benchmarks exist).
    #[arg(long)]
    quick: bool,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    println!(
        "==> cargo xtask bench{}",
        if args.quick { " --quick" } else { "" }
    );
    bail!("not implemented yet: the benchmarks (1M pets, memory, start time, WebSocket load) and BENCHMARKS.md come in a later change")
}
