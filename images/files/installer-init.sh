#!/bin/sh
# xenlab installer initramfs /init (Debian minbase with python3, pykickstart, lvm2, e2fsprogs, fdisk).
#   xenlab.run=/path   run that script (shipped in an appended initrd) and report its status: lab tests
#   otherwise          the kickstart installer (ks= or inst.ks=), when present in an appended initrd
# Every outcome ends in a power-off, so QEMU exits.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp /mnt; mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
up() { cut -d' ' -f1 /proc/uptime; }
arg() { for a in $(cat /proc/cmdline); do case "$a" in "$1"=*) echo "${a#*=}"; return;; esac; done; }
echo "XENLAB-INITRAMFS-START uptime=$(up)"
while read -r mod; do
    [ -n "$mod" ] || continue
    out=$(busybox insmod "/lib/modules/xenlab/$mod" 2>&1) || case "$out" in
        *"File exists"*|*"No such device"*) ;;  # already in, or hardware this VM lacks (Xen fronts on QEMU)
        *) echo "XENLAB-MODULE-FAILED $mod: $out" ;;
    esac
done < /lib/modules/xenlab/load-order
RUN=$(arg xenlab.run)
if [ -n "$RUN" ]; then
    echo "XENLAB-RUN-BEGIN $RUN uptime=$(up)"
    sh "$RUN"
    echo "XENLAB-RUN-EXIT rc=$? uptime=$(up)"
elif [ -x /usr/local/bin/xenlab-installer ]; then
    /usr/local/bin/xenlab-installer
else
    echo "XENLAB-INSTALL-FAILED no installer program and no xenlab.run= in this initramfs"
fi
sync
busybox poweroff -f
