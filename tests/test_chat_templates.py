"""Chat templates: the real templates of Llama 3, Qwen 2.5, Gemma 3 and Mistral,
rendered by pytactic.chat, must give exactly what transformers gives: each is checked
against transformers' own `apply_chat_template` (the reference, in the test extra; no
torch needed), and against the strings below, which are that same output kept for a
quick read. They are also written into small vocab-only GGUF files and read back
through the model's metadata."""

import pytest

from pytactic.chat import CHATML, GEMMA, ChatTemplate, ChatTemplateError, resolve

# ---- the models' templates, verbatim from their tokenizer_config.json --------------
# meta-llama/Meta-Llama-3-8B-Instruct
LLAMA3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"

# mistralai/Mistral-7B-Instruct-v0.2
MISTRAL = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"

# Qwen/Qwen2.5-7B-Instruct
QWEN25 = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"

# google/gemma-3-270m-it (all Gemma 3 sizes share it)
GEMMA3 = "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n    {%- else -%}\n        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n    {%- endif -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\\n'}}\n{%- endif -%}\n"

BOS_EOS = {
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen25": ("", "<|im_end|>"),
    "gemma3": ("<bos>", "<eos>"),
    "mistral": ("<s>", "</s>"),
}
TEMPLATES = {"llama3": LLAMA3, "qwen25": QWEN25, "gemma3": GEMMA3, "mistral": MISTRAL}

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "  Hello. "},
    {"role": "user", "content": "Name a prime ✓ 素数"},
]
NO_SYSTEM = CONVERSATION[1:]

# (template, conversation, add_generation_prompt) -> what transformers renders.
EXPECTED = {
    ("llama3", "sys", True): "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName a prime ✓ 素数<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ("llama3", "sys", False): "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName a prime ✓ 素数<|eot_id|>",
    ("llama3", "nosys", True): "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName a prime ✓ 素数<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ("qwen25", "sys", True): "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n  Hello. <|im_end|>\n<|im_start|>user\nName a prime ✓ 素数<|im_end|>\n<|im_start|>assistant\n",
    ("qwen25", "sys", False): "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n  Hello. <|im_end|>\n<|im_start|>user\nName a prime ✓ 素数<|im_end|>\n",
    ("qwen25", "nosys", True): "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n  Hello. <|im_end|>\n<|im_start|>user\nName a prime ✓ 素数<|im_end|>\n<|im_start|>assistant\n",
    ("gemma3", "sys", True): "<bos><start_of_turn>user\nYou are terse.\n\nHi there!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nName a prime ✓ 素数<end_of_turn>\n<start_of_turn>model\n",
    ("gemma3", "sys", False): "<bos><start_of_turn>user\nYou are terse.\n\nHi there!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nName a prime ✓ 素数<end_of_turn>\n",
    ("gemma3", "nosys", True): "<bos><start_of_turn>user\nHi there!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nName a prime ✓ 素数<end_of_turn>\n<start_of_turn>model\n",
    ("gemma3", "nosys", False): "<bos><start_of_turn>user\nHi there!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nName a prime ✓ 素数<end_of_turn>\n",
    ("mistral", "nosys", True): "<s>[INST] Hi there! [/INST]  Hello. </s>[INST] Name a prime ✓ 素数 [/INST]",
    ("mistral", "nosys", False): "<s>[INST] Hi there! [/INST]  Hello. </s>[INST] Name a prime ✓ 素数 [/INST]",
}


def _messages(which):
    return CONVERSATION if which == "sys" else NO_SYSTEM


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}-{k[1]}-{'gen' if k[2] else 'nogen'}")
def test_template_string_renders_like_transformers(key):
    name, which, agp = key
    bos, eos = BOS_EOS[name]
    tpl = ChatTemplate(TEMPLATES[name], bos_token=bos, eos_token=eos, name=name)
    assert tpl.render(_messages(which), add_generation_prompt=agp) == EXPECTED[key]


def _transformers_render(template, bos, eos, messages, add_generation_prompt):
    """transformers' own apply_chat_template, on a one-word tokenizer that carries the
    template and the special tokens (rendering never tokenizes with tokenize=False)."""
    transformers = pytest.importorskip("transformers", reason="transformers (the reference renderer) is not installed")
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is not installed")
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer(tokenizers.models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
        bos_token=bos or None, eos_token=eos)
    tok.chat_template = template
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}-{k[1]}-{'gen' if k[2] else 'nogen'}")
def test_template_matches_transformers_apply_chat_template(key):
    name, which, agp = key
    bos, eos = BOS_EOS[name]
    want = _transformers_render(TEMPLATES[name], bos, eos, _messages(which), agp)
    assert want == EXPECTED[key]  # the kept strings are transformers' output
    tpl = ChatTemplate(TEMPLATES[name], bos_token=bos, eos_token=eos, name=name)
    assert tpl.render(_messages(which), add_generation_prompt=agp) == want


def test_raise_exception_becomes_a_clear_error():
    tpl = ChatTemplate(MISTRAL, bos_token="<s>", eos_token="</s>")
    with pytest.raises(ChatTemplateError, match="alternate"):
        tpl.render(CONVERSATION)  # Mistral v0.2 has no system role


def test_strftime_now_and_tools_are_defined():
    tpl = ChatTemplate("{{ strftime_now('%Y') }}|{{ tools is none }}|{{ [1, 'é'] | tojson }}")
    year, tools_none, js = tpl.render([]).split("|")
    assert len(year) == 4 and year.isdigit()
    assert tools_none == "True"
    assert js == '[1, "é"]'  # transformers' tojson: no ASCII escaping


def test_sandbox_refuses_unsafe_code():
    tpl = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(ChatTemplateError):
        tpl.render([{"role": "user", "content": "x"}])
    tpl = ChatTemplate("{% set _ = messages.append(1) %}")
    with pytest.raises(ChatTemplateError):
        tpl.render([{"role": "user", "content": "x"}])


def test_syntax_error_and_bad_messages():
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{% for m in messages %}")
    with pytest.raises(ChatTemplateError, match="role"):
        ChatTemplate(CHATML).render([{"content": "no role"}])


def test_fallbacks():
    assert resolve(None, None, "gemma3") == (GEMMA, "gemma")
    assert resolve(None, None, "llama") == (CHATML, "chatml")
    assert resolve(None, "{{ x }}", "gemma3") == ("{{ x }}", "gguf")
    assert resolve("chatml", "{{ x }}", "gemma3") == (CHATML, "chatml")
    assert resolve("{% if 1 %}{% endif %}", "{{ x }}", "gemma3")[1] == "custom"
    with pytest.raises(ChatTemplateError, match="unknown chat_format"):
        resolve("no-such-format", None, "llama")


def test_gemma_fallback_matches_the_real_gemma3_template():
    # The built-in Gemma format must agree with Gemma 3's own template.
    ours = ChatTemplate(GEMMA, bos_token="<bos>", eos_token="<eos>")
    for which in ("sys", "nosys"):
        for agp in (True, False):
            key = ("gemma3", which, agp)
            assert ours.render(_messages(which), add_generation_prompt=agp) == EXPECTED[key]


def test_chatml_fallback():
    out = ChatTemplate(CHATML).render(NO_SYSTEM[:1])
    assert out == "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n"


# ---- through a GGUF file --------------------------------------------------------

CONTROL, NORMAL, BYTE = 3, 1, 6


def write_vocab_gguf(path, template, bos_text, eos_text, arch="llama", extra_control=()):
    """A tokenizer-only GGUF: SentencePiece-style vocab with byte fallback, the given
    BOS/EOS texts as control tokens, and tokenizer.chat_template if template."""
    import gguf

    tokens, types = ["<unk>"], [2]
    specials = [t for t in (bos_text, eos_text) if t] + list(extra_control)
    for t in specials:
        if t not in tokens:
            tokens.append(t)
            types.append(CONTROL)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(BYTE)
    for piece in ["▁", "H", "i", "▁Hi", "!", "e", "l", "o", "▁there"]:
        tokens.append(piece)
        types.append(NORMAL)
    scores = [0.0] * len(tokens)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    if bos_text:
        w.add_bos_token_id(tokens.index(bos_text))
    w.add_eos_token_id(tokens.index(eos_text))
    w.add_add_bos_token(bool(bos_text))
    if template is not None:
        w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tokens


@pytest.fixture(scope="module")
def native():
    pytactic_model = pytest.importorskip("pytactic.model")
    return pytactic_model


@pytest.mark.parametrize("name", ["llama3", "qwen25", "gemma3", "mistral"])
def test_gguf_template_is_read_and_rendered(tmp_path, native, name):
    bos, eos = BOS_EOS[name]
    path = tmp_path / f"{name}.gguf"
    write_vocab_gguf(path, TEMPLATES[name], bos, eos)
    with native.Model(path, vocab_only=True) as m:
        assert m.metadata("tokenizer.chat_template") == TEMPLATES[name]
        which = "nosys" if name == "mistral" else "sys"
        assert m.apply_chat_template(_messages(which)) == EXPECTED[(name, which, True)]


@pytest.mark.parametrize("name", ["llama3", "gemma3", "mistral"])
def test_no_double_bos(tmp_path, native, name):
    bos, eos = BOS_EOS[name]
    path = tmp_path / f"{name}.gguf"
    tokens = write_vocab_gguf(path, TEMPLATES[name], bos, eos)
    with native.Model(path, vocab_only=True) as m:
        ids = m.chat_prompt_ids(NO_SYSTEM)
        bos_id = tokens.index(bos)
        assert ids[0] == bos_id
        assert ids.count(bos_id) == 1


def test_gguf_without_template_falls_back(tmp_path, native):
    path = tmp_path / "gemma_notemplate.gguf"
    write_vocab_gguf(path, None, "<bos>", "<eos>", arch="gemma3")
    with native.Model(path, vocab_only=True) as m:
        assert m.metadata("tokenizer.chat_template") is None
        assert m.chat_template.name == "gemma"
        assert m.apply_chat_template(CONVERSATION) == EXPECTED[("gemma3", "sys", True)]
    path = tmp_path / "other_notemplate.gguf"
    write_vocab_gguf(path, None, "<s>", "</s>", arch="llama")
    with native.Model(path, vocab_only=True) as m:
        assert m.chat_template.name == "chatml"
    with native.Model(path, vocab_only=True, chat_format=LLAMA3) as m:
        assert m.chat_template.name == "custom"
        assert m.apply_chat_template(NO_SYSTEM[:1]).startswith("<s><|start_header_id|>user")


def test_builtin_formats_take_openai_style_parts():
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there!"}]}]
    assert ChatTemplate(CHATML, name="chatml").render(msgs) == "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ChatTemplateError, match="text only"):
        ChatTemplate(GEMMA, name="gemma").render([{"role": "user", "content": [{"type": "image"}]}])
    # the real Gemma 3 template handles parts itself (and trims each, as transformers)
    tpl = ChatTemplate(GEMMA3, bos_token="<bos>", name="gguf")
    assert tpl.render(msgs) == "<bos><start_of_turn>user\nHithere!<end_of_turn>\n<start_of_turn>model\n"


def test_render_type_errors_become_chat_template_errors():
    with pytest.raises(ChatTemplateError):
        ChatTemplate("{{ messages[0]['content'] + 1 }}").render([{"role": "user", "content": "x"}])
