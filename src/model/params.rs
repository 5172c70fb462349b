//! Hyper-parameters of one model: everything the decoder needs to rebuild the encoder's
//! training run bit for bit. Stored verbatim in every frame header.

/// Largest number of LSTM layers a frame may ask for.
pub const MAX_LAYERS: u8 = 4;
/// Largest number of cells per layer a frame may ask for.
pub const MAX_CELLS: u16 = 1024;
/// Cells per layer must be a multiple of this (the GPU kernels tile by it).
pub const CELL_MULTIPLE: u16 = 8;
/// Largest number of parallel streams a frame may ask for.
pub const MAX_STREAMS: u32 = 65_536;
/// Largest truncated back-propagation window, in steps.
pub const MAX_WINDOW: u16 = 64;
/// Largest learning rate, in Q24 (1.0 = 2^24).
pub const MAX_LEARNING_RATE_Q24: u32 = 1 << 22;
/// Adam's β2 is `1 - 2^-beta2_shift`; this is the accepted range of the shift.
pub const BETA2_SHIFT_RANGE: std::ops::RangeInclusive<u8> = 4..=20;

/// Largest `ModelParams::lstm_stride`.
pub const MAX_LSTM_STRIDE: u8 = 16;

/// Accepted range of `ModelParams::mix_log2`: the context-mixing stage's tables take between
/// 64 KiB and 1 GiB in all.
pub const MIX_LOG2_RANGE: std::ops::RangeInclusive<u8> = 16..=30;

/// Accepted range of `ModelParams::block_log2`: blocks hold between 64 KiB and 64 MiB, so a
/// decoder's block buffers stay bounded whatever the header says.
pub const BLOCK_LOG2_RANGE: std::ops::RangeInclusive<u8> = 16..=26;

/// The model's shape and training schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelParams {
    /// LSTM layers (1..=`MAX_LAYERS`).
    pub layers: u8,
    /// Cells per layer (`CELL_MULTIPLE`..=`MAX_CELLS`, a multiple of `CELL_MULTIPLE`).
    pub cells: u16,
    /// Most parallel streams any block of the frame uses, sharing the weights
    /// (1..=`MAX_STREAMS`): the LSTM state and the mixing stage are sized for this many.
    pub streams: u32,
    /// Steps per truncated back-propagation window (1..=`MAX_WINDOW`).
    pub window: u16,
    /// Adam learning rate in Q24 (1..=`MAX_LEARNING_RATE_Q24`).
    pub learning_rate_q24: u32,
    /// Adam's β2 = 1 - 2^-beta2_shift (within `BETA2_SHIFT_RANGE`).
    pub beta2_shift: u8,
    /// Seed of the integer PRNG that draws the initial weights.
    pub seed: u64,
    /// The context-mixing stage's tables take `2^mix_log2` bytes in all, shared by the streams
    /// (within `MIX_LOG2_RANGE`; see `mix::state_bytes`).
    pub mix_log2: u8,
    /// Each block holds at most `2^block_log2` bytes of original data (within
    /// `BLOCK_LOG2_RANGE`): the unit the input is read, coded, checked and written in.
    pub block_log2: u8,
    /// Bytes of each stream per LSTM step (1..=`MAX_LSTM_STRIDE`): the LSTM predicts the first
    /// byte of each run of `lstm_stride` bytes of a stream's segment, from the byte before it,
    /// and the mixing stage codes the run's other bytes without it (`codec::block`).
    pub lstm_stride: u8,
}

impl ModelParams {
    /// Checks every field against its limit; `Err` names the first field out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_LAYERS).contains(&self.layers) {
            return Err(format!("layers {} not in 1..={MAX_LAYERS}", self.layers));
        }
        if !(CELL_MULTIPLE..=MAX_CELLS).contains(&self.cells)
            || !self.cells.is_multiple_of(CELL_MULTIPLE)
        {
            return Err(format!(
                "cells {} not a multiple of {CELL_MULTIPLE} in {CELL_MULTIPLE}..={MAX_CELLS}",
                self.cells
            ));
        }
        if !(1..=MAX_STREAMS).contains(&self.streams) {
            return Err(format!("streams {} not in 1..={MAX_STREAMS}", self.streams));
        }
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return Err(format!("window {} not in 1..={MAX_WINDOW}", self.window));
        }
        if !(1..=MAX_LEARNING_RATE_Q24).contains(&self.learning_rate_q24) {
            return Err(format!(
                "learning rate {} (Q24) not in 1..={MAX_LEARNING_RATE_Q24}",
                self.learning_rate_q24
            ));
        }
        if !BETA2_SHIFT_RANGE.contains(&self.beta2_shift) {
            return Err(format!(
                "beta2 shift {} not in {BETA2_SHIFT_RANGE:?}",
                self.beta2_shift
            ));
        }
        if !MIX_LOG2_RANGE.contains(&self.mix_log2) {
            return Err(format!(
                "mixing tables 2^{} bytes not in 2^{MIX_LOG2_RANGE:?}",
                self.mix_log2
            ));
        }
        if !BLOCK_LOG2_RANGE.contains(&self.block_log2) {
            return Err(format!(
                "block size 2^{} bytes not in 2^{BLOCK_LOG2_RANGE:?}",
                self.block_log2
            ));
        }
        if !(1..=MAX_LSTM_STRIDE).contains(&self.lstm_stride) {
            return Err(format!(
                "LSTM stride {} not in 1..={MAX_LSTM_STRIDE}",
                self.lstm_stride
            ));
        }
        Ok(())
    }
}
