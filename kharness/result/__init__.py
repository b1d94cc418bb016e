"""Results: pure data and its writers. Nothing here runs anything.

model.py (the run's Result, its phases and checks), finding.py (Finding and its closed set of
kinds), records.py (the kernel, build, image and taint records), status.py (status enums, exit
codes, the one status-colour table), cap.py (the one way a long log is shortened), writers.py
(JSON file, terminal summary), schema.py (docs/result-schema.md's tables and result.schema.json,
written from the model).
"""
