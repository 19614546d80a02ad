# Shared helpers of the fedimaging start/stop scripts (sourced, not executed).
#
# Each component runs in its own session (setsid), so its process id is also its process-group id;
# the pid file holds it. Stopping sends SIGTERM to the group, waits, then SIGKILLs the group and any
# descendant that left it (NVFlare starts each job in a new session).

set -euo pipefail

FI_DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FI_STOP_TIMEOUT="${FEDIMAGING_STOP_TIMEOUT:-20}"

fi_die() { echo "error: $*" >&2; exit "${2:-1}"; }

# The bin folder of the Python environment that has fedimaging and nvflare installed.
fi_bin() {
  if [[ -n "${FEDIMAGING_VENV:-}" ]]; then
    echo "${FEDIMAGING_VENV}/bin"
  elif [[ -x "${FI_DEPLOY_DIR}/../../.venv/bin/python3" ]]; then
    (cd "${FI_DEPLOY_DIR}/../../.venv/bin" && pwd)
  else
    dirname "$(command -v python3)"
  fi
}

fi_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# fi_start RUN_DIR NAME CMD...: start CMD in a new session, output to RUN_DIR/NAME.log.
fi_start() {
  local run_dir="$1" name="$2"; shift 2
  local pid_file="${run_dir}/${name}.pid"
  mkdir -p "${run_dir}"
  if fi_alive "${pid_file}"; then
    echo "${name} already running (pid $(cat "${pid_file}"))"
    return 0
  fi
  setsid "$@" >>"${run_dir}/${name}.log" 2>&1 < /dev/null &
  echo $! > "${pid_file}"
  sleep 1
  if ! fi_alive "${pid_file}"; then
    tail -n 20 "${run_dir}/${name}.log" >&2 || true
    fi_die "${name} exited at start; see ${run_dir}/${name}.log"
  fi
  echo "${name} started (pid $(cat "${pid_file}"), log ${run_dir}/${name}.log)"
}

# All descendants of a pid (children first found by parent pid, recursively).
fi_descendants() {
  local kids
  kids="$(ps -o pid= --ppid "$1" 2>/dev/null || true)"
  for kid in ${kids}; do
    echo "${kid}"
    fi_descendants "${kid}"
  done
}

# fi_stop RUN_DIR NAME: stop the component's process group and its strays; remove the pid file.
fi_stop() {
  local pid_file="$1/$2.pid" name="$2"
  if ! fi_alive "${pid_file}"; then
    echo "${name} not running"
    rm -f "${pid_file}"
    return 0
  fi
  local pid; pid="$(cat "${pid_file}")"
  local strays; strays="$(fi_descendants "${pid}")"
  kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
  local waited=0
  while kill -0 "${pid}" 2>/dev/null && (( waited < FI_STOP_TIMEOUT )); do
    sleep 1; waited=$((waited + 1))
  done
  kill -KILL -- "-${pid}" 2>/dev/null || true
  for stray in ${strays}; do kill -KILL "${stray}" 2>/dev/null || true; done
  rm -f "${pid_file}"
  echo "${name} stopped"
}

fi_status() {
  local pid_file="$1/$2.pid"
  if fi_alive "${pid_file}"; then echo "$2 running (pid $(cat "${pid_file}"))"; else echo "$2 stopped"; fi
}
