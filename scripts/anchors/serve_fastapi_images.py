"""The HTTP image anchor of scripts/load-serve.sh: a FastAPI app on uvicorn (one process,
as FastAPI's docs deploy it) taking a photo's bytes as the request body (`image/jpeg`) and
answering its top 5 classes as JSON. Decoding, preprocessing and the model run on the
thread pool (`run_in_threadpool`) so the event loop keeps reading; Pillow and onnxruntime
release the GIL while they work. See serve_image_common.py for the work per request.

Run: python serve_fastapi_images.py MODEL.onnx PORT
"""
import sys

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from PIL import UnidentifiedImageError

from serve_image_common import Classifier

classifier = Classifier(sys.argv[1])
app = FastAPI()


@app.get("/health")
def health():
    return {"ready": True}


@app.post("/predict")
async def predict(request: Request):
    data = await request.body()
    try:
        classes = await run_in_threadpool(classifier.top5, data)
    except (UnidentifiedImageError, OSError) as e:
        raise HTTPException(status_code=400, detail=f"not an image: {e}")
    return {"classes": classes}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)
