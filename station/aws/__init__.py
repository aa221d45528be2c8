"""The AWS IoT hand-off: the JITP provisioning template and CA registration documents,
generated from the station's certificate profile (docs/jitp.md)."""
