#!/usr/bin/env bash
# Stop a site node started by start-site.sh (NVFlare client and any job it runs, then the API).
#
#   stop-site.sh [SITE_HOME]       (or set SITE_NODE_HOME; FEDIMAGING_RUN_DIR as for start-site.sh)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SITE_HOME="${1:-${SITE_NODE_HOME:-}}"
[[ -n "${SITE_HOME}" ]] || fi_die "usage: stop-site.sh SITE_HOME (or set SITE_NODE_HOME)" 64
RUN_DIR="${FEDIMAGING_RUN_DIR:-${SITE_HOME}/run}"
fi_stop "${RUN_DIR}" site-flare
fi_stop "${RUN_DIR}" site-api
