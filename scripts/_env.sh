# Shared set-up for scripts/demo and scripts/test: a virtual environment in .venv with the
# package installed (editable), re-installed only when pyproject.toml changes.
# Usage: source scripts/_env.sh; ensure_venv [extras]
set -euo pipefail

ensure_venv() {
  local extras="${1:-}"
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "selfheal needs Python 3.11 or newer (found: $("$python" --version 2>&1))" >&2
    exit 2
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating the virtual environment in .venv" >&2
    "$python" -m venv .venv
  fi
  local want
  want="$(sha256sum pyproject.toml | cut -c1-16)${extras}"
  if [ "$(cat .venv/.selfheal-installed 2>/dev/null || true)" != "$want" ]; then
    echo "==> installing selfheal${extras:+ with [$extras]} into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    echo "$want" > .venv/.selfheal-installed
  fi
}

# Debian packages the tests need (real Prometheus, Alertmanager, Chromium): installed when
# missing, if we may (root, or passwordless sudo); otherwise the tests that need them skip.
ensure_debs() {
  local missing=()
  for pair in "$@"; do
    local pkg="${pair%%:*}" bin="${pair#*:}"
    command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "==> cannot install ${missing[*]} (not root): the tests that need them will skip" >&2
      return 0
    fi
  fi
  echo "==> installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}
