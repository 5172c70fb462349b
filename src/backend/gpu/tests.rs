//! The GPU backend against the CPU twin, bit for bit: single kernels on seeded random and
//! extreme inputs, and whole models stepped and trained side by side.
//!
//! Without a usable adapter these tests print why and pass, unless `NNGPU_REQUIRE_GPU=1`,
//! which makes a missing adapter a failure (CI sets it and installs lavapipe).

use super::context::GpuContext;
use super::kernel::{self, Access, Kernel, Value};
use super::{GpuBackend, MATRIX_LO_BITS, MATRIX_STEP_CHUNK, profile, usable_adapters};
use crate::backend::Backend;
use crate::backend::cpu::{CpuBackend, kernels};
use crate::fixed::{self, SYMBOLS};
use crate::model::params::ModelParams;
use wgpu::util::DeviceExt;

/// An open device, or `None` (after saying why) when the tests should skip.
fn context() -> Option<GpuContext> {
    let required = std::env::var("NNGPU_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match usable_adapters(None)
        .first()
        .map(|a| GpuContext::open(a, false))
    {
        Some(Ok(ctx)) => Some(ctx),
        other => {
            let why = match other {
                Some(Err(e)) => e.to_string(),
                _ => "no adapter with 64-bit shader integers".to_string(),
            };
            assert!(
                !required,
                "NNGPU_REQUIRE_GPU=1 but the GPU backend cannot run: {why}"
            );
            say_skipping(&why);
            None
        }
    }
}

/// Says once per process, on the real standard error, that the GPU tests are skipped and why.
/// libtest captures `eprintln!` of passing tests, which hid this line in local runs.
fn say_skipping(why: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        super::write_stderr_line(&format!(
            "skipping the GPU kernel tests: {why} (NNGPU_REQUIRE_GPU=1 makes this a failure)"
        ));
    });
}

#[test]
fn dispatch_check_counts_the_kernels_of_one_thread_per_value() {
    use super::{MAX_INVOCATIONS, largest_dispatch};
    use crate::model::layout::Shape;
    let shape = |layers, cells, streams| Shape {
        layers,
        cells,
        streams,
        window: 20,
    };
    // The matrix updates are tiled, so the largest layers fit: the embeddings dominate.
    assert_eq!(largest_dispatch(&shape(2, 1024, 1)), SYMBOLS * 3 * 1024);
    assert!(largest_dispatch(&shape(4, 1024, 1)) <= MAX_INVOCATIONS);
    // The backward kernels are tiled or loop over the window: streams cost no threads.
    assert_eq!(
        largest_dispatch(&shape(1, 512, 65_536)),
        largest_dispatch(&shape(1, 512, 1))
    );
}

#[test]
fn backward_tiles_fit_workgroup_memory_and_the_workgroup_count() {
    use super::backward_tile;
    use crate::model::layout::Shape;
    let shape = |cells, streams| Shape {
        layers: 2,
        cells,
        streams,
        window: 20,
    };
    // The forward's tile when the gate gradients fit, fewer streams when they do not.
    assert_eq!(backward_tile(&shape(96, 64), 8, 16_384), Some(8));
    assert_eq!(backward_tile(&shape(352, 64), 8, 16_384), Some(3));
    assert_eq!(backward_tile(&shape(1024, 64), 8, 16_384), Some(1));
    assert_eq!(backward_tile(&shape(1024, 64), 8, 12_287), None);
    assert_eq!(backward_tile(&shape(1024, 65_535), 8, 16_384), Some(1));
    assert_eq!(backward_tile(&shape(1024, 65_536), 8, 16_384), None);
}

/// Seeded per test, so failures reproduce.
use crate::model::init::SplitMix64 as Rng;

impl Rng {
    /// Uniform in `[-limit, limit]`, with the extremes themselves drawn one time in eight.
    fn value(&mut self, limit: i32) -> i32 {
        match self.next() % 8 {
            0 => limit,
            1 => -limit,
            _ => (self.next() % (2 * limit as u64 + 1)) as i32 - limit,
        }
    }

    fn values(&mut self, n: usize, limit: i32) -> Vec<i32> {
        (0..n).map(|_| self.value(limit)).collect()
    }
}

/// How many threads a test dispatch covers.
#[derive(Clone, Copy)]
enum Dispatch {
    /// This many threads, for kernels of one thread per value (`Kernel::record`).
    Threads(usize),
    /// This many workgroups, for kernels of one workgroup per stream tile.
    Groups(usize),
    /// This grid of workgroups, for kernels of one workgroup per tile of two dimensions.
    Grid([usize; 2]),
}

/// Runs one kernel with `step` (`struct Step`'s fields in order) and the given buffers
/// (contents, access), and returns every buffer's contents afterwards.
fn run_kernel(
    ctx: &GpuContext,
    name: &'static str,
    extra: &[(&'static str, Value)],
    step: [u32; 5],
    buffers: &[(Vec<u32>, Access)],
    dispatch: Dispatch,
) -> Vec<Vec<u32>> {
    let device = &ctx.device;
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let (table_data, offsets) = kernel::table_data();
    let tables = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&table_data),
        usage,
    });
    let step_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&step),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let gpu: Vec<wgpu::Buffer> = buffers
        .iter()
        .map(|(data, _)| {
            let mut padded = data.clone();
            padded.resize(data.len().max(2), 0);
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(&padded),
                usage,
            })
        })
        .collect();
    let mut constants = kernel::contract_constants(offsets);
    for (k, v) in [
        ("LAYERS", Value::U32(1)),
        ("CELLS", Value::U32(0)),
        ("STREAMS", Value::U32(0)),
        ("BETA2_SHIFT", Value::U32(13)),
        ("LAYER", Value::U32(0)),
        ("ROWS", Value::U32(0)),
        ("COLS", Value::U32(0)),
        ("EMBEDDED", Value::Bool(false)),
        ("STREAM_TILE", Value::U32(1)),
        ("MATRIX_TILE", Value::U32(32)),
        ("STEP_CHUNK", Value::U32(MATRIX_STEP_CHUNK)),
        ("LO_BITS", Value::U32(MATRIX_LO_BITS)),
        ("CHUNK", Value::U32(256)),
        ("WORKGROUP_SIZE", Value::U32(64)),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    {
        constants.insert(k, v);
    }
    let bound: Vec<(&wgpu::Buffer, Access)> =
        gpu.iter().zip(buffers).map(|(b, (_, a))| (b, *a)).collect();
    let kernel = Kernel::new(device, name, &constants, &tables, &step_buffer, &bound);
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        match dispatch {
            Dispatch::Threads(n) => kernel.record(&mut pass, 0, n),
            Dispatch::Groups(n) => kernel.record_groups(&mut pass, 0, n),
            Dispatch::Grid(g) => kernel.record_grid(&mut pass, 0, g),
        }
    }
    let staging: Vec<wgpu::Buffer> = gpu
        .iter()
        .map(|b| {
            let s = device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: b.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            encoder.copy_buffer_to_buffer(b, 0, &s, 0, b.size());
            s
        })
        .collect();
    ctx.queue.submit([encoder.finish()]);
    for s in &staging {
        s.slice(..)
            .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    }
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    ctx.check().expect("no GPU error");
    staging
        .iter()
        .zip(buffers)
        .map(|(s, (data, _))| {
            let view = s.slice(..).get_mapped_range().expect("mapped");
            bytemuck::cast_slice::<u8, u32>(&view)[..data.len()].to_vec()
        })
        .collect()
}

fn as_u32(v: &[i32]) -> Vec<u32> {
    v.iter().map(|&x| x as u32).collect()
}

fn as_i32(v: &[u32]) -> Vec<i32> {
    v.iter().map(|&x| x as i32).collect()
}

fn to_i16(v: &[i32]) -> Vec<i16> {
    v.iter().map(|&x| x as i16).collect()
}

/// The constants of one layer's kernel: layers, the layer, cells, all streams, gate rows,
/// input columns and the stream tile, in that order.
fn layer_constants(values: [usize; 7]) -> [(&'static str, Value); 7] {
    let names = [
        "LAYERS",
        "LAYER",
        "CELLS",
        "STREAMS",
        "ROWS",
        "COLS",
        "STREAM_TILE",
    ];
    std::array::from_fn(|i| (names[i], Value::U32(values[i] as u32)))
}

/// Runs forward kernel `name` over the step whose stream 0 is window row `base`, one dispatch
/// per `(first, end)` stream range of `parts` in turn, as `GpuBackend::forward` runs a step in
/// parts, each in tiles of `tile` streams. Returns every buffer's contents afterwards.
fn run_forward_parts(
    ctx: &GpuContext,
    name: &'static str,
    extra: &[(&'static str, Value)],
    (base, tile): (usize, usize),
    parts: &[(usize, usize)],
    mut buffers: Vec<(Vec<u32>, Access)>,
) -> Vec<Vec<u32>> {
    for &(first, end) in parts {
        let streams = end - first;
        let step = [streams as u32, base as u32, 0, 0, first as u32];
        let groups = Dispatch::Groups(streams.div_ceil(tile));
        let out = run_kernel(ctx, name, extra, step, &buffers, groups);
        for ((data, _), after) in buffers.iter_mut().zip(out) {
            *data = after;
        }
    }
    buffers.into_iter().map(|(data, _)| data).collect()
}

/// Whole steps of 5 streams and the ways the forward kernel tests cut them into parts: halves
/// (3 and 2 streams), and three parts with one of a single stream.
const STEP_PARTS: [&[(usize, usize)]; 3] =
    [&[(0, 5)], &[(0, 3), (3, 5)], &[(0, 1), (1, 4), (4, 5)]];

/// `layer_forward` of layer `layer` (of two) against its twin: `streams` of 6 streams active,
/// from window row 3 on, in tiles of `tile` streams and passes of `threads` cells, the step in
/// dispatches over the stream ranges `parts`.
fn layer_forward_case(
    ctx: &GpuContext,
    (layer, cells, tile, threads): (usize, usize, usize, u32),
    parts: &[(usize, usize)],
) {
    let mut rng = Rng(10 + (layer * 1000 + cells * 10 + tile) as u64);
    let (layers, all, streams, base) = (2usize, 6usize, 5usize, 3usize);
    let rows = 3 * cells;
    let cols = if layer == 0 { cells } else { 2 * cells };
    let lh = layers * cells;
    let end = base + streams;
    let w = rng.values(rows * cols, 32767);
    let emb = rng.values(SYMBOLS * rows, fixed::MASTER_LIMIT);
    let bias = rng.values(rows, fixed::MASTER_LIMIT);
    let symbols: Vec<u8> = (0..end).map(|_| rng.next() as u8).collect();
    let h_all = rng.values(layers * all * cells, fixed::ONE);
    let c_all = rng.values(layers * all * cells, fixed::ONE);
    let garbage = |rng: &mut Rng, n: usize| rng.values(n, 1000);
    let x_win = garbage(&mut rng, end * cols);
    let gates_win = garbage(&mut rng, end * rows);
    let c_prev_win = garbage(&mut rng, end * cells);
    let tanh_c_win = garbage(&mut rng, end * cells);
    let head_in_win = garbage(&mut rng, end * lh);

    let state = |l: usize| l * all * cells..l * all * cells + streams * cells;
    let mut h = to_i16(&h_all[state(layer)]);
    let mut c = c_all[state(layer)].to_vec();
    let below = (layer > 0).then(|| to_i16(&h_all[state(layer - 1)]));
    let mut x = vec![0i16; streams * cols];
    let mut gates = vec![0; streams * rows];
    let mut c_prev = vec![0; streams * cells];
    let mut tanh_c = vec![0; streams * cells];
    kernels::layer_forward(
        &to_i16(&w),
        &emb,
        &bias,
        &symbols[base..],
        below.as_deref(),
        kernels::LayerRows {
            x: &mut x,
            gates: &mut gates,
            c_prev: &mut c_prev,
            tanh_c: &mut tanh_c,
            h: &mut h,
            c: &mut c,
        },
        &mut Vec::new(),
    );
    let out = run_forward_parts(
        ctx,
        "layer_forward",
        &[
            layer_constants([layers, layer, cells, all, rows, cols, tile]).as_slice(),
            &[("WORKGROUP_SIZE", Value::U32(threads))],
        ]
        .concat(),
        (base, tile),
        parts,
        vec![
            (as_u32(&w), Access::Read),
            (as_u32(&emb), Access::Read),
            (as_u32(&bias), Access::Read),
            (symbols.iter().map(|&s| s as u32).collect(), Access::Read),
            (as_u32(&h_all), Access::ReadWrite),
            (as_u32(&c_all), Access::ReadWrite),
            (as_u32(&x_win), Access::ReadWrite),
            (as_u32(&gates_win), Access::ReadWrite),
            (as_u32(&c_prev_win), Access::ReadWrite),
            (as_u32(&tanh_c_win), Access::ReadWrite),
            (as_u32(&head_in_win), Access::ReadWrite),
        ],
    );
    let widen = |v: &[i16]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
    let case = format!(
        "layer {layer}, {cells} cells, tiles of {tile}, {threads} threads, parts {parts:?}"
    );
    // This layer's state of the active streams changes; the rest stays as it was.
    let (mut want_h, mut want_c) = (h_all.clone(), c_all.clone());
    want_h[state(layer)].copy_from_slice(&widen(&h));
    want_c[state(layer)].copy_from_slice(&c);
    assert_eq!(as_i32(&out[4]), want_h, "h, {case}");
    assert_eq!(as_i32(&out[5]), want_c, "c, {case}");
    let rows_from = |before: &[i32], width: usize, new: &[i32]| {
        let mut v = before.to_vec();
        v[base * width..].copy_from_slice(new);
        v
    };
    assert_eq!(
        as_i32(&out[6]),
        rows_from(&x_win, cols, &widen(&x)),
        "x, {case}"
    );
    assert_eq!(
        as_i32(&out[7]),
        rows_from(&gates_win, rows, &gates),
        "gates, {case}"
    );
    assert_eq!(
        as_i32(&out[8]),
        rows_from(&c_prev_win, cells, &c_prev),
        "c_prev, {case}"
    );
    assert_eq!(
        as_i32(&out[9]),
        rows_from(&tanh_c_win, cells, &tanh_c),
        "tanh c, {case}"
    );
    let mut want_head = head_in_win.clone();
    for s in 0..streams {
        let at = (base + s) * lh + layer * cells;
        want_head[at..at + cells].copy_from_slice(&widen(&h[s * cells..(s + 1) * cells]));
    }
    assert_eq!(as_i32(&out[10]), want_head, "head input, {case}");
}

#[test]
fn layer_forward_matches_the_twin_in_every_tiling_whole_or_in_parts() {
    let Some(ctx) = context() else { return };
    for case in [
        (0, 16, 1, 32),
        (1, 16, 2, 32),
        (1, 40, 8, 32),
        (0, 40, 3, 64),
    ] {
        for parts in STEP_PARTS {
            layer_forward_case(&ctx, case, parts);
        }
    }
}

/// `head_softmax` against its twin for 5 streams of `cols` inputs from window row 2 on, in
/// tiles of `tile` streams and chunks of `chunk` columns, the step in dispatches over the
/// stream ranges `parts`. The tables come back as u16 pairs, the probabilities as u32.
fn head_softmax_case(
    ctx: &GpuContext,
    (w, bias, x): (&[i32], &[i32], &[i32]),
    (tile, chunk): (usize, u32),
    parts: &[(usize, usize)],
    what: &str,
) {
    let (streams, base) = (5usize, 2usize);
    let cols = w.len() / SYMBOLS;
    let (mut freqs, mut probs) = (vec![0; streams * SYMBOLS], vec![0; streams * SYMBOLS]);
    kernels::head_softmax(
        &to_i16(w),
        bias,
        &to_i16(&x[base * cols..]),
        &mut Vec::new(),
        &mut freqs,
        &mut probs,
    );
    let before = vec![7u32; (base + streams) * SYMBOLS];
    let out = run_forward_parts(
        ctx,
        "head_softmax",
        &[
            ("ROWS", Value::U32(SYMBOLS as u32)),
            ("COLS", Value::U32(cols as u32)),
            ("STREAM_TILE", Value::U32(tile as u32)),
            ("CHUNK", Value::U32(chunk)),
        ],
        (base, tile),
        parts,
        vec![
            (as_u32(w), Access::Read),
            (as_u32(bias), Access::Read),
            (as_u32(x), Access::Read),
            (before[..before.len() / 2].to_vec(), Access::ReadWrite),
            (before.clone(), Access::ReadWrite),
        ],
    );
    let case = format!("{what}, tiles of {tile}, chunks of {chunk}, parts {parts:?}");
    let pairs = base * SYMBOLS / 2;
    assert_eq!(out[3][..pairs], before[..pairs], "{case}");
    let unpacked: Vec<u32> = out[3][pairs..]
        .iter()
        .flat_map(|&pair| [pair & 0xFFFF, pair >> 16])
        .collect();
    assert_eq!(unpacked, freqs, "freqs, {case}");
    assert_eq!(out[4][..base * SYMBOLS], before[..base * SYMBOLS], "{case}");
    assert_eq!(out[4][base * SYMBOLS..], probs, "probs, {case}");
}

#[test]
fn head_softmax_matches_the_twin_on_random_flat_peaked_and_saturated_logits() {
    let Some(ctx) = context() else { return };
    let mut rng = Rng(2);
    let cols = 40;
    let n = 7 * cols;
    let random = (
        rng.values(SYMBOLS * cols, 32767),
        rng.values(SYMBOLS, fixed::MASTER_LIMIT),
        rng.values(n, fixed::ONE),
    );
    // Every logit equal: the rounding remainder goes to symbol 0.
    let flat = (vec![0; SYMBOLS * cols], vec![0; SYMBOLS], random.2.clone());
    // Two equal largest logits, at 7 and 200: the remainder goes to 7.
    let mut peak = vec![-fixed::MASTER_LIMIT; SYMBOLS];
    peak[7] = fixed::MASTER_LIMIT;
    peak[200] = fixed::MASTER_LIMIT;
    let peaked = (vec![0; SYMBOLS * cols], peak, random.2.clone());
    // Extreme weights and inputs: logits clamped at ±LOGIT_LIMIT, e^-d beyond its table.
    let signs: Vec<i32> = (0..SYMBOLS * cols)
        .map(|i| if (i / cols) % 3 == 0 { 32767 } else { -32767 })
        .collect();
    let saturated = (signs, random.1.clone(), vec![fixed::ONE; n]);
    for (what, case) in [
        ("random", &random),
        ("flat", &flat),
        ("peaked", &peaked),
        ("saturated", &saturated),
    ] {
        for (tile, chunk) in [(1, 256), (2, 16), (8, 12)] {
            for parts in STEP_PARTS {
                head_softmax_case(
                    &ctx,
                    (&case.0, &case.1, &case.2),
                    (tile, chunk),
                    parts,
                    what,
                );
            }
        }
    }
}

/// `input_grad` against its twin over a window of `n` stream-steps, in tiles of `tile`
/// stream-steps and at most `groups` workgroups across them (fewer than the tiles: each takes
/// several), with every `dz` at the gradient limits or drawn within them.
fn input_grad_case(
    ctx: &GpuContext,
    rng: &mut Rng,
    (n, rows, cols): (usize, usize, usize),
    (tile, groups): (usize, usize),
    extreme: bool,
) {
    let w = rng.values(rows * cols, 32767);
    let dz = if extreme {
        (0..n * rows)
            .map(|i| match i % 3 {
                0 => fixed::GRAD_LIMIT,
                1 => -fixed::GRAD_LIMIT,
                _ => fixed::GRAD_LIMIT - 1,
            })
            .collect()
    } else {
        rng.values(n * rows, fixed::GRAD_LIMIT)
    };
    let mut want = vec![0; n * cols];
    kernels::input_grad(n, &to_i16(&w), &dz, &mut want);
    let out = run_kernel(
        ctx,
        "input_grad",
        &[
            ("ROWS", Value::U32(rows as u32)),
            ("COLS", Value::U32(cols as u32)),
            ("STREAM_TILE", Value::U32(tile as u32)),
        ],
        [0, 0, n as u32, 0, 0],
        &[
            (as_u32(&w), Access::Read),
            (as_u32(&dz), Access::Read),
            (vec![0; n * cols], Access::ReadWrite),
        ],
        Dispatch::Grid([groups.min(n.div_ceil(tile)), cols.div_ceil(64)]),
    );
    assert_eq!(
        as_i32(&out[2]),
        want,
        "{n} stream-steps, {rows} × {cols}, tiles of {tile}, {groups} groups, extreme: {extreme}"
    );
}

#[test]
fn input_grad_matches_the_twin_in_every_tiling_and_at_the_gradient_limits() {
    let Some(ctx) = context() else { return };
    let mut rng = Rng(3);
    for (dims, tiling) in [
        ((3, 48, 16), (1, 65_535)),
        ((25, 96, 40), (3, 2)),
        ((37, 256, 136), (8, 65_535)),
        ((37, 256, 136), (8, 3)),
        ((4, 24, 8), (8, 1)),
        ((61, 256, 72), (1, 7)),
    ] {
        for extreme in [false, true] {
            input_grad_case(&ctx, &mut rng, dims, tiling, extreme);
        }
    }
}

#[test]
fn output_grad_matches_the_twin_over_the_window_in_any_dispatch_width() {
    let Some(ctx) = context() else { return };
    let mut rng = Rng(11);
    for (n, threads) in [(1, 64), (7, 7 * SYMBOLS), (23, 640), (40, 64)] {
        for extreme in [false, true] {
            // Certain predictions, right and wrong (probabilities 0 and 1, Q16), or any.
            let probs: Vec<u32> = (0..n * SYMBOLS)
                .map(|i| match (extreme, i % 3) {
                    (true, 0) => 0,
                    (true, _) => fixed::FREQ_TOTAL,
                    (false, _) => (rng.next() % (fixed::FREQ_TOTAL as u64 + 1)) as u32,
                })
                .collect();
            let targets: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let mut want = vec![0; n * SYMBOLS];
            kernels::output_grad(&probs, &targets, &mut want);
            let out = run_kernel(
                &ctx,
                "output_grad",
                &[],
                [0, 0, n as u32, 0, 0],
                &[
                    (probs, Access::Read),
                    (targets.iter().map(|&t| t as u32).collect(), Access::Read),
                    (vec![7; n * SYMBOLS], Access::ReadWrite),
                ],
                Dispatch::Threads(threads),
            );
            assert_eq!(
                as_i32(&out[2]),
                want,
                "{n} stream-steps, {threads} threads, extreme: {extreme}"
            );
        }
    }
}

/// A model's shape for `layer_backward_case`: layers, the layer tested, cells.
type Layer = (usize, usize, usize);

/// `layer_backward` of one layer against its twin: `streams` of 7 streams active from window
/// row 2 on, in tiles of `tile` streams, on forward values and gradients at their extremes
/// (saturated gates, the largest gradients and weights) or drawn within them.
fn layer_backward_case(
    ctx: &GpuContext,
    rng: &mut Rng,
    (layers, layer, cells): Layer,
    (streams, tile): (usize, usize),
    extreme: bool,
) {
    let (all, base) = (7usize, 2usize);
    let end = base + streams + 1;
    let rows = 3 * cells;
    let cols = if layer == 0 { cells } else { 2 * cells };
    let lh = layers * cells;
    let top = layer + 1 == layers;
    let one = fixed::ONE;
    // A value within [lo, hi], or one of the two ends.
    let mut draw = |n: usize, lo: i32, hi: i32| -> Vec<i32> {
        (0..n)
            .map(|_| match (extreme, rng.next() % 2) {
                (true, 0) => lo,
                (true, _) => hi,
                _ => lo + (rng.next() % (hi - lo + 1) as u64) as i32,
            })
            .collect()
    };
    let w = draw(rows * cols, -32767, 32767);
    let gates: Vec<i32> = {
        let sigmoids = draw(end * rows, 0, one);
        let tanhs = draw(end * rows, -one, one);
        (0..end * rows)
            .map(|i| {
                if i % rows < 2 * cells {
                    sigmoids[i]
                } else {
                    tanhs[i]
                }
            })
            .collect()
    };
    let c_prev = draw(end * cells, -one, one);
    let tanh_c = draw(end * cells, -one, one);
    let g = fixed::GRAD_LIMIT;
    let dhead = draw(end * lh, -g, g);
    let dx_next = draw(all * cols, -g, g);
    let dx_above = draw(all * 2 * cells, -g, g);
    let dc_next = draw(layers * all * cells, -g, g);
    let garbage = |n: usize| {
        (0..n)
            .map(|i| (i as i32 % 1000) - 500)
            .collect::<Vec<i32>>()
    };
    let (dc_before, dz_before, dx_before) = (
        garbage(layers * all * cells),
        garbage(end * rows),
        garbage(all * cols),
    );

    let state = layer * all * cells;
    let mut dc = dc_next[state..state + streams * cells].to_vec();
    let mut dz = vec![0; streams * rows];
    let mut dx = dx_next[..streams * cols].to_vec();
    let w16 = to_i16(&w);
    let matrix = kernels::RowPairs::new(kernels::Isa::active(), &w16, rows, cols);
    let at = base..base + streams;
    kernels::layer_backward(
        &matrix,
        &kernels::CellTrace {
            gates: &gates[at.start * rows..at.end * rows],
            c_prev: &c_prev[at.start * cells..at.end * cells],
            tanh_c: &tanh_c[at.start * cells..at.end * cells],
        },
        kernels::HiddenGrads {
            head: &dhead[at.start * lh..at.end * lh],
            head_offset: layer * cells,
            above: (!top).then(|| &dx_above[..streams * 2 * cells]),
        },
        &mut Vec::new(),
        &mut dc,
        &mut dz,
        &mut dx,
    );
    let out = run_kernel(
        ctx,
        "layer_backward",
        &layer_constants([layers, layer, cells, all, rows, cols, tile]),
        [streams as u32, base as u32, 0, 0, 0],
        &[
            (as_u32(&w), Access::Read),
            (as_u32(&dhead), Access::Read),
            (as_u32(&dx_next), Access::Read),
            (as_u32(&dx_above), Access::Read),
            (as_u32(&gates), Access::Read),
            (as_u32(&c_prev), Access::Read),
            (as_u32(&tanh_c), Access::Read),
            (as_u32(&dc_next), Access::Read),
            (as_u32(&dc_before), Access::ReadWrite),
            (as_u32(&dz_before), Access::ReadWrite),
            (as_u32(&dx_before), Access::ReadWrite),
        ],
        Dispatch::Grid([streams.div_ceil(tile), cols.div_ceil(64)]),
    );
    let case = format!(
        "layer {layer} of {layers}, {cells} cells, {streams} streams in tiles of {tile}, extreme: {extreme}"
    );
    // Only the active streams' rows change, each written once.
    let mut want_dc = dc_before.clone();
    want_dc[state..state + streams * cells].copy_from_slice(&dc);
    let mut want_dz = dz_before.clone();
    want_dz[base * rows..(base + streams) * rows].copy_from_slice(&dz);
    let mut want_dx = dx_before.clone();
    want_dx[..streams * cols].copy_from_slice(&dx);
    assert_eq!(as_i32(&out[8]), want_dc, "dc, {case}");
    assert_eq!(as_i32(&out[9]), want_dz, "dz, {case}");
    assert_eq!(as_i32(&out[10]), want_dx, "dx, {case}");
}

#[test]
fn layer_backward_matches_the_twin_in_every_tiling_and_at_the_limits() {
    let Some(ctx) = context() else { return };
    let mut rng = Rng(12);
    // One layer; the bottom, middle and top of deeper models; one and several blocks of 64
    // input columns.
    for layer in [(1, 0, 16), (2, 0, 40), (2, 1, 40), (3, 1, 72), (2, 0, 72)] {
        for (streams, tile) in [(5, 1), (5, 3), (5, 8), (1, 8), (7, 2)] {
            for extreme in [false, true] {
                layer_backward_case(&ctx, &mut rng, layer, (streams, tile), extreme);
            }
        }
    }
}

/// `matrix_update` of a `rows × cols` matrix over `n` stream-steps against its twin, in tiles
/// of `tile`, with every `dz` and `x` at their limits (`extreme`) or drawn within them.
fn matrix_update_case(
    ctx: &GpuContext,
    rng: &mut Rng,
    (n, rows, cols): (usize, usize, usize),
    tile: usize,
    extreme: bool,
) {
    let (dz, x) = if extreme {
        // The largest low and high parts of `dz` (2^27 - 1) and ±2^27, against x = ±ONE: the
        // bounds `matrix_update.wgsl`'s chunk sums are sized for (mostly of one sign, so a
        // chunk of twice its 16 stream-steps would overflow `i32`).
        let dz = (0..n * rows)
            .map(|i| match (i / rows) % 8 {
                0..6 => fixed::GRAD_LIMIT - 1,
                6 => fixed::GRAD_LIMIT,
                _ => -fixed::GRAD_LIMIT,
            })
            .collect();
        let x = (0..n * cols)
            .map(|i| {
                if (i + i / cols) % 7 == 0 {
                    -fixed::ONE
                } else {
                    fixed::ONE
                }
            })
            .collect();
        (dz, x)
    } else {
        (
            rng.values(n * rows, fixed::GRAD_LIMIT),
            rng.values(n * cols, fixed::ONE),
        )
    };
    let mut master = rng.values(rows * cols, fixed::MASTER_LIMIT);
    let mut moments: Vec<u64> = (0..rows * cols)
        .map(|i| {
            if i % 3 == 0 {
                0
            } else {
                rng.next() >> (i % 40)
            }
        })
        .collect();
    let mut forward = vec![0i16; rows * cols];
    let gpu_in = (master.clone(), moments.clone());
    let opt = kernels::Optimizer {
        lr_q24: 67_108,
        beta2_shift: 13,
    };
    let part = kernels::RowsMut {
        first_row: 0,
        master: &mut master,
        second_moment: &mut moments,
        forward: &mut forward,
    };
    kernels::matrix_update(&opt, &dz, &to_i16(&x), rows, part);
    let out = run_kernel(
        ctx,
        "matrix_update",
        &[
            ("ROWS", Value::U32(rows as u32)),
            ("COLS", Value::U32(cols as u32)),
            ("MATRIX_TILE", Value::U32(tile as u32)),
        ],
        [0, 0, n as u32, 67_108, 0],
        &[
            (as_u32(&dz), Access::Read),
            (as_u32(&x), Access::Read),
            (as_u32(&gpu_in.0), Access::ReadWrite),
            (bytemuck::cast_slice(&gpu_in.1).to_vec(), Access::ReadWrite),
            (vec![0; rows * cols], Access::ReadWrite),
        ],
        Dispatch::Grid([cols.div_ceil(tile), rows.div_ceil(tile)]),
    );
    let case = format!("{n} steps, {rows} × {cols}, tiles of {tile}, extreme: {extreme}");
    assert_eq!(as_i32(&out[2]), master, "master, {case}");
    assert_eq!(
        bytemuck::cast_slice::<u32, u64>(&out[3]),
        moments.as_slice(),
        "second moments, {case}"
    );
    assert_eq!(
        as_i32(&out[4]),
        forward.iter().map(|&v| v as i32).collect::<Vec<_>>(),
        "forward, {case}"
    );
}

#[test]
fn matrix_update_matches_the_twin_in_every_tiling_and_at_the_limits() {
    let Some(ctx) = context() else { return };
    let mut rng = Rng(4);
    for (dims, tile) in [
        ((7, 16, 24), 32),
        ((37, 48, 40), 16),
        ((40, 24, 16), 8),
        ((17, 72, 48), 32),
        ((5, 8, 8), 4),
        ((70, 32, 32), 32),
    ] {
        for extreme in [false, true] {
            matrix_update_case(&ctx, &mut rng, dims, tile, extreme);
        }
    }
}

#[test]
fn embedding_and_bias_updates_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut rng = Rng(5);
    let (n, rows, lr) = (37usize, 12usize, 67_108u32);
    // A few frequent symbols, some rare ones, most never seen.
    let symbols: Vec<u8> = (0..n)
        .map(|_| match rng.next() % 4 {
            0 => rng.next() as u8,
            _ => b"ab\xff\0"[(rng.next() % 4) as usize],
        })
        .collect();
    let dz = rng.values(n * rows, fixed::GRAD_LIMIT);
    let moments = |rng: &mut Rng, len: usize| -> Vec<u64> {
        (0..len)
            .map(|i| {
                if i % 3 == 0 {
                    0
                } else {
                    rng.next() >> (i % 40)
                }
            })
            .collect()
    };
    let opt = kernels::Optimizer {
        lr_q24: lr as i64,
        beta2_shift: 13,
    };
    let order = run_kernel(
        &ctx,
        "symbol_order",
        &[],
        [0, 0, n as u32, 0, 0],
        &[
            (symbols.iter().map(|&s| s as u32).collect(), Access::Read),
            (vec![0; SYMBOLS + 1 + n], Access::ReadWrite),
        ],
        Dispatch::Groups(1),
    )
    .swap_remove(1);
    for embedded in [true, false] {
        let len = if embedded { SYMBOLS * rows } else { rows };
        let master = rng.values(len, fixed::MASTER_LIMIT);
        let v = moments(&mut rng, len);
        let (mut want_w, mut want_v) = (master.clone(), v.clone());
        if embedded {
            let mut grad = Vec::new();
            kernels::embedding_update(&opt, &dz, &symbols, &mut want_w, &mut want_v, &mut grad);
        } else {
            kernels::bias_update(&opt, &dz, &mut want_w, &mut want_v);
        }
        let out = run_kernel(
            &ctx,
            "vector_update",
            &[
                ("ROWS", Value::U32(rows as u32)),
                ("EMBEDDED", Value::Bool(embedded)),
            ],
            [0, 0, n as u32, lr, 0],
            &[
                (as_u32(&dz), Access::Read),
                (order.clone(), Access::Read),
                (as_u32(&master), Access::ReadWrite),
                (bytemuck::cast_slice(&v).to_vec(), Access::ReadWrite),
            ],
            Dispatch::Threads(len),
        );
        assert_eq!(as_i32(&out[2]), want_w, "embedded: {embedded}");
        assert_eq!(
            bytemuck::cast_slice::<u32, u64>(&out[3]),
            want_v.as_slice(),
            "embedded: {embedded}"
        );
    }
}

/// How `models_agree` feeds the GPU backend its steps.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Calls {
    /// One step per `forward` call.
    Steps,
    /// A whole window per call, as the encoder does.
    Windows,
    /// Each step in two calls, the streams cut into halves as the decoder does (the first
    /// `streams.div_ceil(2)`, then the rest, if any).
    Halves,
}

/// The input symbols and the targets of `steps` seeded steps of `streams` streams: streams
/// drop out near the end, as the last segments of an input do (first one, leaving the second
/// half shorter, then the whole second half); mostly a repeating pattern, so the model has
/// something to learn.
fn seeded_steps(streams: usize, steps: usize, seed: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut rng = Rng(seed);
    let mut inputs: Vec<Vec<u8>> = vec![vec![0u8; streams]];
    let mut targets: Vec<Vec<u8>> = Vec::new();
    for t in 0..steps {
        let active = match steps - t {
            ..=3 => streams.div_ceil(2),
            4..=5 => (streams - 1).max(streams.div_ceil(2)),
            _ => streams,
        };
        let next: Vec<u8> = (0..active)
            .map(|s| {
                if rng.next().is_multiple_of(4) {
                    rng.next() as u8
                } else {
                    b"abcab"[(t + s) % 5]
                }
            })
            .collect();
        inputs[t].truncate(active);
        targets.push(next.clone());
        inputs.push(next);
    }
    inputs.truncate(steps);
    (inputs, targets)
}

/// Steps and trains both backends on the same seeded symbols and compares every frequency
/// table and, at the end, every weight. The CPU twin runs one whole step at a time; the GPU
/// as `calls` says.
fn models_agree(params: ModelParams, steps: usize, seed: u64, calls: Calls) {
    let Some(_) = context() else { return };
    let mut gpu = GpuBackend::open(None, &params).expect("GPU backend opens");
    let mut cpu = CpuBackend::new(&params);
    let streams = params.streams as usize;
    let window = params.window as usize;
    let (inputs, targets) = seeded_steps(streams, steps, seed);
    for start in (0..steps).step_by(window) {
        let end = (start + window).min(steps);
        let mut want = Vec::new();
        for step in &inputs[start..end] {
            want.extend_from_slice(cpu.forward(0, &[step]).unwrap());
        }
        let mut got = Vec::new();
        match calls {
            Calls::Windows => {
                let batch: Vec<&[u8]> = inputs[start..end].iter().map(|s| s.as_slice()).collect();
                got.extend_from_slice(gpu.forward(0, &batch).unwrap());
            }
            Calls::Steps => {
                for step in &inputs[start..end] {
                    got.extend_from_slice(gpu.forward(0, &[step]).unwrap());
                }
            }
            Calls::Halves => {
                let half = streams.div_ceil(2);
                for step in &inputs[start..end] {
                    let cut = half.min(step.len());
                    got.extend_from_slice(gpu.forward(0, &[&step[..cut]]).unwrap());
                    if cut < step.len() {
                        got.extend_from_slice(gpu.forward(cut, &[&step[cut..]]).unwrap());
                        let streams = step.len() - cut;
                        assert_eq!(gpu.read_back_bytes_per_step(), 2 * SYMBOLS * streams);
                    }
                }
            }
        }
        assert_eq!(gpu.dispatches_per_step(), params.layers as usize + 1);
        assert!(
            want == got,
            "frequency tables differ in the window at step {start}"
        );
        if end - start == window {
            let targets = targets[start..end].concat();
            cpu.train(&targets, params.learning_rate_q24).unwrap();
            gpu.train(&targets, params.learning_rate_q24).unwrap();
            assert_eq!(
                gpu.backward_dispatches(),
                2 + params.layers as usize * window
            );
        }
    }
    assert_same_weights(&mut gpu, &cpu);
}

/// Checks that the GPU's master weights equal the twin's, tensor by tensor.
fn assert_same_weights(gpu: &mut GpuBackend, cpu: &CpuBackend) {
    let want: Vec<Vec<i32>> = cpu
        .master_weights()
        .into_iter()
        .map(|w| w.to_vec())
        .collect();
    assert_eq!(gpu.master_weights().unwrap(), want);
}

#[test]
fn one_layer_one_stream_agrees_with_the_twin() {
    let params = ModelParams {
        layers: 1,
        cells: 16,
        streams: 1,
        window: 5,
        learning_rate_q24: 67_108,
        beta2_shift: 13,
        seed: 7,
        mix_log2: 16,
        block_log2: 16,
        lstm_stride: 1,
    };
    models_agree(params, 23, 5, Calls::Steps);
}

/// Three small layers and six streams, a fast learning rate and β2: what shows a drift soon.
const SMALL_LAYERS: ModelParams = ModelParams {
    layers: 3,
    cells: 8,
    streams: 6,
    window: 4,
    learning_rate_q24: 200_000,
    beta2_shift: 6,
    seed: 9,
    mix_log2: 16,
    block_log2: 16,
    lstm_stride: 1,
};

#[test]
fn three_layers_and_several_streams_agree_with_the_twin() {
    let params = SMALL_LAYERS;
    for calls in [Calls::Steps, Calls::Windows, Calls::Halves] {
        models_agree(params, 21, 6, calls);
    }
}

/// Runs seeded windows on the GPU through `forward_window_ahead`, except window `plain`,
/// which runs through `forward` and `train` (so the runs ahead end with `finish_windows`, and
/// start again after a `train` left pending), and on the CPU twin through `forward` and
/// `train`; every window trains, the last short one too, each at a rate of its own. Checks
/// that each window's tables come back once, one call late, identical to the twin's, and that
/// the weights end identical.
fn windows_ahead_agree(params: ModelParams, steps: usize, seed: u64, plain: usize) {
    let Some(_) = context() else { return };
    let mut gpu = GpuBackend::open(None, &params).expect("GPU backend opens");
    let mut cpu = CpuBackend::new(&params);
    let window = params.window as usize;
    let (inputs, targets) = seeded_steps(params.streams as usize, steps, seed);
    let (mut want, mut got) = (Vec::new(), Vec::new());
    let mut tables = Vec::new();
    let mut ahead = false;
    for (w, start) in (0..steps).step_by(window).enumerate() {
        let end = (start + window).min(steps);
        let batch: Vec<&[u8]> = inputs[start..end].iter().map(Vec::as_slice).collect();
        let targets = targets[start..end].concat();
        // A window trained at another window's rate would show in the weights.
        let rate = params.learning_rate_q24 + 1000 * w as u32;
        want.push(cpu.forward(0, &batch).unwrap().to_vec());
        cpu.train(&targets, rate).unwrap();
        if w == plain {
            assert_eq!(gpu.finish_windows(&mut tables).unwrap(), ahead);
            if ahead {
                got.push(tables.clone());
            }
            got.push(gpu.forward(0, &batch).unwrap().to_vec());
            gpu.train(&targets, rate).unwrap();
            ahead = false;
        } else {
            let given = gpu
                .forward_window_ahead(&batch, &targets, rate, &mut tables)
                .unwrap();
            assert_eq!(given, ahead, "window {w}: tables come one call late");
            if given {
                got.push(tables.clone());
            }
            ahead = true;
        }
    }
    assert_eq!(gpu.finish_windows(&mut tables).unwrap(), ahead);
    if ahead {
        got.push(tables.clone());
    }
    assert!(!gpu.finish_windows(&mut tables).unwrap());
    assert_eq!(got.len(), want.len());
    for (w, (got, want)) in got.iter().zip(&want).enumerate() {
        assert!(got == want, "frequency tables differ in window {w}");
    }
    assert_same_weights(&mut gpu, &cpu);
}

#[test]
fn windows_run_ahead_agree_with_the_twin_forwarding_and_training() {
    // 23 steps in windows of 4: the streams shrink inside the fifth window and again at the
    // start of the sixth, which is short (3 steps).
    let params = ModelParams {
        layers: 2,
        ..SMALL_LAYERS
    };
    for plain in [2, 5, usize::MAX] {
        windows_ahead_agree(params, 23, 6, plain);
    }
    windows_ahead_agree(PARTIAL_TILES, 17, 8, 0);
}

/// A profiled GPU backend and a plain one of the same small model (3 streams, window 4), or
/// `None` (the test skips) without an adapter with timestamp queries inside passes.
fn profiled_and_plain() -> Option<(GpuBackend, GpuBackend)> {
    context()?;
    let adapters = usable_adapters(None);
    let params = ModelParams {
        layers: 1,
        cells: 16,
        streams: 3,
        window: 4,
        learning_rate_q24: 67_108,
        beta2_shift: 13,
        seed: 7,
        mix_log2: 16,
        block_log2: 16,
        lstm_stride: 1,
    };
    let ctx = GpuContext::open(&adapters[0], true).expect("device opens");
    if profile::features(ctx.device.features()).is_empty() {
        say_skipping("the adapter has no timestamp queries inside passes");
        return None;
    }
    let profiled = GpuBackend::new(ctx, &params).expect("GPU backend opens");
    let plain = GpuBackend::open(None, &params).expect("GPU backend opens");
    Some((profiled, plain))
}

/// Column `n` (0: the name) of `kernel`'s row in a profile `report`.
fn profile_column(report: &str, kernel: &str, n: usize) -> f64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{kernel} ")))
        .unwrap_or_else(|| panic!("no {kernel} line in\n{report}"));
    line.split_whitespace().nth(n).unwrap().parse().unwrap()
}

/// A profiled backend times every dispatch by kernel, and profiling changes no table.
#[test]
fn the_profile_counts_every_dispatch_and_changes_nothing() {
    let Some((mut profiled, mut plain)) = profiled_and_plain() else {
        return;
    };
    assert!(plain.profile_report().is_none());
    let steps = [[1u8, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]];
    for _ in 0..2 {
        for step in &steps {
            let want = plain.forward(0, &[step]).unwrap().to_vec();
            assert_eq!(profiled.forward(0, &[step]).unwrap(), want.as_slice());
        }
        let targets: Vec<u8> = steps.iter().flatten().copied().collect();
        plain.train(&targets, 1 << 12).unwrap();
        profiled.train(&targets, 1 << 12).unwrap();
    }
    // The second window's forward steps carry the first window's training.
    profiled.forward(0, &[&steps[0]]).unwrap();
    let report = profiled.profile_report().expect("a profile");
    let dispatches = |kernel: &str| profile_column(&report, kernel, 1);
    assert_eq!(dispatches("layer_forward"), 9.0, "{report}");
    assert_eq!(dispatches("head_softmax"), 9.0, "{report}");
    assert_eq!(dispatches("matrix_update"), 4.0, "{report}");
    assert!(report.contains("9 steps"), "{report}");
}

/// Profiling windows run ahead, with two submits in flight at a time, times every dispatch of
/// each submit once and changes no table.
#[test]
fn the_profile_of_windows_run_ahead_times_every_submit_and_changes_nothing() {
    let Some((mut profiled, mut plain)) = profiled_and_plain() else {
        return;
    };
    let window: [&[u8]; 4] = [&[1, 2, 3], &[4, 5, 6], &[7, 8, 9], &[10, 11, 12]];
    let targets: Vec<u8> = window.iter().copied().flatten().copied().collect();
    let (mut want, mut got) = (Vec::new(), Vec::new());
    let mut tables = Vec::new();
    for _ in 0..3 {
        want.push(plain.forward(0, &window).unwrap().to_vec());
        plain.train(&targets, 1 << 12).unwrap();
        if profiled
            .forward_window_ahead(&window, &targets, 1 << 12, &mut tables)
            .unwrap()
        {
            got.push(tables.clone());
        }
    }
    assert!(profiled.finish_windows(&mut tables).unwrap());
    got.push(tables.clone());
    assert!(got == want, "profiling changed a table");
    let report = profiled.profile_report().expect("a profile");
    let column = |kernel: &str, n: usize| profile_column(&report, kernel, n);
    assert_eq!(column("layer_forward", 1), 12.0, "{report}");
    assert_eq!(column("head_softmax", 1), 12.0, "{report}");
    assert_eq!(column("matrix_update", 1), 6.0, "{report}");
    assert!(column("layer_forward", 3) > 0.0, "no GPU time: {report}");
    assert!(report.contains("12 steps in 3 submits"), "{report}");
}

/// Layers of several column blocks, and 11 streams: tiles of streams left partly empty.
const PARTIAL_TILES: ModelParams = ModelParams {
    layers: 2,
    cells: 48,
    streams: 11,
    window: 5,
    learning_rate_q24: 150_000,
    beta2_shift: 8,
    seed: 3,
    mix_log2: 16,
    block_log2: 16,
    lstm_stride: 1,
};

#[test]
fn layers_of_several_column_blocks_and_partial_tiles_agree_with_the_twin() {
    models_agree(PARTIAL_TILES, 17, 8, Calls::Windows);
    models_agree(PARTIAL_TILES, 17, 8, Calls::Halves);
}
