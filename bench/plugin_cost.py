"""What installing the harness costs every pytest run of a user's venv (``python -m bench.plugin_cost``).

Three fresh venvs, each with the same pytest: one with nothing else, one with httpx too (a gateway project's venv
before: httpx brings anyio, whose pytest plugin loads on every run), one with the harness's wheel and its base
dependencies (``pip install avito-harness``: the plugin and its dependencies' plugins load on
every run). Each collects and runs a one-assert test file, seven times; the medians are compared. Installs come
from the package index (pip's cache), so this is a bench, not a test. Also ``python -X importtime`` of the plugin.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 7


def _venv(where: Path, *packages: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def _median_wall(python: Path, folder: Path, *args: str) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=folder, check=True,
                       capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _plugin_import_us(python: Path) -> int:
    """Cumulative microseconds ``python -X importtime`` gives the plugin module."""
    done = subprocess.run([str(python), "-X", "importtime", "-c", "import avito_harness.pytest_plugin"],
                          capture_output=True, text=True, check=True)
    line = next(x for x in done.stderr.splitlines() if x.rstrip().endswith("avito_harness.pytest_plugin"))
    return int(line.split("|")[1])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(base / "dist")],
                       check=True)
        (wheel,) = (base / "dist").glob("avito_harness-*.whl")
        pytest_pin = f"pytest=={__import__('pytest').__version__}"
        without = _venv(base / "without", pytest_pin)
        with_httpx = _venv(base / "httpx", pytest_pin, "httpx")
        with_harness = _venv(base / "with", pytest_pin, str(wheel))
        folder = base / "project"
        folder.mkdir()
        (folder / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        figures = {
            "collect_without_s": _median_wall(without, folder, "--collect-only"),
            "collect_httpx_s": _median_wall(with_httpx, folder, "--collect-only"),
            "collect_with_s": _median_wall(with_harness, folder, "--collect-only"),
            "run_without_s": _median_wall(without, folder),
            "run_with_s": _median_wall(with_harness, folder),
            "plugin_import_us": _plugin_import_us(with_harness),
        }
    figures["collect_extra_s"] = figures["collect_with_s"] - figures["collect_without_s"]
    figures["collect_extra_over_httpx_s"] = figures["collect_with_s"] - figures["collect_httpx_s"]
    figures["run_extra_s"] = figures["run_with_s"] - figures["run_without_s"]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}, indent=1))
    out = ROOT / "bench" / "results" / "plugin_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
