"""The NAB configuration's score with each file at its own best threshold.

Not allowed by NAB's rules (the threshold is chosen with the labels, file by file): an upper
bound on what any cross-file calibration of today's score could reach. Run from the top of
the repository: `.venv/bin/python docs/bench/nab-oracle.py [DATA]` (default
../shared/data/nab).
"""

import sys
from pathlib import Path

from selfheal.bench import nab, nab_data
from selfheal.bench import nab_score as S

files = nab_data.load(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/nab"))
scores = nab.run(files)
n_windows = sum(len(f.windows) for f in files)
for p in S.PROFILES:
    raw = sum(S.score([f], [s], p).raw for f, s in zip(files, scores, strict=True))
    null, perfect = -p.a_fn * n_windows, p.a_tp * n_windows
    corpus = S.score(files, scores, p).normalized
    bound = 100.0 * (raw - null) / (perfect - null)
    print(f"{p.name:20s} corpus-wide threshold {corpus:6.2f}   each file's best {bound:6.2f}")
