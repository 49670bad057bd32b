"""One room per engine: llama.cpp (and its worker process), the HTTP base, OpenAI-compatible servers, Ollama."""
