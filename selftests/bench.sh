#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make bench` in the guest: the owner's bulk throughput to the client without a snooping
# peer, with one, and with Linux conntrack tracking the same connection in the owner's and
# the client's namespaces; the CPU time each costs per frame on the link (from /proc/stat,
# all CPUs), the peer's time per frame inside its hook, and, on the same transfers, the
# time conntrack's own hooks take per frame (timed inside by permtcp.ctprobe's probes
# around them). Figures, not pass/fail.
. /selftests/lib.sh

BYTES=${BYTES:-30000000}
RUNS=5
# `run_vm.sh --bench PART...` runs only those parts (snoop, scale, takeover); all by default.
parts=$(sed -n 's/.*permtcp\.tests=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
part() { [ -z "$parts" ] || echo " $parts " | grep -q " $1 "; }
echo "guest clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
if part snoop; then
# ctprobe: conntrack's hooks are timed in every namespace (an empty pair of clock reads
# where conntrack is not loaded, in every run alike).
insmod /lib/modules/permtcp.ko ctprobe=1 hook_timing=1
# Snooped ports: 80-84 and 85-89 for the two snooping runs, 96-100 for the conntrack run.
PORTS=80-100 cluster_up >/dev/null
in_peer permctl snoop stop >/dev/null

busy() { # CPU ticks not idle, all CPUs
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# run FIRST-PORT: RUNS transfers on ports FIRST-PORT.. (snooped: 80-100), each with a fresh
# server and directory (a stale "listening" file would let the client start too early).
# Every run has ports of its own: the last run's connections are still in TIME-WAIT, and a
# server cannot bind their port again.
run() { # -> "median-MB/s mean-busy-ticks completed-runs"
	for i in $(seq $RUNS); do
		port=$(($1 + i - 1))
		d=/tmp/bench-$1-$i
		rm -rf $d && mkdir -p $d && touch $d/go
		in_owner ptcp-testapp serve 10.0.0.1:$port down:$BYTES $d &
		server=$!
		# A server that could not listen is skipped, never waited for.
		while [ ! -e $d/listening ] && kill -0 $server 2>/dev/null; do sleep 0.05; done
		if [ ! -e $d/listening ]; then
			wait $server
			continue
		fi
		sleep 0.2
		b0=$(busy)
		mbps=$(in_client ptcp-testapp client 10.0.0.1:$port down:$BYTES 2>/dev/null | sed 's/.*MBps=//')
		b1=$(busy)
		# A failed run is skipped, never waited for.
		[ -n "$mbps" ] || kill -9 $server 2>/dev/null
		wait
		[ -n "$mbps" ] && echo "$mbps $((b1 - b0))"
		sleep 0.2
	done | sort -n | awk '{ m[NR] = $1; t += $2 } END { if (NR) printf "%s %.1f %d\n", m[int((NR + 1) / 2)], t / NR, NR; else print "0 0 0" }'
}

# Snooping stopped: any ports.
set -- $(run 91)
plain=$1 plain_t=$2
# Snooping with zero-copy retention (the default), then copying every byte (zerocopy=0).
snoop_run() { # first-port zerocopy -> "MB/s ticks hook-ns hook-frames views"
	echo "$2" >/sys/module/permtcp/parameters/zerocopy
	in_peer permctl snoop start --dev eth0 >/dev/null
	set -- $(run "$1")
	st_=$(in_peer permctl --json stats)
	in_peer permctl snoop stop >/dev/null
	echo 1 >/sys/module/permtcp/parameters/zerocopy
	echo "$1 $2 $(echo "$st_" | sed 's/.*"hook_ns":\([0-9]*\).*"hook_frames":\([0-9]*\).*/\1 \2/')"
}
set -- $(snoop_run 80 1)
snoop=$1 snoop_t=$2 ns=$3 frames=$4
set -- $(snoop_run 85 0)
copy=$1 copy_t=$2 copy_ns=$3 copy_frames=$4

stat_in() { # NS FIELD -> the namespace's `permctl stats` field
	/bin/ip netns exec "$1" permctl --json stats | sed "s/.*\"$2\":\([0-9]*\).*/\1/"
}
ct_cost() { # NS -> "ct-ns ct-frames" since the namespace was created
	echo "$(stat_in "$1" ct_ns) $(stat_in "$1" ct_frames)"
}
# An empty probe pair (no conntrack in the namespace): the floor of a timing done this way.
set -- $(ct_cost owner)
floor_ns=$1 floor_fr=$2

# Conntrack tracking the connection in the owner's and the client's namespaces while the
# peer snoops it: the three costs, each timed inside, on the very same frames.
ct=0 ct_t=0 ct_runs=0
if command -v nft >/dev/null; then
	conntrack_on owner client
	in_peer permctl snoop start --dev eth0 >/dev/null
	set -- $(ct_cost owner); o0=$1 of0=$2
	set -- $(ct_cost client); c0=$1 cf0=$2
	set -- $(run 96) && ct=$1 ct_t=$2 ct_runs=$3
	set -- $(ct_cost owner); o_ns=$(($1 - o0)) o_fr=$(($2 - of0))
	set -- $(ct_cost client); c_ns=$(($1 - c0)) c_fr=$(($2 - cf0))
	p_ns=$(stat_in peer hook_ns) p_fr=$(stat_in peer hook_frames)
	in_peer permctl snoop stop >/dev/null
	for n in owner client; do /bin/ip netns exec $n nft delete table inet bench; done
fi

echo "permtcp benchmark in QEMU (TCG, 2 vCPUs): bulk transfer of $BYTES bytes, owner to client,"
echo "$RUNS runs each; throughput is the median, CPU time the mean (ticks of 10 ms, all CPUs)"
printf '  %-42s %8s MB/s  %6s ticks\n' "no snooping peer" "$plain" "$plain_t"
printf '  %-42s %8s MB/s  %6s ticks\n' "peer snooping" "$snoop" "$snoop_t"
printf '  %-42s %8s MB/s  %6s ticks\n' "peer snooping, copying (zerocopy=0)" "$copy" "$copy_t"
printf '  %-42s %8s MB/s  %6s ticks\n' "peer snooping, conntrack on owner and client" "$ct" "$ct_t"
awk -v pt="$plain_t" -v st="$snoop_t" -v ns="$ns" -v fr="$frames" -v runs=$RUNS \
	-v cns="${copy_ns:-0}" -v cfr="${copy_frames:-0}" 'BEGIN {
	if (fr == 0) exit;
	per = fr / runs;
	printf "  frames on the link per transfer: %d (GSO/GRO super-packets)\n", per;
	printf "  peer hook, measured inside:      %d ns per frame (clock reads included)\n", ns / fr;
	if (cfr > 0) printf "  same, copying (zerocopy=0):      %d ns per frame; zero-copy/copy %.2f\n", cns / cfr, (ns / fr) / (cns / cfr);
	bpf = '"$BYTES"' / per;
	s = (st - pt) * 10e6 / per;
	if (s > 0) printf "  snooping, from CPU time:         %d ns per frame, %.2f ns per byte\n", s, s / bpf;
	else printf "  snooping, from CPU time:         below the noise of the CPU-time difference\n";
}'
# Side by side on the conntrack run's transfers: per frame each hook saw, and per payload
# byte transferred (the same bytes for all three).
awk -v runs="$ct_runs" -v bytes="$BYTES" -v fl="$floor_ns" -v flf="$floor_fr" \
	-v p="${p_ns:-0}" -v pf="${p_fr:-0}" -v o="${o_ns:-0}" -v of="${o_fr:-0}" \
	-v c="${c_ns:-0}" -v cf="${c_fr:-0}" 'BEGIN {
	if (runs == 0 || pf == 0 || of == 0 || cf == 0) {
		print "  snooping/conntrack: not measured (no nft, or no transfer completed)"; exit;
	}
	b = bytes * runs;
	printf "  side by side, timed inside, %d transfers (clock reads included):\n", runs;
	if (flf > 0) printf "    empty probe pair (no conntrack):  %d ns per frame\n", fl / flf;
	printf "    peer snooping hook:              %d ns per frame, %.3f ns per byte (%d frames)\n", p / pf, p / b, pf;
	printf "    conntrack, owner:                %d ns per frame, %.3f ns per byte (%d frames)\n", o / of, o / b, of;
	printf "    conntrack, client:               %d ns per frame, %.3f ns per byte (%d frames)\n", c / cf, c / b, cf;
	printf "  snooping/conntrack per frame:      %.2f (owner) %.2f (client)\n", (p / pf) / (o / of), (p / pf) / (c / cf);
	printf "  snooping/conntrack per byte:       %.2f (owner) %.2f (client)\n", p / o, p / c;
}'
cluster_down
rmmod permtcp
fi

# Scale: the peer's hook cost per frame of one bulk transfer while the mirror holds 0, 10,000
# and 100,000 other connections (half-open ones from a forged SYN flood, kept by a long
# handshake timeout: mostly idle entries spread over the table), and the bytes the mirror
# charges per entry. `run_vm.sh --bench scale`.
if part scale; then
insmod /lib/modules/permtcp.ko hook_timing=1
cluster_up >/dev/null
/bin/ip netns add attacker
/bin/ip link add vattacker type veth peer name eth0 netns attacker
br_port vattacker
/bin/ip -n attacker link set eth0 address 02:00:00:00:00:66 up
in_peer permctl snoop stop >/dev/null
in_peer permctl snoop start --dev eth0 --max-conns 120000 --max-bytes 268435456 \
	--syn-timeout-ms 600000 >/dev/null
stat() { in_peer permctl --json stats | sed "s/.*\"$1\":\([0-9]*\).*/\1/"; }
echo "permtcp benchmark in QEMU: the peer hook's cost per frame by table size (one bulk"
echo "transfer of $BYTES bytes each, owner to client)"
printf '  %8s  %12s  %10s  %14s\n' "table" "hook ns" "frames" "bytes/entry"
# The transfers go to snooped ports (80-90; the flood takes 89): their frames are tracked,
# looked up among the others (a port outside the bindings would only be classified).
have=0 port=86 src=0
for want in 0 10000 100000; do
	# Flood SYNs from sources of 50,000 ports each until the table holds `want` others.
	while [ $have -lt $want ]; do
		n=$((want - have)); [ $n -gt 50000 ] && n=50000
		src=$((src + 1))
		in_attacker() { /bin/ip netns exec attacker "$@"; }
		in_attacker ptcp-testapp flood eth0 02:00:00:00:00:01 10.0.1.$src 10.0.0.1:89 $n
		have=$((have + n))
	done
	sleep 1
	conns=$(stat connections) bytes=$(stat bytes_held)
	ns0=$(stat hook_ns) fr0=$(stat hook_frames)
	d=/tmp/bench-scale-$want
	rm -rf $d && mkdir -p $d && touch $d/go
	in_owner ptcp-testapp serve 10.0.0.1:$port down:$BYTES $d &
	while [ ! -e $d/listening ]; do sleep 0.05; done
	in_client ptcp-testapp client 10.0.0.1:$port down:$BYTES >/dev/null 2>&1
	wait
	ns1=$(stat hook_ns) fr1=$(stat hook_frames)
	port=$((port + 1))
	awk -v t="$conns" -v b="$bytes" -v ns=$((ns1 - ns0)) -v fr=$((fr1 - fr0)) 'BEGIN {
		printf "  %8d  %12d  %10d  %14s\n", t, fr ? ns / fr : 0, fr, t ? sprintf("%d", b / t) : "-" }'
done
in_peer permctl snoop stop >/dev/null
/bin/ip netns del attacker
cluster_down
rmmod permtcp
fi

# Takeover cost: N snooped connections taken over by the kernel (one `permctl takeover`: its
# rebuild_ns) and, in another run, restored from userspace (`ptcp-testapp restore`,
# CRIU/libsoccr style: the restore loop alone; reading the mirror with permctl subprocesses
# is timed apart). The kernel runs twice: "repair", the application started right after the
# takeover (every connection rebuilt with TCP_REPAIR and parked until it listens), and
# "born", the application listening before it (module parameter born: each connection
# born from the listener). The peer announces the address with busybox arping in the
# userspace run. Then the client's first round on every connection. Every application
# serves its connections from one event loop (`--event-loop`: epoll, as nginx or memcached's
# workers), not a thread each: a thousand thread creations under TCG (0.4-0.6 ms each, the
# same in every mode) were most of the first answer's time, and hid the takeover's.
# The guest's clock in ms (/proc/uptime: 10 ms steps), into $now: shell builtins only, as a
# command (awk) took 5-8 ms to start under TCG.
now_ms() {
	read -r u_ _ </proc/uptime
	c_=${u_#*.}
	now=$((${u_%.*} * 1000 + ${c_#0} * 10))
}
# takeover_run repair|born|repair-permctl|user N (repair-permctl: the application looks its
# offsets up by running `permctl --json taken`, as before permtcp-resume): sets us (rebuild
# or restore time), whole (the command, ms), fetch (ms) and after (ms); prints what went
# wrong, if anything.
takeover_run() {
	mode=$1 n=$2 us=- fetch=- after=- whole=- answer=-
	if [ $mode = born ]; then
		insmod /lib/modules/permtcp.ko born=1
	else
		insmod /lib/modules/permtcp.ko born=0
	fi
	# Room for N connections in the mirror (the defaults: 4096 and 64 MiB).
	SNOOP_OPTS="--max-conns $((n + 4096)) --max-bytes $((n * 16384 + 67108864))" \
		cluster_up >/dev/null
	in_owner ptcp-testapp echo-serve "[::]:80" --event-loop &
	owner_pid=$!
	sleep 0.5
	rm -f /tmp/r.out
	paused_client /tmp/b 6000 ptcp-testapp echo-many 10.0.0.1:80 $n /tmp/b
	sleep 1
	# The clock starts once the owner's sockets are all gone.
	crash_owner_gone $owner_pid
	/bin/ip -n peer addr add 10.0.0.1/24 dev eth0
	if [ $mode = born ]; then
		# Listening before the takeover (the wildcard address): born from the listener.
		in_peer ptcp-testapp echo-serve "[::]:80" --resume --event-loop &
		peer_pid=$!
		sleep 0.5
	fi
	if [ $mode != user ]; then
		dmesg -c >/dev/null
		now_ms
		t_start=$now
		out=$(in_peer ptcp-testapp timed permctl --json takeover --node 1 2>/tmp/t.err)
		# repair: as the userspace restore, the application starts after the rebuild:
		# the connections wait parked, and go to its accept() when it listens.
		if [ $mode = repair-permctl ]; then
			in_peer env PTCP_RESUME_PERMCTL=1 ptcp-testapp echo-serve "[::]:80" --resume --event-loop &
			peer_pid=$!
		elif [ $mode = repair ]; then
			in_peer ptcp-testapp echo-serve "[::]:80" --resume --event-loop &
			peer_pid=$!
		fi
		# The client is let go as soon as the takeover is done, before the figures are
		# read: each command reading them took 5-8 ms under TCG, about 60 ms in all,
		# which the answer counted as the takeover's.
		now_ms
		t_touch=$now
		touch /tmp/b
		echo "$out" | grep -q "\"taken\":$n," || echo "  kernel, $n connections: $out"
		ns=$(echo "$out" | sed -n 's/.*"rebuild_ns":\([0-9]*\).*/\1/p')
		[ -z "$ns" ] || us=$((ns / 1000))
		whole=$(sed -n 's/^wall_us=//p' /tmp/t.err)
		whole=${whole:+$((whole / 1000))}
		steps=$(dmesg | sed -n 's/.*ns per connection: //p' | tail -n 1)
		phases=$(dmesg | sed -n 's/.*connections, us: //p' | tail -n 1)
		steps="$steps; us: $phases"
	else
		# The restore's line is read as it is written (a FIFO), not polled for: a poll
		# every 20 ms took two commands each round.
		rm -f /tmp/r.fifo
		mkfifo /tmp/r.fifo
		now_ms
		t_start=$now
		in_peer ptcp-testapp restore --event-loop >/tmp/r.fifo 2>/tmp/r.err &
		peer_pid=$!
		exec 3</tmp/r.fifo
		line=
		read -t 600 -r line <&3
		# As the kernel's command announces the address: the client is let go at once.
		in_peer arping -U -c 2 -I eth0 10.0.0.1 >/dev/null &
		now_ms
		t_touch=$now
		touch /tmp/b
		echo "$line" >/tmp/r.out
		grep -q "^restored=$n failed=0 " /tmp/r.out ||
			echo "  userspace, $n connections: $(cat /tmp/r.out /tmp/r.err | head -n 5)"
		us=$(sed -n 's/.*restore_us=\([0-9]*\).*/\1/p' /tmp/r.out)
		fetch=$(sed -n 's/.*fetch_ms=\([0-9.]*\).*/\1/p' /tmp/r.out)
		us=${us:--} fetch=${fetch:--}
		[ "$us" = - ] || [ "$fetch" = - ] || whole=$(awk -v f="$fetch" -v u="$us" 'BEGIN { printf "%d", f + u / 1000 }')
	fi
	t=0
	while kill -0 $client_pid 2>/dev/null && [ $t -lt 6000 ]; do sleep 0.1; t=$((t + 1)); done
	kill -9 $client_pid 2>/dev/null
	wait $client_pid
	rc=$?
	if [ $rc = 0 ] && grep -q "^ok conns=$n " /tmp/b.out; then
		after=$(sed -n 's/.*after_takeover_round_ms=\([0-9]*\).*/\1/p' /tmp/b.out)
		[ -z "$after" ] || answer=$((t_touch - t_start + after))
	else
		echo "  $mode, $n connections: CLIENT FAILED (exit $rc): $(head -n 5 /tmp/b.out)"
		dmesg | grep -i -A2 "out of memory\|killed process" | tail -n 6 | sed 's/^/    /'
	fi
	kill -9 $peer_pid 2>/dev/null
	wait
	[ $mode != user ] || exec 3<&-
	cluster_down
	rmmod permtcp
}

if part takeover; then
# Room for a thread per connection, as the applications had before they ran an event loop
# (ten thousand are more than a 1 GB guest's default thread limit, and their PIDs came
# close to the default pid_max): kept for an application run with a thread each.
echo 100000 >/proc/sys/kernel/threads-max
echo 262144 >/proc/sys/kernel/pid_max
CONNS_LIST=$(sed -n 's/.*permtcp\.conns=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
echo "takeover (QEMU TCG): N connections taken over by the kernel (permctl takeover), rebuilt"
echo "with TCP_REPAIR and parked until the application, started after it, listens (repair), or"
echo "born from the listener of an application already listening (born), vs restored from"
echo "userspace (ptcp-testapp restore: the restore loop; reading the mirror through permctl is"
echo "its fetch). whole: the kernel's command, the userspace fetch plus restore. answer: from"
echo "the start of the takeover to the client's first round answered on every connection"
echo "(on the guest's clock, from the command's or the restore's start: the kernel's"
echo "application's accept() and offset lookups included; every application serves from one"
echo "event loop)"
printf '  %5s  %8s %8s %8s %6s  %8s %8s %8s  %8s %8s %8s %8s\n' conns repair born user "user/" \
	repair born user repair born user "repair,"
printf '  %5s  %8s %8s %8s %6s  %8s %8s %8s  %8s %8s %8s %8s\n' "" "us/conn" "us/conn" "us/conn" born \
	"whole ms" "whole ms" "whole ms" "answer" "answer" "answer" permctl
: >/tmp/steps
# Warm-up, not reported: under TCG the first run through a code path pays for translating
# it (the first takeover of one connection took 60 ms).
takeover_run repair 10 >/dev/null
takeover_run born 10 >/dev/null
takeover_run user 10 >/dev/null
# The smaller of two values ("-" when there is none).
least() { if [ "$1" = - ]; then echo "$2"; elif [ "$2" = - ] || [ "$1" -le "$2" ]; then echo "$1"; else echo "$2"; fi; }
# One run of mode $1 with $n connections, kept in r_us_$1, r_whole_$1, r_answer_$1 (the
# better of this run and the one before, if any).
measure() { # mode
	takeover_run $1 $n
	a_=$answer
	eval "r_us_$1=\$(least \"\${r_us_$1:--}\" \"$us\")"
	eval "r_whole_$1=\$(least \"\${r_whole_$1:--}\" \"$whole\")"
	eval "r_answer_$1=\$(least \"\${r_answer_$1:--}\" \"$a_\")"
}
for n in ${CONNS_LIST:-1 100 1000 10000}; do
	for m in repair born user repair_permctl; do
		eval "r_us_$m=- r_whole_$m=- r_answer_$m=-"
	done
	measure repair
	echo "$n repair: $steps" >>/tmp/steps
	measure born
	echo "$n born: $steps" >>/tmp/steps
	# The lookup through permctl, for comparison (too slow past a thousand).
	if [ $n -le 1000 ]; then
		takeover_run repair-permctl $n
		r_answer_repair_permctl=$answer
	fi
	measure user
	# Up to a thousand, every mode again, alternating: the host's load moves between runs;
	# each keeps its best.
	if [ $n -le 1000 ]; then
		measure repair
		measure born
		measure user
	fi
	awk -v n=$n -v k="$r_us_repair" -v b="$r_us_born" -v u="$r_us_user" \
		-v kw="$r_whole_repair" -v bw="$r_whole_born" -v uw="$r_whole_user" \
		-v ka="$r_answer_repair" -v ba="$r_answer_born" -v ua="$r_answer_user" -v kp="$r_answer_repair_permctl" 'BEGIN {
		pk = k == "-" ? "-" : sprintf("%.1f", k / n); pb = b == "-" ? "-" : sprintf("%.1f", b / n);
		pu = u == "-" ? "-" : sprintf("%.1f", u / n);
		r = (b == "-" || u == "-" || b == 0) ? "-" : sprintf("%.2f", u / b);
		printf "  %5d  %8s %8s %8s %6s  %8s %8s %8s  %8s %8s %8s %8s\n", n, pk, pb, pu, r, kw, bw, uw, ka, ba, ua, kp }'
done
echo "(up to 1000 connections: the better of two alternating runs of each)"
echo "kernel takeover by step, ns per connection (permtcp's log, first run of each size and mode);"
echo "then the command's phases in us: plan (the mirror's connections moved out), rebuild (every"
echo "step above, records included), after (serving set, parking, notifications), announce"
while read -r n rest; do echo "  $n: $rest"; done </tmp/steps
fi
