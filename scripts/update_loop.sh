#!/usr/bin/env bash
# The update loop end to end, on a running service (`lifelong serve`), with the bundled digits:
# deployment batch -> drift found -> an update kept as candidate (refused for flips) -> shadowed on
# production's traffic -> a safe update promoted -> the webhook events received.
#   scripts/update_loop.sh                       # API=http://127.0.0.1:8000, files under ./loop
# Needs curl and jq. Env: API, OUT (folder), PORT (the receiver's), PY (the venv's python).
# The receiver listens on 127.0.0.1: start the service with LIFELONG_WEBHOOK_ALLOW_PRIVATE=true.
set -euo pipefail
API=${API:-http://127.0.0.1:8000}; OUT=${OUT:-loop}; PORT=${PORT:-9011}; PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-loop}

post() { curl -sf -X "$1" "$API$2" -H 'content-type: application/json' -d "$3"; }
upload() { curl -sf -X POST "$API/v1/datasets" -F "file=@$1" | jq -r .id; }
wait_job() {  # poll a job until it has finished; print it
  while :; do
    job=$(curl -sf "$API/v1/jobs/$1")
    case $(jq -r .state <<<"$job") in succeeded|failed|cancelled) echo "$job"; return;; esac
    sleep 0.5
  done
}
learn() {  # learn task $1 with extra request fields $2 (JSON); print the finished job
  local extra=${2:-'{}'}
  body=$(jq -n --arg t "$1" --arg tr "$(upload "$OUT/$1-train.npz")" --arg ev "$(upload "$OUT/$1-eval.npz")" \
    --argjson extra "$extra" '{task: $t, train: {dataset: $tr}, eval: {dataset: $ev}} + $extra')
  wait_job "$(post POST "/v1/models/$MODEL/tasks" "$body" | jq -r .id)"
}

# 0. Data, a receiver that checks signatures, a model guarded on forgetting and on flips, a hook.
PYTHONPATH=. "$PY" scripts/make_digits.py --out "$OUT" --tasks 3
"$PY" scripts/webhook_receiver.py --port "$PORT" --secret "loop secret" --out "$OUT/events.jsonl" &
RECEIVER=$!; trap 'kill $RECEIVER' EXIT
post POST /v1/models "{\"name\": \"$MODEL\", \"architecture\": {\"kind\": \"mlp\", \"input_shape\": [64],
  \"hidden\": [128, 128]}, \"promotion\": {\"policy\": \"guarded\", \"max_forgetting\": 0.05,
  \"max_negative_flip_rate\": 0.05}}" | jq -c '{name, promotion}'
post POST "/v1/models/$MODEL/webhooks" "{\"url\": \"http://127.0.0.1:$PORT/hook\", \"secret\": \"loop secret\",
  \"events\": [\"drift.detected\", \"alias.moved\"]}" | jq -c '{id, events}'

# 1. Two tasks learned and in production.
learn digits-0-1 | jq -c '{task, promoted: .result.promotion.promoted}'
learn digits-2-3 | jq -c '{task, promoted: .result.promotion.promoted}'

# 2. Deployment sends digits 4 and 5: a drift job finds them unlike both tasks.
JOB=$(post POST "/v1/models/$MODEL/drift" "{\"data\": {\"dataset\": \"$(upload "$OUT/digits-4-5-train.npz")\"}}" | jq -r .id)
wait_job "$JOB" | jq -c '.result | {drift, nearest_task, p: (.tasks | map_values(.p_value))}'

# 3. A careless update (fine-tuning the whole trunk, high learning rate) is kept as candidate: the guard
#    names the earlier task whose right answers it broke.
learn digits-4-5 '{"method": "finetune", "lr": 0.5, "epochs": 10}' \
  | jq -c '.result.promotion | {promoted, alias, violations: [.violations[] | {task, rule, after}]}'

# 4. Shadow it on production's traffic before deciding: agreement, and what it answers differently.
post PUT "/v1/models/$MODEL/shadow" '{"alias": "candidate", "fraction": 1.0}' | jq -c '{alias, version}'
ROWS=$("$PY" -c "import numpy as np, json; print(json.dumps(np.load('$OUT/digits-0-1-eval.npz')['x'].tolist()))")
post POST "/v1/models/$MODEL/predict" "{\"inputs\": $ROWS}" | jq -c '{version, labels: .labels[:5]}' >/dev/null
sleep 2  # the replay runs off the request path and is counted within a second or so
curl -sf "$API/v1/models/$MODEL/shadow" | jq -c '{compared, agreement, disagreements: .disagreements[:3]}'
curl -sf -X DELETE "$API/v1/models/$MODEL/shadow"

# 5. The update MAS protects (the service's defaults): promoted, and production moves.
learn digits-4-5 '{"base_alias": "production"}' | jq -c '.result.promotion | {promoted, alias, reason}'
curl -sf "$API/v1/models/$MODEL/evaluation" | jq -c '.rows[] | {version, task, negative_flips, task_free}'

# 6. What the hook received, signatures checked: the drift, and each move of production and candidate.
sleep 2
jq -c '{event, data: (.data | {alias, from, to, drifted, nearest_task})}' "$OUT/events.jsonl"
