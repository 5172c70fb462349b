//! The memory a model asks for: what a decoder (or encoder) must hold to run the model a
//! header describes, computed from the header alone, before anything is allocated.
//!
//! The decoder's memory limit (`Options::memory_limit`, `--memory-limit`) is checked against
//! [`model_state`], so a small hostile file cannot make the process allocate gigabytes (or
//! abort on a failed allocation). The figure follows the CPU twin's buffers with the GPU
//! backend's 32-bit element widths where those are wider, so it bounds what either backend
//! holds for the model. It does not count the decoded data itself, which the decoder
//! reserves fallibly.

use crate::fixed::SYMBOLS;
use crate::model::layout::{GATES, Shape, TensorRole};
use crate::model::params::ModelParams;

/// The default memory limit: 1 GiB. Every preset at its largest stream count needs well under
/// it (level 9 with 256 streams needs about 716 MiB, 248 MiB of it the mixing stage's tables;
/// see the test below); archives written
/// with many more `--streams` may need `--memory-limit` to decode.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

/// Bytes of model state, part by part. Each part is a saturating sum, so even the largest
/// header's figure is exact or `u64::MAX`, never wrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelMemory {
    /// Parameters: Q24 master values of every tensor, and the Q12 forward copy of matrices.
    pub weights: u64,
    /// Adam's second moment, one `u64` per parameter.
    pub optimizer: u64,
    /// Per stream: every layer's hidden and cell state with their carried gradients, and the
    /// per-step scratch (pre-activations, logits, input gradients).
    pub lstm_state: u64,
    /// Per stream-step of a window: what the forward pass records for the backward pass and
    /// the gradients the backward pass computes.
    pub window: u64,
    /// The context-mixing stage's tables, shared by all streams, and its per-stream state
    /// (`mix::state_bytes`); at an LSTM stride above 1, a flat table per stream for the bytes
    /// the LSTM does not predict.
    pub mixing: u64,
    /// The block being coded, its payload, and the coder's output: three block lengths.
    pub blocks: u64,
}

impl ModelMemory {
    /// The named parts, in a fixed order, for listings and messages.
    pub fn parts(&self) -> [(&'static str, u64); 6] {
        [
            ("weights", self.weights),
            ("optimizer", self.optimizer),
            ("lstm_state", self.lstm_state),
            ("window", self.window),
            ("mixing", self.mixing),
            ("blocks", self.blocks),
        ]
    }

    /// The sum of all parts (saturating).
    pub fn total(&self) -> u64 {
        self.parts()
            .iter()
            .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes))
    }
}

/// Saturating product of a few factors.
fn product(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |p, &f| p.saturating_mul(f))
}

/// The model state a decoder needs for a model of `params` (which may be any values a header
/// can hold: nothing here allocates or overflows). Encoder and decoder hold the same state.
pub fn model_state(params: &ModelParams) -> ModelMemory {
    let shape = Shape::new(params);
    let (layers, cells) = (shape.layers as u64, shape.cells as u64);
    let (streams, window) = (shape.streams as u64, shape.window as u64);
    let gate_rows = GATES as u64 * cells;
    let symbols = SYMBOLS as u64;

    let (mut parameters, mut matrix_values) = (0u64, 0u64);
    for spec in shape.tensors() {
        let len = product(&[spec.rows as u64, spec.cols as u64]);
        parameters = parameters.saturating_add(len);
        if spec.role == TensorRole::Matrix {
            matrix_values = matrix_values.saturating_add(len);
        }
    }
    // i32 master values, i16 forward copies (the GPU widens those to 32 bits; the CPU twin's
    // vector paths keep a second, row-paired i16 copy of each matrix, which fits the same 4
    // bytes).
    let weights = product(&[4, parameters]).saturating_add(product(&[4, matrix_values]));
    let optimizer = product(&[8, parameters]);

    // Per stream and layer: h, c and the carried gradients dh, dc (32 bits each); per stream:
    // gate pre-activations, logits, the head's and the widest layer's input gradients.
    let per_stream = product(&[16, layers, cells]).saturating_add(product(&[
        4,
        gate_rows + symbols + layers * cells + 2 * cells,
    ]));
    let lstm_state = product(&[streams, per_stream]);

    // Per stream-step and layer: matrix input, gates, previous cell state, tanh of the cell
    // state, and the gate gradients twice (the CPU twin's per-thread copy and the window's).
    let per_layer_step: u64 = (0..shape.layers)
        .map(|l| 4 * shape.layer_inputs(l) as u64 + 4 * (3 * gate_rows + 2 * cells))
        .sum();
    // Per stream-step: the head's input, frequency table, probabilities and logit gradients
    // (twice, as above), the input symbol and the target.
    let per_step = per_layer_step.saturating_add(4 * layers * cells + 4 * 4 * symbols + 8);
    let window = product(&[streams, window, per_step]);

    ModelMemory {
        weights,
        optimizer,
        lstm_state,
        window,
        mixing: crate::mix::state_bytes(params.mix_log2, params.streams).saturating_add(
            match params.lstm_stride {
                0 | 1 => 0,
                _ => product(&[streams, 4 * symbols]),
            },
        ),
        blocks: 3u64 << params.block_log2.min(40),
    }
}

/// `bytes` for people: "1.5 MiB (1572864 bytes)", exact below 1 KiB.
pub fn describe_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{MAX_CELLS, MAX_LAYERS, MAX_STREAMS, MAX_WINDOW};
    use crate::model::presets::{self, MAX_LEVEL, MIN_LEVEL};

    #[test]
    fn every_preset_fits_the_default_limit_at_its_largest_stream_count() {
        for level in MIN_LEVEL..=MAX_LEVEL {
            // An input of unknown length gets the preset's most streams and largest tables.
            let params = presets::params_for(level, None);
            let need = model_state(&params).total();
            assert!(
                need < DEFAULT_MEMORY_LIMIT / 4 * 3,
                "level {level} ({} streams) needs {}",
                params.streams,
                describe_bytes(need)
            );
        }
    }

    #[test]
    fn the_largest_header_is_counted_without_overflow() {
        let params = ModelParams {
            layers: MAX_LAYERS,
            cells: MAX_CELLS,
            streams: MAX_STREAMS,
            window: MAX_WINDOW,
            learning_rate_q24: 1,
            beta2_shift: 13,
            seed: 0,
            mix_log2: 30,
            block_log2: 26,
            lstm_stride: 1,
        };
        let need = model_state(&params);
        // About 0.6 TB of window buffers: far above any limit, and no wrap-around.
        assert!(need.window > 500 << 30, "{need:?}");
        assert!(need.total() >= need.window);
    }

    #[test]
    fn the_count_grows_with_every_field_that_sizes_a_buffer() {
        let base = presets::params_for(1, Some(0));
        let total = |edit: fn(&mut ModelParams)| {
            let mut p = base;
            edit(&mut p);
            model_state(&p).total()
        };
        let start = model_state(&base).total();
        assert!(total(|p| p.layers += 1) > start);
        assert!(total(|p| p.cells += 8) > start);
        assert!(total(|p| p.streams += 1) > start);
        assert!(total(|p| p.window += 1) > start);
        assert!(total(|p| p.mix_log2 += 1) > start);
        // A flat table per stream for the bytes the LSTM does not predict.
        assert_eq!(total(|p| p.lstm_stride = 2), start + 1024);
        assert_eq!(total(|p| p.seed ^= 1), start);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(describe_bytes(100), "100 bytes");
        assert_eq!(describe_bytes(1 << 30), "1.0 GiB (1073741824 bytes)");
        assert_eq!(describe_bytes(3 << 19), "1.5 MiB (1572864 bytes)");
    }
}
