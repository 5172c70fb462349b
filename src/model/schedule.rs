//! The schedule: how a frame is cut into blocks, how many streams each block is coded in, and
//! Adam's step size for each update. All of it depends only on the frame's header and the
//! position in the frame (never on the input's total length, which standard input does not
//! have), so every encoder cuts the same blocks and every decoder and backend uses the same
//! rates.
//!
//! Streams: a young model needs many updates per byte, and one update covers a window of
//! every stream's steps, so a frame starts narrow and doubles its width each time it has coded
//! as much again: one stream for the first `2 × RAMP_BYTES`, two up to twice that, four up to
//! four times, … up to the header's most streams, reached after `RAMP_BYTES × max` bytes
//! (4 MiB for 256 streams). Each doubling costs `RAMP_BYTES` decoder steps, so a long frame
//! runs at full width almost all the time; blocks end where the width changes. The width is
//! the bytes a decoder step codes: streams, up to the header's, and then an LSTM stride (bytes
//! of each stream per LSTM step) up to the header's (`block_width`): more streams cost the
//! shared mixing stage ratio (each segment starts without the text before it), a longer
//! stride costs the LSTM's predictions of the bytes it skips, which the presets with one small
//! LSTM layer can spare.
//!
//! Learning rate: the presets' base rates were tuned in one stream with the mixing stage
//! (preset 5, CPU twin, alice29.txt and the first 300 KB of book1: a start boosted 3× and
//! decaying over 64 KiB per stream cost 1.5 % and 1.0 %, a constant rate was best). With `B`
//! streams each update averages `B` times as many bytes and comes `B` times less often per
//! byte, so the rate grows with the width, as the fourth root of `B`: on the first 8 MB of a
//! documentation text at `-2` (up to 256 streams), B^¼ gave 1,676,325 bytes, √B 1,683,502 and
//! a flat rate 1,680,148 (NNCP goes from 4·10⁻³ at 32 streams to 10⁻² at 256, about B^0.44).

use crate::model::params::{MAX_LEARNING_RATE_Q24, ModelParams};

/// Bytes coded per stream between two doublings of the width.
const RAMP_BYTES: u64 = 16 << 10;

/// Streams for the block that starts at byte `position` of a frame whose blocks may use at
/// most `max_streams` streams: a power of two (or `max_streams`) in `1..=max_streams`, never
/// decreasing with `position`.
pub fn block_streams(max_streams: u32, position: u64) -> u32 {
    let doublings = (position / RAMP_BYTES).max(1).ilog2();
    let width = 1u64 << doublings.min(32);
    width.min(u64::from(max_streams.max(1))) as u32
}

/// Bytes from `position` to the next change of `block_streams` (`u64::MAX` once the width is
/// the most): the encoder ends a block there, so that each block has one width.
pub fn bytes_to_next_width(max_streams: u32, position: u64) -> u64 {
    let width = block_streams(max_streams, position);
    if width >= max_streams {
        return u64::MAX;
    }
    RAMP_BYTES * u64::from(width) * 2 - position
}

/// Streams and LSTM stride (bytes of each stream per LSTM step) for the block that starts at
/// byte `position` of a frame whose blocks use at most `most_streams` streams and a stride of
/// at most `most_stride`: the schedule's width (`block_streams`) up to `most_streams ×
/// most_stride` bytes a step, as streams up to `most_streams`, then as a stride growing with
/// it. So a young model gets its LSTM on every byte, and a wide block more streams before it
/// gets a longer stride; neither ever decreases with `position`.
pub fn block_width(most_streams: u32, most_stride: u32, position: u64) -> (u32, u32) {
    let most_streams = most_streams.max(1);
    let width = block_streams(most_streams.saturating_mul(most_stride.max(1)), position);
    let streams = width.min(most_streams);
    (streams, (width / streams).clamp(1, most_stride.max(1)))
}

/// How an encoder cuts a frame into blocks and chooses each block's streams and stride:
/// blocks of `block_bytes`, each in `block_width(most_streams, most_stride, position)`, or
/// in `most_streams` streams at a stride of `most_stride` for every block when `fixed`
/// (`--streams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCut {
    /// The most bytes a block holds (`2^block_log2` of the frame's model).
    pub block_bytes: u64,
    /// The most streams a block uses (the frame header's).
    pub most_streams: u32,
    /// The longest stride a block uses (the frame header's `lstm_stride`).
    pub most_stride: u32,
    /// Whether every block uses `most_streams` and `most_stride`, instead of following the
    /// schedule.
    pub fixed: bool,
}

impl BlockCut {
    /// Length of the block that starts at `position` of the frame when `available ≥ 1` bytes
    /// remain: a whole `block_bytes`, cut short where the schedule changes the width, so that
    /// each block has one stream count.
    pub fn block_len(&self, position: u64, available: u64) -> u64 {
        let len = self.block_bytes.min(available);
        match self.fixed {
            true => len,
            false => len.min(bytes_to_next_width(self.widest(), position)),
        }
    }

    /// Streams and stride for the block of `len ≥ 1` bytes that starts at `position`: never
    /// more streams than its bytes.
    pub fn width(&self, position: u64, len: usize) -> (u32, u32) {
        let (streams, stride) = match self.fixed {
            true => (self.most_streams, self.most_stride.max(1)),
            false => block_width(self.most_streams, self.most_stride, position),
        };
        (streams.min(u32::try_from(len).unwrap_or(u32::MAX)), stride)
    }

    /// The most bytes a step of the frame's blocks codes.
    fn widest(&self) -> u32 {
        self.most_streams
            .max(1)
            .saturating_mul(self.most_stride.max(1))
    }
}

/// Mean streams an LSTM step runs (the batch a GPU computes at once; at a stride of 1, the
/// bytes a decoder step codes) over a frame of `len` bytes whose blocks follow the schedule up
/// to `most_streams` streams and a stride of `most_stride` (`block_width`; `None`: a frame of
/// unknown length, taken as long enough to run at the full width): the LSTM's stream-steps
/// over its steps.
pub fn mean_streams_per_step(most_streams: u32, most_stride: u32, len: Option<u64>) -> f64 {
    let Some(len) = len else {
        return f64::from(most_streams.max(1));
    };
    let widest = most_streams.max(1).saturating_mul(most_stride.max(1));
    let (mut position, mut steps, mut stream_steps) = (0u64, 0u64, 0u64);
    while position < len {
        let (streams, stride) = block_width(most_streams, most_stride, position);
        let run = bytes_to_next_width(widest, position).min(len - position);
        let run_steps = run.div_ceil(u64::from(streams) * u64::from(stride));
        steps += run_steps;
        stream_steps += run_steps * u64::from(streams);
        position += run;
    }
    stream_steps as f64 / steps.max(1) as f64
}

/// Adam's learning rate (Q24) for an update of a block coded in `streams` streams, after
/// `position` bytes of the frame were coded (all streams together): the header's base rate
/// times the fourth root of `streams` (in Q8, rounded down), within
/// `1..=MAX_LEARNING_RATE_Q24`.
pub fn learning_rate_q24(params: &ModelParams, position: u64, streams: u32) -> u32 {
    let _ = position;
    let root4_q8 = (u64::from(streams.max(1)) << 32).isqrt().isqrt();
    let rate = (u64::from(params.learning_rate_q24) * root4_q8) >> 8;
    rate.clamp(1, u64::from(MAX_LEARNING_RATE_Q24)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_double_and_stop_at_the_most() {
        let k = 1u64 << 10;
        assert_eq!(block_streams(256, 0), 1);
        assert_eq!(block_streams(256, 32 * k - 1), 1);
        assert_eq!(block_streams(256, 32 * k), 2);
        assert_eq!(block_streams(256, 64 * k), 4);
        assert_eq!(block_streams(256, 4096 * k), 256);
        assert_eq!(block_streams(256, 1 << 40), 256);
        assert_eq!(block_streams(3, 1 << 40), 3);
        let mut last = 0;
        for position in (0..1u64 << 24).step_by(4096) {
            let s = block_streams(256, position);
            assert!(s >= last && (1..=256).contains(&s));
            last = s;
        }
    }

    #[test]
    fn the_width_grows_as_streams_then_as_a_stride() {
        let k = 1u64 << 10;
        assert_eq!(block_width(32, 8, 0), (1, 1));
        assert_eq!(block_width(32, 8, 512 * k - 1), (16, 1));
        assert_eq!(block_width(32, 8, 512 * k), (32, 1));
        assert_eq!(block_width(32, 8, 1024 * k), (32, 2));
        assert_eq!(block_width(32, 8, 4096 * k), (32, 8));
        assert_eq!(block_width(32, 8, 1 << 40), (32, 8));
        assert_eq!(block_width(256, 1, 1 << 40), (256, 1));
        let (mut streams, mut stride) = (0, 0);
        for position in (0..1u64 << 24).step_by(4096) {
            let (s, k) = block_width(32, 8, position);
            // The same bytes a step as the schedule of 256 streams, never narrowing.
            assert_eq!(s * k, block_streams(256, position));
            assert!(s >= streams && k >= stride);
            (streams, stride) = (s, k);
        }
    }

    #[test]
    fn blocks_end_where_the_width_changes() {
        for max in [1u32, 3, 16, 256] {
            let mut position = 0u64;
            while block_streams(max, position) < max {
                let width = block_streams(max, position);
                let len = bytes_to_next_width(max, position);
                assert!(len > 0 && len < u64::MAX);
                assert_eq!(block_streams(max, position + len - 1), width);
                assert!(block_streams(max, position + len) > width);
                position += len;
            }
            assert_eq!(bytes_to_next_width(max, position), u64::MAX);
        }
    }

    #[test]
    fn the_mean_width_follows_the_ramp() {
        let k = 1u64 << 10;
        assert_eq!(mean_streams_per_step(256, 1, Some(0)), 0.0);
        assert_eq!(mean_streams_per_step(256, 1, Some(32 * k)), 1.0);
        // 32 KiB in one stream, then 32 KiB in two: 64 KiB in 48 Ki steps.
        assert_eq!(mean_streams_per_step(256, 1, Some(64 * k)), 4.0 / 3.0);
        assert_eq!(mean_streams_per_step(256, 1, None), 256.0);
        let large = mean_streams_per_step(256, 1, Some(40_000_000));
        assert!((128.0..256.0).contains(&large), "{large}");
        assert_eq!(mean_streams_per_step(1, 1, Some(1 << 30)), 1.0);
        // The same ramp in 32 streams and then a stride: the same steps, narrower.
        let strided = mean_streams_per_step(32, 8, Some(40_000_000));
        assert!((16.0..32.0).contains(&strided), "{strided}");
        assert_eq!(
            mean_streams_per_step(32, 8, Some(512 * k)),
            mean_streams_per_step(256, 1, Some(512 * k))
        );
    }

    #[test]
    fn the_rate_grows_as_the_fourth_root_of_the_width() {
        let params = crate::model::presets::params_for(5, None);
        let base = params.learning_rate_q24;
        assert_eq!(learning_rate_q24(&params, 0, 1), base);
        assert_eq!(learning_rate_q24(&params, 0, 16), 2 * base);
        assert_eq!(learning_rate_q24(&params, 0, 256), 4 * base);
        let two = learning_rate_q24(&params, 0, 2);
        assert!((two as f64 / base as f64 - 2f64.powf(0.25)).abs() < 0.01);
        let mut big = params;
        big.learning_rate_q24 = MAX_LEARNING_RATE_Q24;
        assert_eq!(learning_rate_q24(&big, 0, 65_536), MAX_LEARNING_RATE_Q24);
    }
}
