"""Loads a Hugging Face GPT-2 export with transformers and prints its logits as JSON.

usage: hf_gpt2_logits.py MODEL_DIR IDS   (IDS comma-separated, one sequence)
"""
import json
import sys

import torch
from transformers import GPT2LMHeadModel

model = GPT2LMHeadModel.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor([[int(t) for t in sys.argv[2].split(",")]])
with torch.no_grad():
    logits = model(ids).logits
print(json.dumps(logits.flatten().tolist()))
