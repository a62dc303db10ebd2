"""A controller process for the restart test: driver + recorder against the simulator, until killed.
Usage: python -m tests.freeswitch.restart_controller <dsn> <port> <password> <pbx> <spool>"""

from __future__ import annotations

import asyncio
import logging
import sys

from controller.drivers.freeswitch import FreeSwitchDriver
from controller.policy import PolicySet
from controller.recorder import Recorder
from storage import db


async def main(dsn: str, port: int, password: str, pbx: str, spool: str) -> None:
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    driver = FreeSwitchDriver(pbx, "127.0.0.1", port, password, record_dir=spool, backoff_initial=0.05)
    recorder = Recorder(pool, [driver], PolicySet(), spool_dir=spool)
    await driver.start()
    await recorder.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="controller-process %(name)s: %(message)s")
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
