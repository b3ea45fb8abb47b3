"""Lessons read aloud with the real espeak-ng: the text a listener hears, and the cached WAV files."""

from __future__ import annotations

import shutil
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gatehouse.errors import InvalidInput, NotFound
from gatehouse.learning import speech

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

LESSON = """\
# Your *first* week

Read [the house rules](https://example.org/rules.html) before **Monday**.
See also <https://help.example.org/start> & ask staff.

![A map of the wing](media/map.png)

- Breakfast at `7:30`
- Visits on Sunday!

<p onclick="x()">Raw <b>HTML</b> too</p><script>alert("no")</script>
"""

LESSONS = {
    "en": "# Welcome\n\nThis course teaches you to write a letter to your family.",
    "nl": "# Welkom\n\nIn deze cursus leert u een brief aan uw familie te schrijven.",
    "fr": "# Bienvenue\n\nDans ce cours, vous apprenez à écrire une lettre à votre famille.",
    "de": "# Willkommen\n\nIn diesem Kurs lernen Sie, einen Brief an Ihre Familie zu schreiben.",
}


def duration(path: Path) -> float:
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


def test_spoken_text_keeps_the_words_in_order_without_markup_or_urls() -> None:
    text = speech.spoken_text(LESSON)
    assert text.splitlines() == [
        "Your first week.",
        "Read the house rules before Monday. See also help.example.org & ask staff.",
        "A map of the wing.",
        "Breakfast at 7:30.",
        "Visits on Sunday!",
        "Raw HTML too.",
    ]
    for leftover in ("#", "*", "[", "](", "`", "<", "http", "rules.html", "media/", "alert"):
        assert leftover not in text, leftover


@pytest.mark.parametrize(("markdown_text", "spoken"), [
    ("Plain", "Plain."),
    ("Already a question?", "Already a question?"),
    ("## Steps:\n\n1. One\n2. Two", "Steps:\nOne.\nTwo."),
    ("| Day | Time |\n|---|---|\n| Mon | 9 |", "Day.\nTime.\nMon.\n9."),
    ("> Quoted &amp; kept", "Quoted & kept."),
    ("", ""),
])
def test_spoken_text_makes_each_block_a_sentence(markdown_text: str, spoken: str) -> None:
    assert speech.spoken_text(markdown_text) == spoken


def test_a_language_without_a_voice_is_unavailable(tmp_path: Path) -> None:
    assert speech.available("xx") is False
    with pytest.raises(speech.SpeechUnavailable, match="'xx'"):
        speech.lesson_audio(tmp_path, "xx", LESSONS["en"])
    assert issubclass(speech.SpeechUnavailable, NotFound)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@needs_espeak
def test_every_lesson_language_has_a_voice() -> None:
    assert sorted(speech.VOICES) == ["de", "en", "fr", "nl"]
    assert all(speech.available(language) for language in speech.VOICES)


@needs_espeak
@pytest.mark.parametrize("language", sorted(LESSONS))
def test_lesson_audio_is_a_wav_file_of_the_lesson(tmp_path: Path, language: str) -> None:
    path = speech.lesson_audio(tmp_path / "cache", language, LESSONS[language])
    assert path.parent == tmp_path / "cache" and path.suffix == ".wav"
    assert path.read_bytes()[:4] == b"RIFF" and path.read_bytes()[8:12] == b"WAVE"
    assert duration(path) > 0.5


@needs_espeak
def test_the_same_text_is_made_once_and_other_texts_or_languages_get_their_own_file(tmp_path: Path) -> None:
    first = speech.lesson_audio(tmp_path, "en", LESSONS["en"])
    made = first.stat().st_mtime_ns
    assert speech.lesson_audio(tmp_path, "en", LESSONS["en"]) == first
    assert speech.lesson_audio(tmp_path, "en", LESSONS["en"] + "\n") == first  # the same words
    assert first.stat().st_mtime_ns == made
    other_text = speech.lesson_audio(tmp_path, "en", LESSONS["en"] + "\n\nGood luck.")
    other_voice = speech.lesson_audio(tmp_path, "nl", LESSONS["en"])
    assert len({first, other_text, other_voice}) == 3
    assert sorted(tmp_path.iterdir()) == sorted([first, other_text, other_voice])  # no temporary files left


@needs_espeak
def test_concurrent_callers_all_get_a_complete_file(tmp_path: Path) -> None:
    lesson = "\n\n".join([LESSONS["de"]] * 5)

    def listen(_: int) -> tuple[Path, float]:  # read at once, as the portal would serve it
        path = speech.lesson_audio(tmp_path, "de", lesson)
        return path, duration(path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        heard = list(pool.map(listen, range(16)))
    assert len({path for path, _ in heard}) == 1
    assert len({seconds for _, seconds in heard}) == 1 and heard[0][1] > 10
    assert list(tmp_path.iterdir()) == [heard[0][0]]


@needs_espeak
@pytest.mark.parametrize("markdown_text", ["", "![](media/only-a-picture.png)", "word " * 20_001])
def test_a_lesson_with_no_text_or_too_much_is_refused(tmp_path: Path, markdown_text: str) -> None:
    with pytest.raises(InvalidInput, match="read aloud"):
        speech.lesson_audio(tmp_path, "en", markdown_text)


@needs_espeak
def test_text_that_looks_like_an_option_is_read_not_obeyed(tmp_path: Path) -> None:
    path = speech.lesson_audio(tmp_path, "en", "--help -w /dev/null --voices")
    assert duration(path) > 0.5
