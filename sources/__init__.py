"""Sources: where training tokens come from, before any injection.

``sources.tokens`` reads pre-tokenized corpora (llm.c shards, nanoGPT ``.bin``, Megatron /
GPT-NeoX ``.bin`` + ``.idx``, OLMo numpy memmaps, datatrove ``.ds``, Hugging Face datasets
with ``input_ids``) as read-only memory maps, in rows of ``sample_length`` tokens;
``sources.fingerprint`` says whether a corpus changed since a run was built on it.
(Text corpora are tokenized once into a token corpus by ``inject.token_cache``: tokenizing
needs the tokenizer code of ``inject``.)
Data flows ``sources -> inject -> train -> audit``; this package imports only ``core``.
"""
