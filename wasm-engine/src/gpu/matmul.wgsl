// Tiled matrix multiply C = op(A) · op(B), op = identity or transpose, batched over z.
//
// Each workgroup of 16 × 16 threads computes a 64 × 64 tile of C. It walks K in steps of
// 16, staging a 64 × 16 slice of A and a 16 × 64 slice of B in workgroup memory, so each
// element read from global memory is used 64 times; each thread accumulates a 4 × 4 block of
// outputs in registers (rows lid.y + 16i, columns lid.x + 16j, strided so that neighbouring
// threads touch neighbouring columns). Edges are guarded: any M, N, K works.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    // Element offsets of each matrix in its buffer, and strides between batch entries
    // (0 repeats the same matrix for every batch entry).
    a_off: u32,
    b_off: u32,
    c_off: u32,
    a_batch: u32,
    b_batch: u32,
    c_batch: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
// Row length of the tiles in workgroup memory, padded by one against bank conflicts.
const LDA: u32 = 65u;
var<workgroup> a_tile: array<f32, 1040>; // [BK][LDA]: a_tile[k * LDA + m]
var<workgroup> b_tile: array<f32, 1040>; // [BK][LDA]: b_tile[k * LDA + n]

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let a_base = p.a_off + wg.z * p.a_batch;
    let b_base = p.b_off + wg.z * p.b_batch;
    let c_base = p.c_off + wg.z * p.c_batch;

    // Row i of the thread's 4 × 4 block, columns lid.x + 16j for j = 0..3 as a vec4.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    let tiles = (p.k + BK - 1u) / BK;
    for (var t = 0u; t < tiles; t++) {
        let k0 = t * BK;
        // 1024 elements per tile, 256 threads: four each. Consecutive threads read
        // consecutive addresses of the matrix as it is stored.
        for (var i = 0u; i < 4u; i++) {
            let e = li + i * 256u;
            var m: u32;
            var k: u32;
            if (p.trans_a == 0u) {
                m = e / BK;
                k = e % BK;
            } else {
                k = e / BM;
                m = e % BM;
            }
            let gm = row0 + m;
            let gk = k0 + k;
            var v = 0.0;
            if (gm < p.m && gk < p.k) {
                if (p.trans_a == 0u) {
                    v = a[a_base + gm * p.k + gk];
                } else {
                    v = a[a_base + gk * p.m + gm];
                }
            }
            a_tile[k * LDA + m] = v;
        }
        for (var i = 0u; i < 4u; i++) {
            let e = li + i * 256u;
            var n: u32;
            var k: u32;
            if (p.trans_b == 0u) {
                k = e / BN;
                n = e % BN;
            } else {
                n = e / BK;
                k = e % BK;
            }
            let gn = col0 + n;
            let gk = k0 + k;
            var v = 0.0;
            if (gn < p.n && gk < p.k) {
                if (p.trans_b == 0u) {
                    v = b[b_base + gk * p.n + gn];
                } else {
                    v = b[b_base + gn * p.k + gk];
                }
            }
            b_tile[k * LDA + n] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < BK; k++) {
            let ra = k * LDA + lid.y;
            let rb = k * LDA + lid.x;
            let bv = vec4<f32>(b_tile[rb], b_tile[rb + 16u], b_tile[rb + 32u], b_tile[rb + 48u]);
            acc0 = fma(vec4<f32>(a_tile[ra]), bv, acc0);
            acc1 = fma(vec4<f32>(a_tile[ra + 16u]), bv, acc1);
            acc2 = fma(vec4<f32>(a_tile[ra + 32u]), bv, acc2);
            acc3 = fma(vec4<f32>(a_tile[ra + 48u]), bv, acc3);
        }
        workgroupBarrier();
    }

    store(c_base, row0 + lid.y, col0 + lid.x, acc0);
    store(c_base, row0 + lid.y + 16u, col0 + lid.x, acc1);
    store(c_base, row0 + lid.y + 32u, col0 + lid.x, acc2);
    store(c_base, row0 + lid.y + 48u, col0 + lid.x, acc3);
}

// Writes one row of a thread's block: columns gn, gn + 16, gn + 32, gn + 48 of row gm.
fn store(base: u32, gm: u32, gn: u32, v: vec4<f32>) {
    if (gm >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (gn + 16u * j < p.n) {
            c[base + gm * p.n + gn + 16u * j] = v[j];
        }
    }
}

// The same product for a few rows of A (generation feeds one token at a time): one thread per
// output, a plain loop over k, no tiles and no barriers. A 64 × 64 tile would leave 63 of its
// 64 rows idle, and its barriers cost more than the loads they save. Dispatched as
// (⌈n / 64⌉, m, batch).
@compute @workgroup_size(64, 1, 1)
fn gemv(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let gn = wg.x * 64u + lid.x;
    let gm = wg.y;
    if (gn >= p.n) {
        return;
    }
    let a_base = p.a_off + wg.z * p.a_batch;
    let b_base = p.b_off + wg.z * p.b_batch;
    let c_base = p.c_off + wg.z * p.c_batch;
    // Strides along k of A's row gm and of B's column gn.
    var a_i = a_base + gm * p.k;
    var a_step = 1u;
    if (p.trans_a != 0u) {
        a_i = a_base + gm;
        a_step = p.m;
    }
    var b_i = b_base + gn;
    var b_step = p.n;
    if (p.trans_b != 0u) {
        b_i = b_base + gn * p.k;
        b_step = 1u;
    }
    var acc = 0.0;
    for (var k = 0u; k < p.k; k++) {
        acc = fma(a[a_i], b[b_i], acc);
        a_i += a_step;
        b_i += b_step;
    }
    c[c_base + gm * p.n + gn] = acc;
}
