"""Reference logits of small GPT variants from PyTorch, for tests/torch_variants.rs.

An independent PyTorch forward pass (nanoGPT's model.py, with the variants of lesson C3: the
norm, the FFN, the norm's place and the residuals) on seeded random weights, in float64.
It writes the configs, the weights (by the engine's tensor names, Linear layout (out, in)),
the token ids and the logits to fixtures/gpt_variants_torch.json; the Rust test loads the
same weights into the engine's Gpt and compares its logits.

usage: python3 wasm-engine/tests/torch_gpt_variants.py   (needs torch; CPU is enough)
"""
import json
import math
import os

import torch
import torch.nn.functional as F

EPS = 1e-5  # the engine's LayerNorm/RMSNorm eps (gpt.rs), PyTorch's default

BASE = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.0, bias=True)
VARIANTS = {
    "gpt2": dict(),
    "rmsnorm_swiglu": dict(norm="rmsnorm", ffn="swiglu"),
    "post_norm_relu": dict(norm_placement="post", ffn="relu"),
    "no_residual": dict(residual=False),
    "post_norm_no_residual_rmsnorm": dict(norm_placement="post", residual=False, norm="rmsnorm"),
}


def ffn_hidden(cfg):
    c = cfg["n_embd"]
    if cfg.get("ffn", "gelu") == "swiglu":
        return math.ceil(math.ceil(8 * c / 3) / 8) * 8
    return 4 * c


def shapes(cfg):
    """Every parameter of the engine's Gpt for this config, by name."""
    c, v, t, h = cfg["n_embd"], cfg["vocab_size"], cfg["block_size"], ffn_hidden(cfg)
    norm_bias = cfg.get("norm", "layernorm") == "layernorm"
    out = {"wte.weight": (v, c), "wpe.weight": (t, c), "ln_f.weight": (c,)}
    if norm_bias:
        out["ln_f.bias"] = (c,)
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[p + ln + ".weight"] = (c,)
            if norm_bias:
                out[p + ln + ".bias"] = (c,)
        linears = {"attn.c_attn": (3 * c, c), "attn.c_proj": (c, c), "mlp.c_fc": (h, c), "mlp.c_proj": (c, h)}
        if cfg.get("ffn") == "swiglu":
            linears["mlp.c_gate"] = (h, c)
        for name, shape in linears.items():
            out[p + name + ".weight"] = shape
            out[p + name + ".bias"] = (shape[0],)
    return out


def norm(cfg, w, prefix, x):
    if cfg.get("norm", "layernorm") == "rmsnorm":
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * w[prefix + ".weight"]
    return F.layer_norm(x, (x.shape[-1],), w[prefix + ".weight"], w[prefix + ".bias"], EPS)


def linear(w, prefix, x):
    return F.linear(x, w[prefix + ".weight"], w[prefix + ".bias"])


def attn(cfg, w, p, x):
    b, t, c = x.shape
    nh = cfg["n_head"]
    q, k, v = linear(w, p + "attn.c_attn", x).split(c, dim=2)
    q, k, v = (z.view(b, t, nh, c // nh).transpose(1, 2) for z in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    y = y.transpose(1, 2).contiguous().view(b, t, c)
    return linear(w, p + "attn.c_proj", y)


def mlp(cfg, w, p, x):
    ffn = cfg.get("ffn", "gelu")
    up = linear(w, p + "mlp.c_fc", x)
    if ffn == "swiglu":
        hidden = F.silu(linear(w, p + "mlp.c_gate", x)) * up
    elif ffn == "relu":
        hidden = F.relu(up)
    else:
        hidden = F.gelu(up)  # exact erf form
    return linear(w, p + "mlp.c_proj", hidden)


def forward(cfg, w, ids):
    post = cfg.get("norm_placement", "pre") == "post"
    residual = cfg.get("residual", True)
    t = ids.shape[1]
    x = w["wte.weight"][ids] + w["wpe.weight"][:t]
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        for ln, f in (("ln_1", attn), ("ln_2", mlp)):
            if post:  # x = ln(x + f(x))
                y = f(cfg, w, p, x)
                x = norm(cfg, w, p + ln, x + y if residual else y)
            else:  # x = x + f(ln(x))
                y = f(cfg, w, p, norm(cfg, w, p + ln, x))
                x = x + y if residual else y
    return norm(cfg, w, "ln_f", x) @ w["wte.weight"].T


def main():
    torch.manual_seed(1337)
    cases = []
    for name, variant in VARIANTS.items():
        cfg = dict(BASE, **variant)
        # Uniform in (-0.5, 0.5), wider than training's init so that GELU and attention are
        # far from linear; norm gains around 1 so that every layer matters.
        w = {}
        for pname, shape in sorted(shapes(cfg).items()):
            u = torch.rand(shape, dtype=torch.float64) - 0.5
            is_norm_gain = "ln_" in pname and pname.endswith(".weight")
            w[pname] = u + 1.0 if is_norm_gain else u
        ids = torch.randint(0, cfg["vocab_size"], (1, cfg["block_size"]))
        with torch.no_grad():
            logits = forward(cfg, w, ids)
        cases.append({
            "name": name,
            "config": cfg,
            "ids": ids[0].tolist(),
            "weights": {k: {"shape": list(v.shape), "data": v.flatten().tolist()} for k, v in w.items()},
            "logits": logits[0].tolist(),
        })
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gpt_variants_torch.json")
    with open(out, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
