#!/bin/bash
# Run from the repository root with TACTIC_LIB set: bash scripts/docqa_tmux_demo.sh (captures in /tmp/tmux_caps).
# Drives `chat --doc` in tmux as a person would; captures the screen along the way.
set -u
cd /work/wt-docqa
OUT=/tmp/tmux_caps; rm -rf $OUT; mkdir -p $OUT
export TACTIC_LIB=build/libtactic.so PYTACTIC_CACHE_DIR=/tmp/docqa_demo_cache
rm -rf $PYTACTIC_CACHE_DIR
tmux kill-session -t docqa 2>/dev/null
tmux new-session -d -s docqa -x 110 -y 45
tmux send-keys -t docqa "python -m pytactic chat --doc /usr/share/common-licenses/Apache-2.0 -n 80 --temp 0" Enter
for i in $(seq 1 60); do
  sleep 4
  tmux capture-pane -p -t docqa > $OUT/reading_$i.txt
  if grep -q "^>" $OUT/reading_$i.txt; then break; fi
done
tmux send-keys -t docqa "What must I include when I redistribute the Work?" Enter
for i in $(seq 1 60); do sleep 4; tmux capture-pane -p -t docqa > $OUT/q1.txt; c=$(grep -c "tokens in" $OUT/q1.txt); [ "$c" -ge 1 ] && break; done
sleep 1
# a two-line paste: one question
tmux send-keys -t docqa "Does the licence grant patent rights?" C-j "Answer briefly." Enter
for i in $(seq 1 60); do sleep 4; tmux capture-pane -p -t docqa > $OUT/q2.txt; c=$(grep -c "tokens in" $OUT/q2.txt); [ "$c" -ge 2 ] && break; done
sleep 1
tmux send-keys -t docqa C-d
sleep 2
# Tomorrow: the same document opens from the cache
tmux send-keys -t docqa "python -m pytactic ask --doc /usr/share/common-licenses/Apache-2.0 -n 40 --temp 0 'Can I use the trademarks of the Licensor?'" Enter
for i in $(seq 1 60); do sleep 4; tmux capture-pane -p -t docqa > $OUT/ask.txt; c=$(grep -c "loaded from the cache" $OUT/ask.txt); t=$(grep -c "tokens in" $OUT/ask.txt); [ "$t" -ge 3 ] && break; done
tmux send-keys -t docqa "python -m pytactic sessions list" Enter
sleep 3
tmux capture-pane -p -S -200 -t docqa > $OUT/final.txt
tmux kill-session -t docqa
