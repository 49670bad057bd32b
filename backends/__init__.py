"""Everything that produces data: engines, telemetry, statistics. Never imports textual."""
