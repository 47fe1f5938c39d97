#!/bin/sh
# /test/run.sh of the example-VMM scenario, inside the emulated aarch64 host: run the example VMM
# (node arm64, the library, real KVM) on the nested guest's kernel and initramfs. Settings come from
# /test/vmm.env, written by the host-side runner.
. /test/vmm.env
echo "VMM-HOST page-size=$(grep -m1 KernelPageSize /proc/self/smaps | tr -s ' ' | cut -d' ' -f2-) uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -n "$VMM_VFIO" ]; then
  # The device with vendor:device $VMM_VFIO (QEMU's NVMe 0x1b36:0x0010, e1000e 0x8086:0x10d3) goes to
  # vfio-pci and from there to the nested guest.
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat $d/vendor):$(cat $d/device)" = "$VMM_VFIO" ] && BDF=${d##*/}
  done
  echo vfio-pci > /sys/bus/pci/devices/$BDF/driver_override
  echo $BDF > /sys/bus/pci/drivers_probe
  echo "VMM-HOST passthrough $VMM_VFIO at $BDF driver=$(basename "$(readlink /sys/bus/pci/devices/$BDF/driver)") /dev/vfio: $(ls /dev/vfio | tr '\n' ' ')"
  VMM_FLAGS="$VMM_FLAGS --vfio $BDF"
fi
cd /test/lib
# KVM_RUN blocks node's event loop, so the VMM cannot time itself out: busybox timeout does.
timeout -s KILL "$VMM_TIMEOUT" node examples/arm64-vmm/main.js --kernel /test/guest/Image --initrd /test/guest/initrd.cpio \
  --mem "$VMM_MEM" --append "$VMM_APPEND" $VMM_FLAGS
echo "VMM-HOST-EXIT rc=$? uptime=$(cut -d' ' -f1 /proc/uptime)"
