"""The host line beside the prompt: the whole machine's CPU, memory, swap and load, once a second,
and the UI's own CPU (as htop lists itself), so anyone can see what the instrument costs.

A model's pane shows its own process; this line shows what else is running, the first thing to
check when two figures look wrong (a build in the background, a box already swapping).
"""

from __future__ import annotations

from textual.widgets import Static

from backends import host_load
from tui.text import format as fmt


def host_text(
    cpu: float, used: int, total: int, swap: int, load1: float | None, compact: bool = False, ui: float | None = None
) -> str:
    """``compact``: the words a narrow terminal has room for, leaving the prompt bar the rest.
    ``ui``: this process's CPU, % of one core."""
    ram = f"RAM {fmt.human_bytes_of(used, total, short=compact)}"
    bits = [f"host {cpu:.0f}%", ram] if compact else [f"host CPU {cpu:.0f}%", ram]
    if ui is not None:
        bits.insert(1, f"UI {ui:.1f}%" if ui < 9.95 else f"UI {ui:.0f}%")
    if swap:  # a box that swaps makes every figure on screen slower than the model is
        bits.append(f"swap {fmt.human_bytes(swap)}")
    if load1 is not None:
        bits.append(f"ld {load1:.1f}" if compact else f"load {load1:.1f}")
    return (" " if compact else " · ").join(bits)


class HostBar(Static):
    DEFAULT_CSS = """
    HostBar { width: auto; height: 1; padding: 0 1; background: $boost; color: $text-muted; }
    """

    compact = False
    """Set by the app below ``NARROW`` columns (tui/app/app.py)."""
    _len = 0
    """The length of the reading on screen (0: none yet)."""

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.compact = compact
            if self._len:  # a reading is on screen: redraw it in the new words
                self._len, self._text = 0, ""
                self.update("", layout=True)
                self.refresh_load()

    EVERY_S = 1.0
    riding = False
    """A run is in flight: the app's frames read the line (``ride``, ``due``)."""

    def on_mount(self) -> None:
        host_load()  # psutil's CPU % counts from the previous call: prime it
        self._len = 0
        self._text = ""
        self._last = -1.0
        self.update("host …")
        self.set_timer(0.25, self.refresh_load)  # a first reading soon, then one a second
        self._timer = self.set_interval(self.EVERY_S, self.refresh_load)

    def ride(self, on: bool) -> None:
        """While a run streams, the line is read in the app's frames (``due``), which wake when a
        model's tokens arrive, between two of its tokens: its own timer would wake the UI at any
        moment of the model's work, on the cores the model runs on."""
        self.riding = on
        if on:
            self._timer.pause()
        else:
            self._timer.resume()

    def due(self, t: float) -> None:
        """A frame at loop time ``t``: read the host if a second has passed since the last reading."""
        if t - self._last >= self.EVERY_S - 0.05:
            self.refresh_load()

    def refresh_load(self) -> None:
        self._last = self.app.loop.time() if getattr(self.app, "loop", None) else 0.0
        h = host_load()
        text = host_text(h.cpu_percent, h.mem_used_bytes, h.mem_total_bytes, h.swap_used_bytes, h.load1, self.compact,
                         h.self_cpu_percent)  # fmt: skip
        if text == self._text:  # the same figures: nothing to draw
            return
        self._text = text
        # width: auto, so a new length relayouts the whole screen (~10 ms at 160x45): the line
        # keeps its width when a figure gets shorter, and grows when one gets longer.
        self.update(text.ljust(self._len), layout=len(text) > self._len)
        self._len = max(len(text), self._len)
