"""The model card, read from the GGUF header without loading the weights."""
