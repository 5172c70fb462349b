// Shared by every kernel: the arithmetic contract's helpers. The constants they use
// (ACT_FRAC, ONE, *_LIMIT, table offsets, …) are injected from `src/fixed.rs` above this file.

@group(0) @binding(0) var<storage, read> tables: array<i32>;

// Round-half-up right shift, as `fixed::round_shift`.
fn round_shift(x: i64, s: u32) -> i64 {
    return (x + ((i64(1) << s) >> 1u)) >> s;
}

fn clamp_i32(x: i64, limit: i32) -> i32 {
    return i32(clamp(x, -i64(limit), i64(limit)));
}

// Linear interpolation in a table sampled every 1/64 of a Q12 input, as `fixed::interpolate`.
fn interpolate(offset: u32, x: i32) -> i32 {
    let i = offset + u32(x >> TABLE_STEP_BITS);
    let frac = x & ((1 << TABLE_STEP_BITS) - 1);
    let lo = tables[i];
    let hi = tables[i + 1u];
    return lo + (((hi - lo) * frac + (1 << (TABLE_STEP_BITS - 1u))) >> TABLE_STEP_BITS);
}

fn sigmoid(z: i32) -> i32 {
    return interpolate(SIGMOID_OFFSET, clamp(z, -PREACT_LIMIT, PREACT_LIMIT - 1) + PREACT_LIMIT);
}

fn tanh_q(z: i32) -> i32 {
    return interpolate(TANH_OFFSET, clamp(z, -PREACT_LIMIT, PREACT_LIMIT - 1) + PREACT_LIMIT);
}

fn exp_neg(d: i32) -> i32 {
    if d >= (i32(TABLE_INTERVALS) << TABLE_STEP_BITS) {
        return 0;
    }
    return interpolate(EXP_OFFSET, d);
}

// One Adam step of one weight, as `kernels::adam_step`. Returns `state` unchanged when `sum`
// is 0.
struct AdamState {
    w: i32,
    v: u64,
}

fn adam_step(sum: i64, state: AdamState) -> AdamState {
    if sum == 0 {
        return state;
    }
    let g = clamp(round_shift(sum, ADAM_GRAD_SHIFT), -i64(2147483647), i64(2147483647));
    let sq = u64(g * g);
    var v = sq;
    if state.v != 0lu {
        v = state.v - (state.v >> BETA2_SHIFT) + (sq >> BETA2_SHIFT);
    }
    let hi = u32(v >> 32u);
    let lo = u32(v);
    var bits = 32u - countLeadingZeros(lo);
    if hi != 0u {
        bits = 64u - countLeadingZeros(hi);
    }
    let shift = select(0u, (bits - RSQRT_NORM_BITS) / 2u, bits > RSQRT_NORM_BITS);
    let m = u32(v >> (2u * shift)) & (RSQRT_ENTRIES - 1u);
    let mantissa = i64(tables[RSQRT_OFFSET + m]);
    let ratio = round_shift(g * mantissa, shift);
    let step = round_shift(i64(step.learning_rate) * ratio, RSQRT_FRAC);
    return AdamState(clamp_i32(i64(state.w) - step, MASTER_LIMIT), v);
}

// Per-dispatch values.
struct Step {
    // Streams this dispatch covers: `first..first + streams` of the step (the forward kernels
    // may run a step in parts; every other kernel covers a whole step, from stream 0).
    streams: u32,
    // Index of this step's stream 0 in the window buffers: stream s of the step is row
    // base + s, whichever dispatch runs it.
    base: u32,
    // Stream-steps recorded in the window (for the updates).
    recorded: u32,
    // Adam's learning rate for the updates, Q24 (`model::schedule::learning_rate_q24`).
    learning_rate: u32,
    // The first stream this dispatch covers.
    first: u32,
}
@group(0) @binding(1) var<uniform> step: Step;

// The tile of workgroup `group` of a forward dispatch: its first stream and how many of the
// dispatch's streams it holds (STREAM_TILE, or fewer in the last tile).
fn forward_tile(group: u32) -> vec2<u32> {
    let first = step.first + group * STREAM_TILE;
    return vec2<u32>(first, min(STREAM_TILE, step.first + step.streams - first));
}
