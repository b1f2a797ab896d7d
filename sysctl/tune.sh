#!/usr/bin/env bash
# Applies (apply) or compares (check) the a2a-bench sysctl profile, key by key.
# A key the kernel refuses (containers, VMs, no root) is reported, not treated as a failure.
# `check --strict` exits 1 when a key differs from the profile (so CI can gate on it).
set -u
mode=check strict=no conf=$(dirname "$0")/a2a-bench.conf
for arg in "$@"; do
  case "$arg" in
    apply|check) mode=$arg ;;
    --strict) strict=yes ;;
    -*) echo "tune: unknown flag $arg (usage: $0 apply|check [--strict] [conf])" >&2; exit 2 ;;
    *) conf=$arg ;;
  esac
done
[ -r "$conf" ] || { echo "tune: cannot read $conf" >&2; exit 2; }
if [ "$mode" = apply ] && [ "$(id -u)" != 0 ]; then
  echo "tune: applying needs root (try: sudo make tune); showing what would change instead" >&2
  mode=check
fi
printf "%-30s %-26s %-26s %s\n" key current recommended status
# Without procps (minimal images) a key is written to /proc/sys directly.
if command -v sysctl >/dev/null; then
  set_key() { sysctl -q -w "$key=$want" 2>&1; }
else
  set_key() { { echo "$want" > "$path"; } 2>&1; }
fi
why=""
applied=0 refused=0 fine=0 differing=0
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    "#"*) why=${line#\#}; continue ;;
    "") why=""; continue ;;
  esac
  key=$(echo "${line%%=*}" | xargs)
  want=$(echo "${line#*=}" | xargs)
  path=/proc/sys/$(echo "$key" | tr . /)
  if [ ! -r "$path" ]; then
    printf "%-30s %-26s %-26s %s\n" "$key" "-" "$want" "not on this kernel"
    continue
  fi
  have=$(xargs < "$path")
  status=differs
  if [ "$have" = "$want" ]; then
    status=ok
  elif [[ "$why" == *"(at least)"* ]] && [[ "$have" =~ ^[0-9]+$ ]] && [ "$have" -ge "$want" ]; then
    status="ok (higher)"
  fi
  if [ "$mode" = apply ] && [ "$status" = differs ]; then
    if err=$(set_key); then
      status=applied; applied=$((applied + 1))
    else
      status="refused: ${err##*: }"; refused=$((refused + 1))
    fi
  elif [ "$status" != differs ]; then
    fine=$((fine + 1))
  else
    differing=$((differing + 1))
  fi
  printf "%-30s %-26s %-26s %s\n" "$key" "$have" "$want" "$status"
done < "$conf"
if [ "$mode" = apply ]; then
  echo "$applied applied, $refused refused, $fine already fine (refusals are normal in containers and VMs)"
elif [ "$strict" = yes ] && [ "$differing" -gt 0 ]; then
  echo "tune-check: $differing key(s) differ from the profile (sudo make tune applies it)" >&2
  exit 1
fi
exit 0
