"""Drawing primitives: one palette, overlays, video frames and encoding, slices, 3D surfaces, agreement and metric plots.

Numbers come in as arrays and tables; what to draw for a run or an evaluation is decided above
(``cardioseg.evaluation``, ``cardioseg.report``).
"""
