"""What abtop reads and writes on disk: exports (JSON, CSV, Markdown, SVG), event recordings,
the config file."""
