#!/usr/bin/env bash
# Prints a TCP port on 127.0.0.1 that nothing listens on, chosen by the kernel, so that test
# daemons never collide with each other or with another run on the same machine.
#
#   scripts/free-port.sh          one port
#   scripts/free-port.sh --pair   a port P such that P and P+1 are both free (Ceph's monitor
#                                 listens on both)
#
# The port is free when printed; a daemon that loses a race for it fails to bind, loudly.
set -euo pipefail
pair=0
[[ "${1:-}" != --pair ]] || pair=1
exec python3 - "$pair" <<'PY'
import socket
import sys

pair = sys.argv[1] == "1"
for _ in range(100):
    first = socket.socket()
    first.bind(("127.0.0.1", 0))
    port = first.getsockname()[1]
    if not pair:
        print(port)
        sys.exit(0)
    second = socket.socket()
    try:
        second.bind(("127.0.0.1", port + 1))
    except OSError:
        continue
    finally:
        second.close()
        first.close()
    print(port)
    sys.exit(0)
sys.exit("no free pair of ports found")
PY
