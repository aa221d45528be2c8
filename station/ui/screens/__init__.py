"""The screens pushed over the main screen: PIN, help, quit confirmation, batch summary."""
