#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python; safe to run again (installs only what is
# missing). Run by `make test` before the unit tests.
#
# - systemd-journal-remote: the K3s check tests build real journal files from journal export
#   records with it (tests/k3s/helpers.py); journalctl (package systemd) reads them back.
# - prometheus-alertmanager: the alert delivery tests post alerts to a real Alertmanager started
#   on loopback (tests/alerting/conftest.py) and read them back through its v2 API.
# - chromium: the web UI tests drive it through Playwright (tests/web/conftest.py), which is
#   pointed at this browser rather than downloading its own.
set -euo pipefail

need=()
journal_remote_found() {
    command -v systemd-journal-remote >/dev/null 2>&1 \
        || [ -x /usr/lib/systemd/systemd-journal-remote ] \
        || [ -x /lib/systemd/systemd-journal-remote ]
}
journal_remote_found || need+=(systemd-journal-remote)
command -v journalctl >/dev/null 2>&1 || need+=(systemd)
alertmanager_found() {
    command -v prometheus-alertmanager >/dev/null 2>&1 \
        || [ -x /usr/bin/prometheus-alertmanager ]
}
alertmanager_found || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-test-deps: need root (or sudo) to install: ${need[*]}" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get here; install these packages by hand: ${need[*]}" >&2
    exit 1
fi
echo "install-test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
