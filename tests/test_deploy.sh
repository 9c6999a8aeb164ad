#!/usr/bin/env bash
# The deploy files validate with the tools Debian ships: nginx -t on the nginx config,
# systemd-analyze verify on the unit, and the Kubernetes manifest
# is parsed (kubectl needs an API server). Containers cannot run here; the Containerfile is checked for its shape.
set -u
D="$KOE_SOURCE_DIR/deploy"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0 ran=0
check() {
    local what=$1; shift
    ran=$((ran + 1))
    if "$@" >"$T/out" 2>&1; then echo "ok   $what"; else echo "FAIL $what"; cat "$T/out"; fails=$((fails + 1)); fi
}

if command -v nginx >/dev/null; then
    mkdir -p "$T/nginx/logs"
    cat >"$T/nginx/nginx.conf" <<CONF
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    include $D/nginx/koe.conf;
}
CONF
    check "nginx -t accepts deploy/nginx/koe.conf" nginx -t -p "$T/nginx" -c "$T/nginx/nginx.conf"
fi

if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart to exist: point it at the binary under test.
    sed "s#/usr/local/bin/koe#${KOE_BINARY}#" "$D/systemd/koe.service" >"$T/koe.service"
    check "systemd-analyze verify deploy/systemd/koe.service" systemd-analyze verify "$T/koe.service"
    check "unit is hardened" grep -q '^DynamicUser=yes' "$D/systemd/koe.service"
    check "unit sets NoNewPrivileges" grep -q '^NoNewPrivileges=yes' "$D/systemd/koe.service"
fi

# kubectl cannot validate without an API server here; parse the YAML when PyYAML is present.
if python3 -c 'import yaml' 2>/dev/null; then
    check "manifest parses as YAML (Deployment + Service)" python3 -c '
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
kinds = [d["kind"] for d in docs]
assert kinds == ["Deployment", "Service"], kinds
c = docs[0]["spec"]["template"]["spec"]["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/health"
' "$D/kubernetes/koe.yaml"
fi
check "manifest probes /health" grep -q 'path: /health' "$D/kubernetes/koe.yaml"
check "manifest has the Prometheus scrape annotation" grep -q 'prometheus.io/path: "/metrics"' "$D/kubernetes/koe.yaml"
check "Containerfile builds and runs koe serve" grep -q 'ENTRYPOINT \["/usr/local/bin/koe", "serve"' "$D/container/Containerfile"

[ "$ran" -gt 0 ] || exit 77
[ $fails -eq 0 ] && echo "all $ran deploy checks passed"
exit $((fails > 0))
