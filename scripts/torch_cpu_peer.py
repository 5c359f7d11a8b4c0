#!/usr/bin/env python3
"""PyTorch peer of `mixscope bench train --real` on the CPU: one training configuration per
process, so that its peak RSS is its own.

    torch_cpu_peer.py SHAPE MODE [--batch B] [--seq T] [--warm W] [--steps S] [--threads N] [--new M]

SHAPE: smollm2-135m (Llama, hidden 576, 30 layers, 9 heads / 3 KV heads, FFN 1536, vocabulary
49,152, tied embeddings) or qwen2.5-0.5b (Qwen2, hidden 896, 24 layers, 14 / 2 heads, FFN 4864,
vocabulary 151,936, tied, q/k/v biases); their Hugging Face config.json values. MODE: eager or
compile (torch.compile of the model, default inductor backend; compilation happens in the
warm-up steps, which are not timed), or generate: transformers' `generate`, greedy with its KV
cache, B prompts of T random tokens decoded together for exactly M new tokens each.

The step is mixscope's: random tokens at full length (no padding), f32 throughout, loss = mean
token cross-entropy, backward, global-norm clipping at 1.0, AdamW (lr 1e-3, betas 0.9 / 0.999,
eps 1e-8, weight decay 0.01). transformers' default attention (`sdpa`).

Prints one JSON object: tokens_per_s (median step), step_ms with its forward / backward /
optimizer split, peak_rss_mib (this process's maximum resident set), versions.
"""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F

SHAPES = {
    "smollm2-135m": dict(
        arch="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True, max_position_embeddings=8192),
    "qwen2.5-0.5b": dict(
        arch="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, max_position_embeddings=32768),
}


def build(shape):
    cfg = dict(SHAPES[shape])
    arch = cfg.pop("arch")
    if arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM
        return LlamaForCausalLM(LlamaConfig(**cfg, hidden_act="silu", attention_bias=False))
    from transformers import Qwen2Config, Qwen2ForCausalLM
    return Qwen2ForCausalLM(Qwen2Config(**cfg, hidden_act="silu"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("mode", choices=["eager", "compile", "generate"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.shape)
    if a.mode == "generate":
        return generate(model, a)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    fwd_model = torch.compile(model) if a.mode == "compile" else model
    v = model.config.vocab_size
    g = torch.Generator().manual_seed(7)
    times = []
    t_first = time.perf_counter()
    for i in range(a.warm + a.steps):
        ids = torch.randint(0, v, (a.batch, a.seq), generator=g)
        tg = torch.randint(0, v, (a.batch, a.seq), generator=g)
        t0 = time.perf_counter()
        logits = fwd_model(input_ids=ids).logits
        loss = F.cross_entropy(logits.view(-1, v), tg.view(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if i == a.warm - 1:
            warm_s = t3 - t_first
        if i >= a.warm:
            times.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2))
    times.sort()
    tot, fwd, bwd, o = times[len(times) // 2]
    import transformers
    print(json.dumps(dict(
        peer="pytorch", shape=a.shape, mode=a.mode, batch=a.batch, seq=a.seq, threads=a.threads,
        params=params, steps=a.steps, tokens_per_s=a.batch * a.seq / tot, step_ms=tot * 1e3,
        forward_ms=fwd * 1e3, backward_ms=bwd * 1e3, optimizer_ms=o * 1e3, warmup_s=warm_s,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        torch=torch.__version__, transformers=transformers.__version__)), flush=True)


def generate(model, a):
    import transformers
    model.eval()
    v = model.config.vocab_size
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, v, (a.batch, a.seq), generator=g)
    mask = torch.ones_like(ids)
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True)
    with torch.no_grad():
        model.generate(input_ids=ids[:1], attention_mask=mask[:1], max_new_tokens=2, min_new_tokens=2, **kw)
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.new, min_new_tokens=a.new, **kw)
        secs = time.perf_counter() - t0
    n = (out.shape[1] - a.seq) * a.batch
    print(json.dumps(dict(
        peer="transformers", shape=a.shape, mode="generate", batch=a.batch, seq=a.seq, new=a.new,
        threads=a.threads, tokens_per_s=n / secs, new_tokens=n, seconds=secs,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        torch=torch.__version__, transformers=transformers.__version__)), flush=True)


if __name__ == "__main__":
    main()
