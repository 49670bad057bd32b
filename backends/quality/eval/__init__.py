"""Accuracy on standard tasks (``abtop eval``): the task data (``tasks``), lm-evaluation-harness's
scoring and the paired comparison (``scoring``), GSM8K by generation (``gsm8k``), the engines'
side (``llama_eval`` in the llama.cpp worker, ``http_eval`` for servers) and the run (``run``)."""
