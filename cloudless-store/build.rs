//! Generates the `cloudless.raft.v1` protobuf types with prost-build (needs `protoc` on the PATH).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../proto";
    let proto = "../proto/cloudless/v1/raft.proto";
    println!("cargo:rerun-if-changed={proto}");
    let mut config = prost_build::Config::new();
    // Bodies are passed along without copying.
    config.bytes(["."]);
    config.compile_protos(&[proto], &[dir])?;
    Ok(())
}
