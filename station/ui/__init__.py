"""The Textual operator terminal: the only package that imports Textual. It renders
station.operator's model and sends commands through station.operator's session; it decides
nothing about devices, batches or scans itself (docs/ui.md)."""
