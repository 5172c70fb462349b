//! One frame's model and its blocks: the encoder turns blocks of data into records and
//! payloads, the decoder turns them back. The model (LSTM weights, optimizer state, LSTM state
//! per stream and the mixing stage) carries over from block to block; a new frame starts a
//! new model.

use crate::backend::{self, Backend, Workload};
use crate::coder::{BinaryDecoder, BinaryEncoder, BitCoder, CoderError, Replay};
use crate::error::Error;
use crate::format::{
    self, BlockHeader, BlockKind, Coders, FrameEnd, FrameHeader, Record, Segments,
};
use crate::mix::MixingStage;
use crate::model::memory;
use crate::model::params::ModelParams;
use crate::model::schedule;

use super::Options;
use super::block::{BlockPlan, run_block};
use crate::fixed::{FREQ_TOTAL, SYMBOLS};

/// Refuses a model whose state exceeds `options.memory_limit`, before anything is allocated.
pub fn check_memory(params: &ModelParams, options: &Options) -> Result<(), Error> {
    let needed = memory::model_state(params).total();
    if needed > options.memory_limit {
        return Err(Error::MemoryLimit {
            needed,
            limit: options.memory_limit,
        });
    }
    Ok(())
}

/// One block's bytes through the frame's mixing stage and the block's coders, part by part as
/// `run_block` hands them over.
///
/// A step's learning (`MixingStage::end_step`) waits until the next part arrives, or the block
/// ends (`finish`): the step's bytes go back to the model first, so a decoder's next model
/// step, which needs only them, runs while the stage learns. The stage sees the same calls in
/// the same order either way.
struct BlockCoder<'a, C> {
    stage: &'a mut MixingStage,
    segments: Segments,
    /// Bytes of each stream per LSTM step (`BlockPlan::stride`).
    stride: usize,
    /// The frame's flat tables (`FrameModel::flat`).
    flat: &'a [u32],
    coders: Coders,
    /// One coder per `coders` group.
    lanes: Vec<C>,
    /// Whether a step is complete and its learning not yet done.
    learning_due: bool,
}

impl<'a, C: BitCoder + Send> BlockCoder<'a, C> {
    /// Starts the block `plan` on `stage`, coding through `lanes` (one per coder of the block)
    /// with the frame's flat tables `flat` (`FrameModel::flat`).
    fn new(
        stage: &'a mut MixingStage,
        flat: &'a [u32],
        plan: &BlockPlan,
        lanes: Vec<C>,
    ) -> BlockCoder<'a, C> {
        let segments = plan.segments();
        stage.start_block(segments.streams());
        BlockCoder {
            stage,
            segments,
            stride: plan.stride(),
            flat,
            coders: Coders::new(segments.streams()),
            lanes,
            learning_due: false,
        }
    }

    /// Ends the block's last step and gives the coders back.
    fn finish(self) -> Vec<C> {
        if self.learning_due {
            self.stage.end_step();
        }
        self.lanes
    }

    /// Codes LSTM step `step`'s bytes of the streams from `first` that `tables` has tables for
    /// (`run_block`'s `code`, whose layout `symbols` has): the bytes of its first sub-step
    /// with the LSTM's tables, those of the others with flat ones. `known` is the block's data
    /// when encoding or replaying, whose bytes it codes; `decoded`, when decoding, receives
    /// each byte at its offset in the block. A stream's first byte starts its segment
    /// (`MixingStage::start_segment`); the first part after a complete sub-step ends that
    /// step of the stage (`MixingStage::end_step`).
    fn code_part(
        &mut self,
        (step, first): (usize, usize),
        tables: &[u32],
        symbols: &mut [u8],
        known: Option<&[u8]>,
        mut decoded: Option<&mut [u8]>,
    ) -> Result<(), CoderError> {
        let n = tables.len() / SYMBOLS;
        let segments = self.segments;
        for (j, u) in segments.sub_steps(step, self.stride).enumerate() {
            if std::mem::take(&mut self.learning_due) {
                self.stage.end_step();
            }
            let streams = first..(first + n).min(segments.active(u));
            let symbols = &mut symbols[j * n..j * n + streams.len()];
            for s in streams.clone() {
                if segments.starts_segment(s, segments.offset(s, u)) {
                    self.stage.start_segment(s);
                }
            }
            if let Some(data) = known {
                for (s, symbol) in streams.clone().zip(symbols.iter_mut()) {
                    *symbol = data[segments.offset(s, u)];
                }
            }
            let tables = match j {
                0 => tables,
                _ => &self.flat[..streams.len() * SYMBOLS],
            };
            let coders = self.coders;
            self.stage
                .code_streams(first, tables, symbols, &mut self.lanes, |s| coders.of(s))?;
            if let Some(out) = decoded.as_deref_mut() {
                for (s, &symbol) in streams.clone().zip(symbols.iter()) {
                    out[segments.offset(s, u)] = symbol;
                }
            }
            self.learning_due = streams.end == segments.active(u);
        }
        Ok(())
    }
}

/// A frame's model as it stands between two blocks.
struct FrameModel {
    header: FrameHeader,
    backend: Box<dyn Backend>,
    mixer: MixingStage,
    /// A flat LSTM table (every byte `FREQ_TOTAL / 256`) for each stream, if the frame's
    /// blocks may have a stride above 1: what the stage codes the bytes the LSTM does not
    /// predict with, so that its input adds nothing to the mix. Made once a frame (the decoder's
    /// memory counts it), since a block of many streams would need megabytes of them.
    flat: Vec<u32>,
    /// Bytes of the frame's data run through the model so far.
    position: u64,
    /// XXH64 of the frame's data so far.
    hash: xxhash_rust::xxh64::Xxh64,
}

impl FrameModel {
    /// The initial model of a frame with `header`, on the backend `options` ask for, for
    /// `work`.
    fn open(header: FrameHeader, options: &Options, work: Workload) -> Result<FrameModel, Error> {
        check_memory(&header.params, options)?;
        let adapter = options.adapter.as_deref();
        let backend = backend::open(options.backend, adapter, &header.params, work)?;
        Ok(FrameModel {
            mixer: MixingStage::new(header.params.mix_log2, header.params.streams),
            flat: match header.params.lstm_stride {
                0 | 1 => Vec::new(),
                _ => vec![FREQ_TOTAL / SYMBOLS as u32; header.params.streams as usize * SYMBOLS],
            },
            header,
            backend,
            position: 0,
            hash: xxhash_rust::xxh64::Xxh64::new(0),
        })
    }

    /// The plan of the next block: `len` bytes in `streams` streams at LSTM stride `stride`.
    fn plan(&self, len: usize, streams: u32, stride: u8) -> BlockPlan {
        BlockPlan {
            params: self.header.params,
            position: self.position,
            len,
            streams,
            stride,
        }
    }

    /// Counts a block the model has run over.
    fn advance(&mut self, data: &[u8]) {
        self.position += data.len() as u64;
        self.hash.update(data);
    }

    /// The record that ends the frame.
    fn end(&self) -> Record {
        Record::End(FrameEnd {
            original_len: self.position,
            content_hash: self.hash.digest(),
        })
    }
}

/// Compresses one frame, block by block.
pub struct FrameEncoder {
    model: FrameModel,
    /// How the frame is cut into blocks and widths.
    cut: schedule::BlockCut,
}

impl FrameEncoder {
    /// A frame coded with `header`'s model; `fixed_streams` codes every block in
    /// `header.params.streams` streams instead of following `schedule::block_streams`.
    /// `frame_len` is the frame's length if known in advance (it weighs `auto`'s choice).
    pub fn new(
        header: FrameHeader,
        fixed_streams: bool,
        frame_len: Option<u64>,
        options: &Options,
    ) -> Result<FrameEncoder, Error> {
        let (streams, stride) = (header.params.streams, header.params.lstm_stride);
        let streams_per_step = if fixed_streams {
            f64::from(streams)
        } else {
            schedule::mean_streams_per_step(streams, stride.into(), frame_len)
        };
        let work = Workload {
            decoding: false,
            streams_per_step,
        };
        let cut = schedule::BlockCut {
            block_bytes: 1 << header.params.block_log2,
            most_streams: streams,
            most_stride: stride.into(),
            fixed: fixed_streams,
        };
        Ok(FrameEncoder {
            model: FrameModel::open(header, options, work)?,
            cut,
        })
    }

    /// `Backend::describe` of the backend running the model.
    pub fn backend(&self) -> String {
        self.model.backend.describe()
    }

    /// Length of the next block when `available` bytes of the frame remain (at least 1)
    /// (`schedule::BlockCut::block_len`).
    pub fn next_block_len(&self, available: u64) -> u64 {
        self.cut.block_len(self.model.position, available)
    }

    /// The frame's header bytes.
    pub fn header_bytes(&self) -> [u8; format::FRAME_HEADER_LEN] {
        self.model.header.to_bytes()
    }

    /// Codes the next block of the frame (`1..=next_block_len` bytes) and appends its record
    /// and payload to `out`: coded, or raw if coding would not make it smaller.
    pub fn encode_block(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let (streams, stride) = self.cut.width(self.model.position, data.len());
        let stride = stride as u8;
        let model = &mut self.model;
        let plan = model.plan(data.len(), streams, stride);
        let coders = Coders::new(streams as usize);
        let lanes = vec![BinaryEncoder::new(); coders.count()];
        let mut block = BlockCoder::new(&mut model.mixer, &model.flat, &plan, lanes);
        run_block(
            model.backend.as_mut(),
            &plan,
            Some(data),
            progress,
            |step, first, tables, symbols| {
                block
                    .code_part((step, first), tables, symbols, Some(data), None)
                    .map_err(|_| Error::InvalidTable)
            },
        )?;
        let parts: Vec<Vec<u8>> = block
            .finish()
            .into_iter()
            .map(BinaryEncoder::finish)
            .collect();
        model.advance(data);
        let payload = coders.join(&parts);
        let original_len = data.len() as u32;
        let coded = payload.len() < data.len();
        let header = BlockHeader {
            kind: if coded {
                BlockKind::Coded { streams }
            } else {
                BlockKind::Raw { streams }
            },
            stride,
            original_len,
            stored_len: if coded {
                payload.len() as u32
            } else {
                original_len
            },
            checksum: format::block_checksum(data),
        };
        out.extend_from_slice(&Record::Block(header).to_bytes());
        out.extend_from_slice(if coded { &payload } else { data });
        Ok(())
    }

    /// The frame's end record, to write after its last block.
    pub fn finish(self) -> [u8; format::RECORD_LEN] {
        self.model.end().to_bytes()
    }
}

/// Decompresses one frame, block by block.
pub struct FrameDecoder {
    model: FrameModel,
    /// Index of the frame in the archive, for messages.
    frame: u64,
    /// Blocks decoded so far.
    blocks: u64,
}

impl FrameDecoder {
    /// The decoder of frame number `frame` (counted from 0), whose header is `header`.
    pub fn new(header: FrameHeader, frame: u64, options: &Options) -> Result<FrameDecoder, Error> {
        // The frame's length is not known until its end: its widest block is the estimate.
        let work = Workload {
            decoding: true,
            streams_per_step: f64::from(header.params.streams),
        };
        Ok(FrameDecoder {
            model: FrameModel::open(header, options, work)?,
            frame,
            blocks: 0,
        })
    }

    /// `Backend::describe` of the backend running the model.
    pub fn backend(&self) -> String {
        self.model.backend.describe()
    }

    /// Decodes the block `block` whose stored bytes are `payload` into `out` (resized to the
    /// block's length), and checks it against the block's checksum.
    pub fn decode_block(
        &mut self,
        block: &BlockHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let len = block.original_len as usize;
        let model = &mut self.model;
        match block.kind {
            BlockKind::Raw { streams } => {
                out.clear();
                out.extend_from_slice(payload);
                // The encoder ran the model over this block before it chose to store it: run
                // it the same way, coding nothing.
                let plan = model.plan(len, streams, block.stride);
                let lanes = vec![Replay; Coders::new(streams as usize).count()];
                let mut block = BlockCoder::new(&mut model.mixer, &model.flat, &plan, lanes);
                run_block(
                    model.backend.as_mut(),
                    &plan,
                    Some(payload),
                    progress,
                    |step, first, tables, symbols| {
                        block
                            .code_part((step, first), tables, symbols, Some(payload), None)
                            .map_err(|_| Error::InvalidTable)
                    },
                )?;
                block.finish();
            }
            BlockKind::Coded { streams } => {
                out.clear();
                out.try_reserve_exact(len)
                    .map_err(|_| Error::OutOfMemory(len as u64))?;
                out.resize(len, 0);
                let plan = model.plan(len, streams, block.stride);
                let lanes = Coders::new(streams as usize)
                    .split(payload)
                    .map_err(|_| Error::CorruptPayload)?
                    .into_iter()
                    .map(BinaryDecoder::new)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| Error::CorruptPayload)?;
                let mut block = BlockCoder::new(&mut model.mixer, &model.flat, &plan, lanes);
                run_block(
                    model.backend.as_mut(),
                    &plan,
                    None,
                    progress,
                    |step, first, tables, symbols| {
                        block
                            .code_part((step, first), tables, symbols, None, Some(out))
                            .map_err(|e| match e {
                                CoderError::InvalidProbability => Error::InvalidTable,
                                _ => Error::CorruptPayload,
                            })
                    },
                )?;
                for lane in block.finish() {
                    lane.finish().map_err(|_| Error::CorruptPayload)?;
                }
            }
        }
        let got = format::block_checksum(out);
        if got != block.checksum {
            return Err(Error::BlockChecksumMismatch {
                frame: self.frame,
                block: self.blocks,
                offset: model.position,
                expected: block.checksum,
                got,
            });
        }
        model.advance(out);
        self.blocks += 1;
        Ok(())
    }

    /// Checks the frame's end record against the data decoded.
    pub fn finish(self, end: &FrameEnd) -> Result<(), Error> {
        let got = self.model.hash.digest();
        if got != end.content_hash {
            return Err(Error::ChecksumMismatch {
                expected: end.content_hash,
                got,
            });
        }
        Ok(())
    }
}
