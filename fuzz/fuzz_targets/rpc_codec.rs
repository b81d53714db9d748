//! Fuzzes the RPC frame codec, envelope decoding and the wire-to-core conversions: arbitrary
//! bytes must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cloudless_net::fuzzing::rpc_codec(data);
});
