#!/usr/bin/env bash
# hack/cluster/kwok-stages.sh KWOK_MODULE_DIR — print the KWOK Stages our local
# cluster uses, read from the pinned kwok module (never copied into the repo).
#
# Node stages: kwok's "fast" initialize + heartbeat (nodes Ready at once).
# Pod stages: kwok's "general" set plus its "chaos" container-failure stage,
# so tests steer pods with kwok's standard per-pod controls:
#   annotation pod-complete.stage.kwok.x-k8s.io/delay: "600s"      keep running
#   label pod-container-running-failed.stage.kwok.x-k8s.io: "true"  fail, with
#   annotations …/exit-code: "137" and …/reason: OOMKilled to choose them.
# Two deliberate changes, both checked below: default delays are short and fixed
# (pod Running after ~0.6 s, Succeeded ~2 s later; the upstream default is 1–5 s
# of jitter per stage) — per-pod delay/jitter annotations still override them;
# and pod-complete skips pods labelled to fail, so a failing pod fails every time
# instead of succeeding with probability 1/10001 (upstream relies on weights).
set -euo pipefail
dir="${1:?usage: kwok-stages.sh KWOK_MODULE_DIR}/kustomize/stage"

emit() {  # emit FILE DELAY_MS: print one stage with its default delay set and no default jitter
  local file="$1" delay="$2"
  [ -f "$file" ] || { echo "kwok-stages: missing $file" >&2; exit 1; }
  echo "---"
  sed -E -e "/^    jitterDurationMilliseconds: [0-9]+$/d" \
         -e "s/^    durationMilliseconds: [0-9]+$/    durationMilliseconds: ${delay}/" "$file"
}

emit "$dir/node/fast/node-initialize.yaml" 0
emit "$dir/node/heartbeat/node-heartbeat.yaml" 20000
emit "$dir/pod/general/pod-create.yaml" 100
emit "$dir/pod/general/pod-init-container-running.yaml" 100
emit "$dir/pod/general/pod-init-container-completed.yaml" 100
emit "$dir/pod/general/pod-ready.yaml" 500
emit "$dir/pod/general/pod-delete.yaml" 200
emit "$dir/pod/chaos/pod-container-running-failed.yaml" 1000
emit "$dir/pod/general/pod-complete.yaml" 2000 | awk '
  { print }
  /^      - .Job.$/ && !done {
    print "    - key: '\''.metadata.labels[\"pod-container-running-failed.stage.kwok.x-k8s.io\"]'\''"
    print "      operator: '\''NotIn'\''"
    print "      values:"
    print "      - '\''true'\''"
    done = 1
  }
  END { if (!done) { print "kwok-stages: pod-complete has no Job owner selector to extend" > "/dev/stderr"; exit 1 } }'
