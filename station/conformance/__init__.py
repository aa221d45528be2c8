"""The conformance kit: a documented suite firmware teams run against their boards
(`station conformance PORT`, docs/conformance.md). It uses the real transport and codec,
and a throw-away software test CA, never the station's HSM."""
