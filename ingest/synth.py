"""Synthetic Twitch chat with ground truth, for the demo, the tests and the benchmarks.

Many channels with skewed (Zipf) activity chat from an emote-rich vocabulary; on top of that come labelled spam
bursts: copypastas and emote waves posted by many users, single-user floods, and cross-channel bot campaigns,
each with one of the evasions seen in real chat. Same seed, same chat. The labels name every spam message by id.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from twitchcrement.emotes import tag_words
from twitchcrement.records import ChatMessage

EMOTES = (
    "Kappa KEKW LUL OMEGALUL PogChamp Pog PogU monkaS monkaW Pepega PepeLaugh pepeLaugh LULW 4Head "
    "Kreygasm ResidentSleeper BibleThump TriHard WutFace NotLikeThis SeemsGood Jebaited CoolStoryBob "
    "forsenE forsenParty EDM catJAM AYAYA gachiHYPER Clap FeelsBadMan FeelsGoodMan FeelsStrongMan "
    "Sadge widepeepoHappy peepoClap PepeHands COPIUM Aware Clueless Stare NODDERS HUH ICANT"
).split()
# Which of them are Twitch's own (sent in each message's `emotes` tag, with these ids) and which are the
# synthetic world's BTTV, FFZ and 7TV global emotes (plain words in chat; services.emote_providers serves them).
TWITCH_EMOTES = {
    "Kappa": "25",
    "LUL": "425618",
    "PogChamp": "305954156",
    "4Head": "354",
    "Kreygasm": "41",
    "ResidentSleeper": "245",
    "BibleThump": "86",
    "TriHard": "120232",
    "WutFace": "28087",
    "NotLikeThis": "58765",
    "SeemsGood": "64138",
    "Jebaited": "114836",
    "CoolStoryBob": "123171",
    "forsenE": "emotesv2_8c8a0d2e4e1f4b5fa3a4c3f0e9b1d2c7",
    "forsenParty": "emotesv2_1f3b5d7a9c2e4f6a8b0d1c3e5f7a9b2d",
}
PROVIDER_OF = {
    **dict.fromkeys("PepeLaugh Pepega monkaS FeelsBadMan FeelsGoodMan catJAM PepeHands AYAYA".split(), "bttv"),
    **dict.fromkeys("KEKW OMEGALUL LULW monkaW Pog PogU widepeepoHappy peepoClap FeelsStrongMan EDM".split(), "ffz"),
    **dict.fromkeys("gachiHYPER Clap Sadge COPIUM Aware Clueless Stare NODDERS HUH ICANT pepeLaugh".split(), "7tv"),
}


def _made_up_id(provider: str, code: str) -> str:
    """A stable id in the provider's own form (FFZ: a number; BTTV, 7TV: 24 hex digits); not a real emote's."""
    digest = hashlib.sha1(f"{provider}:{code}".encode()).hexdigest()
    return str(int(digest[:8], 16) % 900_000 + 100_000) if provider == "ffz" else digest[:24]


# provider -> {"": the global set}: code -> id, as services.emote_providers serves it
THIRD_PARTY_SETS = {
    provider: {"": {code: _made_up_id(provider, code) for code, p in PROVIDER_OF.items() if p == provider}}
    for provider in ("bttv", "ffz", "7tv")
}
WORDS = (
    "the a is it this that what why how no yes lol bro chat streamer game play run boss fight win lose "
    "again nice good bad insane clean clip it now when time wait what happened did he just miss that "
    "jump for real never ever always go up down left right skill issue gg wp so close next try music "
    "song volume mic camera lag frames ping server patch build item gold level map team enemy"
).split()
PASTAS = (
    "TRUMP'S RED WALL WAS BUILT FROM ITEMS YOU SOLD ME Pepega Clap",
    "I am a mod and I approve this message SeemsGood every mod should see this",
    "Remember to hydrate chat, drink water and stretch your legs FeelsGoodMan",
    "If you are reading this you are breathing manually now monkaS",
    "This stream is sponsored by my lack of sleep ResidentSleeper ResidentSleeper",
    "WHO ASKED LULW NOBODY ASKED LULW WHO ASKED LULW",
    "Streamer please read chat for once in your life PepeHands we love you",
    "docSpin it is what it is docSpin we move docSpin",
    "They don't know this is a speedrun and not a casual playthrough KEKW",
    "Never gonna give you up never gonna let you down never gonna run around",
    "Chat is this real? Chat is this actually real right now HUH",
    "Buy cheap followers and viewers at best prices, visit our site today",
)
EVASIONS = (
    "none",
    "invisible",
    "case",
    "repeat_letters",
    "emotes",
    "word_order",
    "homoglyph",
    "zalgo",
    "spaced",
    "leet",
    "truncated",
    "mixed",
)
INVISIBLE = ("\U000e0000", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
# The spammer's side, from what evasion tools and copypasta sites use (independent of the detector's TR39 table):
# Cyrillic and Greek letters that look Latin, small capitals, and NFKC's fullwidth and mathematical bold forms.
HOMOGLYPHS = {
    "a": "аα",
    "c": "с",
    "e": "е",
    "i": "іι",
    "j": "ј",
    "o": "оο",
    "p": "рρ",
    "s": "ѕ",
    "x": "х",
    "y": "у",
    "A": "АΑ",
    "B": "ВΒ",
    "C": "С",
    "E": "ЕΕ",
    "H": "НΗ",
    "I": "І",
    "K": "КΚ",
    "M": "МΜ",
    "N": "Ν",
    "O": "ОΟ",
    "P": "РΡ",
    "T": "ТΤ",
    "X": "ХΧ",
    "Y": "Υ",
    "Z": "Ζ",
}
SMALL_CAPITALS = dict(zip("abcdefghijklmnoprstuvwyz", "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ", strict=True))
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
ZALGO_MARKS = [chr(c) for c in range(0x0300, 0x0370)]
SEPARATORS = (" ", ".", "_", "-", "*")


@dataclass
class SynthSettings:
    rate: float = 1_000.0  # messages per second, all channels together
    seconds: float = 60.0
    channels: int = 40
    spam_share: float = 0.2  # about this share of all messages belongs to labelled bursts
    seed: int = 7
    start_ms: int = 1_735_689_600_000  # 2025-01-01T00:00:00Z, unless the caller restamps to now
    prefix: str = "synth"  # channel names are PREFIX_00, PREFIX_01, ...


@dataclass
class Burst:
    burst_id: str
    kind: str  # copypasta | emote_wave | flood | campaign
    evasion: str
    channels: list[str]
    base_text: str
    start_ts: int
    end_ts: int
    message_ids: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=set)

    def label(self) -> dict[str, object]:
        record = asdict(self)
        record["users"] = sorted(self.users)
        return record


def emote_mix(emote: str, rng: random.Random) -> str:
    """One chatter's message in a wave of `emote`: it once to three times, with up to two other emotes of their own
    anywhere ("PepeHands", "PepeHands LUL", "TriHard PepeHands PepeHands")."""
    tokens = [emote] * rng.choice((1, 1, 1, 2, 3))
    for _ in range(rng.choice((0, 1, 1, 2))):
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(EMOTES))
    return " ".join(tokens)


def evade(text: str, evasion: str, rng: random.Random) -> str:
    """One variant of a spam text, as people and bots change it to get past duplicate filters."""
    if evasion == "mixed":
        for one in rng.sample(EVASIONS[1:-1], 2):
            text = evade(text, one, rng)
        return text
    tokens = text.split()
    if evasion == "invisible":
        return (
            text + " " + rng.choice(INVISIBLE)
            if rng.random() < 0.7
            else text[: len(text) // 2] + rng.choice(INVISIBLE) + text[len(text) // 2 :]
        )
    if evasion == "case":
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)
    if evasion == "repeat_letters":
        candidates = [i for i, t in enumerate(tokens) if len(t) > 2]
        if candidates:
            i = rng.choice(candidates)
            j = rng.randrange(len(tokens[i]))
            tokens[i] = tokens[i][:j] + tokens[i][j] * rng.randint(2, 4) + tokens[i][j:]
        return " ".join(tokens)
    if evasion == "emotes":
        if len(tokens) > 3 and rng.random() < 0.5:
            tokens.pop(rng.randrange(len(tokens)))
        else:
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(EMOTES))
        return " ".join(tokens)
    if evasion == "word_order":
        if len(tokens) > 2:
            i = rng.randrange(len(tokens) - 1)
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        return " ".join(tokens)
    if evasion == "homoglyph":
        style = rng.random()
        if style < 0.15:  # the whole text in small capitals, or fullwidth, or mathematical bold
            return "".join(SMALL_CAPITALS.get(c.lower(), c) for c in text)
        if style < 0.25:
            return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
        if style < 0.35:
            return "".join(
                chr(0x1D400 + ord(c) - 65) if "A" <= c <= "Z" else chr(0x1D41A + ord(c) - 97) if "a" <= c <= "z" else c
                for c in text
            )
        return "".join(rng.choice(HOMOGLYPHS[c]) if c in HOMOGLYPHS and rng.random() < 0.5 else c for c in text)
    if evasion == "zalgo":
        return "".join(
            c + "".join(rng.choices(ZALGO_MARKS, k=rng.randint(1, 5))) if c.isalpha() and rng.random() < 0.7 else c
            for c in text
        )
    if evasion == "spaced":
        candidates = [i for i, t in enumerate(tokens) if len(t) >= 3 and t.isalpha()]
        separator = rng.choice(SEPARATORS)
        for i in rng.sample(candidates, min(len(candidates), rng.randint(1, 3))):
            tokens[i] = separator.join(tokens[i])
        return " ".join(tokens)
    if evasion == "leet":  # digits for letters inside words; a word that would be all digits keeps its first letter
        words = ["".join(LEET[c.lower()] if c.lower() in LEET and rng.random() < 0.6 else c for c in t) for t in tokens]
        return " ".join(
            w if any(c.isalpha() for c in w) or not t.isalpha() else t[0] + w[1:]
            for t, w in zip(tokens, words, strict=True)
        )
    if evasion == "truncated":  # a pasta cut short, sometimes at someone; an emote wave has nothing to cut
        if len(tokens) <= 3:
            return text
        kept = tokens[: max(2, round(len(tokens) * rng.uniform(0.55, 0.75)))]
        return ("@" + rng.choice(WORDS) + "_streamer " if rng.random() < 0.3 else "") + " ".join(kept)
    return text


class Generator:
    """Iterate for ChatMessages in time order; `bursts` holds the ground truth once iteration has finished."""

    def __init__(self, settings: SynthSettings, labels_path: str | Path | None = None):
        """With `labels_path`, finished bursts are written there as they end and not kept (flat memory)."""
        self.s = settings
        self.labels_path = Path(labels_path) if labels_path else None
        self.rng = random.Random(settings.seed)
        width = len(str(settings.channels))
        self.channels = [f"{settings.prefix}_{i:0{width}d}" for i in range(settings.channels)]
        # Zipf-like: channel k gets weight 1/(k+1), so a few channels carry most of the chat.
        self.cum_weights = list(itertools.accumulate(1.0 / (k + 1) for k in range(settings.channels)))
        self.bursts: list[Burst] = []
        self.total = int(settings.rate * settings.seconds)  # about: bursts are planned by size, not counted

    def _user(self, channel: str) -> str:
        return f"{channel}_viewer{int(self.rng.paretovariate(1.2)) % 5000}"

    def _chatter(self) -> str:
        rng = self.rng
        count = rng.randint(3, 9)
        return " ".join(rng.choice(EMOTES) if rng.random() < 0.3 else rng.choice(WORDS) for _ in range(count))

    def _plan_bursts(self, window_start: int, budget: int, span_ms: int) -> list[tuple[int, str, str, str, Burst]]:
        """Spam messages (ts, channel, user, text, burst) for about `budget` messages starting in this 10 s block."""
        rng, planned = self.rng, []
        while budget > 0:
            kind = rng.choices(("copypasta", "emote_wave", "flood", "campaign"), (4, 4, 1, 1))[0]
            evasion = rng.choice(EVASIONS)
            start = window_start + rng.randrange(0, max(1, span_ms - 1_000))
            duration = rng.randint(2_000, 8_000)
            if kind == "campaign":
                channels = rng.sample(self.channels, min(len(self.channels), rng.randint(3, 5)))
                base = rng.choice(PASTAS)
            else:
                channels = [rng.choices(self.channels, cum_weights=self.cum_weights)[0]]
                base = (
                    rng.choice(PASTAS)
                    if kind in ("copypasta", "flood")
                    else " ".join([rng.choice(EMOTES)] * rng.randint(1, 4))
                )
            burst = Burst(f"b{self.s.seed}-{len(self.bursts)}", kind, evasion, channels, base, start, start + duration)
            self.bursts.append(burst)
            size = rng.randint(6, 15) if kind == "flood" else rng.randint(8, 40)
            flooder = self._user(channels[0])
            bots = [f"bot{len(self.bursts)}_{k}" for k in range(8)]
            for channel in channels:
                for _ in range(size):
                    ts = start + rng.randrange(duration)
                    user = (
                        flooder if kind == "flood" else rng.choice(bots) if kind == "campaign" else self._user(channel)
                    )
                    text = (
                        emote_mix(base.split()[0], rng)
                        if kind == "emote_wave" and evasion == "emotes"
                        else evade(base, evasion, rng)
                    )
                    planned.append((ts, channel, user, text, burst))
            budget -= size * len(channels)
        return planned

    def _message(self, ts: int, channel: str, user: str, text: str, burst: Burst | None) -> ChatMessage:
        message_id = f"synth-{self.s.seed}-{next(self._emitted)}"
        if burst is not None:
            burst.message_ids.append(message_id)
            burst.users.add(user)
        return ChatMessage(
            channel=channel,
            user_login=user,
            display_name=user,
            text=text,
            sent_ts=ts,
            message_id=message_id,
            emotes=tag_words(text, TWITCH_EMOTES),  # as Twitch sends it; the third-party emotes stay plain words
            received_at=ts,
        )

    def _retire(self, labels: TextIO, before_ts: int | None) -> None:
        """Write the bursts that have ended (all of them when before_ts is None) and forget them."""
        keep = []
        for burst in self.bursts:
            if before_ts is None or burst.end_ts <= before_ts:
                if burst.message_ids:
                    labels.write(json.dumps(burst.label(), ensure_ascii=False) + "\n")
            else:
                keep.append(burst)
        labels.flush()  # readable while the chat goes on (the demo's generator runs for a year)
        self.bursts = keep

    def __iter__(self) -> Iterator[ChatMessage]:
        labels = self.labels_path.open("w", encoding="utf-8") if self.labels_path else None
        try:
            yield from self._generate(labels)
        finally:
            if labels is not None:
                self._retire(labels, None)
                labels.close()

    def _generate(self, labels: TextIO | None) -> Iterator[ChatMessage]:
        s, rng = self.s, self.rng
        self.bursts = []
        self._emitted = itertools.count()
        block_ms, total_ms = 10_000, int(s.seconds * 1000)
        pending: list[tuple[int, int, tuple]] = []  # spam planned ahead (bursts may run into the next block)
        sequence = itertools.count()
        for block_offset in range(0, total_ms, block_ms):
            block_start = s.start_ms + block_offset
            if labels is not None:
                self._retire(labels, block_start)
            duration = min(block_ms, total_ms - block_offset)
            in_block = max(1, int(s.rate * duration / 1000.0))
            n_spam = int(in_block * s.spam_share)
            for planned in self._plan_bursts(block_start, n_spam, duration) if n_spam >= 6 else ():
                heapq.heappush(pending, (planned[0], next(sequence), planned))
            normal = max(in_block - n_spam, 1)
            step = duration / normal
            for i in range(normal):
                ts = int(block_start + i * step)
                while pending and pending[0][0] <= ts:
                    yield self._message(*heapq.heappop(pending)[2])
                channel = rng.choices(self.channels, cum_weights=self.cum_weights)[0]
                yield self._message(ts, channel, self._user(channel), self._chatter(), None)
        while pending:
            yield self._message(*heapq.heappop(pending)[2])


def write_jsonl(messages: Iterator[ChatMessage], path: str | Path) -> int:
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for message in messages:
            out.write(json.dumps(message.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count
