"""One transaction off the event loop, for every domain's screens: `read` for a page's data, `change` for what it
writes (committed when `work` returns, rolled back when it raises)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from gatehouse.kernel import Kernel

T = TypeVar("T")


async def read(kernel: Kernel, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with kernel.factory() as session:
            return work(session)
    return await asyncio.to_thread(run)


async def change(kernel: Kernel, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with kernel.factory.begin() as session:
            return work(session)
    return await asyncio.to_thread(run)
