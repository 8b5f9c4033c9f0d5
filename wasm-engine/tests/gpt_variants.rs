//! The GPT's configurable parts (lessons C2 and C3): position encodings, norms, FFNs, norm
//! placement and residuals. Each variant is checked for its parameter count and checkpoint
//! names, its gradients against finite differences, and (RoPE, ALiBi) its KV cache; the
//! position encodings also against hand-computed values.

use candle_core::{D, DType, Device, Tensor};
use engine::checkpoint::expected_shapes;
use engine::model::gpt::{Config, Ffn, Norm, NormPlacement, PositionEncoding};
use engine::model::position;

mod common;

use common::{ids, seeded_model};

fn tiny() -> Config {
    Config {
        vocab_size: 7,
        block_size: 8,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        ..Default::default()
    }
}

/// Every knob turned on its own, and a LLaMA-like mix of them.
fn variants() -> Vec<(&'static str, Config)> {
    vec![
        ("gpt-2", tiny()),
        (
            "sinusoidal",
            Config {
                position: PositionEncoding::Sinusoidal,
                ..tiny()
            },
        ),
        (
            "rope",
            Config {
                position: PositionEncoding::Rope,
                ..tiny()
            },
        ),
        (
            "alibi",
            Config {
                position: PositionEncoding::Alibi,
                ..tiny()
            },
        ),
        (
            "rmsnorm",
            Config {
                norm: Norm::RmsNorm,
                ..tiny()
            },
        ),
        (
            "relu",
            Config {
                ffn: Ffn::Relu,
                ..tiny()
            },
        ),
        (
            "swiglu",
            Config {
                ffn: Ffn::Swiglu,
                ..tiny()
            },
        ),
        (
            "post-norm",
            Config {
                norm_placement: NormPlacement::Post,
                ..tiny()
            },
        ),
        (
            "no residual",
            Config {
                residual: false,
                ..tiny()
            },
        ),
        (
            "llama-like",
            Config {
                position: PositionEncoding::Rope,
                norm: Norm::RmsNorm,
                ffn: Ffn::Swiglu,
                bias: false,
                ..tiny()
            },
        ),
    ]
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(D::Minus1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn defaults_are_gpt2_and_serialize_as_before() {
    // A config written before the variants existed reads as GPT-2 and writes back unchanged.
    let old = r#"{"vocab_size":63,"block_size":64,"n_layer":2,"n_head":4,"n_embd":64,"dropout":0.0,"bias":true}"#;
    let cfg: Config = serde_json::from_str(old).unwrap();
    assert!(cfg.is_gpt2());
    assert_eq!(serde_json::to_string(&cfg).unwrap(), old);
    let rope: Config = serde_json::from_str(
        r#"{"vocab_size":63,"block_size":64,"n_layer":2,"n_head":4,"n_embd":64,
            "position":"rope","norm":"rmsnorm","ffn":"swiglu","norm_placement":"post","residual":false}"#,
    )
    .unwrap();
    assert_eq!(rope.position, PositionEncoding::Rope);
    assert_eq!(rope.norm, Norm::RmsNorm);
    assert_eq!(rope.ffn, Ffn::Swiglu);
    assert_eq!(rope.norm_placement, NormPlacement::Post);
    assert!(!rope.residual && !rope.is_gpt2());
    let err = serde_json::from_str::<Config>(
        r#"{"vocab_size":63,"block_size":64,"n_layer":2,"n_head":4,"n_embd":64,"position":"spiral"}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `spiral`"),
        "{err}"
    );
}

#[test]
fn rope_needs_an_even_head_width() {
    let odd = Config {
        n_embd: 6,
        n_head: 2,
        position: PositionEncoding::Rope,
        ..tiny()
    };
    let err = odd.validate().unwrap_err();
    assert!(err.to_string().contains("head width must be even"), "{err}");
}

#[test]
fn parameter_count_and_checkpoint_names_follow_the_variant() {
    for (name, cfg) in variants() {
        let (_, vars) = seeded_model(&cfg, DType::F32);
        let counted: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
        assert_eq!(cfg.n_params(), counted, "{name}");
        let shapes = expected_shapes(&cfg).unwrap();
        assert_eq!(shapes.len(), vars.len(), "{name}");
        for (var_name, var) in &vars {
            assert_eq!(
                shapes.get(var_name).map(Vec::as_slice),
                Some(var.dims()),
                "{name}: {var_name}"
            );
        }
    }
    // SwiGLU's three matrices hold about as much as GELU's two (hidden 8c/3 vs 4c).
    let c = 64;
    let gelu = Config {
        n_embd: c,
        ..Default::default()
    };
    let swiglu = Config {
        ffn: Ffn::Swiglu,
        ..gelu.clone()
    };
    assert_eq!(swiglu.ffn_hidden(), 176);
    let ratio = swiglu.n_params() as f64 / gelu.n_params() as f64;
    assert!((0.99..1.02).contains(&ratio), "{ratio}");
}

#[test]
fn every_variant_has_gradients_that_match_finite_differences() {
    let x = ids(&[1, 2, 3, 4, 5, 6, 0, 1, 3, 3, 2, 6], 2, 6);
    let y = ids(&[2, 3, 4, 5, 6, 0, 1, 2, 3, 2, 6, 5], 2, 6);
    for (name, cfg) in variants() {
        let (model, vars) = seeded_model(&cfg, DType::F64);
        let checked = common::check_gradients(&vars, || {
            model.forward(&x, Some(&y), false).unwrap().1.unwrap()
        });
        assert_eq!(checked, 3 * vars.len(), "{name}");
    }
}

#[test]
fn every_variant_is_causal_and_its_kv_cache_matches_a_full_forward() {
    let tokens = [3u32, 1, 4, 1, 5, 2, 6, 5];
    for (name, cfg) in variants() {
        let (model, _) = seeded_model(&cfg, DType::F32);
        let full = model.forward(&ids(&tokens, 1, 8), None, false).unwrap().0;
        // The future does not change the past.
        let changed = model
            .forward(&ids(&[3, 1, 4, 1, 0, 0, 0, 0], 1, 8), None, false)
            .unwrap()
            .0;
        assert!(
            max_abs_diff(
                &full.narrow(1, 0, 4).unwrap(),
                &changed.narrow(1, 0, 4).unwrap()
            ) == 0.0,
            "{name}: later tokens changed earlier logits"
        );
        let mut cache = model.new_cache();
        let mut pieces = vec![
            model
                .forward_cached(&ids(&tokens[..3], 1, 3), &mut cache)
                .unwrap(),
        ];
        for &t in &tokens[3..] {
            pieces.push(model.forward_cached(&ids(&[t], 1, 1), &mut cache).unwrap());
        }
        let cached = Tensor::cat(&pieces, 1).unwrap();
        let diff = max_abs_diff(&full, &cached);
        assert!(diff < 1e-5, "{name}: cache differs by {diff}");
        // The attention maps are distributions that respect the mask.
        let maps = model.attention_maps(&tokens[..5]).unwrap();
        for map in maps {
            for head in map.to_vec3::<f32>().unwrap() {
                for (i, row) in head.iter().enumerate() {
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{name}");
                    assert!(row[i + 1..].iter().all(|&w| w == 0.0), "{name}");
                }
            }
        }
    }
}

#[test]
fn position_encodings_by_hand() {
    // Sinusoidal, d = 4: frequencies 1 and 1/100.
    let pe = position::sinusoidal(1, 4);
    let want = [1f64.sin(), 1f64.cos(), 0.01f64.sin(), 0.01f64.cos()];
    for (a, b) in pe.iter().zip(want) {
        assert!((a - b).abs() < 1e-15);
    }
    assert_eq!(position::sinusoidal(0, 4), vec![0.0, 1.0, 0.0, 1.0]);
    // RoPE rotates (1, 0) at position 1 by one radian in the fastest pair.
    let r = position::rope(&[1.0, 0.0, 1.0, 0.0], 1);
    assert!((r[0] - 1f64.cos()).abs() < 1e-15 && (r[1] - 1f64.sin()).abs() < 1e-15);
    assert!((r[2] - 0.01f64.cos()).abs() < 1e-15 && (r[3] - 0.01f64.sin()).abs() < 1e-15);
    // The point of RoPE: q_m · k_n depends on m − n only, and norms are kept.
    let q = [0.3, -1.2, 0.7, 2.0, -0.4, 0.9];
    let k = [1.1, 0.5, -0.6, 0.2, 0.8, -1.5];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let at = |m: usize, n: usize| dot(&position::rope(&q, m), &position::rope(&k, n));
    assert!((at(5, 2) - at(13, 10)).abs() < 1e-12);
    assert!((at(5, 2) - at(2, 5)).abs() > 1e-3, "direction matters");
    assert!((dot(&q, &q) - at_norm(&q, 7)).abs() < 1e-12);
    // ALiBi's slopes (the paper's get_slopes): 2^-8/n·h, and the interleave for 6 heads.
    assert_eq!(
        position::alibi_slopes(4),
        vec![0.25, 0.0625, 0.015625, 0.00390625]
    );
    assert_eq!(
        position::alibi_slopes(6),
        vec![0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]
    );
    let bias = position::alibi_bias(2, 3, 0, DType::F32, &Device::Cpu)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    // Head 0 (slope 1/16 for two heads): query 2 sees keys 0, 1, 2 at distances 2, 1, 0.
    assert_eq!(bias[0][2], vec![-0.125, -0.0625, 0.0]);
    assert_eq!(bias[1][2], vec![-2.0 / 256.0, -1.0 / 256.0, 0.0]);
}

fn at_norm(x: &[f64], pos: usize) -> f64 {
    position::rope(x, pos).iter().map(|v| v * v).sum()
}

#[test]
fn rope_tables_rotate_like_the_plain_function() {
    let dim = 6;
    let tables = position::RopeTables::new(8, dim, DType::F64, &Device::Cpu).unwrap();
    let x: Vec<f64> = (0..2 * dim).map(|i| (i as f64 * 0.37).sin()).collect();
    let xs = Tensor::from_vec(x.clone(), (1, 1, 2, dim), &Device::Cpu).unwrap();
    // Two positions starting at offset 3.
    let out = tables
        .apply(&xs, 3)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for (row, pos) in [(0, 3), (1, 4)] {
        let want = position::rope(&x[row * dim..(row + 1) * dim], pos);
        for (a, b) in out[row * dim..(row + 1) * dim].iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
    }
}
