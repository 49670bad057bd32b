"""NVIDIA GPUs through NVML (the ``pynvml`` module of ``nvidia-ml-py``), behind one guard.

``Nvml.open()`` answers ``None`` when there is no usable NVML (module missing, no driver, no
device): callers show "no GPU". Once open, a query that fails because the sensor is not there
(not supported, no permission) gives ``None`` for that figure; any other ``NVMLError`` (the GPU fell
off the bus, the driver went away) raises ``NvmlLost`` so the caller can stop asking and say
"GPU lost". ``pynvml`` is imported when a guard opens, not at import time, so a machine without
it loses nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

# NVML return codes for a sensor that is absent rather than broken.
_SOFT_ERRORS = {
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
    "NVML_ERROR_ARGUMENT_VERSION_MISMATCH": 25,
}


class NvmlLost(Exception):
    """The GPU or its driver stopped answering."""


@dataclass(slots=True)
class GpuReading:
    index: int
    """The device the process runs on (device 0 when it holds no GPU memory)."""
    util: float | None = None
    mem_used: int | None = None
    power_w: float | None = None
    temp_c: float | None = None
    vram: int | None = None
    """This process's GPU memory summed over devices; None when NVML does not list it."""


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Nvml:
    def __init__(self, nv: Any, handles: list[Any]) -> None:
        self.nv, self.handles = nv, handles
        self._soft = {getattr(nv, name, code) for name, code in _SOFT_ERRORS.items()}
        self._open = True

    @classmethod
    def open(cls) -> Nvml | None:
        try:
            nv = importlib.import_module("pynvml")
        except ImportError:
            return None
        try:
            nv.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, …: no GPU here
            return None
        try:
            handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        except Exception:
            handles = []
        if not handles:
            cls._shutdown(nv)
            return None
        return cls(nv, handles)

    def _call(self, fn: Any, *args: Any) -> Any:
        """One NVML query: None for an absent sensor, ``NvmlLost`` for a failing GPU."""
        try:
            return fn(*args)
        except self.nv.NVMLError as exc:
            if getattr(exc, "value", None) in self._soft:
                return None
            raise NvmlLost(str(exc)) from None

    def _process_memory(self, handle: Any, pid: int) -> tuple[bool, int | None]:
        """(listed, bytes): whether the device lists this pid, and its memory there when known."""
        listed, total = False, None
        for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(self.nv, getter, None)
            for p in (self._call(fn, handle) if fn else None) or []:
                if p.pid == pid:
                    listed = True
                    used = getattr(p, "usedGpuMemory", None)  # None under Windows WDDM
                    if used is not None:
                        total = (total or 0) + int(used)
        return listed, total

    def read(self, pid: int) -> GpuReading:
        vram: int | None = None
        index: int | None = None
        for i, h in enumerate(self.handles):
            listed, used = self._process_memory(h, pid)
            if listed and index is None:
                index = i
            if used is not None:
                vram = (vram or 0) + used
        r = GpuReading(index=0 if index is None else index, vram=vram)
        h = self.handles[r.index]
        util = self._call(self.nv.nvmlDeviceGetUtilizationRates, h)
        r.util = float(util.gpu) if util is not None else None
        mem = self._call(self.nv.nvmlDeviceGetMemoryInfo, h)
        r.mem_used = int(mem.used) if mem is not None else None
        mw = self._call(self.nv.nvmlDeviceGetPowerUsage, h)
        r.power_w = mw / 1000.0 if mw is not None else None
        temp = self._call(self.nv.nvmlDeviceGetTemperature, h, getattr(self.nv, "NVML_TEMPERATURE_GPU", 0))
        r.temp_c = float(temp) if temp is not None else None
        return r

    def energy_j(self, index: int) -> float | None:
        """The device's energy counter since the driver loaded (Volta and later), in joules."""
        fn = getattr(self.nv, "nvmlDeviceGetTotalEnergyConsumption", None)
        mj = self._call(fn, self.handles[index]) if fn else None
        return mj / 1000.0 if mj is not None else None

    def devices(self) -> list[dict]:
        """``[{name, memory_bytes, driver}]`` for the bench's ``host``."""
        driver = self._call(self.nv.nvmlSystemGetDriverVersion) if hasattr(self.nv, "nvmlSystemGetDriverVersion") else None
        out = []
        for h in self.handles:
            mem = self._call(self.nv.nvmlDeviceGetMemoryInfo, h)
            out.append(
                {
                    "name": _text(self._call(self.nv.nvmlDeviceGetName, h)),
                    "memory_bytes": int(mem.total) if mem is not None else None,
                    "driver": _text(driver) if driver is not None else None,
                }
            )
        return out

    @staticmethod
    def _shutdown(nv: Any) -> None:
        try:
            nv.nvmlShutdown()
        except Exception:  # shutting down a lost GPU may fail too; nothing to do about it
            pass

    def close(self) -> None:
        if self._open:
            self._open = False
            self._shutdown(self.nv)
