//! Embeds the web console (`dispatcher-ui/dist`) into release builds of `dispatchd`, so that
//! one file installs everything. Debug builds serve it from disk instead; a missing `dist` is
//! never a compile error: the server then answers with a "console not built" page.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("../dispatcher-ui/dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let mut files = Vec::new();
    if release {
        println!("cargo:rerun-if-changed={}", dist.display());
        if dist.join("index.html").is_file() {
            collect(&dist, &dist, &mut files);
        } else {
            println!(
                "cargo:warning=dispatcher-ui/dist is missing: this dispatchd serves no console (run `make ui` first)"
            );
        }
    }
    files.sort();
    let mut code = String::from("/// Console files embedded at build time: (URL path, bytes).\n");
    code.push_str("pub static EMBEDDED: &[(&str, &[u8])] = &[\n");
    for (url, path) in &files {
        let _ = writeln!(
            code,
            "    ({url:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    std::fs::write(out.join("console_assets.rs"), code).expect("writing console_assets.rs");
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            let abs = path.canonicalize().unwrap_or(path.clone());
            out.push((url, abs));
        }
    }
}
