"""The H200's read-only bandwidth ceiling for the attention table: torch's amax over an f16
buffer of the 8B shape's K+V bytes at each context, replayed in a CUDA graph (copies
rotated so that every launch streams from HBM), GB/s of bytes read."""
import sys

import torch

for n in [int(x) for x in sys.argv[1:]] or [32768, 131072]:
    nbytes = n * 8 * 128 * 2 * 2
    copies = max(1, min(8, (1 << 30) // nbytes))
    bufs = [torch.randn(nbytes // 2, device="cuda", dtype=torch.float16) for _ in range(copies)]
    outs = [torch.empty((), device="cuda", dtype=torch.float16) for _ in range(copies)]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for b, o in zip(bufs, outs):
            torch.amax(b, dim=0, out=o)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for b, o in zip(bufs, outs):
            torch.amax(b, dim=0, out=o)
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(8):
            g.replay()
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1) / (8 * copies))
    ms = sorted(times)[2]
    print(f"read-only amax n={n:6d} {nbytes / 1e6:7.1f} MB {ms * 1e3:7.1f} us {nbytes / ms / 1e6:6.0f} GB/s", flush=True)
    del bufs, outs, g
    torch.cuda.empty_cache()
