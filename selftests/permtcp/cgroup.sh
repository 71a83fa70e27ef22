#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Memory and socket cgroups (cgroup v2), issue 11 findings 4 and 9:
# - what the mirror allocates for a snooped connection is charged to the memory cgroup of
#   whoever started snooping (a container pays for its own mirror), and a memory.max on that
#   cgroup bounds it (the mirror says why it kept less, it never exceeds the limit);
# - a socket the takeover hands to the application looks like one its listener accepted:
#   the listener's socket cgroup, and its memory (the receive queue rebuilt from the mirror)
#   charged to the accepting application's memory cgroup at accept(), nothing to the task
#   that ran the takeover (permctl, permtcpd).
. /selftests/lib.sh

ktap_plan 15
# Not under /sys: `ip netns exec` mounts a sysfs of its own there, and ss finds the cgroup2
# mount in /proc/mounts.
CG=/cgroup2
BYTES=16000000

mkdir -p $CG
grep -q " $CG cgroup2 " /proc/mounts || mount -t cgroup2 none $CG
echo +memory >$CG/cgroup.subtree_control
for g in snoop ctl app; do mkdir -p $CG/$g; done

in_cg() { # cgroup command...
	g_=$1
	shift
	sh -c 'echo $$ >'"$CG/$g_"'/cgroup.procs && exec "$@"' sh "$@"
}
stat_of() { # cgroup key
	sed -n "s/^$2 //p" $CG/$1/memory.stat
}
held() { in_peer permctl --json stats | sed 's/.*"bytes_held":\([0-9]*\).*/\1/'; }
# An upload whose server application stops reading: the owner's kernel keeps acknowledging
# until its receive buffer is full, and the peer's mirror keeps every client byte since.
# Sets owner_pid and client_pid.
stalled_upload() {
	rm -f /tmp/cg-read
	in_owner ptcp-testapp up-serve "[::]:80" $BYTES --stall-at 300000 /tmp/cg-read &
	owner_pid=$!
	sleep 0.5
	in_client ptcp-testapp up-client "10.0.0.1:80" $BYTES >/tmp/cg.out 2>&1 &
	client_pid=$!
	wait_file /tmp/cg-read 100
	sleep 1.5
}

load_module
SNOOP_OPTS="--keep-received 8388608"
check "cluster up" cluster_up
SNOOP_OPTS=""
in_peer permctl snoop stop >/dev/null
slab0=$(stat_of snoop slab_unreclaimable)
check "snooping started from the 'snoop' cgroup" \
	in_cg snoop /bin/ip netns exec peer permctl snoop start --dev eth0 --keep-received 8388608

# The restarted application, in the 'app' cgroup, accepts the connection and then reads
# nothing, so that its socket still holds the rebuilt receive queue when it is looked at.
rm -f /tmp/cg-app-read
in_cg app /bin/ip netns exec peer ptcp-testapp up-serve "[::]:80" $BYTES --resume \
	--stall-at 0 /tmp/cg-app-read 2>/tmp/cg-app.err &
app_pid=$!
stalled_upload
# memory.stat is flushed from per-CPU counters every 2 s (or after enough updates).
sleep 2.5
h=$(held)
slab1=$(stat_of snoop slab_unreclaimable)
echo "# the mirror holds $h bytes; the 'snoop' cgroup's slab_unreclaimable grew by $((slab1 - slab0)) bytes"
check "the mirror holds over 200 KB of the upload" test "$h" -gt 200000
check "the mirror's memory is charged to the cgroup that started snooping" \
	test $((slab1 - slab0)) -ge $((h * 9 / 10))

crash_owner $owner_pid
ctl_sock0=$(stat_of ctl sock)
check "takeover run from the 'ctl' cgroup" sh -c \
	"sh -c 'echo \$\$ >$CG/ctl/cgroup.procs && exec /bin/ip netns exec peer permctl --json takeover --node 1' | grep -q '\"taken\":1'"
wait_file /tmp/cg-app-read 100
check "the application accepted the connection" test -e /tmp/cg-app-read
sed 's/^/# app: /' /tmp/cg-app.err
in_peer ss -tn --cgroup state established '( sport = :80 )' | sed 's/^/# /'
# ss names the cgroup by path, or (without name_to_handle_at in the test kernel) by its id,
# the inode number of its directory, in hex.
app_id=$(printf '%x' "$(stat -c %i $CG/app)")
check "the accepted socket is in the listener's cgroup" sh -c \
	"/bin/ip netns exec peer ss -tnH --cgroup state established '( sport = :80 )' 2>/dev/null |
		grep -q -E 'cgroup:(/app|unreachable:$app_id)\$'"
recvq=$(in_peer ss -tnH state established '( sport = :80 )' | awk '{ print $1 }')
app_sock=$(stat_of app sock)
ctl_sock=$(stat_of ctl sock)
echo "# socket memory charged: 'app' $app_sock bytes (its receive queue holds $recvq), 'ctl' (ran the takeover) $ctl_sock bytes (before: $ctl_sock0)"
check "its rebuilt receive queue is charged to the accepting application's cgroup" \
	test "$app_sock" -ge "${recvq:-1}" -a "${recvq:-0}" -gt 200000
check "nothing is charged to the cgroup that ran the takeover" test "$ctl_sock" -eq 0
kill -9 $app_pid $client_pid 2>/dev/null
wait
cluster_down
unload_module

# memory.max bounds the mirror: a cgroup allowed 128 KiB more than it uses (plus what the
# per-CPU charge caches hold: up to MEMCG_CHARGE_BATCH pages, 256 KiB, on each of the two
# CPUs, already counted in memory.current) refuses the mirror's charges past it, and the
# mirror says so. The upload keeps coming until the refusals show, or until the mirror holds
# more than the limit and both caches could ever let it (then the limit did nothing).
load_module
SNOOP_OPTS="--keep-received 8388608"
cluster_up
SNOOP_OPTS=""
in_peer permctl snoop stop >/dev/null
in_cg snoop /bin/ip netns exec peer permctl snoop start --dev eth0 --keep-received 8388608
echo $(($(cat $CG/snoop/memory.current) + 131072)) >$CG/snoop/memory.max
stalled_upload
refused_or_past() {
	[ "$(sed -n 's/^max //p' $CG/snoop/memory.events)" -gt 0 ] || [ "$(held)" -gt $((2 * 1048576)) ]
}
wait_until "the limit's refusals, or 2 MiB held" 100 refused_or_past
h=$(held)
in_peer permctl conns | sed 's/^/# /'
echo "# with memory.max 128 KiB above its use, the mirror holds $h bytes; memory.current $(cat $CG/snoop/memory.current) of max $(cat $CG/snoop/memory.max); memory.events: $(tr '\n' ' ' <$CG/snoop/memory.events)"
check "the cgroup's limit refused the mirror's charges past it" \
	test "$(sed -n 's/^max //p' $CG/snoop/memory.events)" -gt 0
check "the mirror stays within the cgroup's memory.max" \
	test "$(cat $CG/snoop/memory.current)" -le "$(cat $CG/snoop/memory.max)"
# As at the byte budget, the acknowledged client bytes kept for the window give way first:
# the refusals are counted, the connection stays ready with what the owner has not
# acknowledged.
check "the refused allocations are counted" stat_set peer alloc_failed
# New connections at the limit: their SYNs find the mirror's table entries refused too, and
# take the entries the table allocated ahead (SynReserve). Each is tracked from its SYN, its
# options known, none from mid-stream. (Without the reserve, or with it not used for SYNs,
# they are picked up at their next segment: conns_unsynced grows instead.) First the
# cgroup's per-CPU charge caches are drained (a memory.high below its use drains them, the
# other CPU's by a work item), twice, and its limit is pinned at its use: every charge from
# then on is refused but for the bytes less than a page a cache kept (a few entries' worth).
drain_and_pin() {
	echo 0 >$CG/snoop/memory.high
	echo max >$CG/snoop/memory.high
	sleep 0.5
	cat $CG/snoop/memory.current >$CG/snoop/memory.max
}
drain_and_pin
drain_and_pin
peer_stat() { in_peer permctl --json stats | sed "s/.*\"$1\":\([0-9]*\).*/\1/"; }
synced0=$(peer_stat conns_from_syn) unsynced0=$(peer_stat conns_unsynced)
i=0
while [ $i -lt 24 ]; do
	in_client sh -c 'sleep 20 | nc 10.0.0.1 80' >/dev/null 2>&1 &
	i=$((i + 1))
done
all_opened() { [ $(($(peer_stat conns_from_syn) - synced0)) -ge 24 ]; }
wait_until "24 connections tracked" 50 all_opened
synced=$(($(peer_stat conns_from_syn) - synced0)) unsynced=$(($(peer_stat conns_unsynced) - unsynced0))
echo "# 24 connections opened at the limit: $synced tracked from their SYN ($(peer_stat syn_reserved) with an entry allocated ahead), $unsynced from mid-stream; memory.events: $(tr '\n' ' ' <$CG/snoop/memory.events)"
check "SYNs at the limit took entries allocated ahead" stat_set peer syn_reserved
check "every new connection is tracked from its SYN" test "$synced" -eq 24 -a "$unsynced" -eq 0
kill -9 $owner_pid $client_pid 2>/dev/null
pkill -9 nc 2>/dev/null; pkill -9 -f "sleep 20" 2>/dev/null
wait
cluster_down
unload_module
check "kernel log clean" kernel_log_clean
for g in snoop ctl app; do rmdir $CG/$g 2>/dev/null; done
ktap_finish
