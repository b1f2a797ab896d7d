#!/usr/bin/env bash
# Applies (apply) or compares (check) the a2a-bench sysctl profile, key by key.
# A key the kernel refuses (containers, VMs, no root) is reported, not treated as a failure.
set -u
mode=${1:-check}
conf=${2:-$(dirname "$0")/a2a-bench.conf}
[ -r "$conf" ] || { echo "tune: cannot read $conf" >&2; exit 2; }
case "$mode" in apply|check) ;; *) echo "usage: $0 apply|check [conf]" >&2; exit 2 ;; esac
if [ "$mode" = apply ] && [ "$(id -u)" != 0 ]; then
  echo "tune: applying needs root (try: sudo make tune); showing what would change instead" >&2
  mode=check
fi
printf "%-30s %-26s %-26s %s\n" key current recommended status
why=""
applied=0 refused=0 fine=0
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
    if err=$(sysctl -q -w "$key=$want" 2>&1); then
      status=applied; applied=$((applied + 1))
    else
      status="refused: ${err##*: }"; refused=$((refused + 1))
    fi
  elif [ "$status" != differs ]; then
    fine=$((fine + 1))
  fi
  printf "%-30s %-26s %-26s %s\n" "$key" "$have" "$want" "$status"
done < "$conf"
if [ "$mode" = apply ]; then
  echo "$applied applied, $refused refused, $fine already fine (refusals are normal in containers and VMs)"
fi
exit 0
