//! Whole-model forward values of GPT variants (lesson C3's norm, FFN, norm placement and
//! residual switches) against an independent PyTorch implementation: `torch_gpt_variants.py`
//! wrote seeded float64 weights, token ids and PyTorch's logits to
//! `fixtures/gpt_variants_torch.json`; here the same weights go into the engine's `Gpt` by
//! tensor name and its logits must match to 1e-9.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use engine::model::gpt::{Config, Gpt};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    torch: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    config: Config,
    ids: Vec<u32>,
    weights: HashMap<String, Weight>,
    logits: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct Weight {
    shape: Vec<usize>,
    data: Vec<f64>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gpt_variants_torch.json"
    );
    let text = std::fs::read_to_string(path).expect("run tests/torch_gpt_variants.py");
    serde_json::from_str(&text).unwrap()
}

/// The engine's logits `(t, vocab)` for a case, with the case's weights.
fn engine_logits(case: &Case) -> Vec<Vec<f64>> {
    let varmap = VarMap::new();
    let model = Gpt::new(
        &case.config,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    let vars = varmap.data().lock().unwrap().clone();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut given: Vec<&String> = case.weights.keys().collect();
    given.sort();
    assert_eq!(names, given, "{}: the parameters differ by name", case.name);
    for (name, var) in &vars {
        let w = &case.weights[name];
        let t = Tensor::from_vec(w.data.clone(), w.shape.as_slice(), &Device::Cpu).unwrap();
        assert_eq!(t.dims(), var.dims(), "{}: {name}", case.name);
        var.set(&t).unwrap();
    }
    let t = case.ids.len();
    let ids = Tensor::from_vec(case.ids.clone(), (1, t), &Device::Cpu).unwrap();
    let (logits, _) = model.forward(&ids, None, false).unwrap();
    logits.squeeze(0).unwrap().to_vec2::<f64>().unwrap()
}

#[test]
fn every_variant_matches_pytorch_logits() {
    let fixture = fixture();
    assert!(fixture.cases.len() >= 5, "torch {}", fixture.torch);
    for case in &fixture.cases {
        let got = engine_logits(case);
        assert_eq!(got.len(), case.logits.len());
        let mut max_err = 0f64;
        for (g, e) in got.iter().flatten().zip(case.logits.iter().flatten()) {
            max_err = max_err.max((g - e).abs());
        }
        eprintln!("{}: max |engine - torch| = {max_err:.2e}", case.name);
        assert!(max_err < 1e-9, "{}: {max_err}", case.name);
    }
}

#[test]
fn the_variants_really_differ() {
    // Same seed stream, different architectures: the logits must not coincide, or the
    // comparison above would prove nothing about the switches.
    let fixture = fixture();
    let spread = |c: &Case| c.logits.iter().flatten().map(|v| v.abs()).sum::<f64>();
    let names: Vec<&str> = fixture.cases.iter().map(|c| c.name.as_str()).collect();
    for (i, a) in fixture.cases.iter().enumerate() {
        assert!(spread(a) > 1.0, "{}: logits near zero", a.name);
        for b in &fixture.cases[i + 1..] {
            assert_ne!(a.logits, b.logits, "{} vs {} ({names:?})", a.name, b.name);
        }
    }
    let configs: Vec<bool> = fixture.cases.iter().map(|c| c.config.is_gpt2()).collect();
    assert_eq!(
        configs.iter().filter(|g| **g).count(),
        1,
        "one GPT-2 baseline"
    );
}
