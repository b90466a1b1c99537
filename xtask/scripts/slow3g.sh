#!/usr/bin/env bash
# Measures navigation → interactive sign-in form, then → the strength worker's (zxcvbn) verdict on
# a typed password, on emulated slow 3G (400 ms RTT, 400 kbit/s down,
# 400 kbit/s up) with 4x CPU slowdown, first visit (empty cache) and a repeat visit (warm cache).
set -euo pipefail
URL="${1:?usage: slow3g.sh http://127.0.0.1:8080/}"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/chromedriver --port=$PORT >/dev/null 2>&1 &
DRV=$!
trap "kill $DRV" EXIT
sleep 1
PROFILE=$(mktemp -d)
SID=$(curl -s -X POST localhost:$PORT/session -d "{\"capabilities\":{\"alwaysMatch\":{\"goog:chromeOptions\":{\"binary\":\"/usr/bin/chromium\",\"args\":[\"--headless=new\",\"--no-sandbox\",\"--user-data-dir=$PROFILE\",\"--window-size=1440,900\"]}}}}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["value"]["sessionId"])')
W=localhost:$PORT/session/$SID
curl -s -X POST $W/chromium/network_conditions -d '{"network_conditions":{"offline":false,"latency":400,"download_throughput":51200,"upload_throughput":51200}}' >/dev/null
curl -s -X POST $W/timeouts -d '{"script":180000}' >/dev/null
curl -s -X POST $W/goog/cdp/execute -d '{"cmd":"Emulation.setCPUThrottlingRate","params":{"rate":4}}' >/dev/null
measure() {
  curl -s -X POST $W/url -d "{\"url\":\"$URL\"}" >/dev/null
  curl -s -X POST $W/execute/async -d '{"script":"const done = arguments[arguments.length-1]; (function poll(){ document.querySelector(\"form.card button.primary\") ? (function(form){ const i = document.getElementById(\"password\"); i.value = \"Summer2024!\"; i.dispatchEvent(new Event(\"input\", {bubbles: true})); (function full(){ document.querySelector(\".strength[data-full=true]\") ? done({form: form, full: performance.now(), splash: performance.getEntriesByType(\"paint\").map(p => p.name + \"=\" + Math.round(p.startTime)).join(\" \"), bytes: performance.getEntriesByType(\"resource\").reduce((a,r)=>a+r.transferSize,0)}) : setTimeout(full, 20); })(); })(performance.now()) : setTimeout(poll, 20); })();","args":[]}' | python3 -c 'import sys,json; v=json.load(sys.stdin)["value"]; print("form at %.0f ms; zxcvbn verdict at %.0f ms; %s; transferred %.0f KiB" % (v["form"], v["full"], v["splash"], v["bytes"]/1024))'
}
echo -n "first visit: "; measure
echo -n "repeat visit: "; measure
curl -s -X DELETE $W >/dev/null
