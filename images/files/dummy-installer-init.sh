#!/bin/sh
# xenlab's dummy installer: brings the NIC up by DHCP, resolves the install server, fetches the kickstart
# named by ks= (or inst.ks=), prints it, acknowledges the install and powers off.  Every step prints one
# XENLAB- marker line; any failure prints XENLAB-INSTALL-FAILED with the reason, reports it to the install
# server when it can, and powers off.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /etc /run
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
arg() { for a in $(cat /proc/cmdline); do case "$a" in "$1"=*) echo "${a#*=}"; return;; esac; done; }
has() { for a in $(cat /proc/cmdline); do [ "$a" = "$1" ] && return 0; done; return 1; }
REPORT=""
fail() {
    echo "XENLAB-INSTALL-FAILED $*"
    [ -n "$REPORT" ] && wget -q -O /dev/null "$REPORT?reason=$(echo "$*" | tr ' /&?=' '_____')" 2>/dev/null
    sync; poweroff -f
}
if has xenlab.probe; then echo "XENLAB-PROBE-OK uptime=$(up)"; poweroff -f; fi
echo "XENLAB-INSTALLER-START uptime=$(up)"
while read -r mod; do
    [ -n "$mod" ] && insmod "/lib/modules/$mod" 2>/dev/null
done < /lib/modules/load-order
IFACE=""
for i in $(seq 100); do
    for n in /sys/class/net/*; do
        n=${n##*/}; [ "$n" = lo ] && continue; IFACE=$n; break
    done
    [ -n "$IFACE" ] && break; sleep 0.1
done
[ -n "$IFACE" ] || fail "no network interface appeared"
ip link set lo up; ip link set "$IFACE" up
echo "XENLAB-NIC $IFACE mac=$(cat /sys/class/net/$IFACE/address) uptime=$(up)"
udhcpc -i "$IFACE" -s /etc/udhcpc.script -n -q -t 10 -T 1 >/dev/null 2>&1 || fail "no DHCP lease on $IFACE"
echo "XENLAB-DHCP-OK $(ip -4 -o addr show dev "$IFACE" | awk '{print $4}') host=$(hostname) uptime=$(up)"
KS=$(arg inst.ks); [ -n "$KS" ] || KS=$(arg ks)
[ -n "$KS" ] || fail "no ks= or inst.ks= on the kernel command line"
KSHOST=$(echo "$KS" | sed -e 's#^[a-z]*://##' -e 's#[:/].*##')
ACK=$(arg xenlab.ack); [ -n "$ACK" ] || ACK="http://$KSHOST/cgi-bin/aii-installack.cgi"
REPORT=$(arg xenlab.report); [ -n "$REPORT" ] || REPORT="http://$KSHOST/xenlab/install-failed"
ADDR=$(nslookup "$KSHOST" 2>/dev/null | awk '/^Address/ {a=$NF} END {print a}')
[ -n "$ADDR" ] || fail "cannot resolve $KSHOST"
echo "XENLAB-RESOLVED $KSHOST=$ADDR"
echo "XENLAB-KS-BEGIN $KS"
wget -q -O /tmp/ks.cfg "$KS" || fail "kickstart $KS could not be fetched"
cat /tmp/ks.cfg
echo "XENLAB-KS-END bytes=$(wc -c < /tmp/ks.cfg) uptime=$(up)"
wget -q -O /tmp/ack "$ACK" || fail "install ack $ACK failed"
echo "XENLAB-ACK-OK $(cat /tmp/ack) uptime=$(up)"
echo "XENLAB-INSTALLER-DONE"
sync; poweroff -f
