"""``litetrain runtimes [install [arm64|wasm] ...]``: list the runtimes, or install those that need downloads."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "list the runtimes litetrain trains on and whether they work here; 'install' fetches arm64 (qemu) and wasm"
EPILOG = """install fetches from package registries only, into $LITETRAIN_CACHE or ~/.cache/litetrain, never changing
the host: arm64 = Debian's qemu-user-static and an arm64 Python 3.11 sysroot (apt-get download + dpkg -x) and the
aarch64 wheels of this ai-edge-litert and numpy (pip download); wasm = npm install @litertjs/core. check and demo
then take --runtimes arm64 (the ARM64 kernels a phone runs, emulated: slow) and wasm (LiteRT.js in Node)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runtimes", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=("list", "install"), default="list")
    p.add_argument("names", nargs="*", metavar="NAME", help="install: arm64, wasm (default: both)")
    p.add_argument("--no-probe", dest="probe", action="store_false",
                   help="list: do not start the installed runtimes to check that they work")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from litetrain.runtime.install import cache_dir, install, status
    from litetrain.runtime.registry import RUNTIMES

    if args.action == "install":
        install(args.names)
    print(f"runtimes (cache: {cache_dir()}):")
    states = {s.name: s for s in status(probe=args.probe)}
    rows = [(name, entry.description) for name, entry in RUNTIMES.items()]
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"  {name:<{width}}  {description}" + (_state(states[name]) if name in states else ""))
    return 0


def _state(state: Any) -> str:
    if not state.installed:
        return f"\n  {'':<{len(state.name)}}  -> {state.detail}"
    if state.works is None:
        return "  [installed]"
    return "  [works]" if state.works else f"  [NOT WORKING: {state.detail}]"
