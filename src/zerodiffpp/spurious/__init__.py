"""The two spuriousness metrics of generated features and their companions (METHOD.md 6.2,
[PROPOSAL]; definitions, validation and cost in docs/spuriousness.md).

* :mod:`.distances`   distances between sample sets (nearest-neighbour cost, energy distance).
* :mod:`.metrics`     ``s_seen`` (generalisation gap) and ``s_unseen`` (transfer gap), per class
                      and macro-averaged.
* :mod:`.companions`  critic-free companions: accuracy gaps and connectivity.
* :mod:`.critic`      ZeroDiff's own delta_adv (its D_x0 on seen-train vs seen-test real features).
* :mod:`.validation`  controlled-data validation (``python -m zerodiffpp.spurious.validation``).
* :mod:`.claims`      the paper's two claims tested on the sweep
                      (``python -m zerodiffpp.spurious.claims``).
"""
