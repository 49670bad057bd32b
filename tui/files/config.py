"""``$XDG_CONFIG_HOME/abtop/config.toml``: defaults for the run options and named pairs.

```toml
[defaults]
prompt = "Explain in two sentences why the sky is blue."
max_tokens = 256
ctx = 4096
mode = "alternate"      # race | alternate
interval = 0.5          # seconds between telemetry samples
results = "~/abtop-results"

[pairs.edge]
a = "hf:unsloth/gemma-3n-E2B-it-GGUF:Q4_K_M"
b = "ollama:qwen2.5:3b"

[pairs.kv]              # or any number (the TUI shows up to 4, bench takes up to 8)
models = ["gemma3-270m", "gemma3-270m,kv=q8_0", "smollm2-135m"]
```

A flag on the command line wins over the file, the file over abtop's own defaults
(``tui/cli/options.py``). ``abtop --pair edge`` (and ``bench --pair edge``) runs a pair. A file that
cannot be used is one sentence naming the file, the line and the key; nothing runs.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

DEFAULT_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "prompt": (str, "text"),
    "max_tokens": (int, "a whole number"),
    "ctx": (int, "a whole number"),
    "mode": (str, '"race" or "alternate"'),
    "interval": ((int, float), "seconds, a number"),
    "results": (str, "a folder"),
}
"""The keys of ``[defaults]``: the type each must have, and how a sentence names it."""
DEST = {"prompt": "config_prompt", "results": "results"}
"""argparse destinations that differ from the key (a configured prompt must not autostart)."""


class ConfigError(Exception):
    """``str()`` is one sentence: the file, the line, the key, what is wrong."""


@dataclass
class Config:
    path: Path
    exists: bool = False
    defaults: dict = field(default_factory=dict)
    pairs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def argparse_defaults(self, *, bench: bool) -> dict:
        """The defaults to give ``set_defaults`` (``results`` is the TUI's alone)."""
        out = {DEST.get(k, k): v for k, v in self.defaults.items()}
        if bench:
            out.pop("results", None)
        return out


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "abtop" / "config.toml"


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """The line where ``key`` is set (in ``[table]`` when given), for the sentence."""
    in_table = table is None
    pat = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
    for n, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            in_table = table is not None and m.group(1).replace(" ", "").replace('"', "") == table
            if in_table and key == table.split(".")[-1]:
                return n
            continue
        if in_table and pat.match(line):
            return n
    return None


def load(path: Path | None = None) -> Config:
    """Read and check the file; a missing file is an empty config. ``ConfigError`` otherwise."""
    path = path or config_path()
    cfg = Config(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return cfg
    except OSError as exc:
        raise ConfigError(f"abtop: {path}: cannot be read ({exc.strerror or exc}).") from None
    cfg.exists = True
    text = raw.decode("utf-8", "replace")
    try:
        data = tomllib.loads(text)
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"abtop: {path}: not valid TOML (nested deeper than it can be read).") from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"line {m.group(1)}: " if m else ""
        what = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg).rstrip(".")
        what = re.sub(r"\s*\(at end of document\)", " at the end of the file", what)  # tomllib's other place
        raise ConfigError(f"abtop: {path}: {where}not valid TOML ({what}).") from None

    def bad(table: str | None, key: str, why: str) -> ConfigError:
        n = _line_of(text, table, key)
        name = f"{table}.{key}" if table else key
        return ConfigError(f"abtop: {path}: line {n if n else '?'}: {name} {why}.")

    for key in data:
        if key not in ("defaults", "pairs"):
            raise bad(None, key, "is not a setting abtop knows; the file has [defaults] and [pairs.NAME] tables")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise bad(None, "defaults", "must be a table: [defaults]")
    for key, value in defaults.items():
        if key not in DEFAULT_KEYS:
            known = ", ".join(DEFAULT_KEYS)
            raise bad("defaults", key, f"is not a setting abtop knows (it knows {known})")
        typ, word = DEFAULT_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, typ):
            raise bad("defaults", key, f"must be {word}, not {type(value).__name__} {value!r}")
    if defaults.get("mode") not in (None, "race", "alternate"):
        raise bad("defaults", "mode", f'must be "race" or "alternate", not {defaults["mode"]!r}')
    for key, low in (("max_tokens", 1), ("ctx", 256)):
        if key in defaults and defaults[key] < low:
            raise bad("defaults", key, f"must be at least {low} (got {defaults[key]})")
    if "interval" in defaults and not 0.05 <= defaults["interval"] <= 60:
        raise bad("defaults", "interval", f"must be between 0.05 and 60 seconds (got {defaults['interval']})")
    if "results" in defaults:
        defaults["results"] = str(Path(defaults["results"]).expanduser())
    if "interval" in defaults:
        defaults["interval"] = float(defaults["interval"])
    cfg.defaults = dict(defaults)
    pairs = data.get("pairs", {})
    if not isinstance(pairs, dict):
        raise bad(None, "pairs", "must be tables: [pairs.NAME] with a = … and b = …")
    for name, pair in pairs.items():
        table = f"pairs.{name}"
        if not isinstance(pair, dict):
            raise bad("pairs", name, 'must be a table: [pairs.NAME] with a = "…" and b = "…"')
        if "models" in pair:  # any number of models: models = ["A", "B", "C"]
            models = pair["models"]
            if set(pair) != {"models"}:
                raise bad(table, next(k for k in pair if k != "models"), "cannot sit beside models = [...], which names them all")
            if not isinstance(models, list) or not models or not all(isinstance(m, str) and m.strip() for m in models):
                raise bad(table, "models", 'must be a list of model specs in quotes, e.g. ["gemma3-270m", "smollm2-135m"]')
            cfg.pairs[name] = tuple(models)
            continue
        for key in pair:
            if key not in ("a", "b"):
                raise bad(table, key, "is not a or b; a pair names two models, a and b (or all of them: models = [...])")
        for key in ("a", "b"):
            if not isinstance(pair.get(key), str) or not pair[key].strip():
                n = _line_of(text, table, name.split(".")[-1])
                raise ConfigError(f"abtop: {path}: line {n or '?'}: {table}.{key} must be a model spec in quotes.")
        cfg.pairs[name] = (pair["a"], pair["b"])
    return cfg


def apply_pair(args, cfg: Config) -> str | None:
    """``--pair NAME``: its models become ``args.models``; the sentence when that cannot be."""
    name = getattr(args, "pair", None)
    if not name:
        return None
    if args.models:
        return f"abtop: --pair {name} names the two models; give either --pair or models, not both."
    if name not in cfg.pairs:
        where = str(cfg.path) if cfg.exists else f"{cfg.path} (there is no such file)"
        have = f" (it has: {', '.join(sorted(cfg.pairs))})" if cfg.pairs else ""
        return f"abtop: --pair {name}: no [pairs.{name}] in {where}{have}."
    args.models = list(cfg.pairs[name])
    return None
