//! Presets `-1` … `-9`: model size and training schedule, from fast to strong.

use crate::model::params::{BLOCK_LOG2_RANGE, MAX_LSTM_STRIDE, MIX_LOG2_RANGE, ModelParams};
use crate::model::schedule;

/// Lowest preset level.
pub const MIN_LEVEL: u8 = 1;
/// Highest preset level.
pub const MAX_LEVEL: u8 = 9;
/// The level used when none is given.
pub const DEFAULT_LEVEL: u8 = 5;

/// One preset's choices.
#[derive(Clone, Copy, Debug)]
struct Preset {
    layers: u8,
    cells: u16,
    window: u16,
    learning_rate_q24: u32,
    /// Most streams the preset uses, on large inputs.
    max_streams: u32,
    /// log2 of the most bytes the context-mixing stage's tables take, on large inputs.
    max_mix_log2: u8,
    /// Bytes of each stream per LSTM step (`ModelParams::lstm_stride`).
    lstm_stride: u8,
}

const fn lr(per_million: u32) -> u32 {
    ((per_million as u64 * (1 << 24)) / 1_000_000) as u32
}

/// Levels 1 to 9: layers, cells, window, learning rate (millionths), most streams, log2 of the
/// most bytes of mixing tables. The learning rates are half of those the LSTM alone did best
/// with: beside the mixing stage a steadier LSTM helps more (see `schedule`).
const PRESETS: [Preset; 9] = [
    preset(1, 32, 16, 3000, 32, 24, 8),
    preset(1, 64, 16, 2500, 32, 25, 8),
    preset(1, 96, 20, 2000, 256, 26, 1),
    preset(2, 64, 20, 2000, 256, 27, 1),
    preset(2, 96, 20, 2000, 256, 28, 1),
    preset(2, 128, 20, 2000, 256, 28, 1),
    preset(3, 128, 20, 2000, 256, 28, 1),
    preset(3, 256, 20, 1500, 256, 28, 1),
    preset(4, 352, 20, 1500, 256, 28, 1),
];

/// Mixing-table bytes per input byte, as a power of two: beyond this, a larger table would
/// mostly stay empty; below it, high-order contexts start to evict each other.
const MIX_BYTES_PER_INPUT_LOG2: u32 = 8;

/// A preset from its table row.
const fn preset(
    layers: u8,
    cells: u16,
    window: u16,
    lr_per_million: u32,
    max_streams: u32,
    max_mix_log2: u8,
    lstm_stride: u8,
) -> Preset {
    Preset {
        layers,
        cells,
        window,
        learning_rate_q24: lr(lr_per_million),
        max_streams,
        max_mix_log2,
        lstm_stride,
    }
}

/// Adam's β2 = 1 - 2^-13 ≈ 0.99988 for every preset.
const BETA2_SHIFT: u8 = 13;
/// Seed of the initial weights for every preset.
const SEED: u64 = 0x6E6E_6770_7531;

/// Blocks of 128 KiB. Their records, coder flushes and last partial windows cost little (28
/// bytes a block), and short blocks keep the streams' segments close together, which the
/// shared mixing stage learns from: the first 8 MB of a documentation text at `-2` (up to 256
/// streams) took 1,644,467 bytes in blocks of 64 KiB, 1,634,449 in 128 KiB, 1,639,104 in
/// 256 KiB, 1,676,325 in 1 MiB and 1,702,442 in 4 MiB.
/// A shorter frame whose length is known gets blocks just large enough to hold it (at least
/// 64 KiB), so that a decoder's buffers follow the data.
const BLOCK_LOG2: u8 = 17;

/// The model for preset `level` (clamped to `MIN_LEVEL..=MAX_LEVEL`) on a frame of `frame_len`
/// bytes, or of unknown length (`None`: standard input), which gets the preset's largest
/// tables and widest schedule. The frame's streams are the most its blocks will use
/// (`schedule::block_streams` at its last block). The result always passes
/// `ModelParams::validate`.
pub fn params_for(level: u8, frame_len: Option<u64>) -> ModelParams {
    params_with_stride(level, frame_len, None)
}

/// `params_for`, with the schedule's longest LSTM stride `most_stride` instead of the
/// preset's (1..=`MAX_LSTM_STRIDE`) if given: the header's `lstm_stride` is then the longest
/// the frame's blocks reach.
pub fn params_with_stride(
    level: u8,
    frame_len: Option<u64>,
    most_stride: Option<u8>,
) -> ModelParams {
    let p = PRESETS[(level.clamp(MIN_LEVEL, MAX_LEVEL) - 1) as usize];
    let most_stride = u32::from(
        most_stride
            .unwrap_or(p.lstm_stride)
            .clamp(1, MAX_LSTM_STRIDE),
    );
    let (streams, lstm_stride) = match frame_len {
        Some(len) => schedule::block_width(p.max_streams, most_stride, len.saturating_sub(1)),
        None => (p.max_streams, most_stride),
    };
    let input_len = frame_len.unwrap_or(u64::MAX);
    let needed = input_len
        .max(1)
        .checked_next_power_of_two()
        .map_or(64, u64::ilog2)
        + MIX_BYTES_PER_INPUT_LOG2;
    let mix_log2 = needed.clamp(
        u32::from(*MIX_LOG2_RANGE.start()),
        u32::from(p.max_mix_log2),
    ) as u8;
    ModelParams {
        layers: p.layers,
        cells: p.cells,
        streams,
        window: p.window,
        learning_rate_q24: p.learning_rate_q24,
        beta2_shift: BETA2_SHIFT,
        seed: SEED,
        mix_log2,
        block_log2: match frame_len {
            Some(len) => (len.max(1).next_power_of_two().ilog2() as u8)
                .clamp(*BLOCK_LOG2_RANGE.start(), BLOCK_LOG2),
            None => BLOCK_LOG2,
        },
        lstm_stride: lstm_stride as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_for_every_size() {
        for level in MIN_LEVEL..=MAX_LEVEL {
            for len in [
                Some(0),
                Some(1),
                Some(1 << 20),
                Some(1 << 30),
                Some(1 << 40),
                None,
            ] {
                params_for(level, len).validate().unwrap();
            }
        }
    }
}
