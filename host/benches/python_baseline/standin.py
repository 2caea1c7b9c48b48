"""A stand-in for the Python vCon Server's `POST /vcon`, for comparing throughput on one machine.

The Python server's source cannot be installed offline here, so this reproduces its request path
as ../../../../shared/vcon-server-reference.md (section 3, 3.3, 1.6) describes it: FastAPI, the
pydantic `Vcon` model (required `vcon`, `uuid`, `created_at`; the party `tel` and dialog checks;
defaults filled), then Redis: the document at `vcon:{uuid}` with `VCON_REDIS_EXPIRY` (a plain
SET + EXPIRE: no RedisJSON module here), `ZADD vcons`, the party index sets with their expiry,
and `RPUSH` on each ingress list. It is a lower bound on the real server's cost (no tracing,
no hooks, no context lists). Run: uvicorn standin:app --port PORT (one worker, as the server's
API container does by default).
"""
import os
import re
import uuid as uuidlib
from datetime import datetime
from typing import Any, List, Optional

import redis
from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, field_validator

r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10"))
app = FastAPI(root_path="/api")
TEL = re.compile(r"^[+\d(][\d\s\-().+xX#*]{4,}$")
MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")


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


@app.post("/vcon", status_code=201)
def post_vcon(inbound_vcon: Vcon, ingress_lists: Optional[List[str]] = Query(None)):
    dict_vcon = inbound_vcon.model_dump(mode="json")
    key = f"vcon:{dict_vcon['uuid']}"
    r.set(key, __import__("json").dumps(dict_vcon))
    r.expire(key, 3600)
    r.zadd("vcons", {key: int(inbound_vcon.created_at.timestamp())})
    for party in dict_vcon["parties"]:
        for kind in ("tel", "mailto", "name"):
            value = party.get(kind)
            if value:
                r.sadd(f"{kind}:{value}", dict_vcon["uuid"])
                r.expire(f"{kind}:{value}", 86400)
    for name in ingress_lists or []:
        r.rpush(name, dict_vcon["uuid"])
    return dict_vcon
