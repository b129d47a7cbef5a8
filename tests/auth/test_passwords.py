"""Password hashing gives its memory back: argon2's 19 MiB buffers do not stay in the worker."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: the test process's own allocations would blur the figure.
MEASURE = """
import asyncio, psutil
from service.auth.passwords import Passwords

async def main() -> None:
    passwords = Passwords()
    known = await passwords.hash("a password")
    before = psutil.Process().memory_info().rss
    await asyncio.gather(*(passwords.verify(known, "a password") for _ in range(40)))
    print(psutil.Process().memory_info().rss - before)

asyncio.run(main())
"""


def test_forty_logins_leave_no_memory_behind() -> None:
    grown = int(
        subprocess.run(
            [sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True
        ).stdout
    )
    # without the fixed mmap threshold: ~40 MB (two hashing threads' arenas keep 19 MiB each)
    assert grown < 8 * 1024 * 1024, f"RSS grew {grown / 1e6:.1f} MB"
