#!/usr/bin/env python3
"""Load a model directory with transformers, as a user of `mixscope export` would, and print its
logits for the given token ids as JSON (f32, no cache):

    hf_logits.py MODEL_DIR ID [ID ...]

Prints {"architecture", "tie_word_embeddings", "lm_head_is_embedding", "logits": [[...], ...]}
(one row of vocabulary-sized logits per position). `tests/it/hub.rs` compares them with
mixscope's own forward of the checkpoint it exported.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    path, ids = sys.argv[1], [int(x) for x in sys.argv[2:]]
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    AutoTokenizer.from_pretrained(path)  # the tokenizer files load too
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    print(json.dumps({
        "architecture": type(model).__name__,
        "tie_word_embeddings": bool(model.config.tie_word_embeddings),
        "lm_head_is_embedding": head.data_ptr() == emb.data_ptr(),
        "logits": logits.tolist(),
    }))


if __name__ == "__main__":
    main()
