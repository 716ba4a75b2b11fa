#!/usr/bin/env bash
# The console in a real browser: Playwright (PyPI) driving Debian's Chromium against the real
# binary, once per database. Usage: .ci/browser.sh BIN SQLITE_URL POSTGRES_URL MYSQL_URL
# Screenshots land in target/browser/ (the CI artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1; shift

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
VENV=target/browser-venv
if ! "$VENV/bin/python" -c "import playwright, pytest" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/browser/requirements.txt
fi

for db in "$@"; do
  echo "--- browser tests on ${db%%:*}"
  IDEMHOOK_BIN="$BIN" IDEMHOOK_BROWSER_DB="$db" CHROMIUM="$(command -v chromium)" \
    timeout 300 "$VENV/bin/pytest" -q -p no:cacheprovider tests/browser
done
ls -l target/browser/
