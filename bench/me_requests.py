"""GET /me N times over one keep-alive connection, one at a time (for callgrind_me.sh).

    python3 bench/me_requests.py N PORT TOKEN_FILE
"""

import http.client
import sys

count, port, token_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(token_file, encoding="ascii") as f:
    headers = {"Authorization": "Bearer " + f.read().strip()}
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    conn.request("GET", "/me", headers=headers)
    res = conn.getresponse()
    res.read()
    if res.status != 200:
        sys.exit(f"GET /me answered {res.status}")
