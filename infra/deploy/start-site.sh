#!/usr/bin/env bash
# Start one site node: the site admin API and the site's NVFlare client (from its startup kit).
#
#   start-site.sh [SITE_HOME]      (or set SITE_NODE_HOME)
#
# Layout: SITE_HOME/site.toml and phi/ (made by `site-node init`; the key never leaves),
# SITE_HOME/nvflare/ (this site's startup kit, unpacked, with the site's own local/authorization.json
# and local/privacy.json), SITE_HOME/run/ (pid and log files). The client only dials out to the hub.
# Environment overrides:
#   SITE_FLARE_KIT   client startup kit folder         (default SITE_HOME/nvflare)
#   SITE_POLICY_CMD  command run first to (re)write the kit's local/ policy from site.toml
#   SITE_API_HOST    site admin API bind address        (default 127.0.0.1: keep it inside the site)
#   SITE_API_PORT    site admin API port                (default 8090)
#   SITE_API=0       do not start the site admin API
#   FEDIMAGING_RUN_DIR, FEDIMAGING_VENV
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SITE_HOME="${1:-${SITE_NODE_HOME:-}}"
[[ -n "${SITE_HOME}" ]] || fi_die "usage: start-site.sh SITE_HOME (or set SITE_NODE_HOME)" 64
SITE_HOME="$(cd "${SITE_HOME}" && pwd)"
[[ -f "${SITE_HOME}/site.toml" ]] || fi_die "${SITE_HOME} is not a site home (run site-node init)" 78
export SITE_NODE_HOME="${SITE_HOME}"
KIT="${SITE_FLARE_KIT:-${SITE_HOME}/nvflare}"
RUN_DIR="${FEDIMAGING_RUN_DIR:-${SITE_HOME}/run}"
BIN="$(fi_bin)"

if [[ -n "${SITE_POLICY_CMD:-}" ]]; then
  bash -c "${SITE_POLICY_CMD}" || fi_die "SITE_POLICY_CMD failed: the client is not started" 78
fi
if [[ "${SITE_API:-1}" != "0" ]]; then
  fi_start "${RUN_DIR}" site-api "${BIN}/site-node" serve --home "${SITE_HOME}" \
    --host "${SITE_API_HOST:-127.0.0.1}" --port "${SITE_API_PORT:-8090}"
fi
fi_start "${RUN_DIR}" site-flare "${FI_DEPLOY_DIR}/run-flare.sh" "${KIT}"
