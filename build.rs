//! Rebuilds the crate when a built-in template changes: `include_dir!` embeds `templates/` but
//! cannot tell cargo to watch it.

fn main() {
    println!("cargo:rerun-if-changed=templates");
}
