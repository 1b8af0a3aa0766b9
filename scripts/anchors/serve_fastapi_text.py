"""The text anchor of scripts/load-serve.sh: a FastAPI app on uvicorn (one process) serving
all-MiniLM-L6-v2 through sentence-transformers, as its docs show (`model.encode(texts,
normalize_embeddings=True)`), the request body `{"texts": [...]}` validated by a pydantic
model, the embeddings back as JSON. encode runs on the thread pool (torch releases the GIL;
its intra-op threads = the cores).

Run: python serve_fastapi_text.py MODEL_DIR PORT
"""
import sys

import uvicorn
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(sys.argv[1], device="cpu")
app = FastAPI()


class Texts(BaseModel):
    texts: list[str]


@app.get("/health")
def health():
    return {"ready": True}


@app.post("/embed")
async def embed(body: Texts):
    vectors = await run_in_threadpool(model.encode, body.texts, normalize_embeddings=True)
    return {"embeddings": vectors.tolist()}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)
