"""The terminal the app draws on: its driver (no wake-ups of its own) and its lifeline (nothing
left behind when it goes away)."""
