"""Text similarity shared by the detector (inside Spark) and the dashboard's fuzzy search (without Spark).

normalise -> shingles -> HashingTF index -> MinHash signature -> LSH bands. The detector gets its signatures from
Spark ML (HashingTF + MinHashLSH); `MinHasher` here computes the very same values in plain Python: HashingTF's
MurmurHash3 (x86 32-bit, seed 42, on UTF-8) and MinHashLSH's coefficients, which Spark draws from
java.util.Random(seed). A test checks that both agree.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import mmh3

# Characters clients append or insert to get past Twitch's duplicate-message check, and other invisibles.
_INVISIBLE = re.compile(
    "[\U000e0000-\U000e007f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff\u034f"
    "\u00ad\u180e\u061c\u115f\u1160\u3164\uffa0\U0001d173-\U0001d17a]"
)
_REPEATED_CHARS = re.compile(r"(.)\1+")  # "loooool" -> "lol", "Cllllap" -> "clap"
_WHITESPACE = re.compile(r"\s+")
# Letters spelled out one by one: "f o r s e n", "f.o.r.s.e.n", "f_o_r" (three letters at least).
_SPACED_LETTERS = re.compile(r"(?<!\S)(?:[^\W_] ){2,}[^\W_](?!\S)")
_JOINED_LETTERS = re.compile(r"(?<!\S)[^\W_](?:[._*~+|/\\-]+[^\W_]){2,}(?!\S)")
_LETTER_SEPARATORS = re.compile(r"[ ._*~+|/\\-]+")
# Leetspeak digits inside a word that has letters ("p0ggers", "3z"); numbers alone stay numbers.
_LEET_WORD = re.compile(r"(?<!\S)(?=[^\s]*[a-z])[^\s]*[013457][^\s]*")
_LEET = str.maketrans("013457", "oieast")
_MARK_PILE = 3  # this many combining marks on one letter is zalgo, not a script's vowel signs and tones

HASH_PRIME = 2038074743  # MinHashLSH.HASH_PRIME in Spark ML
HASHING_TF_SEED = 42  # HashingTF's murmur3 seed in Spark ML


def normalise(text: str) -> str:
    """The text as the detector compares it. NFKC (fullwidth and mathematical letters become plain ones),
    invisible characters removed, zalgo's piled-up combining marks stripped, case folded, letters that look like
    Latin ones folded to them in Latin chat (Unicode TR39 confusables), spelled-out letters joined, leetspeak digits
    in words read as letters, repeated letters squeezed, repeated tokens dropped (each token kept once, in order),
    whitespace collapsed. `KEKW KEKW KEKW` and `kekw` become the same text, and so do `forsenParty EDM forsenParty
    EDM` and `forsenParty EDM` (a pasta repeated a different number of times), `Рepega` (Cyrillic Р) and `pepega`,
    `P0GGERS` and `poggers`, `f o r s e n` and `forsen`. Chat in other scripts (a Russian or Japanese channel)
    keeps its letters."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    if text.isascii():
        text = text.lower()
    else:
        text = _fold_lookalikes(_strip_piled_marks(text)).casefold()
    text = _SPACED_LETTERS.sub(_joined, text)
    text = _JOINED_LETTERS.sub(_joined, text)
    text = _LEET_WORD.sub(_unleet, text)
    text = _REPEATED_CHARS.sub(r"\1", text)
    return " ".join(dict.fromkeys(t for t in _WHITESPACE.split(text.strip()) if t))


def _joined(found: re.Match[str]) -> str:
    return _LETTER_SEPARATORS.sub("", found.group())


def _unleet(found: re.Match[str]) -> str:
    return found.group().translate(_LEET)


@functools.cache
def _marks() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Any combining mark (Unicode categories Mn and Me, where zalgo's come from), and zalgo's tell: a mark left
    on a Latin letter after NFKC (the accents of languages written in Latin letters compose into one character:
    é, ế, ą), or marks piled up on any letter."""
    ranges, start = [], None
    for code in range(0x300, 0x20000):
        is_mark = unicodedata.category(chr(code)) in ("Mn", "Me")
        if is_mark and start is None:
            start = code
        elif not is_mark and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}")
            start = None
    marks = "[" + "".join(ranges) + "]"
    return re.compile(marks), re.compile(
        f"[a-zA-Z\\u00c0-\\u024f\\u1e00-\\u1eff\\u0370-\\u03ff\\u0400-\\u04ff]{marks}|{marks}{{{_MARK_PILE},}}"
    )


def _strip_piled_marks(text: str) -> str:
    """Zalgo text ("z̷̢a̶l̴g̸o̵") without its marks: all of them, so that 'zàlgo' and 'zalgo' agree. Text
    without zalgo's tell keeps its accents and its scripts' vowel signs."""
    mark, zalgo = _marks()
    if not zalgo.search(text):
        return text
    return unicodedata.normalize("NFC", mark.sub("", unicodedata.normalize("NFD", text)))


@functools.cache
def _lookalike_tables() -> tuple[dict[int, str], frozenset[str]]:
    """Every letter that Unicode TR39's confusables data (as confusable_homoglyphs ships it) links, directly or
    through other look-alikes, to a Latin letter A-Z or a-z, with that letter (capitals to capitals: Greek "Η" is
    "H" before case folding makes it "η"); and small capitals ("ᴛʀᴜᴍᴘ"), which Unicode's names say are letters."""
    data = json.loads(importlib.resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text())
    links: dict[str, set[str]] = {}
    for char, homoglyphs in data.items():
        for entry in homoglyphs:
            other = entry["c"]
            if len(char) == 1 and len(other) == 1:
                links.setdefault(char, set()).add(other)
                links.setdefault(other, set()).add(char)
    target = {letter: letter for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
    small_capital = "LATIN LETTER SMALL CAPITAL "
    for code in range(0x80, 0x10000):
        name = unicodedata.name(chr(code), "")
        if name.startswith(small_capital) and len(name) == len(small_capital) + 1:
            target[chr(code)] = name[-1].lower()
    frontier = sorted(target)
    for _ in range(3):  # three links reach Cyrillic "т" -> small capital "ᴛ" -> "t"; more start to wander
        reached = []
        for char in frontier:
            for other in sorted(links.get(char, ())):
                if other not in target and not other.isascii() and unicodedata.category(other).startswith("L"):
                    target[other] = target[char]
                    reached.append(other)
        frontier = reached
    # TR39 folds "I" with "l" (they look alike); a capital look-alike of "l" stands for "I", which case folding
    # then makes "i" as it does the Latin one.
    table = {ord(c): "I" if t == "l" and c.isupper() else t for c, t in target.items() if not c.isascii()}
    latin = frozenset(c for c in target if not c.isascii() and unicodedata.name(c, "").startswith("LATIN"))
    return table, latin


def _fold_lookalikes(text: str) -> str:
    """Look-alike letters folded to Latin ones, word by word: in a word that mixes scripts ("Рepega": Cyrillic
    and Latin), in a word of Latin-script look-alikes (small capitals), and in a word made only of look-alikes
    inside a message of mostly Latin letters ("КЕКW КЕКW"); Russian or Greek words keep their own letters."""
    table, latin_lookalikes = _lookalike_tables()
    folded = text.translate(table)
    if folded == text:
        return text
    letters = [c for c in text if c.isalpha()]
    mostly_latin = sum(c.isascii() for c in letters) * 2 >= len(letters)
    out = []
    for word, folded_word in zip(text.split(" "), folded.split(" "), strict=True):
        disguised = (
            len(_scripts(word)) > 1
            or all(c in latin_lookalikes for c in word if ord(c) in table)
            or (mostly_latin and all(ord(c) in table for c in word if c.isalpha()))
        )
        if word != folded_word and disguised:
            word = folded_word
        out.append(word)
    return " ".join(out)


def _scripts(word: str) -> set[str]:
    """The scripts of a word's letters, by the first word of their Unicode names (LATIN, CYRILLIC, GREEK, ...): a
    word written in one language has one; "Κаρρα" (Greek and Cyrillic) is a disguise."""
    return {unicodedata.name(c, "?").split(" ", 1)[0] for c in word if c.isalpha()}


def shingle_set(normalised: str, n: int = 3) -> set[str]:
    """Character n-grams (short chat needs them) and the token set."""
    if not normalised:
        return set()
    padded = f" {normalised} "
    grams = {padded[i : i + n] for i in range(max(1, len(padded) - n + 1))}
    grams.update("w:" + t for t in normalised.split(" "))
    return grams


def shingles(normalised: str, n: int = 3) -> list[str]:
    """shingle_set as a sorted list (a stable order for HashingTF and the tests)."""
    return sorted(shingle_set(normalised, n))


def jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def message_hash(normalised: str) -> str:
    """The key of a spam text in the history tables: 16 hex characters of SHA-1 of the normalised text."""
    return hashlib.sha1(normalised.encode("utf-8")).hexdigest()[:16]


def stable_id(*parts: object) -> str:
    """A deterministic id from parts: the same input always gives the same id (idempotent writes)."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:32]


class _JavaRandom:
    """java.util.Random, enough of it to draw what scala.util.Random(seed).nextInt(bound) draws."""

    def __init__(self, seed: int):
        self.seed = (seed ^ 0x5DEECE66D) & ((1 << 48) - 1)

    def _next(self, bits: int) -> int:
        self.seed = (self.seed * 0x5DEECE66D + 0xB) & ((1 << 48) - 1)
        value = self.seed >> (48 - bits)
        return value - (1 << bits) if value & (1 << (bits - 1)) else value

    def next_int(self, bound: int) -> int:
        if bound & (bound - 1) == 0:
            return (bound * (self._next(31) & 0x7FFFFFFF)) >> 31
        while True:
            bits = self._next(31) & 0x7FFFFFFF
            value = bits % bound
            if bits - value + (bound - 1) < (1 << 31):
                return value


@dataclass(frozen=True)
class MinHasher:
    """Spark ML's HashingTF(numFeatures) + MinHashLSH(numHashTables, seed), computed in Python."""

    num_features: int
    num_hash_tables: int
    seed: int
    rows_per_band: int

    @classmethod
    def from_config(cls, config: Any) -> MinHasher:
        """The detector's hasher (detector.* settings): every reader of the LSH buckets must hash the same way."""
        return cls(
            config.detector.num_features,
            config.detector.num_hash_tables,
            config.detector.seed,
            config.detector.rows_per_band,
        )

    @property
    def coefficients(self) -> list[tuple[int, int]]:
        rand = _JavaRandom(self.seed)
        pairs = []
        for _ in range(self.num_hash_tables):
            a = 1 + rand.next_int(HASH_PRIME - 1)
            b = rand.next_int(HASH_PRIME - 1)
            pairs.append((a, b))
        return pairs

    def feature_indices(self, terms: list[str]) -> list[int]:
        return sorted({mmh3.hash(t.encode("utf-8"), HASHING_TF_SEED, signed=True) % self.num_features for t in terms})

    def signature(self, terms: list[str], coefficients: list[tuple[int, int]] | None = None) -> list[int]:
        indices = self.feature_indices(terms)
        if not indices:
            raise ValueError("a MinHash signature needs at least one shingle")
        coefficients = coefficients or self.coefficients
        return [min(((1 + i) * a + b) % HASH_PRIME for i in indices) for a, b in coefficients]

    def bands(self, signature: list[int]) -> list[int]:
        return band_buckets(signature, self.rows_per_band)


def band_buckets(signature: list[int], rows_per_band: int) -> list[int]:
    """One bucket key per LSH band (the list index is the band): a band ANDs `rows_per_band` MinHash values."""
    out = []
    for band in range(len(signature) // rows_per_band):
        bucket = 0
        for value in signature[band * rows_per_band : (band + 1) * rows_per_band]:
            bucket = (bucket * HASH_PRIME + int(value)) % (1 << 62)
        out.append(bucket)
    return out
