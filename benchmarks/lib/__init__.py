"""What more than one benchmark uses and none runs as its measurement: the llama-bench build."""
