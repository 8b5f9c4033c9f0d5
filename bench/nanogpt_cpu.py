"""PyTorch CPU peer for `cargo xtask bench`: nanoGPT's model, trained and sampled on the CPU.

The model is nanoGPT's model.py (Karpathy), written out here so the peer is exactly the
architecture the engine implements: token + learned position embeddings, pre-LN blocks,
causal multi-head attention, an exact (erf) GELU MLP, LayerNorm eps 1e-5, and the LM head
tied to the token embedding. One addition: a simple KV cache in the attention, so sampling
can be timed with and without it.

Figures (tokens/s), written as a JSON array of {"name", "value", "unit"} objects:
  train               AdamW steps on batch_size x block_size random tokens (fwd+bwd+clip+step)
  sample_kv_cache     new tokens from a one-token prompt, one token per forward, cached K/V
  sample_no_kv_cache  the same, re-running the whole (cropped) context each token, as nanoGPT does

Usage: python3 bench/nanogpt_cpu.py --config bench/config.json --out target/bench/pytorch_cpu.json
"""

import argparse
import json
import math
import os
import time
import warnings

# The PyPI wheel warns at import when numpy is absent; the bench never needs numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg["n_embd"] % cfg["n_head"] == 0
        self.c_attn = nn.Linear(cfg["n_embd"], 3 * cfg["n_embd"], bias=cfg["bias"])  # q|k|v
        self.c_proj = nn.Linear(cfg["n_embd"], cfg["n_embd"], bias=cfg["bias"])
        self.attn_dropout = nn.Dropout(cfg["dropout"])
        self.resid_dropout = nn.Dropout(cfg["dropout"])
        self.n_head = cfg["n_head"]
        self.n_embd = cfg["n_embd"]
        self.dropout = cfg["dropout"]

    def forward(self, x, cache=None):
        """x: (B, T, C). `cache` is this layer's (k, v) from earlier positions or None.

        Returns (y, (k, v)) where k, v cover every position seen so far.
        """
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        past = 0
        if cache is not None:
            past = cache[0].size(2)
            k = torch.cat([cache[0], k], dim=2)  # (B, nh, past + T, hs)
            v = torch.cat([cache[1], v], dim=2)
        dropout_p = self.dropout if self.training else 0.0
        if past == 0:
            # nanoGPT's path: the fused kernel with its built-in causal mask.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif T == 1:
            # One new query sees every cached key: no mask.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            # Several new queries after a cache: query i (at position past + i) sees keys 0..past + i.
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        y = self.resid_dropout(self.c_proj(y))
        return y, (k, v)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg["n_embd"], 4 * cfg["n_embd"], bias=cfg["bias"])
        self.gelu = nn.GELU()  # exact (erf) GELU, as GPT-2's checkpoints are used with
        self.c_proj = nn.Linear(4 * cfg["n_embd"], cfg["n_embd"], bias=cfg["bias"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = LayerNorm(cfg["n_embd"], bias=cfg["bias"])
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg["n_embd"], bias=cfg["bias"])
        self.mlp = MLP(cfg)

    def forward(self, x, cache=None):
        a, cache = self.attn(self.ln_1(x), cache)
        x = x + a  # x = x + attn(ln_1(x))
        x = x + self.mlp(self.ln_2(x))  # x = x + mlp(ln_2(x))
        return x, cache


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg["vocab_size"], cfg["n_embd"]),
                wpe=nn.Embedding(cfg["block_size"], cfg["n_embd"]),
                drop=nn.Dropout(cfg["dropout"]),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])]),
                ln_f=LayerNorm(cfg["n_embd"], bias=cfg["bias"]),
            )
        )
        self.lm_head = nn.Linear(cfg["n_embd"], cfg["vocab_size"], bias=False)
        # Weight tying (Press & Wolf 2017), as GPT-2 does.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg["n_layer"]))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, caches=None):
        """idx: (B, T) token ids. `caches`: one (k, v) per layer from earlier positions, or None.

        Returns (logits, loss, caches). With targets, logits cover every position and loss is
        the mean cross-entropy; without, only the last position's logits (B, 1, vocab).
        """
        B, T = idx.size()
        past = 0 if caches is None else caches[0][0].size(2)
        assert past + T <= self.cfg["block_size"], "sequence longer than block_size"
        pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        new_caches = []
        for i, block in enumerate(self.transformer.h):
            x, c = block(x, None if caches is None else caches[i])
            new_caches.append(c)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)  # (B, T, vocab)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        else:
            logits = self.lm_head(x[:, [-1], :])  # (B, 1, vocab)
            loss = None
        return logits, loss, new_caches

    def configure_optimizer(self, tc):
        """nanoGPT's AdamW: decay on 2-D weights (matmuls, embeddings), none on biases and norms."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": tc["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        # nanoGPT uses the fused kernel only on CUDA.
        return torch.optim.AdamW(groups, lr=tc["learning_rate"], betas=(tc["beta1"], tc["beta2"]))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature, generator, use_kv_cache):
        """nanoGPT's sampling loop; with `use_kv_cache` each step feeds only the newest token."""
        block_size = self.cfg["block_size"]
        caches = None
        for _ in range(max_new_tokens):
            if use_kv_cache:
                if caches is not None and caches[0][0].size(2) >= block_size:
                    raise ValueError("the KV cache is full: prompt + new tokens exceed block_size")
                step = idx if caches is None else idx[:, -1:]
                logits, _, caches = self(step, caches=caches)
            else:
                cond = idx if idx.size(1) <= block_size else idx[:, -block_size:]
                logits, _, _ = self(cond)
            logits = logits[:, -1, :] / temperature
            probs = F.softmax(logits, dim=-1)
            nxt = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, nxt), dim=1)
        return idx


def check_kv_cache(model, cfg):
    """The cached path must give the full forward's logits, or its speed means nothing."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(cfg["vocab_size"], (2, 24), generator=g)
    with torch.no_grad():
        full, _, _ = model(idx, targets=idx)  # (B, T, vocab): with targets, every position
        _, _, caches = model(idx[:, :10])  # prefill 10
        _, _, caches = model(idx[:, 10:16], caches=caches)  # 6 more at once (masked path)
        steps = []
        for t in range(16, 24):  # then one at a time
            logits, _, caches = model(idx[:, t : t + 1], caches=caches)
            steps.append(logits)
    cached = torch.cat(steps, dim=1)
    err = (cached - full[:, 16:24]).abs().max().item()
    if err > 1e-4:
        raise SystemExit(f"kv cache check failed: logits differ by {err:.2e} from the full forward")


def bench_train(cfg, tc):
    torch.manual_seed(tc["seed"])
    model = GPT(cfg)
    model.train()
    opt = model.configure_optimizer(tc)
    B, T = tc["batch_size"], cfg["block_size"]
    g = torch.Generator().manual_seed(tc["seed"])
    steps = tc["warmup_steps"] + tc["timed_steps"]
    # Random tokens: throughput does not depend on the text, and both sides can make them.
    data = torch.randint(cfg["vocab_size"], (steps, B, T + 1), generator=g)
    xs, ys = data[:, :, :-1].contiguous(), data[:, :, 1:].contiguous()  # (steps, B, T)
    losses = []
    for step in range(steps):
        if step == tc["warmup_steps"]:
            start = time.perf_counter()
        _, loss, _ = model(xs[step], ys[step])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        losses.append(loss.item())
    elapsed = time.perf_counter() - start
    tokens = tc["timed_steps"] * B * T
    print(
        f"  train: {tc['timed_steps']} steps of {B}x{T} tokens in {elapsed:.2f}s, "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    return tokens / elapsed


def bench_sample(cfg, sc, use_kv_cache):
    torch.manual_seed(sc["seed"])
    model = GPT(cfg)
    model.eval()
    if use_kv_cache:
        check_kv_cache(model, cfg)
    prompt = torch.tensor([sc["prompt"]], dtype=torch.long)
    n = sc["max_new_tokens"]
    times = []
    for run in range(sc["warmup_runs"] + sc["timed_runs"]):
        g = torch.Generator().manual_seed(sc["seed"] + run)
        start = time.perf_counter()
        out = model.generate(prompt, n, sc["temperature"], g, use_kv_cache)
        if run >= sc["warmup_runs"]:
            times.append(time.perf_counter() - start)
        assert out.size(1) == prompt.size(1) + n
    label = "with" if use_kv_cache else "without"
    print(f"  sample {label} kv cache: {len(times)} runs of {n} tokens, {min(times):.3f}-{max(times):.3f}s each")
    # Every timed token over the total time, as the engine's example counts it.
    return len(times) * n / sum(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="bench/config.json", help="shared bench config (JSON)")
    ap.add_argument("--out", default="target/bench/pytorch_cpu.json", help="figures JSON to write")
    ap.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch CPU threads (default: every core; on a busy machine 1 can be faster)",
    )
    args = ap.parse_args()

    with open(args.config) as f:
        config = json.load(f)
    cfg, tc, sc = config["model"], config["train"], config["sample"]
    assert len(sc["prompt"]) + sc["max_new_tokens"] - 1 <= cfg["block_size"], (
        "prompt + max_new_tokens must fit the block so the KV cache never has to slide"
    )

    torch.set_num_threads(args.threads)
    n_params = sum(p.numel() for p in GPT(cfg).parameters())
    load = os.getloadavg()[0]
    print(
        f"pytorch {torch.__version__} on CPU, {args.threads} threads of {os.cpu_count()} cores; "
        f"{n_params / 1e6:.2f}M parameters; load average {load:.1f}"
    )
    if load > 0.5 * os.cpu_count():
        # Other processes preempt torch's worker threads; figures are then far too low.
        print("  warning: the machine is busy; these figures understate an idle machine")

    figures = [
        {"name": "train", "value": bench_train(cfg, tc), "unit": "tokens/s"},
        {"name": "sample_kv_cache", "value": bench_sample(cfg, sc, True), "unit": "tokens/s"},
        {"name": "sample_no_kv_cache", "value": bench_sample(cfg, sc, False), "unit": "tokens/s"},
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(figures, f, indent=2)
        f.write("\n")
    for fig in figures:
        print(f"  {fig['name']}: {fig['value']:.1f} {fig['unit']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
