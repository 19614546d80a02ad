#!/usr/bin/env bash
# Start the hub service: the NVFlare server (from the hub's startup kit) and the hub API.
#
#   start-hub.sh [HUB_HOME]        (or set HUB_HOME)
#
# Layout: HUB_HOME/hub.toml (hub settings), HUB_HOME/nvflare/ (the server startup kit, unpacked),
# HUB_HOME/run/ (pid and log files). Environment overrides:
#   HUB_FLARE_KIT   server startup kit folder          (default HUB_HOME/nvflare)
#   HUB_API_HOST    hub API bind address                (default 127.0.0.1; put a TLS proxy in front)
#   HUB_API_PORT    hub API port                        (default 8080)
#   HUB_API=0       do not start the hub API (NVFlare server only)
#   FEDIMAGING_RUN_DIR, FEDIMAGING_VENV, FEDIMAGING_WAIT_S (wait for the ports, default 60)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HUB_HOME="${1:-${HUB_HOME:-}}"
[[ -n "${HUB_HOME}" ]] || fi_die "usage: start-hub.sh HUB_HOME (or set HUB_HOME)" 64
HUB_HOME="$(cd "${HUB_HOME}" && pwd)"
export HUB_HOME
KIT="${HUB_FLARE_KIT:-${HUB_HOME}/nvflare}"
RUN_DIR="${FEDIMAGING_RUN_DIR:-${HUB_HOME}/run}"
BIN="$(fi_bin)"

fi_start "${RUN_DIR}" hub-flare "${FI_DEPLOY_DIR}/run-flare.sh" "${KIT}"
"${BIN}/python3" -m infra.deploy.wait_ports --kit "${KIT}" --timeout "${FEDIMAGING_WAIT_S:-60}" \
  || fi_die "the NVFlare server ports did not open; see ${RUN_DIR}/hub-flare.log"
if [[ "${HUB_API:-1}" != "0" ]]; then
  fi_start "${RUN_DIR}" hub-api "${BIN}/central-hub" serve --home "${HUB_HOME}" \
    --host "${HUB_API_HOST:-127.0.0.1}" --port "${HUB_API_PORT:-8080}"
  "${BIN}/python3" -m infra.deploy.wait_ports --url "http://${HUB_API_HOST:-127.0.0.1}:${HUB_API_PORT:-8080}/healthz" \
    --timeout "${FEDIMAGING_WAIT_S:-60}" || fi_die "the hub API did not answer; see ${RUN_DIR}/hub-api.log"
fi
