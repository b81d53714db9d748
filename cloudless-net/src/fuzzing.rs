//! Entry points shared by the fuzz targets and the corpus replay tests. Each must return
//! normally for every input; a panic is a bug.

use cloudless_core::node::{Node, NodeReport};
use cloudless_core::replica::Replica;

use crate::codec::{FrameCodec, FrameDecoder};
use crate::wire::pb::envelope::Body;
use crate::wire::{Heartbeat, decode_as, pb};

/// Small limit so the fuzzer also reaches the size checks.
const FUZZ_MAX_FRAME: usize = 64 * 1024;

/// Feeds `data` to the single-frame decoder, to the stream decoder in uneven chunks, and every
/// payload found (and `data` itself) to the wire-to-core conversions.
pub fn rpc_codec(data: &[u8]) {
    let codec = FrameCodec::new(FUZZ_MAX_FRAME);
    if let Ok(env) = codec.decode(data) {
        envelope(env);
    }
    let mut decoder = FrameDecoder::new(codec);
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        while let Ok(Some(env)) = decoder.next_envelope() {
            envelope(env);
        }
    }
    payload(data);
}

fn envelope(env: pb::Envelope) {
    match env.body {
        Some(Body::Request(r)) => payload(&r.payload),
        Some(Body::Response(r)) => payload(&r.payload),
        Some(Body::StreamItem(i)) => payload(&i.payload),
        _ => {}
    }
}

fn payload(bytes: &[u8]) {
    let _ = decode_as::<pb::Node, Node>(bytes);
    let _ = decode_as::<pb::NodeReport, NodeReport>(bytes);
    let _ = decode_as::<pb::Replica, Replica>(bytes);
    let _ = decode_as::<pb::Heartbeat, Heartbeat>(bytes);
}
