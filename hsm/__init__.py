"""PKCS#11 token access and the HSM-backed certificate authority.

Nothing here imports the application (`station`) or Textual: the CA is usable on its own.
"""
