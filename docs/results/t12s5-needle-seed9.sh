# issue 12 (tactic-s5): the seed-9 16K multi-key miss, measured. Niced on the shared machine
# (quality numbers; no timing). Library: the worktree's build (TACTIC_LIB), commits noted per file.
export TACTIC_LIB=build/libtactic.so
# replay of tactic_tasks.py's order (questions 0-1 under full, Tactic, Quest first), teacher-forced
# per-head tables, greedy controls (library + script 20dbf13, before the decisive-step section):
nice -n 19 python scripts/tactic_needle_diag.py --seed 9 --ctx 8192 16384 --question 2 --wrong 3 --replay \
  > docs/results/t12s5-needle-seed9-q2-replay.md
# the same tables with the "asked-line mass not kept" column, no replay (identical numbers) (787043f):
nice -n 19 python scripts/tactic_needle_diag.py --seed 9 --ctx 8192 16384 --question 2 --wrong 3 --controls \
  --noise-seeds 0 > docs/results/t12s5-needle-seed9-q2-detail.md
# the decisive answer step alone under selectors, targets and query noise (20 seeds a sigma) (787043f):
nice -n 19 python scripts/tactic_needle_diag.py --seed 9 --ctx 8192 16384 --question 2 --wrong 3 --no-detail \
  --controls --noise-seeds 20 > docs/results/t12s5-needle-seed9-q2-controls.md
# the question of the same document that full attention misses (question 1, answers question 2's key):
nice -n 19 python scripts/tactic_needle_diag.py --seed 9 --ctx 8192 16384 --question 1 --wrong 2 --noise-seeds 20 \
  --controls bounded:0.9 full:1.0 oracle:0.9 oracle:0.99 > docs/results/t12s5-needle-seed9-q1.md
# every question's answer margin (expected token - best other token, smallest over the answer), full vs Tactic:
nice -n 19 python scripts/tactic_needle_diag.py --seed 9 --ctx 8192 16384 --margins > docs/results/t12s5-needle-seed9-margins.md
# the same at 8K (the seed-9 8K document):
nice -n 19 python scripts/tactic_needle_diag.py --seed 9 --ctx 8192 --margins > docs/results/t12s5-needle-seed9-8k-margins.md
