"""`gatehouse course enrol / withdraw`: the sites a course needs open and close with the enrolment, on every node."""

from __future__ import annotations

import argparse
from typing import Any


def register(actions: Any, common: argparse.ArgumentParser, by: argparse.ArgumentParser) -> None:
    pass
