//! Compression and decompression of whole inputs: splits the input into streams, runs the
//! LSTM step by step on a backend, and codes each byte through its stream's mixing stage,
//! which blends the LSTM's frequency table with context and match models bit by bit.
//! The encoder and the decoder share one schedule (`run_schedule`), which is what keeps their
//! models in lockstep.

use std::io::{Read, Write};

use crate::backend::{self, Backend, BackendChoice};
use crate::coder::{BinaryDecoder, BinaryEncoder, CoderError};
use crate::error::Error;
use crate::fixed::SYMBOLS;
use crate::format::{self, FrameHeader};
use crate::mix::{self, StreamMixer};
use crate::model::memory::{self, DEFAULT_MEMORY_LIMIT};
use crate::model::params::{MAX_STREAMS, ModelParams};
use crate::model::{presets, schedule};

/// How to compress or decompress.
#[derive(Clone, Debug)]
pub struct Options {
    /// Preset level, `presets::MIN_LEVEL..=presets::MAX_LEVEL` (compression only).
    pub level: u8,
    /// Which backend runs the model.
    pub backend: BackendChoice,
    /// Substring of the GPU adapter's name to pick, if any.
    pub adapter: Option<String>,
    /// Parallel streams, overriding the preset's choice for the input size (compression
    /// only; clamped to `1..=MAX_STREAMS` and to the input's length). More streams run faster
    /// on a GPU and compress less well.
    pub streams: Option<u32>,
    /// Most bytes of model state (`model::memory::model_state`) a run may allocate; a header
    /// or preset asking for more is refused with `Error::MemoryLimit` before any allocation.
    pub memory_limit: u64,
    /// Cut the input into independent frames of this many bytes (the last one shorter);
    /// `None`: one frame per input. Every frame starts from the initial model, so frames cost
    /// ratio and buy parallelism and random access (compression only).
    pub frame_size: Option<u64>,
    /// Most threads to use in all (frames coded at once and the CPU twin's workers); 0: one
    /// per core. The output does not depend on it.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            level: presets::DEFAULT_LEVEL,
            backend: BackendChoice::Auto,
            adapter: None,
            streams: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            frame_size: None,
            threads: 0,
        }
    }
}

/// What a streaming run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Bytes of original data read (compression) or written (decompression).
    pub original_bytes: u64,
    /// Bytes of archive written (compression) or read (decompression).
    pub archive_bytes: u64,
    /// `Backend::describe` of the backend that ran the first frame.
    pub backend: String,
}

/// Compresses everything `input` holds into an archive written to `output`. `size_hint` is
/// the input's length when known in advance (a file's), which lets a small input get a
/// smaller model; the archive depends on it, never on how the input arrives otherwise.
pub fn compress_stream(
    input: &mut dyn Read,
    output: &mut dyn Write,
    size_hint: Option<u64>,
    options: &Options,
    progress: Progress,
) -> Result<Report, Error> {
    let _ = size_hint;
    let mut data = Vec::new();
    input.read_to_end(&mut data).map_err(Error::Read)?;
    let outcome = compress_with_progress(&data, options, progress)?;
    output.write_all(&outcome.bytes).map_err(Error::Write)?;
    output.flush().map_err(Error::Write)?;
    Ok(Report {
        original_bytes: data.len() as u64,
        archive_bytes: outcome.bytes.len() as u64,
        backend: outcome.backend,
    })
}

/// Decompresses the archive `input` holds (one frame or several concatenated) to `output`.
pub fn decompress_stream(
    input: &mut dyn Read,
    output: &mut dyn Write,
    options: &Options,
    progress: Progress,
) -> Result<Report, Error> {
    let mut archive = Vec::new();
    input.read_to_end(&mut archive).map_err(Error::Read)?;
    let outcome = decompress_with_progress(&archive, options, progress)?;
    output.write_all(&outcome.bytes).map_err(Error::Write)?;
    output.flush().map_err(Error::Write)?;
    Ok(Report {
        original_bytes: outcome.bytes.len() as u64,
        archive_bytes: archive.len() as u64,
        backend: outcome.backend,
    })
}

/// The result of a run: the output bytes and which backend produced them.
pub struct Outcome {
    /// Compressed archive or decompressed data.
    pub bytes: Vec<u8>,
    /// `Backend::describe` of the backend that ran.
    pub backend: String,
}

/// How an input of `len` bytes is cut into `streams` contiguous segments of `segment` bytes
/// (the last ones shorter or empty); step `t` codes byte `t` of every segment that has one.
struct Segments {
    len: usize,
    streams: usize,
    segment: usize,
}

impl Segments {
    fn new(len: usize, streams: usize) -> Segments {
        Segments {
            len,
            streams,
            segment: len.div_ceil(streams),
        }
    }

    /// Streams that have a byte at step `t`: always a prefix `0..n`, shrinking with `t`.
    fn active(&self, t: usize) -> usize {
        (self.len - t).div_ceil(self.segment).min(self.streams)
    }
}

/// One stream's table out of a backend's output.
fn as_table(table: &[u32]) -> Result<&[u32; SYMBOLS], Error> {
    table.try_into().map_err(|_| Error::InvalidTable)
}

/// One fresh mixing stage per stream, sharing the table budget the header sets.
fn stream_mixers(params: &ModelParams) -> Result<Vec<StreamMixer>, Error> {
    let streams = params.streams as usize;
    let budget = mix::stream_budget(params.mix_log2, params.streams);
    let mut mixers = Vec::new();
    mixers
        .try_reserve_exact(streams)
        .map_err(|_| Error::OutOfMemory(mix::state_bytes(params.mix_log2, params.streams)))?;
    mixers.extend((0..streams).map(|_| StreamMixer::new(budget)));
    Ok(mixers)
}

/// Receives the number of bytes coded so far, now and then.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Bytes between two progress reports.
const PROGRESS_INTERVAL: u64 = 1 << 14;

/// Runs the model over all steps. `code(stream, position, freqs)` codes (or decodes) the byte
/// at `position` of the input, which belongs to `stream`, given the LSTM's table `freqs`, and
/// returns it. `known` is the input when
/// encoding: the backend then runs a whole window of steps at once, since their input
/// symbols are known in advance; the decoder (`None`) runs one step at a time.
fn run_schedule(
    backend: &mut dyn Backend,
    params: &ModelParams,
    len: usize,
    known: Option<&[u8]>,
    progress: Progress,
    mut code: impl FnMut(usize, usize, &[u32; SYMBOLS]) -> Result<u8, Error>,
) -> Result<(), Error> {
    if len == 0 {
        return Ok(());
    }
    let seg = Segments::new(len, params.streams as usize);
    let window = params.window as usize;
    // The previous symbol of each stream, step by step, for the steps being run.
    let mut inputs: Vec<Vec<u8>> = vec![vec![0u8; seg.streams]];
    let mut targets = Vec::with_capacity(window * seg.streams);
    let mut done = 0u64;
    let mut t = 0;
    while t < seg.segment {
        let window_end = ((t / window + 1) * window).min(seg.segment);
        let batch = if known.is_some() { window_end - t } else { 1 };
        if let Some(data) = known {
            inputs.resize_with(batch, Vec::new);
            for (u, step) in inputs.iter_mut().enumerate() {
                step.clear();
                step.extend((0..seg.active(t + u)).map(|s| match t + u {
                    0 => 0,
                    tu => data[s * seg.segment + tu - 1],
                }));
            }
        }
        let steps: Vec<&[u8]> = (0..batch)
            .map(|u| &inputs[u][..seg.active(t + u)])
            .collect();
        let freqs = backend.forward(&steps)?;
        let before = done;
        let mut tables = freqs.chunks_exact(SYMBOLS);
        for u in t..t + batch {
            for s in 0..seg.active(u) {
                let table = as_table(tables.next().ok_or(Error::InvalidTable)?)?;
                let symbol = code(s, s * seg.segment + u, table)?;
                targets.push(symbol);
                if known.is_none() {
                    inputs[0][s] = symbol;
                }
                done += 1;
            }
        }
        t += batch;
        if done / PROGRESS_INTERVAL != before / PROGRESS_INTERVAL {
            progress(done);
        }
        if t % window == 0 && t < seg.segment {
            backend.train(&targets, schedule::learning_rate_q24(params, done))?;
            targets.clear();
        }
    }
    progress(len as u64);
    Ok(())
}

/// `streams` capped at the input's length: streams past it would be empty, and the format
/// does not allow them. Computed in `u64`, since a length of k·2^32 bytes must not wrap.
fn streams_for_len(streams: u32, len: usize) -> u32 {
    let cap = u32::try_from((len as u64).max(1)).unwrap_or(u32::MAX);
    streams.min(cap)
}

/// Refuses a model whose state exceeds `options.memory_limit`, before anything is allocated.
fn check_memory(params: &ModelParams, options: &Options) -> Result<(), Error> {
    let needed = memory::model_state(params).total();
    if needed > options.memory_limit {
        return Err(Error::MemoryLimit {
            needed,
            limit: options.memory_limit,
        });
    }
    Ok(())
}

/// Compresses `data` into a complete archive.
pub fn compress(data: &[u8], options: &Options) -> Result<Outcome, Error> {
    compress_with_progress(data, options, &mut |_| {})
}

/// Decompresses a complete archive, checking its header, payload and checksum.
pub fn decompress(archive: &[u8], options: &Options) -> Result<Outcome, Error> {
    decompress_with_progress(archive, options, &mut |_| {})
}

/// `compress`, reporting the number of input bytes coded so far to `progress` now and then.
pub fn compress_with_progress(
    data: &[u8],
    options: &Options,
    progress: Progress,
) -> Result<Outcome, Error> {
    if data.len() as u64 > format::MAX_ORIGINAL_LEN {
        return Err(Error::InputTooLarge(data.len() as u64));
    }
    let level = options.level.clamp(presets::MIN_LEVEL, presets::MAX_LEVEL);
    let mut params = presets::params_for(level, data.len() as u64);
    if let Some(streams) = options.streams {
        params.streams = streams.clamp(1, MAX_STREAMS);
    }
    params.streams = streams_for_len(params.streams, data.len());
    check_memory(&params, options)?;
    let mut backend = backend::open(options.backend, options.adapter.as_deref(), &params)?;
    let mut mixers = stream_mixers(&params)?;
    let mut encoder = BinaryEncoder::new();
    run_schedule(
        backend.as_mut(),
        &params,
        data.len(),
        Some(data),
        progress,
        |stream, pos, table| {
            mixers[stream]
                .code_byte(table, data[pos], &mut encoder)
                .map_err(|_| Error::InvalidTable)
        },
    )?;
    let payload = encoder.finish();
    let header = FrameHeader {
        preset: level,
        params,
        original_len: data.len() as u64,
        payload_len: payload.len() as u64,
    };
    Ok(Outcome {
        bytes: format::write_frame(&header, &payload, format::content_hash(data)),
        backend: backend.describe(),
    })
}

/// `decompress`, reporting the number of bytes decoded so far to `progress` now and then.
pub fn decompress_with_progress(
    archive: &[u8],
    options: &Options,
    progress: Progress,
) -> Result<Outcome, Error> {
    let frame = format::parse_frame(archive)?;
    let params = frame.header.params;
    check_memory(&params, options)?;
    // A length that does not fit in usize (on a 32-bit target) cannot be held either.
    let len = usize::try_from(frame.header.original_len)
        .map_err(|_| Error::OutOfMemory(frame.header.original_len))?;
    let mut backend = backend::open(options.backend, options.adapter.as_deref(), &params)?;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(frame.header.original_len))?;
    out.resize(len, 0);
    let mut mixers = stream_mixers(&params)?;
    let mut decoder = BinaryDecoder::new(frame.payload).map_err(|_| Error::CorruptPayload)?;
    run_schedule(
        backend.as_mut(),
        &params,
        len,
        None,
        progress,
        |stream, pos, table| {
            let symbol = mixers[stream]
                .code_byte(table, 0, &mut decoder)
                .map_err(|e| match e {
                    CoderError::InvalidProbability => Error::InvalidTable,
                    _ => Error::CorruptPayload,
                })?;
            out[pos] = symbol;
            Ok(symbol)
        },
    )?;
    decoder.finish().map_err(|_| Error::CorruptPayload)?;
    let got = format::content_hash(&out);
    if got != frame.content_hash {
        return Err(Error::ChecksumMismatch {
            expected: frame.content_hash,
            got,
        });
    }
    Ok(Outcome {
        bytes: out,
        backend: backend.describe(),
    })
}

#[cfg(test)]
mod tests {
    use super::streams_for_len;

    #[test]
    fn stream_cap_does_not_wrap_at_multiples_of_four_gib() {
        assert_eq!(streams_for_len(16, 0), 1);
        assert_eq!(streams_for_len(16, 3), 3);
        assert_eq!(streams_for_len(16, 1000), 16);
        if let Ok(len) = usize::try_from(1u64 << 32) {
            assert_eq!(streams_for_len(16, len), 16);
            assert_eq!(streams_for_len(65_536, 3 * len + 5), 65_536);
        }
    }
}
