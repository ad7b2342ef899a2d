//! `cargo run -p tinyq-verify --example probe -- MODEL.tflite TREE reference|cmsis-nn`: builds
//! the model's runner, prints the smallest arena TFLM accepts on the Cortex-M4 and the sizes.
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let model = std::fs::read(&a[1])?;
    let kernels = tinyq_verify::Kernels::parse(&a[3]).ok_or("kernels: reference or cmsis-nn")?;
    let s = tinyq_verify::Session::new(std::path::Path::new(&a[2]), kernels)?;
    let img = s.model_runner(&model, "probe", 1 << 20, 1 << 20)?;
    eprintln!("{:?}", img);
    let log =
        tinyq_verify::run(&s.tools, &img, &["min".into(), "0".into()], Some(&s.plugin()?), Duration::from_secs(300))?;
    for l in &log.lines {
        println!("{l}");
    }
    println!("status {} insns {} in {:.2}s", log.status, log.total_instructions, log.seconds);
    Ok(())
}
