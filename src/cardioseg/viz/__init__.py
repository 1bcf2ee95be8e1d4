"""Pictures: training curves, overlays, case figures."""
