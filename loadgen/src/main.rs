fn main() {
    eprintln!("sluice-loadgen: not built yet (see the loadgen issue)");
    std::process::exit(2);
}
