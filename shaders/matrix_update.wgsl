// Weight gradient and Adam step of a ROWS × COLS matrix, as `kernels::matrix_update`:
// `G[r][k] = Σ_j dz[j][r] · x[j][k]` over the window's stream-steps j, then `adam_step`.
//
// A tiled reduction: one workgroup of THREADS threads per MATRIX_TILE × MATRIX_TILE tile of the
// matrix (workgroup (x, y) owns column tile x and row tile y). The stream-steps pass through
// workgroup memory STEP_CHUNK at a time, the tile's columns of dz and of x, so each value is
// read from the window once per tile instead of once per weight. Each thread owns a 4 × 4
// block of the tile and every SPLIT-th stream-step of a chunk (SPLIT > 1 when the tile has
// fewer blocks than threads); the SPLIT partial sums of a weight are added at the end.
//
// Exactness, so the order of the additions does not matter: dz is split as
// `dz = hi · 2^LO_BITS + lo` with `lo` in [0, 2^LO_BITS) and `|hi| ≤ GRAD_LIMIT >> LO_BITS`;
// x is an activation, `|x| ≤ ONE` (`fixed`). STEP_CHUNK and LO_BITS come from Rust
// (`MATRIX_STEP_CHUNK`, `MATRIX_LO_BITS` in `backend/gpu/mod.rs`), where compile-time
// assertions check against `fixed`'s bounds that a chunk's STEP_CHUNK products `lo · x`, and
// its products `hi · x`, sum in i32 without overflow. The chunk sums go into i64 totals, each a partial sum of the full gradient,
// whose products are at most 2^27 · 2^12 = 2^39 over at most 2^22 stream-steps: below 2^61
// (`fixed`'s bound). No atomics, no subgroup operations.
@group(0) @binding(2) var<storage, read> dz_win: array<i32>;
@group(0) @binding(3) var<storage, read> x_win: array<i32>;
@group(0) @binding(4) var<storage, read_write> master: array<i32>;
@group(0) @binding(5) var<storage, read_write> second_moment: array<u64>;
@group(0) @binding(6) var<storage, read_write> forward: array<i32>;

const TILE_QUADS: u32 = MATRIX_TILE / 4u;
const BLOCKS: u32 = TILE_QUADS * TILE_QUADS;
const SPLIT: u32 = THREADS / BLOCKS;
var<workgroup> dz_lo: array<vec4<i32>, STEP_CHUNK * TILE_QUADS>;
var<workgroup> dz_hi: array<vec4<i32>, STEP_CHUNK * TILE_QUADS>;
var<workgroup> xs: array<vec4<i32>, STEP_CHUNK * TILE_QUADS>;
var<workgroup> partial: array<i64, SPLIT * MATRIX_TILE * MATRIX_TILE>;

@compute @workgroup_size(THREADS)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r0 = group.y * MATRIX_TILE;
    let c0 = group.x * MATRIX_TILE;
    let slice = t / BLOCKS;
    let block = t % BLOCKS;
    let br = block / TILE_QUADS;
    let bc = block % TILE_QUADS;
    // total[c][e]: row 4·br + e, column 4·bc + c of the tile.
    var total: array<vec4<i64>, 4>;
    for (var j0 = 0u; j0 < step.recorded; j0 += STEP_CHUNK) {
        workgroupBarrier();
        // Rows and columns past the matrix, and stream-steps past the window, stage zeros.
        for (var i = t; i < STEP_CHUNK * MATRIX_TILE; i += THREADS) {
            let j = j0 + i / MATRIX_TILE;
            let k = i % MATRIX_TILE;
            var d = 0;
            var x = 0;
            if j < step.recorded {
                if r0 + k < ROWS {
                    d = dz_win[j * ROWS + r0 + k];
                }
                if c0 + k < COLS {
                    x = x_win[j * COLS + c0 + k];
                }
            }
            dz_lo[i / 4u][i % 4u] = d & ((1 << LO_BITS) - 1);
            dz_hi[i / 4u][i % 4u] = d >> LO_BITS;
            xs[i / 4u][i % 4u] = x;
        }
        workgroupBarrier();
        var lo: array<vec4<i32>, 4>;
        var hi: array<vec4<i32>, 4>;
        for (var j = slice; j < STEP_CHUNK; j += SPLIT) {
            let l = dz_lo[j * TILE_QUADS + br];
            let h = dz_hi[j * TILE_QUADS + br];
            let x = xs[j * TILE_QUADS + bc];
            for (var c = 0u; c < 4u; c += 1u) {
                lo[c] += l * x[c];
                hi[c] += h * x[c];
            }
        }
        for (var c = 0u; c < 4u; c += 1u) {
            total[c] += (vec4<i64>(hi[c]) << vec4<u32>(LO_BITS)) + vec4<i64>(lo[c]);
        }
    }
    for (var c = 0u; c < 4u; c += 1u) {
        for (var e = 0u; e < 4u; e += 1u) {
            let at = (4u * br + e) * MATRIX_TILE + 4u * bc + c;
            partial[slice * MATRIX_TILE * MATRIX_TILE + at] = total[c][e];
        }
    }
    workgroupBarrier();
    for (var i = t; i < MATRIX_TILE * MATRIX_TILE; i += THREADS) {
        let r = r0 + i / MATRIX_TILE;
        let k = c0 + i % MATRIX_TILE;
        if r < ROWS && k < COLS {
            var acc = i64(0);
            for (var s = 0u; s < SPLIT; s += 1u) {
                acc += partial[s * MATRIX_TILE * MATRIX_TILE + i];
            }
            let at = r * COLS + k;
            let next = adam_step(acc, AdamState(master[at], second_moment[at]));
            master[at] = next.w;
            second_moment[at] = next.v;
            forward[at] = i32(round_shift(i64(next.w), MASTER_FRAC - ACT_FRAC));
        }
    }
}
