"""The command line's --json-schema FILE and --grammar-file FILE on run and chat: the
output validates (jsonschema) or parses (lark); a malformed file is an error message
(exit 1, no traceback) before the model is even opened."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llguidance", reason="the grammar extra (llguidance) is not installed")
jsonschema = pytest.importorskip("jsonschema")
lark = pytest.importorskip("lark")

ROOT = Path(__file__).resolve().parents[1]
GRAMMARS = ROOT / "tests" / "data" / "grammars"
SCHEMA = {"type": "object", "properties": {"animal": {"enum": ["cat", "dog", "owl"]},
                                           "legs": {"type": "integer", "minimum": 0, "maximum": 8}},
          "required": ["animal", "legs"], "additionalProperties": False}


def _run(*args, stdin=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "pytactic", *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=600)


def test_run_json_schema(gemma_path, tmp_path):
    schema = tmp_path / "animal.json"
    schema.write_text(json.dumps(SCHEMA))
    out = _run("run", gemma_path, "An animal as JSON:", "--json-schema", str(schema), "-n", "64", "--seed", "3",
               "-c", "256")
    assert out.returncode == 0, out.stderr
    jsonschema.validate(json.loads(out.stdout), SCHEMA)
    assert "finish: stop" in out.stderr


def test_run_grammar_file(gemma_path):
    out = _run("run", gemma_path, "Compute: ", "--grammar-file", str(GRAMMARS / "arithmetic.gbnf"), "-n", "128",
               "--seed", "2", "-c", "256")
    assert out.returncode == 0, out.stderr
    assert "finish: stop" in out.stderr
    parser = lark.Lark((GRAMMARS / "arithmetic.lark").read_text(), parser="earley", lexer="dynamic")
    parser.parse(out.stdout[:-1])  # the CLI adds a newline at the end


def test_chat_json_schema(gemma_path, tmp_path):
    schema = tmp_path / "animal.json"
    schema.write_text(json.dumps(SCHEMA))
    out = _run("chat", gemma_path, "--json-schema", str(schema), "-n", "64", "--seed", "1", "-c", "512",
               stdin="Name an animal.\n")
    assert out.returncode == 0, out.stderr
    answer = out.stdout.strip().removeprefix(">").strip().splitlines()[0]
    jsonschema.validate(json.loads(answer), SCHEMA)


@pytest.mark.parametrize("flag,text,message", [
    ("--json-schema", '{"type": "strin"}', "Invalid type"),
    ("--json-schema", '{"type": ', "not valid JSON"),
    ("--grammar-file", 'root ::= missing', "not found"),
])
def test_bad_file_is_an_error_before_loading(tmp_path, flag, text, message):
    f = tmp_path / "bad"
    f.write_text(text)
    # the model path does not exist: the grammar's error comes first
    out = _run("run", str(tmp_path / "none.gguf"), "hi", flag, str(f))
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr and "none.gguf" not in out.stderr
