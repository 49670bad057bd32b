"""Build ``llama-bench`` from the llama.cpp that the installed llama-cpp-python was built from.

The sdist of the installed version holds llama.cpp under ``vendor/``; it is configured through
llama-cpp-python's own CMakeLists (so every option is the one pip used: Release, shared libs,
GGML_NATIVE, plus ``$CMAKE_ARGS`` as pip reads it) with the tools switched on, and only the
``llama-bench`` target is built. Source and binary live in ``~/.cache/abtop/llama-bench/<version>/``
(never in the repository); a second call finds the binary and returns at once.

    .venv/bin/python benchmarks/lib/llama_bench_build.py [--cmake-args "-DGGML_CUDA=ON"] [--tag cuda]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "abtop" / "llama-bench"


def installed_version() -> str:
    return importlib.metadata.version("llama_cpp_python")


def binary_path(version: str, tag: str = "cpu") -> Path:
    return CACHE / version / f"build-{tag}" / "bin" / "llama-bench"


def _sdist(version: str, root: Path) -> Path:
    """The unpacked sdist (downloaded once with pip, the ordinary client)."""
    src = root / f"llama_cpp_python-{version}"
    if (src / "vendor" / "llama.cpp" / "tools" / "llama-bench").is_dir():
        return src
    root.mkdir(parents=True, exist_ok=True)
    tarball = root / f"llama_cpp_python-{version}.tar.gz"
    if not tarball.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={version}", "-d", str(root)],
            check=True,
        )  # fmt: skip
    with tarfile.open(tarball) as tf:
        tf.extractall(root, filter="data")
    return src


def build(version: str | None = None, cmake_args: str | None = None, tag: str = "cpu", jobs: int = 2) -> Path:
    """The path of a built ``llama-bench`` for ``version`` (default: the installed one)."""
    version = version or installed_version()
    out = binary_path(version, tag)
    if out.exists():
        return out
    root = CACHE / version
    src = _sdist(version, root)
    extra = shlex.split(os.environ.get("CMAKE_ARGS", "") if cmake_args is None else cmake_args)
    bdir = root / f"build-{tag}"
    subprocess.run(
        ["cmake", "-S", str(src), "-B", str(bdir), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TOOLS=ON",
         "-DLLAVA_BUILD=OFF", f"-DCMAKE_RUNTIME_OUTPUT_DIRECTORY={bdir / 'bin'}", *extra],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    subprocess.run(["cmake", "--build", str(bdir), "--target", "llama-bench", f"-j{jobs}"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    if not out.exists():
        raise SystemExit(f"llama-bench was built but is not at {out}; look in {bdir}.")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default=None, help="llama-cpp-python version (default: the installed one)")
    ap.add_argument("--cmake-args", default=None, help="extra cmake options (default: $CMAKE_ARGS, as pip)")
    ap.add_argument("--tag", default="cpu", help="name of the build folder (cpu, cuda)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    a = ap.parse_args()
    print(build(a.version, a.cmake_args, a.tag, a.jobs))


if __name__ == "__main__":
    main()
