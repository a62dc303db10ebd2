"""A finalize worker in its own process (so tests can kill -9 it): python -m tests.storage.worker_proc SPEC_JSON.

SPEC_JSON: {"dsn", "tmp", "keys": {...Keys fields}, "storage": {...StorageConfig} | null, "sweep": bool,
"workers": int (finalize.workers; > 1 encrypts on worker processes)}
Prints one JSON line with what it did.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from controller.config import StorageConfig
from controller.metrics import Metrics
from storage import db
from storage.finalize import FinalizeWorker
from storage.sweep import startup_sweep
from tests.storage.conftest import Keys, make_config


async def main(spec: dict) -> None:
    keys = Keys(**{k: (Path(v) if k.endswith(("file", "key")) else v) for k, v in spec["keys"].items()})
    over = {"storage": StorageConfig(**spec["storage"])} if spec.get("storage") else {}
    cfg = make_config(Path(spec["tmp"]), keys, workers=spec.get("workers", 1), **over)
    pool = await db.create_pool(spec["dsn"], min_size=1, max_size=4)
    try:
        worker = FinalizeWorker(pool, cfg, Metrics(), cfg.node_id)
        report = await startup_sweep(pool, cfg, worker) if spec.get("sweep", True) else None
        n = await worker.drain()
        st = await worker.status()
        print(json.dumps({"handled": n, "sweep": report.as_dict() if report else None, "status": st.as_dict()}))
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
