"""A tokenizer-free estimate of prompt size, for budgets decided before a call.

MiniMax's tokenizer is not published as a package; this estimate errs on the high side for the text aiops sends
(labels, numbers and log templates run at about 3 characters per token in BPE vocabularies; CJK at about one
character per token), so a prompt that fits the estimate fits the model. The endpoint's reported `usage` is what
gets recorded and billed.
"""

from __future__ import annotations

import re

_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def estimate(text: str) -> int:
    wide = len(_WIDE.findall(text))
    return wide + (len(text) - wide + 2) // 3
