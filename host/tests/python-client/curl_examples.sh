#!/usr/bin/env bash
# A client written for the Python vCon Server: the requests its API reference shows (curl with
# the x-conserver-api-token header against http://HOST:8000/api), run unchanged against
# vcon-host. Each step checks the status and the shape the Python server answers with.
#
# Inputs: CONSERVER_URL (base, with /api), CONSERVER_API_TOKEN, VCON_FILE (a vCon document),
# VCON_UUID (its uuid). Needs curl and python3 (for reading JSON answers, as a script would).
set -euo pipefail

: "${CONSERVER_URL:?}" "${CONSERVER_API_TOKEN:?}" "${VCON_FILE:?}" "${VCON_UUID:?}"
H="x-conserver-api-token: ${CONSERVER_API_TOKEN}"
step() { echo "-- $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
# status URL... : prints the HTTP status of a request, its body into $BODY_FILE
BODY_FILE=$(mktemp)
trap 'rm -f "$BODY_FILE"' EXIT
status() { curl -s -o "$BODY_FILE" -w '%{http_code}' "$@"; }
json() { python3 -c "import json,sys; d=json.load(open('$BODY_FILE')); print($1)"; }

step "health check (no token)"
[ "$(status "$CONSERVER_URL/health")" = 200 ] || fail health
[ "$(json "d['status']")" = healthy ] || fail "health body"

step "create a vCon and queue it for processing"
code=$(status -X POST "$CONSERVER_URL/vcon?ingress_lists=default_ingress" \
    -H "$H" -H "Content-Type: application/json" -d @"$VCON_FILE")
[ "$code" = 201 ] || fail "POST /vcon answered $code: $(cat "$BODY_FILE")"
[ "$(json "d['uuid']")" = "$VCON_UUID" ] || fail "POST /vcon body"

step "get it back"
[ "$(status -H "$H" "$CONSERVER_URL/vcon/$VCON_UUID")" = 200 ] || fail "GET /vcon/{uuid}"
[ "$(json "d['uuid']")" = "$VCON_UUID" ] || fail "GET body"

step "get several at once"
[ "$(status -H "$H" "$CONSERVER_URL/vcons?vcon_uuids=$VCON_UUID&vcon_uuids=00000000-0000-4000-8000-000000000001")" = 200 ] || fail "GET /vcons"
[ "$(json "len(d)") $(json "d[1]")" = "2 None" ] || fail "GET /vcons body"

step "list uuids, newest first"
[ "$(status -H "$H" "$CONSERVER_URL/vcon?page=1&size=10")" = 200 ] || fail "GET /vcon"
json "d.index('$VCON_UUID')" >/dev/null || fail "uuid not listed"

step "wait for the chain, then pop the egress list"
for _ in $(seq 1 100); do
    status -H "$H" "$CONSERVER_URL/vcon/count?egress_list=default_egress" >/dev/null
    [ "$(cat "$BODY_FILE")" = 1 ] && break
    sleep 0.2
done
[ "$(status -H "$H" "$CONSERVER_URL/vcon/egress?egress_list=default_egress&limit=10")" = 200 ] || fail "GET /vcon/egress"
[ "$(json "d")" = "['$VCON_UUID']" ] || fail "egress body: $(cat "$BODY_FILE")"

step "re-queue it by uuid"
code=$(status -X POST "$CONSERVER_URL/vcon/ingress?ingress_list=default_ingress" \
    -H "$H" -H "Content-Type: application/json" -d "[\"$VCON_UUID\"]")
[ "$code" = 204 ] || fail "POST /vcon/ingress answered $code"

step "queue depth"
[ "$(status "$CONSERVER_URL/stats/queue?list_name=default_ingress")" = 200 ] || fail "GET /stats/queue"
json "d['depth']" >/dev/null || fail "depth"

step "dead letters"
[ "$(status -H "$H" "$CONSERVER_URL/dlq?ingress_list=default_ingress")" = 200 ] || fail "GET /dlq"
[ "$(status -X POST -H "$H" "$CONSERVER_URL/dlq/reprocess?ingress_list=default_ingress")" = 200 ] || fail "POST /dlq/reprocess"

step "a wrong token is refused"
[ "$(status -H "x-conserver-api-token: wrong" "$CONSERVER_URL/vcon")" = 403 ] || fail "wrong token"
[ "$(json "d['detail']")" = "Invalid API Key" ] || fail "403 detail"

step "delete it"
[ "$(status -X DELETE -H "$H" "$CONSERVER_URL/vcon/$VCON_UUID")" = 204 ] || fail "DELETE"
[ "$(status -H "$H" "$CONSERVER_URL/vcon/$VCON_UUID")" = 404 ] || fail "GET after DELETE"

echo "all examples passed"
