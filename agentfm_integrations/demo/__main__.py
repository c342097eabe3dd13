"""``python -m agentfm_integrations.demo`` (or ``agentfm-demo``): the tour on its own."""

from __future__ import annotations

from agentfm_integrations.demo._app import main

raise SystemExit(main())
