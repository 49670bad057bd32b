"""Getting a model before it can load: Hugging Face downloads (``hf.py``), Ollama pulls (``pull.py``)."""
