"""Generation on the real Gemma 3 270M: greedy text equals llama.cpp's up to the first
near-tie, streaming gives the same text in valid UTF-8 pieces, stop strings never
leak, seeds reproduce, chat returns OpenAI-style dicts, and Ctrl-C leaves the model
usable. Plus the text assembler alone (UTF-8 boundaries, stop-string holding)."""

import _thread
import signal
import threading

import pytest

from pytactic.text_stream import TextAssembler as _TextAssembler, complete_utf8_prefix as _complete_utf8_prefix

# ---- the text assembler, without a model ------------------------------------------

SAMPLE = "héllo 🙂 世界 ok 👩‍💻!"


def split_every_way(data: bytes):
    yield [data[i : i + 1] for i in range(len(data))]  # byte by byte
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


@pytest.mark.parametrize("stop", [[], ["zzz"]])
def test_pieces_are_whole_characters(stop):
    data = SAMPLE.encode()
    for parts in split_every_way(data):
        asm = _TextAssembler(stop)
        pieces = [asm.push(p) for p in parts] + [asm.flush()]
        assert "".join(pieces) == SAMPLE
        for p in pieces:
            assert "\ufffd" not in p
            p.encode("utf-8")  # whole characters (surrogate-free)


def test_complete_utf8_prefix():
    e = "🙂".encode()
    assert _complete_utf8_prefix(b"ab" + e[:1]) == 2
    assert _complete_utf8_prefix(b"ab" + e[:3]) == 2
    assert _complete_utf8_prefix(b"ab" + e) == 6
    assert _complete_utf8_prefix(b"\x80\x80") == 2  # stray continuation bytes: not held
    assert _complete_utf8_prefix(b"") == 0


def test_invalid_bytes_are_replaced_not_held():
    asm = _TextAssembler([])
    assert asm.push(b"a\xff") == "a\ufffd"
    assert asm.push(b"\xe4\xb8") == ""
    assert asm.flush() == "\ufffd"  # an unfinished character at the end


@pytest.mark.parametrize("stop", [["END"], ["EN", "END"], ["\n\n"], ["🙂"]])
def test_stop_strings_never_leak(stop):
    text = "abc EN d END tail\n\n🙂"
    first = min(i for i in (text.find(s) for s in stop) if i >= 0)
    data = text.encode()
    for parts in split_every_way(data):
        asm = _TextAssembler(stop)
        out = []
        for p in parts:
            out.append(asm.push(p))
            if asm.stopped:
                break
        else:
            out.append(asm.flush())
        assert asm.stopped
        assert "".join(out) == text[:first]


def test_stop_at_the_very_end_is_caught_by_flush():
    asm = _TextAssembler(["xyz"])
    assert asm.push(b"abxy") == "ab"
    assert asm.push(b"z") == ""
    assert asm.stopped


def test_held_text_released_when_it_cannot_be_a_stop():
    asm = _TextAssembler(["END"])
    assert asm.push(b"E") == ""
    assert asm.push(b"x") == "Ex"
    assert asm.flush() == ""


# ---- on the real model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def model(gemma_path):
    from pytactic.model import Model

    m = Model(gemma_path, n_ctx=512)
    yield m
    m.close()


def test_greedy_matches_llama_cpp(model, refs):
    for r in refs["greedy"]:
        n = r["stable_prefix_len"]
        if n == 0:
            continue
        text = model.generate(r["prompt"], max_tokens=n, temperature=0)
        assert model.last_stats.tokens == r["greedy_ids"][:n], r["prompt"]
        assert model.tokenize(r["prompt"]) == r["prompt_ids"]
        assert text == r["stable_prefix_text"]
        assert text == model.decode(r["greedy_ids"][:n])


def test_token_ids_as_prompt(model, refs):
    r = refs["greedy"][0]
    model.generate(r["prompt_ids"], max_tokens=3, temperature=0)
    assert model.last_stats.tokens == r["greedy_ids"][:3]


@pytest.mark.parametrize(
    "prompt",
    ["The capital of France is", "日本の首都は東京です。中国の首都は", "Emoji list: 🍎 apple, 🍌 banana, 🍇"],
)
def test_stream_equals_non_stream(model, prompt):
    whole = model.generate(prompt, max_tokens=8, temperature=0)
    pieces = list(model.generate(prompt, max_tokens=8, temperature=0, stream=True))
    assert "".join(pieces) == whole
    assert all(isinstance(p, str) and p for p in pieces)
    for p in pieces:
        assert "\ufffd" not in p
        p.encode("utf-8")


def test_byte_fallback_tokens_stream_as_whole_characters(model):
    # Rare characters are spelled with byte tokens (<0xF0><0x93>...): each piece
    # alone is not UTF-8. Teacher-forced through the streaming path (generation from
    # a prompt that ends in the first byte, then the model's own continuation).
    text = "𓀀𓁐 ㊙ 龘 🫠🪿"
    ids = model.tokenize(text, add_bos=False)
    pieces = [model.token_to_piece(t) for t in ids]
    assert any(len(p) == 1 and p[0] >= 0x80 for p in pieces)  # byte tokens are there
    asm = _TextAssembler([])
    out = [asm.push(p) for p in pieces] + [asm.flush()]
    assert "".join(out) == text
    assert all("\ufffd" not in o for o in out)
    # and through generate(): a prompt whose greedy continuation repeats them
    prompt = ("𓀀𓁐 " * 6).strip()
    streamed = list(model.generate(prompt, max_tokens=10, temperature=0, stream=True))
    assert "".join(streamed) == model.generate(prompt, max_tokens=10, temperature=0)
    assert all("\ufffd" not in p for p in streamed), streamed
    assert any(ord(c) > 0xFFFF for c in "".join(streamed))  # 4-byte characters came out whole


def test_stream_non_ascii_output(model):
    # the continuation holds CJK: pieces must still be whole characters
    prompt = "Translate to Japanese.\nEnglish: Tokyo\nJapanese: 東京\nEnglish: Kyoto\nJapanese:"
    pieces = list(model.generate(prompt, max_tokens=6, temperature=0, stream=True))
    text = "".join(pieces)
    assert any(ord(c) > 0x2E80 for c in text), text
    assert "\ufffd" not in text


def test_stop_strings(model):
    prompt = "The capital of France is"  # greedy: " the capital of the"
    text = model.generate(prompt, max_tokens=6, temperature=0, stop=[" of"])
    assert text == " the capital"
    assert model.last_stats.finish_reason == "stop"
    # a stop string that starts inside one token and ends in the next
    assert model.generate(prompt, max_tokens=6, temperature=0, stop="apit") == " the c"
    streamed = "".join(model.generate(prompt, max_tokens=6, temperature=0, stop="apit", stream=True))
    assert streamed == " the c"


def test_finish_reasons(model):
    model.generate("The capital of France is", max_tokens=2, temperature=0)
    assert model.last_stats.finish_reason == "length"
    assert model.last_stats.n_generated == 2


def test_seed_reproduces(model):
    kw = dict(max_tokens=6, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    a = model.generate("Once upon a time", seed=123, **kw)
    b = model.generate("Once upon a time", seed=123, **kw)
    assert a == b


def test_model_seed_makes_a_reproducible_session(gemma_path):
    from pytactic.model import Model

    kw = dict(max_tokens=5, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    runs = []
    for _ in range(2):
        with Model(gemma_path, n_ctx=64, seed=7) as m:
            runs.append([m.generate("Once upon a time", **kw) for _ in range(2)])
    assert runs[0] == runs[1]


def test_create_completion_dict(model):
    out = model.create_completion("The capital of France is", max_tokens=3, temperature=0)
    assert out["object"] == "text_completion"
    c = out["choices"][0]
    assert c["text"] == " the capital of" and c["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}
    chunks = list(model("The capital of France is", max_tokens=3, temperature=0, stream=True))
    assert "".join(ch["choices"][0]["text"] for ch in chunks) == " the capital of"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_chat_dicts(model):
    messages = [{"role": "user", "content": "Say hello."}]
    out = model.chat(messages, max_tokens=4, temperature=0)
    assert out["object"] == "chat.completion"
    msg = out["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str) and msg["content"]
    assert out["choices"][0]["finish_reason"] in ("stop", "length")
    chunks = list(model.chat(messages, max_tokens=4, temperature=0, stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert streamed == msg["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == out["choices"][0]["finish_reason"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_chat_prompt_has_one_bos(model):
    ids = model.chat_prompt_ids([{"role": "user", "content": "Hi"}])
    assert ids[0] == model.token_bos and ids.count(model.token_bos) == 1
    text = model.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_end_of_generation_tokens(model, monkeypatch):
    # EOS and Gemma's <end_of_turn> end a generation (the test model is the base
    # model, which rarely says either on its own: make " of" one to see the loop stop).
    assert model.is_eog(model.token_eos)
    assert model.is_eog(model.tokenize("<end_of_turn>", add_bos=False, special=True)[0])
    assert not model.is_eog(529)
    real = model.is_eog
    monkeypatch.setattr(model, "is_eog", lambda t: t == 529 or real(t))
    out = model.chat([{"role": "user", "content": "x"}], max_tokens=1, temperature=0)  # warm the template
    text = model.generate("The capital of France is", max_tokens=8, temperature=0)
    assert text == " the capital"  # the EOG token itself is not part of the text
    assert model.last_stats.finish_reason == "stop"
    assert model.last_stats.n_generated == 2
    assert out["choices"][0]["finish_reason"] in ("stop", "length")


def test_keyboard_interrupt_in_stream_leaves_model_usable(model, refs):
    r = refs["greedy"][0]
    it = model.generate(r["prompt"], max_tokens=10, temperature=0, stream=True)
    with pytest.raises(KeyboardInterrupt):
        for i, _ in enumerate(it):
            if i == 1:
                raise KeyboardInterrupt
    it.close()
    assert model.cached_tokens == model.cached_tokens[: model.n_past]
    assert len(model.cached_tokens) == model.n_past
    again = model.generate(r["prompt"], max_tokens=4, temperature=0)
    assert again == r["stable_prefix_text"]


def test_ctrl_c_cancels_a_long_prefill(gemma_path, refs):
    from pytactic.model import Model

    # interrupt_main() does nothing while SIGINT is ignored, as it is in a runner started
    # in the background: give this process Python's own handler for the test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_cancels_a_long_prefill(gemma_path, refs, Model)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_cancels_a_long_prefill(gemma_path, refs, Model):
    with Model(gemma_path, n_ctx=512, n_batch=8) as m:
        ids = refs["nll"]["ids"][:400]
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                m.eval(ids)
        finally:
            timer.cancel()
        assert m.n_past < len(ids)  # it stopped early
        assert m.cached_tokens == ids[: m.n_past]  # and knows what it holds
        r = refs["greedy"][0]
        assert m.generate(r["prompt"], max_tokens=4, temperature=0) == r["stable_prefix_text"]


def test_a_stale_stream_refuses_to_continue(model):
    it = model.generate("The capital of France is", max_tokens=5, temperature=0, stream=True)
    next(it)
    model.generate("Once upon a time", max_tokens=2, temperature=0)  # another generation
    with pytest.raises(RuntimeError, match="stale"):
        next(it)
    it = model.generate("The capital of France is", max_tokens=5, temperature=0, stream=True)
    next(it)
    model.reset()
    with pytest.raises(RuntimeError, match="stale"):
        list(it)
