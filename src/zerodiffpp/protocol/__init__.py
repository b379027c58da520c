"""The validation-class protocol (docs/protocol.md): how every setting of the final evaluation
is chosen without looking at test data.

* :mod:`.split`        the validation view: seen classes -> train-classes + validation-classes
* :mod:`.calibration`  calibrated stacking (seen-score offset), exact search over stored scores
* :mod:`.selection`    the validation round's scan and choice, and applying it to a Config
* :mod:`.diffgen_budget` DiffGen's budgets and its classifier's epochs / calibration, chosen
  on the validation view after ZeroDiff's choice
* :mod:`.transductive` under ``eval.transductive_choice: own``: DiffTTA on the validation
  view and + DiffTTA's / ZeroDiff++'s own settings
* :mod:`.own_settings` which block of a selection holds each transductive method's settings
"""
