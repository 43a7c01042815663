#!/bin/bash
# Records what a real Linux 8250 driver and QEMU 7.2's 16550 do per character on this machine:
# boots the host's Debian kernel under qemu-system-x86_64 (q35, TCG — the register protocol
# between driver and device is the same under KVM) with a busybox initramfs whose /init writes
# single characters to ttyS0 (tty output) and reads characters the host sends (console input),
# with QEMU's serial_read/serial_write/ioapic_set_irq trace points logged.
# Usage: record.sh OUT.log      (needs qemu-system-x86, busybox-static, cpio, python3; root to apt-get)
set -euo pipefail
OUT="${1:?usage: $0 OUT.log}"
HERE="$(cd "$(dirname "$0")" && pwd)"
need=()
for p in qemu-system-x86 busybox-static cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
[ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
KVER="${SERIAL_GOLDEN_KVER:-$(ls /boot/vmlinuz-* | sed 's#^/boot/vmlinuz-##' | sort -V | tail -1)}"
WORK="$(mktemp -d /tmp/serial-golden.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root"/{bin,dev,proc,sys}
cp /bin/busybox "$WORK/root/bin/busybox"
cp "$HERE/guest-init.sh" "$WORK/root/init"
chmod +x "$WORK/root/init"
(cd "$WORK/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.gz"
SOCK="$WORK/ttyS0.sock"
qemu-system-x86_64 -nodefaults -no-user-config -accel tcg -machine q35 -cpu max -smp 1 -m 256M \
  -kernel "/boot/vmlinuz-$KVER" -initrd "$WORK/initramfs.gz" \
  -append "console=ttyS0,115200 quiet loglevel=0 panic=-1" \
  -chardev "socket,id=s0,path=$SOCK,server=on,wait=off" -serial chardev:s0 \
  -display none -vga none -monitor none -no-reboot \
  -trace enable=serial_read -trace enable=serial_write -trace enable=ioapic_set_irq -D "$WORK/trace.log" &
QPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
timeout 240 python3 "$HERE/host-console.py" "$SOCK" > "$WORK/console.txt"
wait "$QPID" || true
{
  echo "# serial-golden: kernel $KVER, $(qemu-system-x86_64 --version | head -1), recorded $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# console markers:"; sed 's/^/#   /' "$WORK/console.txt"
  echo "# QEMU trace points serial_read / serial_write (port offset, value) and ioapic_set_irq for pin 4 (the"
  echo "# 'vector' QEMU prints is the pin), in order; other pins left out."
  grep -E '^serial_(read|write) |^ioapic_set_irq vector: 4 ' "$WORK/trace.log"
} > "$OUT"
echo "serial-golden: wrote $OUT ($(grep -c serial_ "$OUT") serial accesses)" >&2
