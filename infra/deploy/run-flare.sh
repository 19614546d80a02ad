#!/usr/bin/env bash
# Run one NVFlare participant (the hub's server or a site's client) from its startup kit, in the
# foreground (systemd ExecStart, or started in the background by start-hub.sh / start-site.sh).
#
#   run-flare.sh KIT_DIR
#
# KIT_DIR is the unpacked startup kit (startup/ and local/); NVFlare uses it as its workspace
# (logs, job folders). A site's kit must hold the site's own local/authorization.json and
# local/privacy.json: without them the client does not start (fail closed, no NVFlare defaults).
# Environment: FEDIMAGING_VENV (the Python environment with fedimaging + nvflare), SITE_NODE_HOME
# (clients: the site home the training code binds to).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || fi_die "usage: run-flare.sh KIT_DIR" 64
KIT="$(cd "$1" 2>/dev/null && pwd)" || fi_die "startup kit folder not found: $1" 66

if [[ -f "${KIT}/startup/fed_client.json" ]]; then
  for policy in authorization.json privacy.json; do
    [[ -f "${KIT}/local/${policy}" ]] || fi_die \
      "the site's local/${policy} is missing in ${KIT}: write the site policy first (docs/deployment.md)" 78
  done
  [[ -n "${SITE_NODE_HOME:-}" ]] || fi_die "SITE_NODE_HOME must name the site home of this client" 78
elif [[ ! -f "${KIT}/startup/fed_server.json" ]]; then
  fi_die "${KIT} is not an NVFlare server or client startup kit" 66
fi

BIN="$(fi_bin)"
[[ -x "${BIN}/python3" ]] || fi_die "no python3 in ${BIN} (set FEDIMAGING_VENV)" 69
export PATH="${BIN}:${PATH}"
# NVFlare copies the modules a job references into the job's custom/ folder; put the platform's own
# packages first on the path so those copies never shadow them (an editable or source install).
ROOT="$(cd "${FI_DEPLOY_DIR}/../.." && pwd)"
if [[ -d "${ROOT}/site_node" && -d "${ROOT}/common" ]]; then
  export PYTHONPATH="${ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
fi
# sub_start.sh --once execs NVFlare's server/client process directly (no restart loop: systemd or
# the operator restarts it).
exec "${KIT}/startup/sub_start.sh" --once
