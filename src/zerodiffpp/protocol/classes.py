"""What the validation round's feature extractors may learn from (docs/protocol.md).

Kept apart from :mod:`.split` so that the features stage depends on this one small function
only (numpy and the dataset schema), not on the validation view's code.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.schema import ZSLData


def without_classes(data: ZSLData, classes) -> ZSLData:
    """``data`` with every sample of ``classes`` moved to test_unseen: what the feature
    extractors of the validation round may learn from (the train-classes' trainval samples
    only), while features are still computed for every row."""
    labels0 = data.labels - 1

    def keep(loc):
        return loc[~np.isin(labels0[loc - 1], classes)]

    moved = np.concatenate([loc[np.isin(labels0[loc - 1], classes)]
                            for loc in (data.trainval_loc, data.test_seen_loc)])
    return dataclasses.replace(
        data, trainval_loc=keep(data.trainval_loc), test_seen_loc=keep(data.test_seen_loc),
        test_unseen_loc=np.sort(np.concatenate([data.test_unseen_loc, moved])),
        train_loc=None, val_loc=None)
