//! Build script: makes cargo rebuild the crate when a built-in agent file changes.
//!
//! `include_dir!` embeds `builtin/` at compile time, but on stable Rust it cannot tell
//! cargo which files it read, so an edited agent file would otherwise leave a stale
//! registry in the binary until something else forced a rebuild.

fn main() {
    println!("cargo::rerun-if-changed=builtin");
}
