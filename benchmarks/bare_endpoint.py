"""The floor for prediction latency: a bare FastAPI endpoint that only parses the same JSON body.

`uvicorn benchmarks.bare_endpoint:app` serves POST /predict with the service's own request model
(pydantic) and answers a constant: what HTTP + JSON parsing alone cost, with no database, cache or
model. The speed benchmark times it next to the real endpoint.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.predictions.schemas import PredictRequest

app = FastAPI()


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    return {"rows": len(request.inputs)}
