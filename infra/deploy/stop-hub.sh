#!/usr/bin/env bash
# Stop the hub service started by start-hub.sh (hub API first, then the NVFlare server).
#
#   stop-hub.sh [HUB_HOME]         (or set HUB_HOME; FEDIMAGING_RUN_DIR as for start-hub.sh)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HUB_HOME="${1:-${HUB_HOME:-}}"
[[ -n "${HUB_HOME}" ]] || fi_die "usage: stop-hub.sh HUB_HOME (or set HUB_HOME)" 64
RUN_DIR="${FEDIMAGING_RUN_DIR:-${HUB_HOME}/run}"
fi_stop "${RUN_DIR}" hub-api
fi_stop "${RUN_DIR}" hub-flare
