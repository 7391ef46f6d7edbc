# issue 12 (tactic-s5): rewinding one step is exact, and the smallest query noise that changes anything.
# TACTIC_LIB=/tmp/t12/lib-20dbf13.so nice -n 19 python docs/results/t12s5-noise-floor.py (run from the repository root)
import random, sys
sys.path.insert(0, "scripts")
import numpy as np
from tactic_common import Ctx, Model, kl
from tactic_tasks import multikey_doc
model = Model()
rng = random.Random(9)
for n in (8192, 16384):
    doc, qs = multikey_doc(model, n, 4, rng)
ctx = Ctx(model, 16384 + 128, attention="tactic", selector="bounded", p=0.9, n_threads=2)
ctx.prefill_cached(doc, "multikey_s9_16384")
L = len(doc)
q = model.tokenize(qs[2][0], add_special=False)
right = model.tokenize(" 69247", add_special=False); wrong = model.tokenize(" 65389", add_special=False)
ctx.truncate(L); ctx.set_selection("full", 1.0)
for t in q + right[:1]:
    ctx.eval([t])
n_pre = ctx.n_past()
def step(sel="full", p=1.0, sigma=0.0, seed=0):
    ctx.truncate(n_pre); ctx.set_selection(sel, p); ctx.set_noise(sigma, seed)
    ctx.eval([right[1]]); lg = ctx.logits(-1); ctx.set_noise(0); return lg
ref = step()
for name, kw in (("full again", {}), ("full again", {}), ("noise 1e-6", dict(sigma=1e-6, seed=1)),
                 ("noise 1e-4", dict(sigma=1e-4, seed=1)), ("full again", {}), ("oracle 0.999", dict(sel="oracle", p=0.999)),
                 ("full again", {})):
    lg = step(**kw)
    print(name, f"margin {lg[right[2]] - lg[wrong[2]]:+.4f} KL {kl(ref, lg):.6f} maxdiff {np.abs(lg - ref).max():.4g}", flush=True)
