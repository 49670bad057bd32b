"""The quality half: blind votes (``votes``), bits per byte (``bpb``) and prompt suites (``prompts``)."""
