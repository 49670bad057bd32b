"""The model-card panel of a pane: what the model is, and where its memory really goes.

Rows: parameters (total, effective without a per-layer embedding table, active per token for
MoE), PLE / MoE / dense, bytes read per generated token (``tui.text.card_text.card_lines``); llama.cpp's
planned buffers beside the measured resident weights and anonymous memory; the GPU; after a run
the roofline and the energy per token. It takes rows a stacked 80x24 pane does not have, so it
shows only when the pane is at least ``MIN_PANE_HEIGHT`` rows tall, and ``c`` toggles it. Its
place (``CardScroll``) is at most ``MAX_SHARE`` of the pane; a taller card scrolls there. A compact
pane moves its header and its whole stats line onto the card (``show_moved``).
"""

from __future__ import annotations

from rich._wrap import divide_line  # the breaker Content uses to wrap: the same line count
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from backends import planned_anon, rapl_note
from backends.events import Loaded, Sample, now
from backends.session import available_cpus
from tui.text import format as fmt
from tui.text.card_text import card_lines
from tui.text.safe import safe

MEASURED_EVERY_S = 1.0
"""The ``measured`` row alone (memory that moves with every reading while a model runs) is drawn at
most this often; the strip's memory label beside it follows each reading."""
MIN_PANE_HEIGHT = 30
"""Below this the card would squeeze the streaming text under 8 lines (``c`` shows it anyway)."""
MAX_SHARE = "40%"
"""The most of a pane's height the card takes; a taller card scrolls in it."""
FAR_BELOW_PCT = 30.0
"""llama.cpp reaches 84–91 % of the measured read bandwidth on some CPUs; under this, say so."""
LABEL = 10
"""The label column: the longest label ("gguf name") and a space."""

_GPU_NOTES = {
    "no GPU": "no GPU (no NVIDIA driver or device found)",
    "GPU lost": "GPU lost: NVML stopped answering mid-run; CPU and memory figures go on",
    "GPU off": "not sampled",
}


MIN_JUDGED_TOKENS = 32
"""Below this many generated tokens a run is too short to judge the box by (start-up dominates)."""


def roofline_text(pct: float | None, bandwidth_gbs: float | None) -> str | None:
    """``52 % of 15.1 GB/s``: generation's memory traffic against the measured read bandwidth."""
    if pct is None or not bandwidth_gbs:
        return None
    return f"{pct:.0f} % of {bandwidth_gbs:.1f} GB/s"


def shares_box(run: dict) -> bool:
    """A race-mode run on part of the cores (the other model had the rest); one that had them
    all (its partner failed, or runs elsewhere) did not share the box."""
    if run.get("mode") != "race":
        return False
    cpus = run.get("cpus")
    return not (cpus and len(cpus) >= len(available_cpus()))


def roofline_warning(run: dict | None) -> str | None:
    """A sentence when a run used far less of the box's bandwidth than llama.cpp reaches; None
    otherwise. Only a run that could have reached it is judged: not one sharing the box in race
    mode (the bandwidth is measured for the whole box), nor a cancelled or very short one."""
    run = run or {}
    pct = run.get("roofline_pct")
    if pct is None or pct >= FAR_BELOW_PCT or shares_box(run) or run.get("stop") == "cancelled":
        return None
    if (run.get("gen_tokens") or 0) < MIN_JUDGED_TOKENS:
        return None
    return "far below this box's bandwidth: check threads, load, power saving, swap"


def gpu_text(s: Sample) -> str | None:
    """The GPU in words; None when the sample says nothing about it (the process is gone)."""
    if s.gpu_util is None and s.gpu_mem_used_bytes is None:
        return _GPU_NOTES.get(s.note or "", s.note) if s.note != "process gone" else None
    bits = [f"{s.gpu_util:.0f} % util" if s.gpu_util is not None else "util n/a"]
    if s.gpu_mem_used_bytes is not None:
        bits.append(f"{fmt.human_bytes(s.gpu_mem_used_bytes)} used")
    if s.vram_bytes is not None:
        bits.append(f"this model {fmt.human_bytes(s.vram_bytes)}")
    if s.gpu_power_w is not None:
        bits.append(f"{s.gpu_power_w:.0f} W")
    if s.gpu_temp_c is not None:
        bits.append(f"{s.gpu_temp_c:.0f} °C")
    return " · ".join(bits)


def gpu_label(s: Sample) -> str:
    """The metrics strip's short GPU label: ``37% 300M 72W 54°C`` or ``n/a (no GPU)``."""
    if s.gpu_util is None:
        return f"n/a ({s.note or 'no GPU'})"
    bits = [f"{s.gpu_util:.0f}%"]
    if s.vram_bytes is not None:
        bits.append(fmt.human_bytes(s.vram_bytes, short=True))
    if s.gpu_power_w is not None:
        bits.append(f"{s.gpu_power_w:.0f}W")
    if s.gpu_temp_c is not None:
        bits.append(f"{s.gpu_temp_c:.0f}°C")
    return " ".join(bits)


def mem_label(s: Sample) -> str:
    """Resident weights and anonymous memory apart (``w 96.6M + anon 58.2M``), never one RSS."""
    if s.weights_resident_bytes is not None and s.anon_bytes is not None:
        return f"w {fmt.human_bytes(s.weights_resident_bytes, short=True)} + anon {fmt.human_bytes(s.anon_bytes, short=True)}"
    if s.anon_bytes is not None:
        return f"anon {fmt.human_bytes(s.anon_bytes, short=True)} (weights n/a)"
    return f"RSS {fmt.human_bytes(s.rss_bytes, short=True)}"


def working_set_text(run: dict) -> str:
    """A probe run's touched bytes per tensor group, or why there are none."""
    ws = run.get("working_set")
    if ws is None:
        return f"n/a: {run.get('working_set_note') or 'no probe'}"
    groups = " · ".join(f"{name} {fmt.touched(g)}" for name, g in ws["groups"].items())
    return f"{groups} (after {ws['curve'][-1][0] if ws['curve'] else 0} tokens)"


def context_text(c: dict, n_ctx: int | None = None) -> str:
    """llama.cpp's context as built, in one line: its size, flash attention (setting and what it
    resolved to), n_batch/n_ubatch, the KV cache's types and bytes per token, how the weights load."""
    setting = {"enabled": "on", "disabled": "off"}.get(c.get("flash_attn"), c.get("flash_attn"))
    fa = f"flash attn {setting}" + (f" ({'on' if c.get('flash_attn_on') else 'off'})" if setting == "auto" else "")
    bits = ([f"{n_ctx:,} tokens"] if n_ctx else []) + [fa, f"batch {c.get('n_batch', '?')}/{c.get('n_ubatch', '?')}"]
    if c.get("type_k"):
        kv = f"KV {c['type_k']}/{c['type_v']}"
        if c.get("kv_bytes_per_token"):
            kv += f" {fmt.human_bytes(c['kv_bytes_per_token'])}/token ({c.get('kv_layers')} layers)"
        if c.get("swa_cells"):  # capped: the window layers' cache stops growing at the window
            cap = "full size" if c.get("swa_full") else f"capped at {c['swa_cells']} cells"
            kv += f", window layers' cache {cap}"
        if c.get("kv_bytes"):
            kv += f", {fmt.human_bytes(c['kv_bytes'])} in all"
        bits.append(kv)
    if c.get("mmap") is not None:
        bits.append(("mmap" if c["mmap"] else "no mmap") + (" + mlock" if c.get("mlock") else ""))
    return " · ".join(bits)


def layers_text(settings: dict | None, buffers: dict | None = None) -> str | None:
    """Where the layers are, when the spec asked for GPU layers or experts on the CPU (``ngl``,
    ``n-cpu-moe``): on a build without GPU offload, all on the CPU whatever they say."""
    if not settings or (settings.get("ngl", -1) == -1 and not settings.get("n-cpu-moe")):
        return None
    asked = f"ngl {settings.get('ngl')}" + (f", n-cpu-moe {settings['n-cpu-moe']}" if settings.get("n-cpu-moe") else "")
    if not settings.get("gpu_offload"):
        return f"no GPU: all layers on the CPU ({asked} recorded)"
    on_gpu = (buffers or {}).get("offloaded")
    return asked + (f" · on GPU {fmt.human_bytes(on_gpu)}" if on_gpu else " · nothing offloaded")


class CardScroll(VerticalScroll):
    """The card's place in a pane: as tall as the card up to ``MAX_SHARE``, scrolled beyond
    (the mouse wheel; arrows or PgUp/PgDn once Tab or a click has focused it). Shown and hidden
    with its card."""

    DEFAULT_CSS = f"""
    CardScroll {{ height: auto; max-height: {MAX_SHARE}; border-bottom: solid $panel; scrollbar-size-vertical: 1; }}
    CardScroll:focus {{ border-bottom: solid $accent; }}
    """


class CardPanel(Static):
    """The card of one model; fed by its pane (``show_loaded``, ``show_sample``, ``show_run``)."""

    DEFAULT_CSS = """
    CardPanel { height: auto; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__("", markup=False)
        self.loaded: Loaded | None = None
        self.sample: Sample | None = None
        """The latest reading with process figures."""
        self.gpu: str = "…"
        self.peak_anon: int | None = None
        self.run: dict | None = None
        self.probe: dict | None = None
        """The latest working-set probe run (kept while later speed runs come and go)."""
        self.bandwidth_gbs: float | None = None
        self.choice: bool | None = None
        """Set by ``c``: the person's choice overrides the fit-to-height rule."""
        self.masked = False
        """A blind vote hides the card (it names the model) whatever the choice."""
        self._pane_height = 0
        self._mem_note = "…"
        self._drawn: list | None = None
        self._drawn_at = -1e9
        self._height = 0
        self.moved: list[tuple[str, str]] = []
        """Rows a compact pane moved here (its header, its whole stats line); drawn first."""

    def on_mount(self) -> None:
        self._draw()

    def show_bandwidth(self, gbs: float | None) -> None:
        """The host's read bandwidth, measured by the app once the models are loaded (a probe
        beside a loading model would measure the load, not the memory)."""
        self.bandwidth_gbs = gbs
        self._draw()

    # -- visibility ---------------------------------------------------------------------------
    def fit(self, pane_height: int) -> None:
        self._pane_height = pane_height
        self._show(not self.masked and (self.choice if self.choice is not None else pane_height >= MIN_PANE_HEIGHT))

    def _show(self, shown: bool) -> None:
        self.display = shown
        if isinstance(self.parent, CardScroll):  # its place goes with it (border and all)
            self.parent.display = shown

    def toggle(self) -> None:
        self.choice = not self.display
        self.fit(self._pane_height)

    # -- feeding ---------------------------------------------------------------------------------
    def context(self) -> dict:
        """What ``RunCollector.result()`` needs for the roofline and the energy per token."""
        info = self.loaded.info if self.loaded else None
        return {
            "bytes_per_token": info.bytes_per_token if info else None,
            "bandwidth_gbs": self.bandwidth_gbs,
            "energy_note": rapl_note(),
        }

    def show_loaded(self, ev: Loaded, fresh: bool = True) -> None:
        """``fresh``: a new process (a reload), whose readings start over."""
        if fresh and self.loaded is not None:
            self.sample, self.peak_anon, self.run, self.probe = None, None, None, None
        self.loaded = ev
        self._draw()

    def show_sample(self, s: Sample) -> None:
        gpu = gpu_text(s)
        moved = gpu is not None and gpu != self.gpu
        if gpu is not None:
            self.gpu = gpu
        if s.rss_bytes is not None:
            self.sample = s
            if s.anon_bytes is not None:
                self.peak_anon = max(self.peak_anon or 0, s.anon_bytes)
        elif s.note and s.note not in _GPU_NOTES and s.note != "process gone":
            moved = moved or s.note != self._mem_note
            self._mem_note = s.note  # a remote server: no process of ours to read
        if not moved and self._drawn is not None and now() - self._drawn_at < MEASURED_EVERY_S:
            return  # at most the memory moved, drawn under a second ago: a later reading draws it (not even its rows made)
        self._draw(reading=True)

    def show_run(self, result: dict) -> None:
        if result.get("probe"):  # a probe's speed is not a figure: the card keeps showing the last speed run
            self.probe = result
        else:
            self.run = result
        self._draw()

    def show_moved(self, rows: list[tuple[str, str]]) -> None:
        """The rows a compact pane does not show itself; ``[]`` when it shows them again."""
        if rows != self.moved:
            self.moved = rows
            self._draw()

    # -- drawing ---------------------------------------------------------------------------------
    def rows(self) -> list[tuple[str, str, bool]]:
        """(label, value, warning) rows as drawn."""
        rows: list[tuple[str, str, bool]] = [(label, value, False) for label, value in self.moved]
        if self.loaded is not None:
            card = dict(card_lines(self.loaded.info))
            rows.append(("params", card["params"], False))
            if self.loaded.info.path is None:  # a server's model: its layout is not known here
                rows.append(("kind", "PLE and MoE unknown (server model)", False))
            else:
                rows.append(("kind", f"PLE {card['PLE']} · MoE {card['MoE']}", False))
            if "gguf name" in card:  # titled by its file name; the GGUF's own name here
                rows.append(("gguf name", card["gguf name"], False))
            rows.append(("read/tok", card["bytes/token"], False))
            if self.probe is not None:  # which bytes a token needed: beside the kind, not below the fold
                rows.append(("touched", working_set_text(self.probe), False))
            if self.loaded.info.synthetic:
                rows.append(("twin", card["synthetic"], False))
            if self.loaded.lazy_ple is not None and self.loaded.info.ple:
                rows.append(("lazy PLE", self.loaded.lazy_ple, False))
            if self.loaded.context:
                rows.append(("context", context_text(self.loaded.context, self.loaded.n_ctx), False))
            layers = layers_text(self.loaded.settings, self.loaded.buffers)
            if layers:
                rows.append(("layers", layers, False))
            rows.append(("planned", self._planned(), False))
            if self.loaded.pid:  # the process the figures below are read from (kill, top -p, nvitop)
                rows.append(("process", f"pid {self.loaded.pid}", False))
        rows.append(("measured", self._measured(), False))
        rows.append(("GPU", self.gpu, False))
        if self.run is not None:
            pct = self.run.get("roofline_pct")
            roof = roofline_text(pct, self.bandwidth_gbs) or "n/a (bytes per token or bandwidth unknown)"
            warning = roofline_warning(self.run)
            if warning:
                roof += ", far below what llama.cpp reaches (84–91 % on some CPUs): check threads, load, power saving, swap"
            elif pct is not None and shares_box(self.run):
                roof += " (race: the models share it)"
            rows.append(("roofline", roof, bool(warning)))
            j = self.run.get("energy_j_per_token")
            note = self.run.get("energy_note") or ""
            rows.append(("energy", f"{j:.3g} J/token ({note})" if j is not None else note, False))
        if self.probe is not None and self.loaded is None:
            rows.append(("touched", working_set_text(self.probe), False))
        return rows

    def _planned(self) -> str:
        b = self.loaded.buffers if self.loaded else None
        if not b:
            return "n/a (no llama.cpp buffer report)"
        text = f"weights {fmt.human_bytes(b['model_mapped'])} mapped · anon {fmt.human_bytes(planned_anon(b))}"
        text += f" (KV {fmt.human_bytes(b['kv'])}, compute {fmt.human_bytes(b['compute'])}"
        repacked = b["model"] - b["model_mapped"] - b["offloaded"]
        if repacked > 0:
            text += f", repacked weights {fmt.human_bytes(repacked)}"
        text += ")"
        if b["offloaded"]:
            text += f" · on GPU {fmt.human_bytes(b['offloaded'])}"
        return text

    def _measured(self) -> str:
        s = self.sample
        if s is None:
            return self._mem_note
        bits = []
        if s.weights_resident_bytes is not None:
            bits.append(f"weights {fmt.human_bytes(s.weights_resident_bytes)} resident")
        if s.anon_bytes is not None:
            bits.append(f"anon {fmt.human_bytes(s.anon_bytes)} (peak {fmt.human_bytes(self.peak_anon)})")
        if s.uss_bytes is not None:
            bits.append(f"USS {fmt.human_bytes(s.uss_bytes)}")
        return " · ".join(bits) or f"RSS {fmt.human_bytes(s.rss_bytes)}"

    def _draw(self, reading: bool = False) -> None:
        rows = self.rows()
        t = now()
        if rows == self._drawn:  # an idle model repeats its readings: nothing to redraw
            self._drawn_at = t  # what is drawn is up to date: the next second's readings make no rows
            return
        if reading and self._drawn is not None and t - self._drawn_at < MEASURED_EVERY_S and len(rows) == len(self._drawn):
            if all(new == old or new[0] == "measured" for new, old in zip(rows, self._drawn, strict=True)):
                return  # only the memory moved, and it was drawn less than a second ago: a later reading draws it
        self._drawn_at = t
        # Relayout (the whole screen, ~60 ms at 160x45 here) only when the wrapped height changes.
        width = max(self.content_region.width, 1)
        height = sum(len(divide_line(f"{label:<{LABEL}}{v}", width, fold=True)) + 1 for label, v, _ in rows)
        layout = height != self._height
        self._height = height
        self._drawn = rows
        parts: list = []
        for i, (label, value, warn) in enumerate(rows):
            if i:
                parts.append("\n")
            parts.append((f"{label:<{LABEL}}", "$text-muted"))
            value = safe(value)  # a file path, a server's note, a GPU's name
            parts.append((value, "$text-warning") if warn else value)
        self.update(Content.assemble(*parts), layout=layout)
