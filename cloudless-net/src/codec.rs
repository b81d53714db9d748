//! Length-prefixed frames carrying the RPC [`Envelope`].
//!
//! A frame is a 4-byte big-endian length `n` followed by `n` bytes of a protobuf `Envelope`.
//! The RPC layer sends one frame per transport message (the prefix then doubles as a truncation
//! check); byte-stream transports feed arriving chunks to a [`FrameDecoder`].
//!
//! Decoding never panics and never allocates the claimed length before checking it against the
//! limit: an oversized prefix is rejected from its first four bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::wire::pb::Envelope;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Default largest frame body: 4 MiB.
pub const DEFAULT_MAX_FRAME: usize = 4 << 20;

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame (or the length it claims) exceeds the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Claimed or actual body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Fewer bytes than the prefix (or the prefix itself) announces.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// More bytes than the prefix announces, in a single-frame decode.
    #[error("{0} unexpected bytes after the frame")]
    TrailingBytes(usize),
    /// The body is not a protobuf `Envelope`.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope decoded but carries no body (or one this version does not know).
    #[error("envelope has no body")]
    EmptyEnvelope,
}

/// Encodes and decodes single frames with a size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl FrameCodec {
    /// A codec accepting frame bodies up to `max_frame` bytes (capped at `u32::MAX`).
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame: max_frame.min(u32::MAX as usize),
        }
    }

    /// The largest frame body accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Encodes `env` as one frame (prefix + body).
    pub fn encode(&self, env: &Envelope) -> Result<Bytes, CodecError> {
        let size = env.encoded_len();
        let len = self.check_len(size)?;
        let mut buf = BytesMut::with_capacity(LEN_PREFIX + size);
        buf.put_u32(len);
        env.encode(&mut buf)
            .map_err(|e| CodecError::Malformed(e.to_string()))?;
        Ok(buf.freeze())
    }

    /// Decodes exactly one frame occupying all of `frame`.
    pub fn decode(&self, frame: &[u8]) -> Result<Envelope, CodecError> {
        let len = self.read_len(frame)?;
        let total = LEN_PREFIX + len;
        if frame.len() < total {
            return Err(CodecError::Truncated {
                needed: total,
                available: frame.len(),
            });
        }
        if frame.len() > total {
            return Err(CodecError::TrailingBytes(frame.len() - total));
        }
        decode_body(&frame[LEN_PREFIX..])
    }

    /// Reads and checks the length prefix at the start of `buf`.
    fn read_len(&self, buf: &[u8]) -> Result<usize, CodecError> {
        let Some(prefix) = buf.get(..LEN_PREFIX) else {
            return Err(CodecError::Truncated {
                needed: LEN_PREFIX,
                available: buf.len(),
            });
        };
        let mut p = prefix;
        let len = p.get_u32() as usize;
        if len > self.max_frame {
            return Err(CodecError::FrameTooLarge {
                size: len,
                limit: self.max_frame,
            });
        }
        Ok(len)
    }

    fn check_len(&self, size: usize) -> Result<u32, CodecError> {
        if size > self.max_frame {
            return Err(CodecError::FrameTooLarge {
                size,
                limit: self.max_frame,
            });
        }
        u32::try_from(size).map_err(|_| CodecError::FrameTooLarge {
            size,
            limit: self.max_frame,
        })
    }
}

/// Decodes a frame body (without prefix) into an envelope with a body.
pub fn decode_body(body: &[u8]) -> Result<Envelope, CodecError> {
    let env = Envelope::decode(body).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if env.body.is_none() {
        return Err(CodecError::EmptyEnvelope);
    }
    Ok(env)
}

/// Splits a byte stream into frames. Feed chunks with [`push`](Self::push), take frames with
/// [`next_frame`](Self::next_frame). After an error the stream is unusable: close it.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    codec: FrameCodec,
    buf: BytesMut,
}

impl FrameDecoder {
    /// A decoder with `codec`'s size limit.
    pub fn new(codec: FrameCodec) -> Self {
        Self {
            codec,
            buf: BytesMut::new(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes buffered and not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame body, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, CodecError> {
        if self.buf.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = self.codec.read_len(&self.buf)?;
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(LEN_PREFIX);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The next complete envelope, `None` if more bytes are needed.
    pub fn next_envelope(&mut self) -> Result<Option<Envelope>, CodecError> {
        match self.next_frame()? {
            Some(body) => decode_body(&body).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::pb::{Cancel, envelope::Body};

    fn cancel(id: u64) -> Envelope {
        Envelope {
            body: Some(Body::Cancel(Cancel { call_id: id })),
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let codec = FrameCodec::new(64);
        let f = codec.encode(&cancel(7)).unwrap();
        assert_eq!(codec.decode(&f).unwrap(), cancel(7));
        assert!(matches!(
            codec.decode(&f[..f.len() - 1]),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            codec.decode(&f[..2]),
            Err(CodecError::Truncated { .. })
        ));
        let mut long = f.to_vec();
        long.push(0);
        assert_eq!(codec.decode(&long), Err(CodecError::TrailingBytes(1)));
        assert_eq!(
            codec.decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::FrameTooLarge {
                size: u32::MAX as usize,
                limit: 64
            })
        );
        assert_eq!(codec.decode(&[0, 0, 0, 0]), Err(CodecError::EmptyEnvelope));
        assert!(matches!(
            codec.decode(&[0, 0, 0, 2, 0xff, 0xff]),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn decoder_splits_a_byte_stream() {
        let codec = FrameCodec::default();
        let mut bytes = codec.encode(&cancel(1)).unwrap().to_vec();
        bytes.extend_from_slice(&codec.encode(&cancel(2)).unwrap());
        let mut d = FrameDecoder::new(codec);
        let mut out = Vec::new();
        for b in bytes {
            d.push(&[b]);
            while let Some(env) = d.next_envelope().unwrap() {
                out.push(env);
            }
        }
        assert_eq!(out, vec![cancel(1), cancel(2)]);
        assert_eq!(d.buffered(), 0);
    }
}
