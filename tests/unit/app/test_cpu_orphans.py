"""A CPU pool whose owner dies without shutting it down does not leave its workers behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
OWNER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from app.cpu import POOL

    async def main():
        print(await POOL.run(os.getpid), flush=True)

    if __name__ == "__main__":
        asyncio.run(main())
        os.kill(os.getpid(), signal.SIGKILL)  # no shutdown, no atexit
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_workers_exit_when_their_owner_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    out = tmp_path / "out.txt"
    with out.open("w") as sink:  # a file, not a pipe: the orphans would hold a pipe open
        subprocess.run(
            [sys.executable, str(script), str(REPO)], stdout=sink, stderr=subprocess.DEVNULL, timeout=60, check=False
        )
    worker = int(out.read_text().strip().splitlines()[0])
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)
