"""The server's /v1/chat/completions with response_format through the openai client:
json_schema and json_object answers parse and validate (jsonschema), streamed too;
a malformed schema is a 400 naming response_format, before any token."""

import json

import pytest

from server_harness import RunningServer, need_server_extra

need_server_extra()
openai = pytest.importorskip("openai")
pytest.importorskip("llguidance", reason="the grammar extra (llguidance) is not installed")
jsonschema = pytest.importorskip("jsonschema")

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                           "population": {"type": "integer", "minimum": 0, "maximum": 40000000}},
          "required": ["city", "population"], "additionalProperties": False}
MESSAGES = [{"role": "user", "content": "Name a city and its population, as JSON."}]


@pytest.fixture(scope="module")
def client(gemma_path):
    srv = RunningServer(model_path=gemma_path, n_ctx=1024, n_threads=2, slots=1, max_queue=2)
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    c.model_id = srv.state.model_id
    yield c
    srv.stop()


def test_json_schema_whole_and_streamed(client):
    rf = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    r = client.chat.completions.create(model=client.model_id, messages=MESSAGES, response_format=rf, max_tokens=64, seed=5)
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
    chunks = list(client.chat.completions.create(model=client.model_id, messages=MESSAGES, response_format=rf, max_tokens=64,
                                                 seed=5, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content


def test_json_object(client):
    r = client.chat.completions.create(model=client.model_id, messages=MESSAGES, response_format={"type": "json_object"},
                                       max_tokens=64, seed=2)
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


@pytest.mark.parametrize("rf", [
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}},
    {"type": "json_schema"},
    {"type": "yaml"},
])
def test_bad_response_format_is_400(client, rf):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=client.model_id, messages=MESSAGES, response_format=rf, max_tokens=8)
    assert "response_format" in str(e.value)
