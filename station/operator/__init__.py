"""The operator terminal's core, in plain Python (no Textual): the state the screens show
(model.py), how a barcode scan is routed (scan.py), the session that owns login, batch and
engine (session.py), the simulated fixture of the demo (fixture.py) and the message catalogue
(i18n.py). station/ui/ renders this and nothing else decides."""
