"""Writes tests/fixtures/models/int8_corpus.json: 600 English sentences for the int8 MiniLM
accuracy checks (cosine to the f32 embeddings, nearest neighbours kept; issue 22).

The corpus is the one CPython ships with its standard library: `pydoc_data.topics`, the
text of the Python language reference that `help()` shows (real prose, PSF licence, no
download). Sentences are split on `.`, `!`, `?` followed by space, kept when 40-240
characters long, starting with a capital and free of markup or code characters, first
occurrence only, then 600 taken evenly through the list. Run once with any Python 3; the
file records the Python version (other versions ship slightly different text).
"""

import json
import pathlib
import re
import sys

import pydoc_data.topics as topics

text = " ".join(" ".join(v.split()) for _, v in sorted(topics.topics.items()))
seen, sentences = set(), []
for s in re.split(r"(?<=[.!?])\s+", text):
    s = s.strip()
    if (
        40 <= len(s) <= 240
        and s[0].isupper()
        and not any(c in s for c in "*|=+<>{}[]\\`^~")
        and s not in seen
    ):
        seen.add(s)
        sentences.append(s)
n = 600
assert len(sentences) >= n, len(sentences)
step = len(sentences) / n
picked = [sentences[int(i * step)] for i in range(n)]
out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/models/int8_corpus.json"
out.write_text(
    json.dumps(
        {
            "source": "CPython %s pydoc_data.topics (the language reference help() shows)"
            % sys.version.split()[0],
            "script": "scripts/make_int8_corpus.py",
            "sentences": picked,
        },
        indent=1,
        ensure_ascii=False,
    )
    + "\n"
)
print(f"{out}: {len(picked)} sentences of {len(sentences)}")
