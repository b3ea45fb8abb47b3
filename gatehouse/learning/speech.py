"""Lessons read aloud: the lesson's text spoken by espeak-ng in its language, as a WAV file cached on disk.

About half of the people inside read poorly, so any lesson can be listened to. The audio is made on the server
(no network, no cloud voice) the first time a text is asked for and kept under the cache folder, named by a
sha256 of voice, speed and text, so it is made once and served again offline.

Adding a voice: Debian's `espeak-ng` package ships voices for en, nl, fr and de (and ~100 more).
`espeak-ng --voices=LANG` lists the ones for a language; put its code from the "Language" column into `VOICES`.
Only voices that plain `espeak-ng --voices` lists work without more packages: the `mb-*` MBROLA voices that
`--voices=LANG` also shows need `mbrola` and a voice package, and without them espeak-ng still exits 0.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from gatehouse.errors import GatehouseError, InvalidInput, NotFound
from gatehouse.learning.lessons import render_lesson

VOICES: dict[str, str] = {"en": "en-gb", "nl": "nl", "fr": "fr-fr", "de": "de"}
SPEED = 150  # words a minute; espeak-ng's 175 is quick for someone following along in the text
MAX_CHARS = 100_000  # about ten hours of speech; a longer lesson is a mistake, not something to read aloud
TIMEOUT = 60.0  # seconds
BLOCKS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "th", "td", "pre", "blockquote", "figcaption", "figure",
          "video", "audio"}
STOPS = (".", "!", "?", ":", ";", "…")


class SpeechUnavailable(NotFound):
    """No voice on this server reads the lesson's language."""


class SpeechFailed(GatehouseError):
    """espeak-ng ran but made no audio."""


class _Listener(HTMLParser):
    """Collects the text of each block of the rendered lesson, as sentences, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sentences: list[str] = []
        self._words: list[str] = []
        self._link: tuple[str, int] | None = None  # href, and where its text starts in _words

    def flush(self) -> None:
        text = " ".join("".join(self._words).split())
        self._words = []
        if text:
            self.sentences.append(text if text.endswith(STOPS) else text + ".")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS:
            self.flush()
        elif tag == "br":
            self._words.append(" ")
        elif tag == "img":
            self._words.append(f" {dict(attrs).get('alt') or ''} ")
        elif tag == "a":
            self._link = (dict(attrs).get("href") or "", len(self._words))

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS:
            self.flush()
        elif tag == "a" and self._link is not None:
            href, start = self._link
            self._link = None
            if href and "".join(self._words[start:]).strip() == href:  # an autolink: say where, not the URL
                self._words[start:] = [urlsplit(href).hostname or ""]

    def handle_data(self, data: str) -> None:
        self._words.append(data)


def spoken_text(markdown_text: str) -> str:
    """What a listener hears: headings, paragraphs, list items and cells in order, each ending as a sentence."""
    listener = _Listener()
    listener.feed(render_lesson(markdown_text, lambda path: path))
    listener.close()
    listener.flush()
    return "\n".join(listener.sentences)


@functools.cache
def _voices() -> frozenset[str]:
    """The languages espeak-ng speaks with its own voices (not MBROLA ones), or none when it is not installed."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return frozenset()
    try:
        listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=TIMEOUT, check=True)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.split()[1] for line in listing.stdout.splitlines()[1:] if len(line.split()) > 1)


@functools.cache
def available(language: str) -> bool:
    """True when this server can read lessons in `language` aloud (probed once per process)."""
    return VOICES.get(language) in _voices()


def lesson_audio(cache_dir: Path, language: str, markdown_text: str) -> Path:
    """The WAV file of the lesson read aloud, made on the first call and served from `cache_dir` after that."""
    voice, binary = VOICES.get(language), shutil.which("espeak-ng")
    if voice is None or binary is None or not available(language):
        raise SpeechUnavailable(f"This lesson cannot be read aloud: the server has no voice for {language!r}. "
                                "Ask staff to install espeak-ng with a voice for the language.")
    text = spoken_text(markdown_text)
    if not text:
        raise InvalidInput("This lesson has no text to read aloud.")
    if len(text) > MAX_CHARS:
        raise InvalidInput(f"This lesson is too long to read aloud ({len(text):,} characters; the most is "
                           f"{MAX_CHARS:,}). Split it into shorter lessons.")
    key = hashlib.sha256(f"{voice}\0{SPEED}\0{text}".encode()).hexdigest()
    target = cache_dir / f"{key}.wav"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.", suffix=".tmp")
    os.close(handle)
    try:
        result = subprocess.run([binary, "-v", voice, "-s", str(SPEED), "-b", "1", "-w", name, "--stdin"],
                                input=text.encode(), capture_output=True, timeout=TIMEOUT)
        if result.returncode != 0 or not _has_audio(Path(name)):  # espeak-ng exits 0 on many errors
            raise SpeechFailed(f"espeak-ng made no audio for voice {voice!r} (exit {result.returncode}): "
                               + (result.stderr.decode(errors="replace").strip() or "no message"))
        os.replace(name, target)
    except subprocess.TimeoutExpired as error:
        raise SpeechFailed(f"espeak-ng took longer than {TIMEOUT:.0f} s to read the lesson") from error
    finally:
        Path(name).unlink(missing_ok=True)
    return target


def _has_audio(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as audio:
            return audio.getnframes() > 0
    except (OSError, EOFError, wave.Error):
        return False
