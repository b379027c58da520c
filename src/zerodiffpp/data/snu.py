"""SNU-B36-EX inter-floor-noise benchmark (audio, VGGish features) in xlsa17 format.

Two files from GitHub ``7tl7qns7ch/SNU-B36-EX`` at a pinned commit: ``CNN_fea.mat``
(``features`` 128 x 8450, ``labels``) and ``att_splits.mat`` (``att`` 7 x 195 int16, the
usual ``*_loc``).  No ``original_att`` and no class names (-> ``class_001``...).  ``att``
is used un-normalised by the dataset authors' own loader, hence default norm ``none``.
"""
from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from ..io import DataError
from .download import fetch
from .matio import read_xlsa17, sha256_file
from .schema import ZSLData

COMMIT = "803f1246ed1ed63be0532fce41ea16815e07a674"
BASE_URL = (f"https://raw.githubusercontent.com/7tl7qns7ch/SNU-B36-EX/{COMMIT}/"
            "train_zsl_la/vggish_zsl_la/")
FILES = {
    "CNN_fea.mat": "2b5a71f7a3cbe5c29c9cc4c8dab245b1ae31d22a79a0d83f5ea802dca8fab98e",
    "att_splits.mat": "b6d6a5e0067b429b3492174a2649240724047a58d0cdeac1017cbf54377b6830",
}
SOURCE = f"github.com/7tl7qns7ch/SNU-B36-EX@{COMMIT[:7]} train_zsl_la/vggish_zsl_la (sha256-verified)"


def locate(cfg: DataConfig, show_progress: bool = True) -> Path:
    """Folder holding both files: ``data.local_path`` or the download cache."""
    if cfg.local_path:
        folder = Path(cfg.local_path)
        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing:
            raise DataError(f"data.local_path: {folder} lacks {', '.join(missing)} "
                            "(expected the SNU-B36-EX CNN_fea.mat and att_splits.mat)")
        for fname, digest in FILES.items():
            got = sha256_file(folder / fname)
            if got != digest:
                raise DataError(f"{folder / fname}: sha256 {got} differs from the pinned "
                                f"SNU-B36-EX file ({digest})")
        return folder
    folder = Path(cfg.download_dir) / "snu-b36-ex"
    hint = ("without network access, download CNN_fea.mat and att_splits.mat from "
            f"{BASE_URL} into one folder and set data.local_path to it")
    for fname, digest in FILES.items():
        fetch(BASE_URL + fname, folder / fname, sha256=digest, show_progress=show_progress,
              hint=hint)
    return folder


def load(cfg: DataConfig, show_progress: bool = True) -> ZSLData:
    folder = locate(cfg, show_progress)
    data = read_xlsa17(folder / "CNN_fea.mat", folder / "att_splits.mat", name="snu-b36-ex")
    data.source = SOURCE
    data.extra["embedding_norm_default"] = "none"
    return data
