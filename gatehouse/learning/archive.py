"""Reading the files of a course package from a folder or a .zip of one, refusing what could reach outside it.

Every problem is appended to `errors` as `FILE:0: message` (it concerns a whole file); nothing is read from a zip
with a path outside the package, a symbolic link, too many files or too many bytes.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from pathlib import Path

MAX_TOTAL_BYTES = 512 * 1024 * 1024
"""A package that holds more than this is refused before anything is read (a zip bomb, or the wrong file)."""
MAX_MEMBERS = 10_000


def read_files(path: Path, errors: list[str]) -> dict[str, bytes]:
    """The package's files by their path inside it (forward slashes)."""
    return _read_folder(path, errors) if path.is_dir() else _read_zip(path, errors)


def _read_folder(folder: Path, errors: list[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for root, dirs, names in os.walk(folder):
        for name in sorted(dirs + names):
            full = Path(root) / name
            rel = full.relative_to(folder).as_posix()
            if full.is_symlink():
                errors.append(f"{rel}:0: a symbolic link; put the file itself in the package")
                if name in dirs:
                    dirs.remove(name)
            elif full.is_file():
                total += full.stat().st_size
                if len(files) >= MAX_MEMBERS or total > MAX_TOTAL_BYTES:
                    errors.append(f"{folder.name}:0: more than {MAX_MEMBERS} files or {MAX_TOTAL_BYTES} bytes; "
                                  "a package is at most that")
                    return {}
                files[rel] = full.read_bytes()
    return files


def _read_zip(path: Path, errors: list[str]) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        errors.append(f"{path.name}:0: not a zip file ({exc})")
        return {}
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            errors.append(f"{path.name}:0: {len(members)} files; a package holds at most {MAX_MEMBERS}")
            return {}
        total = sum(m.file_size for m in members)
        if total > MAX_TOTAL_BYTES:
            errors.append(f"{path.name}:0: unpacks to {total} bytes; a package is at most {MAX_TOTAL_BYTES}")
            return {}
        bad = False
        for member in members:
            name = member.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                errors.append(f"{name}:0: a path outside the package; zip the course folder's contents only")
                bad = True
            elif stat.S_ISLNK(member.external_attr >> 16):
                errors.append(f"{name}:0: a symbolic link; put the file itself in the package")
                bad = True
        if bad:
            return {}
        files = {m.filename: archive.read(m) for m in members if not m.is_dir()}
    if "course.yaml" not in files:  # a zip of the folder itself rather than of its contents
        tops = {name.split("/", 1)[0] for name in files}
        if len(tops) == 1 and f"{next(iter(tops))}/course.yaml" in files:
            prefix = next(iter(tops)) + "/"
            files = {name.removeprefix(prefix): data for name, data in files.items()}
    return files
