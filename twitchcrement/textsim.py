"""Text similarity shared by the detector (inside Spark) and the dashboard's fuzzy search (without Spark).

normalise -> shingles -> HashingTF index -> MinHash signature -> LSH bands. The detector gets its signatures from
Spark ML (HashingTF + MinHashLSH); `MinHasher` here computes the very same values in plain Python: HashingTF's
MurmurHash3 (x86 32-bit, seed 42, on UTF-8) and MinHashLSH's coefficients, which Spark draws from
java.util.Random(seed). A test checks that both agree.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import mmh3

# Characters clients append or insert to get past Twitch's duplicate-message check, and other invisibles.
_INVISIBLE = re.compile("[\U000e0000-\U000e007f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff\u034f"
                        "\u00ad\u180e\u061c\u115f\u1160\u3164\uffa0\U0001d173-\U0001d17a]")
_REPEATED_CHARS = re.compile(r"(.)\1+")  # "loooool" -> "lol", "Cllllap" -> "clap"
_WHITESPACE = re.compile(r"\s+")

HASH_PRIME = 2038074743  # MinHashLSH.HASH_PRIME in Spark ML
HASHING_TF_SEED = 42  # HashingTF's murmur3 seed in Spark ML


def normalise(text: str) -> str:
    """NFKC, invisible characters removed, case folded, repeated letters squeezed, repeated tokens dropped (each
    token kept once, in order), whitespace collapsed. `KEKW KEKW KEKW` and `kekw` become the same text, and so do
    `forsenParty EDM forsenParty EDM` and `forsenParty EDM`: a pasta repeated a different number of times."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text).casefold()
    text = _REPEATED_CHARS.sub(r"\1", text)
    return " ".join(dict.fromkeys(t for t in _WHITESPACE.split(text.strip()) if t))


def shingle_set(normalised: str, n: int = 3) -> set[str]:
    """Character n-grams (short chat needs them) and the token set."""
    if not normalised:
        return set()
    padded = f" {normalised} "
    grams = {padded[i:i + n] for i in range(max(1, len(padded) - n + 1))}
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
    def from_config(cls, config: Any) -> "MinHasher":
        """The detector's hasher (detector.* settings): every reader of the LSH buckets must hash the same way."""
        return cls(config["detector.num_features"], config["detector.num_hash_tables"], config["detector.seed"],
                   config["detector.rows_per_band"])

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
        return sorted({mmh3.hash(t.encode("utf-8"), HASHING_TF_SEED, signed=True) % self.num_features
                       for t in terms})

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
        for value in signature[band * rows_per_band:(band + 1) * rows_per_band]:
            bucket = (bucket * HASH_PRIME + int(value)) % (1 << 62)
        out.append(bucket)
    return out
