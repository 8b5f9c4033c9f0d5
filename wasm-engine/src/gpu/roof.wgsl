// The two ceilings of the roofline, measured: a copy that streams memory and does no
// arithmetic, and chains of multiply-adds that touch memory once per thread.

struct Params {
    n: u32,
    iterations: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

fn flat(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

// dst = src, 16 bytes per thread: bandwidth is 2 × 16 × n bytes over the time.
@compute @workgroup_size(256)
fn copy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat(wg, nwg, lid);
    if (i < p.n) {
        dst[i] = src[i];
    }
}

// Four independent vec4 chains of a = a · b + c per iteration (so the pipeline never
// waits on one result): 4 chains × 4 lanes × 2 FLOPs = 32 FLOPs per iteration per thread.
@compute @workgroup_size(256)
fn multiply_add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat(wg, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let s = src[i % arrayLength(&src)];
    var a0 = s;
    var a1 = s + vec4<f32>(1.0);
    var a2 = s + vec4<f32>(2.0);
    var a3 = s + vec4<f32>(3.0);
    // Contractive, so the values stay finite however many iterations run.
    let b = vec4<f32>(0.999);
    let c = vec4<f32>(0.001);
    for (var k = 0u; k < p.iterations; k = k + 1u) {
        a0 = fma(a0, b, c);
        a1 = fma(a1, b, c);
        a2 = fma(a2, b, c);
        a3 = fma(a3, b, c);
    }
    // One write per thread keeps the work from being optimised away.
    dst[i] = a0 + a1 + a2 + a3;
}
