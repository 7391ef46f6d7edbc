#!/usr/bin/env python3
"""Writes the seed corpus of the GGUF fuzzer into a folder:

- hand-made files with every metadata type (v2 and v3), nested arrays included;
- complete tiny models (gemma3/llama/qwen3; SentencePiece and BPE vocabs; F32, F16, Q8_0)
  that bind and load a tokenizer, so mutations reach Model::from_gguf and the tokenizer;
- seeds derived from the real Gemma 3 file when it is given: its first 64 KB, its real
  metadata with the vocab arrays cut to 600 entries, and that metadata plus the real
  236-entry tensor table without the data.

usage: make_seeds.py OUT_DIR [REAL_MODEL.gguf]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import gguf_builders as gb  # noqa: E402


def real_metadata_builder(path, keep=600, with_tensors=False):
    import gguf

    r = gguf.GGUFReader(path)
    b = gb.GGUFBuilder()
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [int(t) for t in f.types]
        v = f.contents()
        if types[0] == gb.ARRAY:
            b.add(key, gb.ARRAY, (types[1], list(v)[:keep]))
        else:
            b.add(key, types[0], v)
    if with_tensors:
        for t in r.tensors:
            b.tensor(t.name, [int(x) for x in t.shape], int(t.tensor_type))
    return b


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    seeds = {
        "every_type_v3": gb.every_type_builder(3).build(),
        "every_type_v2": gb.every_type_builder(2).build(),
        "gemma3_spm_q8": gb.tiny_model("gemma3", "llama", gb.GGML_Q8_0).build(),
        "llama_bpe_f16": gb.tiny_model("llama", "gpt2", gb.GGML_F16, n_layer=1).build(),
        "qwen3_bpe_f32": gb.tiny_model("qwen3", "gpt2", gb.GGML_F32, n_layer=1).build(),
        "empty_v3": gb.GGUFBuilder().build(),
    }
    if len(sys.argv) > 2:
        real = sys.argv[2]
        with open(real, "rb") as f:
            seeds["real_head_64k"] = f.read(65536)
        seeds["real_meta_600"] = real_metadata_builder(real).build()
        seeds["real_tensor_table"] = real_metadata_builder(real, keep=64, with_tensors=True).build(omit_data=True)
    for name, data in seeds.items():
        (out / (name + ".gguf")).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
