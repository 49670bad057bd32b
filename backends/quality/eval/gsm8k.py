"""GSM8K by generation, as lm-evaluation-harness scores it.

The prompt is the package's: eight worked examples (``Question: … Answer: … So the answer is N.``)
then the question and ``Answer:``; greedy decoding until one of the stop sequences (``Question:``,
``</s>``, ``<|im_end|>``, a blank line) or 512 tokens, the text cut at the first stop as lm-eval's
``generate_until`` cuts it. Two answers are read from it:

- ``strict``: the number after ``#### `` (lm-eval ``gsm8k``'s strict-match) or after ``the answer
  is `` (``gsm8k-cot``'s, the form these examples teach), the first one found;
- ``flexible``: the last number in the text (lm-eval's flexible-extract).

Each is compared with the gold answer by exact match after lm-eval's ``regexes_to_ignore``
(commas, ``$``, everything up to ``#### ``, a final full stop).
"""

from __future__ import annotations

import re

STRICT = re.compile(r"(?:#### |[Tt]he answer is )(\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")
INVALID = "[invalid]"


def cut(text: str, stops: list[str]) -> str:
    """The text up to the first of each stop sequence (lm-eval's ``until``)."""
    for s in stops:
        if s:
            text = text.split(s)[0]
    return text


def stopped(text: str, stops: list[str]) -> bool:
    return any(s and s in text for s in stops)


def _pick(regex: re.Pattern, text: str, which: int) -> str:
    found = regex.findall(text)
    if not found:
        return INVALID
    m = found[which]
    if isinstance(m, tuple):
        m = next((g for g in m if g), "")
    return m.strip()


def strict(text: str) -> str:
    return _pick(STRICT, text, 0)


def flexible(text: str) -> str:
    return _pick(FLEXIBLE, text, -1)


def normalize(answer: str) -> str:
    for pattern in IGNORE:
        answer = re.sub(pattern, "", answer)
    return answer.strip().lower()


def judge(text: str, gold: str) -> dict:
    """``{"strict", "flexible"}`` answers and whether each matches ``gold``."""
    s, f = strict(text), flexible(text)
    g = normalize(gold)
    return {"strict": s, "flexible": f, "strict_ok": normalize(s) == g, "flexible_ok": normalize(f) == g}
