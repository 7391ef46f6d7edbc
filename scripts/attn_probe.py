"""One launch of each given decode attention kernel (attn_kernel values) and of torch's
SDPA on the 8B shape at one context, for a profiler to look at (no timing loop):
    ncu --clock-control none -k regex:"attn_decode|flash" python3 scripts/attn_probe.py 32768 1 3"""
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from test_cuda import cuda_attention  # noqa: E402

n = int(sys.argv[1])
kernels = [int(k) for k in sys.argv[2:]]
n_head, n_kv, D = 32, 8, 128
rng = np.random.default_rng(1)
K = rng.standard_normal((n_kv, n, D), dtype=np.float32).astype(np.float16)
V = rng.standard_normal((n_kv, n, D), dtype=np.float32).astype(np.float16)
q = rng.standard_normal((n_head, D)).astype(np.float32)
for k in kernels:
    cuda_attention(q, K, V, 0, n, 1 / math.sqrt(D), k)
try:
    import torch
    import torch.nn.functional as F

    qt = torch.from_numpy(q).half().cuda().view(1, n_head, 1, D)
    Kt, Vt = torch.from_numpy(K).cuda()[None], torch.from_numpy(V).cuda()[None]
    F.scaled_dot_product_attention(qt, Kt, Vt, scale=1 / math.sqrt(D), enable_gqa=True)
    torch.cuda.synchronize()
except ImportError:
    pass
