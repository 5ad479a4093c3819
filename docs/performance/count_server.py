#!/usr/bin/env python3
"""A blocking count server: one client at a time, TCP only.

The textbook shape: socket, bind, listen, then a loop that accepts a client, talks to it, and
closes it before the next one. It speaks the count protocol of docs/protocol.md ("TCP count"):
a welcome, one line, "You entered N characters.", a graceful close.

    python3 docs/performance/count_server.py [PORT]

The port is the first argument, else ONELOOP_TCP_PORT, else 51423; it listens on 127.0.0.1
(ONELOOP_HOST, when set).
"""

import os
import socket
import sys

MAX_LINE = 4096     # bytes before the LF, as oneloop's --max-line
LINE_DEADLINE = 30  # seconds a client has for its line, from the accept
LINGER = 2          # seconds to drain what the client still sends after the reply

# What Rust's char::is_whitespace calls whitespace (Unicode White_Space). Python's
# str.isspace() also counts U+001C..U+001F, so the set is spelled out.
WHITESPACE = set(
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def count(line):
    """Characters of the line after trimming whitespace; each byte that is not part of valid
    UTF-8 is one character (surrogateescape turns it into one lone surrogate) and never
    whitespace."""
    text = line.decode("utf-8", "surrogateescape")
    start, end = 0, len(text)
    while start < end and text[start] in WHITESPACE:
        start += 1
    while end > start and text[end - 1] in WHITESPACE:
        end -= 1
    return end - start


def read_line(conn):
    """The bytes before the first LF (or all, at EOF); None when they pass MAX_LINE."""
    data = b""
    while b"\n" not in data and len(data) <= MAX_LINE:
        chunk = conn.recv(MAX_LINE + 1 - len(data))
        if not chunk:
            break
        data += chunk
    line = data.split(b"\n", 1)[0]
    if len(line) > MAX_LINE:
        return None
    return line


def serve(conn, peer):
    conn.settimeout(LINE_DEADLINE)
    host, port = peer[0], peer[1]
    conn.sendall(("Welcome, %s:%d\nPlease enter a string: " % (host, port)).encode())
    line = read_line(conn)
    if line is None:
        reply = "Error: line too long (limit %d bytes)\n" % MAX_LINE
    else:
        reply = "You entered %d characters.\n" % count(line)
    conn.sendall(reply.encode())
    # The graceful close: no more to send, then read until the client's EOF, so unread
    # input never turns the close into a reset that could destroy the reply.
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(LINGER)
    while conn.recv(4096):
        pass


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ONELOOP_TCP_PORT", 51423))
    host = os.environ.get("ONELOOP_HOST", "127.0.0.1")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    while True:
        conn, peer = listener.accept()
        try:
            serve(conn, peer)
        except OSError:
            pass  # this client timed out or went away; the next one is served
        finally:
            conn.close()


if __name__ == "__main__":
    main()
