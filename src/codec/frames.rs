//! The input cut into frames: one after another, reading and writing block by block, or, when
//! `Options::frame_size` makes several frames and `Options::threads` allows, several frames at
//! once, each on a thread of its own (their CPU twins share rayon's pool). Both paths give the same bytes: a frame's header depends only on
//! the options, the size hint and where the frame starts, and its blocks only on its data.

use std::io::{Read, Write};

use super::frame::FrameEncoder;
use super::{Options, Progress, Report};
use crate::error::Error;
use crate::format::FrameHeader;
use crate::model::memory;
use crate::model::params::{MAX_LSTM_STRIDE, MAX_STREAMS};
use crate::model::presets;

/// Reads up to `want` bytes into `buf` (replacing its contents): fewer only where the input
/// ends.
fn read_up_to(input: &mut dyn Read, buf: &mut Vec<u8>, want: u64) -> Result<usize, Error> {
    buf.clear();
    input.take(want).read_to_end(buf).map_err(Error::Read)
}

/// The length of the frame that starts `start` bytes into an input of `size_hint` bytes, if
/// known.
fn frame_len(size_hint: Option<u64>, start: u64, frame_size: u64) -> Option<u64> {
    size_hint.map(|total| total.saturating_sub(start).min(frame_size))
}

/// The header of a frame of `frame_len` bytes (`None`: unknown).
fn frame_header(options: &Options, frame_len: Option<u64>) -> FrameHeader {
    let level = options.level.clamp(presets::MIN_LEVEL, presets::MAX_LEVEL);
    let stride = options.stride.map(|k| k.clamp(1, MAX_LSTM_STRIDE));
    let mut params = presets::params_with_stride(level, frame_len, stride);
    if let Some(streams) = options.streams {
        // Streams past a known length would stay empty; the LSTM state is sized by the count.
        let cap = frame_len.map_or(MAX_STREAMS, |len| len.clamp(1, MAX_STREAMS as u64) as u32);
        params.streams = streams.clamp(1, MAX_STREAMS).min(cap);
        // The streams asked for, each a byte a step unless a stride is asked for too
        // (`schedule::BlockCut`).
        params.lstm_stride = stride.unwrap_or(1);
    }
    FrameHeader {
        preset: level,
        params,
    }
}

/// One compression run: where it reads and writes, and what it has done so far.
struct Job<'a> {
    input: &'a mut dyn Read,
    output: &'a mut dyn Write,
    size_hint: Option<u64>,
    options: &'a Options,
    progress: Progress<'a>,
    frame_size: u64,
    report: Report,
}

impl Job<'_> {
    /// Writes archive bytes, counting them.
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.output.write_all(bytes).map_err(Error::Write)?;
        self.report.archive_bytes += bytes.len() as u64;
        Ok(())
    }

    /// The header and, if known, the length of the frame that starts `start` bytes in.
    fn frame_at(&self, start: u64) -> (FrameHeader, Option<u64>) {
        let len = frame_len(self.size_hint, start, self.frame_size);
        (frame_header(self.options, len), len)
    }
}

/// Compresses everything `input` holds into an archive written to `output`, block by block.
/// `size_hint` is the input's length when known in advance (a file's): it sizes the model of
/// a short input down; without it (standard input) each frame gets the preset's largest. The
/// archive depends on the data, the options and the hint, never on `threads` or on how the
/// input arrives.
pub fn compress_stream(
    input: &mut dyn Read,
    output: &mut dyn Write,
    size_hint: Option<u64>,
    options: &Options,
    progress: Progress,
) -> Result<Report, Error> {
    let frame_size = options.frame_size.unwrap_or(u64::MAX).max(1);
    let workers = match options.threads {
        0 => rayon::current_num_threads(),
        n => n,
    };
    let mut job = Job {
        input,
        output,
        size_hint,
        options,
        progress,
        frame_size,
        report: Report::default(),
    };
    let several = size_hint.is_none_or(|len| len > frame_size);
    if workers > 1 && frame_size < u64::MAX && several {
        in_parallel(&mut job, workers)?;
    } else {
        one_by_one(&mut job)?;
    }
    job.output.flush().map_err(Error::Write)?;
    Ok(job.report)
}

/// Frames one after another, each block read, coded and written before the next is read.
fn one_by_one(job: &mut Job) -> Result<(), Error> {
    let mut block = Vec::new();
    let mut coded = Vec::new();
    let fixed_streams = job.options.streams.is_some();
    loop {
        let (header, len) = job.frame_at(job.report.original_bytes);
        let mut encoder = FrameEncoder::new(header, fixed_streams, len, job.options)?;
        let mut want = encoder.next_block_len(job.frame_size);
        let mut got = read_up_to(job.input, &mut block, want)?;
        // Every archive has a frame, even an empty input's; later frames need data.
        if got == 0 && job.report.original_bytes > 0 {
            return Ok(());
        }
        if job.report.backend.is_empty() {
            job.report.backend = encoder.backend();
        }
        job.write(&encoder.header_bytes())?;
        let mut in_frame = 0u64;
        let mut ended = (got as u64) < want;
        while got > 0 {
            coded.clear();
            let base = job.report.original_bytes;
            let progress = &mut job.progress;
            encoder.encode_block(&block, &mut coded, &mut |done| progress(base + done))?;
            job.write(&coded)?;
            job.report.original_bytes += got as u64;
            in_frame += got as u64;
            if ended || in_frame == job.frame_size {
                break;
            }
            want = encoder.next_block_len(job.frame_size - in_frame);
            got = read_up_to(job.input, &mut block, want)?;
            ended = (got as u64) < want;
        }
        job.write(&encoder.finish())?;
        if ended {
            return Ok(());
        }
    }
}

/// One whole frame of `data` (already read) as archive bytes, and the backend that ran it.
fn encode_frame(
    header: FrameHeader,
    data: &[u8],
    options: &Options,
) -> Result<(Vec<u8>, String), Error> {
    let len = Some(data.len() as u64);
    let mut encoder = FrameEncoder::new(header, options.streams.is_some(), len, options)?;
    let mut out = encoder.header_bytes().to_vec();
    let mut rest = data;
    while !rest.is_empty() {
        let len = encoder.next_block_len(rest.len() as u64) as usize;
        let (block, after) = rest.split_at(len);
        encoder.encode_block(block, &mut out, &mut |_| {})?;
        rest = after;
    }
    let backend = encoder.backend();
    out.extend_from_slice(&encoder.finish());
    Ok((out, backend))
}

/// Several frames at once: up to `workers` frames are read whole, compressed in parallel and
/// written in order. Memory holds those frames' data and archives, and their models; fewer
/// run at once when their models together would pass the memory limit.
fn in_parallel(job: &mut Job, workers: usize) -> Result<(), Error> {
    let (first, _) = job.frame_at(0);
    let per_frame = memory::model_state(&first.params).total().max(1);
    let workers = workers.min((job.options.memory_limit / per_frame).max(1) as usize);
    let options = job.options;
    loop {
        let mut batch: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
        let mut start = job.report.original_bytes;
        let mut ended = false;
        while batch.len() < workers && !ended {
            let mut data = Vec::new();
            let got = read_up_to(job.input, &mut data, job.frame_size)? as u64;
            ended = got < job.frame_size;
            if got == 0 && start > 0 {
                break;
            }
            batch.push((job.frame_at(start).0, data));
            start += got;
        }
        if batch.is_empty() {
            return Ok(());
        }
        // One thread of its own per frame, not rayon's: a frame's coder waits on its model's
        // thread, whose CPU twin needs rayon's workers free to run.
        let frames: Vec<Result<(Vec<u8>, String), Error>> = std::thread::scope(|scope| {
            let workers: Vec<_> = batch
                .iter()
                .map(|(header, data)| scope.spawn(|| encode_frame(*header, data, options)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for (frame, (_, data)) in frames.into_iter().zip(&batch) {
            let (bytes, backend) = frame?;
            if job.report.backend.is_empty() {
                job.report.backend = backend;
            }
            job.write(&bytes)?;
            job.report.original_bytes += data.len() as u64;
            (job.progress)(job.report.original_bytes);
        }
        if ended {
            return Ok(());
        }
    }
}
