#!/usr/bin/env python3
"""Host side of the serial-golden run: waits for the guest's markers, sends console input."""
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(200)
buf = b''
def wait_for(marker: bytes) -> None:
    global buf
    while marker not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit(f'guest closed before {marker!r}')
        buf += chunk
wait_for(b'MARK rx-begin')
print('rx-begin seen', flush=True)
time.sleep(0.5)
for _ in range(6):
    s.sendall(b'a')
    time.sleep(0.3)
wait_for(b'MARK done')
print('done seen', flush=True)
