"""sounds/prompts.txt: a text in French and in English for every prompt callgate can pick,
a French word for every piece of the retry date the French dialplan says, and
scripts/make-prompts refusing a broken texts file before it speaks anything."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from callgate.announce import PROMPTS

REPO = Path(__file__).resolve().parent.parent
TEXTS = REPO / "sounds" / "prompts.txt"
SCRIPT = REPO / "scripts" / "make-prompts"
LANGUAGES = ("fr", "en")
# Said before the day and time a refused call may be retried.
LEAD_IN = "retry"
# Played by `callgate agi` to confirm an agent's in-call key, not picked for a refusal.
CONFIRMATIONS = ("withdrawn",)
# The French retry date, word by word, as [callgate-verdict] plays it: weekday (0 =
# Sunday), day of the month, month (1 = January), hour, and the minute unless it is 0.
FRENCH_DATE = (
    *(f"weekday-{n}" for n in range(7)),
    *(f"day-{n}" for n in range(1, 32)),
    *(f"month-{n}" for n in range(1, 13)),
    *(f"hour-{n}" for n in range(24)),
    *(f"minute-{n}" for n in range(1, 60)),
)
EXTENSIONS = REPO / "asterisk-conf" / "extensions.conf"


def _texts(path: Path = TEXTS) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split(None, 2)
        if not fields or fields[0].startswith("#"):
            continue
        name, lang, text = fields
        assert (name, lang) not in found, f"{name} twice in {lang}"
        found[name, lang] = text
    return found


@pytest.mark.parametrize("name", [*PROMPTS, LEAD_IN, *CONFIRMATIONS])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_prompt_has_a_text_in_each_language(name: str, lang: str) -> None:
    text = _texts().get((name, lang), "")
    assert text.strip(), f"no {lang} text for the prompt {name!r} in {TEXTS}"


def test_the_texts_file_names_no_prompt_callgate_never_picks() -> None:
    assert {name for name, _ in _texts()} == {*PROMPTS, LEAD_IN, *CONFIRMATIONS, *FRENCH_DATE}
    assert {lang for _, lang in _texts()} == set(LANGUAGES)
    # The date's words are French only: other languages use Asterisk's digits/ sounds.
    assert {name for name, lang in _texts() if lang != "fr"} & set(FRENCH_DATE) == set()


@pytest.mark.parametrize("name", FRENCH_DATE)
def test_every_word_of_the_french_date_has_a_text(name: str) -> None:
    assert _texts().get((name, "fr"), "").strip(), f"no fr text for {name!r} in {TEXTS}"


def test_the_french_date_plays_callgates_words_only() -> None:
    """Between the French branch and the English one, [callgate-verdict] says the date
    with callgate/ prompts alone: no digits/ sound, no SayNumber (Asterisk's French
    sounds are Canadian French), every piece one of FRENCH_DATE."""
    text = EXTENSIONS.read_text(encoding="utf-8")
    start = text.index('"fr"]?retry-en)')
    french = "\n".join(
        line for line in text[start : text.index("n(retry-en)", start)].splitlines()
        if not line.lstrip().startswith(";")
    )  # fmt: skip
    assert "digits/" not in french and "Say" not in french
    played = re.findall(r"callgate/([a-z]+)-\$", french)
    assert played == ["weekday", "day", "month", "hour", "minute"]
    assert {name.rsplit("-", 1)[0] for name in FRENCH_DATE} == set(played)


def _make_prompts(tmp_path: Path, texts: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "prompts.txt").write_text(texts, encoding="utf-8")
    (tmp_path / "sounds").mkdir(exist_ok=True)
    return subprocess.run(
        ["sh", str(SCRIPT), "--texts", str(tmp_path / "prompts.txt"),
         "--sounds", str(tmp_path / "sounds")],
        capture_output=True, text=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("texts", "error"),
    [
        ("cap fr Appel refusé.\ncap fr Encore.\n", "prompts.txt:2: a second 'cap' in 'fr'"),
        ("cap fr\n", "prompts.txt:1: expected 'name lang text'"),
        ("Cap fr Appel refusé.\n", "bad prompt name 'Cap'"),
        ("# nothing but a comment\n", "no prompt in"),
    ],
)
def test_make_prompts_refuses_a_broken_texts_file(tmp_path: Path, texts: str, error: str) -> None:
    result = _make_prompts(tmp_path, texts)
    assert result.returncode == 1 and error in result.stderr, result.stderr
    assert list((tmp_path / "sounds").iterdir()) == []


def test_make_prompts_says_what_is_missing_to_speak(tmp_path: Path) -> None:
    # A PATH with what the script needs to read the texts, and no synthesizer.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "cat", "sha256sum", "cut"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    result = subprocess.run(
        [shutil.which("sh") or "/bin/sh", str(SCRIPT), "--texts", str(TEXTS),
         "--sounds", str(sounds)],
        capture_output=True, text=True, env={"PATH": str(tools)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "espeak-ng is missing: apt-get install espeak-ng" in result.stderr
