//! `cargo run -p tinyq-arena --example plan -- model.tflite [32|64] [reference|cmsis-nn]`: prints
//! the predicted arena.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: plan MODEL.tflite [32|64]");
        std::process::exit(2);
    };
    let pw = match args.get(2).map(String::as_str) {
        Some("32") => tinyq_arena::PointerWidth::Bits32,
        _ => tinyq_arena::PointerWidth::Bits64,
    };
    let kernels = match args.get(3).map(String::as_str) {
        Some("cmsis-nn") => tinyq_arena::Kernels::CmsisNn,
        _ => tinyq_arena::Kernels::Reference,
    };
    let config = tinyq_arena::PlanConfig::for_width(pw).with_kernels(kernels);
    let bytes = std::fs::read(path).unwrap_or_default();
    match tinyq_arena::plan_arena_with(&bytes, &config) {
        Ok(plan) => {
            print!("{}", plan.summary());
            println!(
                "  phases: {:?}",
                plan.phase_requirements
                    .iter()
                    .filter(|p| !matches!(p.0, tinyq_arena::PeakPhase::Prepare { .. }))
                    .collect::<Vec<_>>()
            );
            println!(
                "  max prepare: {:?}",
                plan.phase_requirements
                    .iter()
                    .filter(|p| matches!(p.0, tinyq_arena::PeakPhase::Prepare { .. }))
                    .max_by_key(|p| p.1)
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
