"""Shape twins: architecture-faithful GGUF files with synthetic weights (``abtop twin NAME``).

Same architecture, tensor names, shapes and quantisation type as the real model, so llama.cpp
does the same work per token; the weights are random, so the text is noise and MoE routing is
near-uniform. ``presets`` holds the shapes (each with its source), ``writer`` streams the file.
"""
