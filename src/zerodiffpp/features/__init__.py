"""Feature extraction (METHOD.md 1.3-1.4): the visual feature x and the SC representation c.

Submodules: ``backbones`` (networks), ``supcon`` (supervised contrastive loss), ``extract``
(training loops + extraction; imports torch), ``store`` (``ce_ce.mat`` / ``con_paco.mat``
files; numpy/scipy only).  Nothing is imported here so that numpy-only users (the
``prepare`` stage) do not pay for importing torch.
"""
