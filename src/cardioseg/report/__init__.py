"""Reports for people: the HTML report of a run or evaluation, and `cardioseg inspect` of a prepared dataset.

Built on top of every stage: reads their files through ``cardioseg.artifacts``, draws with
``cardioseg.viz``, computes clinical indices through ``cardioseg.evaluation.clinical_outputs``.
"""
