set -uo pipefail
OUT=${OUT:-/tmp/out}
bash .gpu/batch.sh
