"""`gatehouse course ...` and `gatehouse certificate ...`: the learning domain's commands, the portal's rules.

`--by` names the staff account that acts; every change is recorded in the audit log under that name.
"""

from __future__ import annotations

import argparse
from typing import Any

from gatehouse.cli import courses, enrol


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", required=True, metavar="USER", help="the staff account that acts (recorded)")
    course = commands.add_parser("course", parents=[common],
                                 help="courses: import and export packages, enrol and withdraw inmates")
    actions = course.add_subparsers(dest="course_command", metavar="ACTION", required=True)
    courses.register_course(actions, common, by)
    enrol.register(actions, common, by)
    certificate = commands.add_parser("certificate", parents=[common],
                                      help="certificates of completed courses: verify, revoke")
    actions = certificate.add_subparsers(dest="certificate_command", metavar="ACTION", required=True)
    courses.register_certificate(actions, common, by)
