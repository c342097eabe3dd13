"""``python -m agentfm``: the same CLI as ``agentfm-py``."""

from __future__ import annotations

from agentfm.cli import main

raise SystemExit(main())
