//! Entry points shared by the cargo-fuzz targets and the corpus replay in `cargo test`.
