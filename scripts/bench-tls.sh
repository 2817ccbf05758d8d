#!/usr/bin/env bash
# TLS benchmark: Strait vs NGINX terminating TLS in front of the same HTTP/1.1 origin, proxy pinned
# on core 1, load generator and origin on core 0 (the shape of ../shared/bench/peers.sh).
#   handshakes   wrk, `Connection: close` over HTTPS: every request is a new TLS 1.3 handshake
#   https-ka     wrk, HTTPS keep-alive, 13-byte body (HTTP/1.1 by ALPN)
#   h2-tls       h2load -c16 -m32 over TLS (h2 by ALPN)
# Medians of REPS interleaved runs; ratios against NGINX measured in the same run.
# Usage: scripts/bench-tls.sh            (REPS=3 DUR=6 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3} DUR=${DUR:-6}
for t in wrk h2load nginx openssl taskset; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install wrk nghttp2-client nginx openssl util-linux)" >&2; exit 2; }
done
cargo build --release -p strait >/dev/null
run=$(mktemp -d /tmp/strait-bench-tls.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ORIGIN=127.0.0.1:18281 NGINX=127.0.0.1:18443 STRAIT=127.0.0.1:18444
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$run/key.pem" \
  -out "$run/cert.pem" -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
mkdir -p "$run/t"
cat > "$run/origin.conf" <<NGX
daemon off; worker_processes 1; pid $run/origin.pid; error_log $run/origin.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  client_body_temp_path $run/t; proxy_temp_path $run/t; fastcgi_temp_path $run/t; uwsgi_temp_path $run/t; scgi_temp_path $run/t;
  server { listen $ORIGIN backlog=4096; location / { return 200 "Hello, world!"; } } }
NGX
cat > "$run/nginx.conf" <<NGX
daemon off; worker_processes 1; pid $run/nginx.pid; error_log $run/nginx.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  client_body_temp_path $run/t; proxy_temp_path $run/t; fastcgi_temp_path $run/t; uwsgi_temp_path $run/t; scgi_temp_path $run/t;
  upstream be { server $ORIGIN; keepalive 1024; }
  server { listen $NGINX ssl http2 backlog=4096; ssl_certificate $run/cert.pem; ssl_certificate_key $run/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
cat > "$run/strait.toml" <<TOML
[log]
level = "warn"
[[listener]]
name = "https"
address = "$STRAIT"
protocol = "http"
cluster = "origin"
[[listener.tls.certificate]]
cert = "$run/cert.pem"
key = "$run/key.pem"
[[cluster]]
name = "origin"
endpoints = [{ address = "$ORIGIN" }]
pool_max_idle = 1024
TOML
taskset -c 0 nginx -c "$run/origin.conf" -p "$run" & pids+=($!)
taskset -c 1 nginx -c "$run/nginx.conf" -p "$run" & pids+=($!)
taskset -c 1 target/release/strait run --cores 1 --config "$run/strait.toml" & pids+=($!)
sleep 1
for a in $NGINX $STRAIT; do curl -sk --max-time 3 "https://$a/small" | grep -q Hello || { echo "no answer on $a" >&2; exit 1; }; done
measure() { # scenario addr -> req/s
  local s=$1 a=$2
  case $s in
    handshakes) taskset -c 0 wrk -t1 -c32 -d"${DUR}s" -H 'Connection: close' "https://$a/small" | awk '/Requests\/sec/{print $2}' ;;
    https-ka) taskset -c 0 wrk -t1 -c64 -d"${DUR}s" "https://$a/small" | awk '/Requests\/sec/{print $2}' ;;
    h2-tls) taskset -c 0 h2load -c16 -m32 -D "$DUR" --warm-up-time=1s "https://$a/small" 2>/dev/null | awk '/^finished in/{print $4}' ;;
  esac
}
declare -A R
for s in handshakes https-ka h2-tls; do
  for ((i = 1; i <= REPS; i++)); do
    for t in nginx strait; do
      a=$NGINX; [[ $t == strait ]] && a=$STRAIT
      v=$(measure "$s" "$a"); R[$s/$t]+="$v "
      echo "[$s] $t #$i: $v" >&2
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo "| scenario | NGINX | Strait | Strait / NGINX |"
echo "|---|---:|---:|---:|"
for s in handshakes https-ka h2-tls; do
  n=$(echo "${R[$s/nginx]}" | median); m=$(echo "${R[$s/strait]}" | median)
  printf '| %s (req/s) | %.0f | %.0f | %.2f |\n' "$s" "$n" "$m" "$(echo "$m / $n" | bc -l)"
done
