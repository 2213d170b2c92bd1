# Shared helpers for the scripts that compare us with Docker's BuildKit (sourced, not run):
# pelagos-build/scripts/compare-buildkit and remfile-plan/scripts/compare-buildkit.
# dockerd runs as ../shared/REFERENCE.md says: private data/exec roots, socket and pidfile,
# --bridge=none, no iptables, overlay2; builds use /usr/bin/docker with DOCKER_BUILDKIT=1 and
# --network none. Only the dockerd started here is stopped (by its pid).
#
#   bk_start_dockerd WORKDIR   starts dockerd under WORKDIR (or, when $COMPARE_DOCKER_SOCK is
#                              set, uses that running daemon); sets $BK_SOCK
#   bk_stop_dockerd            stops the dockerd bk_start_dockerd started (none otherwise)
#   bk_docker ARGS...          /usr/bin/docker against $BK_SOCK
#   bk_build ARGS...           DOCKER_BUILDKIT=1 docker build --network none ARGS...

BK_SOCK=""
BK_PID=""
BK_WORK=""

bk_docker() { /usr/bin/docker -H "unix://$BK_SOCK" "$@"; }
bk_build() { DOCKER_BUILDKIT=1 /usr/bin/docker -H "unix://$BK_SOCK" build --network none "$@"; }

bk_start_dockerd() {
  if [[ -n ${COMPARE_DOCKER_SOCK:-} ]]; then
    BK_SOCK=$COMPARE_DOCKER_SOCK
    bk_docker version >/dev/null || { echo "error: no dockerd at $BK_SOCK" >&2; return 1; }
    return 0
  fi
  [[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || {
    echo "error: docker.io is not installed (apt-get install docker.io)" >&2; return 1; }
  BK_WORK=$1
  mkdir -p "$BK_WORK/data" "$BK_WORK/exec"
  echo '{}' >"$BK_WORK/daemon.json" # never read /etc/docker/daemon.json
  BK_SOCK=$BK_WORK/docker.sock
  /usr/sbin/dockerd --config-file "$BK_WORK/daemon.json" --data-root "$BK_WORK/data" \
    --exec-root "$BK_WORK/exec" --host "unix://$BK_SOCK" --pidfile "$BK_WORK/docker.pid" \
    --bridge=none --iptables=false --ip6tables=false --storage-driver overlay2 \
    >"$BK_WORK/dockerd.log" 2>&1 &
  BK_PID=$!
  local i
  for i in $(seq 1 300); do
    bk_docker version >/dev/null 2>&1 && return 0
    kill -0 "$BK_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$BK_WORK/dockerd.log" >&2
  echo "error: dockerd did not come up" >&2
  return 1
}

bk_stop_dockerd() {
  [[ -n $BK_PID ]] || return 0
  if kill -0 "$BK_PID" 2>/dev/null; then
    kill -TERM "$BK_PID"
    local i
    for i in $(seq 1 100); do kill -0 "$BK_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$BK_PID" 2>/dev/null && kill -KILL "$BK_PID"
    wait "$BK_PID" 2>/dev/null || true
  fi
  # overlay mounts dockerd may leave behind, deepest first
  findmnt -rn -o TARGET | grep -F "$BK_WORK/" | sort -r | while read -r m; do umount -l "$m"; done
  BK_PID=""
}
