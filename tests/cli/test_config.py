"""``$XDG_CONFIG_HOME/abtop/config.toml``: defaults under the flags, named pairs, and a bad file
told in one sentence (file, line, key)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tui.cli import parser as cli
from tui.cli.main import main
from tui.files import config

GOOD = """\
[defaults]
prompt = "Name three colours."
max_tokens = 6
ctx = 512
mode = "alternate"
interval = 0.5
results = "~/abtop-out"

[pairs.tiny]
a = "smollm2-135m"
b = "gemma3-270m"

[pairs.kv]
models = ["gemma3-270m", "gemma3-270m,kv=q8_0", "smollm2-135m"]
"""


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "abtop").mkdir()
    return tmp_path / "abtop" / "config.toml"


def parse(argv):
    return cli.configured(argv, lambda cfg: cli.with_defaults(cli.build_parser(), cfg.argparse_defaults(bench=False)))


def test_defaults_sit_under_the_flags_and_a_pair_names_the_models(xdg, monkeypatch):
    xdg.write_text(GOOD)
    monkeypatch.setenv("HOME", "/home/someone")
    args = parse(["--pair", "tiny"])
    assert args.models == ["smollm2-135m", "gemma3-270m"]
    assert (args.max_tokens, args.ctx, args.mode, args.interval) == (6, 512, "alternate", 0.5)
    assert args.results == "/home/someone/abtop-out" and args.config_prompt == "Name three colours."
    assert args.prompt is None  # a configured prompt is prefilled, not run at once
    assert parse(["--pair", "kv"]).models == ["gemma3-270m", "gemma3-270m,kv=q8_0", "smollm2-135m"]
    args = parse(["-n", "64", "--mode", "race", "a.gguf"])
    assert (args.max_tokens, args.mode, args.models, args.pair) == (64, "race", ["a.gguf"], None)


def test_no_file_is_abtops_own_defaults(xdg, capsys):
    args = parse([])
    assert (args.max_tokens, args.mode, args.results) == (128, "race", "abtop-results")
    assert config.load().exists is False
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert f"config file: {xdg} (not there" in out and "max_tokens  128  (built-in)" in out
    assert "mode        race (TUI), alternate (bench)  (built-in)" in out


@pytest.mark.parametrize(
    "text, says",
    [
        ("[defaults]\nmax_tokens = = 3\n", "line 2: not valid TOML (Invalid value)."),
        ("[defaults]\nprompt = 'x'\nmax_token = 3\n", "line 3: defaults.max_token is not a setting abtop knows (it knows prompt, max_tokens"),
        ("[defaults]\n\nctx = '4096'\n", "line 3: defaults.ctx must be a whole number, not str '4096'."),
        ("[defaults]\nmode = 'racing'\n", "line 2: defaults.mode must be \"race\" or \"alternate\", not 'racing'."),
        ("[defaults]\ninterval = true\n", "line 2: defaults.interval must be seconds, a number, not bool True."),
        ("[pairs.edge]\na = 'x'\nc = 'y'\n", "line 3: pairs.edge.c is not a or b; a pair names two models, a and b (or all of them: models = [...])."),
        ("[pairs.edge]\na = 'x'\n", "line 1: pairs.edge.b must be a model spec in quotes."),
        ("[pairs.edge]\nmodels = 'x'\n", "line 2: pairs.edge.models must be a list of model specs in quotes"),
        ("[pairs.edge]\nmodels = ['x']\na = 'y'\n", "line 3: pairs.edge.a cannot sit beside models = [...], which names them all."),
        ("colour = 'blue'\n", "line 1: colour is not a setting abtop knows; the file has [defaults] and [pairs.NAME] tables."),
    ],
)
def test_a_bad_file_is_one_sentence_with_file_line_and_key(xdg, capsys, text, says):
    xdg.write_text(text)
    assert main(["-n", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"abtop: {xdg}: ") and says in err and "\n" not in err
    assert main(["config"]) == 2  # abtop config says the same, and shows nothing half-read
    assert says in capsys.readouterr().err


def test_pair_mistakes(xdg, capsys):
    xdg.write_text(GOOD)
    assert main(["--pair", "edge"]) == 2
    assert capsys.readouterr().err.strip() == f"abtop: --pair edge: no [pairs.edge] in {xdg} (it has: kv, tiny)."
    assert main(["bench", "--pair", "tiny", "a.gguf"]) == 2
    assert "give either --pair or models, not both" in capsys.readouterr().err


def test_bench_runs_a_named_pair_with_the_configured_defaults(xdg, tmp_path):
    xdg.write_text(GOOD)
    out = tmp_path / "out.json"
    env = {**__import__("os").environ, "XDG_CONFIG_HOME": str(xdg.parent.parent)}
    p = subprocess.run([sys.executable, "-m", "tui.cli.main", "bench", "--pair", "tiny", "--warmup", "0", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert [m["spec"] for m in doc["models"]] == ["smollm2-135m", "gemma3-270m"]
    assert doc["params"]["prompt"] == "Name three colours." and doc["params"]["max_tokens"] == 6
    assert doc["params"]["mode"] == "alternate" and doc["params"]["n_ctx"] == 512
