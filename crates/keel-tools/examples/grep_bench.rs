//! Times keel's Grep tool on a tree, for `bench/run`'s comparison with ripgrep.
//!
//! `grep_bench ROOT PATTERN RUNS OUT` calls the Grep tool in content mode (as the model would,
//! through the tool itself, not the registry) RUNS times, prints each run's wall time in
//! milliseconds on one line, and writes the last run's output to OUT, so the caller can check
//! that keel and `rg` found the same lines.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use keel_tools::builtin::Grep;
use keel_tools::{Tool, ToolContext};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn usage() -> ExitCode {
    eprintln!("usage: grep_bench ROOT PATTERN RUNS OUT");
    ExitCode::from(2)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, pattern, runs, out] = args.as_slice() else {
        return usage();
    };
    let Ok(runs) = runs.parse::<usize>() else {
        return usage();
    };
    let root = PathBuf::from(root);
    let spill = std::env::temp_dir();
    let ctx = ToolContext::new(&root, spill, CancellationToken::new());
    let input = json!({"pattern": pattern, "output_mode": "content", "path": root});
    let mut content = String::new();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        match Grep.call(input.clone(), &ctx).await {
            Ok(output) => content = output.content,
            Err(error) => {
                eprintln!("grep_bench: the Grep tool failed: {error}");
                return ExitCode::FAILURE;
            }
        }
        times.push(format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0));
    }
    println!("{}", times.join(" "));
    if let Err(error) = std::fs::write(out, content) {
        eprintln!("grep_bench: cannot write {out}: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
