"""abtop's engines and measurements, with no UI code (ruff bans textual here).

The public surface for ``tui/``: the top-level modules (``events``, ``base``, ``specs``,
``catalog``, ``session``, ``stats``, ``units``, ``net``, ``userfiles``, ``model_list``) and the
names below. The rooms (``engines/``, ``telemetry/``, ``card/``, ``quality/``, ``fetch/``,
``twins/``, ``fit/``) are internal; ruff's banned-api keeps ``tui/`` out of them. The names load on first
use, so importing ``backends.events`` stays cheap.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "read_card": "backends.card.gguf",
    "API_KEY_VARS": "backends.engines.httpbase",
    "api_key": "backends.engines.httpbase",
    "planned_anon": "backends.engines.llamalog",
    "OllamaBackend": "backends.engines.ollama",
    "fetch_hf": "backends.fetch.hf",
    "hub_cache": "backends.fetch.hf",
    "host_load": "backends.telemetry.hardware",
    "mem_bandwidth_gbs": "backends.telemetry.hardware",
    "rapl_note": "backends.telemetry.hardware",
    "is_loopback": "backends.net",
    "host_info": "backends.telemetry.process",
    "LOG_NAME": "backends.quality.votes",
    "WINNERS": "backends.quality.votes",
    "append_vote": "backends.quality.votes",
    "battle_record": "backends.quality.votes",
    "read_battles": "backends.quality.votes",
    "vote_summary": "backends.quality.votes",
    "BUNDLED_SUITE": "backends.quality.prompts",
    "Prompt": "backends.quality.prompts",
    "load_prompts": "backends.quality.prompts",
    "TWIN_PRESETS": "backends.twins.presets",
    "TWIN_QUANTS": "backends.twins.writer",
    "build_twin": "backends.twins.writer",
    "twin_path": "backends.twins.writer",
    "twin_is_current": "backends.twins.writer",
    "reference_text": "backends.quality.bpb",
    "EVAL_TASKS": "backends.quality.eval.tasks",
    "EVAL_DEFAULT_TASKS": "backends.quality.eval.tasks",
    "EvalDataError": "backends.quality.eval.tasks",
    "unknown_tasks": "backends.quality.eval.tasks",
    "eval_plan": "backends.quality.eval.run",
    "eval_document": "backends.quality.eval.run",
    "eval_loaded": "backends.quality.eval.run",
    "eval_section": "backends.quality.eval.run",
    "score_document": "backends.quality.scoring",
    "score_loaded": "backends.quality.scoring",
    "text_info": "backends.quality.bpb",
    "FitOptions": "backends.fit.document",
    "prepare_fit": "backends.fit.document",
    "fit_specs": "backends.fit.document",
    "run_fit": "backends.fit.document",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'backends' has no attribute {name!r}")
