"""Outside text to screen text: number formats, control-byte safety, the card's and the verdict's
text, vote tables, headless progress on stderr."""
