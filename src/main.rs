fn main() {
    eprintln!("dbrouter: not yet wired");
    std::process::exit(2);
}
