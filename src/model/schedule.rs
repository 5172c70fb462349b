//! The schedule: how many streams each block of a frame is coded in, and Adam's step size for
//! each update. Both depend only on the frame's header and the position in the frame (never
//! on the input's total length, which standard input does not have), so every encoder picks
//! the same stream counts and every decoder and backend the same rates.
//!
//! Learning rate, measured with the mixing stage (preset 5, CPU twin, alice29.txt and the
//! first 300 KB of book1): a start boosted 3× and decaying to the base rate over 64 KiB per
//! stream cost 1.5 % and 1.0 %; decaying from 1× to ½× cost up to 0.4 % against a constant ½×,
//! which was best, so the presets carry that constant rate and the rate is flat in the
//! position.

use crate::model::params::ModelParams;

/// Bytes of a frame per doubling of the stream count: the block at `position` uses
/// `2^⌊log2(1 + position / STREAM_DOUBLING_BYTES)⌋` streams, up to the frame's most. Streams
/// learn together (shared weights), but each update then covers more bytes, so a young model
/// runs narrow.
const STREAM_DOUBLING_BYTES: u64 = 4 << 20;

/// Streams for the block that starts at byte `position` of a frame whose blocks may use at
/// most `max_streams` streams: `1..=max_streams`, never decreasing with `position`.
pub fn block_streams(max_streams: u32, position: u64) -> u32 {
    let steps = 1 + position / STREAM_DOUBLING_BYTES;
    let width = 1u64 << steps.ilog2();
    width.min(u64::from(max_streams.max(1))) as u32
}

/// Adam's learning rate (Q24) for an update of a block coded in `streams` streams, after
/// `position` bytes of the frame were coded (all streams together). Always within
/// `1..=MAX_LEARNING_RATE_Q24` for valid `params`.
pub fn learning_rate_q24(params: &ModelParams, position: u64, streams: u32) -> u32 {
    let _ = (position, streams);
    params.learning_rate_q24
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_double_and_stop_at_the_most() {
        let mib = 1u64 << 20;
        assert_eq!(block_streams(64, 0), 1);
        assert_eq!(block_streams(64, 4 * mib - 1), 1);
        assert_eq!(block_streams(64, 4 * mib), 2);
        assert_eq!(block_streams(64, 12 * mib), 4);
        assert_eq!(block_streams(64, 1 << 40), 64);
        assert_eq!(block_streams(3, 1 << 40), 3);
        let mut last = 0;
        for position in (0..1u64 << 32).step_by(1 << 22) {
            let s = block_streams(256, position);
            assert!(s >= last && (1..=256).contains(&s));
            last = s;
        }
    }
}
