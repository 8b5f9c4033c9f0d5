//! The GPU kernels (`engine::gpu`, WGSL through wgpu) against candle on the CPU, on seeded
//! random inputs, and the GPU GPT against the CPU GPT from the shipped checkpoint.
//!
//!     cargo test -p engine --features webgpu --test gpu
//!
//! Natively wgpu takes the Vulkan adapter: on a machine without a GPU that is lavapipe
//! (Debian's `mesa-vulkan-drivers`, which `cargo xtask test` installs). Where no adapter
//! exists each test prints why it skips and passes, unless `AW_REQUIRE_GPU=1` (set by
//! `cargo xtask test`, which installed the driver) makes a missing adapter a failure.
//!
//! Tolerances, stated per kernel as `|gpu - cpu| <= abs + rel·|cpu|`: the GPU sums in a
//! different order (tiles, tree reductions) and WGSL has no erf, so results agree to f32
//! rounding, not bit for bit.
#![cfg(feature = "webgpu")]

use std::path::PathBuf;

use candle_core::{D, Device, IndexOp, Tensor};
use engine::checkpoint::Checkpoint;
use engine::gpu::{self, Gpu, GpuGpt};
use engine::model::gpt::{Config, Norm};
use engine::sample::{self, SamplingConfig};
use rand::{Rng, SeedableRng};

fn gpu() -> Option<Gpu> {
    match pollster::block_on(Gpu::new()) {
        Ok(g) => {
            eprintln!(
                "gpu: {} ({}, {})",
                g.info().name,
                g.info().backend,
                g.info().device_type
            );
            Some(g)
        }
        Err(e) if e.to_string().contains(gpu::NO_ADAPTER) => {
            if std::env::var("AW_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("AW_REQUIRE_GPU=1 but {e}");
            }
            eprintln!(
                "SKIP: {e}. Install a Vulkan driver (apt-get install mesa-vulkan-drivers gives \
                 lavapipe, Vulkan on the CPU) to run the GPU tests."
            );
            None
        }
        Err(e) => panic!("a GPU adapter exists but failed: {e}"),
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn read(gpu: &Gpu, t: &gpu::GpuTensor) -> Tensor {
    pollster::block_on(gpu.read_tensor(t)).unwrap()
}

/// Asserts `|got - want| <= abs + rel·|want|` element-wise, naming the worst element.
fn assert_close(got: &Tensor, want: &Tensor, abs: f32, rel: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (mut worst, mut at) = (0f32, 0);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let excess = (a - b).abs() - (abs + rel * b.abs());
        assert!(a.is_finite(), "{what}: element {i} is {a}");
        if excess > worst {
            (worst, at) = (excess, i);
        }
    }
    assert!(
        worst <= 0.0,
        "{what}: element {at}: gpu {} vs cpu {} (tolerance {abs} + {rel}·|cpu|)",
        g[at],
        w[at]
    );
}

#[test]
fn matmul_and_its_transposes_match_candle_at_awkward_sizes() {
    let Some(gpu) = gpu() else { return };
    // Sizes off the 64 × 64 × 16 tiles included: edges are where tiled kernels go wrong.
    // m ≤ 4 takes the untiled gemv kernel (one token at a time), larger m the tiled one.
    let sizes = [
        (1, 1, 1),
        (4, 70, 130),
        (5, 70, 130),
        (7, 13, 5),
        (64, 64, 64),
        (65, 130, 67),
        (1, 200, 97),
        (128, 33, 200),
    ];
    for (i, &(m, k, n)) in sizes.iter().enumerate() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let seed = 10 * i as u64;
            let a = random(&if ta { [k, m] } else { [m, k] }, seed);
            let b = random(&if tb { [n, k] } else { [k, n] }, seed + 1);
            let a_op = if ta { a.t().unwrap() } else { a.clone() };
            let b_op = if tb { b.t().unwrap() } else { b.clone() };
            let want = a_op.matmul(&b_op).unwrap();
            let ga = gpu.upload_tensor(&a).unwrap();
            let gb = gpu.upload_tensor(&b).unwrap();
            let got = read(&gpu, &gpu.matmul_t(&ga, &gb, ta, tb).unwrap());
            // K ≤ 200 products of numbers in ±1: sums in another order differ by ~1e-6.
            assert_close(
                &got,
                &want,
                1e-4,
                1e-4,
                &format!("matmul {m}x{k}x{n} ta={ta} tb={tb}"),
            );
        }
    }
}

#[test]
fn batched_matmul_with_a_shared_or_batched_right_operand() {
    let Some(gpu) = gpu() else { return };
    let a = random(&[3, 17, 33], 1);
    let b_shared = random(&[33, 70], 2);
    let b_batched = random(&[3, 70, 33], 3); // used transposed
    let ga = gpu.upload_tensor(&a).unwrap();
    let got = read(
        &gpu,
        &gpu.matmul(&ga, &gpu.upload_tensor(&b_shared).unwrap())
            .unwrap(),
    );
    let want = a.broadcast_matmul(&b_shared).unwrap();
    assert_close(&got, &want, 1e-4, 1e-4, "batched matmul, shared b");
    let got = read(
        &gpu,
        &gpu.matmul_bt(&ga, &gpu.upload_tensor(&b_batched).unwrap())
            .unwrap(),
    );
    let want = a.matmul(&b_batched.transpose(1, 2).unwrap()).unwrap();
    assert_close(&got, &want, 1e-4, 1e-4, "batched matmul, batched bᵀ");
    // Two rows per batch entry: the gemv kernel, batched.
    let a2 = random(&[3, 2, 33], 4);
    let got = read(
        &gpu,
        &gpu.matmul_bt(
            &gpu.upload_tensor(&a2).unwrap(),
            &gpu.upload_tensor(&b_batched).unwrap(),
        )
        .unwrap(),
    );
    let want = a2.matmul(&b_batched.transpose(1, 2).unwrap()).unwrap();
    assert_close(&got, &want, 1e-4, 1e-4, "batched gemv, batched bᵀ");
    let err = gpu
        .matmul(&ga, &gpu.upload_tensor(&b_batched).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("inner dimensions"), "{err}");
}

#[test]
fn bias_add_residual_add_and_gelu_match_candle() {
    let Some(gpu) = gpu() else { return };
    // 1000 elements: not a multiple of the 256-thread workgroups.
    let x = random(&[10, 100], 4);
    let bias = random(&[100], 5);
    let y = random(&[10, 100], 6);
    let mut gx = gpu.upload_tensor(&x).unwrap();
    gpu.bias_add(&mut gx, &gpu.upload_tensor(&bias).unwrap())
        .unwrap();
    let want = x.broadcast_add(&bias).unwrap();
    assert_close(&read(&gpu, &gx), &want, 1e-6, 0.0, "bias_add");
    gpu.add(&mut gx, &gpu.upload_tensor(&y).unwrap()).unwrap();
    let want = (want + &y).unwrap();
    assert_close(&read(&gpu, &gx), &want, 1e-6, 0.0, "add");
    // GELU over a wide range (±6), where erf's tails matter.
    let z = (random(&[7, 131], 7) * 6.0).unwrap();
    let mut gz = gpu.upload_tensor(&z).unwrap();
    gpu.gelu(&mut gz).unwrap();
    // Abramowitz & Stegun's erf is within 1.5e-7; times |x|/2 ≤ 3, plus f32 rounding.
    assert_close(&read(&gpu, &gz), &z.gelu_erf().unwrap(), 1e-6, 1e-5, "gelu");
    assert!(
        gpu.bias_add(&mut gz, &gpu.upload_tensor(&bias).unwrap())
            .is_err()
    );
}

/// The CPU model's LayerNorm: two passes, eps 1e-5.
fn layer_norm_cpu(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let xc = x.broadcast_sub(&mean).unwrap();
    let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let y = xc
        .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w)
        .unwrap();
    match b {
        Some(b) => y.broadcast_add(b).unwrap(),
        None => y,
    }
}

#[test]
fn layer_norm_matches_the_cpu_model() {
    let Some(gpu) = gpu() else { return };
    for (rows, cols) in [(1, 1), (5, 100), (3, 768), (70, 64)] {
        // An offset mean and a large scale, which a one-pass variance would get wrong.
        let x = ((random(&[rows, cols], 8) * 3.0).unwrap() + 10.0).unwrap();
        let w = random(&[cols], 9);
        let b = random(&[cols], 10);
        let gx = gpu.upload_tensor(&x).unwrap();
        let gw = gpu.upload_tensor(&w).unwrap();
        let gb = gpu.upload_tensor(&b).unwrap();
        let got = read(&gpu, &gpu.layer_norm(&gx, &gw, Some(&gb), 1e-5).unwrap());
        assert_close(
            &got,
            &layer_norm_cpu(&x, &w, Some(&b)),
            1e-4,
            1e-4,
            "layer_norm",
        );
        let got = read(&gpu, &gpu.layer_norm(&gx, &gw, None, 1e-5).unwrap());
        assert_close(
            &got,
            &layer_norm_cpu(&x, &w, None),
            1e-4,
            1e-4,
            "layer_norm without bias",
        );
    }
}

#[test]
fn softmax_matches_candle() {
    let Some(gpu) = gpu() else { return };
    for (rows, cols) in [(1, 1), (3, 65), (9, 1000)] {
        let x = (random(&[rows, cols], 11) * 20.0).unwrap();
        let mut gx = gpu.upload_tensor(&x).unwrap();
        gpu.softmax(&mut gx).unwrap();
        let want = candle_nn::ops::softmax_last_dim(&x).unwrap();
        assert_close(&read(&gpu, &gx), &want, 1e-6, 1e-5, "softmax");
    }
}

#[test]
fn embedding_lookup_with_and_without_positions() {
    let Some(gpu) = gpu() else { return };
    let wte = random(&[50, 24], 12);
    let wpe = random(&[16, 24], 13);
    let ids = [3u32, 0, 49, 3, 17];
    let gwte = gpu.upload_tensor(&wte).unwrap();
    let gwpe = gpu.upload_tensor(&wpe).unwrap();
    let idx = Tensor::new(&ids, &Device::Cpu).unwrap();
    let tok = wte.index_select(&idx, 0).unwrap();
    let got = read(&gpu, &gpu.embedding(&gwte, &ids, None).unwrap());
    assert_close(&got, &tok, 0.0, 0.0, "embedding");
    let got = read(&gpu, &gpu.embedding(&gwte, &ids, Some((&gwpe, 7))).unwrap());
    let want = (tok + wpe.narrow(0, 7, 5).unwrap()).unwrap();
    assert_close(&got, &want, 1e-7, 0.0, "embedding + positions 7..12");
    let err = gpu.embedding(&gwte, &[50], None).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    let err = gpu.embedding(&gwte, &ids, Some((&gwpe, 12))).unwrap_err();
    assert!(err.to_string().contains("block_size"), "{err}");
}

/// Causal attention on the CPU over the whole sequence: (t, c) heads side by side.
fn attention_cpu(qkv: &Tensor, n_head: usize) -> Tensor {
    let (t, c3) = qkv.dims2().unwrap();
    let c = c3 / 3;
    let d = c / n_head;
    let split = |i: usize| {
        qkv.narrow(1, i * c, c)
            .unwrap()
            .reshape((t, n_head, d))
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let (q, k, v) = (split(0), split(1), split(2));
    let scores = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
    let att = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask).unwrap()).unwrap();
    att.matmul(&v)
        .unwrap()
        .transpose(0, 1)
        .unwrap()
        .reshape((t, c))
        .unwrap()
}

#[test]
fn causal_attention_over_the_kv_cache_matches_full_attention() {
    let Some(gpu) = gpu() else { return };
    for (n_head, head_dim, prefix, new) in
        [(4, 8, 5, 3), (2, 24, 0, 7), (3, 16, 70, 1), (1, 64, 200, 2)]
    {
        let c = n_head * head_dim;
        let qkv = random(&[prefix + new, 3 * c], (prefix + new) as u64);
        let want = attention_cpu(&qkv, n_head);
        let mut cache = gpu.kv_layer(n_head, head_dim, prefix + new + 5).unwrap();
        // The prefix goes in first (as a prompt would), then the new tokens attend to it.
        if prefix > 0 {
            let first = gpu
                .upload_tensor(&qkv.narrow(0, 0, prefix).unwrap())
                .unwrap();
            let got = read(&gpu, &gpu.attention(&first, &mut cache).unwrap());
            assert_close(
                &got,
                &want.narrow(0, 0, prefix).unwrap(),
                1e-5,
                1e-4,
                "prefix",
            );
        }
        assert_eq!(cache.len(), prefix);
        let rest = gpu
            .upload_tensor(&qkv.narrow(0, prefix, new).unwrap())
            .unwrap();
        let got = read(&gpu, &gpu.attention(&rest, &mut cache).unwrap());
        assert_close(
            &got,
            &want.narrow(0, prefix, new).unwrap(),
            1e-5,
            1e-4,
            &format!("attention heads={n_head} d={head_dim} after {prefix}"),
        );
        assert_eq!(cache.len(), prefix + new);
        assert_eq!(cache.bytes(), 2 * c * (prefix + new) * 4);
        let mut small = gpu.kv_layer(n_head, head_dim, new - 1).unwrap();
        let err = gpu.attention(&rest, &mut small).unwrap_err();
        assert!(err.to_string().contains("block_size"), "{err}");
    }
}

fn kjv() -> Checkpoint {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../static/models/char-kjv");
    Checkpoint::load(&dir).unwrap()
}

#[test]
fn gpu_gpt_logits_match_the_cpu_model() {
    let Some(gpu) = gpu() else { return };
    let ckpt = kjv();
    let cpu = ckpt.to_model(&Device::Cpu).unwrap();
    let model = GpuGpt::from_checkpoint(&gpu, &ckpt).unwrap();
    let ids = ckpt
        .meta
        .tokenizer
        .encode("In the beginning God created")
        .unwrap();
    let idx = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let (want, _) = cpu.forward(&idx, None, false).unwrap();
    let got = pollster::block_on(model.logits(&ids)).unwrap();
    // Logits of a trained model are O(10); f32 in another order over 2 layers.
    assert_close(&got, &want.i(0).unwrap(), 1e-3, 1e-4, "logits");
    // With the cache: the prompt, then one token at a time, give the same last logits.
    let mut cache = model.new_cache().unwrap();
    let n = ids.len();
    model.forward(&ids[..n - 3], &mut cache).unwrap();
    for i in n - 3..n {
        let logits = model.next_logits(&ids[i..i + 1], &mut cache).unwrap();
        let got = read(&gpu, &logits);
        assert_close(
            &got,
            &want.i((0, i..i + 1)).unwrap(),
            1e-3,
            1e-4,
            "cached logits",
        );
    }
    assert_eq!(cache.len(), n);
}

#[test]
fn gpu_generation_gives_the_cpu_paths_tokens() {
    let Some(gpu) = gpu() else { return };
    let ckpt = kjv();
    let cpu = ckpt.to_model(&Device::Cpu).unwrap();
    let model = GpuGpt::from_checkpoint(&gpu, &ckpt).unwrap();
    let prompt = ckpt.meta.tokenizer.encode("And God said").unwrap();
    let sampled = SamplingConfig {
        temperature: 0.8,
        top_k: Some(20),
        seed: 7,
        ..SamplingConfig::default()
    };
    // 32 tokens, and 80, which slides the 64-token window (the cache is rebuilt).
    for (config, n) in [
        (SamplingConfig::greedy(), 32),
        (SamplingConfig::greedy(), 80),
        (sampled, 32),
    ] {
        let want = sample::generate(&cpu, &prompt, n, &config, true).unwrap();
        let got = pollster::block_on(gpu::generate(&model, &prompt, n, &config)).unwrap();
        assert_eq!(
            ckpt.meta.tokenizer.decode(&got).unwrap(),
            ckpt.meta.tokenizer.decode(&want).unwrap(),
            "{config:?}"
        );
    }
    let mut g = gpu::GpuGenerator::new(&model, &prompt, SamplingConfig::greedy()).unwrap();
    pollster::block_on(g.next_token()).unwrap();
    let c = ckpt.meta.model.n_embd * ckpt.meta.model.n_layer;
    assert_eq!(g.cache_bytes(), 2 * c * (prompt.len()) * 4);
    assert_eq!(g.last_logits().len(), ckpt.meta.model.vocab_size);
    assert!(gpu::GpuGenerator::new(&model, &[], SamplingConfig::greedy()).is_err());
}

#[test]
fn other_architectures_are_refused_naming_the_field() {
    let Some(gpu) = gpu() else { return };
    let ckpt = kjv();
    let cfg = Config {
        norm: Norm::RmsNorm,
        ..ckpt.meta.model.clone()
    };
    let err = GpuGpt::from_tensors(&gpu, &cfg, &ckpt.tensors)
        .err()
        .unwrap();
    assert!(
        matches!(&err, engine::Error::Config { field, .. } if field == "norm"),
        "{err}"
    );
    let mut missing = ckpt.tensors.clone();
    missing.remove("h.1.mlp.c_fc.weight");
    let err = GpuGpt::from_tensors(&gpu, &ckpt.meta.model, &missing)
        .err()
        .unwrap();
    assert!(err.to_string().contains("h.1.mlp.c_fc.weight"), "{err}");
}

#[test]
fn the_measured_roof_bounds_the_matmul() {
    let Some(gpu) = gpu() else { return };
    let roof = pollster::block_on(gpu.measure_roof(50.0)).unwrap();
    eprintln!(
        "roof: {:.2} GFLOP/s, {:.2} GB/s, ridge {:.1} FLOP/byte",
        roof.peak_flops / 1e9,
        roof.bandwidth / 1e9,
        roof.ridge()
    );
    assert!(roof.peak_flops > 1e8 && roof.bandwidth > 1e8, "{roof:?}");
    // A 512² matmul does 2·512³ FLOPs; timed the same way it cannot beat the multiply-add
    // roof by more than timing noise.
    let n = 512;
    let a = gpu.upload_tensor(&random(&[n, n], 1)).unwrap();
    let b = gpu.upload_tensor(&random(&[n, n], 2)).unwrap();
    gpu.matmul(&a, &b).unwrap();
    pollster::block_on(gpu.sync()).unwrap();
    let start = std::time::Instant::now();
    for _ in 0..3 {
        gpu.matmul(&a, &b).unwrap();
        pollster::block_on(gpu.sync()).unwrap();
    }
    let rate = 3.0 * 2.0 * (n as f64).powi(3) / start.elapsed().as_secs_f64();
    eprintln!("matmul {n}²: {:.2} GFLOP/s", rate / 1e9);
    assert!(rate < 1.5 * roof.peak_flops, "{rate} vs {roof:?}");
    assert!(roof.attainable(1e6) == roof.peak_flops);
    assert!((roof.attainable(0.5) - 0.5 * roof.bandwidth).abs() < 1.0);
}
