"""llama.cpp through llama-cpp-python, for the tests that compare with it.

Weight repacking (llama.cpp's "extra buffer types") is turned off: a llama-cpp-python
built with -march=native on a VM that advertises AMX dies of SIGILL in its AMX matmul
(tilezero in ggml_backend_amx_mul_mat), which kills the whole pytest process. Without
repacking llama.cpp runs its ordinary CPU kernels."""


def greedy(llama_cpp, path, prompt, n_gen):
    """llama.cpp's first n_gen greedy tokens after prompt (token ids)."""
    import llama_cpp.llama_cpp as native

    defaults = native.llama_model_default_params

    def without_repacking():
        p = defaults()
        p.use_extra_bufts = False
        return p

    native.llama_model_default_params = without_repacking
    try:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, verbose=False)
    finally:
        native.llama_model_default_params = defaults
    try:
        out = []
        for tok in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
            out.append(int(tok))
            if len(out) == n_gen:
                break
        return out
    finally:
        llm.close()
