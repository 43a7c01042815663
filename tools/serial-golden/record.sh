#!/bin/bash
# Records what a real Linux serial driver and QEMU 7.2's UART do per character on this machine.
#   x86:   the host's Debian kernel, q35, ttyS0 — Linux's 8250 driver and QEMU's 16550
#          (trace points serial_read, serial_write; ioapic_set_irq for pin 4)
#   arm64: Debian's arm64 cloud kernel, virt (GICv3), ttyAMA0 — amba-pl011 and QEMU's PL011
#          (trace points pl011_read, pl011_write, pl011_irq_state)
# The guest runs under TCG (this host's KVM cannot run a stock kernel; the register protocol
# between driver and device does not depend on the accelerator). Its /init (guest-init.sh)
# writes single characters to the port (tty output), then reads characters the host sends
# (console input, host-console.py).
# Usage: record.sh x86|arm64 OUT.log    (root: installs qemu-system-x86/-arm, busybox-static, cpio)
set -euo pipefail
ARCH="${1:?usage: $0 x86|arm64 OUT.log}"
OUT="${2:?usage: $0 x86|arm64 OUT.log}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ensure() {
  local need=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p"); done
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
}
WORK="$(mktemp -d /tmp/serial-golden.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root"/{bin,dev,proc,sys}
case "$ARCH" in
  x86)
    ensure qemu-system-x86 busybox-static cpio
    KVER="${SERIAL_GOLDEN_KVER:-$(ls /boot/vmlinuz-* | sed 's#^/boot/vmlinuz-##' | sort -V | tail -1)}"
    KERNEL="/boot/vmlinuz-$KVER"
    cp /bin/busybox "$WORK/root/bin/busybox"
    TTY=ttyS0
    QEMU=(qemu-system-x86_64 -accel tcg -machine q35 -cpu max)
    EVENTS=(serial_read serial_write ioapic_set_irq)
    KEEP='^serial_(read|write) |^ioapic_set_irq vector: 4 '
    ;;
  arm64)
    ensure qemu-system-arm cpio
    dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update >&2; }
    (cd "$WORK" && apt-get download linux-image-cloud-arm64:arm64 busybox-static:arm64 >&2)
    DEP="$(dpkg-deb -f "$WORK"/linux-image-cloud-arm64_*.deb Depends | sed 's/ (.*//')"
    (cd "$WORK" && apt-get download "$DEP:arm64" >&2)
    mkdir -p "$WORK/x"
    for d in "$WORK"/linux-image-6*.deb "$WORK"/busybox-static_*.deb; do dpkg-deb -x "$d" "$WORK/x"; done
    KVER="$(ls "$WORK/x/boot" | sed -n 's/^vmlinuz-//p')"
    KERNEL="$WORK/x/boot/vmlinuz-$KVER"
    cp "$WORK/x/bin/busybox" "$WORK/root/bin/busybox"
    TTY=ttyAMA0
    QEMU=(qemu-system-aarch64 -accel tcg -machine virt,gic-version=3 -cpu cortex-a57)
    EVENTS=(pl011_read pl011_write pl011_irq_state)
    KEEP='^pl011_(read|write|irq_state) '
    ;;
  *) echo "usage: $0 x86|arm64 OUT.log" >&2; exit 2 ;;
esac
sed "s/@TTY@/$TTY/g" "$HERE/guest-init.sh" > "$WORK/root/init"
chmod +x "$WORK/root/init"
(cd "$WORK/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.gz"
SOCK="$WORK/console.sock"
TRACE=()
for e in "${EVENTS[@]}"; do TRACE+=(-trace "enable=$e"); done
"${QEMU[@]}" -nodefaults -no-user-config -smp 1 -m 256M \
  -kernel "$KERNEL" -initrd "$WORK/initramfs.gz" \
  -append "console=$TTY,115200 quiet loglevel=0 panic=-1" \
  -chardev "socket,id=s0,path=$SOCK,server=on,wait=off" -serial chardev:s0 \
  -display none -vga none -monitor none -no-reboot "${TRACE[@]}" -D "$WORK/trace.log" &
QPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
timeout 600 python3 "$HERE/host-console.py" "$SOCK" > "$WORK/console.txt" || { kill "$QPID" 2>/dev/null; echo "serial-golden: the guest did not finish" >&2; exit 1; }
# The guest powers off after its last marker; give it a while, then stop QEMU.
for _ in $(seq 100); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
kill "$QPID" 2>/dev/null || true
wait "$QPID" 2>/dev/null || true
{
  echo "# serial-golden $ARCH: kernel $KVER, $("${QEMU[0]}" --version | head -1), recorded $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# console markers:"; sed 's/^/#   /' "$WORK/console.txt"
  if [ "$ARCH" = x86 ]; then echo "# QEMU trace points ${EVENTS[*]}, in order (ioapic_set_irq: pin 4 only — the 'vector' QEMU prints is the pin)."; else echo "# QEMU trace points ${EVENTS[*]}, in order."; fi
  grep -E "$KEEP" "$WORK/trace.log"
} > "$OUT"
echo "serial-golden: wrote $OUT ($(grep -vc '^#' "$OUT") events)" >&2
