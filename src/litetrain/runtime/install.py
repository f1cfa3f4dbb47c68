"""``litetrain runtimes install``: what the ``arm64`` and ``wasm`` runtimes need, fetched into a cache folder.

Everything comes from package registries through their own clients, and nothing on the host changes:

- **arm64** (ARM64 XNNPACK/NEON kernels, what a phone's CPU computes, under qemu-user): Debian's
  ``qemu-user-static`` and an arm64 Python 3.11 sysroot from Debian's own packages (``apt-get download`` with apt
  state kept in the cache, then ``dpkg -x``; the host's Python and dpkg database are untouched), and the aarch64
  wheels of the ai-edge-litert and numpy this Python has (``pip download`` with the manylinux_2_27/2_28 aarch64
  tags: without them pip silently picks ai-edge-litert 1.4.0 and an older numpy). ``arm64/python`` runs that Python
  under qemu in a private mount namespace that shows it an aarch64 ``/proc/cpuinfo`` (LiteRT's cpuinfo library
  crashes on the host's x86 one): ``unshare -m`` as root, ``unshare -r -m`` (a user namespace) otherwise.
- **wasm** (LiteRT.js): ``npm install @litertjs/core``.

The cache is ``$LITETRAIN_CACHE`` or ``~/.cache/litetrain``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from litetrain.errors import RuntimeUnavailableError, UsageError

LITERTJS_VERSION = "2.5.3"
INSTALLABLE = ("arm64", "wasm")
INSTALL_COMMAND = "litetrain runtimes install"
# Packages of the arm64 sysroot that python3.11 does not need to run (tools and Perl pulled in by dpkg's scripts).
_SKIP_DEBS = {"dpkg", "install-info", "perl", "perl-base", "perl-modules-5.36", "libperl5.36", "tar", "mailcap",
              "mime-support", "media-types"}
_CPUINFO_CORE = """processor\t: {n}
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

"""
_WRAPPER = """#!/bin/sh
# The arm64 Python 3.11 of litetrain's cache under qemu-user, shown an aarch64 /proc/cpuinfo in a private mount
# namespace (LiteRT's cpuinfo library crashes on an x86 one). Written by `litetrain runtimes install arm64`.
C='{cache}'
if [ "$(id -u)" = 0 ]; then NS="-m"; else NS="-r -m"; fi
if ! unshare $NS true 2>/dev/null; then
  echo "litetrain arm64: cannot create a mount namespace (unshare $NS) to show qemu an aarch64 /proc/cpuinfo;" \\
       "run as root or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)" >&2
  exit 3
fi
# A phone's core (QEMU_CPU chooses another): qemu's default "max" CPU has SVE, whose emulation made XNNPACK 5x slower.
export LITETRAIN_QEMU_CPU="${{QEMU_CPU:-{cpu}}}"
exec unshare $NS sh -c 'mount --bind "$0/arm64/cpuinfo" /proc/cpuinfo && exec "$0/qemu/usr/bin/qemu-aarch64-static" \\
  -cpu "$LITETRAIN_QEMU_CPU" -L "$0/arm64/sysroot" "$0/arm64/sysroot/usr/bin/python3.11" "$@"' "$C" "$@"
"""
QEMU_CPU = "cortex-a76"
"""The emulated CPU: a Cortex-A76 (ARMv8.2 with dot product, the big core of many phones since 2019)."""


def cache_dir() -> Path:
    """``$LITETRAIN_CACHE``, or ``~/.cache/litetrain``."""
    return Path(os.environ.get("LITETRAIN_CACHE") or Path.home() / ".cache" / "litetrain").expanduser()


def arm64_python(cache: Path | None = None) -> Path:
    """The emulated arm64 Python's wrapper script (it may not exist yet)."""
    return (cache or cache_dir()) / "arm64" / "python"


def wasm_package(cache: Path | None = None) -> Path:
    """The installed ``@litertjs/core`` package folder (it may not exist yet)."""
    return (cache or cache_dir()) / "wasm" / "node_modules" / "@litertjs" / "core"


def require_arm64() -> Path:
    """The arm64 wrapper, or RuntimeUnavailableError (exit code 3) naming the command that installs it."""
    python = arm64_python()
    if not python.is_file():
        raise RuntimeUnavailableError(
            f"The arm64 runtime is not installed (no {python}).",
            hint=f"Run '{INSTALL_COMMAND} arm64' (about 180 MB from Debian and PyPI into {cache_dir()}; "
            "LITETRAIN_CACHE chooses another folder).",
        )
    return python


@dataclasses.dataclass(frozen=True)
class RuntimeStatus:
    """Whether an installable runtime is installed and, when probed, whether it works."""

    name: str
    installed: bool
    works: bool | None
    detail: str


def status(names: Iterable[str] = INSTALLABLE, *, probe: bool = True) -> list[RuntimeStatus]:
    """What is installed in the cache and, with ``probe``, whether it starts (the emulated Python imports
    ai_edge_litert; Node loads the LiteRT.js package)."""
    out = []
    for name in names:
        path = arm64_python() if name == "arm64" else wasm_package()
        if not path.exists():
            out.append(RuntimeStatus(name, False, None, f"not installed; run '{INSTALL_COMMAND} {name}'"))
            continue
        if not probe:
            out.append(RuntimeStatus(name, True, None, str(path)))
            continue
        cmd = ([str(path), "-I", "-c", "import ai_edge_litert.interpreter, numpy, platform; print(platform.machine())"]
               if name == "arm64" else ["node", "-e", f"import({str(path / 'dist' / 'index.js')!r}).then(() => "
                                                      "console.log('ok'))"])
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            works, detail = done.returncode == 0, (done.stdout.strip() or done.stderr.strip()[-300:])
        except (OSError, subprocess.TimeoutExpired) as exc:
            works, detail = False, str(exc)
        out.append(RuntimeStatus(name, True, works, f"{path} ({detail})" if works else detail))
    return out


def install(names: Iterable[str], *, log: Callable[[str], None] = print) -> None:
    """Installs the named runtimes (``arm64``, ``wasm``) into the cache.

    Raises:
        UsageError: an unknown name.
        RuntimeUnavailableError: a tool is missing (apt-get, dpkg, npm) or a download failed.
    """
    names = list(dict.fromkeys(names)) or list(INSTALLABLE)
    unknown = [n for n in names if n not in INSTALLABLE]
    if unknown:
        raise UsageError(f"Cannot install {unknown}; installable runtimes: {', '.join(INSTALLABLE)}.")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        (_install_arm64 if name == "arm64" else _install_wasm)(cache, log)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    tool = shutil.which(cmd[0]) if not os.path.isabs(cmd[0]) else cmd[0]
    if tool is None:
        raise RuntimeUnavailableError(f"{what} needs {cmd[0]!r}, which is not installed here.",
                                      hint=f"Install {cmd[0]} (Debian/Ubuntu package manager, or Node.js for npm).")
    done = subprocess.run([tool, *cmd[1:]], capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode != 0:
        raise RuntimeUnavailableError(f"{what} failed ({' '.join(cmd[:3])} ...): {done.stderr.strip()[-600:]}")
    return done.stdout


def _apt_options(cache: Path, arch: str) -> list[str]:
    """apt options that keep its lists and downloads in the cache, for one architecture, never the host's state."""
    state, archives = cache / "apt" / arch / "state", cache / "apt" / arch / "cache"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (archives / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    opts = ["-o", f"Dir::State={state}", "-o", f"Dir::Cache={archives}", "-o", f"APT::Architecture={arch}",
            "-o", f"APT::Architectures::={arch}", "-o", "Dir::State::status=/dev/null"]
    # As root apt downloads as the _apt user, who cannot write to a cache under /root.
    return opts + (["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else [])


def _apt_download(cache: Path, arch: str, roots: list[str], into: Path, log: Callable[[str], None]) -> list[Path]:
    opts = _apt_options(cache, arch)
    log(f"  apt-get update ({arch} package lists, kept in {cache / 'apt'})")
    _run(["apt-get", "-q", *opts, "update"], f"apt-get update for {arch}")
    depends = _run(["apt-cache", *opts, "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                    "--no-breaks", "--no-replaces", "--no-enhances", *roots], "apt-cache depends")
    packages = sorted({line.strip() for line in depends.splitlines() if line and not line.startswith((" ", "<"))}
                      - _SKIP_DEBS)
    into.mkdir(parents=True, exist_ok=True)
    log(f"  apt-get download {len(packages)} {arch} packages")
    _run(["apt-get", "-q", *opts, "download", *packages], f"apt-get download ({arch})", cwd=into)
    return sorted(into.glob("*.deb"))


def _install_arm64(cache: Path, log: Callable[[str], None]) -> None:
    from importlib import metadata

    log("arm64: qemu-user-static, an arm64 Python 3.11 sysroot and aarch64 wheels")
    host = _run(["dpkg", "--print-architecture"], "dpkg").strip()
    qemu_debs = _apt_download(cache, host, ["qemu-user-static"], cache / "debs" / host, log)
    sysroot = cache / "arm64" / "sysroot"
    for folder in (cache / "qemu", sysroot):
        folder.mkdir(parents=True, exist_ok=True)  # dpkg -x does not create its target
    for deb in qemu_debs:
        if deb.name.startswith("qemu-user-static_"):
            _run(["dpkg", "-x", str(deb), str(cache / "qemu")], "dpkg -x qemu-user-static")
    for deb in _apt_download(cache, "arm64", ["python3.11", "libstdc++6", "libgcc-s1"], cache / "debs" / "arm64", log):
        _run(["dpkg", "-x", str(deb), str(sysroot)], f"dpkg -x {deb.name}")
    wheels, site = cache / "arm64" / "wheels", cache / "arm64" / "site"
    pins = [f"ai-edge-litert=={metadata.version('ai-edge-litert')}", f"numpy=={metadata.version('numpy')}"]
    log(f"  pip download {' '.join(pins)} (aarch64, manylinux_2_27/2_28)")
    _run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--platform", "manylinux_2_27_aarch64",
          "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64", "--python-version", "3.11",
          "--implementation", "cp", "--abi", "cp311", *pins, "-d", str(wheels)], "pip download (aarch64 wheels)")
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    # The worker runs Python with -I (PYTHONPATH ignored): a .pth in the sysroot's dist-packages finds the wheels.
    dist = sysroot / "usr" / "lib" / "python3" / "dist-packages"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "litetrain-arm64.pth").write_text(f"{site}\n")
    (cache / "arm64" / "cpuinfo").write_text("".join(_CPUINFO_CORE.format(n=n) for n in range(2)))
    wrapper = arm64_python(cache)
    wrapper.write_text(_WRAPPER.format(cache=cache, cpu=QEMU_CPU))
    wrapper.chmod(0o755)
    log(f"  arm64 Python: {wrapper}")


def _install_wasm(cache: Path, log: Callable[[str], None]) -> None:
    folder = cache / "wasm"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "package.json").exists():
        (folder / "package.json").write_text('{"name": "litetrain-wasm", "private": true}\n')
    log(f"wasm: npm install @litertjs/core@{LITERTJS_VERSION}")
    _run(["npm", "install", "--no-audit", "--no-fund", f"@litertjs/core@{LITERTJS_VERSION}"], "npm install", cwd=folder)
    log(f"  LiteRT.js: {wasm_package(cache)}")
