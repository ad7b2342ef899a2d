//! `cargo run -p tinyq-tflite --example tflite_roundtrip -- IN.tflite OUT.tflite`: read → write,
//! for checking written files in TFLM and LiteRT (`scripts/oracle_check.py`).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        eprintln!("usage: tflite_roundtrip IN.tflite OUT.tflite");
        std::process::exit(2);
    };
    let result = tinyq_tflite::read_tflite_file(input).and_then(|g| tinyq_tflite::write_tflite_file(&g, output));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
