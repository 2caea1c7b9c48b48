"""POST /api/vcon load from CLIENTS keep-alive connections: requests/s and p50/p99.

Usage: python3 load.py PORT CLIENTS REQUESTS. The same client drives vcon-host and the stand-in,
so the client's own cost is the same on both sides.
"""
import glob
import http.client
import json
import os
import sys
import threading
import time
import uuid

port, clients, total = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data = os.environ.get("VCON_TEST_DATA", os.path.join(os.path.dirname(__file__), "../../../../shared/vcons"))
doc = json.load(open(sorted(glob.glob(os.path.join(data, "fake/*.json")))[0]))
bodies = []
for _ in range(total):
    doc["uuid"] = str(uuid.uuid4())
    bodies.append(json.dumps(doc))
latencies = []
lock = threading.Lock()


def client(k):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    mine = []
    for body in bodies[k::clients]:
        started = time.perf_counter()
        conn.request("POST", "/api/vcon?ingress_lists=default_ingress", body, {"content-type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 201, answer.status
        mine.append(time.perf_counter() - started)
    with lock:
        latencies.extend(mine)


started = time.perf_counter()
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - started
latencies.sort()
print(f"clients {clients}: {total / elapsed:.0f} requests/s, p50 {latencies[len(latencies) // 2] * 1e6:.0f} us, "
      f"p99 {latencies[int(len(latencies) * 0.99)] * 1e6:.0f} us")
