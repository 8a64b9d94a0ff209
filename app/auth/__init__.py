"""API keys and scopes: who may call what (API.md, Auth).

`keys` creates, lists, revokes and checks keys (the secret is shown once, only its sha256 is
stored); `deps` turns a request's `Authorization: Bearer` header into an allowed scope or a 401/403;
`routes` and `cli` expose key management over HTTP (admin) and as `lifelong keys …`; `scoping` limits a
key to some models (a list of names, a prefix), enforced by `middleware` on every `/v1/models/{name}` path.
"""
