//! The archive's frames decoded: one after another, each block written as soon as it is
//! decoded and checked, or, when `Options::threads` allows more than one, several whole
//! frames at once, each on a thread of its own, written strictly in input order. Both paths
//! write the same bytes; frames are independent, so the order they are decoded in cannot
//! change them.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use super::frame::FrameDecoder;
use super::{Options, Progress, Report};
use crate::error::Error;
use crate::format::{self, ArchiveReader, BlockHeader, FrameEnd, FrameHeader, Record};
use crate::model::memory;

/// How often the writer reports the progress of the frames being decoded.
const POLL: Duration = Duration::from_millis(20);
/// Most bytes all held frames may take together, even where the memory limit is higher or
/// lifted (`--memory-limit max`): beyond it, a frame of any length would be held.
const MAX_HELD: u64 = 4 << 30;

/// One decompression run: where it reads and writes, and what it has done so far.
struct Job<'a> {
    reader: ArchiveReader<&'a mut dyn Read>,
    output: &'a mut dyn Write,
    options: &'a Options,
    progress: Progress<'a>,
    report: Report,
}

impl Job<'_> {
    /// Writes decoded data, counting it.
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.output.write_all(data).map_err(Error::Write)?;
        self.report.original_bytes += data.len() as u64;
        Ok(())
    }

    /// Remembers the backend of the first frame.
    fn note_backend(&mut self, backend: impl FnOnce() -> String) {
        if self.report.backend.is_empty() {
            self.report.backend = backend();
        }
    }

    /// Decodes one block of `frame` and writes it once its checksum has passed.
    fn stream_block(
        &mut self,
        frame: &mut FrameDecoder,
        block: &BlockHeader,
        payload: &[u8],
        data: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let base = self.report.original_bytes;
        let progress = &mut self.progress;
        frame.decode_block(block, payload, data, &mut |done| progress(base + done))?;
        self.write(data)
    }

    /// Decodes `frame` (its blocks read so far) and then the rest of it off the input,
    /// starting with the payload of `pending` if its record has been read, writing every
    /// block as soon as it is checked.
    fn stream_frame(&mut self, held: Frame, pending: Option<BlockHeader>) -> Result<(), Error> {
        let mut frame = FrameDecoder::new(held.header, held.index, self.options)?;
        self.note_backend(|| frame.backend());
        let mut data = Vec::new();
        for (block, payload) in &held.blocks {
            self.stream_block(&mut frame, block, payload, &mut data)?;
        }
        let mut payload = Vec::new();
        let mut next = match pending {
            Some(block) => Record::Block(block),
            None => self.reader.next_record()?,
        };
        loop {
            match next {
                Record::Block(block) => {
                    self.reader.read_payload(&mut payload)?;
                    self.stream_block(&mut frame, &block, &payload, &mut data)?;
                }
                Record::End(end) => return frame.finish(&end),
            }
            next = self.reader.next_record()?;
        }
    }

    /// Reads the next frame into memory while its archive bytes and the original bytes its
    /// blocks declare stay within `cap`; `None` at the end of the archive. Its structure is
    /// checked as it is read, before any of it is decoded.
    fn hold_frame(&mut self, cap: u64) -> Result<Option<Held>, Error> {
        let Some(header) = self.reader.next_frame()? else {
            return Ok(None);
        };
        let mut frame = Frame {
            index: self.reader.frames() - 1,
            header,
            blocks: Vec::new(),
        };
        let mut bytes = format::FRAME_HEADER_LEN as u64;
        if bytes > cap {
            return Ok(Some(Held::Part(frame, None)));
        }
        loop {
            match self.reader.next_record()? {
                Record::Block(block) => {
                    let size = format::RECORD_LEN as u64
                        + u64::from(block.stored_len)
                        + u64::from(block.original_len);
                    if bytes + size > cap {
                        return Ok(Some(Held::Part(frame, Some(block))));
                    }
                    let mut payload = Vec::new();
                    self.reader.read_payload(&mut payload)?;
                    frame.blocks.push((block, payload));
                    bytes += size;
                }
                Record::End(end) => return Ok(Some(Held::Whole(frame, end))),
            }
        }
    }
}

/// A frame's header and the blocks of it read into memory, with their payloads.
struct Frame {
    /// Its index in the archive, counted from 0.
    index: u64,
    header: FrameHeader,
    blocks: Vec<(BlockHeader, Vec<u8>)>,
}

/// A frame read into memory, whole or as far as it fit.
enum Held {
    /// Every block and the end record.
    Whole(Frame, FrameEnd),
    /// The blocks that fit; the input goes on with the payload of the block record given,
    /// or (`None`) with the frame's next record.
    Part(Frame, Option<BlockHeader>),
}

/// Decompresses the archive `input` holds (one frame or several concatenated) to `output`.
/// With `Options::threads` 0 or 1, or when called on a thread of rayon's pool, each block is
/// written as soon as it is decoded and checked; with
/// more, a frame held in memory is written whole
/// once its blocks and end record have passed, and a frame too large to hold is streamed
/// as with one thread. On an error, what was written before it is correct data, in order,
/// and the error is the first one in the archive's order of frames.
pub fn decompress_stream(
    input: &mut dyn Read,
    output: &mut dyn Write,
    options: &Options,
    progress: Progress,
) -> Result<Report, Error> {
    // Holding frames costs memory and delays the output, so only an explicit thread count
    // above one buys it; by default the output streams, as zstd's and xz's do.
    let workers = options.threads.max(1);
    let mut job = Job {
        reader: ArchiveReader::new(input),
        output,
        options,
        progress,
        report: Report::default(),
    };
    // A thread of rayon's pool that waited for frames whose models need that pool's threads
    // could leave it none to run them: there, frames are decoded one after another.
    if workers > 1 && rayon::current_thread_index().is_none() {
        in_parallel(&mut job, workers)?;
    } else {
        while let Some(header) = job.reader.next_frame()? {
            let index = job.reader.frames() - 1;
            let frame = Frame {
                index,
                header,
                blocks: Vec::new(),
            };
            job.stream_frame(frame, None)?;
        }
    }
    job.output.flush().map_err(Error::Write)?;
    job.report.archive_bytes = job.reader.offset();
    Ok(job.report)
}

/// What a worker gives back: the frame's data and backend, or `None` if it stopped because
/// an earlier frame failed.
type Decoded = Result<Option<(Vec<u8>, String)>, Error>;

/// A frame being decoded on a thread of its own.
struct Running<'scope> {
    handle: ScopedJoinHandle<'scope, Decoded>,
    /// Disconnected once the thread has its result (or has panicked).
    finished: Receiver<()>,
    /// Bytes of it decoded so far.
    done: Arc<AtomicU64>,
    /// Its model's state, `memory::model_state`.
    model: u64,
}

/// Decodes a whole frame held in memory, checking every block and the end record `end`;
/// gives up, with `None`, once `stop` is set.
fn decode_held(
    held: Frame,
    end: FrameEnd,
    options: &Options,
    done: &AtomicU64,
    stop: &AtomicBool,
) -> Decoded {
    let mut frame = FrameDecoder::new(held.header, held.index, options)?;
    let mut out = Vec::new();
    let len = usize::try_from(end.original_len).unwrap_or(usize::MAX);
    out.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory(end.original_len))?;
    let mut data = Vec::new();
    for (block, payload) in &held.blocks {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let base = out.len() as u64;
        frame.decode_block(block, payload, &mut data, &mut |d| {
            done.store(base + d, Ordering::Relaxed)
        })?;
        out.extend_from_slice(&data);
        done.store(out.len() as u64, Ordering::Relaxed);
    }
    let backend = frame.backend();
    frame.finish(&end)?;
    Ok(Some((out, backend)))
}

/// Several frames at once. The input is read frame by frame into memory; up to `workers`
/// frames decode at once, fewer when their models together would pass the memory limit,
/// and one more waits read. A frame may hold at most `memory_limit / (workers + 1)` bytes
/// of archive and declared data (`MAX_HELD` at most in all), so the held frames stay within
/// the memory limit; a larger one is streamed once the frames before it are written. Frames
/// are written in input order.
fn in_parallel(job: &mut Job, workers: usize) -> Result<(), Error> {
    let cap = job.options.memory_limit.min(MAX_HELD) / (workers as u64 + 1);
    let options = job.options;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let result = schedule(job, (workers, cap), options, &stop, scope);
        // Frames after a failed one are not wanted: let their threads end early.
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        result
    })
}

/// The loop of `in_parallel`: reads, starts, waits for and writes frames.
fn schedule<'scope, 'env>(
    job: &mut Job,
    (workers, cap): (usize, u64),
    options: &'env Options,
    stop: &'env AtomicBool,
    scope: &'scope Scope<'scope, 'env>,
) -> Result<(), Error> {
    let mut running: VecDeque<Running<'scope>> = VecDeque::new();
    let mut models = 0u64;
    let mut next: Option<Held> = None;
    let mut ended = false;
    loop {
        if next.is_none() && !ended {
            match job.hold_frame(cap) {
                Ok(Some(held)) => next = Some(held),
                Ok(None) => ended = true,
                Err(err) => {
                    // The frames before the damage are good data, or fail first.
                    while !running.is_empty() {
                        write_oldest(job, &mut running, &mut models)?;
                    }
                    return Err(err);
                }
            }
        }
        match next.take() {
            None if running.is_empty() => return Ok(()),
            Some(Held::Part(frame, pending)) if running.is_empty() => {
                job.stream_frame(frame, pending)?;
            }
            Some(Held::Whole(frame, end)) if fits(&frame, &running, models, workers, options) => {
                let model = memory::model_state(&frame.header.params).total();
                let done = Arc::new(AtomicU64::new(0));
                let counter = Arc::clone(&done);
                let (finishing, finished) = mpsc::channel();
                let handle = scope.spawn(move || {
                    // Dropped as the thread ends, which wakes the writer at once.
                    let _finishing = finishing;
                    decode_held(frame, end, options, &counter, stop)
                });
                models += model;
                running.push_back(Running {
                    handle,
                    finished,
                    done,
                    model,
                });
            }
            waiting => {
                next = waiting;
                write_oldest(job, &mut running, &mut models)?;
            }
        }
    }
}

/// Whether the whole frame `held` may start beside the frames `running`: a thread is free,
/// and its model with theirs (`models`) stays within the memory limit, or nothing runs.
fn fits(
    held: &Frame,
    running: &VecDeque<Running>,
    models: u64,
    workers: usize,
    options: &Options,
) -> bool {
    let model = memory::model_state(&held.header.params).total();
    running.is_empty()
        || (running.len() < workers && models.saturating_add(model) <= options.memory_limit)
}

/// Waits for the oldest running frame, reporting the bytes decoded meanwhile, and writes it.
fn write_oldest(
    job: &mut Job,
    running: &mut VecDeque<Running>,
    models: &mut u64,
) -> Result<(), Error> {
    let Some(oldest) = running.pop_front() else {
        return Ok(());
    };
    // Waited for with a timeout rather than joined, so that the progress counts every
    // frame's decoded bytes meanwhile.
    while let Err(RecvTimeoutError::Timeout) = oldest.finished.recv_timeout(POLL) {
        let decoding = oldest.done.load(Ordering::Relaxed) + decoded_bytes(running);
        (job.progress)(job.report.original_bytes + decoding);
    }
    *models -= oldest.model;
    let decoded = oldest
        .handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    let Some((data, backend)) = decoded else {
        unreachable!("frames stop only once an earlier frame has failed");
    };
    job.note_backend(|| backend);
    job.write(&data)?;
    (job.progress)(job.report.original_bytes + decoded_bytes(running));
    Ok(())
}

/// Bytes the frames `running` have decoded so far.
fn decoded_bytes(running: &VecDeque<Running>) -> u64 {
    running.iter().map(|r| r.done.load(Ordering::Relaxed)).sum()
}
