#!/bin/busybox sh
# PID 1 of the serial-golden guest (@TTY@: ttyS0 or ttyAMA0, filled in by record.sh). The port stays open on fd 3 the whole time (no
# open/close traffic between characters); the host drives the phases by markers.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
B=/bin/busybox
exec 3<>/dev/@TTY@
$B stty -F /dev/@TTY@ 115200 raw -echo
$B sleep 1
echo "MARK tx-begin" >&3
$B sleep 1
# tty output: single characters, far apart
for i in 1 2 3 4 5 6; do printf 'x' >&3; $B sleep 0.3; done
$B sleep 0.5
echo "MARK rx-begin" >&3
# console input: the host sends single characters, far apart
$B dd bs=1 count=6 <&3 >/dev/null 2>&1
$B sleep 0.5
echo "MARK done" >&3
$B sleep 0.5
$B poweroff -f
