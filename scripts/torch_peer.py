#!/usr/bin/env python3
"""PyTorch eager peer of `mixscope bench gpu`: the same Qwen2.5-0.5B shape, random tokens,
batch 2 x sequence 1024 (MIXSCOPE_BENCH_BATCH / MIXSCOPE_BENCH_SEQ), loss = mean token
cross-entropy over f32 logits, global-norm clipping at 1.0, AdamW (lr 1e-5, no weight decay).

Precisions, as in mixscope: `mixed` = f32 parameters under torch.autocast(bfloat16);
`bf16` = bfloat16 parameters. Attention: transformers' `sdpa` (the default a user gets) and
`eager` (materialised softmax, as mixscope's composite path). No torch.compile: eager mode.

Prints one JSON object per configuration (tokens_per_s, step_ms split, tflop_per_s, mfu_pct).
"""
import json, os, sys, time

import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM

B = int(os.environ.get("MIXSCOPE_BENCH_BATCH", "2"))
T = int(os.environ.get("MIXSCOPE_BENCH_SEQ", "1024"))
PEAK = float(os.environ.get("MIXSCOPE_PEAK_TFLOPS", "989.4"))
QUICK = "--quick" in sys.argv
DEV = os.environ.get("PEER_DEVICE", "cuda")  # cpu: a check of the script itself


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()

cfg = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
           num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
           rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu")


def flops_per_token(seq):
    # the same count as ModelConfig::train_flops_per_token
    h, i, v, L = 896, 4864, 151936, 24
    kv = 2 * 64
    dense = (2 * h * h + 2 * h * kv + 3 * h * i) * L + v * h
    attn = 2 * h * ((seq + 1) // 2) * L
    return 6.0 * (dense + attn)


def run(precision, attn):
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**cfg, attn_implementation=attn)).to(DEV)
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    g = torch.Generator(device=DEV).manual_seed(7)
    warm, steps = (1, 3) if QUICK else (3, 10)
    times = []
    for i in range(warm + steps):
        ids = torch.randint(0, cfg["vocab_size"], (B, T), device=DEV, generator=g)
        tg = torch.randint(0, cfg["vocab_size"], (B, T), device=DEV, generator=g)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(DEV, dtype=torch.bfloat16, enabled=(precision == "mixed")):
            logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits.float().view(-1, cfg["vocab_size"]), tg.view(-1))
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        if i >= warm:
            times.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2))
    times.sort()
    tot, fwd, bwd, o = times[len(times) // 2]
    tps = B * T / tot
    tf = flops_per_token(T) * tps / 1e12
    out = dict(peer="pytorch", precision=precision, attention=attn, batch=B, seq=T,
               tokens_per_s=tps, step_ms=tot * 1e3, forward_ms=fwd * 1e3, backward_ms=bwd * 1e3,
               optimizer_ms=o * 1e3, tflop_per_s=tf, mfu_pct=tf / PEAK * 100,
               torch=torch.__version__)
    if DEV == "cuda":
        out.update(max_mem_gib=torch.cuda.max_memory_allocated() / 2**30, gpu=torch.cuda.get_device_name())
    print(json.dumps(out), flush=True)
    del model, opt
    if DEV == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    for precision, attn in [("mixed", "sdpa"), ("mixed", "eager"), ("bf16", "sdpa")]:
        run(precision, attn)
