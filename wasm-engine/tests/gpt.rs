//! The GPT's forward pass, its gradients, its KV cache and its config checks.

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use engine::Error;
use engine::model::gpt::{Config, Gpt};

mod common;

use common::{ids, seeded_model};

fn tiny_config() -> Config {
    Config {
        vocab_size: 7,
        block_size: 8,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    }
}

#[test]
fn config_errors_name_the_field() {
    let zero_heads = Config {
        n_head: 0,
        ..tiny_config()
    };
    match zero_heads.validate() {
        Err(Error::Config { field, .. }) => assert_eq!(field, "n_head"),
        other => panic!("expected a config error on n_head, got {other:?}"),
    }
    let uneven = Config {
        n_embd: 10,
        n_head: 4,
        ..tiny_config()
    };
    let err = uneven.validate().unwrap_err();
    assert!(matches!(&err, Error::Config { field, .. } if field == "n_embd"));
    assert!(
        err.to_string().contains("not divisible by n_head 4"),
        "{err}"
    );
    // Building the model checks the config too, instead of panicking in a reshape.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    assert!(matches!(Gpt::new(&uneven, vb), Err(Error::Config { .. })));
}

#[test]
fn n_params_counts_every_weight_once() {
    for bias in [true, false] {
        let cfg = Config {
            bias,
            ..tiny_config()
        };
        let (_, vars) = seeded_model(&cfg, DType::F32);
        let counted: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
        assert_eq!(cfg.n_params(), counted, "bias = {bias}");
    }
    // nanoGPT's shakespeare_char model (6 layers, 384 wide, 65 chars, 256 context, no bias)
    // reports "number of parameters: 10.65M", which leaves out the position embedding.
    let shakespeare = Config {
        vocab_size: 65,
        block_size: 256,
        n_layer: 6,
        n_head: 6,
        n_embd: 384,
        dropout: 0.2,
        bias: false,
        ..Default::default()
    };
    assert_eq!(shakespeare.n_params(), 10_745_088);
    assert_eq!(shakespeare.n_params() - 256 * 384, 10_646_784);
}

#[test]
fn loss_at_initialisation_is_near_uniform() {
    // With N(0, 0.02) weights the logits are almost flat, so the loss is about ln(vocab):
    // nanoGPT's shakespeare_char run starts at 4.2 ≈ ln 65.
    let cfg = Config {
        vocab_size: 65,
        block_size: 16,
        n_layer: 2,
        n_head: 4,
        n_embd: 32,
        dropout: 0.0,
        bias: true,
        ..Default::default()
    };
    let varmap = VarMap::new();
    let model = Gpt::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x: Vec<u32> = (0..32).map(|i| (i * 7 % 65) as u32).collect();
    let y: Vec<u32> = (0..32).map(|i| (i * 11 % 65) as u32).collect();
    let (logits, loss) = model
        .forward(&ids(&x, 2, 16), Some(&ids(&y, 2, 16)), false)
        .unwrap();
    assert_eq!(logits.dims(), &[2, 16, 65]);
    let loss = loss.unwrap().to_scalar::<f32>().unwrap();
    assert!(
        (loss - 65f32.ln()).abs() < 0.05,
        "loss {loss} vs ln 65 = {}",
        65f32.ln()
    );
}

#[test]
fn gradients_match_finite_differences() {
    let cfg = tiny_config();
    let (model, vars) = seeded_model(&cfg, DType::F64);
    let x = ids(&[1, 2, 3, 4, 5, 6, 0, 1, 3, 3, 2, 6], 2, 6);
    let y = ids(&[2, 3, 4, 5, 6, 0, 1, 2, 3, 2, 6, 5], 2, 6);
    let checked = common::check_gradients(&vars, || {
        model.forward(&x, Some(&y), false).unwrap().1.unwrap()
    });
    assert_eq!(checked, 3 * vars.len());
}

#[test]
fn future_tokens_do_not_change_past_logits() {
    let cfg = tiny_config();
    let (model, _) = seeded_model(&cfg, DType::F32);
    let a = model
        .forward(&ids(&[1, 2, 3, 4, 5], 1, 5), None, false)
        .unwrap()
        .0;
    let b = model
        .forward(&ids(&[1, 2, 3, 0, 6], 1, 5), None, false)
        .unwrap()
        .0;
    let past = |t: &Tensor| {
        t.i((0, 0..3))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(past(&a), past(&b));
    let last = |t: &Tensor| t.i((0, 4)).unwrap().to_vec1::<f32>().unwrap();
    assert_ne!(last(&a), last(&b));
}

#[test]
fn kv_cache_gives_the_same_logits_as_a_full_forward() {
    let cfg = tiny_config();
    let (model, _) = seeded_model(&cfg, DType::F32);
    let tokens = [3u32, 1, 4, 1, 5, 2, 6, 5];
    let full = model.forward(&ids(&tokens, 1, 8), None, false).unwrap().0;
    let mut cache = model.new_cache();
    // A 3-token prefill, then one token at a time.
    let mut pieces = vec![
        model
            .forward_cached(&ids(&tokens[..3], 1, 3), &mut cache)
            .unwrap(),
    ];
    for &t in &tokens[3..] {
        pieces.push(model.forward_cached(&ids(&[t], 1, 1), &mut cache).unwrap());
    }
    assert_eq!(cache.len(), 8);
    // layers × 2 × heads × head_dim × tokens × 4 bytes
    assert_eq!(cache.bytes(), 2 * 2 * 2 * 4 * 8 * 4);
    let cached = Tensor::cat(&pieces, 1).unwrap();
    let diff = (full - cached)
        .unwrap()
        .abs()
        .unwrap()
        .max_keepdim(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "max difference {diff}");
    // The context limit is enforced with an error, not a panic in an index.
    let err = model
        .forward_cached(&ids(&[1], 1, 1), &mut cache)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("longer than the model's context of 8"),
        "{err}"
    );
}

#[test]
fn attention_maps_are_causal_distributions() {
    let cfg = tiny_config();
    let (model, _) = seeded_model(&cfg, DType::F32);
    let maps = model.attention_maps(&[1, 2, 3, 4]).unwrap();
    assert_eq!(maps.len(), 2);
    let m = maps[0].to_vec3::<f32>().unwrap();
    assert_eq!((m.len(), m[0].len(), m[0][0].len()), (2, 4, 4));
    for head in &m {
        for (i, row) in head.iter().enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(
                row[i + 1..].iter().all(|&w| w == 0.0),
                "row {i} attends ahead: {row:?}"
            );
        }
    }
    assert_eq!(m[0][0][0], 1.0);
}
