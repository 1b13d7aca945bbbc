//! Regenerates `examples/quickstart.jsonl`, the recorded session the README's offline quick
//! start replays: `cargo run -p keel-model --example record_quickstart`. The conversation comes
//! from `examples/demo-script.json`; see `tests/quickstart/mod.rs` for how it is recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/quickstart/mod.rs"]
mod quickstart;

#[tokio::main]
async fn main() {
    let out = quickstart::examples_dir().join("quickstart.jsonl");
    quickstart::record(&out).await;
    eprintln!("wrote {}", out.display());
}
