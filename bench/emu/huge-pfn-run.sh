#!/bin/sh
# /test/run.sh of `npm run bench:emu`'s huge-PFN part, inside the emulated 64 KiB aarch64 host on Linux 6.12:
# binds QEMU's ivshmem-plain (1af4:1110; BAR2 = the 1 GiB memory backend) to vfio-pci and runs
# huge-pfn-touch.mjs, which prints one `HUGEPFN-RESULT {json}` line.
. /test/bench.env
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor):$(cat $d/device)" = 0x1af4:0x1110 ] && BDF=${d##*/}
done
[ -n "$BDF" ] || { echo "HUGEPFN-RESULT {\"ok\":false,\"error\":{\"message\":\"no ivshmem-plain device\"}}"; exit 1; }
[ -e /sys/bus/pci/devices/$BDF/driver ] && echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind
echo vfio-pci > /sys/bus/pci/devices/$BDF/driver_override
echo $BDF > /sys/bus/pci/drivers_probe
echo "HUGEPFN-HOST ivshmem $BDF driver=$(basename "$(readlink /sys/bus/pci/devices/$BDF/driver)") kernel=$(uname -r)"
grep -i "$BDF" /proc/iomem | sed 's/^/HUGEPFN-HOST iomem /'
cd /test/lib && node bench/emu/huge-pfn-touch.mjs "$BDF" "$HUGEPFN_ROUNDS"
