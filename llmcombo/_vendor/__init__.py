"""Third-party files shipped with llmcombo, unmodified.

``llama_convert/``: llama.cpp's Hugging Face -> GGUF converter (``convert_hf_to_gguf.py``, its
``conversion/`` model classes and the ``gguf-py`` package of the same llama.cpp revision), copied
from the sdist of the llama-cpp-python version that the ``[llama]`` extra pins by
``tools/vendor_llama_convert.py``. MIT-licensed (``LICENSE``, ``gguf-py/LICENSE``);
``VERSION.json`` records the source and every file's sha256. llmcombo runs it in a child process
(:mod:`llmcombo.gguf`); nothing here is imported by llmcombo itself.
"""
