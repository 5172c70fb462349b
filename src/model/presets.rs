//! Presets `-1` … `-9`: model size and training schedule, from fast to strong.

use crate::model::params::ModelParams;

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
    /// Each stream gets at least this many bytes: small inputs learn better in few streams.
    min_stream_bytes: u64,
}

const fn lr(per_million: u32) -> u32 {
    ((per_million as u64 * (1 << 24)) / 1_000_000) as u32
}

const PRESETS: [Preset; 9] = [
    Preset {
        layers: 1,
        cells: 32,
        window: 16,
        learning_rate_q24: lr(6000),
        max_streams: 4,
        min_stream_bytes: 1 << 18,
    },
    Preset {
        layers: 1,
        cells: 64,
        window: 16,
        learning_rate_q24: lr(5000),
        max_streams: 4,
        min_stream_bytes: 1 << 18,
    },
    Preset {
        layers: 1,
        cells: 96,
        window: 20,
        learning_rate_q24: lr(4000),
        max_streams: 4,
        min_stream_bytes: 1 << 19,
    },
    Preset {
        layers: 2,
        cells: 64,
        window: 20,
        learning_rate_q24: lr(4000),
        max_streams: 4,
        min_stream_bytes: 1 << 19,
    },
    Preset {
        layers: 2,
        cells: 96,
        window: 20,
        learning_rate_q24: lr(4000),
        max_streams: 8,
        min_stream_bytes: 1 << 19,
    },
    Preset {
        layers: 2,
        cells: 128,
        window: 20,
        learning_rate_q24: lr(4000),
        max_streams: 16,
        min_stream_bytes: 1 << 20,
    },
    Preset {
        layers: 3,
        cells: 128,
        window: 20,
        learning_rate_q24: lr(4000),
        max_streams: 32,
        min_stream_bytes: 1 << 20,
    },
    Preset {
        layers: 3,
        cells: 256,
        window: 20,
        learning_rate_q24: lr(3000),
        max_streams: 64,
        min_stream_bytes: 1 << 20,
    },
    Preset {
        layers: 4,
        cells: 352,
        window: 20,
        learning_rate_q24: lr(3000),
        max_streams: 128,
        min_stream_bytes: 1 << 20,
    },
];

/// Adam's β2 = 1 - 2^-13 ≈ 0.99988 for every preset.
const BETA2_SHIFT: u8 = 13;
/// Seed of the initial weights for every preset.
const SEED: u64 = 0x6E6E_6770_7531;

/// The model for preset `level` (clamped to `MIN_LEVEL..=MAX_LEVEL`) on an input of
/// `input_len` bytes. The result always passes `ModelParams::validate`.
pub fn params_for(level: u8, input_len: u64) -> ModelParams {
    let p = PRESETS[(level.clamp(MIN_LEVEL, MAX_LEVEL) - 1) as usize];
    let streams = (input_len / p.min_stream_bytes).clamp(1, p.max_streams as u64) as u32;
    ModelParams {
        layers: p.layers,
        cells: p.cells,
        streams,
        window: p.window,
        learning_rate_q24: p.learning_rate_q24,
        beta2_shift: BETA2_SHIFT,
        seed: SEED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_for_every_size() {
        for level in MIN_LEVEL..=MAX_LEVEL {
            for len in [0, 1, 1 << 20, 1 << 30, 1 << 40] {
                params_for(level, len).validate().unwrap();
            }
        }
    }
}
