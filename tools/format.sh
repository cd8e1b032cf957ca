#!/usr/bin/env bash
# clang-format over the hand-written C++ (generated code is left as generated).
#   format.sh check   fails listing the files that are not formatted
#   format.sh fix     formats them in place
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-check}"
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.h' '*.cc' \
  | grep -v -E '^src/(protocol|rpc)/gen/[a-z0-9_]+\.(h|cc)$|^src/(protocol|rpc)/gen_random/[a-z0-9_]+\.cc$' || true)
# Hand-written files inside the generated folders are formatted too.
for f in src/{protocol,rpc}/gen/support.h src/{protocol,rpc}/gen/registry.h src/{protocol,rpc}/gen_random/random.h; do
  [ -f "$f" ] && files+=("$f")
done
[ ${#files[@]} -gt 0 ] || exit 0
if [ "$mode" = fix ]; then
  clang-format-14 -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! clang-format-14 --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: not clang-formatted (run 'make format'):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "format: ${#files[@]} files clean"
