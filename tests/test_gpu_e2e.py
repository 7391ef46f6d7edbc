"""scripts/gpu_e2e.py on the CPU: pytactic's side runs on a tiny random file, and
llama-bench is a stand-in that checks its command line and prints JSON in llama-bench's
-o json format (the fields its json_printer writes), so the driver's command, parsing,
rows and --rows-to appending are held to what the GPU run will see."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


e2e = load("gpu_e2e")
mrg = load("make_random_gguf")

# A llama-bench stand-in: argv checked as llama-bench parses it; per depth a pp test
# (n_gen 0) then a tg test (n_prompt 0), as llama-bench orders them; samples_ts of rep r
# are 1000 * (r + 1) + depth for pp and 100 * (r + 1) + depth for tg.
FAKE = r'''
import json, sys
args = sys.argv[1:]
with open(sys.argv[0] + ".calls", "a") as f:
    f.write(json.dumps(args) + "\n")
opt = dict(zip(args[::2], args[1::2]))
assert opt["-ngl"] == "99" and opt["-fa"] == "1" and opt["-o"] == "json", args
reps, p, n = int(opt["-r"]), int(opt["-p"]), int(opt["-n"])
print("ggml_cuda_init: found 1 CUDA devices", file=sys.stderr)
tests = []
for d in map(int, opt["-d"].split(",")):
    for n_prompt, n_gen, base in ((p, 0, 1000), (0, n, 100)):
        if n_prompt + n_gen == 0:
            continue
        ts = [base * (r + 1) + d for r in range(reps)]
        ns = [int(1e9 * (n_prompt + n_gen) / t) for t in ts]
        tests.append({"build_commit": "abc1234", "build_number": 1, "model_filename": opt["-m"],
                      "n_batch": 2048, "n_ubatch": 512, "flash_attn": "on", "n_prompt": n_prompt,
                      "n_gen": n_gen, "n_depth": d, "avg_ns": sum(ns) // reps, "stddev_ns": 0,
                      "avg_ts": sum(ts) / reps, "stddev_ts": 0.0, "samples_ns": ns, "samples_ts": ts})
print(json.dumps(tests, indent=2))
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("e2e") / "tiny.gguf"
    mrg.make_random_gguf(path, "llama-3.2-1b", "q4_k_m", n_layer=2, n_embd=256, n_head=4, n_head_kv=2,
                         n_ff=512, vocab=600)
    return path


@pytest.fixture()
def fake_bench(tmp_path):
    exe = tmp_path / "llama-bench"
    exe.write_text(f"#!{sys.executable}\n{FAKE}")
    exe.chmod(0o755)
    return exe


def calls(exe):
    return [json.loads(line) for line in Path(str(exe) + ".calls").read_text().splitlines()]


def test_side_by_side_on_cpu(tiny, fake_bench, tmp_path):
    out = tmp_path / "e2e.json"
    assert e2e.main(["--model", str(tiny), "--name", "tiny", "--device", "cpu", "--depths", "0,64",
                     "--n-prompt", "32", "--n-gen", "8", "--prompt-from-empty", "96", "--reps", "2",
                     "--n-threads", "1", "--llama-bench", str(fake_bench), "--out", str(out)]) == 0
    got = calls(fake_bench)
    assert got[0][-6:] == ["-p", "32", "-n", "8", "-d", "0,64"]
    assert got[1][-6:] == ["-p", "96", "-n", "0", "-d", "0"]
    assert got[0][:2] == ["-m", str(tiny)] and "-r" in got[0] and got[0][got[0].index("-r") + 1] == "2"

    doc = json.loads(out.read_text())
    assert doc["gpu"].startswith("CPU:") and doc["commit"] and "gpu_e2e.py" in doc["command"]
    assert doc["runs"][0]["llamacpp_build"] == "abc1234 (1)"
    rows = {(r["test"], r["depth"]): r for r in doc["rows"]}
    assert set(rows) == {("pp32+tg8", 0), ("pp32+tg8", 64), ("prompt-from-empty", 0)}
    for (test, d), r in rows.items():
        assert r["model"] == "tiny" and r["attention"] == "full"
        if test == "prompt-from-empty":
            assert r["llamacpp_prefill_tok_s"] == 1500  # mean of 1000, 2000 at depth 0
            assert r["pytactic_decode_tok_s"] is None and r["llamacpp_decode_tok_s"] is None
            assert r["n_prompt"] == 96 and r["n_gen"] == 0
        else:
            assert r["llamacpp_prefill_tok_s"] == 1500 + d  # avg of the stand-in's samples
            assert r["llamacpp_decode_tok_s"] == 150 + d
            assert 0 < r["pytactic_decode_tok_s"] < math.inf
            assert r["decode_ratio"] == round(r["pytactic_decode_tok_s"] / r["llamacpp_decode_tok_s"], 3)
            assert len(r["samples"]["pytactic_decode"]) == 2
        assert 0 < r["pytactic_prefill_tok_s"] < math.inf
        assert r["prefill_ratio"] == round(r["pytactic_prefill_tok_s"] / r["llamacpp_prefill_tok_s"], 3)


def test_rows_to_appends_and_replaces(tiny, fake_bench, tmp_path):
    saved = tmp_path / "lc.json"
    base = ["--model", str(tiny), "--name", "tiny", "--depths", "0", "--n-prompt", "16", "--n-gen", "4",
            "--prompt-from-empty", "0", "--reps", "1"]
    out = tmp_path / "rows.json"
    assert e2e.main(base + ["--device", "cpu", "--n-threads", "1", "--llama-bench", str(fake_bench),
                            "--out", str(out)]) == 0
    # a saved llama-bench output (as `llama-bench ... -o json > lc.json` leaves it)
    import subprocess
    saved.write_text(subprocess.run([str(fake_bench), "-m", str(tiny), "-ngl", "99", "-fa", "1", "-r", "1",
                                     "-o", "json", "-p", "16", "-n", "4", "-d", "0"],
                                    capture_output=True, text=True, check=True).stdout)
    later = base + ["--skip-pytactic", "--llamacpp-json", str(saved), "--attention", "tactic",
                    "--model-kwarg", "tactic_fraction=0.1", "--rows-to", str(out)]
    assert e2e.main(later) == 0
    assert e2e.main(later) == 0  # the same rows again replace, not duplicate
    doc = json.loads(out.read_text())
    assert len(doc["runs"]) == 3 and doc["command"] == doc["runs"][0]["command"]
    assert [(r["attention"], r.get("fraction"), r["run"]) for r in doc["rows"]] == [("full", None, 0),
                                                                                  ("tactic", 0.1, 2)]
    tactic = doc["rows"][1]
    assert tactic["pytactic_decode_tok_s"] is None and tactic["llamacpp_decode_tok_s"] == 100


def test_llama_bench_output_is_checked():
    with pytest.raises(SystemExit, match="no JSON"):
        e2e.parse_llama_bench("error: failed to load model")
    with pytest.raises(SystemExit, match="avg_ts"):
        e2e.parse_llama_bench('[{"n_prompt": 512, "n_gen": 0, "n_depth": 0}]')


def test_device_is_passed_only_when_the_model_takes_it(tiny, monkeypatch):
    seen = {}

    class Fake:
        def __init__(self, path, *, n_ctx, n_batch, attention, n_threads=None, device="auto"):
            seen.update(device=device)

    monkeypatch.setattr(e2e.pytactic, "Model", Fake)
    e2e.open_model(str(tiny), "cuda", 64, 1, 512, "full", {})
    assert seen["device"] == "cuda"

    class Old:  # today's Model: no device argument
        def __init__(self, path, *, n_ctx, n_batch, attention, n_threads=None):
            seen.update(device=None)

    monkeypatch.setattr(e2e.pytactic, "Model", Old)
    e2e.open_model(str(tiny), "cpu", 64, 1, 512, "full", {})
    assert seen["device"] is None
    with pytest.raises(SystemExit, match="no device argument"):
        e2e.open_model(str(tiny), "cuda", 64, 1, 512, "full", {})


def test_sides_measured_apart_merge_into_one_row(tiny, fake_bench, tmp_path):
    """pytactic alone, then llama-bench alone at the same depth (as when one side cannot
    run in the same call): one row with both sides' figures, naming both runs."""
    out = tmp_path / "merged.json"
    base = ["--model", str(tiny), "--name", "tiny", "--depths", "32", "--n-prompt", "16", "--n-gen", "4",
            "--prompt-from-empty", "0", "--reps", "1", "--rows-to", str(out)]
    assert e2e.main(base + ["--device", "cpu", "--n-threads", "1"]) == 0
    first = json.loads(out.read_text())["rows"][0]
    assert first["llamacpp_decode_tok_s"] is None and first["pytactic_decode_tok_s"] > 0
    assert e2e.main(base + ["--skip-pytactic", "--llama-bench", str(fake_bench)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1
    r = rows[0]
    assert r["pytactic_decode_tok_s"] == first["pytactic_decode_tok_s"]
    assert r["llamacpp_decode_tok_s"] == 100 + 32 and r["llamacpp_prefill_tok_s"] == 1000 + 32
    assert r["decode_ratio"] == round(r["pytactic_decode_tok_s"] / 132, 3)
    assert r["run"] == [0, 1]
    assert set(r["samples"]) == {"pytactic_prefill", "pytactic_decode", "llamacpp_prefill", "llamacpp_decode"}
