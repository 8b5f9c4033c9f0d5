//! BERT (lesson C4): forward values, gradients against finite differences, bidirectional
//! attention, padding, the 80/10/10 masking rule and a few training steps.

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use engine::model::bert::{self, Bert, Config, MlmBatch, mask_tokens};
use engine::train::TrainConfig;
use engine::train::stepper::{MicroLoss, Stepper};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;

use common::{check_gradients, ids, seed_weights};

fn tiny_config() -> Config {
    Config {
        vocab_size: 7,
        block_size: 6,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
    }
}

fn seeded(cfg: &Config, dtype: DType) -> (Bert, Vec<(String, candle_core::Var)>) {
    let varmap = VarMap::new();
    let model = Bert::new(cfg, VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu)).unwrap();
    let vars = seed_weights(&varmap, 7, 0.5, dtype);
    (model, vars)
}

#[test]
fn logits_have_one_row_per_position_and_the_parameter_count_is_right() {
    let cfg = tiny_config();
    let (model, vars) = seeded(&cfg, DType::F32);
    let logits = model
        .forward(&ids(&[0, 1, 2, 3, 4, 5, 6, 0], 2, 4), None)
        .unwrap();
    assert_eq!(logits.dims(), &[2, 4, 7]);
    let counted: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    assert_eq!(cfg.n_params(), counted);
    assert_eq!(cfg.mask_id(), 6);
}

#[test]
fn with_zero_weights_the_logits_are_the_mlm_bias() {
    // Every matrix and gain 0: the residual stream is 0 after ln_f (0 · normalised x), the
    // head's dense layer gives 0, its LayerNorm gives its bias 0, so logits = 0 · Wteᵀ + b.
    let cfg = tiny_config();
    let varmap = VarMap::new();
    let model = Bert::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let bias = [0.5f32, -1.0, 2.0, 0.0, 1.0, -0.5, 3.0];
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let t = if name == "mlm.bias" {
            Tensor::new(&bias, &Device::Cpu).unwrap()
        } else {
            var.zeros_like().unwrap()
        };
        var.set(&t).unwrap();
    }
    let logits = model.forward(&ids(&[1, 2, 3], 1, 3), None).unwrap();
    for t in 0..3 {
        assert_eq!(logits.i((0, t)).unwrap().to_vec1::<f32>().unwrap(), bias);
    }
    // fill() ranks by softmax(bias) and never proposes [MASK] (id 6, the largest logit).
    let top = model.fill(&[1, 6, 3], 1, 2).unwrap();
    let z: f32 = bias.iter().map(|b| b.exp()).sum();
    assert_eq!(top[0].0, 2);
    assert!((top[0].1 - 2f32.exp() / z).abs() < 1e-6, "{top:?}");
    assert_eq!(top[1].0, 4);
}

#[test]
fn gradients_match_finite_differences() {
    let cfg = tiny_config();
    let (model, vars) = seeded(&cfg, DType::F64);
    let batch = MlmBatch {
        batch_size: 2,
        block_size: 4,
        input: vec![0, 6, 2, 3, 4, 5, 6, 1],
        positions: vec![1, 6, 7],
        labels: vec![1, 2, 0],
    };
    let checked = check_gradients(&vars, || model.mlm_loss(&batch).unwrap().0);
    assert_eq!(checked, 3 * vars.len());
}

#[test]
fn every_position_sees_later_tokens() {
    // Bidirectional: changing the last token changes the output at the first position, and
    // the attention weights above the diagonal are not zero (a GPT's are, exactly).
    let (model, _) = seeded(&tiny_config(), DType::F32);
    let a = model.forward(&ids(&[1, 2, 3, 4], 1, 4), None).unwrap();
    let b = model.forward(&ids(&[1, 2, 3, 5], 1, 4), None).unwrap();
    let diff = (a.i((0, 0)).unwrap() - b.i((0, 0)).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max(D::Minus1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 1e-4, "position 0 did not change: {diff}");
    for map in model.attention_maps(&[1, 2, 3, 4]).unwrap() {
        let map = map.to_vec3::<f32>().unwrap();
        assert!(
            map[0][0][3] > 1e-4,
            "query 0 gives key 3 weight {}",
            map[0][0][3]
        );
        for row in &map[1] {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn padding_keys_are_invisible() {
    let (model, _) = seeded(&tiny_config(), DType::F32);
    let padding = vec![vec![false, false, false, true]];
    let a = model
        .forward(&ids(&[1, 2, 3, 4], 1, 4), Some(&padding))
        .unwrap();
    let b = model
        .forward(&ids(&[1, 2, 3, 0], 1, 4), Some(&padding))
        .unwrap();
    let real = |t: &Tensor| {
        t.i((0, 0..3))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(real(&a), real(&b));
    assert_eq!(
        bert::attention_mask(&[false, true]),
        vec![vec![true, false], vec![true, false]]
    );
}

#[test]
fn masking_follows_the_80_10_10_rule() {
    let n = 20_000;
    let original: Vec<u32> = (0..n).map(|i| (i % 6) as u32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batch = mask_tokens(&original, 100, 200, 6, &mut rng);
    let chosen = batch.positions.len() as f64 / n as f64;
    assert!((chosen - 0.15).abs() < 0.01, "chose {chosen}");
    let (mut masked, mut same, mut random) = (0, 0, 0);
    for (&p, &label) in batch.positions.iter().zip(&batch.labels) {
        assert_eq!(label, original[p as usize]);
        match batch.input[p as usize] {
            6 => masked += 1,
            id if id == label => same += 1,
            _ => random += 1,
        }
    }
    let total = batch.positions.len() as f64;
    // A random replacement equals the original 1 time in 6, so "same" is 10% + 10%/6.
    assert!((masked as f64 / total - 0.8).abs() < 0.02);
    assert!((same as f64 / total - (0.1 + 0.1 / 6.0)).abs() < 0.02);
    assert!((random as f64 / total - 0.1 * 5.0 / 6.0).abs() < 0.02);
    // Positions not chosen are untouched.
    let unchosen = (0..n).filter(|i| !batch.positions.contains(&(*i as u32)));
    assert!(unchosen.take(500).all(|i| batch.input[i] == original[i]));
}

#[test]
fn a_few_steps_lower_the_mlm_loss() {
    // A repeating text: the masked character is predictable from its neighbours.
    let cfg = Config {
        vocab_size: 5,
        block_size: 8,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
    };
    let varmap = VarMap::new();
    let model = Bert::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let train = TrainConfig {
        max_steps: 60,
        learning_rate: 1e-2,
        warmup_steps: 5,
        ..TrainConfig::default()
    };
    let mut stepper = Stepper::new(&varmap, train).unwrap();
    let text: Vec<u32> = (0..8 * 16).map(|i| (i % 4) as u32).collect();
    let mut losses = Vec::new();
    while !stepper.is_done() {
        let m = stepper
            .step(|rng| {
                let batch = mask_tokens(&text, 16, 8, cfg.mask_id(), rng);
                let (loss, _) = model.mlm_loss(&batch)?;
                Ok(MicroLoss {
                    loss,
                    tokens: batch.labels.len(),
                })
            })
            .unwrap();
        losses.push(m.loss);
    }
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(first > 1.2 && last < 0.5, "loss {first} -> {last}");
}
