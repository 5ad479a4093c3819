#!/usr/bin/env python3
"""Count servers that misbehave on purpose, for scripts/compare-check.sh.

    python3 count.py MODE PORT

MODE good serves as docs/performance/count_server.py does; wrong answers one character too
many; dies exits with status 3 after 20 connections; slow waits 2 s before it listens.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "performance"))
import count_server  # noqa: E402

mode, port = sys.argv[1], int(sys.argv[2])
if mode == "slow":
    time.sleep(2)
if mode == "wrong":
    right = count_server.count
    count_server.count = lambda line: right(line) + 1
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(128)
served = 0
while True:
    if mode == "dies" and served == 20:
        sys.exit(3)
    conn, peer = listener.accept()
    try:
        count_server.serve(conn, peer)
    except OSError:
        pass
    finally:
        conn.close()
    served += 1
