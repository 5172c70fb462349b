//! Entropy coding: a binary arithmetic coder that turns bits and their integer probabilities
//! into bytes and back.
//!
//! Every bit arrives with its probability of being 1 as an integer in units of
//! `2^-PROB_BITS` (never 0, never 1), so encoder and decoder split the coding interval with the
//! same integer arithmetic on every machine; the coder itself never sees a float.

mod binary;

pub use binary::{BinaryDecoder, BinaryEncoder};

/// Probabilities are integers `1 ..= 2^PROB_BITS - 1` in units of `2^-PROB_BITS`.
pub const PROB_BITS: u32 = 12;

/// One side of the coder, as the model sees it: encoder and decoder run the same model code and
/// differ only in where a bit comes from.
pub trait BitCoder {
    /// Codes one bit with probability `p1 / 2^PROB_BITS` of being 1 and returns it. The encoder
    /// codes `bit`; the decoder ignores `bit` and returns the bit it decodes.
    fn code(&mut self, bit: u8, p1: u16) -> Result<u8, CoderError>;
}

/// Why coding or decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoderError {
    /// The decoder needed a byte past the end of its input.
    #[error("arithmetic-coded payload is truncated")]
    Truncated,
    /// The decoder finished with input left over that the encoder did not write.
    #[error("arithmetic-coded payload has {extra} trailing bytes")]
    TrailingBytes {
        /// Bytes left unread after the last bit.
        extra: usize,
    },
    /// The payload's final bytes are not the encoder's flush.
    #[error("arithmetic-coded payload does not end where the encoder's flush does")]
    BadFlush,
    /// A probability was 0 or at least `2^PROB_BITS`: a model bug, refused before it could
    /// produce an undecodable stream.
    #[error("invalid bit probability (must be 1..2^{PROB_BITS})")]
    InvalidProbability,
}

/// A coder that codes nothing: it returns the bit it is given. The model runs over a block
/// stored raw through it, learning exactly as it would have while coding the block.
#[derive(Clone, Copy, Debug, Default)]
pub struct Replay;

impl BitCoder for Replay {
    fn code(&mut self, bit: u8, p1: u16) -> Result<u8, CoderError> {
        if p1 == 0 || u32::from(p1) >= 1 << PROB_BITS {
            return Err(CoderError::InvalidProbability);
        }
        Ok(bit)
    }
}
