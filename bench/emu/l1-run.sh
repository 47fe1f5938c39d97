#!/bin/sh
# /test/run.sh of `npm run bench:emu`, inside the emulated 64 KiB aarch64 host: binds QEMU's NVMe to
# vfio-pci once, then runs the same nested guest (kernel, initramfs, `dd` runs) under each VMM in turn:
# Debian's qemu-system-aarch64 with default vfio-pci options, the same with x-msix-relocation=bar0, and
# the example VMM. Each run ends with one `BENCH-RESULT {json}` line (counts between the guest's markers).
. /test/bench.env
up() { cut -d' ' -f1 /proc/uptime; }
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor):$(cat $d/device)" = 0x1b36:0x0010 ] && BDF=${d##*/}
done
[ -e /sys/bus/pci/devices/$BDF/driver ] && echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind
echo vfio-pci > /sys/bus/pci/devices/$BDF/driver_override
echo $BDF > /sys/bus/pci/drivers_probe
echo "BENCH-HOST nvme $BDF driver=$(basename "$(readlink /sys/bus/pci/devices/$BDF/driver)") page-size=$(grep -m1 KernelPageSize /proc/self/smaps | tr -s ' ' | cut -d' ' -f2-)"
echo "BENCH-HOST $(qemu-system-aarch64 --version | head -n 1)"
APPEND='console=ttyAMA0 quiet panic=-1'

run_qemu() {
  name=$1; opts=$2
  echo "BENCH-RUN $name start uptime=$(up)"
  # Traced: every KVM exit (kvm_run_exit), the console (pl011_*: it finds the guest's markers) and every
  # BAR access QEMU serves itself (memory_region_ram_device_*, vfio_region_*: the trapped ones).
  timeout -s KILL "$BENCH_TIMEOUT" qemu-system-aarch64 -M virt,gic-version=3 -accel kvm -cpu host -smp 1 -m 256M \
    -display none -nodefaults -no-user-config -serial stdio \
    -kernel /test/guest/Image -initrd /test/guest/initrd.cpio -append "$APPEND" \
    -device "vfio-pci,host=$BDF$opts" \
    -trace kvm_run_exit -trace 'pl011_*' -trace 'memory_region_ram_device_*' -trace vfio_region_read -trace vfio_region_write -D /tmp/trace-$name.log </dev/null
  echo "BENCH-RUN $name exit rc=$? uptime=$(up)"
  grep -v -E 'kvm_run_exit|pl011_|memory_region_ram_device|vfio_region_(read|write)' /tmp/trace-$name.log | head -n 20 | sed "s/^/BENCH-QEMU-LOG $name /"
  echo "BENCH-RESULT $(node /test/lib/bench/emu/count-trace.js "$name" /tmp/trace-$name.log)"
  rm -f /tmp/trace-$name.log
}

run_vmm() {
  name=$1
  echo "BENCH-RUN $name start uptime=$(up)"
  cd /test/lib
  timeout -s KILL "$BENCH_TIMEOUT" node bench/emu/vmm-bench.js "$name" --kernel /test/guest/Image --initrd /test/guest/initrd.cpio \
    --append "$APPEND" --vfio "$BDF"
  echo "BENCH-RUN $name exit rc=$? uptime=$(up)"
  cd /
}

for cfg in $(echo "$BENCH_CONFIGS" | tr ',' ' '); do
  case $cfg in
    qemu-default) run_qemu qemu-default '' ;;
    qemu-relo-bar0) run_qemu qemu-relo-bar0 ',x-msix-relocation=bar0' ;;
    example-vmm) run_vmm example-vmm ;;
  esac
done
echo "BENCH-ALL-DONE uptime=$(up)"
