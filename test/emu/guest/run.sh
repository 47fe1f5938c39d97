#!/bin/sh
# Per-run part of the guest: bind the devices under test to vfio-pci and run the guest test.
# QEMU's NVMe (1b36:0010) is BDF; an e1000e (8086:10d3), when present, is E1000E_BDF.
bind() {
  echo vfio-pci > /sys/bus/pci/devices/$1/driver_override
  echo $1 > /sys/bus/pci/drivers_probe
}
BDF=
E1000E_BDF=
for d in /sys/bus/pci/devices/*; do
  id="$(cat $d/vendor):$(cat $d/device)"
  case "$id" in
    0x1b36:0x0010) BDF=${d##*/}; bind $BDF ;;
    0x8086:0x10d3) E1000E_BDF=${d##*/}; bind $E1000E_BDF ;;
  esac
done
echo "VFIOBARS-LOG nvme at ${BDF:-none}, e1000e at ${E1000E_BDF:-none}; /dev/vfio: $(ls /dev/vfio | tr '\n' ' ')"
grep -i -E "${BDF:-none}|${E1000E_BDF:-none}" /proc/iomem | sed 's/^/VFIOBARS-LOG iomem /'
# vfiobars.node=floor runs the guest test on the engines floor (/usr/bin/node-floor, from an appended archive).
NODE=node
grep -q 'vfiobars.node=floor' /proc/cmdline && NODE=/usr/bin/node-floor
cd /test && BDF=$BDF E1000E_BDF=$E1000E_BDF $NODE /test/guest-test.mjs
