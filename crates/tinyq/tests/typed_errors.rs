//! Errors of the lower crates reach facade users with their type and the file they concern.

use tinyq::TinyqError;

#[test]
fn lower_errors_keep_their_type_and_the_file() {
    let dir = std::env::temp_dir().join(format!("tinyq-typed-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.tflite");
    std::fs::write(&garbage, b"definitely not a flatbuffer").unwrap();

    let e = tinyq::report(&garbage, 32, tinyq::Kernels::Reference).unwrap_err();
    assert!(matches!(e, TinyqError::In { .. }), "{e:?}");
    assert!(matches!(e.root(), TinyqError::Tflite(tinyq::tflite::TfliteError::NotTflite(_))), "{e:?}");
    assert!(e.to_string().starts_with(&garbage.display().to_string()), "{e}");

    let missing = dir.join("missing.tflite");
    let e = tinyq::report(&missing, 32, tinyq::Kernels::Reference).unwrap_err();
    assert!(matches!(e.root(), TinyqError::Io(io) if io.kind() == std::io::ErrorKind::NotFound), "{e:?}");
    assert!(e.to_string().contains("missing.tflite"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
