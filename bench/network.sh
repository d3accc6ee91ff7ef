#!/usr/bin/env bash
# The network layer's figures, every peer in one run:
#   1. launch  hyperfine median/p90 of `lasagna run -p strict --without cgroups -- /bin/true`
#              for each mode (none, proxy, user, host) and bwrap configured like strict
#              (bench/bwrap-strict.sh): what each mode adds to a launch.
#   2. proxy   throughput on loopback: one 256 MiB download from a server the bench starts
#              on 127.0.0.1, by curl inside the sandbox through a CONNECT tunnel (net:
#              proxy), against the same curl in a sandbox with the host's network (a direct
#              connection); the best of 3 each, MB/s.
#   3. latency time to the first byte of a small response, median of 100 requests each,
#              through the proxy (CONNECT) and direct: the latency the proxy adds to one
#              connection.
# Results: target/bench/network-launch.json, network.txt (summary, also on stdout).
#
# Environment: LASAGNA, RUNS (default 200), WARMUP (default 20).
set -euo pipefail

cd "$(dirname "$0")/.."
LASAGNA=${LASAGNA:-target/$(rustc -vV | sed -n 's/^host: //p')/release/lasagna}
RUNS=${RUNS:-200}
WARMUP=${WARMUP:-20}
OUT=target/bench
mkdir -p "$OUT"
for tool in hyperfine curl python3; do
    if ! command -v $tool >/dev/null; then
        echo "bench: $tool is not installed; nothing measured" >&2
        exit 1
    fi
done

# A server on the host's loopback: /big is 256 MiB from memory, anything else 16 bytes.
port_file=$(mktemp)
python3 - "$port_file" <<'PY' &
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
chunk = b"x" * (1 << 20)
def serve(c):
    with c:
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        if head.split(b" ")[1].endswith(b"/big"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (256 << 20))
            for _ in range(256):
                c.sendall(chunk)
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\n0123456789abcdef")
s.settimeout(600)
while True:
    try:
        c, _ = s.accept()
    except OSError:
        break
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
server=$!
trap 'kill $server 2>/dev/null; rm -f "$port_file"' EXIT
for _ in $(seq 1 100); do [ -s "$port_file" ] && break; sleep 0.05; done
port=$(cat "$port_file")

strict="$LASAGNA run -p strict --without cgroups"
names=(none proxy user host)
cmds=("$strict -- /bin/true" "$strict --allow localhost:$port -- /bin/true"
    "$strict --net user -- /bin/true" "$strict --net host -- /bin/true")
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086 # a word list by construction
    if ! ${cmds[$i]}; then
        echo "bench: net ${names[$i]} cannot run here (see above); left out" >&2
        unset "names[$i]" "cmds[$i]"
    fi
done
if command -v bwrap >/dev/null; then
    bw=$(bench/bwrap-strict.sh "$OUT" /bin/true)
    if $bw; then names+=(bwrap); cmds+=("$bw"); fi
fi
args=()
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
echo "== network: launch per mode, $RUNS runs each, $WARMUP warmup"
hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" \
    --export-json "$OUT/network-launch.json" "${args[@]}"

echo "== network: proxy throughput and latency (server on 127.0.0.1:$port)"
proxied="$LASAGNA run -p strict --without cgroups --allow localhost:$port --"
# Direct: the host's network, Landlock's TCP rules off (strict allows no connect port).
direct="$LASAGNA run -p strict --without cgroups --without landlock --net host --"
speed() { # sandbox prefix, curl options
    local best=0 s
    for _ in 1 2 3; do
        # shellcheck disable=SC2086
        s=$($1 curl -s -o /dev/null -w "%{speed_download}" $2 "http://localhost:$port/big" | tail -c 40)
        best=$(python3 -c "print(max($best, $s))")
    done
    echo "$best"
}
ttfb() { # sandbox prefix, curl options: median seconds to first byte over 100 requests
    # shellcheck disable=SC2086
    $1 /bin/sh -c "for i in \$(seq 100); do curl -s -o /dev/null -w '%{time_starttransfer}\n' $2 http://localhost:$port/small; done" |
        python3 -c "import statistics, sys; print(statistics.median(float(l) for l in sys.stdin))"
}
tunnel_speed=$(speed "$proxied" "-p")
direct_speed=$(speed "$direct" "--noproxy localhost")
tunnel_ttfb=$(ttfb "$proxied" "-p")
direct_ttfb=$(ttfb "$direct" "--noproxy localhost")

python3 - "$OUT" "$tunnel_speed" "$direct_speed" "$tunnel_ttfb" "$direct_ttfb" <<'PY' | tee "$OUT/network.txt"
import json, os, statistics, sys
out = sys.argv[1]
ts, ds, tt, dt = (float(x) for x in sys.argv[2:6])
res = {r["command"]: r["times"] for r in json.load(open(os.path.join(out, "network-launch.json")))["results"]}
def p90(t):
    s = sorted(t)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
none = statistics.median(res["none"]) if "none" in res else None
bw = statistics.median(res["bwrap"]) if "bwrap" in res else None
print(f"\n{'net':<7} {'median ms':>10} {'p90 ms':>8} {'vs none':>8} {'vs bwrap':>9}")
for name, t in res.items():
    m = statistics.median(t)
    vn = f"{m / none:.2f}x" if none else "-"
    vb = f"{m / bw:.2f}x" if bw else "-"
    print(f"{name:<7} {m * 1000:>10.2f} {p90(t) * 1000:>8.2f} {vn:>8} {vb:>9}")
mb = 1e6
print(f"\nproxy throughput (256 MiB, best of 3): CONNECT tunnel {ts / mb:.0f} MB/s, "
      f"direct {ds / mb:.0f} MB/s ({ts / ds:.2f}x)")
print(f"time to first byte (median of 100): through the proxy {tt * 1000:.2f} ms, "
      f"direct {dt * 1000:.2f} ms (+{(tt - dt) * 1000:.2f} ms per connection)")
PY
