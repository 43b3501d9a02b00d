"""``avito-harness n8n install``: n8n 2.8.4 into a cache directory, once.

2.8.4 is the newest n8n release that runs on Node 20. Its ``xlsx`` dependency points outside the npm
registry, so the install pins the registry's ``xlsx@0.18.5`` through npm ``overrides``; ``sqlite3`` builds
from source with node-gyp (gcc and make are needed). About 3.5 minutes and 2.3 GB the first time; later
calls find it installed and return at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["N8N_VERSION", "InstallError", "N8nInstall", "cache_dir", "node_version", "package_manifest"]

N8N_VERSION = "2.8.4"
MIN_NODE = (20, 19)  # n8n 2.8.4's engines: node >=20.19 <=24.x


class InstallError(RuntimeError):
    pass


def cache_dir() -> Path:
    """``$AVITO_HARNESS_CACHE`` or ``$XDG_CACHE_HOME/avito-harness`` (``~/.cache/avito-harness``)."""
    if os.environ.get("AVITO_HARNESS_CACHE"):
        return Path(os.environ["AVITO_HARNESS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "avito-harness"


def package_manifest(version: str = N8N_VERSION) -> dict[str, object]:
    return {"name": "avito-harness-n8n", "private": True, "description": "n8n for avito-harness (generated)",
            "dependencies": {"n8n": version}, "overrides": {"xlsx": "0.18.5"}}


def node_version() -> tuple[int, int] | None:
    node = shutil.which("node")
    if node is None:
        return None
    found = re.match(r"v(\d+)\.(\d+)", subprocess.run([node, "--version"], capture_output=True, text=True,
                                                       timeout=30).stdout.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


@dataclass(frozen=True)
class N8nInstall:
    root: Path
    version: str = N8N_VERSION

    @classmethod
    def default(cls) -> N8nInstall:
        return cls(cache_dir() / f"n8n-{N8N_VERSION}")

    @property
    def executable(self) -> Path:
        return self.root / "node_modules" / ".bin" / "n8n"

    def installed_version(self) -> str | None:
        manifest = self.root / "node_modules" / "n8n" / "package.json"
        if not (manifest.is_file() and self.executable.exists()):
            return None
        return str(json.loads(manifest.read_text(encoding="utf-8")).get("version"))

    def ensure(self, log: Path | None = None) -> bool:
        """Install unless already there; True when it installed now. Raises :class:`InstallError` saying why not."""
        if self.installed_version() == self.version:
            return False
        node = node_version()
        if node is None or node < MIN_NODE:
            have = "no node on PATH" if node is None else f"node {node[0]}.{node[1]}"
            raise InstallError(f"n8n {self.version} needs Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]} ({have})")
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError("npm is not on PATH (it comes with Node.js)")
        self._make_root()
        (self.root / "package.json").write_text(json.dumps(package_manifest(self.version), indent=1), encoding="utf-8")
        log_path = log or self.root / "install.log"
        with log_path.open("w", encoding="utf-8") as out:
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"],
                                  cwd=self.root, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
        if done.returncode != 0 or self.installed_version() != self.version:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise InstallError(f"npm install failed (exit {done.returncode}); the end of {log_path}:\n{tail}")
        return True

    def _make_root(self) -> None:
        """The cache directory; a symlink whose target is gone (a moved or wiped cache) is replaced."""
        if self.root.is_symlink() and not self.root.exists():
            self.root.unlink()
        if self.root.exists() and not self.root.is_dir():
            raise InstallError(f"{self.root} is in the way: it is not a directory (remove it, or set "
                               "AVITO_HARNESS_CACHE to another place)")
        self.root.mkdir(parents=True, exist_ok=True)
