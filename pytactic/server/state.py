"""What the server holds: its settings, the slots' Models, and a vocabulary-only
Model that tokenizes and renders chat templates on its own thread (so the event
loop never blocks, and never touches a slot's Model while it generates)."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .errors import context_too_long, unknown_model
from .slots import SlotPool


@dataclass
class ServerConfig:
    model_path: str
    n_ctx: Optional[int] = None
    n_threads: Optional[int] = None
    n_batch: int = 512
    attention: str = "auto"
    tactic_p: float = 0.9
    chat_format: Optional[str] = None
    alias: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: Optional[str] = None
    slots: int = 1
    max_queue: int = 8
    queue_timeout: float = 120.0
    max_body: int = 16 * 1024 * 1024
    verbose: bool = False


class ServerState:
    def __init__(self, config: ServerConfig, models: Optional[Sequence] = None):
        from ..model import Model

        self.config = config
        if models is None:
            models = []
            try:
                for _ in range(config.slots):
                    models.append(Model(config.model_path, n_ctx=config.n_ctx, n_threads=config.n_threads,
                                        n_batch=config.n_batch, attention=config.attention,
                                        tactic_p=config.tactic_p, verbose=config.verbose and not models))
            except BaseException:
                for m in models:
                    m.close()
                raise
        self.models: List = list(models)
        try:
            self.vocab = Model(config.model_path, vocab_only=True, chat_format=config.chat_format)
        except BaseException:  # e.g. a chat format that does not compile
            for m in self.models:
                m.close()
            raise
        self.n_ctx = self.models[0].n_ctx
        self.model_id = config.alias or os.path.basename(config.model_path)
        self.created = int(os.path.getmtime(config.model_path))
        self.pool = SlotPool(self.models, config.max_queue, config.queue_timeout)
        self._tok = ThreadPoolExecutor(1, thread_name_prefix="pytactic-tokenizer")

    # -- requests ---------------------------------------------------------------

    def check_model(self, name: Optional[str]) -> None:
        """A request may name the model by its id, its file path, or omit it."""
        if name is None or name in self._names():
            return
        raise unknown_model(name)

    def _names(self):
        base = os.path.basename(self.config.model_path)
        names = {self.model_id, base, self.config.model_path}
        if base.endswith(".gguf"):
            names.add(base[: -len(".gguf")])
        return names

    def check_length(self, ids: Sequence[int]) -> None:
        if len(ids) > self.n_ctx:
            raise context_too_long(len(ids), self.n_ctx)

    async def _on_tokenizer(self, fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(self._tok, lambda: fn(*args, **kw))

    async def chat_ids(self, messages, add_generation_prompt: bool = True) -> List[int]:
        return await self._on_tokenizer(self.vocab.chat_prompt_ids, messages,
                                        add_generation_prompt=add_generation_prompt)

    async def prompt_ids(self, prompt) -> List[int]:
        if isinstance(prompt, list):
            bad = [t for t in prompt if not 0 <= t < self.vocab_size]
            if bad:
                from .errors import bad_request

                raise bad_request(f"token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})",
                                  "prompt", "invalid_value")
            return list(prompt)
        return await self._on_tokenizer(self.vocab.tokenize, prompt, add_bos=True, special=False)

    @property
    def vocab_size(self) -> int:
        return self.models[0].n_vocab

    # -- lifetime ----------------------------------------------------------------

    async def close(self) -> None:
        await self.pool.close()
        self._tok.shutdown(wait=True)
        for m in self.models:
            m.close()
        self.vocab.close()
