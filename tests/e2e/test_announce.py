"""What the agent hears on a refused call: the reason's prompt and when to call again, in
early media (never answered), then the 603; nothing at all with CALLGATE_ANNOUNCE=no.

The agent's RTP goes to a port the test listens on; the audio is matched against the
prompt file that scripts/make-prompts spoke into the Asterisk root."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import time
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.sipp import CallResult, RtpListener, place_call, ulaw_decode
from tests.e2e.conftest import AGENT, AGENT_PASSWORD, REJECTED, REJECTED_REASON, Pbx, Site

CALLEE = "0612345678"
NPV = "+33948000001"
RATE = 8000
FRAME = 160  # one 20 ms RTP packet
SOUNDS = "/usr/share/asterisk/sounds"
# Four calls in the 30 days before Monday 23 November 2026 (the gate's clock): the fifth
# is over the cap, until the first of them leaves the window.
EARLIER_CALLS = ("2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19")
# When the cap lifts: Wednesday 16 December 2026, from 10:00 in Paris, as each language says
# it ("... le mercredi 16 décembre à 10 heures", "... Wednesday December 16th at 10 a.m."):
# in French with callgate's own words, in English with Asterisk's sounds.
DATES = {
    "fr": ["callgate/weekday-3", "callgate/day-16", "callgate/month-12", "callgate/hour-10"],
    "en": ["digits/day-3", "digits/mon-11", "digits/h-16", "digits/at", "digits/10", "digits/a-m"],
}


def _sound(pbx: Pbx, name: str, lang: str = "fr") -> list[int]:
    """The samples of a sound file as Asterisk finds it (callgate/cap, digits/day-3...):
    in the channel's language, else in English, as Asterisk falls back (beep, beeperr)."""
    path = next(
        (
            f"{SOUNDS}/{folder}/{name}.{ext}"
            for folder in dict.fromkeys((lang, "en"))
            for ext in ("wav", "gsm")
            if _run(pbx, "test", "-e", f"{SOUNDS}/{folder}/{name}.{ext}").returncode == 0
        ),
        None,
    )
    assert path, f"no {SOUNDS}/{lang}/{name}.wav or .gsm: were the prompts made?"
    # sox reads the GSM of Asterisk's own sounds; the prompts are WAV already.
    data = _run(pbx, "sox", path, "-t", "wav", "-e", "signed-integer", "-b", "16", "-").stdout
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        frames = wav.readframes(wav.getnframes())
    return [
        int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)
    ]


def _run(pbx: Pbx, *command: str) -> subprocess.CompletedProcess[bytes]:
    # Debian's sounds/<lang> are absolute symlinks that only resolve inside the root.
    root = pbx.asterisk.root
    return subprocess.run([*(("chroot", str(root)) if root else ()), *command], capture_output=True)


def _keep(samples: Sequence[int], path: Path) -> None:
    """What the agent heard, as a WAV file beside the test's logs, to listen to."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))


def _envelope(samples: Sequence[int]) -> list[float]:
    return [
        math.sqrt(sum(s * s for s in samples[i : i + FRAME]) / FRAME)
        for i in range(0, len(samples) - FRAME + 1, FRAME)
    ]


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    var = sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b)
    return cov / math.sqrt(var) if var else 0.0


def _similarity(heard: Sequence[int], prompt: Sequence[int], at: int) -> float:
    """Cosine similarity of ``prompt`` and the samples of ``heard`` from ``at`` (0 if short)."""
    window = heard[at : at + len(prompt)]
    if at < 0 or len(window) < len(prompt):
        return 0.0
    energy = sum(x * x for x in window) * sum(y * y for y in prompt)
    products = sum(x * y for x, y in zip(window, prompt, strict=True))
    return products / math.sqrt(energy) if energy else 0.0


def _find(heard: Sequence[int], prompt: Sequence[int]) -> tuple[int, float]:
    """Where ``prompt`` sits in ``heard`` and how alike the samples are there (1 = equal).

    The energy envelopes place it to a frame. Speech decorrelates within a few samples, and
    a prompt need not start on a packet boundary (Asterisk packs one file's last partial
    frame with the next file's start): the loudest quarter second of the prompt then pins
    the exact sample, and the whole prompt is compared there, but for its last packet's
    worth: that end of silence may be cut by the next file or the hang-up.
    """
    prompt = prompt[: len(prompt) - FRAME]
    wanted, got = _envelope(prompt), _envelope(heard)
    if len(got) < len(wanted):
        return 0, 0.0
    frame = max(
        range(len(got) - len(wanted) + 1),
        key=lambda k: _pearson(got[k : k + len(wanted)], wanted),
    )
    span = min(len(wanted), RATE // 4 // FRAME)
    loudest = FRAME * max(range(len(wanted) - span + 1), key=lambda k: sum(wanted[k : k + span]))
    piece = prompt[loudest : loudest + span * FRAME]
    best = max(
        range(frame * FRAME - FRAME, frame * FRAME + FRAME + 1),
        key=lambda at: _similarity(heard, piece, at + loudest),
    )
    return best, _similarity(heard, prompt, best)


def _follow(
    heard: Sequence[int], names: Sequence[str], sounds: Sequence[Sequence[int]]
) -> list[str]:
    """The ``names`` heard one after the other from the start, until one is not."""
    found: list[str] = []
    position = 0
    for name, sound in zip(names, sounds, strict=True):
        lead, alike = _find(heard[position:], sound)
        if alike < 0.9 or lead > 2 * FRAME:
            break
        found.append(name)
        position += lead + len(sound) - FRAME
    return found


@contextmanager
def _global(pbx: Pbx, name: str, value: str, restore: str) -> Iterator[None]:
    pbx.asterisk.rx(f"dialplan set global {name} {value}")
    try:
        yield
    finally:
        pbx.asterisk.rx(f"dialplan set global {name} {restore}")


def _call(pbx: Pbx, listener: RtpListener) -> tuple[CallResult, float]:
    started = time.monotonic()
    result = place_call(
        pbx_port=pbx.asterisk.ports.sip, agent=AGENT, password=AGENT_PASSWORD, caller=NPV,
        number=CALLEE, workdir=pbx.workdir, scenario="agent_early_media.xml",
        keys={"rtp_port": str(listener.port)},
    )  # fmt: skip
    return result, time.monotonic() - started


def _statuses(result: CallResult) -> list[int]:
    """The statuses of the answers to the agent's INVITEs, in order."""
    found = []
    for message in result.messages:
        status = re.match(r"SIP/2\.0 (\d{3})", message)
        if status and re.search(r"(?mi)^CSeq:\s*\d+ INVITE", message):
            found.append(int(status.group(1)))
    return found


def _over_the_cap(site: Site) -> None:
    site.consent(CALLEE)
    for day in EARLIER_CALLS:
        site.cli("check", "--from", NPV, "--to", CALLEE, "--at", f"{day}T11:00", "--record")


def _missing_sounds(pbx: Pbx) -> list[str]:
    log = pbx.asterisk.outside / "log" / "messages.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if "does not exist" in line]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_a_capped_call_plays_the_cap_prompt_and_the_retry_day_unanswered(
    pbx_announce, site_announce, lang
):
    _over_the_cap(site_announce)
    site_announce.gate().start()
    cap = _sound(pbx_announce, "callgate/cap", lang)
    retry = _sound(pbx_announce, "callgate/retry", lang)
    with _global(pbx_announce, "CALLGATE_LANGUAGE", lang, restore="fr"), RtpListener() as ear:
        result, elapsed = _call(pbx_announce, ear)
    decision = site_announce.decisions()[-1]  # the CLI's checks come first
    assert [r["code"] for r in json.loads(decision[1]) if r["blocking"]] == ["CAP_30_DAYS"]
    assert (result.final, result.reason) == (REJECTED, REJECTED_REASON)
    # Early media, then the refusal: never a 200 OK, so the call was never answered.
    statuses = _statuses(result)
    assert 183 in statuses and 200 not in statuses, statuses
    assert pbx_announce.carrier.invites() == []

    heard = ulaw_decode(ear.audio())
    _keep(heard, site_announce.workdir / f"heard-{lang}.wav")
    at, alike = _find(heard, cap)
    # The same samples but for G.711's rounding: the cap prompt, whole, not silence.
    assert alike > 0.95, f"the cap prompt is not what the agent heard (similarity {alike:.2f})"
    assert at / RATE < 1.0  # after the beep only
    # Asterisk may run the next file into the last partial packet of the previous one.
    rest = at + len(cap) - FRAME
    lead, lead_alike = _find(heard[rest:], retry)
    assert lead_alike > 0.95 and lead <= 2 * FRAME, (lead, lead_alike)
    # Then the day and time in Asterisk's own sounds, as SayUnixTime would say them.
    at_date = rest + lead + len(retry) - FRAME
    names = DATES[lang]
    spoken = _follow(heard[at_date:], names, [_sound(pbx_announce, n, lang) for n in names])
    date = len(heard) - at_date
    assert spoken == names, f"heard only {spoken} of {names}"
    assert elapsed >= len(heard) / RATE
    assert _missing_sounds(pbx_announce) == []
    print(
        f"\n{lang}: cap.wav {len(cap) / RATE:.3f} s, found at {at / RATE:.3f} s with similarity"
        f" {alike:.3f}; retry.wav {len(retry) / RATE:.3f} s ({lead_alike:.3f}); date"
        f" {date / RATE:.3f} s; heard {len(heard) / RATE:.3f} s; 603 after {elapsed:.3f} s"
    )


def test_no_announcement_refuses_at_once_in_silence(pbx_announce, site_announce):
    _over_the_cap(site_announce)
    site_announce.gate().start()
    with _global(pbx_announce, "CALLGATE_ANNOUNCE", "no", restore="yes"), RtpListener() as ear:
        result, elapsed = _call(pbx_announce, ear)
    assert [r["code"] for r in json.loads(site_announce.decisions()[-1][1]) if r["blocking"]] == [
        "CAP_30_DAYS"
    ]
    assert (result.final, result.reason) == (REJECTED, REJECTED_REASON)
    statuses = _statuses(result)
    assert 183 not in statuses and 200 not in statuses, statuses
    assert ear.packets == []
    assert elapsed < 1.5, f"the 603 took {elapsed:.2f} s"
    print(f"\nno announcement: 603 after {elapsed:.3f} s")


def test_the_gate_down_prompt_in_english(pbx_announce):
    """No gate: Stasis fails, nothing to retry; the prompt follows CALLGATE_LANGUAGE."""
    unavailable = _sound(pbx_announce, "callgate/unavailable", "en")
    with _global(pbx_announce, "CALLGATE_LANGUAGE", "en", restore="fr"), RtpListener() as ear:
        result, _ = _call(pbx_announce, ear)
    assert result.final == REJECTED and 200 not in _statuses(result)
    heard = ulaw_decode(ear.audio())
    _keep(heard, pbx_announce.workdir / "heard-unavailable.wav")
    at, alike = _find(heard, unavailable)
    assert alike > 0.95, f"similarity {alike:.2f}"
    # Nothing after it: no retry time when the gate is down.
    assert (len(heard) - at - len(unavailable)) / RATE < 0.3
    assert _missing_sounds(pbx_announce) == []


def test_no_stock_french_sound_can_play(pbx_announce):
    """Debian's French sounds are Canadian French (asterisk-core-sounds-fr, a Québec
    voice: "Votre appel ne peut être complété tel que composé"). None is installed: a
    French channel finds callgate's own prompts, else Asterisk's English sounds."""
    listed = _run(pbx_announce, "ls", "-A", f"{SOUNDS}/fr").stdout.decode().split()
    assert listed == ["callgate"]
    query = ["dpkg-query", "-W", "-f=${Package} ${Status}\\n", "asterisk-core-sounds-fr*"]
    installed = [
        line for line in _run(pbx_announce, *query).stdout.decode().splitlines()
        if line.endswith(" installed")
    ]  # fmt: skip
    assert installed == []
    assert _run(pbx_announce, "test", "-e", f"{SOUNDS}/fr/cannot-complete-as-dialed.gsm").returncode
