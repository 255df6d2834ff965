"""Normalisation against the keyboard tricks spammers use, and for chat in other scripts, which must keep its
meaning. The disguised texts are written out here character by character (their code points named), not made by
the generator or the normaliser."""

from __future__ import annotations

import unicodedata

import pytest

from twitchcrement.textsim import normalise

EVASIONS = {
    "homoglyph": [
        ("\u0420epega", "Pepega"),  # CYRILLIC CAPITAL LETTER ER
        ("R\u0435m\u0435mb\u0435r t\u043e hydr\u0430t\u0435", "Remember to hydrate"),  # Cyrillic ie, o, a
        ("\u039a\u0430\u03c1\u03c1\u03b1", "Kappa"),  # Greek Kappa, Cyrillic a, Greek rho rho alpha: mixed scripts
        ("\u0397\u0395\u03a5 there", "HEY there"),  # Greek capitals Eta, Epsilon, Upsilon in Latin chat
        ("\u1d1b\u0280\u1d1c\u1d0d\u1d18", "TRUMP"),  # small capitals
        ("\uff34\uff32\uff35\uff2d\uff30", "TRUMP"),  # fullwidth
        ("\U0001d413\U0001d411\U0001d414\U0001d40c\U0001d40f", "TRUMP"),  # mathematical bold
        ("\u0406NSANE", "INSANE"),  # Cyrillic capital I (TR39 folds I with l)
    ],
    "zalgo": [
        ("z\u0337\u0322a\u0336l\u0334g\u0338o\u0335 text", "zalgo text"),
        ("P\u020d\u0354\u0311g\u1e76", "PogU"),  # marks on precomposed letters too
        ("\u041f\u0440\u0337\u0438\u0337\u0432\u0337\u0435\u0337\u0442\u0337", "\u041f\u0440\u0438\u0432\u0435\u0442"),
    ],
    "spaced": [
        ("f o r s e n", "forsen"),
        ("f.o.r.s.e.n", "forsen"),
        ("f_o_r_s_e_n", "forsen"),
        ("K*E*K*W", "KEKW"),
        ("K...E.K.W", "KEKW"),
        ("Remember to h-y-d-r-a-t-e chat", "Remember to hydrate chat"),
    ],
    "leet": [
        ("P0GGERS", "POGGERS"),
        ("3Z", "EZ"),
        ("R3memb3r 7o hydr4t3", "Remember to hydrate"),
        ("0M3G4LUL", "OMEGALUL"),
    ],
}


@pytest.mark.parametrize("kind,disguised,plain", [(k, d, p) for k, pairs in EVASIONS.items() for d, p in pairs])
def test_each_evasion_normalises_to_the_plain_text(kind, disguised, plain):
    assert disguised != plain and disguised.lower() != plain.lower()  # before: not the same text
    assert normalise(disguised) == normalise(plain), (kind, [unicodedata.name(c, hex(ord(c))) for c in disguised])


# Ordinary chat of a Russian, a Greek, a Japanese, a Vietnamese and a Hindi channel, with the emotes they use.
OTHER_SCRIPTS = [
    "привет как дела",
    "всем привет",
    "это было очень круто",
    "стример топ",
    "KEKW привет",
    "сосед опять шумит",
    "рак",
    "сор",
    "ор",
    "кот",
    "тема",
    "мама",
    "Ελληνικά",
    "καλησπέρα σε όλους",
    "ΑΕΚ",
    "こんにちは",
    "草",
    "すごい",
    "ナイス",
    "Tiếng Việt có dấu",
    "chào mọi người",
    "हिन्दी में बात",
    "बहुत बढ़िया",
    "ภาษาไทย ที่นี่",
    "Ёжик в тумане",
    "йогурт",
]


def test_chat_in_other_scripts_keeps_its_letters_and_no_two_messages_collide():
    normalised = [normalise(text) for text in OTHER_SCRIPTS]
    assert len(set(normalised)) == len(OTHER_SCRIPTS)  # no false spam from folding different messages together
    for text, norm in zip(OTHER_SCRIPTS, normalised, strict=True):
        native = [c for c in unicodedata.normalize("NFC", text.casefold()) if c.isalpha() and not c.isascii()]
        kept = [c for c in norm if c.isalpha() and not c.isascii()]
        assert len(kept) >= len(set(native)) * 0.5, (text, norm)  # squeezing repeats aside, its script stays
        assert not any(c.isascii() and c.isalpha() for c in norm) or any(c.isascii() and c.isalpha() for c in text)


def test_accents_and_vowel_signs_are_kept():
    assert normalise("café") != normalise("cafe")
    assert normalise("Tiếng Việt") == "tiếng việt"
    assert normalise("हिन्दी") == unicodedata.normalize("NFKC", "हिन्दी")


def test_numbers_stay_numbers():
    assert normalise("1000 subs") == normalise("1000 subs") and "1" in normalise("1000 subs")
    assert normalise("2024") == "2024"
