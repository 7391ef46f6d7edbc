"""python -m pytactic.convert SRC [--outfile F] [--outtype TYPE]"""

from __future__ import annotations

import argparse
import logging
import sys

from . import OUTTYPES, SUPPORTED_ARCHITECTURES, ConvertError, convert


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytactic.convert",
        description="Convert a Hugging Face checkpoint (safetensors) to GGUF. Supported: "
        + ", ".join(SUPPORTED_ARCHITECTURES) + ".",
    )
    ap.add_argument("src", help="a local checkpoint directory or a Hugging Face repo id (owner/name)")
    ap.add_argument("--outfile", "-o", help="output path (default: ./<name>-<outtype>.gguf)")
    ap.add_argument("--outtype", "-t", default="f16", choices=list(OUTTYPES), type=str.lower,
                    help="tensor type of the weights (default f16); norms and 1-D tensors stay f32")
    ap.add_argument("--revision", help="a branch, tag or commit of the HF repo")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        res = convert(args.src, args.outfile, args.outtype, progress=not args.no_progress, revision=args.revision)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    counts: dict[str, int] = {}
    for t in res.types.values():
        counts[t] = counts.get(t, 0) + 1
    mix = ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda x: -x[1]))
    print(f"wrote {res.path} ({res.arch}, {res.n_tensors} tensors: {mix}; {res.n_bytes / 2**20:.1f} MiB of weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
