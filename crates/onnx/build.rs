fn main() {
    let proto = "proto/onnx_subset.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).expect("the ONNX schema subset compiles");
    prost_build::Config::new().compile_fds(fds).expect("prost generates the ONNX types");
}
