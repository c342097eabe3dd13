"""A tiny agent: count the words of the prompt, and leave a JSON report as an artifact.

A mesh worker runs it as ``python3 wordcount.py <prompt>`` (the prompt is the last
argument), streams what it prints back to the caller, and ships whatever it writes into
``$AGENTFM_OUTPUT_DIR`` as the task's files. Any program in any language can do the same.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path


def main() -> int:
    prompt = sys.argv[-1]
    words = prompt.split()
    print(f"{len(words)} words", flush=True)
    top = Counter(w.lower().strip(".,!?") for w in words).most_common(3)
    print(f"most common: {', '.join(w for w, _ in top)}", flush=True)
    out = os.environ.get("AGENTFM_OUTPUT_DIR")
    if out:
        report = {"words": len(words), "top": top, "model": os.environ.get("AGENTFM_MODEL")}
        Path(out, "report.json").write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
