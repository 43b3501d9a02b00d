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

__all__ = ["N8N_VERSION", "InstallError", "N8nInstall", "NpmInstall", "cache_dir", "node_version", "package_manifest"]

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
    return N8nInstall(Path(), version=version).manifest()


def node_version() -> tuple[int, int] | None:
    node = shutil.which("node")
    if node is None:
        return None
    found = re.match(r"v(\d+)\.(\d+)", subprocess.run([node, "--version"], capture_output=True, text=True,
                                                       timeout=30).stdout.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


@dataclass(frozen=True)
class NpmInstall:
    """One pinned npm package in a directory of its own (under the user cache), installed once."""

    root: Path
    package: str
    version: str
    min_node: tuple[int, int] = (18, 0)
    overrides: tuple[tuple[str, str], ...] = ()

    def manifest(self) -> dict[str, object]:
        manifest: dict[str, object] = {"name": f"avito-harness-{self.package}", "private": True,
                                       "description": f"{self.package} for avito-harness (generated)",
                                       "dependencies": {self.package: self.version}}
        if self.overrides:
            manifest["overrides"] = dict(self.overrides)
        return manifest

    @property
    def package_dir(self) -> Path:
        return self.root / "node_modules" / self.package

    def _complete(self) -> bool:
        """What else must be there for the install to count (the package's program)."""
        return True

    def installed_version(self) -> str | None:
        manifest = self.package_dir / "package.json"
        if not (manifest.is_file() and self._complete()):
            return None
        return str(json.loads(manifest.read_text(encoding="utf-8")).get("version"))

    def ensure(self, log: Path | None = None) -> bool:
        """Install unless already there; True when it installed now. Raises :class:`InstallError` saying why not."""
        if self.installed_version() == self.version:
            return False
        node = node_version()
        if node is None or node < self.min_node:
            have = "no node on PATH" if node is None else f"node {node[0]}.{node[1]}"
            raise InstallError(f"{self.package} {self.version} needs Node.js >= {self.min_node[0]}.{self.min_node[1]} "
                               f"({have})")
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError("npm is not on PATH (it comes with Node.js)")
        self._make_root()
        (self.root / "package.json").write_text(json.dumps(self.manifest(), indent=1), encoding="utf-8")
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


@dataclass(frozen=True)
class N8nInstall(NpmInstall):
    package: str = "n8n"
    version: str = N8N_VERSION
    min_node: tuple[int, int] = MIN_NODE
    overrides: tuple[tuple[str, str], ...] = (("xlsx", "0.18.5"),)

    @classmethod
    def default(cls) -> N8nInstall:
        return cls(cache_dir() / f"n8n-{N8N_VERSION}")

    @property
    def executable(self) -> Path:
        return self.root / "node_modules" / ".bin" / "n8n"

    def _complete(self) -> bool:
        return self.executable.exists()
