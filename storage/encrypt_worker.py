"""A finalize encryption worker process: `python -m storage.encrypt_worker` (started by
storage/encrypt_procs.py, never by hand). Reads (source, part path, recipients) requests from stdin,
encrypts each into its part file with both hashes, answers ("ok", EncryptResult) or ("err", errno,
message) on stdout; exits at end of input (its parent closed the pipe, or died)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

from storage import audio, crypto, streamhash
from storage.encrypt_procs import receive, send


def handle(request: tuple[Path | audio.JoinedWav, Path, tuple[str, ...]] | tuple[str]) -> tuple[object, ...]:
    if len(request) == 1:  # ("ping",): started and imported
        return ("ok", None)
    src, part, recipients = request
    try:
        recs = crypto.parse_recipients(list(recipients))
        if isinstance(src, audio.JoinedWav):
            return ("ok", crypto.encrypt_to_part(src.chunks(), part, recs))
        with open(src, "rb", buffering=0) as f:
            return ("ok", crypto.encrypt_to_part(streamhash.file_chunks(f), part, recs))
    except Exception as e:  # the same text the in-process path would give
        return ("err", getattr(e, "errno", None) or errno.EIO, f"{type(e).__name__}: {e}")


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply pipe
    while (request := receive(stdin)) is not None:
        send(stdout, handle(request))


if __name__ == "__main__":
    main()
