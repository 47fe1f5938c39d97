#!/bin/sh
# /test/run.sh of the example-VMM scenario, inside the emulated aarch64 host: run the example VMM
# (node arm64, the library, real KVM) on the nested guest's kernel and initramfs. Settings come from
# /test/vmm.env, written by the host-side runner.
. /test/vmm.env
echo "VMM-HOST page-size=$(grep -m1 KernelPageSize /proc/self/smaps | tr -s ' ' | cut -d' ' -f2-) uptime=$(cut -d' ' -f1 /proc/uptime)"
cd /test/lib
# KVM_RUN blocks node's event loop, so the VMM cannot time itself out: busybox timeout does.
timeout -s KILL "$VMM_TIMEOUT" node examples/arm64-vmm/main.js --kernel /test/guest/Image --initrd /test/guest/initrd.cpio \
  --mem "$VMM_MEM" --append "$VMM_APPEND" $VMM_FLAGS
echo "VMM-HOST-EXIT rc=$? uptime=$(cut -d' ' -f1 /proc/uptime)"
