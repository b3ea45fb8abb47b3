"""`gatehouse course import / export` and `gatehouse certificate verify / revoke`."""

from __future__ import annotations

import argparse
from typing import Any


def register_course(actions: Any, common: argparse.ArgumentParser, by: argparse.ArgumentParser) -> None:
    pass


def register_certificate(actions: Any, common: argparse.ArgumentParser, by: argparse.ArgumentParser) -> None:
    pass
