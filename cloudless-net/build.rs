//! Generates the `cloudless.v1` protobuf types with prost-build (needs `protoc` on the PATH).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../proto";
    let protos = [
        "../proto/cloudless/v1/rpc.proto",
        "../proto/cloudless/v1/types.proto",
        "../proto/cloudless/v1/control.proto",
    ];
    println!("cargo:rerun-if-changed={dir}");
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    // Maps encode in key order, so equal values always produce equal bytes.
    config.btree_map(["."]);
    // Payloads are passed along without copying.
    config.bytes(["."]);
    config.compile_protos(&protos, &[dir])?;
    Ok(())
}
