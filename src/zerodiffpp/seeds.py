"""Independent random streams derived from ``train.seed`` (one per purpose), so that e.g. the
classifier's shuffling does not shift when synthesis draws more samples."""
from __future__ import annotations

import numpy as np

# Tags of the streams; 0-2 are used by both the evaluate and the baseline stages.
(TAG_SYN, TAG_CLF, TAG_SPURIOUS, TAG_TTA, TAG_DIFFGEN, TAG_TTA_CLF, TAG_MIX, TAG_VAL_SPLIT,
 TAG_TTA_ZSL) = range(9)


def derived_seed(seed: int, tag: int) -> int:
    """A seed for the independent stream ``tag`` of run seed ``seed``."""
    return int(np.random.SeedSequence([seed, tag]).generate_state(1, np.uint64)[0] % 2**63)
