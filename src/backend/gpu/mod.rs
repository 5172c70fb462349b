//! The GPU backend: the model's forward pass, backward pass and optimizer as WGSL kernels
//! through wgpu, bit-identical to the CPU twin (`crate::backend::cpu::kernels`).
//!
//! All model state lives on the GPU. A `forward` call uploads the steps' symbols, runs them
//! and reads their frequency tables back in one submit, as u16 (`FREQ_BYTES`): the decoder
//! calls it once per step or half step. `train` records the backward pass over the window and
//! the update of every tensor; those commands ride in the next `forward` submit, so training
//! adds no submit or read-back of its own. The encoder knows its symbols in advance and calls
//! `forward_window_ahead` once per window instead: one submit runs the window and trains on
//! it, and only then does the host read back the window before, which the GPU has finished
//! meanwhile or finishes while it runs this one, so the GPU always has work queued while the
//! host unpacks (the tables alternate between two staging buffers). The backward
//! pass takes few dispatches, since each costs a hardware GPU a launch and a barrier: the
//! head's gradients for the whole window in two (they do not depend on the recurrence), then
//! one per layer and step.

mod context;
mod kernel;
mod profile;
#[cfg(test)]
mod tests;

use wgpu::util::DeviceExt;

use crate::backend::Backend;
use crate::error::Error;
use crate::fixed::{self, SYMBOLS};
use crate::model::init::initial_weights;
use crate::model::layout::{Shape, TensorRole, layer_tensors};
use crate::model::params::ModelParams;
use context::GpuContext;
pub use context::{is_software, no_adapter_message, usable_adapters, write_stderr_line};
use kernel::{Access, Constants, Kernel, Value};
pub use profile::PROFILE_VARIABLE;
use profile::{HostTotals, Profiler};
use std::sync::Arc;
use std::time::Instant;

/// Per-dispatch values, as `struct Step` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StepUniform {
    streams: u32,
    base: u32,
    recorded: u32,
    learning_rate: u32,
    first: u32,
}

/// Bytes of one frequency table entry as `head_softmax` stores and the host reads it back:
/// a u16, which holds every entry exactly (each is at least 1, so none exceeds
/// `FREQ_TOTAL - (SYMBOLS - 1)`).
const FREQ_BYTES: usize = 2;
const _: () = assert!(fixed::FREQ_TOTAL - (SYMBOLS as u32 - 1) <= u16::MAX as u32);

/// Kernels of one layer.
struct LayerKernels {
    forward: Kernel,
    /// `layer_backward` for the steps that write the even (`[0]`) or odd (`[1]`) buffer of each
    /// pair of step gradients (`GpuBackend::train`).
    backward: [Kernel; 2],
    update_matrix: Kernel,
    update_embedding: Kernel,
    update_bias: Kernel,
}

/// The GPU backend.
pub struct GpuBackend {
    ctx: GpuContext,
    shape: Shape,
    /// `struct Step` slots, `step_stride` bytes apart: `window` for forward steps, `window` for
    /// backward steps, then one for the update.
    step: wgpu::Buffer,
    step_stride: u64,
    /// The symbols of the steps being run, copied into `symbols_win` inside the steps' commands
    /// (a direct write would land before pending training commands that still read the
    /// previous window).
    inputs: wgpu::Buffer,
    /// Training commands recorded by `train`, submitted with the next forward step so that
    /// the decoder does exactly one submit per step.
    pending: Option<wgpu::CommandEncoder>,
    symbols_win: wgpu::Buffer,
    targets_win: wgpu::Buffer,
    freqs_win: wgpu::Buffer,
    /// Where the tables are copied for the host to read: `forward` uses the first;
    /// `forward_window_ahead` both in turn, one for the window in flight and one for the next.
    staging: [wgpu::Buffer; 2],
    /// The window `forward_window_ahead` submitted last, whose tables are not read back yet.
    ahead: Option<TablesInFlight>,
    /// Cleared at the start of every backward pass: both buffers of each layer's input
    /// gradients and of the cell-state gradients.
    cleared: Vec<wgpu::Buffer>,
    /// Every tensor's Q24 master values, for tests that compare with the CPU twin.
    masters: Vec<wgpu::Buffer>,
    layers: Vec<LayerKernels>,
    head: Kernel,
    /// Streams per workgroup of the forward kernels and stream-steps per workgroup of
    /// `input_grad` (`stream_tile`).
    tile: usize,
    /// Streams per workgroup of `layer_backward` (`backward_tile`).
    backward_tile: usize,
    /// Edge of `matrix_update`'s tiles (`matrix_tile`).
    matrix_tile: usize,
    /// Dispatches the last `forward` recorded per step.
    step_dispatches: usize,
    /// Dispatches the last `train` recorded for its backward pass.
    backward_dispatches: usize,
    /// Bytes the last `forward` read back per step it ran.
    step_read_back_bytes: usize,
    output_grad: Kernel,
    head_input_grad: Kernel,
    head_update: Kernel,
    head_bias_update: Kernel,
    /// Groups the window's stream-steps by input symbol for the embedding updates.
    symbol_order: Kernel,
    /// Active streams of each recorded step.
    active: Vec<usize>,
    freqs: Vec<u32>,
    /// The symbols a `forward` call uploads (or `train`'s targets), kept so that no step
    /// allocates.
    symbols: Vec<u32>,
    /// Steps, submits, read-back bytes and the time spent in `forward` and `train`.
    host: HostTotals,
    /// Times every dispatch when `NNGPU_GPU_PROFILE` is set (`profile`); reports on drop.
    profiler: Option<Arc<Profiler>>,
}

/// Tables a submit copies to a staging buffer, for the host to read once it is done.
struct TablesInFlight {
    /// Index of the staging buffer (`GpuBackend::staging`).
    staging: usize,
    /// Bytes of tables at its start.
    bytes: usize,
    /// The submit that writes them: the read-back waits for it and for no later one.
    submission: wgpu::SubmissionIndex,
}

/// Largest number of threads one dispatch may cover (65,535 workgroups of 64).
const MAX_INVOCATIONS: usize = 65_535 * kernel::WORKGROUP as usize;

/// Threads of the largest one-thread-per-value dispatch `train` records for `shape`: the
/// embedding updates (`SYMBOLS × 3·cells`). (The forward kernels and `layer_backward`
/// dispatch one workgroup per stream tile and block of columns, `stream_tile` and
/// `backward_tile`; `matrix_update` one per tile of its matrix, `matrix_tile`; `output_grad`
/// and `input_grad` loop over the window's stream-steps within one dispatch of any width.)
fn largest_dispatch(shape: &Shape) -> usize {
    SYMBOLS * shape.gate_rows()
}

/// Edge of the square tiles of a matrix that `matrix_update`'s workgroups own: 4, 8, 16 or 32
/// (64 threads of 4 × 4 weights each, or fewer blocks with the stream-steps split between
/// threads).
///
/// A larger tile reads the window fewer times; a smaller one gives a large GPU more
/// workgroups (16 gives 108 to 216 for the matrices of preset -5), while a software adapter's
/// few cores are kept busy by the largest. The tile decides no bit of the result.
fn matrix_tile(software: bool) -> usize {
    if software { 32 } else { 16 }
}

/// Stream-steps `matrix_update` sums in i32 before widening to i64, and the bits of the low
/// part it splits each gradient into. The asserts below hold them to `fixed`'s bounds: a
/// chunk's products `lo · x` (`lo < 2^MATRIX_LO_BITS`, `|x| ≤ ONE`) and its products `hi · x`
/// (`|hi| ≤ GRAD_LIMIT >> MATRIX_LO_BITS`) must each sum in i32, or the GPU's weight gradients
/// would wrap where the twin's i64 sums do not.
const MATRIX_STEP_CHUNK: u32 = 16;
const MATRIX_LO_BITS: u32 = 15;
const _: () = assert!(
    MATRIX_STEP_CHUNK as i64 * ((1i64 << MATRIX_LO_BITS) - 1) * fixed::ONE as i64
        <= i32::MAX as i64
);
const _: () = assert!(
    MATRIX_STEP_CHUNK as i64
        * ((fixed::GRAD_LIMIT as i64 >> MATRIX_LO_BITS) + 1)
        * fixed::ONE as i64
        <= i32::MAX as i64
);

/// Columns of the head's input that pass through workgroup memory at a time.
const HEAD_CHUNK: usize = 256;

/// Most streams one workgroup of the forward kernels handles.
const MAX_TILE: usize = 8;

/// Streams per workgroup of the forward kernels and of `input_grad`, `None` when none fits `workgroup_bytes` of
/// workgroup memory or `streams` would need more than 65,535 workgroups.
///
/// A wider tile reads each weight once for more streams; a narrower one spreads the step over
/// more of a GPU's cores, which is what a step's latency wants while there are fewer streams
/// than about 128 (the cores of a large GPU). A software adapter has only a few cores, which
/// the widest tile keeps busy. The tile decides no bit of the result.
fn stream_tile(shape: &Shape, software: bool, workgroup_bytes: usize) -> Option<usize> {
    let layer_bytes = 4 * shape.layer_inputs(shape.layers - 1);
    // `head_softmax` also keeps four `SYMBOLS`-long arrays (three trees and the frequencies).
    // (`input_grad`'s 256 bytes per stream stay below `head_softmax`'s `4 · HEAD_CHUNK`.)
    let head_bytes = 4 * HEAD_CHUNK;
    let fits = (workgroup_bytes / layer_bytes)
        .min(workgroup_bytes.saturating_sub(4 * 4 * SYMBOLS) / head_bytes)
        .min(MAX_TILE);
    let wanted = if software {
        MAX_TILE
    } else {
        shape.streams.div_ceil(128)
    };
    let tile = wanted.clamp(1, fits.max(1));
    (fits >= 1 && shape.streams.div_ceil(tile) <= kernel::MAX_GROUPS).then_some(tile)
}

/// Streams per workgroup of `layer_backward`: at most `tile` (the forward's, for the same
/// reasons), as many as fit their gate gradients (`3·cells` i32s each) in `workgroup_bytes`;
/// `None` when not one stream fits or `streams` would need more than 65,535 workgroups.
fn backward_tile(shape: &Shape, tile: usize, workgroup_bytes: usize) -> Option<usize> {
    let fits = workgroup_bytes / (4 * shape.gate_rows());
    let tile = tile.min(fits);
    (tile >= 1 && shape.streams.div_ceil(tile) <= kernel::MAX_GROUPS).then_some(tile)
}

impl GpuBackend {
    /// Opens the best usable adapter (or the first whose name contains `adapter`) and uploads a
    /// freshly initialised model for `params`.
    pub fn open(adapter: Option<&str>, params: &ModelParams) -> Result<GpuBackend, Error> {
        let adapters = usable_adapters(adapter);
        let Some(chosen) = adapters.first() else {
            return Err(Error::BackendUnavailable(context::no_adapter_message(
                adapter,
            )));
        };
        GpuBackend::on(chosen, params)
    }

    /// Uploads a freshly initialised model for `params` to `adapter`; times every dispatch
    /// when `NNGPU_GPU_PROFILE` asks for it (`profile`) and the adapter can.
    pub fn on(adapter: &wgpu::Adapter, params: &ModelParams) -> Result<GpuBackend, Error> {
        GpuBackend::new(GpuContext::open(adapter, profile::requested())?, params)
    }

    fn new(ctx: GpuContext, params: &ModelParams) -> Result<GpuBackend, Error> {
        let shape = Shape::new(params);
        let Shape {
            layers,
            cells,
            streams,
            window,
        } = shape;
        let rows = shape.gate_rows();
        let lh = shape.head_inputs();
        let steps = window * streams;
        let widest = [rows, 2 * cells, lh, SYMBOLS]
            .into_iter()
            .max()
            .unwrap_or(SYMBOLS);
        let largest_dispatch = largest_dispatch(&shape);
        if largest_dispatch > MAX_INVOCATIONS {
            return Err(Error::BackendUnavailable(format!(
                "{streams} streams of {cells} cells need {largest_dispatch} threads in one dispatch, more than {MAX_INVOCATIONS}"
            )));
        }
        let workgroup_bytes = ctx.max_workgroup_bytes as usize;
        let tiles = stream_tile(&shape, ctx.software, workgroup_bytes)
            .and_then(|tile| Some((tile, backward_tile(&shape, tile, workgroup_bytes)?)));
        let Some((tile, backward_tile)) = tiles else {
            return Err(Error::BackendUnavailable(format!(
                "{streams} streams of {cells} cells need more than the adapter's {} bytes of workgroup memory, or more than 65,535 workgroups",
                ctx.max_workgroup_bytes
            )));
        };
        // The window buffers hold `steps` rows of at most `widest` i32s; a tensor's second
        // moments are its largest buffer (u64 each).
        let largest_tensor = shape
            .tensors()
            .iter()
            .map(|t| t.values())
            .max()
            .unwrap_or(0);
        let matrix_tile = matrix_tile(ctx.software);
        let largest_buffer = (4 * steps * widest).max(8 * largest_tensor);
        if largest_buffer as u64 > ctx.max_binding {
            return Err(Error::BackendUnavailable(format!(
                "the model needs {largest_buffer}-byte buffers; the adapter binds at most {} bytes",
                ctx.max_binding
            )));
        }
        let device = &ctx.device;
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        let zeros = |label: &str, bytes: usize| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(4) as u64,
                usage: storage,
                mapped_at_creation: false,
            })
        };
        let init = |label: &str, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: storage,
            })
        };
        let (table_data, offsets) = kernel::table_data();
        let tables = init("tables", bytemuck::cast_slice(&table_data));
        let step_stride =
            (device.limits().min_uniform_buffer_offset_alignment as u64).max(kernel::STEP_BYTES);
        let step = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: step_stride * (2 * window as u64 + 1),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let inputs = zeros("inputs", 4 * steps);

        let specs = shape.tensors();
        let weights = initial_weights(&shape, params.seed);
        let mut masters = Vec::new();
        let mut moments = Vec::new();
        let mut forwards = Vec::new();
        for (spec, master) in specs.iter().zip(&weights) {
            masters.push(init("master", bytemuck::cast_slice(master)));
            moments.push(zeros("second moment", 8 * master.len()));
            let forward: Vec<i32> = match spec.role {
                TensorRole::Matrix => master
                    .iter()
                    .map(|&w| {
                        fixed::round_shift(w as i64, fixed::MASTER_FRAC - fixed::ACT_FRAC) as i32
                    })
                    .collect(),
                _ => vec![0],
            };
            forwards.push(init("forward", bytemuck::cast_slice(&forward)));
        }

        let state = 4 * layers * streams * cells;
        let h_all = zeros("h", state);
        let c_all = zeros("c", state);
        let dc_pair = [zeros("dc even", state), zeros("dc odd", state)];
        let symbols_win = zeros("symbols", 4 * steps);
        let targets_win = zeros("targets", 4 * steps);
        let head_in_win = zeros("head input", 4 * steps * lh);
        let freqs_win = zeros("freqs", FREQ_BYTES * steps * SYMBOLS);
        let probs_win = zeros("probs", 4 * steps * SYMBOLS);
        let dlogits_win = zeros("dlogits", 4 * steps * SYMBOLS);
        let dhead_win = zeros("dhead", 4 * steps * lh);
        let by_symbol = zeros("by symbol", 4 * (SYMBOLS + 1 + steps));
        let staging = std::array::from_fn(|_| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: (FREQ_BYTES * steps * SYMBOLS) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });

        let base = {
            let mut c = kernel::contract_constants(offsets);
            c.insert("LAYERS", Value::U32(layers as u32));
            c.insert("CELLS", Value::U32(cells as u32));
            c.insert("STREAMS", Value::U32(streams as u32));
            c.insert("BETA2_SHIFT", Value::U32(params.beta2_shift as u32));
            c.insert("LAYER", Value::U32(0));
            c.insert("ROWS", Value::U32(0));
            c.insert("COLS", Value::U32(0));
            c.insert("EMBEDDED", Value::Bool(false));
            c.insert("STREAM_TILE", Value::U32(tile as u32));
            c.insert("MATRIX_TILE", Value::U32(matrix_tile as u32));
            c.insert("STEP_CHUNK", Value::U32(MATRIX_STEP_CHUNK));
            c.insert("LO_BITS", Value::U32(MATRIX_LO_BITS));
            c.insert("CHUNK", Value::U32(HEAD_CHUNK as u32));
            // One cell per thread, in passes of at most 256 threads.
            c.insert(
                "WORKGROUP_SIZE",
                Value::U32(cells.next_multiple_of(32).min(256) as u32),
            );
            c
        };
        let with = |pairs: &[(&'static str, Value)]| -> Constants {
            let mut c = base.clone();
            for (k, v) in pairs {
                c.insert(k, v.clone());
            }
            c
        };
        let profiler = Profiler::open(device, &ctx.queue).map(Arc::new);
        let k = |name: &'static str, constants: &Constants, buffers: &[(&wgpu::Buffer, Access)]| {
            Kernel::new(device, name, constants, &tables, &step, buffers)
                .profiled(profiler.as_ref())
        };
        use Access::{Read, ReadWrite};

        struct LayerBuffers {
            x: wgpu::Buffer,
            gates: wgpu::Buffer,
            c_prev: wgpu::Buffer,
            tanh_c: wgpu::Buffer,
            dz: wgpu::Buffer,
            /// The input gradients of the steps that write the even and the odd buffer.
            dx: [wgpu::Buffer; 2],
        }
        let lb: Vec<LayerBuffers> = (0..layers)
            .map(|l| {
                let dx_bytes = 4 * streams * shape.layer_inputs(l);
                LayerBuffers {
                    x: zeros("x", 4 * steps * shape.layer_inputs(l)),
                    gates: zeros("gates", 4 * steps * rows),
                    c_prev: zeros("c prev", 4 * steps * cells),
                    tanh_c: zeros("tanh c", 4 * steps * cells),
                    dz: zeros("dz", 4 * steps * rows),
                    dx: [zeros("dx even", dx_bytes), zeros("dx odd", dx_bytes)],
                }
            })
            .collect();

        let mut layer_kernels = Vec::new();
        for l in 0..layers {
            let cols = shape.layer_inputs(l);
            let [wi, ei, bi] = layer_tensors(l);
            let b = &lb[l];
            let dims = with(&[
                ("LAYER", Value::U32(l as u32)),
                ("ROWS", Value::U32(rows as u32)),
                ("COLS", Value::U32(cols as u32)),
            ]);
            let embedded = with(&[
                ("LAYER", Value::U32(l as u32)),
                ("ROWS", Value::U32(rows as u32)),
                ("COLS", Value::U32(cols as u32)),
                ("EMBEDDED", Value::Bool(true)),
            ]);
            let backward_dims = with(&[
                ("LAYER", Value::U32(l as u32)),
                ("ROWS", Value::U32(rows as u32)),
                ("COLS", Value::U32(cols as u32)),
                ("STREAM_TILE", Value::U32(backward_tile as u32)),
            ]);
            // The steps that write buffer `p` of each pair read the next step's from `1 - p`
            // and the layer above's, written just before at the same step, from its `p`.
            let backward_buffers = |p: usize| -> Vec<(&wgpu::Buffer, Access)> {
                let above = if l + 1 < layers {
                    &lb[l + 1].dx[p]
                } else {
                    &b.dx[1 - p]
                };
                vec![
                    (&forwards[wi], Read),
                    (&dhead_win, Read),
                    (&b.dx[1 - p], Read),
                    (above, Read),
                    (&b.gates, Read),
                    (&b.c_prev, Read),
                    (&b.tanh_c, Read),
                    (&dc_pair[1 - p], Read),
                    (&dc_pair[p], ReadWrite),
                    (&b.dz, ReadWrite),
                    (&b.dx[p], ReadWrite),
                ]
            };
            let backward_even = k("layer_backward", &backward_dims, &backward_buffers(0));
            let odd: Vec<&wgpu::Buffer> = backward_buffers(1).into_iter().map(|(b, _)| b).collect();
            let backward_odd = backward_even.rebind(device, &tables, &step, &odd);
            layer_kernels.push(LayerKernels {
                forward: k(
                    "layer_forward",
                    &dims,
                    &[
                        (&forwards[wi], Read),
                        (&masters[ei], Read),
                        (&masters[bi], Read),
                        (&symbols_win, Read),
                        (&h_all, ReadWrite),
                        (&c_all, ReadWrite),
                        (&b.x, ReadWrite),
                        (&b.gates, ReadWrite),
                        (&b.c_prev, ReadWrite),
                        (&b.tanh_c, ReadWrite),
                        (&head_in_win, ReadWrite),
                    ],
                ),
                backward: [backward_even, backward_odd],
                update_matrix: k(
                    "matrix_update",
                    &dims,
                    &[
                        (&b.dz, Read),
                        (&b.x, Read),
                        (&masters[wi], ReadWrite),
                        (&moments[wi], ReadWrite),
                        (&forwards[wi], ReadWrite),
                    ],
                ),
                update_embedding: k(
                    "vector_update",
                    &embedded,
                    &[
                        (&b.dz, Read),
                        (&by_symbol, Read),
                        (&masters[ei], ReadWrite),
                        (&moments[ei], ReadWrite),
                    ],
                ),
                update_bias: k(
                    "vector_update",
                    &dims,
                    &[
                        (&b.dz, Read),
                        (&by_symbol, Read),
                        (&masters[bi], ReadWrite),
                        (&moments[bi], ReadWrite),
                    ],
                ),
            });
        }
        let head = shape.head_tensor();
        let head_dims = with(&[
            ("ROWS", Value::U32(SYMBOLS as u32)),
            ("COLS", Value::U32(lh as u32)),
        ]);
        let backend = GpuBackend {
            head: k(
                "head_softmax",
                &head_dims,
                &[
                    (&forwards[head], Read),
                    (&masters[head + 1], Read),
                    (&head_in_win, Read),
                    (&freqs_win, ReadWrite),
                    (&probs_win, ReadWrite),
                ],
            ),
            symbol_order: k(
                "symbol_order",
                &base,
                &[(&symbols_win, Read), (&by_symbol, ReadWrite)],
            ),
            tile,
            backward_tile,
            matrix_tile,
            step_dispatches: 0,
            backward_dispatches: 0,
            step_read_back_bytes: 0,
            output_grad: k(
                "output_grad",
                &base,
                &[
                    (&probs_win, Read),
                    (&targets_win, Read),
                    (&dlogits_win, ReadWrite),
                ],
            ),
            head_input_grad: k(
                "input_grad",
                &head_dims,
                &[
                    (&forwards[head], Read),
                    (&dlogits_win, Read),
                    (&dhead_win, ReadWrite),
                ],
            ),
            head_update: k(
                "matrix_update",
                &head_dims,
                &[
                    (&dlogits_win, Read),
                    (&head_in_win, Read),
                    (&masters[head], ReadWrite),
                    (&moments[head], ReadWrite),
                    (&forwards[head], ReadWrite),
                ],
            ),
            head_bias_update: k(
                "vector_update",
                &head_dims,
                &[
                    (&dlogits_win, Read),
                    (&by_symbol, Read),
                    (&masters[head + 1], ReadWrite),
                    (&moments[head + 1], ReadWrite),
                ],
            ),
            layers: layer_kernels,
            cleared: lb.into_iter().flat_map(|b| b.dx).chain(dc_pair).collect(),
            shape,
            step,
            step_stride,
            inputs,
            pending: None,
            symbols_win,
            targets_win,
            freqs_win,
            staging,
            ahead: None,
            masters,
            active: Vec::new(),
            freqs: Vec::new(),
            symbols: Vec::new(),
            host: HostTotals::default(),
            profiler: profiler.clone(),
            ctx,
        };
        backend.ctx.check()?;
        Ok(backend)
    }

    /// Writes `struct Step` slot `slot` (streams `first..first + streams` of the step whose
    /// stream 0 is window row `base`) and returns its byte offset.
    fn write_step(
        &self,
        slot: usize,
        (first, streams): (usize, usize),
        base: usize,
        recorded: usize,
        learning_rate_q24: u32,
    ) -> u32 {
        let uniform = StepUniform {
            streams: streams as u32,
            base: base as u32,
            recorded: recorded as u32,
            learning_rate: learning_rate_q24,
            first: first as u32,
        };
        let offset = slot as u64 * self.step_stride;
        self.ctx
            .queue
            .write_buffer(&self.step, offset, bytemuck::bytes_of(&uniform));
        offset as u32
    }

    /// Submits `encoder`'s commands, with the copy of their timestamps when profiling.
    fn submit(
        &mut self,
        mut encoder: wgpu::CommandEncoder,
    ) -> Result<wgpu::SubmissionIndex, Error> {
        if let Some(profiler) = &self.profiler {
            profiler.resolve(&mut encoder);
        }
        let submitting = Instant::now();
        let submission = self.ctx.queue.submit([encoder.finish()]);
        self.host.submitting += submitting.elapsed();
        self.host.submits += 1;
        self.ctx.check()?;
        Ok(submission)
    }

    /// Adds the timestamps of the oldest submit not yet collected, `submission`, to the
    /// profile, once it has completed (later submits may still run).
    fn collect_profile(&self, submission: &wgpu::SubmissionIndex) -> Result<(), Error> {
        match &self.profiler {
            Some(profiler) => {
                profiler.collect(|buffer, bytes| map_read(&self.ctx, buffer, bytes, submission))
            }
            None => Ok(()),
        }
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    /// Unpacks the tables of `tables` into `into` once their submit is done (later submits may
    /// still run), and collects that submit's profile: only their bytes are mapped, not the
    /// whole window's room, and straight from the mapping, so no window allocates.
    fn read_tables(&mut self, tables: &TablesInFlight, into: &mut Vec<u32>) -> Result<(), Error> {
        let staging = &self.staging[tables.staging];
        map_read_with(
            &self.ctx,
            staging,
            tables.bytes as u64,
            (&tables.submission, &mut self.host.waiting),
            |data| {
                into.clear();
                into.extend(
                    data.chunks_exact(FREQ_BYTES)
                        .map(|entry| u32::from(u16::from_le_bytes([entry[0], entry[1]]))),
                );
            },
        )?;
        self.host.read_back_bytes += tables.bytes as u64;
        self.collect_profile(&tables.submission)
    }

    /// Submits the training `train` left pending, if any, on its own (and collects its profile).
    fn submit_pending(&mut self) -> Result<(), Error> {
        if let Some(pending) = self.pending.take() {
            let submission = self.submit(pending)?;
            self.collect_profile(&submission)?;
        }
        Ok(())
    }

    /// Panics when a window run ahead has not been finished: its tables would be lost, and
    /// the model is a window ahead of what the caller can see.
    fn assert_no_window_ahead(&self) {
        assert!(
            self.ahead.is_none(),
            "finish_windows() must follow the last forward_window_ahead()"
        );
    }

    /// The profile so far (`profile::Profiler::report`), when this backend profiles.
    pub fn profile_report(&self) -> Option<String> {
        let profiler = self.profiler.as_ref()?;
        Some(profiler.report(
            &self.ctx.description,
            &self.host,
            (self.step_dispatches, self.backward_dispatches),
        ))
    }

    /// Compute dispatches the last `forward` recorded per step: one per layer and one for the
    /// head (the decoder's latency per step grows with it; training adds its dispatches to the
    /// first step of the next window).
    pub fn dispatches_per_step(&self) -> usize {
        self.step_dispatches
    }

    /// Compute dispatches the last `train` recorded for its backward pass: two for the whole
    /// window (the logits' gradient, then the head's input gradient) and one per layer and
    /// step. (The updates add one per tensor and one for `symbol_order`.)
    pub fn backward_dispatches(&self) -> usize {
        self.backward_dispatches
    }

    /// Bytes the last `forward` read back from the GPU per step it ran (a call that continues
    /// a step counts as one): `FREQ_BYTES` (2) per table entry, 512 per stream, and nothing
    /// else.
    pub fn read_back_bytes_per_step(&self) -> usize {
        self.step_read_back_bytes
    }

    /// The Q24 master weights of every tensor, in `Shape::tensors` order (for tests against
    /// the CPU twin).
    pub fn master_weights(&mut self) -> Result<Vec<Vec<i32>>, Error> {
        self.assert_no_window_ahead();
        self.submit_pending()?;
        let mut out = Vec::new();
        for master in &self.masters {
            let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("weights read-back"),
                size: master.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = self.encoder();
            encoder.copy_buffer_to_buffer(master, 0, &staging, 0, master.size());
            let submission = self.ctx.queue.submit([encoder.finish()]);
            let data = map_read(&self.ctx, &staging, master.size(), &submission)?;
            out.push(bytemuck::cast_slice(&data).to_vec());
        }
        Ok(out)
    }

    /// Records `steps` as `Backend::forward` describes them, after any training `train`
    /// left pending, and the copy of their tables to staging buffer `staging`; returns the
    /// commands and the tables' bytes there.
    fn record_forward(
        &mut self,
        first_stream: usize,
        steps: &[&[u8]],
        staging: usize,
    ) -> (wgpu::CommandEncoder, usize) {
        // `layer_backward`'s alternating gradient buffers carry a stream's gradients only
        // between steps it is active at (see its shader), so no step may be wider than the one
        // before it.
        if first_stream == 0 {
            assert!(
                self.active.len() + steps.len() <= self.shape.window,
                "train() must follow every window"
            );
            let mut widest = self.active.last().copied().unwrap_or(usize::MAX);
            for s in steps {
                assert!(
                    s.len() <= widest,
                    "the active streams of a window never grow"
                );
                widest = s.len();
            }
        } else {
            assert!(
                steps.len() == 1 && self.active.last() == Some(&first_stream),
                "a step's part must start where the step's streams end"
            );
            let before = match self.active.len() {
                0 | 1 => usize::MAX,
                n => self.active[n - 2],
            };
            assert!(
                first_stream + steps[0].len() <= before,
                "the active streams of a window never grow"
            );
        }
        // The first window row this call fills: stream `first_stream` of its first step.
        let first_row: usize = self.active.iter().sum();
        let symbols = &mut self.symbols;
        symbols.clear();
        symbols.extend(steps.iter().flat_map(|s| s.iter().map(|&x| x as u32)));
        self.ctx
            .queue
            .write_buffer(&self.inputs, 0, bytemuck::cast_slice(symbols));
        let symbols = symbols.len();
        let mut encoder = self.pending.take().unwrap_or_else(|| self.encoder());
        encoder.copy_buffer_to_buffer(
            &self.inputs,
            0,
            &self.symbols_win,
            4 * first_row as u64,
            4 * symbols as u64,
        );
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let mut base = first_row - first_stream;
            for (slot, inputs) in steps.iter().enumerate() {
                let streams = inputs.len();
                let at = self.write_step(slot, (first_stream, streams), base, 0, 0);
                let groups = streams.div_ceil(self.tile);
                for kernel in self.layers.iter().map(|lk| &lk.forward) {
                    kernel.record_groups(&mut pass, at, groups);
                }
                self.head.record_groups(&mut pass, at, groups);
                base += first_stream + streams;
            }
        }
        let bytes = FREQ_BYTES * symbols * SYMBOLS;
        encoder.copy_buffer_to_buffer(
            &self.freqs_win,
            (FREQ_BYTES * first_row * SYMBOLS) as u64,
            &self.staging[staging],
            0,
            bytes as u64,
        );
        self.step_dispatches = self.layers.len() + 1;
        self.step_read_back_bytes = bytes / steps.len().max(1);
        if first_stream == 0 {
            self.active.extend(steps.iter().map(|s| s.len()));
            self.host.steps += steps.len() as u64;
        } else if let Some(so_far) = self.active.last_mut() {
            *so_far += symbols;
        }
        (encoder, bytes)
    }

    /// Records into `encoder` the training `Backend::train` describes, over the steps recorded
    /// since the last training.
    fn record_train(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        targets: &[u8],
        learning_rate_q24: u32,
    ) {
        let recorded: usize = self.active.iter().sum();
        // The symbols' buffer is free until the next `forward` fills it again.
        let symbols = &mut self.symbols;
        symbols.clear();
        symbols.extend(targets.iter().map(|&s| u32::from(s)));
        self.ctx
            .queue
            .write_buffer(&self.targets_win, 0, bytemuck::cast_slice(symbols));
        for b in &self.cleared {
            encoder.clear_buffer(b, 0, None);
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            // The window's slot, for the kernels over all its stream-steps and the updates.
            let at = self.write_step(
                2 * self.shape.window,
                (0, 0),
                0,
                recorded,
                learning_rate_q24,
            );
            self.output_grad
                .record_strided(&mut pass, at, recorded * SYMBOLS);
            let blocks = |cols: usize| cols.div_ceil(kernel::WORKGROUP as usize);
            let window_tiles = recorded.div_ceil(self.tile).min(kernel::MAX_GROUPS);
            self.head_input_grad.record_grid(
                &mut pass,
                at,
                [window_tiles, blocks(self.shape.head_inputs())],
            );
            let mut dispatches = 2;
            let mut end = recorded;
            for (t, &streams) in self.active.iter().enumerate().rev() {
                let base = end - streams;
                let step_at =
                    self.write_step(self.shape.window + t, (0, streams), base, recorded, 0);
                let tiles = streams.div_ceil(self.backward_tile);
                for (l, lk) in self.layers.iter().enumerate().rev() {
                    lk.backward[t % 2].record_grid(
                        &mut pass,
                        step_at,
                        [tiles, blocks(self.shape.layer_inputs(l))],
                    );
                    dispatches += 1;
                }
                end = base;
            }
            self.backward_dispatches = dispatches;
            let rows = self.shape.gate_rows();
            let tiles = |rows: usize, cols: usize| {
                [
                    cols.div_ceil(self.matrix_tile),
                    rows.div_ceil(self.matrix_tile),
                ]
            };
            self.symbol_order.record_groups(&mut pass, at, 1);
            for (l, lk) in self.layers.iter().enumerate() {
                lk.update_matrix.record_grid(
                    &mut pass,
                    at,
                    tiles(rows, self.shape.layer_inputs(l)),
                );
                lk.update_embedding.record(&mut pass, at, SYMBOLS * rows);
                lk.update_bias.record(&mut pass, at, rows);
            }
            self.head_update
                .record_grid(&mut pass, at, tiles(SYMBOLS, self.shape.head_inputs()));
            self.head_bias_update.record(&mut pass, at, SYMBOLS);
        }
        self.active.clear();
    }
}

/// Waits until the GPU has run `submission` (later submits may still run).
fn wait_for(ctx: &GpuContext, submission: &wgpu::SubmissionIndex) -> Result<(), Error> {
    ctx.device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission.clone()),
            timeout: None,
        })
        .map_err(|e| Error::Gpu(e.to_string()))?;
    Ok(())
}

/// Waits for `submission` (`wait_for`), the last submit that writes `buffer`, and copies the
/// first `bytes` (a multiple of 4) of that `MAP_READ` buffer to the host.
fn map_read(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
    submission: &wgpu::SubmissionIndex,
) -> Result<Vec<u8>, Error> {
    let mut waited = std::time::Duration::ZERO;
    map_read_with(
        ctx,
        buffer,
        bytes,
        (submission, &mut waited),
        <[u8]>::to_vec,
    )
}

/// Waits for `submission` (`wait_for`), the last submit that writes `buffer`, adding the time
/// waited to `waited`, and hands the first `bytes` of that `MAP_READ` buffer to `read` while
/// they are mapped.
fn map_read_with<T>(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
    (submission, waited): (&wgpu::SubmissionIndex, &mut std::time::Duration),
    read: impl FnOnce(&[u8]) -> T,
) -> Result<T, Error> {
    let slice = buffer.slice(..bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    let waiting = Instant::now();
    wait_for(ctx, submission)?;
    *waited += waiting.elapsed();
    rx.recv()
        .map_err(|e| Error::Gpu(e.to_string()))?
        .map_err(|e| Error::Gpu(e.to_string()))?;
    let data = read(
        &slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(e.to_string()))?,
    );
    buffer.unmap();
    ctx.check()?;
    Ok(data)
}

impl Drop for GpuBackend {
    /// Prints the profile to standard error, when `NNGPU_GPU_PROFILE` asked for one.
    fn drop(&mut self) {
        if !profile::requested() {
            return;
        }
        for line in self.profile_report().iter().flat_map(|r| r.lines()) {
            write_stderr_line(line);
        }
    }
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        self.ctx.description.clone()
    }

    fn forward(&mut self, first_stream: usize, steps: &[&[u8]]) -> Result<&[u32], Error> {
        let started = Instant::now();
        self.assert_no_window_ahead();
        let (encoder, bytes) = self.record_forward(first_stream, steps, 0);
        let submission = self.submit(encoder)?;
        let tables = TablesInFlight {
            staging: 0,
            bytes,
            submission,
        };
        // Taken out for the read, which borrows the backend, and put back without allocating.
        let mut freqs = std::mem::take(&mut self.freqs);
        let read = self.read_tables(&tables, &mut freqs);
        self.freqs = freqs;
        read?;
        self.host.in_backend += started.elapsed();
        Ok(&self.freqs)
    }

    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) -> Result<(), Error> {
        let started = Instant::now();
        self.assert_no_window_ahead();
        let mut encoder = self.encoder();
        self.record_train(&mut encoder, targets, learning_rate_q24);
        self.pending = Some(encoder);
        self.host.in_backend += started.elapsed();
        Ok(())
    }

    /// One submit runs the window, copies its tables to the staging buffer the window in
    /// flight does not use, and trains on it; only then are the tables of the window before
    /// read back, so the GPU has this window queued while the host waits for and unpacks them.
    fn forward_window_ahead(
        &mut self,
        steps: &[&[u8]],
        targets: &[u8],
        learning_rate_q24: u32,
        tables: &mut Vec<u32>,
    ) -> Result<bool, Error> {
        let started = Instant::now();
        assert!(
            self.active.is_empty(),
            "a window run ahead starts where the last one was trained"
        );
        // A training `train` left pending reads the targets and the update's uniforms from the
        // buffers this window's training is about to overwrite through the queue, whose writes
        // land before the next submit's commands: it must run first.
        self.submit_pending()?;
        let staging = self.ahead.as_ref().map_or(0, |before| 1 - before.staging);
        let (mut encoder, bytes) = self.record_forward(0, steps, staging);
        self.record_train(&mut encoder, targets, learning_rate_q24);
        let submission = self.submit(encoder)?;
        let this = TablesInFlight {
            staging,
            bytes,
            submission,
        };
        let before = self.ahead.replace(this);
        if let Some(before) = &before {
            self.read_tables(before, tables)?;
        }
        self.host.in_backend += started.elapsed();
        Ok(before.is_some())
    }

    fn finish_windows(&mut self, tables: &mut Vec<u32>) -> Result<bool, Error> {
        let started = Instant::now();
        let Some(last) = self.ahead.take() else {
            return Ok(false);
        };
        self.read_tables(&last, tables)?;
        self.host.in_backend += started.elapsed();
        Ok(true)
    }
}
