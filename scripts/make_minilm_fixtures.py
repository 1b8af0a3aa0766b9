"""Reference embeddings for the native MiniLM (all-MiniLM-L6-v2) from sentence-transformers.

Run: scripts/pyvenv.sh minilm-ref torch sentence-transformers numpy -- scripts/make_minilm_fixtures.py
(uses the model fetched by scripts/fetch-models.sh into .cache/models/all-MiniLM-L6-v2).
Writes tests/fixtures/models/minilm.texts.json (texts, token counts, versions) and
minilm.embeddings.npy ([texts, 384] f32, mean-pooled and L2-normalised: what
SentenceTransformer.encode returns for this model).
"""
import json
import pathlib

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / ".cache/models/all-MiniLM-L6-v2"
OUT = ROOT / "tests/fixtures/models"

LONG = (
    "The history of the steam engine spans centuries, from Hero of Alexandria's aeolipile "
    "to Newcomen's atmospheric engine and Watt's separate condenser, which made engines "
    "practical for mills, mines and, later, railways and ships. "
) * 12  # well past 256 word pieces: truncated

TEXTS = [
    "",
    "   ",
    "a",
    "Hello, world!",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A cheetah is running behind its prey.",
    "The new movie is awesome",
    "The cat sits outside",
    "How do I load a PyTorch checkpoint in Rust without executing pickles?",
    "Zero-copy weight loading maps the file and hands out views into it.",
    "Ünïcödé àccents, naïve café, façade, Ærøskøbing",
    "机器学习模型在生产环境中的部署",
    "深度学习 and English mixed 混合 text",
    "Emoji: 🚀🔥😀 rockets and fire",
    "مرحبا بالعالم",
    "Привет, мир! Как дела?",
    "tab\tseparated\tand\nnew\nlines",
    "UPPER CASE AND lower case Are The Same After Lowercasing",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    LONG,
    " ".join(["token"] * 300),
]


def main():
    model = SentenceTransformer(str(MODEL), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    emb = model.encode(TEXTS, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tok = model.tokenizer
    counts = [len(tok(t, truncation=False)["input_ids"]) for t in TEXTS]
    assert max(counts) > 256, counts
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "minilm.embeddings.npy", emb.astype(np.float32))
    (OUT / "minilm.texts.json").write_text(
        json.dumps(
            {
                "model": "sentence-transformers/all-MiniLM-L6-v2",
                "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__,
                "max_seq_length": 256,
                "texts": TEXTS,
                "tokens_untruncated": counts,
            },
            ensure_ascii=False,
            indent=1,
        )
        + "\n"
    )
    print(f"{len(TEXTS)} texts, tokens {counts}, norms {np.linalg.norm(emb, axis=1).round(4)}")


if __name__ == "__main__":
    main()
