"""The anchor of inferkit-serve's load test: what a Python team deploys first — a FastAPI
app on uvicorn (one process) serving EfficientNet-Lite0 through onnxruntime (default
session options: intra-op threads = the cores), speaking the same Open Inference Protocol
JSON as ours: POST /v2/models/{name}/infer with one FP32 input, the logits back as JSON.
The endpoint reads the raw body with the standard json module (FastAPI's `body: dict` made
pydantic validate the 150k-value list: 16.7 req/s against this version's figure in the
note) and runs onnxruntime (which releases the GIL) on the thread pool.

Run by scripts/load-serve.sh: python serve_fastapi.py MODEL.onnx PORT
"""
import json
import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

model_path, port = sys.argv[1], int(sys.argv[2])
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
output_name = session.get_outputs()[0].name
app = FastAPI()


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    # the raw body through the standard json module (not pydantic's validation of a
    # 150k-element list), the model on the thread pool so the event loop keeps reading
    try:
        body = json.loads(await request.body())
        inp = body["inputs"][0]
        x = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise HTTPException(status_code=400, detail=f"bad input: {e}")
    (y,) = await run_in_threadpool(session.run, [output_name], {input_name: x})
    return {
        "model_name": name,
        "model_version": "1",
        "outputs": [{"name": output_name, "datatype": "FP32", "shape": list(y.shape),
                     "data": y.ravel().tolist()}],
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
