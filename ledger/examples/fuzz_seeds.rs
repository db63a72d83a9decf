//! Writes seed inputs for the ledger fuzz targets:
//! `cargo run -p sluice-ledger --example fuzz_seeds -- fuzz/corpus`
fn main() {
    let Some(root) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz_seeds CORPUS_DIRECTORY");
        std::process::exit(2);
    };
    for (target, name, bytes) in sluice_ledger::fuzz::seed_corpus() {
        let directory = std::path::Path::new(&root).join(target);
        std::fs::create_dir_all(&directory).expect("create corpus directory");
        std::fs::write(directory.join(&name), bytes).expect("write seed");
        println!("{target}/{name}");
    }
}
