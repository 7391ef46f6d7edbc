"""Small GGUF files built byte by byte, for the error tests and the fuzz seeds.

`GGUFBuilder` writes exactly what it is told (duplicate keys, bad offsets, any
version), and records where each region starts so a test can corrupt it.
`tiny_model` is a complete model (gemma3 or llama architecture, F32/F16/Q8_0
weights, a small SentencePiece or BPE vocab) a few tens of KB in size.
"""

import struct

import numpy as np

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
               BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}

# ggml tensor types used here: (id, block size, bytes per block).
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
_TYPE_SIZE = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q8_0: (32, 34)}


def enc_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def enc_value(vtype, value):
    """Bytes of one value (without its type tag). Arrays: value = (elem_type, items)."""
    if vtype == STRING:
        return enc_str(value)
    if vtype == ARRAY:
        et, items = value
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(enc_value(et, x) for x in items)
    return struct.pack(_SCALAR_FMT[vtype], value)


def nbytes_of(ggml_type, ne):
    if ggml_type in _TYPE_SIZE:
        block, size = _TYPE_SIZE[ggml_type]
    else:
        import gguf

        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
    n = 1
    for d in ne:
        n *= d
    return n // block * size


def quantize_q8_0(x):
    """Rows of float32 -> Q8_0 blocks (f16 scale + 32 int8), as ggml's reference."""
    x = np.asarray(x, np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
    q = np.round(x * inv[:, None]).astype(np.int8)
    out = np.zeros((x.shape[0], 34), np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


class GGUFBuilder:
    def __init__(self, version=3, alignment=32):
        self.version = version
        self.alignment = alignment
        self.kv = []       # (key, type, value)
        self.tensors = []  # (name, ne, ggml_type, data bytes or None, offset or None)
        self.regions = {}  # region name -> byte offset, filled by build()

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))
        return self

    def tensor(self, name, ne, ggml_type, data=None, offset=None):
        self.tensors.append((name, tuple(ne), ggml_type, data, offset))
        return self

    def build(self, n_tensors=None, n_kv=None, omit_data=False):
        """The file's bytes. n_tensors / n_kv override the counts written in the header;
        omit_data stops after the tensor table (the offsets still count the data)."""
        out = bytearray(b"GGUF")
        out += struct.pack("<I", self.version)
        self.regions["counts"] = len(out)
        out += struct.pack("<QQ", len(self.tensors) if n_tensors is None else n_tensors,
                           len(self.kv) if n_kv is None else n_kv)
        self.regions["kv"] = len(out)
        for key, vtype, value in self.kv:
            out += enc_str(key) + struct.pack("<I", vtype) + enc_value(vtype, value)
        self.regions["tensor_info"] = len(out)
        offsets, pos, blobs = [], 0, []
        for name, ne, t, data, off in self.tensors:
            nb = nbytes_of(t, ne)
            blob = data if data is not None else bytes(nb if not omit_data else 0)
            if omit_data:
                pos_size = nb
            else:
                pos_size = len(blob)
            offsets.append(pos if off is None else off)
            blobs.append(blob)
            pos += (pos_size + self.alignment - 1) // self.alignment * self.alignment
        for (name, ne, t, _, _), off in zip(self.tensors, offsets):
            out += enc_str(name) + struct.pack("<I", len(ne))
            out += b"".join(struct.pack("<Q", d) for d in ne)
            out += struct.pack("<IQ", t, off)
        if self.tensors:
            out += bytes(-len(out) % self.alignment)
        self.regions["data"] = len(out)
        if omit_data:
            return bytes(out)
        for blob in blobs:
            out += blob + bytes(-len(blob) % self.alignment)
        return bytes(out)


def every_type_builder(version=3):
    """One key of every metadata type, nested arrays included, and two tensors."""
    b = GGUFBuilder(version=version)
    b.add("general.architecture", STRING, "test")
    b.add("t.u8", U8, 200).add("t.i8", I8, -100).add("t.u16", U16, 60000).add("t.i16", I16, -30000)
    b.add("t.u32", U32, 4000000000).add("t.i32", I32, -2000000000)
    b.add("t.u64", U64, 2**63 + 5).add("t.i64", I64, -(2**62))
    b.add("t.f32", F32, 1.5).add("t.f64", F64, -2.25)
    b.add("t.bool_t", BOOL, True).add("t.bool_f", BOOL, False)
    b.add("t.str", STRING, "héllo wörld").add("t.empty_str", STRING, "")
    b.add("t.arr_i32", ARRAY, (I32, [1, -2, 3]))
    b.add("t.arr_str", ARRAY, (STRING, ["a", "", "ccc"]))
    b.add("t.arr_empty", ARRAY, (F32, []))
    b.add("t.arr_nested", ARRAY, (ARRAY, [(U8, [1, 2]), (STRING, ["x"]), (ARRAY, [(I64, [-7])])]))
    b.tensor("a", (32, 2), GGML_F32, np.arange(64, dtype=np.float32).tobytes())
    b.tensor("b", (64,), GGML_Q8_0)
    return b


def tiny_model(arch="gemma3", tokenizer="llama", qtype=GGML_Q8_0, seed=0, n_layer=2, version=3):
    """A complete, loadable tiny model. Returns a GGUFBuilder (call .build())."""
    rng = np.random.default_rng(seed)
    E, F, H, HKV, D = 32, 64, 2, 1, 16
    b = GGUFBuilder(version=version)
    b.add("general.architecture", STRING, arch)
    b.add("general.name", STRING, "tiny-" + arch)
    a = arch + "."
    b.add(a + "context_length", U32, 256)
    b.add(a + "embedding_length", U32, E)
    b.add(a + "block_count", U32, n_layer)
    b.add(a + "feed_forward_length", U32, F)
    b.add(a + "attention.head_count", U32, H)
    b.add(a + "attention.head_count_kv", U32, HKV)
    b.add(a + "attention.key_length", U32, D)
    b.add(a + "attention.value_length", U32, D)
    b.add(a + "attention.layer_norm_rms_epsilon", F32, 1e-6)
    b.add(a + "rope.freq_base", F32, 10000.0)
    if arch == "gemma3":
        b.add(a + "attention.sliding_window", U32, 8)
        b.add(a + "rope.freq_base_swa", F32, 10000.0)

    pieces = ["<unk>", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [" ", ",", "!", "."]
    if tokenizer == "llama":
        pieces += ["<0x%02X>" % i for i in range(8)] + ["\u2581" + c if c != " " else "\u2581" for c in letters[:20]]
        pieces += letters[:20]
        types = [2, 3, 3, 3, 3] + [6] * 8 + [1] * (len(pieces) - 13)
        b.add("tokenizer.ggml.model", STRING, "llama")
        b.add("tokenizer.ggml.tokens", ARRAY, (STRING, pieces))
        b.add("tokenizer.ggml.scores", ARRAY, (F32, [-float(i) for i in range(len(pieces))]))
        b.add("tokenizer.ggml.token_type", ARRAY, (I32, types))
        b.add("tokenizer.ggml.add_bos_token", BOOL, True)
    else:
        byte_chars = [chr(c) for c in range(ord("!"), ord("~") + 1)]
        pieces += byte_chars + ["\u0120", "he", "ll", "hell", "hello", "\u0120w"]
        types = [3, 3, 3, 3, 3] + [1] * (len(pieces) - 5)
        merges = ["h e", "l l", "he ll", "hell o", "\u0120 w"]
        b.add("tokenizer.ggml.model", STRING, "gpt2")
        b.add("tokenizer.ggml.pre", STRING, "default")
        b.add("tokenizer.ggml.tokens", ARRAY, (STRING, pieces))
        b.add("tokenizer.ggml.token_type", ARRAY, (I32, types))
        b.add("tokenizer.ggml.merges", ARRAY, (STRING, merges))
    b.add("tokenizer.ggml.bos_token_id", U32, 1)
    b.add("tokenizer.ggml.eos_token_id", U32, 2)
    V = len(pieces)

    def mat(name, ne0, ne1):
        x = rng.standard_normal((ne1, ne0)).astype(np.float32) * 0.1
        if qtype == GGML_Q8_0:
            b.tensor(name, (ne0, ne1), GGML_Q8_0, quantize_q8_0(x))
        elif qtype == GGML_F16:
            b.tensor(name, (ne0, ne1), GGML_F16, x.astype(np.float16).tobytes())
        else:
            b.tensor(name, (ne0, ne1), GGML_F32, x.tobytes())

    def vec(name, n):
        b.tensor(name, (n,), GGML_F32, (1.0 + 0.01 * rng.standard_normal(n)).astype(np.float32).tobytes())

    mat("token_embd.weight", E, V)
    vec("output_norm.weight", E)
    for il in range(n_layer):
        p = "blk.%d." % il
        vec(p + "attn_norm.weight", E)
        mat(p + "attn_q.weight", E, H * D)
        mat(p + "attn_k.weight", E, HKV * D)
        mat(p + "attn_v.weight", E, HKV * D)
        mat(p + "attn_output.weight", H * D, E)
        if arch in ("gemma3", "qwen3"):
            vec(p + "attn_q_norm.weight", D)
            vec(p + "attn_k_norm.weight", D)
        vec(p + "ffn_norm.weight", E)
        mat(p + "ffn_gate.weight", E, F)
        mat(p + "ffn_up.weight", E, F)
        mat(p + "ffn_down.weight", F, E)
        if arch == "gemma3":
            vec(p + "post_attention_norm.weight", E)
            vec(p + "post_ffw_norm.weight", E)
    return b


def data_offset(path):
    """Byte offset of the data section of a GGUF file (a fast header walk)."""
    with open(path, "rb") as f:
        buf = f.read(64 << 20)
    pos = 8
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, pos)
    pos += 16
    alignment = 32

    def skip(t, pos):
        if t == STRING:
            return pos + 8 + struct.unpack_from("<Q", buf, pos)[0]
        if t == ARRAY:
            et, n = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if et in _SCALAR_FMT:
                return pos + n * struct.calcsize(_SCALAR_FMT[et])
            for _ in range(n):
                pos = skip(et, pos)
            return pos
        return pos + struct.calcsize(_SCALAR_FMT[t])

    for _ in range(n_kv):
        klen = struct.unpack_from("<Q", buf, pos)[0]
        key = buf[pos + 8:pos + 8 + klen]
        pos += 8 + klen
        t = struct.unpack_from("<I", buf, pos)[0]
        pos += 4
        if key == b"general.alignment":
            alignment = struct.unpack_from("<I", buf, pos)[0]
        pos = skip(t, pos)
    for _ in range(n_tensors):
        pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
        nd = struct.unpack_from("<I", buf, pos)[0]
        pos += 4 + 8 * nd + 4 + 8
    return (pos + alignment - 1) // alignment * alignment
