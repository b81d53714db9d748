//! Generates the public API (`proto/cloudless/v1/api.proto`): prost messages, tonic servers and
//! clients, and the file descriptor set that server reflection serves. Needs `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/cloudless/v1/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // The HTTP/JSON gateway serves the same messages as JSON (camelCase, absent = default).
        .type_attribute(
            ".cloudless.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"camelCase\", default)]",
        )
        .file_descriptor_set_path(out.join("cloudless_api_descriptor.bin"))
        .compile_protos(&[proto], &["proto"])?;
    Ok(())
}
