#!/usr/bin/env python3
"""Run the demo: `python3 lab/run.py [callrec lab args]`.

Creates/refreshes .venv, then starts `callrec lab`: embedded PostgreSQL, fresh keys, simulated
FreeSWITCH and Asterisk, the service and its web page, and a stream of calls to watch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bootstrap import ensure_venv


def main() -> None:
    callrec = str(ensure_venv().parent / "callrec")
    os.execv(callrec, [callrec, "lab", *sys.argv[1:]])


if __name__ == "__main__":
    main()
