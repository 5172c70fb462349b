//! Entropy coding: a range coder that turns symbols and their integer probabilities into
//! bytes and back.
//!
//! Probabilities arrive as integer frequency tables (256 entries, each at least 1, summing
//! to exactly `2^FREQ_TOTAL_BITS`), so encoder and decoder split the coding interval with the
//! same integer arithmetic on every machine; the coder itself never sees a float.

mod range;

pub use range::{RangeDecoder, RangeEncoder};

/// Frequencies of one table sum to exactly `1 << FREQ_TOTAL_BITS` (the arithmetic contract's
/// value, so the model and the coder cannot disagree).
pub use crate::fixed::FREQ_TOTAL_BITS;

/// Why coding or decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoderError {
    /// The decoder needed a byte past the end of its input.
    #[error("range-coded payload is truncated")]
    Truncated,
    /// The decoder finished with input left over that the encoder did not write.
    #[error("range-coded payload has {extra} trailing bytes")]
    TrailingBytes {
        /// Bytes left unread after the last symbol.
        extra: usize,
    },
    /// The payload's final bytes are not the encoder's flush.
    #[error("range-coded payload does not end where the encoder's flush does")]
    BadFlush,
    /// A frequency table had a zero entry or did not sum to `1 << FREQ_TOTAL_BITS`.
    #[error("invalid frequency table (entries must be >= 1 and sum to 2^{FREQ_TOTAL_BITS})")]
    InvalidTable,
}
