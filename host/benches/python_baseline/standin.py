"""A stand-in for the Python vCon Server's `POST /vcon`, for comparing throughput on one machine.

The Python server's source cannot be installed offline here, so this reproduces its request path
as ../../../../shared/vcon-server-reference.md (sections 1.1, 1.2, 3 and 3.3) describes it:

- the app: FastAPI with `root_path` `/api`, CORS allowing every origin, and a middleware class
  (Starlette's `BaseHTTPMiddleware`) that adds the version headers to every answer;
- the route: an `async` handler on a router guarded by the API-key dependency, one asynchronous
  Redis client made at start-up (`decode_responses=True`);
- the body: the pydantic `Vcon` model (required `vcon`, `uuid`, `created_at`; the party `tel`
  and dialog checks; defaults filled), dumped and answered with `JSONResponse`;
- Redis, one awaited command at a time as there: the document at `vcon:{uuid}` with
  `VCON_REDIS_EXPIRY` (a plain `SET` + `EXPIRE`: the RedisJSON module is not installed here),
  `ZADD vcons`, `SADD` + `EXPIRE` per indexed party value, and `RPUSH` on each ingress list.

It is a lower bound on the real server's cost: no OpenTelemetry, no hooks, no context lists,
no metrics. Run: uvicorn standin:app --port PORT (one worker, as the server's API container does).
"""
import json
import os
import re
import uuid as uuidlib
from datetime import datetime
from typing import Any, List, Optional

import redis.asyncio
from fastapi import APIRouter, FastAPI, HTTPException, Query, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security.api_key import APIKeyHeader
from pydantic import BaseModel, ConfigDict, field_validator
from starlette.middleware.base import BaseHTTPMiddleware

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10")
VCON_REDIS_EXPIRY = 3600
VCON_INDEX_EXPIRY = 86400
API_KEYS = [k for k in [os.environ.get("CONSERVER_API_TOKEN")] if k]
TEL = re.compile(r"^[+\d(][\d\s\-().+xX#*]{4,}$")
MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")

app = FastAPI(root_path="/api")
app.add_middleware(
    CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["*"], allow_headers=["*"]
)


class VersionHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["X-Vcon-Server-Version"] = "standin"
        response.headers["X-Vcon-Server-Commit"] = "0000000"
        return response


app.add_middleware(VersionHeaders)
key_header = APIKeyHeader(name="x-conserver-api-token", auto_error=False)


async def api_key(key: str = Security(key_header)) -> Optional[str]:
    if not API_KEYS:
        return None
    if key not in API_KEYS:
        raise HTTPException(status_code=403, detail="Invalid API Key")
    return key


@app.on_event("startup")
async def connect() -> None:
    global r
    r = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)


class Party(BaseModel):
    model_config = ConfigDict(extra="allow")
    tel: Optional[str] = None

    @field_validator("tel")
    @classmethod
    def check_tel(cls, v):
        if v and not TEL.match(v):
            raise ValueError("bad tel")
        return v


class Dialog(BaseModel):
    model_config = ConfigDict(extra="allow")
    duration: Optional[float] = None
    start: Optional[str] = None
    parties: Optional[Any] = None
    url: Optional[str] = None
    mimetype: Optional[str] = None
    alg: Optional[str] = None

    @field_validator("duration")
    @classmethod
    def check_duration(cls, v):
        if v is not None and v < 0:
            raise ValueError("duration < 0")
        return v

    @field_validator("mimetype")
    @classmethod
    def check_mime(cls, v):
        if v is not None and not MIME.match(v):
            raise ValueError("bad mimetype")
        return v


class Vcon(BaseModel):
    model_config = ConfigDict(extra="allow")
    vcon: str
    uuid: uuidlib.UUID
    created_at: datetime
    subject: Optional[str] = None
    redacted: dict = {}
    appended: Optional[dict] = None
    group: List[Any] = []
    parties: List[Party] = []
    dialog: List[Dialog] = []
    analysis: List[Any] = []
    attachments: List[Any] = []


router = APIRouter()


@router.post("/vcon", status_code=201)
async def post_vcon(inbound_vcon: Vcon, ingress_lists: Optional[List[str]] = Query(None)):
    dict_vcon = inbound_vcon.model_dump(mode="json")
    key = f"vcon:{dict_vcon['uuid']}"
    created_at = datetime.fromisoformat(str(dict_vcon["created_at"]))
    await r.set(key, json.dumps(dict_vcon))
    await r.expire(key, VCON_REDIS_EXPIRY)
    await r.zadd("vcons", {key: int(created_at.timestamp())})
    for party in dict_vcon["parties"]:
        for kind in ("tel", "mailto", "name"):
            value = party.get(kind)
            if value:
                await r.sadd(f"{kind}:{value}", dict_vcon["uuid"])
                await r.expire(f"{kind}:{value}", VCON_INDEX_EXPIRY)
    for name in ingress_lists or []:
        await r.rpush(name, dict_vcon["uuid"])
    return JSONResponse(content=dict_vcon, status_code=201)


app.include_router(router, dependencies=[Security(api_key, scopes=[])])
