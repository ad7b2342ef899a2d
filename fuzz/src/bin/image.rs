#[path = "../../harness.rs"]
mod harness;

fn main() {
    afl::fuzz!(|bytes: &[u8]| harness::image(bytes));
}
