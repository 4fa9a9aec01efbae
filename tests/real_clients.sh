#!/usr/bin/env bash
# Real clients against the networking examples: socat through echo_server;
# curl, raw (pipelined, split, closing, malformed) requests and wrk against
# http_hello. Each server listens on a free port (it is started with port 0
# and prints the address it got).
#
#   tests/real_clients.sh path/to/echo_server path/to/http_hello
#
# Needs curl, socat and wrk (scripts/install-deps installs them).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 ECHO_SERVER HTTP_HELLO" >&2
  exit 2
fi
echo_server=$1
http_hello=$2

missing=()
for tool in curl socat wrk timeout; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  echo "real_clients: missing ${missing[*]}: install it (apt-get install curl socat wrk; scripts/install-deps does)" >&2
  exit 1
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "real_clients: FAIL: $*" >&2
  for f in "$tmp"/*.err; do
    [[ -s $f ]] && { echo "--- $(basename "$f"):" >&2; cat "$f" >&2; }
  done
  exit 1
}
pass() { echo "ok: $*"; }

# start NAME BINARY: run the server on port 0 and set `port` to the one it got.
start() {
  local name=$1 binary=$2 pid
  "$binary" 0 >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do
    port=$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/$name.out" | cut -d: -f2 || true)
    [[ -n $port ]] && return 0
    kill -0 "$pid" 2>/dev/null || fail "$name exited before listening"
    sleep 0.05
  done
  fail "$name did not print its address within 10 s"
}

# raw SECONDS REQUEST: send REQUEST (printf format) on a connection kept open
# for writing and print what comes back until the server ends its side. Exit
# status 124 when the server has not ended within SECONDS.
raw() {
  local seconds=$1 request=$2 status=0
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  # shellcheck disable=SC2059
  printf "$request" >&3
  timeout "$seconds" cat <&3 | tr -d '\r' || status=$?
  exec 3<&-
  return "$status"
}

# count TEXT OUTPUT: how many times TEXT occurs in OUTPUT.
count() { { grep -oF "$1" <<<"$2" || true; } | wc -l; }

# ------------------------------------------------------------- echo_server
start echo_server "$echo_server"
out=$(printf 'hello\n' | socat -t1 - "TCP:127.0.0.1:$port")
[[ $out == hello ]] || fail "socat through echo_server: got '$out', wanted 'hello'"
pass "echo_server: socat's line came back"

head -c 4000000 /dev/urandom >"$tmp/blob"
socat -t5 - "TCP:127.0.0.1:$port" <"$tmp/blob" >"$tmp/blob.back"
cmp -s "$tmp/blob" "$tmp/blob.back" || fail "4 MB through echo_server came back different"
pass "echo_server: 4 MB came back intact"

# -------------------------------------------------------------- http_hello
start http_hello "$http_hello"
url="http://127.0.0.1:$port/"

response=$(curl -sS -i "$url" | tr -d '\r')
[[ $(head -n1 <<<"$response") == "HTTP/1.1 200 OK" ]] || fail "curl: status line: $(head -n1 <<<"$response")"
grep -qix 'content-length: 13' <<<"$response" || fail "curl: no 'Content-Length: 13' in:
$response"
[[ $(tail -n1 <<<"$response") == "Hello, world!" ]] || fail "curl: body: $(tail -n1 <<<"$response")"
pass "curl: 200, Content-Length: 13, Hello, world!"

body=$(curl -sS -v "$url" "$url" 2>"$tmp/curl.log")
[[ $body == "Hello, world!Hello, world!" ]] || fail "curl twice: bodies '$body'"
grep -qiE 're-?using existing connection' "$tmp/curl.log" ||
  fail "curl twice: the connection was not reused:
$(cat "$tmp/curl.log")"
[[ $(grep -ciE 'connected to 127\.0\.0\.1' "$tmp/curl.log") == 1 ]] || fail "curl twice: connected more than once"
pass "curl: two requests on one kept-alive connection"

out=$(printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n' |
  socat -t1 - "TCP:127.0.0.1:$port" | tr -d '\r')
[[ $(count 'HTTP/1.1 200 OK' "$out") == 2 && $(count 'Hello, world!' "$out") == 2 ]] ||
  fail "two pipelined requests: got
$out"
pass "pipelining: two requests in one write, two responses"

out=$({ printf 'GET / HTTP/1.1\r\nHo'; sleep 0.3; printf 'st: x\r\n\r\n'; } | socat -t1 - "TCP:127.0.0.1:$port" | tr -d '\r')
[[ $(count 'HTTP/1.1 200 OK' "$out") == 1 ]] || fail "a request split across two writes: got
$out"
pass "a request split across two writes: one response"

out=$(raw 3 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n') || fail "Connection: close: not closed"
if [[ $(count 'HTTP/1.1 200 OK' "$out") != 1 ]] || ! grep -qx 'Connection: close' <<<"$out"; then
  fail "Connection: close: got
$out"
fi
pass "Connection: close: answered, then the server ended the connection"

out=$(raw 3 'GET / HTTP/1.0\r\n\r\n') || fail "HTTP/1.0: not closed"
[[ $(count 'HTTP/1.1 200 OK' "$out") == 1 ]] || fail "HTTP/1.0: got
$out"
status=0
out=$(raw 1 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n') || status=$?
[[ $status == 124 && $(count 'Hello, world!' "$out") == 1 ]] || fail "HTTP/1.0 keep-alive: status $status, got
$out"
pass "HTTP/1.0: closed after the response, kept open with Connection: keep-alive"

out=$(raw 3 'this is not HTTP\r\n\r\n') || fail "garbage: not closed"
[[ $(head -n1 <<<"$out") == "HTTP/1.1 400 Bad Request" ]] || fail "garbage: got
$out"
big=$(printf '%09000d' 0)
out=$(raw 3 "GET / HTTP/1.1\r\nHost: x\r\nX-Big: $big\r\n\r\n") || fail "a 9 KB header section: not closed"
[[ $(head -n1 <<<"$out") == "HTTP/1.1 400 Bad Request" ]] || fail "a 9 KB header section: got
$out"
pass "400 Bad Request and close: garbage, a header section over 8 KiB"

wrk -t2 -c50 -d3s "$url" >"$tmp/wrk.out" 2>&1 || fail "wrk failed: $(cat "$tmp/wrk.out")"
cat "$tmp/wrk.out"
! grep -q 'Socket errors:' "$tmp/wrk.out" || fail "wrk: $(grep 'Socket errors:' "$tmp/wrk.out")"
! grep -q 'Non-2xx or 3xx responses:' "$tmp/wrk.out" || fail "wrk: $(grep 'Non-2xx' "$tmp/wrk.out")"
rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
awk -v r="${rps:-0}" 'BEGIN { exit !(r > 0) }' || fail "wrk: no requests/sec in its output"
pass "wrk -t2 -c50 -d3s: $rps requests/sec, no socket errors, no non-2xx responses"

for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a server exited during the test"; done
echo "real_clients: all passed"
