//! Compression and decompression of byte streams: the input is read block by block, each
//! block coded (or decoded) by its frame's model and written as soon as it is done, so memory
//! does not grow with the input. Frames are independent; with `Options::frame_size` a long
//! input becomes several, which `Options::threads` workers compress, and decompress, at once
//! (holding those frames in memory, within `Options::memory_limit`).
//!
//! - `block`: one block through the model (the step schedule encoder and decoder share);
//! - `frame`: one frame's model across its blocks, encoder and decoder;
//! - `frames`: the input cut into frames, one after another or on several workers;
//! - `unframes`: an archive's frames decoded, one after another or on several workers.

mod block;
mod frame;
mod frames;
mod unframes;

use crate::backend::BackendChoice;
use crate::error::Error;
use crate::model::memory::DEFAULT_MEMORY_LIMIT;
use crate::model::presets;

pub use frame::check_memory;
pub use frames::compress_stream;
pub use unframes::decompress_stream;

/// How to compress or decompress.
#[derive(Clone, Debug)]
pub struct Options {
    /// Preset level, `presets::MIN_LEVEL..=presets::MAX_LEVEL` (compression only).
    pub level: u8,
    /// Which backend runs the model.
    pub backend: BackendChoice,
    /// Substring of the GPU adapter's name to pick, if any.
    pub adapter: Option<String>,
    /// Parallel streams for every block, instead of the schedule's (compression only;
    /// clamped to `1..=MAX_STREAMS` and to each block's length). More streams run faster on a
    /// GPU and compress less well.
    pub streams: Option<u32>,
    /// Bytes of each stream per LSTM step (`ModelParams::lstm_stride`; compression only):
    /// with `streams`, every block's (default 1); otherwise the most the schedule reaches
    /// (default the preset's).
    pub stride: Option<u8>,
    /// Most bytes of model state (`model::memory::model_state`) a run may allocate; a header
    /// or preset asking for more is refused with `Error::MemoryLimit` before any allocation.
    pub memory_limit: u64,
    /// Cut the input into independent frames of this many bytes (the last one shorter);
    /// `None`: one frame per input. Every frame starts from the initial model, so frames cost
    /// ratio and buy parallelism (compression only).
    pub frame_size: Option<u64>,
    /// Most frames compressed or decompressed at once (each on its own model, sharing rayon's
    /// threads); 0: compress with one per thread of rayon's pool, decompress block by block.
    /// Neither the archive nor the decompressed data depends on it. Decompressing with 0 or 1
    /// holds no frame in memory and writes each block as soon as it is checked; with more,
    /// frames are held whole and written at their end (see `unframes`), so only a caller who
    /// asks for them gets that memory and that delay.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            level: presets::DEFAULT_LEVEL,
            backend: BackendChoice::Auto,
            adapter: None,
            streams: None,
            stride: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            frame_size: None,
            threads: 0,
        }
    }
}

/// The result of an in-memory run: the output bytes and which backend produced them.
pub struct Outcome {
    /// Compressed archive or decompressed data.
    pub bytes: Vec<u8>,
    /// `Backend::describe` of the backend that ran the first frame.
    pub backend: String,
}

/// What a streaming run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes of original data read (compression) or written (decompression).
    pub original_bytes: u64,
    /// Bytes of archive written (compression) or read (decompression).
    pub archive_bytes: u64,
    /// `Backend::describe` of the backend that ran the first frame.
    pub backend: String,
}

/// Receives the number of original bytes coded so far, now and then.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Compresses `data` into a complete archive.
pub fn compress(data: &[u8], options: &Options) -> Result<Outcome, Error> {
    compress_with_progress(data, options, &mut |_| {})
}

/// Decompresses a complete archive (one frame or several), checking every block and frame.
pub fn decompress(archive: &[u8], options: &Options) -> Result<Outcome, Error> {
    decompress_with_progress(archive, options, &mut |_| {})
}

/// `compress`, reporting the number of input bytes coded so far to `progress` now and then.
pub fn compress_with_progress(
    data: &[u8],
    options: &Options,
    progress: Progress,
) -> Result<Outcome, Error> {
    let mut bytes = Vec::new();
    let report = compress_stream(
        &mut &data[..],
        &mut bytes,
        Some(data.len() as u64),
        options,
        progress,
    )?;
    Ok(Outcome {
        bytes,
        backend: report.backend,
    })
}

/// `decompress`, reporting the number of bytes decoded so far to `progress` now and then.
pub fn decompress_with_progress(
    archive: &[u8],
    options: &Options,
    progress: Progress,
) -> Result<Outcome, Error> {
    let mut bytes = Vec::new();
    let report = decompress_stream(&mut &archive[..], &mut bytes, options, progress)?;
    Ok(Outcome {
        bytes,
        backend: report.backend,
    })
}
