//! Rebuilds the crate when a built-in template or bundled example changes: `include_dir!` embeds
//! `templates/` and `examples/` but cannot tell cargo to watch them.

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=examples");
}
