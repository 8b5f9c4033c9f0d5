//! Compiles `lessons/*.md` into `$OUT_DIR/lessons.rs` (see `build/lessons.rs`); a mistake in
//! a lesson stops the build with the file and line.

#[path = "build/lessons.rs"]
mod lessons;

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let lessons_dir = root.join("lessons");
    // The widget configs and the graders are compiled into this script, so a change to them
    // reruns it without a line here.
    println!("cargo:rerun-if-changed={}", lessons_dir.display());
    match lessons::compile_all(&lessons_dir) {
        Ok(code) => {
            let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("lessons.rs");
            std::fs::write(out, code).expect("write lessons.rs");
        }
        Err(mut e) => {
            e.file = e
                .file
                .strip_prefix(&root)
                .map(PathBuf::from)
                .unwrap_or(e.file);
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
