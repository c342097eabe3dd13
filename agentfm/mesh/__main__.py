"""``python -m agentfm.mesh [serve] [options]``: same as ``agentfm-py mesh serve``."""

from __future__ import annotations

import sys

from agentfm.mesh._cli import serve_main

args = sys.argv[1:]
if args[:1] == ["serve"]:
    args = args[1:]
raise SystemExit(serve_main(args))
